"""The adder graph of a constant matrix-vector product ``y = W @ x + b``: plain Python planning
for :class:`nnfab.hdl.shift_add.ShiftAddDense`.

Every non-zero weight is written in canonical signed digits (:func:`~nnfab.hdl.csd.csd_digits`),
so output ``j`` is a sum of signed, shifted input lanes, its *terms* ``(lane, exponent,
sign)``. The plan then

1. extracts common subexpressions: the two-term pattern ``lane_a ± lane_b << d`` that occurs
   most often (as disjoint term pairs, in all outputs) becomes a new lane computed once,
   repeatedly, until no pattern occurs twice
   (the greedy pairwise elimination of R. I. Hartley, "Subexpression sharing in filters using
   canonic signed digit multipliers", IEEE TCAS-II 43(10), 1996; da4ml does the same for
   neural networks: C. Sun et al., "da4ml: Distributed Arithmetic for Real-time Neural Networks
   on FPGAs", 2025);
2. builds one adder tree per output, pairing the shallowest terms first and, among those, the
   ones whose values need the fewest bits (Huffman's rule on depth, then width), so a tree is
   as shallow as the term depths allow and wide sums are added last;
3. records every node's exact integer range, so the hardware gives each adder exactly the bits
   its values need.

Lanes are integers: an input lane is a code; a shared lane ``(a << sa) + sign * (b << sb)``;
a product lane ``a * factor`` (a constant multiplication, a leaf like any other, for weights
whose digits would cost more adders than a multiplier).
A term ``(lane, e, sign)`` is worth ``sign * lane * 2**e``.
"""

import collections
import heapq

__all__ = ["Lane", "Leaf", "Node", "AdderPlan", "MAX_CSE_PAIRS", "integer_shape", "plan_adders",
           "graph_nodes"]


def _bits(lo, hi):
    """Magnitude bits of the integers in [lo, hi] (the top of a node, relative to its LSB)."""
    return max(abs(lo), abs(hi)).bit_length()


class Lane:
    """An integer operand in ``[lo, hi]``, available after ``level`` addition levels: an input
    (``index``), a constant (``constant``), a shared sum ``parts = (a, b, sa, sb, sign)``
    worth ``(a << sa) + sign * (b << sb)``, or a constant product ``product = (a, factor)``
    worth ``a * factor`` (a multiplier, for a weight of many digits), or a cast ``cast = (a,
    factor)``: ``a * factor`` (or the constant ``factor`` when ``a`` is None) cast to an
    explicit accumulator format (hls4ml's ``accum_t``) by the hardware, in ``[lo, hi]``."""

    def __init__(self, key, lo, hi, *, level=0, index=None, constant=None, parts=None,
                 product=None, cast=None):
        self.key, self.lo, self.hi, self.level = key, lo, hi, level
        self.index, self.constant, self.parts = index, constant, parts
        self.product, self.cast = product, cast

    def __repr__(self):
        return f"Lane({self.key!r}, [{self.lo}, {self.hi}], level {self.level})"


class Leaf:
    """A term of an output's sum: ``sign * lane * 2**e``."""

    def __init__(self, lane, e, sign):
        self.lane, self.e, self.sign, self.level = lane, e, sign, lane.level
        self.lo, self.hi = (lane.lo, lane.hi) if sign > 0 else (-lane.hi, -lane.lo)
        self.signs = frozenset((sign,))

    @property
    def top(self):
        return self.e + _bits(self.lo, self.hi)


class Node:
    """The sum of two subtrees, worth ``value * 2**e`` with the integer ``value`` in ``[lo,
    hi]``; ``signs`` are the signs of its leaves (the signs it can be formed with, without a
    negation)."""

    def __init__(self, a, b):
        self.a, self.b = a, b
        self.level = max(a.level, b.level) + 1
        self.e = min(a.e, b.e)
        sa, sb = a.e - self.e, b.e - self.e
        self.lo = (a.lo << sa) + (b.lo << sb)
        self.hi = (a.hi << sa) + (b.hi << sb)
        self.signs = a.signs | b.signs

    @property
    def top(self):
        return self.e + _bits(self.lo, self.hi)


class AdderPlan:
    """The plan of a layer: ``roots[j]`` (a Leaf or Node, or None for a sum of nothing),
    ``shared`` lanes (in dependency order) and ``levels`` (addition levels of the deepest
    output)."""

    def __init__(self, roots, shared):
        self.roots, self.shared = roots, shared
        self.levels = max((r.level for r in roots if r is not None), default=0)

    @property
    def n_shared(self):
        return len(self.shared)

    @property
    def n_tree_adders(self):
        def count(node):
            return 0 if not isinstance(node, Node) else 1 + count(node.a) + count(node.b)
        return sum(count(r) for r in self.roots if r is not None)

    @property
    def n_adders(self):
        """Two-input adders (and subtractors): shared lanes plus tree nodes."""
        return self.n_shared + self.n_tree_adders


def _term_order(term):
    return (str(term[0].key), term[1], term[2])


def integer_shape(lo, hi):
    """``(width, signed)`` of the narrowest two's complement or unsigned integer holding
    [lo, hi]."""
    if lo >= 0:
        return max(hi.bit_length(), 1), False
    return max((-lo - 1).bit_length(), hi.bit_length()) + 1, True


def _pattern(t1, t2):
    """The pattern of two terms, up to a common shift: ``(a, b, d, rel)`` with ``d >= 0``,
    worth ``a + rel * (b << d)`` at the lower exponent (``a`` is the lower term; at equal
    exponents, the one first in term order)."""
    if (t2[1], _term_order(t2)) < (t1[1], _term_order(t1)):
        t1, t2 = t2, t1
    return t1[0], t2[0], t2[1] - t1[1], t1[2] * t2[2]


def _pattern_id(pattern):
    a, b, d, rel = pattern
    return a.key, b.key, d, rel


def _pattern_range(a, b, d, rel):
    b_lo, b_hi = (b.lo, b.hi) if rel > 0 else (-b.hi, -b.lo)
    return a.lo + (b_lo << d), a.hi + (b_hi << d)


def _occurrences(terms):
    """Per pattern id, the number of disjoint pairs of ``terms`` forming it (pairs taken
    greedily in term order), and the patterns by id."""
    ordered = sorted(terms, key=_term_order)
    counts, patterns, used = collections.Counter(), {}, collections.defaultdict(set)
    for i, t1 in enumerate(ordered):
        for j in range(i + 1, len(ordered)):
            t2 = ordered[j]
            if t1[0] is t2[0] and t1[1] == t2[1]:
                continue  # x - x or x + x: never useful
            pattern = _pattern(t1, t2)
            pid = _pattern_id(pattern)
            taken = used[pid]
            if i in taken or j in taken:
                continue
            taken.update((i, j))
            counts[pid] += 1
            patterns[pid] = pattern
    return counts, patterns


def _eliminate_common_subexpressions(outputs, max_rounds):
    """Greedy two-term CSE over ``outputs`` (lists of terms), in place; returns the new lanes.

    A pattern is two terms of one output, of any lanes (the same lane too: ``x + (x << 2)``),
    up to a common shift, normalised to the lower term plus or minus the higher one shifted
    left: ``(lane_a, lane_b, d >= 0, sign_a * sign_b)``. Its count is the number of disjoint
    term pairs forming it over all outputs, several in one output included. The pattern that
    occurs most often becomes a lane (ties: the narrowest lane, then the smallest shift, then
    the shallowest operands, then the first in lane order) while one occurs at least twice.
    Counts are kept per output and redone only for the outputs a round changes."""
    shared = []
    per_output = [_occurrences(terms) for terms in outputs]
    total, patterns = collections.Counter(), {}
    for counts, pats in per_output:
        total.update(counts)
        patterns.update(pats)

    def rank(pid):
        a, b, d, rel = patterns[pid]
        return (total[pid], -integer_shape(*_pattern_range(a, b, d, rel))[0], -d,
                max(a.level, b.level), tuple(str(k) for k in pid))

    for _ in range(max_rounds):
        candidates = [pid for pid, n in total.items() if n >= 2]
        if not candidates:
            break
        pid = max(candidates, key=rank)
        a, b, d, rel = patterns[pid]
        lo, hi = _pattern_range(a, b, d, rel)
        new = Lane(("shared", len(shared)), lo, hi, level=max(a.level, b.level) + 1,
                   parts=(a, b, 0, d, rel))
        shared.append(new)
        for j, terms in enumerate(outputs):
            if pid not in per_output[j][0]:
                continue
            for t1 in sorted(terms, key=_term_order):
                if t1[0] is not a or t1 not in terms:
                    continue
                t2 = (b, t1[1] + d, t1[2] * rel)
                if t2 in terms and _pattern(t1, t2)[0] is a:
                    terms.remove(t1)
                    terms.remove(t2)
                    terms.append((new, t1[1], t1[2]))
            total.subtract(per_output[j][0])
            per_output[j] = _occurrences(terms)
            total.update(per_output[j][0])
            patterns.update(per_output[j][1])
        total = +total  # drop patterns that no longer occur
    return shared


def _tree(leaves):
    """Huffman pairing on (level, top): the two shallowest, then narrowest, subtrees first."""
    heap = [(leaf.level, leaf.top, leaf.e, n, leaf) for n, leaf in enumerate(leaves)]
    heapq.heapify(heap)
    count = len(heap)
    while len(heap) > 1:
        a = heapq.heappop(heap)[-1]
        b = heapq.heappop(heap)[-1]
        node = Node(a, b)
        heapq.heappush(heap, (node.level, node.top, node.e, count, node))
        count += 1
    return heap[0][-1] if heap else None


#: Term pairs (summed over outputs) above which a layer is planned without subexpression
#: sharing: the greedy search recounts the pairs of every output it changes, once per shared
#: subexpression, so its time grows faster than this count (qkeras_3layer: 0.7 s at 13,000
#: pairs, 8 s at 41,000).
MAX_CSE_PAIRS = 20_000


def plan_adders(terms, *, constants=None, cse=True, max_cse_rounds=2000,
                max_cse_pairs=MAX_CSE_PAIRS):
    """Plan the adder graph of ``len(terms)`` sums.

    Parameters
    ----------
    terms : list of list of (Lane, int, int)
        Per output, its terms ``(lane, e, sign)`` worth ``sign * lane * 2**e``; input lanes have
        level 0.
    constants : list of int or None
        Per output, an integer constant added at exponent 0 (the bias in units of the sum's
        unit), or None.
    cse : bool
        Share common two-term subexpressions between outputs.
    max_cse_rounds : int
        Upper bound on extracted subexpressions (each round extracts one).
    max_cse_pairs : int
        Share no subexpressions when the outputs have more term pairs than this (the planning
        time would grow too long).

    Returns
    -------
    AdderPlan
    """
    outputs = [list(t) for t in terms]
    pairs = sum(len(t) * (len(t) - 1) // 2 for t in outputs)
    shared = _eliminate_common_subexpressions(outputs, max_cse_rounds) \
        if cse and pairs <= max_cse_pairs else []
    roots = []
    for j, out in enumerate(outputs):
        leaves = [Leaf(lane, e, sign) for lane, e, sign in sorted(out, key=_term_order)]
        constant = 0 if constants is None else constants[j] or 0
        if constant:
            mag, e = abs(constant), 0
            while mag % 2 == 0:
                mag, e = mag >> 1, e + 1
            lane = Lane(("constant", j), mag, mag, constant=mag)
            leaves.append(Leaf(lane, e, 1 if constant > 0 else -1))
        roots.append(_tree(leaves))
    return AdderPlan(roots, shared)


def _operands(item):
    """What a lane or node reads: lanes and nodes (a leaf stands for its lane)."""
    if isinstance(item, Node):
        parts = (item.a, item.b)
    elif item.parts is not None:
        parts = item.parts[:2]
    elif item.product is not None:
        parts = item.product[:1]
    elif item.cast is not None and item.cast[0] is not None:
        parts = item.cast[:1]
    else:
        parts = ()
    return tuple(p.lane if isinstance(p, Leaf) else p for p in parts)


def graph_nodes(plan):
    """Every lane and tree node that ``plan``'s outputs read, in dependency order, each with
    what it reads: a list of ``(item, operands)`` (a leaf stands for its lane)."""
    order, seen = [], set()
    for root in plan.roots:
        if root is None:
            continue
        stack = [(root.lane if isinstance(root, Leaf) else root, False)]
        while stack:
            item, expanded = stack.pop()
            if id(item) in seen:
                continue
            if expanded:
                seen.add(id(item))
                order.append((item, _operands(item)))
                continue
            stack.append((item, True))
            stack.extend((op, False) for op in _operands(item) if id(op) not in seen)
    return order
