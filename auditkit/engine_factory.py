"""The one place influence engines are made for an audit: damping, the precision fallback, and what was done.

:class:`EngineFactory` fits the audit's engine and the stability check's alternative engines from
:class:`EngineSettings` (the few configuration fields it needs). It owns

- **damping**: a configured number is used as it is (a singular Hessian is then an error naming the fix);
  ``auto`` first fits without damping and, when the Hessian is singular or not positive definite, refits with
  the damping the solver suggests (else 1e-3 of H's largest eigenvalue); an iterative solver (CG) meets
  non-positive curvature only when it first solves, so :meth:`EngineFactory.refit_after` refits then;
- **precision**: influence values that overflow float32 (:meth:`EngineFactory.check_finite`) raise
  :class:`Float32Overflow`, and the audit is recomputed in float64 (the factory of that run is told how many
  values overflowed);

and records what it did as the run fact ``influence.fitting`` (:meth:`EngineFactory.fitting`): where the damping
came from, the steps in plain words, the dtype asked for and used, how many float32 values overflowed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

from .errors import HessianError, InputError, SingularHessianError
from .influence import InfluenceEngine
from .influence.dtypes import DTYPES
from .influence.solvers import solver_options

log = logging.getLogger("auditkit.runner")


class Float32Overflow(ArithmeticError):
    """Influence values computed in float32 overflowed (NaN or ±inf); the audit is recomputed in float64."""

    def __init__(self, count: int):
        super().__init__(f"{count} influence values overflowed float32")
        self.count = count


@dataclass(frozen=True)
class EngineSettings:
    """What the engines of an audit are made from: the model's loss, L2 and dtype; the method, its options, the
    damping (a number or ``"auto"``), the chunk size and gradient source; the seed of a solver's random choices
    (used when the method has a ``seed`` option that was not given); the stability check's ridge factors and
    second solver."""

    loss: str
    l2: float | dict[str, float]
    dtype: str
    method: str
    options: dict = field(default_factory=dict)
    damping: float | Literal["auto"] = "auto"
    chunk_size: int = 256
    gradients: object = None
    solver_seed: int = 0
    damping_factors: tuple[float, ...] = (0.1, 10.0)
    second_solver: str = "auto"


def seeded_options(method: str, options: dict, seed: int) -> dict:
    """``options`` of ``method`` with ``seed`` added when the method takes a seed and none was given."""
    takes_seed = any(o.name == "seed" for o in solver_options(method))
    return {**options, "seed": seed} if takes_seed and "seed" not in options else dict(options)


def uses_solver_seed(method: str, options: dict) -> bool:
    """Whether ``method`` draws random numbers from a seed the audit derives (its ``seed`` option not given)."""
    return any(o.name == "seed" for o in solver_options(method)) and "seed" not in options


class EngineFactory:
    """Makes and fits the audit's engines for ``model`` (see the module docstring). ``progress`` and ``backend``
    go to the audit's own engine (the backend to the alternative engines too); ``overflows``: how many influence
    values overflowed float32 in an earlier attempt of this audit (0: none)."""

    def __init__(self, model, settings: EngineSettings, *, progress=None, backend=None, overflows: int = 0,
                 dtype_requested: str | None = None):
        self.model, self.settings = model, settings
        self.progress, self.backend = progress, backend
        self.steps: list[str] = []
        self.damping_source = "configured" if settings.damping != "auto" else "none"
        self.overflows = overflows
        self.dtype_requested = dtype_requested or settings.dtype
        if overflows:
            self.steps.append(f"{overflows} influence values overflowed {self.dtype_requested}: the whole audit was "
                              f"recomputed in {settings.dtype}")

    def make(self, damping: float, *, method: str | None = None, l2=None, own: bool = True) -> InfluenceEngine:
        """An unfitted engine with ``damping`` (and another ``method`` or ``l2`` for the stability check)."""
        s = self.settings
        method = method or s.method
        options = seeded_options(method, s.options if method == s.method else {}, s.solver_seed)
        try:
            return InfluenceEngine(self.model, s.loss, l2=s.l2 if l2 is None else l2, method=method, damping=damping,
                                   dtype=DTYPES[s.dtype], chunk_size=s.chunk_size, gradients=s.gradients,
                                   progress=self.progress if own else None, backend=self.backend, **options)
        except InputError as exc:
            raise InputError(f"influence: {exc}") from None

    def fit(self, X, y) -> InfluenceEngine:
        """The audit's engine, fitted: with the configured damping, or with ``auto`` none unless H needs it."""
        s = self.settings
        if s.damping != "auto":
            try:
                engine = self.make(float(s.damping)).fit(X, y)
            except SingularHessianError as exc:
                raise InputError(f"influence.damping: {exc}; or set 'damping: auto'") from None
            self.steps.append(f"{s.method} solver fitted with the configured damping {float(s.damping):.3g}")
            return engine
        engine = self.make(0.0)
        try:
            engine.fit(X, y)
        except SingularHessianError as exc:
            self.steps.append(f"{s.method} solver, no damping: Hessian not positive definite")
            return self._damped(engine, exc, X, y)
        used = engine.summary().get("method_used", engine.method)
        self.steps.append(f"{s.method} solver fitted without damping: " + (
            "the Hessian is positive definite" if used == "exact" else
            f"{used} does not test the Hessian's definiteness when fitting (a solve that meets non-positive "
            "curvature refits with damping)"))
        return engine

    def refit_after(self, failure: SingularHessianError, engine: InfluenceEngine, X, y) -> InfluenceEngine:
        """After ``engine`` (fitted without damping) met non-positive curvature when it first solved: refit with
        the automatic damping, or an :class:`InputError` when the damping was configured or already applied."""
        if self.settings.damping != "auto" or engine.damping > 0:
            raise InputError(f"influence.damping: {failure}; or set 'damping: auto'") from None
        self.steps.append(f"{self.settings.method} solver, no damping: non-positive curvature met in the first "
                          "solve")
        return self._damped(engine, failure, X, y)

    def _damped(self, engine: InfluenceEngine, exc: SingularHessianError, X, y) -> InfluenceEngine:
        damping = exc.suggested_damping or 1e-3 * engine.hessian_.top_eigenvalue(seed=self.settings.solver_seed)
        log.info("  the Hessian is not positive definite: damping %.2g applied", damping)
        self.damping_source = "auto"
        self.steps.append(f"refit with damping {damping:.2g}")
        if getattr(engine, "refused_", None) is not None:    # exact: H' = the refused fit's data term + new shift
            try:
                return engine.with_ridge(l2=self.settings.l2, damping=damping, progress=self.progress)
            except SingularHessianError as again:   # the Ritz value fell short of H's smallest eigenvalue: add more
                damping += again.suggested_damping or damping
                self.steps.append(f"refit with damping {damping:.2g}: the first damping left the Hessian not "
                                  "positive definite")
                return engine.with_ridge(l2=self.settings.l2, damping=damping, progress=self.progress)
        return self.make(damping).fit(X, y)

    def check_finite(self, nonfinite: int) -> None:
        """Refuse influence answers with ``nonfinite`` NaN or ±inf values: :class:`Float32Overflow` in float32 (the
        audit is recomputed in float64), an :class:`InputError` in float64."""
        if nonfinite and self.settings.dtype == "float32":
            raise Float32Overflow(nonfinite)
        if nonfinite:
            raise InputError(f"influence: {nonfinite} influence values are not finite (NaN or ±inf) even in float64: "
                             "standardise the features (values of ordinary magnitude) or check the model's weights")

    def fitting(self) -> dict:
        """The run fact ``influence.fitting``: what the factory did."""
        return {"damping_source": self.damping_source, "steps": list(self.steps),
                "dtype_requested": self.dtype_requested, "dtype_used": self.settings.dtype,
                "float32_overflows": int(self.overflows)}

    def alternatives(self, engine: InfluenceEngine, X, y) -> tuple[dict, list[dict]]:
        """Engines for the stability check: the ridge of H (the L2 term and the damping) × each factor, and a
        second solver; a setting that cannot be fitted maps to its :class:`HessianError`. Without any ridge (no
        L2, no damping) the factors scale a nominal damping of 1e-3 of H's largest eigenvalue."""
        s = self.settings
        has_ridge = engine.damping > 0 or any(s.l2.values() if isinstance(s.l2, dict) else [s.l2])
        nominal = 0.0 if has_ridge else 1e-3 * engine.hessian_.top_eigenvalue(seed=s.solver_seed)
        engines, settings = {}, []

        def add(label: str, method: str, l2, damping: float):
            settings.append({"label": label, "method": method, "l2": l2, "damping": damping})
            try:
                if method == engine.method:     # another ridge of the same H: exact reuses its factor (no pass)
                    engines[label] = engine.with_ridge(l2=l2, damping=damping)
                    return
                engines[label] = self.make(damping, method=method, l2=l2, own=False).fit(X, y)
            except HessianError as exc:
                engines[label] = exc

        for factor in s.damping_factors:
            add(f"ridge ×{factor:g}", s.method, scaled_l2(s.l2, factor), (engine.damping + nominal) * factor)
        second = s.second_solver
        if second == "auto":
            second = second_solver_for(self.model, engine.summary().get("method_used", s.method))
        elif second == s.method:
            second = "exact" if s.method != "exact" else "cg"
        if second != "none":
            add(f"solver {second}", second, s.l2, engine.damping)
        return engines, settings


def scaled_l2(l2: float | dict[str, float], factor: float) -> float | dict[str, float]:
    """The L2 coefficient(s) times ``factor``."""
    return {k: v * factor for k, v in l2.items()} if isinstance(l2, dict) else l2 * factor


def second_solver_for(model, method: str) -> str:
    """The stability check's default second solver for an audit whose engine used ``method``.

    - ``exact``: EK-FAC when the model is one ``nn.Linear`` layer with one or two outputs (a binary logistic
      regression, where EK-FAC agrees with exact, r = 1.000 in ``benchmarks/results/arnoldi_ekfac_accuracy.md``:
      a check of the solve at the cost of one pass), else none. On a network with hidden layers exact is
      the reference and EK-FAC an approximation (its leverage self-influence agrees with exact's at Pearson r =
      0.05 on a 64-unit MLP, ``benchmarks/results/mlp_engine_profile.md``), so its row would measure EK-FAC's
      error and call robust findings sensitive (on a multiclass logistic regression r = 0.925).
    - ``ekfac`` or ``kfac``: exact when its dense Hessian is small enough for ``auto`` to pick it (p ≤ 12,000:
      formed from per-record Kronecker blocks in about one pass for an MLP), else the other Kronecker method
      (one pass). CG would answer the self-influence of every record one block solve per chunk: hours at
      n = 10,000 on an MLP.
    - any other method: EK-FAC when every parameter belongs to an ``nn.Linear`` layer (self-influence in one
      pass, an independent approximation of H), else CG; never the audit's own method.
    """
    import torch

    from .influence.solvers.auto import AutoSolver

    layers = [mod for mod in model.modules() if any(True for _ in mod.parameters(recurse=False))]
    linear_only = all(isinstance(mod, torch.nn.Linear) for mod in layers)
    if method == "exact":
        binary_linear = linear_only and len(layers) == 1 and layers[0].out_features <= 2
        return "ekfac" if binary_linear else "none"
    if method in ("ekfac", "kfac"):
        p = sum(t.numel() for t in model.parameters() if t.requires_grad)
        return "exact" if AutoSolver().exact_fits(p) else "kfac" if method == "ekfac" else "ekfac"
    for candidate in (["ekfac"] if linear_only else []) + ["cg", "exact"]:
        if candidate != method:
            return candidate
    return "none"
