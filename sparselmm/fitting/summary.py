"""The records of a search for θ: :class:`OptSummary`, what the optimiser did (lme4's
``optinfo``), and :class:`Counted`, the objective as the optimisers call it (its evaluations
counted, its best point kept, a failed evaluation made a large finite value)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

__all__ = ["OptSummary", "Counted"]


@dataclass
class OptSummary:
    """What the optimiser did (lme4's ``optinfo``).

    Attributes
    ----------
    optimizer : str
    theta_start, theta : numpy.ndarray
    lower, upper : numpy.ndarray
    objective : float
        Objective at ``theta``.
    feval : int
        Objective evaluations, all phases included.
    seconds : float
        Wall time of the optimisation.
    message : str
        The optimiser's own message.
    restarts : int
        Restarts from the boundary (lme4's ``restart_edge``).
    snapped : list of int
        θ indices set to their bound after the search.
    gradient, hessian : numpy.ndarray or None
        Derivatives at the optimum, when computed (finite differences of the objective,
        or the analytic gradient and its differences).
    newton_decrement : float or None
        ``gᵀH⁻¹g / 2`` over the free parameters: how much further a Newton
        step would lower the objective (deviance units).
    warnings : list of str
        Convergence messages for the user (empty when all is well).
    geval : int
        Evaluations of the analytic gradient (each at a point whose objective is
        counted in ``feval``).
    """

    optimizer: str
    theta_start: np.ndarray
    theta: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    objective: float
    feval: int
    seconds: float
    message: str
    restarts: int = 0
    snapped: list[int] = field(default_factory=list)
    gradient: np.ndarray | None = None
    hessian: np.ndarray | None = None
    newton_decrement: float | None = None
    warnings: list[str] = field(default_factory=list)
    geval: int = 0

    @property
    def converged(self) -> bool:
        """True when no convergence warning was raised."""
        return not self.warnings


class Counted:
    """Counts evaluations and remembers the best point seen (a failed
    evaluation returns a large finite value so no optimiser crashes)."""

    def __init__(self, f: Callable[[np.ndarray], float]) -> None:
        self.f = f
        self.n = 0
        self.best_x: np.ndarray | None = None
        self.best_f = np.inf
        self.big = 1e300

    def __call__(self, x: np.ndarray) -> float:
        self.n += 1
        v = float(self.f(np.asarray(x, dtype=float)))
        if not np.isfinite(v):
            return self.big
        if v < self.best_f:
            self.best_f, self.best_x = v, np.array(x, dtype=float)
        return v
