"""Preconditioned conjugate gradient: block CG with the fitted EK-FAC (or K-FAC) inverse as preconditioner.

``M = H_EKFAC⁻¹`` (``auditkit.influence.solvers.ekfac``) is symmetric positive definite and close to ``H⁻¹`` on
models whose curvature is nearly Kronecker-factored per layer (exact for a binary logistic regression), so the
preconditioned system ``M H`` has its eigenvalues clustered near 1 and block CG reaches the exact solution
in a few steps. The answer is that of ``H`` itself, not of EK-FAC: only the number of steps depends on M.
Stopping rule and diagnostics as ``cg`` (relative residual ``‖b − Hx‖/‖b‖ ≤ tol`` per right-hand side; the
measured final residual is in the summary). Fitting costs EK-FAC's fit (one pass over the training records,
two when the per-record factors do not fit ``cache_mb``); every step one pass of Hessian-vector products.

Every parametrised layer must be one EK-FAC supports (``nn.Linear``, ``nn.Conv2d``); otherwise the error
names the layer and suggests ``method='cg'``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import InputError
from ..hessian import HessianOperator
from .base import option
from .cg import CGSolver
from .ekfac import EKFACSolver, KFACSolver

PRECONDITIONERS = {"ekfac": EKFACSolver, "kfac": KFACSolver}


@dataclass
class PCGSolver(CGSolver):
    """Block CG preconditioned by EK-FAC (``preconditioner="ekfac"``, default) or K-FAC (``"kfac"``).

    Options: those of ``cg`` (``tol``, ``max_iter``, ``block``), ``preconditioner``, and ``cache_mb`` (memory
    for the per-record factors kept from EK-FAC's fitting pass, as in ``ekfac``).
    """

    preconditioner: str = option("ekfac", "the approximate inverse that preconditions CG: 'ekfac' or 'kfac'")
    cache_mb: float = option(256.0, "memory (MB) for the per-record factors kept from the preconditioner's fit")
    name = "pcg"

    def validate(self) -> None:
        super().validate()
        if self.preconditioner not in PRECONDITIONERS:
            raise InputError(f"preconditioner={self.preconditioner!r} is not allowed: use one of "
                             f"{', '.join(repr(c) for c in PRECONDITIONERS)}")
        PRECONDITIONERS[self.preconditioner](cache_mb=self.cache_mb).validate()

    def fit(self, hessian: HessianOperator) -> PCGSolver:
        self.preconditioner_ = PRECONDITIONERS[self.preconditioner](cache_mb=self.cache_mb).fit(hessian)
        self.preconditioner_.train_quad_forms_ = None          # its own quad forms are not H⁻¹'s: drop them
        return super().fit(hessian)

    def _precondition(self):
        return self.preconditioner_.solve

    def summary(self) -> dict:
        out = super().summary()
        if hasattr(self, "preconditioner_"):
            out["preconditioner_blocks"] = self.preconditioner_.summary().get("blocks")
        return out
