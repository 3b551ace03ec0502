"""Image tensors in two layouts: the model file's (``NCHW`` for PyTorch exports) and nnfab's
channels-last ``NHWC``, and input arrays given in either.

nnfab's hardware, golden model and build folders work on channels-last frames ``(H, W, C)``.
A model file may declare its image input (and output) channels-first; the importer turns the
model channels-last, and :class:`TensorLayout` remembers what the file declared, so that
``nnfab verify --inputs`` takes arrays shaped as the file's input and transposes them once
(:func:`resolve_inputs`). The build folder's manifest records it as
``{"model": "NCHW", "hardware": "NHWC"}`` under ``input.layout`` (and ``output.layout`` for a
4-D output); a manifest without it (older builds, vector inputs) means nnfab's layout only.
"""

from dataclasses import dataclass

import numpy as np

from nnfab.errors import ModelError, NnfabError

__all__ = ["TensorLayout", "HARDWARE_LAYOUT", "resolve_inputs", "manifest_layout"]

#: nnfab's layout of a batch of frames.
HARDWARE_LAYOUT = "NHWC"
#: Permutation of axes from each declared layout of a batch to ``NHWC``.
_TO_HARDWARE = {"NHWC": (0, 1, 2, 3), "NCHW": (0, 2, 3, 1)}


@dataclass(frozen=True)
class TensorLayout:
    """The layout a model file declares for a batch of frames, beside nnfab's.

    Parameters
    ----------
    model : ``"NCHW"`` or ``"NHWC"``
        The model file's layout (PyTorch exports: ``"NCHW"``; Keras, TFLite: ``"NHWC"``).
    hardware : ``"NHWC"``
        nnfab's layout (the only one).

    Raises
    ------
    ModelError
        For another layout name.
    """

    model: str
    hardware: str = HARDWARE_LAYOUT

    def __post_init__(self):
        if self.model not in _TO_HARDWARE:
            raise ModelError(f"Tensor layout {self.model!r} is not supported; accepted: "
                             f"{', '.join(map(repr, _TO_HARDWARE))}")
        if self.hardware != HARDWARE_LAYOUT:
            raise ModelError(f"Hardware layout {self.hardware!r} is not supported; nnfab's "
                             f"is {HARDWARE_LAYOUT!r}")

    @property
    def transposes(self):
        """Whether the two layouts differ."""
        return self.model != self.hardware

    def model_shape(self, shape):
        """The model file's shape of one frame of nnfab's ``shape`` ``(H, W, C)``."""
        h, w, c = shape
        return (c, h, w) if self.model == "NCHW" else (h, w, c)

    def to_hardware(self, x):
        """A batch ``(n, *model_shape)`` in nnfab's layout ``(n, H, W, C)``."""
        return np.ascontiguousarray(np.transpose(x, _TO_HARDWARE[self.model]))

    def to_model(self, x):
        """A batch ``(n, H, W, C)`` in nnfab's layout, in the model file's (the inverse of
        :meth:`to_hardware`)."""
        return np.ascontiguousarray(np.transpose(x, np.argsort(_TO_HARDWARE[self.model])))

    def as_dict(self):
        return {"model": self.model, "hardware": self.hardware}


def manifest_layout(section, where):
    """The :class:`TensorLayout` of a manifest's ``input`` or ``output`` section, or None when
    it records none (nnfab's layout only).

    Raises
    ------
    ModelError
        If the recorded layout is not an object of two known layout names (``where`` names the
        manifest in the message).
    """
    layout = section.get("layout")
    if layout is None:
        return None
    if not isinstance(layout, dict) or set(layout) != {"model", "hardware"}:
        raise ModelError(f"{where}: layout {layout!r} is not an object with 'model' and "
                         f"'hardware'; build it again with nnfab build")
    return TensorLayout(layout["model"], layout["hardware"])


def _shape_text(shape):
    return f"(n, {', '.join(map(str, shape))})"


def resolve_inputs(x, shape, layout=None, *, name="Inputs"):
    """``x`` in nnfab's layout, from an array in the model file's layout or in nnfab's.

    Parameters
    ----------
    x : ndarray, shape ``(n, *shape)`` or ``(n, *layout.model_shape(shape))``
    shape : tuple of int
        The model's input shape in nnfab's layout.
    layout : TensorLayout, optional
        The model file's declared layout of a frame input (None: nnfab's shape only).
    name : str
        What ``x`` is, for messages (e.g. ``"Inputs file 'x.npy'"``).

    Returns
    -------
    (ndarray, str or None)
        The inputs in nnfab's layout, and a line to show when the shape fits both layouts
        (``C == H == W``): then the model file's layout is taken.

    Raises
    ------
    NnfabError
        If ``x``'s shape is neither, naming both accepted shapes.
    """
    shape, got = tuple(shape), tuple(x.shape[1:])
    if layout is None or not layout.transposes:
        if got != shape:
            raise NnfabError(f"{name} of shape {x.shape} does not fit the model's input "
                             f"shape; expected {_shape_text(shape)}")
        return x, None
    declared = layout.model_shape(shape)
    if got == declared:
        note = None
        if declared == shape:
            note = (f"{name} of shape {x.shape} fits both the model file's {layout.model} "
                    f"layout and nnfab's {layout.hardware}; read as {layout.model}, as the "
                    f"model file declares")
        return layout.to_hardware(x), note
    if got == shape:
        return x, None
    raise NnfabError(f"{name} of shape {x.shape} does not fit the model's input shape; "
                     f"expected {_shape_text(declared)} in the model file's {layout.model} "
                     f"layout or {_shape_text(shape)} in nnfab's {layout.hardware}")
