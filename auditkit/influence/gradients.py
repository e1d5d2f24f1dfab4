"""A model seen as a function of a flat parameter vector θ, and its per-record derivatives.

``ModelFunction`` selects the parameters that influence is computed for (all trainable ones, or a
subset such as the last layer), flattens them into one vector θ of length p, and gives, with
``torch.func``:

- ``per_record_grads(x, y)``: the matrix ``G`` with rows ``g_i = ∇_θ ℓ(z_i; θ)`` (vmap over grad);
- ``hvp_sum(x, y, V)``: ``Σ_i ∇²_θ ℓ(z_i; θ) v`` for each row v of V (forward-over-reverse, vmapped);
- ``vjp_outputs(x, c)``: ``Σ_i (∂f(x_i; θ)/∂θ)ᵀ c_i``, the chain rule step of a measurement's gradient.

Everything works on one chunk of records at a time; callers stream chunks so memory is bounded in n.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.func import functional_call, grad, hessian, jacrev, jvp, vjp, vmap

from ..errors import InputError
from .losses import LossFn


def _select(model: nn.Module, params: Iterable[str] | str | None) -> list[str]:
    """Names of the trainable parameters selected by ``params`` (names or name prefixes)."""
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    if not trainable:
        raise InputError("the model has no trainable parameters (all have requires_grad=False): "
                         "influence needs at least one parameter to differentiate")
    if params is None:
        return trainable
    wanted = [params] if isinstance(params, str) else list(params)
    chosen = [n for n in trainable if any(n == w or n.startswith(w.rstrip(".") + ".") for w in wanted)]
    unknown = [w for w in wanted if not any(n == w or n.startswith(w.rstrip(".") + ".") for n in trainable)]
    if unknown or not chosen:
        raise InputError(f"params={wanted!r} names no trainable parameter ({unknown!r} not found): "
                         f"choose names or prefixes among {trainable!r}")
    return chosen


class ModelFunction:
    """``f(x; θ)`` and ``ℓ(z; θ)`` for a model whose selected parameters are flattened into θ."""

    def __init__(self, model: nn.Module, loss_fn: LossFn, *, params=None,
                 dtype: torch.dtype, device: torch.device):
        self.model = model
        self.loss_fn = loss_fn
        self.dtype = dtype
        self.device = device
        self.names = _select(model, params)
        named = dict(model.named_parameters())
        selected = [named[n].detach().to(device=device, dtype=dtype) for n in self.names]
        self.shapes = [t.shape for t in selected]
        self.sizes = [t.numel() for t in selected]
        self.theta = torch.cat([t.reshape(-1) for t in selected]) if selected else torch.zeros(0)
        self.fixed = {n: p.detach().to(device=device, dtype=dtype if p.is_floating_point() else p.dtype)
                      for n, p in model.named_parameters() if n not in self.names}
        self.fixed.update({n: b.detach().to(device=device, dtype=dtype if b.is_floating_point() else b.dtype)
                           for n, b in model.named_buffers()})

    @property
    def n_params(self) -> int:
        """p, the length of θ."""
        return self.theta.numel()

    def unflatten(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split the flat vector θ back into the model's named parameter tensors."""
        parts = torch.split(theta, self.sizes)
        return {n: t.view(s) for n, t, s in zip(self.names, parts, self.shapes, strict=True)}

    def outputs(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The model's outputs ``f(x; θ)`` for a batch ``x``."""
        return functional_call(self.model, {**self.fixed, **self.unflatten(theta)}, (x,))

    def losses(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-record losses ``ℓ(z_i; θ)`` for a batch, shape (b,)."""
        return self.loss_fn(self.outputs(theta, x), y)

    def loss_sum(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``Σ_i ℓ(z_i; θ)`` over a batch."""
        return self.losses(theta, x, y).sum()

    def per_record_grads(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Rows ``g_i = ∇_θ ℓ(z_i; θ)`` for a batch, shape (b, p)."""
        def one(theta, xi, yi):
            return self.loss_sum(theta, xi.unsqueeze(0), yi.unsqueeze(0))
        return vmap(grad(one), in_dims=(None, 0, 0))(self.theta, x, y)

    def hvp_sum(self, x: torch.Tensor, y: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        """Rows ``(Σ_i ∇²ℓ(z_i; θ)) v`` for each row v of V (k, p), over a batch; shape (k, p)."""
        g = grad(lambda t: self.loss_sum(t, x, y))
        return vmap(lambda v: jvp(g, (self.theta,), (v,))[1])(V)

    def vjp_outputs(self, x: torch.Tensor, cotangent: torch.Tensor) -> torch.Tensor:
        """``Σ_i (∂f(x_i; θ)/∂θ)ᵀ c_i`` for a batch and cotangents ``c`` shaped like the outputs; (p,)."""
        _, pullback = vjp(lambda t: self.outputs(t, x), self.theta)
        return pullback(cotangent)[0]

    def curvature_factors(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Rows ``A_i`` (b, C, p) with ``A_iᵀ A_i = J_iᵀ Λ_i J_i``, the Gauss–Newton part of ∇²ℓ(z_i; θ).

        ``J_i = ∂f(x_i; θ)/∂θ`` (C × p, C = outputs per record) and ``Λ_i = ∂²ℓ/∂f²`` (C × C, PSD for the
        built-in losses; negative eigenvalues are clipped). For a linear model this is ∇²ℓ exactly.
        """
        def out(theta, xi):
            return self.outputs(theta, xi.unsqueeze(0)).reshape(-1)

        J = vmap(jacrev(out), in_dims=(None, 0))(self.theta, x)                      # (b, C, p)
        o = vmap(out, in_dims=(None, 0))(self.theta, x)                              # (b, C)
        shape = self.outputs(self.theta, x[:1]).shape[1:]

        def loss_of_output(oi, yi):
            return self.loss_fn(oi.reshape(1, *shape), yi.unsqueeze(0)).sum()

        Lam = vmap(hessian(loss_of_output))(o.detach(), y)                           # (b, C, C)
        values, vectors = torch.linalg.eigh((Lam + Lam.transpose(1, 2)) / 2)
        # eigenvalues at round-off level are zeros (e.g. softmax's along (1, …, 1), computed from probabilities up to
        # 1 with an absolute error of about eps): exactly 0, not √(round-off)
        floor = torch.finfo(values.dtype).eps * values.shape[-1] * values.abs().amax(-1, keepdim=True).clamp_min(1)
        values = torch.where(values > floor, values, torch.zeros_like(values))
        root = vectors * values.sqrt().unsqueeze(1)                                  # Λ^{1/2} = V diag(√λ)
        return root.transpose(1, 2) @ J

