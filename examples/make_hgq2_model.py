"""Make the HGQ2 test models and their framework vectors (``tests/data/hgq2/``).

Two small HGQ2 models on Keras 3, trained briefly on seeded data, saved as Keras 3 ``.keras``
files, with every layer's output from HGQ2's own forward pass:

- ``hgq2_mlp.keras``: 16 -> QDense(32, relu) -> QDense(16, relu) -> QDense(5) with an output
  quantizer; per-element bit widths on inputs, kernels, biases and the output, and one quantizer
  mode per layer (KIF/KBI; RND, TRN, RND_CONV, RND_INF; WRAP, SAT, SAT_SYM);
- ``hgq2_cnn.keras``: (6, 6, 2) -> QConv2D(4, 3x3, relu) with one input format -> Flatten ->
  a ``Quantizer`` layer (per-element KBI, RND_ZERO, SAT) -> QDense(5) without input quantizer.

After training, the bit widths (HGQ2's ``k``, ``i``, ``f`` or ``b`` variables) are set from a
seeded generator, so that widths differ element by element, some lanes and weights have zero
bits, and some inputs wrap or saturate; HGQ2 reads them back from the file as any trained
widths.

``NAME_layers.npz`` holds ``inputs`` (float32, exact in the common format of the first input
quantizer's lanes, which is the input format nnfab gives the model), and for every Keras layer
``L`` its output ``L`` and the output of its input quantizer ``L_iq`` (if it has one), from the
real HGQ2 forward pass (inference mode), as float32. The script checks that each layer's
float32 sums were exact (equal to a float64 recomputation from the quantized kernel, bias and
inputs), so the vectors are HGQ2's arithmetic and not float32 rounding.

Rerun (about a minute on a CPU; needs no GPU, writes the five files beside the tests)::

    python3 -m venv /tmp/hgq2env
    /tmp/hgq2env/bin/pip install hgq2 keras "jax[cpu]"    # hgq2 0.2.0, keras 3.15, jax 0.10
    KERAS_BACKEND=jax /tmp/hgq2env/bin/python examples/make_hgq2_model.py [OUTPUT_FOLDER]

``hgq2_quantizers.npz`` holds HGQ2's datalane quantizer (``kif``) applied to ``x`` (every
multiple of 2^-5 in [-6, 6], ties of every lane's LSB included) under each rounding and overflow
mode nnfab imports: ``k``, ``i``, ``f`` (one value per lane, shape (8,); the last lane has zero
bits) and ``ROUND__OVERFLOW`` (shape (len(x), 8)).

The nnfab tests read the files only (no Keras, no HGQ2 at test time).
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from hgq.config import QuantizerConfig  # noqa: E402
from hgq.layers import QConv2D, QDense  # noqa: E402
from hgq.quantizer import Quantizer  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "hgq2"
SEED = 2025


def _mlp():
    per_tensor = dict(heterogeneous_axis=(), homogeneous_axis=None)
    inp = keras.Input((16,), name="x")
    x = QDense(32, activation="relu", name="fc1")(inp)  # HGQ2 defaults: KIF RND WRAP inputs
    x = QDense(16, activation="relu", name="fc2",
               iq_conf=QuantizerConfig("kbi", "datalane", round_mode="TRN", overflow_mode="SAT"),
               kq_conf=QuantizerConfig("kif", "weight", round_mode="RND_CONV",
                                       overflow_mode="SAT"))(x)
    x = QDense(5, name="fc3",
               iq_conf=QuantizerConfig("kif", "datalane", round_mode="RND_INF",
                                       overflow_mode="SAT_SYM", **per_tensor),
               enable_oq=True,
               oq_conf=QuantizerConfig("kbi", "datalane", round_mode="RND_CONV",
                                       overflow_mode="SAT_SYM"))(x)
    return keras.Model(inp, x, name="hgq2_mlp")


def _cnn():
    inp = keras.Input((6, 6, 2), name="image")
    x = QConv2D(4, (3, 3), activation="relu", name="conv",
                iq_conf=QuantizerConfig("kif", "datalane", heterogeneous_axis=(),
                                        homogeneous_axis=None))(inp)
    x = keras.layers.Flatten(name="flatten")(x)
    x = Quantizer(QuantizerConfig("kbi", "datalane", round_mode="RND_ZERO",
                                  overflow_mode="SAT"), name="requant")(x)
    x = QDense(5, name="fc", enable_iq=False)(x)
    return keras.Model(inp, x, name="hgq2_cnn")


def _quantizers(layer):
    """``{suffix: internal quantizer}`` of an HGQ2 layer (``iq``, ``kq``, ``bq``, ``oq``)."""
    if isinstance(layer, Quantizer):
        return {"iq": layer.quantizer}
    found = {}
    for suffix in ("iq", "kq", "bq", "oq"):
        wrapper = getattr(layer, f"_{suffix}", None)
        if wrapper is not None:
            found[suffix] = wrapper.quantizer
    return found


def _set_widths(model, rng):
    """Seeded per-element bit widths (see the module docstring)."""
    for layer in model.layers:
        for suffix, q in _quantizers(layer).items():
            shape = tuple(q._k.shape)
            i = np.round(np.asarray(q._i)).astype(np.float32)
            if suffix in ("iq", "oq"):
                i = i - rng.integers(0, 2, shape)  # some values wrap or saturate
                frac = rng.integers(1, 6, shape)
            else:
                frac = rng.integers(-1, 7, shape) - i  # kernel/bias: some zero-bit elements
            if suffix == "iq" and layer.name in ("fc1", "requant"):
                frac[0, :2] = -i[0, :2] - 1  # two input lanes of zero bits, unsigned
                q._k.assign(np.isin(np.arange(shape[1]), (0, 1, 5), invert=True)
                            .reshape(shape).astype("uint8"))  # and one unsigned lane
            q._i.assign(i.astype(np.float32))
            if hasattr(q, "_f"):
                q._f.assign(frac.astype(np.float32))
            else:
                q._b.assign(np.maximum(i + frac, 0).astype(np.float32))


def _kif(q):
    return [np.asarray(v, dtype=np.float64) for v in q.kif]


def _inputs(model, rng, n, sigma):
    """``n`` inputs exact in the common format of the first input quantizer's lanes."""
    first = model.layers[1]
    k, i, f = (np.broadcast_to(a, (1,) + first.input.shape[1:]) for a in _kif(first.iq.quantizer))
    live = k + i + f > 0
    frac = int(f[live].max())
    top = int((k + i)[live].max())  # integer bits with the sign, as ap_fixed counts them
    x = np.round(rng.normal(0.0, sigma, (n,) + tuple(first.input.shape[1:])) * 2.0 ** frac)
    signed = bool(k[live].max())
    lo = -(2.0 ** (top - 1 + frac)) if signed else 0.0
    hi = 2.0 ** ((top - 1 if signed else top) + frac) - 1
    return (np.clip(x, lo, hi) / 2.0 ** frac).astype(np.float32)


def _check_exact(layer, x_q, y):
    """The layer's float32 sums equal the float64 sums of its quantized operands."""
    kernel = np.asarray(layer.qkernel, dtype=np.float64)
    bias = np.asarray(layer.qbias, dtype=np.float64)
    x = np.asarray(x_q, dtype=np.float64)
    if kernel.ndim == 2:
        acc = x @ kernel + bias
    else:
        kh, kw = kernel.shape[:2]
        oh, ow = x.shape[1] - kh + 1, x.shape[2] - kw + 1
        acc = np.zeros((x.shape[0], oh, ow, kernel.shape[3]))
        for r in range(oh):
            for c in range(ow):
                acc[:, r, c] = np.einsum("nhwc,hwcf->nf", x[:, r:r + kh, c:c + kw], kernel)
        acc = acc + bias
    if layer.activation is keras.activations.relu:
        acc = np.maximum(acc, 0)
    if layer.enable_oq:
        acc = np.asarray(layer.oq(acc.astype(np.float32)), dtype=np.float64)
    assert np.array_equal(acc, np.asarray(y, dtype=np.float64)), layer.name


def _make(model, x_train, y_train, n, sigma, rng, folder):
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x_train, y_train, epochs=4, batch_size=64, verbose=0)
    _set_widths(model, rng)
    inputs = _inputs(model, rng, n, sigma)
    names = [layer.name for layer in model.layers[1:]]
    probe = keras.Model(model.inputs, [model.get_layer(name).output for name in names])
    outputs = dict(zip(names, (np.asarray(o) for o in probe.predict(inputs, verbose=0))))
    arrays = {"inputs": inputs}
    previous = inputs
    for name in names:
        layer = model.get_layer(name)
        if hasattr(layer, "qkernel"):
            x_q = previous
            if layer.enable_iq:
                x_q = arrays[f"{name}_iq"] = np.asarray(layer.iq(previous, training=False))
            _check_exact(layer, x_q, outputs[name])
        arrays[name] = outputs[name]
        previous = outputs[name]
    path = folder / f"{model.name}.keras"
    model.save(path)
    np.savez_compressed(folder / f"{model.name}_layers.npz",
                        **{k: v.astype(np.float32) for k, v in arrays.items()})
    # The saved file reproduces the outputs (the widths are in the file, not only in memory).
    again = keras.models.load_model(path)
    assert np.array_equal(np.asarray(again.predict(inputs, verbose=0)), outputs[names[-1]])
    print(f"{path}: {len(inputs)} vectors, tensors {sorted(arrays)}")


#: Per-lane (k, i, f) of the quantizer table: signed and unsigned, negative i and f, zero bits.
LANES = ((1, 0, 2), (1, 1, 3), (1, 2, 1), (1, -1, 4), (0, 1, 2), (0, 2, 0), (1, 3, -1), (0, 0, 0))
ROUNDINGS = ("TRN", "RND", "RND_CONV", "TRN_ZERO", "RND_ZERO", "RND_INF", "RND_MIN_INF")
OVERFLOWS = ("WRAP", "SAT", "SAT_SYM")


def _quantizer_table(folder):
    k, i, f = (np.array(v, dtype=np.float32) for v in zip(*LANES))
    x = np.arange(-6 * 32, 6 * 32 + 1, dtype=np.float32) / 32
    batch = np.repeat(x[:, None], len(LANES), axis=1)
    arrays = {"x": x, "k": k, "i": i, "f": f}
    for rounding in ROUNDINGS:
        for overflow in OVERFLOWS:
            q = Quantizer(QuantizerConfig("kif", "datalane", round_mode=rounding,
                                          overflow_mode=overflow))
            q.build(batch.shape)
            q.quantizer._k.assign(k[None].astype("uint8"))
            q.quantizer._i.assign(i[None])
            q.quantizer._f.assign(f[None])
            arrays[f"{rounding}__{overflow}"] = np.asarray(q(batch, training=False))
    np.savez_compressed(folder / "hgq2_quantizers.npz", **arrays)
    print(f"{folder / 'hgq2_quantizers.npz'}: {len(ROUNDINGS) * len(OVERFLOWS)} mode pairs")


def main(folder=OUT):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(SEED)
    rng = np.random.default_rng(SEED)
    x = rng.normal(0.0, 1.0, (2048, 16)).astype(np.float32)
    y = np.argmax(x @ rng.normal(0.0, 1.0, (16, 5)), axis=1)
    _make(_mlp(), x, y, 1000, 1.5, rng, folder)
    images = rng.uniform(0.0, 1.0, (1024, 6, 6, 2)).astype(np.float32)
    labels = np.argmax(images.reshape(1024, -1) @ rng.normal(0.0, 1.0, (72, 5)), axis=1)
    _make(_cnn(), images, labels, 300, 1.0, rng, folder)
    _quantizer_table(folder)


if __name__ == "__main__":
    main(*sys.argv[1:])
