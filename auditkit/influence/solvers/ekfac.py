"""K-FAC and EK-FAC (Martens & Grosse 2015; George et al. 2018; Grosse et al. 2023) for ``nn.Linear`` and
``nn.Conv2d`` layers.

H is approximated block-diagonally, one block per Linear layer (weight W (out × in) and bias b together,
flattened row-major as in θ). A record's gradient for the block is rank-1: ``∇_W ℓ = g ãᵀ`` with ã the
layer's input with a 1 appended for the bias and g the gradient of the loss w.r.t. the layer's
pre-activation output. The curvature of the block is the Gauss–Newton matrix
``(1/n) Σ_i Σ_c (g_ic g_icᵀ) ⊗ (ã_i ã_iᵀ)``, with g_ic back-propagated from the rows r_c of a root of
``Λ_i = ∂²ℓ/∂f²`` (``Σ_c r_c r_cᵀ = Λ_i``): the exact expectation over the model's predictive distribution
that Kronfluence samples labels for (for cross-entropy, the true Fisher; for a single Linear layer, the
Hessian of the data term itself). ``curvature="empirical"`` uses the true-label gradients instead
(empirical Fisher).

- **K-FAC**: block ≈ ``S ⊗ A`` with ``S = (1/n) Σ_ic g gᵀ`` and ``A = (1/n) Σ_i ã ãᵀ``; with
  ``S = Q_S diag(s) Q_Sᵀ``, ``A = Q_A diag(a) Q_Aᵀ`` (float64), the inverse is
  ``(Q_S ⊗ Q_A) diag(s aᵀ + λ)⁻¹ (Q_S ⊗ Q_A)ᵀ``.
- **EK-FAC**: an eigenbasis ``Q_S ⊗ Q_A`` with the diagonal re-fitted to the data,
  ``Λ = (1/n) Σ_ic (Q_Sᵀ g_ic)² (Q_Aᵀ ã_i)²ᵀ``: the best diagonal in that basis. ``basis="weighted"``
  (default) takes the eigenvectors of the weighted factors ``A_w = Σ_i ‖g_i‖² ã_i ã_iᵀ`` and
  ``S_w = Σ_i ‖ã_i‖² g_i g_iᵀ`` (‖g_i‖² = Σ_c ‖g_ic‖²): one step of the power iteration for the nearest
  Kronecker product ``S ⊗ A`` to the block in Frobenius norm (Van Loan & Pitsianis 1993), started from
  the identity; it keeps records with a large gradient from being averaged away. For a binary
  logistic regression the block is exactly such a product (g_ic ∥ (1, −1)), so EK-FAC is then exact.
  ``basis="kfac"``: the eigenvectors of S and A, as in George et al.

λ is the engine's shift (l2 + damping) on the block. When the weight and the bias have different
coefficients (e.g. an unpenalised intercept), the bias is its own block ``S ⊗ [1]`` and the weight–bias
cross-curvature is dropped.

**Conv2d** (Grosse & Martens 2016, KFC): the weight (out × C·kh·kw, as flattened in θ) multiplies the input
patches ã_it (``unfold``) at every output position t, so a record's gradient is ``G_i = Σ_t g_it ã_itᵀ``
(not rank-1). ``A = (1/n) Σ_it ã ãᵀ``, ``S = (1/(nT)) Σ_it g gᵀ``; EK-FAC's diagonal is
``(1/n) Σ_ic (Q_Sᵀ G_ic Q_A)²`` and quadratic forms use ``Q_Sᵀ G_i Q_A``. A Linear layer applied at several
positions of a record (inputs (b, T, in)) is handled the same way. Grouped convolutions and padding modes
other than zeros are refused, as are other parameter types (BatchNorm, Embedding, bare parameters):
restrict influence to the supported layers with ``params=[...]``.

In the eigenbasis a record's quadratic form needs only ``u = Q_Sᵀ g`` and ``v = Q_Aᵀ ã``:
``gᵀ H⁻¹ g = Σ_oi u_o² v_i² / (Λ_oi + λ)``, so self-influence of n records needs no per-record gradient of
the whole model (for Conv2d, one out × C·kh·kw block per layer and record).

**Cost.** One forward and K backward passes per chunk of records, K = the number of independent output
cotangents (1 for binary cross-entropy or ``bce``, C for C classes): the true-label gradient and every row
of Λ's root are combinations of the same K back-propagated vectors (``∂ℓ/∂f`` lies in the range of Λ).
When the per-record factors (ã, g) of all training records fit in ``cache_mb`` they are kept from that
one pass, and the eigenvalue correction and the self-influence of every training record are computed
from them without another pass over the data (``train_quad_forms``); otherwise each is one more pass.
The factors' Gram matrices are symmetric rank-k updates (BLAS ``dsyrk``, half the flops of a product).

**Output layers with one output direction** (the model's output is the layer's output and K = 1: binary
cross-entropy with two logits or ``bce``; a logistic regression is only this): every record's g is a
multiple D_i of the same cotangent e, so u = D_i Q_Sᵀe. EK-FAC's corrected diagonal (weighted basis) is then
``(Q_Sᵀe)² eaᵀ / ‖e‖²`` from the eigenvalues ea of A_w alone, and a record's quadratic form is
``D_i² ã_iᵀ M ã_i`` with ``M = Q_A diag(m) Q_Aᵀ = L Lᵀ``, ``m_c = Σ_o (Q_Sᵀe)_o² / (Λ_oc + λ)``: one triangular
product (``dtrmm``) per record instead of a projection and a correction.
"""

from __future__ import annotations

import contextlib
import functools
import zlib
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn
from torch.func import hessian, vmap

from ...errors import InputError, SingularHessianError
from ..hessian import HessianOperator
from ..losses import bce, cross_entropy, mse
from .base import Solver, option, suggest_damping

CURVATURES = ("gauss_newton", "empirical", "sampled")
PRECISIONS = ("float64", "engine")
BASES = ("weighted", "kfac")


class _Layer(NamedTuple):
    """What one chunk's forward/backward passes leave of a layer: inputs a (b, in) or patches (b, T, in), the
    back-propagated cotangents J (b, K, out) or (b, K, T, out), and the chunk's R (b, r, K), D (b, K) of
    ``output_directions`` (shared by the layers): ``g_c = Σ_k R_ck J_k`` (Gauss–Newton rows), ``g = Σ_k D_k J_k``.
    ``fixed``: the layer's output is the model's output and K = 1, so J is the same cotangent e for every
    record and each record's output-gradient is a multiple of it."""

    a: torch.Tensor
    J: torch.Tensor
    R: torch.Tensor
    D: torch.Tensor
    fixed: bool = False

    def gn(self) -> torch.Tensor:
        """The Gauss–Newton rows of the output-gradient: (b, r, out) or (b, r, T, out)."""
        return _combine(self.R, self.J)


def _combine(C: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
    """``Σ_k C[:, m, k] U[:, k]`` per record: C (b, m, K), U (b, K, ...) → (b, m, ...). Few K (the usual case:
    K = 1 for two classes) by broadcasting, which is far cheaper than b tiny batched matrix products."""
    b, m, K = C.shape
    if b > 1 and C.stride(0) == 0:                     # one combination for every record (per-record cotangents)
        c = C[0]
        if m == 1 and int((c != 0).sum()) == 1 and float(c.max()) == 1.0:
            k = int(c.argmax())
            return U[:, k:k + 1]                       # a selection: a view, nothing computed
        return torch.einsum("mk,bk...->bm...", c, U)
    if K > 8:
        return (C @ U.reshape(b, K, -1)).reshape(b, m, *U.shape[2:])
    Cx = C.reshape(b, m, K, *([1] * (U.ndim - 2)))
    return (Cx * U.unsqueeze(1)).sum(2) if K > 1 else Cx[:, :, 0] * U


@functools.cache
def _blas():
    """SciPy's ``dsyrk`` and a controller of its BLAS threads (imported once, on first use)."""
    from scipy.linalg.blas import dsyrk, dtrmm, ssyrk, strmm
    from threadpoolctl import ThreadpoolController
    return {torch.float64: dsyrk, torch.float32: ssyrk}, ThreadpoolController(), {torch.float64: dtrmm,
                                                                                    torch.float32: strmm}


def blas_threads():
    """A context in which SciPy's BLAS uses as many threads as torch (``--threads``), not its own default."""
    return _blas()[1].limit(limits=torch.get_num_threads(), user_api="blas")


def _gram(x: torch.Tensor) -> torch.Tensor:
    """``xᵀx`` (d, d) for x (m, d), **upper triangle** (the lower one may be zero: the sums of statistics
    are read with ``eigh(UPLO="U")``). On the CPU by the symmetric rank-k update ``dsyrk`` (``ssyrk``) (one
    triangle: half the flops of a general product); elsewhere, or for d < 16, by matmul."""
    if x.device.type != "cpu" or x.dtype not in (torch.float64, torch.float32) or x.shape[1] < 16:
        return x.T @ x
    dsyrk = _blas()[0][x.dtype]
    return torch.from_numpy(dsyrk(1.0, x.detach().contiguous().numpy().T, trans=0))     # (xᵀ)(xᵀ)ᵀ


def _times_lower(x: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    """``x L`` for x (m, d) and a lower-triangular L (d, d). On the CPU in float64 by the triangular product
    ``dtrmm`` (half the flops of a general product); elsewhere by matmul."""
    L = L.to(x.dtype)
    if x.device.type != "cpu" or x.dtype not in (torch.float64, torch.float32):
        return x @ L
    dtrmm = _blas()[2][x.dtype]
    # (Lᵀ xᵀ)ᵀ: xᵀ is x's memory read in Fortran order
    lower, xt = L.detach().contiguous().numpy(), x.detach().contiguous().numpy().T
    return torch.from_numpy(dtrmm(1.0, lower, xt, side=0, lower=1, trans_a=1)).T


def _augmented_gram(a: torch.Tensor, w: torch.Tensor | None, bias: bool) -> torch.Tensor:
    """``Σ_i w_i ã_i ã_iᵀ`` (w = 1 when None; upper triangle, as ``_gram``) with ã = a, or (a, 1) when
    ``bias``, without forming ã: the last column is ``(Σ w a, Σ w)``."""
    r = None if w is None else w.sqrt()
    if not bias:
        return _gram(a if r is None else a * r[:, None])
    x = a.new_empty(a.shape[0], a.shape[1] + 1)                 # (√w a, √w), written in place: one syrk
    if r is None:
        x[:, :-1] = a
        x[:, -1] = 1.0
    else:
        torch.mul(a, r[:, None], out=x[:, :-1])
        x[:, -1] = r
    return _gram(x)


def _squared(t: torch.Tensor) -> torch.Tensor:
    """``t²`` elementwise, as a product (``** 2`` dispatches to a general power, several times slower)."""
    return t * t


def _times(T: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:
    """``T @ Q`` for T (..., n) and one matrix Q (n, m), as a single 2-D product."""
    return (T.reshape(-1, T.shape[-1]) @ Q).reshape(*T.shape[:-1], Q.shape[1])


GROUP = 4096     # records whose kept factors are merged into one group of products (see ``EKFACSolver._fit``)


def _stacked(tensors: list[torch.Tensor]) -> torch.Tensor:
    """The records of several chunks in one tensor; coefficients that are the same for every record (expanded,
    stride 0: see ``_combine``) stay expanded."""
    first = tensors[0]
    total = sum(t.shape[0] for t in tensors)
    if all(t.stride(0) == 0 or t.shape[0] == 1 for t in tensors) and first.shape[0] > 1 and first.stride(0) == 0:
        return first[:1].expand(total, *first.shape[1:])
    return torch.cat(tensors) if len(tensors) > 1 else first


def _merge(chunks: list[dict]) -> dict:
    """Captured layer factors (``_Layer`` per layer name) of consecutive chunks as those of one group."""
    if len(chunks) == 1:
        return chunks[0]
    return {name: _Layer(*(_stacked([c[name][f] for c in chunks]) for f in range(4)), chunks[0][name].fixed)
            for name in chunks[0]}


class _Block:
    """One Kronecker block: a Linear layer's weight and/or bias, at positions ``index`` (out, cols) of θ."""

    def __init__(self, module_name: str, index: torch.Tensor, weight: bool, bias: bool, shift: float):
        self.module_name, self.index, self.weight, self.bias, self.shift = module_name, index, weight, bias, shift

    def inputs(self, a: torch.Tensor) -> torch.Tensor:
        """ã: the layer input (if the weight is in the block) with a 1 appended (if the bias is)."""
        if self.weight and not self.bias:
            return a
        ones = torch.ones_like(a[..., :1])
        return torch.cat([a, ones], dim=-1) if self.weight else ones

    def inputs_times(self, a: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:
        """``ã Q`` for a (b, in) without forming ã: ``a Q[:-1] + Q[-1]`` when the bias is in the block."""
        if self.weight and self.bias:
            return (a @ Q[:-1]).add_(Q[-1])             # not addmm: it first copies the broadcast row to every row
        return a @ Q if self.weight else Q[-1].repeat(*a.shape[:-1], 1)

    def inputs_gram(self, a: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        """``Σ_i w_i ã_i ã_iᵀ`` for a (b, in) (w = 1 when None; upper triangle, as ``_gram``)."""
        if self.weight:
            return _augmented_gram(a, w, self.bias)
        return (a.new_tensor(float(a.shape[0])) if w is None else w.sum()).reshape(1, 1)

    def lower_parts(self, L: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
        """What ``inputs_quad_form`` needs of a lower-triangular L (d, d) over ã: for ã = (a, 1),
        ``‖ãᵀL‖² = ‖aᵀL₁₁ + ℓ‖² + L_dd² = zᵀz + zᵀ(2ℓ) + (‖ℓ‖² + L_dd²)`` with z = aᵀL₁₁: (L₁₁, 2ℓ, constant)."""
        if not self.weight:
            return None, None, L[0, 0] * L[0, 0]
        if not self.bias:
            return L.contiguous(), None, L.new_zeros(())
        last = L[-1]
        return L[:-1, :-1].contiguous(), 2 * last[:-1], last @ last

    def inputs_quad_form(self, a: torch.Tensor, parts) -> torch.Tensor:
        """``‖ã_iᵀ L‖²`` per record for a (b, in), from ``lower_parts(L)``, without forming ã."""
        L11, twice_last, constant = parts
        if L11 is None:
            return constant.to(a.dtype).repeat(a.shape[0])
        z = _times_lower(a, L11)
        q = (z * z).sum(1)
        if twice_last is not None:
            q.add_(z @ twice_last.to(z.dtype))
        return q.add_(constant.to(z.dtype))

    def inputs_squared_norm(self, a: torch.Tensor) -> torch.Tensor:
        """``‖ã_i‖²`` per record for a (b, in)."""
        if not self.weight:
            return a.new_ones(a.shape[0])
        return (a * a).sum(1) + 1.0 if self.bias else (a * a).sum(1)


def _check_conv(name: str, conv: nn.Conv2d, method: str) -> None:
    """Refuse the Conv2d settings the patch factorisation does not cover, naming them."""
    bad = []
    if conv.groups != 1:
        bad.append(f"groups={conv.groups}")
    if conv.padding_mode != "zeros":
        bad.append(f"padding_mode={conv.padding_mode!r}")
    if isinstance(conv.padding, str) and conv.padding == "same" and any(
            (d * (k - 1)) % 2 for d, k in zip(conv.dilation, conv.kernel_size, strict=True)):
        bad.append("padding='same' with an even kernel")
    if bad:
        raise InputError(f"method={method!r} cannot factorise the Conv2d layer {name!r} ({', '.join(bad)}): "
                         "restrict influence to other layers with params=[...], or use method='cg' or "
                         "method='arnoldi'")


def _patches(conv: nn.Conv2d, a: torch.Tensor) -> torch.Tensor:
    """The input patches a Conv2d layer multiplies by its weight: (b, C·kh·kw, T), T output positions."""
    padding = conv.padding
    if isinstance(padding, str):
        padding = (0, 0) if padding == "valid" else tuple(d * (k - 1) // 2 for d, k in
                                                          zip(conv.dilation, conv.kernel_size, strict=True))
    return nn.functional.unfold(a, conv.kernel_size, dilation=conv.dilation, padding=padding, stride=conv.stride)


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
        if isinstance(module, (nn.Linear, nn.Conv2d)) and attr in ("weight", "bias"):
            if isinstance(module, nn.Conv2d):
                _check_conv(module_name, module, method)
            layers.setdefault(module_name, {})[attr] = offset
        else:
            bare = any(True for _ in module.children())                  # a container's own nn.Parameter
            unsupported.append(f"{name!r} ({'a bare parameter of ' if bare else ''}{type(module).__name__})")
    if unsupported:
        linear = [n for n, m in fn.model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
        hint = f" (e.g. params={linear!r})" if linear else ""
        raise InputError(f"method={method!r} supports parameters of nn.Linear and nn.Conv2d layers only, not "
                         f"{', '.join(unsupported)}: restrict influence to those layers with params=[...]"
                         f"{hint}, or use method='cg' or method='arnoldi'")
    blocks, modules = [], {}
    for module_name, parts in layers.items():
        module = fn.model.get_submodule(module_name) if module_name else fn.model
        modules[module_name] = module
        if isinstance(module, nn.Conv2d):
            out, cols = module.out_channels, module.weight[0].numel()
        else:
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


def output_directions(fn, outputs: torch.Tensor, y: torch.Tensor, *, empirical: bool):
    """The output cotangents to back-propagate, and how the loss's derivatives combine them.

    Returns ``(E, R, D)``: basis cotangents E (K, *record output shape); R (b, r, K), the rows of a root of
    ``Λ_i = ∂²ℓ/∂f²`` (``Σ_c r_c r_cᵀ = Λ_i``) in that basis (with ``empirical``: the true-label gradient as
    the one row); D (b, K), the true-label gradient ``∂ℓ_i/∂f`` in that basis. Closed forms for the built-in
    losses: cross-entropy ``Λ = diag(p) − ppᵀ`` with rows ``√p_c (e_c − p)`` and ``∂ℓ/∂f = p − e_y``; for two
    classes both are multiples of (1, −1) (K = 1): ``√(p₀p₁)`` and ``p₀ − [y = 0]``; ``bce``: ``√(σ(1−σ))`` and
    ``σ − y``; ``mse`` over K outputs: ``√(2/K)·I`` and ``(2/K)(f − y)``. Any other loss: Λ by autograd, rows
    from its eigendecomposition (negative eigenvalues clipped).
    """
    b = outputs.shape[0]
    shape = outputs.shape[1:]
    o = outputs.detach().reshape(b, -1)
    K = o.shape[1]
    loss = fn.loss_fn
    if loss is cross_entropy and K == 2:
        z = o[:, :1] - o[:, 1:]                         # p₀ = σ(f₀ − f₁), p₁ = σ(f₁ − f₀): each without cancellation
        p0 = torch.sigmoid(z)
        E = torch.tensor([1.0, -1.0], dtype=o.dtype, device=o.device).reshape(1, *shape)
        D = p0 - (y.reshape(b, 1) == 0).to(o.dtype)
        R = (p0 * torch.sigmoid(-z)).sqrt_().reshape(b, 1, 1)
    elif loss is cross_entropy:
        p = torch.softmax(o, dim=1)
        E = torch.eye(K, dtype=o.dtype, device=o.device).reshape(K, *shape)
        D = p - nn.functional.one_hot(y.long().reshape(b), K).to(o.dtype)
        R = p.sqrt()[:, :, None] * (torch.eye(K, dtype=o.dtype, device=o.device) - p[:, None, :])
    elif loss is bce and K == 1:
        s = torch.sigmoid(o)
        E = torch.ones((1, *shape), dtype=o.dtype, device=o.device)
        D = s - y.reshape(b, 1).to(o.dtype)
        R = (s * (1 - s)).sqrt().reshape(b, 1, 1)
    elif loss is mse:
        E = torch.eye(K, dtype=o.dtype, device=o.device).reshape(K, *shape)
        D = (2.0 / K) * (o - y.reshape(b, K).to(o.dtype))
        R = (2.0 / K) ** 0.5 * torch.eye(K, dtype=o.dtype, device=o.device).expand(b, K, K)
    else:
        E = torch.eye(K, dtype=o.dtype, device=o.device).reshape(K, *shape)

        def loss_of_output(oi, yi):
            return loss(oi.reshape(1, *shape), yi.unsqueeze(0)).sum()

        with torch.enable_grad():
            oo = o.clone().requires_grad_(True)
            (D,) = torch.autograd.grad(loss(oo.reshape(b, *shape), y).sum(), oo)
        lam = vmap(hessian(loss_of_output))(o, y)
        values, vectors = torch.linalg.eigh((lam + lam.transpose(1, 2)) / 2)
        R = (vectors * values.clamp_min(0).sqrt().unsqueeze(1)).transpose(1, 2)
    if empirical:
        R = D[:, None, :]
    return E, R, D


@dataclass
class EKFACSolver(Solver):
    """Eigenvalue-corrected Kronecker-factored curvature of the Linear and Conv2d layers (float64).

    Options: ``curvature`` (``"gauss_newton"``: expectation over the model's predictive distribution;
    ``"empirical"``: true-label gradients; ``"sampled"``: the Gauss–Newton matrix estimated from one random
    combination ``ξᵀR`` of the rows of Λ's root per record, ξ ~ N(0, I) drawn with ``seed``: unbiased, and one
    back-propagated cotangent per record instead of K); ``precision`` (``"float64"``, or ``"engine"``: the
    per-record products in the engine's dtype, the sums of statistics and the eigendecompositions in float64);
    ``basis`` (``"weighted"`` or ``"kfac"``, EK-FAC only: which
    factors' eigenvectors form the basis, see the module docstring); ``cache_mb`` (memory allowed for the
    training records' per-layer factors kept from the first pass; 0 recomputes them in further passes);
    ``curvature_records`` (0: every record; k: the factors and the re-fitted diagonal from k records drawn with
    ``seed``; every record's own quadratic form is then computed in the engine's pass; see ``_fit_on_subset``).
    """

    curvature: str = option("gauss_newton", "'gauss_newton' (expectation over the predictive distribution) or "
                            "'empirical' (true-label gradients)")
    basis: str = option("weighted", "EK-FAC only: 'weighted' or 'kfac', which factors' eigenvectors form the basis")
    cache_mb: float = option(256.0, "memory (MB) for per-layer factors kept from the first pass; 0 recomputes them")
    seed: int = option(0, "seed of the random draws (curvature='sampled' combinations, the curvature_records subset)")
    precision: str = option("float64", "'float64' (every product in float64) or 'engine' (per-record products in "
                            "the engine's dtype, e.g. float32: about twice as fast; sums and eigendecompositions "
                            "stay float64)")
    curvature_records: int = option(0, "estimate the curvature (Kronecker factors and eigenvalue correction) from a "
                                    "seeded random subset of this many training records (0: all); the quadratic "
                                    "forms (self-influence) still use every record's own gradient")
    name = "ekfac"
    correct_eigenvalues = True

    def validate(self) -> None:
        if self.curvature not in CURVATURES:
            raise InputError(f"curvature={self.curvature!r} is not allowed: use one of "
                             f"{', '.join(repr(c) for c in CURVATURES)}")
        if self.basis not in BASES:
            raise InputError(f"basis={self.basis!r} is not allowed: use one of {', '.join(repr(c) for c in BASES)}")
        if isinstance(self.cache_mb, bool) or not isinstance(self.cache_mb, (int, float)) or not self.cache_mb >= 0:
            raise InputError(f"cache_mb={self.cache_mb!r} is not allowed: it must be a number ≥ 0 (megabytes)")
        if self.precision not in PRECISIONS:
            raise InputError(f"precision={self.precision!r} is not allowed: use one of "
                             f"{', '.join(repr(c) for c in PRECISIONS)}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InputError(f"seed={self.seed!r} is not allowed: it must be an integer ≥ 0")
        k = self.curvature_records
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise InputError(f"curvature_records={k!r} is not allowed: it must be an integer ≥ 0 (0: every record)")

    # ------------------------------------------------------------------------------- capture by hooks
    def _capture(self, x: torch.Tensor, y: torch.Tensor, need: str = "all") -> dict[str, tuple[torch.Tensor, ...]]:
        """Per layer, float64, from one forward and K backward passes, a ``_Layer``: its inputs a and the
        back-propagated output cotangents J, with the chunk's R and D (``output_directions``). A Linear layer
        with one input vector per record gives a (b, in), J (b, K, out); a Conv2d layer (or a Linear layer
        applied at T positions of a record) gives a (b, T, in) (image patches: ``unfold``), J (b, K, T, out).

        ``need``: ``"all"`` (the Gauss–Newton rows and the true-label gradient), ``"gn"`` (the rows only) or
        ``"true"`` (the true-label gradient only). When the K basis cotangents are more than what is needed,
        per-record cotangents are back-propagated instead (``_cotangents``): fewer backward passes."""
        fn, store = self.fn_, {}

        def hook_for(name):
            def hook(module, inputs, output):
                if name in store:
                    raise InputError(f"method={self.name!r} needs each layer applied once per record, but "
                                     f"{name!r} is applied several times: use method='cg' or method='arnoldi'")
                store[name] = (inputs[0], output)
            return hook

        graph = getattr(self, "graph_needed_", True)   # False when every layer's output is the model's output
        handles = [m.register_forward_hook(hook_for(n)) for n, m in self.modules_.items()]
        try:
            with torch.enable_grad() if graph else torch.no_grad():
                if self.direct_:                        # the module itself: its parameters are θ̂ already
                    outputs = fn.model(x)
                else:
                    outputs = fn.outputs(fn.theta.detach().requires_grad_(True), x)
        finally:
            for h in handles:
                h.remove()
        names = list(self.modules_)
        for n in names:
            if n not in store:
                raise InputError(f"the layer {n!r} is not used by the model's forward pass: leave it out "
                                 "with params=[...]")
        pre = [store[n][1] for n in names]
        # a layer whose output is the model's output gets the cotangent itself; the others by autograd
        inner = [i for i, p in enumerate(pre) if p is not outputs]
        if inner and not graph:
            self.graph_needed_ = True
            return self._capture(x, y)
        self.graph_needed_ = bool(inner)
        E, R, D = output_directions(fn, outputs, y, empirical=self.curvature == "empirical")
        cotangents, R, D = self._cotangents(x, outputs, E, R, D, need)
        K = len(cotangents)
        shared = K == E.shape[0]                         # the basis E itself, the same for every record
        per_k = []
        for k in range(K):
            cotangent = cotangents[k]
            grads = [cotangent] * len(pre)
            if inner:
                with torch.enable_grad():
                    found = torch.autograd.grad(outputs, [pre[i] for i in inner], grad_outputs=cotangent,
                                                allow_unused=True, retain_graph=k + 1 < K)
                for i, g in zip(inner, found, strict=True):
                    grads[i] = g
            per_k.append(grads)
        work = self._work_dtype()
        R, D = (t if t.dtype == work else t.to(work) for t in (R, D))
        out = {}
        for i, n in enumerate(names):
            parts = [pre[i].new_zeros(pre[i].shape) if g[i] is None else g[i] for g in per_k]
            J = (parts[0].unsqueeze(1) if K == 1 else torch.stack(parts, dim=1)).to(work)  # (b, K, *layer output)
            a, b = store[n][0].detach().to(work), J.shape[0]
            module = self.modules_[n]
            if isinstance(module, nn.Conv2d):
                a = _patches(module, a).transpose(1, 2)                        # (b, T, C·kh·kw)
                J = J.flatten(3).transpose(2, 3)                               # (b, K, T, out)
            elif a.ndim > 2:                                                   # Linear at several positions
                a, J = a.reshape(b, -1, a.shape[-1]), J.reshape(b, K, -1, J.shape[-1])
            out[n] = _Layer(a, J, R, D, shared and K == 1 and pre[i] is outputs and a.ndim == 2)
        return out

    def _work_dtype(self) -> torch.dtype:
        """The dtype of the per-record products: float64, or the engine's with ``precision="engine"``."""
        return self.fn_.dtype if self.precision == "engine" else torch.float64

    def _cotangents(self, x, outputs, E, R, D, need: str):
        """The output cotangents to back-propagate and R, D in their terms (see ``_Layer``). With K basis
        cotangents E (shared by the records) and K > 1, per-record cotangents are fewer when only the
        true-label gradient is needed (one: ``D_i E``), for the empirical curvature (one: the true-label
        gradient is the one row) and for ``curvature="sampled"`` (the row ``ξ_iᵀR_i E``, and ``D_i E`` when
        ``need="all"``). ξ is drawn from a generator seeded by ``seed`` and the chunk's first record, so a
        chunk gets the same draws in every pass, wherever it is computed."""
        K = E.shape[0]
        rows = None
        if K > 1 and (need == "true" or self.curvature == "empirical"):
            rows = [D]
        elif K > 1 and self.curvature == "sampled":
            first = x[:1].detach().cpu().contiguous().numpy().tobytes()
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + zlib.crc32(first) + x.shape[0])
            xi = torch.randn(R.shape[0], R.shape[1], generator=generator, dtype=R.dtype).to(R.device)
            rows = [(xi[:, None, :] @ R)[:, 0]] + ([] if need == "gn" else [D])
        if rows is None:
            return [E[k].expand_as(outputs) for k in range(K)], R, D
        b, M = D.shape[0], len(rows)
        work = self._work_dtype()
        # the same coefficients for every record: expanded (stride 0), which ``_combine`` reads as a selection
        one, zero = D.new_ones((), dtype=work).expand(b, 1, 1), D.new_zeros((), dtype=work).expand(b, 1, 1)
        if M == 1:           # the one cotangent is the row (or the true-label gradient) itself
            R, D = (zero, one[:, 0]) if need == "true" else (one, zero[:, 0] if need == "gn" else one[:, 0])
        else:                # [row, true-label gradient]
            R = D.new_tensor([1.0, 0.0], dtype=work).expand(b, 1, 2)
            D = D.new_tensor([0.0, 1.0], dtype=work).expand(b, 2)
        flat = E.reshape(K, -1).to(outputs.dtype)
        return [(c.to(outputs.dtype) @ flat).reshape(outputs.shape) for c in rows], R, D

    def _chunk_statistics(self, x: torch.Tensor, y: torch.Tensor, *, keep: bool):
        """Additive sums of one chunk, per block: A = Σ ããᵀ, S = Σ_c g gᵀ (Σ over positions, S divided by their
        number T), or the weighted A_w = Σ_ic G_icᵀG_ic, S_w = Σ_ic G_ic G_icᵀ of the per-record gradient blocks
        G_ic = Σ_t g_itc ã_itᵀ; and the chunk's per-layer factors when ``keep``."""
        captured = self._capture(x, y, "all" if keep else "gn")
        return self._statistics(captured), (captured if keep else None)

    def _statistics(self, captured) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The sums of ``_chunk_statistics`` from captured layer factors (of one chunk or of several merged)."""
        sums = []
        weighted = self.correct_eigenvalues and self.basis == "weighted"
        for b in self.blocks_:
            layer = captured[b.module_name]
            if layer.fixed:                 # g_ic = R_ic e: S_w = tr(A_w) eeᵀ/‖e‖², S = Σ_i ‖g_i‖² eeᵀ/‖e‖²
                e = layer.J[0, 0]
                wa = _squared(layer.R).sum((1, 2)) * (e @ e)                 # ‖g_i‖² = Σ_c R_ic² ‖e‖²
                A = b.inputs_gram(layer.a, wa if weighted else None)
                sums.append((A, torch.outer(e, e) * ((A.diagonal().sum() if weighted else wa.sum()) / (e @ e))))
                continue
            gn = layer.gn()
            if layer.a.ndim == 2 and weighted:                                # rank-1: G_ic = g_ic ã_iᵀ
                g = gn.flatten(0, 1)
                wa = (gn * gn).sum((1, 2))                                    # ‖g_i‖² (b,)
                wg = b.inputs_squared_norm(layer.a)                           # ‖ã_i‖² per row of g
                wg = wg if gn.shape[1] == 1 else wg.repeat_interleave(gn.shape[1])
                sums.append((b.inputs_gram(layer.a, wa), _gram(g * wg.sqrt()[:, None])))
                continue
            if layer.a.ndim == 2:
                sums.append((b.inputs_gram(layer.a), _gram(gn.flatten(0, 1))))
                continue
            a = b.inputs(layer.a)
            if weighted:
                G = torch.einsum("brto,btc->broc", gn, a)
                sums.append((torch.einsum("broc,brod->cd", G, G), torch.einsum("broc,brpc->op", G, G)))
            else:
                sums.append((_gram(a.flatten(0, 1)), _gram(gn.flatten(0, 2)) / a.shape[1]))
        return sums

    def _chunk_correction(self, x: torch.Tensor, y: torch.Tensor, which: list[int]):
        """Additive sums of one chunk, for the blocks ``which``: ``Σ_ic (Q_Sᵀ G_ic Q_A)²`` (``(Q_Sᵀ g_ic)²
        (Q_Aᵀ ã_i)²ᵀ`` when the gradient is rank-1)."""
        captured = self._capture(x, y, "gn")
        return [self._projected(self.blocks_[i], self.factors_[i], captured[self.blocks_[i].module_name])[2].double()
                for i in which]

    def _projected(self, block, factors, layer, *, correct: bool = True
                   ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """A layer's gradients in the block's eigenbasis: ``(v², u², correction)`` with ``v² = (Q_Aᵀ ã)²``
        (b, cols) and ``u² = (Q_Sᵀ g)²`` (b, out) of the true-label gradient when it is rank-1, else
        ``((Q_Sᵀ G Q_A)², None, ·)`` (b, out, cols); and (EK-FAC) the chunk's correction sum. The K
        back-propagated cotangents are projected once; g and every root row g_c are combinations of them.
        ``correct=False`` leaves the correction out (None)."""
        QS, QA = factors[0].to(layer.a.dtype), factors[1].to(layer.a.dtype)
        correct = correct and self.correct_eigenvalues
        J, R, D = layer.J, layer.R, layer.D
        if layer.a.ndim == 2:
            v = block.inputs_times(layer.a, QA)
            v2 = v.mul_(v)
            uJ = _times(J, QS)                                                # (b, K, out)
            if J.shape[1] == 1:         # g = D e, g_c = R_c e with e = J's one row: u² = D² (Q_Sᵀe)², Σ_c ρ_c ...
                w = uJ[:, 0]
                w = w * w
                u2 = w * _squared(D)
                correction = (w * _squared(R).sum(1)).T @ v2 if correct else None
                return v2, u2, correction
            u2 = _squared(_combine(D[:, None, :], uJ)[:, 0])
            correction = _squared(_combine(R, uJ)).sum(1).T @ v2 if correct else None
            return v2, u2, correction
        PJ = QS.T @ torch.einsum("bkto,btc->bkoc", J, block.inputs(layer.a)) @ QA                # (b, K, out, cols)
        P = torch.einsum("bk,bkoc->boc", D, PJ)
        correction = None
        if correct:
            correction = _squared(torch.einsum("brk,bkoc->broc", R, PJ)).sum((0, 1))
        return P * P, None, correction

    @staticmethod
    def _quad_form(projected, D: torch.Tensor) -> torch.Tensor:
        """``Σ_oi P_oi² / D_oi`` per record from ``_projected`` (``Σ_oi u_o² v_i² / D_oi`` when rank-1)."""
        v2, u2, _ = projected
        D = D.to(v2.dtype)
        if u2 is None:
            return (v2 / D).sum((1, 2))
        return ((u2 @ (1.0 / D))[:, None, :] @ v2[:, :, None])[:, 0, 0]      # row-wise dots, no (b, cols) temporary

    def _block_quad_form(self, i: int, layer: _Layer, projected=None) -> torch.Tensor:
        """Block i's ``g_iᵀ H⁻¹ g_i`` per record of a captured layer: ``D_i² ‖ã_iᵀ L‖²`` for a block with a
        fixed output direction (``lowers_``: ``lower_parts`` of its L), else from ``projected`` (computed here
        when None)."""
        lower = self.lowers_[i]
        if lower is not None and layer.fixed:
            d = layer.D[:, 0]
            return self.blocks_[i].inputs_quad_form(layer.a, lower).mul_(d * d)
        if projected is None:
            projected = self._projected(self.blocks_[i], self.factors_[i], layer, correct=False)
        return self._quad_form(projected, self.factors_[i][2])

    def _quad_forms_of(self, captured) -> torch.Tensor:
        """``g_iᵀ H⁻¹ g_i`` per record (true-label gradients), summed over the blocks, from captured factors."""
        return sum(self._block_quad_form(i, captured[b.module_name]) for i, b in enumerate(self.blocks_))

    def _fixed_lower(self, i: int, e: torch.Tensor) -> torch.Tensor:
        """For block i with a fixed output direction e: lower-triangular L with ``L Lᵀ = Q_A diag(m) Q_Aᵀ``,
        ``m_c = Σ_o (Q_Sᵀe)_o² / (Λ_oc + λ)``, so that ``g_iᵀ H⁻¹ g_i = D_i² ã_iᵀ L Lᵀ ã_i`` for ``g_i = D_i e ã_iᵀ``.
        From the QR factorisation of ``diag(√m) Q_Aᵀ = Q R`` (L = Rᵀ): no product that squares the condition
        number is formed."""
        QS, QA, D = self.factors_[i]
        m = ((QS.T @ e) ** 2) @ (1.0 / D)
        R = torch.linalg.qr(m.sqrt()[:, None] * QA.T, mode="r")[1]
        return R.T.contiguous()

    # ------------------------------------------------------------------------------------------ fit
    def fit(self, hessian: HessianOperator) -> EKFACSolver:
        with blas_threads() if hessian.device.type == "cpu" else contextlib.nullcontext():
            return self._fit(hessian)

    def _fit(self, hessian: HessianOperator) -> EKFACSolver:
        if 0 < self.curvature_records < hessian.n:
            return self._fit_on_subset(hessian)
        self.curvature_index_ = None
        return self._fit_curvature(hessian)

    def _fit_on_subset(self, hessian: HessianOperator) -> EKFACSolver:
        """``curvature_records`` = k < n: the curvature from k records drawn without replacement (seeded by
        ``seed``), ``(1/k) Σ_{i ∈ subset}`` in place of ``(1/n) Σ_i`` in every factor and in the eigenvalue
        correction (each an average over records, so the subset's is unbiased). No pass over all n records here:
        every training record's own quadratic form ``g_iᵀ H⁻¹ g_i`` (``quad_forms_of_records``: one forward and
        one backward pass each, no curvature statistics) is left to the engine's pass over the training records,
        which computes it together with whatever else that pass is asked (e.g. the influence on measurements)."""
        from ..records import Records

        generator = torch.Generator().manual_seed(self.seed)
        index = torch.randperm(hessian.n, generator=generator)[:self.curvature_records].sort().values
        x, y = hessian.records.subset(index, dtype=hessian.dtype, device=hessian.device)
        subset = HessianOperator(hessian.fn, Records(x, y, name="curvature subset"), l2=hessian.l2,
                                 damping=hessian.damping, chunk_size=hessian.chunk_size)
        self._fit_curvature(subset, own_quad_forms=False)
        self.curvature_index_ = index
        return self

    def _fit_curvature(self, hessian: HessianOperator, *, own_quad_forms: bool = True) -> EKFACSolver:
        """The factors, eigenbases and re-fitted diagonals from ``hessian``'s records; with ``own_quad_forms`` and
        the records' factors kept, also those records' quadratic forms (``train_quad_forms_``)."""
        fn = self.fn_ = hessian.fn
        self.blocks_, self.modules_ = _blocks(fn, hessian.shift.double().cpu(), self.name)
        tensors = [*fn.model.parameters(), *(b for b in fn.model.buffers() if b.is_floating_point())]
        self.direct_ = all(t.dtype == fn.dtype and t.device == fn.device for t in tensors)
        n = hessian.n
        probe = self._capture(*hessian.records.head(2, dtype=hessian.dtype, device=hessian.device))
        # a record's kept a and J, and its projections (v², u²) made from them
        per_record = torch.finfo(self._work_dtype()).bits // 8 * (
            sum(t[:1].numel() for layer in probe.values() for t in layer[:2])
            + sum(sum(b.index.shape) if probe[b.module_name].a.ndim == 2 else b.index.numel() for b in self.blocks_))
        # keep the training records' factors when they fit the cache and the chunks are computed here
        # (on a cluster the factors stay on the workers: sums travel back, not per-record tensors)
        keep = hessian.in_process and self.cache_mb * 2 ** 20 >= n * per_record
        kept = []
        if keep:
            # the chunks' factors are merged into groups of about GROUP records before the statistics and, later,
            # the projections are computed: fewer, larger products (the chunks are what one pass computes)
            sums, pending, done = None, [], 0

            def flush():
                nonlocal sums
                merged = _merge(pending)
                pending.clear()
                kept.append(merged)
                part = self._statistics(merged)
                if sums is None:                                           # summed over groups in float64
                    sums = [(A.double(), S.double()) for A, S in part]
                else:
                    for (A, S), (a, s) in zip(sums, part, strict=True):
                        A += a.double()
                        S += s.double()

            for captured in hessian.map_chunks(lambda x, y: self._capture(x, y, "all")):
                pending.append(captured)
                b = next(iter(captured.values())).a.shape[0]
                done += b
                if sum(next(iter(c.values())).a.shape[0] for c in pending) >= GROUP:
                    flush()
                hessian.report(done)
            if pending:
                flush()
        else:
            sums = hessian.sum_chunks(lambda x, y: [(A.double(), S.double())
                                                    for A, S in self._chunk_statistics(x, y, keep=False)[0]])
        # a block whose layer has a fixed output direction e (the model's output layer, K = 1: a logistic
        # regression) needs no projection of its records: for the weighted basis its corrected diagonal is
        # (Q_Sᵀe)² eaᵀ / ‖e‖² (A_w = ‖e‖² Σ_i ρ_i ã_iã_iᵀ, ρ_i = Σ_c R_ic², is diagonal in Q_A), K-FAC has none,
        # and its quadratic forms are D_i² ‖ã_iᵀL‖² (``_fixed_lower``)
        fixed = [probe[b.module_name].fixed and (not self.correct_eigenvalues or self.basis == "weighted")
                 for b in self.blocks_]
        directions = [probe[b.module_name].J[0, 0].to(hessian.device, torch.float64) if f else None
                      for b, f in zip(self.blocks_, fixed, strict=True)]
        self.factors_, eigenvalues = [], []
        for A, S in sums:
            ea, QA = torch.linalg.eigh(A / n, UPLO="U")          # the sums hold their upper triangles
            es, QS = torch.linalg.eigh(S / n, UPLO="U")
            eigenvalues.append(ea.clamp_min(0))
            self.factors_.append([QS, QA, torch.outer(es.clamp_min(0), eigenvalues[-1])])
        projected = None
        if keep:                            # project the kept factors once: (v², u_true², correction) per chunk
            projected = [[None if f else self._projected(b, fa, c[b.module_name])
                          for b, fa, f in zip(self.blocks_, self.factors_, fixed, strict=True)] for c in kept]
        if self.correct_eigenvalues:
            general = [i for i, f in enumerate(fixed) if not f]
            diag = [None] * len(self.blocks_)
            if general and keep:
                for i in general:
                    diag[i] = torch.zeros_like(projected[0][i][2], dtype=torch.float64)
                    for chunk in projected:
                        diag[i] += chunk[i][2]
            elif general:
                parts = hessian.sum_chunks(functools.partial(self._chunk_correction, which=general))
                for i, d in zip(general, parts, strict=True):
                    diag[i] = d
            for i, f in enumerate(self.factors_):
                e = directions[i]
                f[2] = diag[i] / n if e is None else torch.outer((f[0].T @ e) ** 2, eigenvalues[i]) / (e @ e)
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
        self.lowers_ = [None if e is None else self.blocks_[i].lower_parts(self._fixed_lower(i, e))
                        for i, e in enumerate(directions)]
        self.train_quad_forms_ = None
        if keep and own_quad_forms:
            self.train_quad_forms_ = torch.cat([
                sum(self._block_quad_form(i, c[b.module_name], p[i]) for i, b in enumerate(self.blocks_))
                for c, p in zip(kept, projected, strict=True)])
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
        return self.cross_and_quad_forms_of_records(x, y, None, True)[1]

    def cross_and_quad_forms_of_records(self, x: torch.Tensor, y: torch.Tensor, V: torch.Tensor | None,
                                        quad: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """For the true-label gradients g_i of a batch, from one capture of the layer factors (no per-record
        gradient is formed): ``V g_i`` (k, b) for rows V (k, p) (None when V is None), and ``g_iᵀ H⁻¹ g_i``
        (b,) when ``quad`` (else None). Per block, ``vᵀ g_i = Σ_t g_itᵀ V_b ã_it`` with V_b the block of v as an
        out × cols matrix: one product ``ã V_bᵀ`` per chunk."""
        with blas_threads() if x.device.type == "cpu" else contextlib.nullcontext():
            captured = self._capture(x, y, "true")
            cross = None
            if V is not None:
                Vd = V.to(device=x.device, dtype=self._work_dtype())
                cross = Vd.new_zeros(V.shape[0], x.shape[0])
                for b in self.blocks_:
                    layer = captured[b.module_name]
                    Vb = Vd[:, b.index.to(x.device)]                                    # (k, out, cols)
                    k, out, cols = Vb.shape
                    g = _combine(layer.D[:, None, :], layer.J)[:, 0]                     # (b, out) or (b, T, out)
                    T = b.inputs_times(layer.a, Vb.reshape(k * out, cols).T)            # (b, [T,] k·out)
                    T = T.reshape(*T.shape[:-1], k, out)
                    cross += (T * g.unsqueeze(-2)).sum(-1).reshape(x.shape[0], -1, k).sum(1).T
            own = self._quad_forms_of(captured) if quad else None
        dtype = self.fn_.dtype
        return None if cross is None else cross.to(dtype), None if own is None else own.to(dtype)

    def train_quad_forms(self) -> torch.Tensor | None:
        """``g_jᵀ H⁻¹ g_j`` of every training record, in order, when ``fit`` kept their factors (else None)."""
        return self.train_quad_forms_

    def summary(self) -> dict:
        out = super().summary()
        if getattr(self, "curvature_index_", None) is not None:
            out["curvature_fitted_on"] = int(self.curvature_index_.numel())
        if hasattr(self, "factors_"):
            kind = {(True, True): "weight+bias", (True, False): "weight", (False, True): "bias"}
            out["blocks"] = [{"layer": b.module_name, "shape": list(f[2].shape), "parameters": kind[b.weight, b.bias],
                              "shift": b.shift, "largest_eigenvalue": float(f[2].max()),
                              "smallest_eigenvalue": float(f[2].min())}
                             for b, f in zip(self.blocks_, self.factors_, strict=True)]
        return out


@dataclass
class KFACSolver(EKFACSolver):
    """Kronecker-factored curvature of the Linear and Conv2d layers, eigenvalues ``s aᵀ`` of the factors (no
    re-fit)."""

    name = "kfac"
    correct_eigenvalues = False
