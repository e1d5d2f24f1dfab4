"""The Hessian of the regularised training objective, as an operator over streamed records.

Training objective (the influence contract): ``R(θ) = (1/n) Σ_i ℓ(z_i; θ) + ½ Σ_k λ_k ‖θ_k‖²`` (λ_k = l2 for
every parameter tensor θ_k when l2 is a number; see ``penalty``). The operator applies
``H = ∇²R(θ) + damping·I = (1/n) Σ_i ∇²ℓ(z_i; θ) + diag(λ + damping)`` to row vectors, over all
training records (``matvec``) or over a random minibatch (``sample_matvec``, for stochastic solvers),
and can form H densely (``dense``) for small models. Vectors are rows: ``V`` has shape (k, p).

Every pass over the training records goes through the operator's backend (``map_chunks``, ``sum_chunks``;
see ``auditkit.influence.records``): in this process by default, or on the workers of a cluster. ``matvec``
is such a sum, so the dense Hessian of the exact solver and the products of the iterative solvers are
computed where the records are.
"""

from __future__ import annotations

import torch

from .dense_hessian import first_linear_split, kron_chunk
from .gradients import ModelFunction
from .penalty import L2, check_l2, l2_vector
from .records import InProcess, Records


def _hvp_chunk(x: torch.Tensor, y: torch.Tensor, fn: ModelFunction, V: torch.Tensor, step: int) -> torch.Tensor:
    """``(Σ_i ∇²ℓ(z_i; θ)) v`` for each row v of V over one chunk, V taken ``step`` rows at a time; (k, p)."""
    out = torch.empty_like(V)
    for s in range(0, V.shape[0], step):
        out[s:s + step] = fn.hvp_sum(x, y, V[s:s + step])
    return out


class HessianOperator:
    """``V ↦ V·H`` for ``H = (1/n) Σ_i ∇²ℓ(z_i; θ) + diag(λ + damping)`` (H is symmetric).

    ``l2`` is a number or a mapping {parameter name or prefix: λ_k} (``auditkit.influence.penalty``); it is kept
    as given in ``l2``, and as the per-coordinate vector λ (p,) in ``l2_vector``.
    """

    def __init__(self, fn: ModelFunction, records: Records, *, l2: L2, damping: float, chunk_size: int,
                 backend=None, progress=None):
        self.fn = fn
        self.progress = progress
        self.backend = backend if backend is not None else InProcess()
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

    def __getstate__(self) -> dict:
        # a copy sent to a worker (inside a solver that keeps its operator) computes where it is
        return {**self.__dict__, "backend": InProcess(), "progress": None}

    def report(self, done: int) -> None:
        """Tell the engine's ``progress(done, n)`` callback how many records a solver's fitting pass has done."""
        if self.progress is not None:
            self.progress(done, self.n)

    @property
    def in_process(self) -> bool:
        """Whether the chunk functions run in this process (False: on workers; results travel back)."""
        return bool(getattr(self.backend, "in_process", False))

    def map_chunks(self, func, *, size: int | None = None):
        """``func(x, y)`` for each chunk of the training records (``size`` records, default ``chunk_size``),
        yielded in record order. Solvers make every streamed pass over the training records through this
        one hook, so where the chunks are computed (in process, or on workers) is not their concern. On a
        distributed backend ``func`` is pickled (cloudpickle) and sent once per call."""
        yield from self.backend.map_chunks(func, self.records, size=size or self.chunk_size, dtype=self.dtype,
                                           device=self.device)

    def sum_chunks(self, func, *, size: int | None = None):
        """``Σ_chunks func(x, y)`` over the training records (tensors, or lists/tuples/dicts of tensors): the
        additive statistics of curvature fitting. A distributed backend sums each worker's shard there and
        the shards' sums here, in record order (round-off may differ from ``map_chunks`` + a sum here)."""
        return self.backend.sum_chunks(func, self.records, size=size or self.chunk_size, dtype=self.dtype,
                                       device=self.device)

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
        out = self.backend.sum_chunks(_hvp_chunk, self.records, self.fn, V, step, size=records, dtype=self.dtype,
                                      device=self.device)
        return out / self.n + self.shift * V

    def sample_matvec(self, V: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """``V·H̃`` with the data term averaged over the records in ``index`` only (a minibatch)."""
        x, y = self.records.subset(index, dtype=self.dtype, device=self.device)
        return self.fn.hvp_sum(x, y, V) / len(index) + self.shift * V

    def dense(self) -> torch.Tensor:
        """H as a dense (p, p) matrix, in one pass over the records: from per-record Kronecker blocks when the first
        trained layer is an ``nn.Linear`` (``auditkit.influence.dense_hessian``; ``dense_method`` says which; the
        blocks' products and H in float64, whatever the model's dtype), else by p Hessian-vector products per
        chunk (in the model's dtype)."""
        split = self.kron_split()
        self.dense_method = "kronecker" if split is not None else "hvp"
        if split is None:
            return self.matvec(torch.eye(self.p, dtype=self.dtype, device=self.device))
        sums = self.backend.sum_chunks(kron_chunk, self.records, split, size=split.chunk_size, dtype=self.dtype,
                                       device=self.device)
        dense = split.assemble(sums).div_(self.n)
        dense.diagonal().add_(self.shift)
        return dense

    def kron_split(self):
        """The model split at its first trained ``nn.Linear`` (``dense_hessian.first_linear_split``), or None."""
        x, _ = self.records.head(2, dtype=self.dtype, device=self.device)
        return first_linear_split(self.fn, x)

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
