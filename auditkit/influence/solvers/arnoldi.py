"""Arnoldi influence (Schioppa et al. 2022): H⁻¹ restricted to the Hessian's top-k eigenvectors.

H is symmetric, so the Arnoldi iteration is the Lanczos iteration: from a random unit vector q₁ it builds
an orthonormal basis Q = [q₁ … q_m] of the Krylov space span{q₁, Hq₁, …, H^{m−1}q₁} (one Hessian-vector
product over the training data per step, full re-orthogonalisation, float64) and the tridiagonal
``T = Qᵀ H Q``. The eigenpairs (θ, s) of T give Ritz pairs (θ, Q s) of H; by default those that have
converged (relative Ritz residual ≤ ``ritz_tol``: the captured spectrum, both ends) are kept, or the ``rank``
largest when a rank is given: ``H ≈ V diag(λ) Vᵀ`` with V (p × k) orthonormal. Then

    H⁻¹ ≈ V diag(1/λ) Vᵀ + c·(I − V Vᵀ),        gᵀ H⁻¹ g ≈ ‖diag(λ)^{−½} Vᵀ g‖² + c·(‖g‖² − ‖Vᵀ g‖²),

an O(p·k) projection per record (no iteration per record, so self-influence of all n records is one
pass of per-record gradients). ``complement`` chooses c, the inverse applied outside the subspace:

- ``"drop"`` (default, as in the paper): c = 0, directions outside the kept subspace are dropped. The
  dropped part of gᵀH⁻¹g is ≥ 0, so self-influence is underestimated; the ranking is what it keeps.
- ``"smallest"``: c = 1/θ_min with θ_min the smallest Ritz value of the run, an estimate from above of
  H's smallest eigenvalue: the complement is treated as if flat at the bottom of the spectrum (an upper
  end for the inverse there, since the complement's eigenvalues lie between λ_min and the k-th largest).

With ``rank`` = ``iterations`` = p the Krylov space is the whole space (invariant subspaces met on the way
are left by restarting from a fresh random vector orthogonal to Q), and the method equals ``exact`` to
round-off. Memory: the m × p basis.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...errors import InputError, SingularHessianError
from ..hessian import HessianOperator
from .base import Solver, option, positive, suggest_damping

COMPLEMENTS = ("drop", "smallest")


def lanczos(matvec, p: int, steps: int, *, seed: int, breakdown: float = 1e-10, stop=None):
    """``steps`` Lanczos steps on the symmetric operator ``matvec`` (float64 rows (1, p) → (1, p)), or fewer when
    ``stop(alpha, offdiag)`` (asked every 10 steps with T so far) says the run may end there.

    Returns ``(Q, alpha, beta, last)``: the orthonormal basis (m, p), T's diagonal (m,) and off-diagonal
    (m−1,), and the last β (the residual norm of the Krylov relation, 0 when the run ended in an invariant subspace).
    Full re-orthogonalisation (twice) at every step; on breakdown (β below ``breakdown`` × the largest |α|
    seen) the next vector is a fresh random one orthogonal to Q and T decouples there (β = 0).
    """
    gen = torch.Generator(device="cpu").manual_seed(seed)
    steps = min(steps, p)
    Q = torch.zeros(steps, p, dtype=torch.float64)
    alpha = torch.zeros(steps, dtype=torch.float64)
    beta = torch.zeros(steps, dtype=torch.float64)

    def fresh(m: int) -> torch.Tensor:
        for _ in range(5):
            v = torch.randn(p, generator=gen, dtype=torch.float64)
            for _ in range(2):
                v = v - Q[:m].T @ (Q[:m] @ v)
            if v.norm() > 1e-8:
                return v / v.norm()
        raise SingularHessianError("method='arnoldi' could not find a vector orthogonal to the Krylov basis")

    q = fresh(0)
    scale = 0.0
    for j in range(steps):
        Q[j] = q
        w = matvec(q[None, :])[0]
        alpha[j] = w @ q
        scale = max(scale, float(alpha[j].abs()))
        for _ in range(2):
            w = w - Q[:j + 1].T @ (Q[:j + 1] @ w)
        beta[j] = w.norm()
        if j + 1 == steps:
            break
        if stop is not None and (j + 1) % 10 == 0 and stop(alpha[:j + 1], beta[:j]):
            return Q[:j + 1], alpha[:j + 1], beta[:j], float(beta[j])
        if beta[j] <= breakdown * max(scale, 1e-300):
            beta[j] = 0.0
            q = fresh(j + 1)
        else:
            q = w / beta[j]
    return Q, alpha, beta[:-1], float(beta[-1])


def extreme_eigenvalues(matvec, p: int, *, steps: int = 300, rtol: float = 1e-8,
                        seed: int = 0) -> tuple[float, float]:
    """The smallest and largest eigenvalue of a symmetric operator (``matvec`` as in :func:`lanczos`), estimated
    by the extreme Ritz values of Lanczos (both ends from one run; p² flops per step for a dense matrix, against
    4p³/3 for a full ``eigvalsh``), run until neither moved by more than ``rtol`` × the larger in magnitude over
    the last 10 steps, at most ``min(steps, p)`` steps. Ritz values lie inside the spectrum and converge to its
    ends first; unlike a residual test (ARPACK's) they do not wait for the eigenvectors, which converge slowly
    when the extreme eigenvalues cluster, while the values do not."""
    from scipy.linalg import eigvalsh_tridiagonal

    def ends(alpha, offdiag) -> tuple[float, float]:
        values = eigvalsh_tridiagonal(alpha.numpy(), offdiag.numpy())
        return float(values[0]), float(values[-1])

    last = []

    def settled(alpha, offdiag) -> bool:
        now = ends(alpha, offdiag)
        done = bool(last) and max(abs(a - b) for a, b in zip(now, last[0], strict=True)) <= rtol * max(map(abs, now))
        last[:] = [now]
        return done

    _, alpha, offdiag, _ = lanczos(matvec, p, steps, seed=seed, stop=settled)
    return ends(alpha, offdiag)


@dataclass
class ArnoldiSolver(Solver):
    """Eigenpairs of H by ``iterations`` Lanczos steps (float64); H⁻¹ applied on their span.

    Options: ``rank`` (None, default: chosen from the captured spectrum, see below; an integer: the top
    ``rank`` eigenpairs, at most p); ``iterations`` (Hessian-vector passes over the training data; default
    min(p, 200) when the rank is chosen, 2·rank + 10 (at most p) when given); ``ritz_tol`` (1e-4) and
    ``max_rank`` (1,000) for the chosen rank; ``complement`` (``"drop"``: nothing outside the subspace, as in
    Schioppa et al.; ``"smallest"``: 1/θ_min there), ``seed`` (start vector).

    **Rank chosen from the captured spectrum** (``rank=None``): every Ritz pair (θ, v) whose relative residual
    ``‖Hv − θv‖/θ = |β_m s_m|/θ`` is at most ``ritz_tol`` has converged to an eigenpair of H and is kept (the
    largest ``max_rank`` of them when there are more): Lanczos captures both ends of the spectrum first, and
    the small eigenvalues it captures are the ones H⁻¹ weighs most. With ``iterations = p`` every pair
    converges and the method equals ``exact``. The rank used is in ``summary()["rank_used"]``.
    """

    rank: int | None = option(None, "eigenpairs of H kept (default: chosen from the captured spectrum; an "
                                    "integer: the top rank, at most the number of parameters)")
    iterations: int | None = option(None, "Lanczos steps, each one Hessian-vector pass (default min(p, 200) when "
                                          "the rank is chosen, 2·rank + 10 when given)")
    complement: str = option("drop", "outside the subspace: 'drop' (nothing) or 'smallest' (1/θ_min)")
    seed: int = option(0, "seed of the start vector (the audit derives it from its seed unless given)")
    ritz_tol: float = option(1e-4, "relative residual of a Ritz pair at or below which it is kept (chosen rank)")
    max_rank: int = option(1000, "most eigenpairs kept when the rank is chosen")
    name = "arnoldi"

    def validate(self) -> None:
        positive("rank", self.rank, integer=True, allow_none=True)
        positive("iterations", self.iterations, integer=True, allow_none=True)
        positive("ritz_tol", self.ritz_tol)
        positive("max_rank", self.max_rank, integer=True)
        if self.iterations is not None and self.rank is not None and self.iterations < self.rank:
            raise InputError(f"iterations={self.iterations!r} is not allowed: it must be ≥ rank={self.rank} "
                             "(each iteration adds one vector to the Krylov space the eigenpairs come from)")
        if self.complement not in COMPLEMENTS:
            raise InputError(f"complement={self.complement!r} is not allowed: use one of "
                             f"{', '.join(repr(c) for c in COMPLEMENTS)}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise InputError(f"seed={self.seed!r} is not allowed: it must be an integer")

    def fit(self, hessian: HessianOperator) -> ArnoldiSolver:
        p = hessian.p
        if self.rank is not None:
            steps = min(p, int(self.iterations) if self.iterations is not None else 2 * min(int(self.rank), p) + 10)
        else:
            steps = min(p, int(self.iterations) if self.iterations is not None else 200)
        breakdown = 1e-10 if hessian.dtype == torch.float64 else 1e-5

        def matvec(v: torch.Tensor) -> torch.Tensor:
            return hessian.matvec(v.to(device=hessian.device, dtype=hessian.dtype)).double().cpu()

        Q, alpha, offdiag, last_beta = lanczos(matvec, p, steps, seed=self.seed, breakdown=breakdown)
        T = torch.diag(alpha) + torch.diag(offdiag, 1) + torch.diag(offdiag, -1)
        theta, S = torch.linalg.eigh(T)                                    # ascending
        residuals = (last_beta * S[-1]).abs() / theta.abs().clamp_min(1e-300)
        if self.rank is not None:
            rank = min(int(self.rank), p)
            top = torch.arange(len(theta) - 1, len(theta) - 1 - rank, -1)
        else:
            captured = (residuals <= self.ritz_tol).nonzero().flatten().flip(0)      # descending θ
            top = captured[:int(self.max_rank)] if len(captured) else torch.arange(len(theta) - 1, len(theta) - 2, -1)
            rank = len(top)
        values = theta[top]
        lo, hi = float(values.min()), float(values.max())
        if lo <= 1e-12 * max(abs(hi), 1e-300):
            fix = suggest_damping(float(theta.min()), hi)
            raise SingularHessianError(
                f"method='arnoldi' kept an eigenvalue {lo:.3g} ≤ 0 among the top {rank} of the Hessian "
                f"(largest {hi:.3g}): the parameters are not at a minimum, or H is singular; pass "
                f"damping={fix:.2g} or more, or a smaller rank", suggested_damping=fix)
        self.values_ = values                                              # (k,) descending
        self.vectors_ = (S[:, top].T @ Q).to(hessian.device)               # (k, p) orthonormal rows
        self.ritz_residuals_ = residuals[top]                              # ‖Hv − θv‖ / θ per kept pair
        self.smallest_ritz_ = float(theta.min())
        self.steps_ = Q.shape[0]
        self.rank_ = rank
        if self.complement == "smallest" and rank < p:
            if self.smallest_ritz_ <= 0:
                raise SingularHessianError(
                    f"method='arnoldi' with complement='smallest' found a Ritz value {self.smallest_ritz_:.3g} "
                    "≤ 0: pass a positive damping or complement='drop'",
                    suggested_damping=suggest_damping(self.smallest_ritz_, hi))
            self.c_ = 1.0 / self.smallest_ritz_
        else:
            self.c_ = 0.0
        return self

    def solve(self, B: torch.Tensor) -> torch.Tensor:
        V = self.vectors_
        P = B.double() @ V.T                                               # (b, k)
        X = (P / self.values_.to(P.device)) @ V
        if self.c_:
            X = X + self.c_ * (B.double() - P @ V)
        return X.to(B.dtype)

    def quad_forms(self, G: torch.Tensor) -> torch.Tensor:
        dtype, G = G.dtype, G.double()
        P = G @ self.vectors_.T
        values = (P * P / self.values_.to(P.device)).sum(1)
        if self.c_:
            values = values + self.c_ * ((G * G).sum(1) - (P * P).sum(1)).clamp_min(0)
        return values.to(dtype)

    def summary(self) -> dict:
        out = super().summary()
        if hasattr(self, "values_"):
            rule = (f"every Ritz pair with relative residual ≤ ritz_tol={self.ritz_tol:g}, at most "
                    f"max_rank={self.max_rank}" if self.rank is None else f"the top rank={self.rank}")
            out.update({"rank_used": self.rank_, "rank_rule": rule, "iterations_used": self.steps_,
                        "largest_eigenvalue": float(self.values_[0]),
                        "smallest_kept_eigenvalue": float(self.values_[-1]),
                        "smallest_ritz_value": self.smallest_ritz_,
                        "max_relative_ritz_residual": float(self.ritz_residuals_.max())})
        return out
