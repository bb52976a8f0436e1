"""Closer to lme4's interface (issue 21): confint(parm=), the parametric bootstrap in processes,
predict(se_fit=, re_form=<formula>), the singular-fit warning at fit time, progress."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pandas as pd
import pytest

import sparselmm as slm
from sparselmm.stats.bootstrap import bootstrap


@functools.lru_cache(maxsize=None)
def _sleep() -> slm.LinearMixedModel:
    return slm.lmer("Reaction ~ Days + (Days | Subject)", slm.datasets.load("sleepstudy"))


@functools.lru_cache(maxsize=None)
def _pen() -> slm.LinearMixedModel:
    return slm.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", slm.datasets.load("Penicillin"))


# ----- confint(parm=) ----------------------------------------------------------------------------


def test_confint_parm_by_name_position_and_group():
    m = _sleep()
    full = m.confint("wald")
    every = list(full.index)
    assert every == [".sig01", ".sig02", ".sig03", ".sigma", "(Intercept)", "Days"]
    pd.testing.assert_frame_equal(m.confint("wald", parm=["Days", ".sigma"]), full.loc[["Days", ".sigma"]])
    pd.testing.assert_frame_equal(m.confint("wald", parm=5), full.loc[["Days"]])  # 0-based: lme4's parm = 6
    pd.testing.assert_frame_equal(m.confint("wald", parm="beta_"), full.loc[["(Intercept)", "Days"]])
    pd.testing.assert_frame_equal(m.confint("wald", parm=["theta_"]), full.loc[every[:4]])
    pd.testing.assert_frame_equal(m.confint("wald", parm=["Days", 5, "beta_"]), full.loc[["Days", "(Intercept)"]])


def test_confint_profile_of_some_parameters_equals_the_full_profile():
    m = _sleep()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = m.confint()
        some = m.confint(parm=[".sig03", "Days"])
    assert list(some.index) == [".sig03", "Days"]
    np.testing.assert_allclose(some.to_numpy(), full.loc[[".sig03", "Days"]].to_numpy(), rtol=1e-9)


@pytest.mark.parametrize("parm, match", [
    ("Dayz", "parm 'Dayz' is not a parameter of the model; they are .sig01"),
    (6, "parm position 6 is out of range: the model has 6 parameters"),
    (-1, "parm position -1 is out of range"),
    ([1.5], "parm must hold names or positions"),
    ([], "parm selects no parameter"),
    (object(), "parm must be a name, a position or a list"),
])
def test_confint_bad_parm_is_refused(parm, match):
    with pytest.raises(slm.ArgumentError, match=match):
        _sleep().confint("wald", parm=parm)


# ----- the parametric bootstrap ------------------------------------------------------------------


def test_bootstrap_replicates_do_not_depend_on_n_jobs():
    m = _sleep()
    one = bootstrap(m, nsim=8, seed=11)
    two = bootstrap(m, nsim=8, seed=11, n_jobs=2)
    assert list(one.columns) == [".sig01", ".sig02", ".sig03", ".sigma", "(Intercept)", "Days"]
    np.testing.assert_array_equal(one.to_numpy(), two.to_numpy())
    # each replicate is the refit of the simulated response the seed gives
    y = m.simulate(nsim=8, seed=11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r3 = m.refit(y["sim_3"].to_numpy())
    np.testing.assert_allclose(one.loc[3, ["(Intercept)", "Days"]].to_numpy(), r3.fixef.to_numpy(), rtol=1e-12)
    assert one.loc[3, ".sigma"] == pytest.approx(r3.sigma, rel=1e-12)
    # and confint's bootstrap intervals are its quantiles
    ci = m.confint("boot", nsim=8, seed=11, parm=["Days"])
    assert ci.iloc[0, 0] == pytest.approx(np.quantile(one["Days"], 0.025), rel=1e-12)


@pytest.mark.parametrize("n_jobs", [0, -2, 1.5, "2", True])
def test_bad_n_jobs_is_refused(n_jobs):
    with pytest.raises(slm.ArgumentError, match="n_jobs must be a positive integer or -1"):
        bootstrap(_sleep(), nsim=2, n_jobs=n_jobs)


# ----- predict: re_form as a formula, standard errors ----------------------------------------------


def test_re_form_formula_keeps_the_terms_it_names():
    m = _pen()
    pen = slm.datasets.load("Penicillin")
    full = m.predict(pen)
    plate = m.predict(pen, re_form="~(1 | plate)")
    re = m.ranef()
    want = m.fixef["(Intercept)"] + re["plate"].loc[pen["plate"].astype(str), "(Intercept)"].to_numpy()
    np.testing.assert_allclose(plate.to_numpy(), want, rtol=1e-12)
    both = m.predict(pen, re_form="~ (1 | sample) + (1 | plate)")
    pd.testing.assert_series_equal(both, full)
    np.testing.assert_allclose(m.predict(re_form="~(1|plate)").to_numpy(), want, rtol=1e-12)  # the fit's own data
    s = _sleep()
    ss = slm.datasets.load("sleepstudy")
    pd.testing.assert_series_equal(s.predict(ss, re_form="~(1 + Days | Subject)"), s.predict(ss))


def test_re_form_naming_a_term_not_in_the_model_is_refused():
    with pytest.raises(slm.ArgumentError, match=r"re_form names '\(1 \| batch\)', which is not a random-effect term"):
        _pen().predict(re_form="~(1 | batch)")
    with pytest.raises(slm.ArgumentError, match=r"re_form names '\(0 \+ Days \| Subject\)'"):
        _sleep().predict(re_form="~(0 + Days | Subject)")
    with pytest.raises(slm.ArgumentError, match="re_form must be"):
        _pen().predict(re_form="plate")


def _dense_prediction_se(m, X, Z):
    """σ² wᵀK⁻¹w for w = [x; Λᵀz], K the (β, u) system in data units, densely (Henderson's C)."""
    d = m.design
    Lam = d.Lambda(m.theta).toarray()
    Zd = d.Zt.T.toarray()
    W = np.ones(d.n) if d.weights is None else d.weights
    ZL = Zd @ Lam
    K = np.block([[d.X.T @ (W[:, None] * d.X), d.X.T @ (W[:, None] * ZL)],
                  [ZL.T @ (W[:, None] * d.X), ZL.T @ (W[:, None] * ZL) + np.eye(d.q)]])
    w = np.hstack([X, Z @ Lam])
    return np.sqrt(m.sigma**2 * np.einsum("ij,ij->i", w, np.linalg.solve(K, w.T).T))


@pytest.mark.parametrize("which", ["sleep", "pen"])
def test_prediction_standard_errors_against_the_mixed_model_equations(which):
    m = _sleep() if which == "sleep" else _pen()
    data = slm.datasets.load("sleepstudy" if which == "sleep" else "Penicillin").iloc[::7]
    d = m.design
    pop = m.predict(data, re_form="NA", se_fit=True)
    X = d.X[::7]
    np.testing.assert_allclose(pop["se_fit"].to_numpy(), np.sqrt(np.einsum("ij,jk,ik->i", X, m.vcov.to_numpy(), X)),
                               rtol=1e-10)
    np.testing.assert_allclose(pop["fit"].to_numpy(), m.predict(data, re_form="NA").to_numpy(), rtol=1e-14)
    cond = m.predict(data, se_fit=True)
    Z = d.Zt.T.toarray()[::7]
    np.testing.assert_allclose(cond["se_fit"].to_numpy(), _dense_prediction_se(m, X, Z), rtol=1e-8)
    assert list(cond.columns) == ["fit", "se_fit"] and cond.index.equals(data.index)
    if which == "pen":  # one term kept: the other's columns of z are zero
        Zp = Z.copy()
        for t, lo, hi in zip(d.terms, d.Gp[:-1], d.Gp[1:]):
            if t.group != "plate":
                Zp[:, lo:hi] = 0.0
        assert np.any(Zp) and not np.array_equal(Zp, Z)
        part = m.predict(data, re_form="~(1 | plate)", se_fit=True)
        np.testing.assert_allclose(part["se_fit"].to_numpy(), _dense_prediction_se(m, X, Zp), rtol=1e-8)


def test_prediction_standard_errors_for_a_new_level_are_the_population_ones():
    m = _sleep()
    new = pd.DataFrame({"Days": [0.0, 5.0], "Subject": ["999", "999"]})
    got = m.predict(new, allow_new_levels=True, se_fit=True)
    pop = m.predict(new, re_form="NA", se_fit=True)
    pd.testing.assert_frame_equal(got, pop)


# ----- the singular-fit warning ------------------------------------------------------------------


def _singular_data() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({"y": rng.normal(size=50), "g": pd.Categorical(np.repeat(np.arange(10), 5))})


def test_a_singular_fit_warns_once_at_fit_time_with_lme4s_words():
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        m = slm.lmer("y ~ 1 + (1 | g)", _singular_data())
    sing = [x for x in w if issubclass(x.category, slm.SingularFitWarning)]
    assert len(sing) == 1 and m.singular
    assert str(sing[0].message) == "boundary (singular) fit: see help('isSingular')"
    assert issubclass(slm.SingularFitWarning, slm.SparseLMMWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=slm.SingularFitWarning)  # filterable on its own
        slm.lmer("y ~ 1 + (1 | g)", _singular_data())
        slm.lmer("Reaction ~ Days + (Days | Subject)", slm.datasets.load("sleepstudy"))  # not singular: silent


# ----- progress ----------------------------------------------------------------------------------


def test_progress_lines_without_a_terminal(capsys):
    m = _sleep()
    bootstrap(m, nsim=3, seed=1, progress=True)
    out = capsys.readouterr().out
    assert "bootstrap refit 1 of 3" in out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        slm.lmer("Reaction ~ Days + (Days | Subject)", slm.datasets.load("sleepstudy"), progress=True).coef_table()
    out = capsys.readouterr().out
    assert "evaluation 1" in out and "Satterthwaite df: gradient 1 of 13" in out
    bootstrap(m, nsim=2, seed=1)  # off by default
    assert capsys.readouterr().out == ""


def test_progress_bar_where_tqdm_and_a_terminal_are_there(monkeypatch, capsys):
    pytest.importorskip("tqdm")
    import sparselmm.progress as P

    monkeypatch.setattr(P, "bar_available", lambda: True)
    bootstrap(_sleep(), nsim=3, seed=1, progress=True)
    cap = capsys.readouterr()
    assert "bootstrap refit:" in cap.err and "/3 [" in cap.err  # tqdm's bar of 3 steps, on standard error
    assert cap.out == ""  # no lines beside the bar
    with pytest.raises(slm.ArgumentError, match="progress must be True or False"):
        bootstrap(_sleep(), nsim=2, progress="yes")


def test_progress_of_the_dask_passes(capsys):
    dd = pytest.importorskip("dask.dataframe")
    ss = slm.datasets.load("sleepstudy")
    slm.lmer("Reaction ~ Days + (Days | Subject)", dd.from_pandas(ss, npartitions=3), progress=True)
    out = capsys.readouterr().out
    assert "100% Completed" in out  # Dask's own bar for the design's passes
    slm.lmer("Reaction ~ Days + (Days | Subject)", dd.from_pandas(ss, npartitions=3))
    assert "Completed" not in capsys.readouterr().out
