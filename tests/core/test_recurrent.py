"""RecurrentSpec's checks (one message each) and the golden model's numerics: with fine formats
and tables the golden codes of SimpleRNN, LSTM and GRU follow Keras' float equations (the
importer's FloatRecurrent, itself checked against an independent reference), so the gate
order and the cell updates are Keras'."""

import numpy as np
import pytest

from nnfab.casts import to_float
from nnfab.fixed import FixedFormat
from nnfab.ir import FloatRecurrent
from nnfab.recurrent import N_GATES, RecurrentSpec
from nnfab.sim.golden.recurrent import recurrent
from nnfab.tables import sigmoid_table, tanh_table

FINE = FixedFormat(24, 8, rounding="RND", overflow="SAT")
TABLES = dict(sigmoid_table=sigmoid_table(table_size=1 << 14, table_format=FINE),
              tanh_table=tanh_table(table_size=1 << 14, table_format=FINE))


@pytest.mark.parametrize("cell,reset_after", [("simple_rnn", True), ("lstm", True),
                                              ("gru", True), ("gru", False)])
def test_golden_follows_keras_equations_with_fine_formats(cell, reset_after):
    rng = np.random.default_rng(3)
    rows, units, n_in, steps = N_GATES[cell] * 4, 4, 3, 6
    w, u = rng.normal(0, 0.5, (rows, n_in)), rng.normal(0, 0.5, (rows, units))
    b = rng.normal(0, 0.3, rows)
    rb = rng.normal(0, 0.3, rows) if cell == "gru" and reset_after else None
    fw = FixedFormat(16, 2)
    codes = [np.round(v * 2**14).astype(np.int64) if v is not None else None
             for v in (w, u, b, rb)]
    extra = {} if cell == "simple_rnn" else dict(gate_format=FINE, candidate_format=FINE)
    if cell == "lstm":
        extra["cell_format"] = FINE
    if not reset_after:
        extra.update(reset_after=False, reset_product_format=FINE)
    spec = RecurrentSpec(cell, codes[0], codes[1], codes[2], steps, True, FINE, fw, fw, FINE,
                         FINE, bias_format=fw, recurrent_biases=codes[3], **extra, **TABLES)
    x = np.round(rng.normal(size=(20, steps, n_in)) * 2**16).astype(np.int64)
    got = to_float(recurrent(x, spec), FINE)
    floats = [None if c is None else c / 2**14 for c in codes]
    want = FloatRecurrent("rnn", cell, *floats, return_sequences=True,
                          reset_after=reset_after).forward(x / 2**16)
    # Left-edge table samples 2**-10 apart (slope <= 1) dominate: a few 1e-3 over 6 steps.
    assert np.max(np.abs(got - want)) < 6e-3


def _spec(**changes):
    f = FixedFormat(8, 2)
    args = dict(cell="lstm", weights=np.zeros((8, 3), dtype=int),
                recurrent_weights=np.zeros((8, 2), dtype=int), biases=None, n_steps=4,
                return_sequences=False, input_format=f, weight_format=f,
                recurrent_weight_format=f, preact_format=f, state_format=f, gate_format=f,
                candidate_format=f, cell_format=f)
    return RecurrentSpec(**{**args, **changes})


@pytest.mark.parametrize("changes,error,message", [
    (dict(cell="rnn"), ValueError,
     "Cell must be one of 'simple_rnn', 'lstm', 'gru', not 'rnn'"),
    (dict(n_steps=0), ValueError, "Number of steps must be a positive integer, not 0"),
    (dict(return_sequences=1), TypeError, "Return sequences must be a bool, not 1"),
    (dict(cell_format=None), TypeError,
     "Cell format of a lstm cell must be a FixedFormat, not None"),
    (dict(weights=np.zeros((6, 3), dtype=int)), ValueError,
     "Weights of a lstm cell must be a non-empty (4 * units, n_in) matrix, not of shape "
     "(6, 3)"),
    (dict(recurrent_weights=np.zeros((8, 3), dtype=int)), ValueError,
     "Recurrent weight must have shape (8, 2), not (8, 3)"),
    (dict(biases=np.zeros(8, dtype=int)), ValueError, "Bias format must be given with biases"),
    (dict(recurrent_biases=np.zeros(8, dtype=int), bias_format=FixedFormat(8, 2)), ValueError,
     "Recurrent biases are GRU's, not a lstm cell's"),
    (dict(activation="softmax"), ValueError, "Activation: Activation kind must be one of "),
    (dict(recurrent_activation="sigmoid", sigmoid_table=tanh_table(table_size=16)),
     ValueError, "Recurrent activation: Table kind must be 'sigmoid', not 'tanh'"),
    (dict(feedback_format="fixed<8,2>"), TypeError,
     "Feedback format must be a FixedFormat or None, not 'fixed<8,2>'"),
    (dict(cell="gru", weights=np.zeros((6, 3), dtype=int),
          recurrent_weights=np.zeros((6, 2), dtype=int), cell_format=None,
          cell_feedback_format=FixedFormat(8, 2)), ValueError,
     "Cell feedback format is LSTM's, not a gru cell's"),
    (dict(reset_after=False), ValueError, "Reset after is GRU's, not a lstm cell's"),
    (dict(reset_after=0), TypeError, "Reset after must be a bool, not 0"),
    (dict(cell="gru", weights=np.zeros((6, 3), dtype=int),
          recurrent_weights=np.zeros((6, 2), dtype=int), cell_format=None, reset_after=False,
          recurrent_biases=np.zeros(6, dtype=int), bias_format=FixedFormat(8, 2)), ValueError,
     "Recurrent biases are a GRU's with reset_after, not without"),
])
def test_spec_checks(changes, error, message):
    with pytest.raises(error) as info:
        _spec(**changes)
    assert str(info.value).startswith(message), str(info.value)
