"""Random-effects terms: grouping factors, their model columns, Zt blocks and the θ template.

For a term ``(lhs | g)`` with ``k`` model columns and ``ℓ`` levels of ``g``, the
block of ``Zt`` has ``ℓ·k`` rows, level-major as lme4 lays them out (row
``j·k + c`` is column ``c`` of level ``j``), and the relative covariance factor
``Λ`` has one ``k × k`` lower-triangular block per level.  θ holds the lower
triangle of that block column by column (lme4's order); ``Lind`` maps each
stored entry of ``Λ`` (row-major within a block, which is the CSC order of
lme4's ``Lambdat``) to its θ index.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from sparselmm.spec.covariance import CovStructure, make_structure
from sparselmm.errors import DataError, ModelSpecError
from sparselmm.spec.formula import BarTerm

__all__ = ["RandomTerm", "grouping_factor", "order_terms", "build_zt", "build_lambda", "theta_template"]


@dataclass
class RandomTerm:
    """One random-effects term after evaluation on the data.

    Attributes
    ----------
    bar : BarTerm
        The parsed term.
    group : str
        Grouping factor name as lme4 prints it (``"Subject"``, ``"cask:batch"``).
    levels : pandas.Index
        Levels of the grouping factor (unused levels dropped), as strings.
    codes : numpy.ndarray
        Level code (0-based) of every observation.
    columns : list of str
        Names of the term's model columns (``["(Intercept)", "Days"]``).
    Xt : numpy.ndarray
        The term's model matrix, observations by columns (n × k).
    structure : CovStructure
        Map from the term's parameters to its relative factor block.
    """

    bar: BarTerm
    group: str
    levels: pd.Index
    codes: np.ndarray
    columns: list[str]
    Xt: np.ndarray
    structure: CovStructure = field(init=False)
    spec: object = None  # formulaic ModelSpec of the term's columns, for new data
    categories: tuple = ()  # per factor of the grouping, its levels as values (new data match by value)

    def __post_init__(self) -> None:
        self.structure = make_structure(self.bar.structure, len(self.columns), self.columns)

    @property
    def k(self) -> int:
        """Number of model columns of the term."""
        return len(self.columns)

    @property
    def nlevels(self) -> int:
        """Number of levels of the grouping factor."""
        return len(self.levels)

    @property
    def q(self) -> int:
        """Number of random effects of the term (levels × columns)."""
        return self.nlevels * self.k


def category_strings(cats: pd.Index) -> list[str]:
    """The categories as strings (``str`` of each; string categories in one conversion).

    Parameters
    ----------
    cats : pandas.Index
        A categorical's categories.

    Returns
    -------
    list of str
    """
    if isinstance(cats.dtype, pd.StringDtype):  # strings already: no per-level str()
        return cats.to_numpy(dtype=object).tolist()
    return [str(c) for c in cats]


def _level_strings(cat: pd.Categorical) -> list[str]:
    cats = cat.categories
    if pd.api.types.is_float_dtype(cats.dtype) and np.all(np.mod(cats.to_numpy(), 1) == 0):
        return [str(int(c)) for c in cats]
    return category_strings(cats)


def as_factor(values: pd.Series, name: str) -> pd.Categorical:
    """Turn a column into a categorical with R's level order, unused levels dropped.

    Categorical columns keep their category order; numbers are sorted
    numerically; strings are sorted as strings; a column mixing strings and
    numbers is refused because ``1`` and ``"1"`` would silently become one level.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        cat = values.array
        codes = cat.codes  # the Categorical's own (read-only) codes: no accessor, no copy
        ncat = len(cat.categories)
        if ncat and len(codes) and codes.min() >= 0 and np.bincount(codes, minlength=ncat).all():
            return cat  # every level used (the usual case): nothing to drop
        return cat.remove_unused_categories()
    if values.dtype == object:
        kinds = {type(v) for v in values.dropna()}
        bad = [t for t in kinds if t.__hash__ is None]
        if bad:
            raise DataError(
                f"column {name!r} holds {bad[0].__name__} values; a factor needs one label (a string or a "
                "number) per row"
            )
        if any(issubclass(t, str) for t in kinds) and any(issubclass(t, (int, float, np.number)) for t in kinds):
            raise DataError(
                f"column {name!r} mixes strings and numbers as group codes; "
                f"convert it first, e.g. df[{name!r}] = df[{name!r}].astype(str)"
            )
    if pd.api.types.is_bool_dtype(values.dtype):
        # R's factor() of a logical column: the levels that occur (a column that is TRUE throughout
        # is a factor of one level, not two with FALSE empty)
        cat = pd.Categorical(np.where(values.to_numpy(dtype=bool), "TRUE", "FALSE"), categories=["FALSE", "TRUE"])
        return cat.remove_unused_categories()
    uniq = pd.unique(values.to_numpy())
    try:
        cats = sorted(uniq)
    except TypeError:
        cats = sorted(uniq, key=str)
    cat = pd.Categorical(values, categories=cats)
    return cat.remove_unused_categories()


def grouping_factor(data: pd.DataFrame, factors: tuple[str, ...]) -> tuple[np.ndarray, pd.Index, tuple]:
    """Codes and level labels of a grouping factor or an interaction ``a:b``, and each factor's levels.

    Interaction levels are labelled ``"la:lb"`` and ordered with the first
    factor varying slowest, as R's ``a:b`` orders them; unused combinations are dropped.

    Parameters
    ----------
    data : pandas.DataFrame
        The model frame (no missing values in the columns named).
    factors : tuple of str
        Column names; one for a plain factor.

    Returns
    -------
    codes : numpy.ndarray of int64
    levels : pandas.Index of str
    categories : tuple of pandas.Index
        Per factor, its used levels as values (what :func:`level_codes` matches new data against).
    """
    cats = [as_factor(data[f], f) for f in factors]
    values = tuple(c.categories for c in cats)
    if len(cats) == 1:
        c = cats[0]
        if isinstance(c.categories.dtype, pd.StringDtype):  # string levels: the categories as they are
            return np.asarray(c.codes, dtype=np.int64), pd.Index(c.categories, name=None), values
        return np.asarray(c.codes, dtype=np.int64), pd.Index(_level_strings(c)), values
    codes = np.zeros(len(data), dtype=np.int64)
    for c in cats:
        codes = codes * len(c.categories) + np.asarray(c.codes, dtype=np.int64)
    used, inverse = np.unique(codes, return_inverse=True)
    labels = []
    sizes = [len(c.categories) for c in cats]
    names = [_level_strings(c) for c in cats]
    for u in used:
        parts = []
        for size, nm in zip(reversed(sizes), reversed(names)):
            parts.append(nm[u % size])
            u //= size
        labels.append(":".join(reversed(parts)))
    return inverse.astype(np.int64), pd.Index(labels), values


def level_codes(values: pd.Series, categories: pd.Index, name: str) -> np.ndarray:
    """Codes of new data's values among a fitted factor's levels, matched by value.

    The values are converted as :func:`as_factor` converted the fit's (booleans become
    ``"TRUE"``/``"FALSE"``, a categorical gives its values), then looked up among
    ``categories`` by value — a float ``0.0`` finds the level ``0``, a datetime finds its
    timestamp, whatever the dtype.  Values that still find nothing are tried by their
    label (a string ``"308"`` finds the number 308, as R matches factor labels).

    Parameters
    ----------
    values : pandas.Series
        The new data's column (missing values allowed).
    categories : pandas.Index
        The fitted factor's levels as values.
    name : str
        Column name, for messages.

    Returns
    -------
    numpy.ndarray of int64
        The level of each row, ``-1`` for a value the fit did not see, ``-2`` for a missing one.
    """
    missing = values.isna().to_numpy()
    present = values[~missing]
    logical = pd.api.types.is_bool_dtype(values.dtype) or (
        values.dtype == object and len(present) and all(isinstance(v, (bool, np.bool_)) for v in present))
    if logical:  # as as_factor codes a logical column (missing values, nullable or object dtype, too)
        vals: pd.Index = pd.Index(np.where(missing, None, np.where(values.fillna(False).to_numpy(dtype=bool),
                                                                    "TRUE", "FALSE")), dtype=object)
    elif isinstance(values.dtype, pd.CategoricalDtype):
        vals = pd.Index(values.astype(object).to_numpy())
    else:
        vals = pd.Index(values.to_numpy())
    try:
        codes = np.asarray(categories.get_indexer(vals), dtype=np.int64)
    except (TypeError, ValueError):  # values the index cannot compare: none of them is a level
        codes = np.full(len(vals), -1, dtype=np.int64)
    todo = (codes < 0) & ~missing
    if todo.any():
        labels = pd.Index(level_labels(categories))
        as_text = pd.Index([str(v) for v in vals[todo]])
        codes[todo] = labels.get_indexer(as_text)
    codes[missing] = -2
    return codes


def level_labels(categories: pd.Index) -> list[str]:
    """The labels lme4 prints for a factor's levels (``"308"``, ``"TRUE"``, ``"a:b"`` parts)."""
    return _level_strings(pd.Categorical(categories, categories=categories))


def order_terms(terms: list[RandomTerm]) -> list[RandomTerm]:
    """Order terms as lme4's ``mkReTrms`` does.

    When some term has more levels than the one before it, lme4 reorders by
    ``rev(order(nl))``: decreasing number of levels, ties in reverse order of
    appearance.  Otherwise the written order is kept.
    """
    nl = [t.nlevels for t in terms]
    if any(b > a for a, b in zip(nl, nl[1:])):
        asc = sorted(range(len(nl)), key=lambda i: nl[i])  # stable, like R's order()
        return [terms[i] for i in reversed(asc)]
    return terms


def check_terms(terms: list[RandomTerm], n: int, residual_variance: bool = True) -> None:
    """lme4's identifiability checks on the random-effects terms.

    Raises
    ------
    ModelSpecError
        A grouping factor with fewer than 2 levels, as many levels as
        observations (lme4's ``check.nobs.vs.nlev``), or a term with at least
        as many random effects as observations (``check.nobs.vs.nRE``); the last two
        only with ``residual_variance`` (a model with σ to estimate: lme4's ``useSc``;
        a binomial or Poisson GLMM may have one level per observation).
    """
    seen: dict[tuple, str] = {}
    for t in terms:
        for col in t.columns:
            key = (t.group, col)
            if key in seen:
                raise ModelSpecError(
                    f"random-effects column {col!r} of grouping factor {t.group!r} appears in {seen[key]!r} and "
                    f"again in {t.bar.text!r}: the two variances cannot be told apart; write it once"
                )
            seen[key] = t.bar.text
    for i, t in enumerate(terms):  # other factors that group the rows the same way: the same columns of Z
        for s in terms[:i]:
            common = [c for c in t.columns if c in s.columns]
            if s.group != t.group and common and s.nlevels == t.nlevels and _same_grouping(s.codes, t.codes, t.nlevels):
                raise ModelSpecError(
                    f"grouping factors {s.group!r} and {t.group!r} group the observations the same way, so column "
                    f"{common[0]!r} of {s.bar.text!r} and of {t.bar.text!r} is one random effect twice: the two "
                    "variances cannot be told apart; drop one of the terms"
                )
    for t in terms:
        if t.nlevels < 2:
            raise ModelSpecError(
                f"grouping factor {t.group!r} in {t.bar.text!r} has {t.nlevels} level; "
                "a random effect needs at least 2 sampled levels"
            )
        if t.nlevels >= n and residual_variance:  # lme4 checks these where σ is estimated (useSc) only
            raise ModelSpecError(
                f"grouping factor {t.group!r} has {t.nlevels} levels for {n} observations: the number of levels "
                "must be < the number of observations (each level needs replication), "
                "or the random effect cannot be told from the residual"
            )
        if t.q >= n and t.k > 1 and residual_variance:
            raise ModelSpecError(
                f"term {t.bar.text!r} has {t.q} random effects ({t.nlevels} levels × {t.k} columns) for {n} "
                "observations: the random-effects parameters and the residual variance are unidentifiable; "
                "simplify the term, e.g. (1 | g) or (x || g)"
            )


def _same_grouping(a: np.ndarray, b: np.ndarray, nlevels: int) -> bool:
    """Whether two codings with ``nlevels`` levels each (all used) put the rows in the same groups:
    the pairs ``(a_i, b_i)`` take exactly ``nlevels`` values."""
    return len(np.unique(a.astype(np.int64) * nlevels + b)) == nlevels


def build_zt(terms: list[RandomTerm], n: int) -> tuple[sp.csc_matrix, np.ndarray]:
    """Assemble ``Zt`` (q × n, CSC) and the term boundaries ``Gp``.

    Every observation's column holds, for each term, its ``k`` model values
    in the rows of its level; the rows in a column increase, so the CSC
    arrays are built directly with no sort (O(n · Σk)).
    """
    Gp = np.concatenate([[0], np.cumsum([t.q for t in terms])]).astype(np.int64)
    ks = [t.k for t in terms]
    per_col = int(sum(ks))
    rows = np.empty((n, per_col), dtype=np.int32 if Gp[-1] < 2**31 else np.int64)
    vals = np.empty((n, per_col), dtype=np.float64)
    j = 0
    for t, off in zip(terms, Gp[:-1]):
        base = off + t.codes * t.k
        for c in range(t.k):
            rows[:, j] = base + c
            vals[:, j] = t.Xt[:, c]
            j += 1
    indptr = np.arange(0, n * per_col + 1, per_col, dtype=np.int64)
    Zt = sp.csc_matrix((vals.ravel(), rows.ravel(), indptr), shape=(int(Gp[-1]), n))
    Zt.has_sorted_indices = True
    return Zt, Gp


def build_lambda(terms: list[RandomTerm], Gp: np.ndarray) -> tuple[sp.csr_matrix, list[slice]]:
    """The pattern of Λ (q × q, lower block diagonal, CSR) and where each term's values go.

    Within a term every level has the same ``k × k`` lower-triangular block;
    its stored entries are the block's lower triangle in row-major order, so
    the CSR data of the term is ``np.tile(block[np.tril_indices(k)], nlevels)``.

    Returns
    -------
    Lambda : scipy.sparse.csr_matrix
        The pattern of Λ (values 1).
    data_slices : list of slice
        Per term, its range in ``Lambda.data``.
    """
    indptr = [np.zeros(1, dtype=np.int64)]
    indices = []
    slices = []
    nnz = 0
    for t, off in zip(terms, Gp[:-1]):
        k, nl = t.k, t.nlevels
        _, c = np.tril_indices(k)
        indptr.append(nnz + np.cumsum(np.tile(np.arange(1, k + 1), nl)))
        indices.append((off + np.arange(nl)[:, None] * k + c[None, :]).ravel())
        slices.append(slice(nnz, nnz + nl * len(c)))
        nnz += nl * len(c)
    q = int(Gp[-1])
    Lam = sp.csr_matrix((np.ones(nnz), np.concatenate(indices), np.concatenate(indptr)), shape=(q, q))
    return Lam, slices


def theta_template(
    terms: list[RandomTerm],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[slice], np.ndarray | None]:
    """Start, bounds and layout of θ: the terms' parameters one after the other.

    Returns
    -------
    start, lower, upper : numpy.ndarray
    slices : list of slice
        Each term's range in θ.
    Lind : numpy.ndarray or None
        0-based θ index of every stored entry of Λ (lme4's ``Lind`` − 1), or None
        when some structure has no ``Lind`` (:attr:`~sparselmm.spec.covariance.CovStructure.lind`).
    """
    starts, lowers, uppers, slices, linds = [], [], [], [], []
    pos = 0
    for t in terms:
        s = t.structure
        starts.append(s.start())
        lowers.append(s.lower())
        uppers.append(s.upper())
        slices.append(slice(pos, pos + s.n_par))
        block_lind = s.lind
        if block_lind is not None:
            linds.append(np.tile(block_lind + pos, t.nlevels))
        pos += s.n_par
    lind = np.concatenate(linds) if len(linds) == len(terms) else None
    return np.concatenate(starts), np.concatenate(lowers), np.concatenate(uppers), slices, lind
