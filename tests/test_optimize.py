"""The optimiser's pieces: the moment start, the Newton finish, the evaluation-limit warning."""

import numpy as np
import pytest
from conftest import REF, load_data

import sparselmm as slm
from sparselmm.optimize import minimize_theta


def _ref(dataset, formula_part, REML=None):
    for r in REF.values():
        if r["dataset"] == dataset and formula_part in r["formula"] and REML in (None, r["REML"]):
            return r
    raise KeyError(dataset)


@pytest.mark.parametrize("dataset,part", [("Penicillin", "plate"), ("InstEval", "dept")])
def test_moment_start_is_near_the_lme4_optimum(dataset, part):
    r = _ref(dataset, part)
    d = slm.design(r["formula"], load_data(r["dataset"]))
    th0 = d.moment_start()
    theta = np.array(r["theta"])
    assert not np.array_equal(th0, d.theta_start)
    # within a factor of 1.6 of lme4's θ, where lme4 starts at 1 (up to 15 times too large here)
    assert np.all(th0 / theta < 1.6) and np.all(theta / th0 < 1.6)


def test_moment_start_falls_back_to_lme4s_start():
    d = slm.design("Reaction ~ Days + (Days | Subject)", load_data("sleepstudy"))
    np.testing.assert_array_equal(d.moment_start(), d.theta_start)  # a slope term: no moment start
    d = slm.design("strength ~ 1 + (1 | batch/cask)", load_data("Pastes"))
    # nested: the residual estimate has 19 degrees of freedom and goes negative, so lme4's start
    np.testing.assert_array_equal(d.moment_start(), d.theta_start)


def test_newton_finish_lands_on_the_optimum_from_a_rough_point():
    d = slm.design("Reaction ~ Days + (Days | Subject)", load_data("sleepstudy"))
    st = d.pls()
    f = lambda th: st.objective(th, True)  # noqa: E731
    # BOBYQA stopped very early, then the Newton steps of the check finish the job
    o = minimize_theta(f, d.theta_start, d.lower, optimizer="bobyqa", options={"ftol_rel": 1e-4})
    ref = _ref("sleepstudy", "(Days | Subject)", REML=True)
    assert o.objective <= ref["objective"] + 1e-9 * ref["objective"]
    np.testing.assert_allclose(o.theta, ref["theta"], rtol=2e-4)
    assert o.newton_decrement < 1e-7 and not o.warnings


def test_evaluation_limit_warns():
    d = slm.design("Reaction ~ Days + (Days | Subject)", load_data("sleepstudy"))
    st = d.pls()
    o = minimize_theta(lambda th: st.objective(th, True), d.theta_start, d.lower, options={"maxfev": 5})
    assert any("evaluation limit" in w for w in o.warnings)
