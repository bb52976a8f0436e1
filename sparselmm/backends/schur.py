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
the products of pairs of entries in the rows of ``A₁₂``, formed by a compiled
loop (:mod:`sparselmm.backends.kernels`).  It also gives ``diag(M⁻¹)`` cheaply
(the same loop's quadratic forms), which the analytic gradient needs.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from scipy.linalg import lapack

from sparselmm.backends import kernels
from sparselmm.backends.base import PLSBackend, PLSProblem, symmetric_csr
from sparselmm.errors import ModelSpecError
from sparselmm.threads import dense_step_threads

__all__ = ["SchurState", "schur_eligible", "DenseSchurPLSState", "dense_schur_eligible", "dense_schur_pays", "lower_counts"]

_REFINE = 1  # refinement steps of single-precision solves (one reaches the log-determinant's rounding)


def schur_eligible(design: PLSProblem, max_dense: int = 20_000, max_pairs: float = 2e10) -> bool:
    """True when the design suits :class:`SchurState`: scalar linear terms, at least two,
    a trailing block of at most ``max_dense`` levels that is smaller than the first term,
    and at most ``max_pairs`` pairs of entries in the rows of ``A₁₂`` (``Σ_j c_j²/2``: the fill's
    multiply-adds; the fill stores nothing per pair, and CHOLMOD's elimination of the first term
    makes the same updates, scattered, and then factors the same dense trailing block).

    The limits are where the block factor was measured, not where it stops paying: the
    MovieLens-shaped design (2.6·10⁸ pairs, 3,706 items) was ~10× faster per θ than CHOLMOD, and the
    MovieLens-32M-cutoff shape (9.7·10⁹ pairs, 16,034 items; the dense block 2 GB in double
    precision) 26 s per θ in double precision against CHOLMOD's 91 s after a set-up of 101 s
    (``docs/performance.md``).  At 20,000 levels
    the block is 3.2 GB in double precision (the search's single-precision block is made only
    once the double one is dropped, and back).
    """
    terms = design.terms
    if len(terms) < 2 or any(t.k != 1 or t.structure.linear_entries() is None for t in terms):
        return False
    q1 = int(design.Gp[1])
    q2 = design.q - q1
    if q2 > max_dense or q1 < q2:
        return False
    # entries per row of A₁₂ (kept with the cross-products: "auto" and the backend both ask); from the
    # lower part where only that is kept (the first term's block is diagonal: a column holds its
    # diagonal and A₂₁), without making the whole ZᵀZ
    if design.cross.lower_part is not None:
        cnt = lower_counts(design).astype(np.float64) - 1.0
    else:
        cnt = design.cross.memo("a12_row_counts", lambda: np.diff(design.cross.ZtZ.tocsr()[:q1, q1:].indptr).astype(np.float64))
    return float(np.sum(cnt * (cnt + 1) / 2)) <= max_pairs


class SchurState(PLSBackend):
    """The PLS state with the block Cholesky factorisation described above.

    :meth:`search_objective` evaluates the objective with the dense factor in single
    precision (half the time of ``dpotrf``), the solves refined against ``M`` in double
    precision; the derivative-free search of the ``"auto"`` optimizer uses it where the
    dense block is large, and every other evaluation is in double precision.
    """

    name = "schur"
    needs = (
        "two or more crossed terms of one column each, the first with at least as many levels as the "
        "later ones, which have at most 20,000 levels in all, and at most 2·10¹⁰ pairs of levels"
    )
    cheap_minv_diag = True
    single_precision_search = True

    @classmethod
    def applies(cls, design: PLSProblem) -> bool:
        """Crossed scalar linear terms with a small trailing block (:func:`schur_eligible`)."""
        return schur_eligible(design)

    @classmethod
    def preferred(cls, design: PLSProblem) -> bool:
        """Where it applies and the first factor has at least 2,000 levels; for cross-products
        kept by their lower part only (a Dask design), also at most 5·10⁷ entries in ``A₁₂``:
        the state makes the whole ``ZᵀZ`` (12 bytes per entry, twice), which that bounds
        at 1.2 GB."""
        if not schur_eligible(design) or int(design.Gp[1]) < 2000:
            return False
        if design.cross.lower_part is None:
            return True
        return float(np.sum(lower_counts(design) - 1)) <= 5e7

    #: whether :meth:`search_objective` may factor in single precision
    low_precision_ok = True
    #: smallest dense block for which single precision is used (below it the saving is small)
    low_precision_min = 1000
    # the factor in hand is single precision / the next evaluation asks for it / a single-precision
    # factor failed once (instance attributes shadow these class defaults when set)
    _low = _want_low = _low_failed = False
    _S: np.ndarray | None = None  # the dense block's buffer, made on the first factorisation

    def _setup_factor(self) -> None:
        d = self.design
        # ZᵀWZ in CSR without a copy; also for the refinement of single-precision solves,
        # M x = Λ(A(Λx)) + x
        A = self._A_sym = symmetric_csr(d.cross.ZtZ)
        q1 = int(d.Gp[1])
        q2 = d.q - q1
        self.q1, self.q2 = q1, q2
        self.a1 = np.asarray(A.diagonal()[:q1], dtype=float)
        A12 = A[:q1, q1:].tocsr()
        A12.sort_indices()
        self.A12 = A12
        A22 = sp.triu(A[q1:, q1:]).tocoo()
        self.a22_l, self.a22_m, self.a22_val = A22.row, A22.col, A22.data
        self.a22_flat = A22.row.astype(np.int64) * q2 + A22.col
        # S -= Σ_j w_j A₁₂[j, l] A₁₂[j, m] over the pairs of entries in each row j of A₁₂: for most rows a
        # compiled loop over the rows, tiled by bands of S's rows (kernels.py; the bands and their split
        # among the threads planned once, on the first fill); rows with more than HEAVY_FRACTION·q₂ entries
        # (heavy-tailed counts: a user with thousands of ratings) densified a chunk at a time and added
        # by one BLAS rank-k update, whose q₂² flops per row then cost less than the row's c²/2 scattered
        # multiply-adds
        cnt = np.diff(A12.indptr)
        heavy = cnt > max(self.HEAVY_MIN, self.HEAVY_FRACTION * q2)
        self._heavy = np.flatnonzero(heavy)
        self._A12H = A12[self._heavy] if len(self._heavy) else None
        # the other rows: where many share one diagonal entry a₁ⱼ (unweighted data: one count of
        # rows, as items answered by ~34 subjects each), they share the weight wⱼ = θ₁²/(θ₁²a₁ⱼ + 1)
        # at every θ, so their part of the fill is w times one Gram matrix made once (_groups)
        grouped = self._groups(A12, ~heavy)
        # the pair loop reads A₁₂ itself, the rows it leaves to the other updates given weight zero
        # (which it skips): no copy of the light rows (320 MB on the MovieLens-32M shape)
        self._light_mask = ~heavy & ~grouped
        self._light = np.flatnonzero(self._light_mask)
        # keeping K for the last θ₁ (_schur) pays where the fill costs much more than the copy of K
        # it saves: pairs of the loop against q₂² (MovieLens shape: 1.4·10⁸ against 1.4·10⁷; the
        # uniform 1M design: 2.5·10⁷ against 2.5·10⁷, where K would be 200 MB for ~0.1 s)
        cl = cnt[self._light].astype(np.float64)
        self._keep_k = (len(d.terms) == 2 and float(np.sum(cl * (cl + 1) / 2)) >= self.KEEP_K_RATIO * q2 * q2
                        and 8 * q2 * q2 <= self.KEEP_K_BYTES)
        self._bands: tuple[np.ndarray, np.ndarray] | None = None
        self._bands_light: tuple[np.ndarray, np.ndarray] | None = None
        self.term2 = np.repeat(np.arange(1, len(d.terms)), np.diff(d.Gp)[1:])

    #: K is kept (two terms) where the pair loop's pairs are at least this many times q₂², and K
    #: (q₂² doubles beside the block itself) takes at most KEEP_K_BYTES (up to q₂ = 16,384)
    KEEP_K_RATIO = 4.0
    KEEP_K_BYTES = 2**31

    #: a set of rows of A₁₂ with one diagonal entry a₁ⱼ is filled from its Gram matrix (stored packed)
    #: when its pairs are at least GROUP_MIN_PAIRS times the packed triangle's entries (one
    #: multiply-add per entry, streamed, against a scattered one per pair), within GROUP_BYTES in all
    GROUP_MIN_PAIRS = 1.0
    GROUP_BYTES = 256 * 2**20

    def _groups(self, A12: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
        """Choose the sets of ``rows`` of ``A₁₂`` with one diagonal entry that are filled from a
        stored Gram matrix (``self._gram``: one packed upper triangle per set, ``self._gram_rep``: a
        row of each set, ``self._triu``: the triangle's positions in ``S``); returns the mask of
        the rows they cover."""
        q1, q2 = self.q1, self.q2
        self._gram = self._gram_rep = self._triu = self._triu_rc = None
        packed = q2 * (q2 + 1) // 2
        budget = int(self.GROUP_BYTES // max(1, 8 * packed))
        out = np.zeros(q1, dtype=bool)
        if budget < 1 or not rows.any():
            return out
        idx = np.flatnonzero(rows)
        vals, inv = np.unique(self.a1[idx], return_inverse=True)
        c = np.diff(A12.indptr)[idx].astype(np.float64)
        pairs = np.bincount(inv, weights=c * (c + 1) / 2, minlength=len(vals))
        keep = np.flatnonzero(pairs >= self.GROUP_MIN_PAIRS * packed)
        keep = keep[np.argsort(-pairs[keep], kind="stable")][:budget]
        if not len(keep):
            return out
        iu = np.triu_indices(q2)
        self._triu = iu[0].astype(np.int64) * q2 + iu[1]
        gram = np.empty((len(keep), packed))
        rep = np.empty(len(keep), dtype=np.int64)
        K = np.empty((q2, q2))
        for g, k in enumerate(keep):
            mine = idx[inv == k]
            rep[g] = mine[0]
            out[mine] = True
            B = A12[mine]
            K.fill(0.0)
            kernels.schur_fill(K, B.indptr, B.indices, B.data, -np.ones(len(mine)),
                               kernels.band_plan(B.indptr, B.indices, q2))
            gram[g] = K.reshape(-1)[self._triu]
        self._gram, self._gram_rep = gram, rep
        return out

    def _group_update(self, Sf: np.ndarray, ww: np.ndarray, lam2: np.ndarray | None) -> None:
        """``S -= Σ_g ww_g G_g`` on ``S``'s upper triangle (``Sf`` flat) for the sets of rows with one
        weight (:meth:`_groups`), their Gram matrices' columns scaled by ``lam2`` when given."""
        with dense_step_threads():
            K = self._gram.T @ ww[self._gram_rep]  # one BLAS gemv over the packed triangles
        if lam2 is not None:
            if self._triu_rc is None:  # made once (three or more terms only)
                self._triu_rc = np.divmod(self._triu, self.q2)
            r, c = self._triu_rc
            K *= lam2[r] * lam2[c]
        Sf[self._triu] -= K

    #: rows of A₁₂ with more than this share of q₂ entries (and more than HEAVY_MIN) are added by a dense
    #: rank-k update, the others by the compiled pair loop (measured: docs/performance.md)
    HEAVY_FRACTION = 0.3
    HEAVY_MIN = 256

    def _plan(self) -> tuple[np.ndarray, np.ndarray]:
        """The band plan of the whole A₁₂ (the quadratic forms of :meth:`minv_diag`)."""
        if self._bands is None:
            self._bands = kernels.band_plan(self.A12.indptr, self.A12.indices, self.q2)
        return self._bands

    def _light_plan(self) -> tuple[np.ndarray, np.ndarray]:
        """The band plan of the rows the pair loop fills."""
        if len(self._light) == self.q1:
            return self._plan()
        if self._bands_light is None:
            self._bands_light = kernels.band_plan(self.A12.indptr, self.A12.indices, self.q2, rows=self._light_mask)
        return self._bands_light

    def _heavy_update(self, S: np.ndarray, ww: np.ndarray, lam2: np.ndarray | None) -> None:
        """``S -= Bᵀ diag(ww) B`` on the upper triangle of ``S`` for the heavy rows ``B`` of A₁₂
        (their columns scaled by ``lam2`` when given), by :func:`dense_rank_update`."""
        chunk = max(1, int(2**22 // max(self.q2, 1)))  # rows per dense chunk (32 MB of float64)
        # Sᵀ is Fortran-ordered, its lower triangle S's upper one
        with dense_step_threads():
            dense_rank_update(S.T, self._A12H, np.sqrt(ww), -1.0, lower=True, chunk=chunk, col_scale=lam2)

    # ----- precision -------------------------------------------------------------
    @property
    def searches_in_single_precision(self) -> bool:
        """Whether :meth:`search_objective` factors in single precision (a large enough dense
        block, and no failure of a single-precision factor so far)."""
        return self.low_precision_ok and not self._low_failed and self.q2 >= self.low_precision_min

    def search_objective(self, theta: np.ndarray, REML: bool = True) -> float:
        """The objective at θ with the dense factor in single precision where that pays.

        The log-determinant then carries the single-precision rounding of ``S``'s factor
        (measured on InstEval: 1e-5 on a deviance of 237,722; the condition number of ``S``
        enters linearly); the solves are refined once against ``M`` in double precision,
        so ``β`` and the penalised residual sum agree with double precision's to ~1e-11.  For a
        derivative-free search far from its stopping tolerance, not for finite differences.

        Parameters
        ----------
        theta : numpy.ndarray
            The relative covariance parameters.
        REML : bool
            REML criterion (default) or profiled deviance.

        Returns
        -------
        float
            The objective on lme4's scale, ``inf`` where the factorisation fails.
        """
        self._want_low = self.searches_in_single_precision
        try:
            return self.objective(theta, REML)
        finally:
            self._want_low = False

    def update(self, theta: np.ndarray) -> bool:
        """As :meth:`PLSBackend.update`, in the precision asked for (single only inside :meth:`search_objective`)."""
        if self._want_low != self._low:
            # the factor in hand is of the other precision: the next θ is factored anew, and the
            # buffer of the other type is dropped before one of this type is made
            self._low = self._want_low
            self._theta_key = None
            self._S = self._L = None  # the factor is a view of the buffer: both go
        return super().update(theta)

    def _factorize(self, blocks: list[np.ndarray]) -> bool:
        th1 = float(blocks[0][0, 0])
        lam2 = np.array([b[0, 0] for b in blocks[1:]])[self.term2 - 1]
        D = th1 * th1 * self.a1 + 1.0
        S = self._schur(th1 * th1 / D, lam2, th1)
        potrf = lapack.spotrf if S.dtype == np.float32 else lapack.dpotrf
        with dense_step_threads():
            # Sᵀ is Fortran-ordered, so LAPACK factors it in place (no q₂² copy); its lower
            # triangle is the upper one filled by _schur: S = L Lᵀ
            L, info = potrf(S.T, lower=1, clean=0, overwrite_a=1)
        if info != 0 and S.dtype == np.float32:
            # not positive definite in single precision: double precision from here on (the
            # single-precision buffer released before the double-precision one is made)
            self._low = self._want_low = False
            self._low_failed = True
            self._S = self._L = None
            del S, L
            return self._factorize(blocks)
        if info != 0:
            return False
        self._th1, self._lam2, self._D, self._L = th1, lam2, D, L
        return True

    def _schur(self, w: np.ndarray, lam2: np.ndarray, th1: float | None = None) -> np.ndarray:
        """The upper triangle of ``S = Λ₂(A₂₂ - A₂₁ diag(w) A₁₂)Λ₂ + I``, filled only where it is
        nonzero; LAPACK reads nothing else.

        With one trailing term (``Λ₂ = λI``) and a fill that costs much more than a copy of the
        block (``_keep_k``), ``S = λ²K + I`` from ``K = A₂₂ - A₂₁ diag(w) A₁₂`` (double precision,
        rounded once into a single-precision ``S``), which depends on θ₁ alone
        (``w = θ₁²/(θ₁²a₁ + 1)``): it is kept for the last θ₁ given (``th1``), so that points
        differing in λ only — half the finite-difference stencil of the convergence check — skip
        the fill.  K is q₂² doubles beside S (110 MB on the MovieLens shape)."""
        q2 = self.q2
        # one q₂ × q₂ buffer for the life of the state, refilled per θ (the previous factor lives in it:
        # a fresh array would hold two at once, 200 MB each at q₂ = 5000)
        S = self._S
        if S is None:
            S = self._S = np.zeros((q2, q2), dtype=np.float32 if self._low else np.float64)
        two = len(self.design.terms) == 2
        if two and th1 is not None and self._keep_k:
            if self._K is None or self._K_th1 != th1:
                if self._K is None:
                    # zeros: the fill writes K's upper triangle only, and S = λ²K is formed whole
                    # (a lower triangle of stale memory could overflow there)
                    self._K = np.zeros((q2, q2))
                self._K_th1 = None
                self._fill(self._K, w, None, 1.0)
                self._K_th1 = th1
            lam = float(lam2[0])
            np.multiply(self._K, lam * lam, out=S)  # only the upper triangle is read
        elif two:  # one trailing term: Λ₂ = λ I
            lam = float(lam2[0])
            self._fill(S, w * (lam * lam), None, lam * lam)
        else:
            self._fill(S, w, lam2, 1.0)
        S.reshape(-1)[:: q2 + 1] += 1.0
        return S

    _K: np.ndarray | None = None  # K of the last θ₁ (two terms), double precision
    _K_th1: float | None = None

    def _fill(self, T: np.ndarray, ww: np.ndarray, col_scale: np.ndarray | None, a22_scale: float) -> None:
        """``T``'s upper triangle set to ``a22_scale·A₂₂ - Σⱼ wwⱼ cⱼcⱼᵀ`` over the rows ``cⱼ`` of
        ``A₁₂`` (their columns scaled by ``col_scale`` when given, ``A₂₂``'s entries then by
        ``col_scale`` on both sides): the pair loop, the heavy rows' rank update and the sets of
        rows with one weight."""
        Tf = T.reshape(-1)
        A12 = self.A12
        vals = A12.data if col_scale is None else A12.data * col_scale[A12.indices]
        # in single precision too the kernel sums in double precision (vals and w as they are)
        # rows left to the rank update or the Gram matrices: weight zero, which the loop skips
        light_w = ww if len(self._light) == self.q1 else np.where(self._light_mask, ww, 0.0)
        if len(self._light):
            # written over the upper triangle, band by band: no pass to zero T first
            kernels.schur_fill(T, A12.indptr, A12.indices, vals, light_w, self._light_plan(), overwrite=True)
        else:
            T.fill(0.0)
        if col_scale is None:
            Tf[self.a22_flat] += self.a22_val * a22_scale
        else:
            Tf[self.a22_flat] += self.a22_val * col_scale[self.a22_l] * col_scale[self.a22_m]
        if self._A12H is not None:
            self._heavy_update(T, ww[self._heavy], col_scale)
        if self._gram is not None:
            self._group_update(Tf, ww, col_scale)

    def _logdet(self) -> float:
        return float(np.sum(np.log(self._D)) + 2.0 * np.sum(np.log(np.diag(self._L).astype(np.float64))))

    def solve_M(self, rhs: np.ndarray) -> np.ndarray:
        """``M⁻¹ rhs`` by block elimination (refined against ``M`` when the factor is single precision)."""
        b = rhs if rhs.ndim == 2 else rhs[:, None]
        x = self._block_solve(b)
        if self._L.dtype == np.float32:
            lam = np.concatenate([np.full(self.q1, self._th1), self._lam2])[:, None]
            for _ in range(_REFINE):  # each step gains a factor ~cond(S)·6e-8
                x += self._block_solve(b - (lam * (self._A_sym @ (lam * x)) + x))
        return x if rhs.ndim == 2 else x[:, 0]

    def _block_solve(self, b: np.ndarray) -> np.ndarray:
        q1 = self.q1
        th1, lam2, D = self._th1, self._lam2, self._D
        b1, b2 = b[:q1], b[q1:]
        y1 = b1 / D[:, None]
        r2 = b2 - lam2[:, None] * (th1 * (self.A12.T @ y1))
        with dense_step_threads():
            if self._L.dtype == np.float32:
                x2 = lapack.spotrs(self._L, r2.astype(np.float32), lower=1)[0].astype(np.float64)
            else:
                x2 = sla.cho_solve((self._L, True), r2, check_finite=False)
        x1 = (b1 - th1 * (self.A12 @ (lam2[:, None] * x2))) / D[:, None]
        return np.vstack([x1, x2])

    def minv_diag(self) -> np.ndarray:
        """``diag(M⁻¹)``: ``diag(S⁻¹)`` below, ``1/D + θ₁² (A₁₂Λ₂S⁻¹Λ₂A₁₂ᵀ)_jj / D²`` above."""
        if self._L.dtype == np.float32:  # after a search evaluation: the factor again in double precision
            self.update(self.theta)
        with dense_step_threads():
            Sinv, info = lapack.dpotri(self._L, lower=1)  # lower triangle of S⁻¹
        lam2 = self._lam2
        # (A₁₂Λ₂S⁻¹Λ₂A₁₂ᵀ)_jj: the quadratic form of each row of A₁₂Λ₂ in S⁻¹ (its lower triangle
        # in LAPACK's order is the upper one of the C-ordered transpose the kernel reads)
        A12 = self.A12
        quad = kernels.pair_quad(Sinv.T, A12.indptr, A12.indices, A12.data * lam2[A12.indices], self._plan())
        D = self._D
        return np.concatenate([1.0 / D + self._th1**2 * quad / D**2, np.diag(Sinv)])


# ----------------------------------------------------------------------------------------
# the dense variant: no pair table, one dsyrk per θ


def dense_rank_update(K: np.ndarray, rows: sp.csr_matrix, sw: np.ndarray, alpha: float, *, lower: bool,
                      chunk: int, col_scale: np.ndarray | None = None) -> None:
    """``K += alpha · Bᵀ B`` in place on one triangle of the Fortran-ordered ``K`` (q₂ × q₂), for
    ``B = diag(sw) · rows · diag(col_scale)``, by BLAS ``syrk`` on dense chunks of ``chunk`` rows
    (single precision for a float32 ``K``).

    Parameters
    ----------
    K : numpy.ndarray
        Fortran-ordered, float64 or float32; only its ``lower`` (or upper) triangle is written.
    rows : scipy.sparse.csr_matrix
        The rows of ``B`` before scaling (rows of ``A₁₂``).
    sw : numpy.ndarray
        Row scale (the square roots of the weights).
    alpha : float
        Multiplier of ``BᵀB``.
    lower : bool
        Which triangle of ``K``.
    chunk : int
        Rows densified at a time.
    col_scale : numpy.ndarray, optional
        Column scale (``Λ₂``'s diagonal).
    """
    from scipy.linalg.blas import dsyrk, ssyrk

    syrk = ssyrk if K.dtype == np.float32 else dsyrk
    for lo in range(0, rows.shape[0], chunk):
        hi = min(rows.shape[0], lo + chunk)
        B = rows[lo:hi].toarray()
        if col_scale is not None:
            B *= col_scale[None, :]
        B *= sw[lo:hi, None]
        # Bᵀ is Fortran-ordered: BLAS reads it in place, K += alpha·Bᵀ(Bᵀ)ᵀ
        out = syrk(alpha, B.T.astype(K.dtype, copy=False), beta=1.0, c=K, trans=0, lower=int(lower), overwrite_c=1)
        if not np.shares_memory(out, K):  # pragma: no cover - f2py copies only a non-contiguous c
            K[...] = out


def lower_counts(design: PLSProblem) -> np.ndarray:
    """Stored entries per column of the first ``Gp[1]`` columns of ``ZᵀWZ``'s lower part
    (1 + the level pairs of that level with the later terms)."""
    q1 = int(design.Gp[1])
    L = design.cross.lower_part
    if L is not None:
        return np.diff(L.indptr)[:q1]
    A = design.cross.ZtZ.tocsc()
    col = np.diff(A.indptr)[:q1]
    return col  # the first term's block is diagonal: the column holds the diagonal and A₂₁


def dense_schur_eligible(design: PLSProblem, max_dense: int = 6000) -> bool:
    """True when :class:`DenseSchurPLSState` applies: at least two terms, all scalar with a
    linear structure, the first term's block of ``ZᵀWZ`` diagonal (one factor: always), and
    the remaining ``q₂`` random effects at most ``max_dense`` and fewer than the first term's."""
    terms = design.terms
    if len(terms) < 2 or any(t.k != 1 or t.structure.linear_entries() is None for t in terms):
        return False
    q1 = int(design.Gp[1])
    q2 = design.q - q1
    return q2 <= max_dense and q1 >= q2


def dense_schur_pays(design: PLSProblem, ratio: float = 0.02) -> bool:
    """Whether the dense Schur factorisation beats a sparse one for this design.

    A sparse factorisation eliminating the first factor costs ``Σ_j c_j²`` flops
    (``c_j``: level pairs in row ``j`` of ``A₁₂``), scattered and slow per flop (CHOLMOD
    makes width-1 supernodes here); the dense one ``q₁ q₂²`` BLAS-3 flops.  Measured on
    this project's 2-core machine the dense flops are ~50 times faster, so dense wins
    once ``Σ_j c_j² > ratio · q₁ q₂²`` (and the first factor has ≥ 2,000 levels).
    """
    if not dense_schur_eligible(design) or int(design.Gp[1]) < 2000:
        return False
    q1 = int(design.Gp[1])
    q2 = design.q - q1
    c = lower_counts(design).astype(np.float64) - 1.0
    return float(np.sum(c * c)) > ratio * q1 * q2 * q2


class DenseSchurPLSState(SchurState):
    """Block Cholesky PLS for crossed scalar terms whose cross block is dense-ish.

    With ``A = ZᵀWZ`` split after the first term (``q₁`` levels, diagonal block
    ``diag(a₁)``) and ``Λ = diag(θ₁ I, Λ₂)``:

    .. math::

        M = \\begin{pmatrix} D & θ_1 A_{12} Λ_2 \\\\ θ_1 Λ_2 A_{21} & Λ_2 A_{22} Λ_2 + I \\end{pmatrix},
        \\quad D = θ_1^2 a_1 + 1,

        S = Λ_2 (A_{22} - A_{21} \\, \\mathrm{diag}(θ_1^2 / D) \\, A_{12}) Λ_2 + I = R^T R,

        \\log\\det M = \\sum \\log D + 2 \\sum \\log R_{ii}.

    ``A₂₁ diag(w) A₁₂`` is formed with dense BLAS (``dsyrk``) on row chunks of
    ``A₁₂`` densified on the fly, ``O(q₁ q₂²)`` flops and ``O(q₂²)`` memory per θ —
    far cheaper than a sparse supernodal factorisation when most level pairs
    occur (10⁸ rows on 100,000 × 2,000 levels fill 40% of ``A₁₂``), and with no
    per-pair storage.  Results equal CHOLMOD's (:class:`~sparselmm.backends.cholmod.PLSState`).
    """

    name = "schur_dense"
    needs = (
        "two or more crossed terms of one column each, the first with at least as many levels as the "
        "later ones, which have at most 6,000 levels in all"
    )
    single_precision_search = False
    cheap_minv_diag = False
    low_precision_ok = False  # S comes from dsyrk in double precision

    @classmethod
    def applies(cls, design: PLSProblem) -> bool:
        """Two or more scalar linear terms, a trailing block of at most 6,000 levels
        (:func:`dense_schur_eligible`)."""
        return dense_schur_eligible(design)

    @classmethod
    def preferred(cls, design: PLSProblem) -> bool:
        """Where most level pairs occur (:func:`dense_schur_pays`)."""
        return dense_schur_pays(design)

    def _setup_factor(self) -> None:
        d = self.design
        L = d.cross.lower_part
        A = (d.cross.ZtZ if L is None else L).tocsc()
        q1 = int(d.Gp[1])
        q2 = d.q - q1
        left = A[:, :q1]  # columns of the first term: its diagonal block and A₂₁
        if left[:q1].nnz != q1 or np.any(left[:q1].diagonal() <= 0):
            raise ModelSpecError("the first term's block of Z'WZ is not diagonal")
        self.q1, self.q2 = q1, q2
        self.a1 = np.asarray(left[:q1].diagonal(), dtype=float)
        self.A12 = left[q1:].T.tocsr()  # q1 × q2 (A is symmetric)
        self.A12.sort_indices()
        del left
        A22 = A[q1:, q1:].toarray()
        if L is not None:  # only the lower triangle is stored
            A22 = np.tril(A22) + np.tril(A22, -1).T
        self.A22 = A22
        self.term2 = np.repeat(np.arange(1, len(d.terms)), np.diff(d.Gp)[1:])
        self.chunk = max(1, int(2**23 // max(q2, 1)))  # rows per dense chunk (64 MB)
        self.factor = None

    def _cross_gram(self, w: np.ndarray) -> np.ndarray:
        """``A₂₁ diag(w) A₁₂`` (q₂ × q₂, symmetric) with dense BLAS, chunk by chunk."""
        q2 = self.q2
        K = np.zeros((q2, q2), order="F")
        dense_rank_update(K, self.A12, np.sqrt(w), 1.0, lower=False, chunk=self.chunk)
        return np.triu(K) + np.triu(K, 1).T

    def _schur(self, w: np.ndarray, lam2: np.ndarray, th1: float | None = None) -> np.ndarray:
        """``S = Λ₂(A₂₂ - A₂₁ diag(w) A₁₂)Λ₂ + I``, dense (``th1`` unused: nothing is kept between θ)."""
        with dense_step_threads():
            K = self._cross_gram(w)
        S = (self.A22 - K) * lam2[:, None] * lam2[None, :]
        S[np.diag_indices_from(S)] += 1.0
        return S

    # diag(M⁻¹) needs the pair table this class does without: the gradient falls back to solves
    minv_diag = PLSBackend.minv_diag
