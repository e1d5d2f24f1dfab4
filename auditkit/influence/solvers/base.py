"""What every inverse-Hessian solver provides.

A solver is fitted once on a :class:`~auditkit.influence.hessian.HessianOperator` and then applies
``H⁻¹`` to row vectors: ``solve(B)`` returns ``B·H⁻¹`` for B of shape (k, p). ``quad_forms(G)`` returns
``g_iᵀ H⁻¹ g_i`` for each row, the core of self-influence; solvers with a factorisation override it
with an O(p²)-per-record formula, the others fall back to one solve per record.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import field, fields

import torch

from ...errors import InputError
from ..hessian import HessianOperator


def option(default, help: str):  # noqa: A002 - the word the registry's readers use
    """A solver option: a dataclass field with its ``default`` and ``help`` text (what the option does, in the
    configuration reference and in the message refusing a bad value)."""
    return field(default=default, metadata={"help": help})


def suggest_damping(smallest: float, largest: float) -> float:
    """A damping that makes ``H + damping·I`` safely positive definite: 1e-3 of the spectrum's width above 0."""
    return float(max(abs(largest), 1e-12) * 1e-3 + max(0.0, -smallest))


class Solver(ABC):
    """Applies the inverse of H after ``fit``; subclasses are dataclasses of their options."""

    name: str = ""

    @classmethod
    def from_options(cls, options: dict) -> Solver:
        """Build the solver from keyword options, refusing unknown ones with the allowed list."""
        allowed = [f.name for f in fields(cls) if f.init]
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise InputError(f"option(s) {unknown} are not known to method={cls.name!r}: "
                             f"allowed options are {allowed}")
        solver = cls(**options)
        solver.validate()
        return solver

    def validate(self) -> None:  # noqa: B027 - optional hook; solvers without options keep it empty
        """Check option values; raise InputError naming the option, the value and what is allowed."""

    @abstractmethod
    def fit(self, hessian: HessianOperator) -> Solver:
        """Prepare to apply H⁻¹ (factorise, estimate a scale, ...)."""

    @abstractmethod
    def solve(self, B: torch.Tensor) -> torch.Tensor:
        """``B·H⁻¹`` for row vectors B of shape (k, p)."""

    def quad_forms(self, G: torch.Tensor) -> torch.Tensor:
        """``g_iᵀ H⁻¹ g_i`` for each row of G (one solve per row unless a subclass knows better)."""
        return (self.solve(G) * G).sum(dim=1)

    def gram_factors(self, B: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(X, Y)`` (k, p) with ``X_i · Y_j = b_iᵀ H⁻¹ b_j`` for rows b of B (k, p): here ``(B, B·H⁻¹)``, one
        solve per row; a factorised solver returns ``(L⁻¹B ᵀ)ᵀ`` twice."""
        return B, self.solve(B)

    def summary(self) -> dict:
        """The solver's options and what it measured while fitting or solving (for reports)."""
        return {"method": self.name, **{f.name: getattr(self, f.name) for f in fields(self) if f.init}}


def positive(name: str, value, *, integer: bool = False, allow_none: bool = False) -> None:
    """Raise InputError unless ``value`` is a positive number (an integer when ``integer``)."""
    if value is None and allow_none:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
    if integer:
        ok = ok and float(value).is_integer()
    if not ok:
        kind = "a positive integer" if integer else "a positive number"
        raise InputError(f"{name}={value!r} is not allowed: it must be {kind}")
