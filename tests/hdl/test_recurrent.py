"""RecurrentEngine (SimpleRNN, LSTM, GRU) against the golden model, bit for bit, at full rate
and under idle and back-pressure; latency and II per step measured."""

import dataclasses

import numpy as np
import pytest

from nnfab.fixed import FixedFormat
from nnfab.hdl.recurrent import RecurrentEngine
from nnfab.recurrent import N_GATES, RecurrentSpec
from nnfab.sim.golden.recurrent import recurrent
from nnfab.tables import sigmoid_table, tanh_table

from ..streams import check_stalls, codes, run_stream

#: Small tables (64 entries, over [-4, 4) and [-2, 2)) keep elaboration quick.
TABLES = dict(
    sigmoid_table=sigmoid_table(table_size=64, table_format=FixedFormat(10, 1, rounding="RND"),
                                input_range=4),
    tanh_table=tanh_table(table_size=64, table_format=FixedFormat(10, 2, rounding="RND"),
                          input_range=2))


def random_spec(cell, rng, *, n_in=3, units=4, n_steps=5, return_sequences=True,
                width=6, overflow="SAT", reset_after=True):
    """A small spec with random codes: formats narrow enough that rounding and saturation
    happen at every cast."""
    rows = N_GATES[cell] * units
    w_fmt, u_fmt = FixedFormat(width, 1), FixedFormat(width - 1, 0)
    b_fmt = FixedFormat(width, 2)
    formats = dict(
        input_format=FixedFormat(width, 2), weight_format=w_fmt, recurrent_weight_format=u_fmt,
        bias_format=b_fmt, preact_format=FixedFormat(width + 2, 3, rounding="RND",
                                                     overflow=overflow),
        state_format=FixedFormat(width, 1, rounding="RND_CONV", overflow=overflow))
    if cell != "simple_rnn":
        formats.update(gate_format=FixedFormat(width, 0, signed=False, rounding="RND"),
                       candidate_format=FixedFormat(width + 1, 1, rounding="RND"))
    if not reset_after:  # r * h cast narrow: rounding and saturation at that cast too
        formats.update(reset_after=False, reset_product_format=FixedFormat(
            width - 1, 1, rounding="RND", overflow=overflow))
    if cell == "lstm":
        formats.update(cell_format=FixedFormat(width + 1, 2, rounding="RND",
                                               overflow=overflow))

    def codes(fmt, shape):
        return rng.integers(fmt.min_code, fmt.max_code + 1, shape)

    return RecurrentSpec(
        cell, codes(w_fmt, (rows, n_in)), codes(u_fmt, (rows, units)), codes(b_fmt, rows),
        n_steps, return_sequences,
        recurrent_biases=codes(b_fmt, rows) if cell == "gru" and reset_after else None,
        **formats, **TABLES)


def sequences(spec, rng, n):
    """``n`` sequences: the extremes of the input format first, then random codes."""
    fmt = spec.input_format
    x = rng.integers(fmt.min_code, fmt.max_code + 1, (n,) + spec.input_shape)
    x[0], x[1] = fmt.max_code, fmt.min_code
    return x


def stimulus_and_expected(spec, x):
    expected = recurrent(x, spec)
    steps = [list(map(int, step)) for seq in x for step in seq]
    rows = expected.reshape(-1, spec.units)
    return steps, [list(map(int, row)) for row in rows]


@pytest.mark.parametrize("cell,return_sequences,reuse,reset_after,lanes", [
    ("simple_rnn", True, 1, True, None), ("simple_rnn", True, 7, True, None),
    ("simple_rnn", False, 1, True, 2), ("simple_rnn", True, 1, True, 3),
    ("lstm", True, 1, True, None), ("lstm", False, 7, True, None), ("lstm", True, 1, True, 2),
    ("lstm", False, 1, True, 3),
    ("gru", True, 1, True, None), ("gru", False, 1, True, None), ("gru", False, 7, True, None),
    ("gru", True, 1, True, 2), ("gru", True, 1, True, 3),
    ("gru", True, 1, False, None), ("gru", False, 7, False, None), ("gru", True, 1, False, 2),
    ("gru", False, 1, False, 3),
    # Reuse factors above n_in + units = 7: the pre-activations in 4, 2, 4 and 3 groups.
    ("simple_rnn", True, 28, True, None), ("lstm", True, 14, True, None),
    ("gru", False, 28, True, None), ("gru", True, 21, False, None)])
def test_matches_golden_under_stalls(cell, return_sequences, reuse, reset_after, lanes):
    """Units 4: ``lanes`` None is the default (all 4 at R = 1, 1 at R = 7), 2 divides the
    units, 3 does not (a second group of one unit); fewer sequences for these cases keep the
    suite quick."""
    seed = 19 + len(cell) + reuse + 5 * (not reset_after) + 3 * (lanes or 0)
    rng = np.random.default_rng(seed)
    spec = random_spec(cell, rng, return_sequences=return_sequences, reset_after=reset_after)
    steps, expected = stimulus_and_expected(spec, sequences(spec, rng, 6 if lanes is None else 3))
    make = lambda: RecurrentEngine(spec, reuse_factor=reuse, cell_lanes=lanes)  # noqa: E731
    full = check_stalls(make, steps, expected, seed=seed, patterns=("random", "long"))
    engine = make()
    ii = engine.initiation_interval
    assert engine.cell_lanes == (lanes or -(-spec.units // reuse))
    assert ii == engine.n_passes * (engine.dense.latency + -(-spec.units // engine.cell_lanes))
    assert np.diff(full.accepted_at).tolist() == [ii] * (len(steps) - 1), f"seed {seed}"
    if return_sequences:
        assert [b - a for a, b in zip(full.accepted_at, full.produced_at)] == \
            [engine.latency] * len(steps)
    else:
        firsts = full.accepted_at[::spec.n_steps]
        assert [b - a for a, b in zip(firsts, full.produced_at)] == \
            [engine.sequence_latency] * len(expected)


def test_wide_saturating_state_matches_golden():
    """Large weights drive every pre-activation and state to saturation (WRAP elsewhere)."""
    rng = np.random.default_rng(5)
    spec = random_spec("lstm", rng, width=5, overflow="WRAP")
    steps, expected = stimulus_and_expected(spec, sequences(spec, rng, 4))
    run = run_stream(RecurrentEngine(spec), steps, n_outputs=len(expected))
    assert [codes(o) for o in run.outputs] == expected


def test_rejects_a_spec_of_another_kind():
    with pytest.raises(TypeError, match="^Layer must be a RecurrentSpec, not 3$"):
        RecurrentEngine(3)


@pytest.mark.parametrize("lanes", [0, 5, 1.5, True])
def test_rejects_impossible_cell_lanes(lanes):
    spec = random_spec("lstm", np.random.default_rng(1))
    with pytest.raises(ValueError, match=r"^cell_lanes must be an integer from 1 to units 4 "
                       rf"\(units updated per cycle\), not {lanes!r}$"):
        RecurrentEngine(spec, cell_lanes=lanes)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_hls4ml_arithmetic_matches_golden(cell):
    """hls4ml's options (:mod:`nnfab.gen.hls4ml.recurrent`): a wrapping accumulator that every
    product and the bias are cast to, tables indexed toward zero and, GRU, ``r * p_hh`` cast
    to a narrow saturating format on its own (which changes the result here)."""
    seed = 31 + len(cell)
    rng = np.random.default_rng(seed)
    spec = random_spec(cell, rng, units=3, n_steps=4)
    tables = {key: dataclasses.replace(table, index_rounding="zero")
              for key, table in TABLES.items()}
    extra = dict(accumulator_format=FixedFormat(7, 2, rounding="RND"), **tables)
    if cell == "gru":
        extra["reset_product_format"] = FixedFormat(5, 1, rounding="RND", overflow="SAT")
    hls = dataclasses.replace(spec, **extra)
    x = sequences(hls, rng, 8)
    assert not np.array_equal(recurrent(x, hls), recurrent(x, spec))
    if cell == "gru":
        plain = dataclasses.replace(hls, reset_product_format=None)
        assert not np.array_equal(recurrent(x, hls), recurrent(x, plain))
    steps, expected = stimulus_and_expected(hls, x)
    check_stalls(lambda: RecurrentEngine(hls), steps, expected, seed=seed,
                 patterns=("random",))
