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
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch


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
