"""The resource estimate (nnfab.gen.estimate) and the default fit (FitToDevice, prepare_model's
``fit``, ``nnfab build --fit``), on small hand-made models."""

import json
import re
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

from nnfab.boards.synth import DEVICES
from nnfab.cli import main
from nnfab.errors import ModelError
from nnfab.gen.estimate import estimate_layer, estimate_model
from nnfab.hdl.csd import csd_digits
from nnfab.gen.examples import example
from nnfab.gen.load import prepare_model
from nnfab.gen.native import load_native
from nnfab.gen.passes import ChooseReuseFactors, FitToDevice, run_passes

from .conftest import tiny_mlp

#: d1's weights: CSD digits 1, 2, 0, 2 / none / 2, 0, 0, 1 / 4 (85 = 64 + 16 + 4 + 1).
WEIGHTS = np.array([[1, 3, 0, 7], [0, 0, 0, 0], [5, 0, 0, -1]])


def _model(write_model, weights=WEIGHTS, weight_format="fixed<8,2>"):
    doc, arrays = tiny_mlp(weights, weight_format)
    return load_native(write_model(doc, arrays))


def test_estimate_at_reuse_factor_one(write_model):
    d1 = _model(write_model).layer("d1")
    acc = d1.spec.accumulator.width
    for fused in (False, True):  # every weight has at most 3 digits: the same terms
        e = estimate_layer(d1, fused=fused)
        assert (e.shift_add_terms, e.adders, e.dsp_multipliers, e.lut_multipliers,
                e.rom_bits) == (8, 8, 0, 0, 0)
        assert e.adder_bits == e.luts == 8 * min(8, acc)  # input fixed<8,3>: 8 bits a term
    # A 4-digit weight is a constant multiplier unless fused.
    d1 = _model(write_model, np.array([[85, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]])).layer("d1")
    e = estimate_layer(d1)
    # Built from LUTs, 8 x 8 bits: 64 partial-product bits and 7 adders of 8 + 3 bits.
    assert (e.shift_add_terms, e.dsp_multipliers, e.dsp_blocks, e.dsp_multiplier_luts,
            e.adders) == (1, 1, 1, 141, 2)
    assert e.luts == 8 + acc and e.luts_without_dsps == 8 + acc + 141
    assert estimate_layer(d1, fused=True).shift_add_terms == 5


def test_estimate_at_reuse_factor_two(write_model):
    model, _ = ChooseReuseFactors(per_layer={"d1": 2}).apply(_model(write_model))
    d1 = model.layer("d1")
    acc = d1.spec.accumulator.width
    e = estimate_layer(d1)
    # Processing elements: ceil(3 / 2) + ceil(2 / 2) = 3, each 8 x 8 bits with 2 weights.
    assert (e.dsp_multipliers, e.dsp_blocks, e.dsp_multiplier_luts, e.rom_bits,
            e.shift_add_terms) == (3, 3, 3 * 141, 48, 0)
    assert e.luts == 3 * acc + 3
    # Weights of 4 bits: LUT multipliers of 4 x 8 bits.
    model, _ = ChooseReuseFactors(per_layer={"d1": 2}).apply(
        _model(write_model, WEIGHTS, "fixed<4,2>"))
    e = estimate_layer(model.layer("d1"))
    assert (e.lut_multipliers, e.dsp_multipliers, e.rom_bits) == (3, 0, 24)
    assert e.luts == 3 * 32 + 3 * model.layer("d1").spec.accumulator.width + 2


def test_model_estimate_spills_multipliers_beyond_the_dsps(write_model):
    model, _ = ChooseReuseFactors(per_layer={"d1": 2}).apply(_model(write_model))
    e = estimate_model(model)
    assert e.dsp_blocks == sum(layer.dsp_blocks for layer in e.layers)
    assert e.on_device(100) == (e.luts, e.dsp_blocks)
    assert e.on_device(1) == (e.luts + 141 * (e.dsp_blocks - 1), 1)
    assert e.on_device(0) == (e.luts + e.dsp_multiplier_luts, 0)


def test_fit_raises_reuse_factors_until_it_fits(write_model):
    # 3-bit weights, all non-zero: at R = 4, d1 is 3 LUT multipliers instead of 12+ terms.
    model = _model(write_model, np.array([[1, 3, -3, 2], [-1, 1, 3, -2], [3, 1, 1, -3]]),
                   "fixed<3,1>")
    before = estimate_model(model)
    after = estimate_model(ChooseReuseFactors(per_layer={"d1": 4}).apply(model)[0])
    assert after.on_device(0)[0] < before.on_device(0)[0]
    device = SimpleNamespace(name="Pretend", luts=after.on_device(0)[0], dsps=0)
    fitting = FitToDevice(device)
    fitted, changed = fitting.apply(model)
    assert changed and fitting.result.estimate.fits(device)
    assert [layer.reuse_factor for layer in fitted.layers if layer.kind == "dense"] != [1, 1]
    assert fitting.result.changes == [(layer.name, 1, layer.reuse_factor)
                                      for layer in fitted.layers
                                      if getattr(layer, "reuse_factor", 1) != 1]
    name, _, r = fitting.result.changes[0]
    e = next(e for e in fitting.result.estimate.layers if e.name == name)
    assert fitting.result.lines()[0] == (f"layer {name}: reuse factor 1 -> {r} to fit Pretend "
                                         f"(estimate {e.luts:,} LUT4 eq., {e.dsp_blocks} DSP)")
    # A device it already fits: unchanged.
    assert FitToDevice(DEVICES["ECP5-85F"]).apply(model) == (model, False)


def test_fit_error_when_nothing_fits(write_model):
    model = _model(write_model)
    with pytest.raises(ModelError) as info:
        FitToDevice(SimpleNamespace(name="Pretend", luts=10, dsps=0)).apply(model)
    assert str(info.value).startswith("Model 'tiny' does not fit Pretend even at the largest "
                                      "reuse factors: estimate ")
    assert str(info.value).endswith(" LUT4 eq. and 0 DSP blocks against 10 LUT4 and 0 DSP "
                                    "blocks; choose another device with --fit DEVICE, or "
                                    "build it anyway with --fit none")


@pytest.mark.parametrize("name", ["digits-mlp", "digits-cnn"])
def test_small_models_unchanged_at_the_default_fit(name):
    model = load_native(example(name).path)
    results = []
    fitted = prepare_model(model, fit=DEVICES["ECP5-85F"], fit_results=results)
    assert fitted == prepare_model(model)
    assert results[0].changes == []


def test_prepare_model_fits_only_without_reuse_choices(write_model):
    model = _model(write_model)
    tiny = SimpleNamespace(name="Pretend", luts=10, dsps=0)
    # A reuse factor given: no fit (and no error); the DSP budget still applies, and with no
    # DSP blocks every multiplier (d2's weights of 4 signed digits or more) is built from LUTs.
    fitted = prepare_model(model, reuse_factor=1, fit=tiny, fuse=False)
    chosen = run_passes(model, [ChooseReuseFactors(reuse_factor=1)])[0]
    assert [layer.reuse_factor for layer in fitted.layers if layer.kind == "dense"] == \
        [layer.reuse_factor for layer in chosen.layers if layer.kind == "dense"]
    assert [layer.fabric_multipliers for layer in fitted.layers if layer.kind == "dense"] == \
        [0, int(sum(len(csd_digits(int(w))) > 3 for w in model.layer("d2").spec.weights.flat))]


def test_cli_fit(tmp_path, write_model):
    runner = CliRunner()
    result = runner.invoke(main, ["build", "--example", "digits-mlp", "--fit", "iCE40UP5K",
                                  "-o", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("layer ")]
    assert lines and all(" to fit iCE40UP5K (estimate " in line for line in lines)
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["fit"]["target"] == "iCE40UP5K"
    assert manifest["fit"]["estimate"]["device_luts"] <= 5280
    assert len(manifest["fit"]["changed"]) == len(lines)
    report = (tmp_path / "a" / "report.md").read_text()
    assert "- fitted to iCE40UP5K (5,280 LUT4, 8 DSP): estimate " in report
    assert "; reuse factors raised: dense_1 1 -> " in report
    tiny = write_model(*tiny_mlp())
    result = runner.invoke(main, ["build", str(tiny), "--fit", "none", "-o", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert "fit" not in manifest and " to fit " not in result.output
    result = runner.invoke(main, ["build", "--example", "digits-mlp", "--fit", "XC7"])
    assert result.exit_code == 2
    assert "Invalid value for '--fit': Unknown device 'XC7'; devices: iCE40UP5K, ECP5-25F, " \
           "ECP5-45F, ECP5-85F, or none" in result.output


def test_sweep_points_fit_their_target():
    from nnfab.boards.sweep_point import SweepSource, point_model
    from nnfab.fixed import FixedFormat

    model = load_native(example("digits-mlp").path)
    source = SweepSource("digits-mlp", "0" * 64, model, None, np.zeros((1, 64)),
                         FixedFormat(16, 6))
    point = {"reuse_factor": None, "bits": None, "clock_mhz": 100.0, "fuse": True,
             "target": "iCE40UP5K"}
    def reuse(m):
        return [(layer.name, layer.kind, getattr(layer, "reuse_factor", None))
                for layer in m.layers]

    assert any(r is not None and r > 1 for _, _, r in reuse(point_model(source, point)))
    unchanged = reuse(prepare_model(model))
    assert reuse(point_model(source, {**point, "fit": None})) == unchanged
    assert reuse(point_model(source, {**point, "target": "ECP5-85F"})) == unchanged
    assert reuse(point_model(source, {**point, "fit": "ECP5-85F"})) == unchanged


def test_fit_device_of_the_command_line():
    from nnfab.cli.commands import fit_device

    assert fit_device(None) is DEVICES["ECP5-85F"]
    assert fit_device("ice40up5k") is DEVICES["iCE40UP5K"]
    assert fit_device("None") is None
    # Board builds choose block-RAM reuse factors of their own: no default fit.
    assert fit_device(None, "icebreaker") is None
    assert fit_device("ECP5-45F", "icebreaker") is DEVICES["ECP5-45F"]
    # An hls4ml config gives its reuse factors (ReuseFactor): no default fit either.
    assert fit_device(None, None, "config.yml") is None
    assert fit_device("ECP5-85F", None, "config.yml") is DEVICES["ECP5-85F"]


@pytest.mark.parametrize("path", [
    "qonnx-model-zoo/qkeras_jettagging.onnx", "qonnx-model-zoo/TFC_2W2A.onnx",
    "qonnx-model-zoo/unsw_nb15-mlp-w2a2.onnx", "hls4ml-example-models/keras/hgq_jet_classifier.h5",
    "hls4ml-example-models/keras/qkeras_mnist_cnn.json"])
def test_shared_models_unchanged_at_the_default_fit(path):
    from nnfab.gen.load import load_model

    from ..vectors import shared_dir

    file = shared_dir() / "models" / path
    if not file.exists():
        pytest.fail(f"{file} is not available: shared/ must be beside the repository")
    model = load_model(file).model
    results = []
    prepare_model(model, fit=DEVICES["ECP5-85F"], fit_results=results)
    assert results[0].changes == []
    assert results[0].estimate.fits(DEVICES["ECP5-85F"])


def test_mlperf_kws_does_not_fit_ecp5_85f_and_the_default_build_says_so():
    """MLPerf Tiny's KWS DS-CNN synthesized for the ULX3S-85F to 117,291 LUT4 and 888
    multiplier blocks of 156 (bench/results/mlperf_tiny_ulx3s-85f.json). With the multipliers
    beyond the blocks counted at their cost in LUTs, the estimate says so too: the default fit
    (not strict, as `nnfab build` without --fit) takes the largest reuse factors and warns; an
    explicit --fit refuses."""
    from nnfab.gen.load import load_model

    from ..vectors import shared_dir

    file = shared_dir() / "models" / "mlperf-tiny" / "kws_ref_model.tflite"
    if not file.exists():
        pytest.fail(f"{file} is not available: shared/ must be beside the repository")
    model = load_model(file).model
    results, budgets = [], []
    prepare_model(model, fit=DEVICES["ECP5-85F"], fit_results=results, fit_strict=False,
                  budget_results=budgets)
    luts, blocks = results[0].estimate.on_device(DEVICES["ECP5-85F"].dsps)
    assert luts > 83_640 and blocks == 156
    assert results[0].lines()[-1].startswith("warning: does not fit ECP5-85F even at the "
                                             "largest reuse factors: estimate ")
    # The requantizers' 32-bit products alone take more blocks than the device has.
    assert budgets[0].reserved > 156
    assert re.match(r"warning: does not fit ECP5-85F: the products of its layers that have no "
                    r"LUT alternative take \d+ DSP blocks \(\w+ \d+, .* and \d+ more\), "
                    r"more than its 156; built anyway", budgets[0].lines()[-1])
    with pytest.raises(ModelError, match=r"^Model 'kws_ref_model' does not fit ECP5-85F even "
                                         r"at the largest reuse factors: estimate [\d,]+ LUT4"):
        prepare_model(model, fit=DEVICES["ECP5-85F"])


def test_kws_mlp_is_fitted():
    """The QONNX KWS MLP (490-256-256-256-12, 3-bit): every layer at reuse factor 1 is 36.7 MB
    of Verilog; fitted to ECP5-85F its three large layers take their largest reuse factors."""
    from nnfab.gen.load import load_model

    from ..vectors import shared_dir

    model = load_model(shared_dir() / "models" / "qonnx-model-zoo" / "kwsmlp_w3a3.onnx").model
    results = []
    fitted = prepare_model(model, fit=DEVICES["ECP5-85F"], fit_results=results)
    assert results[0].changes == [("MatMul_0", 1, 490), ("MatMul_1", 1, 256),
                                  ("MatMul_2", 1, 256)]
    assert [layer.kind for layer in fitted.layers if layer.name.startswith("MatMul")] == \
        ["dense", "dense", "dense", "shift_add_dense"]


def test_ad01_fits_at_no_reuse_factor():
    """MLPerf Tiny's ad01 takes one multiplier per output at least (1,754 of 8 x 8 bits and
    their weight ROMs): at the default device (``nnfab build`` without ``--fit``) it is built
    at the largest useful reuse factors with a warning; a device the user names
    (``--fit ECP5-85F``, strict) is one error; ``--fit none`` builds it as before."""
    from nnfab.gen.load import load_model

    from ..vectors import shared_dir

    model = load_model(shared_dir() / "models" / "mlperf-tiny" / "ad01_int8.tflite").model
    with pytest.raises(ModelError) as info:
        prepare_model(model, fit=DEVICES["ECP5-85F"])
    assert str(info.value).startswith("Model 'ad01_int8' does not fit ECP5-85F even at the "
                                      "largest reuse factors: estimate ")
    results = []
    fitted = prepare_model(model, fit=DEVICES["ECP5-85F"], fit_results=results,
                           fit_strict=False)
    result = results[0]
    assert not result.fits and result.changes
    assert result.as_dict()["fits"] is False
    assert result.lines()[-1].startswith("warning: does not fit ECP5-85F even at the largest "
                                         "reuse factors: estimate ")
    assert result.lines()[-1].endswith("; built at those reuse factors (--fit DEVICE for "
                                       "another device, --fit none to keep the model's own)")
    assert fitted != prepare_model(model)
    assert prepare_model(model, fit=None) == prepare_model(model)


def test_convolution_adder_graph_is_estimated_as_shift_add():
    """A convolution whose window product FuseShiftAdd builds as an adder graph counts
    shift-add terms, not multipliers; at R > 1 (and on a board) it keeps its multipliers."""
    def multipliers(estimate):
        return estimate.dsp_multipliers + estimate.lut_multipliers

    cnn = load_native(example("digits-cnn").path)
    conv = cnn.layer("conv")
    assert multipliers(estimate_layer(conv)) > 0
    assert multipliers(estimate_layer(conv, fused=True)) == 0
    assert estimate_layer(conv, fused=True).shift_add_terms > 0
    assert multipliers(estimate_layer(prepare_model(cnn).layer("conv"))) == 0
    slow, _ = ChooseReuseFactors(per_layer={"conv": 3}).apply(cnn)
    assert multipliers(estimate_layer(slow.layer("conv"), fused=True)) > 0


def test_activation_slopes_are_estimated_and_spill_cheapest_first():
    """A leaky ReLU of 48 elements (12-bit inputs, a 10-bit slope of 5 canonical signed
    digits): 48 DSP-sized constant multipliers, each a MULT18X18D, whose LUT form is 4
    adders of 22 bits; on a device of 28 blocks the other 20 are counted at that cost."""
    from nnfab.fixed import FixedFormat
    from nnfab.ir import ActivationLayer, Model

    fin = FixedFormat.parse("fixed<12,5>")
    leaky = ActivationLayer("leaky", function="leaky_relu", shape=(48,), fin=fin,
                            fout=FixedFormat.parse("fixed<10,4,RND_CONV,SAT>"),
                            params={"alpha_format": FixedFormat(10, 0), "alpha_code": 205})
    e = estimate_layer(leaky)
    assert (e.dsp_multipliers, e.dsp_blocks, e.dsp_multiplier_luts) == (48, 48, 48 * 4 * 22)
    model = Model("leaky", (48,), fin, [leaky])
    assert estimate_model(model).on_device(28) == (20 * 88, 28)
    relu = ActivationLayer("relu", function="relu", shape=(48,), fin=fin, fout=fin)
    assert estimate_layer(relu).dsp_multipliers == 0
