"""One seed drives every random choice of a run.

Each random choice has a purpose (``split``, ``bootstrap``, ``privacy``, ...) with a fixed number; its seed is
derived from the run's ``seed`` with ``numpy.random.SeedSequence([seed, purpose number])``, so the choices are
independent of each other, repeatable from the one seed, and adding a purpose later changes none of the others.
An explicit seed in the configuration (``data.split.seed``, a plugin option ``seed``) still wins.
"""

from __future__ import annotations

import numpy as np

#: purpose → its fixed number in the seed sequence (append new purposes; never renumber)
PURPOSES = {"global": 1, "split": 2, "stationarity": 3, "solver": 4, "bootstrap": 5, "privacy": 6,
            "quality": 7}


def derived_seed(seed: int, purpose: str) -> int:
    """The seed of ``purpose`` derived from the run's ``seed``: the first 64-bit word of
    ``SeedSequence([seed, PURPOSES[purpose]])`` below 2**63 (what torch's generators accept)."""
    if purpose not in PURPOSES:
        raise KeyError(f"unknown seed purpose {purpose!r}: known purposes are {sorted(PURPOSES)}")
    word = np.random.SeedSequence([int(seed), PURPOSES[purpose]]).generate_state(1, np.uint64)[0]
    return int(word) >> 1


class Seeds:
    """The seeds a run derived from its ``seed`` and actually used: ``seeds("bootstrap")`` derives (and
    records) one; ``used`` maps purpose → seed (``provenance.seeds`` of the run document)."""

    def __init__(self, seed: int):
        self.seed = int(seed)
        self.used: dict[str, int] = {}

    def __call__(self, purpose: str) -> int:
        if purpose not in self.used:
            self.used[purpose] = derived_seed(self.seed, purpose)
        return self.used[purpose]

    def record(self, purpose: str, value: int) -> int:
        """Record a seed given explicitly for ``purpose`` (it wins over the derived one)."""
        self.used[purpose] = int(value)
        return int(value)
