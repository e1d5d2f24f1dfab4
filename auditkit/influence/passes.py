"""Streamed passes over the training gradients: where they come from, and what one pass returns.

A **gradient source** yields the per-record training gradients ``g_j = ∇ℓ(z_j; θ̂)`` chunk by chunk, in
record order, to :meth:`InfluenceEngine.batch`. The default, :class:`RecomputedGradients`, computes them
from the model (``torch.func``, one chunk at a time). Another source may read them from somewhere (an
on-disk cache lives outside this pure-math package, in ``auditkit.gradcache``) or hand over randomly
projected gradients ``P g_j`` (d ≪ p) with ``project(V) = V Pᵀ``: the cross terms are then
``(1/n) (V Pᵀ)(P g_j)`` ≈ ``(1/n) V g_j`` (Johnson–Lindenstrauss; the bound is in ``auditkit.gradcache``).

A source implements ``stream(engine, chunks)``: for every ``(x, y)`` chunk of the training records it yields
``(x, y, G_cross, G_full)`` where ``G_cross`` (b, p or d) multiplies the right-hand sides and ``G_full``
(b, p) is the unprojected gradient when the source has it at hand (else ``None``; the engine then computes
it only if self-influence needs it).

The per-chunk work of a pass is :func:`pass_chunk` on a :class:`ChunkKernel` (the fitted model function and
solver): module-level and picklable, so that a backend can run it on workers (the kernel sent once, the
right-hand sides once per pass) and reassemble the chunks' results by record position.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch


class ChunkKernel:
    """The fitted state a chunk of influence work needs: the model function, the fitted solver and n.

    ``quad_forms(x, y, c)`` is ``(1/n) gᵀ (H + c·AᵀA/n)⁻¹ g`` for each record of a chunk, with g its gradient
    and ``A`` the root of its Gauss–Newton curvature (c = 0: plain self-influence; −1: the record's own
    curvature removed, leave-one-out leverage; +1: added, a non-member as if it were one), by Woodbury:
    ``gᵀ(H + cAᵀA/n)⁻¹g = gᵀH⁻¹g − c·aᵀ(n + c·M)⁻¹a`` with ``a = A H⁻¹ g``, ``M = A H⁻¹ Aᵀ``.
    """

    def __init__(self, fn, solver, n: int):
        self.fn, self.solver, self.n = fn, solver, n

    @property
    def factors(self) -> bool:
        """Whether the solver forms plain quad forms from layer factors, without per-record gradients."""
        return hasattr(self.solver, "quad_forms_of_records")

    def quad_forms(self, x: torch.Tensor, y: torch.Tensor, curvature: int,
                   G: torch.Tensor | None = None) -> np.ndarray:
        """See the class docstring; G: the chunk's per-record gradients, if already at hand."""
        if curvature == 0 and self.factors:
            values = self.solver.quad_forms_of_records(x, y)  # from layer factors, no per-record grads
        elif curvature == 0:
            values = self.solver.quad_forms(G if G is not None else self.fn.per_record_grads(x, y))
        else:
            G = G if G is not None else self.fn.per_record_grads(x, y)
            A = self.fn.curvature_factors(x, y)                               # (b, C, p)
            C = A.shape[1]
            S = self.grams(torch.cat([G[:, None], A], dim=1))                 # [g; A] H⁻¹ [g; A]ᵀ
            plain, a, M = S[:, 0, 0], S[:, 1:, 0], S[:, 1:, 1:]               # gᵀH⁻¹g, A H⁻¹ g, A H⁻¹ Aᵀ
            eye = torch.eye(C, dtype=M.dtype, device=M.device)
            inner = self.n * eye + curvature * M
            if curvature < 0:                                  # keep H − AᵀA/n positive definite
                inner = inner + eye * (1e-6 * self.n - torch.linalg.eigvalsh(inner)[:, :1, None]).clamp_min(0)
            values = plain - curvature * (a[:, None, :] @ torch.linalg.solve(inner, a[..., None]))[:, 0, 0]
        return (values / self.n).double().cpu().numpy()

    def grams(self, R: torch.Tensor) -> torch.Tensor:
        """``R_i H⁻¹ R_iᵀ`` for each record's rows ``R_i`` (b, k, p), solving only for a basis of their span.

        With ``R_i R_iᵀ = U diag(w) Uᵀ`` and ``U_r`` its top r_i eigenvectors (w above its round-off),
        ``R_i = U_r B_i + E_i`` with ``B_i = U_rᵀ R_i``; where the residual ``E_i`` is at round-off level
        (``‖E_i‖ ≤ eps^(3/4)·‖R_i‖``, measured, for every record of the chunk), ``R_i H⁻¹ R_iᵀ =
        U_r (B_i H⁻¹ B_iᵀ) U_rᵀ`` (r_i solves), else all k rows of the chunk are solved. For cross-entropy g = Jᵀr
        lies in the span of A's rows and softmax has no curvature along (1, …, 1), so [g; A] has rank C − 1 (1 for a
        binary model; bce and mse: 1) up to round-off; the rows of all records are solved together
        (``solver.gram_factors``).
        """
        b, k, p = R.shape
        P = R @ R.transpose(1, 2)
        w, U = torch.linalg.eigh((P + P.transpose(1, 2)) / 2)                 # ascending
        eps = torch.finfo(R.dtype).eps
        rank = (w > 10 * k * eps * w[:, -1:]).sum(1).clamp_min(1)             # (b,)
        r = int(rank.max())
        if r < k:
            Ur = U[:, :, k - r:] * (torch.arange(r, device=R.device) >= r - rank[:, None])[:, None, :]
            B = Ur.transpose(1, 2) @ R                                        # (b, r, p); rows of 0 beyond r_i
            residual = (R - Ur @ B).flatten(1).norm(dim=1)
            if bool((residual > eps ** 0.75 * R.flatten(1).norm(dim=1)).any()):
                r = k                                                         # some record needs all its rows
        if r == k:
            Ur, B, rank = torch.eye(k, dtype=R.dtype, device=R.device).expand(b, k, k), R, torch.full_like(rank, k)
        used = torch.arange(r, device=R.device) >= r - rank[:, None]          # (b, r): rows to solve for
        if bool(used.all()):
            X, Y = self.solver.gram_factors(B.reshape(b * r, p))
            Xp, Yp = X.to(B.dtype).reshape(b, r, p), Y.to(B.dtype).reshape(b, r, p)
        else:
            X, Y = self.solver.gram_factors(B[used])                          # packed rows (m, p)
            Xp, Yp = B.new_zeros(b, r, p), B.new_zeros(b, r, p)
            Xp[used], Yp[used] = X.to(B.dtype), Y.to(B.dtype)
        return Ur @ (Xp @ Yp.transpose(1, 2)) @ Ur.transpose(1, 2)

def pass_chunk(x: torch.Tensor, y: torch.Tensor, kernel: ChunkKernel, V: torch.Tensor | None,
               curvature: int | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """One chunk of a streamed pass: ``(1/n) V Gᵀ`` (k, b) for the chunk's per-record gradients G (None when
    V is None) and its records' quad forms with ``curvature`` (None: not wanted; see ``ChunkKernel``). A solver
    with ``cross_and_quad_forms_of_records`` (EK-FAC, K-FAC) gives both from layer factors, without per-record
    gradients."""
    factored = getattr(kernel.solver, "cross_and_quad_forms_of_records", None)
    if factored is not None and curvature in (None, 0):
        cross, own = factored(x, y, V, curvature == 0)
        return tuple(None if t is None else (t / kernel.n).double().cpu().numpy() for t in (cross, own))
    need_grads = V is not None or (curvature is not None and not (curvature == 0 and kernel.factors))
    G = kernel.fn.per_record_grads(x, y) if need_grads else None
    cross = None if V is None else (V @ G.T / kernel.n).double().cpu().numpy()
    own = None if curvature is None else kernel.quad_forms(x, y, curvature, G)
    return cross, own


def quad_forms_chunk(x: torch.Tensor, y: torch.Tensor, kernel: ChunkKernel, curvature: int) -> np.ndarray:
    """``kernel.quad_forms`` of one chunk (for records that need not be the training records)."""
    return kernel.quad_forms(x, y, curvature)


class RecomputedGradients:
    """The default source: per-record gradients computed from the model, chunk by chunk."""

    projected = False

    def project(self, V: torch.Tensor) -> torch.Tensor:
        return V

    def stream(self, engine, chunks) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
        for x, y in chunks:
            G = engine.fn_.per_record_grads(x, y)
            yield x, y, G, G


@dataclass
class InfluenceBatch:
    """What one pass returns (see :meth:`InfluenceEngine.batch`), in the units of the contract.

    ``measures``: key → ``e`` (n,), ``e[j] = (1/n) ∇m(θ̂)ᵀ H⁻¹ g_j`` (the keys of the mapping given, or
    positions 0, 1, ... for a sequence); ``values``: key → the measurement ``m`` now; ``test``: (m, n),
    ``S[i, j] = (1/n) ∇ℓ(z_i)ᵀ H⁻¹ g_j``, or ``None``; ``self_influence``: (n,) or ``None``;
    ``passes``: how many streamed passes over the training records were made (0 or 1).
    """

    measures: dict = field(default_factory=dict)
    values: dict = field(default_factory=dict)
    test: np.ndarray | None = None
    self_influence: np.ndarray | None = None
    passes: int = 0
