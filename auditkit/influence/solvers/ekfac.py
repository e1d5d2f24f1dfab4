"""K-FAC and EK-FAC (Martens & Grosse 2015; George et al. 2018; Grosse et al. 2023) for ``nn.Linear`` layers.

H is approximated block-diagonally, one block per Linear layer (weight W (out × in) and bias b together,
flattened row-major as in θ). A record's gradient for the block is rank-1: ``∇_W ℓ = g ãᵀ`` with ã the
layer's input with a 1 appended for the bias and g the gradient of the loss w.r.t. the layer's
pre-activation output. The curvature of the block is the Gauss–Newton matrix
``(1/n) Σ_i Σ_c (g_ic g_icᵀ) ⊗ (ã_i ã_iᵀ)``, with g_ic back-propagated from the rows r_c of a root of
``Λ_i = ∂²ℓ/∂f²`` (``Σ_c r_c r_cᵀ = Λ_i``): the exact expectation over the model's predictive distribution
that Kronfluence samples labels for (for cross-entropy, the true Fisher; for a single Linear layer, the
Hessian of the data term itself). ``curvature="empirical"`` uses the true-label gradients instead
(empirical Fisher, one backward pass).

- **K-FAC**: block ≈ ``S ⊗ A`` with ``S = (1/n) Σ_ic g gᵀ`` and ``A = (1/n) Σ_i ã ãᵀ``; with
  ``S = Q_S diag(s) Q_Sᵀ``, ``A = Q_A diag(a) Q_Aᵀ`` (float64), the inverse is
  ``(Q_S ⊗ Q_A) diag(s aᵀ + λ)⁻¹ (Q_S ⊗ Q_A)ᵀ``.
- **EK-FAC**: the same eigenbasis with the diagonal re-fitted to the data (a second pass),
  ``Λ = (1/n) Σ_ic (Q_Sᵀ g_ic)² (Q_Aᵀ ã_i)²ᵀ``: the best diagonal in that basis.

λ is the engine's shift (l2 + damping) on the block. When the weight and the bias have different
coefficients (e.g. an unpenalised intercept), the bias is its own block ``S ⊗ [1]`` and the weight–bias
cross-curvature is dropped. Other parameter types (Conv2d, BatchNorm, Embedding, bare parameters) are
refused: restrict influence to the Linear layers with ``params=[...]``.

In the eigenbasis a record's quadratic form needs only ``u = Q_Sᵀ g`` and ``v = Q_Aᵀ ã``:
``gᵀ H⁻¹ g = Σ_oi u_o² v_i² / (Λ_oi + λ)``, so self-influence of n records is one forward and one
backward pass over them, without per-record gradients (``quad_forms_of_records``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.func import hessian, vmap

from ...errors import InputError, SingularHessianError
from ..hessian import HessianOperator
from .base import Solver, suggest_damping

CURVATURES = ("gauss_newton", "empirical")


class _Block:
    """One Kronecker block: a Linear layer's weight and/or bias, at positions ``index`` (out, cols) of θ."""

    def __init__(self, module_name: str, index: torch.Tensor, weight: bool, bias: bool, shift: float):
        self.module_name, self.index, self.weight, self.bias, self.shift = module_name, index, weight, bias, shift

    def inputs(self, a: torch.Tensor) -> torch.Tensor:
        """ã: the layer input (if the weight is in the block) with a 1 appended (if the bias is)."""
        parts = ([a] if self.weight else []) + ([torch.ones_like(a[:, :1])] if self.bias else [])
        return torch.cat(parts, dim=1)


def _label(module_name: str) -> str:
    return f"layer {module_name!r}" if module_name else "the model (one Linear layer)"


def _blocks(fn, shift: torch.Tensor, method: str) -> tuple[list[_Block], dict[str, nn.Linear]]:
    """The Kronecker blocks of the selected parameters; InputError naming any parameter not in a Linear layer."""
    offsets = torch.tensor([0, *fn.sizes]).cumsum(0).tolist()
    layers: dict[str, dict[str, int]] = {}
    unsupported = []
    for name, offset in zip(fn.names, offsets, strict=False):
        module_name, _, attr = name.rpartition(".")
        module = fn.model.get_submodule(module_name) if module_name else fn.model
        if isinstance(module, nn.Linear) and attr in ("weight", "bias"):
            layers.setdefault(module_name, {})[attr] = offset
        else:
            bare = any(True for _ in module.children())                  # a container's own nn.Parameter
            unsupported.append(f"{name!r} ({'a bare parameter of ' if bare else ''}{type(module).__name__})")
    if unsupported:
        linear = [n for n, m in fn.model.named_modules() if isinstance(m, nn.Linear)]
        hint = f" (e.g. params={linear!r})" if linear else ""
        raise InputError(f"method={method!r} supports parameters of nn.Linear layers only, not "
                         f"{', '.join(unsupported)}: restrict influence to the Linear layers with params=[...]"
                         f"{hint}, or use method='cg' or method='arnoldi'")
    blocks, modules = [], {}
    for module_name, parts in layers.items():
        module = fn.model.get_submodule(module_name) if module_name else fn.model
        modules[module_name] = module
        out, cols = module.out_features, module.in_features
        index, values = {}, {}
        for attr, offset in parts.items():
            size = out * cols if attr == "weight" else out
            index[attr] = torch.arange(offset, offset + size).reshape(out, -1)
            v = shift[offset:offset + size]
            if float(v.max() - v.min()) > 1e-12 * max(float(v.abs().max()), 1e-300):
                raise InputError(f"method={method!r} needs one l2 + damping per parameter tensor, but "
                                 f"{module_name}.{attr} has several: use method='cg' or method='arnoldi'")
            values[attr] = float(v[0])
        if len(parts) == 2 and values["weight"] == values["bias"]:
            blocks.append(_Block(module_name, torch.cat([index["weight"], index["bias"]], dim=1), True, True,
                                 values["weight"]))
        else:
            blocks.extend(_Block(module_name, index[attr], attr == "weight", attr == "bias", values[attr])
                          for attr in parts)
    return blocks, modules


def _loss_curvature_roots(fn, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Rows r_c (b, C, C) with ``Σ_c r_c r_cᵀ = Λ_i = ∂²ℓ(f_i, y_i)/∂f²`` (negative eigenvalues clipped)."""
    shape = outputs.shape[1:]

    def loss_of_output(oi, yi):
        return fn.loss_fn(oi.reshape(1, *shape), yi.unsqueeze(0)).sum()

    lam = vmap(hessian(loss_of_output))(outputs.reshape(outputs.shape[0], -1), y)
    values, vectors = torch.linalg.eigh((lam + lam.transpose(1, 2)) / 2)
    return (vectors * values.clamp_min(0).sqrt().unsqueeze(1)).transpose(1, 2)


@dataclass
class EKFACSolver(Solver):
    """Eigenvalue-corrected Kronecker-factored curvature of the Linear layers (float64).

    Options: ``curvature`` (``"gauss_newton"``: expectation over the model's predictive distribution, one
    backward pass per output; ``"empirical"``: true-label gradients, one backward pass).
    """

    curvature: str = "gauss_newton"
    name = "ekfac"
    correct_eigenvalues = True

    def validate(self) -> None:
        if self.curvature not in CURVATURES:
            raise InputError(f"curvature={self.curvature!r} is not allowed: use one of "
                             f"{', '.join(repr(c) for c in CURVATURES)}")

    # ------------------------------------------------------------------------------- capture by hooks
    def _capture(self, x: torch.Tensor, y: torch.Tensor, *, true_labels: bool):
        """Per Linear layer: its inputs a (b, in) and output-gradients g (b, K, out) — K = 1 with the true
        labels' loss, K = C with the rows of Λ's root as cotangents of the outputs."""
        fn, store = self.fn_, {}

        def hook_for(name):
            def hook(module, inputs, output):
                if name in store:
                    raise InputError(f"method={self.name!r} needs each Linear layer applied once per record, but "
                                     f"{name!r} is applied several times: use method='cg' or method='arnoldi'")
                store[name] = (inputs[0], output)
            return hook

        handles = [m.register_forward_hook(hook_for(n)) for n, m in self.modules_.items()]
        try:
            with torch.enable_grad():
                outputs = fn.outputs(fn.theta.detach().requires_grad_(True), x)
        finally:
            for h in handles:
                h.remove()
        names = list(self.modules_)
        for n in names:
            if n not in store:
                raise InputError(f"the Linear layer {n!r} is not used by the model's forward pass: leave it out "
                                 "with params=[...]")
            if store[n][0].ndim != 2:
                raise InputError(f"method={self.name!r} needs one input vector per record for each Linear layer, "
                                 f"but {n!r} receives inputs of shape {tuple(store[n][0].shape)}: use "
                                 "method='cg' or method='arnoldi'")
        pre = [store[n][1] for n in names]
        with torch.enable_grad():
            if true_labels:
                cotangents = [None]
                loss = fn.loss_fn(outputs, y).sum()
            else:
                roots = _loss_curvature_roots(fn, outputs.detach(), y)
                cotangents = [roots[:, c].reshape(outputs.shape) for c in range(roots.shape[1])]
            per_c = []
            for k, cot in enumerate(cotangents):
                target, grad_out = (loss, None) if cot is None else (outputs, cot)
                grads = torch.autograd.grad(target, pre, grad_outputs=grad_out, allow_unused=True,
                                            retain_graph=k + 1 < len(cotangents))
                per_c.append([torch.zeros_like(p) if g is None else g for g, p in zip(grads, pre, strict=True)])
        acts = {n: store[n][0].detach().double() for n in names}
        grads = {n: torch.stack([c[i] for c in per_c], dim=1).detach().double() for i, n in enumerate(names)}
        return acts, grads

    def _passes(self, hessian: HessianOperator, *, true_labels: bool):
        for x, y in hessian.records.chunks(hessian.chunk_size, dtype=hessian.dtype, device=hessian.device):
            yield self._capture(x, y, true_labels=true_labels)

    # ------------------------------------------------------------------------------------------ fit
    def fit(self, hessian: HessianOperator) -> EKFACSolver:
        self.fn_ = hessian.fn
        self.blocks_, self.modules_ = _blocks(hessian.fn, hessian.shift.double().cpu(), self.name)
        n = hessian.n
        true_labels = self.curvature == "empirical"
        A = [0.0] * len(self.blocks_)
        S = [0.0] * len(self.blocks_)
        for acts, grads in self._passes(hessian, true_labels=true_labels):
            for i, b in enumerate(self.blocks_):
                a, g = b.inputs(acts[b.module_name]), grads[b.module_name].flatten(0, 1)
                A[i] = A[i] + a.T @ a / n
                S[i] = S[i] + g.T @ g / n
        self.factors_ = []
        for i in range(len(self.blocks_)):
            ea, QA = torch.linalg.eigh((A[i] + A[i].T) / 2)
            es, QS = torch.linalg.eigh((S[i] + S[i].T) / 2)
            self.factors_.append([QS, QA, torch.outer(es.clamp_min(0), ea.clamp_min(0))])
        if self.correct_eigenvalues:
            diag = [torch.zeros_like(f[2]) for f in self.factors_]
            for acts, grads in self._passes(hessian, true_labels=true_labels):
                for i, b in enumerate(self.blocks_):
                    QS, QA, _ = self.factors_[i]
                    u2 = ((grads[b.module_name] @ QS) ** 2).sum(1)           # (b, out): Σ_c (Q_Sᵀ g_c)²
                    v2 = (b.inputs(acts[b.module_name]) @ QA) ** 2           # (b, cols)
                    diag[i] += u2.T @ v2 / n
            for f, d in zip(self.factors_, diag, strict=True):
                f[2] = d
        for f, b in zip(self.factors_, self.blocks_, strict=True):
            f[2] = f[2] + b.shift
            lo, hi = float(f[2].min()), float(f[2].max())
            if lo <= 1e-12 * max(hi, 1e-300):
                fix = suggest_damping(lo, hi)
                raise SingularHessianError(
                    f"method={self.name!r} found the curvature of {_label(b.module_name)} singular (smallest "
                    f"eigenvalue {lo:.3g}, largest {hi:.3g}, l2 + damping = {b.shift:g}): pass "
                    f"damping={fix:.2g} (about 1e-3 of the largest eigenvalue)", suggested_damping=fix)
        self.device_ = hessian.device
        self.factors_ = [[t.to(hessian.device) for t in f] for f in self.factors_]
        return self

    # ---------------------------------------------------------------------------------- apply H⁻¹
    def solve(self, B: torch.Tensor) -> torch.Tensor:
        X = torch.zeros_like(B, dtype=torch.float64)
        Bd = B.double()
        for b, (QS, QA, D) in zip(self.blocks_, self.factors_, strict=True):
            idx = b.index.to(B.device)
            P = QS.T @ Bd[:, idx] @ QA / D                                    # (k, out, cols)
            X[:, idx] = QS @ P @ QA.T
        return X.to(B.dtype)

    def quad_forms(self, G: torch.Tensor) -> torch.Tensor:
        Gd = G.double()
        out = torch.zeros(G.shape[0], dtype=torch.float64, device=G.device)
        for b, (QS, QA, D) in zip(self.blocks_, self.factors_, strict=True):
            P = QS.T @ Gd[:, b.index.to(G.device)] @ QA
            out += (P * P / D).sum((1, 2))
        return out.to(G.dtype)

    def quad_forms_of_records(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``g_iᵀ H⁻¹ g_i`` for the true-label gradients of a batch, from the rank-1 factors ``g ãᵀ`` of each
        layer (no per-record gradient is formed): ``Σ_oi u_o² v_i² / D_oi`` with u = Q_Sᵀ g, v = Q_Aᵀ ã."""
        acts, grads = self._capture(x, y, true_labels=True)
        out = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
        for b, (QS, QA, D) in zip(self.blocks_, self.factors_, strict=True):
            u2 = (grads[b.module_name][:, 0] @ QS) ** 2
            v2 = (b.inputs(acts[b.module_name]) @ QA) ** 2
            out += ((u2 @ (1.0 / D)) * v2).sum(1)
        return out.to(self.fn_.dtype)

    def summary(self) -> dict:
        out = super().summary()
        if hasattr(self, "factors_"):
            kind = {(True, True): "weight+bias", (True, False): "weight", (False, True): "bias"}
            out["blocks"] = [{"layer": b.module_name, "shape": list(f[2].shape), "parameters": kind[b.weight, b.bias],
                              "shift": b.shift, "largest_eigenvalue": float(f[2].max()),
                              "smallest_eigenvalue": float(f[2].min())}
                             for b, f in zip(self.blocks_, self.factors_, strict=True)]
        return out


@dataclass
class KFACSolver(EKFACSolver):
    """Kronecker-factored curvature of the Linear layers, eigenvalues ``s aᵀ`` of the factors (no re-fit)."""

    name = "kfac"
    correct_eigenvalues = False
