"""Importers of the model files users already have, by source format.

- :mod:`.keras`: Keras and QKeras (``.json`` + ``_weights.h5``, whole-model ``.h5``, and Keras 3
  ``.keras`` zips through :mod:`.keras3`);
- :mod:`.hgq`: HGQ proxy models (``FixedPointQuantizer`` layers) in ``.h5``;
- :mod:`.hgq2`: HGQ2 models (``hgq.layers``) in Keras 3 ``.keras`` files;
- :mod:`.onnx`: float ONNX;
- :mod:`.qonnx`: QONNX (``Quant``, ``BipolarQuant``, ``Trunc``) with power-of-two scales;
- :mod:`.onnx_qdq`: int8 ONNX as onnxruntime's quantizer writes it (QDQ and QOperator forms);
- :mod:`.tflite`: int8 TFLite flatbuffers (read by :mod:`.tflite_file`).

:func:`load` dispatches on the kind that :func:`nnfab.gen.load.detect_kind` found.
"""

import contextlib

from nnfab.errors import ModelError, NnfabError

__all__ = ["load"]


def load(path, *, kind, weights=None, input_format=None):
    """Read ``path`` of ``kind`` (``"keras-json"``, ``"hdf5"``, ``"keras3"``, ``"tflite"`` or ``"onnx"``).

    Parameters
    ----------
    weights : path, optional
        Weights file of a Keras ``.json`` model (default ``NAME_weights.h5`` beside it).
    input_format : FixedFormat, optional
        Input format of a quantized Keras model (default ``fixed<16,6>``).

    Returns
    -------
    FloatModel or Model
        A float model (to be quantized by PTQ) or a quantized IR model.

    Raises
    ------
    ModelError
        For unreadable or inconsistent files; :class:`~nnfab.errors.UnsupportedLayerError`
        for layers and settings that nnfab does not import, naming the layer.
    """
    if kind in ("keras-json", "hdf5"):
        from .keras import load_keras

        with _malformed(path, "a Keras model as Keras writes it"):
            return load_keras(path, weights=weights, input_format=input_format)
    if kind == "keras3":
        from .keras import load_keras3

        with _malformed(path, "a Keras 3 model as Keras writes it"):
            return load_keras3(path, input_format=input_format)
    if kind == "tflite":
        from .tflite import load_tflite

        with _malformed(path, "an int8 TFLite model as nnfab reads it"):
            return load_tflite(path)
    if kind == "onnx":
        from .onnx import QONNX_OPS, load_onnx, read_onnx
        from .onnx_qdq import INT8_OPS, load_onnx_int8
        from .qonnx import load_qonnx

        with _malformed(path, "an ONNX model as nnfab reads it"):
            # QONNX when the graph holds QONNX quantization nodes, int8 when onnxruntime
            # quantized it (QDQ or QOperator), else float ONNX.
            graph = read_onnx(path).graph
            if any(node.op_type in QONNX_OPS for node in graph.node):
                return load_qonnx(path)
            if any(node.op_type in INT8_OPS for node in graph.node):
                return load_onnx_int8(path)
            return load_onnx(path)
    raise ModelError(f"Model file {str(path)!r}: no importer for kind {kind!r} (nnfab imports "
                     f"keras-json, hdf5, keras3, tflite and onnx)")


@contextlib.contextmanager
def _malformed(path, what):
    """The last guard of an importer: a value of a kind or range its code does not expect
    (a damaged file that still parses) becomes one ModelError naming the file, not a
    traceback. The importers check what they can name precisely first."""
    try:
        yield
    except NnfabError:
        raise
    except KeyError as exc:
        raise ModelError(f"Model file {str(path)!r} is not {what}: the key "
                         f"{str(exc.args[0]) if exc.args else ''!r} is missing") from None
    except (IndexError, TypeError, AttributeError, ValueError, ArithmeticError,
            RecursionError):
        raise ModelError(f"Model file {str(path)!r} is not {what}: a value has an unexpected "
                         f"type or range (damaged file?)") from None
