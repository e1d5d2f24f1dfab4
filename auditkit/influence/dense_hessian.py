"""The exact dense Hessian of a model whose first trained layer is an ``nn.Linear``, from per-record Kronecker blocks.

Write the model (an ``nn.Sequential``) as ``f(x) = rest(a; θ_rest)`` with ``a = W x̄ + b`` (h units), where ``W``, ``b``
belong to the first module holding a selected parameter (an ``nn.Linear``), ``x̄`` is the record after the modules
before it (their parameters, if any, are not selected: e.g. ``nn.Flatten``; usually ``x̄ = x``) and ``θ_rest`` are
the selected parameters of the modules after it. With ``x̃ = [x̄, 1]`` (only the parts whose parameter is selected:
``x̄`` for W, 1 for b; e entries) and the per-record Hessian
``K_i = ∇²_{(a, θ_rest)} ℓ(rest(a_i; θ_rest), y_i)`` (q = h + p_rest), the data term of H is, exactly::

    Σ_i ∇²_θ ℓ_i = [ Σ_i K_i[a, a] ⊗ x̃_i x̃_iᵀ          Σ_i K_i[a, rest] ⊗ x̃_i ]
                   [ (transpose)                         Σ_i K_i[rest, rest]   ]

because ``∂a/∂W[j, k] = x̄_k e_j`` is linear in the parameters (no second derivative of a). Per chunk of b records:
``K[a, a]`` by ``vmap(hessian)`` over records (h forward directions each), the first block as ONE matrix product
``K_triu(b, h(h+1)/2)ᵀ · (x̃⊗x̃)_triu(b, e(e+1)/2)`` (both factors symmetric: their upper triangles carry
everything, a quarter of the flops of the full ``h² × e²`` product), ``K[a, rest]`` by h forward directions of the
gradient in θ_rest, and ``Σ_i K_i[rest, rest]`` by p_rest Hessian-vector products of the loss as a function of
θ_rest alone (``a`` fixed: cheap). Cost ``≈ n·h²·e²/2`` flops for the first block instead of p Hessian-vector
products over all records. The per-chunk part is :func:`kron_chunk`, summed over records by the backend
(``sum_chunks``); :meth:`FirstLinearSplit.assemble` puts the sums in θ's order (W row-major (h, d), then b).

:func:`first_linear_split` says whether a model has this shape (else None: the caller forms H by Hessian-vector
products); it also refuses when one record's blocks would exceed the memory budget.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, grad, jvp, vmap

from .gradients import ModelFunction

#: values held per chunk in one block (records × values per record); bounds memory whatever n is
BUDGET = 1 << 22
#: fewest records per chunk worth the matrix products (else the Hessian-vector products are used)
MIN_CHUNK = 16


class FirstLinearSplit:
    """Where ``θ`` splits into the first selected ``nn.Linear`` (W, b) and the rest, for :func:`kron_chunk`."""

    def __init__(self, fn: ModelFunction, lead: list[str], first: str, tail: list[str], d: int):
        self.fn, self.lead, self.first, self.tail, self.d = fn, lead, first, tail, d
        layer = fn.model.get_submodule(first)
        self.h = layer.out_features
        offsets = dict(zip(fn.names, torch.tensor([0, *fn.sizes[:-1]]).cumsum(0).tolist(), strict=True))
        self.prefix = f"{first}." if first else ""                  # "" when the model is the nn.Linear itself
        self.weight = self.prefix + "weight" in offsets
        self.bias = self.prefix + "bias" in offsets
        self.e = d * self.weight + self.bias
        h = self.h
        units = torch.arange(h)[:, None]
        cols = []                                                    # θ position of (unit j, feature k)
        if self.weight:
            cols.append(offsets[self.prefix + "weight"] + units * d + torch.arange(d)[None, :])
        if self.bias:
            cols.append(offsets[self.prefix + "bias"] + units)
        self.first_index = torch.cat(cols, dim=1).reshape(-1)        # (h·e,), (unit, feature) order
        self.rest_names = [n for n in fn.names if not n.startswith(self.prefix)]
        self.rest_index = torch.cat([torch.arange(offsets[n], offsets[n] + s) for n, s in
                                     zip(fn.names, fn.sizes, strict=True) if n in self.rest_names]
                                    or [torch.zeros(0, dtype=torch.long)])
        self.p_rest = int(self.rest_index.numel())
        self.chunk_size = BUDGET // max(h * h, self.e * (self.e + 1) // 2)   # values held per record

    def __repr__(self) -> str:
        return (f"FirstLinearSplit(first={self.first!r}, h={self.h}, e={self.e}, p_rest={self.p_rest}, "
                f"chunk_size={self.chunk_size})")

    # ------------------------------------------------------------------ the model, split
    def _params(self) -> dict[str, torch.Tensor]:
        return {**self.fn.fixed, **self.fn.unflatten(self.fn.theta)}

    def _apply(self, names: list[str], z: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        for name in names:
            own = {k[len(name) + 1:]: v for k, v in params.items() if k.startswith(name + ".")}
            z = functional_call(self.fn.model.get_submodule(name), own, (z,))
        return z

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """``x̄``: the records after the modules before the first trained layer, (b, d)."""
        return self._apply(self.lead, x, self._params())

    def _rest_params(self, theta_rest: torch.Tensor) -> dict[str, torch.Tensor]:
        sizes = [s for n, s in zip(self.fn.names, self.fn.sizes, strict=True) if n in self.rest_names]
        shapes = [s for n, s in zip(self.fn.names, self.fn.shapes, strict=True) if n in self.rest_names]
        parts = torch.split(theta_rest, sizes)
        return {n: t.view(s) for n, t, s in zip(self.rest_names, parts, shapes, strict=True)}

    # ------------------------------------------------------------------ one chunk
    def chunk(self, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        """``[Σ K[a,a]_triu ⊗ (x̃x̃ᵀ)_triu, Σ K[rest,a] ⊗ x̃, Σ K[rest,rest]]`` over the chunk's records."""
        fn, h, e = self.fn, self.h, self.e
        params = self._params()
        xbar = self._apply(self.lead, x, params)
        a = xbar @ params[self.prefix + "weight"].T
        if params.get(self.prefix + "bias") is not None:
            a = a + params[self.prefix + "bias"]
        a = a.detach()
        parts = ([xbar] if self.weight else []) + ([torch.ones_like(xbar[:, :1])] if self.bias else [])
        xt = torch.cat(parts, dim=1)                                              # (b, e)
        theta_rest = fn.theta[self.rest_index.to(fn.theta.device)]
        b = a.shape[0]

        def total(a_, tr):                         # Σ_i ℓ_i; a_i reaches ℓ_i only, so ∇_a is per record
            out = self._apply(self.tail, a_, {**params, **self._rest_params(tr)})
            return fn.loss_fn(out, y).sum()

        g = grad(total, argnums=(0, 1))
        step = max(1, BUDGET // max(b * h, 1))     # tangent directions per vmap call (memory ~ step·b·h)
        eye_h = torch.eye(h, dtype=a.dtype, device=a.device)
        Kaa = torch.cat([vmap(lambda v: jvp(lambda a_: g(a_, theta_rest)[0], (a,), (v.expand(b, h),))[1])(
            eye_h[s:s + step]) for s in range(0, h, step)]).permute(1, 2, 0)                   # (b, h, h)
        ih = torch.triu_indices(h, h, device=a.device)
        ie = torch.triu_indices(e, e, device=a.device)
        xt = xt.double()                           # products in float64: x̃x̃ᵀ of large features overflows float32
        first = Kaa[:, ih[0], ih[1]].T.double() @ (xt[:, ie[0]] * xt[:, ie[1]])              # (h(h+1)/2, e(e+1)/2)
        if self.p_rest == 0:
            return [first, first.new_zeros(0, e), first.new_zeros(0, 0)]
        eye_r = torch.eye(self.p_rest, dtype=a.dtype, device=a.device)
        cross, rest = [], []
        for s in range(0, self.p_rest, step):      # direction r of θ_rest: (K_i[a, r])_i (b, h) and Σ_i K_i[:, r]
            ka, kr = vmap(lambda v: jvp(lambda t: g(a, t), (theta_rest,), (v,))[1])(eye_r[s:s + step])
            cross.append(ka.reshape(-1, b, h).permute(0, 2, 1).reshape(-1, b).double() @ xt)  # (step·h, e)
            rest.append(kr.double())
        return [first, torch.cat(cross), torch.cat(rest)]

    # ------------------------------------------------------------------ the sums, in θ's order
    def assemble(self, sums: list[torch.Tensor]) -> torch.Tensor:
        """The data term ``Σ_i ∇²_θ ℓ_i`` (p, p) from the chunks' sums, in θ's order."""
        first, cross, rest = sums
        h, e, p = self.h, self.e, self.fn.n_params
        dev = first.device

        def sym_index(m: int) -> torch.Tensor:
            iu = torch.triu_indices(m, m, device=dev)
            idx = torch.zeros(m, m, dtype=torch.long, device=dev)
            idx[iu[0], iu[1]] = torch.arange(iu.shape[1], device=dev)
            upper = torch.ones(m, m, dtype=torch.bool, device=dev).triu()
            return torch.where(upper, idx, idx.T)

        ih, ie = sym_index(h).reshape(-1), sym_index(e).reshape(-1)
        block = first[ih][:, ie].reshape(h, h, e, e).permute(0, 2, 1, 3).reshape(h * e, h * e)
        H = torch.zeros(p, p, dtype=first.dtype, device=dev)
        fi, ri = self.first_index.to(dev), self.rest_index.to(dev)
        H[fi[:, None], fi[None, :]] = block
        if self.p_rest:
            c = cross.reshape(self.p_rest, h * e)
            H[ri[:, None], fi[None, :]] = c
            H[fi[:, None], ri[None, :]] = c.T
            H[ri[:, None], ri[None, :]] = rest
        return H


def kron_chunk(x: torch.Tensor, y: torch.Tensor, split: FirstLinearSplit) -> list[torch.Tensor]:
    """One chunk's sums of the Kronecker blocks (module-level, picklable: a backend may run it on workers)."""
    return split.chunk(x, y)


def first_linear_split(fn: ModelFunction, head: torch.Tensor) -> FirstLinearSplit | None:
    """The split of ``fn``'s model at its first trained ``nn.Linear``, or None when the model does not have that
    shape or the blocks would not fit the memory budget.

    The shape: an ``nn.Linear``; or an ``nn.Sequential`` (its own ``forward``) where the modules before the first
    one holding a selected parameter have no selected parameter, and that module is an ``nn.Linear`` (its own
    ``forward``) that receives records of shape (b, d) (checked on ``head``, a few records) and whose parameters no
    later module shares. Records must not interact inside the model (true of every module in eval mode).
    """
    model = fn.model
    if type(model).forward is nn.Linear.forward:                       # the model is one nn.Linear
        split = FirstLinearSplit(fn, [], "", [], model.in_features)
        return split if head.ndim == 2 and split.chunk_size >= MIN_CHUNK else None
    if not isinstance(model, nn.Sequential) or type(model).forward is not nn.Sequential.forward:
        return None
    selected = set(fn.names)
    children = list(model.named_children())
    lead = []
    for i, (name, module) in enumerate(children):
        owns = {f"{name}.{k}" for k, _ in module.named_parameters()}
        if not owns & selected:
            lead.append(name)
            continue
        if type(module).forward is not nn.Linear.forward:
            return None
        later = {id(p) for _, m in children[i + 1:] for p in m.parameters()}
        if any(id(p) in later for p in module.parameters()):
            return None
        split = FirstLinearSplit(fn, lead, name, [n for n, _ in children[i + 1:]], module.in_features)
        with torch.no_grad():
            xbar = split.inputs(head)
        if xbar.ndim != 2 or xbar.shape[1] != module.in_features or split.chunk_size < MIN_CHUNK:
            return None
        return split
    return None
