"""Inference for fitted models: t-tests, likelihood-ratio tests, intervals, prediction.

* :func:`coef_table` — Wald t-tests with Satterthwaite denominator df as
  lmerTest computes them (numerical Hessian of the deviance in
  ``(θ, σ)`` and Jacobian of ``Var(β̂)``), Kenward–Roger, or z-tests.
* :func:`anova` — lme4's likelihood-ratio table, refitting REML fits by ML.
* :func:`confint` — Wald, profile-likelihood (lme4's ``profile``; by ML as
  lme4 does) and parametric-bootstrap intervals.
* :func:`predict`, :func:`simulate`.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp
import pandas as pd
from scipy import stats

from sparselmm import validate
from sparselmm.errors import ArgumentError, DataError, ModelSpecError, SparseLMMError, SparseLMMWarning
from sparselmm.fitting.fitted import FittedModel
from sparselmm.frame.dask_design import DaskDesign
from sparselmm.frame.rows import group_columns, read_as_the_fit
from sparselmm.stats.ftests import anova_table
from sparselmm.stats.kenward_roger import kenward_roger_se_df
from sparselmm.stats.profile import profile_intervals, varpar_names
from sparselmm.stats.satterthwaite import aux_state, satterthwaite, satterthwaite_df
from sparselmm.stats.simulate import simulate
from sparselmm.spec.terms import level_codes
from sparselmm.spec.vocabulary import variables
from sparselmm.stats.bootstrap import bootstrap

__all__ = [
    "coef_table",
    "satterthwaite",
    "anova",
    "confint",
    "predict",
    "simulate",
    "varpar_names",
    "kept_terms",
    "parameter_rows",
]


#: the denominator-df methods of coef_table and summary, by the names users write
DDF = {
    "satterthwaite": "satterthwaite", "satt": "satterthwaite",
    "kenward-roger": "kenward-roger", "kr": "kenward-roger", "kenward-rogers": "kenward-roger",
    "wald": "wald", "z": "wald", "normal": "wald",
}















def coef_table(m: "FittedModel", ddf: str = "satterthwaite") -> pd.DataFrame:
    """Fixed-effects table with tests.

    Parameters
    ----------
    m : LinearMixedModel
    ddf : {"satterthwaite", "kenward-roger", "wald"}
        Denominator degrees of freedom: lmerTest's Satterthwaite (default),
        Kenward–Roger (adjusted standard errors too), or none (z-tests).

    Returns
    -------
    pandas.DataFrame
        ``Estimate, Std. Error, df, t value, Pr(>|t|)`` (or ``z value, Pr(>|z|)`` for ``"wald"``).
    """
    est = m.fixef.to_numpy()
    key = validate.choice(ddf, "ddf", DDF)
    if key == "wald":
        se = m.se.to_numpy()
        z = est / se
        return pd.DataFrame(
            {"Estimate": est, "Std. Error": se, "z value": z, "Pr(>|z|)": 2 * stats.norm.sf(np.abs(z))},
            index=m.fixef.index,
        )
    if key == "satterthwaite":
        se = m.se.to_numpy()
        p = len(est)
        df = np.array([satterthwaite_df(m, np.eye(p)[j]) for j in range(p)])
    else:  # "kenward-roger"
        se, df = kenward_roger_se_df(m)
    t = est / se
    return pd.DataFrame(
        {"Estimate": est, "Std. Error": se, "df": df, "t value": t, "Pr(>|t|)": 2 * stats.t.sf(np.abs(t), df)},
        index=m.fixef.index,
    )


# ----------------------------------------------------------------------------------------
# likelihood-ratio tests


def anova(*models: "FittedModel", names: Sequence[str] | None = None, refit: bool = True, type: Any = 3,  # noqa: A002
          ddf: str = "Satterthwaite") -> pd.DataFrame:
    """lmerTest's F-table of one model, or likelihood-ratio tests between nested models.

    ``anova(m)``: lmerTest's ``anova(m, type=, ddf=)`` (see
    :func:`sparselmm.stats.ftests.anova_table`): an F test of each fixed term, type III with
    Satterthwaite's df by default.  ``anova(m0, m1, ...)``: lme4's likelihood-ratio table; REML
    fits are refitted by ML first (with a warning saying so), as lme4 does; the models are
    ordered by number of parameters and each is tested against the one before it.

    Parameters
    ----------
    *models : LinearMixedModel
        One model, or two or more fitted to the same observations.
    names : sequence of str, optional
        Row labels (default ``model1``, ``model2``, ... in the order given).
    refit : bool
        Refit REML fits by ML (lme4's default); if false, their REML criteria are compared.
    type : {3, 2, 1} or {"III", "II", "I"}
        One model: the type of the hypotheses.
    ddf : {"Satterthwaite", "Kenward-Roger", "lme4"}
        One model: the denominator df (``"lme4"``: lme4's table, without df).

    Returns
    -------
    pandas.DataFrame
        One model: ``Sum Sq, Mean Sq, NumDF, DenDF, F value, Pr(>F)`` per term.  Several:
        ``npar, AIC, BIC, logLik, deviance, Chisq, Df, Pr(>Chisq)``; ``attrs["refitted_ML"]``
        tells whether a refit happened.
    """
    glmm = [getattr(mi, "family", None) is not None and hasattr(mi, "nAGQ") for mi in models]  # glmer fits
    for i, (mi, g) in enumerate(zip(models, glmm), 1):
        if not g:
            validate.instance(mi, f"anova's argument {i}", FittedModel, "a fitted LinearMixedModel")
    if any(glmm) and not all(glmm):
        raise ArgumentError("anova compares lmer fits with lmer fits and glmer fits with glmer fits, not the two")
    refit = validate.flag(refit, "refit")
    if len(models) == 1:
        if glmm[0]:
            raise ArgumentError("anova of one glmer fit (an F-table) is not available; compare two nested fits")
        return anova_table(models[0], type=type, ddf=ddf)
    if len(models) < 2:
        raise ArgumentError("anova needs a model (its F-table) or several models to compare")
    if names is not None and (isinstance(names, str) or not all(isinstance(v, str) for v in names)):
        raise ArgumentError(f"names must be a sequence of strings, one per model, got {names!r}")
    names = list(names) if names is not None else [f"model{i + 1}" for i in range(len(models))]
    if len(names) != len(models):
        raise ArgumentError(f"{len(names)} names for {len(models)} models")
    ns = {m.nobs for m in models}
    if len(ns) > 1:
        raise ModelSpecError(
            f"models were not all fitted to the same number of observations ({sorted(ns)}); "
            "likelihood-ratio tests need the same data"
        )
    for i, mi in enumerate(models[1:], 2):
        _check_same_data(models[0], mi, names[0], names[i - 1])
    refitted = False
    if refit and any(getattr(m, "REML", False) for m in models):
        warnings.warn("refitting model(s) with ML (instead of REML)", SparseLMMWarning, stacklevel=2)
        models = tuple(m.refit(REML=False) if m.REML else m for m in models)
        refitted = True
    order = sorted(range(len(models)), key=lambda i: models[i].npar)
    rows = []
    prev = None
    for i in order:
        m = models[i]
        dev = -2.0 * m.loglik  # lme4's anova column: for glmer fits too (their deviance() is another number)
        row = {"npar": m.npar, "AIC": m.aic, "BIC": m.bic, "logLik": m.loglik, "deviance": dev}
        if prev is None:
            row.update({"Chisq": np.nan, "Df": np.nan, "Pr(>Chisq)": np.nan})
        else:
            chisq = max(-2.0 * prev.loglik - dev, 0.0)
            ddf = m.npar - prev.npar
            row.update(
                {"Chisq": chisq, "Df": ddf, "Pr(>Chisq)": stats.chi2.sf(chisq, ddf) if ddf > 0 else np.nan}
            )
        rows.append(row)
        prev = m
    out = pd.DataFrame(rows, index=[names[i] for i in order])
    out["Df"] = out["Df"].astype("Int64")
    out.attrs["refitted_ML"] = refitted
    return out


def _check_same_data(a: "FittedModel", b: "FittedModel", na: str, nb: str) -> None:
    """Refuse to compare models that were not fitted to the same response and data.

    In memory: the same rows (by index label), the same response values, the same prior
    weights, and the same values of every grouping factor and fixed-effect column the two
    share by name.  From Dask: the same data (the collection's name), response and weights.
    """
    da, db = a.design, b.design
    dask_a, dask_b = isinstance(da, DaskDesign), isinstance(db, DaskDesign)
    what = f"{na} and {nb}"
    if dask_a or dask_b:
        if not (dask_a and dask_b):
            raise ModelSpecError(f"{what}: one was fitted from a Dask DataFrame, the other in memory; fit both the same way")
        same = (da.data_name is not None and da.data_name == db.data_name
                and da.formula.response.replace(" ", "") == db.formula.response.replace(" ", "")
                and da.builder.weights == db.builder.weights)
        if not same:
            raise ModelSpecError(f"{what} were not fitted to the same data, response and weights")
        return
    ia, ib = da.row_index, db.row_index
    if ia.equals(ib):
        pos = np.arange(len(ib))
    else:
        pos = ib.get_indexer(ia) if not (ia.has_duplicates or ib.has_duplicates) else np.full(len(ia), -1)
        if (pos < 0).any():
            raise ModelSpecError(f"{what} were not fitted to the same rows of data (their row labels differ)")
    if not np.array_equal(da.y, db.y[pos]):
        raise ModelSpecError(
            f"{what} have different responses ({da.formula.response!r} and {db.formula.response!r}, or the same "
            "column with other values); likelihood-ratio tests compare models of one response"
        )
    wa, wb = da.weights, db.weights
    if (wa is None) != (wb is None) or (wa is not None and not np.array_equal(wa, wb[pos])):
        raise ModelSpecError(f"{what} have different prior weights; their likelihoods cannot be compared")
    ga = {t.group: t for t in da.terms}
    for t in db.terms:
        s = ga.get(t.group)
        if s is not None and not np.array_equal(np.asarray(s.levels)[s.codes], np.asarray(t.levels)[t.codes][pos]):
            raise ModelSpecError(f"{what} have different values of grouping factor {t.group!r}")
    xb = {nm: j for j, nm in enumerate(db.X_names)}
    for j, nm in enumerate(da.X_names):
        k = xb.get(nm)
        if k is not None and not np.array_equal(da.X[:, j], db.X[pos, k]):
            raise ModelSpecError(f"{what} have different values of the fixed-effect column {nm!r}")


# ----------------------------------------------------------------------------------------
# intervals






















def confint(
    m: "FittedModel",
    method: str = "profile",
    level: float = 0.95,
    *,
    parm: Any = None,
    nsim: int = 500,
    seed: int | None = None,
    n_jobs: int = 1,
    progress: bool = False,
) -> pd.DataFrame:
    """Confidence intervals for the variance parameters and fixed effects (lme4's ``confint``).

    Parameters
    ----------
    m : LinearMixedModel or GeneralizedLinearMixedModel
    method : {"profile", "wald", "boot"}
        Profile likelihood (by ML, as lme4's ``profile`` refits REML fits; a glmer fit's own
        deviance, :func:`sparselmm.stats.glmm_profile.glmm_profile_intervals`),
        Wald (fixed effects only; variance rows are NaN), or parametric
        bootstrap percentile intervals (:func:`sparselmm.stats.bootstrap.bootstrap`).
    level : float
        Confidence level.
    parm : str, int or sequence of them, optional
        The rows to compute (lme4's ``parm``), by name (``".sig01"``, ``".sigma"``, a fixed
        effect's name; ``"theta_"`` for every variance parameter, ``"beta_"`` for every fixed
        effect, as lme4) or by position in the full list (0-based, as Python counts: lme4's
        ``parm = 1`` is ``parm=0``), in the order given.  Default: every row.  A profile or
        bootstrap computes the rows asked for only where it can (the profile profiles them
        alone; the bootstrap refits the whole model either way).
    nsim, seed : int
        Bootstrap replicates and seed.
    n_jobs : int
        Worker processes for the bootstrap's refits (the same intervals whatever ``n_jobs``).
    progress : bool
        Show the progress of the profile's parameters or the bootstrap's refits.

    Returns
    -------
    pandas.DataFrame
        Rows ``.sig01, ..., .sigma`` then the fixed effects (or those of ``parm``); columns
        ``"2.5 %"``, ``"97.5 %"``.

    Raises
    ------
    ArgumentError
        For a ``parm`` that names no row or is out of range, and bad values of the others.
    """
    method = validate.choice(method, "method", {"profile": "profile", "wald": "wald", "boot": "boot", "bootstrap": "boot"})
    level = validate.probability(level, "level")
    nsim = validate.count(nsim, "nsim")
    seed = validate.seed(seed)
    n_jobs = validate.n_jobs(n_jobs)
    progress = validate.flag(progress, "progress")
    rows = parameter_rows(m, parm)
    pct = [f"{100 * (1 - level) / 2:.1f} %", f"{100 * (1 + level) / 2:.1f} %"]
    if method == "wald":
        z = stats.norm.ppf((1 + level) / 2)
        fe, se = m.fixef, m.se
        vp = pd.DataFrame(np.nan, index=varpar_names(m), columns=pct)
        fx = pd.DataFrame({pct[0]: fe - z * se, pct[1]: fe + z * se})
        return pd.concat([vp, fx]).loc[rows]
    if method == "profile":
        if hasattr(m, "family"):  # a glmer fit: its own deviance over (θ, β)
            from sparselmm.stats.glmm_profile import glmm_profile_intervals

            return glmm_profile_intervals(m, level, rows, progress).loc[rows]
        return profile_intervals(m, level, rows, progress).loc[rows]
    if method == "boot":
        arr = bootstrap(m, nsim=nsim, seed=seed, n_jobs=n_jobs, progress=progress)
        lo = np.quantile(arr.to_numpy(), (1 - level) / 2, axis=0)
        hi = np.quantile(arr.to_numpy(), (1 + level) / 2, axis=0)
        return pd.DataFrame({pct[0]: lo, pct[1]: hi}, index=arr.columns).loc[rows]
    raise SparseLMMError(f"internal error: confint method {method!r}")  # pragma: no cover - checked above


def parameter_rows(m: "FittedModel", parm: Any) -> list[str]:
    """The rows of :func:`confint` that ``parm`` asks for (lme4's ``parm``: names, ``"theta_"``,
    ``"beta_"``, or 0-based positions), in the order given, each once.

    Raises
    ------
    ArgumentError
        For a name that is no row, a position out of range, or a value of another type.
    """
    vp, fx = varpar_names(m), list(m.fixef.index)
    every = vp + fx
    if parm is None:
        return every
    items = [parm] if isinstance(parm, (str, int, np.integer)) else parm
    try:
        items = list(items)
    except TypeError:
        raise ArgumentError(f"parm must be a name, a position or a list of them, got {parm!r}") from None
    out: list[str] = []
    for it in items:
        if isinstance(it, str):
            if it == "theta_":
                out += vp
            elif it == "beta_":
                out += fx
            elif it in every:
                out.append(it)
            else:
                raise ArgumentError(f"parm {it!r} is not a parameter of the model; they are {', '.join(every)} "
                                    "(or 'theta_', 'beta_')")
        elif isinstance(it, (int, np.integer)) and not isinstance(it, (bool, np.bool_)):
            if not 0 <= int(it) < len(every):
                raise ArgumentError(f"parm position {int(it)} is out of range: the model has {len(every)} parameters, "
                                    f"positions 0 to {len(every) - 1} ({', '.join(every)})")
            out.append(every[int(it)])
        else:
            raise ArgumentError(f"parm must hold names or positions (integers), got {it!r}")
    if not out:
        raise ArgumentError("parm selects no parameter")
    return list(dict.fromkeys(out))


# ----------------------------------------------------------------------------------------
# prediction and simulation


def no_random_effects(re_form: Any) -> bool:
    """Whether ``re_form`` asks for predictions without the random effects (lme4's ``re.form``:
    ``None``/``"all"`` keeps them, ``"NA"``/``"~0"``/``NA``/``False`` leaves them out).

    Raises
    ------
    ArgumentError
        For a value that is none of those and not a formula of terms (:func:`kept_terms`).
    """
    return _re_form_choice(re_form) == "none"


_RE_FORM_HELP = ("re_form must be None/'all' (every random effect), 'NA'/'~0' (none) or a formula of the "
                 "model's random-effect terms to keep, such as '~(1 | Subject)'")


def _re_form_choice(re_form: Any) -> str:
    """``"all"``, ``"none"`` or ``"formula"`` for a ``re_form`` argument."""
    if re_form is None or re_form is True:
        return "all"
    if isinstance(re_form, str):
        s = re_form.replace(" ", "").lower()
        if s in ("all", ""):
            return "all"
        if s in ("na", "~0", "0", "none", "~-1"):
            return "none"
        if s.startswith("~") and "|" in s:
            return "formula"
        raise ArgumentError(f"{_RE_FORM_HELP}, got {re_form!r}")
    if re_form is False or (isinstance(re_form, float) and np.isnan(re_form)):
        return "none"
    raise ArgumentError(f"{_RE_FORM_HELP}, got {re_form!r}")


def _bar_key(bar: Any) -> tuple[frozenset[str], tuple[str, ...], str]:
    """A random-effect term up to how its columns are written: the set of its ``+``-separated
    pieces (an implicit intercept made explicit), its grouping factors and structure."""
    pieces = {p for p in bar.lhs.replace(" ", "").split("+") if p}
    if not pieces & {"0", "-1"}:
        pieces.add("1")
    return frozenset(pieces - {"-1"} | ({"0"} if "-1" in pieces else set())), tuple(bar.factors), bar.structure


def kept_terms(m: "FittedModel", re_form: Any) -> list[bool]:
    """For each random-effect term of the model, whether predictions with ``re_form`` include it
    (lme4's ``re.form``: ``None``/``"all"`` every term, ``"NA"``/``"~0"`` none, a formula such as
    ``"~(1 | Subject)"`` the terms it names, written as in the model formula).

    Raises
    ------
    ArgumentError
        For a formula naming a term the model does not have, or a value of another kind.
    """
    from sparselmm.spec.formula import parse_formula

    choice = _re_form_choice(re_form)
    terms = m.design.terms
    if choice != "formula":
        return [choice == "all"] * len(terms)
    try:
        bars = parse_formula("y " + re_form.strip()).bars
    except SparseLMMError as e:
        raise ArgumentError(f"re_form {re_form!r} is not a formula of random-effect terms: {e}") from None
    have = {_bar_key(t.bar): i for i, t in enumerate(terms)}
    keep = [False] * len(terms)
    for bar in bars:
        i = have.get(_bar_key(bar))
        if i is None:
            present = ", ".join(dict.fromkeys(t.bar.text for t in terms))
            raise ArgumentError(f"re_form names {bar.text!r}, which is not a random-effect term of the model "
                                f"(its terms: {present})")
        keep[i] = True
    return keep


def predict(
    m: "FittedModel",
    newdata: pd.DataFrame | None = None,
    re_form: Any = None,
    allow_new_levels: bool = False,
    offset: Any = None,
    se_fit: bool = False,
) -> pd.Series | pd.DataFrame:
    """Predictions ``Xβ̂ (+ Zb̂) (+ offset)`` for new data (lme4's ``predict.merMod``).

    Factor levels and grouping levels of ``newdata`` are matched to the fit's by value,
    whatever the dtype (a float, boolean or datetime grouping column finds its levels).

    Parameters
    ----------
    m : LinearMixedModel
    newdata : pandas.DataFrame, optional
        Default: the fitted values of the data used.
    re_form : None, "all", "NA", "~0" or a formula
        ``None``/``"all"`` include every random effect (lme4's ``re.form=NULL``);
        ``"NA"``/``"~0"`` give population-level predictions (``re.form=NA``); a formula of some
        of the model's terms (``"~(1 | Subject)"``, written as in the model) keeps those alone.
    allow_new_levels : bool
        Levels not seen in the fit (and missing grouping values) contribute 0 (the
        population value) instead of raising, as lme4's ``allow.new.levels``.
    offset : array-like or str, optional
        The offset of ``newdata``'s rows (an array or Series aligned on its index, or a
        column name).  Default: a fit whose offset was a column reads that column of
        ``newdata``; a fit whose offset was an array needs this argument.
    se_fit : bool
        Also the standard error of each prediction: for population-level predictions that of
        ``xᵀβ̂``, ``√(xᵀ Var(β̂) x)``; where random effects are kept, that of the prediction error
        of ``xᵀβ̂ + zᵀb̂`` for ``xᵀβ + zᵀb``, from the mixed-model equations
        (``σ̂² wᵀK⁻¹w`` with ``w = [x; Λᵀz]`` and ``K`` the PLS system in ``(β, u)``: the
        conditional variance of the random effects and its covariance with β̂ included; θ̂ taken
        as known, as lme4's conditional variances).  A new level contributes no random effect
        and no variance of its own.

    Returns
    -------
    pandas.Series or pandas.DataFrame
        The predictions, named ``"predicted"``; with ``se_fit``, a DataFrame with columns
        ``fit`` and ``se_fit``.
    """
    from sparselmm.spec.terms import level_labels

    d = m.design
    keep = kept_terms(m, re_form)
    allow_new_levels = validate.flag(allow_new_levels, "allow_new_levels")
    se_fit = validate.flag(se_fit, "se_fit")
    if newdata is None:
        if offset is not None:
            raise ArgumentError("offset= goes with newdata; the data of the fit use the fit's own offset")
        Xn = d.X
        eta = Xn @ m.fixef.to_numpy()
        if d.offset is not None:
            eta = eta + d.offset
        Zn = _kept_columns(d, keep, d.Zt.T.tocsr())
        if any(keep):
            eta = eta + Zn @ m.b
        index = d.row_index
    else:
        if not isinstance(newdata, pd.DataFrame):
            raise DataError(f"newdata must be a pandas DataFrame, got {type(newdata).__name__}")
        raw = newdata  # the columns as given: an offset column is read from them, as the fit read its own
        if any(not isinstance(c, str) for c in raw.columns):  # non-string labels by their str(), as design() reads them
            raw = raw.set_axis([str(c) for c in raw.columns], axis=1)
        nd = _coded_newdata(d, raw)
        Xn = _new_matrix(d.fixed_spec, nd, "the fixed-effects matrix")[:, d.fixed_keep]
        eta = Xn @ m.fixef.to_numpy()
        off = _newdata_offset(d, nd, raw, offset)
        if off is not None:
            eta = eta + off
        rows_i, cols_i, vals = [], [], []
        for t, lo, kept in zip(d.terms, d.Gp[:-1], keep):
            if not kept:
                continue
            missing = [f for f in t.bar.factors if f not in nd.columns]
            if missing:
                raise DataError(f"newdata lacks grouping column(s) {missing} of term {t.bar.text!r}")
            codes = [level_codes(nd[f], cats, f) for f, cats in zip(t.bar.factors, t.categories)]
            if len(codes) == 1:
                pos = codes[0].copy()
            else:  # an interaction a:b: the fit's label of each row's combination
                names = [level_labels(cats) for cats in t.categories]
                labels = [":".join(nm[c] for nm, c in zip(names, row)) if min(row) >= 0 else None
                          for row in zip(*codes)]
                pos = t.levels.get_indexer(pd.Index(labels, dtype=object))
                pos[np.any(np.array(codes) == -2, axis=0)] = -2
            new = pos < 0
            if new.any() and not allow_new_levels:
                na = pos == -2
                if na.any():
                    rows = list(nd.index[na][:5])
                    raise DataError(
                        f"newdata has missing values in grouping factor {t.group!r} (rows {rows}); use "
                        "allow_new_levels=True to predict them at the population level"
                    )
                bad = sorted({":".join(str(nd[f].iloc[i]) for f in t.bar.factors) for i in np.flatnonzero(new)[:50]})[:5]
                raise DataError(
                    f"new level(s) {bad} of grouping factor {t.group!r} not seen in the fit; "
                    "use allow_new_levels=True to predict them at the population level"
                )
            Zt_cols = np.ones((len(nd), 1)) if t.spec is None else _new_matrix(t.spec, nd, f"the columns of term {t.bar.text!r}")
            seen = np.flatnonzero(~new)
            for c in range(t.k):  # the rows of Z_new: column lo + level·k + c of the fit's Z
                rows_i.append(seen)
                cols_i.append(lo + pos[seen] * t.k + c)
                vals.append(Zt_cols[seen, c])
        Zn = sp.csr_matrix((np.concatenate(vals) if vals else np.zeros(0),
                            (np.concatenate(rows_i) if rows_i else np.zeros(0, int),
                             np.concatenate(cols_i) if cols_i else np.zeros(0, int))), shape=(len(nd), d.q))
        if any(keep):
            eta = eta + Zn @ m.b
        index = newdata.index
    fit = pd.Series(eta, index=index, name="predicted")
    if not se_fit:
        return fit
    se = _prediction_se(m, np.asarray(Xn, dtype=float), Zn if any(keep) else None)
    return pd.DataFrame({"fit": fit.to_numpy(), "se_fit": se}, index=index)


def _kept_columns(d: Any, keep: list[bool], Z: "sp.csr_matrix") -> "sp.csr_matrix":
    """``Z`` (rows × q) with the columns of the terms not kept set to zero."""
    if all(keep):
        return Z
    mask = np.zeros(d.q)
    for lo, hi, kept in zip(d.Gp[:-1], d.Gp[1:], keep):
        mask[lo:hi] = float(kept)
    return (Z @ sp.diags(mask)).tocsr()


def _prediction_se(m: "FittedModel", X: np.ndarray, Z: "sp.csr_matrix | None", chunk: int = 2000) -> np.ndarray:
    """The standard errors of the predictions (see :func:`predict`'s ``se_fit``): ``√(xᵀVx)``
    without random effects; with them ``√(σ²wᵤᵀM⁻¹wᵤ + rᵀVr)``, ``wᵤ = Λᵀz``, ``r = x - BᵀM⁻¹wᵤ``,
    ``B = ΛᵀZᵀWX``, ``V = Var(β̂)`` — the block inverse of the PLS system in data units (``M`` is
    the same matrix in the engine's units)."""
    V = m.vcov.to_numpy() if hasattr(m.vcov, "to_numpy") else np.asarray(m.vcov)
    if Z is None:
        return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", X, V, X), 0.0))
    d = m.design
    st = aux_state(m)
    if not st.update(d.internal_theta(m.theta)):  # pragma: no cover - it factored at the fit
        raise SparseLMMError("the PLS problem cannot be solved at the estimate")
    Lam = d.Lambda(m.theta).tocsr()
    WX = d.X if d.weights is None else d.X * d.weights[:, None]
    B = np.asarray(Lam.T @ (d.Zt @ WX))  # ΛᵀZᵀWX, q × p
    out = np.empty(X.shape[0])
    s2 = m.sigma**2
    for a in range(0, X.shape[0], chunk):
        b = min(X.shape[0], a + chunk)
        Wu = np.asarray((Lam.T @ Z[a:b].T).todense())  # q × rows
        Y = st.solve_M(Wu)
        r = X[a:b].T - B.T @ Y  # p × rows
        out[a:b] = s2 * np.einsum("ij,ij->j", Wu, Y) + np.einsum("ij,ik,kj->j", r, V, r)
    return np.sqrt(np.maximum(out, 0.0))


def _coded_newdata(d: Any, raw: pd.DataFrame) -> pd.DataFrame:
    """New data read as the fit read its data, the fixed part's factors coded by the fit's levels
    (matched by value; a level the fit did not see, or a missing one, is a DataError)."""
    nd = read_as_the_fit(d, raw)
    groups = group_columns(d)
    for c, cats in d.factor_categories.items():
        if c in nd.columns and c not in groups:
            codes = level_codes(nd[c], cats, c)
            if (codes == -2).any():
                rows = list(nd.index[codes == -2][:5])
                raise DataError(f"newdata column {c!r} has missing values (rows {rows}); a prediction needs every level")
            if (codes < 0).any():
                bad = sorted({str(v) for v in nd[c][codes < 0]})[:5]
                raise DataError(
                    f"newdata column {c!r} has level(s) {bad} that the fit did not see "
                    f"(levels: {d.factor_levels.get(c, list(map(str, cats)))[:10]})"
                )
            nd[c] = pd.Categorical.from_codes(codes, categories=cats)
    return nd


def fixed_rows(m: "FittedModel", newdata: pd.DataFrame) -> np.ndarray:
    """The fixed-effects rows (columns of β) of new data, built as :func:`predict` builds them."""
    d = m.design
    return _new_matrix(d.fixed_spec, _coded_newdata(d, newdata), "the fixed-effects matrix")[:, d.fixed_keep]


def _new_matrix(spec: Any, nd: pd.DataFrame, what: str) -> np.ndarray:
    """A model matrix of new data from the fit's spec (formulaic's errors as a DataError)."""
    from formulaic.errors import DataMismatchWarning

    try:
        # a level the fit never saw (factor(x) of a new value) is an error, as R's "has new levels"
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("error", DataMismatchWarning)
            return np.asarray(spec.get_model_matrix(nd, na_action="raise").to_numpy(dtype=float))
    except SparseLMMError:
        raise
    except DataMismatchWarning as exc:
        raise DataError(f"cannot build {what} for newdata: it has values the fit did not see ({exc})") from None
    except Exception as exc:
        raise DataError(f"cannot build {what} for newdata: {exc}") from exc


def _newdata_offset(d: Any, nd: pd.DataFrame, raw: pd.DataFrame, offset: Any) -> np.ndarray | None:
    """The offset of new data: the ``offset`` argument (aligned on ``nd``'s index), else the fit's
    offset column read from ``raw`` (a fit with an array offset needs the argument), plus the
    formula's ``offset()`` terms evaluated on ``nd``."""
    from sparselmm.frame.modelframe import formula_offsets, vector_argument

    base = None
    if offset is not None:
        base = vector_argument(offset, raw, "offset")
    elif d.offset_name is not None:
        if d.offset_name not in raw.columns:
            raise DataError(f"newdata lacks the offset column {d.offset_name!r} of the fit; add it or pass offset=")
        base = vector_argument(d.offset_name, raw, "offset")
    elif d.offset_array:
        raise DataError(
            "the model was fitted with an offset given as an array: pass offset= (one value per row of "
            "newdata) to predict for new data"
        )
    pf = d.formula
    missing = [v for t in pf.offsets for v in variables(t) if v not in nd.columns]
    if missing:
        raise DataError(f"newdata lacks column(s) {sorted(set(missing))} of the formula's offset()")
    return formula_offsets(pf, nd, [v for t in pf.offsets for v in variables(t)], base)
