"""Exact inverse: form the dense Hessian once and factorise it (Cholesky, float64).

``H = L Lᵀ``; then ``H⁻¹ b = L⁻ᵀ L⁻¹ b`` and ``gᵀ H⁻¹ g = ‖L⁻¹ g‖²`` (one triangular solve per record,
no per-record iteration). Forming H (``HessianOperator.dense``) costs one pass over the training data: for a
model whose first trained layer is an ``nn.Linear`` (an MLP), per-record Kronecker blocks and one matrix product
per chunk (``auditkit.influence.dense_hessian``, about n·h²·(d+1)²/2 flops for h units on d inputs); otherwise p
Hessian-vector products per record. It takes p² memory, so the method is meant for models up to roughly 20,000
parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...errors import ModelTooLargeError, SingularHessianError
from ..hessian import HessianOperator
from ..penalty import describe_l2
from .base import Solver, option, positive, suggest_damping


@dataclass
class ExactSolver(Solver):
    """Dense Hessian, Cholesky-factorised in float64.

    Options: ``max_params`` (refuse larger models; default 20,000), ``rcond`` (a Cholesky pivot below
    ``rcond`` × the largest pivot counts as singular; default 1e-12).
    """

    max_params: int = option(20_000, "refuse models with more parameters (the dense Hessian is p × p)")
    rcond: float = option(1e-12, "a Cholesky pivot below rcond × the largest pivot counts as singular")
    name = "exact"

    def validate(self) -> None:
        positive("max_params", self.max_params, integer=True)
        positive("rcond", self.rcond)

    def fit(self, hessian: HessianOperator) -> ExactSolver:
        p = hessian.p
        if p > self.max_params:
            raise ModelTooLargeError(
                f"method='exact' forms the dense {p}×{p} Hessian, too large for a model with {p} parameters "
                f"(max_params={self.max_params}): use method='cg' or method='lissa', or restrict influence "
                "to some layers with params=[...] (e.g. the last layer)")
        self.dtype_ = hessian.dtype
        dense = hessian.dense().double()
        dense = (dense + dense.T) / 2
        self.dense_method_ = getattr(hessian, "dense_method", None)
        if p <= self.KEEP_DATA_TERM:       # kept for ``reshifted`` (the stability check's other ridges)
            self.data_term_ = dense.clone()
            self.data_term_.diagonal().sub_(hessian.shift.double().to(dense.device))
        return self._factorise(dense, hessian)

    #: largest p whose data term ``H − diag(shift)`` (p² float64) is kept after fitting; above it ``reshifted``
    #: rebuilds it from the Cholesky factor (``L Lᵀ − diag(shift)``, a p³ matrix product)
    KEEP_DATA_TERM = 12_000

    def reshifted(self, hessian: HessianOperator, old_shift: torch.Tensor) -> ExactSolver:
        """A fitted copy for ``hessian``, whose data term is this one's and whose diagonal shift (l2 + damping)
        differs: ``H' = D + diag(shift')`` with the data term D kept from ``fit`` (or ``L Lᵀ − diag(shift)``),
        factorised again (p³/3 flops), without a pass over the data. The copy shares D."""
        new = ExactSolver(max_params=self.max_params, rcond=self.rcond)
        new.dtype_, new.dense_method_ = hessian.dtype, getattr(self, "dense_method_", None)
        device = self.chol_.device
        data = getattr(self, "data_term_", None)
        if data is None:
            data = self.chol_ @ self.chol_.T
            data.diagonal().sub_(old_shift.double().to(device))
        else:
            new.data_term_ = data
        new_shift = hessian.shift.double().to(device)
        dense = data.clone()
        dense.diagonal().add_(new_shift)
        return new._factorise(dense, hessian,
                              extremes=lambda: self._shifted_extremes(old_shift.double().to(device) - new_shift))

    def _shifted_extremes(self, delta: torch.Tensor) -> tuple[float, float] | None:
        """Smallest and largest eigenvalue of ``H − δ·I`` from this fitted ``H = L Lᵀ``, for a uniform shift δ
        (else None): ``λ(H − δI) = λ(H) − δ``, with ``λ_min(H) = 1 / λ_max(H⁻¹)`` and ``λ_max(H)`` each by Lanczos
        (``scipy.sparse.linalg.eigsh``, products with ``L`` only, p² flops each) instead of a full ``eigvalsh``
        (4p³/3 flops: 24 CPU-s at p = 6,018). None where Lanczos does not converge."""
        import numpy as np
        from scipy.sparse.linalg import ArpackError, LinearOperator, eigsh

        if delta.numel() == 0 or not torch.allclose(delta, delta[0].expand_as(delta), rtol=1e-12, atol=0.0):
            return None
        chol, p = self.chol_.cpu(), self.chol_.shape[0]

        def top(matvec) -> float:
            op = LinearOperator((p, p), matvec=lambda v: matvec(torch.from_numpy(np.ascontiguousarray(v,
                                dtype=np.float64)).reshape(p, 1)).numpy().ravel(), dtype=np.float64)
            return float(eigsh(op, k=1, which="LA", v0=np.ones(p), tol=1e-8, maxiter=50 * p,
                               return_eigenvectors=False)[0])

        try:
            inverse_top = top(lambda v: torch.cholesky_solve(v, chol))
            largest = top(lambda v: chol @ (chol.T @ v))
        except ArpackError:
            return None
        shift = float(delta[0])
        return 1.0 / inverse_top - shift, largest - shift

    def _factorise(self, dense: torch.Tensor, hessian: HessianOperator, extremes=None) -> ExactSolver:
        chol, info = torch.linalg.cholesky_ex(dense)
        pivots = chol.diagonal() ** 2
        if int(info) > 0 or not torch.isfinite(pivots).all() or pivots.min() <= self.rcond * pivots.max():
            self._refuse(dense, hessian, extremes() if extremes is not None else None)
        self.chol_ = chol
        self.smallest_pivot_ = float(pivots.min())
        return self

    def _refuse(self, dense: torch.Tensor, hessian: HessianOperator,
                extremes: tuple[float, float] | None = None) -> None:
        """Raise :class:`SingularHessianError` naming H's smallest and largest eigenvalue (``extremes`` when
        known, else a full ``eigvalsh`` of ``dense``) and the damping that fixes it."""
        if extremes is None:
            evals = torch.linalg.eigvalsh(dense)
            extremes = float(evals[0]), float(evals[-1])
        lo, hi = extremes
        fix = suggest_damping(lo, hi)
        if lo < -1e-9 * abs(hi):  # clearly negative, beyond round-off
            raise SingularHessianError(
                f"the Hessian is not positive definite (smallest eigenvalue {lo:.3g}, largest {hi:.3g}): "
                "the parameters are not at a minimum of mean loss + l2/2·‖θ‖² (train to convergence with the "
                f"same l2), or pass damping={fix:.2g} or more", suggested_damping=fix)
        l2 = describe_l2(hessian.l2)
        raise SingularHessianError(
            f"the Hessian is singular (smallest eigenvalue {lo:.3g}, largest {hi:.3g}, with l2={l2} "
            f"and damping={hessian.damping:g}): pass damping={fix:.2g} (about 1e-3 of the largest eigenvalue)",
            suggested_damping=fix)

    def solve(self, B: torch.Tensor) -> torch.Tensor:
        return torch.cholesky_solve(B.double().T, self.chol_).T.to(B.dtype)

    def quad_forms(self, G: torch.Tensor) -> torch.Tensor:
        W = torch.linalg.solve_triangular(self.chol_, G.double().T, upper=False)
        return (W * W).sum(dim=0).to(G.dtype)

    def gram_factors(self, B: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``W = (L⁻¹Bᵀ)ᵀ`` twice: ``b_iᵀ H⁻¹ b_j = w_i · w_j``, one triangular solve per row."""
        W = torch.linalg.solve_triangular(self.chol_, B.double().T, upper=False).T
        return W, W

    def summary(self) -> dict:
        return {**super().summary(), "smallest_pivot": getattr(self, "smallest_pivot_", None),
                "dense_hessian": getattr(self, "dense_method_", None)}
