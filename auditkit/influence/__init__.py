"""The influence engine: pure math on torch and numpy (no I/O, configuration, reports or Dask)."""

from .engine import InfluenceEngine
from .losses import BUILTIN_LOSSES, resolve_loss
from .solvers import SOLVERS
from .training import fit_model, retrain_without

__all__ = ["InfluenceEngine", "fit_model", "retrain_without", "resolve_loss", "BUILTIN_LOSSES", "SOLVERS"]
