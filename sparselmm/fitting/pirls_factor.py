"""The factor of PIRLS's ``M = ΛᵀZᵀWZΛ + I``, refactored at every scoring step.

Two kinds with one interface (``refactor(data) -> log det M`` on the values of M's lower
triangle in the fixed CSC pattern, and ``factor(rhs)`` for ``M⁻¹ rhs``):

* :class:`CholmodFactor`, CHOLMOD's supernodal factor, analysed once;
* :class:`SchurFactor`, for crossed designs whose first term is scalar with many levels and
  whose later terms have a few thousand in all (users × items answering right or wrong).  There
  the first term's block ``D`` of M is diagonal, and

  .. math::

      M = \\begin{pmatrix} D & C \\\\ Cᵀ & M_{22} \\end{pmatrix},\\qquad
      \\log\\det M = \\log\\det D + \\log\\det (M_{22} - CᵀD^{-1}C),

  the Schur complement ``S`` dense (``q₂ × q₂``): its fill is the compiled loop the LMM's
  Schur backend uses (:func:`sparselmm.backends.kernels.schur_fill`), its factor one LAPACK
  call.  CHOLMOD reaches the same dense trailing block by its fill-in, and pays for the
  supernodal bookkeeping on top (on the 100,000-row 20,000 × 5,000 logistic design a step
  took 2.1–2.4 s with CHOLMOD, 1.2 s with this factor, one BLAS thread each; the whole fits are
  in ``docs/glmm.md``, "A 1,000,000-row crossed logistic design").

:func:`make_factor` picks one.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Callable, Protocol

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from scipy.linalg import lapack

from sparselmm.backends import kernels
from sparselmm.errors import ArgumentError
from sparselmm.threads import dense_step_threads

__all__ = ["PIRLSFactor", "CholmodFactor", "SchurFactor", "SmallSchurFactor", "make_factor", "schur_split", "pcg"]

#: the dense block sizes for which :class:`SchurFactor` is chosen by ``"auto"``
SCHUR_MIN_Q2, SCHUR_MAX_Q2 = 500, 6000
#: most pairs of entries in the rows of ``C`` (the fill's multiply-adds) for ``"auto"``, as the
#: linear model's :func:`sparselmm.backends.schur.schur_eligible`
SCHUR_MAX_PAIRS = 5e9


class PIRLSFactor(Protocol):
    """What PIRLS asks of a factor of ``M``."""

    #: whether a solve with the factor costs much less than a refactor, so that a scoring step
    #: solves by conjugate gradients preconditioned with the last factor (:func:`pcg`) rather
    #: than refactoring at its own weights
    reuse: bool

    def refactor(self, data: np.ndarray) -> float:
        """Factor ``M`` with these values of its lower triangle (the fixed CSC pattern); returns
        ``log det M``.  Raises :class:`numpy.linalg.LinAlgError` when ``M`` is not positive
        definite."""
        ...

    def __call__(self, rhs: np.ndarray) -> np.ndarray:
        """``M⁻¹ rhs`` (a vector or a matrix of columns) with the last factor."""
        ...


class CholmodFactor:
    """CHOLMOD's factor of ``M`` on the pattern of the lower-triangular CSC matrix ``M``,
    analysed once and refactored in place."""

    reuse = False

    def __init__(self, M: sp.csc_matrix) -> None:
        from sksparse.cholmod import analyze

        self._M = M.copy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._f = analyze(self._M)

    def refactor(self, data: np.ndarray) -> float:
        """See :class:`PIRLSFactor`."""
        from sksparse.cholmod import CholmodError

        self._M.data = data
        try:
            self._f.cholesky_inplace(self._M)
        except CholmodError as e:  # not positive definite (non-finite or extreme weights)
            raise np.linalg.LinAlgError(str(e)) from None
        with np.errstate(invalid="ignore", divide="ignore"):
            ld = float(self._f.logdet())
        if not np.isfinite(ld):  # CHOLMOD's supernodal factor flags a non-positive pivot only by its value
            raise np.linalg.LinAlgError("M is not positive definite")
        return ld

    def __call__(self, rhs: np.ndarray) -> np.ndarray:
        """``M⁻¹ rhs`` with the last factor."""
        return self._f(rhs)


def _below_diagonal(M: sp.csc_matrix, q1: int) -> np.ndarray:
    """Positions in ``M.data`` of the first ``q1`` columns' entries other than their first (the
    diagonal, in a lower-triangular CSC with sorted rows)."""
    keep = np.ones(int(M.indptr[q1]), dtype=bool)
    keep[M.indptr[:q1]] = False
    return np.flatnonzero(keep)


def schur_split(M: sp.csc_matrix, q1: int) -> bool:
    """True when the first ``q1`` columns of the lower-triangular CSC ``M`` (sorted rows) hold
    their diagonal and entries below row ``q1`` only — ``M``'s leading block is diagonal."""
    if q1 <= 0 or q1 >= M.shape[0]:
        return False
    ip, ix = M.indptr, M.indices
    if np.any(np.diff(ip[: q1 + 1]) < 1) or np.any(ix[ip[:q1]] != np.arange(q1)):
        return False
    return bool(np.all(ix[_below_diagonal(M, q1)] >= q1))


class _Split:
    """Where the blocks of the lower-triangular CSC ``M`` (leading ``q1 × q1`` block diagonal) sit
    in ``M.data``: ``dpos`` D's entries, ``cpos`` C's (``C = M[q1:, :q1]ᵀ``, row by row), ``rows`` and
    ``cols`` their places in C, ``n1`` where M₂₂'s columns start, ``flat22`` M₂₂'s lower entries
    (row r ≥ column c) as flat positions of ``S[c, r]`` in a C-ordered q₂ × q₂ ``S``: its upper
    triangle, the lower one of the Fortran-ordered ``Sᵀ`` that LAPACK factors."""

    def __init__(self, M: sp.csc_matrix, q1: int) -> None:
        q = M.shape[0]
        ip = M.indptr.astype(np.int64)
        ix = M.indices.astype(np.int64)
        self.q1, self.q2 = q1, q - q1
        self.dpos = ip[:q1]
        self.cpos = _below_diagonal(M, q1)
        self.cnt = np.diff(ip[: q1 + 1]) - 1  # C's entries per row
        self.rows = np.repeat(np.arange(q1, dtype=np.int64), self.cnt)
        self.cols = ix[self.cpos] - q1
        self.n1 = int(ip[q1])
        col = np.repeat(np.arange(q1, q, dtype=np.int64), np.diff(ip[q1:]))
        self.flat22 = (col - q1) * self.q2 + (ix[self.n1 :] - q1)

    def diagonal(self, data: np.ndarray) -> np.ndarray:
        """D's entries of ``data``, refused unless positive."""
        D = data[self.dpos]
        if not np.all(D > 0):
            raise np.linalg.LinAlgError("the diagonal block of M is not positive")
        return D

    def m22(self, S: np.ndarray, data: np.ndarray) -> None:
        """Write M₂₂'s entries of ``data`` into the zeroed ``S``'s upper triangle."""
        S.reshape(-1)[self.flat22] = data[self.n1 :]


def _factor_schur(S: np.ndarray) -> np.ndarray:
    """The lower Cholesky factor of ``S`` from its upper triangle (``Sᵀ`` is Fortran-ordered:
    LAPACK factors it in place, reading its lower triangle)."""
    L, info = lapack.dpotrf(S.T, lower=1, clean=0, overwrite_a=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"the Schur complement is not positive definite (dpotrf info {info})")
    return L


def _block_solve(rhs: np.ndarray, q1: int, D: np.ndarray, C: Any, L: np.ndarray | None, threads: bool) -> np.ndarray:
    """``M⁻¹ rhs`` by block elimination with the factor ``(D, C, L)``: ``x₂ = S⁻¹(b₂ - CᵀD⁻¹b₁)``,
    ``x₁ = D⁻¹(b₁ - C x₂)`` (``C`` sparse or dense; ``L`` empty for ``M = D``; BLAS threads for the
    triangular solves as :func:`~sparselmm.threads.dense_step_threads` allows when ``threads``)."""
    if L is None:
        raise np.linalg.LinAlgError("M has not been factored")
    b = np.asarray(rhs, dtype=float)
    b2d = b if b.ndim == 2 else b[:, None]
    Dc = D[:, None]
    b1, b2 = b2d[:q1], b2d[q1:]
    if L.shape[0] == 0:
        x = b1 / Dc
    else:
        r2 = b2 - np.asarray(C.T @ (b1 / Dc))
        with dense_step_threads() if threads else contextlib.nullcontext():
            x2 = sla.cho_solve((L, True), r2, check_finite=False)
        x = np.vstack([(b1 - np.asarray(C @ x2)) / Dc, x2])
    return x if b.ndim == 2 else x[:, 0]


class SchurFactor:
    """The block factor of ``M`` described in the module's docstring.

    Parameters
    ----------
    M : scipy.sparse.csc_matrix
        The lower triangle of M's pattern, rows sorted in each column, its leading ``q1 × q1``
        block diagonal (:func:`schur_split`).
    q1 : int
        Columns of the diagonal block (the first term's levels).
    """

    reuse = True  # a solve costs 2q₂² flops, a refactor q₂³/3

    def __init__(self, M: sp.csc_matrix, q1: int) -> None:
        sp_ = self._split = _Split(M, q1)
        self.q1, self.q2 = q1, sp_.q2
        c_ptr = np.concatenate([[0], np.cumsum(sp_.cnt)])
        self._C = sp.csr_matrix((np.zeros(len(sp_.cpos)), sp_.cols, c_ptr), shape=(q1, self.q2))
        self._plan = kernels.band_plan(self._C.indptr, self._C.indices, self.q2)
        self._S = np.zeros((self.q2, self.q2))
        self._L: np.ndarray | None = None
        self._D = np.ones(q1)

    def refactor(self, data: np.ndarray) -> float:
        """See :class:`PIRLSFactor`."""
        sp_ = self._split
        D = sp_.diagonal(data)
        C = self._C
        C.data[:] = data[sp_.cpos]
        S = self._S
        S.fill(0.0)
        sp_.m22(S, data)
        kernels.schur_fill(S, C.indptr, C.indices, C.data, 1.0 / D, self._plan)
        self._L = None
        with dense_step_threads():
            L = _factor_schur(S)
        self._D, self._L = D, L
        return float(np.sum(np.log(D)) + 2.0 * np.sum(np.log(np.diag(L))))

    def minv_diag(self) -> np.ndarray:
        """``diag(M⁻¹)`` of the last factor: ``diag(S⁻¹)`` below, and
        ``1/D_j + c_j S⁻¹ c_jᵀ / D_j²`` above (``c_j`` the rows of ``C``; the quadratic forms by the
        compiled loop of :func:`sparselmm.backends.kernels.pair_quad`)."""
        if self._L is None:
            raise np.linalg.LinAlgError("M has not been factored")
        with dense_step_threads():
            Sinv, info = lapack.dpotri(self._L, lower=1)  # the lower triangle of S⁻¹, Fortran order
        if info != 0:
            raise np.linalg.LinAlgError(f"dpotri info {info}")
        C, D = self._C, self._D
        # the lower triangle in Fortran order is the upper one of the C-ordered transpose the loop reads
        quad = kernels.pair_quad(Sinv.T, C.indptr, C.indices, C.data, self._plan)
        return np.concatenate([1.0 / D + quad / (D * D), np.diag(Sinv).copy()])

    def __call__(self, rhs: np.ndarray) -> np.ndarray:
        """``M⁻¹ rhs`` with the last factor, by block elimination (:func:`_block_solve`)."""
        return _block_solve(rhs, self.q1, self._D, self._C, self._L, threads=True)


class SmallSchurFactor:
    """The block factor of ``M`` for a diagonal leading block ``D`` and a small rest (``q₂ <
    SCHUR_MIN_Q2`` and ``q₁·q₂²`` small): ``C`` held dense, ``S = M₂₂ - CᵀD⁻¹C`` by one small BLAS
    product and ``dpotrf``; a single scalar term (``q₂ = 0``) is ``D`` alone.

    VerbAgg's ``(1 | id) + (1 | item)`` (316 × 24) refactors in about a fifth of CHOLMOD's 0.29 ms,
    whose supernodal set-up dominates at that size.  Parameters as :class:`SchurFactor`.
    """

    reuse = False  # a refactor costs about what a solve does

    def __init__(self, M: sp.csc_matrix, q1: int) -> None:
        sp_ = self._split = _Split(M, q1)
        self.q1, self.q2 = q1, sp_.q2
        self._cflat = sp_.rows * self.q2 + sp_.cols  # C[j, l - q1] in C order
        self._C = np.zeros((q1, self.q2))
        self._L: np.ndarray | None = None
        self._D = np.ones(q1)

    def refactor(self, data: np.ndarray) -> float:
        """See :class:`PIRLSFactor`."""
        sp_ = self._split
        D = sp_.diagonal(data)
        ld = float(np.sum(np.log(D)))
        if self.q2 == 0:
            self._D, self._L = D, np.zeros((0, 0))
            return ld
        C = self._C
        C.reshape(-1)[self._cflat] = data[sp_.cpos]
        S = np.zeros((self.q2, self.q2))
        sp_.m22(S, data)
        S -= (C / D[:, None]).T @ C
        self._L = None
        L = _factor_schur(S)
        self._D, self._L = D, L
        return ld + 2.0 * float(np.sum(np.log(np.diag(L))))

    def minv_diag(self) -> np.ndarray:
        """``diag(M⁻¹)`` of the last factor: ``1/D_j + (D⁻¹C S⁻¹ CᵀD⁻¹)_jj`` above, ``diag(S⁻¹)`` below."""
        if self._L is None:
            raise np.linalg.LinAlgError("M has not been factored")
        if self.q2 == 0:
            return 1.0 / self._D
        G = self._C / self._D[:, None]
        Sinv = sla.cho_solve((self._L, True), np.eye(self.q2), check_finite=False)
        return np.concatenate([1.0 / self._D + np.einsum("ij,jk,ik->i", G, Sinv, G), np.diag(Sinv).copy()])

    def __call__(self, rhs: np.ndarray) -> np.ndarray:
        """``M⁻¹ rhs`` by block elimination (:func:`_block_solve`; no thread control at this size)."""
        return _block_solve(rhs, self.q1, self._D, self._C, self._L, threads=False)


#: most multiply-adds of the dense ``CᵀD⁻¹C`` (q₁ · q₂²) for which ``"auto"`` takes
#: :class:`SmallSchurFactor` (VerbAgg: 1.8·10⁵; grouseticks' nested terms, 1.3·10⁷, are sparse, and
#: CHOLMOD refactors them in a fraction of the dense product's 1.5 ms)
SMALL_MAX_FLOPS = 2_000_000


def _diagonal_only(M: sp.csc_matrix) -> bool:
    """Whether the lower-triangular CSC ``M`` holds its diagonal alone (one scalar term)."""
    q = M.shape[0]
    return q > 0 and M.nnz == q and bool(np.all(np.diff(M.indptr) == 1)) and bool(np.all(M.indices == np.arange(q)))


def make_factor(M: sp.csc_matrix, q1: int, kind: str = "auto") -> PIRLSFactor:
    """The factor of ``M`` for PIRLS.

    Parameters
    ----------
    M : scipy.sparse.csc_matrix
        The lower triangle of M's pattern (rows sorted).
    q1 : int
        Levels of the first random-effect term when it is scalar (its block of M diagonal), else 0.
    kind : {"auto", "cholmod", "schur", "small"}
        ``"auto"``: where the leading block is diagonal (or ``M`` is, one scalar term),
        :class:`SmallSchurFactor` when the rest has fewer than :data:`SCHUR_MIN_Q2` columns and
        ``q1·q2²`` is at most :data:`SMALL_MAX_FLOPS`; :class:`SchurFactor` when it has between
        :data:`SCHUR_MIN_Q2` and :data:`SCHUR_MAX_Q2` columns and fewer than ``q1``, and the fill has
        at most :data:`SCHUR_MAX_PAIRS` pairs; otherwise CHOLMOD.  ``"schur"`` and ``"small"``
        require only the diagonal leading block.

    Raises
    ------
    ArgumentError
        ``kind="schur"`` or ``"small"`` where the leading block is not diagonal, or an unknown kind.
    """
    if kind not in ("auto", "cholmod", "schur", "small"):
        raise ArgumentError(f"factor must be 'auto', 'cholmod', 'schur' or 'small', got {kind!r}")
    if kind == "cholmod":
        return CholmodFactor(M)
    split = schur_split(M, q1)
    if q1 == M.shape[0] and _diagonal_only(M):  # one scalar term: M is diagonal
        split = True
    if kind in ("schur", "small"):
        if not split:
            raise ArgumentError(f"factor={kind!r} needs a first term with a diagonal block of M (one column)")
        return SchurFactor(M, q1) if kind == "schur" and q1 < M.shape[0] else SmallSchurFactor(M, q1)
    q2 = M.shape[0] - q1
    if split and q2 < SCHUR_MIN_Q2 and q1 * q2 * q2 <= SMALL_MAX_FLOPS:
        return SmallSchurFactor(M, q1)
    if split and SCHUR_MIN_Q2 <= q2 <= SCHUR_MAX_Q2 and q2 <= q1:
        c = np.diff(M.indptr[: q1 + 1]).astype(np.float64) - 1.0  # entries per row of C
        if float(np.sum(c * (c + 1) / 2)) <= SCHUR_MAX_PAIRS:
            return SchurFactor(M, q1)
    return CholmodFactor(M)


def pcg(matvec: Callable[[np.ndarray], np.ndarray], precond: Callable[[np.ndarray], np.ndarray], B: np.ndarray,
        rtol: float = 1e-11, maxiter: int = 40) -> tuple[np.ndarray, int, bool]:
    """Solve ``A X = B`` for a symmetric positive definite ``A`` by preconditioned conjugate
    gradients, one recurrence per column of ``B``, run side by side (one preconditioner call
    for all the columns per iteration).

    Parameters
    ----------
    matvec : callable
        ``V ↦ A V`` for a ``q × k`` matrix ``V``.
    precond : callable
        ``R ↦ P⁻¹ R`` for a symmetric positive definite ``P ≈ A``.
    B : numpy.ndarray
        ``q`` or ``q × k``.
    rtol : float
        Stop when every column's residual ``‖B - A X‖`` is at most ``rtol·‖B‖``.
    maxiter : int
        Most iterations.

    Returns
    -------
    X : numpy.ndarray
        Shaped as ``B``.
    iterations : int
    converged : bool
    """
    b = np.asarray(B, dtype=float)
    B2 = b if b.ndim == 2 else b[:, None]
    X = np.zeros_like(B2)
    R = B2.copy()
    bnorm = np.linalg.norm(B2, axis=0)
    target = rtol * bnorm
    if np.all(bnorm == 0):
        return (X if b.ndim == 2 else X[:, 0]), 0, True
    Zp = np.asarray(precond(R)).reshape(B2.shape)
    P = Zp.copy()
    rz = np.einsum("ij,ij->j", R, Zp)
    it = 0
    converged = False
    with np.errstate(divide="ignore", invalid="ignore"):
        while it < maxiter:
            it += 1
            AP = matvec(P)
            pap = np.einsum("ij,ij->j", P, AP)
            alpha = np.where(pap > 0, rz / pap, 0.0)
            X += alpha * P
            R -= alpha * AP
            open_ = np.linalg.norm(R, axis=0) > target
            if not np.any(open_):
                converged = True
                break
            if not np.all(np.isfinite(X)) or np.any(open_ & (pap <= 0)):
                break  # A or P not positive definite in floating point: the caller refactors
            Zp = np.asarray(precond(R)).reshape(B2.shape)
            rz_new = np.einsum("ij,ij->j", R, Zp)
            P = Zp + np.where(rz > 0, rz_new / rz, 0.0) * P
            rz = rz_new
    return (X if b.ndim == 2 else X[:, 0]), it, converged
