"""Fitting from a Dask DataFrame: cross-products partition by partition, θ on the driver.

Everything after :class:`~sparselmm.backends.base.CrossProducts` is independent
of the number of observations, and the cross-products are sums over rows:

.. math::

    \\begin{bmatrix} Z & X & y \\end{bmatrix}^T W \\begin{bmatrix} Z & X & y \\end{bmatrix}
    = \\sum_{k} \\begin{bmatrix} Z_k & X_k & y_k \\end{bmatrix}^T W_k
      \\begin{bmatrix} Z_k & X_k & y_k \\end{bmatrix}

over the partitions ``k``.  A Dask fit therefore makes two passes over the data:

1. *scan*: per partition, the rows with a missing value in a used column,
   the used levels of every factor (grouping factors, factor predictors) and
   of every interaction ``a:b``, and a few complete rows; combined into the
   global level sets, sorted as :func:`sparselmm.frame.modelframe.design` sorts them
   (category order for a Categorical, numeric order for numbers, string order
   for strings);
2. *cross-products*: per partition, ``X``, ``y``, the term columns and level
   codes built with those fixed levels (formulaic model specs made once on the
   driver), and the partition's ``[Z X y]ᵀW[Z X y]`` (only the block-lower part of
   ``ZᵀWZ``, which halves what travels), summed by a tree reduction.

The checks that need the whole data set are made on the reduced statistics
(:mod:`sparselmm.frame.reduced`: each partition's :class:`~sparselmm.frame.reduced.Partial`,
its cross-products and column statistics, summed), by the same functions, in the same order and
with the same messages as for an in-memory design, which takes those statistics of its whole
frame as one partition: a constant response from the global minimum and maximum, collinear term
columns from their Gram matrices, rank deficiency of ``X`` from ``X'ᵀX'``, lme4's scale warning
from the column SDs (combined partition means and sums of squares); lme4's
levels-versus-observations checks come from the global counts.  The checks of the data
(:mod:`sparselmm.frame.checks`) are the in-memory design's too, made on the scan's counts.

The optimiser then runs on the driver exactly as for an in-memory fit, and
:class:`DaskLinearMixedModel` answers the usual accessors; fitted values,
residuals and predictions come back as lazy :class:`dask.dataframe.Series`
computed partition by partition from β̂ and the BLUPs.

The same code runs on a cluster: create a ``dask.distributed.Client`` for the
scheduler before calling :func:`sparselmm.lmer`; the data should then be read
by the workers (``dd.read_parquet("s3://...")``), not sent from the driver.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from sparselmm.errors import DataError, FormulaError, ModelSpecError, SparseLMMError
from sparselmm.spec.formula import ParsedFormula, parse_formula
from sparselmm.spec.vocabulary import needed_variables
from sparselmm.frame import checks
from sparselmm.frame.conditioning import Conditioning, fit_columns
from sparselmm.frame.moments import SCALING, Moments, combine_moments, moment_arguments, partition_moments, with_global_moments
from sparselmm.frame.modelframe import REAL_NUMBERS, Design, expand_dot, model_matrix, real_values, response_vector, term_fields
from sparselmm.frame.reduced import Partial, check_reduced, column_stats, combine_partials
from sparselmm.backends.base import BlockLowerCrossProducts, CrossProducts
from sparselmm.spec.terms import RandomTerm, as_factor, check_terms, grouping_factor, order_terms

__all__ = [
    "dask_design",
    "DaskDesign",
    "PartitionBuilder",
    "is_dask_dataframe",
    "STATEFUL_TRANSFORMS",
]

#: formulaic transforms whose result depends on the whole column (or on row order):
#: evaluated partition by partition they would differ between partitions.
STATEFUL_TRANSFORMS = (
    "center", "scale", "standardize", "poly", "bs", "ns", "cs", "cr", "cc", "te", "hashed", "lag",
    "factor", "as.factor", "ordered",  # the levels of the whole column: make it a categorical column first
)

_SAMPLE_ROWS = 2000  # complete rows kept by the scan (spread over the data), for the model specs and
_LEVEL_ROW = "__sparselmm_level_row__"  # the conditioning; with them the first row of each level


def is_dask_dataframe(obj: Any) -> bool:
    """Whether ``obj`` is a Dask collection (what ``lmer()`` hands to :func:`dask_design`)."""
    return type(obj).__module__.startswith("dask")


# ----------------------------------------------------------------------------------------
# factor coding with fixed, global levels


def _kind(dtype: Any) -> str:
    """How :func:`sparselmm.spec.terms.as_factor` treats a column of this dtype."""
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    return "other"


def _factorize(col: pd.Series, kind: str, cats: pd.Index) -> pd.Categorical:
    """The column as a Categorical with the global categories ``cats`` (unused ones kept)."""
    if kind == "bool":
        vals: Any = np.where(col.to_numpy(dtype=bool), "TRUE", "FALSE")
    elif kind == "category":
        vals = col.array
    else:
        vals = col.to_numpy()
    return pd.Categorical(vals, categories=cats)


def _sort_levels(values: pd.Index) -> list:
    """Sort used values as :func:`sparselmm.spec.terms.as_factor` sorts them (strings after a TypeError)."""
    uniq = pd.unique(values.to_numpy())
    try:
        return sorted(uniq)
    except TypeError:
        return sorted(uniq, key=str)


# ----------------------------------------------------------------------------------------
# pass 1: the scan


@dataclass
class _Scan:
    """What one partition (or a combination of partitions) says about levels and missing values."""

    n_rows: int = 0
    n_complete: int = 0
    na_counts: dict[str, int] = field(default_factory=dict)
    used: dict[str, pd.Index] = field(default_factory=dict)  # factor column -> used values
    kinds: dict[str, str] = field(default_factory=dict)
    cat_orders: dict[str, list | None] = field(default_factory=dict)  # Categorical columns: category list
    combos: dict[tuple[str, ...], pd.DataFrame] = field(default_factory=dict)
    sample: pd.DataFrame | None = None
    fixed_factors: tuple[str, ...] = ()
    moments: dict[str, Moments] = field(default_factory=dict)  # scale()'s arguments over all rows
    bad_weights: int = 0  # in rows otherwise complete, as in memory
    bad_offset: int = 0
    first_bad_weight: tuple[int, float] | None = None  # (row position, value) of the first bad weight


@dataclass
class _ScanSpec:
    columns: list[str]
    factor_columns: list[str]
    interactions: list[tuple[str, ...]]
    weights: str | None
    offset: str | None
    sample_rows: int = 50
    object_columns: tuple[str, ...] = ()  # object-dtype columns read as numbers: must not hold numbers
    fixed_factors: tuple[str, ...] = ()  # the fixed part's factors: the sample holds each level's first row
    moments: tuple[str, ...] = ()  # arguments of scale()/center(): their moments over all rows, as given


def _scan_partition(part: pd.DataFrame, spec: _ScanSpec) -> _Scan:
    """Pass 1 on one partition: missing values, used levels, a few complete rows."""
    out = _Scan(n_rows=len(part), fixed_factors=spec.fixed_factors)
    out.moments = partition_moments(part, spec.moments)  # on the data as given, as R's model.frame
    complete = np.ones(len(part), dtype=bool)
    out.na_counts = {}
    # weights and offset: a missing value drops its row (as in memory); infinite ones, and
    # weights that are not positive, are refused; non-numbers are refused
    values: dict[str, np.ndarray] = {}
    for what, col in (("weights", spec.weights), ("offset", spec.offset)):
        if col is None:
            continue
        v = values[what] = real_values(part[col], f"{what} column {col!r}")
        na = np.isnan(v)
        complete &= ~na
        if na.any():
            out.na_counts[what] = int(na.sum())
    for c in spec.object_columns:
        vals = part[c].dropna()
        if len(vals) and all(isinstance(v, (*REAL_NUMBERS, complex)) and not isinstance(v, (bool, np.bool_))
                             for v in vals):  # what the in-memory design reads as numbers (or refuses)
            raise DataError(
                f"column {c!r} has object dtype but holds numbers; in a Dask DataFrame give it a numeric dtype "
                f"first (ddf[{c!r}] = ddf[{c!r}].astype(float)), or strings if it is a factor"
            )
    frame = part[spec.columns]
    na = frame.isna()
    out.na_counts.update({c: int(v) for c, v in na.sum().items() if v})
    complete &= ~na.any(axis=1).to_numpy()
    out.bad_weights, out.first_bad_weight, out.bad_offset = checks.count_invalid(
        values.get("weights"), values.get("offset"), complete
    )
    frame = frame.loc[complete]
    out.n_complete = len(frame)
    for c in spec.factor_columns:
        col = frame[c]
        out.kinds[c] = _kind(col.dtype)
        if out.kinds[c] == "other" and pd.api.types.is_numeric_dtype(col.dtype):
            out.used[c] = pd.Index(pd.unique(col.to_numpy()))  # hashing, no sort: sorted once globally
        else:
            out.used[c] = pd.Index(as_factor(col, c).categories)
        if out.kinds[c] == "category":
            out.cat_orders[c] = list(col.cat.categories)
    for fs in spec.interactions:
        out.combos[fs] = frame[list(fs)].drop_duplicates()
    extra = [c for c in (spec.weights, spec.offset) if c is not None and c not in spec.columns]
    # the sample (the conditioning of y, X and w is fitted on it, sparselmm.frame.conditioning): rows
    # spread over the partition, not its head (data sorted by time or by a factor), and the first
    # row of each level of every factor, so that each level's cell has a centre
    rows = part.loc[complete, spec.columns + extra] if extra else frame
    k = len(rows)
    pick = np.zeros(k, dtype=bool)
    pick[np.unique(np.linspace(0, k - 1, min(spec.sample_rows, k)).astype(np.int64))] = k > 0
    level = np.zeros(k, dtype=bool)
    for c in spec.fixed_factors:
        level |= ~rows[c].duplicated().to_numpy()
    out.sample = rows[pick | level].assign(**{_LEVEL_ROW: level[pick | level]})
    return out


def _combine_scans(scans: Sequence[_Scan]) -> _Scan:
    """Combine partition scans: counts add, level sets and combinations unite."""
    out = _Scan(fixed_factors=scans[0].fixed_factors if scans else ())
    samples = []
    out.moments = combine_moments([s.moments for s in scans])
    for s in scans:
        if out.first_bad_weight is None and s.first_bad_weight is not None:  # its row among all partitions'
            out.first_bad_weight = (out.n_rows + s.first_bad_weight[0], s.first_bad_weight[1])
        out.n_rows += s.n_rows
        out.n_complete += s.n_complete
        out.bad_weights += s.bad_weights
        out.bad_offset += s.bad_offset
        for c, v in s.na_counts.items():
            out.na_counts[c] = out.na_counts.get(c, 0) + v
        for c, idx in s.used.items():
            prev = out.used.get(c)
            if prev is None or not len(prev):
                out.used[c] = idx
            elif len(idx):
                out.used[c] = prev.append(idx).unique()
            kind = s.kinds[c]
            if out.kinds.setdefault(c, kind) != kind:
                raise DataError(
                    f"column {c!r} has dtype kind {kind!r} in one partition and {out.kinds[c]!r} in another; "
                    "give it one dtype in every partition"
                )
        for c, order in s.cat_orders.items():
            if c not in out.cat_orders:
                out.cat_orders[c] = order
            elif out.cat_orders[c] is not None and out.cat_orders[c] != order:
                out.cat_orders[c] = None  # categories differ between partitions: sort the union
        for fs, df in s.combos.items():
            prev = out.combos.get(fs)
            out.combos[fs] = df if prev is None else pd.concat([prev, df], ignore_index=True).drop_duplicates()
        if s.sample is not None and len(s.sample):
            samples.append(s.sample)
    if samples:
        # at most _SAMPLE_ROWS spread rows, and every level's first row
        sample = pd.concat(samples)
        marked = sample[_LEVEL_ROW].to_numpy().copy()
        if marked.any():  # each level's first row over all partitions, not each partition's
            first = np.zeros(len(sample), dtype=bool)
            levels_of = [c for c in scans[0].fixed_factors if c in sample.columns] if scans else []
            for c in levels_of:
                first |= ~sample[c].where(marked).duplicated().to_numpy() & marked
            marked = first if levels_of else marked
        spread = np.flatnonzero(~marked)[:_SAMPLE_ROWS]
        keep = np.zeros(len(sample), dtype=bool)
        keep[spread] = True
        keep |= marked
        out.sample = sample[keep]
    elif scans and scans[0].sample is not None:
        out.sample = scans[0].sample
    return out


def _global_levels(scan: _Scan, c: str) -> tuple[str, pd.Index]:
    """(kind, sorted used levels) of factor column ``c`` over all partitions."""
    kind = scan.kinds.get(c, "other")
    used = scan.used.get(c, pd.Index([]))
    if kind == "bool":
        return kind, pd.Index(["FALSE", "TRUE"])
    if kind == "category":
        order = scan.cat_orders.get(c)
        if order is not None:
            keep = set(used.tolist())
            return kind, pd.Index([v for v in order if v in keep])
    if len(used) and pd.api.types.is_numeric_dtype(used.dtype):
        return kind, pd.Index(np.sort(used.unique().to_numpy()))
    return kind, pd.Index(_sort_levels(used))


# ----------------------------------------------------------------------------------------
# pass 2: the cross-products


@dataclass
class _TermLayout:
    """What a partition needs to code one random-effects term."""

    factors: tuple[str, ...]
    k: int
    spec: Any  # formulaic ModelSpec of the term's columns, None for (1 | g)
    offset: int  # first row of the term in Zt
    nlevels: int
    combos: np.ndarray | None = None  # sorted combined codes of the used interaction levels
    sizes: tuple[int, ...] = ()
    text: str = ""  # the term as written, and its columns' names: for the messages
    columns: tuple[str, ...] = ()


@dataclass
class PartitionBuilder:
    """Builds ``y``, ``X``, the term columns and level codes of one pandas partition.

    Everything that must agree between partitions is fixed here, once, on the
    driver: the factor levels, the formulaic model specs, the term order and
    the row layout of ``Zt``.  The object is small and picklable, so Dask
    ships it to the workers.

    Attributes
    ----------
    columns : list of str
        Columns the formula uses (rows with a missing value in one are dropped).
    response : str
        The response expression.
    response_vars : list of str
        Columns the response uses.
    fixed_spec : formulaic.ModelSpec or SimpleSpec
        Spec of the fixed-effects matrix (all columns, before rank-deficient ones are dropped).
    fixed_names : list of str
        R names of those columns.
    factors : dict
        Factor predictor column -> (kind, global categories).
    group_levels : dict
        Grouping column -> (kind, global levels).
    terms : list of _TermLayout
        The random-effects terms in lme4's order.
    q : int
        Number of random effects.
    weights, offset : str or None
        Column names of the prior weights and the offset.
    """

    columns: list[str]
    response: str
    response_vars: list[str]
    fixed_spec: Any
    fixed_names: list[str]
    factors: dict[str, tuple[str, pd.Index]]
    group_levels: dict[str, tuple[str, pd.Index]]
    terms: list[_TermLayout]
    q: int
    weights: str | None = None
    offset: str | None = None
    conditioning: Conditioning | None = None
    keep: np.ndarray | None = None  # the fixed-effects columns the cross-products use (None: all)

    @property
    def p_full(self) -> int:
        """Columns of the fixed-effects matrix before dropping rank-deficient ones."""
        return len(self.fixed_names)

    # ----- rows and columns -----------------------------------------------------------
    def frame(self, part: pd.DataFrame, newdata: bool = False) -> tuple[pd.DataFrame, np.ndarray | None, np.ndarray | None]:
        """Complete rows of the used columns with global factor coding, and their weights and offset.

        Parameters
        ----------
        part : pandas.DataFrame
            One partition.
        newdata : bool
            Whether ``part`` is new data (prediction): then only the columns it has are
            selected, and weights are not read.
        """
        cols = [c for c in self.columns if c in part.columns] if newdata else self.columns
        frame = part[cols]
        keep = ~frame.isna().any(axis=1).to_numpy()
        if self.weights is not None and not newdata:  # a missing weight or offset drops its row
            keep &= part[self.weights].notna().to_numpy()
        if self.offset is not None:
            if self.offset not in part.columns:  # new data: the fit's offset column is needed
                raise DataError(f"newdata lacks the offset column {self.offset!r} of the fit; add it or pass offset=")
            keep &= part[self.offset].notna().to_numpy()
        if not keep.all():
            frame = frame.loc[keep]
        frame = frame.copy()
        checks.check_infinite(frame, cols)
        for c, (kind, cats) in self.factors.items():
            if c in frame.columns:
                frame[c] = _factorize(frame[c], kind, cats)
        w = off = None
        if self.weights is not None and not newdata:
            w = real_values(part[self.weights], "weights")[keep]
        if self.offset is not None:
            off = real_values(part[self.offset], "offset")[keep]
        return frame, w, off

    def fixed_matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """``X`` of the rows of ``frame`` (all spec columns)."""
        try:
            with np.errstate(all="ignore"):
                X = self.fixed_spec.get_model_matrix(frame, na_action="raise")
        except Exception as exc:  # formulaic's own errors
            raise FormulaError(f"cannot build the fixed-effects matrix of a partition: {exc}") from exc
        X = np.asarray(X.to_numpy(dtype=float)).reshape(len(frame), self.p_full)
        checks.check_finite(X, self.fixed_names, "fixed-effects column")
        return X

    def term_matrix(self, t: _TermLayout, frame: pd.DataFrame) -> np.ndarray:
        """The model columns of term ``t`` (n × k)."""
        if t.spec is None:
            return np.ones((len(frame), 1))
        try:
            with np.errstate(all="ignore"):
                Xt = t.spec.get_model_matrix(frame, na_action="raise")
        except Exception as exc:
            raise FormulaError(f"cannot build the columns of the term on {':'.join(t.factors)!r}: {exc}") from exc
        Xt = np.asarray(Xt.to_numpy(dtype=float)).reshape(len(frame), t.k)
        checks.check_finite(Xt, t.columns, checks.term_finite_what(t.text))
        return Xt

    def codes(self, t: _TermLayout, frame: pd.DataFrame) -> np.ndarray:
        """0-based level of every row for term ``t``; -1 for a level not seen in the fit."""
        per = []
        for f in t.factors:
            kind, cats = self.group_levels[f]
            col = frame[f]
            if isinstance(col.dtype, pd.CategoricalDtype) and col.cat.categories.equals(cats):
                c = np.asarray(col.cat.codes, dtype=np.int64)
            else:
                c = np.asarray(_factorize(col, kind, cats).codes, dtype=np.int64)
            per.append(c)
        if len(per) == 1:
            return per[0]
        combined = np.zeros(len(frame), dtype=np.int64)
        for c, size in zip(per, t.sizes):
            combined = combined * size + c
        bad = np.zeros(len(frame), dtype=bool)
        for c in per:
            bad |= c < 0
        pos = np.searchsorted(t.combos, combined)
        pos = np.minimum(pos, len(t.combos) - 1)
        found = (t.combos[pos] == combined) & ~bad
        return np.where(found, pos, -1)

    def response_values(self, frame: pd.DataFrame) -> np.ndarray:
        """The response of the rows of ``frame``."""
        return response_vector(self.response, frame, self.response_vars)

    # ----- pass 2 -----------------------------------------------------------------------
    def cross(self, part: pd.DataFrame) -> Partial:
        """The partition's block-lower ``[Z X y]ᵀW[Z X y]`` and the statistics of the global checks."""
        frame, w, off = self.frame(part)
        n = len(frame)
        p = self.p_full if self.keep is None else len(self.keep)
        y = self.response_values(frame) if n else np.zeros(0)
        X = self.fixed_matrix(frame) if n else np.zeros((0, self.p_full))
        if self.keep is not None:
            X = X[:, self.keep]
        codes = [self.codes(t, frame) for t in self.terms]
        Xts = [self.term_matrix(t, frame) if n else np.zeros((0, t.k)) for t in self.terms]
        for t, c in zip(self.terms, codes):
            if n and (c < 0).any():
                raise SparseLMMError(
                    f"internal error: a level of {':'.join(t.factors)!r} was not seen by the scan of the data"
                )
        yadj = y if off is None else y - off
        # the engine's units (sparselmm.frame.conditioning), fitted on the scan's sample
        cond = self.conditioning
        Xc = X
        if cond is not None:
            yadj = cond.y(yadj, X)
            Xc = cond.X(X)
            w = cond.w(w)
        stats = column_stats(y, X, Xts, None if cond is None else cond.x_scale, Xc=Xc,
                             gram=None if w is None else Xc.T @ Xc)
        X = Xc
        ww = np.ones(n) if w is None else w
        ZtZ = _ztz_block_lower(self.terms, codes, Xts, ww, self.q)
        ZtX = np.zeros((self.q, p))
        Zty = np.zeros(self.q)
        for t, c, Xt in zip(self.terms, codes, Xts):
            for j in range(t.k):
                rows = t.offset + c * t.k + j
                v = ww * Xt[:, j]
                Zty += np.bincount(rows, weights=v * yadj, minlength=self.q)
                for i in range(p):
                    ZtX[:, i] += np.bincount(rows, weights=v * X[:, i], minlength=self.q)
        Xw = X * ww[:, None]
        cross = CrossProducts(
            ZtZ=ZtZ,
            ZtX=ZtX,
            Zty=Zty,
            XtX=X.T @ Xw,
            Xty=Xw.T @ yadj,
            yty=float(yadj @ (ww * yadj)),
            n=n,
            ldW=0.0 if w is None else float(np.sum(np.log(w))),
        )
        return Partial(cross, stats)

    # ----- after the fit ----------------------------------------------------------------
    def linear_predictor(
        self,
        part: pd.DataFrame,
        beta: np.ndarray,
        keep: np.ndarray,
        b: np.ndarray | None,
        newdata: bool = False,
        allow_new_levels: bool = False,
    ) -> tuple[pd.Series, pd.DataFrame, np.ndarray | None]:
        """``η = X β̂ (+ Z b̂) (+ offset)`` for the complete rows of a partition.

        Parameters
        ----------
        part : pandas.DataFrame
        beta : numpy.ndarray
            Fixed effects (of the kept columns ``keep`` of the spec).
        keep : numpy.ndarray
            Indices of the spec's columns kept in the fit.
        b : numpy.ndarray or None
            The conditional modes ``b = Λu`` in ``Zt``'s row layout; None for the population level.
        newdata : bool
            Prediction for new data: a missing response column is fine.
        allow_new_levels : bool
            New levels contribute 0 instead of raising.

        Returns
        -------
        eta : pandas.Series
            Indexed by the complete rows of ``part``.
        frame : pandas.DataFrame
            Those rows, coded.
        weights : numpy.ndarray or None
            Their prior weights (fitted data only).
        """
        frame, w, off = self.frame(part, newdata=newdata)
        n = len(frame)
        eta = self.fixed_matrix(frame)[:, keep] @ beta if n else np.zeros(0)
        if b is not None and n:
            for t in self.terms:
                missing = [f for f in t.factors if f not in frame.columns]
                if missing:
                    raise DataError(f"newdata lacks grouping column(s) {missing} of the term on {':'.join(t.factors)!r}")
                c = self.codes(t, frame)
                new = c < 0
                if new.any() and not allow_new_levels:
                    raise DataError(
                        f"{int(new.sum())} row(s) have a level of grouping factor {':'.join(t.factors)!r} not seen "
                        "in the fit; use allow_new_levels=True to predict them at the population level"
                    )
                Xt = self.term_matrix(t, frame)
                cc = np.where(new, 0, c)
                for j in range(t.k):
                    eta = eta + np.where(new, 0.0, Xt[:, j] * b[t.offset + cc * t.k + j])
        if off is not None:
            eta = eta + off
        return pd.Series(eta, index=frame.index, dtype=float), frame, w


def _ztz_block_lower(
    terms: Sequence[_TermLayout], codes: Sequence[np.ndarray], Xts: Sequence[np.ndarray], w: np.ndarray, q: int
) -> sp.csc_matrix:
    """Block-lower part of ``ZᵀWZ`` for the rows given, as CSC.

    Observation ``i`` adds ``w_i x_{is} x_{it}ᵀ`` to the block (level of ``i`` in
    term ``s``, level of ``i`` in term ``t``); within a term that is a diagonal
    block (for a scalar term: one ``bincount``), and for ``s`` after ``t`` in the
    term order it is below the diagonal.
    """
    rows, cols, vals = [], [], []
    diag = np.zeros(q)
    idx_dtype = np.int32 if q < 2**31 - 1 else np.int64
    for s, (ts, cs, Xs) in enumerate(zip(terms, codes, Xts)):
        for t in range(s + 1):
            tt, ct, Xt = terms[t], codes[t], Xts[t]
            if s == t and ts.k == 1:
                diag += np.bincount(ts.offset + cs, weights=w * Xs[:, 0] ** 2, minlength=q)
                continue
            for a in range(ts.k):
                ra = (ts.offset + cs * ts.k + a).astype(idx_dtype)
                for bcol in range(tt.k):
                    rows.append(ra)
                    cols.append((tt.offset + ct * tt.k + bcol).astype(idx_dtype))
                    vals.append(w * Xs[:, a] * Xt[:, bcol])
    if rows and len(rows[0]):
        A = sp.coo_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(q, q)
        ).tocsc()
        del rows, cols, vals
        A = (A + sp.diags(diag, format="csc")).tocsc() if diag.any() else A
    else:
        A = sp.diags(diag, format="csc")
    A.sum_duplicates()
    A.sort_indices()
    return A


# ----------------------------------------------------------------------------------------
# the design


@dataclass
class DaskDesign(Design):
    """A :class:`~sparselmm.frame.modelframe.Design` whose rows stay in a Dask DataFrame.

    ``y``, ``X`` and ``Zt`` are empty placeholders (0 rows / 0 columns of the
    right width); ``cross`` holds the reduced cross-products, ``ZᵀWZ`` by its
    block-lower part (:class:`~sparselmm.backends.base.BlockLowerCrossProducts`: the full
    symmetric matrix is built only if something reads it), so every θ-dependent computation
    works as for an in-memory design.  ``n`` is the number of observations in the data.

    Attributes
    ----------
    source : dask.dataframe.DataFrame
        The data (the used columns, weights and offset).
    builder : PartitionBuilder
        Rebuilds ``X``, ``y``, codes and term columns of a partition.
    n_rows : int
        Rows in the data, complete or not.
    """

    source: Any = None
    builder: PartitionBuilder | None = None
    n_rows: int = 0
    data_name: str | None = None  # the Dask collection the design was made from (anova compares it)

    @property
    def n(self) -> int:
        """Number of observations used (rows with no missing value in a used column)."""
        return int(self.cross.n)


def _check_stateful(pf: ParsedFormula) -> None:
    if pf.offsets:
        raise ModelSpecError(
            f"offset({pf.offsets[0]}) in {pf.formula!r}: an offset written in the formula is not available for a "
            "Dask fit yet; compute it as a column (ddf['off'] = ...) and pass offset='off'"
        )
    texts = [("the fixed part", pf.fixed), ("the response", pf.response)] + [(repr(b.text), b.lhs) for b in pf.bars]
    for where, text in texts:
        for name in STATEFUL_TRANSFORMS:
            if name in SCALING and where != "the response":  # their moments come from the first pass
                continue
            if re.search(rf"(?<![A-Za-z0-9_.]){name}\s*\(", text):
                how = (
                    "make the column categorical first (ddf['x'] = ddf.x.astype('category')) and use it as it is"
                    if name in ("factor", "as.factor") else
                    "compute the transformed column first (e.g. ddf['x_s'] = (ddf.x - m) / s with m and s "
                    "computed by Dask) and use it in the formula"
                )
                raise ModelSpecError(
                    f"{name}() in {where} of {pf.formula!r} depends on the whole column, which a Dask fit never holds; {how}"
                )


def _tree(items: list, combine: Any, split_every: int) -> Any:
    from dask import delayed

    while len(items) > 1:
        items = [delayed(combine)(items[i : i + split_every]) for i in range(0, len(items), split_every)]
    return items[0]


def dask_design(
    formula: str,
    data: Any,
    *,
    weights: str | None = None,
    offset: str | None = None,
    na_action: str = "omit",
    split_every: int = 8,
) -> DaskDesign:
    """Build a design from a Dask DataFrame in two passes over the data (see the module docstring).

    Parameters
    ----------
    formula : str
        lme4 formula.
    data : dask.dataframe.DataFrame
        The data; partitions are pandas DataFrames with the same columns.
    weights, offset : str, optional
        Names of the columns holding prior weights and an offset.
    na_action : {"omit", "fail"}
        Drop rows with a missing value in a used column, or raise.
    split_every : int
        Fan-in of the tree reduction of the cross-products.

    Returns
    -------
    DaskDesign

    Raises
    ------
    FormulaError, DataError, ModelSpecError
        As :func:`sparselmm.design` does, with the checks that need all rows made on
        reduced statistics.
    """
    from dask import delayed

    if not is_dask_dataframe(data) or not hasattr(data, "to_delayed"):
        raise checks.not_a_dataframe("dask", data)
    checks.check_na_action(na_action)
    for what, v in (("weights", weights), ("offset", offset)):
        if v is not None and not isinstance(v, str):
            raise DataError(
                f"with a Dask DataFrame, {what} must be the name of a column of the data, got {type(v).__name__}"
            )
    columns = [str(c) for c in data.columns]
    pf = expand_dot(parse_formula(formula), columns)
    _check_stateful(pf)
    checks.check_unique_columns(columns)
    resp_vars, fixed_vars, group_vars = needed_variables(pf, columns)
    used = list(dict.fromkeys(resp_vars + fixed_vars + group_vars))
    checks.check_formula_columns(formula, used, columns)
    for what, v in (("weights", weights), ("offset", offset)):
        if v is not None:
            checks.check_named_column(what, v, columns)
    dtypes = data.dtypes
    for c in dict.fromkeys(used + [c for c in (weights, offset) if c is not None]):
        if pd.api.types.is_complex_dtype(dtypes[c]):
            raise checks.complex_numbers(c)
        if c in fixed_vars or c in resp_vars:
            checks.check_not_datetime(c, dtypes[c])
    fixed_factor = [
        c
        for c in dict.fromkeys(fixed_vars + resp_vars)
        if c in fixed_vars
        and (_kind(dtypes[c]) != "other" or not pd.api.types.is_numeric_dtype(dtypes[c]))
    ]
    factor_columns = list(dict.fromkeys(fixed_factor + group_vars))
    interactions = list(dict.fromkeys(b.factors for b in pf.bars if len(b.factors) > 1))
    selected = list(dict.fromkeys(used + [c for c in (weights, offset) if c is not None]))
    source = data[selected]

    # ---- pass 1: levels, missing values, a sample -------------------------------------------
    objects = tuple(c for c in dict.fromkeys(fixed_vars + resp_vars) if dtypes[c] == object)
    spec = _ScanSpec(used, factor_columns, interactions, weights, offset, object_columns=objects,
                     fixed_factors=tuple(fixed_factor),
                     moments=moment_arguments([pf.fixed] + [b.lhs for b in pf.bars], STATEFUL_TRANSFORMS))
    parts = source.to_delayed()
    spec_d = delayed(spec, pure=True)
    scan: _Scan = _tree([delayed(_scan_partition)(p, spec_d) for p in parts], _combine_scans, split_every).compute()
    checks.check_weights(scan.bad_weights, scan.first_bad_weight)
    checks.check_offset(scan.bad_offset)
    n_dropped = scan.n_rows - scan.n_complete
    checks.check_missing(n_dropped, sorted(scan.na_counts), na_action)
    n = scan.n_complete
    checks.check_rows_left(n, n_dropped, used)
    levels = {c: _global_levels(scan, c) for c in factor_columns}
    for c in fixed_factor:
        if levels[c][0] == "other":  # strings (object columns arrive as strings under dask's convert-string)
            checks.warn_numeric_labels(c, levels[c][1], stacklevel=5)
    sample = scan.sample.drop(columns=[_LEVEL_ROW])
    for c in fixed_factor:
        sample[c] = _factorize(sample[c], *levels[c])

    # ---- model specs, the term layout and the conditioning, on the sample ----------------------
    y_sample = response_vector(pf.response, sample, resp_vars)  # a non-numeric response fails here
    X_sample, X_names_full, fixed_spec = model_matrix(pf.fixed, sample, "the fixed-effects matrix")
    if scan.moments:  # scale(): the mean and SD of all rows, then the sample's columns with them
        fixed_spec = with_global_moments(fixed_spec, pf.fixed, columns, scan.moments)
        X_sample = np.asarray(fixed_spec.get_model_matrix(sample, na_action="ignore").to_numpy(dtype=float))
    w_sample = None if weights is None else sample[weights].to_numpy(dtype=float)
    if offset is not None:
        y_sample = y_sample - sample[offset].to_numpy(dtype=float)

    def conditioning(keep: np.ndarray | None) -> Conditioning:
        Xs = X_sample if keep is None else X_sample[:, keep]
        return fit_columns(Xs).with_response(y_sample, Xs, w_sample)

    cond = conditioning(None)
    terms: list[RandomTerm] = []
    specs: dict[int, Any] = {}
    combos: dict[tuple[str, ...], tuple[np.ndarray, tuple[int, ...]]] = {}
    for b in pf.bars:
        if b.lhs.strip() == "1":
            cols, tspec = ["(Intercept)"], None
        else:
            Xs, cols, tspec = model_matrix(b.lhs, sample, f"the columns of term {b.text!r}")
            tspec = with_global_moments(tspec, b.lhs, columns, scan.moments)
            checks.check_term_has_columns(b.text, Xs.shape[1])
            checks.check_term_split(b, sample)
        if len(b.factors) == 1:
            kind, cats = levels[b.factors[0]]
            _, labels, categories = grouping_factor(pd.DataFrame({b.factors[0]: pd.Categorical(cats, categories=cats)}), b.factors)
        else:
            cf = scan.combos[b.factors].copy()
            for f in b.factors:
                cf[f] = _factorize(cf[f], *levels[f])
            _, labels, categories = grouping_factor(cf, b.factors)
            sizes = tuple(len(levels[f][1]) for f in b.factors)
            comb = np.zeros(len(cf), dtype=np.int64)
            for f, size in zip(b.factors, sizes):
                comb = comb * size + np.asarray(cf[f].cat.codes, dtype=np.int64)
            combos[b.factors] = (np.unique(comb), sizes)
        term = RandomTerm(
            bar=b, group=b.group, levels=labels, codes=np.zeros(0, dtype=np.int64), columns=cols,
            Xt=np.zeros((0, len(cols))), spec=tspec, categories=categories,
        )
        specs[id(term)] = tspec
        terms.append(term)
    checks.check_random_terms(terms, formula)
    terms = order_terms(terms)
    check_terms(terms, n)
    Gp = np.concatenate([[0], np.cumsum([t.q for t in terms])]).astype(np.int64)
    q = int(Gp[-1])
    layouts = []
    for t, off in zip(terms, Gp[:-1]):
        cmb, sizes = combos.get(t.bar.factors, (None, ()))
        layouts.append(_TermLayout(t.bar.factors, t.k, t.spec, int(off), t.nlevels, cmb, sizes, t.bar.text, tuple(t.columns)))
    builder = PartitionBuilder(
        columns=used,
        response=pf.response,
        response_vars=resp_vars,
        fixed_spec=fixed_spec,
        fixed_names=list(X_names_full),
        factors={c: levels[c] for c in fixed_factor},
        group_levels={c: levels[c] for c in group_vars},
        terms=layouts,
        q=q,
        weights=weights,
        offset=offset,
        conditioning=cond,
    )

    # ---- pass 2: the cross-products ------------------------------------------------------------
    def cross_products(builder: PartitionBuilder) -> Partial:
        builder_d = delayed(builder, pure=True)
        total: Partial = _tree(
            [delayed(PartitionBuilder.cross)(builder_d, p) for p in source.to_delayed()], combine_partials, split_every
        ).compute()
        if total.cross.n != n:
            raise SparseLMMError(f"internal error: the scan counted {n} complete rows, the cross-products {total.cross.n}")
        return total

    total = cross_products(builder)

    # ---- global checks --------------------------------------------------------------------------
    # the checks on the reduced statistics, as in memory; the conditioning was fitted on the sample, so
    # the columns constant to rounding are judged here, on all rows
    keep, dropped = check_reduced(pf.response, terms, total.stats, X_names_full, cond.x_scale, total.rank_gram,
                                  flat=total.stats.flat_columns(cond), stacklevel=3)
    X_names = [X_names_full[j] for j in keep]
    if dropped:
        kept = cond.restrict(keep)  # X'[:, keep] conditions the kept columns, unless one was
        if kept is not None:  # centred against a dropped one
            cond = kept
        else:  # condition the kept columns afresh: a second pass
            builder.keep, builder.conditioning = keep, conditioning(keep)
            cond = builder.conditioning
            total = cross_products(builder)
            keep = np.arange(len(keep))

    # ---- the symmetric ZᵀWZ and the θ template ------------------------------------------------------
    block_of = np.concatenate(
        [start + np.repeat(np.arange(t.nlevels, dtype=np.int64), t.k) for t, start in zip(terms, _block_starts(terms))]
    )
    tc = total.cross
    cross = BlockLowerCrossProducts(
        tc.ZtZ,
        block_of,
        ZtX=np.ascontiguousarray(tc.ZtX[:, keep]),
        Zty=tc.Zty,
        XtX=tc.XtX[np.ix_(keep, keep)],
        Xty=tc.Xty[keep],
        yty=float(tc.yty),
        n=int(tc.n),
        ldW=float(tc.ldW),
    )
    factor_levels = {c: [str(v) for v in levels[c][1]] for c in fixed_factor}
    factor_categories = {c: levels[c][1] for c in fixed_factor}
    for c in group_vars:
        if levels[c][0] == "category" and c not in factor_levels:
            factor_levels[c] = [str(v) for v in levels[c][1]]
    p = len(keep)
    return DaskDesign(
        formula=pf,
        y=np.zeros(0),
        X=np.zeros((0, p)),
        X_names=X_names,
        Zt=sp.csc_matrix((q, 0)),
        **term_fields(terms, Gp),
        weights=None,
        offset=None,
        n_dropped=int(n_dropped),
        dropped_columns=dropped,
        cross=cross,
        row_index=pd.RangeIndex(0),
        fixed_spec=fixed_spec,
        fixed_keep=keep if builder.keep is None else builder.keep,
        factor_levels=factor_levels,
        factor_categories=factor_categories,
        conditioning=cond,
        offset_name=offset,
        source=source,
        data_name=getattr(data, "_name", None),
        builder=builder,
        n_rows=int(scan.n_rows),
    )


def _block_starts(terms: Sequence[RandomTerm]) -> list[int]:
    """Global index of each term's first level block (blocks counted over all terms)."""
    out, pos = [], 0
    for t in terms:
        out.append(pos)
        pos += t.nlevels
    return out
