"""Settings and model builders shared by auditkit's and the peers' processes (torch and numpy only)."""

from __future__ import annotations

import torch
from torch import nn

L2 = 1e-3        # objective: mean cross-entropy + (L2/2)·‖θ‖², every parameter (weights and biases)
SEED = 0
N_TEST = 200     # test records for the test × train task
N_SUB = 2000     # training subsample for leave-one-out retraining
N_LOO = 24       # records removed one at a time (12 highest-loss + 12 random of the subsample)
BATCH = 512      # batch / chunk size for every library and for the training epoch
HIDDEN = 64


def build_model(kind: str, d: int) -> nn.Module:
    """``logreg``: Linear(d, 2); ``mlp``: Linear(d, 64) → tanh → Linear(64, 2); float64."""
    if kind == "logreg":
        return nn.Sequential(nn.Linear(d, 2)).double()
    return nn.Sequential(nn.Linear(d, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, 2)).double()


def ce_per_record(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(out, y, reduction="none")
