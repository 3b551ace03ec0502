"""Helpers shared by the importers: default formats, exact codes of quantized floats and IR layer
builders."""

import numpy as np

from nnfab.casts import exact_codes, quantize
from nnfab.errors import FormatError, ModelError
from nnfab.fixed import FixedFormat
from nnfab.conv_layers import Conv2DSpec
from nnfab.layers import DenseSpec

from nnfab.ir import DenseLayer
from nnfab.ir import Conv2DLayer

__all__ = ["DEFAULT_INPUT_FORMAT", "SOFTMAX_FORMAT", "exact", "dense_layer", "conv_layer",
           "relu_format", "open_hdf5", "check_finite"]

#: Input format of quantized Keras and QONNX models unless the caller names one (QKeras does not
#: quantize inputs; the jet tagger's and MNIST's test inputs are exact in it).
DEFAULT_INPUT_FORMAT = FixedFormat(16, 6)
#: Output format of a table softmax after a quantized layer.
SOFTMAX_FORMAT = FixedFormat(16, 1, signed=False, rounding="RND_CONV", overflow="SAT")


def check_finite(values, layer, what):
    """``values`` as float64, rejecting NaN and infinities with a message naming the layer."""
    array = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        bad = array[~np.isfinite(array)].flat[0]
        raise ModelError(f"Layer {layer!r}: {what} contain {float(bad)!r}; every value must be "
                         f"finite")
    return array


def exact(values, layer, what, fmt=None):
    """Raw codes of already-quantized float ``values``, exact: in ``fmt`` when given (a value
    that is not exactly representable raises), else in the narrowest format holding them all.

    Returns
    -------
    (FixedFormat, ndarray of int)

    Raises
    ------
    FormatError
        If a value is not exactly representable in ``fmt``.
    """
    values = check_finite(values, layer, what)
    if fmt is None:
        fmt, codes = exact_codes(values)
        return fmt, codes
    plain = fmt.replace(rounding="TRN", overflow="WRAP")
    codes = quantize(values, plain)
    back = np.ldexp(np.asarray(codes, dtype=np.float64), -plain.fraction_width)
    if not np.array_equal(back, values):
        index = np.flatnonzero((back != values).reshape(-1))[0]
        raise FormatError(f"Layer {layer!r}: {what} value {values.reshape(-1)[index]!r} is not "
                          f"exact in {fmt} (range {fmt.min_value} to {fmt.max_value})")
    return plain, codes


def dense_layer(name, *, weights, weight_format, biases, bias_format, input_format,
                output_format=None, reuse_factor=1):
    """A :class:`~nnfab.ir.DenseLayer` from codes; ``output_format`` None keeps the exact
    accumulator (no rounding, no overflow)."""
    try:
        spec = DenseSpec(weights, biases, input_format, weight_format,
                         output_format or input_format, bias_format=bias_format)
        if output_format is None:
            spec = DenseSpec(weights, biases, input_format, weight_format, spec.accumulator,
                             bias_format=bias_format)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"Layer {name!r}: {exc}") from None
    return DenseLayer(name, spec=spec, reuse_factor=reuse_factor)


def conv_layer(name, *, weights, weight_format, biases, bias_format, input_shape, input_format,
               strides=(1, 1), padding="valid", activation=None, reuse_factor=1):
    """A :class:`~nnfab.ir.Conv2DLayer` from codes (``weights`` of shape
    ``(n_filters, kh, kw, C_in)``) whose output is the exact accumulator; ``activation``
    ``"relu"`` fuses an exact ReLU (output in :func:`relu_format` of the accumulator)."""
    try:
        spec = Conv2DSpec(weights, biases, input_shape, input_format, weight_format,
                          input_format, strides=strides, padding=padding,
                          bias_format=bias_format)
        extra = {}
        if activation == "relu":
            extra = dict(activation="relu", activation_format=relu_format(spec.accumulator))
        spec = Conv2DSpec(weights, biases, input_shape, input_format, weight_format,
                          spec.accumulator, strides=strides, padding=padding,
                          bias_format=bias_format, **extra)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"Layer {name!r}: {exc}") from None
    return Conv2DLayer(name, spec=spec, reuse_factor=reuse_factor)


def relu_format(fmt):
    """The unsigned format with ``fmt``'s LSB that holds ``max(x, 0)`` of every ``fmt`` value
    exactly."""
    if not fmt.signed:
        return fmt
    return FixedFormat(max(fmt.width - 1, 1), fmt.integer_width - 1, signed=False)


#: Seconds a corrupt HDF5 file may take to read before nnfab gives up on it.
HDF5_SECONDS = 20
#: Largest total size of the datasets of one HDF5 model file, in bytes.
MAX_HDF5_BYTES = 1 << 30


class Hdf5Group:
    """A group of an HDF5 file read whole into memory: ``attrs`` (dict), ``name in group``,
    ``group[path]`` (a subgroup or a dataset's NumPy array) and ``visititems`` as in h5py."""

    def __init__(self, tree, prefix=""):
        self._tree, self._prefix = tree, prefix
        self.attrs = tree["attrs"].get(prefix, {})

    def _full(self, name):
        return f"{self._prefix}/{name}".strip("/") if self._prefix else name.strip("/")

    def _exists(self, full):
        return full in self._tree["datasets"] or full in self._tree["attrs"] or \
            any(key.startswith(full + "/") for key in self._tree["datasets"])

    def __contains__(self, name):
        return self._exists(self._full(name))

    def __getitem__(self, name):
        full = self._full(name)
        if full in self._tree["datasets"]:
            return self._tree["datasets"][full]
        if self._exists(full):
            return Hdf5Group(self._tree, full)
        raise KeyError(name)

    def visititems(self, function):
        start = self._prefix + "/" if self._prefix else ""
        for key in sorted(self._tree["datasets"]):
            if key.startswith(start):
                function(key[len(start):], self._tree["datasets"][key])

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _read_hdf5_tree(path, connection):
    """In a child process: every attribute and dataset of ``path``, sent through
    ``connection`` as ``("ok", tree)`` or ``("error", what)``."""
    try:
        import h5py

        tree = {"attrs": {}, "datasets": {}}
        total = 0
        with h5py.File(path, "r") as file:
            tree["attrs"][""] = dict(file.attrs)

            def visit(name, obj):
                nonlocal total
                tree["attrs"][name] = dict(obj.attrs)
                if isinstance(obj, h5py.Dataset):
                    total += obj.size * obj.dtype.itemsize
                    if total > MAX_HDF5_BYTES:
                        raise MemoryError
                    tree["datasets"][name] = obj[()]

            file.visititems(visit)
        connection.send(("ok", tree))
    except MemoryError:
        connection.send(("error", f"its datasets hold more than {MAX_HDF5_BYTES} bytes"))
    except BaseException:  # noqa: BLE001 -- h5py raises many kinds on corrupt files
        connection.send(("error", "truncated or corrupt?"))


def open_hdf5(path):
    """The whole content of an HDF5 file as an :class:`Hdf5Group`, or ModelError for a
    truncated or corrupt file.

    The file is read in a child process: the HDF5 library can loop forever on corrupt
    metadata, and a child can be stopped after :data:`HDF5_SECONDS`.

    Raises
    ------
    ModelError
        If the file cannot be read (naming the file), or takes longer than
        :data:`HDF5_SECONDS`.
    """
    import multiprocessing

    try:
        import h5py  # noqa: F401 -- fail here, not in the child
    except ImportError:  # pragma: no cover
        raise ModelError("Reading Keras .h5 files needs h5py (pip install h5py)") from None
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_read_hdf5_tree, args=(str(path), sender), daemon=True)
    child.start()
    sender.close()
    try:
        if not receiver.poll(HDF5_SECONDS):
            raise ModelError(f"Model file {str(path)!r} is not a readable HDF5 file (reading it "
                             f"took more than {HDF5_SECONDS} s; corrupt?)")
        try:
            status, value = receiver.recv()
        except (EOFError, OSError):
            status, value = "error", "truncated or corrupt?"
    finally:
        receiver.close()
        if child.is_alive():
            child.kill()
        child.join()
    if status != "ok":
        raise ModelError(f"Model file {str(path)!r} is not a readable HDF5 file ({value})")
    return Hdf5Group(value)
