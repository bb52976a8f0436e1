"""Numbers that survive real data: shifted and scaled responses, covariates and weights.

The design conditions y, X and the weights before the cross-products are formed
(sparselmm.frame.conditioning); every reported quantity is mapped back.  Each test compares a fit on
awkward data with the fit of the same values made tame — exact expectations, not tolerances of
the optimiser: the shifted data reach the engine as the same numbers.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import load_data
from test_pls import dense_objective

import sparselmm as slm
from sparselmm.frame.conditioning import Conditioning, fit_columns, pow2

F = "Reaction ~ Days + (Days | Subject)"


def _quiet_fit(formula, data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no stray numpy warning
        warnings.simplefilter("ignore", slm.ScaleWarning)
        return slm.lmer(formula, data, **kw)


def _same_fit(ma, mb, beta_shift=None, rtol=1e-9):
    """The Done-when of issue #17: objective 1e-9 relative, θ 1e-7, β 1e-7 relative.

    ``beta_shift(b)``: what the shift adds to the coefficients ``b`` of the shifted fit (the
    intercept moves by ``c`` for a response shifted by ``c``, by ``-β_x c`` for a covariate)."""
    assert abs(ma.objective - mb.objective) <= rtol * abs(mb.objective), (ma.objective, mb.objective)
    np.testing.assert_allclose(ma.theta, mb.theta, rtol=1e-7, atol=1e-7)
    ba = ma.fixef.to_numpy()
    shift = np.zeros_like(ba) if beta_shift is None else beta_shift(ba)
    # the subtraction of the shift in this test rounds at the size of the shifted coefficient
    ulp = 4 * np.spacing(np.abs(ba) + np.abs(shift))
    bb = mb.fixef.to_numpy()
    assert np.all(np.abs(ba - shift - bb) <= 1e-7 * np.abs(bb) + ulp), (ba - shift, bb)
    assert ma.sigma == pytest.approx(mb.sigma, rel=1e-8)
    assert not ma.optsum.warnings and not mb.optsum.warnings


@pytest.mark.parametrize("REML", [True, False])
@pytest.mark.parametrize("c", [1e6, 1e8, 1e10])
def test_shifted_response_gives_the_same_fit(REML, c):
    ss = load_data("sleepstudy")
    a = ss.assign(Reaction=ss.Reaction + c)
    b = ss.assign(Reaction=(ss.Reaction + c) - c)  # the same values shifted back: rounding of v + c not counted
    ma, mb = _quiet_fit(F, a, REML=REML), _quiet_fit(F, b, REML=REML)
    _same_fit(ma, mb, beta_shift=lambda b: np.array([c, 0.0]))
    # fitted values and predictions carry the shift, to the rounding of values of size c (a few ulps)
    ulp = 4 * np.spacing(c)
    np.testing.assert_allclose(ma.fitted().to_numpy() - c, mb.fitted().to_numpy(), rtol=0, atol=ulp)
    np.testing.assert_allclose(ma.predict(a.head(5)).to_numpy() - c, mb.predict(b.head(5)).to_numpy(), rtol=0, atol=ulp)
    np.testing.assert_allclose(ma.residuals().to_numpy(), mb.residuals().to_numpy(), rtol=0, atol=ulp)


@pytest.mark.parametrize("REML", [True, False])
@pytest.mark.parametrize("c", [1e6, 1e9, 1.7e9])
def test_shifted_covariate_gives_the_same_fit(REML, c):
    # a timestamp-like covariate: shifting a column leaves the objective unchanged when there is an
    # intercept (before: 1743.587 for c = 1e6, where the optimum is 1743.628)
    ss = load_data("sleepstudy")
    a = ss.assign(D=ss.Days + c)
    b = ss.assign(D=(ss.Days + c) - c)
    f = "Reaction ~ D + (Days | Subject)"
    ma, mb = _quiet_fit(f, a, REML=REML), _quiet_fit(f, b, REML=REML)
    _same_fit(ma, mb, beta_shift=lambda b: np.array([-b[1] * c, 0.0]))
    assert ma.objective == pytest.approx(1743.628272 if REML else 1751.939344, abs=1e-6)
    # inference carries over: the slope's standard error, Satterthwaite and Kenward-Roger df
    if REML:
        assert ma.se["D"] == pytest.approx(mb.se["D"], rel=1e-7)
        assert ma.coef_table()["df"]["D"] == pytest.approx(mb.coef_table()["df"]["D"], rel=1e-6)
        kr_a, kr_b = ma.coef_table("kenward-roger"), mb.coef_table("kenward-roger")
        assert kr_a["df"]["D"] == pytest.approx(kr_b["df"]["D"], rel=1e-6)


def test_shifted_response_and_covariate_in_a_small_ml_fit():
    # Pastes, 60 rows, ML: before, a shift of 1e6 moved θ by 0.027 and 1e10 failed to converge
    p = load_data("Pastes")
    f = "strength ~ 1 + (1 | batch/cask)"
    for c in (1e6, 1e10):
        ma = _quiet_fit(f, p.assign(strength=p.strength + c), REML=False)
        mb = _quiet_fit(f, p.assign(strength=(p.strength + c) - c), REML=False)
        _same_fit(ma, mb, beta_shift=lambda b: np.array([c]))


def test_objective_at_a_fixed_theta_on_shifted_data_is_the_dense_one():
    """The mathematics, apart from any optimiser: lme4's objective at fixed θ (a 'probe')."""
    ss = load_data("sleepstudy")
    c = 1e8
    d = slm.design("Reaction ~ D + (Days | Subject)", ss.assign(Reaction=ss.Reaction + c, D=ss.Days + 1e9))
    d0 = slm.design("Reaction ~ D + (Days | Subject)",
                    ss.assign(Reaction=(ss.Reaction + c) - c, D=(ss.Days + 1e9) - 1e9))
    for th in (np.array([0.9, 0.02, 0.25]), np.array([1.5, -0.3, 0.1]), np.zeros(3)):
        for REML in (True, False):
            assert d.objective_function(REML)(th) == pytest.approx(dense_objective(d0, th, REML), rel=1e-12)


@pytest.mark.parametrize("k", [1e200, 1e300, 1e-200])
def test_huge_and_tiny_predictor_scales_are_fitted_not_dropped(k):
    # before: the column was dropped as rank deficient and an intercept-only model fitted
    ss = load_data("sleepstudy")
    f = "Reaction ~ x + (Days | Subject)"
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        m = slm.lmer(f, ss.assign(x=ss.Days * k))
    kinds = {type(w.message) for w in rec}
    assert slm.ScaleWarning in kinds  # lme4 warns too
    assert slm.RankDeficiencyWarning not in kinds and RuntimeWarning not in kinds
    m0 = slm.lmer(f, ss.assign(x=ss.Days))
    assert m.design.X_names == ["(Intercept)", "x"]
    np.testing.assert_allclose(m.theta, m0.theta, rtol=1e-7)
    np.testing.assert_allclose(m.fixef.to_numpy() * [1, k], m0.fixef.to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(m.se.to_numpy() * [1, k], m0.se.to_numpy(), rtol=1e-9)
    # the REML criterion is not invariant to a column's scale (log det XᵀV⁻¹X): 2 log k more
    assert m.objective == pytest.approx(m0.objective + 2 * np.log(k), rel=1e-12)


@pytest.mark.parametrize("k", [1e300, 1e-300, 1e10])
def test_scaled_weights_give_the_same_fixed_effects(k):
    # before: wrong fixed effects with numpy overflow warnings
    ss = load_data("sleepstudy")
    w = np.linspace(0.5, 3.0, len(ss))
    m0 = _quiet_fit(F, ss, weights=w)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        m = slm.lmer(F, ss, weights=w * k)
    np.testing.assert_allclose(m.fixef.to_numpy(), m0.fixef.to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(m.vcov.to_numpy(), m0.vcov.to_numpy(), rtol=1e-7)
    assert m.objective == pytest.approx(m0.objective, rel=1e-12)  # the model family is the same
    # σ is the residual SD at unit weight: √k times larger; θ = σ_b/σ √k times smaller
    assert m.sigma == pytest.approx(m0.sigma * np.sqrt(k), rel=1e-9)
    np.testing.assert_allclose(m.theta * np.sqrt(k), m0.theta, rtol=1e-7)
    vc, vc0 = m.varcorr(), m0.varcorr()
    np.testing.assert_allclose(vc["vcov"].iloc[:3], vc0["vcov"].iloc[:3], rtol=1e-7)
    assert m.coef_table()["df"].to_numpy() == pytest.approx(m0.coef_table()["df"].to_numpy(), rel=1e-5)


def test_no_intercept_model_with_a_factor_is_centred_too():
    # `0 + f + x`: the factor's dummies span the constant, so x is centred against them
    ss = load_data("sleepstudy").copy()
    ss["half"] = np.where(ss["Subject"].cat.codes < 9, "a", "b")
    f = "Reaction ~ 0 + half + D + (1 | Subject)"
    a, b = ss.assign(D=ss.Days + 1e9), ss.assign(D=(ss.Days + 1e9) - 1e9)
    ma, mb = _quiet_fit(f, a), _quiet_fit(f, b)
    assert list(np.flatnonzero(ma.design.cond.G[:, 2])) == [0, 1]  # centred within the factor's levels
    _same_fit(ma, mb, beta_shift=lambda b: np.array([-b[2] * 1e9, -b[2] * 1e9, 0.0]))


def test_refit_and_bootstrap_on_a_shifted_response():
    ss = load_data("sleepstudy")
    m = _quiet_fit(F, ss.assign(Reaction=ss.Reaction + 1e8))
    m0 = _quiet_fit(F, ss.assign(Reaction=(ss.Reaction + 1e8) - 1e8))
    r = m.refit(m.design.y - 1e8)  # the new response is conditioned afresh
    assert r.objective == pytest.approx(m0.objective, rel=1e-10)
    np.testing.assert_allclose(r.fixef.to_numpy(), m0.fixef.to_numpy(), rtol=1e-7)


def test_profile_intervals_on_shifted_data():
    ss = load_data("sleepstudy")
    f = "Reaction ~ D + (1 | Subject)"
    ma = _quiet_fit(f, ss.assign(Reaction=ss.Reaction + 1e8, D=ss.Days + 1e9))
    mb = _quiet_fit(f, ss.assign(Reaction=(ss.Reaction + 1e8) - 1e8, D=(ss.Days + 1e9) - 1e9))
    ca, cb = ma.confint(), mb.confint()
    np.testing.assert_allclose(ca.loc[[".sig01", ".sigma", "D"]].to_numpy(),
                               cb.loc[[".sig01", ".sigma", "D"]].to_numpy(), rtol=1e-6)


# ---- the map itself -------------------------------------------------------------------------------


def test_powers_of_two_are_exact():
    v = np.array([3.0, 0.7, 1e-300, 1.7e308, 0.0, np.inf, -2.0])
    p = pow2(v)
    m, _ = np.frexp(p)
    assert np.all(m == 0.5) and np.all(np.isfinite(p))  # powers of two (2^1023 for 1.7e308)
    assert np.all(np.abs(np.log2(p[:3] / v[:3])) <= 0.5 + 1e-12) and p[3] == 2.0**1023
    assert np.all(p[4:] == 1.0)


def test_conditioning_is_a_reparametrisation():
    rng = np.random.default_rng(1)
    n = 50
    X = np.column_stack([np.ones(n), rng.normal(size=n) * 1e-3 + 1.7e9, rng.integers(0, 2, n).astype(float),
                         rng.normal(size=n) * 1e250])
    c = fit_columns(X).with_response(
        rng.normal(size=n) + 1e8, X, rng.uniform(1e100, 2e100, n))
    Xc = c.X(X)
    assert np.all(np.isfinite(Xc)) and np.abs(Xc[:, [1, 3]]).max() < 4
    np.testing.assert_array_equal(Xc[:, [0, 2]], X[:, [0, 2]])  # the intercept and dummies untouched
    # t is centred against the intercept alone (the dummy comes after it); z within f's cells
    np.testing.assert_allclose(Xc[:, 1], (X[:, 1] - X[:, 1].mean()) / c.x_scale[1], rtol=0, atol=1e-5)
    f = X[:, 2] == 1
    for cell in (f, ~f):
        assert abs(Xc[cell, 3].mean()) < 1e-12
    # the same linear predictor in both units: Xβ = c_y Xa + s_y X'β'
    b_int = np.array([0.3, -1.2, 0.7, 2.0])
    np.testing.assert_allclose(X @ c.beta(b_int), X @ c.y_shift + c.y_scale * Xc @ b_int, rtol=1e-10)
    assert c.w_scale == pytest.approx(1.5e100, rel=1.0) and np.sqrt(c.w_scale) == c.theta_factor
    assert np.log2(c.w_scale) % 2 == 0  # a power of four: √c_w is exact


def test_a_column_near_the_largest_float_does_not_overflow():
    X = np.column_stack([np.ones(4), [1.7e308, -1.7e308, 1e308, 0.0]])
    c = fit_columns(X)
    with np.errstate(all="raise"):
        Xc = c.X(X)
    assert np.all(np.isfinite(Xc))


def test_identity_without_anything_to_condition():
    X = np.column_stack([np.ones(3), [0.0, 1.0, 1.0]])
    c = fit_columns(X).with_response(np.array([0.0, 1.0, -1.0]), X, None)  # y's cell means are 0
    assert c.is_identity and isinstance(c, Conditioning)


# ---- the same through Dask ---------------------------------------------------------------------------


def test_shifted_data_through_dask():
    dd = pytest.importorskip("dask.dataframe")
    ss = load_data("sleepstudy")
    f = "Reaction ~ D + (Days | Subject)"
    a = ss.assign(Reaction=ss.Reaction + 1e8, D=ss.Days + 1e9)
    b = ss.assign(Reaction=(ss.Reaction + 1e8) - 1e8, D=(ss.Days + 1e9) - 1e9)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        ma = slm.lmer(f, dd.from_pandas(a, npartitions=3))
        with pytest.warns(slm.ScaleWarning, match="D"):  # as lme4, and as the in-memory design
            mw = slm.lmer(f, dd.from_pandas(ss.assign(D=ss.Days * 1e200), npartitions=3))
    mb = _quiet_fit(f, b)
    _same_fit(ma, mb, beta_shift=lambda b: np.array([1e8 - b[1] * 1e9, 0.0]))
    assert mw.fixef["D"] * 1e200 == pytest.approx(mb.fixef["D"], rel=1e-9)
    # weights scaled by 1e300 through Dask
    w = np.linspace(0.5, 3.0, len(ss))
    m0 = _quiet_fit(F, ss.assign(w=w), weights="w")
    m1 = slm.lmer(F, dd.from_pandas(ss.assign(w=w * 1e300), npartitions=3), weights="w")
    np.testing.assert_allclose(m1.fixef.to_numpy(), m0.fixef.to_numpy(), rtol=1e-9)
    assert m1.sigma == pytest.approx(m0.sigma * 1e150, rel=1e-9)


@pytest.mark.parametrize("REML", [True, False])
def test_a_timestamp_in_an_interaction_with_a_factor(REML):
    # Days + 1e9 times a factor: the interaction column is centred within the factor's levels
    # (before: it was dropped as rank deficient, as R's qr() drops it)
    ss = load_data("sleepstudy").copy()
    ss["half"] = np.where(ss["Subject"].cat.codes < 9, "a", "b")
    f = "Reaction ~ D * half + (Days | Subject)"
    with warnings.catch_warnings():
        warnings.simplefilter("error", slm.RankDeficiencyWarning)
        ma = _quiet_fit(f, ss.assign(D=ss.Days + 1e9), REML=REML)
    mb = _quiet_fit(f, ss.assign(D=(ss.Days + 1e9) - 1e9), REML=REML)
    assert ma.design.X_names == ["(Intercept)", "D", "halfb", "D:halfb"]
    # β_a = β_b moved by the shift: the intercept by -β_D c, halfb by -β_D:halfb c
    _same_fit(ma, mb, beta_shift=lambda b: np.array([-b[1] * 1e9, 0.0, -b[3] * 1e9, 0.0]), rtol=1e-9)


def test_a_column_constant_to_rounding_is_dropped_as_lme4_drops_it():
    # 0.7 and 0.7 ± 1 ulp: measured after centring it would look like a column of its own
    # (coefficients near ±2e16); a shifted column that varies keeps its place
    ss = load_data("sleepstudy")
    x = (ss.Days * 0.1 + 0.7) - ss.Days * 0.1
    assert x.nunique() > 1 and np.ptp(x) < 4 * np.spacing(0.7)
    f = "Reaction ~ x + (Days | Subject)"
    with pytest.warns(slm.RankDeficiencyWarning, match="dropping 1 column.*x"):
        m = slm.lmer(f, ss.assign(x=x))
    assert m.design.X_names == ["(Intercept)"]
    assert m.objective == pytest.approx(_quiet_fit("Reaction ~ 1 + (Days | Subject)", ss).objective, rel=1e-12)
    dd = pytest.importorskip("dask.dataframe")
    with pytest.warns(slm.RankDeficiencyWarning, match="dropping 1 column.*x"):
        md = slm.lmer(f, dd.from_pandas(ss.assign(x=x), npartitions=3))
    assert md.design.X_names == ["(Intercept)"]


# ---- found in review -------------------------------------------------------------------------------


def _factor_frame(L, seed=0, sort=False):
    rng = np.random.default_rng(seed)
    n = 20 * L
    f = np.sort(np.arange(n) % L) if sort else np.arange(n) % L
    g = rng.integers(0, 40, n)
    t = rng.uniform(0, 1000, n)
    y = 0.01 * t + rng.normal(size=L)[f] + rng.normal(size=40)[g] + rng.normal(size=n)
    return pd.DataFrame({"y": y, "ybig": (y + 1e8), "yback": (y + 1e8) - 1e8, "t": t, "ts": 1.7e9 + t,
                         "tback": (1.7e9 + t) - 1.7e9, "f": [f"f{i:03d}" for i in f], "g": [f"g{i:02d}" for i in g]})


@pytest.mark.filterwarnings("ignore::sparselmm.ScaleWarning")  # f:ts near 1.7e9: lme4's check, rightly
@pytest.mark.parametrize("L", [65, 150])
def test_a_factor_with_many_levels_centres_the_columns_within_them(L):
    # before: beyond 64 binary columns only the first (a dummy, not the intercept) was used, and the
    # REML criterion was 25 % off for y + 1e8 in y ~ 0 + f (lme4 gets it right)
    df = _factor_frame(L)
    th = np.array([0.9])
    for shifted, back in [("ybig ~ 0 + f + (1|g)", "yback ~ 0 + f + (1|g)"),
                          ("y ~ 0 + f + ts + (1|g)", "y ~ 0 + f + tback + (1|g)"),
                          ("y ~ f + f:ts + (1|g)", "y ~ f + f:tback + (1|g)")]:
        a = slm.design(shifted, df).objective_function(True)(th)
        b = slm.design(back, df).objective_function(True)(th)
        assert a == pytest.approx(b, rel=1e-9), shifted


@pytest.mark.filterwarnings("ignore::sparselmm.ScaleWarning")
def test_dask_conditions_data_sorted_by_a_factor_as_in_memory():
    # before: the scan's sample was the head of each partition, which misses levels of sorted data
    dd = pytest.importorskip("dask.dataframe")
    from sparselmm.frame.dask_design import dask_design

    df = _factor_frame(6, sort=True)
    th = np.array([0.9])
    for f in ["ybig ~ 0 + f + (1|g)", "y ~ f + f:ts + (1|g)", "ybig ~ 0 + f + t + (1|g)"]:
        a = slm.design(f, df).objective_function(True)(th)
        b = dask_design(f, dd.from_pandas(df, npartitions=3)).objective_function(True)(th)
        assert b == pytest.approx(a, rel=1e-12), f


def test_satterthwaite_df_do_not_depend_on_a_slope_covariates_units():
    # before: a slope's θ below 1.8e-5 got numDeriv's absolute step (df 0.039 instead of 17 at k = 1e6)
    ss = load_data("sleepstudy")
    for k in (1.0, 3e4, 1e6):
        m = _quiet_fit("Reaction ~ Days + (Days | Subject)", ss.assign(Days=ss.Days * k))
        np.testing.assert_allclose(m.coef_table()["df"].to_numpy(), [17.0, 17.0], rtol=1e-5)


@pytest.mark.parametrize("k", [1e-12, 2.0**-40, 1e9])
def test_profile_intervals_scale_with_the_response(k):
    d = load_data("Dyestuff")
    ref = _quiet_fit("Yield ~ 1 + (1|Batch)", d).confint().to_numpy()
    ci = _quiet_fit("Yield ~ 1 + (1|Batch)", d.assign(Yield=d.Yield * k)).confint().to_numpy() / k
    np.testing.assert_allclose(ci, ref, rtol=1e-6)


@pytest.mark.parametrize("a", [1e100, 1e200, 1e-200])
def test_inference_on_a_column_near_the_ends_of_the_doubles(a):
    ss = load_data("sleepstudy").assign(z=np.random.default_rng(0).normal(size=180))
    f = "Reaction ~ Days + z + (1 | Subject)"
    ref = _quiet_fit(f, ss)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        m = _quiet_fit(f, ss.assign(z=ss.z * a))
        for ddf in ("satterthwaite", "kenward-roger"):
            t, t0 = m.coef_table(ddf), ref.coef_table(ddf)
            np.testing.assert_allclose(t["df"].to_numpy(), t0["df"].to_numpy(), rtol=1e-6)
            np.testing.assert_allclose(t["t value"].to_numpy(), t0["t value"].to_numpy(), rtol=1e-6)


def test_the_scale_warning_reads_the_columns_themselves():
    # a column conditioned on earlier continuous ones has a small residual; lme4's check is on the column
    ss = load_data("sleepstudy").assign(x=np.random.default_rng(0).normal(size=180))
    for c in (1e4, 1e5):
        with pytest.warns(slm.ScaleWarning, match="D:x.*not affected"):
            slm.design("Reaction ~ D:x + D + x + (Days|Subject)", ss.assign(D=ss.Days + c))
