"""The floating-point types the influence engine computes in, by name or as torch dtypes (the one table)."""

from __future__ import annotations

import torch

#: name or torch dtype → torch dtype: every floating-point type the engine, TracIn and the audit accept
DTYPES = {"float32": torch.float32, "float64": torch.float64, torch.float32: torch.float32,
          torch.float64: torch.float64}
