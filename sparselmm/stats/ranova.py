"""lmerTest's ``ranova``: a likelihood-ratio test for each random-effects term.

Each term ``(lhs | g)`` is reduced as lmerTest reduces it: a term whose ``lhs`` has no
variables (``(1 | g)``) is removed; otherwise each variable of ``lhs`` that no other of its
variables contains (R's ``drop.scope``) is removed from it in turn (``Days in (Days | Subject)``:
``(Days | Subject)`` becomes ``(1 | Subject)``).  The reduced model is refitted by the same
criterion (REML or ML) on the same rows; a model left without random effects is the linear
model, with R's ``logLik.lm`` (its REML version for a REML fit).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats

from sparselmm.backends.base import LOG2PI
from sparselmm.errors import ModelSpecError
from sparselmm.spec.formula import split_top
from sparselmm.stats.hypotheses import drop_scope, fixed_terms

if TYPE_CHECKING:  # pragma: no cover
    from sparselmm.fitting.fitted import FittedModel

__all__ = ["ranova_table", "drop1_lrt", "lm_loglik"]


def lm_loglik(y: np.ndarray, X: np.ndarray, w: np.ndarray | None, REML: bool) -> tuple[float, int]:
    """R's ``logLik(lm(...), REML = REML)`` and its df (``p + 1``) for weights ``w``."""
    n, p = X.shape
    sw = np.ones(n) if w is None else np.sqrt(w)
    Xw, yw = X * sw[:, None], y * sw
    q, r = np.linalg.qr(Xw)
    res = yw - q @ (q.T @ yw)
    N = n - p if REML else n
    ll = 0.5 * (np.sum(np.log(sw**2)) - N * (LOG2PI + 1 - np.log(N) + np.log(np.sum(res**2))))
    if REML:
        ll -= float(np.sum(np.log(np.abs(np.diag(r)))))
    return float(ll), p + 1


def _bar_text(lhs: str, group: str, structure: str) -> str:
    inner = f"{lhs} | {group}"
    return f"({inner})" if structure == "us" else f"{structure}({inner})"


def _lhs_terms(lhs: str) -> list[str]:
    return [piece.strip() for sign, piece, _ in split_top(lhs, 0) if sign != "-" and piece.strip() not in ("0", "1")]


def _reductions(m: "FittedModel") -> list[tuple[str, str]]:
    """(row name, reduced formula) for each reduction of each random term, in lmerTest's order."""
    pf = m.design.formula
    fixed = pf.fixed + "".join(f" + offset({o})" for o in pf.offsets if f"offset({o})" not in pf.fixed)
    bars = [_bar_text(b.lhs, b.group, b.structure) for b in pf.bars]
    out = []
    for i, b in enumerate(pf.bars):
        rest = bars[:i] + bars[i + 1 :]
        terms = _lhs_terms(b.lhs)
        scope = drop_scope([(t, t.split(":")) for t in terms])
        this = f"{b.lhs} | {b.group}"
        if not terms or not scope or b.structure != "us":
            out.append((f"({this})", " + ".join([f"{pf.response} ~ {fixed}"] + rest)))
            continue
        for scp in scope:
            left = [t for t in terms if t != scp]
            keeps_intercept = not any(sign == "-" or piece.strip() == "0" for sign, piece, _ in split_top(b.lhs, 0))
            new_lhs = "1" if not left else " + ".join(left if keeps_intercept else ["0"] + left)
            out.append((f"{scp} in ({this})",
                        " + ".join([f"{pf.response} ~ {fixed}"] + rest[:i] + [_bar_text(new_lhs, b.group, "us")] + rest[i:])))
    return out


def ranova_table(m: "FittedModel") -> pd.DataFrame:
    """lmerTest's ``ranova(m)``: ``npar``, ``logLik``, ``AIC``, ``LRT``, ``Df``, ``Pr(>Chisq)``
    for the model (``<none>``) and each reduction of its random-effects terms.

    Parameters
    ----------
    m : FittedModel
        A fit by ``lmer()`` (the reductions are refitted with ``m.update``).

    Returns
    -------
    pandas.DataFrame
    """
    d = m.design
    if not d.terms:
        raise ModelSpecError("ranova() needs a model with at least one random-effects term")
    rows = {"<none>": (m.npar, m.loglik)}
    for name, formula in _reductions(m):
        if "|" not in formula:
            if d.X.shape[0] != d.n:
                raise ModelSpecError(
                    f"ranova(): without {name} the model has no random effects, and the linear model's "
                    "log-likelihood needs the model matrix, which a Dask fit does not keep; compare with a model "
                    "fitted in memory, or keep a random term"
                )
            y = d.y if d.offset is None else d.y - d.offset
            ll, npar = lm_loglik(y, d.X, d.weights, m.REML)
        else:
            r = m.update(formula)
            if r.nobs != m.nobs:
                raise ModelSpecError(f"ranova(): the reduced model {formula!r} uses {r.nobs} rows, the model {m.nobs}")
            ll, npar = r.loglik, r.npar
        rows[name] = (npar, ll)
    npar = np.array([v[0] for v in rows.values()], dtype=float)
    ll = np.array([v[1] for v in rows.values()])
    lrt = np.r_[np.nan, 2 * (ll[0] - ll[1:])]
    df = np.r_[np.nan, npar[0] - npar[1:]]
    with np.errstate(invalid="ignore"):
        p = np.r_[np.nan, stats.chi2.sf(lrt[1:], np.where(df[1:] > 0, df[1:], np.nan))]
    out = pd.DataFrame({"npar": npar.astype(int), "logLik": ll, "AIC": -2 * ll + 2 * npar, "LRT": lrt, "Df": df,
                        "Pr(>Chisq)": p}, index=list(rows))
    out.attrs["heading"] = "ANOVA-like table for random-effects: Single term deletions"
    return out


def drop1_lrt(m: "FittedModel") -> pd.DataFrame:
    """lme4's ``drop1(m, test = "Chisq")``: each fixed term that can be dropped alone (R's
    ``drop.scope``) removed and the model refitted, all by ML (a REML fit is refitted by ML first); ``npar`` (the
    parameters dropped), ``AIC``, ``LRT``, ``Pr(Chi)``, with the model as ``<none>``."""
    if m.REML:  # lme4 compares the ML fits, as its anova() does
        m = m.refit(REML=False)
    terms = [t for t in fixed_terms(m) if t[1]]
    scope = drop_scope([(t[0], t[2]) for t in terms])
    rows = {"<none>": (np.nan, m.aic, np.nan, np.nan)}
    for label in scope:
        r = m.update(f". ~ . - {label}")
        lrt = 2 * (m.loglik - r.loglik)
        k = m.npar - r.npar
        rows[label] = (k, r.aic, lrt, float(stats.chi2.sf(lrt, k)) if k > 0 else np.nan)
    return pd.DataFrame.from_dict(rows, orient="index", columns=["npar", "AIC", "LRT", "Pr(Chi)"])
