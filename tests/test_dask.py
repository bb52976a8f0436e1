"""The Dask path: fits from a dask DataFrame equal the in-memory fits; lazy per-row results."""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

dd = pytest.importorskip("dask.dataframe")

import sparselmm as slm  # noqa: E402
from conftest import assert_same_optimum  # noqa: E402
from sparselmm.model import LinearMixedModel  # noqa: E402
from sparselmm.backends.scalar import ScalarTermsPLSState  # noqa: E402
from sparselmm.backends.schur import DenseSchurPLSState  # noqa: E402
from sparselmm.dask_model import DaskLinearMixedModel  # noqa: E402
from sparselmm.frame.dask_design import dask_design  # noqa: E402
from sparselmm.frame.rank import independent_columns_gram  # noqa: E402
from sparselmm.backends.cholmod import PLSState  # noqa: E402

SLEEP = "Reaction ~ Days + (Days | Subject)"
CROSSED = "y ~ 1 + x + (1 | a) + (1 | b)"


def _fit_pair(formula: str, df: pd.DataFrame, npartitions: int = 4, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m0 = slm.lmer(formula, df, **kw)
        m1 = slm.lmer(formula, dd.from_pandas(df, npartitions=npartitions, sort=False), **kw)
    return m0, m1


def _assert_same_fit(m0: slm.LinearMixedModel, m1: slm.LinearMixedModel, rtol_obj: float = 1e-10) -> None:
    assert isinstance(m1, DaskLinearMixedModel)
    assert m1.nobs == m0.nobs
    assert m1.ngroups == m0.ngroups
    # two searches on objectives equal to ~1e-13 locate the optimum separately (on a flat optimum,
    # Pastes' nested model, 5e-6 apart in θ): the same optimum to what the objective determines
    assert_same_optimum(m1, m0, rtol_obj=rtol_obj)
    # and the same function of θ: the in-memory design evaluated at the Dask fit's θ gives its β̂, σ̂
    at = LinearMixedModel(m0.design, m0.REML, replace(m0.optsum, theta=m1.theta.copy()))
    np.testing.assert_allclose(m1.fixef.to_numpy(), at.fixef.to_numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(m1.sigma, at.sigma, rtol=1e-10)
    np.testing.assert_allclose(m1.vcov.to_numpy(), at.vcov.to_numpy(), rtol=1e-8, atol=1e-14)


def _aligned(lazy, eager: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    got = lazy.compute()
    assert got.index.is_unique
    return got.sort_index().to_numpy(), eager.loc[got.sort_index().index].to_numpy()


@pytest.fixture(scope="module")
def sleep_fits():
    df = slm.datasets.load("sleepstudy")
    return _fit_pair(SLEEP, df, npartitions=4)


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as c:
        yield c


# ----- equality with the in-memory fit ---------------------------------------------------------


def test_sleepstudy_matches_pandas(sleep_fits):
    m0, m1 = sleep_fits
    _assert_same_fit(m0, m1)
    assert abs(m1.objective - 1743.6282719585) < 1e-6
    v0, v1 = m0.varcorr(), m1.varcorr()
    pd.testing.assert_frame_equal(v1.drop(columns=["vcov", "sdcor"]), v0.drop(columns=["vcov", "sdcor"]))
    # variances and SDs to 1e-6; the covariance (correlation 0.07, the flattest direction) to 1e-6
    # of the scale sd_1 * sd_2, i.e. the correlation to 1e-6
    var = v0["var2"].isna().to_numpy()
    np.testing.assert_allclose(v1["vcov"][var], v0["vcov"][var], rtol=1e-6)
    np.testing.assert_allclose(v1["sdcor"][var], v0["sdcor"][var], rtol=1e-6)
    np.testing.assert_allclose(v1["sdcor"][~var], v0["sdcor"][~var], rtol=0, atol=1e-6)
    cov_scale = float(np.prod(v0["sdcor"][var].to_numpy()[:2]))
    np.testing.assert_allclose(v1["vcov"][~var], v0["vcov"][~var], rtol=0, atol=1e-6 * cov_scale)
    r0, r1 = m0.ranef()["Subject"], m1.ranef()["Subject"]
    assert list(r1.index) == list(r0.index)
    # the two fits locate the flat optimum separately (θ to ~1e-8): a BLUP near zero differs by
    # ~1e-6 of the largest one
    np.testing.assert_allclose(r1.to_numpy(), r0.to_numpy(), rtol=1e-6, atol=1e-6 * np.abs(r0.to_numpy()).max())
    np.testing.assert_allclose(m1.se.to_numpy(), m0.se.to_numpy(), rtol=1e-6)


def _data_units(d):
    """The cross-products of a design back in the data's units: each design conditions its data
    (sparselmm.frame.conditioning; a Dask design from its scan's sample, an in-memory one from all rows),
    X' = XT, y' = (y - Xγ_y)/s_y, w' = w/c_w, so ZᵀWX = c_w ZᵀW'X'T⁻¹ and y = s_y y' + X'T⁻¹γ_y."""
    c, cp = d.cond, d.cross
    Ti = np.linalg.inv(c.T)
    ya = Ti @ c.y_shift  # y = s_y y' + X' ya
    ZtX = c.w_scale * cp.ZtX @ Ti
    XtX = c.w_scale * Ti.T @ cp.XtX @ Ti
    Zty = c.w_scale * (c.y_scale * cp.Zty + cp.ZtX @ ya)
    Xty = c.w_scale * Ti.T @ (c.y_scale * cp.Xty + cp.XtX @ ya)
    yty = c.w_scale * (c.y_scale**2 * cp.yty + 2 * c.y_scale * cp.Xty @ ya + ya @ cp.XtX @ ya)
    return {"ZtX": ZtX, "Zty": Zty, "XtX": XtX, "Xty": Xty, "yty": yty}


def test_cross_products_equal_in_memory(sleep_fits):
    m0, m1 = sleep_fits
    c0, c1 = m0.design.cross, m1.design.cross
    assert c1.n == c0.n
    np.testing.assert_allclose(c1.ZtZ.toarray(), c0.ZtZ.toarray(), rtol=1e-12)  # built from the block-lower part
    e0, e1 = _data_units(m0.design), _data_units(m1.design)
    for name in ("ZtX", "Zty", "XtX", "Xty", "yty"):
        np.testing.assert_allclose(e1[name], e0[name], rtol=1e-11)
    # the Dask design conditions y and X from its scan's sample: the same kind of units
    assert m1.design.cond.x_scale[1] == m0.design.cond.x_scale[1] and m1.design.cond.y_scale == m0.design.cond.y_scale


def test_lazy_fitted_residuals_match(sleep_fits):
    m0, m1 = sleep_fits
    f = m1.fitted()
    assert type(f).__module__.startswith("dask")
    a, b = _aligned(f, m0.fitted())
    np.testing.assert_allclose(a, b, rtol=1e-7)
    a, b = _aligned(m1.residuals(), m0.residuals())
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7 * np.abs(b).max())
    a, b = _aligned(m1.residuals("pearson"), m0.residuals("pearson"))
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7 * np.abs(b).max())
    # population-level and BLUP-based predictions, lazily
    a, b = _aligned(m1.predict(re_form="NA"), m0.predict(re_form="NA"))
    np.testing.assert_allclose(a, b, rtol=1e-7)
    df = slm.datasets.load("sleepstudy")
    a, b = _aligned(m1.predict(dd.from_pandas(df, npartitions=3)), m0.predict(df))
    np.testing.assert_allclose(a, b, rtol=1e-7)
    # pandas newdata gives a pandas Series, as for an in-memory model
    np.testing.assert_allclose(m1.predict(df.head(7)).to_numpy(), m0.predict(df.head(7)).to_numpy(), rtol=1e-7)


def test_summary_and_refit_ml(sleep_fits):
    m0, m1 = sleep_fits
    text = m1.summary()
    assert "Scaled residuals" in text and "Number of obs: 180" in text
    ml0, ml1 = m0.refit(REML=False), m1.refit(REML=False)
    assert isinstance(ml1, DaskLinearMixedModel)
    assert abs(ml1.objective - ml0.objective) <= 1e-8 * abs(ml0.objective)
    with pytest.raises(slm.SparseLMMError):
        m1.simulate()


def test_crossed_parquet_matches_in_memory(tmp_path, client):
    pytest.importorskip("pyarrow")
    df = slm.datasets.simulate_crossed(20000, 300, 50, seed=1)
    dd.from_pandas(df, npartitions=5).to_parquet(str(tmp_path / "crossed"))
    ddf = dd.read_parquet(str(tmp_path / "crossed"))
    assert ddf.npartitions == 5
    m1 = slm.lmer(CROSSED, ddf)  # runs on the distributed client
    m0 = slm.lmer(CROSSED, df)
    _assert_same_fit(m0, m1)
    for g in ("a", "b"):
        r0, r1 = m0.ranef()[g], m1.ranef()[g]
        assert list(r1.index) == list(r0.index)
        np.testing.assert_allclose(r1.to_numpy(), r0.to_numpy(), rtol=1e-6, atol=1e-8)
    a, b = _aligned(m1.residuals(), m0.residuals())
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_distributed_sleepstudy(client):
    df = slm.datasets.load("sleepstudy")
    m0, m1 = _fit_pair(SLEEP, df, npartitions=3)
    _assert_same_fit(m0, m1)
    a, b = _aligned(m1.fitted(), m0.fitted())
    np.testing.assert_allclose(a, b, rtol=1e-7)


def test_levels_in_some_partitions_only():
    rng = np.random.default_rng(3)
    n = 600
    g = np.repeat([f"s{i:02d}" for i in range(30)], n // 30)  # sorted: each partition sees few levels
    store = np.where(np.arange(n) < 540, rng.choice(["B", "C"], n), "A")  # reference level only at the end
    x = rng.standard_normal(n)
    y = 1 + 0.5 * x + (store == "C") * 0.7 + rng.standard_normal(30)[np.repeat(np.arange(30), n // 30)] + rng.standard_normal(n)
    df = pd.DataFrame({"y": y, "x": x, "g": g, "store": store, "h": rng.integers(1, 9, n)})
    m0, m1 = _fit_pair("y ~ x + store + (1 | g) + (1 | h)", df, npartitions=6)
    _assert_same_fit(m0, m1)
    assert list(m1.fixef.index) == ["(Intercept)", "x", "storeB", "storeC"]
    assert list(m1.ranef()["h"].index) == [str(i) for i in range(1, 9)]  # numeric levels sorted numerically
    a, b = _aligned(m1.fitted(), m0.fitted())
    np.testing.assert_allclose(a, b, rtol=1e-7)


def test_interaction_grouping_factor():
    df = slm.datasets.load("Pastes")
    m0, m1 = _fit_pair("strength ~ 1 + (1 | batch/cask)", df, npartitions=4)
    _assert_same_fit(m0, m1)
    for g in m0.ranef():
        assert list(m1.ranef()[g].index) == list(m0.ranef()[g].index)


def test_missing_values_dropped_consistently():
    df = slm.datasets.load("sleepstudy").copy()
    df["Reaction"] = df["Reaction"].astype(float)
    df["Days"] = df["Days"].astype(float)
    df.loc[[3, 50, 51], "Reaction"] = np.nan
    df.loc[[100, 150], "Days"] = np.nan
    df["Subject"] = df["Subject"].astype(object)
    df.loc[[170], "Subject"] = None
    df["unused"] = np.nan  # not in the formula: ignored
    m0, m1 = _fit_pair(SLEEP, df, npartitions=4)
    assert m1.design.n_dropped == m0.design.n_dropped == 6
    _assert_same_fit(m0, m1)
    a, b = _aligned(m1.fitted(), m0.fitted())
    assert len(a) == 174
    np.testing.assert_allclose(a, b, rtol=1e-7)
    with pytest.raises(slm.DataError, match="na_action"):
        slm.lmer(SLEEP, dd.from_pandas(df, npartitions=2), na_action="fail")


def test_weights_and_offset():
    df = slm.datasets.load("sleepstudy").copy()
    rng = np.random.default_rng(1)
    df["w"] = rng.uniform(0.5, 2.0, len(df))
    df["off"] = 0.3 * df["Days"]
    m0, m1 = _fit_pair(SLEEP, df, npartitions=3, weights="w", offset="off")
    _assert_same_fit(m0, m1)
    a, b = _aligned(m1.residuals("pearson"), m0.residuals("pearson"))
    # θ located to ~1e-7 by each search (the objective is flat to 1e-11 there): residuals near
    # zero move by ~1e-7 of the largest
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7 * np.abs(b).max())
    with pytest.raises(slm.DataError, match="name of a column"):
        slm.lmer(SLEEP, dd.from_pandas(df, npartitions=3), weights=df["w"].to_numpy())


# ----- the checks that need all rows ------------------------------------------------------------


def test_rank_deficiency_and_scale_from_reduced_statistics():
    df = slm.datasets.load("sleepstudy").copy()
    df["Days2"] = 2.0 * df["Days"]
    df["big"] = df["Days"] * 1e5 + np.arange(len(df)) % 3
    ddf = dd.from_pandas(df, npartitions=4)
    with pytest.warns(slm.RankDeficiencyWarning, match="Days2"):
        m1 = slm.lmer("Reaction ~ Days + Days2 + (1 | Subject)", ddf)
    assert "Days2" not in m1.fixef.index
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m0 = slm.lmer("Reaction ~ Days + Days2 + (1 | Subject)", df)
    _assert_same_fit(m0, m1)
    with pytest.warns(slm.ScaleWarning):
        slm.lmer("Reaction ~ big + (1 | Subject)", ddf)


def test_global_errors():
    df = slm.datasets.load("sleepstudy").copy()
    df["const"] = 5.0
    df["row"] = np.arange(len(df))
    ddf = dd.from_pandas(df, npartitions=4)
    with pytest.raises(slm.DataError, match="constant"):
        slm.lmer("const ~ Days + (1 | Subject)", ddf)
    with pytest.raises(slm.ModelSpecError, match="levels"):
        slm.lmer("Reaction ~ Days + (1 | row)", ddf)  # as many levels as observations
    with pytest.raises(slm.ModelSpecError, match=r"poly\(\) in the fixed part"):  # scale() works: tests/test_formulas.py
        slm.lmer("Reaction ~ poly(Days, 2) + (1 | Subject)", ddf)
    with pytest.raises(slm.FormulaError, match="Dayz"):
        slm.lmer("Reaction ~ Dayz + (1 | Subject)", ddf)
    # a partition of a single Subject would fail the per-partition checks; the global ones pass
    one = dd.from_pandas(df.sort_values("Subject"), npartitions=18, sort=False)
    assert slm.lmer("Reaction ~ Days + (1 | Subject)", one).nobs == 180


def test_independent_columns_gram_matches_qr():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 4))
    X = np.column_stack([np.ones(50), X[:, 0], X[:, 0] * 3 - 1, X[:, 1], X[:, 1] + X[:, 0]])
    from sparselmm.frame.rank import independent_columns as _independent_columns

    np.testing.assert_array_equal(independent_columns_gram(X.T @ X), _independent_columns(X))


# ----- the PLS states used for big designs give the same numbers ------------------------------------


@pytest.mark.parametrize("cls", [ScalarTermsPLSState, DenseSchurPLSState])
@pytest.mark.parametrize("source", ["pandas", "dask"])
def test_lean_pls_states_equal_cholmod(cls, source):
    df = slm.datasets.simulate_crossed(5000, 400, 60, seed=2)
    d0 = slm.design(CROSSED, df)
    d = d0 if source == "pandas" else dask_design(CROSSED, dd.from_pandas(df, npartitions=3))
    ref, st = PLSState(d0), cls(d)

    def f(state, design, th, reml):  # lme4's objective from a state in its design's units
        return state.objective(design.internal_theta(th), REML=reml) + design.objective_offset(reml)

    for th in ([1.0, 1.0], [0.7, 0.2], [0.05, 1.5], [0.0, 0.8]):
        th = np.array(th)
        for reml in (True, False):
            assert abs(f(st, d, th, reml) - f(ref, d0, th, reml)) <= 1e-9 * abs(f(ref, d0, th, reml))
        np.testing.assert_allclose(d.cond.beta(st.beta), d0.cond.beta(ref.beta), rtol=1e-9)
        np.testing.assert_allclose(d.cond.sigma_factor * st.u, d0.cond.sigma_factor * ref.u, rtol=1e-7, atol=1e-10)


def test_dense_crossed_design_uses_dense_schur():
    # most level pairs occur: the dense Schur factorisation is chosen, and the fit equals the in-memory one
    df = slm.datasets.simulate_crossed(60000, 2000, 30, seed=4)
    ddf = dd.from_pandas(df, npartitions=4)
    d = dask_design(CROSSED, ddf)
    assert isinstance(d.pls(), DenseSchurPLSState)
    assert d.cross._full is None  # the full symmetric Z'Z was never built
    # nor by a whole fit (its start, search, check and Newton finish): the gradient made for the
    # finish reads Z'Z only when it is evaluated, which it is not for this backend
    slm.fit_design(d, REML=True)
    assert d.cross._full is None
    m1 = slm.lmer(CROSSED, ddf)
    m0 = slm.lmer(CROSSED, df)
    assert_same_optimum(m1, m0, rtol_obj=1e-8)


def test_moment_start_does_not_build_the_full_crossed_matrix():
    # a large crossed Dask design keeps only the lower part of Z'WZ; the start must not expand it
    df = slm.datasets.simulate_crossed(20000, 2500, 60, seed=3)
    d = dask_design(CROSSED, dd.from_pandas(df, npartitions=4))
    if d.cross.lower_part is None:
        pytest.skip("this design stores the full Z'WZ")
    th0 = d.moment_start()
    assert d.cross._full is None
    np.testing.assert_allclose(th0, slm.design(CROSSED, df).moment_start(), rtol=1e-10)
