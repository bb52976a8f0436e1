r"""The units the engine computes in: y, X and the weights conditioned before the cross-products.

The cross-products ``[Z X y]ᵀW[Z X y]`` are formed once, so their precision is the fit's
precision.  A response near 1e8, a timestamp covariate near 1.7e9 (alone or in an
interaction with a factor) or a predictor multiplied by 1e200 would lose every digit in them
(the Schur complement ``XᵀWX − BᵀM⁻¹B`` and the penalised residual sum of squares cancel what
the offsets put in).  So the design first takes the data to internal units, a
reparametrisation of the same model:

.. math::

    X' &= (X - X G)\,S^{-1} = X T, \qquad T = (I - G) S^{-1},\\
    y' &= (y - X γ_y) / s_y, \qquad w' = w / c_w.

* The **binary columns** (only 0 and 1: the intercept, factors' dummies) are left as they are.
* Each other column ``x_j`` is replaced by its residual from the least-squares fit on the
  binary columns **before it** (``G``'s column j: those coefficients), i.e. centred within
  the cells they define — against the intercept for a plain covariate, within the levels of
  a factor for its interaction with a covariate, within a no-intercept model's factor — then
  divided by ``s_j``, a power of two near its root mean square.  ``G`` is strictly upper
  triangular (a column only uses columns before it), so the span of every leading set of
  columns is kept and the rank test sees the columns in R's order.
* ``y`` is replaced by its residual on all binary columns (``γ_y``: any shift ``Xγ`` is a
  reparametrisation of β), divided by ``s_y``, a power of two near its root mean square.
* The weights are divided by ``c_w``, a power of four near their geometric mean.

A factor with many levels makes many binary columns: their least squares then comes from
their sparse pattern (beyond 2,048 of them, from LSQR), any near centre being as good.

**Exactness.**  Scaling by a power of two is exact, and a centre subtracted from values of its
own size is exact (Sterbenz); the centre is subtracted first, the within-cell corrections
after.  Data shifted by a constant therefore reach the engine as the same numbers shifted by
another constant, which the intercept absorbs: the objective keeps the precision of the
centred data (sleepstudy with ``y + 1e8``: 4e-16 relative; ``Days + 1e9``: the same bits as
``Days``; measured in ``tests/test_conditioning.py``).

**The model maps back exactly.**  With ``y = X(γ_y + s_y T β') + Z (s_y b') + s_y e'``:

* ``β = γ_y + J β'`` with ``J = s_y T``; ``Var(β̂) = J Var(β̂') Jᵀ``;
* ``b = s_y b'``; ``σ = s_y √c_w σ'``;
* θ: ``Λ'Λ'ᵀ = c_w ΛΛᵀ``, so each standard-deviation-like parameter is ``√c_w`` times larger
  inside (correlations unchanged; :meth:`Design.theta_factor` gives the factor per entry);
* the objective: ML deviance ``= dev' + 2n log s_y``; REML criterion
  ``= crit' + 2(n − p) log s_y + 2 Σ_j log s_j`` (the Jacobian of ``y → y'``, and
  ``det T = Π 1/s_j`` in ``log|R_X|²``); the weights' scale cancels.

Only y, X and W are conditioned; the random-effects columns enter Z as they are (they set θ's
meaning, which lme4's layout fixes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

__all__ = ["Conditioning", "fit_columns", "condition_columns", "binary_columns", "constant_to_rounding", "pow2"]

_SQRT_HALF = float(np.sqrt(0.5))


def pow2(v: np.ndarray | float) -> np.ndarray:
    """The power of two nearest (in log scale) to each positive finite ``v``; 1 elsewhere.

    Parameters
    ----------
    v : array-like

    Returns
    -------
    numpy.ndarray
        ``2^round(log2 v)``, computed exactly from the binary exponent.
    """
    v = np.asarray(v, dtype=float)
    ok = np.isfinite(v) & (v > 0)
    m, e = np.frexp(np.where(ok, v, 1.0))  # v = m 2^e, m in [0.5, 1)
    k = np.minimum(e - (m < _SQRT_HALF), 1023)  # 2^1024 is not a double
    return np.where(ok, np.ldexp(1.0, k.astype(np.int64)), 1.0)


def _log2(v: float) -> int:
    """The exponent ``k`` of a power of two ``v = 2^k``."""
    return int(np.frexp(v)[1]) - 1


def _pow4(v: float) -> float:
    """The power of four nearest (in log scale) to ``v > 0`` (its square root is exact)."""
    k = int(np.round(np.log(v) / np.log(4.0))) if np.isfinite(v) and v > 0 else 0
    return float(np.ldexp(1.0, 2 * k))


_MAX_CELLS = 64  # beyond this many binary columns their Gram comes from the sparse pattern,
_DENSE_CELLS = 2048  # and beyond this many, LSQR; continuous columns looked back at: _MAX_CELLS
FLAT_ULPS = 1000.0  # a centred column within this many units in the last place is constant to rounding
_RANK_TOL, _ILL = 1e-7, 1e-3  # a column's residual on the continuous columns before it, over its size:
# at most _RANK_TOL is rank deficient (the rank test drops it), below _ILL it is conditioned on them


def _conditioned(X: np.ndarray, j: int, g: np.ndarray, s: float) -> np.ndarray:
    """Column j of ``X' = (X − XG) S⁻¹`` (``g``: G's column j, ``s``: its scale): powers of two
    are exact, and nothing overflows for columns near 1e308."""
    idx = np.flatnonzero(g)
    big = _pow2_scalar(max(float(np.max(np.abs(X[:, j]))) if len(X) else 0.0,
                           float(np.max(np.abs(g[idx]))) if len(idx) else 0.0, s))
    return np.ldexp(_minus_fit(X[:, j], X, idx, g[idx], big), _log2(big) - _log2(s))


def _minus_fit(v: np.ndarray, X: np.ndarray, idx: np.ndarray, coef: np.ndarray, big: float,
               ones: bool | None = None) -> np.ndarray:
    """``(v − X[:, idx] coef) / big`` in exact steps where they can be exact: the first column's
    share (the intercept's: the centre) first, then the others' (within-cell corrections).
    ``ones``: whether ``X[:, idx[0]]`` is all ones (found out when None)."""
    out = v / big
    if not len(idx):
        return out
    c0 = coef[0] / big
    if ones is None:
        ones = bool(np.all(X[:, idx[0]] == 1.0))
    out = out - c0 if ones else out - c0 * X[:, idx[0]]
    if len(idx) > 1:
        out = out - X[:, idx[1:]] @ (coef[1:] / big)
    return out


@dataclass(frozen=True)
class Conditioning:
    """The map from the data's units to the engine's (see the module docstring).

    Attributes
    ----------
    binary : numpy.ndarray of bool
        Which columns of X hold only 0 and 1 (left as they are).
    G : numpy.ndarray
        p × p, strictly upper triangular: column j holds the least-squares coefficients of
        ``x_j`` on the binary columns before it (zero for binary columns).
    x_scale : numpy.ndarray
        ``s`` per column (1 for binary columns).
    y_shift : numpy.ndarray
        ``γ_y``: the coefficients of y on the binary columns (``y' = (y − Xγ_y)/s_y``).
    y_scale, w_scale : float
        ``s_y`` and ``c_w``.
    """

    binary: np.ndarray
    G: np.ndarray
    x_scale: np.ndarray
    y_shift: np.ndarray
    y_scale: float = 1.0
    w_scale: float = 1.0
    flat: np.ndarray | None = None  # columns constant to rounding within their cells (see fit_columns)

    @classmethod
    def identity(cls, p: int) -> "Conditioning":
        """No conditioning of ``p`` columns."""
        return cls(binary=np.ones(p, dtype=bool), G=np.zeros((p, p)), x_scale=np.ones(p), y_shift=np.zeros(p))

    # ----- to internal units -------------------------------------------------------------
    def X(self, X: np.ndarray) -> np.ndarray:
        """``X' = (X − XG) S⁻¹``, column by column in exact steps where they can be exact."""
        X = np.asarray(X, dtype=float)
        out = np.array(X, dtype=float, copy=True)
        for j in np.flatnonzero(~self.binary):
            out[:, j] = _conditioned(X, j, self.G[:, j], self.x_scale[j])
        return out

    def y(self, y: np.ndarray, X: np.ndarray) -> np.ndarray:
        """``y' = (y − Xγ_y) / s_y``."""
        y = np.asarray(y, dtype=float)
        idx = np.flatnonzero(self.y_shift)
        big = _pow2_scalar(max(float(np.max(np.abs(y))) if len(y) else 0.0,
                             float(np.max(np.abs(self.y_shift))) if len(idx) else 0.0, self.y_scale))
        return np.ldexp(_minus_fit(y, np.asarray(X, dtype=float), idx, self.y_shift[idx], big),
                        _log2(big) - _log2(self.y_scale))

    def w(self, w: np.ndarray | None) -> np.ndarray | None:
        """``w' = w / c_w``."""
        return None if w is None else np.asarray(w, dtype=float) / self.w_scale

    def with_response(self, y: np.ndarray, X: np.ndarray, weights: np.ndarray | None) -> "Conditioning":
        """This conditioning with ``γ_y``, ``s_y`` and ``c_w`` fitted to a response and weights.

        ``γ_y``: least squares of y on the binary columns;
        ``s_y``: the power of two nearest the root mean square of ``y − Xγ_y``; ``c_w``: the
        power of four nearest the weights' geometric mean.
        """
        y = np.asarray(y, dtype=float)
        X = np.asarray(X, dtype=float)
        cells = np.flatnonzero(self.binary)
        shift = np.zeros(self.p)
        big = _pow2_scalar(float(np.max(np.abs(y)))) if len(y) else 1.0
        if len(cells) and len(y):
            shift[cells] = _cell_fit(X[:, cells], y / big) * big
        r = _minus_fit(y, X, np.flatnonzero(shift), shift[shift != 0], big) if len(y) else y
        rms = float(np.sqrt(np.mean(r**2))) * big if len(y) else 0.0
        cw = 1.0 if weights is None else _pow4(float(np.exp(np.mean(np.log(weights)))))
        return replace(self, y_shift=shift, y_scale=_pow2_scalar(rms), w_scale=cw)

    def restrict(self, keep: np.ndarray) -> "Conditioning | None":
        """The conditioning of the columns ``keep`` (rank-deficient ones dropped), or None when a
        kept column (or y) was centred against a dropped one (then condition the kept columns afresh)."""
        keep = np.asarray(keep, dtype=np.int64)
        drop = np.setdiff1d(np.arange(self.p), keep)
        if np.any(self.G[np.ix_(drop, keep)]) or np.any(self.y_shift[drop]):
            return None
        return replace(self, binary=self.binary[keep], G=self.G[np.ix_(keep, keep)], x_scale=self.x_scale[keep],
                       y_shift=self.y_shift[keep], flat=None if self.flat is None else self.flat[keep])

    # ----- back to the data's units ------------------------------------------------------------
    @property
    def p(self) -> int:
        """Number of columns of X."""
        return len(self.x_scale)

    @property
    def T(self) -> np.ndarray:
        """``T = (I − G) S⁻¹`` (p × p): ``X' = X T``."""
        return (np.eye(self.p) - self.G) / self.x_scale[None, :]

    @property
    def J(self) -> np.ndarray:
        """``J = s_y T``: ``β − γ_y = J β'``."""
        return self.y_scale * self.T

    def beta(self, beta_int: np.ndarray) -> np.ndarray:
        """``β = γ_y + J β'``."""
        return self.y_shift + self.J @ np.asarray(beta_int, dtype=float)

    def vcov(self, V_int: np.ndarray) -> np.ndarray:
        """``Var(β̂) = J Var(β̂') Jᵀ``."""
        J = self.J
        return J @ V_int @ J.T

    def sd(self, V_int: np.ndarray, L: np.ndarray | None = None) -> np.ndarray:
        """Standard deviations ``sqrt(diag(L J V' Jᵀ Lᵀ))`` (``L = I`` by default) without forming
        the variances: a coefficient of a column scaled by 1e200 has an SD near 1e-200, whose
        square is not a double.  Each row of ``L J`` is scaled to unit size first."""
        LJ = self.J if L is None else np.atleast_2d(np.asarray(L, dtype=float)) @ self.J
        r = np.max(np.abs(LJ), axis=1) if LJ.size else np.zeros(LJ.shape[0])
        r = np.where(r > 0, r, 1.0)
        U = LJ / r[:, None]
        return r * np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", U, V_int, U), 0.0))

    @property
    def sigma_factor(self) -> float:
        """``σ / σ' = s_y √c_w``."""
        return float(self.y_scale * np.sqrt(self.w_scale))

    @property
    def theta_factor(self) -> float:
        """``√c_w``: a standard-deviation-like entry of θ times this is its internal value."""
        return float(np.sqrt(self.w_scale))

    def objective_offset(self, REML: bool, n: int) -> float:
        """What the objective on lme4's scale adds to the internal one.

        ``2n log s_y`` (ML deviance) or ``2(n − p) log s_y + 2 Σ_j log s_j`` (REML criterion).
        """
        if REML:
            return float(2.0 * (n - self.p) * np.log(self.y_scale) + 2.0 * np.sum(np.log(self.x_scale)))
        return float(2.0 * n * np.log(self.y_scale))

    @property
    def is_identity(self) -> bool:
        """Whether the internal units are the data's (nothing centred or scaled)."""
        return (not np.any(self.G) and np.all(self.x_scale == 1) and not np.any(self.y_shift)
                and self.y_scale == 1 and self.w_scale == 1)


def binary_columns(X: np.ndarray) -> np.ndarray:
    """Which columns of ``X`` hold only 0 and 1 (a column whose first value is neither is not
    looked at further).

    Parameters
    ----------
    X : numpy.ndarray
        n × p.

    Returns
    -------
    numpy.ndarray of bool
    """
    n, p = X.shape
    if not n:
        return np.ones(p, dtype=bool)
    out = (X[0] == 0.0) | (X[0] == 1.0)
    for j in np.flatnonzero(out):
        x = X[:, j]
        out[j] = bool(np.all((x == 0.0) | (x == 1.0)))
    return out


def constant_to_rounding(spread: np.ndarray, absmax: np.ndarray) -> np.ndarray:
    """Which columns are constant to rounding: their spread (centred within their cells) is within
    ``FLAT_ULPS`` units in the last place of their largest value (``0.7`` and ``0.7 ± 1 ulp``).

    The rank test, measuring a column after centring, would keep such a column with a
    coefficient near 1e16; the design drops it with the rank-deficient ones.

    Parameters
    ----------
    spread : numpy.ndarray
        Per column, the root mean square of its residual on the binary columns before it (data units).
    absmax : numpy.ndarray
        Per column, its largest absolute value.

    Returns
    -------
    numpy.ndarray of bool
    """
    return spread <= FLAT_ULPS * np.spacing(absmax)


def _cell_fit(B: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Least-squares coefficients of ``v`` (a vector or columns) on the binary columns ``B``
    (their Gram holds counts; a rank-deficient set gets the minimum-norm solution, which is as
    good a centre).  Many columns (a factor with hundreds of levels): their Gram from the sparse
    pattern, and beyond ``_DENSE_CELLS`` of them LSQR, column by column (a centre need only be near)."""
    if B.shape[1] == 1 and bool(np.all(B[:, 0] == 1.0)):  # the intercept alone: the mean
        m = np.mean(v, axis=0)
        return np.atleast_1d(m)[None, :] if np.ndim(v) == 2 else np.array([float(m)])
    if B.shape[1] <= _MAX_CELLS:
        return _solve_gram(B.T @ B, B.T @ v)
    import scipy.sparse as sp
    from scipy.sparse.linalg import lsqr

    Bs = sp.csc_matrix(B)
    rhs = np.asarray(Bs.T @ v)
    if B.shape[1] <= _DENSE_CELLS:
        return _solve_gram((Bs.T @ Bs).toarray(), rhs)
    V = v[:, None] if np.ndim(v) == 1 else v
    out = np.column_stack([lsqr(Bs, V[:, i], atol=1e-12, btol=1e-12, iter_lim=200)[0] for i in range(V.shape[1])])
    return out[:, 0] if np.ndim(v) == 1 else out


def _solve_gram(G: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``G⁻¹b`` for a symmetric positive semi-definite ``G``: Cholesky, or the minimum-norm
    least-squares solution where ``G`` is singular."""
    try:
        L = np.linalg.cholesky(G)
        return np.linalg.solve(L.T, np.linalg.solve(L, b))
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(G, b, rcond=None)[0]


def _pow2_scalar(v: float) -> float:
    """:func:`pow2` of one number (math.frexp: no array round trip)."""
    if not (math.isfinite(v) and v > 0):
        return 1.0
    m, e = math.frexp(v)
    return math.ldexp(1.0, min(e - (m < _SQRT_HALF), 1023))


def fit_columns(X: np.ndarray, names: Sequence[str] = ()) -> Conditioning:
    """The conditioning of the fixed-effects columns, from rows of X (all of them, or a sample).

    Parameters
    ----------
    X : numpy.ndarray
        n × p fixed-effects matrix (finite).
    names : sequence of str
        Column names (unused; kept for messages).

    Returns
    -------
    Conditioning
        With ``γ_y = 0, s_y = c_w = 1`` (see :meth:`Conditioning.with_response`), and ``flat``:
        the columns whose residual on the binary columns before them is within ``FLAT_ULPS``
        units in the last place of their largest value — constant to rounding (``0.7`` and
        ``0.7 ± 1 ulp``), which the rank test, measuring a column after centring, would
        otherwise keep with coefficients near 1e16.  (``Days + 1e9`` varies by 2e4 such units.)
    """
    return condition_columns(X, names)[0]


def condition_columns(X: np.ndarray, names: Sequence[str] = ()) -> tuple[Conditioning, np.ndarray]:
    """:func:`fit_columns` and the conditioned columns ``X' = X T`` it made on the way (what
    :meth:`Conditioning.X` gives, to the order of a sum).

    Vectorised over the columns that share their cells (the binary columns before them): one
    least-squares solve and one product per set of cells, then one Gram of the conditioned
    continuous columns to find those nearly collinear with the ones before them (only those
    are refitted on the rows).
    """
    X = np.asarray(X, dtype=float)
    n, p = X.shape
    binary = binary_columns(X)
    G, scale, flat = np.zeros((p, p)), np.ones(p), np.zeros(p, dtype=bool)
    Xc = X.copy()
    N = np.flatnonzero(~binary)
    if not n or not len(N):
        return Conditioning(binary=binary, G=G, x_scale=scale, y_shift=np.zeros(p), flat=flat), Xc
    intercepts = {int(j) for j in np.flatnonzero(binary) if X[0, j] == 1.0 and np.all(X[:, j] == 1.0)}
    xmax = np.max(np.abs(X[:, N]), axis=0)
    big = pow2(xmax)  # 1 for a zero column
    R = X[:, N] / big  # exact
    groups: dict[tuple[int, ...], list[int]] = {}
    for a, j in enumerate(N):
        cells = np.flatnonzero(binary[:j])
        groups.setdefault(tuple(int(c) for c in cells), []).append(a)
    for cells, cols in groups.items():  # centred within the cells: the centre first, then the rest
        if not cells:
            continue
        B = X[:, list(cells)]
        gam = _cell_fit(B, R[:, cols])  # (cells, cols); a factor of many levels by its sparse pattern
        G[np.ix_(list(cells), N[cols])] = gam * big[cols]
        first = gam[0] if cells[0] in intercepts else gam[0] * B[:, :1]
        R[:, cols] = R[:, cols] - first
        if len(cells) > 1:
            R[:, cols] = R[:, cols] - B[:, 1:] @ gam[1:]
    rr = np.einsum("ij,ij->j", R, R)
    rms = np.sqrt(rr / n) * big
    has_cells = np.zeros(len(N), dtype=bool)
    for cells, cols in groups.items():
        has_cells[cols] = bool(cells)
    flat[N] = has_cells & constant_to_rounding(rms, xmax)
    s = pow2(rms)
    e = np.frexp(big)[1] - np.frexp(s)[1]
    if np.all(np.abs(e) < 1000):  # a product by a power of two within range is exact
        Xc[:, N] = R * np.ldexp(1.0, e.astype(np.int64))
    else:
        Xc[:, N] = np.ldexp(R, e.astype(np.int64))
    scale[N] = s
    # nearly collinear with the (conditioned) continuous columns before it — a shifted covariate in
    # an interaction with another, (D + c):x ≈ c·x — yet not rank deficient: its residual on them
    # too (T's columns carry that back to X's), so that the cross-products keep its digits
    if len(N) > 1:
        Gc = Xc[:, N].T @ Xc[:, N]
        # each column's squared residual on the ones before it is its Cholesky pivot: one factor
        # tells them all (columns up to 64 back, or the pivots of a factor that fails: one by one)
        d = np.diag(Gc)
        try:
            L = np.linalg.cholesky(Gc) if len(N) <= _MAX_CELLS else None
        except np.linalg.LinAlgError:
            L = None
        for a in range(1, len(N)):
            j = int(N[a])
            K = np.arange(max(0, a - _MAX_CELLS), a)
            if flat[j] or not d[a] > 0:
                continue
            if L is not None:
                resid2 = L[a, a] ** 2
            else:
                resid2 = d[a] - float(Gc[a, K] @ _solve_gram(Gc[np.ix_(K, K)], Gc[K, a]))
            if resid2 >= _ILL**2 * d[a]:
                continue
            V, r = Xc[:, N[K]], Xc[:, j]
            delta = np.linalg.lstsq(V, r, rcond=None)[0]
            r2 = r - V @ delta
            ratio = float(np.sqrt((r2 @ r2) / (r @ r)))
            if not _RANK_TOL < ratio < _ILL:
                continue
            T = (np.eye(p)[:, N[K]] - G[:, N[K]]) / scale[N[K]]
            G[:, j] += T @ (delta * scale[j])
            scale[j] = _pow2_scalar(float(rms[a]) * ratio)
            Xc[:, j] = _conditioned(X, j, G[:, j], scale[j])
            Gc[:, a] = Gc[a, :] = Xc[:, N].T @ Xc[:, j]
            d = np.diag(Gc)
            L = None  # the later pivots one by one
    return Conditioning(binary=binary, G=G, x_scale=scale, y_shift=np.zeros(p), flat=flat), Xc
