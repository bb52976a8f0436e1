"""glmer's confidence intervals (issue 22): profile intervals against lme4 1.1-31's
``confint(m, method = "profile")`` (``tests/reference/glmer_confint.json``, generator
``tests/reference/glmer_confint_reference.R``), the parametric bootstrap against the refits it
is made of, and the refusals."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import sparselmm as slm
from sparselmm.stats.bootstrap import bootstrap

import test_glmer as tg

ROOT = Path(__file__).resolve().parent.parent
REF = json.loads((ROOT / "tests" / "reference" / "glmer_confint.json").read_text())
#: the reference's models as test_glmer's fits
KEYS = {"cbpp_laplace": "cbpp_binomial_laplace", "cbpp_agq9": "cbpp_binomial_agq9", "cbpp_obs": "cbpp_binomial_obs_re"}


@pytest.mark.parametrize("key", list(REF))
def test_profile_intervals_are_lme4s(key):
    ref = REF[key]
    fit = tg._fit(KEYS[key])
    np.testing.assert_allclose(fit.fixef.to_numpy(), ref["beta"], rtol=2e-3, atol=2e-4)
    ci = fit.confint()  # lme4's default method, the profile
    assert list(ci.index) == ref["rows"]
    # lme4 inverts an interpolating spline through ~ a dozen profiled points per side (its ends carry
    # that interpolation); these are roots of the profile itself
    np.testing.assert_allclose(ci.iloc[:, 0], ref["lower"], rtol=2e-3, atol=1e-3)
    np.testing.assert_allclose(ci.iloc[:, 1], ref["upper"], rtol=2e-3, atol=1e-3)


def test_profile_of_chosen_rows_and_a_bad_name():
    fit = tg._fit("cbpp_binomial_laplace")
    ref = REF["cbpp_laplace"]
    ci = fit.confint(parm=["period3", ".sig01"], level=0.95)
    assert list(ci.index) == ["period3", ".sig01"]
    i3, i1 = ref["rows"].index("period3"), ref["rows"].index(".sig01")
    np.testing.assert_allclose(ci.to_numpy(), [[ref["lower"][i3], ref["upper"][i3]], [ref["lower"][i1], ref["upper"][i1]]],
                               rtol=2e-3)
    with pytest.raises(slm.SparseLMMError, match="period9"):
        fit.confint(parm="period9")
    # a narrower level gives a narrower interval inside the wider one
    ci80 = fit.confint(parm="period3", level=0.8)
    assert ci.loc["period3"].iloc[0] < ci80.iloc[0, 0] < fit.fixef["period3"] < ci80.iloc[0, 1] < ci.loc["period3"].iloc[1]


def test_bootstrap_replicates_are_the_refits_of_simulated_responses():
    fit = tg._fit("cbpp_binomial_laplace")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", slm.SparseLMMWarning)
        reps = bootstrap(fit, nsim=4, seed=11)
        Y = fit.simulate(nsim=4, seed=11).to_numpy()
        want = []
        for j in range(4):
            r = fit.refit(Y[:, j])
            want.append(np.concatenate([r.theta, r.fixef.to_numpy()]))
        ci = fit.confint(method="boot", nsim=4, seed=11)
    assert list(reps.columns) == [".sig01", "(Intercept)", "period2", "period3", "period4"]
    np.testing.assert_allclose(reps.to_numpy(), np.array(want), rtol=1e-10)
    np.testing.assert_allclose(ci.iloc[:, 0], np.quantile(np.array(want), 0.025, axis=0), rtol=1e-10)
    np.testing.assert_allclose(ci.iloc[:, 1], np.quantile(np.array(want), 0.975, axis=0), rtol=1e-10)


def test_wald_rows_and_dispersion_families():
    gam = tg._fit("gamma_log_sim")
    ci = gam.confint(method="wald")
    assert list(ci.index) == [".sig01", ".sigma", "(Intercept)", "x"]
    assert np.isnan(ci.loc[[".sig01", ".sigma"]].to_numpy()).all()
    with pytest.raises(slm.ModelSpecError, match="dispersion"):
        gam.confint()
    with pytest.raises(slm.SparseLMMError, match="Gamma"):
        gam.confint(method="boot", nsim=2)
