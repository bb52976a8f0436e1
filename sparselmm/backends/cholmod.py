"""Penalised least squares for a given θ, on a sparse Cholesky factor.

For relative covariance factor Λ = Λ(θ) and the cross-products of
:class:`~sparselmm.modelframe.CrossProducts` (``A = ZᵀWZ``), the PLS problem

.. math:: \\min_{u, β}\\ \\|W^{1/2}(y - Xβ - ZΛu)\\|^2 + \\|u\\|^2

is solved through the sparse Cholesky factor ``L Lᵀ = P (ΛᵀAΛ + I) Pᵀ``
(CHOLMOD; symbolic analysis once, numeric refactorisation per θ) and the
dense Schur complement of the fixed effects:

.. math::

    M &= ΛᵀAΛ + I, \\qquad B = ΛᵀZᵀWX, \\qquad c = ΛᵀZᵀWy,\\\\
    R_Xᵀ R_X &= XᵀWX - Bᵀ M^{-1} B,\\\\
    β &= (R_XᵀR_X)^{-1} (XᵀWy - Bᵀ M^{-1} c),\\qquad u = M^{-1}(c - Bβ),\\\\
    \\text{pwrss} &= yᵀWy - cᵀM^{-1}c - β̂ᵀ(XᵀWy - BᵀM^{-1}c).

``log|L|² = log det M``, ``log|R_X|² = log det(R_XᵀR_X)``.  Nothing here
touches the n observations.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING

import numpy as np
import scipy.linalg as sla
from scipy.linalg import lapack
import scipy.sparse as sp

from sparselmm.errors import ModelSpecError

if TYPE_CHECKING:  # pragma: no cover
    from sparselmm.frame.modelframe import Design

__all__ = ["PLSState", "objective_from_parts"]

LOG2PI = float(np.log(2 * np.pi))


def objective_from_parts(ldL2: float, ldRX2: float, pwrss: float, n: int, p: int, REML: bool, ldW: float = 0.0) -> float:
    """lme4's profiled objective from the PLS pieces.

    ML deviance ``ldL2 - ldW + n (1 + log(2π pwrss / n))``; REML criterion
    ``ldL2 - ldW + ldRX2 + (n - p)(1 + log(2π pwrss / (n - p)))``.
    """
    if pwrss <= 0 or not np.isfinite(pwrss):
        return np.inf
    if REML:
        nmp = n - p
        return ldL2 - ldW + ldRX2 + nmp * (1.0 + LOG2PI + np.log(pwrss / nmp))
    return ldL2 - ldW + n * (1.0 + LOG2PI + np.log(pwrss / n))


def rx_inverse_gram(RX: np.ndarray) -> np.ndarray:
    """``(R_XᵀR_X)⁻¹`` from the upper-triangular ``R_X`` (p × p; empty for p = 0).

    Parameters
    ----------
    RX : numpy.ndarray

    Returns
    -------
    numpy.ndarray
    """
    p = RX.shape[0]
    if p == 0:
        return np.zeros((0, 0))
    Rinv = sla.solve_triangular(RX, np.eye(p), lower=False)
    return Rinv @ Rinv.T


def _entries(A: sp.spmatrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rows, columns, values)`` of the stored entries of a sparse matrix; a CSC matrix's own
    arrays, columns expanded from its pointers (a COO copy costs ~0.1 ms of scipy's checks)."""
    if A.format == "csc":
        return A.indices, np.repeat(np.arange(A.shape[1]), np.diff(A.indptr)), A.data
    A = A.tocoo()
    return A.row, A.col, A.data


def _symmetric_csr(A: sp.spmatrix) -> sp.csr_matrix:
    """A symmetric matrix (``ZᵀWZ``) in CSR: a CSC matrix's arrays read as CSR are the same
    matrix, so no copy is made."""
    if A.format == "csc":
        return sp.csr_matrix((A.data, A.indices, A.indptr), shape=A.shape)
    return A.tocsr()


class _BlockProduct:
    """Computes the entries of ``ΛᵀAΛ`` on a fixed pattern from per-term blocks.

    Λ is block diagonal with one ``k_t × k_t`` block ``T_t`` per level of term
    ``t``; the ``(a, b)`` block of ``ΛᵀAΛ`` (level ``a`` of term ``s``, level
    ``b`` of term ``t``) is ``T_sᵀ A_ab T_t``.  The dense blocks ``A_ab`` are
    gathered once; per θ one batched product per pair of terms and one
    gather fill the CSC data of ``M``.
    """

    def __init__(self, design: "Design") -> None:
        Gp = design.Gp
        ks = np.array([t.k for t in design.terms])
        term_of = np.repeat(np.arange(len(ks)), np.diff(Gp))
        ri, ci, vals = _entries(design.cross.ZtZ)
        ri, ci = ri.astype(np.int64), ci.astype(np.int64)
        s, t = term_of[ri], term_of[ci]
        a, ia = np.divmod(ri - Gp[s], ks[s])
        b, jb = np.divmod(ci - Gp[t], ks[t])
        self.pairs: list[tuple[int, int, np.ndarray]] = []  # (s, t, blocks (nb, ks, kt))
        rows_all, cols_all = [], []
        for si in range(len(ks)):
            for ti in range(len(ks)):
                sel = (s == si) & (t == ti)
                if not sel.any():
                    continue
                key = a[sel] * (Gp[ti + 1] - Gp[ti]) + b[sel]
                uk, inv = np.unique(key, return_inverse=True)
                k1, k2 = int(ks[si]), int(ks[ti])
                blocks = np.zeros((len(uk), k1, k2))
                blocks[inv, ia[sel], jb[sel]] = vals[sel]
                # a term with itself: only level blocks on the diagonal, each symmetric
                sym = si == ti and k1 > 1 and bool(np.array_equal(blocks, blocks.transpose(0, 2, 1)))
                self.pairs.append((si, ti, blocks, sym))
                la, lb = np.divmod(uk, Gp[ti + 1] - Gp[ti])
                ii, jj = np.meshgrid(np.arange(k1), np.arange(k2), indexing="ij")
                rows_all.append((Gp[si] + la[:, None, None] * k1 + ii[None]).ravel())
                cols_all.append((Gp[ti] + lb[:, None, None] * k2 + jj[None]).ravel())
        rows = np.concatenate(rows_all)
        cols = np.concatenate(cols_all)
        lower = rows >= cols  # CHOLMOD reads the lower triangle only
        self.keep = np.flatnonzero(lower)
        q = int(Gp[-1])
        # CSC order of the kept entries (each (row, column) once): by column, then row
        rk, ck = rows[lower], cols[lower]
        order = np.lexsort((rk, ck))
        self.gather = self.keep[order]
        indptr = np.concatenate([[0], np.cumsum(np.bincount(ck, minlength=q))])
        idx_t = np.int32 if len(order) < 2**31 else np.int64
        self.M = sp.csc_matrix((np.ones(len(order)), rk[order].astype(idx_t), indptr.astype(idx_t)), shape=(q, q))
        self.flat = np.empty(len(rows))

    def fill(self, blocks: list[np.ndarray]) -> sp.csc_matrix:
        """Set ``M.data`` to the lower triangle of ``ΛᵀAΛ`` for the given ``T_t`` blocks."""
        pos = 0
        flat = self.flat
        for si, ti, B, sym in self.pairs:
            Ts, Tt = blocks[si], blocks[ti]
            if Ts.shape == (1, 1) and Tt.shape == (1, 1):
                m = B.size
                np.multiply(B.reshape(-1), Ts[0, 0] * Tt[0, 0], out=flat[pos : pos + m])
            elif sym:
                # TᵀB_lT for symmetric B_l by two 2-D products (one BLAS call each, ~3x faster than the
                # batched product): Y_l = B_l T, then (Y_lᵀ T) = (TᵀB_lT)ᵀ = TᵀB_lT
                nb, k, _ = B.shape
                Y = B.reshape(-1, k) @ Tt
                prod = Y.reshape(nb, k, k).transpose(0, 2, 1).reshape(-1, k) @ Ts
                m = prod.size
                flat[pos : pos + m] = prod.reshape(-1)
            else:
                prod = Ts.T @ B @ Tt
                m = prod.size
                flat[pos : pos + m] = prod.reshape(-1)
            pos += m
        self.M.data = flat[self.gather]
        return self.M


class PLSState:
    """The θ-dependent state of a linear mixed model (lme4's ``merPredD``).

    Holds the CHOLMOD factor (symbolic analysis done once at construction)
    and, after :meth:`update`, the pieces of the PLS solution for the current θ.

    Parameters
    ----------
    design : Design
    mode : {"auto", "supernodal", "simplicial"}
        CHOLMOD's factorisation kind.
    ordering_method : str
        CHOLMOD's fill-reducing ordering (``"default"``, ``"amd"``, ``"metis"``, ``"nesdis"``, ``"natural"``).
    """

    def __init__(self, design: "Design", mode: str = "auto", ordering_method: str = "default") -> None:
        self.design = design
        cp = design.cross
        self.n, self.p, self.q = cp.n, design.p, design.q
        if self.n <= self.p:
            raise ModelSpecError(f"{self.n} observations for {self.p} fixed effects: too few to fit")
        self._setup_factor(mode, ordering_method)
        # right-hand sides [ZᵀWX | ZᵀWy], reshaped per term for the blockwise Λᵀ product
        self._rhs0 = np.column_stack([cp.ZtX, cp.Zty]) if self.p else cp.Zty[:, None].copy()
        self._rhs = np.empty_like(self._rhs0)
        self.theta: np.ndarray | None = None
        self._theta_key: bytes | None = None
        self.ok = False

    # ----- the factorisation (CHOLMOD here; see SchurState) ---------------------------
    def _setup_factor(self, mode: str, ordering_method: str) -> None:
        """Symbolic analysis of the pattern of ``ΛᵀAΛ + I``, once."""
        from sksparse.cholmod import analyze

        self._prod = _BlockProduct(self.design)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.factor = analyze(self._prod.M, mode=mode, ordering_method=ordering_method)

    def _factorize(self, blocks: list[np.ndarray]) -> bool:
        """Numeric refactorisation of ``ΛᵀAΛ + I`` for the blocks of Λ; False on failure."""
        M = self._prod.fill(blocks)
        try:
            self.factor.cholesky_inplace(M, beta=1.0)
        except Exception:  # CHOLMOD: not positive definite, or a numerical failure
            return False
        return True

    def _logdet(self) -> float:
        """``log det(ΛᵀAΛ + I) = log|L|²``."""
        return float(self.factor.logdet())

    # ----- θ -> blocks ------------------------------------------------------------
    def blocks(self, theta: np.ndarray) -> list[np.ndarray]:
        """The relative factor block ``T_t`` of every term at θ."""
        d = self.design
        return [t.structure.block(theta[sl]) for t, sl in zip(d.terms, d.theta_slices)]

    def _lambda_t_times(self, blocks: list[np.ndarray], R: np.ndarray, out: np.ndarray) -> np.ndarray:
        """``out = Λᵀ R`` for a dense q × m matrix R, blockwise."""
        Gp = self.design.Gp
        m = R.shape[1]
        for T, lo, hi in zip(blocks, Gp[:-1], Gp[1:]):
            k = T.shape[0]
            seg = R[lo:hi].reshape(-1, k, m)
            if k == 1:
                np.multiply(R[lo:hi], T[0, 0], out=out[lo:hi])
            else:
                out[lo:hi] = (T.T @ seg).reshape(-1, m)
        return out

    def lambda_times(self, theta: np.ndarray, u: np.ndarray, blocks: list[np.ndarray] | None = None) -> np.ndarray:
        """``b = Λ(θ) u`` for a vector or a q × m matrix ``u`` (``blocks``: θ's blocks, when in hand)."""
        Gp = self.design.Gp
        u2 = u[:, None] if u.ndim == 1 else u
        out = np.empty_like(u2, dtype=float)
        for T, lo, hi in zip(self.blocks(theta) if blocks is None else blocks, Gp[:-1], Gp[1:]):
            k = T.shape[0]
            out[lo:hi] = (T @ u2[lo:hi].reshape(-1, k, u2.shape[1])).reshape(-1, u2.shape[1])
        return out[:, 0] if u.ndim == 1 else out

    # ----- the hot path -----------------------------------------------------------
    def update(self, theta: np.ndarray) -> bool:
        """Refactor and solve the PLS problem at θ; return False if the factorisation failed."""
        theta = np.asarray(theta, dtype=float)
        key = theta.tobytes()  # a repeated θ (the optimiser's final point, the model's set-up) is not redone
        if key == self._theta_key:
            return self.ok
        self._theta_key = key
        self.theta = theta.copy()
        self.ok = False
        blocks = self.blocks(theta)
        if not self._factorize(blocks):
            return False
        self.ldL2 = self._logdet()
        if not np.isfinite(self.ldL2):
            return False
        G, sol = self._rhs_solution(blocks)
        cp, p = self.design.cross, self.p
        if p:
            RX, info = lapack.dpotrf(cp.XtX - G[:p, :p], lower=0, clean=1)  # reads the upper triangle
            if info != 0:
                return False
            r = cp.Xty - G[:p, p]
            beta, info = lapack.dpotrs(RX, r, lower=0)
            self.ldRX2 = 2.0 * sum(map(math.log, RX.diagonal().tolist()))  # p is small: no numpy calls
            self.RX = RX
            self.V = sol[:, :p]  # M⁻¹ΛᵀZᵀX, reused by the gradient
            self.beta = beta
            self.u = sol[:, p] - self.V @ beta
            self.pwrss = float(cp.yty - G[p, p] - r @ beta)
        else:
            self.ldRX2 = 0.0
            self.RX = np.zeros((0, 0))
            self.beta = np.zeros(0)
            self.u = sol[:, 0]
            self.pwrss = float(cp.yty - G[0, 0])
        self.blocks_ = blocks
        self.ok = bool(np.isfinite(self.pwrss) and self.pwrss > 0)
        return self.ok

    def _rhs_solution(self, blocks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """``G = [B c]ᵀM⁻¹[B c]`` and ``M⁻¹[B c]`` for ``[B c] = Λᵀ[ZᵀWX | ZᵀWy]``, with the current factor."""
        rhs = self._lambda_t_times(blocks, self._rhs0, self._rhs)
        sol = self.solve_M(rhs)
        return rhs.T @ sol, sol

    def objective(self, theta: np.ndarray, REML: bool = True) -> float:
        """Profiled deviance (ML) or REML criterion at θ, lme4's scale; ``inf`` on failure."""
        if not self.update(theta):
            return np.inf
        return objective_from_parts(self.ldL2, self.ldRX2, self.pwrss, self.n, self.p, REML, self.design.cross.ldW)

    # ----- after the fit ----------------------------------------------------------
    def sigma(self, REML: bool) -> float:
        """Residual SD at the current θ: ``sqrt(pwrss / (n - p))`` (REML) or ``sqrt(pwrss / n)`` (ML)."""
        return float(np.sqrt(self.pwrss / (self.n - self.p if REML else self.n)))

    def b(self) -> np.ndarray:
        """Conditional modes of the random effects on the original scale, ``b = Λu``."""
        return self.lambda_times(self.theta, self.u)

    def unscaled_vcov(self) -> np.ndarray:
        """``(R_XᵀR_X)^{-1}``: the fixed-effects covariance divided by σ²."""
        return rx_inverse_gram(self.RX)

    def solve_M(self, rhs: np.ndarray) -> np.ndarray:
        """``M^{-1} rhs`` with the current factor, ``M = ΛᵀAΛ + I``."""
        return self.factor(rhs)

    def minv_diag_blocks(self, budget: float = 2e7) -> list[np.ndarray]:
        """Per term, the ``(nlevels, k, k)`` diagonal blocks of ``M⁻¹``, by solves against
        chunks of whole level blocks of unit vectors (``q`` solves in all, ``budget`` doubles at a time)."""
        d = self.design
        q = self.q
        chunk = max(1, min(q, int(budget // max(q, 1))))
        out = []
        for t, lo, hi in zip(d.terms, d.Gp[:-1], d.Gp[1:]):
            k = t.k
            per = max(k, (chunk // k) * k)
            blocks = np.zeros((t.nlevels, k, k))
            for s in range(lo, hi, per):
                e = min(hi, s + per)
                E = np.zeros((q, e - s))
                E[np.arange(s, e), np.arange(e - s)] = 1.0
                nb = (e - s) // k
                Sb = self.solve_M(E)[s:e].reshape(nb, k, nb, k)  # rows and columns s..e of M⁻¹
                idx = np.arange(nb)
                blocks[(s - lo) // k : (s - lo) // k + nb] = Sb[idx, :, idx, :]
            out.append(blocks)
        return out

    def minv_diag(self) -> np.ndarray:
        """``diag(M⁻¹)`` (from :meth:`minv_diag_blocks`; cheaper in :class:`~sparselmm.schur.SchurState`)."""
        return np.concatenate([np.diagonal(b, axis1=1, axis2=2).ravel() for b in self.minv_diag_blocks()])


# ----------------------------------------------------------------------------------------
# analytic gradient of the profiled objective


def _term_entries(structure: object) -> list[tuple[int, int, int]] | None:
    """(parameter index, row, column) of every entry of ``T`` that a parameter sets linearly,
    or None when the structure is not linear in its parameters."""
    name = getattr(structure, "name", "")
    k = structure.k  # type: ignore[attr-defined]
    if name == "us":
        out = []
        i = 0
        for c in range(k):
            for r in range(c, k):
                out.append((i, r, c))
                i += 1
        return out
    if name == "diag":
        return [(i, i, i) for i in range(k)]
    return None


class Gradient:
    """Analytic gradient of lme4's profiled deviance / REML criterion in θ.

    With ``Λ = Σ θᵢ Eᵢ`` (linear structures), ``M = ΛᵀAΛ + I`` and the PLS solution at θ:

    * ``∂ log|M| / ∂θᵢ = 2 tr(M⁻¹ΛᵀA Eᵢ)``; the diagonal blocks of ``G = M⁻¹ΛᵀA`` are
      ``(I - (M⁻¹)_jj) T⁻¹`` per level when the term's block ``T`` is invertible
      (from ``M⁻¹ΛᵀAΛ = I - M⁻¹``), else computed from ``M⁻¹`` directly;
    * ``∂ pwrss / ∂θᵢ = -2 (Zᵀr)ᵀ Eᵢ u`` with ``Zᵀr = Zᵀy - ZᵀXβ - AΛu`` (envelope theorem);
    * ``∂ log|R_XᵀR_X| / ∂θᵢ = 2 tr(S⁻¹(Qᵢ - Pᵢ))``, ``S = R_XᵀR_X``, ``Pᵢ = (EᵢᵀZᵀX)ᵀV``,
      ``Qᵢ = (EᵢV)ᵀAΛV``, ``V = M⁻¹ΛᵀZᵀX``.

    The diagonal blocks of ``M⁻¹`` come from a dense inverse when ``q`` is small.
    """

    def __init__(self, state: PLSState, dense_limit: int = 3000) -> None:
        d = state.design
        self.state = state
        self.entries = [_term_entries(t.structure) for t in d.terms]
        self.scalar = all(t.k == 1 for t in d.terms)
        cheap_diag = type(state).minv_diag is not PLSState.minv_diag
        self.blockwise = hasattr(state, "gradient_blocks")
        # one grouping factor under another backend (CHOLMOD for small designs): M is block diagonal,
        # so one solve against the per-level identities stacked, E (q × K), gives every inverse block
        # (M⁻¹E)[perm[b, j], a] = (M_j⁻¹)[b, a]: ~60 µs on TIMSS where a dense M⁻¹ costs ~7 ms
        self.levels: tuple | None = None
        if not self.blockwise:
            from sparselmm.backends.blockdiag import blockdiag_eligible, level_blocks

            if blockdiag_eligible(d):
                perm, Ablk = level_blocks(d)  # (K, nl), (K, K, nl)
                K, nl = perm.shape
                E = np.zeros((d.q, K))
                E[perm, np.arange(K)[:, None]] = 1.0
                off = np.concatenate([[0], np.cumsum([t.k for t in d.terms])]).astype(int)
                A2 = np.ascontiguousarray(Ablk.transpose(2, 0, 1)).reshape(nl * K, K)  # rows (j, r)
                self.levels = (E, np.ascontiguousarray(perm.T), A2, off)
        self.available = all(e is not None for e in self.entries) and (
            d.q <= dense_limit or self.blockwise or self.levels is not None or (self.scalar and cheap_diag)
        )
        self._A: sp.csr_matrix | None = None

    @property
    def A(self) -> sp.csr_matrix:
        """``ZᵀWZ`` in CSR, made on the first gradient (a Dask design's cross-products build
        their full ``ZᵀWZ`` only when it is read: constructing a Gradient must not)."""
        if self._A is None:
            self._A = _symmetric_csr(self.state.design.cross.ZtZ)
        return self._A

    @property
    def cheap(self) -> bool:
        """Whether a gradient costs about one objective evaluation or less beyond the objective
        (one grouping factor: the inverse blocks level by level), as against a dense ``M⁻¹``
        or the two dense factorisations of ``diag(M⁻¹)`` on the block Schur factor."""
        return self.available and (self.blockwise or self.levels is not None)

    def __call__(self, theta: np.ndarray, REML: bool) -> np.ndarray:
        st = self.state
        d = st.design
        if not st.update(theta):
            return np.full(len(theta), np.nan)
        cp = d.cross
        p, n = st.p, st.n
        blocks = st.blocks_
        b = st.lambda_times(theta, st.u, blocks)
        Ab = self.A @ b
        Zr = cp.Zty - (cp.ZtX @ st.beta if p else 0.0) - Ab
        off = None
        if self.blockwise:
            # one grouping factor: Σ_j G_jj straight from the inverse blocks (BlockDiagState)
            GB, off = st.gradient_blocks(), st.off
        elif self.levels is not None:
            GB, off = self._level_gradient_blocks(blocks)
        elif self.scalar:
            # scalar terms: Σ_j G_jj = (n_t - Σ_j (M⁻¹)_jj) / θ_t, and 0 at θ_t = 0 (M is even in θ_t)
            md = st.minv_diag()
        else:
            # G = M⁻¹ Λᵀ A, diagonal blocks only (dense: q is small here)
            Minv = st.solve_M(np.eye(d.q))
            LtA = self._lambda_t_sparse(theta) @ self.A
            G = np.asarray(LtA.T @ Minv.T).T
        reml_p = bool(REML and p)  # the log-determinant of R_X enters the REML criterion only
        if reml_p:
            V = st.V
            W = self.A @ st.lambda_times(theta, V, blocks)
            Sinv = lapack.dpotrs(st.RX, np.eye(p), lower=0)[0]  # (R_XᵀR_X)⁻¹
        grad = np.zeros(len(theta))
        for t, sl, ent, lo, hi in zip(d.terms, d.theta_slices, self.entries, d.Gp[:-1], d.Gp[1:]):
            k, nl = t.k, t.nlevels
            if off is not None:
                ti = d.terms.index(t)
                Gd = GB[off[ti] : off[ti + 1], off[ti] : off[ti + 1]]
            elif self.scalar:
                th_t = blocks[d.terms.index(t)][0, 0]
                Gd = np.array([[(nl - md[lo:hi].sum()) / th_t if th_t != 0 else 0.0]])
            else:
                idx = lo + np.arange(nl)[:, None] * k + np.arange(k)[None, :]  # (nl, k) rows of the term
                Gd = G[idx[:, :, None], idx[:, None, :]].sum(axis=0)  # Σ_j G_jj (k × k)
            Zr_t = Zr[lo:hi].reshape(nl, k)
            u_t = st.u[lo:hi].reshape(nl, k)
            dpw = -2.0 * Zr_t.T @ u_t  # [r, c] = -2 Σ_j Zr[j, r] u[j, c]
            if reml_p:
                # dRX[r, c] = 2 Σ_ab (Q - P)[r, c, a, b] S⁻¹[b, a] with P[r, c] = Σ_j X_t[j, r]ᵀ V_t[j, c],
                # Q[r, c] = Σ_j V_t[j, c]ᵀ W_t[j, r]: one product over (j, a),
                # dRX[r, c] = 2 Σ_ja (W_t - X_t)[j, r, a] (V_t S⁻¹)[j, c, a]
                VS = (V[lo:hi] @ Sinv).reshape(nl, k, p).transpose(0, 2, 1).reshape(nl * p, k)  # rows (j, a)
                WX = (W[lo:hi] - cp.ZtX[lo:hi]).reshape(nl, k, p).transpose(1, 0, 2).reshape(k, nl * p)
                dRX = 2.0 * (WX @ VS)
            for i, r, c in ent:
                g = 2.0 * Gd[c, r]
                if REML:
                    g += (n - p) * dpw[r, c] / st.pwrss + (dRX[r, c] if reml_p else 0.0)
                else:
                    g += n * dpw[r, c] / st.pwrss
                grad[sl.start + i] += g
        return grad

    def _level_gradient_blocks(self, blocks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """``Σ_j (M⁻¹ΛᵀA)_jj`` (K × K) over the levels of a design on one factor, from one solve."""
        E, permT, A2, off = self.levels  # type: ignore[misc]
        nl, K = permT.shape
        Lam = np.zeros((K, K))
        for T, lo, hi in zip(blocks, off[:-1], off[1:]):
            Lam[lo:hi, lo:hi] = T
        X = self.state.solve_M(E)
        Y = X[permT].reshape(nl * K, K)  # rows (j, b), columns a: (M_j⁻¹)[b, a]
        # (ΛᵀA_j)[b, d] = (A_jΛ)[d, b] (A_j symmetric): rows (j, d) of A2 Λ, the inner pair swapped
        Z = (A2 @ Lam).reshape(nl, K, K).transpose(0, 2, 1).reshape(nl * K, K)
        return Y.T @ Z, off

    def _lambda_t_sparse(self, theta: np.ndarray) -> sp.csr_matrix:
        d = self.state.design
        L = d.Lambda_pattern.copy()
        L.data = d.lambda_data(theta)
        return L.T.tocsr()
