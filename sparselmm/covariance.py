"""Covariance structures of random-effects terms: θ ↦ Λ for one term.

A term ``(lhs | g)`` with ``k`` model columns has, for every level of ``g``,
the same relative covariance factor block ``T`` (``k × k``, lower
triangular), so that the term's random effects have covariance
``σ² T Tᵀ`` per level.  A structure maps its parameter vector to ``T``; the
PLS engine places ``T`` on the block diagonal of Λ for every level.

Every structure implements :class:`CovStructure`.  :class:`Unstructured` is
lme4's (θ = lower triangle of ``T`` column by column, lower bound 0 on the
diagonal); :class:`Diagonal` is lme4's ``||`` for a single term.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from .errors import ModelSpecError

__all__ = ["CovStructure", "Unstructured", "Diagonal", "make_structure"]


@runtime_checkable
class CovStructure(Protocol):
    """What the engine needs from a covariance structure of one term.

    Attributes
    ----------
    name : str
        Short name (``"us"``, ``"diag"``, ...).
    k : int
        Size of the block ``T``.
    n_par : int
        Number of parameters the optimiser sees for this term.
    """

    name: str
    k: int
    n_par: int

    def start(self) -> np.ndarray:
        """Starting parameters (lme4's: ``T = I``)."""

    def lower(self) -> np.ndarray:
        """Lower bounds of the parameters."""

    def upper(self) -> np.ndarray:
        """Upper bounds of the parameters."""

    def block(self, par: np.ndarray) -> np.ndarray:
        """The relative factor block ``T(par)`` (``k × k``, lower triangular)."""

    def par_names(self) -> list[str]:
        """Names of the parameters, for messages and tables."""


class Unstructured:
    """lme4's general positive semi-definite ``k × k`` covariance.

    θ is the lower triangle of ``T`` column by column:
    ``T = [[θ₀, 0], [θ₁, θ₂]]`` for ``k = 2``; diagonal entries are bounded below by 0.
    """

    name = "us"

    def __init__(self, k: int, columns: list[str] | None = None) -> None:
        self.k = k
        self.n_par = k * (k + 1) // 2
        self.columns = columns or [f"x{i}" for i in range(k)]
        r, c = np.tril_indices(k)  # row-major
        # column-major position of each row-major entry: θ order is column by column
        colmajor = {(rr, cc): i for i, (cc, rr) in enumerate((cc, rr) for cc in range(k) for rr in range(cc, k))}
        self._rowmajor_to_theta = np.array([colmajor[(rr, cc)] for rr, cc in zip(r, c)], dtype=np.int64)
        self._diag = np.array([colmajor[(i, i)] for i in range(k)], dtype=np.int64)

    @property
    def lind(self) -> np.ndarray:
        """θ index of each stored entry of ``T`` in row-major order (lme4's ``Lind`` within a block)."""
        return self._rowmajor_to_theta

    def start(self) -> np.ndarray:
        th = np.zeros(self.n_par)
        th[self._diag] = 1.0
        return th

    def lower(self) -> np.ndarray:
        lo = np.full(self.n_par, -np.inf)
        lo[self._diag] = 0.0
        return lo

    def upper(self) -> np.ndarray:
        return np.full(self.n_par, np.inf)

    def block(self, par: np.ndarray) -> np.ndarray:
        T = np.zeros((self.k, self.k))
        T[np.tril_indices(self.k)] = par[self._rowmajor_to_theta]
        return T

    def tril_values(self, par: np.ndarray) -> np.ndarray:
        """The stored entries of ``T`` in row-major order (the hot path: no k × k allocation)."""
        return par[self._rowmajor_to_theta]

    def par_names(self) -> list[str]:
        k, cols = self.k, self.columns
        return [f"{cols[r]}" if r == c else f"{cols[r]}.{cols[c]}" for c in range(k) for r in range(c, k)]


class Diagonal(Unstructured):
    """Independent columns with their own variances (``diag(...)``, lme4's ``||``): ``T = diag(θ)``."""

    name = "diag"

    def __init__(self, k: int, columns: list[str] | None = None) -> None:
        super().__init__(k, columns)
        self.n_par = k
        r, c = np.tril_indices(k)
        self._pos = np.flatnonzero(r == c)

    def start(self) -> np.ndarray:
        return np.ones(self.k)

    def lower(self) -> np.ndarray:
        return np.zeros(self.k)

    def upper(self) -> np.ndarray:
        return np.full(self.k, np.inf)

    def block(self, par: np.ndarray) -> np.ndarray:
        return np.diag(np.asarray(par, dtype=float))

    def tril_values(self, par: np.ndarray) -> np.ndarray:
        out = np.zeros(self.k * (self.k + 1) // 2)
        out[self._pos] = par
        return out

    def par_names(self) -> list[str]:
        return list(self.columns)


_STRUCTURES = {"us": Unstructured, "diag": Diagonal}


def make_structure(name: str, k: int, columns: list[str]) -> CovStructure:
    """The structure called ``name`` for a term with ``k`` columns.

    Raises
    ------
    ModelSpecError
        If the structure is unknown or not available.
    """
    try:
        cls = _STRUCTURES[name]
    except KeyError:
        raise ModelSpecError(
            f"covariance structure {name!r} is not available; available: {', '.join(sorted(_STRUCTURES))}"
        ) from None
    return cls(k, columns)
