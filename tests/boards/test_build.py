import json

import numpy as np

import pytest

from nnfab.boards.build import build_for_board
from nnfab.boards.clocking import ecp5_pll, ice40_pll
from nnfab.boards.network import (choose_rom_reuse_factors, fuse_rom_output_stages,
                                  given_rom_reuse_factors, rom_backend)
from nnfab.gen.assemble import Network
from nnfab.boards.targets import TARGETS, target
from nnfab.boards.top import BoardTop
from nnfab.errors import BoardError

from .test_link import digits_model


def test_registry():
    assert sorted(TARGETS) == ["icebreaker", "ulx3s-85f"]
    assert (target("icebreaker").device, target("icebreaker").luts) == ("iCE40UP5K", 5280)
    assert target("ulx3s-85f").dsps == 156
    with pytest.raises(BoardError, match=r"^Unknown board 'de10'; boards: icebreaker, "
                                         r"ulx3s-85f$"):
        target("de10")


def test_unknown_board_and_bad_clock(tmp_path):
    with pytest.raises(BoardError, match=r"^Unknown board 'nope'; boards: icebreaker, "
                                         r"ulx3s-85f$"):
        build_for_board(digits_model(), tmp_path, "nope")
    with pytest.raises(BoardError, match=r"^Clock must be a positive frequency in MHz, "
                                         r"not -5$"):
        build_for_board(digits_model(), tmp_path, "icebreaker", clock_mhz=-5)
    with pytest.raises(BoardError, match=r"^Clock 500 MHz is out of the iCE40 PLL's range "
                                         r"\(16 to 275 MHz\)$"):
        build_for_board(digits_model(), tmp_path, "icebreaker", clock_mhz=500)


def test_does_not_fit_message_suggests_what_helps():
    """A design over the board: the message gives every resource over capacity; reuse factors
    only when LUTs or multiplier blocks are over (they do not shrink registers); for
    flip-flops, the bits of the layer outputs streamed between layers, the largest named."""
    from nnfab.boards.build import _not_fit_message
    from nnfab.gen.emit import manifest_of

    model = digits_model()
    t = target("icebreaker")
    rom = choose_rom_reuse_factors(model, max_multipliers=t.max_multipliers)
    manifest = manifest_of(model, Network(model, backend=rom_backend(model, rom)))
    fits = {"luts": t.luts, "flip_flops": t.flip_flops // 2, "dsps": t.dsps, "block_rams": 0}
    message = _not_fit_message(t, model, manifest, {**fits, "flip_flops": 6000}, rom,
                               "synthesis")
    widths = {row["name"]: row["output_shape"][-1] * int(row["output_format"].split("<")[1]
                                                         .split(",")[0])
              for row in manifest["layers"]}
    largest = max(widths, key=widths.get)
    assert message.startswith(f"Design 'digits-mlp' does not fit icebreaker (iCE40UP5K) after "
                              f"synthesis: 6,000 flip-flops of {t.flip_flops:,} ("), message
    assert "reuse factors (" not in message and "--max-multipliers" not in message
    assert f"reuse factors do not shrink: {sum(widths.values()):,} bits of layer outputs per " \
           f"transfer, each registered at both ends (largest: {largest} " in message, message
    # Nothing over capacity, but nextpnr found no legal placement (ad01 at 97 % flip-flops).
    full = {**fits, "luts": t.luts // 2, "flip_flops": t.flip_flops * 97 // 100}
    message = _not_fit_message(t, model, manifest, full, rom, "placement")
    assert message.startswith(f"Design 'digits-mlp' does not fit icebreaker (iCE40UP5K) after "
                              f"placement: no legal placement at {t.luts // 2:,} LUT4 of "
                              f"{t.luts:,} (50%), {full['flip_flops']:,} flip-flops of "
                              f"{t.flip_flops:,} (97%), "), message
    assert "reuse factors do not shrink" in message and "try ROM" not in message
    # The command-line option bounds every layer; ROM layers also get reuse factors.
    largest = max(row["multipliers"] for row in manifest["layers"])
    message = _not_fit_message(t, model, manifest, {**fits, "dsps": t.dsps + 4}, rom, "placement")
    assert f"{t.dsps + 4} multiplier blocks of {t.dsps} (150%, 4 over); multipliers by layer: " \
        in message and f"; try nnfab build --max-multipliers {max(1, int(largest / 1.875))} " \
        f"(per layer), or ROM reuse factors by layer: nnfab build --reuse-factor " \
        f"dense_1=" in message \
        and "flip-flops" not in message
    # Layers with constant weights only (every one here, without ROMs): the option alone.
    message = _not_fit_message(t, model, manifest, {**fits, "dsps": t.dsps + 4}, {}, "synthesis")
    assert "ROM reuse" not in message and message.endswith(
        f"; try nnfab build --max-multipliers {max(1, int(largest / 1.875))} (per layer)"), \
        message


def tflite_mlp(path):
    """A TFLite int8 MLP (12-8-5, FULLY_CONNECTED with RELU, then without) written to ``path``;
    returns ``path``."""
    from ..gen.importers.test_tflite_ops import _fc
    from ..gen.importers.test_tflite_synthetic import ModelWriter

    rng = np.random.default_rng(3)
    w = ModelWriter()
    x = w.tensor((1, 12), scales=np.float32(0.05), zero_points=-3)
    hidden = _fc(w, rng, x, 12, 8, 0.05, 0.08, 4, activation=1)
    y = _fc(w, rng, hidden, 8, 5, 0.08, 0.1, -2)
    return w.write(path, [x], [y])


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "hold_input"])
def test_tflite_model_on_rom_engines_streams_bit_exact(tmp_path, fused):
    """A TFLite MLP (FULLY_CONNECTED, requantize, twice) on the board backend: ROM dense layers
    with the output stage inside (``rom_dense``, as board builds make them), or each output
    stage at its layer's pace (one lane) reading the held output vector (``hold_input``);
    equal to the golden model under every stall pattern, its first latency and full-rate II
    the network's."""
    from nnfab.gen.importers.tflite import load_tflite
    from nnfab.hdl.output_stage import OutputStageEngine
    from nnfab.sim.golden.network import run_network

    from ..streams import check_stalls

    rng = np.random.default_rng(3)
    model = load_tflite(tflite_mlp(tmp_path / "mlp.tflite"))
    rom = choose_rom_reuse_factors(model, max_multipliers=2)
    assert rom == {"fully_connected_0": 48, "fully_connected_1": 40}
    if fused:
        model = fuse_rom_output_stages(model, rom)
        assert [layer.kind for layer in model.layers] == ["rom_dense", "rom_dense"]
    network = Network(model, backend=rom_backend(model, rom))
    stages = [engine for _, engine in network.engines if isinstance(engine, OutputStageEngine)]
    if fused:
        assert not stages and all(engine.output_stage is not None
                                  for _, engine in network.engines)
    else:
        assert len(stages) == 2 and all(s.hold_input and s.n_lanes == 1 for s in stages)
    codes = rng.integers(-128, 128, (12, 12))
    codes[0], codes[1] = -128, 127
    want = np.asarray(run_network(model, codes)).reshape(len(codes), -1)
    run = check_stalls(lambda: Network(model, backend=rom_backend(model, rom)), codes.tolist(),
                       want.tolist(), seed=5, latency=network.latency)
    assert run.first_latency == network.latency
    # The ROM layers keep their pace while a stage reads their held output (DenseRomEngine
    # runs free; its skid holds the output): the network's II, measured.
    assert {b - a for a, b in zip(run.accepted_at, run.accepted_at[1:])} == \
        {network.initiation_interval}


def test_pll_parameters():
    pll = ice40_pll(12, 24)
    assert pll.params == {"FEEDBACK_PATH": "SIMPLE", "DIVR": 0, "DIVF": 63, "DIVQ": 5,
                          "FILTER_RANGE": 1}
    assert pll.f_out_mhz == 24
    pll = ecp5_pll(25, 50)
    assert (pll.params["CLKI_DIV"], pll.params["CLKFB_DIV"], pll.params["CLKOP_DIV"]) == \
        (1, 2, 8)
    assert ecp5_pll(25, 62.5).f_out_mhz == 62.5


def test_rom_output_stage_fusion_rules():
    """A ROM layer takes its output stage inside only where the stage's one lane keeps its pace
    (``n_pe + 3 <= n_chunks``); elsewhere the stage stays a layer of its own (``hold_input``).
    The fused layer rejects anything else with one message."""
    from nnfab.errors import ModelError
    from nnfab.ir import RomDenseLayer

    from ..gen.test_kinds import int8_dense

    model = int8_dense()   # fc: 6 inputs, 4 outputs, then fc_requantize
    assert [layer.kind for layer in fuse_rom_output_stages(model, {"fc": 12}).layers] == \
        ["rom_dense"]
    # R = 6: six chunks, four PEs of one output each; 4 + 3 > 6.
    assert fuse_rom_output_stages(model, {"fc": 6}) is model
    assert fuse_rom_output_stages(model, {}) is model
    dense, stage = model.layers
    with pytest.raises(ModelError, match=r"^Layer 'fc': an output stage inside a ROM layer "
                                         r"needs n_pe \+ 3 <= n_chunks, not 4 \+ 3 > 6 at ROM "
                                         r"reuse factor 6$"):
        RomDenseLayer("fc", parts=(dense, stage), rom_reuse_factor=6)
    with pytest.raises(ModelError, match=r"^Layer 'fc': ROM reuse factor must be a divisor of "
                                         r"n_in 6 times a divisor of n_out 4 \(one of 1, 2, 3, "
                                         r"4, 6, 8, 12, 24\), not 5$"):
        RomDenseLayer("fc", parts=(dense, stage), rom_reuse_factor=5)
    with pytest.raises(ModelError, match=r"^Layer 'fc': a ROM dense layer fuses dense "
                                         r"output_stage, not output_stage dense$"):
        RomDenseLayer("fc", parts=(stage, dense), rom_reuse_factor=12)


def test_rom_reuse_choice():
    model = digits_model()
    assert choose_rom_reuse_factors(model, max_multipliers=4) == {"dense_1": 512,
                                                                  "dense_2": 320}
    assert choose_rom_reuse_factors(model, max_multipliers=64) == {"dense_1": 32,
                                                                   "dense_2": 32}
    with pytest.raises(BoardError, match=r"^Multiplier budget must be a positive integer, "
                                         r"not 0$"):
        choose_rom_reuse_factors(model, max_multipliers=0)
    with pytest.raises(BoardError, match=r"^Layer 'relu_1' is not a dense layer of model "
                                         r"'digits-mlp' \(dense layers: dense_1, dense_2\)$"):
        Network(model, backend=rom_backend(model, {"relu_1": 2}))


def test_given_rom_reuse_factors():
    """``nnfab build --board --reuse-factor``: one for every ROM layer (the largest each takes
    up to it), or by layer name (the others chosen from the budget), checked against what a ROM
    layer takes."""
    model = digits_model()
    chosen = choose_rom_reuse_factors(model, max_multipliers=4)
    assert given_rom_reuse_factors(model, None, max_multipliers=4) == chosen
    assert given_rom_reuse_factors(model, 100, max_multipliers=4) == {"dense_1": 64,
                                                                      "dense_2": 80}
    assert given_rom_reuse_factors(model, {"dense_2": 80}, max_multipliers=4) == {
        **chosen, "dense_2": 80}
    with pytest.raises(BoardError) as error:
        given_rom_reuse_factors(model, {"relu_1": 2}, max_multipliers=4)
    assert str(error.value) == (
        "Reuse factor given for 'relu_1', which is not a dense layer with its weights in block "
        "RAM in model 'digits-mlp' (those are: dense_1, dense_2); a dense layer built as a "
        "shift-add adder graph (weights of at most 3 signed digits, at reuse factor 1) takes "
        "none: --no-fuse keeps every dense layer in block RAM")
    with pytest.raises(BoardError) as error:
        given_rom_reuse_factors(model, {"dense_2": 7}, max_multipliers=4)
    assert str(error.value) == (
        "Layer 'dense_2': a reuse factor with its weights in block RAM must be a divisor of "
        "n_in 32 times a divisor of n_out 10 (one of 1, 2, 4, 5, 8, 10, 16, 20, 32, 40, 64, "
        "80, 160, 320), not 7")


def test_board_reuse_factors_from_the_command_line(tmp_path, monkeypatch):
    """What a user runs: ``nnfab build --board icebreaker --reuse-factor ...`` reaches the ROM
    layers (the option was ignored there before), by layer or for all; a reuse factor a ROM
    layer cannot take is one line, exit 1, nothing written. The build stops before synthesis
    here (the bitstream tests below run the tools)."""
    from click.testing import CliRunner

    import nnfab.boards.build as board_build
    from nnfab.cli import main

    seen = []

    def stop(model, rom, **kwargs):
        seen.append(rom)
        raise BoardError("stopped before synthesis")

    monkeypatch.setattr(board_build, "board_network", stop)
    out = tmp_path / "out"
    for value, expected in (("dense_2=80", {"dense_1": 512, "dense_2": 80}),
                            ("100", {"dense_1": 64, "dense_2": 80})):
        result = CliRunner().invoke(main, ["build", "--example", "digits-mlp", "--board",
                                           "icebreaker", "--reuse-factor", value, "-o",
                                           str(out)])
        assert result.exit_code == 1 and result.output.endswith(
            "Error: stopped before synthesis\n"), result.output
        assert seen[-1] == expected
    result = CliRunner().invoke(main, ["build", "--example", "digits-mlp", "--board",
                                       "icebreaker", "--reuse-factor", "dense_2=7", "-o",
                                       str(out)])
    assert result.exit_code == 1
    assert result.output.endswith("not 7\n") and "Error: Layer 'dense_2': " in result.output
    assert not out.exists()


@pytest.mark.parametrize("board,clock_mhz,primitive", [
    ("icebreaker", 24, "SB_PLL40_PAD"), ("icebreaker", 12, None),
    ("ulx3s-85f", 50, "EHXPLLL"), ("ulx3s-85f", 25, None)])
def test_build_plan(board, clock_mhz, primitive):
    """The platform's build plan (no tool runs): PLL when needed, the UART pins, the clock
    constraint."""
    model = digits_model()
    t = target(board)
    network = Network(model, backend=rom_backend(model, choose_rom_reuse_factors(
        model, max_multipliers=t.max_multipliers)))
    top = BoardTop(network, target=t, clock_mhz=clock_mhz, baud=115200)
    plan = t.platform().build(top, name="top", do_build=False)
    rtlil = plan.files["top.il"]
    if primitive:
        assert f"cell \\{primitive}" in rtlil
    else:
        assert "PLL" not in rtlil
    constraints = plan.files["top.pcf" if t.family == "ice40" else "top.lpf"]
    assert "uart_0__rx" in constraints and "uart_0__tx" in constraints


def _print_report(report):
    print(json.dumps({k: report[k] for k in ("board", "resources", "clock",
                                              "inferences_per_second", "latency_us",
                                              "reuse_factors", "tool_seconds")}, indent=1))


@pytest.mark.slow
@pytest.mark.parametrize("board", ["icebreaker", "ulx3s-85f"])
def test_digits_mlp_bitstream(board, tmp_path):
    result = build_for_board(digits_model(), tmp_path, board)
    report = json.loads((tmp_path / "report.json").read_text())
    _print_report(report)
    assert result.bitstream.stat().st_size > 10_000
    assert report["resources"]["luts"]["used"] <= report["resources"]["luts"]["available"]
    assert report["clock"]["meets_timing"], report["clock"]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["host_link"]["request_bytes"] == 41
    text = (tmp_path / "report.md").read_text()
    assert text.startswith("# digits-mlp on ")
    # The delay model's estimate beside nextpnr's Fmax, from the ROM layers' stages: 38.8 MHz
    # against 32.0-32.9 on the iCEBreaker (dense_1's cast), 68.7 against 68.5-69.3 on the ULX3S.
    clock = report["clock"]
    estimate = clock["estimated_f_max_mhz"]
    assert clock["estimated_critical_layer"] == (
        "dense_1 cast" if board == "icebreaker" else "dense_1 rom_multiply")
    assert 0.8 <= estimate / clock["fmax_mhz"] <= 1.3, clock
    assert f"delay model of the layers' datapaths: {estimate} MHz" in text
    assert all(row["estimated_f_max_mhz"] >= estimate for row in manifest["layers"]
               if row.get("engine") == "DenseRomEngine")


def small_cnn(path=None):
    """An 8x8x1 CNN (convolution with 4 filters and ReLU, max pool, dense, argmax) that fits
    the iCEBreaker; written as a native model when ``path`` is given."""
    from nnfab.fixed import FixedFormat
    from nnfab.gen.native import save_native

    from ..hdl.test_stalls import Builder

    model = Builder(7, (8, 8, 1), FixedFormat(8, 3)).conv(4, activation="relu").pool("max") \
        .flatten().dense(5).argmax().model()
    if path is not None:
        save_native(model, path)
    return model


def test_board_plan_of_a_cnn():
    """Issue 15, bug 3: a pixel-streaming network on a board backend has its timing (the
    board network used to skip what the timing simulation needs) and a build plan."""
    model = small_cnn()
    t = target("icebreaker")
    network = Network(model, backend=rom_backend(model, choose_rom_reuse_factors(
        model, max_multipliers=t.max_multipliers)))
    assert network.latency > 0 and network.streams_pixels
    top = BoardTop(network, target=t, clock_mhz=12, baud=115200,
                   input_transfers=64, output_transfers=1)
    assert "top.il" in t.platform().build(top, name="top", do_build=False).files


@pytest.mark.slow
def test_a_board_network_too_large_for_amaranths_simulator_is_timed_on_verilator(monkeypatch):
    """A board build of a network beyond ``MAX_SIMULATED_LAYER_CYCLES`` (ResNet-8 would run
    for hours in Amaranth's simulator before synthesis) takes its latency from a Verilator run
    of the network alone: the latency Amaranth's simulator gives, no Amaranth simulation, and
    the board top still elaborates around the same network."""
    import nnfab.gen.assemble as assemble
    import nnfab.gen.timing as timing
    from nnfab.boards.build import board_network

    from ..gen.test_graph import residual_cnn

    model = residual_cnn()
    t = target("icebreaker")
    rom = choose_rom_reuse_factors(model, max_multipliers=t.max_multipliers)
    expected = board_network(model, rom).latency  # small enough: Amaranth's simulator
    monkeypatch.setattr(assemble, "MAX_SIMULATED_LAYER_CYCLES", 0)

    def no_simulation(*args, **kwargs):
        raise AssertionError("simulated in Amaranth")

    monkeypatch.setattr(timing, "simulate_timing", no_simulation)
    network = board_network(model, rom)
    assert network.simulation_too_slow and network.latency == expected
    top = BoardTop(network, target=t, clock_mhz=12, baud=115200,
                   input_transfers=int(np.prod(model.input_shape[:-1])), output_transfers=1)
    assert "top.il" in t.platform().build(top, name="top", do_build=False).files


def test_board_network_splits_rom_casts_only_where_the_clock_needs_it():
    """The board's clock reaches the ROM engines: the iCEBreaker digits MLP keeps one-stage
    output casts at 12 and 24 MHz (latency 846, as every earlier build) and registers the
    rounded accumulators at 40 MHz (the cast is 25.8 ns with its registers on iCE40): each ROM
    layer one cycle more, and the network simulated at that latency streams the same codes."""
    from nnfab.boards.build import board_network
    from nnfab.sim.golden.network import run_network

    from ..streams import check_stalls

    model, t = digits_model(), target("icebreaker")
    rom = given_rom_reuse_factors(model, None, max_multipliers=t.max_multipliers)
    for clock_mhz, split, latency in ((12, False, 846), (24, False, 846), (40, True, 848)):
        network = board_network(model, rom, clock_mhz=clock_mhz, family=t.family)
        assert [e.split_cast for _, e in network.engines if hasattr(e, "split_cast")] == \
            [split, split]
        assert network.latency == latency
    rng = np.random.default_rng(40)
    fmt = model.input_format
    x = rng.integers(fmt.min_code, fmt.max_code + 1, (3, 64))
    x[0], x[1] = fmt.min_code, fmt.max_code
    want = np.asarray(run_network(model, x)).reshape(len(x), -1)
    run = check_stalls(lambda: Network(model, backend=rom_backend(
        model, rom, clock_mhz=40, family=t.family)), x.tolist(), want.tolist(), seed=40,
        latency=848)
    assert run.first_latency == 848


@pytest.mark.slow
def test_cnn_bitstream_from_the_command_line(tmp_path):
    """What a user runs: ``nnfab build m.json --board icebreaker`` of a CNN gives a bitstream
    and a report."""
    from click.testing import CliRunner

    from nnfab.cli import main

    small_cnn(tmp_path / "cnn.json")
    result = CliRunner().invoke(main, ["build", str(tmp_path / "cnn.json"), "--board",
                                       "icebreaker", "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert (tmp_path / "out" / report["bitstream"]).stat().st_size > 10_000
    assert report["resources"]["luts"]["used"] <= report["resources"]["luts"]["available"]
    assert (tmp_path / "out" / "report.md").read_text().startswith("# stalls on icebreaker")


@pytest.mark.slow
def test_tflite_mlp_bitstream_with_output_stages_in_rom_layers(tmp_path):
    """What a user runs: ``nnfab build mlp.tflite --board ulx3s-85f --max-multipliers 2`` of
    an int8 TFLite MLP. The option bounds the ROM layers too, which then take enough cycles for
    the output stage to go inside (as ad01's layers do at the board's budget): a bitstream
    with ``rom_dense`` layers that meets timing; the saved model.json holds the separate
    layers, which compute the same codes. (At the defaults this small MLP keeps separate
    stages: its ROM layers take 6 and 5 cycles.)"""
    from click.testing import CliRunner

    from nnfab.cli import main
    from nnfab.gen.importers.tflite import load_tflite
    from nnfab.gen.native import load_native
    from nnfab.sim.golden.network import run_network

    path = tflite_mlp(tmp_path / "mlp.tflite")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["build", str(path), "--board", "ulx3s-85f",
                                       "--max-multipliers", "2", "-o", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    _print_report(report)
    assert (out / report["bitstream"]).stat().st_size > 10_000
    assert report["clock"]["meets_timing"], report["clock"]
    manifest = json.loads((out / "manifest.json").read_text())
    rows = [row for row in manifest["layers"] if row["kind"] == "rom_dense"]
    assert [row["fused_layers"] for row in rows] == [
        ["fully_connected_0", "fully_connected_0_requantize"],
        ["fully_connected_1", "fully_connected_1_requantize"]]
    assert all(row["engine"] == "DenseRomEngine" for row in rows)
    assert report["clock"]["estimated_f_max_mhz"] == min(
        row["estimated_f_max_mhz"] for row in rows)
    assert set(report["reuse_factors"]) == {"fully_connected_0", "fully_connected_1"}
    assert manifest["latency"] == report["latency_cycles"]
    saved = load_native(out / "model.json")
    assert [layer.kind for layer in saved.layers] == ["dense", "output_stage"] * 2
    x = np.random.default_rng(4).integers(-128, 128, (50, 12))
    assert np.array_equal(run_network(saved, x), run_network(load_tflite(path), x))

