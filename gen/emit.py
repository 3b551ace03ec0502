"""Build output: ``NAME.v``, ``manifest.json`` and ``report.md`` for a quantized model.

The output folder is assembled in a temporary folder beside it and moved into place only when
every file is written, so a failed build never leaves a folder that looks complete. The same
model always gives byte-identical files (Verilog converted with ``emit_src=False``, JSON with
sorted keys, no time stamps).
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path

from nnfab import __version__
from nnfab.packing import packed_width
from nnfab.sim.runner import default_cache_dir

from .build_folder import file_hashes, staged_folder
from nnfab.ir import INPUT
from .native import save_native
from .tensor_layout import HARDWARE_LAYOUT, TensorLayout
from .timing import network_verilog

__all__ = ["BuildResult", "manifest_of", "build_outputs", "verilog_name"]


#: Reserved words of IEEE 1800-2017 (SystemVerilog, a superset of Verilog-2005's), Annex B:
#: Verilator reads ``.v`` files with them reserved, so a model named ``small`` or ``wire``
#: cannot be a module of that name.
_KEYWORDS = frozenset("""
accept_on alias always always_comb always_ff always_latch and assert assign assume automatic
before begin bind bins binsof bit break buf bufif0 bufif1 byte case casex casez cell chandle
checker class clocking cmos config const constraint context continue cover covergroup
coverpoint cross deassign default defparam design disable dist do edge else end endcase
endchecker endclass endclocking endconfig endfunction endgenerate endgroup endinterface
endmodule endpackage endprimitive endprogram endproperty endspecify endsequence endtable
endtask enum event eventually expect export extends extern final first_match for force foreach
forever fork forkjoin function generate genvar global highz0 highz1 if iff ifnone
ignore_bins illegal_bins implements implies import incdir include initial inout input inside
instance int integer interconnect interface intersect join join_any join_none large let
liblist library local localparam logic longint macromodule matches medium modport module nand
negedge nettype new nexttime nmos nor noshowcancelled not notif0 notif1 null or output package
packed parameter pmos posedge primitive priority program property protected pull0 pull1
pulldown pullup pulsestyle_ondetect pulsestyle_onevent pure rand randc randcase randsequence
rcmos real realtime ref reg reject_on release repeat restrict return rnmos rpmos rtran
rtranif0 rtranif1 s_always s_eventually s_nexttime s_until s_until_with scalared sequence
shortint shortreal showcancelled signed small soft solve specify specparam static string
strong strong0 strong1 struct super supply0 supply1 sync_accept_on sync_reject_on table
tagged task this throughout time timeprecision timeunit tran tranif0 tranif1 tri tri0 tri1
triand trior trireg type typedef union unique unique0 unsigned until until_with untyped use
uwire var vectored virtual void wait wait_order wand weak weak0 weak1 while wildcard wire
with within wor xnor xor
""".split())


def verilog_name(model_name):
    """A Verilog identifier from a model name: ``digits-mlp`` becomes ``digits_mlp``.

    Characters other than ASCII letters, digits and ``_`` become ``_``; a name that is empty,
    starts with a digit or is a (System)Verilog reserved word gets the prefix ``m_``.
    """
    name = "".join(c if (c.isascii() and c.isalnum()) or c == "_" else "_" for c in model_name)
    if not name or name[0].isdigit() or name in _KEYWORDS:
        return f"m_{name}"
    return name


def _stream_description(formats, shape, per_transfer, prefix):
    return {
        "valid": f"{prefix}__valid", "ready": f"{prefix}__ready",
        "payload": f"{prefix}__payload",
        "payload_width": packed_width(formats),
        "lanes": len(formats),
        "lane_formats": sorted({str(f) for f in formats}),
        "format": str(formats[0]),
        "shape": list(shape),
        "transfers_per_inference": per_transfer,
        "packing": "lane k occupies payload bits [k*W, (k+1)*W) as the two's complement code "
                   "of its format (lane 0 in the least significant bits); lanes are the last "
                   "axis of the tensor, one transfer per position of the leading axes",
    }


def _frame_layout(layout, shape):
    """The manifest's ``layout`` of a tensor of ``shape``: the model file's declared layout, or
    nnfab's for frames of a file that declared none."""
    if layout is None and len(shape) == 3:
        layout = TensorLayout(HARDWARE_LAYOUT)
    return {} if layout is None else {"layout": layout.as_dict()}


def manifest_of(model, network, *, source=None, notes=(), input_cast="nearest",
                shift_add_fusion=None, lut_adder_width=0, fit=None, input_layout=None,
                output_layout=None, input_quantization=None):
    """The manifest: everything a host or another tool needs to drive the design; ``source``
    (where the model came from) and ``notes`` (settings without effect) when given;
    ``input_cast`` says how input values become codes (``"nearest"``: round to nearest and
    saturate; ``"format"``: the input format's own modes, as hls4ml); ``shift_add_fusion``
    whether the build ran :class:`~nnfab.gen.passes.FuseShiftAdd`, with ``lut_adder_width``
    (both recorded when ``shift_add_fusion`` is given); ``fit``: the ``fit`` section
    (:meth:`nnfab.gen.passes.FitResult.as_dict`), when the build fitted a device;
    ``input_layout`` and ``output_layout`` (:class:`~nnfab.gen.tensor_layout.TensorLayout`)
    the layouts the model file declares for frames, recorded as ``input.layout`` and
    ``output.layout`` (frames of a file that declares none: nnfab's ``NHWC``);
    ``input_quantization`` (:class:`~nnfab.gen.input_quantization.InputQuantization`, an int8
    TFLite input's scale and zero point) as ``input.quantization``."""
    in_lanes = model.input_shape[-1]
    out_lanes = model.output_shape[-1]
    layers, previous = [], INPUT
    for layer, engine in network.engines:
        row = {"name": layer.name, "kind": layer.kind, "input_shape": list(layer.input_shape),
               "output_shape": list(layer.output_shape),
               "input_format": str(layer.input_format),
               "output_format": str(layer.output_format),
               "latency": engine.latency,
               "initiation_interval": math.ceil(engine.initiation_interval
                                                * math.prod(layer.input_shape[:-1])),
               "multipliers": getattr(engine, "n_multipliers", 0)}
        if getattr(engine, "n_fabric_multipliers", 0):
            # Multipliers built from LUTs, out of "multipliers" (nnfab.gen.passes.dsp_budget).
            row["fabric_multipliers"] = engine.n_fabric_multipliers
        if len(layer.inputs) > 1 or layer.inputs != (previous,):
            row["inputs"] = list(layer.inputs)
        if len(layer.inputs) > 1:
            row["skip_fifo_depths"] = [network.skip_fifo_depths.get((layer.name, k), 0)
                                       for k in range(len(layer.inputs))]
        row.update(layer.manifest_row(engine))  # the kind's own keys
        previous = layer.name
        layers.append(row)
    return {
        "nnfab_version": __version__,
        "name": model.name,
        "top": verilog_name(model.name),
        "verilog": f"{verilog_name(model.name)}.v",
        "clock": "clk", "reset": "rst (synchronous, active high)",
        "input": {**_stream_description([model.input_format] * in_lanes, model.input_shape,
                                        model.n_inputs // in_lanes, "i"),
                  **_frame_layout(input_layout, model.input_shape),
                  **({"quantization": input_quantization.as_dict()}
                     if input_quantization is not None else {})},
        "output": {**_stream_description([model.output_format] * out_lanes,
                                         model.output_shape, model.n_outputs // out_lanes, "o"),
                   **_frame_layout(output_layout, model.output_shape)},
        "latency": network.latency,
        "latency_source": ("simulated" if not network.simulation_too_slow else
                           "simulated on Verilator") if network.timing_needs_simulation
        else "sum of layers",
        "initiation_interval": network.initiation_interval,
        "layers": layers,
        "input_cast": input_cast,
        **({"shift_add_fusion": shift_add_fusion, "lut_adder_width": lut_adder_width}
           if shift_add_fusion is not None else {}),
        **({"fit": fit} if fit else {}),
        **({"source": source} if source else {}),
        **({"notes": list(notes)} if notes else {}),
    }


def _fit_lines(fit):
    """The report's line on the device the build was fitted to (``nnfab build --fit``)."""
    if not fit:
        return []
    changed = ", ".join(f"{name} {old} -> {new}" for name, (old, new) in fit["changed"].items())
    estimate = fit["estimate"]
    return [f"- fitted to {fit['target']} ({fit['device_luts']:,} LUT4, {fit['device_dsps']} "
            f"DSP): estimate {estimate['device_luts']:,} LUT4 eq., "
            f"{estimate['device_dsp_blocks']} DSP; reuse factors "
            f"{'raised: ' + changed if changed else 'as the model gives them'}"]


def _multipliers_text(rows):
    """Multipliers of manifest ``rows``, with those built from LUTs (not DSP blocks)."""
    total = sum(row["multipliers"] for row in rows)
    fabric = sum(row.get("fabric_multipliers", 0) for row in rows)
    return f"{total} ({fabric} from LUTs)" if fabric else f"{total}"


def _layout_text(section):
    layout = section.get("layout")
    if layout is None or layout["model"] == layout["hardware"]:
        return ""
    return f"; {layout['hardware']} here, {layout['model']} in the model file"


def _report(manifest):
    lines = [f"# {manifest['name']}", "",
             f"nnfab {manifest['nnfab_version']} · top module `{manifest['top']}` in "
             f"`{manifest['verilog']}`", "",
             f"- input: {manifest['input']['shape']} of `{manifest['input']['format']}`, "
             f"{manifest['input']['payload_width']}-bit payload"
             f"{_layout_text(manifest['input'])}",
             f"- output: {manifest['output']['shape']} of `{manifest['output']['format']}`, "
             f"{manifest['output']['payload_width']}-bit payload"
             f"{_layout_text(manifest['output'])}",
             f"- latency: {manifest['latency']} cycles; initiation interval: "
             f"{manifest['initiation_interval']} cycles per inference",
             f"- multipliers (after pruning, shift-add weights excluded): "
             f"{_multipliers_text(manifest['layers'])}",
             *_fit_lines(manifest.get("fit")), "",
             "| layer | kind | in | out | output format | weights (non-zero) | reuse | "
             "multipliers | shift-add terms | latency | II |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in manifest["layers"]:
        weights = f"{row['nonzero_weights']}/{row['weights']}" if "weights" in row else ""
        lines.append(
            f"| {row['name']} | {row.get('function', row['kind'])} | {row['input_shape']} | "
            f"{row['output_shape']} | `{row['output_format']}` | {weights} | "
            f"{row.get('reuse_factor', '')} | {_multipliers_text([row])} | "
            f"{row.get('shift_add_terms', '')} | {row['latency']} | "
            f"{row['initiation_interval']} |")
    # A chain of fused layers is reported as its layers.
    rows = [part for row in manifest["layers"]
            for part in (row["chain"] if row["kind"] == "shift_add_chain" else [row])]
    dense = [row for row in rows if row["kind"] in ("dense", "conv2d", "shift_add_dense")]
    if dense:
        lines += ["", "Dense and convolution layers: weight, bias and accumulator formats", "",
                  "| layer | weight | bias | accumulator |", "| --- | --- | --- | --- |"]
        lines += [f"| {row['name']} | `{row['weight_format']}` | `{row['bias_format']}` | "
                  f"`{row['accumulator_format']}` |" for row in dense]
    fused = [row for row in rows if row["kind"] == "shift_add_dense"]
    if fused:
        lines += ["", "Shift-add dense layers (one adder graph each, no multipliers)", "",
                  "| layer | fused layers | adders | shared subexpressions | adder levels | "
                  "latency | estimated Fmax (MHz) |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {row['name']} | {', '.join(row['fused_layers'])} | {row['adders']} | "
                  f"{row['shared_subexpressions']} | {row['adder_levels']} | "
                  f"{row['latency'] or 'chain'} | {row.get('estimated_f_max_mhz', '')} |"
                  for row in fused]
        slow = [row for row in fused if row.get("clock_mhz") and
                row.get("estimated_f_max_mhz") and row["estimated_f_max_mhz"] < row["clock_mhz"]]
        if slow:
            lines += ["", "Below their target clock in the delay model: " + ", ".join(
                f"{row['name']} {row['estimated_f_max_mhz']} MHz for {row['clock_mhz']:g} MHz"
                for row in slow) + " (a node longer than the period, such as an output cast "
                "that rounds and saturates, is a stage of its own and is not split)."]
    joins = [row for row in manifest["layers"] if "skip_fifo_depths" in row]
    if joins:
        lines += ["", "Joins of branches: the FIFO before each input, as deep as that branch "
                  "must run ahead of the slowest (transfers; 0: none)", "",
                  "| layer | inputs | skip FIFO depths |", "| --- | --- | --- |"]
        lines += [f"| {row['name']} | {', '.join(row['inputs'])} | "
                  f"{', '.join(map(str, row['skip_fifo_depths']))} |" for row in joins]
    softmax = [row for row in manifest["layers"] if row["kind"] == "hls4ml_softmax"]
    if softmax:
        lines += ["", "hls4ml softmax layers", "",
                  "| layer | accumulator | exp table | inverse table | inverse input |",
                  "| --- | --- | --- | --- | --- |"]
        lines += [f"| {row['name']} | `{row['accumulator_format']}` | {row['exp_table']} | "
                  f"{row['inv_table']} | `{row['inv_input_format']}` |" for row in softmax]
    if manifest.get("source"):
        lines += ["", f"Source: {manifest['source']}"]
    if manifest.get("notes"):
        lines += ["", "Settings read without effect on the design:", ""]
        lines += [f"- {note}" for note in manifest["notes"]]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class BuildResult:
    out_dir: Path
    verilog_path: Path
    manifest: dict


def build_outputs(model, out_dir, *, multiplier_threshold=3, progress=None, source=None,
                  notes=(), input_cast="nearest", shift_add_fusion=None, lut_adder_width=0,
                  fit=None, input_layout=None, output_layout=None, input_quantization=None,
                  cache_dir=None, use_cache=True):
    """Convert ``model`` to Verilog and write the build folder ``out_dir``.

    Files: ``NAME.v``, ``manifest.json``, ``report.md`` and ``model.json``/``model.npz`` (the
    quantized model in the native format, which ``nnfab verify DIR`` reads back). The manifest
    records the SHA-256 of the Verilog and model files (``files``). An existing ``out_dir`` is
    replaced only after the new one is complete, and only if it is empty or an nnfab build
    folder (see :func:`~nnfab.gen.build_folder.staged_folder`).

    Parameters
    ----------
    progress : callable, optional
        Called with a short description before each step.
    source : str, optional
        Where the model came from (e.g. an hls4ml config), for the manifest and report.
    notes : list of str
        Settings read and found without effect, listed in the report.
    input_cast : ``"nearest"`` or ``"format"``
        How ``nnfab verify DIR`` casts input values (see :func:`nnfab.gen.verify.verify`).
    shift_add_fusion : bool, optional
        Whether the model went through :class:`~nnfab.gen.passes.FuseShiftAdd`; recorded in
        the manifest; so is ``lut_adder_width``.
    fit : dict, optional
        The manifest's ``fit`` section (the device fitted and the estimate).
    input_layout, output_layout : TensorLayout, optional
        The layouts the model file declares for frames (see :func:`manifest_of`); ``nnfab
        verify DIR --inputs`` reads the input's.
    input_quantization : InputQuantization, optional
        An int8 TFLite input's scale and zero point (see :func:`manifest_of`), with which
        ``nnfab verify DIR --inputs`` quantizes float inputs.
    cache_dir : str or os.PathLike, optional
        Root of nnfab's caches (:func:`nnfab.sim.runner.default_cache_dir` by default). The
        Verilog, latency and skip FIFO depths of a model converted before with the same
        ``multiplier_threshold`` by the same nnfab (by ``nnfab build`` or ``nnfab verify``)
        come from its ``verilog`` folder (:mod:`nnfab.gen.verilog_cache`): the files are the
        same, byte for byte, as a conversion's.
    use_cache : bool
        False converts and times the model here, and neither reads nor writes the cache.

    Raises
    ------
    OutputError
        If ``out_dir`` may not be replaced or cannot be written; nothing is written then.
    """
    out_dir = Path(out_dir)
    say = progress or (lambda text: None)
    with staged_folder(out_dir) as staging:
        # The model first: a layer the native format cannot hold fails before the conversion.
        save_native(model, staging / "model.json")
        converted = network_verilog(
            model, name=verilog_name(model.name), multiplier_threshold=multiplier_threshold,
            cache_dir=default_cache_dir() if cache_dir is None else cache_dir,
            use_cache=use_cache, say=say)
        if converted.hit:
            say("Verilog and timing from the cache (unchanged model, options and nnfab)")
        text = converted.verilog
        manifest = manifest_of(model, converted.network, source=source, notes=notes,
                               input_cast=input_cast, shift_add_fusion=shift_add_fusion,
                               lut_adder_width=lut_adder_width, fit=fit,
                               input_layout=input_layout, output_layout=output_layout,
                               input_quantization=input_quantization)
        say("writing files")
        (staging / manifest["verilog"]).write_text(text)
        manifest["files"] = file_hashes(staging, [manifest["verilog"], "model.json",
                                                  "model.npz"])
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True)
                                               + "\n")
        (staging / "report.md").write_text(_report(manifest))
    return BuildResult(out_dir, out_dir / manifest["verilog"], manifest)
