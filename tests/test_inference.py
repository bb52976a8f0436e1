"""t-tests, likelihood-ratio tests and intervals against lmerTest / lme4."""

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import EXTRA, REF, REML_CLEAN, fit, fit_case

import sparselmm as slm


@pytest.mark.parametrize("case", REML_CLEAN)
def test_satterthwaite_df_matches_lmertest(case):
    r = REF[case]
    ct = fit_case(case).coef_table()
    assert list(ct.columns) == ["Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"]
    np.testing.assert_allclose(ct["df"], r["satterthwaite"]["df"], rtol=2e-3)
    p_ref = np.array(r["satterthwaite"]["p"])
    big = p_ref > 1e-12  # tiny p-values differ only in their last digits' meaning
    np.testing.assert_allclose(ct["Pr(>|t|)"].to_numpy()[big], p_ref[big], rtol=2e-2)


def test_wald_z_table():
    m = fit("sleepstudy", "Reaction ~ Days + (Days | Subject)", True)
    ct = m.coef_table(ddf="wald")
    assert list(ct.columns) == ["Estimate", "Std. Error", "z value", "Pr(>|z|)"]
    np.testing.assert_allclose(ct["z value"], m.fixef / m.se)


def test_unknown_ddf_is_an_error():
    m = fit("Dyestuff", "Yield ~ 1 + (1 | Batch)", True)
    with pytest.raises(slm.SparseLMMError, match="satterthwaite"):
        m.coef_table(ddf="containment")


def _check_anova(tab, ref_entry):
    cols = ref_entry["columns"]
    assert list(tab.columns) == ["npar", "AIC", "BIC", "logLik", "deviance", "Chisq", "Df", "Pr(>Chisq)"]
    np.testing.assert_array_equal(tab["npar"], cols["npar"])
    for c in ["AIC", "BIC", "logLik", "deviance"]:
        np.testing.assert_allclose(tab[c], cols[c], rtol=1e-6)
    assert np.isnan(tab["Chisq"].iloc[0])
    assert tab["Chisq"].iloc[1] == pytest.approx(cols["Chisq"][1], rel=1e-5)
    assert tab["Df"].iloc[1] == cols["Df"][1]
    assert tab["Pr(>Chisq)"].iloc[1] == pytest.approx(cols["Pr(>Chisq)"][1], rel=1e-4)


def test_anova_grocery_reproduces_the_lecture():
    m0 = fit("grocery", "price ~ 1 + (1 | item)", False)
    m1 = fit("grocery", "price ~ store + (1 | item)", False)
    tab = slm.anova(m0, m1, names=["m0", "m1"])
    assert list(tab.index) == ["m0", "m1"]
    # the lecture's table
    np.testing.assert_array_equal(tab["npar"], [3, 6])
    np.testing.assert_allclose(tab["AIC"].round(3), [59.546, 53.731])
    np.testing.assert_allclose(tab["BIC"].round(3), [64.613, 63.864])
    np.testing.assert_allclose(tab["logLik"].round(3), [-26.773, -20.865])
    assert round(tab["Chisq"].iloc[1], 3) == 11.816 and tab["Df"].iloc[1] == 3
    assert round(tab["Pr(>Chisq)"].iloc[1], 6) == 0.008042
    assert tab.attrs["refitted_ML"] is False
    key = next(k for k in EXTRA["anova_lrt"] if k.startswith("grocery"))
    _check_anova(tab, EXTRA["anova_lrt"][key])
    # order of the arguments does not matter: rows are sorted by npar
    assert list(slm.anova(m1, m0, names=["m1", "m0"]).index) == ["m0", "m1"]


def test_anova_refits_reml_fits_with_ml_and_says_so():
    key = next(k for k in EXTRA["anova_lrt"] if k.startswith("sleepstudy"))
    e = EXTRA["anova_lrt"][key]
    m0 = fit("sleepstudy", e["formula0"], True)
    m1 = fit("sleepstudy", e["formula1"], True)
    with pytest.warns(slm.SparseLMMWarning, match="refitting model\\(s\\) with ML"):
        tab = slm.anova(m0, m1)
    assert tab.attrs["refitted_ML"] is True
    _check_anova(tab, e)


def test_anova_timss_pair():
    key = next(k for k in EXTRA["anova_lrt"] if k.startswith("timss"))
    e = EXTRA["anova_lrt"][key]
    _check_anova(slm.anova(fit("timss", e["formula0"], False), fit("timss", e["formula1"], False)), e)


def test_anova_refuses_different_data():
    m0 = fit("sleepstudy", "Reaction ~ Days + (1 | Subject)", False)
    m1 = fit("Dyestuff", "Yield ~ 1 + (1 | Batch)", False)
    with pytest.raises(slm.ModelSpecError, match="same number of observations"):
        slm.anova(m0, m1)


def test_wald_intervals_match_lme4():
    e = EXTRA["profile"]["sleepstudy__Reaction_Days_Days_Subject___REML"]
    m = fit("sleepstudy", "Reaction ~ Days + (Days | Subject)", True)
    ci = m.confint(method="wald")
    assert list(ci.index) == e["wald"]["names"]
    assert ci.iloc[:4].isna().all().all()
    np.testing.assert_allclose(ci.iloc[4:, 0], e["wald"]["lower"][4:], rtol=1e-5)
    np.testing.assert_allclose(ci.iloc[4:, 1], e["wald"]["upper"][4:], rtol=1e-5)


@pytest.mark.parametrize("case", ["sleepstudy__Reaction_Days_Days_Subject___REML", "Dyestuff__Yield_1_1_Batch___ML"])
def test_profile_intervals_match_lme4(case):
    e = EXTRA["profile"][case]
    m = fit(case.split("__")[0], e["formula"], e["REML"])
    ci = m.confint(method="profile")
    assert list(ci.index) == e["profile"]["names"]
    assert list(ci.columns) == ["2.5 %", "97.5 %"]
    np.testing.assert_allclose(ci.iloc[:, 0], e["profile"]["lower"], rtol=1e-3)
    np.testing.assert_allclose(ci.iloc[:, 1], e["profile"]["upper"], rtol=1e-3)


def test_bootstrap_intervals_cover_the_estimates():
    m = fit("Dyestuff", "Yield ~ 1 + (1 | Batch)", False)
    ci = m.confint(method="boot", nsim=40, seed=2)
    assert list(ci.index) == [".sig01", ".sigma", "(Intercept)"]
    assert ci.loc["(Intercept)", "2.5 %"] < m.fixef.iloc[0] < ci.loc["(Intercept)", "97.5 %"]
    assert ci.loc[".sigma", "2.5 %"] < m.sigma < ci.loc[".sigma", "97.5 %"]
    pd.testing.assert_frame_equal(ci, m.confint(method="boot", nsim=40, seed=2))
