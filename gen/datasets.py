"""Labelled data sets that ship inside installed packages (no download), with the fixed splits
the bundled examples were trained and verified on."""

import numpy as np

from nnfab.errors import ModelError

__all__ = ["DATASETS", "load_dataset"]

#: Held-out images of scikit-learn's digits: 360 of 1,797, split with this seed.
DIGITS_TEST_SIZE = 360
DIGITS_SPLIT_SEED = 0

DATASETS = ("digits",)


def load_dataset(name, split="test", *, image=False):
    """``(x, labels)`` of a bundled data set as float64.

    ``digits``: scikit-learn's 8x8 digit images, pixels 0..16 scaled to 0..1 (exact in
    ``ufixed<5,1>``); ``split`` is ``"train"`` (1,437 images) or ``"test"`` (360). ``x`` is
    ``(n, 64)``, or ``(n, 8, 8, 1)`` with ``image``.

    Raises
    ------
    ModelError
        If ``name`` or ``split`` is unknown.
    """
    if name != "digits":
        raise ModelError(f"Unknown data set {name!r}; bundled: {', '.join(DATASETS)}")
    if split not in ("train", "test"):
        raise ModelError(f"Unknown split {split!r}; use 'train' or 'test'")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.data.astype(np.float64) / 16.0
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=DIGITS_TEST_SIZE, random_state=DIGITS_SPLIT_SEED,
        stratify=digits.target)
    x, y = (x_train, y_train) if split == "train" else (x_test, y_test)
    if image:
        x = x.reshape(-1, 8, 8, 1)
    return x, y.astype(np.int64)
