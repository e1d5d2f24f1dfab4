"""Conjugate gradient on Hessian-vector products: block CG over all right-hand sides at once.

Solves ``H X = B`` for the k right-hand sides (rows of B) together. Default (``block=True``): the
breakdown-free block CG of Ji & Li (2017) (block CG of O'Leary 1980 with the search block re-orthonormalised
at every step, so that dependent right-hand sides, e.g. two identical test records, do not break it),
optionally preconditioned by an SPD ``M ≈ H⁻¹`` (``PCGSolver``)::

    R = B,  P = orth(M R)
    repeat:  Q = H P;  α = (PᵀQ)⁻¹ PᵀR;  X += P α;  R −= Q α
             Z = M R_active;  β = −(PᵀQ)⁻¹ QᵀZ;  P = orth(Z + P β)

Each step is ONE pass over the training records for the whole block (``HessianOperator.matvec`` of at most k
vectors), and X is the Galerkin solution on the block Krylov space ``span{MB, (MH)MB, …}``, which grows by up
to k directions per step: many right-hand sides need fewer steps than one (at most ⌈p/k⌉ in exact arithmetic).
Per-column convergence: a column whose relative residual ``‖r_j‖ ≤ tol·‖b_j‖`` adds no more directions
(``Z`` holds only the active columns), though its X still takes the Galerkin update. ``orth`` keeps the
directions of the row-normalised block with singular value above ``1e-6`` (float64; ``1e-4`` in float32) of the
largest (two passes through its Gram matrix): dependent directions are dropped instead of dividing by zero, and
come back through later residuals if they still matter.

``block=False``: k independent (preconditioned) CG recursions (``x ← x + αp``, ``r ← r − αHp``, ``z = Mr``,
``p ← z + βp``) that share every pass over the data: the column-by-column reference.

After the solve the true relative residual ``‖b_j − H x_j‖ / ‖b_j‖`` of the 8 columns with the largest updated
residuals is measured with one more pass of (at most) 8 Hessian-vector products; ``residual_`` (the engine's
``summary()["residual"]``) is the largest of these and of every column's updated residual, over all solves.
Never forms H; memory O(k·p).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from ...errors import ConvergenceWarning, InputError, SingularHessianError
from ..hessian import HessianOperator
from .base import Solver, option, positive


def _not_positive(method: str, value: float) -> SingularHessianError:
    return SingularHessianError(
        f"method={method!r} met non-positive curvature pᵀHp={value:.3g}: the Hessian is not "
        "positive definite; pass a positive damping (e.g. damping=1e-3) or train to a minimum")


def _orth(W: torch.Tensor, cutoff: float) -> torch.Tensor:
    """Orthonormal rows spanning the rows of W (rows normalised first), dropping directions whose singular value
    is at most ``cutoff`` × the largest. Twice through the Gram matrix (its eigenvectors, float64): O(k²p) matrix
    products, many times faster than an SVD of the k × p block when p is large."""
    norms = W.norm(dim=1)
    W = W[norms > 0] / norms[norms > 0, None]
    for _ in range(2):
        if W.shape[0] == 0:
            return W
        values, U = torch.linalg.eigh(W.double() @ W.double().T)
        keep = values > (cutoff ** 2) * values[-1]
        W = ((U[:, keep] / values[keep].sqrt()).T.to(W.dtype)) @ W
    return W


def block_cg(matvec, B: torch.Tensor, *, tol: float, max_iter: int, precondition=None, method: str = "cg"):
    """Breakdown-free block (P)CG for ``X H = B`` with rows as vectors (see the module docstring).

    Parameters
    ----------
    matvec : callable
        ``V ↦ V·H`` for rows V (s, p); H symmetric positive definite.
    B : torch.Tensor
        Right-hand sides (k, p).
    tol : float
        Column j stops adding directions once ``‖r_j‖ ≤ tol·‖b_j‖`` (recursively updated residual).
    max_iter : int
        Most block steps (one ``matvec`` of the block each).
    precondition : callable, optional
        ``R ↦ R·M`` with M symmetric positive definite, ``M ≈ H⁻¹``; None: no preconditioning.
    method : str
        Name used in error messages.

    Returns
    -------
    X : torch.Tensor
        (k, p), the approximate ``B·H⁻¹``.
    relative : torch.Tensor
        (k,), the recursively updated relative residuals ``‖r_j‖ / ‖b_j‖`` at the end.
    steps : int
        Block steps taken.
    vectors : int
        Hessian-vector products made (the sum of the block sizes).
    """
    M = precondition if precondition is not None else (lambda R: R)
    cutoff = 1e-6 if B.dtype == torch.float64 else 1e-4
    norms = B.norm(dim=1).clamp_min(torch.finfo(B.dtype).tiny)
    X = torch.zeros_like(B)
    R = B.clone()
    active = R.norm(dim=1) > tol * norms
    P = _orth(M(R[active]), cutoff) if bool(active.any()) else R[:0]
    steps = vectors = 0
    while P.shape[0] and steps < max_iter:
        steps += 1
        vectors += P.shape[0]
        Q = matvec(P)
        PQ = P.double() @ Q.double().T
        PQ = (PQ + PQ.T) / 2
        chol, info = torch.linalg.cholesky_ex(PQ)
        if int(info) > 0 or not bool(torch.isfinite(chol).all()):
            raise _not_positive(method, float(torch.linalg.eigvalsh(PQ)[0]))
        alpha = torch.cholesky_solve(P.double() @ R.double().T, chol).to(B.dtype)          # (s, k)
        X += alpha.T @ P
        R -= alpha.T @ Q
        active = R.norm(dim=1) > tol * norms
        if not bool(active.any()):
            break
        Z = M(R[active])
        Z = Z / Z.norm(dim=1, keepdim=True).clamp_min(torch.finfo(B.dtype).tiny)
        beta = -torch.cholesky_solve(Q.double() @ Z.double().T, chol).to(B.dtype)          # (s, a)
        P = _orth(Z + beta.T @ P, cutoff)
    return X, R.norm(dim=1) / norms, steps, vectors


def column_cg(matvec, B: torch.Tensor, *, tol: float, max_iter: int, precondition=None, method: str = "cg"):
    """k independent (preconditioned) CG recursions sharing every ``matvec``; returns what ``block_cg`` returns."""
    M = precondition if precondition is not None else (lambda R: R)
    norms = B.norm(dim=1).clamp_min(torch.finfo(B.dtype).tiny)
    X = torch.zeros_like(B)
    R = B.clone()
    Z = M(R)
    P = Z.clone()
    rz = (R * Z).sum(dim=1)
    active = R.norm(dim=1) > tol * norms
    steps = vectors = 0
    while bool(active.any()) and steps < max_iter:
        steps += 1
        idx = active.nonzero().flatten()
        vectors += len(idx)
        AP = matvec(P[idx])
        pap = (P[idx] * AP).sum(dim=1)
        if bool((pap <= 0).any()):
            raise _not_positive(method, float(pap.min()))
        alpha = rz[idx] / pap
        X[idx] += alpha[:, None] * P[idx]
        R[idx] -= alpha[:, None] * AP
        Z_idx = M(R[idx])
        rz_new = (R[idx] * Z_idx).sum(dim=1)
        P[idx] = Z_idx + (rz_new / rz[idx])[:, None] * P[idx]
        rz[idx] = rz_new
        active[idx] = R[idx].norm(dim=1) > tol * norms[idx]
    return X, R.norm(dim=1) / norms, steps, vectors


@dataclass
class CGSolver(Solver):
    """Options: ``tol`` (relative residual per right-hand side; default 1e-8 in float64, 1e-5 in float32),
    ``max_iter`` (steps; default: max(100, 2p), at most 1,000), ``block`` (True: block CG over all right-hand
    sides, default; False: independent recursions)."""

    tol: float | None = option(None, "relative residual to reach per right-hand side (default 1e-8 in float64, "
                                     "1e-5 in float32)")
    max_iter: int | None = option(None, "most iterations (default max(100, 2p), at most 1,000)")
    block: bool = option(True, "True: block CG over all right-hand sides at once; False: independent recursions")
    name = "cg"
    checked = 8             # columns whose true residual is measured after a solve

    def validate(self) -> None:
        positive("tol", self.tol, allow_none=True)
        positive("max_iter", self.max_iter, integer=True, allow_none=True)
        if not isinstance(self.block, bool):
            raise InputError(f"block={self.block!r} is not allowed: use True or False")

    def fit(self, hessian: HessianOperator) -> CGSolver:
        self.hessian_ = hessian
        self.tol_ = self.tol if self.tol is not None else (1e-8 if hessian.dtype == torch.float64 else 1e-5)
        self.max_iter_ = self.max_iter if self.max_iter is not None else min(1000, max(100, 2 * hessian.p))
        self.residual_ = None          # no solve yet
        self.iterations_ = 0
        self.hvps_ = 0
        return self

    def _precondition(self):
        """``R ↦ R·M`` (None: no preconditioner)."""
        return None

    def solve(self, B: torch.Tensor) -> torch.Tensor:
        if B.shape[0] == 0:
            return torch.zeros_like(B)
        H = self.hessian_
        if self.block:
            X, relative, steps, vectors = block_cg(H.matvec, B, tol=self.tol_, max_iter=self.max_iter_,
                                                   precondition=self._precondition(), method=self.name)
        else:
            X, relative, steps, vectors = column_cg(H.matvec, B, tol=self.tol_, max_iter=self.max_iter_,
                                                    precondition=self._precondition(), method=self.name)
        # the true residual of the CHECKED columns (those with the largest updated residuals), one more small pass
        worst = relative.argsort(descending=True)[:self.checked]
        measured = float(((H.matvec(X[worst]) - B[worst]).norm(dim=1) / B[worst].norm(dim=1).clamp_min(
            torch.finfo(B.dtype).tiny)).max())
        self.residual_ = max(self.residual_ or 0.0, measured, float(relative.max()))
        self.iterations_ = max(self.iterations_, steps)
        self.hvps_ += vectors + len(worst)
        if bool((relative > self.tol_).any()):
            reached = float(relative.max())
            warnings.warn(ConvergenceWarning(
                f"method={self.name!r} stopped after max_iter={self.max_iter_} iterations at relative residual "
                f"{reached:.2e} > tol={self.tol_:g}: raise max_iter, add damping, or loosen tol",
                residual=reached), stacklevel=3)
        return X

    def summary(self) -> dict:
        return {**super().summary(), "stopping_rule": "relative residual ‖b − Hx‖/‖b‖ ≤ tol for every right-hand "
                                                      "side", "tol_used": getattr(self, "tol_", None),
                "residual": getattr(self, "residual_", None), "iterations": getattr(self, "iterations_", None),
                "hessian_vector_products": getattr(self, "hvps_", None)}
