"""``InfluenceEngine``: the effect of removing each training record, without retraining.

Training objective assumed: ``R(θ) = (1/n) Σ_i ℓ(z_i; θ) + (l2/2)·‖θ‖²`` at the trained θ̂, or, with a
per-parameter ``l2 = {name or prefix: λ_k}``, ``R(θ) = (1/n) Σ_i ℓ(z_i; θ) + ½ Σ_k λ_k ‖θ_k‖²`` (unnamed
parameters unpenalised, e.g. intercepts as scikit-learn fits them); ``H = ∇²R(θ̂) + damping·I``.
Removing record j and retraining moves the parameters by about ``Δθ_j = (1/n) H⁻¹ g_j`` with
``g_j = ∇ℓ(z_j; θ̂)`` (Koh & Liang 2017, upweighting by ε = −1/n). Hence:

- ``influence(X, y)[i, j] = (1/n) ∇ℓ(z_i)ᵀ H⁻¹ g_j`` ≈ loss of test record i after removing training
  record j and retraining, minus its loss now. Positive: j helps i (removing it raises i's loss).
- ``self_influence()[j] = (1/n) g_jᵀ H⁻¹ g_j`` ≈ the same for record j's own loss (≥ 0 when H ≻ 0).
- ``influence_on(measure, X, y)[j] = (1/n) ∇m(θ̂)ᵀ H⁻¹ g_j`` ≈ change of the scalar ``m = measure(f(X), y)``
  when j is removed: one solve for the measurement, then one dot product per training record.

All three are in the units of the loss (or of the measurement) and comparable with actual
leave-one-out retraining. Training gradients are streamed in chunks; the n × p gradient matrix is
never held in memory. ``batch`` answers many of these questions at once from ONE streamed pass over the
training gradients: every right-hand side (measurement gradients, test gradients) is solved first, stacked
into V (k, p), then each chunk G of training gradients gives ``(1/n) V Gᵀ`` and the self-influence quad forms.

Where the chunks are computed is the ``backend``'s business (``auditkit.influence.records``): in this process
by default, or on the workers of a Dask cluster (``auditkit.backends.DaskBackend``), which read their own
shards of the training records (``auditkit.backends.ParquetRecords``) and receive the fitted solver once.
The results are the same either way (up to round-off in the order of sums).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import fields

import numpy as np
import torch
from torch import nn

from ..errors import InputError, NotFittedError, SingularHessianError
from .dtypes import DTYPES as _DTYPES
from .gradients import ModelFunction, _select
from .hessian import HessianOperator
from .losses import check_targets, resolve_loss
from .passes import ChunkKernel, InfluenceBatch, RecomputedGradients, pass_chunk, quad_forms_chunk
from .penalty import L2, check_l2, l2_of_parameters
from .records import InProcess, Records, as_records
from .solvers import make_solver


def _nonnegative(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
        raise InputError(f"{name}={value!r} is not allowed: it must be a finite number ≥ 0")
    return float(value)


class InfluenceEngine:
    """Influence of training records on test losses, on their own loss, and on any scalar measurement.

    Parameters
    ----------
    model : torch.nn.Module
        The trained model. It is switched to ``eval()`` while influence is computed, then restored.
    loss : ``"cross_entropy"``, ``"bce"``, ``"mse"`` or a callable ``loss(outputs, targets) -> (n,)``
        The per-record training loss ℓ.
    l2 : float or mapping
        The L2 coefficient the model was trained with, in ``mean loss + (l2/2)·‖θ‖²``; or one coefficient per
        parameter, ``{name or name prefix: λ_k}`` in ``mean loss + ½ Σ_k λ_k ‖θ_k‖²`` (parameters no key
        matches get 0; the longest matching key wins). Kept as given in ``engine.l2``.
    method : ``"exact"``, ``"cg"``, ``"pcg"``, ``"lissa"``, ``"arnoldi"``, ``"ekfac"``, ``"kfac"`` or ``"auto"``
        How ``H⁻¹`` is applied; extra keyword options go to the solver (see ``auditkit.influence.solvers``).
        ``"pcg"``: block CG preconditioned by EK-FAC; ``"auto"``: exact when the dense Hessian fits, else pcg,
        else cg (the choice and its reason in ``summary()["solver"]``).
    damping : float
        Added to the Hessian's diagonal (``H + damping·I``); needed when H is singular or indefinite.
    params : list of names or prefixes, optional
        Compute influence for these parameters only (e.g. ``["fc2"]`` for the last layer); others are fixed.
    dtype : torch.float32 or torch.float64, optional
        Precision of the computation (default: the model's). ``"exact"`` factorises in float64 regardless.
    device : optional
        Where to compute (default: where the model's parameters are).
    chunk_size : int
        Records per chunk of per-record gradients; memory grows with it, not with n.
    gradients : gradient source, optional
        Where the training records' per-record gradients come from in a streamed pass (default: computed
        from the model, ``RecomputedGradients``); e.g. ``auditkit.gradcache.GradientCache`` reads them from
        disk. See ``auditkit.influence.passes``.
    progress : callable, optional
        ``progress(done, total)`` called after each chunk of a streamed pass over records (records done so
        far, records in the pass); ``auditkit.progress.ProgressReporter`` prints rate and time left.
    backend : optional
        Where chunk-level work runs (default: in this process, ``auditkit.influence.records.InProcess``);
        e.g. ``auditkit.backends.DaskBackend(scheduler="tcp://host:8786")``. With a distributed backend, fit on
        a record source its workers can read (``auditkit.backends.ParquetRecords``) so that the training
        records never pass through this process; in-memory records are sent to the workers once, in shards.
    """

    def __init__(self, model: nn.Module, loss: str | Callable = "cross_entropy", *, l2: L2 = 0.0,
                 method: str = "exact", damping: float = 0.0, params=None, dtype=None, device=None,
                 chunk_size: int = 256, gradients=None, progress: Callable[[int, int], None] | None = None,
                 backend=None, **solver_options):
        if not isinstance(model, nn.Module):
            raise InputError(f"model must be a torch.nn.Module, got {type(model).__name__}: wrap the model "
                             "in an nn.Module first")
        self.model = model
        self.loss = loss
        self.loss_fn = resolve_loss(loss)
        self.l2 = check_l2(l2)
        self.damping = _nonnegative("damping", damping)
        self.method = method
        self.solver = make_solver(method, solver_options)
        self.params = params
        trainable = _select(model, None)
        _select(model, params)
        l2_of_parameters(self.l2, trainable)  # refuse keys that match no parameter now, not at fit
        if dtype is not None and dtype not in _DTYPES:
            raise InputError(f"dtype={dtype!r} is not allowed: use torch.float32 or torch.float64")
        first = next(p for p in model.parameters() if p.requires_grad)
        self.dtype = _DTYPES[dtype] if dtype is not None else (
            first.dtype if first.dtype in (torch.float32, torch.float64) else torch.float32)
        self.device = torch.device(device) if device is not None else first.device
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise InputError(f"chunk_size={chunk_size!r} is not allowed: it must be a positive integer")
        self.chunk_size = chunk_size
        if gradients is not None and not (callable(getattr(gradients, "stream", None))
                                          and callable(getattr(gradients, "project", None))):
            raise InputError(f"gradients={type(gradients).__name__} is not a gradient source: it needs the methods "
                             "stream(engine, chunks) and project(V) (see auditkit.influence.passes)")
        self.gradients = gradients if gradients is not None else RecomputedGradients()
        if progress is not None and not callable(progress):
            raise InputError(f"progress must be a callable progress(done, total) or None, got "
                             f"{type(progress).__name__}")
        self.progress = progress
        if backend is not None and not (callable(getattr(backend, "map_chunks", None))
                                        and callable(getattr(backend, "sum_chunks", None))):
            raise InputError(f"backend={type(backend).__name__} is not a backend: it needs the methods "
                             "map_chunks(func, records, *args, size, dtype, device) and sum_chunks(...) (see "
                             "auditkit.influence.records)")
        self.backend = backend if backend is not None else InProcess()
        if gradients is not None and not getattr(self.backend, "in_process", False):
            raise InputError(f"gradients={type(gradients).__name__} reads gradients in this process and cannot be "
                             f"combined with backend={type(self.backend).__name__}: drop one of them")

    # ----------------------------------------------------------------------------------- plumbing
    @contextmanager
    def _eval_mode(self):
        was_training = self.model.training
        self.model.eval()
        try:
            yield
        finally:
            self.model.train(was_training)

    def _check_fitted(self) -> None:
        if not hasattr(self, "solver_"):
            raise NotFittedError("this InfluenceEngine is not fitted yet: call fit(X_train, y_train) first")

    def _records(self, X, y, name: str, *, check_labels: bool = True) -> Records:
        """Wrap and validate records: the model must accept them and the targets must suit the loss."""
        records = as_records(X, y, name=name)
        x, _ = records.head(4, dtype=self.dtype, device=self.device)
        try:
            with torch.no_grad():
                out = self.fn_.outputs(self.fn_.theta, x)
        except Exception as exc:  # noqa: BLE001 - any failure here means the records do not fit the model
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(f"the model cannot be applied to {name} (records of shape "
                             f"{tuple(x.shape[1:])}): {first}. Check that the features match the model's input") \
                from None
        if check_labels:
            check_targets(self.loss, out, records.targets(), name=f"y for {name}")
        return records

    def _chunks(self, records: Records):
        return records.chunks(self.chunk_size, dtype=self.dtype, device=self.device)

    def _report(self, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(done, total)

    def _pass(self, V: torch.Tensor | None, curvature: int | None) -> tuple[np.ndarray | None, np.ndarray | None]:
        """ONE streamed pass over the training records: ``(1/n) V G_trainᵀ`` (k, n) for rows V (k, p), and
        the self-influence quad forms with ``curvature`` (None: not wanted; see ``_quad_forms``)."""
        n = self.n_train_
        cross = None if V is None else np.empty((V.shape[0], n), dtype=np.float64)
        own = None if curvature is None else np.empty(n, dtype=np.float64)
        if cross is None and own is None:
            return cross, own
        if cross is None and curvature == 0:                # kept by the solver from its fitting pass
            kept = getattr(self.solver_, "train_quad_forms", lambda: None)()
            if kept is not None:
                self._report(n, n)
                return None, (kept / n).double().cpu().numpy()
        source = self.gradients
        if type(source) is RecomputedGradients:            # the chunks' work, wherever the backend runs it
            start = 0
            for part, own_part in self.backend.map_chunks(pass_chunk, self.train_, self.kernel_, V, curvature,
                                                          size=self.chunk_size, dtype=self.dtype,
                                                          device=self.device):
                b = own_part.shape[0] if own_part is not None else part.shape[1]
                if cross is not None:
                    cross[:, start:start + b] = part
                if own is not None:
                    own[start:start + b] = own_part
                start += b
                self._report(start, n)
            return cross, own
        factors = curvature == 0 and hasattr(self.solver_, "quad_forms_of_records")
        # the source serves the cross terms, and self-influence too unless it only has projected gradients
        use_source = V is not None or (own is not None and not factors and not source.projected)
        chunks = self._chunks(self.train_)
        stream = source.stream(self, chunks) if use_source else ((x, y, None, None) for x, y in chunks)
        W = source.project(V) if V is not None else None
        start = 0
        for x, y, G, full in stream:
            b = x.shape[0]
            if cross is not None:
                cross[:, start:start + b] = (W @ G.T / n).double().cpu().numpy()
            if own is not None:
                if full is None and not factors:
                    full = self.fn_.per_record_grads(x, y)
                own[start:start + b] = self._quad_forms_chunk(x, y, curvature, full)
            start += b
            self._report(start, n)
        if start != n:
            raise InputError(f"the gradient source gave {start} training gradients, expected {n}")
        return cross, own

    # ----------------------------------------------------------------------------------- public API
    def fit(self, X, y=None) -> InfluenceEngine:
        """Take the training records (tensors, numpy arrays, or a Dataset of (x, y)) and prepare H⁻¹."""
        with self._eval_mode():
            self.fn_ = ModelFunction(self.model, self.loss_fn, params=self.params,
                                     dtype=self.dtype, device=self.device)
            self.train_ = self._records(X, y, "X_train")
            self.n_train_ = self.train_.n
            self.n_params_ = self.fn_.n_params
            self.hessian_ = HessianOperator(self.fn_, self.train_, l2=self.l2, damping=self.damping,
                                            chunk_size=self.chunk_size, backend=self.backend,
                                            progress=self.progress)
            self.__dict__.pop("refused_", None)
            try:
                self.solver_ = self.solver.fit(self.hessian_)
            except SingularHessianError:
                self.refused_ = self.solver     # what the refused fit kept (exact: H's data term), for with_ridge
                raise
            self.kernel_ = ChunkKernel(self.fn_, self.solver_, self.n_train_)
        return self

    def with_ridge(self, *, l2: L2, damping: float, progress: Callable[[int, int], None] | None = None
                   ) -> InfluenceEngine:
        """A fitted engine for the same model and training records with another ridge of H (``l2`` and ``damping``;
        the stability check's refits). ``exact`` (also as chosen by ``auto``) reuses its factorised Hessian:
        ``H' = L Lᵀ + diag(λ' + damping' − λ − damping)``, no pass over the training records; other methods fit
        afresh on the records this engine was fitted on. ``progress``: the new engine's callback (default none).
        Also after a ``fit`` that raised :class:`SingularHessianError` (the damped refit of ``damping: auto``):
        exact then reuses the data term that fit formed."""
        source = getattr(self, "solver_", None) or getattr(self, "refused_", None)
        if source is None:
            self._check_fitted()
        options = {f.name: getattr(self.solver, f.name) for f in fields(self.solver) if f.init}
        other = InfluenceEngine(self.model, self.loss, l2=l2, method=self.method, damping=damping, params=self.params,
                                dtype=self.dtype, device=self.device, chunk_size=self.chunk_size,
                                gradients=None if type(self.gradients) is RecomputedGradients else self.gradients,
                                progress=progress, backend=self.backend,
                                **options)
        other.fn_, other.train_, other.n_train_, other.n_params_ = self.fn_, self.train_, self.n_train_, self.n_params_
        other.hessian_ = HessianOperator(self.fn_, self.train_, l2=other.l2, damping=other.damping,
                                         chunk_size=self.chunk_size, backend=other.backend, progress=progress)
        reshift = getattr(source, "reshifted", None)
        solver = reshift(other.hessian_, self.hessian_.shift) if reshift is not None else None
        with other._eval_mode():
            other.solver_ = solver if solver is not None else other.solver.fit(other.hessian_)
        other.kernel_ = ChunkKernel(other.fn_, other.solver_, other.n_train_)
        return other

    def influence(self, X, y=None) -> np.ndarray:
        """``S[i, j] = (1/n) ∇ℓ(z_i)ᵀ H⁻¹ g_j``: change of test record i's loss when j is removed; (m, n)."""
        return self.batch(test=(X, y)).test

    def self_influence(self, indices=None, *, leverage: bool = False) -> np.ndarray:
        """``s[j] = (1/n) g_jᵀ H⁻¹ g_j``: change of record j's own loss when it is removed and the model
        retrained. All training records (shape (n,)), or only those at positions ``indices``, in that order.

        ``leverage=True`` removes record j's own curvature from the Hessian first,
        ``s̃[j] = (1/n) g_jᵀ (H − A_jᵀA_j/n)⁻¹ g_j`` with ``A_jᵀA_j`` the Gauss–Newton part of ∇²ℓ_j
        (Sherman–Morrison–Woodbury; exact for the Newton step of a linear model). It matters for
        high-leverage records, whose fit rests on themselves alone (outliers, memorised records): plain
        self-influence underestimates their leave-one-out effect by a factor of up to ``1/(1 − h_j)``.
        """
        self._check_fitted()
        if indices is None:
            return self.batch(self_influence=True, leverage=leverage).self_influence
        index = self._indices(indices)
        batches = (self.train_.subset(index[s:s + self.chunk_size], dtype=self.dtype, device=self.device)
                   for s in range(0, len(index), self.chunk_size))
        return self._quad_forms(batches, len(index), -1 if leverage else 0)

    def self_influence_of(self, X, y=None, *, leverage: bool = False) -> np.ndarray:
        """``(1/n) gᵀ H⁻¹ g`` for records that need not be in the training set (e.g. a held-out set).

        For a record outside the training set this is, to first order, how much its own loss would drop
        if it were added to the training set: the same quantity as ``self_influence`` for a member, so
        members and non-members can be compared (membership inference, calibrated privacy flags). With
        ``leverage=True`` the record's curvature is added to H, ``(1/n) gᵀ (H + AᵀA/n)⁻¹ g``: the Hessian
        it would have had as a member, the counterpart of ``self_influence(leverage=True)``.
        """
        self._check_fitted()
        with self._eval_mode():
            records = self._records(X, y, "X")
            out = np.empty(records.n, dtype=np.float64)
            start = 0
            for part in self.backend.map_chunks(quad_forms_chunk, records, self.kernel_, 1 if leverage else 0,
                                                size=self.chunk_size, dtype=self.dtype, device=self.device):
                out[start:start + part.shape[0]] = part
                start += part.shape[0]
                self._report(start, records.n)
        return out

    def _quad_forms(self, batches, n: int, curvature: int = 0) -> np.ndarray:
        """``(1/n) gᵀ (H + c·AᵀA/n)⁻¹ g`` per record of the ``(x, y)`` batches, with c = ``curvature``
        (0: plain; −1: the record's curvature removed; +1: added); see ``_quad_forms_chunk``."""
        out = np.empty(n, dtype=np.float64)
        start = 0
        with self._eval_mode():
            for x, y in batches:
                out[start:start + x.shape[0]] = self._quad_forms_chunk(x, y, curvature)
                start += x.shape[0]
                self._report(start, n)
        return out

    def _quad_forms_chunk(self, x: torch.Tensor, y: torch.Tensor, curvature: int,
                          G: torch.Tensor | None = None) -> np.ndarray:
        """``(1/n) gᵀ (H + c·AᵀA/n)⁻¹ g`` for one chunk (G: its per-record gradients, if already at hand); see
        ``ChunkKernel.quad_forms`` (Woodbury)."""
        return self.kernel_.quad_forms(x, y, curvature, G)

    def _indices(self, indices) -> torch.Tensor:
        """Training positions as a long tensor, checked against n."""
        index = torch.as_tensor(np.asarray(indices)).reshape(-1)
        if index.dtype in (torch.float32, torch.float64, torch.bool) or index.is_complex():
            raise InputError(f"indices must be integer positions of training records, got dtype {index.dtype}")
        if len(index) and (int(index.min()) < -self.n_train_ or int(index.max()) >= self.n_train_):
            raise InputError(f"indices must lie in 0..{self.n_train_ - 1} (the training records), got values "
                             f"in [{int(index.min())}, {int(index.max())}]")
        return index.long() % self.n_train_

    def measure_gradient(self, measure: Callable, X, y=None) -> tuple[float, torch.Tensor]:
        """``(m, ∇_θ m)`` for ``m = measure(f(X; θ), y)``, by the chain rule over chunks of X."""
        self._check_fitted()
        if not callable(measure):
            raise InputError(f"measure must be a callable measure(outputs, y) -> scalar tensor, "
                             f"got {type(measure).__name__}")
        with self._eval_mode():
            records = self._records(X, y, "X", check_labels=False)
            with torch.no_grad():
                outputs = torch.cat([self.fn_.outputs(self.fn_.theta, x) for x, _ in self._chunks(records)])
            targets = torch.cat([t for _, t in self._chunks(records)])
            outputs.requires_grad_(True)
            value = measure(outputs, targets)
            if not isinstance(value, torch.Tensor) or value.numel() != 1:
                raise InputError(f"measure must return a scalar tensor, got "
                                 f"{type(value).__name__}{tuple(getattr(value, 'shape', ()))}")
            if not torch.isfinite(value).all():
                raise InputError(f"measure returned {float(value):g} on the model's outputs: it must be finite")
            if not value.requires_grad:
                raise InputError("measure does not depend on the model's outputs (no gradient): compute it "
                                 "from the outputs it receives, with torch operations")
            (cotangent,) = torch.autograd.grad(value.reshape(()), outputs)
            total = torch.zeros_like(self.fn_.theta)
            start = 0
            for x, _ in self._chunks(records):
                total += self.fn_.vjp_outputs(x, cotangent[start:start + x.shape[0]])
                start += x.shape[0]
        return float(value.detach()), total

    def influence_on(self, measure: Callable, X, y=None) -> np.ndarray:
        """``e[j] = (1/n) ∇m(θ̂)ᵀ H⁻¹ g_j``: change of ``m = measure(f(X), y)`` when j is removed; (n,).

        ``measure(outputs, y)`` receives the model's outputs for all of X, in order, and y, and returns a
        scalar tensor (a group's mean loss, a gap between groups, ...). One solve, n dot products.
        """
        return self.batch(measures=[(measure, X, y)]).measures[0]

    def batch(self, *, measures=None, test=None, self_influence: bool = False,
              leverage: bool = False) -> InfluenceBatch:
        """Several influence questions answered from ONE streamed pass over the training gradients.

        ``measures``: a mapping {key: (measure, X, y)} or a sequence of such triples, each as in
        ``influence_on``; ``test``: ``(X_test, y_test)`` (or a Dataset) as in ``influence``;
        ``self_influence``: also ``self_influence(leverage=leverage)`` for every training record.
        Every right-hand side is solved first, stacked, ``V = [∇m_1; …; ∇m_K; ∇ℓ(z_1); …; ∇ℓ(z_m)]·H⁻¹``;
        then each chunk G of training gradients gives ``(1/n) V Gᵀ`` and its records' quad forms. Results
        equal the one-question methods'. Memory: the outputs (k × n) plus one chunk, whatever n is.
        """
        self._check_fitted()
        if not isinstance(self_influence, bool) or not isinstance(leverage, bool):
            raise InputError(f"self_influence and leverage must be True or False, got {self_influence!r} and "
                             f"{leverage!r}")
        if isinstance(measures, Mapping):
            items = list(measures.items())
        elif measures is None:
            items = []
        elif isinstance(measures, (list, tuple)):
            items = list(enumerate(measures))
        else:
            raise InputError(f"measures must be a mapping {{key: (measure, X, y)}} or a list of (measure, X, y), "
                             f"got {type(measures).__name__}")
        result = InfluenceBatch()
        rows = []
        for key, spec in items:
            if not (isinstance(spec, (tuple, list)) and len(spec) in (2, 3)):
                raise InputError(f"measures[{key!r}] must be (measure, X, y) or (measure, dataset), "
                                 f"got {type(spec).__name__}")
            value, gradient = self.measure_gradient(spec[0], spec[1], spec[2] if len(spec) == 3 else None)
            result.values[key] = value
            rows.append(gradient[None, :])
        with self._eval_mode():
            m = 0
            if test is not None:
                X_test, y_test = test if isinstance(test, (tuple, list)) else (test, None)
                records = self._records(X_test, y_test, "X_test")
                rows.append(torch.cat([self.fn_.per_record_grads(x, y) for x, y in self._chunks(records)]))
                m = records.n
            V = self.solver_.solve(torch.cat(rows)) if rows else None
            cross, own = self._pass(V, (-1 if leverage else 0) if self_influence else None)
        result.passes = int(cross is not None or own is not None)
        for r, (key, _) in enumerate(items):
            result.measures[key] = cross[r]
        if test is not None:
            result.test = cross[len(items):len(items) + m]
        result.self_influence = own
        return result

    def summary(self) -> dict:
        """Settings and solver diagnostics, for reports: ``method_used`` (what ``auto`` chose), ``residual`` (the
        measured relative residual ``max ‖b − Hx‖/‖b‖`` of the iterative solvers' last solves; None for direct
        ones) and the solver's own summary."""
        self._check_fitted()
        l2 = dict(self.l2) if isinstance(self.l2, dict) else self.l2
        solver = self.solver_.summary()
        return {"method": self.method, "method_used": solver.get("chosen", self.method), "l2": l2,
                "damping": self.damping, "dtype": str(self.dtype).replace("torch.", ""), "n_params": self.n_params_,
                "n_train": self.n_train_, "solver": solver, "residual": solver.get("residual"),
                "convention": "≈ change of the loss (or measurement) when the record is removed and the model "
                              "retrained, = (1/n)·∇Lᵀ H⁻¹ ∇ℓ_j; positive = the record helps"}
