"""The inputs real data bring (issue #17): each either gives the right answer or one clear error.

Pandas objects align by index; levels match by value whatever the dtype; complex numbers and
models that cannot be fitted are refused; valid-but-awkward data give the numbers of the same
data in plain form.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import fit, load_data

import sparselmm as slm

F = "Reaction ~ Days + (Days | Subject)"


@pytest.fixture
def ss():
    return load_data("sleepstudy").copy()


def _fit(formula, data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        return slm.lmer(formula, data, **kw)


# ---- pandas indexes ---------------------------------------------------------------------------


def test_weights_and_offset_series_align_on_the_index(ss):
    # before: used by position (reversed-index weights gave 171.956 instead of 172.117)
    w = pd.Series(np.linspace(0.5, 2.0, len(ss)), index=ss.index)
    off = pd.Series(np.linspace(-3.0, 3.0, len(ss)), index=ss.index)
    m0 = _fit(F, ss, weights=w.to_numpy(), offset=off.to_numpy())
    m1 = _fit(F, ss, weights=w[::-1], offset=off.sample(frac=1, random_state=2))
    assert m1.objective == m0.objective and np.array_equal(m1.fixef, m0.fixef)
    # a Series over more rows than the data (the data a subset): its labels pick the values
    sub = ss.iloc[::2]
    m2 = _fit(F, sub, weights=w)
    assert m2.objective == _fit(F, sub, weights=w.to_numpy()[::2]).objective
    # labels the data have but the Series lacks: refused, never taken by position
    with pytest.raises(slm.DataError, match="weights.*index lacks 180"):
        slm.lmer(F, ss, weights=pd.Series(w.to_numpy(), index=np.arange(1000, 1180)))
    with pytest.raises(slm.DataError, match="offset.*index lacks 1 "):
        slm.lmer(F, ss, offset=off.drop(5))


def test_refit_with_a_series_aligns_on_the_rows_of_the_fit(ss):
    # before: m.refit(ss.Reaction.sample(frac=1)) gave 1953 instead of 1743
    m = fit("sleepstudy", F, True)
    r = m.refit(ss.Reaction.sample(frac=1, random_state=1))
    assert r.objective == pytest.approx(m.objective, rel=1e-12)
    with pytest.raises(slm.DataError, match="new_y.*index lacks"):
        m.refit(pd.Series(ss.Reaction.to_numpy(), index=np.arange(1000, 1180)))
    with pytest.raises(slm.ArgumentError, match="new_y"):
        m.refit("abc")


def test_a_missing_weight_drops_its_row(ss):
    # lme4's model frame drops the row (before: "weights must be finite and positive")
    ss.loc[3, "Reaction"] = np.nan
    w = np.ones(len(ss))
    w[[3, 7]] = np.nan  # row 3 is dropped anyway, row 7 for its weight
    m = _fit(F, ss, weights=w)
    assert m.nobs == 178 and m.design.n_dropped == 2
    assert m.objective == pytest.approx(_fit(F, ss.drop(index=[3, 7])).objective, rel=1e-12)


# ---- complex numbers, object columns ------------------------------------------------------------------


@pytest.mark.parametrize("col", ["Reaction", "Days"])
def test_complex_numbers_are_refused(ss, col):
    # before: the imaginary part was dropped silently
    with pytest.raises(slm.DataError, match=f"{col}.*complex"):
        slm.lmer(F, ss.assign(**{col: ss[col] + 1j}))
    with pytest.raises(slm.DataError, match="weights.*complex"):
        slm.lmer(F, ss, weights=np.ones(len(ss)) + 0j)
    with pytest.raises(slm.ArgumentError, match="new_y.*complex"):
        fit("sleepstudy", F, True).refit(ss.Reaction.to_numpy() + 1j)


def test_complex_numbers_through_dask_are_refused(ss):
    dd = pytest.importorskip("dask.dataframe")
    with pytest.raises(slm.DataError, match="Reaction.*complex"):
        slm.lmer(F, dd.from_pandas(ss.assign(Reaction=ss.Reaction + 1j), npartitions=2))


def test_object_columns_of_numbers_are_numbers(ss):
    # an object-dtype response holding floats was refused; an object predictor holding numbers
    # is a numeric column (not a factor with one level per value)
    m0 = fit("sleepstudy", F, True)
    m = _fit(F, ss.assign(Reaction=ss.Reaction.astype(object), Days=ss.Days.astype(object)))
    assert m.objective == m0.objective and list(m.fixef.index) == ["(Intercept)", "Days"]


def test_nullable_dtypes_give_the_plain_fit(ss):
    m0 = fit("sleepstudy", F, True)
    d = ss.assign(Days=ss.Days.astype("Int64"), Reaction=ss.Reaction.astype("Float64"))
    assert _fit(F, d).objective == pytest.approx(m0.objective, rel=1e-14)
    d.loc[4, "Days"] = pd.NA
    assert _fit(F, d).nobs == 179


# ---- levels matched by value in predictions ---------------------------------------------------------


@pytest.mark.parametrize("kind", ["float", "bool", "datetime", "int"])
def test_predict_on_the_training_data_is_the_fitted_values(ss, kind):
    # before: a float grouping column's levels '0.0' were new levels against the fit's '0', and
    # allow_new_levels=True returned population-level predictions (77.9 off `fitted`)
    g = {"float": ss.Subject.cat.codes.astype(float), "int": ss.Subject.cat.codes.astype(np.int64),
         "bool": ss.Subject.cat.codes < 9,
         "datetime": pd.Timestamp("2020-01-01") + pd.to_timedelta(ss.Subject.cat.codes, unit="D")}[kind]
    data = ss.assign(g=g)
    m = _fit("Reaction ~ Days + (Days | g)", data)
    fitted = m.fitted().to_numpy()
    np.testing.assert_allclose(m.predict(data).to_numpy(), fitted, rtol=1e-12)
    np.testing.assert_allclose(m.predict(data, allow_new_levels=True).to_numpy(), fitted, rtol=1e-12)


def test_a_datetime_predictor_is_refused_and_its_labels_are_a_factor(ss):
    # R computes with a POSIXct/Date predictor as a number (seconds or days since 1970); coding it as
    # a factor of its timestamps (as before) is another model, silently: refused, naming both ways out
    v = pd.Timestamp("2020-01-01") + pd.to_timedelta(ss.Days % 3, unit="D")
    for formula in ("Reaction ~ v + (1 | Subject)", "Reaction ~ Days + (v | Subject)", "Reaction ~ log(v) + (1 | Subject)"):
        with pytest.raises(slm.DataError, match=r"column 'v' holds dates or times.*\.dt\.days.*astype\(str\)"):
            _fit(formula, ss.assign(v=v))
    m = _fit("Reaction ~ v + (1 | Subject)", ss.assign(v=v.astype(str)))
    assert list(m.fixef.index) == ["(Intercept)", "v2020-01-02", "v2020-01-03"]
    m = _fit("Reaction ~ Days + (1 | v)", ss.assign(v=v))  # as a grouping factor it is its levels
    assert m.design.ngroups == {"v": 3}
    np.testing.assert_allclose(m.predict(ss.assign(v=v)).to_numpy(), m.fitted().to_numpy(), rtol=1e-12)


@pytest.mark.parametrize("kind", ["bool"])
def test_predict_with_a_factor_of_any_dtype(ss, kind):
    # a bool fixed factor failed on 'False' vs ['FALSE', 'TRUE']
    v = {"bool": ss.Days > 4}[kind]
    data = ss.assign(v=v)
    m = _fit("Reaction ~ v + (1 | Subject)", data)
    np.testing.assert_allclose(m.predict(data).to_numpy(), m.fitted().to_numpy(), rtol=1e-12)
    # and by label: the strings R prints match too
    if kind == "bool":
        np.testing.assert_allclose(m.predict(data.assign(v=np.where(data.v, "TRUE", "FALSE"))).to_numpy(),
                                   m.fitted().to_numpy(), rtol=1e-12)


def test_predict_with_missing_grouping_values(ss):
    m = fit("sleepstudy", F, True)
    nd = ss.assign(Subject=ss.Subject.astype(object).where(ss.Days != 3, None))
    with pytest.raises(slm.DataError, match="missing values in grouping factor 'Subject'"):
        m.predict(nd)
    # lme4's allow.new.levels: those rows at the population level
    p = m.predict(nd, allow_new_levels=True)
    pop = m.predict(ss, re_form="NA")
    np.testing.assert_allclose(p[ss.Days == 3], pop[ss.Days == 3], rtol=1e-12)
    np.testing.assert_allclose(p[ss.Days != 3], m.fitted()[ss.Days != 3], rtol=1e-12)


def test_predict_with_an_offset(ss):
    off = np.linspace(-5, 5, len(ss))
    data = ss.assign(o=off)
    m = _fit(F, data, offset="o")  # a column: new data bring theirs
    np.testing.assert_allclose(m.predict(data).to_numpy(), m.fitted().to_numpy(), rtol=1e-12)
    m2 = _fit(F, ss, offset=off)  # an array: the caller says what it is for new data
    with pytest.raises(slm.DataError, match="pass offset="):
        m2.predict(ss)
    np.testing.assert_allclose(m2.predict(ss, offset=off).to_numpy(), m2.fitted().to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(m2.predict(ss, offset=pd.Series(off, index=ss.index)[::-1]).to_numpy(),
                               m2.fitted().to_numpy(), rtol=1e-12)


# ---- models that cannot be fitted, said at once -----------------------------------------------------


def test_duplicated_random_effects_terms_are_refused(ss):
    # before: "truth value of an array is ambiguous" from pls.py
    with pytest.raises(slm.ModelSpecError, match="'\\(Intercept\\)' of grouping factor 'Subject' appears in"):
        slm.lmer("Reaction ~ Days + (1|Subject) + (1|Subject)", ss)
    with pytest.raises(slm.ModelSpecError, match="appears in"):
        slm.lmer("Reaction ~ Days + (1|Subject) + (Days||Subject)", ss)


def test_grouping_column_of_lists_is_refused(ss):
    with pytest.raises(slm.DataError, match="'g' holds list values"):
        slm.lmer("Reaction ~ Days + (1 | g)", ss.assign(g=[[i % 3] for i in range(len(ss))]))


def test_a_model_that_reproduces_its_response_is_refused_at_once():
    # the response inside its own random-effects term: σ → 0 and no optimum (lme4: 82,000
    # evaluations and 15 s, σ = 3e-4; before here: 13 s)
    rng = np.random.default_rng(1)
    d = pd.DataFrame({"x": rng.normal(size=120), "g": np.repeat(np.arange(12), 10).astype(str),
                      "f": rng.choice(list("abc"), 120), "i": np.tile(np.arange(10), 12).astype(str)})
    with pytest.raises(slm.ModelSpecError, match=r"reproduces the response 'x' exactly.*\(poly\(x,2\)\|\|g\)"):
        slm.lmer("x ~ (poly(x,2)||g) + (0+f|i)", d)
    # the formula also repeats its term
    with pytest.raises(slm.ModelSpecError, match="appears in"):
        slm.lmer("x ~ (poly(x,2)||g) + (poly(x,2)||g) + (0+f|i)", d)


def test_non_string_column_labels(ss):
    d = ss.rename(columns={"Days": 5})
    m = _fit("Reaction ~ `5` + (1 | Subject)", d)
    assert m.objective == pytest.approx(_fit("Reaction ~ Days + (1 | Subject)", ss).objective, rel=1e-14)


# ---- anova compares models of one response and data ---------------------------------------------------


def test_anova_refuses_models_of_other_data(ss):
    m0 = fit("sleepstudy", "Reaction ~ 1 + (Days | Subject)", False)
    m1 = fit("sleepstudy", F, False)
    assert np.isfinite(slm.anova(m0, m1)["Chisq"].iloc[1])
    other = {
        "responses": _fit("log(Reaction) ~ Days + (Days | Subject)", ss, REML=False),
        "different responses": _fit(F, ss.assign(Reaction=ss.Reaction.sample(frac=1, random_state=3).to_numpy()), REML=False),
        "grouping factor 'Subject'": _fit(F, ss.assign(Subject=ss.Subject.sample(frac=1, random_state=3).to_numpy()),
                                          REML=False),
        "prior weights": _fit(F, ss, REML=False, weights=np.linspace(0.5, 2, len(ss))),
    }
    for what, m in other.items():
        with pytest.raises(slm.ModelSpecError, match=what):
            slm.anova(m0, m)
    with pytest.raises(slm.ArgumentError, match="argument 2"):
        slm.anova(m0, 3)


# ---- flags and settings -------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["False", "yes", 2, None])
def test_reml_must_be_a_boolean(ss, value):
    # before: truth-tested ("False", "yes", 2 fitted by REML, None by ML)
    with pytest.raises(slm.ArgumentError, match="REML"):
        slm.lmer(F, ss, REML=value)
    with pytest.raises(slm.ArgumentError, match="check"):
        slm.lmer(F, ss, check="yes")
    assert slm.lmer(F, ss, REML=np.bool_(False)).REML is False


@pytest.mark.parametrize("options,match", [({"foo": 1}, "unknown option 'foo'"), ({"maxfev": -1}, "maxfev"),
                                           ({"initial_step": -1}, "initial_step"), ("x", "options"),
                                           ({"maxfev": "a"}, "maxfev"), ({"initial_step": 0}, "initial_step")])
def test_optimizer_options_are_checked(ss, options, match):
    with pytest.raises(slm.ArgumentError, match=match):
        slm.lmer(F, ss, options=options)


def test_lme4s_maxfun_is_the_evaluation_limit(ss):
    with pytest.warns(slm.ConvergenceWarning, match="evaluation limit"):
        m = slm.lmer(F, ss, optimizer="bobyqa", check=False, options={"maxfun": 5})
    assert m.optsum.feval <= 8  # the limit, the start and the final evaluation


@pytest.mark.parametrize("optimizer", ["bobyqa", "nelder_mead", "cobyqa", "auto"])
def test_a_start_of_the_wrong_length_or_kind_is_refused(ss, optimizer):
    for start in ([1.0, 2.0], "a", [1.0, np.nan, 1.0], [-1.0, 0.0, 1.0]):
        with pytest.raises(slm.ArgumentError, match="start"):
            slm.lmer(F, ss, optimizer=optimizer, start=start)


def test_arguments_of_the_fitted_model_are_checked():
    m = fit("sleepstudy", F, True)
    for call, match in [
        (lambda: m.simulate(nsim=-1), "nsim"), (lambda: m.simulate(nsim=0), "nsim"),
        (lambda: m.simulate(nsim=2.5), "nsim"), (lambda: m.simulate(seed="abc"), "seed"),
        (lambda: m.simulate(seed=-1), "seed"), (lambda: m.confint(method="boot", nsim=0), "nsim"),
        (lambda: m.confint(level="0.95"), "level"), (lambda: m.confint(level=None), "level"),
        (lambda: m.confint(method=None), "method"), (lambda: m.summary(ddf=None), "ddf"),
        (lambda: m.coef_table(ddf="nope"), "ddf"), (lambda: m.predict(allow_new_levels="yes"), "allow_new_levels"),
    ]:
        with pytest.raises(slm.ArgumentError, match=match):
            call()


def test_profile_intervals_on_a_singular_slope_fit():
    # before: brentq's "f(a) and f(b) must have different signs"
    rng = np.random.default_rng(7)
    d = pd.DataFrame({"g": np.repeat(np.arange(10), 6).astype(str), "x": np.tile(np.arange(6.0), 10)})
    d["y"] = rng.normal(size=60) + 0.3 * d.x + np.repeat(rng.normal(size=10), 6)
    m = _fit("y ~ x + (x | g)", d)
    assert m.singular
    ci = m.confint()
    assert np.all(np.isfinite(ci.to_numpy()))
    assert ci.loc[".sig03", "2.5 %"] == 0.0  # the slope's SD: its bound is the lower end
    lo, hi = ci.loc[".sig02"]  # the correlation is not identified when the slope's SD is 0
    assert -1.0 <= lo < hi <= 1.0
    assert ci.loc["x", "2.5 %"] < m.fixef["x"] < ci.loc["x", "97.5 %"]


@pytest.mark.parametrize("dtype", [object, "boolean"])
def test_predict_with_a_logical_grouping_column_holding_missing_values(ss, dtype):
    # before: booleans became "TRUE"/"FALSE" only when nothing was missing, so every row was a new
    # level and allow_new_levels=True gave the population value throughout
    m = _fit("Reaction ~ Days + (1 | g)", ss.assign(g=ss.Subject.cat.codes < 9))
    nd = pd.DataFrame({"Days": [1.0] * 3, "g": pd.Series([True, False, None], dtype=dtype)})
    p = m.predict(nd, allow_new_levels=True).to_numpy()
    full = m.predict(pd.DataFrame({"Days": [1.0, 1.0], "g": [True, False]})).to_numpy()
    pop = m.predict(nd, re_form="NA").to_numpy()
    np.testing.assert_allclose(p, [full[0], full[1], pop[2]], rtol=1e-12)
    assert full[0] != full[1]


def test_wrong_choices_are_argument_errors(ss):
    m = fit("sleepstudy", F, True)
    for call, match in [(lambda: slm.lmer(F, ss, na_action="ignore"), "na_action"),
                        (lambda: m.predict(ss, re_form="x"), "re_form"),
                        (lambda: m.residuals("x"), "residual type"),
                        (lambda: slm.anova(m, type="IV"), "type must be 1, 2 or 3"),  # one model: lmerTest's F-table
                        (lambda: slm.anova(m, m, names=["a"]), "1 names for 2 models")]:
        with pytest.raises(slm.ArgumentError, match=match):
            call()


def test_an_absurd_start_is_refused_without_numpy_warnings(ss):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(slm.ConvergenceError, match="starting values"):
            slm.lmer(F, ss, start=[1e200, 0.0, 1e200])


def test_numbers_written_as_strings_are_a_factor_with_a_warning(ss):
    # a factor, as R treats character columns, but said: a number stored as text is an accident as
    # often as not (and through Dask, object columns arrive as strings)
    with pytest.warns(slm.SparseLMMWarning, match="'Days' holds strings that all read as numbers.*10 levels"):
        m = slm.lmer("Reaction ~ Days + (1 | Subject)", ss.assign(Days=ss.Days.astype(str)))
    assert len(m.fixef) == 10
    dd = pytest.importorskip("dask.dataframe")
    with pytest.warns(slm.SparseLMMWarning, match="'Days' holds strings that all read as numbers"):
        slm.lmer("Reaction ~ Days + (1 | Subject)", dd.from_pandas(ss.assign(Days=ss.Days.astype(object)), npartitions=3))


@pytest.mark.filterwarnings("ignore::sparselmm.ConvergenceWarning")  # decrement 1.6e-4 on an objective of -4138
def test_precise_data_are_fitted_not_refused_as_exact():
    # R² above 1 - 1e-10 but with a residual the doubles hold: lme4 fits it (σ = 1.934e-6, θ = 0.528)
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(30), 6)
    x = np.tile(np.arange(6.0), 30)
    y = 5 + 0.3 * x + 1e-6 * rng.normal(size=30)[g] + 2e-6 * rng.normal(size=180)
    m = _fit("y ~ x + (1|g)", pd.DataFrame({"y": y, "x": x, "g": g.astype(str)}))
    assert m.sigma == pytest.approx(1.934e-6, rel=1e-3) and m.theta[0] == pytest.approx(0.528, rel=1e-2)


def test_in_is_rs_nesting_operator(ss):
    # R: model.matrix(~ Days %in% f) has (Intercept), Days:fhi, Days:flo (formulaic reads it as f/Days)
    d = ss.assign(f=np.where(ss.Days < 5, "lo", "hi"))
    assert slm.design("Reaction ~ Days %in% f + (1|Subject)", d).X_names == ["(Intercept)", "Days:fhi", "Days:flo"]
    assert slm.design("Reaction ~ f + Days %in% f + (1|Subject)", d).X_names == ["(Intercept)", "flo", "fhi:Days",
                                                                                "flo:Days"]


def test_dask_predict_and_anova_as_in_memory(ss):
    dd = pytest.importorskip("dask.dataframe")
    df = ss.assign(o=100.0)
    md = slm.lmer(F, dd.from_pandas(df, npartitions=3), offset="o")
    nd = df.iloc[[0, 10, 20]]
    want = md.predict(nd.assign(o=0.0)).to_numpy()
    np.testing.assert_allclose(md.predict(dd.from_pandas(nd.assign(o=0.0), npartitions=1)).compute(), want)
    np.testing.assert_allclose(md.predict(dd.from_pandas(nd.assign(z=0.0), npartitions=1), offset="z").compute(), want)
    with pytest.raises(slm.DataError, match="lacks the offset column 'o'"):
        md.predict(dd.from_pandas(nd.drop(columns="o"), npartitions=1)).compute()
    with pytest.raises(slm.ArgumentError, match="offset"):
        md.predict(offset=np.zeros(3))
    ddf = dd.from_pandas(ss, npartitions=3)  # nested models on one Dask DataFrame
    m0 = slm.lmer("Reaction ~ 1 + (1|Subject)", ddf, REML=False)
    m1 = slm.lmer("Reaction ~ Days + (1|Subject)", ddf, REML=False)
    r = slm.anova(m0, m1)
    r0 = slm.anova(fit("sleepstudy", "Reaction ~ 1 + (1|Subject)", False), fit("sleepstudy", "Reaction ~ Days + (1|Subject)", False))
    assert r["Chisq"].iloc[1] == pytest.approx(r0["Chisq"].iloc[1], rel=1e-8)


def test_more_argument_spellings(ss):
    m = fit("sleepstudy", F, True)
    assert slm.lmer(F, ss, options={"maxfun": 1e4}).optsum.feval < 1e4  # R writes limits as doubles
    with pytest.raises(slm.ArgumentError, match="names"):
        slm.anova(m, m, names="ab")
    with pytest.raises(slm.DataError, match="weights must be numbers, but it holds strings"):
        slm.lmer(F, ss, weights=pd.Series(["1.5"] * len(ss), index=ss.index))
