"""Inverse-Hessian solvers, by method name: ``exact``, ``cg``, ``lissa``, ``arnoldi``, ``ekfac``, ``kfac``, ``pcg``,
``auto``."""

from __future__ import annotations

from ...errors import InputError
from .arnoldi import ArnoldiSolver
from .auto import AutoSolver
from .base import Solver
from .cg import CGSolver
from .ekfac import EKFACSolver, KFACSolver
from .exact import ExactSolver
from .lissa import LissaSolver
from .pcg import PCGSolver

SOLVERS: dict[str, type[Solver]] = {"exact": ExactSolver, "cg": CGSolver, "lissa": LissaSolver,
                                 "arnoldi": ArnoldiSolver, "ekfac": EKFACSolver, "kfac": KFACSolver,
                                 "pcg": PCGSolver, "auto": AutoSolver}


def make_solver(method: str, options: dict) -> Solver:
    """The solver for ``method``, built from its keyword ``options``."""
    if not isinstance(method, str) or method not in SOLVERS:
        allowed = ", ".join(repr(m) for m in SOLVERS)
        raise InputError(f"method={method!r} is not known: use one of {allowed}")
    return SOLVERS[method].from_options(options)


__all__ = ["SOLVERS", "Solver", "make_solver", "ExactSolver", "CGSolver", "LissaSolver", "ArnoldiSolver",
           "EKFACSolver", "KFACSolver", "PCGSolver", "AutoSolver"]
