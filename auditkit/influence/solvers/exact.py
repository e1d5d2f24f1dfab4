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
from .arnoldi import extreme_eigenvalues
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
        data = getattr(self, "data_term_", None)
        if data is None and not hasattr(self, "chol_"):
            return None                      # a refused fit that kept no data term: fit afresh
        if data is None:
            data = self.chol_ @ self.chol_.T
            data.diagonal().sub_(old_shift.double().to(data.device))
        else:
            new.data_term_ = data
        dense = data.clone()
        dense.diagonal().add_(hessian.shift.double().to(data.device))
        return new._factorise(dense, hessian)

    def _factorise(self, dense: torch.Tensor, hessian: HessianOperator) -> ExactSolver:
        chol, info = torch.linalg.cholesky_ex(dense)
        pivots = chol.diagonal() ** 2
        if int(info) > 0 or not torch.isfinite(pivots).all() or pivots.min() <= self.rcond * pivots.max():
            self._refuse(dense, hessian)
        self.chol_ = chol
        self.smallest_pivot_ = float(pivots.min())
        return self

    def _refuse(self, dense: torch.Tensor, hessian: HessianOperator) -> None:
        """Raise :class:`SingularHessianError` naming H's smallest and largest eigenvalue and the damping that
        fixes it. The eigenvalues are Lanczos' extreme Ritz values (:func:`~.arnoldi.extreme_eigenvalues`, p² flops
        per step), not a full ``eigvalsh`` (4p³/3 flops: 24 CPU-s at p = 6,018); a full ``eigvalsh`` only when
        ``dense`` is not finite."""
        if torch.isfinite(dense).all():
            lo, hi = extreme_eigenvalues(lambda V: (V.to(dense) @ dense).cpu(), dense.shape[0])   # H symmetric
        else:
            evals = torch.linalg.eigvalsh(dense)
            lo, hi = float(evals[0]), float(evals[-1])
        fix = suggest_damping(lo, hi)
        if lo < -1e-9 * abs(hi):  # clearly negative, beyond round-off
            raise SingularHessianError(
                f"the Hessian is not positive definite (smallest eigenvalue about {lo:.2g}, largest about {hi:.2g}): "
                "the parameters are not at a minimum of mean loss + l2/2·‖θ‖² (train to convergence with the "
                f"same l2), or pass damping={fix:.2g} or more", suggested_damping=fix)
        l2 = describe_l2(hessian.l2)
        raise SingularHessianError(
            f"the Hessian is singular (smallest eigenvalue about {lo:.2g}, largest about {hi:.2g}, with l2={l2} "
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
