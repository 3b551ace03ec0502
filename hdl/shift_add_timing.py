"""The delay graph of a :class:`~nnfab.hdl.shift_add.ShiftAddDense` adder plan and the
placement of its pipeline registers (:func:`nnfab.hdl.timing_model.schedule`)."""

from nnfab.fixed import FixedFormat

from .adder_graph import Leaf, Node, graph_nodes, integer_shape
from .timing_model import schedule

__all__ = ["place_registers"]


def place_registers(plan, *, model, period_ns, levels_per_stage, lut_adder_width, spec, fin,
                    input_lanes, activation, output_lanes, tops):
    """The :class:`~nnfab.hdl.timing_model.Schedule` of ``plan``'s lanes and tree nodes
    (keyed by ``id``), as :class:`~nnfab.hdl.shift_add.ShiftAddDense` builds them.

    Each adder is as wide as its exact range (below ``tops[j]``, the bits output ``j`` keeps,
    when its cast wraps; the low bits of the less significant operand pass through without
    one), a carry chain or LUT logic up to ``lut_adder_width`` bits; an input lane costs its
    cast from ``fin``; a product a multiplier; the outputs' logic is the negation of a sum of
    negative terms, the cast of the sum to ``spec.output_format``, the activation and the
    output lane's cast.
    """
    top = {}
    for j, root in enumerate(plan.roots):
        stack = [root] if isinstance(root, Node) else []
        while stack:
            node = stack.pop()
            top[id(node)] = tops[j]
            stack.extend(n for n in (node.a, node.b) if isinstance(n, Node))

    def width(item):
        if not isinstance(item, Node) and item.constant is not None:
            return 0  # never registered
        bits = integer_shape(item.lo, item.hi)[0]
        return bits if top.get(id(item)) is None else min(bits, top[id(item)] - item.e)

    def delay(item):
        if isinstance(item, Node):
            bits = width(item) - abs(item.a.e - item.b.e)
            return model.adder_ns(max(bits, 1), lut=bits <= lut_adder_width)
        if item.index is not None:
            return model.cast_ns(fin, input_lanes[item.index]), 0.0
        if item.parts is not None:
            sb = item.parts[3]
            bits = integer_shape(item.lo >> sb, item.hi >> sb)[0]
            return model.adder_ns(bits, lut=bits <= lut_adder_width)
        if item.product is not None:
            return model.multiplier_ns, 0.0
        if item.cast is not None:
            return (model.multiplier_ns if item.cast[0] is not None else 0.0) + \
                model.cast_ns(spec.product_format, spec.accumulator), 0.0
        return 0.0, 0.0  # a constant

    def lut(item):
        return (isinstance(item, Node) or item.parts is not None) and \
            width(item) <= lut_adder_width

    items = graph_nodes(plan)
    nodes = [(id(item), tuple(map(id, ops)), *delay(item), width(item), lut(item))
             for item, ops in items]
    fmt = spec.output_format
    out_ns = model.cast_ns(FixedFormat(spec.accumulator.width, spec.accumulator.integer_width),
                           fmt)
    if activation is not None:
        kind, fmt, params = activation
        out_ns += model.activation_ns(kind, params)
    outputs = []
    for j, root in enumerate(plan.roots):
        if output_lanes is not None and output_lanes[j] is None:
            continue  # always 0
        lane_ns = 0.0 if output_lanes is None else model.cast_ns(fmt, output_lanes[j])
        key = None if root is None else id(root.lane if isinstance(root, Leaf) else root)
        if root is not None and 1 not in root.signs:  # a sum of negative terms, negated
            lane_ns += sum(model.adder_ns(width(root.lane if isinstance(root, Leaf) else root)))
        outputs.append((key, out_ns + lane_ns))
    return schedule(nodes, outputs, period_ns=period_ns, model=model,
                    levels_per_stage=levels_per_stage,
                    levels={id(item): item.level for item, _ in items})
