"""A block Cholesky backend for crossed designs of scalar random effects.

When every term is a scalar random effect (``(1 | g)``-type) and the first
(largest) term's block of ``A = ZᵀWZ`` is diagonal — always so for one
factor — ``M = ΛᵀAΛ + I`` splits as

.. math::

    M = \\begin{pmatrix} D & C \\\\ Cᵀ & M_{22} \\end{pmatrix},\\quad
    D = θ_1^2\\,\\mathrm{diag}(A_{11}) + I,\\quad C = θ_1 A_{12} Λ_2,

and its Cholesky factor is the diagonal ``D^{1/2}`` on top of the dense
Cholesky factor of the Schur complement ``S = M_{22} - CᵀD^{-1}C`` (of size
``q₂ = q - q₁``, the levels of the smaller factors).  This is the supernodal
factor CHOLMOD computes for such designs (the fill-in makes the trailing block
dense), done with one dense LAPACK call; ``CᵀD^{-1}C`` is a weighted sum of
precomputed products over pairs of entries in the rows of ``A₁₂``.  It also
gives ``diag(M⁻¹)`` cheaply, which the analytic gradient needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.linalg as sla
from scipy.linalg import lapack

from .pls import PLSState

if TYPE_CHECKING:  # pragma: no cover
    from .modelframe import Design

__all__ = ["SchurState", "schur_eligible"]

_CONTROLLER = None


def _one_blas_thread():  # type: ignore[no-untyped-def]
    """Context with numpy/scipy's BLAS on one thread.

    The dense factor is small enough (q₂ ≤ 6000) that a second BLAS thread gains
    little on a quiet machine, while on a busy one OpenBLAS's spinning threads
    make a Cholesky up to 40× slower (measured: 20 ms single-threaded, 830 ms with
    two threads beside another process)."""
    global _CONTROLLER
    try:
        if _CONTROLLER is None:
            from threadpoolctl import ThreadpoolController

            _CONTROLLER = ThreadpoolController()
        return _CONTROLLER.limit(limits=1, user_api="blas")
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        import contextlib

        return contextlib.nullcontext()


def schur_eligible(design: "Design", max_dense: int = 6000, max_pairs: float = 3e7) -> bool:
    """True when the design suits :class:`SchurState`: scalar linear terms, at least two,
    a trailing block of at most ``max_dense`` levels that is smaller than the first term,
    and a table of entry pairs (``Σ_j c_j²/2`` over the rows of ``A₁₂``) of at most ``max_pairs``."""
    terms = design.terms
    if len(terms) < 2 or any(t.k != 1 or t.structure.name not in ("us", "diag") for t in terms):
        return False
    q1 = int(design.Gp[1])
    q2 = design.q - q1
    if q2 > max_dense or q1 < q2:
        return False
    cnt = np.diff(design.cross.ZtZ.tocsr()[:q1, q1:].indptr).astype(np.float64)
    return float(np.sum(cnt * (cnt + 1) / 2)) <= max_pairs


class SchurState(PLSState):
    """:class:`~sparselmm.pls.PLSState` with the block Cholesky factorisation described above."""

    def _setup_factor(self, mode: str, ordering_method: str) -> None:
        d = self.design
        A = d.cross.ZtZ.tocsr()
        q1 = int(d.Gp[1])
        q2 = d.q - q1
        self.q1, self.q2 = q1, q2
        self.a1 = np.asarray(A.diagonal()[:q1], dtype=float)
        A12 = A[:q1, q1:].tocsr()
        A12.sort_indices()
        self.A12 = A12
        self.A22 = A[q1:, q1:].toarray()
        # pairs (l <= m) of entries within each row j of A12: S -= Σ_j w_j A_jl A_jm
        ip, ix, vx = A12.indptr, A12.indices, A12.data
        cnt = np.diff(ip)
        nb = cnt * cnt
        row = np.repeat(np.arange(q1), nb)
        k = np.arange(int(nb.sum())) - np.repeat(np.cumsum(nb) - nb, nb)
        e1 = ip[row] + k // np.repeat(cnt, nb)
        e2 = ip[row] + k % np.repeat(cnt, nb)
        l, m = ix[e1], ix[e2]
        keep = l <= m
        self.p_row = row[keep].astype(np.int32)
        self.p_l, self.p_m = l[keep].astype(np.int32), m[keep].astype(np.int32)
        self.p_flat = self.p_l.astype(np.int64) * q2 + self.p_m
        self.p_flat_f = self.p_l.astype(np.int64) + self.p_m.astype(np.int64) * q2  # (l, m) in Fortran order
        self.p_prod = (vx[e1] * vx[e2])[keep] * np.where(l[keep] < m[keep], 1.0, 0.5)
        self.term2 = np.repeat(np.arange(1, len(d.terms)), np.diff(d.Gp)[1:])

    def _factorize(self, blocks: list[np.ndarray]) -> bool:
        th1 = float(blocks[0][0, 0])
        lam2 = np.array([b[0, 0] for b in blocks[1:]])[self.term2 - 1]
        D = th1 * th1 * self.a1 + 1.0
        K = self._cross_gram(th1 * th1 / D)
        S = (self.A22 - K) * lam2[:, None] * lam2[None, :]
        S[np.diag_indices_from(S)] += 1.0
        with _one_blas_thread():
            R, info = lapack.dpotrf(S, lower=0, clean=0, overwrite_a=1)
        if info != 0:
            return False
        self._th1, self._lam2, self._D, self._R = th1, lam2, D, R
        return True

    def _cross_gram(self, w: np.ndarray) -> np.ndarray:
        """``A₂₁ diag(w) A₁₂`` (q₂ × q₂, symmetric) from the table of entry pairs."""
        K = np.bincount(self.p_flat, weights=self.p_prod * w[self.p_row], minlength=self.q2 * self.q2)
        K = K.reshape(self.q2, self.q2)
        return K + K.T  # pairs l < m counted once; the diagonal was halved

    def _logdet(self) -> float:
        return float(np.sum(np.log(self._D)) + 2.0 * np.sum(np.log(np.diag(self._R))))

    def solve_M(self, rhs: np.ndarray) -> np.ndarray:
        """``M⁻¹ rhs`` by block elimination."""
        b = rhs if rhs.ndim == 2 else rhs[:, None]
        q1 = self.q1
        th1, lam2, D = self._th1, self._lam2, self._D
        b1, b2 = b[:q1], b[q1:]
        y1 = b1 / D[:, None]
        with _one_blas_thread():
            x2 = sla.cho_solve((self._R, False), b2 - lam2[:, None] * (th1 * (self.A12.T @ y1)), check_finite=False)
        x1 = (b1 - th1 * (self.A12 @ (lam2[:, None] * x2))) / D[:, None]
        out = np.vstack([x1, x2])
        return out if rhs.ndim == 2 else out[:, 0]

    def minv_diag(self) -> np.ndarray:
        """``diag(M⁻¹)``: ``diag(S⁻¹)`` below, ``1/D + θ₁² (A₁₂Λ₂S⁻¹Λ₂A₁₂ᵀ)_jj / D²`` above."""
        with _one_blas_thread():
            Sinv, info = lapack.dpotri(self._R, lower=0)  # upper triangle of S⁻¹; pairs have l <= m
        lam2 = self._lam2
        g = Sinv.ravel(order="F")[self.p_flat_f] * self.p_prod * 2.0 * lam2[self.p_l] * lam2[self.p_m]
        quad = np.bincount(self.p_row, weights=g, minlength=self.q1)
        D = self._D
        return np.concatenate([1.0 / D + self._th1**2 * quad / D**2, np.diag(Sinv)])
