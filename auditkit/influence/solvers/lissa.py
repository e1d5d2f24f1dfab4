"""LiSSA: the stochastic Neumann-series recursion of Agarwal et al. (2017), as used by Koh & Liang.

With a minibatch estimate ``H̃_t`` of H at each step and ``scale`` above H's largest eigenvalue,

    h_0 = b,    h_t = b + h_{t-1} − H̃_t h_{t-1} / scale,    H⁻¹ b ≈ h_T / scale,

which converges because ``‖I − H/scale‖ < 1``: the error shrinks by about ``1 − λ_min/scale`` per step.
``repeats`` independent recursions are averaged. All right-hand sides (rows of B) run in one recursion, each
step one Hessian-vector pass over the block of rows still active; a row stops once ``check`` steps change its
estimate by less than ``check·tol`` (relative to its own norm); at the end the relative residual
``‖H x − b‖/‖b‖`` is measured with the full Hessian and a :class:`ConvergenceWarning` is issued when it exceeds
``residual_tol``.

With the full Hessian at every step (``batch_size`` ≥ n) the recursion is deterministic and its increments
``d_t = h_t − h_{t−50}`` shrink like ``q^t``, ``q = 1 − λ/scale`` for the slowest direction b reaches. From
step 500 on, q is read off ``‖d_t‖ / ‖d_{t/2}‖ = q^{t/2}``: an optimistic rate (the slowest directions take
over later, and the decay only slows). When even at that rate reaching ``tol`` would take more than twice
``depth`` steps (H singular, nearly so, or not positive definite along a direction b reaches), a
:class:`SingularHessianError` with a suggested damping is raised at once, instead of running ``depth`` full
passes to a residual warning (with ``damping: auto`` an audit then adds the damping).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch

from ...errors import ConvergenceWarning, HessianError, SingularHessianError
from ..hessian import HessianOperator
from .base import Solver, option, positive, suggest_damping


@dataclass
class LissaSolver(Solver):
    """Options: ``depth`` (max steps per repeat, default 10,000), ``repeats`` (default 1), ``scale``
    (default 1.5 × the largest eigenvalue found by power iteration), ``batch_size`` (records per
    step; default 1,024, all records if fewer), ``tol`` (early stop, default 1e-6), ``residual_tol``
    (warn above it, default 1e-3), ``seed``."""

    depth: int = option(10_000, "most steps per repeat")
    repeats: int = option(1, "independent repeats averaged")
    scale: float | None = option(None, "scale of H (default 1.5 × its largest eigenvalue, by power iteration)")
    batch_size: int = option(1024, "records per step (all records if fewer)")
    tol: float = option(1e-6, "relative change at which the recursion stops early")
    residual_tol: float = option(1e-3, "relative residual above which a warning is given")
    seed: int = option(0, "seed of the record batches and the power iteration (the audit derives it from its "
                       "seed unless given)")
    name = "lissa"
    check = 50              # steps between convergence checks

    def validate(self) -> None:
        positive("depth", self.depth, integer=True)
        positive("repeats", self.repeats, integer=True)
        positive("scale", self.scale, allow_none=True)
        positive("batch_size", self.batch_size, integer=True)
        positive("tol", self.tol)
        positive("residual_tol", self.residual_tol)

    def fit(self, hessian: HessianOperator) -> LissaSolver:
        self.hessian_ = hessian
        self.scale_ = self.scale if self.scale is not None else 1.5 * hessian.top_eigenvalue(seed=self.seed)
        self.residual_ = 0.0
        self.steps_ = 0
        return self

    def _recursion(self, B: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """One recursion for all rows of B at once (every step one Hessian-vector pass for the active rows);
        a row stops once ``check`` steps change its estimate by less than ``check·tol`` (relative to its norm)."""
        H, scale = self.hessian_, self.scale_
        full = self.batch_size >= H.n
        h = B.clone()
        bound = 1e8 * float(B.abs().max().clamp_min(1e-30))
        check = self.check
        active = torch.ones(B.shape[0], dtype=torch.bool, device=B.device)
        rows = torch.arange(B.shape[0], device=B.device)
        previous = h.clone()
        increments = {}                                  # step → ‖h_step − h_(step−check)‖ (full Hessian only)
        step = 0
        for step in range(1, self.depth + 1):
            idx = rows[active]
            if full:
                Hh = H.matvec(h[idx])
            else:
                Hh = H.sample_matvec(h[idx], torch.randint(H.n, (self.batch_size,), generator=gen))
            h[idx] = B[idx] + h[idx] - Hh / scale
            if step % check == 0 or step == self.depth:
                if not torch.isfinite(h).all() or float(h.abs().max()) > bound:
                    raise HessianError(
                        f"method='lissa' diverged after {step} steps with scale={scale:.3g}: pass a larger "
                        "scale (above the Hessian's largest eigenvalue) or a positive damping")
                moved_rows = (h[idx] - previous[idx]).norm(dim=1)
                change = moved_rows / h[idx].norm(dim=1).clamp_min(1e-30)
                previous[idx] = h[idx]
                active[idx] = change >= self.tol * check
                if not bool(active.any()):
                    break
                if full:
                    increments[step] = float(moved_rows.norm())
                    self._check_progress(step, increments, float(h[idx].norm()))
        self.steps_ = max(self.steps_, step)
        return h / scale

    def _check_progress(self, step: int, increments: dict[int, float], size: float) -> None:
        """Raise SingularHessianError when the deterministic recursion cannot reach ``tol`` within 2 × depth
        steps at the rate its increments shrink (see the module docstring)."""
        half = step // 2
        if step < 500 or step % (2 * self.check) or half not in increments or increments[half] <= 0:
            return
        ratio = increments[step] / increments[half]                 # q^(step/2)
        target = self.tol * self.check * max(size, 1e-30)
        if increments[step] <= target:
            return
        needed = math.inf if ratio >= 1 else math.log(target / increments[step]) / (math.log(ratio) / half)
        if step + needed > 2 * self.depth:
            fix = suggest_damping(0.0, self.scale_ / 1.5)
            steps = "never" if math.isinf(needed) else f"at least {step + needed:.2g} steps"
            raise SingularHessianError(
                f"method='lissa' cannot converge within depth={self.depth}: at the rate its estimate settles "
                f"after {step} steps it would need {steps} (the Hessian is singular, nearly so, or not positive "
                f"definite): pass damping={fix:.2g} (about 1e-3 of the largest eigenvalue)",
                suggested_damping=fix)

    def solve(self, B: torch.Tensor) -> torch.Tensor:
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        X = sum(self._recursion(B, gen) for _ in range(self.repeats)) / self.repeats
        norms = B.norm(dim=1).clamp_min(torch.finfo(B.dtype).tiny)
        residual = float(((self.hessian_.matvec(X) - B).norm(dim=1) / norms).max()) if B.shape[0] else 0.0
        self.residual_ = max(self.residual_, residual)
        if residual > self.residual_tol:
            warnings.warn(ConvergenceWarning(
                f"method='lissa' reached relative residual {residual:.2e} > residual_tol={self.residual_tol:g} "
                f"after {self.steps_} steps (depth={self.depth}, scale={self.scale_:.3g}): raise depth or "
                "repeats, or add damping", residual=residual), stacklevel=3)
        return X

    def summary(self) -> dict:
        return {**super().summary(), "scale_used": getattr(self, "scale_", None),
                "residual": getattr(self, "residual_", None), "steps": getattr(self, "steps_", None)}
