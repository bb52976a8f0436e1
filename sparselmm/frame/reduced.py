"""The reduced statistics of a design's rows, and the checks that read them.

The checks that need every row are made on sums over rows, which a Dask design adds up
partition by partition (:mod:`sparselmm.frame.dask_design`) and an in-memory design computes
on its whole frame as one partition (:func:`sparselmm.frame.modelframe.design`):

* :class:`ColumnStats`: the response's range (a constant response), the Gram matrix of each
  term's columns (collinear term columns), the Gram matrix of the conditioned fixed-effects
  columns (the rank test), the columns' means and centred sums of squares (lme4's scale
  warning; columns constant to rounding), which columns hold only 0 and 1;
* :class:`Partial`: those and the cross-products of the same rows (a
  :class:`~sparselmm.backends.base.CrossProducts`), for a Dask design's tree reduction.

:func:`check_reduced` makes the checks, in one order, for both paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from sparselmm.backends.base import CrossProducts
from sparselmm.frame.checks import check_response_varies
from sparselmm.frame.conditioning import Conditioning, binary_columns, constant_to_rounding
from sparselmm.frame.rank import check_scale, check_term_collinear, kept_columns, sds_from_moments

__all__ = ["ColumnStats", "column_stats", "Partial", "combine_partials", "check_reduced"]


def _chan(ma: np.ndarray, Ma: np.ndarray, na: int, mb: np.ndarray, Mb: np.ndarray, nb: int) -> tuple:
    """Column means and centred sums of squares of two sets of rows combined (Chan et al.)."""
    if na == 0:
        return mb, Mb
    if nb == 0:
        return ma, Ma
    n = na + nb
    delta = mb - ma
    return ma + delta * (nb / n), Ma + Mb + delta**2 * (na * nb / n)


@dataclass
class ColumnStats:
    """Statistics of some rows' model columns (one partition, a sum of partitions, or a whole frame).

    Attributes
    ----------
    n : int
        Rows.
    ymin, ymax : float
        The response's range (``inf``, ``-inf`` for no rows).
    xbinary : numpy.ndarray of bool
        Fixed-effects columns that hold only 0 and 1 in these rows.
    rmean, rM2 : numpy.ndarray
        Means and centred sums of squares of the fixed-effects columns divided by the
        conditioning's powers of two (``x / s``): lme4's scale check reads the data's columns.
    grams : list of numpy.ndarray
        Per random-effects term, ``XtᵀXt`` of its columns (unweighted).
    Xgram : numpy.ndarray or None
        ``X'ᵀX'`` of the conditioned fixed-effects columns, unweighted: the rank test's; None
        when the cross-products' ``XtX`` is the same matrix (no weights).
    xmean, xM2 : numpy.ndarray or None
        Means and centred sums of squares of the conditioned columns ``X'``, and
    xabsmax : numpy.ndarray or None
        the largest ``|x|`` per column (data units): the test of columns constant to rounding
        when the conditioning was fitted on a sample (None when it was fitted on these rows).
    """

    n: int
    ymin: float
    ymax: float
    xbinary: np.ndarray
    rmean: np.ndarray
    rM2: np.ndarray
    grams: list[np.ndarray]
    Xgram: np.ndarray | None = None
    xmean: np.ndarray | None = None
    xM2: np.ndarray | None = None
    xabsmax: np.ndarray | None = None

    def __add__(self, other: "ColumnStats") -> "ColumnStats":
        """The statistics of two disjoint sets of rows together."""
        a, b = self, other
        rmean, rM2 = _chan(a.rmean, a.rM2, a.n, b.rmean, b.rM2, b.n)
        xmean = xM2 = xabsmax = None
        if a.xM2 is not None and b.xM2 is not None:
            xmean, xM2 = _chan(a.xmean, a.xM2, a.n, b.xmean, b.xM2, b.n)
            xabsmax = np.maximum(a.xabsmax, b.xabsmax)
        return ColumnStats(
            n=a.n + b.n,
            ymin=min(a.ymin, b.ymin),
            ymax=max(a.ymax, b.ymax),
            xbinary=a.xbinary & b.xbinary,
            rmean=rmean,
            rM2=rM2,
            grams=[ga + gb for ga, gb in zip(a.grams, b.grams)],
            Xgram=None if a.Xgram is None or b.Xgram is None else a.Xgram + b.Xgram,
            xmean=xmean,
            xM2=xM2,
            xabsmax=xabsmax,
        )

    def sds(self, x_scale: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """Standard deviations of the fixed-effects columns ``keep`` (lme4's ``sd()``; NaN below 2 rows).

        Parameters
        ----------
        x_scale : numpy.ndarray
            The powers of two the columns were divided by (for ``rmean``, ``rM2``).
        keep : numpy.ndarray of int
        """
        return sds_from_moments(x_scale[keep], self.rM2[keep], self.n)

    def flat_columns(self, cond: Conditioning) -> np.ndarray | None:
        """The conditioned columns constant to rounding, judged on these rows: the spread of a
        column centred against earlier binary columns within ``FLAT_ULPS`` of its largest value
        (:func:`~sparselmm.frame.conditioning.constant_to_rounding`); None without the statistics
        (or below 2 rows).

        Parameters
        ----------
        cond : Conditioning
            The conditioning the statistics were taken in.
        """
        if self.n < 2 or self.xM2 is None or self.xabsmax is None:
            return None
        spread = cond.x_scale * np.sqrt(self.xM2 / (self.n - 1))
        return ~cond.binary & cond.G.any(axis=0) & constant_to_rounding(spread, self.xabsmax)


def column_stats(
    y: np.ndarray,
    X: np.ndarray,
    Xts: Sequence[np.ndarray],
    x_scale: np.ndarray | None = None,
    *,
    Xc: np.ndarray | None = None,
    gram: np.ndarray | None = None,
    binary: np.ndarray | None = None,
) -> ColumnStats:
    """The :class:`ColumnStats` of some rows.

    Parameters
    ----------
    y : numpy.ndarray
        The response (data units, offset not subtracted).
    X : numpy.ndarray
        n × p fixed-effects columns (data units).
    Xts : sequence of numpy.ndarray
        Each random-effects term's columns (n × k).
    x_scale : numpy.ndarray, optional
        The conditioning's powers of two (``rmean``, ``rM2`` are of ``X / x_scale``).
    Xc : numpy.ndarray, optional
        The conditioned columns ``X'``: when given, the statistics of the test of columns constant
        to rounding are taken (``xmean``, ``xM2``, ``xabsmax``).
    gram : numpy.ndarray, optional
        ``X'ᵀX'`` unweighted, when the caller has it (kept as ``Xgram``).
    binary : numpy.ndarray of bool, optional
        Which columns of ``X`` hold only 0 and 1, when the caller knows it already.

    Returns
    -------
    ColumnStats
    """
    n, p = X.shape
    Xr = X if x_scale is None else X / x_scale  # powers of two apart: exact
    rmean = Xr.mean(axis=0) if n else np.zeros(p)
    rM2 = ((Xr - rmean) ** 2).sum(axis=0) if n else np.zeros(p)
    xmean = xM2 = xabsmax = None
    if Xc is not None:
        xabsmax = np.max(np.abs(X), axis=0) if n else np.zeros(p)
        xmean = Xc.mean(axis=0) if n else np.zeros(p)
        xM2 = ((Xc - xmean) ** 2).sum(axis=0) if n else np.zeros(p)
    return ColumnStats(
        n=n,
        ymin=float(y.min()) if n else np.inf,
        ymax=float(y.max()) if n else -np.inf,
        xbinary=binary_columns(X) if binary is None else binary,
        rmean=rmean,
        rM2=rM2,
        grams=[Xt.T @ Xt for Xt in Xts],
        Xgram=gram,
        xmean=xmean,
        xM2=xM2,
        xabsmax=xabsmax,
    )


@dataclass
class Partial:
    """The cross-products and column statistics of some rows (a partition, or a sum of them).

    ``cross.ZtZ`` of a Dask partition holds only the block-lower part of ``ZᵀWZ`` (the level
    blocks on and below the block diagonal), which determines the symmetric matrix.
    """

    cross: CrossProducts
    stats: ColumnStats

    def __add__(self, other: "Partial") -> "Partial":
        """The partial of two disjoint sets of rows together."""
        return Partial(self.cross + other.cross, self.stats + other.stats)

    @property
    def rank_gram(self) -> np.ndarray:
        """``X'ᵀX'`` unweighted, the rank test's Gram matrix."""
        return self.cross.XtX if self.stats.Xgram is None else self.stats.Xgram


def combine_partials(parts: Sequence[Partial | None]) -> Partial:
    """Sum partials (a step of the tree reduction).

    Parameters
    ----------
    parts : sequence of Partial
        None entries are skipped.

    Returns
    -------
    Partial
    """
    kept = [p for p in parts if p is not None]
    acc = kept[0]
    for b in kept[1:]:
        acc = acc + b
    return acc


def check_reduced(
    response: str,
    terms: Sequence[Any],
    stats: ColumnStats,
    names: Sequence[str],
    x_scale: np.ndarray,
    gram: np.ndarray,
    *,
    flat: np.ndarray | None = None,
    X: np.ndarray | None = None,
    term_rows: Sequence[np.ndarray] | None = None,
    stacklevel: int = 1,
) -> tuple[np.ndarray, list[str]]:
    """The checks on the reduced statistics, in order: a constant response, collinear term
    columns, the rank of the fixed-effects columns, lme4's scale warning.

    Parameters
    ----------
    response : str
        The response as written.
    terms : sequence of RandomTerm
        The random-effects terms, in the order of ``stats.grams``.
    stats : ColumnStats
        Of all rows used.
    names : sequence of str
        The fixed-effects columns' names.
    x_scale : numpy.ndarray
        The powers of two ``stats`` were taken with.
    gram : numpy.ndarray
        ``X'ᵀX'`` unweighted (:attr:`Partial.rank_gram`).
    flat : numpy.ndarray of bool, optional
        Columns constant to rounding (dropped with the rank-deficient ones).
    X : numpy.ndarray, optional
        The conditioned columns ``X'``, and
    term_rows : sequence of numpy.ndarray, optional
        the terms' columns, when the design holds its rows (the tests the Gram matrices do not
        settle are then made on them).
    stacklevel : int
        Of the warnings, counted from the caller.

    Returns
    -------
    keep : numpy.ndarray of int64
        The fixed-effects columns kept.
    dropped : list of str
        The names of those dropped (with a :class:`~sparselmm.errors.RankDeficiencyWarning`).

    Raises
    ------
    DataError, ModelSpecError
    """
    check_response_varies(response, stats.ymin, stats.ymax)
    for i, (t, G) in enumerate(zip(terms, stats.grams)):
        check_term_collinear(t.bar.text, t.columns, gram=G, X=None if term_rows is None else term_rows[i])
    keep, dropped = kept_columns(names, gram, X=X, flat=flat, stacklevel=stacklevel + 1)
    # lme4's scale check on the data's columns (not the conditioned ones: a column conditioned on
    # earlier continuous columns has the SD of its residual)
    check_scale(stats.sds(x_scale, keep), [names[j] for j in keep], stats.xbinary[keep], stacklevel=stacklevel + 2)
    return keep, dropped
