"""Tests for sparselmm.stats.rmanova (one-way repeated-measures ANOVA)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sparselmm.errors import DataError, SparseLMMError
from sparselmm.stats.rmanova import RMAnovaResult, rm_anova

GROCERY = Path(__file__).resolve().parents[1] / "datasets" / "grocery.csv"

# Reference values (Wilcox aov1rm / R, lecture on the grocery data).
REF = {
    "F": 4.344209,
    "p": 0.01273035,
    "eps_gg": 0.6391090,
    "p_gg": 0.03093080,
    "eps_hf": 0.8082292,
    "p_hf": 0.02033859,
}
RTOL = 5e-7  # the references carry 7 significant digits


@pytest.fixture(scope="module")
def long() -> pd.DataFrame:
    return pd.read_csv(GROCERY)


@pytest.fixture(scope="module")
def wide(long: pd.DataFrame) -> pd.DataFrame:
    return long.pivot(index="item", columns="store", values="price")


@pytest.fixture(scope="module")
def res(long: pd.DataFrame) -> RMAnovaResult:
    return rm_anova(long, subject="item", condition="store", value="price")


def _assert_same(a: RMAnovaResult, b: RMAnovaResult) -> None:
    for name in ("F", "p", "eps_gg", "p_gg", "eps_hf", "p_hf", "sigma2_e",
                 "sigma2_rho", "mu", "ss_cond", "ss_subj", "ss_err"):
        assert getattr(a, name) == pytest.approx(getattr(b, name), rel=1e-12), name
    for name in ("df1", "df2", "n_subjects", "n_conditions"):
        assert getattr(a, name) == getattr(b, name), name
    pd.testing.assert_series_equal(
        a.alphas.sort_index(), b.alphas.sort_index(), check_names=False,
        check_index_type=False, rtol=1e-12,
    )
    pd.testing.assert_series_equal(
        a.rhos.sort_index(), b.rhos.sort_index(), check_names=False,
        check_index_type=False, rtol=1e-12,
    )


# ---------------------------------------------------------------- reference


@pytest.mark.parametrize("name", list(REF))
def test_grocery_reference(res: RMAnovaResult, name: str) -> None:
    assert getattr(res, name) == pytest.approx(REF[name], rel=RTOL, abs=0)


def test_grocery_dims(res: RMAnovaResult) -> None:
    assert (res.df1, res.df2) == (3, 27)
    assert (res.n_subjects, res.n_conditions) == (10, 4)
    assert list(res.alphas.index) == ["A", "B", "C", "D"]
    assert len(res.rhos) == 10 and "aspirin" in res.rhos.index


def test_effects_and_variance_components(res: RMAnovaResult, wide: pd.DataFrame) -> None:
    Y = wide.to_numpy()
    assert res.mu == pytest.approx(Y.mean(), rel=1e-14)
    np.testing.assert_allclose(res.alphas.to_numpy(), Y.mean(0) - Y.mean(), rtol=1e-12)
    np.testing.assert_allclose(
        res.rhos.loc[wide.index].to_numpy(), Y.mean(1) - Y.mean(), rtol=1e-12
    )
    assert res.alphas.sum() == pytest.approx(0, abs=1e-12)
    assert res.rhos.sum() == pytest.approx(0, abs=1e-12)
    assert res.alphas["D"] == pytest.approx(0.173, abs=1e-12)
    assert res.alphas["A"] == pytest.approx(-0.168, abs=1e-12)
    tab = res.table()
    ms_subj, ms_err = tab.loc["subject", "MS"], tab.loc["residual", "MS"]
    assert res.sigma2_e == pytest.approx(ms_err, rel=1e-14)
    assert res.sigma2_rho == pytest.approx((ms_subj - ms_err) / 4, rel=1e-14)
    # sums of squares partition the total
    ss_tot = ((Y - Y.mean()) ** 2).sum()
    assert tab["SS"].sum() == pytest.approx(ss_tot, rel=1e-12)


def test_table_layout(res: RMAnovaResult) -> None:
    tab = res.table()
    assert list(tab.index) == ["condition", "subject", "residual"]
    assert list(tab.columns) == ["SS", "df", "MS", "F", "p", "p_GG", "p_HF"]
    assert list(tab["df"]) == [3, 9, 27]
    np.testing.assert_allclose(tab["MS"], tab["SS"] / tab["df"], rtol=1e-14)
    assert tab.loc["condition", "F"] == pytest.approx(REF["F"], rel=RTOL)
    assert tab.loc["condition", "p_GG"] == pytest.approx(REF["p_gg"], rel=RTOL)
    assert tab.loc["condition", "p_HF"] == pytest.approx(REF["p_hf"], rel=RTOL)
    assert tab.loc[["subject", "residual"], ["F", "p", "p_GG", "p_HF"]].isna().all().all()


def test_str_and_repr(res: RMAnovaResult) -> None:
    s = str(res)
    for token in ("condition", "subject", "residual", "Greenhouse-Geisser",
                  "Huynh-Feldt", "4.34421", "0.639109", "0.8082292",
                  "0.0309308", "0.02033859"):
        assert token in s, token
    assert "F=4.344209" in repr(res)


def test_result_is_frozen(res: RMAnovaResult) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.F = 1.0  # type: ignore[misc]


# ------------------------------------------------------------ input layouts


def test_wide_equals_long(res: RMAnovaResult, wide: pd.DataFrame) -> None:
    _assert_same(rm_anova(wide), res)


def test_wide_with_subject_column(res: RMAnovaResult, wide: pd.DataFrame) -> None:
    w = wide.reset_index()  # "item" becomes a (string) column
    _assert_same(rm_anova(w, subject="item"), res)


def test_permuted_rows_long(res: RMAnovaResult, long: pd.DataFrame) -> None:
    perm = long.sample(frac=1.0, random_state=12345).reset_index(drop=True)
    r2 = rm_anova(perm, subject="item", condition="store", value="price")
    _assert_same(r2, res)
    # long levels are sorted, so even the order of the effects is unchanged
    assert list(r2.alphas.index) == list(res.alphas.index)
    assert list(r2.rhos.index) == list(res.rhos.index)


def test_permuted_rows_and_columns_wide(res: RMAnovaResult, wide: pd.DataFrame) -> None:
    rng = np.random.default_rng(7)
    w = wide.iloc[rng.permutation(len(wide)), rng.permutation(wide.shape[1])]
    _assert_same(rm_anova(w), res)


def test_categorical_long_with_unused_level(res: RMAnovaResult, long: pd.DataFrame) -> None:
    d = long.copy()
    d["store"] = pd.Categorical(d["store"], categories=["D", "C", "B", "A", "Z"])
    r2 = rm_anova(d, subject="item", condition="store", value="price")
    _assert_same(r2, res)
    assert list(r2.alphas.index) == ["D", "C", "B", "A"]


# ------------------------------------------------------- independent checks


def _rss(X: np.ndarray, y: np.ndarray) -> float:
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    r = y - X @ beta
    return float(r @ r)


def test_F_against_two_way_least_squares(res: RMAnovaResult, long: pd.DataFrame) -> None:
    y = long["price"].to_numpy(float)
    S = pd.get_dummies(long["item"], drop_first=True, dtype=float).to_numpy()
    C = pd.get_dummies(long["store"], drop_first=True, dtype=float).to_numpy()
    one = np.ones((len(y), 1))
    rss_full = _rss(np.hstack([one, S, C]), y)
    rss_red = _rss(np.hstack([one, S]), y)
    n, J = long["item"].nunique(), long["store"].nunique()
    df1, df2 = J - 1, len(y) - 1 - (n - 1) - (J - 1)
    assert df2 == res.df2
    F = ((rss_red - rss_full) / df1) / (rss_full / df2)
    assert res.F == pytest.approx(F, rel=1e-10)
    assert res.ss_err == pytest.approx(rss_full, rel=1e-10)
    assert res.p == pytest.approx(stats.f.sf(F, df1, df2), rel=1e-10)


def test_gg_against_orthonormal_contrasts(res: RMAnovaResult, wide: pd.DataFrame) -> None:
    # Box/GG epsilon from eigenvalues of the covariance of orthonormal contrasts.
    J = wide.shape[1]
    H = np.linalg.qr(np.hstack([np.ones((J, 1)), np.eye(J)[:, : J - 1]]))[0][:, 1:]
    V = H.T @ np.cov(wide.to_numpy(), rowvar=False) @ H
    lam = np.linalg.eigvalsh(V)
    eps = lam.sum() ** 2 / ((J - 1) * (lam**2).sum())
    assert res.eps_gg == pytest.approx(eps, rel=1e-12)
    n = wide.shape[0]
    hf = min(1.0, (n * (J - 1) * eps - 2) / ((J - 1) * (n - 1 - (J - 1) * eps)))
    assert res.eps_hf == pytest.approx(hf, rel=1e-12)


def test_two_conditions_is_paired_t(wide: pd.DataFrame) -> None:
    w = wide[["A", "D"]]
    r = rm_anova(w)
    t = stats.ttest_rel(w["A"], w["D"])
    assert r.F == pytest.approx(t.statistic**2, rel=1e-10)
    assert r.p == pytest.approx(t.pvalue, rel=1e-10)
    assert r.eps_gg == pytest.approx(1.0, rel=1e-12)
    assert r.eps_hf == 1.0
    assert r.p_gg == pytest.approx(r.p, rel=1e-10)


def test_two_subjects_hf_is_one() -> None:
    w = pd.DataFrame({"a": [1.0, 2.0], "b": [2.0, 2.5], "c": [0.5, 3.5]})
    r = rm_anova(w)
    assert r.eps_gg == pytest.approx(0.5, rel=1e-12)  # = 1/(J-1) for rank-1 S
    assert r.eps_hf == 1.0


def test_sigma2_rho_not_truncated() -> None:
    # Subjects vary less than the noise: moment estimate is negative.
    w = pd.DataFrame({"a": [1.0, 3.0, 2.0], "b": [3.0, 1.0, 2.5], "c": [2.0, 2.2, 1.0]})
    r = rm_anova(w)
    assert r.sigma2_rho < 0


def test_integer_values_accepted(wide: pd.DataFrame) -> None:
    w = (wide * 100).round().astype(int)
    r = rm_anova(w)
    r_float = rm_anova(w.astype(float))
    assert r.F == pytest.approx(r_float.F, rel=1e-14)


# ------------------------------------------------------------------ errors


def test_missing_cell(long: pd.DataFrame) -> None:
    d = long[~((long["item"] == "milk") & (long["store"] == "C"))]
    with pytest.raises(DataError) as ei:
        rm_anova(d, subject="item", condition="store", value="price")
    msg = str(ei.value)
    assert "milk" in msg and "'C'" in msg and "store" in msg


def test_nan_value_long(long: pd.DataFrame) -> None:
    d = long.copy()
    d.loc[(d["item"] == "eggs") & (d["store"] == "B"), "price"] = np.nan
    with pytest.raises(DataError) as ei:
        rm_anova(d, subject="item", condition="store", value="price")
    msg = str(ei.value)
    assert "'price'" in msg and "eggs" in msg and "'B'" in msg


def test_nan_value_wide(wide: pd.DataFrame) -> None:
    w = wide.copy()
    w.loc["bread", "C"] = np.nan
    with pytest.raises(DataError) as ei:
        rm_anova(w)
    msg = str(ei.value)
    assert "'C'" in msg and "bread" in msg


def test_one_subject_only(long: pd.DataFrame, wide: pd.DataFrame) -> None:
    with pytest.raises(DataError) as ei:
        rm_anova(long[long["item"] == "aspirin"], subject="item",
                 condition="store", value="price")
    assert "subject" in str(ei.value) and "aspirin" in str(ei.value)
    with pytest.raises(DataError) as ei:
        rm_anova(wide.loc[["cereal"]])
    assert "subject" in str(ei.value) and "cereal" in str(ei.value)


def test_one_condition_only(wide: pd.DataFrame) -> None:
    with pytest.raises(DataError) as ei:
        rm_anova(wide[["B"]])
    assert "condition" in str(ei.value) and "'B'" in str(ei.value)


def test_non_numeric_column_wide(wide: pd.DataFrame) -> None:
    w = wide.copy()
    w["note"] = "x"
    with pytest.raises(DataError) as ei:
        rm_anova(w)
    assert "'note'" in str(ei.value)


def test_non_numeric_value_long(long: pd.DataFrame) -> None:
    d = long.copy()
    d["price"] = d["price"].astype(str)
    d.loc[3, "price"] = "n/a"
    with pytest.raises(DataError) as ei:
        rm_anova(d, subject="item", condition="store", value="price")
    msg = str(ei.value)
    assert "'price'" in msg and "n/a" in msg


def test_duplicate_cell(long: pd.DataFrame) -> None:
    d = pd.concat([long, long.iloc[[5]]], ignore_index=True)
    with pytest.raises(DataError) as ei:
        rm_anova(d, subject="item", condition="store", value="price")
    msg = str(ei.value)
    assert long.iloc[5]["item"] in msg and "'A'" in msg


def test_missing_column_and_incomplete_spec(long: pd.DataFrame) -> None:
    with pytest.raises(DataError) as ei:
        rm_anova(long, subject="item", condition="shop", value="price")
    assert "'shop'" in str(ei.value)
    with pytest.raises(DataError) as ei:
        rm_anova(long, subject="item", condition="store")
    assert "value" in str(ei.value)


def test_duplicate_subject_wide(wide: pd.DataFrame) -> None:
    w = pd.concat([wide, wide.loc[["milk"]]])
    with pytest.raises(DataError) as ei:
        rm_anova(w)
    assert "milk" in str(ei.value)


def test_errors_are_value_errors(wide: pd.DataFrame) -> None:
    with pytest.raises(SparseLMMError):
        rm_anova(wide.loc[["cereal"]])
    with pytest.raises(ValueError):
        rm_anova(wide.loc[["cereal"]])
    with pytest.raises(DataError):
        rm_anova(wide.to_numpy())  # type: ignore[arg-type]
