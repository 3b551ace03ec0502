"""Named combinational signals for values read more than once.

Amaranth (0.5) writes an expression out once per read: a value used twice in one expression
tree, or in two statements, becomes two copies of its logic in the netlist and in the Verilog
(yosys may merge them later, but conversion, the Verilog and Verilator pay first). A table
lookup whose result is sign-extended by a cast is a 128-entry ``casez`` per copied bit. A
signal is read by name, so a value that is read more than once (a table entry, a product, a
rounded value before saturation) goes through one.
"""

from amaranth.hdl import Signal, Value

__all__ = ["comb_wire", "no_wire"]


def comb_wire(m, prefix=""):
    """A function ``wire(value, name)`` that returns ``value`` as a signal of the same shape
    named ``prefix + name``, driven from ``value`` in ``m``'s combinational domain.

    Call it, and build the values it wires, outside ``with m.If(...)``: a statement added
    there would hold the signal at 0 when the condition is false.

    Parameters
    ----------
    m : amaranth.hdl.Module
    prefix : str
        Prepended to every name (Amaranth makes names unique within a module).
    """

    def wire(value, name):
        value = Value.cast(value)
        signal = Signal(value.shape(), name=f"{prefix}{name}")
        m.d.comb += signal.eq(value)
        return signal
    return wire


def no_wire(value, name):
    """``value`` unchanged: the ``wire`` of a pure expression (no module to drive a signal)."""
    return Value.cast(value)
