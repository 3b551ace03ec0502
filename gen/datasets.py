"""Labelled data sets that ship inside installed packages or are generated from a seed (no
download), with the fixed splits the bundled examples were trained and verified on."""

import numpy as np

from nnfab.errors import ModelError

__all__ = ["DATASETS", "load_dataset", "sine_frequency"]

#: Held-out images of scikit-learn's digits: 360 of 1,797, split with this seed.
DIGITS_TEST_SIZE = 360
DIGITS_SPLIT_SEED = 0

#: The sine-frequency sequences: steps, sequences per split and the seed of each split.
SINE_STEPS = 16
SINE_SIZES = {"train": 2000, "test": 400}
SINE_SEEDS = {"train": 1, "test": 2}
#: Frequency threshold (cycles per step) and the band around it left out of both splits.
SINE_THRESHOLD = 0.12
SINE_GAP, SINE_SPREAD = 0.0, 0.08
SINE_NOISE = 0.3

DATASETS = ("digits", "sine-frequency")


def load_dataset(name, split="test", *, image=False):
    """``(x, labels)`` of a bundled data set as float64.

    ``digits``: scikit-learn's 8x8 digit images, pixels 0..16 scaled to 0..1 (exact in
    ``ufixed<5,1>``); ``split`` is ``"train"`` (1,437 images) or ``"test"`` (360). ``x`` is
    ``(n, 64)``, or ``(n, 8, 8, 1)`` with ``image``.

    ``sine-frequency``: noisy sines of :data:`SINE_STEPS` samples, ``x`` of shape
    ``(n, SINE_STEPS, 1)``; label 1 when the frequency is above :data:`SINE_THRESHOLD` cycles
    per step (see :func:`sine_frequency`). ``split`` is ``"train"`` (2,000 sequences) or
    ``"test"`` (400), each from its own seed; ``image`` is ignored.

    Raises
    ------
    ModelError
        If ``name`` or ``split`` is unknown.
    """
    if name not in DATASETS:
        raise ModelError(f"Unknown data set {name!r}; bundled: {', '.join(DATASETS)}")
    if split not in ("train", "test"):
        raise ModelError(f"Unknown split {split!r}; use 'train' or 'test'")
    if name == "sine-frequency":
        return sine_frequency(SINE_SIZES[split], seed=SINE_SEEDS[split])
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


def sine_frequency(n, *, seed, steps=SINE_STEPS):
    """``(x, labels)``: ``n`` sequences ``a sin(2 pi f t + phi) + noise``, ``t = 0..steps-1``,
    shape ``(n, steps, 1)``, with amplitude ``a`` uniform in [0.5, 1], phase uniform,
    Gaussian noise of deviation :data:`SINE_NOISE`, and frequency ``f`` (cycles per step) at
    :data:`SINE_THRESHOLD` plus or minus :data:`SINE_GAP` to ``SINE_GAP + SINE_SPREAD``;
    label ``int(f > SINE_THRESHOLD)``, balanced on average. Sequences near the threshold are
    hard by design: the noise blurs frequencies that close over 16 samples."""
    rng = np.random.default_rng(seed)
    above = rng.random(n) < 0.5
    f = SINE_THRESHOLD + np.where(above, 1, -1) * rng.uniform(SINE_GAP, SINE_GAP + SINE_SPREAD,
                                                              n)
    amplitude, phase = rng.uniform(0.5, 1.0, n), rng.uniform(0, 2 * np.pi, n)
    t = np.arange(steps)
    x = amplitude[:, None] * np.sin(2 * np.pi * f[:, None] * t + phase[:, None])
    x += rng.normal(0, SINE_NOISE, x.shape)
    return x[..., None], above.astype(np.int64)
