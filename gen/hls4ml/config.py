"""hls4ml project configs (YAML): reading, checking, and hls4ml's precedence rules.

An hls4ml project file names the model (``KerasJson`` + ``KerasH5``, or ``OnnxModel``; paths
relative to the working folder as hls4ml reads them, else to the YAML file's folder or the one
above it) and, under ``HLSConfig``, the precisions, reuse factors and
strategies of the layers in three sections: ``Model``, ``LayerType`` (by hls4ml layer class)
and ``LayerName``. This module resolves them exactly as hls4ml 1.3 does
(``hls4ml/model/graph.py`` ``HLSConfig.get_precision``, ``get_reuse_factor``,
``get_strategy``, ``get_layer_config``; ``hls4ml/model/layers.py`` ``Layer.__init__``):

- a precision ``var`` (``weight``, ``bias``, ``result``, ``accum``) of layer ``L`` of class
  ``C`` is the first found of ``LayerName[L].Precision[var]``, ``LayerName[L].Precision`` (a
  string, or its ``default``), ``LayerType[C].Precision[var]``, ``LayerType[C].Precision``,
  ``Model.Precision[var]``, ``Model.Precision``; names and classes compare case-insensitively;
- ``ReuseFactor`` and ``Strategy``: ``LayerName``, then ``LayerType``, then ``Model``, also
  case-insensitively;
- other layer keys (``table_size``, ``exp_table_t``, ...): ``LayerType[C]`` updated by
  ``LayerName[L]``, names and classes compared exactly, keys snake-cased (``TableSize`` is
  ``table_size``); keys ending in ``_t`` are types.

A precision string without modes is ``TRN``/``WRAP`` (``ap_fixed<16,6>``). Every setting that
nnfab does not know, or knows and cannot honour, and every value of the wrong kind raises
:class:`ConfigError` naming the setting's key path, the value and what is accepted; settings
without effect on nnfab's output (project paths, the FPGA part, ``Trace``) are listed in
:attr:`Hls4mlConfig.notes`.
"""

import re
from pathlib import Path

from nnfab.errors import ModelError, NnfabError
from nnfab.fixed import FixedFormat

__all__ = ["Hls4mlConfig", "load_hls4ml_config", "ConfigError"]


class ConfigError(ModelError):
    """An hls4ml config setting that nnfab does not read or cannot honour."""


#: Top-level keys that only steer hls4ml's HLS project (no effect on the numbers).
PROJECT_KEYS = ("OutputDir", "ProjectName", "ProjectDir", "Part", "XilinxPart", "Board",
                "ClockPeriod", "ClockUncertainty", "InputData", "OutputPredictions", "Stamp",
                "Version", "WriterConfig", "TraceOutput")
#: Backends whose templates are the Vivado ones nnfab reproduces, and Quartus (SimpleRNN and
#: Dense models only: :mod:`nnfab.gen.hls4ml.quartus`).
BACKENDS = ("Vivado", "Vitis", "VivadoAccelerator", "VitisAccelerator", "Quartus")
IO_TYPES = ("io_parallel", "io_stream")
STRATEGIES = ("latency", "resource", "resource_unrolled")
#: Keys of a Model section nnfab reads, and those that only steer HLS scheduling.
MODEL_KEYS = ("Precision", "ReuseFactor", "Strategy")
MODEL_HLS_ONLY = ("BramFactor", "TargetCycles", "PipelineStyle", "PipelineInterval",
                  "Compression", "Trace", "ConvImplementation", "TraceOutput")
#: Keys of a LayerType/LayerName section nnfab reads (the others snake-cased, as hls4ml
#: compares them), and those without numeric effect.
LAYER_KEYS = ("Precision", "ReuseFactor", "Strategy", "table_size", "implementation",
              "exp_scale", "skip", "accum_t", "table_t", "exp_table_t", "inv_table_t",
              "inv_inp_t", "static")
LAYER_HLS_ONLY = ("Trace", "Compression", "TargetCycles", "ConvImplementation")
PRECISION_VARS = ("default", "weight", "bias", "result", "accum", "scale", "recurrent_weight",
                  "recurrent_bias")
#: ``Model.Precision`` may also cap hls4ml's inferred types.
MODEL_PRECISION_VARS = PRECISION_VARS + ("maximum",)
#: Precision entries that hls4ml's own config generators (``config_from_*_model``) write but
#: hls4ml 1.3 never reads (its tables take ``table_t``, ``exp_table_t``, ... layer keys):
#: accepted and listed in the notes as without effect.
_IGNORED_VARS = ("table", "exp_table", "inv_table", "inv_inp")
#: The widest ``ap_fixed`` (``AP_INT_MAX_W`` in the Xilinx headers hls4ml compiles against).
MAX_WIDTH = 1024
#: The width and integer bits of a precision string (``ap_fixed<W,I...``, ``int<W>``, ...).
_SIZES = re.compile(r"\s*(?:ap_)?u?(?:fixed|int)\s*<\s*(-?\d+)\s*(?:,\s*(-?\d+))?")
_ACCEPTED_PRECISIONS = ("nnfab takes ap_fixed<W,I,Q,O>, ap_ufixed, ap_int, ap_uint and "
                        "fixed<...>")


#: hls4ml 1.3's layer classes (``hls4ml.model.layers.layer_map``): the keys of ``LayerType``.
HLS4ML_CLASSES = (
    "Activation", "ApplyAlpha", "BatchNormOnnx", "BatchNormalization",
    "BatchNormalizationQuantizedTanh", "BiasAdd", "Bidirectional", "BipolarQuant", "Broadcast",
    "Clone", "Concatenate", "Constant", "Conv", "Conv1D", "Conv2D", "Conv2DBatchnorm",
    "Cropping1D", "Cropping2D", "DACombinational", "Dense", "DepthwiseConv1D",
    "DepthwiseConv2D", "Dot", "Einsum", "EinsumDense", "Embedding", "FixedPointQuantizer",
    "GRU", "GarNet", "GarNetStack", "GlobalPooling1D", "GlobalPooling2D", "HardActivation",
    "Input", "LSTM", "LayerGroup", "LayerNormalization", "MatMul", "Merge", "PReLU",
    "ParametrizedActivation", "PointwiseConv1D", "PointwiseConv2D", "Pooling1D", "Pooling2D",
    "Quant", "Repack", "Reshape", "Resize", "SeparableConv1D", "SeparableConv2D", "SimpleRNN",
    "Softmax", "SymbolicExpression", "TernaryTanh", "TimeDistributed", "Transpose", "UnaryLUT",
    "ZeroPadding1D", "ZeroPadding2D")
#: The classes of the layers nnfab's hls4ml mode builds (ONNX nodes first become MatMul,
#: Merge and Constant layers, whose configs the Dense and ApplyAlpha layers inherit).
BUILT_CLASSES = ("Input", "Dense", "Conv2D", "Activation", "Softmax", "Pooling2D",
                 "BatchNormalization", "ApplyAlpha", "MatMul", "Merge", "Concatenate",
                 "Constant", "LSTM", "GRU")
#: Keras class names and the hls4ml class of their layers.
_KERAS_CLASSES = {"QDense": "Dense", "QConv2D": "Conv2D", "QActivation": "Activation",
                  "InputLayer": "Input", "MaxPooling2D": "Pooling2D",
                  "AveragePooling2D": "Pooling2D", "ReLU": "Activation", "Add": "Merge",
                  "MaxPooling1D": "Pooling1D", "AveragePooling1D": "Pooling1D"}
#: ``LayerType`` keys that hls4ml's ``config_from_onnx_model`` writes (its ONNX parser's class
#: names) though hls4ml's lookups use the layer's class, another name: without effect in
#: hls4ml, so accepted and listed in the notes.
_PARSER_CLASSES = ("InputLayer", "MaxPooling1D", "MaxPooling2D", "AveragePooling1D",
                   "AveragePooling2D")
#: hls4ml classes of transient layers, replaced before any of their settings is read: an ONNX
#: BatchNormalization is parsed as a ``BatchNormOnnx`` layer, which
#: ``BatchNormOnnxConstantParameters`` (``batchnorm_opt.py``) replaces by a new
#: ``BatchNormalization`` layer of the same name, whose settings come from
#: ``LayerType.BatchNormalization`` and ``LayerName``.
_TRANSIENT_CLASSES = {"BatchNormOnnx": "BatchNormalization"}

#: Where keys that users put at the wrong level belong.
_PLACES = {**{key: "the top level" for key in ("KerasJson", "KerasH5", "OnnxModel", "IOType",
                                               "Backend", "HLSConfig") + PROJECT_KEYS},
           **{key: "HLSConfig" for key in ("Model", "LayerType", "LayerName")},
           **{key: "HLSConfig.Model or a LayerType/LayerName section"
              for key in ("Precision", "ReuseFactor", "Strategy")}}


def _place(key):
    """``"; 'X' belongs at/under ..."`` for a key known elsewhere in a config, else ``""``."""
    return f"; {key!r} belongs in {_PLACES[key]}" if key in _PLACES else ""


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
        For float types, strings that are not fixed-point precisions and types wider than
        ``ap_fixed`` allows (:data:`MAX_WIDTH` bits, integer bits within ±MAX_WIDTH), naming
        ``where``.
    """
    if not isinstance(text, str):
        raise ConfigError(f"{where}: precision {text!r} is not a string such as "
                          f"'ap_fixed<16,6>'")
    if text.strip().lower() == "auto":
        return "auto"
    # ap_fixed's own limits first, so that the message does not depend on FixedFormat's.
    sizes = _SIZES.match(text)
    if sizes and (int(sizes[1]) > MAX_WIDTH or abs(int(sizes[2] or 0)) > MAX_WIDTH):
        raise ConfigError(f"{where}: precision {text!r} is not supported; ap_fixed types take "
                          f"1 to {MAX_WIDTH} bits and integer bits from -{MAX_WIDTH} to "
                          f"{MAX_WIDTH}")
    try:
        fmt = FixedFormat.parse(text.strip())
    except (TypeError, ValueError, ArithmeticError, NnfabError) as exc:
        raise ConfigError(f"{where}: precision {text!r} is not supported ({exc}); "
                          f"{_ACCEPTED_PRECISIONS}") from None
    if fmt.width > MAX_WIDTH or abs(fmt.integer_width) > MAX_WIDTH:
        raise ConfigError(f"{where}: precision {text!r} is not supported; ap_fixed types take "
                          f"1 to {MAX_WIDTH} bits and integer bits from -{MAX_WIDTH} to "
                          f"{MAX_WIDTH}")
    return fmt


def _is_positive_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


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
            raise ConfigError(f"{self.path}: HLSConfig {hls!r} is not a mapping; give a "
                              f"mapping with a Model section (and LayerType, LayerName)")
        for key in hls:
            if key not in ("Model", "LayerType", "LayerName"):
                raise ConfigError(f"{self.path}: HLSConfig setting {key!r} is not supported "
                                  f"(nnfab reads Model, LayerType and LayerName){_place(key)}")
        if "Model" not in hls:
            raise ConfigError(f"{self.path}: HLSConfig has no 'Model' section")
        self._model = self._mapping(hls["Model"], "HLSConfig.Model", "settings")
        #: LayerType and LayerName sections as written (hls4ml's get_layer_config).
        self._types = self._sections(hls, "LayerType", "layer classes")
        self._names = self._sections(hls, "LayerName", "layer names")
        #: The user's LayerName keys, for :meth:`check_layer_names`.
        self._given_names = list(self._names)
        self._check_section(self._model, "HLSConfig.Model", MODEL_KEYS, MODEL_HLS_ONLY,
                            MODEL_PRECISION_VARS)
        if not isinstance(self._model.get("Precision"), (str, dict)):
            raise ConfigError(f"{self.path}: HLSConfig.Model has no Precision; give one such "
                              f"as 'ap_fixed<16,6>'")
        for section_key, sections in (("LayerType", self._types), ("LayerName", self._names)):
            for name, section in sections.items():
                self._check_section(section, f"HLSConfig.{section_key}.{name}", LAYER_KEYS,
                                    LAYER_HLS_ONLY, PRECISION_VARS)
        classes = {name.lower() for name in HLS4ML_CLASSES}
        for name in self._types:
            if name in _PARSER_CLASSES:
                self.notes.append(f"HLSConfig.LayerType.{name}: as hls4ml's "
                                  f"config_from_onnx_model writes it, but no hls4ml 1.3 layer "
                                  f"has this class (hls4ml's class of {name} layers is "
                                  f"{_KERAS_CLASSES[name]!r}); no effect in hls4ml nor in "
                                  f"nnfab")
            elif name in _TRANSIENT_CLASSES:
                self.notes.append(f"HLSConfig.LayerType.{name}: hls4ml replaces its {name} "
                                  f"layers by {_TRANSIENT_CLASSES[name]} layers before reading "
                                  f"their settings (which LayerType.{_TRANSIENT_CLASSES[name]} "
                                  f"gives); no effect in hls4ml nor in nnfab")
            elif name.lower() not in classes:
                hint = f" (hls4ml's class of {name} layers is {_KERAS_CLASSES[name]!r})" \
                    if name in _KERAS_CLASSES else ""
                raise ConfigError(f"{self.path}: HLSConfig.LayerType {name!r} is not an hls4ml "
                                  f"layer class{hint}; nnfab's hls4ml mode builds "
                                  f"{', '.join(BUILT_CLASSES)}")
        # hls4ml's case-insensitive tables (HLSConfig._parse_hls_config).
        self._type_table = {name.lower(): self._table(section)
                            for name, section in self._types.items()}
        self._name_table = {}
        for name, section in self._names.items():
            self._parse_name(name, section)

    # -- checking ---------------------------------------------------------------------------

    def _mapping(self, value, where, what):
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"{self.path}: {where} {value!r} is not a mapping of {what}")
        return {str(k): v for k, v in value.items()}

    def _sections(self, hls, key, what):
        sections = self._mapping(hls.get(key), f"HLSConfig.{key}", what)
        keys = ", ".join(LAYER_KEYS)
        return {name: self._mapping(section, f"HLSConfig.{key}.{name}", f"settings ({keys})")
                for name, section in sections.items()}

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
                                  f"{', '.join(PROJECT_KEYS)}){_place(key)}")
        backend = raw.get("Backend", "Vivado")
        # hls4ml's get_backend ignores case.
        if not isinstance(backend, str) or backend.lower() not in {b.lower() for b in BACKENDS}:
            raise ConfigError(f"{self.path}: Backend {backend!r} is not supported; nnfab "
                              f"reproduces the numerics of {', '.join(BACKENDS)} (Quartus for "
                              f"SimpleRNN, Dense, relu and linear layers)")
        self.io_type = raw.get("IOType", "io_parallel")
        if not isinstance(self.io_type, str) or self.io_type not in IO_TYPES:
            raise ConfigError(f"{self.path}: IOType {self.io_type!r} is not supported; use "
                              f"{' or '.join(IO_TYPES)}")
        #: hls4ml's Quartus backend (its own templates and ac_fixed types).
        self.quartus = backend.lower() == "quartus"
        if self.quartus and (self.io_type != "io_parallel" or "OnnxModel" in raw):
            raise ConfigError(f"{self.path}: Backend Quartus is supported for Keras models "
                              f"with IOType io_parallel only, not "
                              f"{'an ONNX model' if 'OnnxModel' in raw else self.io_type}")
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
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{self.path}: {key} {name!r} is not a file name; give the "
                              f"model file's path as a string")
        given = Path(name)
        tried = [given] if given.is_absolute() else \
            [given, self.path.parent / given, self.path.parent.parent / given]
        for path in tried:
            if path.is_file():
                return path
        raise ConfigError(f"{self.path}: {key} file {name!r} does not exist (tried "
                          f"{', '.join(repr(str(p)) for p in tried)})")

    def _check_section(self, section, where, keys, hls_only, precision_vars):
        snake_keys = {_snake(k): k for k in keys if k not in MODEL_KEYS}
        for key, value in section.items():
            if key in hls_only:
                self.notes.append(f"{where}.{key}: steers hls4ml's HLS scheduling or "
                                  f"tracing; no effect on nnfab's numbers")
            elif key == "Precision":
                self._check_precision(value, f"{where}.Precision", precision_vars)
            elif key == "Strategy":
                if isinstance(value, str) and _snake(value) == "stable":
                    # Older hls4ml chose the softmax implementation by Strategy; hls4ml 1.3
                    # reads it from ``implementation``. A dense layer rejects it (convert.py).
                    self.notes.append(f"{where}.Strategy {value!r}: selects nothing in hls4ml "
                                      f"1.3 (the softmax implementation is 'implementation')")
                elif not isinstance(value, str) or _snake(value) not in STRATEGIES:
                    raise ConfigError(f"{self.path}: {where}.Strategy {value!r} is not "
                                      f"supported; give Latency, Resource or Resource_Unrolled")
            elif key == "ReuseFactor":
                if not _is_positive_int(value):
                    raise ConfigError(f"{self.path}: {where}.ReuseFactor {value!r} is not "
                                      f"supported; give a positive integer")
            elif keys is LAYER_KEYS and _snake(key) in snake_keys:
                self._check_layer_key(_snake(key), value, f"{where}.{key}")
            else:
                raise ConfigError(f"{self.path}: setting {key!r} of {where} is not supported "
                                  f"by nnfab (it reads {', '.join(keys)}, and "
                                  f"{', '.join(hls_only)} without effect){_place(key)}")

    def _check_precision(self, value, where, precision_vars):
        if isinstance(value, str):
            parse_precision(value, f"{self.path}: {where}")
        elif isinstance(value, dict):
            for var, text in value.items():
                if var in _IGNORED_VARS:
                    parse_precision(text, f"{self.path}: {where}.{var}")
                    self.notes.append(f"{where}.{var}: has no effect in hls4ml 1.3 (no lookup "
                                      f"asks for it) nor in nnfab; the table types are the "
                                      f"layer setting {var}_t")
                    continue
                if var == "scale":
                    self.notes.append(f"{where}.scale: the scale type of BatchNormalization "
                                      f"layers; no effect on other layers (hls4ml gives the "
                                      f"scale of an ONNX Add ap_uint<1>)")
                if var not in precision_vars:
                    raise ConfigError(f"{self.path}: {where}.{var} is not supported (nnfab "
                                      f"reads {', '.join(precision_vars)})")
                parse_precision(text, f"{self.path}: {where}.{var}")
        else:
            raise ConfigError(f"{self.path}: {where} {value!r} is not supported; give a "
                              f"precision such as 'ap_fixed<16,6>' or a mapping of "
                              f"{', '.join(precision_vars)} to precisions")

    def _check_layer_key(self, key, value, where):
        if key.endswith("_t"):
            parse_precision(value, f"{self.path}: {where}")
        elif key == "table_size" and not _is_positive_int(value):
            raise ConfigError(f"{self.path}: {where} {value!r} is not supported; give a "
                              f"positive integer")
        elif key == "exp_scale" and (isinstance(value, bool) or
                                     not isinstance(value, (int, float))):
            raise ConfigError(f"{self.path}: {where} {value!r} is not supported; give a number")
        elif key == "skip" and value is not False:
            raise ConfigError(f"{self.path}: {where} {value!r} is not supported; nnfab builds "
                              f"the softmax: give false")
        elif key == "static":
            if not isinstance(value, bool):
                raise ConfigError(f"{self.path}: {where} {value!r} is not supported; give true "
                                  f"or false")
            self.notes.append(f"{where}: hls4ml's static and non-static LSTM and GRU compute "
                              f"the same numbers (both keep the state in result_t from zero); "
                              f"no effect on nnfab's")
        elif key == "implementation" and not isinstance(value, str):
            raise ConfigError(f"{self.path}: {where} {value!r} is not supported; give "
                              f"'stable'")

    def check_layer_names(self, names):
        """Check that every ``LayerName`` section names a layer of the model.

        Parameters
        ----------
        names : list of str
            The layer names hls4ml gives the model (original and rewritten), compared
            case-insensitively as hls4ml's precision lookups do.

        Raises
        ------
        ConfigError
            Naming the first unknown section and listing ``names``.
        """
        known = {name.lower() for name in names}
        for name in self._given_names:
            if name.lower() not in known:
                raise ConfigError(f"{self.path}: HLSConfig.LayerName {name!r} is not a layer "
                                  f"of the model; its layers are {', '.join(names)}")

    # -- hls4ml's tables ----------------------------------------------------------------------

    @staticmethod
    def _table(section):
        """``{"precision": {var: text}, "ReuseFactor": ..., "Strategy": ...}`` of a section;
        a Precision string is the ``default``, a missing one ``None`` (as hls4ml stores it)."""
        precision = section.get("Precision")
        table = {"precision": dict(precision) if isinstance(precision, dict)
                 else {"default": precision}}
        for key in ("ReuseFactor", "Strategy"):
            if section.get(key) is not None:
                table[key] = section[key]
        return table

    def _parse_name(self, name, section):
        """hls4ml's ``parse_name_config``: entries update those already there."""
        table = self._name_table.setdefault(name.lower(), {"precision": {}})
        new = self._table(section)
        table["precision"].update(new.pop("precision"))
        table.update(new)

    # -- hls4ml's lookups -------------------------------------------------------------------

    def precision(self, name, class_name, var):
        """The FixedFormat (or ``"auto"``) of precision ``var`` of layer ``name`` of hls4ml
        class ``class_name`` (see the module docstring for the order)."""
        model = self._model["Precision"]
        model = model if isinstance(model, dict) else {"default": model}
        for table, label in ((self._name_table.get(name.lower()), f"LayerName.{name}"),
                             (self._type_table.get(class_name.lower()),
                              f"LayerType.{class_name}"),
                             ({"precision": model}, "Model")):
            if table is None:
                continue
            for key in (var, "default"):
                value = table["precision"].get(key)
                if value is not None:
                    return parse_precision(value, f"{self.path}: HLSConfig.{label}.Precision."
                                                  f"{key}")
        raise ConfigError(f"{self.path}: no precision for {var!r} of layer {name!r} and no "
                          f"default in HLSConfig.Model.Precision")

    def model_default(self):
        """``Model.Precision`` (its ``default`` when a mapping): the type of hls4ml's ``auto``
        weights and biases."""
        value = self._model["Precision"]
        value = value.get("default") if isinstance(value, dict) else value
        if value is None:
            raise ConfigError(f"{self.path}: HLSConfig.Model.Precision has no default")
        return parse_precision(value, f"{self.path}: HLSConfig.Model.Precision")

    def model_maximum(self):
        """``Model.Precision.maximum`` (the cap of hls4ml's inferred types) or None."""
        value = self._model["Precision"]
        if isinstance(value, dict) and "maximum" in value:
            return parse_precision(value["maximum"],
                                   f"{self.path}: HLSConfig.Model.Precision.maximum")
        return None

    def _first(self, name, class_name, key):
        for table in (self._name_table.get(name.lower()),
                      self._type_table.get(class_name.lower()), self._model):
            if table is not None and table.get(key) is not None:
                return table[key]
        return None

    def reuse_factor(self, name, class_name):
        return int(self._first(name, class_name, "ReuseFactor") or 1)

    def strategy(self, name, class_name):
        return _snake(str(self._first(name, class_name, "Strategy") or "Latency"))

    def layer_setting(self, name, class_name, key, default=None):
        """A layer key (``table_size``, ``exp_table_t``, ...): ``LayerType[class_name]``
        updated by ``LayerName[name]`` (exact names, snake-cased keys); ``*_t`` keys parsed
        to FixedFormat."""
        merged = {}
        for section in (self._types.get(class_name), self._names.get(name)):
            merged.update({_snake(k): v for k, v in (section or {}).items()})
        if key not in merged:
            return default
        value = merged[key]
        return parse_precision(value, f"{self.path}: layer {name!r} {key}") \
            if key.endswith("_t") else value

    def derive(self, new_name, from_name, from_class):
        """Give layer ``new_name`` the config of ``from_name`` (of class ``from_class``):
        ``LayerType[from_class]`` updated by ``LayerName[from_name]`` (exact names), as
        hls4ml's graph rewrites do for the layers they create (``matmul_const_to_dense.py``,
        ``merge_const.py``: ``set_name_config`` then ``parse_name_config``)."""
        merged = dict(self._types.get(from_class) or {})
        merged.update(self._names.get(from_name) or {})
        self._names[new_name] = merged
        self._parse_name(new_name, merged)

    def layer_names(self):
        """The names of the LayerName sections as written."""
        return list(self._given_names)


def _yaml_loader():
    """PyYAML's safe loader, refusing a key given twice in one mapping (``safe_load`` keeps
    the last silently)."""
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, (str, int, float, bool)) and key in seen:
                    raise ConfigError(f"{key!r} is given twice in one mapping (line "
                                      f"{key_node.start_mark.line + 1}); give each setting once")
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return Loader


def load_hls4ml_config(path):
    """Read and check an hls4ml project YAML file.

    Raises
    ------
    ModelError
        If the file is missing, not YAML or not a mapping; :class:`ConfigError` for a key
        given twice in one mapping and for settings nnfab does not read or cannot honour,
        naming the setting and its section.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"hls4ml config {str(path)!r} does not exist")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_yaml_loader())
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise ModelError(f"hls4ml config {str(path)!r} is not valid YAML: {detail}") from None
    except UnicodeDecodeError as exc:
        raise ModelError(f"hls4ml config {str(path)!r} is not UTF-8 text (byte {exc.start} "
                         f"cannot be decoded)") from None
    if not isinstance(raw, dict):
        raise ModelError(f"hls4ml config {str(path)!r} is not a mapping of settings (it holds "
                         f"{type(raw).__name__} {raw!r:.60}); give a YAML mapping such as "
                         f"'OnnxModel: model.onnx'")
    return Hls4mlConfig(raw, path)
