"""The QKeras quantizer -> fixed-point mapping against 31,600 applications of QKeras 0.9.0."""

import csv
import gzip
import json
from collections import defaultdict

import numpy as np
import pytest

from nnfab.casts import to_float
from nnfab.errors import UnsupportedLayerError
from nnfab.fixed import FixedFormat
from nnfab.gen.importers.qkeras_quantizers import (apply_quantizer, parse_quantizer,
                                                   quantizer_format)

from .conftest import FRAMEWORKS, need


def test_every_quantizer_application_is_exact():
    rows = defaultdict(list)
    with gzip.open(need(FRAMEWORKS / "qkeras_quantizers.csv.gz"), "rt") as file:
        for r in csv.DictReader(file):
            rows[(r["quantizer"], r["config"])].append((float(r["x"]), float(r["y"])))
    total = mismatches = 0
    for (name, config), pairs in rows.items():
        xy = np.array(pairs)
        fmt, codes = apply_quantizer(*parse_quantizer(
            {"class_name": name, "config": json.loads(config)}, "t"), xy[:, 0])
        y = to_float(codes, fmt)
        total += len(xy)
        mismatches += int(np.sum(y != xy[:, 1]))
    assert total == 31_600
    assert mismatches == 0


@pytest.mark.parametrize("spec,expected", [
    ({"class_name": "quantized_bits", "config": {"bits": 6, "integer": 0, "alpha": 1}},
     FixedFormat(6, 1, rounding="RND_CONV", overflow="SAT")),
    ({"class_name": "quantized_bits", "config": {"bits": 4, "integer": 0, "symmetric": 1}},
     FixedFormat(4, 1, rounding="RND_CONV", overflow="SAT_SYM")),
    ({"class_name": "quantized_bits", "config": {"bits": 4, "integer": 2, "keep_negative": 0}},
     FixedFormat(4, 2, signed=False, rounding="RND_CONV", overflow="SAT")),
    ("quantized_relu(3,1)", FixedFormat(3, 1, signed=False, rounding="RND_CONV", overflow="SAT")),
    ("quantized_relu(2)", FixedFormat(2, 0, signed=False, rounding="RND_CONV", overflow="SAT")),
])
def test_quantizer_formats(spec, expected):
    assert quantizer_format(*parse_quantizer(spec, "q")) == expected


@pytest.mark.parametrize("spec,message", [
    ({"class_name": "quantized_bits", "config": {"bits": 4, "alpha": "auto"}},
     "Layer 'q_dense_1': quantized_bits alpha 'auto' is not supported; use alpha=1 or None"),
    ({"class_name": "quantized_bits", "config": {"bits": 4, "use_stochastic_rounding": True}},
     "Layer 'q_dense_1': quantized_bits use_stochastic_rounding True is not supported; "
     "use False"),
    ("quantized_relu(4,0,use_sigmoid=1)",
     "Layer 'q_dense_1': quantized_relu use_sigmoid 1 is not supported; use 0"),
    ({"class_name": "ternary", "config": {}},
     "Layer 'q_dense_1': quantizer 'ternary' is not supported; use quantized_bits, "
     "quantized_relu or quantized_po2"),
])
def test_unsupported_quantizers_are_rejected(spec, message):
    with pytest.raises(UnsupportedLayerError) as info:
        parse_quantizer(spec, "q_dense_1")
    assert str(info.value) == message
