"""auditkit: audit trained PyTorch models for fairness and privacy with influence functions.

Importing ``auditkit`` stays light: torch and numpy only (no report or distributed machinery).
"""

from ._version import __version__
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


def audit(config, out=None, **kwargs):
    """Run the audit described by ``config`` (audit.yaml's path, a dict of its sections, or a loaded
    configuration) and, with ``out``, write its report there; ``data={"train": df, "test": df, ...}`` and
    ``model=module`` give the tables and the model as objects instead of files. Returns the run: ``.status``,
    its findings as pandas tables (``.fairness``, ``.privacy``, ``.data_quality``: see
    :mod:`auditkit.results`), ``.run`` (the run document), ``.paths``. See :func:`auditkit.runner.audit`.
    (Imports the report machinery only when called.)"""
    from .runner import audit as _audit
    return _audit(config, out, **kwargs)


__all__ = [
    "audit",
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
