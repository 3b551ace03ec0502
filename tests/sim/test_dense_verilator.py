"""Dense engines on Verilator against the golden model: the issue's grid of layer sizes,
reuse factors, widths and output overflow modes, with back-pressure and edge inputs."""

import numpy as np
import pytest

from nnfab.fixed import Overflow
from nnfab.hdl.dense import DenseEngine
from nnfab.sim.golden.dense import dense

from ..hdl.test_dense import edge_inputs, random_spec
from .verilator import run_stream_test

# Every reuse factor of the issue for both layer sizes; each case takes the next width and
# overflow mode in turn, so every width meets several modes and every mode several widths.
_MODES = list(Overflow)
CASES = [(n_in, n_out, r, width, _MODES[n % 4])
         for n, (n_in, n_out, r, width) in enumerate([
             (16, 64, 1, 8), (16, 64, 2, 16), (16, 64, 4, 4), (16, 64, 16, 8),
             (64, 32, 1, 16), (64, 32, 2, 4), (64, 32, 4, 8), (64, 32, 64, 16),
         ])]


@pytest.mark.slow
@pytest.mark.parametrize("n_in,n_out,reuse_factor,width,overflow", CASES,
                         ids=[f"{c[0]}x{c[1]}-R{c[2]}-{c[3]}bit-{c[4].name}" for c in CASES])
def test_dense_on_verilator(n_in, n_out, reuse_factor, width, overflow):
    seed = n_in * 1000 + reuse_factor * 10 + width
    rng = np.random.default_rng(seed)
    spec = random_spec(rng, n_in, n_out, width, overflow=overflow)
    x = edge_inputs(rng, spec, 200)
    dut = DenseEngine(spec, reuse_factor=reuse_factor)
    run = run_stream_test(
        dut, toplevel=f"dense_{n_in}x{n_out}_r{reuse_factor}", inputs=x.tolist(),
        input_formats=[spec.input_format] * n_in, expected=dense(x, spec).tolist(),
        output_formats=[spec.output_format] * n_out, seed=seed)
    assert run.results.total == run.results.passed == 1
