r"""One-way repeated-measures ANOVA with sphericity corrections.

This module reproduces the classical one-way repeated-measures (within-subject)
analysis of variance as computed by Rand Wilcox's ``aov1rm``/``rmanova``
functions (untrimmed), including the Greenhouse--Geisser and Huynh--Feldt
corrections for departures from sphericity, and the moment estimates of the
two variance components of the equivalent random-intercept mixed model

.. math::

    y_{ij} = \mu + \alpha_j + \rho_i + e_{ij}, \qquad
    \rho_i \sim N(0, \sigma^2_\rho), \quad e_{ij} \sim N(0, \sigma^2_e),

for subjects :math:`i = 1, \dots, n` and conditions :math:`j = 1, \dots, J`.

The entry point is :func:`rm_anova`; it returns an :class:`RMAnovaResult`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Hashable

import numpy as np
import pandas as pd
from scipy import stats

from sparselmm.errors import DataError

__all__ = ["rm_anova", "RMAnovaResult"]

#: Maximum number of offending subjects/levels quoted in an error message.
_MAX_QUOTED = 5


@dataclass(frozen=True, eq=False, repr=False)
class RMAnovaResult:
    r"""Result of a one-way repeated-measures ANOVA (see :func:`rm_anova`).

    Attributes
    ----------
    F : float
        :math:`F = MS_{cond} / MS_{err}`.
    df1 : int
        Numerator degrees of freedom, :math:`J - 1`.
    df2 : int
        Denominator degrees of freedom, :math:`(J - 1)(n - 1)`.
    p : float
        Upper-tail probability of ``F`` under :math:`F_{df1, df2}`
        (assumes sphericity).
    eps_gg : float
        Greenhouse--Geisser :math:`\hat\varepsilon`.
    p_gg : float
        p-value of ``F`` on :math:`(\hat\varepsilon\,df1, \hat\varepsilon\,df2)`
        degrees of freedom.
    eps_hf : float
        Huynh--Feldt :math:`\tilde\varepsilon` (capped at 1).
    p_hf : float
        p-value of ``F`` on :math:`(\tilde\varepsilon\,df1, \tilde\varepsilon\,df2)`
        degrees of freedom.
    sigma2_e : float
        Residual variance estimate :math:`\hat\sigma^2_e = MS_{err}`.
    sigma2_rho : float
        Subject variance estimate
        :math:`\hat\sigma^2_\rho = (MS_{subj} - MS_{err}) / J`; **not**
        truncated at zero, so it is negative when :math:`MS_{subj} < MS_{err}`.
    mu : float
        Grand mean :math:`\hat\mu = \bar y_{\cdot\cdot}`.
    alphas : pandas.Series
        Condition effects :math:`\hat\alpha_j = \bar y_{\cdot j} - \hat\mu`,
        indexed by condition.
    rhos : pandas.Series
        Subject effects :math:`\hat\rho_i = \bar y_{i \cdot} - \hat\mu`,
        indexed by subject.
    n_subjects : int
        Number of subjects :math:`n`.
    n_conditions : int
        Number of conditions :math:`J`.
    ss_cond, ss_subj, ss_err : float
        Sums of squares for conditions, subjects and residual.
    """

    F: float
    df1: int
    df2: int
    p: float
    eps_gg: float
    p_gg: float
    eps_hf: float
    p_hf: float
    sigma2_e: float
    sigma2_rho: float
    mu: float
    alphas: pd.Series
    rhos: pd.Series
    n_subjects: int
    n_conditions: int
    ss_cond: float
    ss_subj: float
    ss_err: float

    @property
    def df_subj(self) -> int:
        """Degrees of freedom for subjects, :math:`n - 1`."""
        return self.n_subjects - 1

    def table(self) -> pd.DataFrame:
        """Classic ANOVA table.

        Returns
        -------
        pandas.DataFrame
            Index ``["condition", "subject", "residual"]`` (named ``"source"``);
            columns ``SS``, ``df``, ``MS``, ``F``, ``p``, ``p_GG``, ``p_HF``.
            The ``F`` and p-value columns are filled only on the ``condition``
            row (subjects are not tested, as in Wilcox's ``aov1rm``); the other
            entries are NaN.
        """
        nan = float("nan")
        ss = [self.ss_cond, self.ss_subj, self.ss_err]
        df = [self.df1, self.df_subj, self.df2]
        ms = [s / d for s, d in zip(ss, df)]
        out = pd.DataFrame(
            {
                "SS": ss,
                "df": df,
                "MS": ms,
                "F": [self.F, nan, nan],
                "p": [self.p, nan, nan],
                "p_GG": [self.p_gg, nan, nan],
                "p_HF": [self.p_hf, nan, nan],
            },
            index=pd.Index(["condition", "subject", "residual"], name="source"),
        )
        return out

    def __str__(self) -> str:
        tab = self.table()
        body = tab.to_string(
            float_format=lambda v: f"{v:.6g}",
            na_rep="",
        )
        lines = [
            "One-way repeated-measures ANOVA "
            f"({self.n_subjects} subjects x {self.n_conditions} conditions)",
            "",
            body,
            "",
            f"Greenhouse-Geisser epsilon: {self.eps_gg:.7g}  "
            f"(df {self.df1 * self.eps_gg:.4g}, {self.df2 * self.eps_gg:.4g}; "
            f"p = {self.p_gg:.7g})",
            f"Huynh-Feldt epsilon:        {self.eps_hf:.7g}  "
            f"(df {self.df1 * self.eps_hf:.4g}, {self.df2 * self.eps_hf:.4g}; "
            f"p = {self.p_hf:.7g})",
            "",
            f"Grand mean mu = {self.mu:.7g}; "
            f"sigma2_e = {self.sigma2_e:.7g}; sigma2_rho = {self.sigma2_rho:.7g}",
        ]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"RMAnovaResult(F={self.F:.7g}, df1={self.df1}, df2={self.df2}, "
            f"p={self.p:.7g}, eps_gg={self.eps_gg:.7g}, p_gg={self.p_gg:.7g}, "
            f"eps_hf={self.eps_hf:.7g}, p_hf={self.p_hf:.7g}, "
            f"n_subjects={self.n_subjects}, n_conditions={self.n_conditions})"
        )


# --------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------


def _quote(items: list[Any]) -> str:
    shown = ", ".join(repr(x) for x in items[:_MAX_QUOTED])
    if len(items) > _MAX_QUOTED:
        shown += f", ... ({len(items) - _MAX_QUOTED} more)"
    return shown


def _is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def _non_numeric_example(s: pd.Series) -> Any:
    """First entry of ``s`` that does not convert to a number (or None)."""
    conv = pd.to_numeric(s, errors="coerce")
    bad = s[conv.isna() & s.notna()]
    return bad.iloc[0] if len(bad) else None


def _check_values(values: pd.Series, column: Hashable, where: pd.Series) -> None:
    """Check a numeric column for NaN/inf; ``where`` labels each row."""
    arr = values.to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(arr)
    if bad.any():
        locs = list(where[bad])
        shown = "; ".join(locs[:_MAX_QUOTED])
        if len(locs) > _MAX_QUOTED:
            shown += f"; ... ({len(locs) - _MAX_QUOTED} more)"
        raise DataError(
            f"column {column!r} has {len(locs)} missing (NaN) or infinite "
            f"value(s), at {shown}; drop or impute them first"
        )


def _from_wide(data: pd.DataFrame, subject: Hashable | None) -> pd.DataFrame:
    if subject is not None:
        if subject not in data.columns:
            raise DataError(
                f"subject column {subject!r} not found in data "
                f"(columns: {_quote(list(data.columns))})"
            )
        wide = data.set_index(subject)
    else:
        wide = data
    if wide.index.hasnans:
        what = f"column {subject!r}" if subject is not None else "(index)"
        raise DataError(f"subject identifier {what} contains missing values")
    dup = wide.index[wide.index.duplicated()].unique()
    if len(dup):
        raise DataError(
            f"subject(s) {_quote(list(dup))} appear in more than one row of the "
            "wide data; each row must be one subject"
        )
    for col in wide.columns:
        if not _is_numeric(wide[col]):
            ex = _non_numeric_example(wide[col])
            extra = f" (e.g. {ex!r})" if ex is not None else ""
            raise DataError(
                f"column {col!r} is not numeric (dtype {wide[col].dtype}){extra}; "
                "in wide data every column except the subject column is a "
                "condition - pass subject=... or drop the column"
            )
        where = pd.Series([f"subject {s!r}" for s in wide.index])
        _check_values(wide[col], col, where)
    return wide.astype(float)


def _levels(col: pd.Series) -> pd.Index:
    """Observed levels of ``col``, in category order or sorted if possible."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        observed = set(col.dropna().unique())
        return pd.Index([c for c in col.cat.categories if c in observed])
    uniq = pd.unique(col)
    try:
        return pd.Index(sorted(uniq))
    except TypeError:
        return pd.Index(uniq)


def _from_long(
    data: pd.DataFrame, subject: Hashable, condition: Hashable, value: Hashable
) -> pd.DataFrame:
    for role, col in (("subject", subject), ("condition", condition), ("value", value)):
        if col not in data.columns:
            raise DataError(
                f"{role} column {col!r} not found in data "
                f"(columns: {_quote(list(data.columns))})"
            )
    if len({subject, condition, value}) < 3:
        raise DataError(
            "subject, condition and value must name three different columns, got "
            f"{subject!r}, {condition!r}, {value!r}"
        )
    sub, cond, val = data[subject], data[condition], data[value]
    for role, col, s in (("subject", subject, sub), ("condition", condition, cond)):
        if s.isna().any():
            rows = list(data.index[s.isna().to_numpy()])
            raise DataError(
                f"{role} column {col!r} has missing values in row(s) {_quote(rows)}"
            )
    if not _is_numeric(val):
        ex = _non_numeric_example(val)
        extra = f" (e.g. {ex!r})" if ex is not None else ""
        raise DataError(
            f"value column {value!r} is not numeric (dtype {val.dtype}){extra}"
        )
    where = pd.Series(
        [f"{subject}={s!r}, {condition}={c!r}" for s, c in zip(sub, cond)]
    )
    _check_values(val, value, where)

    key = pd.DataFrame({"s": sub.to_numpy(), "c": cond.to_numpy()})
    dup = key.duplicated(keep=False).to_numpy()
    if dup.any():
        pairs = list(dict.fromkeys(zip(key["s"][dup], key["c"][dup])))
        raise DataError(
            f"more than one {value!r} for the (subject, condition) cell(s) "
            + _quote([{subject: s, condition: c} for s, c in pairs])
            + f" of columns {subject!r}, {condition!r}; a one-way repeated-measures "
            "ANOVA needs exactly one value per cell (average replicates first)"
        )

    subj_levels = _levels(sub)
    cond_levels = _levels(cond)
    wide = pd.DataFrame(
        val.to_numpy(dtype=float),
        index=pd.MultiIndex.from_arrays([sub.to_numpy(), cond.to_numpy()]),
    )[0].unstack()
    wide = wide.reindex(index=subj_levels, columns=cond_levels)
    wide.index.name = subject
    wide.columns.name = condition
    missing = wide.isna()
    if missing.to_numpy().any():
        bad = []
        for i in np.flatnonzero(missing.any(axis=1).to_numpy()):
            lacking = list(wide.columns[missing.iloc[i].to_numpy()])
            bad.append(f"{subject}={wide.index[i]!r} lacks {condition}={_quote(lacking)}")
        raise DataError(
            f"missing cells in long data (column {value!r}): "
            + "; ".join(bad[:_MAX_QUOTED])
            + (f"; ... ({len(bad) - _MAX_QUOTED} more subjects)" if len(bad) > _MAX_QUOTED else "")
            + "; every subject must be observed under every condition"
        )
    return wide


# --------------------------------------------------------------------------
# main entry point
# --------------------------------------------------------------------------


def _f_sf(F: float, d1: float, d2: float) -> float:
    if not (np.isfinite(d1) and np.isfinite(d2)) or d1 <= 0 or d2 <= 0 or np.isnan(F):
        return float("nan")
    return float(stats.f.sf(F, d1, d2))


def rm_anova(
    data: pd.DataFrame,
    *,
    subject: Hashable | None = None,
    condition: Hashable | None = None,
    value: Hashable | None = None,
) -> RMAnovaResult:
    r"""One-way repeated-measures ANOVA with Greenhouse--Geisser/Huynh--Feldt corrections.

    Reproduces the (untrimmed) analysis of Rand Wilcox's ``aov1rm``: the
    classical :math:`F` test for equality of the :math:`J` condition means
    when each of :math:`n` subjects is measured once under every condition,
    with sphericity-corrected p-values and moment estimates of the variance
    components of the random-intercept model

    .. math:: y_{ij} = \mu + \alpha_j + \rho_i + e_{ij}.

    Parameters
    ----------
    data : pandas.DataFrame
        Either **wide** data -- one row per subject, one numeric column per
        condition -- or **long** data -- one row per (subject, condition)
        observation.
    subject : hashable, optional
        Long data: the column identifying subjects (required).  Wide data:
        if given, the column holding the subject identifiers (it is removed
        from the condition columns); otherwise the row index identifies the
        subjects.
    condition : hashable, optional
        Long data only: the column identifying conditions.
    value : hashable, optional
        Long data only: the numeric response column.

    Returns
    -------
    RMAnovaResult
        Frozen result object; ``result.table()`` gives the ANOVA table and
        ``print(result)`` a readable summary.

    Raises
    ------
    DataError
        If a named column is absent; a value is NaN or infinite; a value
        column is not numeric (in wide data *every* non-subject column must be
        numeric); a subject lacks a condition (missing cell) or has two values
        for one; a subject id is duplicated (wide) or missing; or there are
        fewer than 2 subjects or fewer than 2 conditions.  The message names
        the offending column, subject and/or condition.

    Notes
    -----
    Input is long when ``condition`` or ``value`` is given (then all three of
    ``subject``, ``condition``, ``value`` are required), wide otherwise.  In
    long data, subject and condition levels are sorted (or kept in category
    order for categoricals; unused categories are dropped); in wide data the
    given row and column order is kept.  Extra columns of long data are
    ignored.

    Let :math:`y_{ij}` be the value of subject :math:`i` under condition
    :math:`j`, :math:`\hat\mu = \bar y_{\cdot\cdot}`,
    :math:`\hat\alpha_j = \bar y_{\cdot j} - \hat\mu` and
    :math:`\hat\rho_i = \bar y_{i\cdot} - \hat\mu`.  Then

    .. math::

        SS_{cond} = n \sum_j \hat\alpha_j^2, \quad
        SS_{subj} = J \sum_i \hat\rho_i^2, \quad
        SS_{err} = \sum_{ij} (y_{ij} - \hat\mu - \hat\alpha_j - \hat\rho_i)^2,

    with :math:`df_1 = J - 1`, :math:`df_{subj} = n - 1`,
    :math:`df_2 = (J - 1)(n - 1)`, :math:`MS = SS / df`, and

    .. math:: F = MS_{cond} / MS_{err}, \qquad p = P(F_{df_1, df_2} > F).

    *Greenhouse--Geisser.*  With :math:`S` the :math:`J \times J` sample
    covariance matrix of the condition columns (divisor :math:`n - 1`) and
    :math:`C = I_J - J^{-1} 1 1^\top`, let :math:`\tilde S = C S C` (the
    double-centred :math:`S`); then

    .. math::

        \hat\varepsilon = \frac{(\operatorname{tr} \tilde S)^2}
                               {(J - 1) \sum_{jk} \tilde S_{jk}^2}.

    *Huynh--Feldt* (the formula of Huynh & Feldt 1976 as used by Wilcox and
    R's ``car``/``ez``), capped at 1:

    .. math::

        \tilde\varepsilon = \min\left(1,
            \frac{n (J - 1) \hat\varepsilon - 2}
                 {(J - 1)\,(n - 1 - (J - 1) \hat\varepsilon)}\right).

    For a single group of subjects this coincides with Lecoutre's (1991)
    correction, whose :math:`(N - g + 1)` factor reduces to :math:`n`; both
    reproduce the reference grocery-data numbers.  The denominator is
    :math:`\ge 0` because :math:`(J-1)\hat\varepsilon \le \operatorname{rank}
    \tilde S \le n - 1`; when it is 0 (always so for :math:`n = 2`) the
    ratio is taken as :math:`+\infty` and :math:`\tilde\varepsilon = 1`.

    The corrected p-values refer :math:`F` to
    :math:`F_{\varepsilon df_1, \varepsilon df_2}`.

    *Variance components* (ANOVA/moment estimates):

    .. math::

        \hat\sigma^2_e = MS_{err}, \qquad
        \hat\sigma^2_\rho = (MS_{subj} - MS_{err}) / J.

    :math:`\hat\sigma^2_\rho` is deliberately **not** truncated at 0: a
    negative value signals that subjects vary less than the residual noise
    (REML would put the estimate on the boundary, 0).

    Degenerate data: if every subject's profile is a vertical shift of every
    other's, :math:`SS_{err} = 0` (up to rounding, which is set to exactly 0)
    and :math:`\tilde S = 0`; then ``F`` is
    ``inf`` (or NaN if the condition means are equal too) and both epsilons
    and their p-values are NaN.

    Examples
    --------
    >>> import pandas as pd
    >>> wide = pd.DataFrame({"A": [1.0, 2.0, 3.0], "B": [1.5, 2.2, 3.9],
    ...                      "C": [2.0, 2.1, 4.4]}, index=["s1", "s2", "s3"])
    >>> res = rm_anova(wide)
    >>> res.df1, res.df2
    (2, 4)
    """
    if not isinstance(data, pd.DataFrame):
        raise DataError(
            f"data must be a pandas DataFrame, got {type(data).__name__}"
        )
    if condition is not None or value is not None:
        absent = [
            name
            for name, arg in (("subject", subject), ("condition", condition), ("value", value))
            if arg is None
        ]
        if absent:
            raise DataError(
                "long data needs subject=, condition= and value= column names; "
                f"missing: {', '.join(absent)}"
            )
        wide = _from_long(data, subject, condition, value)
    else:
        wide = _from_wide(data, subject)

    n, J = wide.shape
    if J < 2:
        raise DataError(
            f"need at least 2 conditions, got {J}"
            + (f" ({_quote(list(wide.columns))})" if J else "")
        )
    if n < 2:
        raise DataError(
            f"need at least 2 subjects, got {n}"
            + (f" (subject {_quote(list(wide.index))})" if n else "")
        )

    Y = wide.to_numpy(dtype=float)
    mu = float(Y.mean())
    alpha = Y.mean(axis=0) - mu
    rho = Y.mean(axis=1) - mu
    resid = Y - mu - alpha[None, :] - rho[:, None]

    ss_cond = float(n * np.sum(alpha**2))
    ss_subj = float(J * np.sum(rho**2))
    ss_err = float(np.sum(resid**2))
    # Exactly additive data leave only rounding noise in the residuals; call
    # that zero so F is inf rather than a huge, meaningless finite number.
    if ss_err <= (1e3 * np.finfo(float).eps) ** 2 * Y.size * float(np.max(Y**2)):
        ss_err = 0.0
    df1 = J - 1
    df_subj = n - 1
    df2 = df1 * df_subj
    ms_cond = ss_cond / df1
    ms_subj = ss_subj / df_subj
    ms_err = ss_err / df2

    with np.errstate(divide="ignore", invalid="ignore"):
        F = float(np.float64(ms_cond) / np.float64(ms_err))
    p = float(stats.f.sf(F, df1, df2)) if not np.isnan(F) else float("nan")

    # Greenhouse-Geisser from the double-centred covariance matrix.
    S = np.cov(Y, rowvar=False, ddof=1)
    C = np.eye(J) - 1.0 / J
    St = C @ S @ C
    denom_gg = df1 * float(np.sum(St**2))
    # St is exactly 0 iff SS_err is 0 (both are the spread of the
    # double-centred data), so the degenerate case is decided on SS_err.
    if ss_err == 0.0 or denom_gg == 0.0:
        eps_gg = float("nan")
    else:
        eps_gg = float(np.trace(St) ** 2 / denom_gg)
        eps_gg = min(1.0, eps_gg)  # guards rounding only; exact value is <= 1

    # Huynh-Feldt.
    if np.isnan(eps_gg):
        eps_hf = float("nan")
    else:
        num = n * df1 * eps_gg - 2.0
        den = df1 * (n - 1 - df1 * eps_gg)
        if den <= 1e-12 * df1 * (n - 1):
            eps_hf = 1.0
        else:
            eps_hf = min(1.0, num / den)

    p_gg = _f_sf(F, df1 * eps_gg, df2 * eps_gg)
    p_hf = _f_sf(F, df1 * eps_hf, df2 * eps_hf)

    alphas = pd.Series(alpha, index=wide.columns.copy(), name="alpha")
    rhos = pd.Series(rho, index=wide.index.copy(), name="rho")

    return RMAnovaResult(
        F=F,
        df1=df1,
        df2=df2,
        p=p,
        eps_gg=eps_gg,
        p_gg=p_gg,
        eps_hf=eps_hf,
        p_hf=p_hf,
        sigma2_e=ms_err,
        sigma2_rho=(ms_subj - ms_err) / J,
        mu=mu,
        alphas=alphas,
        rhos=rhos,
        n_subjects=n,
        n_conditions=J,
        ss_cond=ss_cond,
        ss_subj=ss_subj,
        ss_err=ss_err,
    )
