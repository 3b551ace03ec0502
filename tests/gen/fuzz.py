"""Seeded fuzzers of model files: structured mutations of native models and byte-level damage to
real model files, and the check every case must pass.

A case either loads (then the cheap part of a build runs: ``Validate``, the golden model on a few
vectors, the engines' construction) or raises an :class:`~nnfab.errors.NnfabError` whose message
is one line without Python's own error texts. Nothing else may escape, no case may take more
than :data:`CASE_SECONDS`, and a mutation known to be invalid (``must_reject``) must not load.
"""

import copy
import json
import re
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnfab.errors import NnfabError
from nnfab.gen.examples import EXAMPLES

from ..vectors import shared_dir

CASE_SECONDS = 30

MODELS = shared_dir() / "models"
KERAS = MODELS / "hls4ml-example-models" / "keras"
ONNX = MODELS / "hls4ml-example-models" / "onnx"
QONNX = MODELS / "qonnx-model-zoo"

#: Texts of Python's own exceptions that must never reach a user (a message that holds one
#: passed a library error through instead of saying what is wrong).
PYTHON_ERROR_TEXT = re.compile(
    r"Traceback|object has no attribute|object is not (subscriptable|iterable|callable)|"
    r"unsupported operand|not supported between instances|invalid literal for|"
    r"list index out of range|unhashable type|NoneType|KeyError|IndexError|AttributeError|"
    r"could not convert|cannot convert|Errno|zlib|Error -\d|codec can't decode|"
    r"takes \d+ positional|got an unexpected keyword|<class |\bnan\b.*\bint\b")


class CaseTimeout(Exception):
    pass


@dataclass
class Outcome:
    """What one case did: ``error`` is the NnfabError's message, or None when it loaded."""

    case: str
    must_reject: bool
    error: str | None
    seconds: float


def _alarm(signum, frame):
    raise CaseTimeout()


def build_cheaply(path, seed=0):
    """Load ``path`` and run the cheap part of a build (no Verilog)."""
    from nnfab.gen.assemble import Network
    from nnfab.gen.load import load_model
    from nnfab.gen.passes import Validate, run_passes
    from nnfab.sim.golden.network import run_network

    loaded = load_model(path, calibration=np.random.default_rng(seed).normal(
        0.0, 1.0, (64, *_input_shape(path))) if _is_float_native(path) else None)
    model, _ = run_passes(loaded.model, [Validate()])
    fmt = model.input_format
    rng = np.random.default_rng(seed)
    n = 3 if model.n_inputs <= 4096 else 1  # one full image of a large model
    x = rng.integers(fmt.min_code, fmt.max_code, (n, *model.input_shape), endpoint=True,
                     dtype=np.int64)
    run_network(model, x)
    Network(model)
    return model


def _is_float_native(path):
    try:
        doc = json.loads(Path(path).read_text())
        return isinstance(doc, dict) and "nnfab_model" in doc and "format" not in doc["input"] \
            and isinstance(doc["input"]["shape"], list) and \
            all(type(n) is int and 0 < n <= 64 for n in doc["input"]["shape"])
    except Exception:  # noqa: BLE001 -- only a cheaper calibration set depends on it
        return False


def _input_shape(path):
    return tuple(json.loads(Path(path).read_text())["input"]["shape"])


def run_case(case, path, must_reject):
    """Run one case; raise AssertionError (naming the case) if it breaks a rule."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CASE_SECONDS)
    start = time.monotonic()
    try:
        build_cheaply(path)
        error = None
    except NnfabError as exc:
        error = str(exc)
    except CaseTimeout:
        raise AssertionError(f"{case}: took more than {CASE_SECONDS} s") from None
    except Exception as exc:  # noqa: BLE001 -- the point of the fuzzer
        raise AssertionError(f"{case}: {type(exc).__name__}: {exc}") from exc
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    seconds = time.monotonic() - start
    if error is not None:
        assert "\n" not in error, f"{case}: message of more than one line: {error!r}"
        assert error.strip(), f"{case}: empty message"
        found = PYTHON_ERROR_TEXT.search(error)
        assert found is None, f"{case}: Python error text {found.group()!r} in {error!r}"
    elif must_reject:
        raise AssertionError(f"{case}: a known-invalid mutation was accepted")
    return Outcome(case, must_reject, error, seconds)


# -- structured mutations of native models -------------------------------------------------------


def tiny_models():
    """Small native models (documents and arrays) of every layer type that has a native form."""
    rng = np.random.default_rng(1)
    quantized = {
        "nnfab_model": 1, "name": "fuzz-q", "input": {"shape": [4], "format": "fixed<8,3>"},
        "layers": [
            {"name": "d1", "type": "dense", "weights": "d1.w", "biases": "d1.b",
             "weight_format": "fixed<8,2>", "bias_format": "fixed<8,3>",
             "output_format": "fixed<8,3,RND_CONV,SAT>", "accumulator_format": None,
             "reuse_factor": 1},
            {"name": "relu", "type": "activation", "activation": "relu",
             "output_format": "ufixed<8,3,RND_CONV,SAT>"},
            {"name": "q", "type": "quantize", "formats": ["ufixed<6,3>", None, None],
             "output_format": "ufixed<8,3>"},
            {"name": "d2", "type": "dense", "weights": "d2.w", "weight_format": "fixed<8,2>",
             "output_format": "fixed<10,4,RND_CONV,SAT>", "reuse_factor": 3},
            {"name": "sm", "type": "softmax", "output_format": "ufixed<8,1,RND_CONV,SAT>"},
            {"name": "am", "type": "argmax"},
        ]}
    q_arrays = {"d1.w": rng.integers(-100, 100, (3, 4)), "d1.b": rng.integers(-10, 10, 3),
                "d2.w": rng.integers(-100, 100, (2, 3))}
    floats = {
        "nnfab_model": 1, "name": "fuzz-f", "input": {"shape": [6, 6, 2]},
        "layers": [
            {"name": "c1", "type": "conv2d", "weights": "c1.w", "biases": "c1.b",
             "strides": [1, 1], "padding": "same"},
            {"name": "bn", "type": "batchnorm", "gamma": "bn.g", "beta": "bn.b",
             "mean": "bn.m", "variance": "bn.v", "epsilon": 0.001},
            {"name": "act", "type": "activation", "activation": "tanh"},
            {"name": "p", "type": "pool", "pool": "max", "pool_size": [2, 2], "strides": None,
             "padding": "valid"},
            {"name": "f", "type": "flatten"},
            {"name": "d", "type": "dense", "weights": "d.w"},
            {"name": "sm", "type": "softmax"},
        ]}
    f_arrays = {"c1.w": rng.normal(0, 0.5, (3, 3, 3, 2)), "c1.b": rng.normal(0, 0.1, 3),
                "bn.g": rng.uniform(0.5, 2, 3), "bn.b": rng.normal(0, 1, 3),
                "bn.m": rng.normal(0, 1, 3), "bn.v": rng.uniform(0.5, 2, 3),
                "d.w": rng.normal(0, 0.5, (4, 27))}
    params = {
        "nnfab_model": 1, "name": "fuzz-p", "input": {"shape": [4], "format": "fixed<8,3>"},
        "layers": [
            {"name": "leaky", "type": "activation", "activation": "leaky_relu",
             "output_format": "fixed<8,3,RND,SAT>",
             "params": {"alpha_format": "ufixed<8,0>", "alpha_code": 77}},
            {"name": "bounded", "type": "activation", "activation": "bounded_relu",
             "output_format": "ufixed<8,3,RND,SAT>", "params": {"relu_max": "7/2"}},
            {"name": "d", "type": "dense", "weights": "d.w", "weight_format": "fixed<8,1>",
             "output_format": "fixed<8,3,RND_CONV,SAT>"},
            {"name": "elu", "type": "activation", "activation": "elu",
             "output_format": "fixed<8,2,RND_CONV,SAT>",
             "params": {"table": _elu_table(), "scale": {"format": "ufixed<18,1,RND>",
                                                         "code": 131072}}},
            {"name": "sig", "type": "activation", "activation": "sigmoid",
             "output_format": "ufixed<8,1,RND_CONV,SAT>"},
        ]}
    p_arrays = {"d.w": rng.integers(-100, 100, (3, 4))}
    return {"fuzz-q": (quantized, q_arrays), "fuzz-f": (floats, f_arrays),
            "fuzz-p": (params, p_arrays)}


def _elu_table():
    from nnfab.fixed import FixedFormat
    from nnfab.ir.native_params import param_to_json as _param_to_json
    from nnfab.tables import elu_table

    return _param_to_json(elu_table(alpha=1.0, scale=1.0, table_size=256,
                                    table_format=FixedFormat(10, 2, rounding="RND")))


def base_models():
    """The bundled examples and :func:`tiny_models`, as ``{name: (doc, arrays)}``."""
    models = dict(tiny_models())
    for example in EXAMPLES.values():
        for path in (example.path, example.float_path):
            path = Path(path)
            with np.load(path.with_suffix(".npz")) as npz:
                arrays = {key: npz[key] for key in npz.files}
            models[path.stem] = (json.loads(path.read_text()), arrays)
    return models


_FORMAT_KEYS = ("format", "weight_format", "bias_format", "output_format",
                "accumulator_format", "scale_format", "shift_format")
#: Format strings that no model may hold, and some that parse (may pass).
BAD_FORMATS = ["fixed<10000,2>", "fixed<8,100000>", "fixed<65,8>", "fixed<8,-300>",
               "fixed<0,0>", "fixed<8>", "fixed<8,2,FOO>", "", "ufixed<-3,2>", "float32",
               "fixed<8,2,RND,SAT,3>", "fixed<8.5,2>", "fixed<99999999999999999999,1>",
               "fixed<8,2,RND,SAT", "int<0>", "fixed<\u0668,2>"]
GOOD_FORMATS = ["fixed<16,6>", "fixed<4,2>", "ufixed<8,0,RND,SAT>", "int<8>", "fixed<64,32>",
                "fixed<8,-4,RND_CONV,SAT_SYM>"]
#: JSON values of every type, to put where another type belongs.
VALUES = [None, True, 0, -1, 1.5, 10**12, "x", "", [], [1, 2], {}, {"a": 1}, 1e308]
NAMES = ["", None, 7, "a" * 300, "tab\there", "new\nline", "\u03c8-layer", "sp ace", "null"]
BAD_NUMBERS = [np.nan, np.inf, -np.inf, 1e300, -1e300]


def _layers_with(doc, key):
    return [i for i, layer in enumerate(doc["layers"]) if key in layer]


def _must_reject_deletion(layer, key, quantized):
    if key in ("name", "type"):
        return True
    kind = layer["type"]
    if key in ("weights", "gamma", "beta", "mean", "variance", "scale", "shift"):
        return True
    if key == "biases":
        return False
    if quantized and key in ("weight_format", "scale_format", "shift_format"):
        return True
    if quantized and key == "output_format" and kind not in ("pool",):
        return True
    if quantized and key == "bias_format" and layer.get("biases") is not None:
        return True
    return (kind, key) in (("quantize", "formats"), ("quantize", "output_format"),
                           ("activation", "activation"), ("pool", "pool"))


def structured_case(rng, models):
    """One mutation of one base model: ``(description, doc, arrays, must_reject)``."""
    name = sorted(models)[rng.integers(len(models))]
    doc, arrays = copy.deepcopy(models[name][0]), dict(models[name][1])
    quantized = "format" in doc["input"]
    n = len(doc["layers"])
    i = int(rng.integers(n))
    layer = doc["layers"][i]
    kind = int(rng.integers(16))
    pick = lambda seq: seq[int(rng.integers(len(seq)))]  # noqa: E731
    if kind == 0:  # delete a layer key
        key = pick(sorted(layer))
        reject = _must_reject_deletion(layer, key, quantized)
        del layer[key]
        return f"{name}: delete layers[{i}].{key}", doc, arrays, reject
    if kind == 1:  # retype a layer value
        key = pick(sorted(layer))
        old, value = layer[key], pick(VALUES)
        nullable = key in ("biases", "accumulator_format") or \
            (key == "bias_format" and layer.get("biases") is None) or \
            (layer["type"] == "pool" and key in ("strides", "output_format"))
        layer[key] = value
        same = type(old) is type(value) or (value is None and nullable)
        return f"{name}: layers[{i}].{key} = {value!r}", doc, arrays, not same
    if kind == 2:  # out-of-range numbers
        choices = [("reuse_factor", v) for v in (0, -1, 1.5, 10**9, True, "2")]
        choices += [("strides", v) for v in ([0, 1], [1], [1, 1, 1], [2.5, 1], [70000, 1])]
        choices += [("pool_size", v) for v in ([0, 0], [1], [-2, 2])]
        choices += [("epsilon", v) for v in (-1, 0, "1e-3", 1e300)]
        key, value = pick(choices)
        layer[key] = value
        return f"{name}: layers[{i}].{key} = {value!r}", doc, arrays, True
    if kind == 3:  # bad or other format strings
        keys = [key for key in _FORMAT_KEYS if key in layer]
        bad = bool(rng.integers(2))
        value = pick(BAD_FORMATS if bad else GOOD_FORMATS)
        if not keys or rng.integers(4) == 0:
            doc["input"]["format"] = value
            # a float model with an input format is quantized without layer formats
            return f"{name}: input.format = {value!r}", doc, arrays, \
                bad or (not quantized and any(lay["type"] in ("dense", "conv2d", "batchnorm")
                                              for lay in doc["layers"]))
        key = pick(keys)
        layer[key] = value
        if key == "accumulator_format" and value == "fixed<65,8>":
            bad = False  # an explicit accumulator may have up to 128 bits
        return f"{name}: layers[{i}].{key} = {value!r}", doc, arrays, bad
    if kind == 4:  # input shape
        value = pick([[], [0], [-3], [64.5], [10**7], [1, 2, 3, 4], "64", [True], [None],
                      [2**20, 2**20], [8, 8]])
        doc["input"]["shape"] = value
        valid = isinstance(value, list) and 1 <= len(value) <= 3 and all(
            type(v) is int and 1 <= v <= 2**16 for v in value)
        return f"{name}: input.shape = {value!r}", doc, arrays, not valid
    if kind == 5:  # names
        value = pick(NAMES)
        if rng.integers(2):
            doc["name"] = value
            where = "name"
        else:
            layer["name"] = value
            where = f"layers[{i}].name"
        ok = isinstance(value, str) and 0 < len(value) <= 256 and value.isprintable()
        return f"{name}: {where} = {value!r}", doc, arrays, not ok
    if kind == 6:  # duplicate a layer name or a whole layer
        if n < 2:
            return structured_case(rng, models)
        j = (i + 1 + int(rng.integers(n - 1))) % n
        layer["name"] = doc["layers"][j]["name"]
        return f"{name}: layers[{i}].name = layers[{j}].name", doc, arrays, True
    if kind == 7:  # unknown keys
        where = pick(["top", "input", "layer"])
        target = {"top": doc, "input": doc["input"], "layer": layer}[where]
        key = pick(["reuse_facter", "weigths", "extra", "output_fromat"])
        target[key] = 1
        return f"{name}: unknown key {key!r} in {where}", doc, arrays, True
    if kind == 8:  # input format removed from a quantized model, added to a float one
        if quantized:
            del doc["input"]["format"]
            return f"{name}: delete input.format", doc, arrays, True
        doc["input"]["format"] = "fixed<16,6>"
        return f"{name}: add input.format", doc, arrays, \
            any(lay["type"] in ("dense", "conv2d", "batchnorm") for lay in doc["layers"])
    if kind == 9:  # array values
        names = sorted(arrays)
        key = pick(names)
        value = np.array(arrays[key], dtype=np.float64)
        bad = pick(BAD_NUMBERS)
        value.flat[int(rng.integers(value.size))] = bad
        arrays[key] = value
        # A huge variance only scales one channel towards zero: a valid float model.
        valid = bad == 1e300 and key.endswith((".v", ".variance"))
        return f"{name}: array {key!r} gets {bad!r}", doc, arrays, not valid
    if kind == 10:  # array dtypes
        key = pick(sorted(arrays))
        old = np.asarray(arrays[key])
        dtype = pick(["complex", "bool", "str", "float-fraction", "uint8", "int8", "float32"])
        if dtype == "complex":
            value, reject = old + 1j, True
        elif dtype == "bool":
            value, reject = old != 0, True
        elif dtype == "str":
            value, reject = old.astype(str), True
        elif dtype == "float-fraction":
            value, reject = old.astype(np.float64) + 0.25, quantized
        else:
            value, reject = old.astype(dtype), False
        arrays[key] = value
        return f"{name}: array {key!r} as {dtype}", doc, arrays, reject
    if kind == 11:  # array shapes
        key = pick(sorted(arrays))
        old = np.asarray(arrays[key])
        how = pick(["transpose", "extra-dim", "drop-row", "scalar", "empty", "flat"])
        value = {"transpose": old.T, "extra-dim": old[None], "drop-row": old[:-1],
                 "scalar": old.reshape(-1)[:1].reshape(()), "empty": old[:0],
                 "flat": old.reshape(-1)}[how]
        arrays[key] = value
        reject = value.shape != old.shape and not (
            how == "drop-row" and key.endswith(("weights", ".w")))
        return f"{name}: array {key!r} {how} {old.shape} -> {value.shape}", doc, arrays, reject
    if kind == 12:  # arrays missing or renamed
        key = pick(sorted(arrays))
        del arrays[key]
        return f"{name}: array {key!r} removed", doc, arrays, True
    if kind == 13:  # layer order and count
        how = pick(["swap", "drop", "repeat", "reverse"])
        layers = doc["layers"]
        if how == "swap" and n > 1:
            j = (i + 1) % n
            layers[i], layers[j] = layers[j], layers[i]
        elif how == "drop" and n > 1:
            del layers[i]
        elif how == "repeat":
            layers.insert(i, copy.deepcopy(layer))
        else:
            layers.reverse()
        return f"{name}: layers {how} at {i}", doc, arrays, how == "repeat"
    if kind == 15:  # activation parameters
        with_params = [j for j, lay in enumerate(doc["layers"]) if lay.get("params")]
        if not with_params:
            return structured_case(rng, models)
        i = pick(with_params)
        params = doc["layers"][i]["params"]
        key = pick(sorted(params))
        value = params[key]
        if isinstance(value, dict):
            sub = pick(sorted(value))
            new = pick(VALUES + ["fixed<8,3>", [1, 2, 3], -5])
            value[sub] = new
            return f"{name}: layers[{i}].params.{key}.{sub} = {new!r}", doc, arrays, False
        new = pick(VALUES + BAD_FORMATS[:4])
        params[key] = new
        # relu_max is a number or a fraction string; the others keep their one JSON type
        numeric = key == "relu_max" and type(new) in (int, float)
        return f"{name}: layers[{i}].params.{key} = {new!r}", doc, arrays, \
            type(new) is not type(value) and not numeric
    # kind 14: top-level structure
    how = pick(["layers-object", "layers-empty", "input-int", "input-list", "version-2",
                "no-input", "arrays-folder", "arrays-missing", "type-unknown"])
    if how == "layers-object":
        doc["layers"] = {"0": layer}
    elif how == "layers-empty":
        doc["layers"] = []
    elif how == "input-int":
        doc["input"] = 64
    elif how == "input-list":
        doc["input"] = [64]
    elif how == "version-2":
        doc["nnfab_model"] = 2
    elif how == "no-input":
        del doc["input"]
    elif how == "arrays-folder":
        doc["arrays"] = "../elsewhere.npz"
    elif how == "arrays-missing":
        doc["arrays"] = "missing.npz"
    else:
        layer["type"] = pick(["lstm", "Dense", "", "dense ", "conv1d"])
    return f"{name}: {how}", doc, arrays, True


def write_native(folder, doc, arrays):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.json"
    path.write_text(json.dumps(doc, allow_nan=True))
    np.savez(folder / "model.npz", **arrays)
    return path


# -- byte-level damage to real files ---------------------------------------------------------------


def real_files():
    """``(label, main file, [files of the model])``: the damaged file is one of them."""
    files = []
    for example in EXAMPLES.values():
        for path in (Path(example.path), Path(example.float_path)):
            files.append((path.stem, path, [path, path.with_suffix(".npz")]))
    for stem in ("KERAS_3layer", "KERAS_3layer_batch_norm", "qkeras_3layer", "qkeras_mnist_cnn",
                 "qkeras_mnist_dense"):
        json_path = KERAS / f"{stem}.json"
        files.append((stem, json_path, [json_path, KERAS / f"{stem}_weights.h5"]))
    hgq = KERAS / "hgq_jet_classifier.h5"
    files.append(("hgq", hgq, [hgq]))
    # Every ONNX file but the 1 MB kwsmlp and TFC_2W2A, whose intact-enough copies take seconds
    # each to load (threshold search through qonnx's executor); UNSW-NB15 covers the same
    # threshold importer in under a second.
    for path in (ONNX / "three_layer_keras.onnx", ONNX / "three_layer_pytorch.onnx",
                 ONNX / "conv2d_small_keras.onnx", ONNX / "conv2d_small_mp_keras.onnx",
                 ONNX / "branched_model_ch_last.onnx", QONNX / "qkeras_jettagging.onnx",
                 QONNX / "unsw_nb15-mlp-w2a2.onnx"):
        files.append((path.stem, path, [path]))
    return files


def damage(data, rng):
    """``(how, damaged bytes)``: bit flips, truncation, insertion or an overwritten run."""
    data = bytearray(data)
    how = int(rng.integers(4))
    if how == 0:
        n = int(rng.integers(1, 9))
        for _ in range(n):
            bit = int(rng.integers(len(data) * 8))
            data[bit // 8] ^= 1 << (bit % 8)
        return f"{n} bit flips", bytes(data)
    if how == 1:
        cut = int(rng.integers(len(data)))
        return f"truncated to {cut} bytes", bytes(data[:cut])
    if how == 2:
        at = int(rng.integers(len(data) + 1))
        extra = bytes(rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8))
        return f"{len(extra)} bytes inserted at {at}", bytes(data[:at] + extra + data[at:])
    at = int(rng.integers(len(data)))
    run = int(rng.integers(1, 256))
    data[at:at + run] = bytes(min(run, len(data) - at))
    return f"{run} bytes zeroed at {at}", bytes(data)


def byte_case(rng, files, folder):
    """Damage one file of one real model in ``folder``: ``(description, path to load,
    must_reject)``."""
    label, main, parts = files[int(rng.integers(len(files)))]
    target = parts[int(rng.integers(len(parts)))]
    folder.mkdir(parents=True, exist_ok=True)
    for part in parts:
        shutil.copy(part, folder / part.name)
    original = (folder / target.name).read_bytes()
    how, data = damage(original, rng)
    (folder / target.name).write_bytes(data)
    # A file cut short is known to be invalid, except an ONNX protobuf cut at a field boundary
    # (it may still parse) and a JSON text that lost only trailing white space.
    cut = how.startswith("truncated") and target.suffix != ".onnx" and \
        original[len(data):].strip() != b""
    return f"{label}: {target.name} {how}", folder / main.name, cut
