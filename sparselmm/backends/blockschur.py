"""A block Cholesky backend for crossed designs whose terms have several columns.

With ``A = ZᵀWZ`` split after the first term (``n₁`` levels of ``k₁`` columns each,
``q₁ = n₁k₁``; its block of ``A`` is block diagonal, one ``k₁ × k₁`` block ``A_j`` per level:
each observation has one level of the factor) and ``Λ = diag(Λ₁, Λ₂)``,
``Λ₁ = I ⊗ T₁``:

.. math::

    M = \\begin{pmatrix} D & C \\\\ Cᵀ & Λ_2ᵀA_{22}Λ_2 + I \\end{pmatrix},\\quad
    D_j = T_1ᵀA_jT_1 + I,\\quad C = Λ_1ᵀA_{12}Λ_2,

    S = Λ_2ᵀ(A_{22} - K)Λ_2 + I,\\quad K = A_{21}Λ_1D^{-1}Λ_1ᵀA_{12} = BᵀB,\\quad
    B_j = L_j^{-1}T_1ᵀA_{12,j},

    \\log\\det M = \\sum_j \\log\\det D_j + \\log\\det S,

``D_j = L_jL_jᵀ`` factored level by level (vectorised over the levels), ``K`` formed with
dense BLAS (``dsyrk``) on chunks of ``A₁₂`` densified on the fly (``O(q₁q₂²)`` flops and
``O(q₂²)`` memory per θ), and ``S`` (``q₂ × q₂``, the levels of the later terms) factored
densely.  This is the factor CHOLMOD computes for such designs — the fill makes the trailing
block dense — done as a few BLAS-3 calls instead of a sparse supernodal factorisation, which
for a random slope on the larger factor of a crossed design costs ~5× more.  It is the
scalar-terms :class:`~sparselmm.backends.schur.DenseSchurPLSState` with level blocks.

The factor also gives the diagonal blocks of ``M⁻¹`` and of ``G = M⁻¹ΛᵀA`` (the analytic
gradient's, :meth:`BlockSchurPLSState.gradient_blocks`) at about two evaluations' cost, with
no division by ``T`` (exact on the boundary too): with ``Q_j = A₁₂,ⱼ Λ₂S⁻¹Λ₂ᵀ A₁₂,ⱼᵀ``,

.. math::

    (M^{-1})_{jj} = D_j^{-1} + D_j^{-1}T_1ᵀQ_jT_1D_j^{-1},\\qquad
    G_{jj} = (M^{-1})_{jj}T_1ᵀA_j - D_j^{-1}T_1ᵀQ_j,

and below, ``(M⁻¹)₂₂ = S⁻¹`` and ``G₂₂ = S⁻¹Λ₂ᵀ(A₂₂ - K)``.
"""

from __future__ import annotations

import contextlib

import numpy as np
import scipy.linalg as sla
from scipy.linalg import lapack
from scipy.linalg.blas import dsyrk, dtrsm

from sparselmm.backends.base import PLSBackend, PLSProblem
from sparselmm.errors import ModelSpecError
from sparselmm.threads import dense_step_threads

__all__ = ["BlockSchurPLSState", "block_schur_eligible", "block_schur_pays"]

#: most columns of the first term: its per-level algebra is O(k₁³) vector operations
_MAX_K1 = 8
#: smallest trailing block whose dense steps may take more BLAS threads (:func:`dense_step_threads`)
_THREADED_Q2 = 1000


def block_schur_eligible(design: PLSProblem, max_dense: int = 6000) -> bool:
    """True when :class:`BlockSchurPLSState` applies: at least two terms, the first with at
    most 8 columns, and the later terms' ``q₂`` random effects at most ``max_dense`` and no more
    than the first term's ``q₁``."""
    terms = design.terms
    if len(terms) < 2 or terms[0].k > _MAX_K1:
        return False
    q1 = int(design.Gp[1])
    q2 = design.q - q1
    return q2 <= max_dense and q1 >= q2


def cross_counts(design: PLSProblem) -> np.ndarray:
    """The stored entries of each of the first ``Gp[1]`` rows of ``A₁₂`` (the level pairs of the
    first term's random effects with the later terms'), kept with the cross-products."""

    def count() -> np.ndarray:
        q1 = int(design.Gp[1])
        L = design.cross.lower_part
        A = (design.cross.ZtZ if L is None else L).tocsc()[:, :q1]
        col = np.repeat(np.arange(q1), np.diff(A.indptr))
        return np.bincount(col[A.indices >= q1], minlength=q1).astype(np.float64)

    return design.cross.memo("a12_row_counts_all", count)


def block_schur_pays(design: PLSProblem, ratio: float = 0.004, floor: float = 1e6) -> bool:
    """Whether ``"auto"`` takes :class:`BlockSchurPLSState` over CHOLMOD.

    Where it applies and some term has several columns (crossed scalar terms have
    :mod:`sparselmm.backends.schur`'s backends) and the first term has at least 1,000 random
    effects: when ``Σ c² > ratio·q₁q₂² + floor`` (``c``: entries per row of ``A₁₂``).  CHOLMOD's
    elimination of the first term costs ``Σ c²`` scattered updates (measured on this project's
    2-core machine, ``y ~ x + (x | a) + (1 | b)`` on 20,000–400,000 rows: 4–14 ns each), the
    dense fill ``q₁q₂²`` BLAS flops (1–4·10⁻¹¹ s each) plus ~3 ms of per-evaluation overhead;
    measured in ``docs/performance.md`` ("Crossed designs with random slopes")."""
    if not block_schur_eligible(design) or all(t.k == 1 for t in design.terms):
        return False
    q1 = int(design.Gp[1])
    if q1 < 1000:
        return False
    q2 = design.q - q1
    c = cross_counts(design)
    return float(np.sum(c * c)) > ratio * q1 * q2 * q2 + floor


class BlockSchurPLSState(PLSBackend):
    """Block Cholesky PLS for crossed designs with a first term of level blocks (see the module)."""

    name = "schur_blocks"
    needs = (
        "two or more terms, the first with at most 8 columns and at least as many random effects as "
        "the later ones, which have at most 6,000 in all"
    )
    gradient_blocks_available = True
    cheap_minv_diag = True

    @classmethod
    def applies(cls, design: PLSProblem) -> bool:
        """Two or more terms, the first with at most 8 columns, a trailing block of at most 6,000
        random effects (:func:`block_schur_eligible`)."""
        return block_schur_eligible(design)

    @classmethod
    def preferred(cls, design: PLSProblem) -> bool:
        """Where the dense fill pays (:func:`block_schur_pays`)."""
        return block_schur_pays(design)

    def _setup_factor(self) -> None:
        d = self.design
        lower = d.cross.lower_part  # block-lower storage: level blocks on the diagonal are whole
        A = (d.cross.ZtZ if lower is None else lower).tocsc()
        t1 = d.terms[0]
        k1, n1 = t1.k, t1.nlevels
        q1 = int(d.Gp[1])
        q2 = d.q - q1
        left = A[:, :q1]  # the first term's columns: its diagonal blocks and A₂₁
        top = left[:q1].tocoo()
        if np.any(top.row // k1 != top.col // k1):
            raise ModelSpecError("the first term's block of Z'WZ is not block diagonal")
        self.k1, self.n1, self.q1, self.q2 = k1, n1, q1, q2
        A1 = np.zeros((n1, k1, k1))
        A1[top.row // k1, top.row % k1, top.col % k1] = top.data
        self.A1 = A1
        self.A12 = left[q1:].T.tocsr()  # q₁ × q₂ (A is symmetric)
        self.A12.sort_indices()
        del left, top
        A22 = A[q1:, q1:].toarray()
        if lower is not None:  # the strictly lower level blocks only: add their transposes
            blk = d.cross.block_of[q1:]
            A22 += np.where(blk[:, None] == blk[None, :], 0.0, A22).T
        self.A22 = A22
        # the later terms' blocks of Λ₂, as (term index, rows lo:hi of the q₂ block)
        self.tail = [(i, int(lo) - q1, int(hi) - q1) for i, (lo, hi) in enumerate(zip(d.Gp[1:-1], d.Gp[2:]), start=1)]
        self.scalar_tail = all(d.terms[i].k == 1 for i, _, _ in self.tail)
        self.off = np.concatenate([[0], np.cumsum([t.k for t in d.terms])]).astype(int)
        self.chunk = max(1, int(2**23 // max(q2 * k1, 1)))  # levels per dense chunk (64 MB)
        # more BLAS threads for the dense steps only where they are large: switching OpenBLAS's thread
        # count costs ~2 ms a time (measured at q₂ = 100: 12 ms per evaluation with it, 7 ms without)
        self._threads = dense_step_threads if q2 >= _THREADED_Q2 else contextlib.nullcontext

    # ----- Λ₂ applied blockwise ---------------------------------------------------
    def _lam2(self, blocks: list[np.ndarray], X: np.ndarray, transpose: bool = False) -> np.ndarray:
        """``Λ₂X`` (``Λ₂ᵀX`` when ``transpose``) for ``X`` with ``q₂`` rows."""
        out = np.empty_like(X, dtype=float)
        m = X.shape[1]
        for i, lo, hi in self.tail:
            T = blocks[i]
            if T.shape == (1, 1):
                np.multiply(X[lo:hi], T[0, 0], out=out[lo:hi])
            else:
                k = T.shape[0]
                out[lo:hi] = ((T.T if transpose else T) @ X[lo:hi].reshape(-1, k, m)).reshape(-1, m)
        return out

    def _lam1(self, T1: np.ndarray, X: np.ndarray, transpose: bool = False) -> np.ndarray:
        """``Λ₁X`` (``Λ₁ᵀX`` when ``transpose``) for ``X`` with ``q₁`` rows."""
        m = X.shape[1]
        return ((T1.T if transpose else T1) @ X.reshape(self.n1, self.k1, m)).reshape(-1, m)

    # ----- the factorisation ------------------------------------------------------
    def _chunks(self):  # type: ignore[no-untyped-def]
        """``(j0, j1, A₁₂ rows of levels j0…j1-1 dense, shaped (levels, k₁, q₂))``, a chunk at a time."""
        k1, q2 = self.k1, self.q2
        for j0 in range(0, self.n1, self.chunk):
            j1 = min(self.n1, j0 + self.chunk)
            yield j0, j1, self.A12[j0 * k1 : j1 * k1].toarray().reshape(j1 - j0, k1, q2)

    def _gram_step(self, K: np.ndarray, R: np.ndarray, Ac: np.ndarray) -> np.ndarray:
        """``K += BᵀB`` (upper triangle) for one chunk, ``B_j = R_j A₁₂,ⱼ``."""
        B = (R @ Ac).reshape(-1, self.q2)
        # Bᵀ is Fortran-ordered: BLAS reads it in place, K += Bᵀ(Bᵀ)ᵀ
        return dsyrk(1.0, B.T, beta=1.0, c=K, trans=0, lower=0, overwrite_c=1)

    @staticmethod
    def _symmetric(K: np.ndarray) -> np.ndarray:
        return np.triu(K) + np.triu(K, 1).T

    def _factorize(self, blocks: list[np.ndarray]) -> bool:
        T1 = blocks[0]
        D = T1.T @ self.A1 @ T1
        D[:, np.arange(self.k1), np.arange(self.k1)] += 1.0
        try:
            Ld = np.linalg.cholesky(D)
        except np.linalg.LinAlgError:
            return False
        Li = np.linalg.inv(Ld)  # L_j⁻¹ per level (k₁ × k₁)
        R = Li @ T1.T  # B_j = L_j⁻¹T₁ᵀA₁₂,ⱼ
        with self._threads():
            K = np.zeros((self.q2, self.q2), order="F")
            for j0, j1, Ac in self._chunks():
                K = self._gram_step(K, R[j0:j1], Ac)
        S = self._schur(blocks, self.A22 - self._symmetric(K))
        del K
        with self._threads():
            Ls, info = lapack.dpotrf(S, lower=1, clean=1, overwrite_a=1)
        if info != 0:
            return False
        self._T1, self._blocks, self._Ld, self._R = T1, blocks, Ld, R
        self._Dinv = np.swapaxes(Li, 1, 2) @ Li
        self._Ls = Ls
        return True

    def _schur(self, blocks: list[np.ndarray], AK: np.ndarray) -> np.ndarray:
        """``S = Λ₂ᵀ(A₂₂ - K)Λ₂ + I`` from ``AK = A₂₂ - K`` (overwritten)."""
        if self.scalar_tail:
            lam = np.concatenate([np.full(hi - lo, blocks[i][0, 0]) for i, lo, hi in self.tail])
            AK *= lam[:, None]
            AK *= lam[None, :]
            S = AK.T  # exactly symmetric: its transpose is the Fortran-ordered array LAPACK factors in place
        else:
            Y = self._lam2(blocks, AK, transpose=True)  # Λ₂ᵀ(A₂₂ - K)
            S = self._lam2(blocks, np.ascontiguousarray(Y.T), transpose=True).T  # (Λ₂ᵀYᵀ)ᵀ = YΛ₂
            S = np.asfortranarray(S)
        S[np.diag_indices_from(S)] += 1.0
        return S

    def _logdet(self) -> float:
        ld = np.log(np.diagonal(self._Ld, axis1=1, axis2=2)).sum()
        return float(2.0 * (ld + np.sum(np.log(np.diag(self._Ls)))))

    def solve_M(self, rhs: np.ndarray) -> np.ndarray:
        """``M⁻¹ rhs`` by block elimination."""
        b = rhs if rhs.ndim == 2 else rhs[:, None]
        q1, k1, m = self.q1, self.k1, b.shape[1]
        T1, blocks, Dinv = self._T1, self._blocks, self._Dinv
        b1, b2 = b[:q1], b[q1:]
        y1 = (Dinv @ b1.reshape(self.n1, k1, m)).reshape(q1, m)
        r2 = b2 - self._lam2(blocks, self.A12.T @ self._lam1(T1, y1), transpose=True)  # b₂ - Cᵀy₁
        with self._threads():
            x2 = sla.cho_solve((self._Ls, True), r2, check_finite=False)
        c = b1 - self._lam1(T1, self.A12 @ self._lam2(blocks, x2), transpose=True)  # b₁ - Cx₂
        x1 = (Dinv @ c.reshape(self.n1, k1, m)).reshape(q1, m)
        x = np.vstack([x1, x2])
        return x if rhs.ndim == 2 else x[:, 0]

    # ----- the diagonal blocks of M⁻¹ and of M⁻¹ΛᵀA ------------------------------
    def _q_blocks(self, gram: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """``Q_j = A₁₂,ⱼΛ₂S⁻¹Λ₂ᵀA₁₂,ⱼᵀ`` per level (``(n₁, k₁, k₁)``: ``V_jᵀV_j`` with
        ``V = L_S⁻¹Λ₂ᵀA₂₁``), and with ``gram`` also ``K`` (upper triangle), in one pass."""
        k1, q2 = self.k1, self.q2
        Q = np.empty((self.n1, k1, k1))
        K = np.zeros((q2, q2), order="F") if gram else None
        with self._threads():
            for j0, j1, Ac in self._chunks():
                if gram:
                    K = self._gram_step(K, self._R[j0:j1], Ac)
                W = self._lam2(self._blocks, Ac.reshape(-1, q2).T, transpose=True)  # Λ₂ᵀA₂₁ (q₂ × chunk)
                V = dtrsm(1.0, self._Ls, W, lower=1, overwrite_b=1).reshape(q2, j1 - j0, k1)
                Q[j0:j1] = np.einsum("mja,mjb->jab", V, V)
        return Q, K

    def _tail_inverse(self) -> np.ndarray:
        """``S⁻¹`` (both triangles)."""
        with self._threads():
            Si, info = lapack.dpotri(self._Ls, lower=1)
        return np.tril(Si) + np.tril(Si, -1).T

    def minv_diag_blocks(self, budget: float = 2e7) -> list[np.ndarray]:
        """Per term, the ``(nlevels, k, k)`` diagonal blocks of ``M⁻¹``: ``D_j⁻¹ + D_j⁻¹T₁ᵀQ_jT₁D_j⁻¹``
        for the first term, blocks of ``S⁻¹`` below."""
        Q, _ = self._q_blocks(gram=False)
        T1, Dinv = self._T1, self._Dinv
        P = Dinv @ T1.T  # D_j⁻¹T₁ᵀ
        out = [Dinv + P @ Q @ np.swapaxes(P, 1, 2)]
        Si = self._tail_inverse()
        for i, lo, hi in self.tail:
            k = self.design.terms[i].k
            idx = lo + np.arange((hi - lo) // k)[:, None] * k + np.arange(k)[None, :]
            out.append(Si[idx[:, :, None], idx[:, None, :]])
        return out

    def minv_diag(self) -> np.ndarray:
        """``diag(M⁻¹)`` in the design's order."""
        return np.concatenate([np.diagonal(b, axis1=1, axis2=2).ravel() for b in self.minv_diag_blocks()])

    def gradient_blocks(self) -> np.ndarray:
        """``Σ_j G_jj`` over each term's levels, ``G = M⁻¹ΛᵀA``, as the diagonal blocks of a
        ``K × K`` matrix (``K`` = the terms' columns; the blocks between terms are zero)."""
        Q, Kup = self._q_blocks(gram=True)
        T1, Dinv, blocks = self._T1, self._Dinv, self._blocks
        P = Dinv @ T1.T
        Minv1 = Dinv + P @ Q @ np.swapaxes(P, 1, 2)
        out = np.zeros((self.off[-1], self.off[-1]))
        out[: self.k1, : self.k1] = (Minv1 @ T1.T @ self.A1 - P @ Q).sum(axis=0)
        X = self._lam2(blocks, self.A22 - self._symmetric(Kup), transpose=True)  # Λ₂ᵀ(A₂₂ - K)
        del Kup
        Si = self._tail_inverse()
        for i, lo, hi in self.tail:
            k = self.design.terms[i].k
            idx = lo + np.arange((hi - lo) // k)[:, None] * k + np.arange(k)[None, :]
            o = self.off[i]
            for r in range(k):
                for c in range(k):
                    # Σ_l (S⁻¹X)[(l, r), (l, c)] = Σ_l Σ_m S⁻¹[(l, r), m] X[m, (l, c)]
                    out[o + r, o + c] = float(np.sum(Si[idx[:, r]] * X[:, idx[:, c]].T))
        return out
