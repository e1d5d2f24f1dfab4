"""The Hessian of the regularised training objective, as an operator over streamed records.

Training objective (the influence contract): ``R(θ) = (1/n) Σ_i ℓ(z_i; θ) + ½ Σ_k λ_k ‖θ_k‖²`` (λ_k = l2 for
every parameter tensor θ_k when l2 is a number; see ``penalty``). The operator applies
``H = ∇²R(θ) + damping·I = (1/n) Σ_i ∇²ℓ(z_i; θ) + diag(λ + damping)`` to row vectors, over all
training records (``matvec``) or over a random minibatch (``sample_matvec``, for stochastic solvers),
and can form H densely (``dense``) for small models. Vectors are rows: ``V`` has shape (k, p).
"""

from __future__ import annotations

import torch

from .gradients import ModelFunction
from .penalty import L2, check_l2, l2_vector
from .records import Records


class HessianOperator:
    """``V ↦ V·H`` for ``H = (1/n) Σ_i ∇²ℓ(z_i; θ) + diag(λ + damping)`` (H is symmetric).

    ``l2`` is a number or a mapping {parameter name or prefix: λ_k} (``auditkit.influence.penalty``); it is kept
    as given in ``l2``, and as the per-coordinate vector λ (p,) in ``l2_vector``.
    """

    def __init__(self, fn: ModelFunction, records: Records, *, l2: L2, damping: float, chunk_size: int):
        self.fn = fn
        self.records = records
        self.l2 = check_l2(l2)
        known = [n for n, p in fn.model.named_parameters() if p.requires_grad]
        self.l2_vector = l2_vector(self.l2, fn.names, fn.sizes, known=known, dtype=fn.dtype, device=fn.device)
        self.damping = float(damping)
        self.chunk_size = int(chunk_size)
        self.n = records.n
        self.p = fn.n_params
        self.dtype = fn.dtype
        self.device = fn.device

    @property
    def shift(self) -> torch.Tensor:
        """``λ + damping`` (p,), the diagonal added to the data term (used as ``shift * V``)."""
        return self.l2_vector + self.damping

    def map_chunks(self, func, *, size: int | None = None):
        """``func(x, y)`` for each chunk of the training records (``size`` records, default ``chunk_size``),
        yielded in record order. Solvers make every streamed pass over the training records through this
        one hook, so where the chunks are computed (in process, or on workers) is not their concern."""
        for x, y in self.records.chunks(size or self.chunk_size, dtype=self.dtype, device=self.device):
            yield func(x, y)

    #: records × vectors pushed through one Hessian-vector call; bounds its memory, amortises its overhead
    BUDGET = 1 << 18

    def matvec(self, V: torch.Tensor) -> torch.Tensor:
        """``V·H`` over all training records; V has shape (k, p).

        Each call takes as many records as ``BUDGET / k`` (at least ``chunk_size``), and vectors in blocks
        of at most ``BUDGET / chunk_size``, so memory stays bounded whatever n and k are.
        """
        k = V.shape[0]
        step = max(1, min(k, self.BUDGET // self.chunk_size))
        records = max(self.chunk_size, self.BUDGET // max(k, 1))
        out = torch.zeros_like(V)
        for x, y in self.records.chunks(records, dtype=self.dtype, device=self.device):
            for s in range(0, k, step):
                out[s:s + step] += self.fn.hvp_sum(x, y, V[s:s + step])
        return out / self.n + self.shift * V

    def sample_matvec(self, V: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """``V·H̃`` with the data term averaged over the records in ``index`` only (a minibatch)."""
        x, y = self.records.subset(index, dtype=self.dtype, device=self.device)
        return self.fn.hvp_sum(x, y, V) / len(index) + self.shift * V

    def dense(self) -> torch.Tensor:
        """H as a dense (p, p) matrix, one pass over the records (p Hessian-vector products per chunk)."""
        eye = torch.eye(self.p, dtype=self.dtype, device=self.device)
        return self.matvec(eye)

    def top_eigenvalue(self, *, iters: int = 30, seed: int = 0) -> float:
        """Largest eigenvalue of H by power iteration (an underestimate that tightens with ``iters``)."""
        gen = torch.Generator(device="cpu").manual_seed(seed)
        v = torch.randn(1, self.p, generator=gen, dtype=self.dtype).to(self.device)
        v = v / v.norm()
        value = 0.0
        for _ in range(iters):
            w = self.matvec(v)
            value = float((w * v).sum())
            v = w / w.norm().clamp_min(torch.finfo(self.dtype).tiny)
        return value
