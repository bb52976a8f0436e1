"""CHOLMOD for designs whose terms all have one column, with a lean fill of ``ΛᵀAΛ``.

The same factorisation and results as :class:`~sparselmm.backends.cholmod.PLSState`;
only the way ``ΛᵀAΛ`` is filled differs, which keeps the memory of a crossed design with
~10⁸ distinct level pairs to a few bytes per pair.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from sparselmm.backends.base import PLSProblem
from sparselmm.backends.cholmod import PLSState

__all__ = ["ScalarTermsPLSState"]


class _ScalarProduct:
    """``ΛᵀAΛ`` on a fixed pattern when every term has one column (Λ diagonal).

    Then ``(ΛᵀAΛ)_ij = θ_{t(i)} θ_{t(j)} A_ij``: the lower triangle of ``A``
    is kept once with a small code per entry for its pair of terms, and one
    product per θ fills the CSC data of ``M`` (no per-block storage, which
    matters when ``A`` has 10⁸ entries).
    """

    def __init__(self, design: PLSProblem) -> None:
        A = design.cross.lower_part  # for scalar terms block-lower = lower
        A = (design.cross.ZtZ if A is None else A).tocsc()
        q = A.shape[0]
        col = np.repeat(np.arange(q, dtype=A.indices.dtype), np.diff(A.indptr))
        lower = A.indices >= col
        counts = np.bincount(col[lower], minlength=q)
        indices = A.indices[lower]
        self.data = A.data[lower]
        nt = len(design.terms)
        term_of = np.repeat(np.arange(nt, dtype=np.int16), np.diff(design.Gp))
        self.pair = (term_of[indices].astype(np.int16) * nt + term_of[col[lower]]).astype(np.int16)
        del col, lower, A
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(indices.dtype)
        self.M = sp.csc_matrix((self.data.copy(), indices, indptr), shape=(q, q))
        self.M.has_sorted_indices = True
        self.nt = nt

    def fill(self, blocks: list[np.ndarray]) -> sp.csc_matrix:
        """Set ``M.data`` to the lower triangle of ``ΛᵀAΛ`` for the 1 × 1 blocks given."""
        t = np.array([B[0, 0] for B in blocks], dtype=float)
        f = np.outer(t, t).ravel()
        np.multiply(self.data, f[self.pair], out=self.M.data)
        return self.M


class ScalarTermsPLSState(PLSState):
    """:class:`~sparselmm.backends.cholmod.PLSState` for designs whose terms all have one column.

    Identical results and the same CHOLMOD factorisation; only the way
    ``ΛᵀAΛ`` is filled differs (:class:`_ScalarProduct` instead of per-block
    storage), which keeps the memory of a crossed design with ~10⁸ distinct
    level pairs to a few bytes per pair.
    """

    name = "cholmod_scalar"
    needs = "every term to have one column"

    @classmethod
    def applies(cls, design: PLSProblem) -> bool:
        """Every term has one column."""
        return all(t.k == 1 for t in design.terms)

    @classmethod
    def preferred(cls, design: PLSProblem) -> bool:
        """Where it applies and the cross-products keep only the lower part of ``ZᵀWZ`` (a Dask
        design's: the full matrix would double their memory)."""
        return design.cross.lower_part is not None and cls.applies(design)

    def _product(self) -> "_ScalarProduct":
        return _ScalarProduct(self.design)
