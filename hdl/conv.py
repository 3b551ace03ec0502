"""Streaming convolution engines (1-D, 2-D and depthwise), channels-last, one pixel per transfer."""

from fractions import Fraction

from amaranth.hdl import Module
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from nnfab.conv_layers import Conv2DSpec
from nnfab.layers import reuse_factors

from .activations import activation
from .cast import fixed_shape
from .dense import DenseEngine
from .line_buffer import SlidingWindow
from .pipeline import pipeline_advance
from .shift_add import ShiftAddDense
from .unused import discard
from .wires import comb_wire

__all__ = ["ConvEngine"]


class ConvEngine(wiring.Component):
    """Streaming convolution with constant weights: ``y = act(cast(conv(x, W) + b))``.

    Handles :class:`~nnfab.conv_layers.Conv2DSpec`, a 1-D convolution (the ``Conv2DSpec`` of
    height 1 that :func:`~nnfab.conv_layers.Conv1DSpec` returns) and
    :class:`~nnfab.conv_layers.DepthwiseConv2DSpec`. The golden model is
    :func:`nnfab.sim.golden.conv.conv2d`.

    Structure. A :class:`~nnfab.hdl.line_buffer.SlidingWindow` (line buffer in an
    ``amaranth.lib.memory.Memory`` plus a ``kh x kw`` register window) walks the padded frame
    (padding positions hold ``spec.pad_code``), one padded position per cycle, and offers
    every strided window, ``kh * kw * C_in`` elements, to a dense engine whose weight matrix
    is the kernel reshaped to ``(n_filters, kh * kw * C_in)`` (block-sparse for a depthwise
    kernel: its zero weights are pruned at elaboration). By default that is a
    :class:`~nnfab.hdl.dense.DenseEngine`: its products, pipelined adder trees, accumulator
    and output cast do the arithmetic, and an optional last stage applies the fused
    activation. With ``adder_graph`` (reuse factor 1) it is a
    :class:`~nnfab.hdl.shift_add.ShiftAddDense`: one free-running adder graph of the window
    with the output cast and the activation in it, registers placed by its delay model. The
    window generator stalls on back-pressure; frames may follow each other back to back.

    Parameters
    ----------
    spec : Conv2DSpec
    reuse_factor : int, >= 1, dividing ``kh * kw * C_in``
        Products per multiplier per output pixel (hls4ml's reuse factor); the dense engine
        takes one window every ``reuse_factor`` cycles.
    multiplier_threshold : int, >= 0
        As :class:`~nnfab.hdl.dense.DenseEngine`.
    adder_graph : dict or None
        Build the window product as a :class:`~nnfab.hdl.shift_add.ShiftAddDense` with these
        keyword arguments (``clock_mhz``, ``family``, ``adder_levels_per_stage``,
        ``lut_adder_width``, ``multiplier_threshold``); needs reuse factor 1 and exact
        accumulation or a signed accumulator. None (the default): a DenseEngine.
    fabric_multipliers : int, >= 0
        As :class:`~nnfab.hdl.dense.DenseEngine` (0 with ``adder_graph``).

    Members
    -------
    i : ``In(stream.Signature(data.ArrayLayout(fixed_shape(spec.input_format), C_in)))``
        One input pixel per transfer, raster order.
    o : ``Out(stream.Signature(data.ArrayLayout(fixed_shape(spec.result_format), n_filters)))``
        One output pixel per transfer, raster order.

    Attributes
    ----------
    cycles_per_frame : int
        Cycles between the first input pixels of consecutive frames at full rate. One padded
        position per cycle, and a window is taken at most every ``reuse_factor`` cycles (the
        generator waits while a window is pending): with ``reuse_factor`` 1 it is
        ``(H + pad_top + pad_bottom) * (W + pad_left + pad_right)``; in general it lies between
        ``max(Hp * Wp, R * H_out * W_out)`` and ``Hp * Wp + (R - 1) * H_out * W_out``, exactly
        as :func:`~nnfab.hdl.line_buffer.window_schedule` computes.
    latency : int
        Cycles from the first accepted input pixel of a frame to its first output pixel:
        the cycles until the first window is complete (its position in the padded scan,
        minus the padding positions before the first pixel), plus 1 (window register), plus
        the dense engine's latency, plus 1 with an activation outside it (a DenseEngine).
    frame_latency : int
        Cycles from the first accepted input pixel of a frame to its last output pixel.
    initiation_interval : int or Fraction
        Average cycles per input pixel at full rate: ``cycles_per_frame / (H * W)`` (1 for
        ``"valid"`` padding and ``reuse_factor`` 1).
    line_buffer_depth, line_buffer_width : int
        ``W + pad_left + pad_right`` entries of ``(kh - 1) * C_in * input_format.width`` bits.

    Raises
    ------
    TypeError
        If ``spec`` is not a Conv2DSpec or a parameter not an integer.
    ValueError
        As :class:`~nnfab.hdl.dense.DenseEngine` for ``reuse_factor`` and
        ``multiplier_threshold`` and ``fabric_multipliers``, as
        :class:`~nnfab.hdl.shift_add.ShiftAddDense` for ``adder_graph``; or if
        ``adder_graph`` is given with a reuse factor other than 1 or fabric multipliers.
    """

    def __init__(self, spec, *, reuse_factor=1, multiplier_threshold=3, adder_graph=None,
                 fabric_multipliers=0):
        if not isinstance(spec, Conv2DSpec):
            discard(self)  # a rejected design is not an unused one
            raise TypeError(f"Layer must be a Conv2DSpec, not {spec!r}")
        n_window = spec.dense_spec.n_in
        if isinstance(reuse_factor, int) and not isinstance(reuse_factor, bool) and \
                reuse_factor not in reuse_factors(n_window):
            discard(self)
            raise ValueError(  # the dense engine's groups of outputs are not used here
                f"Reuse factor must divide n_in {n_window} (one of "
                f"{', '.join(map(str, reuse_factors(n_window)))}), not {reuse_factor!r}")
        try:
            if adder_graph is None:
                self._dense = DenseEngine(spec.dense_spec, reuse_factor=reuse_factor,
                                          multiplier_threshold=multiplier_threshold,
                                          fabric_multipliers=fabric_multipliers)
            elif fabric_multipliers:
                raise ValueError(f"An adder-graph convolution has no multipliers to build "
                                 f"from LUTs, not {fabric_multipliers!r}")
            elif reuse_factor != 1:
                raise ValueError(f"An adder-graph convolution needs reuse factor 1, not "
                                 f"{reuse_factor!r}")
            else:
                act = (spec.activation, spec.activation_format,
                       dict(spec.activation_params or {})) if spec.activation else None
                self._dense = ShiftAddDense(spec.dense_spec, activation=act, **adder_graph)
        except (TypeError, ValueError):
            discard(self)  # a rejected design is not an unused one
            raise
        self._spec = spec
        self._window = SlidingWindow(input_shape=spec.input_shape, kernel_size=spec.kernel_size,
                                     strides=spec.strides, pads=spec.pads,
                                     shape=fixed_shape(spec.input_format),
                                     pad_code=spec.pad_code)
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(fixed_shape(spec.input_format),
                                                      spec.n_channels))),
            "o": Out(stream.Signature(data.ArrayLayout(fixed_shape(spec.result_format),
                                                       spec.n_filters))),
        })

    def __repr__(self):
        return (f"ConvEngine(input_shape={self._spec.input_shape!r}, kernel_size="
                f"{self._spec.kernel_size!r}, n_filters={self._spec.n_filters}, "
                f"reuse_factor={self.reuse_factor})")

    @property
    def spec(self):
        return self._spec

    @property
    def reuse_factor(self):
        return self._dense.initiation_interval  # the dense engine's II is its reuse factor

    @property
    def dense(self):
        """The engine that computes one output pixel: a :class:`~nnfab.hdl.dense.DenseEngine`,
        or with ``adder_graph`` a :class:`~nnfab.hdl.shift_add.ShiftAddDense`."""
        return self._dense

    @property
    def adder_graph(self):
        """Whether the window product is one adder graph (with the activation in it)."""
        return isinstance(self._dense, ShiftAddDense)

    @property
    def _separate_activation(self):
        return bool(self._spec.activation) and not self.adder_graph

    @property
    def window(self):
        """The :class:`~nnfab.hdl.line_buffer.SlidingWindow`."""
        return self._window

    @property
    def line_buffer_depth(self):
        return self._window.line_buffer_depth

    @property
    def line_buffer_width(self):
        return self._window.line_buffer_width

    @property
    def n_multipliers(self):
        return self._dense.n_multipliers

    @property
    def n_fabric_multipliers(self):
        return getattr(self._dense, "n_fabric_multipliers", 0)

    @property
    def _tail_latency(self):
        return self._dense.latency + (1 if self._separate_activation else 0)

    def schedule(self, n_frames=1):
        """Full-rate cycles of input pixel transfers and output pixel transfers, counted
        from the first padded position."""
        inputs, taken = self._window.schedule(accept_interval=self.reuse_factor,
                                              n_frames=n_frames)
        tail = self._tail_latency  # once: the dense engine computes it from its adder trees
        return inputs, [t + tail for t in taken]

    @property
    def cycles_per_frame(self):
        inputs, _ = self.schedule(n_frames=3)
        n = len(inputs) // 3
        return inputs[2 * n] - inputs[n]

    @property
    def latency(self):
        inputs, outputs = self.schedule()
        return outputs[0] - inputs[0]

    @property
    def frame_latency(self):
        inputs, outputs = self.schedule()
        return outputs[-1] - inputs[0]

    @property
    def initiation_interval(self):
        h, w, _ = self._spec.input_shape
        ii = Fraction(self.cycles_per_frame, h * w)
        return int(ii) if ii.denominator == 1 else ii

    def elaborate(self, platform):
        m = Module()
        spec = self._spec
        m.submodules.window = self._window
        m.submodules.dense = self._dense
        wiring.connect(m, self._window.o, self._dense.i)
        wiring.connect(m, wiring.flipped(self.i), self._window.i)
        if not self._separate_activation:
            wiring.connect(m, self._dense.o, wiring.flipped(self.o))
            return m
        advance = pipeline_advance(m, self.o, self._dense.o)
        # Outside the If: the wires are combinational, whatever ``advance``.
        acts = [activation(spec.activation, self._dense.o.payload[j], fin=spec.output_format,
                           fout=spec.activation_format, wire=comb_wire(m, f"act{j}_"),
                           **spec.activation_params)
                for j in range(spec.n_filters)]
        with m.If(advance):
            m.d.sync += self.o.valid.eq(self._dense.o.valid)
            m.d.sync += [self.o.payload[j].eq(acts[j]) for j in range(spec.n_filters)]
        return m
