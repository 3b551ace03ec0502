"""The bundled data sets: fixed splits, shapes and labels, and unknown names refused."""

import numpy as np
import pytest

from nnfab.errors import ModelError
from nnfab.gen.datasets import SINE_STEPS, load_dataset, sine_frequency


def test_sine_frequency_splits_are_fixed_and_distinct():
    x, y = load_dataset("sine-frequency", "train")
    x_test, y_test = load_dataset("sine-frequency", "test")
    assert x.shape == (2000, SINE_STEPS, 1) and x_test.shape == (400, SINE_STEPS, 1)
    assert set(y.tolist()) == {0, 1} and 0.4 < y.mean() < 0.6
    again, labels = load_dataset("sine-frequency", "test")
    assert np.array_equal(again, x_test) and np.array_equal(labels, y_test)
    assert not np.array_equal(x[:400], x_test)


def test_sine_frequency_labels_follow_the_frequency(monkeypatch):
    """Without noise, a higher frequency crosses zero more often: the zero crossings of the
    two classes do not overlap much over 64 samples."""
    import nnfab.gen.datasets as datasets

    monkeypatch.setattr(datasets, "SINE_NOISE", 0.0)
    x, y = sine_frequency(500, seed=5, steps=64)
    crossings = np.sum(np.diff(np.sign(x[:, :, 0]), axis=1) != 0, axis=1)
    assert crossings[y == 1].min() >= crossings[y == 0].max() - 2
    assert crossings[y == 1].mean() > crossings[y == 0].mean() + 3


@pytest.mark.parametrize("name,split,message", [
    ("mnist", "test", "Unknown data set 'mnist'; bundled: digits, sine-frequency"),
    ("sine-frequency", "val", "Unknown split 'val'; use 'train' or 'test'"),
])
def test_unknown_data_set_or_split(name, split, message):
    with pytest.raises(ModelError, match=message):
        load_dataset(name, split)
