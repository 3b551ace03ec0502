"""The terms a shift-add dense layer (:class:`~nnfab.hdl.shift_add.ShiftAddDense`) sums: each
output's weights as canonical-signed-digit shifts of its input lanes, multiplier leaves for
weights of more digits than a threshold, hls4ml ``accum_t`` product casts as leaves, and the
bias; planned into one adder graph (:func:`~nnfab.hdl.adder_graph.plan_adders`)."""

from dataclasses import dataclass

from .adder_graph import Lane, plan_adders
from .csd import csd_digits

__all__ = ["DenseTermsPlan", "plan_dense_terms"]


@dataclass(frozen=True)
class DenseTermsPlan:
    """What :func:`plan_dense_terms` returns.

    Attributes
    ----------
    adders : AdderPlan
        The adder graph (:func:`~nnfab.hdl.adder_graph.plan_adders`).
    lanes : list of Lane or None
        The input lanes, by input index (None: a lane the layer does not read).
    n_multipliers : int
        Multiplier leaves (``lane * odd``, shared by the outputs with the same odd part).
    n_terms : int
        Shift-add terms (the leaves that are neither multipliers nor product casts).
    """

    adders: object
    lanes: list
    n_multipliers: int
    n_terms: int


def plan_dense_terms(spec, input_lanes, output_lanes, *, multiplier_threshold,
                     share_subexpressions):
    """The adder graph of ``y = W @ x + b`` in units of the accumulator's LSB.

    Parameters
    ----------
    spec : DenseSpec
    input_lanes : sequence of FixedFormat or None
        The format of each input lane (None: always 0, not read).
    output_lanes : sequence of FixedFormat or None, or None
        The format of each output lane; an output whose lane is None is dead (no terms).
    multiplier_threshold : int or None
        Weights of more CSD digits than this become multiplier leaves; None: never.
    share_subexpressions : bool
        Share common subexpressions between outputs.

    Returns
    -------
    DenseTermsPlan
    """
    wf = spec.weight_format.fraction_width
    lanes = [None if fmt is None else Lane(k, fmt.min_code, fmt.max_code, index=k)
             for k, fmt in enumerate(input_lanes)]
    terms, constants, products = [], [], {}
    # The sum's unit is 2**e0, the accumulator's LSB; a lane code weighs 2**-F_lane.
    e0 = -spec.accumulator.fraction_width
    acc = spec.accumulator
    for j in range(spec.n_out):
        out, bias = [], 0
        if output_lanes is None or output_lanes[j] is not None:  # else dead
            for k, lane in enumerate(lanes):
                w = int(spec.weights[j, k])
                if w == 0 or lane is None:
                    continue
                if not spec.exact_accumulation:
                    # hls4ml accum_t: the product cast to the accumulator, a leaf shared by
                    # the outputs with the same input and weight.
                    key = ("cast", k, w)
                    if key not in products:
                        products[key] = Lane(key, acc.min_code, acc.max_code, level=1,
                                             cast=(lane, w))
                    out.append((products[key], 0, 1))
                    continue
                e_lane = -input_lanes[k].fraction_width - wf - e0
                digits = csd_digits(w)
                if multiplier_threshold is None or len(digits) <= multiplier_threshold:
                    out.extend((lane, shift + e_lane, sign) for sign, shift in digits)
                    continue
                # A multiplier: lane * odd, shared by the outputs with the same odd part.
                shift = (abs(w) & -abs(w)).bit_length() - 1
                odd = abs(w) >> shift
                key = ("product", k, odd)
                if key not in products:
                    products[key] = Lane(key, lane.lo * odd, lane.hi * odd, level=1,
                                         product=(lane, odd))
                out.append((products[key], shift + e_lane, 1 if w > 0 else -1))
            if spec.biases is not None and not spec.exact_accumulation:
                if int(spec.biases[j]):
                    key = ("bias", j)
                    out.append((Lane(key, acc.min_code, acc.max_code, level=1,
                                     cast=(None, int(spec.biases[j]))), 0, 1))
            elif spec.biases is not None:
                bias = int(spec.biases[j]) << (-e0 - spec.bias_format.fraction_width)
        terms.append(out)
        constants.append(bias)
    n_multipliers = sum(lane.product is not None for lane in products.values())
    n_terms = sum(len(t) for t in terms) - sum(
        t[0].product is not None or t[0].cast is not None for out in terms for t in out)
    return DenseTermsPlan(plan_adders(terms, constants=constants, cse=share_subexpressions),
                          lanes, n_multipliers, n_terms)
