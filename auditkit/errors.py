"""Errors and warnings raised by auditkit.

Every error auditkit raises on purpose derives from :class:`AuditkitError`, so a caller (or the command
line) can tell a problem with its input from a bug. Messages are one line: what is wrong, the value
received, and how to fix it.

::

    AuditkitError                      root of everything auditkit raises on purpose
    ├── InputError (ValueError)        bad arguments or data: shapes, NaN/inf, labels, unknown options
    │   └── SystemDependencyError      a system library or font the PDF report needs is not installed
    ├── NotFittedError (RuntimeError)  an engine used before ``fit``
    ├── OutputError (RuntimeError)     writing the outputs failed; the message says what was and was not written
    ├── BackendError (RuntimeError)    the Dask cluster failed (workers lost, scheduler gone, versions differ)
    ├── ModelTooLargeError             ``method="exact"`` asked of a model with too many parameters
    └── HessianError (ArithmeticError) the Hessian cannot be inverted as asked
        └── SingularHessianError       it is singular or not positive definite: add damping

    AuditkitWarning (UserWarning)
    └── ConvergenceWarning             an iterative solver stopped before reaching its tolerance
"""

from __future__ import annotations

import reprlib

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxtuple, _REPR.maxset = 2, 4, 4, 4, 4
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 60, 60, 40


def shown(value, limit: int = 80) -> str:
    """``repr(value)`` bounded for an error message: at most ``limit`` characters, however large or deeply
    nested the value (an aliased YAML value can expand to 10^9 items: a full ``repr`` would never finish)."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


class AuditkitError(Exception):
    """Root of every error auditkit raises on purpose."""


class InputError(AuditkitError, ValueError):
    """An argument or a data set is malformed: the message names it and says how to fix it."""


class SystemDependencyError(InputError):
    """A system library or font the PDF report needs is missing: the message names it and the package to
    install (see :mod:`auditkit.system`). An :class:`InputError`, so the command line exits with 2."""


class NotFittedError(AuditkitError, RuntimeError):
    """A fitted object was used before ``fit`` was called."""


class OutputError(AuditkitError, RuntimeError):
    """Writing a run's outputs failed; the message states exactly what was written and what was not."""


class BackendError(AuditkitError, RuntimeError):
    """The cluster doing the influence work failed: workers lost, scheduler gone, versions that differ."""


class ModelTooLargeError(AuditkitError, ValueError):
    """The chosen method cannot handle a model of this size."""


class HessianError(AuditkitError, ArithmeticError):
    """The Hessian of the training objective cannot be inverted as asked."""


class SingularHessianError(HessianError):
    """The Hessian is singular or not positive definite; a positive ``damping`` fixes it.

    ``suggested_damping``, when known, is a damping that makes ``H + damping·I`` safely positive definite.
    """

    def __init__(self, message: str, *, suggested_damping: float | None = None):
        super().__init__(message)
        self.suggested_damping = suggested_damping


class AuditkitWarning(UserWarning):
    """Root of the warnings auditkit issues."""


class ConvergenceWarning(AuditkitWarning):
    """An iterative solver stopped before its tolerance; ``residual`` is the relative residual reached."""

    def __init__(self, message: str, *, residual: float):
        super().__init__(message)
        self.residual = float(residual)


__all__ = [
    "AuditkitError",
    "InputError",
    "SystemDependencyError",
    "NotFittedError",
    "OutputError",
    "BackendError",
    "ModelTooLargeError",
    "HessianError",
    "SingularHessianError",
    "AuditkitWarning",
    "ConvergenceWarning",
]
