"""Values of the native format that are not arrays; moved to :mod:`nnfab.ir.native_params`
(each layer kind reads and writes its own native form), re-exported here."""

from nnfab.ir.native_params import format_from_json, param_from_json, param_to_json

__all__ = ["format_from_json", "param_from_json", "param_to_json"]
