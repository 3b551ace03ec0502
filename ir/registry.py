"""The registry of layer kinds: each kind is one module of :mod:`nnfab.ir` whose classes are
registered with the :func:`register` decorator.

An IR layer class (a :class:`~nnfab.ir.model.Layer`) registered for its ``kind`` holds
everything about the kind that is not hardware or golden model:

- its shapes, formats and checks (the dataclass itself);
- its native form: ``native_keys``, the keys of its ``model.json`` entry besides ``name``,
  ``type`` and ``inputs`` with their value schemas (:mod:`nnfab.ir.native_keys`; None for a
  kind stored as other kinds, such as a fused layer stored as its ``parts``);
  ``required_keys``, the keys float and quantized entries alike need; the class method
  ``from_native(entry)`` (an :class:`~nnfab.ir.native_form.Entry` to a layer) and the method
  ``to_native(entry, writer)`` (the layer's keys into the ``entry`` dict, its arrays through
  the :class:`~nnfab.ir.native_form.Writer`);
- its manifest and report row: ``manifest_row(engine)``, the kind-specific keys, reading the
  figures it reports (``n_shift_add_terms``, ...) from the built engine it is given.

A float layer class (a :class:`~nnfab.ir.float_layer.FloatLayer`) registered for the same
``kind`` holds the kind in float models: ``output_shape`` and ``forward`` (one argument per
input), ``from_native``/``to_native`` without formats, and its PTQ rule ``quantize(step)``
(a :class:`~nnfab.ir.calibrate.PTQStep` to an IR layer).

Engines and golden functions are tables of their own layers, keyed by the same ``kind``:
:data:`nnfab.gen.assemble.ENGINES` and :data:`nnfab.sim.golden.network.GOLDEN`.
"""

__all__ = ["KINDS", "FLOAT_KINDS", "register", "native_kinds"]

#: IR layer class of each kind, in the order of registration (the imports of ``ir/__init__``).
KINDS = {}
#: Float layer class of each kind that float models have.
FLOAT_KINDS = {}


def register(cls):
    """Class decorator: register an IR layer class in :data:`KINDS` or a float layer class in
    :data:`FLOAT_KINDS` under its ``kind``.

    Raises
    ------
    TypeError
        If ``cls`` is neither a :class:`~nnfab.ir.model.Layer` nor a
        :class:`~nnfab.ir.float_layer.FloatLayer` subclass.
    ValueError
        If its kind is already registered.
    """
    from .float_layer import FloatLayer
    from .model import Layer

    if isinstance(cls, type) and issubclass(cls, Layer):
        table = KINDS
    elif isinstance(cls, type) and issubclass(cls, FloatLayer):
        table = FLOAT_KINDS
    else:
        raise TypeError(f"Only Layer and FloatLayer subclasses can be registered, not {cls!r}")
    if cls.kind in table:
        raise ValueError(f"Layer kind {cls.kind!r} is already registered by "
                         f"{table[cls.kind].__qualname__}")
    table[cls.kind] = cls
    return cls


def native_kinds():
    """The kinds with a native form of their own, in registration order."""
    return [kind for kind, cls in KINDS.items() if cls.native_keys is not None]
