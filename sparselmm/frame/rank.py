"""The checks on the model's columns: rank of ``X``, collinear term columns, lme4's scale warning.

Each is written once and reads what both pipelines have: the Gram matrices and column moments
of the reduced statistics (:mod:`sparselmm.frame.reduced`), and, in memory, the rows as well
for the cases the Gram matrix does not settle.  The test of rank is R's: a column is dropped
when its distance from the span of the columns before it is at most ``tol`` of its own size
(LINPACK ``dqrdc2``, as lme4's ``chkRank.drop.cols`` uses it).
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import scipy.linalg as sla
from scipy.linalg import lapack

from sparselmm.errors import ModelSpecError, RankDeficiencyWarning, ScaleWarning

__all__ = [
    "RANK_TOL",
    "independent_columns",
    "independent_columns_gram",
    "check_term_collinear",
    "kept_columns",
    "sds_from_moments",
    "check_scale",
]

#: a column's distance from the span of the columns before it, over its norm, at or below which
#: it is rank deficient
RANK_TOL = 1e-7


def independent_columns(X: np.ndarray | None, tol: float = RANK_TOL, gram: np.ndarray | None = None) -> np.ndarray:
    """Indices of the columns to keep: drop each column that is (numerically) a combination of
    the columns before it, as R's ``qr()`` (LINPACK dqrdc2) and lme4's ``chkRank.drop.cols`` do.

    With ``gram = XᵀX`` given, the usual full-rank case is settled from it: the Cholesky factor
    of the Gram matrix scaled to unit diagonal has ``L_jj`` = column j's distance from the
    columns before it over its norm, with an absolute rounding error ~p·eps; when every ``L_jj``
    clears ``10·tol`` all columns are kept (no pass over the n rows).  Otherwise the test is made
    on the rows ``X`` (a QR, then Gram–Schmidt), or, without rows, on the Gram matrix
    (:func:`independent_columns_gram`).

    Parameters
    ----------
    X : numpy.ndarray or None
        n × p columns; None when only their Gram matrix is known (a Dask design).
    tol : float
        Relative tolerance.
    gram : numpy.ndarray, optional
        ``XᵀX`` (p × p); required when ``X`` is None.

    Returns
    -------
    numpy.ndarray of int64
    """
    if X is None:
        if gram is None:
            raise ValueError("independent_columns needs the rows X or their Gram matrix")
        if _all_clear(gram, tol):
            return np.arange(gram.shape[0], dtype=np.int64)
        return independent_columns_gram(gram, tol)
    p = X.shape[1]
    if p == 0:
        return np.arange(0)
    if gram is not None and p <= X.shape[0] and _all_clear(gram, tol):
        return np.arange(p, dtype=np.int64)
    norms = np.linalg.norm(X, axis=0)
    if p <= X.shape[0] and np.all(norms > 0):
        # |R_jj| of a QR without pivoting is column j's distance from the columns before it,
        # what the loop below measures: when every column is clear of the tolerance (by a margin
        # for rounding), all are kept, in one LAPACK call
        R = np.linalg.qr(X, mode="r")
        if np.all(np.abs(np.diag(R)) > 10 * tol * norms):
            return np.arange(p, dtype=np.int64)
    keep: list[int] = []
    Q = np.zeros((X.shape[0], 0))
    for j in range(p):
        if norms[j] == 0:
            continue
        v = X[:, j]
        if keep:
            v = v - Q @ (Q.T @ v)
            v = v - Q @ (Q.T @ v)  # re-orthogonalise
        r = np.linalg.norm(v)
        if r > tol * norms[j]:
            keep.append(j)
            Q = np.column_stack([Q, v / r]) if Q.shape[1] else (v / r)[:, None]
    return np.array(keep, dtype=np.int64)


def _all_clear(gram: np.ndarray, tol: float) -> bool:
    """Whether every column's distance from the ones before it, over its norm, clears ``10·tol``
    (the Cholesky factor of the Gram matrix scaled to unit diagonal)."""
    if gram.shape[0] == 0:
        return True
    dg = np.diag(gram)
    if not np.all(dg > 0):
        return False
    sd = np.sqrt(dg)
    L, info = lapack.dpotrf(gram / np.outer(sd, sd), lower=1)
    return bool(info == 0 and np.all(np.diag(L) > 10 * tol))


def independent_columns_gram(G: np.ndarray, tol: float = RANK_TOL) -> np.ndarray:
    """Columns to keep, from the Gram matrix ``G = XᵀX`` alone (the test of
    :func:`independent_columns` without the rows).

    Column ``j`` is dropped when its distance to the span of the kept columns before
    it is at most ``tol`` times its norm:

    .. math:: G_{jj} - G_{jK} G_{KK}^{-1} G_{Kj} \\le \\text{tol}^2\\, G_{jj},

    which is the pivot-free Gram–Schmidt test of R's ``qr()`` (LINPACK dqrdc2),
    as lme4's ``chkRank.drop.cols`` uses it.

    Parameters
    ----------
    G : numpy.ndarray
        Symmetric positive semi-definite p × p matrix.
    tol : float
        Relative tolerance.

    Returns
    -------
    numpy.ndarray of int64
    """
    p = G.shape[0]
    d = np.sqrt(np.clip(np.diag(G), 0, None))
    keep: list[int] = []
    R = np.zeros((0, 0))
    for j in range(p):
        if d[j] == 0:
            continue
        g = G[j, j] / d[j] ** 2
        if keep:
            gK = G[keep, j] / (d[keep] * d[j])
            v = sla.solve_triangular(R, gK, trans="T", lower=False, check_finite=False)
            r2 = g - v @ v
        else:
            v = np.zeros(0)
            r2 = g
        if r2 > tol**2:
            r = np.sqrt(r2)
            m = len(keep)
            Rn = np.zeros((m + 1, m + 1))
            Rn[:m, :m] = R
            Rn[:m, m] = v
            Rn[m, m] = r
            R = Rn
            keep.append(j)
    return np.array(keep, dtype=np.int64)


def _dropped(names: Sequence[str], keep: np.ndarray) -> list[str]:
    kept = set(keep.tolist())
    return [names[j] for j in range(len(names)) if j not in kept]


def check_term_collinear(
    text: str, columns: Sequence[str], gram: np.ndarray | None = None, X: np.ndarray | None = None
) -> None:
    """Refuse a random-effects term whose columns are collinear (lme4 cannot tell their variances apart).

    Parameters
    ----------
    text : str
        The term as written.
    columns : sequence of str
        Its columns' names.
    gram : numpy.ndarray, optional
        ``XtᵀXt`` of its columns over the rows used.
    X : numpy.ndarray, optional
        The columns themselves, when the design holds them (one of the two is needed).

    Raises
    ------
    ModelSpecError
        Naming the columns that are combinations of the ones before them.
    """
    if len(columns) < 2:
        return
    keep = independent_columns(X, gram=gram)
    if len(keep) < len(columns):
        raise ModelSpecError(
            f"the columns of term {text!r} are collinear: {', '.join(_dropped(columns, keep))} is a combination of "
            "the other columns; remove it from the term"
        )


def kept_columns(
    names: Sequence[str], gram: np.ndarray, X: np.ndarray | None = None, flat: np.ndarray | None = None,
    stacklevel: int = 1,
) -> tuple[np.ndarray, list[str]]:
    """The fixed-effects columns to keep: the rank test (lme4's ``chkRank.drop.cols``) and the
    columns constant to rounding, with lme4's warning for those dropped.

    Parameters
    ----------
    names : sequence of str
        The columns' names.
    gram : numpy.ndarray
        ``X'ᵀX'`` of the conditioned columns, unweighted (:mod:`sparselmm.frame.conditioning`:
        the test sees a shifted column as the unshifted one).
    X : numpy.ndarray, optional
        The conditioned columns ``X'``, when the design holds them.
    flat : numpy.ndarray of bool, optional
        The columns constant to rounding within their cells (dropped too).
    stacklevel : int
        Of the warning, counted from the caller.

    Returns
    -------
    keep : numpy.ndarray of int64
        The indices kept.
    dropped : list of str
        The names dropped.
    """
    keep = independent_columns(X, gram=gram)
    if flat is not None:
        keep = keep[~flat[keep]]
    dropped = _dropped(names, keep)
    if dropped:
        warnings.warn(
            f"fixed-effect model matrix is rank deficient so dropping {len(dropped)} column(s): {', '.join(dropped)}",
            RankDeficiencyWarning,
            stacklevel=stacklevel + 1,
        )
    return keep, dropped


def sds_from_moments(x_scale: np.ndarray, M2: np.ndarray, n: int) -> np.ndarray:
    """Standard deviations of columns (lme4's ``sd()``) from their centred sums of squares.

    Parameters
    ----------
    x_scale : numpy.ndarray
        The powers of two ``s`` the columns were divided by (``sd(x) = s · sd(x / s)``: no
        overflow for a column near 1e200).
    M2 : numpy.ndarray
        Centred sums of squares of ``x / s``.
    n : int
        Rows.

    Returns
    -------
    numpy.ndarray
        NaN with fewer than 2 rows.
    """
    if n < 2:
        return np.full(len(M2), np.nan)
    return x_scale * np.sqrt(M2 / (n - 1))


def check_scale(sds: np.ndarray, names: Sequence[str], binary: np.ndarray, tol: float = 1e3, stacklevel: int = 3) -> None:
    """lme4's ``checkScaleX``: warn when continuous columns' SDs differ by more than ``tol``
    or one is outside ``[1/tol, tol]``.

    Parameters
    ----------
    sds : numpy.ndarray
        The columns' standard deviations (NaN when not computable: skipped).
    names : sequence of str
    binary : numpy.ndarray of bool
        Columns holding only 0 and 1 (skipped).
    tol : float
    stacklevel : int
        Of the warning, counted from this function.
    """
    cont = [j for j in range(len(names)) if not binary[j] and np.isfinite(sds[j])]
    if not cont:
        return
    sds_all = sds[cont]
    s = sds_all[sds_all > 0]
    if not len(s):
        return
    logsd = np.abs(np.log(s))
    spread = np.log(s.max()) - np.log(s.min())
    if spread > np.log(tol) or np.any(logsd > np.log(tol)):
        bad = [names[j] for j, v in zip(cont, sds_all) if v > 0 and abs(np.log(v)) > np.log(tol)]
        warnings.warn(
            "some predictor variables are on very different scales"
            + (f" ({', '.join(bad)})" if bad else "")
            + ": consider rescaling (sparselmm conditions the columns internally, so the fit is not affected; "
            "the coefficients stay on the columns' own scales)",
            ScaleWarning,
            stacklevel=stacklevel,
        )
