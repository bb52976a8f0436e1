"""The analytic gradient of lme4's profiled objective in θ, on any backend.

It uses what a backend declares (:class:`~sparselmm.backends.base.PLSBackend`): the
diagonal blocks of ``M⁻¹ΛᵀA`` straight from the factor where it gives them
(``gradient_blocks_available``), a cheap ``diag(M⁻¹)`` for scalar terms
(``cheap_minv_diag``), else one solve against the per-level identities (one grouping
factor) or a dense ``M⁻¹`` (small ``q``); structures linear in their parameters only
(``CovStructure.linear_entries``).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

from sparselmm.backends.base import PLSBackend, symmetric_csr
from sparselmm.backends.blockdiag import blockdiag_eligible, level_blocks

__all__ = ["Gradient"]


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

    def __init__(self, state: PLSBackend, dense_limit: int = 3000) -> None:
        d = state.design
        self.state = state
        self.entries = [t.structure.linear_entries() for t in d.terms]
        self.scalar = all(t.k == 1 for t in d.terms)
        cheap_diag = state.cheap_minv_diag
        self.blockwise = state.gradient_blocks_available
        # one grouping factor under another backend (CHOLMOD for small designs): M is block diagonal,
        # so one solve against the per-level identities stacked, E (q × K), gives every inverse block
        # (M⁻¹E)[perm[b, j], a] = (M_j⁻¹)[b, a]: ~60 µs on TIMSS where a dense M⁻¹ costs ~7 ms
        self.levels: tuple | None = None
        if not self.blockwise:
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
            self._A = symmetric_csr(self.state.design.cross.ZtZ)
        return self._A

    @property
    def cheap(self) -> bool:
        """Whether a gradient costs about one objective evaluation or less beyond the objective
        (one grouping factor: the inverse blocks level by level), as against a dense ``M⁻¹``
        or the two dense factorisations of ``diag(M⁻¹)`` on the block Schur factor."""
        return self.available and (self.blockwise or self.levels is not None)

    def __call__(self, theta: np.ndarray, REML: bool) -> np.ndarray:
        """The gradient of the profiled objective (deviance, or REML criterion) at ``theta``."""
        parts = self.parts(theta, REML)
        if parts is None:
            return np.full(len(theta), np.nan)
        dldL, dpw, dldRX = parts
        st = self.state
        n, p = st.n, st.p
        scale = (n - p) if REML else n
        return dldL + scale * dpw / st.pwrss + (dldRX if REML else 0.0)

    def parts(self, theta: np.ndarray, REML: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The gradients in θ of the objective's pieces at ``theta``: ``log|M|`` (lme4's ldL2),
        the penalised residual sum of squares and, for ``REML`` (and p > 0), ``log|R_XᵀR_X|``
        (zeros otherwise); None where the factorisation fails.  The deviance at a fixed σ,
        ``ldL2 + pwrss/σ² (+ ldRX2)``, has the gradient ``dldL + dpw/σ² (+ dldRX)``."""
        st = self.state
        d = st.design
        if not st.update(theta):
            return None
        cp = d.cross
        p = st.p
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
        dldL, dpwrss, dldRX = np.zeros(len(theta)), np.zeros(len(theta)), np.zeros(len(theta))
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
                dldL[sl.start + i] += 2.0 * Gd[c, r]
                dpwrss[sl.start + i] += dpw[r, c]
                if reml_p:
                    dldRX[sl.start + i] += dRX[r, c]
        return dldL, dpwrss, dldRX

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
