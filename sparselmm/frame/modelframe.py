"""The model design: y, X, Zt, the θ template and the cross-products, built once.

:func:`design` is sparselmm's ``lFormula``: it parses the formula, selects
and cleans the columns it uses, builds the fixed-effects matrix ``X`` with R's
coding and names (through formulaic), the random-effects terms and ``Zt`` in
lme4's layout, and the cross-products of ``[Z X y]`` that every later
evaluation of the objective reuses.

The checks are the Dask design's (:mod:`sparselmm.frame.dask_design`): those of the data in
:mod:`sparselmm.frame.checks`, and those that need every row (a constant response, collinear
term columns, the rank of ``X``, lme4's scale warning) made by
:func:`sparselmm.frame.reduced.check_reduced` on the reduced statistics of the whole frame,
taken as one partition.
"""

from __future__ import annotations

import decimal
import numbers
import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from sparselmm.errors import DataError, FormulaError, SparseLMMError
from sparselmm.backends import registry
from sparselmm.backends.base import CrossProducts, PLSBackend
from sparselmm.backends.blockdiag import blockdiag_eligible, level_blocks
from sparselmm.frame import checks
from sparselmm.frame.conditioning import Conditioning, condition_columns
from sparselmm.frame.reduced import check_reduced, column_stats
from sparselmm.spec.deparse import is_logical, r_deparse
from sparselmm.spec.formula import Fragment, ParsedFormula, parse_formula
from sparselmm.spec.terms import RandomTerm, as_factor, build_lambda, build_zt, category_strings, check_terms, grouping_factor, order_terms, theta_template
from sparselmm.spec.vocabulary import ClosedSpec, call_arguments, call_texts, formulaic_frame, word_of, name_tokens, namespace, substitute_names, translate, variables
from sparselmm.spec.vocabulary import needed_variables as _needed_variables


__all__ = ["Design", "design"]



@dataclass
class Design:
    """Everything a fit needs that does not depend on θ (lme4's ``lFormula`` result).

    Attributes
    ----------
    formula : ParsedFormula
    y : numpy.ndarray
        Response (offset not subtracted), length n.
    X : numpy.ndarray
        Fixed-effects matrix, n × p, after dropping rank-deficient columns.
    X_names : list of str
        Column names as R prints them (``"(Intercept)"``, ``"storeB"``).
    Zt : scipy.sparse.csc_matrix
        Transposed random-effects matrix, q × n, lme4's row layout.
    terms : list of RandomTerm
        The random-effects terms in lme4's order.
    Gp : numpy.ndarray
        Term boundaries in the rows of ``Zt`` (length ``len(terms) + 1``).
    theta_start, lower, upper : numpy.ndarray
        Start and bounds of θ (lme4's: 1 on diagonals, 0 below; lower 0 on diagonals, -inf elsewhere).
    theta_slices : list of slice
        Each term's range in θ.
    Lind : numpy.ndarray or None
        0-based θ index of each stored entry of Λ (lme4's ``Lind`` minus 1); ``None``
        when a structured covariance makes Λ non-linear in θ.
    weights, offset : numpy.ndarray or None
    n_dropped : int
        Rows dropped for missing values.
    dropped_columns : list of str
        Fixed-effect columns dropped for rank deficiency.
    cross : CrossProducts
        ``[Z X y]ᵀ W [Z X y]`` pieces.
    row_index : pandas.Index
        Index labels (of the data passed in) of the rows used.
    factor_levels, factor_categories : dict
        Per factor column of the fixed part (and categorical columns used otherwise): its
        levels as R prints them, and as values (new data are matched by value).
    offset_array : bool
        Whether the ``offset`` argument was an array (new data then need one too).
    offset_name : str or None
        The offset's column, when it was given as one (predictions read it from new data).
    conditioning : Conditioning
        The map between the data's units (``y``, ``X``, ``weights``, θ as lme4 reports it) and
        the engine's (``cross`` and every PLS state): see :mod:`sparselmm.frame.conditioning`.
    """

    formula: ParsedFormula
    y: np.ndarray
    X: np.ndarray
    X_names: list[str]
    Zt: sp.csc_matrix
    terms: list[RandomTerm]
    Gp: np.ndarray
    theta_start: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    theta_slices: list[slice]
    Lind: np.ndarray | None
    weights: np.ndarray | None
    offset: np.ndarray | None
    n_dropped: int
    dropped_columns: list[str]
    cross: CrossProducts
    row_index: pd.Index
    Lambda_pattern: sp.csr_matrix
    Lambda_slices: list[slice]
    fixed_spec: Any = None
    fixed_keep: np.ndarray | None = None
    factor_levels: dict[str, list[str]] = field(default_factory=dict)
    factor_categories: dict[str, pd.Index] = field(default_factory=dict)
    conditioning: Conditioning | None = None
    offset_name: str | None = None
    offset_array: bool = False

    # ----- units: the data's (lme4's) and the engine's -----------------------------------
    @property
    def cond(self) -> Conditioning:
        """The conditioning (identity for a design built without one)."""
        c = self.conditioning
        if c is None:
            c = Conditioning.identity(self.p)
        return c

    def theta_factor(self) -> np.ndarray | None:
        """Per entry of θ, the factor that takes it to the engine's units (``θ' = F θ``), or None
        when the units agree (no weights, or weights whose geometric mean is near 1)."""
        f = self.cond.theta_factor
        if f == 1.0:
            return None
        return np.where(np.concatenate([t.structure.scales_with_block() for t in self.terms]), f, 1.0)

    def internal_theta(self, theta: np.ndarray) -> np.ndarray:
        """θ (lme4's units) in the engine's units, what every PLS state of this design takes."""
        theta = np.asarray(theta, dtype=float)
        F = self.theta_factor()
        return theta if F is None else theta * F

    def objective_offset(self, REML: bool) -> float:
        """What lme4's objective adds to the engine's (see :meth:`Conditioning.objective_offset`)."""
        return self.cond.objective_offset(REML, self.n)

    # ----- lme4 names ---------------------------------------------------------
    @property
    def n(self) -> int:
        """Number of observations used."""
        return int(len(self.y))

    @property
    def p(self) -> int:
        """Number of fixed-effect columns."""
        return int(self.X.shape[1])

    @property
    def q(self) -> int:
        """Number of random effects (rows of ``Zt``)."""
        return int(self.Zt.shape[0])

    @property
    def cnms(self) -> list[tuple[str, list[str]]]:
        """Per term: (grouping factor name, column names), lme4's ``cnms``."""
        return [(t.group, list(t.columns)) for t in self.terms]

    @property
    def flist(self) -> dict[str, pd.Index]:
        """Grouping factor name -> its levels (lme4's ``flist``, one entry per distinct factor)."""
        out: dict[str, pd.Index] = {}
        for t in self.terms:
            out.setdefault(t.group, t.levels)
        return out

    @property
    def ngroups(self) -> dict[str, int]:
        """Grouping factor name -> number of levels."""
        return {g: len(lv) for g, lv in self.flist.items()}

    @property
    def y_adj(self) -> np.ndarray:
        """Response minus offset."""
        return self.y if self.offset is None else self.y - self.offset

    # ----- θ -> Λ ----------------------------------------------------------------
    def lambda_data(self, theta: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Stored values of Λ(θ), in the order of ``Lambda_pattern.data``."""
        if out is None:
            out = np.empty(self.Lambda_pattern.nnz)
        for t, ts, ls in zip(self.terms, self.theta_slices, self.Lambda_slices):
            out[ls] = np.tile(t.structure.tril_values(theta[ts]), t.nlevels)
        return out

    def Lambda(self, theta: np.ndarray) -> sp.csr_matrix:
        """The relative covariance factor Λ(θ) (q × q, lower triangular)."""
        L = self.Lambda_pattern.copy()
        L.data = self.lambda_data(np.asarray(theta, dtype=float))
        return L

    def pls(self, backend: str = "auto") -> PLSBackend:
        """A fresh penalised-least-squares state for this design, from the backend registry
        (:mod:`sparselmm.backends.registry`).

        Parameters
        ----------
        backend : {"auto", "blockdiag", "schur_dense", "schur", "schur_blocks", "cholmod_scalar", "cholmod"}
            ``"cholmod"``: CHOLMOD's supernodal factor of ``ΛᵀAΛ + I`` (any design);
            ``"cholmod_scalar"``: the same with a lean fill for terms of one column;
            ``"schur"``: the block factor of :mod:`sparselmm.backends.schur` for crossed scalar
            terms (Schur complement from a table of level pairs); ``"schur_dense"``: the same
            factor with the Schur complement from one dense ``dsyrk`` per θ, for crossed designs
            where most level pairs occur; ``"schur_blocks"``: that dense Schur factor with a
            first term of several columns (:mod:`sparselmm.backends.blockschur`: a random slope
            on the larger crossed factor); ``"blockdiag"``: the batched per-level factor of
            :mod:`sparselmm.backends.blockdiag` when all terms share one grouping factor;
            ``"auto"``: the first of them that prefers the design (each backend's
            ``preferred``), CHOLMOD otherwise.

        Raises
        ------
        ModelSpecError
            For an unknown backend, or one that does not apply to the design.
        """
        return registry.choose(self, backend)(self)

    def moment_start(self) -> np.ndarray:
        """A starting θ from variance-component moments, or lme4's start where there is none.

        Everything comes from the cross-products and the OLS residuals ``r`` of the
        fixed part (their sum of squares ``rᵀr`` and level sums ``(Zᵀr)_j``):

        * **Only** ``(1 | g)`` **terms** (crossed or nested): per term ``t`` with ``J_t``
          levels of sizes ``n_j``, the between-level sum ``B_t = Σ_j (Zᵀr)_j² / n_j``
          has expectation about ``J_t σ² + N σ_t²``, and ``rᵀr`` about
          ``N(σ² + Σ_t σ_t²)``; solving gives ``σ²``, ``σ_t²`` and ``θ_t = σ_t / σ``.
        * **One grouping factor** with ``us``/``diag`` terms (random slopes): the
          per-level least-squares coefficients ``b_j = A_jj⁻¹(Zᵀr)_j`` have covariance
          about ``Σ + σ² E[A_jj⁻¹]``, with ``σ²`` from the within-level residual sum of
          squares; ``Σ/σ²`` (eigenvalues floored at a small positive value) gives θ
          through its Cholesky factor.

        θ is kept within ``[0.05, 10]`` on diagonals, in the units of :meth:`theta_scale`
        (a slope's θ on its covariate's scale).  Such starts land near the
        optimum (sleepstudy: 0.958, 0.016, 0.229 against 0.967, 0.015, 0.231),
        which saves the optimiser about half its evaluations.  Any other design, or
        a degenerate estimate, gets :attr:`theta_start` (lme4's start).

        Returns
        -------
        numpy.ndarray
        """
        terms = self.terms
        if not terms:
            return self.theta_start.copy()
        cp = self.cross
        if self.p:
            beta = np.linalg.lstsq(cp.XtX, cp.Xty, rcond=None)[0]
            rr = float(cp.yty - 2.0 * beta @ cp.Xty + beta @ cp.XtX @ beta)
            Zr = cp.Zty - cp.ZtX @ beta
        else:
            rr, Zr = float(cp.yty), cp.Zty
        try:
            if all(t.k == 1 and t.columns == ["(Intercept)"] for t in terms):
                th = self._moment_start_intercepts(rr, Zr)
            else:
                th = self._moment_start_one_factor(rr, Zr)
        except np.linalg.LinAlgError:
            th = None
        if th is None or not np.all(np.isfinite(th)):
            return self.theta_start.copy()
        diag = self.lower == 0
        sc = self.internal_theta_scale()[diag]
        th[diag] = np.clip(th[diag] * sc, 0.05, 10.0) / sc
        F = self.theta_factor()  # the moments are in the engine's units: θ in lme4's
        return th if F is None else th / F

    def theta_scale(self) -> np.ndarray:
        """A natural unit for each entry of θ: the root mean square of its row's model column.

        An entry in row ``r`` of a term's ``Λ`` block multiplies the random-effect column
        ``z_r`` (a slope's covariate), so ``θ · rms(z_r)`` is on the scale of the response
        whatever the covariate's units: an intercept's entries keep unit scale, a slope on a
        covariate with standard deviation 16 is scaled by 16.  The ``"auto"`` optimiser
        searches in these units, where BOBYQA's spherical trust region fits the objective
        (TIMSS slopes: 432 → 109 evaluations).  Read off the diagonal of ``ZᵀWZ`` (the sum of
        ``w z_r²`` per level); a parameter that sets several entries of ``T`` takes the root
        mean square over their rows.  Entries of structures not linear in their parameters
        (``CovStructure.linear_entries`` is None) and columns that are zero throughout get 1.

        Returns
        -------
        numpy.ndarray
            Positive, one per θ entry (θ in lme4's units: ``scale · θ`` is the same number for
            the engine's θ and its own scale).
        """
        F = self.theta_factor()
        s = self.internal_theta_scale()
        return s if F is None else s * F

    def internal_theta_scale(self) -> np.ndarray:
        """:meth:`theta_scale` for θ in the engine's units (from the conditioned ``ZᵀW'Z``): the
        units in which the Satterthwaite derivatives are taken (:mod:`sparselmm.stats.inference`).

        Returns
        -------
        numpy.ndarray
            Positive, one per θ entry.
        """
        # the moment start and the fit both ask: kept with the cross-products it is read off
        return self.cross.memo("theta_scale", self._internal_theta_scale).copy()

    def _internal_theta_scale(self) -> np.ndarray:
        cp = self.cross
        dg = cp.ZtZ_diagonal()
        scale = np.ones(len(self.theta_start))
        n = float(max(cp.n, 1))
        for t, sl, lo, hi in zip(self.terms, self.theta_slices, self.Gp[:-1], self.Gp[1:]):
            entries = t.structure.linear_entries()  # (θ index, row, column); None unless T is linear
            if entries is None:
                continue
            # Z's rows are level-major: level j's k columns are rows lo + j·k ... lo + j·k + k - 1
            rms = np.sqrt(dg[lo:hi].reshape(-1, t.k).sum(axis=0) / n)
            rows: list[list[int]] = [[] for _ in range(sl.stop - sl.start)]
            for i, r, _ in entries:  # a parameter may set several entries (T = s I): their rows' mean square
                rows[i].append(r)
            scale[sl] = [rms[rs[0]] if len(rs) == 1 else float(np.sqrt(np.mean(rms[rs] ** 2))) if rs else 1.0 for rs in rows]
        return np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)

    def _moment_start_intercepts(self, rr: float, Zr: np.ndarray) -> np.ndarray | None:
        cp = self.cross
        # the level sizes: the diagonal of ZᵀWZ (from its stored lower part in a Dask design,
        # whose full symmetric matrix would double the memory of a large crossed design)
        nj = cp.ZtZ_diagonal()
        N = float(np.sum(nj[: self.Gp[1]]))  # Σ weights
        J = np.diff(self.Gp).astype(float)
        dof = N - J.sum() - self.p
        if not (dof > 0 and np.all(nj > 0)):  # no residual degrees of freedom left for the moments
            return None
        B = np.array([np.sum(Zr[lo:hi] ** 2 / nj[lo:hi]) for lo, hi in zip(self.Gp[:-1], self.Gp[1:])])
        s2 = (rr - B.sum()) / dof
        if not (np.isfinite(s2) and s2 > 0):
            return None
        st2 = (B - J * s2) / N
        return np.sqrt(np.maximum(st2, 0.0) / s2)

    def _moment_start_one_factor(self, rr: float, Zr: np.ndarray) -> np.ndarray | None:
        terms = self.terms
        # a structure without a closed form from a covariance (None, whatever S) leaves the design at
        # lme4's start: asked first, before the per-level blocks are formed
        if not blockdiag_eligible(self) or any(t.structure.theta_from_covariance(np.eye(t.k)) is None for t in terms):
            return None
        perm, blocks = level_blocks(self)
        K = len(perm)
        idx = perm.T  # idx[j, c]: the design's index of random-effect column c at level j
        Ab = np.moveaxis(blocks, 2, 0)  # (nlevels, K, K)
        # full rank as numpy's matrix_rank judges it (singular values, here |eigenvalues| of the
        # symmetric blocks, above max·K·eps), by eigvalsh: half the time of the batched SVD
        sv = np.abs(np.linalg.eigvalsh(Ab))
        ok = sv.min(axis=1) > sv.max(axis=1) * K * np.finfo(float).eps
        if ok.sum() < K + 2:
            return None
        Ai = np.linalg.inv(Ab[ok])
        z = Zr[idx[ok]]
        b = np.einsum("jab,jb->ja", Ai, z)
        dof = self.cross.n - ok.sum() * K - self.p
        if dof <= 0:  # no within-level degrees of freedom for σ²
            return None
        s2 = (rr - float(np.einsum("ja,ja->", z, b))) / dof
        if not (np.isfinite(s2) and s2 > 0):
            return None
        S = (np.atleast_2d(np.cov(b.T)) - s2 * Ai.mean(axis=0)) / s2
        ev, V = np.linalg.eigh(0.5 * (S + S.T))
        ev = np.maximum(ev, 1e-4 * max(float(ev.max()), 1e-8))
        S = (V * ev) @ V.T
        th = np.empty(len(self.theta_start))
        off = 0
        for t, sl in zip(terms, self.theta_slices):
            th_t = t.structure.theta_from_covariance(S[off : off + t.k, off : off + t.k])
            if th_t is None:  # no closed form for this structure: lme4's start for the whole design
                return None
            th[sl] = th_t
            off += t.k
        return th

    def objective_function(self, REML: bool = True) -> Callable[[np.ndarray], float]:
        """The profiled objective as a function of θ (lme4's ``mkLmerDevfun``).

        Parameters
        ----------
        REML : bool
            REML criterion if true, else the profiled deviance (ML).

        Returns
        -------
        callable
            ``f(theta) -> float`` on lme4's scale; ``inf`` where the factorisation fails.
        """
        state = self.pls()
        off = self.objective_offset(REML)
        return lambda theta: state.objective(self.internal_theta(theta), REML=REML) + off


# ----------------------------------------------------------------------------------------
# helpers


def _split_colon(name: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(name):
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == ":" and depth == 0:
            parts.append(name[start:i])
            start = i + 1
    parts.append(name[start:])
    return parts


#: contrasts whose columns R numbers 1, 2, ... (formulaic labels them by level: S.a, H.b)
_NUMBERED_CONTRASTS = re.compile(r"^C\(.*,\s*(Sum|Helmert)\s*(\(\s*\))?\)$", re.S)


def _r_component(
    comp: str, numbered: dict[str, list[str]], spell: Callable[[str], str], auto: Mapping[str, str],
    columns: frozenset[str] = frozenset(), labels: Mapping[str, str] | None = None,
) -> tuple[str, str]:
    """formulaic column component -> (R name, the variable expression it comes from).

    The expression is written as R deparses it (:func:`sparselmm.spec.deparse.r_deparse`); a
    comparison gets R's ``TRUE`` suffix; formulaic's sum and Helmert contrasts' columns are
    numbered 1, 2, ... as R numbers them (``numbered``: the labels
    seen so far per expression).  ``spell`` writes formulaic's aliases of columns as R names,
    after the deparse (a column ``True`` is not the constant ``TRUE``).  ``auto`` maps the label of
    each wrapper :func:`with_contrasts` inserted to its column, which names the columns, as R's.
    ``labels`` (:attr:`~sparselmm.spec.vocabulary.Translation.labels`) gives R's label of a call as
    the user wrote it, parentheses kept; the deparse of formulaic's name stands in elsewhere."""

    if comp == "Intercept":
        return "(Intercept)", ""
    m = re.fullmatch(r"(.*)\[(?:T\.)?(.*)\]", comp, flags=re.S)
    if m:
        var, level = m.group(1), spell(m.group(2))
        shown = factor_label(var, spell, auto, columns, labels or {})
        if _NUMBERED_CONTRASTS.match(shown) and level.startswith(("S.", "H.")):  # reduced rank: R numbers them
            seen = numbered.setdefault(var, [])
            if level not in seen:
                seen.append(level)
            level = str(seen.index(level) + 1)
        return shown + level, var
    shown = factor_label(comp, spell, auto, columns, labels or {})
    return shown + ("TRUE" if is_logical(comp) and comp not in columns else ""), comp


def factor_label(
    expr: str, spell: Callable[[str], str], auto: Mapping[str, str], columns: frozenset[str], labels: Mapping[str, str],
) -> str:
    """R's label of one variable of the fixed part, from formulaic's name of it: a column by its
    name (back-quoted where R quotes it), a call as the user wrote it (``labels``), a wrapper that
    :func:`with_contrasts` inserted (``auto``) by its column."""
    if expr in columns:  # a column by its name (formulaic drops the back-quotes of `a-b`)
        return _quoted(spell(expr))
    shown = labels.get(expr) or spell(r_deparse(expr))
    return auto.get(shown, shown)


def r_names(
    formulaic_names: list[str], formula_text: str, spell: Callable[[str], str] = lambda s: s,
    auto: Mapping[str, str] | None = None, columns: frozenset[str] = frozenset(),
    labels: Mapping[str, str] | None = None, variables: Sequence[str] = (),
) -> list[str]:
    """R's names for formulaic's columns (``sector[T.Public]:cses`` -> ``cses:sectorPublic``).

    The factors of an interaction are ordered by where their variable first appears in the
    formula outside any call (``variables``: formulaic's names of them, in order), as R's
    ``terms()`` orders them: ``center(x):z`` although ``z`` appears inside ``scale(z)`` first.
    """
    flat = formula_text.replace(" ", "").replace("**", "^")
    order = {v: i for i, v in reversed(list(enumerate(variables)))}

    def position(var: str) -> int:
        if not var:
            return -1
        for key in (var, var.strip("`")):
            if key in order:
                return order[key]
        v = spell(var.strip("`")).replace(" ", "").replace("**", "^")
        if re.fullmatch(r"[A-Za-z_.][A-Za-z0-9_.]*", v):
            m = re.search(rf"(?<![A-Za-z0-9_.]){re.escape(v)}(?![A-Za-z0-9_.])", flat)
        else:
            m = re.search(re.escape(v), flat)
        return 10**6 + m.start() if m else 10**9  # not a variable of the text (a rewritten one): by its place

    out = []
    numbered: dict[str, list[str]] = {}
    for name in formulaic_names:
        comps = [_r_component(c, numbered, spell, auto or {}, columns, labels) for c in _split_colon(name)]
        comps.sort(key=lambda rv: position(rv[1]))
        out.append(":".join(r for r, _ in comps))
    return out


def vector_argument(value: Any, data: pd.DataFrame, what: str) -> np.ndarray | None:
    """A per-row argument (weights, an offset) as a float array in the rows of ``data``.

    A column name reads that column; a pandas Series is matched to the rows by index label
    (any order; labels ``data`` lacks are ignored, rows whose label the Series lacks are an
    error); anything else is taken in the data's row order.  Missing values stay NaN (the
    caller drops their rows); complex numbers and non-numbers are refused.

    Raises
    ------
    DataError
        Naming ``what`` and what is wrong.
    """
    if value is None:
        return None
    if isinstance(value, str):
        checks.check_named_column(what, value, list(map(str, data.columns)))
        value = data[value]
    if isinstance(value, pd.DataFrame):
        if value.shape[1] != 1:
            raise DataError(f"{what} must be one column, got a DataFrame with {value.shape[1]} columns")
        value = value.iloc[:, 0]
    if isinstance(value, pd.Series):
        value = aligned(value, data.index, what)
    arr = real_values(value, what)
    if arr.ndim != 1:
        raise DataError(f"{what} must be one value per row, got an array of shape {arr.shape}")
    if len(arr) != len(data):
        raise DataError(f"{what} has length {len(arr)} but the data have {len(data)} rows")
    return arr


def aligned(s: pd.Series, index: pd.Index, what: str) -> pd.Series:
    """The Series ``s`` matched to ``index`` by label (lme4's vectors are positional; a pandas
    Series in another order is re-ordered, never taken by position)."""
    if s.index.equals(index):
        return s
    if s.index.has_duplicates or index.has_duplicates:
        raise DataError(
            f"{what} is a pandas Series whose index differs from the data's, and one of the two has duplicated "
            "labels, so its values cannot be matched to rows; pass a numpy array in the data's row order"
        )
    lacking = index.difference(s.index, sort=False)
    if len(lacking):
        raise DataError(
            f"{what} is a pandas Series whose index lacks {len(lacking)} of the data's {len(index)} row labels "
            f"(e.g. {list(lacking[:3])}); its values are matched to the rows by index label"
        )
    return s.reindex(index)


def real_values(value: Any, what: str) -> np.ndarray:
    """``value`` (weights, an offset) as a float array; complex numbers, strings and other
    non-numbers refused.

    Parameters
    ----------
    value : array-like or pandas.Series
    what : str
        What it is, for the messages.

    Returns
    -------
    numpy.ndarray of float
        Missing values as NaN.

    Raises
    ------
    DataError
    """
    if isinstance(value, pd.Series) and not isinstance(value.dtype, np.dtype):  # nullable and arrow dtypes
        value = value.astype(object).where(value.notna(), np.nan)
    arr = np.asarray(value)
    if arr.dtype.kind == "c" or (arr.dtype == object and any(isinstance(v, complex) for v in arr.ravel())):
        raise DataError(f"{what} holds complex numbers; it must be real (take .real or abs() first)")
    if arr.dtype.kind in "USO" and any(isinstance(v, (str, bytes)) for v in arr.ravel()):
        raise DataError(f"{what} must be numbers, but it holds strings (e.g. {next(v for v in arr.ravel() if isinstance(v, (str, bytes)))!r})")
    if arr.dtype == object:
        try:
            arr = pd.to_numeric(pd.Series(arr.ravel()), errors="raise").to_numpy(dtype=float).reshape(arr.shape)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{what} must be numeric: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise DataError(f"{what} must be numeric, got values of dtype {arr.dtype}")
    return arr.astype(float)


#: the Python types of real numbers an object column may hold (ints, floats, numpy scalars, fractions,
#: decimals): such a column is numeric
REAL_NUMBERS = (numbers.Real, decimal.Decimal)


def real_column(col: pd.Series, name: str) -> pd.Series:
    """A used column as the design reads it: complex numbers refused (the imaginary part would be
    lost); an object column holding only real numbers (and missing values) made numeric.

    Parameters
    ----------
    col : pandas.Series
    name : str
        The column's name, for the messages.

    Returns
    -------
    pandas.Series

    Raises
    ------
    DataError
        For complex numbers, and booleans mixed with other values.
    """
    dt = col.dtype
    if isinstance(dt, np.dtype) and dt.kind == "c":
        raise checks.complex_numbers(name)
    if dt == object:
        vals = col.dropna()
        kinds = {type(v) for v in vals}
        if any(issubclass(t, complex) and not issubclass(t, float) for t in kinds):
            raise checks.complex_numbers(name)
        if kinds and all(issubclass(t, REAL_NUMBERS) and not issubclass(t, (bool, np.bool_)) for t in kinds):
            return pd.Series(col.to_numpy(dtype=float, na_value=np.nan), index=col.index, name=col.name)
        bools = {t for t in kinds if issubclass(t, (bool, np.bool_))}
        if bools and bools != kinds:  # True == 1 in Python: a factor would merge the two levels
            others = sorted(t.__name__ for t in kinds - bools)
            raise DataError(
                f"column {name!r} mixes booleans with {', '.join(others)} values; make it one kind first, e.g. "
                f"df[{name!r}] = df[{name!r}].astype(str)"
            )
        if bools:  # an object column of booleans (and missing values) is a logical column, as R reads it
            return col.astype("boolean")
    return col




@dataclass(frozen=True)
class FixedTerm:
    """One term of the fixed part, as R's ``terms()`` has it.

    Attributes
    ----------
    label : str
        R's term label (``recipe:temp``).
    columns : tuple of int
        Its columns among the spec's (before rank-deficient ones are dropped).
    factors : tuple of str
        R's labels of its variables, in R's order.
    categorical : tuple of bool
        Whether each variable is a factor (R's ``dataClasses`` "factor") or numeric.
    """

    label: str
    columns: tuple[int, ...]
    factors: tuple[str, ...]
    categorical: tuple[bool, ...]


class SimpleSpec:
    """Model-matrix spec for sums of main effects (the common case, built without formulaic).

    Numeric columns enter as they are; factor columns (categoricals with string levels,
    as :func:`design` makes them) by R's treatment contrasts: one indicator column per
    level but the first, named ``column + level``, and all levels for the first factor
    of a model without an intercept, as R's ``model.matrix`` does.

    Attributes
    ----------
    intercept : bool
    columns : list of str
        The variables, in formula order.
    levels : dict of str to list of str
        The levels of the factor variables.
    """

    def __init__(self, intercept: bool, columns: list[str], levels: dict[str, list[str]] | None = None) -> None:
        self.intercept, self.columns = intercept, columns
        self.levels = dict(levels or {})
        # the factor whose first level gets a column: the first factor when there is no intercept
        firsts = [c for c in columns if c in self.levels]
        self._full = None if intercept or not firsts else firsts[0]

    @property
    def terms(self) -> tuple[FixedTerm, ...]:
        """The terms (one per variable) and their columns."""
        out, j = [], int(self.intercept)
        for c in self.columns:
            k = len(self._kept(c)) if c in self.levels else 1
            out.append(FixedTerm(_quoted(c), tuple(range(j, j + k)), (_quoted(c),), (c in self.levels,)))
            j += k
        return tuple(out)

    def _kept(self, c: str) -> list[str]:
        lv = self.levels[c]
        return list(lv) if c == self._full else list(lv[1:])

    def names(self) -> list[str]:
        out = ["(Intercept)"] if self.intercept else []
        for c in self.columns:
            out += [f"{c}{lv}" for lv in self._kept(c)] if c in self.levels else [c]
        return out

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        n = len(frame)
        X = np.empty((n, len(self.names())))
        j = 0
        if self.intercept:
            X[:, 0] = 1.0
            j = 1
        for c in self.columns:
            if c not in self.levels:
                X[:, j] = frame[c].to_numpy(dtype=float)
                j += 1
                continue
            codes = self._codes(frame[c], c)
            first = 0 if c == self._full else 1
            width = len(self.levels[c]) - first
            block = X[:, j : j + width]
            block.fill(0.0)
            rows = np.flatnonzero(codes >= first)
            block[rows, codes[rows] - first] = 1.0
            j += width
        return X

    def _codes(self, col: pd.Series, c: str) -> np.ndarray:
        lv = self.levels[c]
        if isinstance(col.dtype, pd.CategoricalDtype) and list(col.cat.categories) == lv:
            codes = np.asarray(col.cat.codes)
        else:
            codes = pd.Index(lv).get_indexer(col.astype(str))
        if (codes < 0).any():
            bad = col.iloc[int(np.flatnonzero(codes < 0)[0])]
            raise DataError(f"column {c!r} has level {bad!r}, which the fit did not see (levels: {lv[:10]})")
        return codes

    def get_model_matrix(self, data: pd.DataFrame, na_action: str = "raise") -> pd.DataFrame:
        """The same columns for new data (formulaic's ``ModelSpec`` interface)."""
        missing = [c for c in self.columns if c not in data.columns]
        if missing:
            raise DataError(f"new data lack column(s) {missing}")
        return pd.DataFrame(self.matrix(data), index=data.index, columns=self.names())


def _simple_spec(text: str, frame: pd.DataFrame) -> SimpleSpec | None:
    """A SimpleSpec when ``text`` is ``[1|0|-1 +] a + b ...`` over numeric columns and factors
    (categoricals with string levels), else None."""
    from sparselmm.spec.formula import split_top

    intercept = True
    cols: list[str] = []
    levels: dict[str, list[str]] = {}
    try:
        pieces = split_top(text, 0)
    except Exception:
        return None
    for sign, piece, _ in pieces:
        piece = piece.strip("`")
        if piece in ("1", "0"):
            if sign == "-" or piece == "0":
                intercept = False
            continue
        if sign == "-" or piece not in frame.columns or piece in cols:
            return None
        dt = frame[piece].dtype
        if isinstance(dt, pd.CategoricalDtype):
            cats = list(dt.categories)
            if len(cats) < 2 or not all(isinstance(v, str) for v in cats) or dt.ordered:
                return None  # one level: formulaic's path says what is wrong; ordered: R's contr.poly there
            levels[piece] = cats
        elif not pd.api.types.is_numeric_dtype(dt) or pd.api.types.is_bool_dtype(dt):
            return None
        cols.append(piece)
    return SimpleSpec(intercept, cols, levels)


def model_matrix(
    text: str, frame: pd.DataFrame, what: str, state_frame: pd.DataFrame | None = None,
    contrasts: Mapping[str, str] | None = None,
) -> tuple[np.ndarray, list[str], Any]:
    """The model matrix of a fixed-effects formula (or a term's left side) on the model frame.

    Parameters
    ----------
    text : str
        The formula's right-hand side, e.g. ``"Days + sector"``.
    frame : pandas.DataFrame or mapping of str to pandas.Series
        The model frame (factors as categoricals).
    what : str
        What is built, for the messages (``"the fixed-effects matrix"``).
    state_frame : pandas.DataFrame or mapping, optional
        The data as given, before rows with missing values were dropped: data-dependent
        transforms (``scale()``, ``poly()``, splines) take their state (means, SDs,
        coefficients, knots) from it, as R's ``model.frame`` evaluates them on the data
        before ``na.omit``.
    contrasts : mapping of str to str, optional
        R's contrasts per factor (``{"store": "contr.sum"}``, see :data:`CONTRASTS`).

    Returns
    -------
    X : numpy.ndarray
        n × p.
    names : list of str
        R's names of the columns.
    spec : SimpleSpec or ClosedSpec
        Builds the same columns for new data.

    Raises
    ------
    FormulaError, DataError
    """
    simple = None if contrasts else _simple_spec(text, frame)
    if simple is not None:  # plain sums of main effects: no need for formulaic's machinery
        return simple.matrix(frame), simple.names(), simple
    return _formulaic_matrix(text, frame, what, state_frame, contrasts)




def _formulaic_matrix(
    text: str, frame: pd.DataFrame, what: str, state_frame: pd.DataFrame | None = None,
    contrasts: Mapping[str, str] | None = None,
) -> tuple[np.ndarray, list[str], Any]:
    """The model matrix of any fixed-effects formula, by formulaic, with R's column names.

    ``text`` is checked and translated by :func:`sparselmm.spec.vocabulary.translate`; formulaic gets
    the columns it uses (under an alias where Python would read the name otherwise) and the
    closed vocabulary as its context, never this module's globals. The spec returned
    (:class:`~sparselmm.spec.vocabulary.ClosedSpec`) builds new data's matrix the same way.
    Data-dependent transforms take their state from ``state_frame`` (the rows before missing
    values were dropped) where it is given, as in R's ``model.frame``.
    """
    from formulaic import model_matrix as formulaic_model_matrix

    # R's default contrasts for an ordered factor are polynomial (contr.poly): .L, .Q, .C, ^4, ...; the
    # contrasts argument chooses others
    auto = {c: '"contr.poly"' for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype) and frame[c].dtype.ordered}
    auto.update({c: f'"{v}"' for c, v in (contrasts or {}).items()})  # by name, as R: columns named by level
    text = with_contrasts(text, auto)
    tr = translate(text, list(map(str, frame.columns)))
    used = formulaic_frame(frame, tr.columns, tr.renames)
    try:
        # missing values of the data were dropped before: a NaN here comes from a transform (log of a
        # negative number), reported by checks.check_finite as such (formulaic's "raise" would call it a null)
        with np.errstate(all="ignore"):
            mm = formulaic_model_matrix(tr.text, used, na_action="ignore", output="pandas", context=namespace())
            if mm.model_spec.transform_state and state_frame is not None and len(state_frame) != len(frame):
                # R evaluates scale(x), poly(x, 2), ... on the data as given and drops the incomplete rows
                # after: their state from all rows, the factors' levels from the rows kept
                _refuse_poly_of_missing(text, state_frame, what)
                full = formulaic_frame(state_frame, tr.columns, tr.renames)
                state = formulaic_model_matrix(tr.text, full, na_action="ignore", output="pandas", context=namespace())
                spec = mm.model_spec.update(transform_state=state.model_spec.transform_state)
                mm = spec.get_model_matrix(used, na_action="ignore", output="pandas", context=namespace())
            M = np.asarray(mm.to_numpy(dtype=float))
    except SparseLMMError:  # this module's own refusals (poly() of missing values)
        raise
    except Exception as exc:  # formulaic's errors, and values that are not numbers (I('a'))
        own = exc.__cause__
        while own is not None and not isinstance(own, SparseLMMError):
            own = own.__cause__
        if own is not None:  # a word of the vocabulary refused its arguments (relevel's ref): its message
            raise type(own)(f"cannot build {what} from {text!r}: {own}") from None
        raise (_wrong_arguments(exc, tr, text, what) or _factor_in_arithmetic(exc, tr, frame, text, what)
               or _unknown_argument(exc, text, what) or _evaluation_error(exc, tr, text, what)) from exc
    wrappers = {r_deparse(f"C({_quoted(c)}, {v})"): _quoted(c) for c, v in auto.items()}
    names = r_names([str(c) for c in mm.columns], text, tr.r_spelling, wrappers, frozenset(used.columns), tr.labels,
                    tr.variables)
    return M, names, ClosedSpec(mm.model_spec, tr.columns, tr.renames,
                                _fixed_terms(mm.model_spec, tr, wrappers, frozenset(used.columns)))


def _fixed_terms(spec: Any, tr: Any, wrappers: Mapping[str, str], columns: frozenset[str]) -> tuple[FixedTerm, ...]:
    """The terms of a formulaic model spec as R's ``terms()`` names them (R's labels, factors in
    the order of their first appearance), with their columns."""
    categorical = {str(f) for f in spec.factor_contrasts}
    order = {v: i for i, v in reversed(list(enumerate(tr.variables)))}
    out, start = [], 0
    for st in spec.structure:
        idx = tuple(range(start, start + len(st.columns)))
        start += len(st.columns)
        factors = sorted(st.term.factors, key=lambda f: order.get(str(f.expr), 10**6))
        if not factors or str(st.term) == "1":
            continue
        labels = tuple(factor_label(str(f.expr), tr.r_spelling, wrappers, columns, tr.labels) for f in factors)
        out.append(FixedTerm(":".join(labels), idx, labels, tuple(str(f) in categorical for f in factors)))
    return tuple(out)


def expand_dot(pf: ParsedFormula, columns: list[str]) -> ParsedFormula:
    """R's ``.`` in the fixed part: every column of the data that is not in the response, in the
    data's order (``y ~ .``, ``y ~ .^2``, ``y ~ . - x``); a column named ``.`` is that column.

    Returns
    -------
    ParsedFormula
        ``pf`` itself when its fixed part has no ``.``.
    """
    from sparselmm.spec.formula import BARE_NAME

    if "." in columns or "." not in pf.fixed:
        return pf
    try:
        if not any(v == "." for _, _, v in name_tokens(pf.fixed)):
            return pf
    except FormulaError:  # the vocabulary's check of the fixed part says what is wrong, with its caret
        return pf
    resp = set(variables(pf.response))
    rest = [c for c in columns if c not in resp]
    if not rest:
        raise FormulaError(f"'.' in {pf.formula!r} stands for the data's other columns, but there are none")
    every = "(" + " + ".join(c if BARE_NAME.fullmatch(c) else f"`{c}`" for c in rest) + ")"

    def expand(text: str) -> str:
        return substitute_names(text, lambda name: every if name == "." else None)

    frags = tuple(Fragment(f.role, expand(f.text), f.start) if f.role == "fixed" else f for f in pf.fragments)
    return replace(pf, fixed=expand(pf.fixed), fragments=frags)


#: R's contrasts a factor may be given by name (``contrasts = {"store": "contr.sum"}``), written
#: into the formula as ``C(store, contr.sum)`` (:class:`sparselmm.spec.rfunctions.RContrasts`)
CONTRASTS = ("contr.treatment", "contr.sum", "contr.helmert", "contr.poly", "contr.SAS")


def with_contrasts(text: str, contrasts: Mapping[str, str]) -> str:
    """``text`` with every bare use of a factor of ``contrasts`` (outside any function call)
    written ``C(f, <contrasts>)`` in formulaic's spelling; :func:`r_names` names the columns as
    R names them under ``contrasts =`` (``f1``, ``f.L``, ``fB``).  Ordered factors default to
    R's polynomial contrasts through the same rewrite."""
    if not contrasts:
        return text
    return substitute_names(text, lambda name: f"C({_quoted(name)}, {contrasts[name]})" if name in contrasts else None)


def _quoted(name: str) -> str:
    """A column name as R writes it: back-quoted unless it is a plain name."""
    from sparselmm.spec.formula import BARE_NAME

    return name if BARE_NAME.fullmatch(name) else f"`{name}`"


def _refuse_poly_of_missing(text: str, state_frame: Any, what: str) -> None:
    """R's ``poly()`` refuses missing values ("missing values are not allowed in 'poly'"): so does
    this, naming the column, rather than build the polynomials of the complete rows."""
    for call in call_texts(text, "poly"):
        if re.search(r"\braw\s*=\s*(TRUE|T|True)\b", call):  # R's raw polynomials allow missing values
            continue
        for v in variables(call):
            if v in state_frame.columns and bool(pd.isna(state_frame[v]).any()):
                raise FormulaError(
                    f"cannot build {what} from {text!r}: {call} has missing values in column {v!r}, which R's poly() does not "
                    "allow either; drop those rows from the data first"
                )


_UNABLE = re.compile(r"Unable to evaluate factor `(.+?)`\.\s*\[(\w+): (.*)\]\s*$", re.S)


def _shown(expr: str, tr: Any) -> str:
    """R's label of formulaic's factor ``expr``."""
    return tr.labels.get(expr) or tr.r_spelling(r_deparse(expr))


def _wrong_arguments(exc: Exception, tr: Any, text: str, what: str) -> FormulaError | None:
    """The FormulaError for a call with too many or too few arguments (``round(x, 1, 2)``,
    ``relevel(f)``), naming the function as R spells it; None for any other failure."""
    m = _UNABLE.search(str(exc))
    if m is None or m.group(2) != "TypeError" or not re.search(r"positional argument|required", m.group(3)):
        return None
    msg = re.sub(r"([A-Za-z_][\w.]*)\(\)", lambda f: f"{word_of(f.group(1)) or f.group(1)}()", m.group(3))
    return FormulaError(
        f"cannot build {what} from {text!r}: in {_shown(m.group(1), tr)}, {msg} (docs/formulas.md lists the arguments "
        "of each function)"
    )


def _evaluation_error(exc: Exception, tr: Any, text: str, what: str) -> FormulaError:
    """formulaic's failure to evaluate a term, as a FormulaError naming the term as R writes it."""
    m = _UNABLE.search(str(exc))
    if m is None:
        return FormulaError(f"cannot build {what} from {text!r}: {exc}")
    return FormulaError(f"cannot build {what} from {text!r}: {_shown(m.group(1), tr)} cannot be computed: {m.group(3)}")


def _unknown_argument(exc: Exception, text: str, what: str) -> FormulaError | None:
    """The FormulaError for a named argument no function of the vocabulary takes
    (``ns(x, dof = 3)``), naming the function as the user wrote it; None for any other failure."""
    m = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
    if m is None:
        return None
    arg = m.group(1)
    for name in dict.fromkeys(re.findall(r"([A-Za-z.][\w.]*)\s*\(", text)):
        for body in call_texts(text, name):
            _, named = call_arguments(body)
            written = [k for k in named if k.replace(".", "_") == arg]  # R's dotted name, as the user wrote it
            if written:
                return FormulaError(
                    f"cannot build {what} from {text!r}: {name}() has no argument {written[0]!r} (docs/formulas.md "
                    "lists the arguments of each function)"
                )
    return FormulaError(f"cannot build {what} from {text!r}: no function there takes an argument {arg!r}")


def _factor_in_arithmetic(exc: Exception, tr: Any, frame: Any, text: str, what: str) -> DataError | None:
    """The DataError for formulaic failing to compute with a factor (``log(f)``, ``I(f^2)``,
    ``poly(f, 2)`` where f holds labels: strings, booleans, categories, datetimes), naming the
    expression and the column; None for any other failure."""
    m = _UNABLE.search(str(exc))
    if m is None:
        return None
    expr = m.group(1)
    for c in tr.columns:
        col = frame[c]
        if not isinstance(col.dtype, pd.CategoricalDtype):
            continue
        alias = re.escape(tr.renames.get(c, c))
        if expr.strip("`") != c and re.search(rf"(?<![\w.]){alias}(?![\w.])|`{alias}`", expr):
            levels = category_strings(col.cat.categories)
            shown = _shown(expr, tr)
            return DataError(
                f"cannot build {what} from {text!r}: {shown} computes with column {c!r}, which is a factor "
                f"(levels {levels[:4]}{' ...' if len(levels) > 4 else ''}); arithmetic and functions such as "
                "log() need a numeric column"
            )
    return None


# ----------------------------------------------------------------------------------------


def _missing(col: pd.Series) -> np.ndarray | None:
    """Where ``col`` is missing (None when its dtype cannot hold a missing value);
    ``np.isnan`` for float columns, 7 µs instead of pandas' 45."""
    dt = col.dtype
    if isinstance(dt, np.dtype) and dt.kind in "iub":
        return None
    if isinstance(dt, np.dtype) and dt.kind == "f":
        return np.isnan(col.to_numpy())
    return col.isna().to_numpy()


class _Columns:
    """The model frame of :func:`design`: its columns as a mapping of pandas Series on one index.

    A DataFrame's lookup by label costs ~30 µs (pandas 3, string labels) and the design makes
    a dozen; here it is a dict lookup.  ``frame[c] = values`` replaces a column without touching
    the caller's data; :meth:`to_frame` gives a DataFrame for formulaic.
    """

    def __init__(self, cols: dict[str, pd.Series], index: pd.Index) -> None:
        self._cols = cols
        self.index = index

    @property
    def columns(self) -> list[str]:
        return list(self._cols)

    def __getitem__(self, name: str) -> pd.Series:
        return self._cols[name]

    def __setitem__(self, name: str, values: Any) -> None:
        self._cols[name] = pd.Series(values, index=self.index, name=name, copy=False)

    def __len__(self) -> int:
        return len(self.index)

    def items(self) -> Any:
        return self._cols.items()

    def rows(self, keep: np.ndarray) -> "_Columns":
        """The rows where the boolean mask ``keep`` holds."""
        return _Columns({c: col[keep] for c, col in self._cols.items()}, self.index[keep])

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self._cols, index=self.index, copy=False)


def design(
    formula: str,
    data: pd.DataFrame,
    *,
    weights: Any = None,
    offset: Any = None,
    na_action: str = "omit",
    contrasts: Mapping[str, str] | None = None,
    residual_variance: bool = True,
) -> Design:
    """Build the design of a linear mixed model from an lme4 formula (lme4's ``lFormula``).

    Parameters
    ----------
    formula : str
        lme4 formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``; see
        :func:`sparselmm.spec.formula.parse_formula` for the grammar.
    data : pandas.DataFrame
        The data.  Columns used by the formula are selected; string, boolean and
        categorical predictors are treated as factors (treatment contrasts,
        first level = reference); grouping variables are factors whatever their dtype.
    weights : array-like or str, optional
        Prior weights (positive), or the name of a column holding them.
    offset : array-like or str, optional
        Known offset added to the linear predictor, or a column name.
    na_action : {"omit", "fail"}
        ``"omit"`` drops rows with a missing value in a used column (counted in
        ``n_dropped``); ``"fail"`` raises instead.
    contrasts : mapping of str to str, optional
        R's ``contrasts =`` of ``lm``/``lmer``: per factor of the fixed part, the contrasts
        to code it with (``{"store": "contr.sum"}``): ``"contr.treatment"``, ``"contr.sum"``,
        ``"contr.helmert"``, ``"contr.poly"``, ``"contr.SAS"``; columns named as R names them
        (``store1``, ``store2``, ... for sums).

    residual_variance : bool
        Whether the model estimates a residual variance (lme4's ``useSc``; False for a
        binomial or Poisson GLMM, :func:`sparselmm.glmer`): the checks that each grouping
        factor has fewer levels, and each term fewer random effects, than observations apply
        only then.
    Returns
    -------
    Design

    Raises
    ------
    FormulaError, DataError, ModelSpecError
        With a message naming the column, term or level at fault.
    """
    if not isinstance(data, pd.DataFrame):
        raise checks.not_a_dataframe("pandas", data)
    checks.check_na_action(na_action)
    columns = [str(c) for c in data.columns]
    pf = expand_dot(parse_formula(formula), columns)
    resp_vars, fixed_vars, group_vars = _needed_variables(pf, columns)
    used = list(dict.fromkeys(resp_vars + fixed_vars + group_vars))
    checks.check_formula_columns(formula, used, columns)
    checks.check_unique_columns(columns, among=used)
    if any(not isinstance(c, str) for c in data.columns):  # non-string column labels: by their str()
        data = data.set_axis(columns, axis=1)

    # weights and offset: arrays in the data's row order, Series aligned on its index; a missing
    # value drops its row as a missing value in a used column does (lme4's model frame)
    w = vector_argument(weights, data, "weights")
    off = vector_argument(offset, data, "offset")

    # the model frame: the used columns as a mapping (a pandas lookup by label costs ~30 µs, and the
    # design looks each column up several times); a DataFrame only if formulaic needs one
    frame = _Columns({c: real_column(data[c], c) for c in used}, data.index)
    given = frame  # the data as given: data-dependent transforms take their state from all its rows
    # missing values: dropped and counted (or refused)
    missing = np.zeros(len(data), dtype=bool)
    for c in used:
        m = _missing(frame[c])
        if m is not None:
            missing |= m
    for v in (w, off):
        if v is not None:
            missing |= np.isnan(v)
    n_bad, first_bad, n_inf = checks.count_invalid(w, off, ~missing)
    checks.check_weights(n_bad, first_bad)
    checks.check_offset(n_inf)
    n_dropped = int(missing.sum())
    if n_dropped:
        if na_action == "fail":
            checks.check_missing(n_dropped, [c for c in used if frame[c].isna().any()] + [
                what for what, v in (("weights", w), ("offset", off)) if v is not None and np.isnan(v).any()
            ], na_action)
        keep = ~missing
        frame = frame.rows(keep)
        w = None if w is None else w[keep]
        off = None if off is None else off[keep]
    checks.check_rows_left(len(frame), n_dropped, used)
    checks.check_infinite(frame, used)
    # factors: strings / booleans / categoricals used as predictors get R's factor coding
    for c in set(fixed_vars + resp_vars):
        col = frame[c]
        checks.check_not_datetime(c, col.dtype)
        if isinstance(col.dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(col.dtype) or not pd.api.types.is_numeric_dtype(col.dtype):
            if c in resp_vars and c not in fixed_vars:
                continue
            frame[c] = as_factor(col, c)
            if not isinstance(col.dtype, pd.CategoricalDtype) and not pd.api.types.is_bool_dtype(col.dtype):
                checks.warn_numeric_labels(c, frame[c].cat.categories)
    n = len(frame)

    # response, and the offsets written in the formula (each evaluated on the model frame, added up with
    # the offset argument, as R's model.offset)
    y = response_vector(pf.response, frame, [v for v in resp_vars if v in set(variables(pf.response))], state_frame=given)
    off = formula_offsets(pf, frame, resp_vars, off, given)

    # fixed effects, and the units the engine computes in (sparselmm.frame.conditioning): centred and
    # scaled columns, so that the cross-products keep what the data carry
    chosen = checks.check_contrasts(contrasts, frame, fixed_vars, list(CONTRASTS))
    X, X_names, fixed_spec = model_matrix(pf.fixed, frame, "the fixed-effects matrix", given, chosen)
    checks.check_finite(X, X_names, "fixed-effects column")
    cond, Xc = condition_columns(X, X_names)

    # random effects
    terms: list[RandomTerm] = []
    for b in pf.bars:
        codes, levels, categories = grouping_factor(frame, b.factors)
        if b.lhs.strip() == "1":
            # a read-only view of one 1.0: an intercept-only term holds no n-vector (8 MB per term at 1M rows)
            Xt, cols, spec = np.broadcast_to(np.float64(1.0), (n, 1)), ["(Intercept)"], None
        else:
            Xt, cols, spec = model_matrix(b.lhs, frame, f"the columns of term {b.text!r}", given)
        checks.check_term_has_columns(b.text, Xt.shape[1])
        checks.check_finite(Xt, cols, checks.term_finite_what(b.text))
        checks.check_term_split(b, frame)
        terms.append(RandomTerm(bar=b, group=b.group, levels=levels, codes=codes, columns=cols, Xt=Xt, spec=spec,
                                categories=categories))
    checks.check_random_terms(terms, formula)
    terms = order_terms(terms)
    check_terms(terms, n, residual_variance)

    # the checks on the reduced statistics, as a Dask design makes them (here the whole frame is its
    # one partition, and the tests a Gram matrix does not settle are made on the rows).  The rank
    # test runs on the conditioned columns X': a column is dropped when its distance from the span of
    # the columns before it is at most 1e-7 of its own size, measured after centring against the
    # binary columns before it, so a shifted column (a timestamp, or its interaction with a factor)
    # is judged as the unshifted one, where R's qr() on the raw column would drop x + 1e9 for a
    # spread below ~100; columns constant to rounding (cond.flat) are dropped with them
    XtX = Xc.T @ Xc
    term_rows = [t.Xt for t in terms]
    stats = column_stats(y, X, term_rows, cond.x_scale, gram=XtX, binary=cond.binary)
    keep, dropped = check_reduced(pf.response, terms, stats, X_names, cond.x_scale, XtX, flat=cond.flat, X=Xc,
                                  term_rows=term_rows, stacklevel=2)
    if dropped:
        X, X_names = X[:, keep], [X_names[j] for j in keep]
        cond, Xc = condition_columns(X, X_names)
        XtX = Xc.T @ Xc
    Zt, Gp = build_zt(terms, n)
    y_adj = y if off is None else y - off
    cond = cond.with_response(y_adj, X, w)
    cross = CrossProducts.from_arrays(Zt, Xc, cond.y(y_adj, X), cond.w(w), XtX=XtX if w is None else None)
    factor_levels = {
        c: category_strings(col.cat.categories)
        for c, col in frame.items()
        if isinstance(col.dtype, pd.CategoricalDtype)
    }
    factor_categories = {c: frame[c].cat.categories for c in factor_levels}
    return Design(
        formula=pf,
        y=y,
        X=X,
        X_names=X_names,
        Zt=Zt,
        **term_fields(terms, Gp),
        weights=w,
        offset=off,
        n_dropped=n_dropped,
        dropped_columns=dropped,
        cross=cross,
        row_index=frame.index,
        fixed_spec=fixed_spec,
        fixed_keep=keep,
        factor_levels=factor_levels,
        factor_categories=factor_categories,
        conditioning=cond,
        offset_name=offset if isinstance(offset, str) else None,
        offset_array=offset is not None and not isinstance(offset, str),
    )


def term_fields(terms: list[RandomTerm], Gp: np.ndarray) -> dict[str, Any]:
    """The fields of a :class:`Design` that follow from its random-effects terms alone.

    Parameters
    ----------
    terms : list of RandomTerm
        In lme4's order.
    Gp : numpy.ndarray
        Their boundaries in the rows of ``Zt``.

    Returns
    -------
    dict
        ``terms``, ``Gp``, θ's template (``theta_start``, ``lower``, ``upper``, ``theta_slices``,
        ``Lind``) and Λ's pattern (``Lambda_pattern``, ``Lambda_slices``).
    """
    Lam, lam_slices = build_lambda(terms, Gp)
    theta_start, lower, upper, slices, lind = theta_template(terms)
    return dict(terms=terms, Gp=Gp, theta_start=theta_start, lower=lower, upper=upper, theta_slices=slices, Lind=lind,
                Lambda_pattern=Lam, Lambda_slices=lam_slices)


def formula_offsets(
    pf: ParsedFormula, frame: pd.DataFrame, resp_vars: list[str], offset: np.ndarray | None,
    state_frame: pd.DataFrame | None = None,
) -> np.ndarray | None:
    """``offset`` (the argument, or None) plus every ``offset(...)`` term of the formula,
    evaluated on ``frame``.

    Raises
    ------
    DataError
        For an offset that is not numeric or not finite.
    """
    for t in pf.offsets:
        v = response_vector(t, frame, [c for c in resp_vars if c in set(variables(t))], "the offset", state_frame)
        offset = v if offset is None else offset + v
    return offset


def response_vector(
    text: str, frame: pd.DataFrame, resp_vars: list[str], what: str = "the response", state_frame: pd.DataFrame | None = None
) -> np.ndarray:
    """The response (or an offset): a numeric column, or an expression of numeric columns (``log(y)``).

    Parameters
    ----------
    text : str
        The response as written.
    frame : pandas.DataFrame or mapping of str to pandas.Series
        The model frame.
    resp_vars : list of str
        The columns it uses.
    what : str
        What it is, for the messages (``"the response"``, ``"the offset"``).
    state_frame : pandas.DataFrame or mapping, optional
        The data as given (see :func:`model_matrix`).

    Returns
    -------
    numpy.ndarray of float

    Raises
    ------
    DataError
        For a response that is not numeric, not one column, or not finite after transformation.
    """
    t = text.strip().strip("`")
    if t in frame.columns:
        col = frame[t]
        if isinstance(col.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype):
            raise DataError(
                f"{what} {t!r} must be numeric, but it is {col.dtype}; a linear mixed model needs a numeric {what[4:]}"
            )
        return col.to_numpy(dtype=float)
    for v in resp_vars:
        col = frame[v]
        if isinstance(col.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(col.dtype):
            raise DataError(f"{what} uses column {v!r}, which is not numeric ({col.dtype})")
    Y, _, _ = model_matrix(f"0 + I({text})", frame, what, state_frame)  # I(): arithmetic as R evaluates it (10 * x, y/10)
    if Y.shape[1] != 1:
        raise DataError(f"{what} {text!r} must be one numeric column, got {Y.shape[1]}")
    y = Y[:, 0]
    if not np.all(np.isfinite(y)):
        raise DataError(f"{what} {text!r} has non-finite values after transformation")
    return y
