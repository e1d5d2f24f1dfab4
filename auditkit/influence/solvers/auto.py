"""``method="auto"``: the most accurate solver the model allows, chosen at ``fit`` and recorded with the reason.

The rule, in order:

1. ``exact`` when the dense Hessian fits in memory and time: ``p ≤ max_exact_params`` (default 12,000: forming
   H costs p Hessian-vector products per training record, its Cholesky factor p³/3 flops) and
   ``p²·8 bytes ≤ max_exact_mb`` (default 1,024 MB, so p ≤ 11,585). Up to there exact is preferred even where
   one solve by pcg would be cheaper, because an audit asks for the self-influence of every record: n
   solves for an iterative method, one triangular solve per record for exact. For an MLP (the first trained
   layer an ``nn.Linear`` on the input, any depth behind it) H is formed exactly from per-record Kronecker blocks
   in about the time of a few matrix products (``auditkit.influence.dense_hessian``; a 64-unit MLP on 91
   features, p = 6,018, n = 10,000: seconds instead of minutes); the reason says which way H is formed;
2. else ``pcg`` (block CG preconditioned by EK-FAC) when every selected parameter belongs to a layer EK-FAC
   supports (``nn.Linear``, ``nn.Conv2d``, one l2 + damping per tensor);
3. else ``cg`` (block CG).

Both iterative choices stop on the relative residual ``‖b − Hx‖/‖b‖ ≤ tol`` and record the measured residual.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import InputError
from ..hessian import HessianOperator
from .base import Solver, option, positive
from .cg import CGSolver
from .ekfac import _blocks
from .exact import ExactSolver
from .pcg import PCGSolver


@dataclass
class AutoSolver(Solver):
    """Options: ``max_exact_params`` (default 12,000), ``max_exact_mb`` (default 1,024), and ``tol``, ``max_iter``
    for the iterative choices (as in ``cg``)."""

    max_exact_params: int = option(12_000, "exact when the model has at most this many parameters (and fits)")
    max_exact_mb: float = option(1024.0, "exact when the dense Hessian (p² × 8 bytes) takes at most this many MB")
    tol: float | None = option(None, "relative residual for the iterative choices (as in cg)")
    max_iter: int | None = option(None, "most iterations for the iterative choices (as in cg)")
    name = "auto"

    def validate(self) -> None:
        positive("max_exact_params", self.max_exact_params, integer=True)
        positive("max_exact_mb", self.max_exact_mb)
        positive("tol", self.tol, allow_none=True)
        positive("max_iter", self.max_iter, integer=True, allow_none=True)

    def exact_fits(self, p: int) -> bool:
        """Whether the rule picks ``exact`` for p parameters: p ≤ ``max_exact_params`` and the dense Hessian
        (p²·8 bytes) ≤ ``max_exact_mb``."""
        return p <= self.max_exact_params and p * p * 8 / 2 ** 20 <= self.max_exact_mb

    def choose(self, hessian: HessianOperator) -> tuple[Solver, str]:
        """The solver the rule picks for this Hessian (unfitted) and why, in one sentence."""
        p = hessian.p
        mb = p * p * 8 / 2 ** 20
        if self.exact_fits(p):
            how = ("from per-record Kronecker blocks, the first trained layer being an nn.Linear"
                   if hessian.kron_split() is not None else "by p Hessian-vector products per record")
            return (ExactSolver(max_params=max(p, ExactSolver.max_params)),
                    f"exact: the dense Hessian fits (p = {p} ≤ max_exact_params = {self.max_exact_params} and "
                    f"p²·8 bytes = {mb:.3g} MB ≤ max_exact_mb = {self.max_exact_mb:g}) and is formed {how}")
        size = (f"p = {p} > max_exact_params = {self.max_exact_params}" if p > self.max_exact_params else
                f"p²·8 bytes = {mb:.3g} MB > max_exact_mb = {self.max_exact_mb:g}")
        try:
            _blocks(hessian.fn, hessian.shift.double().cpu(), "pcg")
        except InputError as exc:
            why = str(exc).split(":")[0]
            return (CGSolver(tol=self.tol, max_iter=self.max_iter),
                    f"cg: the dense Hessian is too large ({size}) and EK-FAC cannot precondition ({why})")
        return (PCGSolver(tol=self.tol, max_iter=self.max_iter),
                f"pcg: the dense Hessian is too large ({size}); every layer is supported by EK-FAC")

    def fit(self, hessian: HessianOperator) -> AutoSolver:
        chosen, self.reason_ = self.choose(hessian)
        self.chosen_ = chosen           # before fitting: a refused exact fit keeps H's data term (``reshifted``)
        chosen.fit(hessian)
        return self

    def reshifted(self, hessian: HessianOperator, old_shift):
        """A fitted copy for the same data term with another diagonal shift, when the chosen solver can make one
        without a pass over the data (``exact``); else None."""
        reshift = getattr(self.chosen_, "reshifted", None)
        chosen = reshift(hessian, old_shift) if reshift is not None else None
        if chosen is None:
            return None
        new = AutoSolver(max_exact_params=self.max_exact_params, max_exact_mb=self.max_exact_mb, tol=self.tol,
                         max_iter=self.max_iter)
        new.reason_, new.chosen_ = self.reason_, chosen
        return new

    def solve(self, B):
        return self.chosen_.solve(B)

    def quad_forms(self, G):
        return self.chosen_.quad_forms(G)

    def gram_factors(self, B):
        return self.chosen_.gram_factors(B)

    def summary(self) -> dict:
        out = super().summary()
        if hasattr(self, "chosen_"):
            inner = self.chosen_.summary()
            out.update({"chosen": inner.pop("method"), "reason": self.reason_, "chosen_options": inner,
                        "residual": inner.get("residual"), "stopping_rule": inner.get("stopping_rule"),
                        "tol_used": inner.get("tol_used")})
        return out
