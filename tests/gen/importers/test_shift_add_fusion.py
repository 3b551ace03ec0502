"""FuseShiftAdd on the HGQ jet classifier and on models it must leave alone; the fused layer's
golden model, native round trip and manifest. (The RTL is verified on Verilator in
test_verify_models.py.)"""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from nnfab.errors import ModelError
from nnfab.fixed import FixedFormat
from nnfab.cli import main
from nnfab.ir import ShiftAddDenseLayer
from nnfab.gen.load import load_model
from nnfab.gen.native import load_native, save_native
from nnfab.gen.passes import ChooseReuseFactors, FuseShiftAdd
from nnfab.sim.golden.network import run_network, trace_network

from .conftest import KERAS, need

HGQ = KERAS / "hgq_jet_classifier.h5"


@pytest.fixture(scope="module")
def hgq():
    return load_model(need(HGQ)).model


def test_hgq_layers_fuse_in_four_groups(hgq):
    fused, changed = FuseShiftAdd().apply(hgq)
    assert changed
    assert [(layer.kind, [p.name for p in layer.parts]) for layer in fused.layers] == [
        ("shift_add_dense", ["inp_q_quantizer", "dense_1", "dense_1_relu",
                             "dense_1_relu_quantizer"]),
        ("shift_add_dense", ["dense_2", "dense_2_relu", "dense_2_relu_quantizer"]),
        ("shift_add_dense", ["dense_3", "dense_3_relu", "dense_3_relu_quantizer"]),
        ("shift_add_dense", ["dense_4", "dense_4_quantizer"])]
    first, second = fused.layers[0], fused.layers[1]
    assert first.input_lanes is None
    # The second layer knows which input lanes carry bits, and how many.
    assert second.input_lanes == tuple(
        None if f is None else f.replace(rounding="TRN", overflow="WRAP")
        for f in first.output_quantizer.formats)
    rng = np.random.default_rng(8)
    fmt = hgq.input_format
    x = rng.integers(fmt.min_code, fmt.max_code + 1, (500, 16))
    assert np.array_equal(run_network(fused, x), run_network(hgq, x))
    assert set(trace_network(fused, x)) == {"dense_1", "dense_2", "dense_3", "dense_4"}


def test_layers_with_multipliers_or_reuse_are_not_fused(hgq):
    reused, _ = ChooseReuseFactors(per_layer={"dense_2": 2}).apply(hgq)
    fused, _ = FuseShiftAdd().apply(reused)
    assert [layer.name for layer in fused.layers if layer.kind == "shift_add_dense"] == \
        ["dense_1", "dense_3", "dense_4"]
    # dense_2 runs unfused, so dense_3 does not know its input lanes
    assert fused.layer("dense_3").input_lanes is None
    # dense_2 has a weight of 3 signed digits; a threshold of 2 keeps its multiplier
    fused, _ = FuseShiftAdd(multiplier_threshold=2).apply(hgq)
    assert "dense_2" in [layer.name for layer in fused.layers if layer.kind == "dense"]


def test_fused_model_saves_as_its_parts(hgq, tmp_path):
    fused, _ = FuseShiftAdd().apply(hgq)
    save_native(fused, tmp_path / "m.json")
    back = load_native(tmp_path / "m.json")
    assert [layer.name for layer in back.layers] == [layer.name for layer in hgq.layers]
    assert back.layer("inp_q_quantizer").formats == hgq.layer("inp_q_quantizer").formats


def test_fused_layer_rejects_other_patterns(hgq):
    relu, dense = hgq.layer("dense_1_relu"), hgq.layer("dense_1")
    with pytest.raises(ModelError, match=r"^Layer 'x': a shift-add dense layer fuses "
                                         r"\[quantize\] dense \[activation\] \[quantize\], "
                                         r"not activation dense$"):
        ShiftAddDenseLayer("x", parts=(relu, dense))


def test_cli_build_records_fusion_and_verify_dir_follows(tmp_path):
    runner = CliRunner()
    out = tmp_path / "hgq"
    result = runner.invoke(main, ["build", str(need(HGQ)), "-o", str(out), "--no-fuse"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["shift_add_fusion"] is False
    assert {row["kind"] for row in manifest["layers"]} == {"quantize", "dense", "activation"}
    result = runner.invoke(main, ["build", str(need(HGQ)), "-o", str(out),
                                  "--lut-adder-width", "7"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["shift_add_fusion"] is True
    assert manifest["lut_adder_width"] == 7
    rows = manifest["layers"]
    assert [row["kind"] for row in rows] == ["shift_add_dense"] * 4
    assert rows[0]["fused_layers"] == ["inp_q_quantizer", "dense_1", "dense_1_relu",
                                       "dense_1_relu_quantizer"]
    assert manifest["latency"] == sum(row["latency"] for row in rows)
    assert all(row["multipliers"] == 0 and row["adders"] > 0 for row in rows)
    assert "Shift-add dense layers" in (out / "report.md").read_text()
    # the build folder's model reads back (quantize layers included)
    assert [layer.name for layer in load_native(out / "model.json").layers][:2] == \
        ["inp_q_quantizer", "dense_1"]


def test_quantize_layer_needs_its_formats_in_the_native_format(tmp_path, hgq):
    save_native(hgq, tmp_path / "m.json")
    doc = json.loads((tmp_path / "m.json").read_text())
    del doc["layers"][0]["formats"]
    (tmp_path / "m.json").write_text(json.dumps(doc))
    with pytest.raises(Exception, match=r"Layer 'inp_q_quantizer': a 'quantize' layer needs "
                                        r"\"formats\""):
        load_native(tmp_path / "m.json")


def test_unsigned_input_format_is_kept(hgq):
    # the fused layer's stream formats are those of its first and last parts
    fused, _ = FuseShiftAdd().apply(hgq)
    assert fused.layers[0].input_format == hgq.input_format == FixedFormat(12, 5)
    assert fused.layers[1].input_format == hgq.layer("dense_2").input_format
