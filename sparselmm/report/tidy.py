"""broom.mixed's tidy tables of a fitted model: :func:`tidy`, :func:`glance`, :func:`augment`.

The three functions give, column for column and row for row, what ``broom.mixed`` 0.2.9 gives
for an lmerTest fit (``lmerModLmerTest``):

* :func:`tidy` — one row per estimate: the fixed effects with lmerTest's t-tests
  (Satterthwaite's df), the random-effect standard deviations and correlations and the residual
  SD (``ran_pars``), the conditional modes with their conditional SDs (``ran_vals``) and the
  per-level coefficients (``ran_coefs``);
* :func:`glance` — one row of fit statistics;
* :func:`augment` — the model frame with the fitted values, residuals, hat values, Cook's
  distances and lme4's response-module columns.

Everything is read from :func:`~sparselmm.stats.inference.coef_table` and the model's accessors
(``varcorr``, ``ranef_table``, ``coef``, ``fitted``); only the hat values are computed here.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np
import pandas as pd
import scipy.linalg as sla
import scipy.sparse as sp
from scipy import stats

from sparselmm import validate
from sparselmm.errors import ArgumentError, DataError, SparseLMMError, SparseLMMWarning
from sparselmm.fitting.fitted import FittedModel
from sparselmm.frame.dask_design import DaskDesign
from sparselmm.frame.modelframe import vector_argument
from sparselmm.frame.rows import model_frame
from sparselmm.spec.vocabulary import variables
from sparselmm.stats.inference import DDF, coef_table
from sparselmm.stats.satterthwaite import aux_state

__all__ = ["tidy", "glance", "augment", "EFFECTS", "HAT_LIMIT"]

#: the kinds of rows of :func:`tidy`, in the order broom.mixed puts them (whatever the order asked)
EFFECTS = ("fixed", "ran_pars", "ran_vals", "ran_coefs")

#: broom.mixed's columns, in its order (``reorder_cols``); a table has those its rows fill
_COLUMNS = ("effect", "group", "level", "term", "estimate", "std.error", "statistic", "df", "p.value",
            "conf.low", "conf.high")
_STRING_COLUMNS = frozenset({"effect", "group", "level", "term"})

#: largest ``n · q`` for which :func:`augment` computes the hat values (``n`` solves with the
#: factor of ``M``, ``q`` entries each); beyond it ``.hat`` and ``.cooksd`` are left out
HAT_LIMIT = 1e8


# ----------------------------------------------------------------------------------------
# tidy


def tidy(
    m: FittedModel, effects: str | Sequence[str] = ("fixed", "ran_pars"), conf_int: bool = False,
    conf_level: float = 0.95, *, ddf: str = "satterthwaite",
) -> pd.DataFrame:
    r"""broom.mixed's ``tidy()`` of the model: one row per estimate.

    Rows come in broom.mixed's order, whatever the order of ``effects``:

    * ``"fixed"``: ``estimate`` :math:`\hat\beta_j`, ``std.error``, ``statistic``
      :math:`t_j = \hat\beta_j / \mathrm{se}_j`, ``df`` (Satterthwaite's, as lmerTest) and
      ``p.value`` :math:`2\,P(T_{df} > |t_j|)` (:func:`~sparselmm.stats.inference.coef_table`);
    * ``"ran_pars"``: per term the lower triangle of its covariance column by column —
      ``sd__a`` (a standard deviation), ``cor__a.b`` (a correlation) — then ``sd__Observation``,
      the residual SD, in group ``Residual`` (from :meth:`varcorr`);
    * ``"ran_vals"``: the conditional modes (``estimate``) and conditional SDs (``std.error``)
      per group, term and level (from :meth:`ranef_table`);
    * ``"ran_coefs"``: fixed plus random effect per group, term and level (from :meth:`coef`;
      lme4's layout: a term of the random part that is not a fixed effect counts as a fixed
      effect of 0, in every group).

    The table has the columns of ``effect, group, level, term, estimate, std.error, statistic,
    df, p.value, conf.low, conf.high`` that its rows fill (``group`` only with random-effect
    rows, ``level`` only with ``ran_vals`` or ``ran_coefs``, the tests only with fixed rows);
    NaN where broom.mixed gives NA.

    Parameters
    ----------
    m : LinearMixedModel
    effects : str or sequence of str
        Any of ``"fixed"``, ``"ran_pars"``, ``"ran_vals"``, ``"ran_coefs"``.
    conf_int : bool
        Add ``conf.low``, ``conf.high``: for fixed effects
        :math:`\hat\beta_j \pm t_{df,(1+\ell)/2}\,\mathrm{se}_j` (the normal quantile for
        ``ddf="wald"``); for conditional modes :math:`\hat b \pm z_{(1+\ell)/2}\,\mathrm{sd}`;
        NaN for ``ran_pars`` (broom.mixed's default ``conf.method="Wald"`` gives none) and for
        ``ran_coefs`` (with a warning, as broom.mixed).
    conf_level : float
        The level :math:`\ell`, strictly between 0 and 1.
    ddf : {"satterthwaite", "kenward-roger", "wald"}
        The fixed effects' df (broom.mixed's ``ddf.method``); ``"wald"``: z-tests, no ``df`` column.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    ArgumentError
        For an unknown name in ``effects``, no effects, ``conf_int`` not a bool, or
        ``conf_level`` outside (0, 1).
    """
    kinds = _effects(effects)
    conf_int = validate.flag(conf_int, "conf_int")
    level = validate.probability(conf_level, "conf_level")
    ddf = validate.choice(ddf, "ddf", DDF)
    pieces = []
    if "fixed" in kinds:
        pieces.append(_fixed_rows(m, conf_int, level, ddf))
    if "ran_pars" in kinds:
        pieces.append(_ran_pars_rows(m, conf_int))
    if "ran_vals" in kinds:
        pieces.append(_ran_vals_rows(m, conf_int, level))
    if "ran_coefs" in kinds:
        if conf_int:
            warnings.warn("CIs not available for random-effects coefficients: returning NaN",
                          SparseLMMWarning, stacklevel=3)
        pieces.append(_ran_coefs_rows(m, conf_int))
    return _bind_rows(pieces)


def _effects(effects: Any) -> list[str]:
    """The effects asked for, each checked against :data:`EFFECTS`."""
    if isinstance(effects, str):
        effects = [effects]
    try:
        asked = list(effects)
    except TypeError:
        raise ArgumentError(f"effects must be a name or a sequence of names out of {list(EFFECTS)}, "
                            f"got {effects!r}") from None
    if not asked:
        raise ArgumentError(f"effects must name at least one of {list(EFFECTS)}")
    return [validate.choice(e, "effects", EFFECTS, fold=False) for e in asked]


def _bind_rows(pieces: list[dict[str, Any]]) -> pd.DataFrame:
    """dplyr's ``bind_rows`` then broom.mixed's ``reorder_cols``: the pieces one after the other,
    every column any of them has (missing entries NaN), in :data:`_COLUMNS`' order."""
    sizes = [len(p["effect"]) for p in pieces]
    out = {}
    for col in _COLUMNS:
        if not any(col in p for p in pieces):
            continue
        kind = object if col in _STRING_COLUMNS else float
        parts = [np.asarray(p[col], dtype=kind) if col in p else np.full(k, np.nan, dtype=kind)
                 for p, k in zip(pieces, sizes)]
        out[col] = np.concatenate(parts) if parts else np.zeros(0, dtype=kind)
    return pd.DataFrame(out)


def _wald_bounds(est: np.ndarray, se: np.ndarray, q: np.ndarray | float) -> dict[str, np.ndarray]:
    return {"conf.low": est - q * se, "conf.high": est + q * se}


def _fixed_rows(m: FittedModel, conf_int: bool, level: float, ddf: str) -> dict[str, Any]:
    """The fixed effects: lmerTest's ``coef(summary(m, ddf=))`` under broom's names."""
    ct = coef_table(m, ddf=ddf)
    est = ct["Estimate"].to_numpy(dtype=float)
    se = ct["Std. Error"].to_numpy(dtype=float)
    stat = "t value" if "t value" in ct.columns else "z value"
    out: dict[str, Any] = {
        "effect": ["fixed"] * len(ct), "term": [str(t) for t in ct.index], "estimate": est, "std.error": se,
        "statistic": ct[stat].to_numpy(dtype=float),
        "p.value": ct["Pr(>|t|)" if stat == "t value" else "Pr(>|z|)"].to_numpy(dtype=float),
    }
    if "df" in ct.columns:
        out["df"] = ct["df"].to_numpy(dtype=float)
    if conf_int:
        tail = (1.0 + level) / 2.0
        q = stats.t.ppf(tail, out["df"]) if "df" in out else stats.norm.ppf(tail)
        out.update(_wald_bounds(est, se, q))
    return out


def _ran_pars_rows(m: FittedModel, conf_int: bool) -> dict[str, Any]:
    """The SDs and correlations: R's ``as.data.frame(VarCorr(m), order = "lower.tri")``, named
    by broom.mixed's ``ran_pars_name`` (``sd__(Intercept)``, ``cor__(Intercept).Days``)."""
    vc = m.varcorr()
    groups, terms, est = [], [], []
    for grp, rows in vc.groupby("grp", sort=False):  # one group of rows per term (and the residual)
        if grp == "Residual" and rows["var1"].isna().all():
            groups.append("Residual")
            terms.append("sd__Observation")
            est.append(float(rows["sdcor"].iloc[0]))
            continue
        sds = rows[rows["var2"].isna()]
        cors = rows[rows["var2"].notna()]
        for _, r in sds.iterrows():  # column by column: its SD, then its correlations below the diagonal
            groups.append(grp)
            terms.append(f"sd__{r['var1']}")
            est.append(float(r["sdcor"]))
            for _, c in cors[cors["var1"] == r["var1"]].iterrows():
                groups.append(grp)
                terms.append(f"cor__{c['var1']}.{c['var2']}")
                est.append(float(c["sdcor"]))
    out: dict[str, Any] = {"effect": ["ran_pars"] * len(est), "group": groups, "term": terms,
                           "estimate": np.asarray(est, dtype=float)}
    if conf_int:  # confint(method = "Wald") has no interval for these
        out["conf.low"] = out["conf.high"] = np.full(len(est), np.nan)
    return out


def _ran_vals_rows(m: FittedModel, conf_int: bool, level: float) -> dict[str, Any]:
    """The conditional modes: R's ``as.data.frame(ranef(m, condVar = TRUE))`` (grouping factor by
    grouping factor, in lme4's order; then term, then level)."""
    rt = m.ranef_table()
    first = {g: i for i, g in enumerate(dict.fromkeys(rt["grpvar"]))}
    rt = rt.iloc[np.argsort(rt["grpvar"].map(first).to_numpy(), kind="stable")]
    est = rt["condval"].to_numpy(dtype=float)
    sd = rt["condsd"].to_numpy(dtype=float)
    out: dict[str, Any] = {
        "effect": ["ran_vals"] * len(rt), "group": [str(g) for g in rt["grpvar"]],
        "level": [str(v) for v in rt["grp"]], "term": [str(t) for t in rt["term"]],
        "estimate": est, "std.error": sd,
    }
    if conf_int:
        out.update(_wald_bounds(est, sd, stats.norm.ppf((1.0 + level) / 2.0)))
    return out


def _ran_coefs_rows(m: FittedModel, conf_int: bool) -> dict[str, Any]:
    """The per-level coefficients: lme4's ``coef(m)`` (random-part columns missing from the fixed
    effects first, as 0 plus the mode), each group's columns one after the other, levels within."""
    coefs = m.coef()
    fixed = [str(c) for c in m.fixef.index]
    extra = list(dict.fromkeys(str(c) for df in coefs.values() for c in df.columns if str(c) not in fixed))
    groups, levels, terms, est = [], [], [], []
    for g, df in coefs.items():
        df = df.rename(columns=str)
        for c in extra + fixed:
            vals = df[c].to_numpy(dtype=float) if c in df.columns else np.zeros(len(df))
            groups += [str(g)] * len(df)
            levels += [str(v) for v in df.index]
            terms += [c] * len(df)
            est.append(vals)
    out: dict[str, Any] = {"effect": ["ran_coefs"] * len(terms), "group": groups, "level": levels, "term": terms,
                           "estimate": np.concatenate(est) if est else np.zeros(0)}
    if conf_int:
        out["conf.low"] = out["conf.high"] = np.full(len(terms), np.nan)
    return out


# ----------------------------------------------------------------------------------------
# glance


def glance(m: FittedModel) -> pd.DataFrame:
    r"""broom.mixed's ``glance()``: one row of fit statistics.

    Columns ``nobs, sigma, logLik, AIC, BIC, deviance, df.residual``; for a REML fit
    ``REMLcrit`` (:math:`-2\,\ell_R`, the REML criterion) takes the place of ``deviance``, as
    broom.mixed renames lme4's ``deviance()`` of a REML fit.  ``logLik`` is the REML
    log-likelihood of a REML fit; ``AIC`` :math:`= -2\ell + 2k`, ``BIC``
    :math:`= -2\ell + k\log n` (:math:`k` = number of parameters); ``df.residual``
    :math:`= n - k`.

    Parameters
    ----------
    m : LinearMixedModel

    Returns
    -------
    pandas.DataFrame
        One row.
    """
    row = {"nobs": int(m.nobs), "sigma": float(m.sigma), "logLik": float(m.loglik), "AIC": float(m.aic),
           "BIC": float(m.bic), ("REMLcrit" if m.REML else "deviance"): float(m.deviance),
           "df.residual": int(m.df_resid)}
    return pd.DataFrame([row])


# ----------------------------------------------------------------------------------------
# augment


def augment(m: FittedModel, data: pd.DataFrame | None = None) -> pd.DataFrame:
    r"""broom.mixed's ``augment()``: the data with the fit's per-observation quantities.

    The columns of ``data`` (default: the model frame — the response as the formula writes it,
    then each column of the data the formula uses, in order of first appearance, and
    ``(weights)``, ``(offset)`` when those arguments were given), then

    * ``.fitted`` :math:`= X\hat\beta + Z\hat b` (+ offset), ``.resid`` :math:`= y - \hat y`;
    * ``.hat``: the diagonal of the hat matrix, the map :math:`W^{1/2}y \mapsto W^{1/2}\hat y`
      (lme4's ``hatvalues``): with :math:`K = W^{1/2}Z\Lambda`, :math:`M = K^\top K + I`,
      :math:`E = (I - KM^{-1}K^\top)\,W^{1/2}X` and :math:`C = X^\top W^{1/2} E`,

      .. math:: h_i = k_i^\top M^{-1} k_i + e_i^\top C^{-1} e_i;

    * ``.cooksd`` (lme4's ``cooks.distance``) :math:`= \frac{r_i^2\,h_i}{(1-h_i)^2\,\sigma^2 p}`,
      :math:`r_i = \sqrt{w_i}(y_i - \hat y_i)`, :math:`p` = number of fixed effects (NaN where
      :math:`h_i = 1`);
    * ``.fixed`` :math:`= X\hat\beta` (+ offset), ``.mu`` :math:`= \hat y`, ``.offset`` (0 when
      there is none), ``.sqrtXwt`` and ``.sqrtrwt`` :math:`= \sqrt{w}`, ``.weights`` :math:`w`
      (1 when there are none), ``.wtres`` :math:`= \sqrt{w}(y - \hat y)`: lme4's response module.

    The hat values take one solve with the factor of :math:`M` per observation; when
    ``n · q`` exceeds :data:`HAT_LIMIT`, ``.hat`` and ``.cooksd`` are left out with a warning.

    Differences from R's model frame: a transformed predictor (``log(x)``, ``factor(x)``,
    ``offset(x)``) appears as its variable ``x``, not as R's evaluated column; a model made from
    a design by hand (no call) has only the response (and weights, offset) for a model frame.

    Parameters
    ----------
    m : LinearMixedModel
    data : pandas.DataFrame, optional
        Columns to put first: the fit's rows are taken by index label (the data of the fit,
        with rows the fit dropped for missing values, or just the rows used).

    Returns
    -------
    pandas.DataFrame
        One row per observation used, with a fresh ``RangeIndex`` (as broom's tibble).

    Raises
    ------
    DataError
        For ``data`` that is not a DataFrame, or lacks rows of the fit (a wrong length, another index).
    SparseLMMError
        For a model fitted from a Dask DataFrame.
    """
    d = m.design
    if isinstance(d, DaskDesign):
        raise SparseLMMError("augment() needs an in-memory fit; this model was fitted from a Dask DataFrame")
    front = _model_frame(m) if data is None else _given_rows(m, data)
    n = d.n
    y = np.asarray(d.y, dtype=float)
    w = np.ones(n) if d.weights is None else np.asarray(d.weights, dtype=float)
    off = np.zeros(n) if d.offset is None else np.asarray(d.offset, dtype=float)
    mu = m.fitted().to_numpy(dtype=float)
    sw = np.sqrt(w)
    wtres = sw * (y - mu)
    dots: dict[str, np.ndarray] = {".fitted": mu, ".resid": y - mu}
    hat = _hat_values(m)
    if hat is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            cook = (wtres / (1.0 - hat)) ** 2 * hat / (m.sigma**2 * d.p)
        dots[".hat"] = hat
        dots[".cooksd"] = np.where(np.isfinite(cook), cook, np.nan)
    dots.update({".fixed": np.asarray(d.X @ m.fixef.to_numpy(), dtype=float) + off, ".mu": mu, ".offset": off,
                 ".sqrtXwt": sw, ".sqrtrwt": sw, ".weights": w, ".wtres": wtres})
    out = front.reset_index(drop=True)
    for k, v in dots.items():
        out[k] = v
    return out


def _given_rows(m: FittedModel, data: Any) -> pd.DataFrame:
    """The rows of ``data`` the fit used, by index label."""
    d = m.design
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    rows = d.row_index
    if data.index.is_unique and rows.isin(data.index).all():
        return data.loc[rows]
    raise DataError(
        f"data has {len(data)} rows, and its index does not hold the labels of the {d.n} rows the model "
        "was fitted to: pass the data of the fit (or its rows the fit used), with their index"
    )


def _model_frame(m: FittedModel) -> pd.DataFrame:
    """R's ``model.frame(m)``, as far as plain columns go (see :func:`augment`)."""
    d = m.design
    pf = d.formula
    call = m.call
    out = pd.DataFrame({pf.response: np.asarray(d.y, dtype=float)}, index=d.row_index)
    data = None if call is None else call.data
    if isinstance(data, pd.DataFrame):
        frame, _ = model_frame(d, data)
        for c in _formula_columns(m):
            if c in frame.columns and c not in out.columns:
                out[c] = frame[c]
    if d.weights is not None:
        out["(weights)"] = np.asarray(d.weights, dtype=float)
    if call is not None and call.offset is not None and isinstance(data, pd.DataFrame):
        arg = vector_argument(call.offset, data, "offset")
        out["(offset)"] = pd.Series(arg, index=data.index).loc[d.row_index].to_numpy(dtype=float)
    return out


def _formula_columns(m: FittedModel) -> list[str]:
    """The names the formula's right-hand side uses, in order of first appearance (R's order of
    the model frame's variables, lme4's ``||`` expanded first): the fixed terms' variables where
    they are written; at each bar term, per term of its expansion, the columns then the grouping
    factors (in the order the bar writes them: ``a/b`` gives a, b)."""
    pf = m.design.formula
    placed: list[tuple[tuple[int, int, int, int], str]] = []
    for f in pf.fragments:
        if f.role in ("fixed", "offset"):
            placed += [((f.start, 0, 0, i), v) for i, v in enumerate(variables(f.text))]
    for j, b in enumerate(pf.bars):
        at = pf.formula.find(b.text)
        at = len(pf.formula) if at < 0 else at
        placed += [((at, j, 0, i), v) for i, v in enumerate(variables(b.lhs))]
        placed += [((at, j, 1, max(b.text.find(g), 0)), g) for g in b.factors]
    return list(dict.fromkeys(v for _, v in sorted(placed, key=lambda t: t[0])))


def _hat_values(m: FittedModel) -> np.ndarray | None:
    """The diagonal of the hat matrix (see :func:`augment`), or None (with a warning) beyond
    :data:`HAT_LIMIT`.  ``M`` is factored by the model's second PLS state at θ̂ (the same ``M``
    in the engine's units); X is taken in the engine's units (its column span is X's, and the
    hat matrix depends on nothing else), where ``C`` is well conditioned."""
    d = m.design
    n, q = d.n, d.q
    if n * q > HAT_LIMIT:
        warnings.warn(
            f"augment(): .hat and .cooksd left out: the hat values take {n} solves with a factor of "
            f"size {q} (n·q = {n * q:.3g} > HAT_LIMIT = {HAT_LIMIT:.3g})", SparseLMMWarning, stacklevel=4)
        return None
    st = aux_state(m)
    if not st.update(d.internal_theta(m.theta)):  # pragma: no cover - it factored at the fit
        raise SparseLMMError("the PLS problem cannot be solved at the estimate")
    sw = np.ones(n) if d.weights is None else np.sqrt(np.asarray(d.weights, dtype=float))
    Kt = sp.csr_matrix(d.Lambda(m.theta).T @ d.Zt @ sp.diags(sw))  # Λᵀ Zᵀ W^½, q × n
    Kt_cols = Kt.tocsc()
    h = np.empty(n)
    chunk = max(1, int(4e6 // max(q, 1)))
    for lo in range(0, n, chunk):
        R = Kt_cols[:, lo:lo + chunk].toarray()
        h[lo:lo + chunk] = np.einsum("ij,ij->j", R, st.solve_M(R))
    if d.p:
        Xw = d.cond.X(d.X) * sw[:, None]
        E = Xw - np.asarray(Kt.T @ st.solve_M(np.asarray(Kt @ Xw)))
        C = Xw.T @ E
        Lc = sla.cholesky((C + C.T) / 2.0, lower=True)
        F = sla.solve_triangular(Lc, E.T, lower=True)
        h += np.einsum("ij,ij->j", F, F)
    return h
