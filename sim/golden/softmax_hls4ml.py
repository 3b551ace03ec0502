"""Golden model of hls4ml's "stable" softmax: NumPy, exact, vectorized over a batch.

The executable specification of :class:`nnfab.hdl.softmax_hls4ml.Hls4mlSoftmax`, written from
hls4ml 1.3's ``nnet::softmax_stable`` (``templates/vivado/nnet_utils/nnet_activation.h``) and
``nnet::reduce`` (``nnet_common.h``); the steps and the tables are described in
:mod:`nnfab.softmax_hls4ml`. Every cast is :func:`nnfab.casts.cast`; the tables are
:attr:`~nnfab.softmax_hls4ml.Hls4mlSoftmaxSpec.exp_table_codes` and
:attr:`~nnfab.softmax_hls4ml.Hls4mlSoftmaxSpec.inv_table_codes`. Codes are ``int64`` while every
intermediate fits 62 bits and Python integers (``object`` arrays) beyond.
"""

import numpy as np

from nnfab.casts import as_codes, cast
from nnfab.softmax_hls4ml import check_hls4ml_softmax, reduce_order

__all__ = ["softmax_hls4ml"]

_SAFE_BITS = 62


def _wide(codes, bits):
    """``codes`` as ``object`` arrays when values of ``bits`` bits could overflow int64."""
    return codes.astype(object) if bits > _SAFE_BITS else codes.astype(np.int64)


def _table(codes, fmt):
    dtype = object if fmt.width > _SAFE_BITS else np.int64
    return np.array(codes, dtype=dtype)


def softmax_hls4ml(codes, spec):
    """hls4ml's stable softmax of raw input codes along the last axis.

    Parameters
    ----------
    codes : array_like of int, shape ``(batch, n)`` or ``(n,)``
        Raw codes of ``spec.input_format``.
    spec : Hls4mlSoftmaxSpec

    Returns
    -------
    ndarray, same shape as ``codes``
        Raw codes of ``spec.output_format``: ``int64``, or ``object`` beyond 62 bits.

    Raises
    ------
    TypeError
        If ``spec`` is not an :class:`~nnfab.softmax_hls4ml.Hls4mlSoftmaxSpec` or a code not
        an integer.
    ValueError
        If a code is out of ``spec.input_format``'s range, or ``codes`` is not of shape
        ``(batch, n)`` or ``(n,)``.
    """
    check_hls4ml_softmax(spec)
    fin, accum = spec.input_format, spec.accum_format
    x = as_codes(codes, fin)
    if x.ndim not in (1, 2) or x.shape[-1] != spec.n:
        raise ValueError(
            f"Codes must have shape (batch, {spec.n}) or ({spec.n},), not {x.shape!r}")
    shape = x.shape
    # 1-2: the exact maximum and differences, cast to inp_norm_t (wraps).
    diff_format = fin.sub_format(fin)
    x = _wide(x.reshape(-1, spec.n), diff_format.width)
    diff = x.max(axis=-1, keepdims=True) - x
    norm = cast(diff, diff_format, spec.norm_format)
    # 3-4: exp table look-up, each entry cast to accum_t.
    exp_codes = _table(spec.exp_table_codes, spec.exp_table_format)
    exp_res = cast(exp_codes[spec.exp_index(norm).astype(np.int64)], spec.exp_table_format,
                   accum)
    # 5: hls4ml's reduction tree, every sum cast to accum_t, then to inv_inp_t.
    sum_format = accum.add_format(accum)
    exp_res = _wide(exp_res, sum_format.width)

    def reduce(node):
        if isinstance(node, int):
            return exp_res[:, node]
        total = reduce(node[0]) + reduce(node[1])
        return _wide(cast(total, sum_format, accum), sum_format.width)

    exp_sum = cast(reduce(reduce_order(spec.n)), accum, spec.inv_input_format)
    # 6: inverse table look-up at the top bits of the two's complement pattern.
    inv_codes = _table(spec.inv_table_codes, spec.inv_table_format)
    inv = inv_codes[spec.inv_index(exp_sum).astype(np.int64)]
    # 7: exact products, one cast to result_t.
    product_format = accum.mul_format(spec.inv_table_format)
    product = _wide(exp_res, product_format.width) * inv[:, np.newaxis]
    return cast(product, product_format, spec.output_format).reshape(shape)
