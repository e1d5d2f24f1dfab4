"""auditkit: audit trained PyTorch models for fairness and privacy with influence functions.

Importing ``auditkit`` stays light: torch and numpy only (no report or distributed machinery).
"""

from .errors import (
    AuditkitError,
    ConvergenceWarning,
    HessianError,
    InputError,
    ModelTooLargeError,
    NotFittedError,
    SingularHessianError,
)
from .influence import InfluenceEngine, fit_model

__version__ = "0.1.0"

__all__ = [
    "InfluenceEngine",
    "fit_model",
    "AuditkitError",
    "InputError",
    "NotFittedError",
    "ModelTooLargeError",
    "HessianError",
    "SingularHessianError",
    "ConvergenceWarning",
    "__version__",
]
