"""glmer against lme4 1.1-31 (issue 22): the deviance at probe points, the optimum, θ, β and SE.

Reference values: ``tests/reference/glmer_reference.json`` (generator
``tests/reference/glmer_reference.R``), 15 models over cbpp, grouseticks, VerbAgg, Contraception,
Arabidopsis and three synthetic sets.  lme4 evaluates its PIRLS to ``tolPwrss = 1e-7`` and takes
log|L|² one scoring step before the modes, so the deviance it reports carries ~1e-6 of that
(cbpp: 5.6e-4 on 184); the generator also records lme4's own deviance function converged
(``tolPwrss = 1e-12`` and log|L|² at the modes: ``value_converged``), which is the exact
Laplace deviance, and the tests compare with that.
"""

from __future__ import annotations

import functools
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sparselmm as slm
from sparselmm.fitting.pirls import agq_deviance

ROOT = Path(__file__).resolve().parent.parent
REF = json.loads((ROOT / "tests" / "reference" / "glmer_reference.json").read_text())
MODELS = REF["models"]
#: every model of the reference
FITTED = list(MODELS)


@functools.lru_cache(maxsize=None)
def _data(name: str) -> pd.DataFrame:
    if name in REF["datasets"]:
        meta = REF["datasets"][name]
        df = pd.read_csv(ROOT / meta["file"])
        for col, info in meta["columns"].items():
            if info["type"] == "factor":
                df[col] = pd.Categorical(df[col].astype(str), categories=info["levels"])
        return df
    meta = REF["synthetic"][name]
    df = pd.read_csv(ROOT / meta["file"])
    for col, levels in meta.get("factor_levels", {}).items():
        df[col] = pd.Categorical(df[col].astype(str), categories=levels)
    return df


def _model_data(key: str) -> pd.DataFrame:
    m = MODELS[key]
    name = m["data"]
    df = _data(name if name in REF["datasets"] else next(k for k, v in REF["synthetic"].items()
                                                             if v["file"] == m["data_file"])).copy()
    if key == "arabidopsis_poisson":  # factor(<integer column>), levels in numeric order
        for c in ("nutrient", "rack", "gen"):
            levels = [str(v) for v in sorted(df[c].unique())]
            df[c] = pd.Categorical(df[c].astype(str), categories=levels)
    if key == "cbpp_binomial_obs_re":
        df["obs"] = pd.Categorical([str(i) for i in range(1, len(df) + 1)], categories=[str(i) for i in range(1, len(df) + 1)])
    return df


@functools.lru_cache(maxsize=None)
def _fit(key: str) -> slm.GeneralizedLinearMixedModel:
    m = MODELS[key]
    df = _model_data(key)
    fam = slm.families.family(m["family"], m["link"])
    kw = {}
    if m["weights"]:
        kw["weights"] = m["weights"]
    if m["offset"]:
        assert m["offset"] == "log(exposure)"
        kw["offset"] = np.log(df["exposure"].to_numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", slm.SparseLMMWarning)
        return slm.glmer(m["formula"], df, family=fam, nAGQ=m["nAGQ"], **kw)


def _ordered(d: dict, names: list[str]) -> np.ndarray:
    return np.array([d[n] for n in names], dtype=float)


@pytest.mark.parametrize("key", FITTED)
def test_deviance_at_the_probes_equals_lme4s(key):
    m = MODELS[key]
    fit = _fit(key)
    st = fit._fit.state
    probes = m["probes"]["stage2"] if m["nAGQ"] >= 1 else m["probes"]["stage1"]
    assert probes
    for p in probes:
        theta = np.asarray(p["theta"], dtype=float)
        if m["nAGQ"] >= 1:
            got = agq_deviance(st, theta, np.asarray(p["beta"], dtype=float), p.get("nAGQ", m["nAGQ"]))[0]
        else:
            r = st.run(theta, fit._fit.beta, update_beta=True)
            got = r.laplace
            np.testing.assert_allclose(r.beta, p["beta_profiled_converged"], rtol=1e-6, atol=1e-8)
        want = p["value_converged"]
        assert got == pytest.approx(want, rel=1e-7), (p["label"], got, want, p["value"])


@pytest.mark.parametrize("key", FITTED)
def test_the_optimum_is_not_worse_than_lme4s(key):
    m = MODELS[key]
    fit = _fit(key)
    best = m["objective_best_converged"]
    assert fit.objective <= best + 1e-6 * abs(best), (fit.objective, best)
    assert fit.loglik == pytest.approx(-fit.objective / 2)


@pytest.mark.parametrize("key", [k for k in FITTED if MODELS[k]["flags"]["tight_clean"]])
def test_estimates_and_standard_errors_match_lme4s_tight_fit(key):
    m = MODELS[key]
    t = m["tight"]
    fit = _fit(key)
    np.testing.assert_allclose(fit.theta, _ordered(t["theta"], m["theta_names"]), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(fit.fixef.to_numpy(), _ordered(t["beta"], m["beta_names"]), rtol=1e-3, atol=1e-4)
    se = t["se_hessian"] if (m["nAGQ"] >= 1 and t["se_hessian"]) else t["se_rx"]
    np.testing.assert_allclose(fit.se.to_numpy(), _ordered(se, m["beta_names"]), rtol=1e-3)
    np.testing.assert_allclose(np.sqrt(np.diag(fit.vcov_matrix(use_hessian=False))),
                               _ordered(t["se_rx"], m["beta_names"]), rtol=1e-3)
    assert list(fit.fixef.index) == m["beta_names"]
    assert fit.nobs == t["nobs"] and fit.df_resid == t["df_residual"]
    if not fit.family.dispersion_free:
        assert fit.sigma == pytest.approx(t["sigma"], rel=1e-3)


def test_anova_between_glmer_fits_is_lme4s_likelihood_ratio_table():
    full = _fit("cbpp_binomial_laplace")
    null = slm.glmer("cbind(incidence, size - incidence) ~ 1 + (1 | herd)", _data("cbpp"))
    tab = slm.anova(null, full)
    assert list(tab.columns) == ["npar", "AIC", "BIC", "logLik", "deviance", "Chisq", "Df", "Pr(>Chisq)"]
    assert tab["npar"].tolist() == [2, 5]
    assert tab["Chisq"].iloc[1] == pytest.approx(2 * (full.loglik - null.loglik))
    with pytest.raises(slm.ArgumentError, match="not the two"):
        slm.anova(full, slm.lmer("Reaction ~ Days + (Days | Subject)", slm.datasets.load("sleepstudy")))


def test_a_factor_response_proportions_and_cbind_give_one_fit():
    cb = _data("cbpp")
    a = _fit("cbpp_binomial_laplace")
    b = _fit("cbpp_binomial_prop_weights")
    assert b.objective == pytest.approx(a.objective, rel=1e-9)
    np.testing.assert_allclose(b.fixef, a.fixef, rtol=1e-5, atol=1e-7)
    # the same data one row per trial: a 0/1 factor response (the first level a failure)
    rows = []
    for _, r in cb.iterrows():
        rows += [(r.herd, r.period, "yes")] * int(r.incidence) + [(r.herd, r.period, "no")] * int(r["size"] - r.incidence)
    long = pd.DataFrame(rows, columns=["herd", "period", "sick"])
    long["sick"] = pd.Categorical(long["sick"], categories=["no", "yes"])
    for c in ("herd", "period"):
        long[c] = pd.Categorical(long[c].astype(str), categories=cb[c].cat.categories)
    c = slm.glmer("sick ~ period + (1 | herd)", long)
    np.testing.assert_allclose(c.fixef, a.fixef, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(c.theta, a.theta, rtol=1e-4)


def test_summary_is_glmers_layout():
    text = _fit("cbpp_binomial_laplace").summary()
    assert text.startswith("Generalized linear mixed model fit by maximum likelihood (Laplace Approximation) ['glmerMod']")
    assert " Family: binomial  ( logit )" in text
    assert "Residual" not in text  # no residual variance for a binomial fit
    for piece in ["AIC", "df.resid", "Scaled residuals:", "Random effects:", "herd   (Intercept)",
                  "Number of obs: 56, groups:  herd, 15", "z value Pr(>|z|)", "Correlation of Fixed Effects:"]:
        assert piece in text, piece


def test_residuals_fitted_and_predictions():
    fit = _fit("cbpp_binomial_laplace")
    t = MODELS["cbpp_binomial_laplace"]["tight"]
    np.testing.assert_allclose(fit.fitted().to_numpy()[:10], t["fitted_head"], rtol=2e-4)
    for kind in ("deviance", "pearson", "response", "working"):
        np.testing.assert_allclose(fit.residuals(kind).to_numpy()[:10], t["residuals_head"][kind], rtol=2e-3, atol=1e-5)
    cb = _data("cbpp")
    np.testing.assert_allclose(fit.predict(cb, type="response").to_numpy(), fit.fitted().to_numpy(), rtol=1e-10)
    pop = fit.predict(cb.iloc[:3], re_form="NA")
    np.testing.assert_allclose(pop.to_numpy(), fit.fixef["(Intercept)"] + np.array([0.0, fit.fixef["period2"],
                                                                                    fit.fixef["period3"]]), rtol=1e-12)


@pytest.mark.parametrize("kw, err, match", [
    (dict(family="poison"), slm.ArgumentError, "unknown family 'poison'"),
    (dict(family=slm.families.binomial(), nAGQ=26), slm.ArgumentError, "nAGQ must be an integer from 0 to 25"),
    (dict(family="poisson", nAGQ=-1), slm.ArgumentError, "nAGQ"),
    (dict(family="Gamma"), slm.FormulaError, "cbind\\(successes, failures\\) is a binomial response"),
])
def test_bad_arguments_are_refused(kw, err, match):
    with pytest.raises(err, match=match):
        slm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", _data("cbpp"), **kw)


def test_quadrature_needs_one_scalar_term():
    with pytest.raises(slm.ArgumentError, match="needs a single random-effect term of one column"):
        slm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd) + (1 | period)", _data("cbpp"), nAGQ=5)


def test_bad_responses_are_refused():
    cb = _data("cbpp").copy()
    with pytest.raises(slm.DataError, match="binomial response 'incidence' must hold values 0 <= y <= 1"):
        slm.glmer("incidence ~ period + (1 | herd)", cb)
    cb["half"] = cb["incidence"] + 0.5
    with pytest.raises(slm.DataError, match="non-integer counts in the poisson response 'half'"):
        slm.glmer("half ~ period + (1 | herd)", cb, family="poisson")
    cb["neg"] = -cb["incidence"]
    with pytest.raises(slm.DataError, match="neg"):
        slm.glmer("neg ~ period + (1 | herd)", cb, family="poisson")
    with pytest.raises(slm.DataError, match="counts must be non-negative integers"):
        slm.glmer("cbind(half, size - incidence) ~ period + (1 | herd)", cb)
    cb["zero"] = cb["incidence"] * 0.0
    with pytest.raises(slm.DataError, match="zero"):
        slm.glmer("zero ~ period + (1 | herd)", cb, family="Gamma")
    with pytest.raises(slm.ArgumentError, match="link 'logit' not available for the poisson family"):
        slm.glmer("incidence ~ period + (1 | herd)", cb, family=slm.families.poisson(link="logit"))


@pytest.mark.parametrize("key", ["cbpp_binomial_laplace", "grouseticks_poisson", "contraception_urban_slope",
                                 "gamma_log_sim"])
def test_conditional_modes_and_sds_match_lme4(key):
    # lme4's as.data.frame(ranef(m, condVar = TRUE)) of its tight fit; rows matched by group, term and level
    m = MODELS[key]
    want = pd.DataFrame(m["tight"]["ranef"])
    got = _fit(key).ranef_table()
    assert list(got.columns) == ["grpvar", "term", "grp", "condval", "condsd"]
    merged = got.merge(want, on=["grpvar", "term", "grp"], suffixes=("", "_r"))
    assert len(merged) == len(want) == len(got)
    scale = float(np.max(np.abs(want["condval"])))
    np.testing.assert_allclose(merged["condval"], merged["condval_r"], rtol=2e-3, atol=2e-3 * scale)
    np.testing.assert_allclose(merged["condsd"], merged["condsd_r"], rtol=2e-3)


def test_wald_intervals_of_the_fixed_effects():
    fit = _fit("cbpp_binomial_laplace")
    ci = fit.confint(method="wald")
    assert list(ci.index) == [".sig01", "(Intercept)", "period2", "period3", "period4"]
    assert np.isnan(ci.iloc[0]).all()
    z = 1.959963984540054
    np.testing.assert_allclose(ci["97.5 %"].iloc[1:], fit.fixef + z * fit.se, rtol=1e-12)


def test_simulate_and_refit():
    fit = _fit("cbpp_binomial_laplace")
    again = fit.refit(fit.problem.y)
    assert again.objective == pytest.approx(fit.objective, rel=1e-10)
    np.testing.assert_allclose(again.fixef, fit.fixef, rtol=1e-5, atol=1e-7)
    sims = fit.simulate(nsim=400, seed=3)
    pd.testing.assert_frame_equal(sims, fit.simulate(nsim=400, seed=3))
    size = _data("cbpp")["size"].to_numpy()
    k = sims.to_numpy() * size[:, None]
    assert np.allclose(k, np.round(k)) and sims.to_numpy().min() >= 0 and sims.to_numpy().max() <= 1
    # the simulated proportions' mean: E g⁻¹(xβ + b), b ~ N(0, θ²), per period (one row per herd and period)
    from scipy import special

    z, w = np.polynomial.hermite_e.hermegauss(40)
    eta = fit.problem.X @ fit.fixef.to_numpy()
    want = (special.expit(eta[:, None] + fit.theta[0] * z[None, :]) * w).sum(axis=1) / w.sum()
    got = (sims.to_numpy() * size[:, None]).sum(axis=1) / (400 * size)
    assert abs(np.average(got - want, weights=size)) < 0.01
    r = fit.refit(sims["sim_1"].to_numpy())
    assert np.isfinite(r.objective) and r.nobs == fit.nobs
    with pytest.raises(slm.DataError, match="one response value per row used"):
        fit.refit(np.zeros(3))
    with pytest.raises(slm.ArgumentError, match="not available yet"):
        _fit("gamma_log_sim").simulate()


def test_a_glmer_fit_pickles_and_deep_copies():
    import copy
    import pickle

    fit = _fit("verbagg_binomial")
    fit.se  # the Hessian, computed before the round trip, travels with the model
    for other in (pickle.loads(pickle.dumps(fit)), copy.deepcopy(fit)):
        assert other.summary() == fit.summary()
        np.testing.assert_array_equal(other.ranef_table()["condsd"], fit.ranef_table()["condsd"])
        np.testing.assert_array_equal(other.predict(_data("VerbAgg").iloc[:20], type="response"),
                                      fit.predict(_data("VerbAgg").iloc[:20], type="response"))
        np.testing.assert_allclose(other.vcov_matrix(use_hessian=False), fit.vcov_matrix(use_hessian=False), rtol=1e-12)


def test_no_false_convergence_alarms_on_the_reference_models():
    import sparselmm.errors as E

    for key in FITTED:
        m = MODELS[key]
        df = _model_data(key)
        kw = {}
        if m["weights"]:
            kw["weights"] = m["weights"]
        if m["offset"]:
            kw["offset"] = np.log(df["exposure"].to_numpy())
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            fit = slm.glmer(m["formula"], df, family=slm.families.family(m["family"], m["link"]), nAGQ=m["nAGQ"], **kw)
        assert not [w for w in rec if issubclass(w.category, E.ConvergenceWarning)], key
        assert fit.converged and fit.convergence_warnings == []


def test_a_failed_convergence_check_is_a_warning(monkeypatch):
    import sparselmm.fitting.glmer_search as gs

    real = gs.minimize_theta

    def flagged(*a, **k):
        s = real(*a, **k)
        if k.get("check") == "auto":  # stage 2
            s.warnings.append("Model failed to converge with max|grad| = 0.1 (tol = 0.002)")
        return s

    monkeypatch.setattr(gs, "minimize_theta", flagged)
    df = _model_data("cbpp_binomial_laplace")
    with pytest.warns(slm.ConvergenceWarning, match="max\\|grad\\|"):
        fit = slm.glmer(MODELS["cbpp_binomial_laplace"]["formula"], df)
    assert not fit.converged


def test_a_dask_frame_is_refused_with_the_reason():
    dd = pytest.importorskip("dask.dataframe")
    ddf = dd.from_pandas(_model_data("cbpp_binomial_laplace"), npartitions=2)
    with pytest.raises(slm.ArgumentError, match="passes over the rows|reads every row"):
        slm.glmer(MODELS["cbpp_binomial_laplace"]["formula"], ddf)
