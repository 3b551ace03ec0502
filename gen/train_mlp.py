"""The multi-layer side of ``nnfab train``: a :class:`~nnfab.training_mlp.TrainableMLPSpec`
for a data set (:func:`mlp_problem`), and the learned weights written as a native quantized
model (:func:`export_native`) that ``nnfab build`` and ``nnfab verify`` accept.
"""

import json
from pathlib import Path

import numpy as np

from nnfab.fixed import FixedFormat
from nnfab.training_mlp import MAX_LAYERS, MIN_LAYERS, TrainableMLPSpec

__all__ = ["mlp_problem", "export_native"]


def _check_layers(layers, n_in, n_out, dataset):
    sizes = tuple(layers)
    if not MIN_LAYERS + 1 <= len(sizes) <= MAX_LAYERS + 1:
        raise ValueError(f"Layers must list {MIN_LAYERS + 1} to {MAX_LAYERS + 1} sizes "
                         f"({MIN_LAYERS} to {MAX_LAYERS} dense layers), not "
                         f"{','.join(map(str, sizes))}")
    if sizes[0] != n_in or sizes[-1] != n_out:
        raise ValueError(f"Layers of data set {dataset!r} must start with its {n_in} inputs "
                         f"and end with its {n_out} outputs, not "
                         f"{','.join(map(str, sizes))}")
    return sizes


def mlp_problem(dataset, layers, *, optimizer, batch_size, rng, data, reuse_factor=None):
    """A :class:`~nnfab.gen.train.Problem` whose spec is a multi-layer perceptron of sizes
    ``layers`` on the data ``data = (x, y, x_test, y_test)`` of ``dataset``; ``rng`` draws the
    initial weights (He: ``N(0, 2 / n_{l-1})``, biases 0); ``reuse_factor`` as
    :class:`~nnfab.training_mlp.TrainableMLPSpec` (None: one multiply-accumulate per cycle).

    Formats: inputs ``fixed<12,4,RND,SAT>`` (``fixed<12,3>`` for the regression), weights
    ``fixed<16,4>``, activations ``fixed<16,6,RND,SAT>``, outputs ``fixed<16,7,RND,SAT>``
    (``fixed<16,4>`` for the regression), errors ``fixed<16,2,RND,SAT>``, gradients
    ``fixed<16,1>``, first state ``fixed<20,1>``, second state ``ufixed<24,2>``; the
    classification's softmax reciprocal table of 8192 entries; learning rate ``2**-6``
    (``2**-5`` for the regression), batch 16 (4).

    Raises
    ------
    ValueError
        If ``layers`` does not list 3 to 5 sizes, or does not start with the data set's
        inputs and end with its outputs, e.g. *"Layers of data set 'digits' must start with
        its 64 inputs and end with its 10 outputs, not 64,32,9"*; or a reuse factor the spec
        rejects.
    """
    from nnfab.casts import quantize

    from .train import Problem, _optimizer

    x, y, x_test, y_test = data
    regression = dataset == "regression"
    n_out = 1 if regression else int(y.max()) + 1
    sizes = _check_layers(layers, x.shape[1], n_out, dataset)
    wf, gf = FixedFormat(16, 4), FixedFormat(16, 1)
    af = FixedFormat(16, 6, rounding="RND", overflow="SAT")
    ef = FixedFormat(16, 2, rounding="RND", overflow="SAT")
    if regression:
        xf = FixedFormat(12, 3, rounding="RND", overflow="SAT")
        yf = FixedFormat(16, 4, rounding="RND", overflow="SAT")
        shift = 5
    else:
        xf = FixedFormat(12, 4, rounding="RND", overflow="SAT")
        yf = FixedFormat(16, 7, rounding="RND", overflow="SAT")
        shift = 6
    w0 = []
    for l in range(1, len(sizes)):
        w = quantize(rng.normal(0, np.sqrt(2 / sizes[l - 1]), (sizes[l], sizes[l - 1] + 1)), wf)
        w[:, -1] = 0
        w0.append(w)
    opt = _optimizer(optimizer, shift, wf, gf, state_format=FixedFormat(20, 1),
                     square_format=FixedFormat(24, 2, signed=False))
    spec = TrainableMLPSpec(sizes, "mse" if regression else "softmax_cross_entropy", opt, xf,
                            af, yf, ef, batch_size or (4 if regression else 16), tuple(w0),
                            reuse_factor=reuse_factor)
    targets = quantize(y, yf) if regression else y.astype(np.int64)
    return Problem(spec, x, y, x_test, y_test, quantize(x, xf), targets, 2.0 ** -shift)


def export_native(spec, flat_weights, folder, *, name="trained-mlp"):
    """Write the parameters ``flat_weights`` (codes, the order of
    :func:`nnfab.sim.golden.backprop.train_fixed`) of ``spec`` as the native quantized model
    ``folder/NAME.json`` + ``.npz`` (:mod:`nnfab.gen.native`): per layer a ``dense`` layer
    (weights and biases in the weight format, exact accumulator, output cast to the
    activation or output format), a ReLU ``activation`` between them; for classification an
    ``argmax`` at the end. Its forward pass is :func:`nnfab.sim.golden.backprop.predict`'s.

    Returns
    -------
    Path
        The JSON file.
    """
    from nnfab.sim.golden.backprop import split_weights

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    wf = str(spec.optimizer.weight_format)
    layers, arrays = [], {}
    for l, w in enumerate(split_weights(spec, flat_weights), start=1):
        arrays[f"dense_{l}.weights"] = np.asarray(w[:, :-1], dtype=np.int64)
        arrays[f"dense_{l}.biases"] = np.asarray(w[:, -1], dtype=np.int64)
        layers.append({"name": f"dense_{l}", "type": "dense", "weights": f"dense_{l}.weights",
                       "biases": f"dense_{l}.biases", "weight_format": wf, "bias_format": wf,
                       "output_format": str(spec.layer_output_format(l)),
                       "accumulator_format": None, "reuse_factor": 1})
        if l < spec.n_layers:
            layers.append({"name": f"relu_{l}", "type": "activation", "activation": "relu",
                           "output_format": str(spec.activation_format)})
    if spec.loss == "softmax_cross_entropy":
        layers.append({"name": "argmax", "type": "argmax"})
    doc = {"nnfab_model": 1, "name": name,
           "input": {"shape": [spec.n_in], "format": str(spec.input_format)}, "layers": layers}
    json_path = folder / f"{name}.json"
    np.savez(folder / f"{name}.npz", **arrays)
    json_path.write_text(json.dumps(doc, indent=2) + "\n")
    return json_path
