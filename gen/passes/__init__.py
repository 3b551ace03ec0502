"""Model passes: one transformation per module, each an object with ``apply(model) ->
(model, changed)`` (the pass interface of FINN's transformations)."""

from .base import Pass, run_passes
from .dsp_budget import BudgetDspBlocks, DspBudget
from .fit import FitResult, FitToDevice
from .fold_batchnorm import FoldBatchNorm
from .prune import PruneWeights
from .reuse import ChooseReuseFactors
from .shift_add import FuseShiftAdd
from .shift_add_chain import ChainShiftAdd
from .validate import Validate

__all__ = ["Pass", "run_passes", "BudgetDspBlocks", "DspBudget", "FitToDevice", "FitResult",
           "FoldBatchNorm", "PruneWeights", "ChooseReuseFactors", "FuseShiftAdd",
           "ChainShiftAdd", "Validate"]
