"""lmer(): lme4's optimum and the fitted model's accessors, against lme4 1.1-31."""

import numpy as np
import pandas as pd
import pytest
from conftest import CLEAN_CASES, FAST_CASES, REF, assert_same_optimum, fit, fit_case, load_data

import sparselmm as slm


def rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300))


@pytest.mark.parametrize("case", FAST_CASES)
def test_objective_reaches_lme4_or_lower(case):
    r = REF[case]
    m = fit_case(case)
    assert (m.objective - r["objective"]) / abs(r["objective"]) < 1e-6


@pytest.mark.slow
def test_insteval_reaches_lme4():
    r = REF["InstEval__y_1_service_1_s_1_d_1_dept___ML"]
    m = fit("InstEval", r["formula"], False)
    assert (m.objective - r["objective"]) / abs(r["objective"]) < 1e-6
    np.testing.assert_allclose(m.theta, r["theta"], rtol=1e-3)
    np.testing.assert_allclose(m.fixef, r["beta"], rtol=1e-4)


@pytest.mark.parametrize("case", CLEAN_CASES)
def test_parameters_match_lme4(case):
    r = REF[case]
    m = fit_case(case)
    if r["singular"]:
        assert m.singular
        np.testing.assert_allclose(m.theta, r["theta"], atol=1e-3)
    else:
        np.testing.assert_allclose(m.theta, r["theta"], rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(m.fixef.to_numpy(), r["beta"], rtol=1e-4, atol=1e-8)
    assert list(m.fixef.index) == r["beta_names"]
    np.testing.assert_allclose(m.se.to_numpy(), r["se"], rtol=2e-3)
    np.testing.assert_allclose(m.vcov.to_numpy(), np.array(r["vcov"]), rtol=5e-3, atol=1e-10)


@pytest.mark.parametrize("case", CLEAN_CASES)
def test_fit_statistics_match_lme4(case):
    r = REF[case]
    m = fit_case(case)
    assert rel(m.sigma, r["sigma"]) < 1e-5
    assert rel(m.loglik, r["logLik"]) < 1e-5
    assert rel(m.aic, r["AIC"]) < 1e-5
    assert rel(m.bic, r["BIC"]) < 1e-5
    assert m.df_resid == r["df_resid"]
    assert m.nobs == r["nobs"]
    assert m.ngroups == r["ngroups"]
    assert m.singular == r["singular"]


@pytest.mark.parametrize("case", CLEAN_CASES)
def test_varcorr_matches_lme4(case):
    r = REF[case]
    vc = fit_case(case).varcorr()
    rv = pd.DataFrame(r["varcorr"])
    assert list(vc["grp"]) == list(rv["grp"])
    for col in ("var1", "var2"):
        assert [None if pd.isna(v) else v for v in vc[col]] == [None if pd.isna(v) else v for v in rv[col]]
    np.testing.assert_allclose(vc["sdcor"], rv["sdcor"].astype(float), rtol=2e-3, atol=1e-6)


@pytest.mark.parametrize("case", CLEAN_CASES)
def test_ranef_and_condsd_match_lme4(case):
    r = REF[case]
    rt = fit_case(case).ranef_table()
    assert list(rt.columns) == ["grpvar", "term", "grp", "condval", "condsd"]
    for h in r["ranef_head"]:
        sub = rt[(rt.grpvar == h["group"]) & (rt.term == h["term"])].set_index("grp")
        scale = np.max(np.abs(sub["condval"]))  # near-zero BLUPs: compare on the term's scale
        np.testing.assert_allclose(sub.loc[h["levels"], "condval"], h["condval"], rtol=2e-3, atol=2e-3 * scale)
        np.testing.assert_allclose(sub.loc[h["levels"], "condsd"], h["condsd"], rtol=2e-3)


def test_condsd_equals_dense_conditional_variance():
    """condsd² = diag(σ² Λ (ΛᵀZᵀZΛ + I)⁻¹ Λᵀ), computed densely."""
    m = fit("sleepstudy", "Reaction ~ Days + (Days | Subject)", True)
    d = m.design
    Lam = d.Lambda(m.theta).toarray()
    ZL = d.Zt.T.toarray() @ Lam
    C = m.sigma**2 * Lam @ np.linalg.inv(ZL.T @ ZL + np.eye(d.q)) @ Lam.T
    np.testing.assert_allclose(m.ranef_table()["condsd"].to_numpy() ** 2,
                               np.concatenate([np.diag(C)[0::2], np.diag(C)[1::2]]), rtol=1e-8)


def test_ranef_joins_terms_of_one_factor():
    m = fit("sleepstudy", "Reaction ~ Days + (Days || Subject)", True)
    re = m.ranef()
    assert list(re) == ["Subject"]
    assert list(re["Subject"].columns) == ["(Intercept)", "Days"]
    assert re["Subject"].shape == (18, 2)


def test_predictions_and_residuals_match_lme4(extra):
    p = extra["predict"]
    m = fit("sleepstudy", p["formula"], p["REML"])
    nd = pd.DataFrame(p["newdata"])
    np.testing.assert_allclose(m.predict(nd), p["predict_re_NULL"], rtol=1e-5)
    np.testing.assert_allclose(m.predict(nd, re_form="all"), p["predict_re_NULL"], rtol=1e-5)
    np.testing.assert_allclose(m.predict(nd, re_form="NA"), p["predict_re_NA"], rtol=1e-6)
    np.testing.assert_allclose(m.predict(nd, re_form="~0"), p["predict_re_NA"], rtol=1e-6)
    new = pd.DataFrame(p["newdata_new_level"])
    np.testing.assert_allclose(m.predict(new, allow_new_levels=True), p["predict_new_level"], rtol=1e-6)
    with pytest.raises(slm.DataError, match="999"):
        m.predict(new)
    np.testing.assert_allclose(m.fitted().iloc[:5], p["fitted_head"], rtol=1e-6)
    np.testing.assert_allclose(m.residuals().iloc[:5], p["residuals_head"], rtol=1e-4)
    # lme4's Pearson residuals are √w (y - fitted), not divided by σ (its scaled = TRUE does that)
    np.testing.assert_allclose(m.residuals("pearson").iloc[:5], p["residuals_pearson_head"], rtol=1e-4)
    np.testing.assert_allclose(m.residuals("pearson", scaled=True).iloc[:5] * m.sigma, p["residuals_pearson_head"],
                               rtol=1e-4)
    np.testing.assert_allclose(m.predict(), m.fitted())
    co = m.coef()["Subject"]
    ch = p["coef_Subject_head"]
    # BLUP-based: the tolerance of the conditional modes (lme4's θ differs from ours at 1e-5)
    np.testing.assert_allclose(co.loc[ch["rownames"], "Days"], ch["values"]["Days"], rtol=1e-4)
    np.testing.assert_allclose(co.loc[ch["rownames"], "(Intercept)"], ch["values"]["(Intercept)"], rtol=1e-5)


def test_statsmodels_aliases():
    m = fit("sleepstudy", "Reaction ~ Days + (Days | Subject)", True)
    pd.testing.assert_series_equal(m.fe_params, m.fixef)
    pd.testing.assert_series_equal(m.bse, m.se)
    assert m.llf == m.loglik
    assert m.k_fe == 2 and m.k_re == 3 and m.k_vc == 2
    vc = m.varcorr()
    np.testing.assert_allclose(np.diag(m.cov_re), vc["vcov"].iloc[:2])
    np.testing.assert_allclose(m.vcomp, vc["vcov"].iloc[:2])
    assert m.random_effects["Subject"].equals(m.ranef()["Subject"])


def test_refit_same_response_gives_same_fit():
    m = fit("sleepstudy", "Reaction ~ Days + (Days | Subject)", True)
    m2 = m.refit(m.design.y)
    assert_same_optimum(m2, m, rtol_obj=1e-10)
    ml = m.refit(REML=False)
    assert ml.objective == pytest.approx(REF["sleepstudy__Reaction_Days_Days_Subject___ML"]["objective"], rel=1e-8)


def test_refitting_is_bit_identical():
    ss = load_data("sleepstudy")
    a = slm.lmer("Reaction ~ Days + (Days | Subject)", ss)
    b = slm.lmer("Reaction ~ Days + (Days | Subject)", ss)
    assert np.array_equal(a.theta, b.theta) and a.objective == b.objective


def test_simulate_has_the_fitted_moments():
    m = fit("Dyestuff", "Yield ~ 1 + (1 | Batch)", True)
    sims = m.simulate(nsim=2000, seed=1)
    assert sims.shape == (30, 2000)
    assert sims.to_numpy().mean() == pytest.approx(m.fixef.iloc[0], rel=0.01)
    vc = m.varcorr()["vcov"].to_numpy()
    assert sims.to_numpy().var(axis=0, ddof=1).mean() == pytest.approx(vc.sum(), rel=0.15)
    pd.testing.assert_frame_equal(m.simulate(3, seed=5), m.simulate(3, seed=5))


@pytest.mark.parametrize("optimizer", ["bobyqa", "cobyqa", "nelder_mead", "lbfgsb"])
def test_every_optimizer_reaches_the_optimum(optimizer):
    r = REF["sleepstudy__Reaction_Days_Days_Subject___REML"]
    m = slm.lmer(r["formula"], load_data("sleepstudy"), optimizer=optimizer)
    assert m.objective == pytest.approx(r["objective"], rel=1e-8)
    assert m.optsum.optimizer == optimizer and m.optsum.feval > 0


def test_optsum_records_the_search():
    m = fit("sleepstudy", "Reaction ~ Days + (Days | Subject)", True)
    o = m.optsum
    np.testing.assert_array_equal(m.design.theta_start, [1, 0, 1])  # lme4's start
    np.testing.assert_array_equal(o.theta_start, m.design.moment_start())  # the search's: moments
    assert o.objective == pytest.approx(m.objective)
    assert o.feval > 10 and o.seconds > 0 and isinstance(o.message, str)
    assert o.converged and o.newton_decrement < 1e-4


def test_singular_fit_is_flagged_and_snapped():
    r = REF["Dyestuff2__Yield_1_1_Batch___REML"]
    m = fit("Dyestuff2", r["formula"], True)
    assert m.singular and m.theta[0] == 0.0
    assert m.objective == pytest.approx(r["objective"], rel=1e-10)
