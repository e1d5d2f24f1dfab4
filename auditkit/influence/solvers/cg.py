"""Conjugate gradient on Hessian-vector products, several right-hand sides at once.

Solves ``H x = b`` for each row b of B with independent CG recursions that share every pass over the
training data: ``x ← x + α p``, ``r ← r − α H p``, ``p ← r + β p`` with ``α = rᵀr / pᵀHp`` and
``β = r'ᵀr' / rᵀr``. A column stops when ``‖r‖ ≤ tol·‖b‖``. Never forms H; memory is O(k·p).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from ...errors import ConvergenceWarning, SingularHessianError
from ..hessian import HessianOperator
from .base import Solver, option, positive


@dataclass
class CGSolver(Solver):
    """Options: ``tol`` (relative residual; default 1e-8 in float64, 1e-5 in float32), ``max_iter``
    (default: max(100, 2p), at most 1,000)."""

    tol: float | None = option(None, "relative residual to reach (default 1e-8 in float64, 1e-5 in float32)")
    max_iter: int | None = option(None, "most iterations (default max(100, 2p), at most 1,000)")
    name = "cg"

    def validate(self) -> None:
        positive("tol", self.tol, allow_none=True)
        positive("max_iter", self.max_iter, integer=True, allow_none=True)

    def fit(self, hessian: HessianOperator) -> CGSolver:
        self.hessian_ = hessian
        self.tol_ = self.tol if self.tol is not None else (1e-8 if hessian.dtype == torch.float64 else 1e-5)
        self.max_iter_ = self.max_iter if self.max_iter is not None else min(1000, max(100, 2 * hessian.p))
        self.residual_ = 0.0
        self.iterations_ = 0
        return self

    def solve(self, B: torch.Tensor) -> torch.Tensor:
        H = self.hessian_
        X = torch.zeros_like(B)
        R = B.clone()
        P = R.clone()
        rs = (R * R).sum(dim=1)
        target = self.tol_ ** 2 * rs
        active = rs > target
        it = 0
        while bool(active.any()) and it < self.max_iter_:
            it += 1
            idx = active.nonzero().flatten()
            AP = H.matvec(P[idx])
            pap = (P[idx] * AP).sum(dim=1)
            if bool((pap <= 0).any()):
                raise SingularHessianError(
                    f"method='cg' met non-positive curvature pᵀHp={float(pap.min()):.3g}: the Hessian is not "
                    "positive definite; pass a positive damping (e.g. damping=1e-3) or train to a minimum")
            alpha = rs[idx] / pap
            X[idx] += alpha[:, None] * P[idx]
            R[idx] -= alpha[:, None] * AP
            rs_new = (R[idx] * R[idx]).sum(dim=1)
            P[idx] = R[idx] + (rs_new / rs[idx])[:, None] * P[idx]
            rs[idx] = rs_new
            active[idx] = rs_new > target[idx]
        norms = (B * B).sum(dim=1).sqrt().clamp_min(torch.finfo(B.dtype).tiny)
        residual = float(((rs.sqrt() / norms).max()) if B.shape[0] else 0.0)
        self.residual_ = max(self.residual_, residual)
        self.iterations_ = max(self.iterations_, it)
        if bool(active.any()):
            warnings.warn(ConvergenceWarning(
                f"method='cg' stopped after max_iter={self.max_iter_} iterations at relative residual "
                f"{residual:.2e} > tol={self.tol_:g}: raise max_iter, add damping, or loosen tol",
                residual=residual), stacklevel=3)
        return X

    def summary(self) -> dict:
        return {**super().summary(), "residual": getattr(self, "residual_", None),
                "iterations": getattr(self, "iterations_", None)}
