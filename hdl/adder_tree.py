"""Pipelined adder trees: many sums reduced pairwise, one register level per addition level."""

import math

from amaranth.hdl import C, Const, Signal, Value

__all__ = ["adder_tree_depth", "register_stages", "register_levels", "pipelined_sums"]


def adder_tree_depth(n_terms):
    """Addition levels of a pairwise tree over ``n_terms`` terms: ``ceil(log2(n_terms))``."""
    return math.ceil(math.log2(n_terms)) if n_terms > 1 else 0


def register_stages(depth, levels_per_stage):
    """Register stages of a tree of ``depth`` addition levels registered every
    ``levels_per_stage`` levels (and after the last): ``ceil(depth / levels_per_stage)``."""
    return -(-depth // levels_per_stage)


def register_levels(depth, levels_per_stage):
    """The addition levels (0-based) after which a tree of ``depth`` levels registered every
    ``levels_per_stage`` levels (and after the last) has its registers."""
    return tuple(level for level in range(depth)
                 if (level + 1) % levels_per_stage == 0 or level == depth - 1)


def pipelined_sums(m, domain, groups, *, depth, enable, levels_per_stage=1, registered=None,
                   name="tree"):
    """Reduce each group of terms to its sum through ``depth`` addition levels.

    Every level adds terms pairwise (an odd term is carried); the results are registered in
    ``domain``, when ``enable`` is high, after the levels ``registered`` lists (by default
    every ``levels_per_stage`` levels) and after the last one, so all sums come out exactly
    as many cycles (of enabled clocks) after their terms as there are register levels.
    Widths grow by one bit per addition, so no sum overflows. An empty group sums to the
    constant 0. A sum that is not registered is a wire of its own, kept by synthesis, so
    that each addition stays a carry-chain adder rather than being merged into a
    multi-operand one (which yosys maps to LUTs on ECP5: 4.5 times the LUTs of a 16x64 layer
    at two levels per stage).

    Parameters
    ----------
    m : Module
    domain : str
        Clock domain of the registers, usually ``"sync"``.
    groups : list of list of Value
        The terms of each sum.
    depth : int
        Register levels; must be at least ``adder_tree_depth`` of the largest group.
    enable : Value
        Pipeline advance (global stall when low).
    levels_per_stage : int, >= 1
        Addition levels between registers: fewer flip-flops against a longer path.
    registered : collection of int, optional
        The levels after which to register instead (placed by a delay model); the last level
        is registered whatever it holds.

    Returns
    -------
    list of Value
        One sum per group.
    """
    groups = [[Value.cast(term) for term in group] for group in groups]
    cuts = set(register_levels(depth, levels_per_stage) if registered is None else registered)
    cuts.add(depth - 1)
    for level in range(depth):
        next_groups = []
        for index, group in enumerate(groups):
            if not group:
                next_groups.append([])
                continue
            sums = [group[n] + group[n + 1] if n + 1 < len(group) else group[n]
                    for n in range(0, len(group), 2)]
            if level not in cuts:
                wires = []
                for n, expr in enumerate(sums):
                    if len(group) == 1 or n * 2 + 1 >= len(group):
                        wires.append(expr)  # a carried term: no adder
                        continue
                    wire = Signal(expr.shape(), name=f"{name}_l{level}_{index}_{n}_sum",
                                  attrs={"keep": Const(1, 1)})
                    m.d.comb += wire.eq(expr)
                    wires.append(wire)
                next_groups.append(wires)
                continue
            registered = []
            for n, expr in enumerate(sums):
                # A data register: the valid bits that travel beside it have the reset.
                reg = Signal(expr.shape(), name=f"{name}_l{level}_{index}_{n}", reset_less=True)
                with m.If(enable):
                    m.d[domain] += reg.eq(expr)
                registered.append(reg)
            next_groups.append(registered)
        groups = next_groups
    results = []
    for group in groups:
        if len(group) > 1:
            raise ValueError(f"Adder tree depth {depth} is too small for {len(group)} terms left")
        results.append(group[0] if group else C(0, 1))
    return results

