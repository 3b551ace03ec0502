"""The delay graph of a :class:`~nnfab.hdl.shift_add.ShiftAddDense` adder plan and the
placement of its pipeline registers (:func:`nnfab.hdl.timing_model.schedule`)."""

from nnfab.fixed import FixedFormat

from .adder_graph import Leaf, Node, graph_nodes, integer_shape
from .timing_model import schedule

__all__ = ["layer_graph", "place_registers"]


def place_registers(plan, *, model, period_ns, levels_per_stage, lut_adder_width, spec, fin,
                    input_lanes, activation, output_lanes, tops):
    """The :class:`~nnfab.hdl.timing_model.Schedule` of ``plan``'s lanes and tree nodes
    (keyed by ``id``), as :class:`~nnfab.hdl.shift_add.ShiftAddDense` builds them: the graph
    of :func:`layer_graph`, every output's logic in the last stage."""
    nodes, outputs, levels = layer_graph(
        plan, model=model, lut_adder_width=lut_adder_width, spec=spec, fin=fin,
        input_lanes=input_lanes, activation=activation, output_lanes=output_lanes, tops=tops)
    return schedule(nodes, [(key, sum(steps)) for key, steps in outputs if steps is not None],
                    period_ns=period_ns, model=model, levels_per_stage=levels_per_stage,
                    levels=levels)


def layer_graph(plan, *, model, lut_adder_width, spec, fin, input_lanes, activation,
                output_lanes, tops, sources=None):
    """The delay graph of ``plan`` for :func:`nnfab.hdl.timing_model.schedule`: ``(nodes,
    outputs, levels)``.

    ``nodes`` are ``plan``'s lanes and tree nodes (keyed by ``id``) in dependency order. Each
    adder is as wide as its exact range (below ``tops[j]``, the bits output ``j`` keeps,
    when its cast wraps; the low bits of the less significant operand pass through without
    one), a carry chain or LUT logic up to ``lut_adder_width`` bits; an input lane costs its
    cast from ``fin`` (and reads ``sources[k]``, the key of the node that computes input
    element ``k``, when given); a product a multiplier. ``outputs[j]`` is ``(key, steps)``:
    the node output ``j`` reads (None: a constant) and the delays (ns) of its logic in three
    steps, the cast of the sum to ``spec.output_format`` (after the negation of a sum of
    negative terms), the activation and the output lane's cast; ``steps`` is None for an
    output that is always 0. ``levels`` maps each node to its addition level.
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

    def operands(item, ops):
        if not isinstance(item, Node) and item.index is not None and sources is not None and \
                sources[item.index] is not None:
            return (sources[item.index],)
        return tuple(map(id, ops))

    items = graph_nodes(plan)
    nodes = [(id(item), operands(item, ops), *delay(item), width(item), lut(item))
             for item, ops in items]
    fmt = spec.output_format
    cast_ns = model.cast_ns(FixedFormat(spec.accumulator.width, spec.accumulator.integer_width),
                            fmt)
    act_ns = 0.0
    if activation is not None:
        kind, fmt, params = activation
        act_ns = model.activation_ns(kind, params)
    outputs = []
    for j, root in enumerate(plan.roots):
        if output_lanes is not None and output_lanes[j] is None:
            outputs.append((None, None))  # always 0
            continue
        lane_ns = 0.0 if output_lanes is None else model.cast_ns(fmt, output_lanes[j])
        key = None if root is None else id(root.lane if isinstance(root, Leaf) else root)
        neg_ns = 0.0
        if root is not None and 1 not in root.signs:  # a sum of negative terms, negated
            neg_ns = sum(model.adder_ns(width(root.lane if isinstance(root, Leaf) else root)))
        outputs.append((key, (neg_ns + cast_ns, act_ns, lane_ns)))
    return nodes, outputs, {id(item): item.level for item, _ in items}
