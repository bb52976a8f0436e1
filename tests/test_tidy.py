"""broom.mixed's tidy, glance and augment (sparselmm.report.tidy) against broom.mixed 0.2.9 on
lmerTest fits (tests/reference/broom_reference.R made the values, at an optimum refined past
lme4's default stop; four models: sleepstudy's slope, Penicillin's crossed intercepts, cake by
ML, sleepstudy with prior weights and an offset).

The tables are compared at R's θ (the model made at that θ, so the comparison is of the tables'
mathematics, not of two optimisers' stops in a flat objective): column names and string columns
exactly, numbers to 1e-6 relative, Satterthwaite's df and p-values (numerical derivatives on both
sides) to 1e-5.  Our own fit reaches R's objective; its tables agree to what θ's flat direction
moves (1e-4)."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sparselmm as slm
from sparselmm.report import tidy as tables

REF = json.loads((Path(__file__).parent / "reference" / "broom_tables.json").read_text())
MODELS = {c["id"]: c for c in REF["models"]}
#: columns compared to 1e-5: Satterthwaite's df and what it moves
LOOSE = {"df", "p.value"}

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")  # no stray numpy warnings


def _data(name: str) -> pd.DataFrame:
    if name == "sleepstudy_w":
        ss = slm.datasets.load("sleepstudy")
        ss["w"] = 1.0 + ss["Days"] % 3
        ss["off"] = ss["Days"] / 10
        return ss
    return slm.datasets.load(name)


_FITS: dict[str, slm.LinearMixedModel] = {}


def _own(case_id: str) -> slm.LinearMixedModel:
    """Our fit of the case."""
    if case_id not in _FITS:
        c = MODELS[case_id]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _FITS[case_id] = slm.lmer(c["formula"], _data(c["data"]), REML=c["REML"], weights=c["weights"],
                                      offset=c["offset"])
    return _FITS[case_id]


def _at_r_theta(case_id: str) -> slm.LinearMixedModel:
    """The model of the case made at R's θ (with the call of our fit, for the model frame)."""
    key = case_id + "@R"
    if key not in _FITS:
        m = _own(case_id)
        theta = np.asarray(MODELS[case_id]["theta"], dtype=float)
        at = type(m)(m.design, m.REML, dataclasses.replace(m.optsum, theta=theta))
        at.call = m.call
        _FITS[key] = at
    return _FITS[key]


def _compare(ours: pd.DataFrame, ref: dict, rtol: float = 1e-6, loose: float = 1e-5, atol_scale: float = 0.0) -> None:
    """Columns in order, string columns exactly (NA as missing), numbers to ``rtol`` relative
    (``loose`` for :data:`LOOSE`), NaN where R has NA; ``atol_scale``: an absolute floor as a
    fraction of the column's largest value."""
    assert list(ours.columns) == ref["columns"]
    assert len(ours) == len(ref["values"][ref["columns"][0]])
    for col, kind in zip(ref["columns"], ref["types"]):
        theirs = ref["values"][col]
        if kind == "string":
            got = [None if pd.isna(v) else v for v in ours[col]]
            assert got == theirs, col
            continue
        r = np.array([np.nan if v is None else v for v in theirs], dtype=float)
        o = ours[col].to_numpy(dtype=float)
        assert np.array_equal(np.isnan(o), np.isnan(r)), col
        ok = ~np.isnan(r)
        if ok.any():
            tol = loose if col in LOOSE else rtol
            atol = atol_scale * float(np.max(np.abs(r[ok])))
            np.testing.assert_allclose(o[ok], r[ok], rtol=tol, atol=atol, err_msg=col)


TIDY = [(cid, key) for cid, c in MODELS.items() for key in c["tidy"]]


@pytest.mark.parametrize("case_id, key", TIDY, ids=[f"{c}-{k}" for c, k in TIDY])
def test_tidy_matches_broom_mixed(case_id, key):
    spec = MODELS[case_id]["tidy"][key]
    m = _at_r_theta(case_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", slm.SparseLMMWarning)  # ran_coefs with conf_int: broom's warning
        ours = m.tidy(spec["effects"], conf_int=spec["conf.int"], conf_level=spec["conf.level"])
    _compare(ours, spec)


@pytest.mark.parametrize("case_id", list(MODELS))
def test_glance_matches_broom_mixed(case_id):
    g = _at_r_theta(case_id).glance()
    _compare(g, MODELS[case_id]["glance"])
    assert g["nobs"].dtype.kind == "i" and g["df.residual"].dtype.kind == "i"


@pytest.mark.parametrize("case_id", list(MODELS))
def test_augment_matches_broom_mixed(case_id):
    _compare(_at_r_theta(case_id).augment(), MODELS[case_id]["augment"])


@pytest.mark.parametrize("case_id", list(MODELS))
def test_own_fit_reaches_r_and_its_tables_agree(case_id):
    c = MODELS[case_id]
    m = _own(case_id)
    assert m.objective <= c["objective"] * (1 + 1e-6)
    for key in ("all_ci", "default"):
        spec = c["tidy"][key]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", slm.SparseLMMWarning)
            ours = m.tidy(spec["effects"], conf_int=spec["conf.int"], conf_level=spec["conf.level"])
        _compare(ours, spec, rtol=1e-4, loose=1e-4, atol_scale=1e-6)
    _compare(m.glance(), c["glance"], rtol=1e-6)
    _compare(m.augment(), c["augment"], rtol=1e-4, atol_scale=1e-6)


# ----- behaviour beyond the reference tables ---------------------------------------------------


def test_rows_in_broom_mixed_order_whatever_the_order_asked():
    m = _at_r_theta("sleep_slope")
    a = m.tidy(["ran_coefs", "ran_pars", "fixed"])
    b = m.tidy(("fixed", "ran_pars", "ran_coefs", "fixed"))
    pd.testing.assert_frame_equal(a, b)
    assert list(dict.fromkeys(a["effect"])) == ["fixed", "ran_pars", "ran_coefs"]
    assert m.tidy("fixed").equals(m.tidy(["fixed"]))


def test_wald_ddf_gives_z_tests_without_df():
    m = _at_r_theta("sleep_slope")
    t = m.tidy("fixed", conf_int=True, ddf="wald")
    assert list(t.columns) == ["effect", "term", "estimate", "std.error", "statistic", "p.value",
                               "conf.low", "conf.high"]
    np.testing.assert_allclose(t["conf.high"] - t["estimate"], 1.959963984540054 * t["std.error"], rtol=1e-12)


def test_ran_coefs_intervals_warn_as_broom_mixed():
    with pytest.warns(slm.SparseLMMWarning, match="random-effects coefficients"):
        t = _at_r_theta("penicillin_crossed").tidy("ran_coefs", conf_int=True)
    assert t["conf.low"].isna().all() and t["conf.high"].isna().all()


def test_augment_with_the_data_of_the_fit():
    m = _own("sleep_weighted")
    data = _data("sleepstudy_w")
    a = m.augment(data)
    assert list(a.columns[:5]) == list(data.columns)
    ref = m.augment()
    dots = [c for c in ref.columns if c.startswith(".")]
    pd.testing.assert_frame_equal(a[dots], ref[dots])
    # the rows the fit used, in any order, by label
    b = m.augment(data.iloc[::-1])
    pd.testing.assert_frame_equal(b, a)


def test_augment_takes_the_rows_the_fit_used_from_data_with_missing_values():
    data = slm.datasets.load("sleepstudy")
    data.loc[[3, 50], "Reaction"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = slm.lmer("Reaction ~ Days + (Days | Subject)", data)
    a = m.augment(data)
    assert len(a) == 178 and not a["Reaction"].isna().any()
    np.testing.assert_array_equal(a["Reaction"], m.augment()["Reaction"])
    np.testing.assert_allclose(a[".hat"].sum(), m.augment()[".hat"].sum())


@pytest.mark.parametrize("case_id", ["sleep_slope", "sleep_weighted"])
def test_hat_values_are_the_diagonal_of_the_dense_hat_matrix(case_id):
    m = _own(case_id)
    a = m.augment()
    d = m.design
    sw = np.ones(d.n) if d.weights is None else np.sqrt(d.weights)
    off = np.zeros(d.n) if d.offset is None else d.offset
    # the hat matrix, densely: W½[ZΛ X] (the PLS system)⁻¹ [ZΛ X]ᵀW½,
    # the map W½(y - offset) -> W½(ŷ - offset)
    A = sw[:, None] * np.hstack([d.Zt.T.toarray() @ d.Lambda(m.theta).toarray(), d.X])
    P = A.T @ A + np.diag(np.r_[np.ones(d.q), np.zeros(d.p)])
    H = A @ np.linalg.solve(P, A.T)
    np.testing.assert_allclose(a[".hat"], np.diag(H), rtol=1e-9)
    np.testing.assert_allclose(H @ (sw * (d.y - off)), sw * (a[".fitted"] - off), rtol=1e-9)


def test_model_frame_follows_the_formula_order():
    m = _own("sleep_slope")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m2 = m.update("Reaction ~ (Days || Subject) + 1")  # lme4 expands || first: Subject, then Days
    assert list(m2.augment().columns[:3]) == ["Reaction", "Subject", "Days"]
    pastes = slm.datasets.load("Pastes")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m3 = slm.lmer("strength ~ (1 | batch/cask)", pastes)
    assert list(m3.augment().columns[:4]) == ["strength", "batch", "cask", ".fitted"]


def test_a_model_made_from_a_design_has_the_response_for_a_model_frame():
    d = slm.design("Reaction ~ Days + (Days | Subject)", slm.datasets.load("sleepstudy"))
    m = slm.fit_design(d)
    a = m.augment()
    assert list(a.columns[:2]) == ["Reaction", ".fitted"]
    np.testing.assert_allclose(a[".hat"], _own("sleep_slope").augment()[".hat"], rtol=1e-6)


def test_large_models_leave_out_hat_and_cooks_distance(monkeypatch):
    monkeypatch.setattr(tables, "HAT_LIMIT", 10.0)
    m = _at_r_theta("sleep_slope")
    with pytest.warns(slm.SparseLMMWarning, match="HAT_LIMIT"):
        a = m.augment()
    assert ".hat" not in a.columns and ".cooksd" not in a.columns
    assert list(a.columns[:5]) == ["Reaction", "Days", "Subject", ".fitted", ".resid"]


# ----- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize("effects", ["random", ["fixed", "ran_val"], [], None, 3, ["Fixed"]])
def test_unknown_effects_are_refused(effects):
    with pytest.raises(slm.ArgumentError, match="effects"):
        _at_r_theta("sleep_slope").tidy(effects)


@pytest.mark.parametrize("level", [0.0, 1.0, 95, -0.5, "0.95", None, float("nan")])
def test_conf_level_outside_the_unit_interval_is_refused(level):
    with pytest.raises(slm.ArgumentError, match="conf_level"):
        _at_r_theta("sleep_slope").tidy(conf_int=True, conf_level=level)


def test_conf_int_must_be_a_flag():
    with pytest.raises(slm.ArgumentError, match="conf_int"):
        _at_r_theta("sleep_slope").tidy(conf_int="yes")


def test_unknown_ddf_is_refused():
    with pytest.raises(slm.ArgumentError, match="ddf"):
        _at_r_theta("sleep_slope").tidy(ddf="lme4")


def test_augment_data_of_the_wrong_length_is_refused():
    m = _own("sleep_slope")
    data = slm.datasets.load("sleepstudy")
    with pytest.raises(slm.DataError, match="data"):
        m.augment(data.iloc[:100])
    with pytest.raises(slm.DataError, match="data"):
        m.augment(data.reset_index(drop=True).set_axis(range(1000, 1180)))
    with pytest.raises(slm.DataError, match="data must be a pandas DataFrame"):
        m.augment(data.to_numpy())
