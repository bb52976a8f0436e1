"""lmerTest's tests of linear hypotheses on β: ``contest``, the F-table of one model, ``drop1``.

* :func:`contest1D` — a t test of each row ``l`` of L: ``l β̂``, its SE, Satterthwaite's df
  ``2 (l C lᵀ)² / (gᵀ A g)`` (``g_i = l J_i lᵀ``; A the covariance of the variance
  parameters, J_i the derivatives of Var(β̂), :mod:`sparselmm.stats.satterthwaite`) or
  Kenward–Roger's (the adjusted covariance and pbkrtest's ``Lb_ddf``).
* :func:`contestMD` — the joint F test of L: Satterthwaite's by the eigen-decomposition of
  ``L C Lᵀ`` (one t statistic and df ν_m per eigenvector, then the F df
  ``2E/(E - q)``, ``E = Σ ν_m/(ν_m - 2)``), or Kenward–Roger's scaled F.
* :func:`anova_table` — lmerTest's ``anova(m, type, ddf)``: :func:`contestMD` of each term's
  hypothesis (:mod:`sparselmm.stats.hypotheses`).
* :func:`drop1_table` — lmerTest's ``drop1``: the F test of each term that no other contains.

Everything is computed on the internal β' (``β = J β'``, sparselmm.frame.conditioning), where
the tests are the same and the numbers of natural size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from sparselmm.errors import ArgumentError, ModelSpecError
from sparselmm.stats.hypotheses import drop_scope, fixed_terms, hypotheses
from sparselmm.stats.kenward_roger import kenward_roger_contrast, kenward_roger_test, kr_adjustment
from sparselmm.stats.ranova import drop1_lrt
from sparselmm.stats.satterthwaite import satterthwaite_internal, satterthwaite_se_df

if TYPE_CHECKING:  # pragma: no cover
    from sparselmm.fitting.fitted import FittedModel

__all__ = ["contest", "contest1D", "contestMD", "anova_table", "drop1", "drop1_table", "check_ddf"]

_DDF = {"satterthwaite": "Satterthwaite", "kenward-roger": "Kenward-Roger", "kr": "Kenward-Roger", "lme4": "lme4"}
F_COLUMNS = ["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"]


def check_ddf(ddf: Any, allow_lme4: bool = True) -> str:
    """lmerTest's spelling of the df method ``ddf`` (case and '-' forgiven)."""
    key = str(ddf).lower().replace("_", "-").replace(" ", "-") if isinstance(ddf, str) else None
    out = _DDF.get(key or "")
    if out is None or (out == "lme4" and not allow_lme4):
        allowed = "'Satterthwaite', 'Kenward-Roger'" + (", 'lme4'" if allow_lme4 else "")
        raise ArgumentError(f"ddf must be one of {allowed}, got {ddf!r}")
    return out


def _matrix(m: "FittedModel", L: Any, what: str = "L") -> np.ndarray:
    p = len(m.fixef)
    try:
        L = np.atleast_2d(np.asarray(L, dtype=float))
    except (TypeError, ValueError):
        raise ArgumentError(f"{what} must be a vector or matrix of numbers with {p} columns (one per fixed effect)") from None
    if L.ndim != 2 or L.shape[1] != p:
        raise ArgumentError(f"{what} must have {p} columns (one per fixed effect: {list(m.fixef.index)}), got shape {L.shape}")
    if not np.all(np.isfinite(L)):
        raise ArgumentError(f"{what} has missing or infinite entries")
    return L


def _rhs(rhs: Any, rows: int) -> np.ndarray:
    """The hypothesised values of ``L β``: one number for every row, or one per row."""
    try:
        h = np.atleast_1d(np.asarray(rhs, dtype=float))
    except (TypeError, ValueError):
        raise ArgumentError(f"rhs must be a number or one number per row of L, got {rhs!r}") from None
    if h.ndim != 1 or len(h) not in (1, rows) or not np.all(np.isfinite(h)):
        raise ArgumentError(f"rhs must be a finite number or {rows} of them (one per row of L), got {rhs!r}")
    return np.broadcast_to(h, (rows,)).copy()


def _t_row(m: "FittedModel", l: np.ndarray, rhs: float, method: str) -> tuple[float, float, float]:
    """(estimate, SE, df) of ``l β``."""
    est = float(l @ m.fixef.to_numpy())
    if not np.any(l):
        return est, 0.0, np.nan
    if method == "Kenward-Roger":
        adj = kr_adjustment(m)
        var = float(l @ adj.vcov_adj @ l)
        ddf, _ = kenward_roger_contrast(m, l)
        return est, float(np.sqrt(var)), float(ddf)
    se, df = satterthwaite_se_df(m, l)
    return est, se, float(df)


def contest1D(m: "FittedModel", L: Any, rhs: Any = 0.0, ddf: str = "Satterthwaite", confint: bool = True,
              level: float = 0.95) -> pd.DataFrame:
    """t tests of the rows of L (lmerTest's ``contest1D``, one row per row of L).

    Returns
    -------
    pandas.DataFrame
        ``Estimate``, ``Std. Error``, ``df``, ``t value``, (``lower``, ``upper``), ``Pr(>|t|)``.
    """
    method = check_ddf(ddf, allow_lme4=False)
    L = _matrix(m, L)
    h = _rhs(rhs, L.shape[0])
    rows = []
    for l, r in zip(L, h):
        est, se, df = _t_row(m, l, float(r), method)
        t = (est - r) / se if se > 0 else np.nan
        row = {"Estimate": est, "Std. Error": se, "df": df, "t value": t}
        if confint:
            q = stats.t.ppf(1 - (1 - level) / 2, df)
            row.update(lower=est - q * se, upper=est + q * se)
        row["Pr(>|t|)"] = float(2 * stats.t.sf(abs(t), df))
        rows.append(row)
    return pd.DataFrame(rows)


def _f_row(F: float, ndf: float, ddf: float, sigma: float, scale: float = 1.0) -> dict[str, float]:
    ms = F * sigma**2
    Fv = F * scale
    return {"Sum Sq": ms * ndf, "Mean Sq": ms, "NumDF": ndf, "DenDF": ddf, "F value": Fv,
            "Pr(>F)": float(stats.f.sf(Fv, ndf, ddf))}


def _f_ddf(nu: np.ndarray, tol: float = 1e-8) -> float:
    """lmerTest's ``get_Fstat_ddf``: the df of the mean of q independent F(1, ν_m)."""
    if len(nu) == 1:
        return float(nu[0])
    if np.all(np.abs(np.diff(nu)) < tol):
        return float(np.mean(nu))
    if np.any(nu <= 2):
        return 2.0
    E = float(np.sum(nu / (nu - 2)))
    return 2 * E / (E - len(nu))


def contestMD(m: "FittedModel", L: Any, rhs: Any = 0.0, ddf: str = "Satterthwaite",
              eps: float = float(np.sqrt(np.finfo(float).eps))) -> pd.DataFrame:
    """The joint F test of ``L β = rhs`` (lmerTest's ``contestMD``): one row of the F-table."""
    method = check_ddf(ddf, allow_lme4=False)
    L = _matrix(m, L)
    h = _rhs(rhs, L.shape[0])
    sigma = m.sigma
    if method == "Kenward-Roger":
        x = kenward_roger_test(m, L, h)
        return pd.DataFrame([_f_row(x["F_unscaled"], x["ndf"], x["ddf"], sigma, x["F_scaling"])])
    if L.shape[0] == 1:
        est, se, df = _t_row(m, L[0], h[0], method)
        return pd.DataFrame([_f_row(((est - h[0]) / se) ** 2, 1.0, df, sigma)])
    _, _, C = satterthwaite_internal(m)
    Jm = m.design.cond.J
    beta = m.fixef.to_numpy()
    if np.any(h != 0):
        beta = beta - np.linalg.pinv(L) @ h
    Li = L @ Jm
    V = Li @ C @ Li.T
    d, P = np.linalg.eigh(V)
    d, P = d[::-1], P[:, ::-1]  # decreasing, as R's eigen()
    q = int(np.sum(d > max(eps * d[0], 0.0)))
    if q <= 0:
        raise ModelSpecError("the hypothesis matrix L tests nothing (its contrasts have no variance)")
    PtL = P[:, :q].T @ L
    if q == 1:
        est, se, df = _t_row(m, PtL[0], 0.0, method)
        return pd.DataFrame([_f_row((float(PtL[0] @ beta) / se) ** 2, 1.0, df, sigma)])
    F = float(np.sum((PtL @ beta) ** 2 / d[:q]) / q)
    nu = np.empty(q)
    for k in range(q):  # each eigen-contrast's own t df (its variance is d_k)
        nu[k] = satterthwaite_se_df(m, PtL[k])[1]
    return pd.DataFrame([_f_row(F, float(q), _f_ddf(nu), sigma)])


def contest(m: "FittedModel", L: Any, rhs: Any = 0.0, *, joint: bool = True, ddf: str = "Satterthwaite",
            confint: bool = True, level: float = 0.95) -> pd.DataFrame:
    """lmerTest's ``contest(m, L, joint=, ddf=)``: the joint F test of the rows of L
    (:func:`contestMD`), or a t test of each row (:func:`contest1D`, with its confidence
    interval at ``level``).

    Parameters
    ----------
    m : FittedModel
    L : array-like
        A vector (one contrast) or a matrix (rows: contrasts) with one column per fixed effect.
    rhs : float or array-like
        The hypothesised value(s) of ``L β``.
    joint : bool
    ddf : {"Satterthwaite", "Kenward-Roger"}
    confint : bool
    level : float

    Returns
    -------
    pandas.DataFrame
        In lmerTest's layout.
    """
    if not isinstance(joint, (bool, np.bool_)):
        raise ArgumentError(f"joint must be True or False, got {joint!r}")
    if not (isinstance(level, (int, float)) and 0 < level < 1):
        raise ArgumentError(f"level must be a number between 0 and 1, got {level!r}")
    if joint:
        return contestMD(m, L, rhs, ddf)
    return contest1D(m, L, rhs, ddf, confint, level)


def _type(type: Any) -> int:  # noqa: A002 - lmerTest's name
    t = {"I": 1, "II": 2, "III": 3, "1": 1, "2": 2, "3": 3, 1: 1, 2: 2, 3: 3}.get(type if not isinstance(type, bool) else None)
    if t is None:
        raise ArgumentError(f"type must be 1, 2 or 3 (or 'I', 'II', 'III'), got {type!r}")
    return t


def anova_table(m: "FittedModel", type: Any = 3, ddf: str = "Satterthwaite") -> pd.DataFrame:  # noqa: A002
    """lmerTest's F-table of one model: ``anova(m, type = "III", ddf = "Satterthwaite")``.

    Parameters
    ----------
    m : FittedModel
    type : {3, 2, 1} or {"III", "II", "I"}
        The hypotheses (:mod:`sparselmm.stats.hypotheses`): marginal to the terms that
        contain each term (3, lmerTest's default), respecting marginality (2), sequential (1).
    ddf : {"Satterthwaite", "Kenward-Roger", "lme4"}
        The denominator df; ``"lme4"`` gives lme4's table (no df, no p-values: sequential
        ``Sum Sq``, ``Mean Sq``, ``F value`` of each term).

    Returns
    -------
    pandas.DataFrame
        One row per term: ``Sum Sq``, ``Mean Sq``, ``NumDF``, ``DenDF``, ``F value``, ``Pr(>F)``
        (for ``"lme4"``: ``npar``, ``Sum Sq``, ``Mean Sq``, ``F value``).  ``attrs["heading"]``
        has lmerTest's heading.
    """
    method = check_ddf(ddf)
    t = _type(type)
    if method == "lme4":  # lme4's sequential table: the squares of R_X β, summed by term, over σ²
        V = m.vcov.to_numpy()
        RX = np.linalg.cholesky(np.linalg.inv(V / m.sigma**2)).T
        effects = (RX @ m.fixef.to_numpy()) ** 2
        rows = {}
        for label, cols, _, _ in fixed_terms(m):
            if cols:
                ss = float(effects[cols].sum())
                rows[label] = {"npar": len(cols), "Sum Sq": ss, "Mean Sq": ss / len(cols),
                               "F value": ss / len(cols) / m.sigma**2}
        out = pd.DataFrame.from_dict(rows, orient="index", columns=["npar", "Sum Sq", "Mean Sq", "F value"])
        out.attrs["heading"] = "Analysis of Variance Table"
        return out
    Ls = hypotheses(m, t)
    rows = {label: contestMD(m, L, 0.0, method).iloc[0].to_dict() for label, L in Ls.items() if L.shape[0]}
    out = pd.DataFrame.from_dict(rows, orient="index", columns=F_COLUMNS)
    out = out.reindex(list(Ls))
    out.attrs["heading"] = f"Type {'I' * t if t < 3 else 'III'} Analysis of Variance Table with {method}'s method"
    return out


def drop1_table(m: "FittedModel", ddf: str = "Satterthwaite") -> pd.DataFrame:
    """lmerTest's ``drop1(m)``: the F test of each term that can be dropped alone (R's
    ``drop.scope``: no other term has all its variables), of the term's own coefficients being 0.
    (``drop1(m, test="Chisq")``, lme4's likelihood-ratio version, is ``FittedModel.drop1``.)"""
    method = check_ddf(ddf, allow_lme4=False)
    terms = [t for t in fixed_terms(m) if t[1]]
    p = len(m.fixef)
    scope = drop_scope([(t[0], t[2]) for t in terms])
    cols = {t[0]: t[1] for t in terms}
    rows = {label: contestMD(m, np.eye(p)[cols[label], :], 0.0, method).iloc[0].to_dict() for label in scope}
    out = pd.DataFrame.from_dict(rows, orient="index", columns=F_COLUMNS)
    out.attrs["heading"] = f"Single term deletions using {method}'s method"
    return out


def drop1(m: "FittedModel", ddf: str = "Satterthwaite", test: str | None = None) -> pd.DataFrame:
    """``drop1(m)``: lmerTest's F test of each term that can be dropped alone
    (:func:`drop1_table`); ``test="Chisq"``: lme4's likelihood-ratio version
    (:func:`sparselmm.stats.ranova.drop1_lrt`)."""
    if test is None:
        return drop1_table(m, ddf=ddf)
    if test != "Chisq":
        raise ArgumentError(f"test must be None (lmerTest's F tests) or 'Chisq' (lme4's likelihood ratios), got {test!r}")
    return drop1_lrt(m)
