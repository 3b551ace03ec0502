"""The grid of a sweep: build options given as lists in a YAML sweep file or as
comma-separated flags, one point per combination.

A sweep file is a YAML mapping of axes to a value or a list of values::

    reuse_factor: [1, 2, {dense_1: 4, dense_2: 2}]   # global, or by layer name
    bits: [6, 8, {weights: 6, biases: 8, activations: 10}]   # PTQ of float models
    clock_mhz: [50, 100]
    fuse: [true, false]
    target: [ECP5-85F, iCE40UP5K]                     # a device or a board (`nnfab boards`)

A missing axis takes its default (:data:`DEFAULTS`): the model's own reuse factors, PTQ's
default 8 bits, 100 MHz, fused shift-add layers, ECP5-85F.
"""

import itertools
import math
from pathlib import Path

from nnfab.errors import SweepError

from .synth import DEVICES, device

__all__ = ["AXES", "DEFAULTS", "BOARD_DEVICES", "load_sweep_file", "parse_flag", "make_grid",
           "point_label"]

#: Axes in the order of the results' columns.
AXES = ("reuse_factor", "bits", "clock_mhz", "fuse", "target")
#: One value per axis when the sweep names none.
DEFAULTS = {"reuse_factor": None, "bits": None, "clock_mhz": 100.0, "fuse": True,
            "target": "ECP5-85F"}
#: Boards (``nnfab boards``) by the device out-of-context synthesis uses for them.
BOARD_DEVICES = {"icebreaker": "iCE40UP5K", "ulx3s-85f": "ECP5-85F"}
_BIT_KEYS = ("weights", "biases", "activations")


def _integer(value, where, low, high):
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SweepError(f"{where} is {value!r}; it must be an integer from {low} to {high}")
    return value


def _value(axis, value, where):
    """The canonical form of one value of ``axis``."""
    if axis == "reuse_factor":
        if isinstance(value, dict):
            if not value:
                raise SweepError(f"{where} is an empty mapping; give layer names and reuse "
                                 f"factors, such as {{dense_1: 4}}")
            return {str(name): _integer(r, f"{where}.{name}", 1, 65536)
                    for name, r in sorted(value.items(), key=lambda item: str(item[0]))}
        return _integer(value, where, 1, 65536)
    if axis == "bits":
        if isinstance(value, dict):
            unknown = sorted(set(map(str, value)) - set(_BIT_KEYS))
            if unknown:
                raise SweepError(f"{where} has unknown key {unknown[0]!r}; keys: "
                                 f"{', '.join(_BIT_KEYS)}")
            return {key: _integer(value.get(key, 8), f"{where}.{key}", 2, 32)
                    for key in _BIT_KEYS}
        bits = _integer(value, where, 2, 32)
        return {key: bits for key in _BIT_KEYS}
    if axis == "clock_mhz":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not math.isfinite(value) or not 0 < value <= 1000:
            raise SweepError(f"{where} is {value!r}; it must be a frequency in MHz above 0 "
                             f"and at most 1000")
        return float(value)
    if axis == "fuse":
        if not isinstance(value, bool):
            raise SweepError(f"{where} is {value!r}; it must be true or false")
        return value
    if isinstance(value, str):
        boards = {name.lower(): name for name in BOARD_DEVICES}
        if value.lower() in boards:
            return BOARD_DEVICES[boards[value.lower()]]
        try:
            return device(value).name
        except ValueError:
            pass
    raise SweepError(f"{where} is {value!r}; targets: {', '.join(DEVICES)} or the boards "
                     f"{', '.join(BOARD_DEVICES)}")


def _axis(axis, values, where):
    values = values if isinstance(values, list) else [values]
    if not values:
        raise SweepError(f"{where} is an empty list; give at least one value")
    canonical = []
    for k, value in enumerate(values):
        value = _value(axis, value, f"{where}[{k}]" if len(values) > 1 else where)
        if value not in canonical:
            canonical.append(value)
    return canonical


def load_sweep_file(path):
    """The axes of the YAML sweep file ``path``: ``{axis: [canonical values]}``.

    Raises
    ------
    SweepError
        If the file cannot be read, is not a YAML mapping, names an unknown axis, or holds a
        value the axis does not accept (the message names the key path and the value).
    """
    import yaml

    shown = str(path)
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SweepError(f"Sweep file {shown!r} cannot be read: {exc.strerror}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise SweepError(f"Sweep file {shown!r} is not YAML: "
                         f"{str(exc).splitlines()[0]}") from None
    if not isinstance(document, dict) or not document:
        raise SweepError(f"Sweep file {shown!r} must be a YAML mapping of axes to values; "
                         f"axes: {', '.join(AXES)}")
    axes = {}
    for key, values in document.items():
        if key not in AXES:
            raise SweepError(f"Sweep file {shown!r}: unknown axis {key!r}; axes: "
                             f"{', '.join(AXES)}")
        axes[key] = _axis(key, values, f"{shown}: {key}")
    return axes


def parse_flag(axis, text):
    """The canonical values of a comma-separated flag (``--reuse-factor 1,2,4``).

    Raises
    ------
    SweepError
        If an item is not a value of ``axis`` (the message names the flag and the item).
    """
    flag = "--" + axis.replace("_", "-")
    items = [item.strip() for item in str(text).split(",")]
    values = []
    for item in items:
        if axis == "target":
            values.append(item)
            continue
        lowered = item.lower()
        if axis == "fuse" and lowered in ("true", "on", "yes", "1", "false", "off", "no", "0"):
            values.append(lowered in ("true", "on", "yes", "1"))
            continue
        try:
            values.append(float(item) if axis == "clock_mhz" else int(item))
        except ValueError:
            values.append(item)
    return _axis(axis, values, flag)


def make_grid(axes):
    """The points of ``axes`` (their cartesian product, defaults for missing axes), each a
    dict ``{axis: value}`` in :data:`AXES` order."""
    lists = [axes.get(axis) or [DEFAULTS[axis]] for axis in AXES]
    if axes.get("bits") is None:
        lists[1] = [None]
    return [dict(zip(AXES, combination)) for combination in itertools.product(*lists)]


def point_label(point):
    """A short name of a point: ``R=2 bits=8 100MHz fused ECP5-85F``."""
    r = point["reuse_factor"]
    reuse = "R=model" if r is None else f"R={r}" if isinstance(r, int) else \
        "R=" + "/".join(f"{k}:{v}" for k, v in r.items())
    b = point["bits"]
    bits = "bits=model" if b is None else f"bits={b['weights']}" if len(set(b.values())) == 1 \
        else "bits=" + "/".join(str(b[k]) for k in _BIT_KEYS)
    return (f"{reuse} {bits} {point['clock_mhz']:g}MHz "
            f"{'fused' if point['fuse'] else 'unfused'} {point['target']}")
