"""design(): lme4's layout for every reference case, missing values, weights, offsets."""

import time

import numpy as np
import pandas as pd
import pytest
from conftest import CASES, REF, load_data

import sparselmm as slm


@pytest.mark.parametrize("case", CASES)
def test_design_matches_lme4(case):
    r = REF[case]
    rec = r["design"]
    d = slm.design(r["formula"], load_data(r["dataset"]))
    assert d.X_names == rec["X_names"]
    assert list(d.Zt.shape) == rec["Zt_dim"]
    np.testing.assert_array_equal(d.theta_start, rec["theta_start"])
    np.testing.assert_array_equal(d.lower, [-np.inf if v is None else v for v in r["lower"]])
    assert list(d.Gp) == rec["Gp"]
    assert d.cnms == [(c["group"], c["columns"]) for c in rec["cnms"]]
    assert list(d.Lind + 1) == rec["Lind"]  # lme4's Lind is 1-based
    assert d.ngroups == r["ngroups"]
    assert d.n == r["nobs"]


def test_zt_entries_are_the_term_columns():
    """Row j*k + c of a term's block holds column c of the observations at level j."""
    ss = load_data("sleepstudy")
    d = slm.design("Reaction ~ Days + (Days | Subject)", ss)
    Z = d.Zt.T.toarray()
    subj = ss["Subject"].cat.codes.to_numpy()
    for i in [0, 17, 100, 179]:
        j = subj[i]
        assert Z[i, 2 * j] == 1.0 and Z[i, 2 * j + 1] == ss["Days"].iloc[i]
        assert np.count_nonzero(Z[i]) == (2 if ss["Days"].iloc[i] else 1)


def test_cross_products_are_those_of_z_x_y():
    d = slm.design("Reaction ~ Days + (Days | Subject)", load_data("sleepstudy"))
    Z = d.Zt.T.toarray()
    cp = d.cross
    # in the engine's units: X' = X T (Days centred and scaled), y' = (y - ȳ)/s_y
    c = d.cond
    X = d.X @ c.T
    y = (d.y - d.X @ c.y_shift) / c.y_scale
    np.testing.assert_allclose(X[:, 1], (d.X[:, 1] - d.X[:, 1].mean()) / c.x_scale[1], atol=1e-14)
    assert c.x_scale[1] == 4.0 and c.y_scale == 64.0 and c.y_shift[0] == pytest.approx(d.y.mean(), rel=1e-14)
    np.testing.assert_allclose(cp.ZtZ.toarray(), Z.T @ Z)
    np.testing.assert_allclose(cp.ZtX, Z.T @ X, atol=1e-12)
    np.testing.assert_allclose(cp.Zty, Z.T @ y, atol=1e-12)
    np.testing.assert_allclose(cp.XtX, X.T @ X, atol=1e-12)
    assert cp.yty == pytest.approx(y @ y)


def test_insteval_zt_is_fast():
    """Building the design (Zt and cross-products) is linear in n: InstEval well under a second."""
    ie = load_data("InstEval")
    t0 = time.perf_counter()
    d = slm.design("y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept)", ie)
    elapsed = time.perf_counter() - t0
    assert d.Zt.shape == (4114, 73421)
    print(f"InstEval design: {elapsed:.3f} s")
    assert elapsed < 3.0  # generous bound for a loaded CI machine; typically ~0.2 s


def test_missing_values_are_dropped_and_counted():
    ss = load_data("sleepstudy").copy()
    ss.loc[[3, 50, 51], "Reaction"] = np.nan
    ss.loc[[7], "Days"] = np.nan
    d = slm.design("Reaction ~ Days + (Days | Subject)", ss)
    assert d.n_dropped == 4 and d.n == 176
    assert 3 not in d.row_index and 7 not in d.row_index
    with pytest.raises(slm.DataError, match="missing values"):
        slm.design("Reaction ~ Days + (Days | Subject)", ss, na_action="fail")


def test_unused_columns_with_missing_values_do_not_drop_rows():
    ss = load_data("sleepstudy").assign(other=np.nan)
    assert slm.design("Reaction ~ Days + (1 | Subject)", ss).n == 180


def test_unused_levels_are_dropped():
    ss = load_data("sleepstudy")
    sub = ss[ss["Subject"].isin(["308", "309", "310"])]
    d = slm.design("Reaction ~ Days + (1 | Subject)", sub)
    assert d.ngroups == {"Subject": 3}


def test_weights_and_offset_enter_the_cross_products():
    ss = load_data("sleepstudy")
    w = np.linspace(0.5, 2.0, len(ss))
    off = np.linspace(-3, 3, len(ss))
    d = slm.design("Reaction ~ Days + (1 | Subject)", ss, weights=w, offset=off)
    Z = d.Zt.T.toarray()
    c = d.cond  # the engine's units: X' = X T, y' = (y - off - Xγ_y)/s_y, w' = w/c_w
    y = (ss["Reaction"].to_numpy() - off - d.X @ c.y_shift) / c.y_scale
    X = d.X @ c.T
    wi = w / c.w_scale
    np.testing.assert_allclose(d.cross.Zty, Z.T @ (wi * y), atol=1e-12)
    np.testing.assert_allclose(d.cross.XtX, X.T @ (wi[:, None] * X), atol=1e-12)
    assert d.cross.ldW == pytest.approx(np.log(wi).sum())
    d2 = slm.design("Reaction ~ Days + (1 | Subject)", ss.assign(w=w), weights="w")
    np.testing.assert_allclose(d2.weights, w)


def test_string_group_codes_and_categoricals_agree():
    ss = load_data("sleepstudy")
    d1 = slm.design("Reaction ~ Days + (Days | Subject)", ss)
    d2 = slm.design("Reaction ~ Days + (Days | Subject)", ss.assign(Subject=ss["Subject"].astype(str)))
    assert (d1.Zt != d2.Zt).nnz == 0


def test_objective_function_is_lme4s_devfun():
    r = REF["sleepstudy__Reaction_Days_Days_Subject___REML"]
    d = slm.design(r["formula"], load_data("sleepstudy"))
    f = d.objective_function(REML=True)
    assert f(np.array(r["probe"]["theta"])) == pytest.approx(r["probe"]["objective"], rel=1e-10)
    assert f(np.array(r["theta"])) == pytest.approx(r["objective"], rel=1e-10)


def test_new_data_encoding_is_kept():
    d = slm.design("price ~ store + (1 | item)", load_data("grocery"))
    new = pd.DataFrame({"store": ["C", "A"], "item": ["milk", "eggs"], "price": [1.0, 1.0]})
    Xn = d.fixed_spec.get_model_matrix(new).to_numpy()
    np.testing.assert_array_equal(Xn, [[1, 0, 1, 0], [1, 0, 0, 0]])


def test_the_callers_data_are_left_as_they_were():
    # the design recodes string, boolean and categorical columns as factors on its own copy
    rng = np.random.default_rng(0)
    n = 60
    df = pd.DataFrame({
        "y": rng.standard_normal(n),
        "s": rng.choice(["b", "a", "c"], n),
        "flag": rng.random(n) < 0.5,
        "g": pd.Categorical(rng.choice(["u", "v", "w", "x"], n), categories=["x", "w", "v", "u", "unused"]),
    })
    df.loc[5, "y"] = np.nan
    before = df.copy()
    d = slm.design("y ~ s + flag + (1 | g)", df)
    pd.testing.assert_frame_equal(df, before)
    assert d.n == n - 1 and d.X_names == ["(Intercept)", "sb", "sc", "flagTRUE"]
    assert list(d.terms[0].levels) == ["x", "w", "v", "u"]
