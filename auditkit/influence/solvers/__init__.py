"""Inverse-Hessian solvers, by method name: the registry :data:`SOLVERS` is the one list of methods.

Each entry maps a method name to its solver class, a dataclass whose init fields are the method's options
(each with a default and help text, :func:`~auditkit.influence.solvers.base.option`). The configuration's
method choices and the types of ``influence.options`` are made from it (:func:`solver_options`). A new method
is one entry here.
"""

from __future__ import annotations

import typing
from dataclasses import MISSING, dataclass, fields

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


@dataclass(frozen=True)
class SolverOption:
    """One option of a method: its name, type (a typing expression), default and help text."""

    name: str
    type: object
    default: object
    help: str


def solver_options(method: str) -> list[SolverOption]:
    """The options of ``method`` as its solver class declares them (init fields, in order)."""
    cls = SOLVERS[method]
    hints = typing.get_type_hints(cls)
    return [SolverOption(f.name, hints[f.name], None if f.default is MISSING else f.default,
                         f.metadata.get("help", ""))
            for f in fields(cls) if f.init]


def make_solver(method: str, options: dict) -> Solver:
    """The solver for ``method``, built from its keyword ``options``."""
    if not isinstance(method, str) or method not in SOLVERS:
        allowed = ", ".join(repr(m) for m in SOLVERS)
        raise InputError(f"method={method!r} is not known: use one of {allowed}")
    return SOLVERS[method].from_options(options)


__all__ = ["SOLVERS", "Solver", "SolverOption", "make_solver", "solver_options", "ExactSolver", "CGSolver",
           "LissaSolver", "ArnoldiSolver", "EKFACSolver", "KFACSolver", "PCGSolver", "AutoSolver"]
