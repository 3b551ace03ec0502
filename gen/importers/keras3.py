"""Keras 3 ``.keras`` files: a zip of ``config.json``, ``metadata.json`` and ``model.weights.h5``.

The config is the Keras 3 serialization of the model (layers with ``module``, ``class_name``,
``config`` and ``registered_name``; QKeras quantizers as nested objects), which the Keras
importer reads as it reads Keras 2 configs (:mod:`.keras_config`). The weights file is laid out
by position, not by layer name (Keras 3 ``saving_lib``): the model's layers are groups
``layers/<snake_case(class name)>``, the second of a class ``..._1`` and so on, each holding its
variables as ``vars/0``, ``vars/1``... in the order the layer creates them. :class:`Keras3Weights`
maps them back to the names the Keras importer asks for (``kernel``, ``bias``...). Read with
:mod:`zipfile`, :mod:`json` and :mod:`h5py` only (no Keras, no TensorFlow).
"""

import json
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

from nnfab.errors import ModelError, UnsupportedLayerError

from .keras_config import KerasWeights, keras_layers

__all__ = ["is_keras3", "read_keras3", "Keras3Weights", "VARIABLES"]

_MEMBERS = ("config.json", "model.weights.h5")

#: Variables of each weighted layer class, in creation order (``vars/0``, ``vars/1``...). A
#: ``bias`` is there only with ``use_bias``; BatchNormalization's ``gamma`` only with ``scale``,
#: ``beta`` only with ``center``.
VARIABLES = {
    "Dense": ("kernel", "bias"), "QDense": ("kernel", "bias"),
    "Conv1D": ("kernel", "bias"), "Conv2D": ("kernel", "bias"),
    "QConv1D": ("kernel", "bias"), "QConv2D": ("kernel", "bias"),
    "DepthwiseConv2D": ("depthwise_kernel", "bias"),
    "QDepthwiseConv2D": ("depthwise_kernel", "bias"),
    "BatchNormalization": ("gamma", "beta", "moving_mean", "moving_variance"),
    "QBatchNormalization": ("gamma", "beta", "moving_mean", "moving_variance"),
}


def is_keras3(path):
    """Whether the zip ``path`` holds a Keras 3 model (``config.json`` and
    ``model.weights.h5``).

    Raises
    ------
    ModelError
        If the zip cannot be read.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
        raise ModelError(f"Model file {str(path)!r} is a zip that cannot be read "
                         f"(truncated?): {exc}") from None
    return all(member in names for member in _MEMBERS)


def _snake_case(name):
    """Keras 3's ``naming.to_snake_case`` of a class name: ``QDense`` -> ``q_dense``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()
    return name


def _variable_names(cls, cfg):
    names = list(VARIABLES[cls])
    if "bias" in names and not cfg.get("use_bias", True):
        names.remove("bias")
    if cls.endswith("BatchNormalization"):
        if not cfg.get("center", True):
            names.remove("beta")
        if not cfg.get("scale", True):
            names.remove("gamma")
    return names


class Keras3Weights(KerasWeights):
    """The weights of a Keras 3 ``model.weights.h5`` under the names the Keras importer asks
    for: ``get("fc1", ["kernel", "bias"])`` reads ``layers/q_dense/vars/0`` and ``vars/1``
    when ``fc1`` is the model's first QDense.

    Parameters
    ----------
    path : path
        The extracted ``model.weights.h5``.
    config : dict
        The model config (``config.json``).

    Raises
    ------
    ModelError
        If the file cannot be read or a layer's group is missing.
    """

    def __init__(self, path, config):
        super().__init__(path)
        self._layers = {}
        used = {}
        for cls, cfg, _ in keras_layers(config, graph=True):
            if cls == "InputLayer":
                continue
            base = _snake_case(cls)
            count = used.get(base)
            used[base] = 0 if count is None else count + 1
            group = base if count is None else f"{base}_{count + 1}"
            self._layers[cfg.get("name", cls)] = (cls, cfg, group)

    def get(self, layer, names):
        """``{short name: array}`` for the weights of ``layer`` (e.g. ``kernel``, ``bias``)."""
        if layer not in self._layers:
            raise ModelError(f"Layer {layer!r}: not in the model config of {self._path!r}")
        cls, cfg, group = self._layers[layer]
        if cls not in VARIABLES:
            raise UnsupportedLayerError(f"Layer {layer!r}: weights of a Keras 3 {cls!r} layer "
                                        f"are not read (weighted layers read: "
                                        f"{', '.join(VARIABLES)})")
        path = f"layers/{group}/vars"
        if path not in self._root:
            raise ModelError(f"Layer {layer!r}: no weights group {path!r} in {self._path!r} "
                             f"(weights of another model?)")
        variables = self._root[path]
        found = {}
        for index, name in enumerate(_variable_names(cls, cfg)):
            if str(index) not in variables:
                raise ModelError(f"Layer {layer!r}: variable {index} ({name}) is missing from "
                                 f"{path!r} in {self._path!r}")
            found[name] = variables[str(index)][()].astype("float64")
        return self._complete(layer, names, found)

    def variables(self, layer, path):
        """The variables ``vars/0``, ``vars/1``... of the sublayer ``path`` of ``layer``, as
        stored (dtype kept): ``variables("fc1", "iq/quantizer")`` reads
        ``layers/q_dense/iq/quantizer/vars`` when ``fc1`` is the model's first QDense (HGQ2's
        quantizers, :mod:`.hgq2`).

        Raises
        ------
        ModelError
            If the layer or its group is missing.
        """
        if layer not in self._layers:
            raise ModelError(f"Layer {layer!r}: not in the model config of {self._path!r}")
        group = f"layers/{self._layers[layer][2]}/{path}/vars"
        if group not in self._root:
            raise ModelError(f"Layer {layer!r}: no weights group {group!r} in {self._path!r} "
                             f"(weights of another model?)")
        variables = self._root[group]
        found, index = [], 0
        while str(index) in variables:
            found.append(variables[str(index)][()])
            index += 1
        return found


def read_keras3(path, folder):
    """The config of a ``.keras`` file, and its weights file extracted into ``folder``.

    Returns
    -------
    (dict, pathlib.Path)

    Raises
    ------
    ModelError
        If the file is not a readable Keras 3 zip or its config is not valid JSON.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            missing = [member for member in _MEMBERS if member not in names]
            if missing:
                raise ModelError(f"Model file {str(path)!r} is a zip without "
                                 f"{', '.join(missing)}; a Keras 3 .keras file holds "
                                 f"config.json and model.weights.h5")
            text = archive.read("config.json").decode("utf-8", errors="replace")
            weights = Path(folder) / "model.weights.h5"
            with archive.open("model.weights.h5") as source, open(weights, "wb") as target:
                shutil.copyfileobj(source, target)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
        raise ModelError(f"Model file {str(path)!r} is not a readable .keras zip "
                         f"(truncated?): {exc}") from None
    try:
        config = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise ModelError(f"Model file {str(path)!r}: its config.json is not valid JSON") from None
    if not isinstance(config, dict) or not isinstance(config.get("config"), (dict, list)):
        raise ModelError(f"Model file {str(path)!r}: its config.json is not a Keras model "
                         f"config (no 'config')")
    return config, weights


def temporary_folder():
    """A temporary folder for the extracted weights (a context manager)."""
    return tempfile.TemporaryDirectory(prefix="nnfab-keras3-")
