"""Loading a model file of any supported kind, detected by content, into the IR."""

from pathlib import Path

import numpy as np

from nnfab.errors import ModelError

from .float_model import FloatModel
from .native import load_native

__all__ = ["LoadedModel", "load_model", "detect_kind", "prepare_model"]


class LoadedModel:
    """A model as the CLI works with it: the quantized IR and, when known, its float origin;
    ``notes`` are lines for the build report (settings read and found without effect);
    ``input_layout`` and ``output_layout`` the layouts the model file declares for a frame
    input and output (:class:`~nnfab.gen.tensor_layout.TensorLayout`; None: not frames, or
    nnfab's channels-last layout as Keras, TFLite and native files have it);
    ``input_quantization`` the input tensor's scale and zero point of an int8 TFLite or ONNX
    model (:class:`~nnfab.gen.input_quantization.InputQuantization`; None for other models)."""

    def __init__(self, model, float_model=None, source=None, notes=(), input_layout=None,
                 output_layout=None, input_quantization=None):
        self.model = model
        self.float_model = float_model
        self.source = source
        self.notes = list(notes)
        self.input_layout = input_layout
        self.output_layout = output_layout
        self.input_quantization = input_quantization


def detect_kind(path):
    """``"native"``, ``"keras-json"``, ``"hdf5"``, ``"keras3"``, ``"tflite"`` or ``"onnx"``
    from a file's content.

    Raises
    ------
    ModelError
        If the file is missing, empty or of no known kind.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"Model file {str(path)!r} does not exist")
    try:
        with open(path, "rb") as file:
            head = file.read(4096)
    except OSError as exc:
        raise ModelError(f"Cannot read model file {str(path)!r}: {exc.strerror}") from None
    if not head:
        raise ModelError(f"Model file {str(path)!r} is empty")
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "hdf5"
    if head[4:8] == b"TFL3":
        return "tflite"
    if head.startswith(b"PK\x03\x04"):
        from .importers.keras3 import is_keras3

        if is_keras3(path):
            return "keras3"
        raise ModelError(f"Model file {str(path)!r} is a zip but not a Keras 3 .keras file "
                         f"(no config.json and model.weights.h5 in it)")
    text = head.decode("utf-8", errors="replace").lstrip()
    if text.startswith("{"):
        if '"nnfab_model"' in text:
            return "native"
        if '"class_name"' in text or '"config"' in text:
            return "keras-json"
        raise ModelError(f"Model file {str(path)!r} is JSON but neither an nnfab model "
                         f"(\"nnfab_model\") nor a Keras model (\"class_name\")")
    if path.suffix == ".onnx" or head[:1] == b"\x08":
        return "onnx"
    raise ModelError(f"Model file {str(path)!r} is of no known kind (nnfab reads its native "
                     f".json+.npz, Keras .json+.h5, .h5 and .keras, ONNX, QONNX and int8 TFLite)")


def load_model(path, *, weights=None, calibration=None, input_format=None, ptq_config=None,
               reuse_factor=1):
    """Read ``path`` into a :class:`LoadedModel`; float models are quantized with PTQ.

    Parameters
    ----------
    weights : path, optional
        The weights file of a Keras ``.json`` model (default: ``NAME_weights.h5`` beside it).
    calibration : ndarray, optional
        PTQ calibration inputs (float models only); default: 1,000 seeded N(0, 1) vectors.
    input_format : FixedFormat, optional
        Input format for PTQ (default ``fixed<16,6>``).

    Raises
    ------
    ModelError
        As the importer of the file's kind.
    """
    from nnfab.fixed import FixedFormat

    from .ptq import PTQConfig, quantize_model

    kind = detect_kind(path)
    if kind == "native":
        loaded = load_native(path)
    else:
        from . import importers

        loaded = importers.load(path, kind=kind, weights=weights)
    if isinstance(loaded, FloatModel):
        if calibration is None:
            rng = np.random.default_rng(0)
            calibration = rng.normal(0.0, 1.0, (1000, *loaded.input_shape))
        model = quantize_model(loaded, calibration,
                               input_format=input_format or FixedFormat(16, 6),
                               config=ptq_config or PTQConfig(), reuse_factor=reuse_factor)
        result = LoadedModel(model, loaded, source=str(path))
    else:
        result = LoadedModel(loaded, None, source=str(path))
    if kind == "tflite":
        from .importers.tflite_file import read_tflite
        from .input_quantization import tflite_input_quantization

        result.input_quantization = tflite_input_quantization(read_tflite(path))
    if kind == "onnx":
        from .importers.onnx import declared_layouts, read_onnx
        from .importers.onnx_qdq import is_onnx_int8, onnx_input_quantization

        result.input_layout, result.output_layout = declared_layouts(
            path, result.model.input_shape, result.model.output_shape)
        if is_onnx_int8(read_onnx(path)):
            result.input_quantization = onnx_input_quantization(path)
    return result


def prepare_model(model, *, reuse_factor=None, per_layer_reuse=None, max_multipliers=None,
                  fuse=True, lut_adder_width=0, for_board=False, clock_mhz=None,
                  family="ecp5", fit=None, fit_results=None, fit_strict=True,
                  budget_results=None):
    """The passes ``nnfab build`` runs on a quantized model before building it.

    :class:`~nnfab.gen.passes.Validate`; :class:`~nnfab.gen.passes.ChooseReuseFactors` when a
    reuse factor (global, ``per_layer_reuse`` by layer name, or from ``max_multipliers``) is
    given; :class:`~nnfab.gen.passes.FuseShiftAdd` with ``lut_adder_width`` when ``fuse``
    (a board build, ``for_board``, keeps the layers with weights of more than 3 signed digits
    unfused: it puts dense layers' weights in block RAM), its registers placed by the delay
    model of ``family`` for ``clock_mhz`` (None: the pass's default clock).

    With ``fit`` (a device: ``name``, ``luts``, ``dsps``, as :class:`nnfab.boards.synth.Device`)
    and no reuse factor given, :class:`~nnfab.gen.passes.FitToDevice` runs before the fusion:
    it raises reuse factors until the estimate of the model as it will be built fits the
    device; its :class:`~nnfab.gen.passes.FitResult` is appended to ``fit_results`` (a list)
    when given. Without ``fit_strict`` (the default device, not one the user named) a model
    that does not fit even then keeps those reuse factors, with a warning in the result.
    With ``fit``, whatever the reuse factors, :class:`~nnfab.gen.passes.BudgetDspBlocks` runs
    last: the multipliers beyond the device's DSP blocks are built from LUTs; its
    :class:`~nnfab.gen.passes.DspBudget` is appended to ``budget_results`` when given (with
    ``fit_strict``, a model whose other layers' products alone take more blocks than the
    device's is an error; without, the result warns).

    Returns
    -------
    nnfab.ir.Model

    Raises
    ------
    ModelError
        As the passes (an invalid model, a per-layer reuse factor that names no layer or does
        not divide its ``n_in``, with ``fit_strict`` a model that does not fit ``fit`` at its
        largest reuse factors or whose products without a LUT alternative take more DSP
        blocks than it has).
    """
    from .passes import (BudgetDspBlocks, ChooseReuseFactors, FitToDevice, FuseShiftAdd,
                         Validate, run_passes)
    from .passes.shift_add import shift_add_eligible

    threshold = 3 if for_board else None
    passes, fitting = [Validate()], None
    if reuse_factor is not None or max_multipliers is not None or per_layer_reuse:
        passes.append(ChooseReuseFactors(reuse_factor=reuse_factor, per_layer=per_layer_reuse,
                                         max_multipliers=max_multipliers))
    elif fit is not None:
        # The layers FuseShiftAdd below builds as adder graphs (convolutions not on boards).
        kinds = ("dense",) if for_board else ("dense", "conv2d")
        fitting = FitToDevice(fit, fused=lambda layer: fuse and shift_add_eligible(
            layer, threshold, kinds=kinds), strict=fit_strict)
        passes.append(fitting)
    if fuse:
        # Board builds keep their convolutions' engines (their fit estimate counts them so).
        passes.append(FuseShiftAdd(lut_adder_width=lut_adder_width,
                                   multiplier_threshold=threshold,
                                   clock_mhz=clock_mhz, family=family,
                                   convolutions=not for_board))
    budgeting = BudgetDspBlocks(fit, strict=fit_strict) if fit is not None else None
    if budgeting is not None:
        passes.append(budgeting)
    model, _ = run_passes(model, passes)
    if fit_results is not None and fitting is not None:
        fit_results.append(fitting.result)
    if budget_results is not None and budgeting is not None:
        budget_results.append(budgeting.result)
    return model
