"""hls4ml project configs (YAML): reading, checking, and hls4ml's precedence rules.

An hls4ml project file names the model (``KerasJson`` + ``KerasH5``, or ``OnnxModel``; paths
relative to the working folder as hls4ml reads them, else to the YAML file's folder or the one
above it) and, under ``HLSConfig``, the precisions, reuse factors and
strategies of the layers in three sections: ``Model``, ``LayerType`` (by hls4ml layer class)
and ``LayerName``. This module resolves them exactly as hls4ml 1.3 does
(``hls4ml/model/graph.py`` ``HLSConfig.get_precision``, ``get_reuse_factor``,
``get_strategy``; ``hls4ml/model/layers.py`` ``Layer.__init__`` for ``*_t`` keys):

- a precision ``var`` (``weight``, ``bias``, ``result``, ``accum``) of layer ``L`` of class
  ``C`` is the first found of ``LayerName[L].Precision[var]``, ``LayerName[L].Precision`` (a
  string), ``LayerType[C].Precision[var]``, ``LayerType[C].Precision`` (a string),
  ``Model.Precision[var]``, ``Model.Precision`` (a string); layer names compare
  case-insensitively;
- ``ReuseFactor`` and ``Strategy``: ``LayerName``, then ``LayerType``, then ``Model``;
- other layer keys (``table_size``, ``exp_table_t``, ...): ``LayerType`` updated by
  ``LayerName``; keys ending in ``_t`` are types.

A precision string without modes is ``TRN``/``WRAP`` (``ap_fixed<16,6>``). Every setting that
nnfab does not know, or knows and cannot honour, raises :class:`~nnfab.errors.ConfigError`
naming the setting and where it is; settings without effect on nnfab's output (project paths,
the FPGA part, ``Trace``) are listed in :attr:`Hls4mlConfig.notes`.
"""

from pathlib import Path

from nnfab.errors import ModelError
from nnfab.fixed import FixedFormat

__all__ = ["Hls4mlConfig", "load_hls4ml_config", "ConfigError"]


class ConfigError(ModelError):
    """An hls4ml config setting that nnfab does not read or cannot honour."""


#: Top-level keys that only steer hls4ml's HLS project (no effect on the numbers).
PROJECT_KEYS = ("OutputDir", "ProjectName", "ProjectDir", "Part", "XilinxPart", "Board",
                "ClockPeriod", "ClockUncertainty", "InputData", "OutputPredictions", "Stamp",
                "Version", "WriterConfig", "TraceOutput")
#: Backends whose templates are the Vivado ones nnfab reproduces.
BACKENDS = ("Vivado", "Vitis", "VivadoAccelerator", "VitisAccelerator")
IO_TYPES = ("io_parallel", "io_stream")
STRATEGIES = ("latency", "resource", "resource_unrolled")
#: Keys of a Model section nnfab reads, and those that only steer HLS scheduling.
MODEL_KEYS = ("Precision", "ReuseFactor", "Strategy")
MODEL_HLS_ONLY = ("BramFactor", "TargetCycles", "PipelineStyle", "PipelineInterval",
                  "Compression", "Trace")
#: Keys of a LayerType/LayerName section nnfab reads, and those without numeric effect.
LAYER_KEYS = ("Precision", "ReuseFactor", "Strategy", "table_size", "implementation",
              "exp_scale", "accum_t", "table_t", "exp_table_t", "inv_table_t", "inv_inp_t")
LAYER_HLS_ONLY = ("Trace", "Compression", "TargetCycles", "ConvImplementation")
PRECISION_VARS = ("default", "weight", "bias", "result", "accum", "scale")


def _snake(key):
    """hls4ml's ``convert_to_snake_case`` of a config key (``ReuseFactor`` → ``reuse_factor``)."""
    out = []
    for i, ch in enumerate(key):
        if ch.isupper() and i and (key[i - 1].islower() or
                                   (i + 1 < len(key) and key[i + 1].islower())):
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


def parse_precision(text, where):
    """A precision string (``ap_fixed<W,I[,Q,O[,N]]>``, ``fixed<...>``, ``ap_int<W>``, ...) as
    a FixedFormat; ``'auto'`` is returned as the string ``"auto"``.

    Raises
    ------
    ConfigError
        For float types and strings that are not fixed-point precisions, naming ``where``.
    """
    if not isinstance(text, str):
        raise ConfigError(f"{where}: precision {text!r} is not a string such as "
                          f"'ap_fixed<16,6>'")
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return FixedFormat.parse(text.strip())
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: precision {text!r} is not supported ({exc}); nnfab takes "
                          f"ap_fixed<W,I,Q,O>, ap_ufixed, ap_int, ap_uint and fixed<...>") \
            from None


class Hls4mlConfig:
    """A checked hls4ml project config.

    Attributes
    ----------
    path : Path
        The YAML file.
    model_path : Path
        ``KerasJson`` or ``OnnxModel``, found as :meth:`_find` says.
    weights_path : Path or None
        ``KerasH5``.
    source : ``"keras"`` or ``"onnx"``
    io_type : str
    notes : list of str
        Settings read and found without effect on nnfab's numbers, for the build report.
    """

    def __init__(self, raw, path):
        self.path = Path(path)
        self.raw = raw
        self.notes = []
        self._check_top()
        hls = raw.get("HLSConfig")
        if not isinstance(hls, dict):
            raise ConfigError(f"{self.path}: 'HLSConfig' must be a mapping with a 'Model' "
                              f"section")
        self._model = dict(hls.get("Model") or {})
        self._types = {str(k): dict(v or {}) for k, v in (hls.get("LayerType") or {}).items()}
        self._names = {str(k).lower(): dict(v or {})
                       for k, v in (hls.get("LayerName") or {}).items()}
        self._check_hls(hls)

    # -- checking ---------------------------------------------------------------------------

    def _check_top(self):
        raw = self.raw
        known = {"KerasJson", "KerasH5", "OnnxModel", "HLSConfig", "IOType", "Backend"}
        for key in raw:
            if key in PROJECT_KEYS:
                self.notes.append(f"{key}: an HLS project setting; no effect on nnfab's "
                                  f"Verilog")
            elif key not in known:
                raise ConfigError(f"{self.path}: setting {key!r} is not supported by nnfab "
                                  f"(it reads KerasJson, KerasH5, OnnxModel, HLSConfig, IOType, "
                                  f"Backend and the project settings "
                                  f"{', '.join(PROJECT_KEYS)})")
        backend = raw.get("Backend", "Vivado")
        if backend not in BACKENDS:
            raise ConfigError(f"{self.path}: Backend {backend!r} is not supported; nnfab "
                              f"reproduces the numerics of {', '.join(BACKENDS)}")
        self.io_type = raw.get("IOType", "io_parallel")
        if self.io_type not in IO_TYPES:
            raise ConfigError(f"{self.path}: IOType {self.io_type!r} is not supported; use "
                              f"{' or '.join(IO_TYPES)}")
        self.notes.append(f"IOType {self.io_type}: nnfab's layers stream whole vectors "
                          f"(one pixel per transfer for images) either way; same numbers")
        if "KerasJson" in raw and "OnnxModel" in raw:
            raise ConfigError(f"{self.path}: names both KerasJson and OnnxModel; give one")
        if "KerasJson" in raw:
            self.source = "keras"
            self.model_path = self._find(raw["KerasJson"], "KerasJson")
            self.weights_path = self._find(raw["KerasH5"], "KerasH5") if raw.get("KerasH5") \
                else None
        elif "OnnxModel" in raw:
            self.source = "onnx"
            self.model_path = self._find(raw["OnnxModel"], "OnnxModel")
            self.weights_path = None
        else:
            raise ConfigError(f"{self.path}: names no model; give KerasJson (+ KerasH5) or "
                              f"OnnxModel")

    def _find(self, name, key):
        """A model path: as given (hls4ml reads it relative to the working folder), else
        relative to the config's folder or the folder above it (example projects keep their
        configs in a subfolder)."""
        given = Path(str(name))
        tried = [given] if given.is_absolute() else \
            [given, self.path.parent / given, self.path.parent.parent / given]
        for path in tried:
            if path.is_file():
                return path
        raise ConfigError(f"{self.path}: {key} file {str(name)!r} does not exist (tried "
                          f"{', '.join(repr(str(p)) for p in tried)})")

    def _check_hls(self, hls):
        for key in hls:
            if key not in ("Model", "LayerType", "LayerName"):
                raise ConfigError(f"{self.path}: HLSConfig setting {key!r} is not supported "
                                  f"(nnfab reads Model, LayerType and LayerName)")
        if "Model" not in hls:
            raise ConfigError(f"{self.path}: HLSConfig has no 'Model' section")
        self._check_section(self._model, "HLSConfig.Model", MODEL_KEYS, MODEL_HLS_ONLY)
        if not isinstance(self._model.get("Precision"), (str, dict)):
            raise ConfigError(f"{self.path}: HLSConfig.Model has no Precision")
        for name, section in self._types.items():
            self._check_section(section, f"HLSConfig.LayerType.{name}", LAYER_KEYS,
                                LAYER_HLS_ONLY)
        for name, section in self._names.items():
            self._check_section(section, f"HLSConfig.LayerName.{name}", LAYER_KEYS,
                                LAYER_HLS_ONLY)

    def _check_section(self, section, where, keys, hls_only):
        for key, value in section.items():
            if key in hls_only:
                self.notes.append(f"{where}.{key}: steers hls4ml's HLS scheduling or "
                                  f"tracing; no effect on nnfab's numbers")
            elif key not in keys:
                raise ConfigError(f"{self.path}: setting {key!r} of {where} is not supported "
                                  f"by nnfab (it reads {', '.join(keys)})")
            elif key == "Precision":
                values = value.items() if isinstance(value, dict) else [("default", value)]
                for var, text in values:
                    if var not in PRECISION_VARS:
                        raise ConfigError(f"{self.path}: {where}.Precision.{var} is not "
                                          f"supported (nnfab reads "
                                          f"{', '.join(PRECISION_VARS)})")
                    parse_precision(text, f"{self.path}: {where}.Precision.{var}")
            elif key.endswith("_t"):
                parse_precision(value, f"{self.path}: {where}.{key}")
            elif key == "Strategy" and _snake(str(value)) not in STRATEGIES + ("stable",):
                raise ConfigError(f"{self.path}: {where}.Strategy {value!r} is not supported "
                                  f"(Latency, Resource or Resource_Unrolled)")
            elif key == "ReuseFactor" and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"{self.path}: {where}.ReuseFactor {value!r} must be a "
                                  f"positive integer")

    # -- hls4ml's lookups -------------------------------------------------------------------

    def _name_section(self, name):
        return self._names.get(name.lower())

    def _type_section(self, class_name):
        return self._types.get(class_name)

    def precision(self, name, class_name, var):
        """The FixedFormat (or ``"auto"``) of precision ``var`` of layer ``name`` of hls4ml
        class ``class_name`` (see the module docstring for the order)."""
        for section, label in ((self._name_section(name), f"LayerName.{name}"),
                               (self._type_section(class_name), f"LayerType.{class_name}"),
                               (self._model, "Model")):
            if section is None:
                continue
            value = section.get("Precision")
            if isinstance(value, dict) and var in value:
                return parse_precision(value[var], f"{label}.Precision.{var}")
            if section is self._model:
                if isinstance(value, dict) and "default" in value:
                    return parse_precision(value["default"], f"{label}.Precision.default")
            if isinstance(value, str):
                return parse_precision(value, f"{label}.Precision")
        raise ConfigError(f"{self.path}: no precision for {var!r} of layer {name!r} and no "
                          f"default in HLSConfig.Model.Precision")

    def model_default(self):
        """``Model.Precision`` (its ``default`` when a mapping)."""
        value = self._model["Precision"]
        value = value.get("default") if isinstance(value, dict) else value
        if value is None:
            raise ConfigError(f"{self.path}: HLSConfig.Model.Precision has no default")
        return parse_precision(value, "HLSConfig.Model.Precision")

    def model_maximum(self):
        """``Model.Precision.maximum`` (the cap of hls4ml's inferred types) or None."""
        value = self._model["Precision"]
        if isinstance(value, dict) and "maximum" in value:
            return parse_precision(value["maximum"], "HLSConfig.Model.Precision.maximum")
        return None

    def _first(self, name, class_name, key):
        for section in (self._name_section(name), self._type_section(class_name),
                        self._model):
            if section is not None and key in section:
                return section[key]
        return None

    def reuse_factor(self, name, class_name):
        return int(self._first(name, class_name, "ReuseFactor") or 1)

    def strategy(self, name, class_name):
        return _snake(str(self._first(name, class_name, "Strategy") or "Latency"))

    def layer_setting(self, name, class_name, key, default=None):
        """A layer key (``table_size``, ``exp_table_t``, ...): ``LayerType`` updated by
        ``LayerName``; ``*_t`` keys parsed to FixedFormat."""
        merged = dict(self._type_section(class_name) or {})
        merged.update(self._name_section(name) or {})
        if key not in merged:
            return default
        value = merged[key]
        return parse_precision(value, f"{name}.{key}") if key.endswith("_t") else value

    def derive(self, new_name, from_name, from_class):
        """Give layer ``new_name`` the config of ``from_name`` (of class ``from_class``):
        ``LayerType[from_class]`` updated by ``LayerName[from_name]``, as hls4ml's graph
        rewrites do for the layers they create (``matmul_const_to_dense.py``,
        ``merge_const.py``)."""
        merged = dict(self._type_section(from_class) or {})
        merged.update(self._name_section(from_name) or {})
        self._names[new_name.lower()] = merged

    def layer_names(self):
        """The names of the LayerName sections (lower case)."""
        return list(self._names)


def load_hls4ml_config(path):
    """Read and check an hls4ml project YAML file.

    Raises
    ------
    ModelError
        If the file is missing or not YAML; :class:`ConfigError` for settings nnfab does not
        read or cannot honour, naming the setting and its section.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"hls4ml config {str(path)!r} does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ModelError(f"hls4ml config {str(path)!r} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ModelError(f"hls4ml config {str(path)!r} is not a mapping of settings")
    return Hls4mlConfig(raw, path)
