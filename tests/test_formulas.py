"""R's formula vocabulary against lme4 (tests/reference/formula_reference.R made the values):
R's coefficient names, the objective at lme4's θ, lme4's optimum or lower, lme4's β."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sparselmm as slm

REF = json.loads((Path(__file__).parent / "reference" / "lme4_formulas.json").read_text())


def _data(name: str):
    if name == "sleep3":  # the bundled columns only, for '.'
        return slm.datasets.load("sleepstudy")
    if name == "sleepstudy":
        ss = slm.datasets.load("sleepstudy")
        # a covariate missing in every 7th row, as the R script makes it: the model frame drops those rows
        ss["w2"] = np.where((np.arange(len(ss)) + 1) % 7 == 0, np.nan, (ss["Days"] * 7) % 5)
        ss["n"] = ss["Days"] + 1.0
        ss["g"] = np.where(ss["Days"] % 2 == 0, "even", "odd")
        ss["o"] = pd.Categorical(np.where(ss["Days"] < 3, "lo", np.where(ss["Days"] < 7, "mid", "hi")),
                                 categories=["lo", "mid", "hi"], ordered=True)
        return ss
    return slm.datasets.load(name)


@pytest.mark.parametrize("case", REF, ids=[c["formula"] for c in REF])
def test_formula_matches_lme4(case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = slm.lmer(case["formula"], _data(case["dataset"]), REML=case["REML"], offset=case.get("offset") or None,
                     contrasts=case.get("contrasts") or None)
    assert list(m.fixef.index) == list(np.atleast_1d(case["fixef_names"]))
    assert m.nobs == case["nobs"]
    assert [cols for _, cols in m.design.cnms] == [list(np.atleast_1d(v)) for v in case["cnms"].values()]
    theta = np.atleast_1d(np.asarray(case["theta"], dtype=float))
    probe = m.design.objective_function(case["REML"])(theta)
    assert probe == pytest.approx(case["objective"], rel=1e-8)
    assert m.objective <= case["objective"] + 1e-6 * abs(case["objective"])  # lme4's optimum, or lower
    np.testing.assert_allclose(m.fixef.to_numpy(), np.atleast_1d(case["fixef"]), rtol=1e-4, atol=1e-8)
    np.testing.assert_allclose(m.se.to_numpy(), np.atleast_1d(case["se"]), rtol=1e-4)


def test_scale_takes_its_state_from_the_data_as_given():
    # R evaluates scale() on every row, then drops the rows with a missing value elsewhere
    ss = _data("sleepstudy")
    m = slm.lmer("Reaction ~ scale(Days) + w2 + (1 | Subject)", ss)
    kept = ss["w2"].notna().to_numpy()
    z = (ss["Days"] - ss["Days"].mean()) / ss["Days"].std()
    np.testing.assert_allclose(m.design.X[:, 1], z.to_numpy()[kept], rtol=1e-14)
    new = ss.iloc[:5]
    np.testing.assert_allclose(
        m.predict(new, re_form="NA").to_numpy(),
        m.fixef.iloc[0] + m.fixef.iloc[1] * z.to_numpy()[:5] + m.fixef.iloc[2] * new["w2"].to_numpy(),
        rtol=1e-12,
    )


def test_factor_needs_a_categorical_column_from_dask():
    dd = pytest.importorskip("dask.dataframe")
    ss = _data("sleepstudy")
    with pytest.raises(slm.ModelSpecError, match=r"factor\(\) in the fixed part .* make the column categorical first"):
        slm.lmer("Reaction ~ factor(Days) + (1 | Subject)", dd.from_pandas(ss, npartitions=2))
    f = "Reaction ~ sqrt(Days) + pmin(Days, 5) + log(Days + 1, base = 2) + (1 | Subject)"
    m1, m0 = slm.lmer(f, dd.from_pandas(ss, npartitions=3)), slm.lmer(f, ss)
    assert list(m1.fixef.index) == list(m0.fixef.index)
    assert m1.objective == pytest.approx(m0.objective, rel=1e-10)


def test_offsets_in_the_formula_add_up_and_reach_new_data():
    ss = _data("sleepstudy")
    m = slm.lmer("Reaction ~ Days + offset(10 * Days) + offset(log(n)) + (1 | Subject)", ss, offset="n")
    ref = slm.lmer("Reaction ~ Days + (1 | Subject)", ss.assign(o=10 * ss.Days + np.log(ss.n) + ss.n), offset="o")
    assert list(m.fixef.index) == ["(Intercept)", "Days"]
    assert m.objective == pytest.approx(ref.objective, rel=1e-12)
    np.testing.assert_allclose(m.fixef, ref.fixef, rtol=1e-10)
    new = ss.iloc[[0, 11, 25]]
    # the offsets evaluated on new data: the fit's own rows predict its fitted values
    np.testing.assert_allclose(m.predict(new), m.fitted().iloc[[0, 11, 25]], rtol=1e-12)
    np.testing.assert_allclose(m.predict(new, re_form="NA"), new.Days * m.fixef["Days"] + m.fixef.iloc[0]
                               + 10 * new.Days + np.log(new.n) + new.n, rtol=1e-12)
    with pytest.raises(slm.DataError, match=r"newdata lacks column\(s\) \['n'\] of the formula's offset\(\)"):
        slm.lmer("Reaction ~ Days + offset(log(n)) + (1 | Subject)", ss).predict(ss[["Days", "Subject"]])
    with pytest.raises(slm.FormulaError, match="an offset cannot be subtracted"):
        slm.design("Reaction ~ Days - offset(n) + (1 | Subject)", ss)
    dd = pytest.importorskip("dask.dataframe")
    with pytest.raises(slm.ModelSpecError, match=r"offset\(log\(n\)\) .* not available for a Dask fit yet; .* offset='off'"):
        slm.lmer("Reaction ~ Days + offset(log(n)) + (1 | Subject)", dd.from_pandas(ss, npartitions=2))


def test_relevel_names_its_reference_and_predicts_new_data_without_it():
    ss = _data("sleepstudy")
    m = slm.lmer("Reaction ~ relevel(factor(Days), ref = '3') + (1 | Subject)", ss)
    assert m.fixef.index[1] == 'relevel(factor(Days), ref = "3")0'
    few = ss[ss.Days < 2]  # no row of the reference level 3
    np.testing.assert_allclose(m.predict(few), m.fitted()[few.index], rtol=1e-12)
    with pytest.raises(slm.FormulaError, match=r"relevel\(\): ref = 'x' is not a level of the factor \(levels: \['even', 'odd'\]\)"):
        slm.design("Reaction ~ relevel(g, ref = 'x') + (1 | Subject)", ss)


def test_double_bar_on_a_factor_is_lme4s_and_says_so():
    ss = _data("sleepstudy")
    with pytest.warns(slm.SparseLMMWarning, match=r"'\|\|' in '\(g \|\| Subject\)' keeps the columns of factor 'g' correlated, "
                      r"as lme4 does .* write diag\(0 \+ g \| Subject\)"):
        d = slm.design("Reaction ~ Days + (g || Subject)", ss)
    assert d.cnms == [("Subject", ["(Intercept)"]), ("Subject", ["geven", "godd"])]  # lme4's terms, in its order


def test_contrasts_argument_is_checked():
    g = slm.datasets.load("grocery")
    with pytest.raises(slm.ArgumentError, match=r"contrasts names 'item', which is not a factor of the fixed part \(its factors: 'store'\)"):
        slm.lmer("price ~ store + (1 | item)", g, contrasts={"item": "contr.sum"})
    with pytest.raises(slm.ArgumentError, match=r"contrasts for 'store' must be one of contr.treatment, contr.sum, .* got 'sum'"):
        slm.lmer("price ~ store + (1 | item)", g, contrasts={"store": "sum"})
    m = slm.lmer("price ~ store + (1 | item)", g, contrasts={"store": "contr.sum"})
    new = g.iloc[[0, 10, 20, 30]]
    np.testing.assert_allclose(m.predict(new), m.fitted().iloc[[0, 10, 20, 30]], rtol=1e-12)  # the coding reaches new data
    dd = pytest.importorskip("dask.dataframe")
    with pytest.raises(slm.ArgumentError, match=r"contrasts= is not available for a Dask fit yet; write C\(f, contr.sum\)"):
        slm.lmer("price ~ store + (1 | item)", dd.from_pandas(g, npartitions=2), contrasts={"store": "contr.sum"})


def test_update_refits_with_the_call_changed():
    ss = slm.datasets.load("sleepstudy")
    m = slm.lmer("Reaction ~ Days + (Days | Subject)", ss)
    for kw, formula, extra in [
        (dict(formula=". ~ . - Days"), "Reaction ~ (Days | Subject)", {}),
        (dict(formula="log(.) ~ ."), "log(Reaction) ~ Days + (Days | Subject)", {}),
        (dict(formula="~ . + I(Days^2)"), "Reaction ~ Days + I(Days^2) + (Days | Subject)", {}),
        (dict(REML=False), "Reaction ~ Days + (Days | Subject)", dict(REML=False)),
    ]:
        u, ref = m.update(**kw), slm.lmer(formula, ss, **extra)
        assert list(u.fixef.index) == list(ref.fixef.index) and u.REML == ref.REML
        assert u.objective == pytest.approx(ref.objective, rel=1e-10)
    u = m.update(data=ss.iloc[:120], optimizer="nelder_mead")
    assert u.nobs == 120 and u.optsum.optimizer == "nelder_mead"
    assert u.objective == pytest.approx(slm.lmer(m.formula, ss.iloc[:120]).objective, rel=1e-6)
    assert m.refit(REML=False).update(REML=True).objective == pytest.approx(m.objective, rel=1e-10)
    with pytest.raises(slm.FormulaError, match=r"update\(\): '\.' inside the term"):
        m.update(". ~ .^2")
    with pytest.raises(slm.SparseLMMError, match=r"update\(\) needs the call of lmer\(\)"):
        slm.fit_design(slm.design(m.formula, ss)).update(REML=False)
    with pytest.raises(slm.ArgumentError, match=r"update\(\) got an unknown keyword 'reml'"):
        m.update(reml=False)


def test_missing_values_inside_scale_and_poly_as_r_treats_them():
    ss = slm.datasets.load("sleepstudy")
    ss["x"] = np.where(np.arange(len(ss)) % 9 == 0, np.nan, ss["Days"])
    m = slm.lmer("Reaction ~ scale(x) + (1 | Subject)", ss)  # R: colMeans(na.rm = TRUE), sd of the rest
    x = ss["x"].dropna()
    np.testing.assert_allclose(m.design.X[:, 1], ((x - x.mean()) / x.std()).to_numpy(), rtol=1e-13)
    assert m.objective == pytest.approx(1585.09508537, rel=1e-9)  # lme4 1.1-31's REMLcrit, print(digits = 12)
    with pytest.raises(slm.FormulaError, match=r"poly\(x, 2\) has missing values in column 'x', which R's poly\(\) does not allow"):
        slm.design("Reaction ~ poly(x, 2) + (1 | Subject)", ss)


def test_review_of_the_r_formula_work():
    # each against R (lme4 1.1-31 / R 4): the values in the comments were printed by R
    from sparselmm.spec.formula import update_formula
    from sparselmm.spec.rfunctions import r_round

    np.testing.assert_array_equal(r_round(np.array([0.15, 0.35, 1.15, -0.15, 2.5, 0.25]), 1), [0.1, 0.3, 1.1, -0.1, 2.5, 0.2])
    assert float(r_round(2.675, 2)) == 2.67 and list(r_round(np.array([2.5, 0.5, -2.5]), 0)) == [2.0, 0.0, -2.0]
    ss = _data("sleepstudy")
    # the response's and an offset's transforms take their state from the data as given
    np.testing.assert_allclose(slm.lmer("scale(Reaction) ~ w2 + (1 | Subject)", ss).fixef, [-0.0761345, 0.0419501], atol=5e-8)
    np.testing.assert_allclose(slm.lmer("Reaction ~ w2 + offset(scale(Days)) + (1 | Subject)", ss).fixef, [294.532, 2.20524], rtol=2e-6)
    assert slm.lmer("Reaction ~ offset(n) + offset(n) + (1 | Subject)", ss).fixef.iloc[0] == pytest.approx(293.008, abs=1e-3)
    assert slm.lmer("Reaction ~ center(w2) + (1 | Subject)", ss).fixef.iloc[1] == pytest.approx(2.363, abs=1e-3)
    np.testing.assert_allclose(slm.lmer("Reaction ~ poly(w2, 2, raw = TRUE) + (1 | Subject)", ss).fixef.iloc[1:], [20.8131, -4.61347], rtol=1e-5)
    # names: back-quoted and dotted columns, full-rank sum contrasts, a C() the user wrote
    s2 = ss.assign(**{"x.y": ss.Days / 3, "a-b": ss.Days * 2.0 + 1})
    assert list(slm.lmer("Reaction ~ I(x.y^2) + `a-b` + (1 | Subject)", s2).fixef.index) == ["(Intercept)", "I(x.y^2)", "`a-b`"]
    assert list(slm.lmer("Reaction ~ 0 + C(g, contr.sum) + (1 | Subject)", ss).fixef.index) == ["C(g, contr.sum)even", "C(g, contr.sum)odd"]
    assert list(slm.lmer("Reaction ~ C(o, contr.treatment) + (1 | Subject)", ss).fixef.index)[1:] == [
        "C(o, contr.treatment)2", "C(o, contr.treatment)3"]  # R calls a bare contr function with nlevels: numbered
    # a level the fit never saw is an error in predict, as R's "has new levels"
    m = slm.lmer("Reaction ~ factor(Days) + (1 | Subject)", ss[ss.Days < 8])
    with pytest.raises(slm.DataError, match="values the fit did not see"):
        m.predict(ss.assign(Days=9).iloc[:2], re_form="NA")
    # update: a term removed by '- term', none twice
    assert update_formula("y ~ x + (1 | g)", ". ~ . - (1|g) + (x|g)") == "y ~ x + (x|g)"
    assert update_formula("y ~ x + (1 | g)", "~ . + .") == "y ~ x + (1 | g)"


@pytest.mark.parametrize("case", [c for c in REF if "predictions" in c], ids=lambda c: c["formula"])
def test_spline_predictions_on_new_data_match_lme4_beyond_the_range(case):
    # R's predict() rebuilds ns()/bs() with the fit's knots (makepredictcall): linear beyond the
    # boundary knots for ns(), the polynomial pieces extended for bs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = slm.lmer(case["formula"], _data(case["dataset"]), REML=case["REML"])
    new = pd.DataFrame({"Days": np.asarray(case["predict_days"], dtype=float), "Subject": "308"})
    np.testing.assert_allclose(m.predict(new, re_form="NA").to_numpy(), case["predictions"], rtol=1e-6)


@pytest.mark.parametrize("formula", [
    "Reaction ~ scale(Days) + w2 + (1 | Subject)",
    "Reaction ~ scale(x, center = FALSE) + center(Days) + w2 + (scale(Days) | Subject)",
    "Reaction ~ I(scale(log(x)) * 2) + scale(Days, center = 3) + (1 | Subject)",
])
def test_scale_from_dask_takes_its_moments_from_all_rows_in_the_first_pass(formula):
    # the model specs are made on a sample of complete rows; scale()'s mean and SD come from the first
    # pass over all rows as given (R's model.frame), so the fit is the in-memory one (which is lme4's)
    dd = pytest.importorskip("dask.dataframe")
    ss = _data("sleepstudy")
    ss["x"] = np.where(np.arange(len(ss)) % 11 == 0, np.nan, np.sin(np.arange(len(ss))) * 3 + 10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m0 = slm.lmer(formula, ss)
        m1 = slm.lmer(formula, dd.from_pandas(ss, npartitions=4))
    assert list(m1.fixef.index) == list(m0.fixef.index)
    assert m1.objective == pytest.approx(m0.objective, rel=1e-12)
    np.testing.assert_allclose(m1.fixef.to_numpy(), m0.fixef.to_numpy(), rtol=1e-7)
    new = ss.dropna(subset=["w2", "x"]).iloc[:7]
    np.testing.assert_allclose(m1.predict(new, re_form="NA").to_numpy(), m0.predict(new, re_form="NA").to_numpy(), rtol=1e-7)


def test_whole_column_transforms_dask_cannot_hold_are_refused_by_name():
    dd = pytest.importorskip("dask.dataframe")
    d = dd.from_pandas(_data("sleepstudy"), npartitions=2)
    for formula, name in (("scale(Reaction) ~ Days + (1 | Subject)", r"scale\(\) in the response"),
                          ("Reaction ~ scale(poly(Days, 2)) + (1 | Subject)", r"poly\(\)"),
                          ("Reaction ~ ns(Days, df = 3) + (1 | Subject)", r"ns\(\)"),
                          ("Reaction ~ ordered(g) + (1 | Subject)", r"ordered\(\)")):
        with pytest.raises(slm.ModelSpecError, match=name):
            slm.lmer(formula, d)


@pytest.mark.parametrize("formula, message", [
    ("Reaction ~ relevel(Days, ref = 2) + (1 | Subject)", r"relevel\(\) takes a factor, as R's, not numbers"),
    ("Reaction ~ relevel(o, ref = 'mid') + (1 | Subject)", r"relevel\(\) takes an unordered factor"),
    ("Reaction ~ round(Days, digits = 'a') + (1 | Subject)", r"round\(\): digits must be a number, not 'a'"),
    ("Reaction ~ round(Days, digits = 1.5) + (1 | Subject)", r"round\(\): digits must be a whole number"),
    ("Reaction ~ log(Days + 1, base = 'e') + (1 | Subject)", r"log\(\): base must be a number"),
    ("Reaction ~ factor(Days, levels = c(1, 2)) + (1 | Subject)", r"factor\(\): the value\(s\) \['0', '3'.* not among levels"),
    ("Reaction ~ factor(g, labels = c('a')) + (1 | Subject)", r"factor\(\): labels has 1 values for 2 levels"),
    ("Reaction ~ C(g, contr.treatment(3)) + (1 | Subject)", r"contr.treatment\(3\) is made for 3 levels, but the factor has 2"),
    ("Reaction ~ C(g, contr.treatment, base = 5) + (1 | Subject)", r"base = 5, but there are 2 levels"),
    ("Reaction ~ C(g, contr.sum, base = 2) + (1 | Subject)", r"contr.sum\(\) has no argument base"),
    ("Reaction ~ C(g, contr.poly, 1) + (1 | Subject)", r"C\(\): how.many is not supported"),
    ("Reaction ~ C(g, 'contr.foo') + (1 | Subject)", r"C\(\): unknown contrasts 'contr.foo'"),
    ("Reaction ~ C(g, contr.sum(Days)) + (1 | Subject)", r"contr.sum\(\): n must be the number of levels"),
    ("Reaction ~ ns(Days) + bs(Days, Boundary.knots = c(1, 2, 3)) + (1 | Subject)", r"bs\(\): Boundary.knots must be two numbers"),
    ("Reaction ~ ns(Days, df = 0) + (1 | Subject)", r"ns\(\): df = 0 is too small"),
    ("Reaction ~ bs(Days, knots = c('a', 1)) + (1 | Subject)", r"c\(\) takes numbers or strings, all of one kind"),
    ("Reaction ~ poly(Days, 20) + (1 | Subject)", r"poly\(\): degree = 20 must be less than the number of distinct values \(10\)"),
    ("Reaction ~ poly(Days, 0) + (1 | Subject)", r"poly\(\): degree must be at least 1"),
    ("Reaction ~ poly(Days, 2, raw = 'yes') + (1 | Subject)", r"poly\(\): raw must be TRUE or FALSE"),
    ("Reaction ~ bs(Days, df = 1) + (1 | Subject)", r"bs\(\): df = 1 is too small for degree 3"),
    ("Reaction ~ ns(Days, knots = 'a') + (1 | Subject)", r"ns\(\): knots must be numbers"),
    ("Reaction ~ exp(Days, 2) + (1 | Subject)", r"in exp\(Days, 2\), exp\(\) takes 1 positional argument but 2"),
    ("Reaction ~ round(Days, 1, 2) + (1 | Subject)", r"round\(\) takes from 1 to 2 positional arguments"),
    ("Reaction ~ relevel(g) + (1 | Subject)", r"relevel\(\) missing 1 required positional argument: 'ref'"),
    ("Reaction ~ pmin() + (1 | Subject)", r"pmin\(\) needs at least one argument"),
    ("Reaction ~ c(1, 2) + (1 | Subject)", r"c\(\) makes a vector of constants for an argument"),
    ("Reaction ~ cr(Days) + (1 | Subject)", r"cr\(Days\) cannot be computed: Must specify either 'df' or 'knots'"),
    ("Reaction ~ ns(Days, dof = 3) + (1 | Subject)", r"ns\(\) has no argument 'dof'"),
    ("Reaction ~ log(ns(Days, df = 3, Boundary.knot = c(0, 9)) + 1) + (1 | Subject)", r"ns\(\) has no argument 'Boundary.knot'"),
])
def test_r_functions_refuse_what_r_refuses_naming_the_function(formula, message):
    with pytest.raises(slm.FormulaError, match=message) as err:
        slm.lmer(formula, _data("sleepstudy"))
    assert "Traceback" not in str(err.value) and "Unable to evaluate" not in str(err.value)
