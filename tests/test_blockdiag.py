"""The block-diagonal backend (one grouping factor) against CHOLMOD and a dense inverse."""

import numpy as np
import pandas as pd
import pytest
from conftest import load_data

import sparselmm as slm
from sparselmm.backends.blockdiag import BlockDiagState, blockdiag_eligible
from sparselmm.errors import ModelSpecError
from sparselmm.backends.gradient import Gradient


def timss():
    return slm.group_center(slm.datasets.load_timss(), ["math", "hoursTV"], "idschool")


def one_factor(nl=1200, per=6, seed=2):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(nl), per)
    x = rng.normal(size=len(g))
    z = rng.normal(size=len(g))
    y = 1 + 0.5 * x + rng.normal(size=nl)[g] + 0.4 * rng.normal(size=nl)[g] * x + rng.normal(size=len(g))
    w = rng.uniform(0.5, 2.0, size=len(g))
    return pd.DataFrame({"y": y, "x": x, "z": z, "w": w, "g": pd.Categorical(g)})


CASES = [
    ("Reaction ~ Days + (Days | Subject)", "sleepstudy", {}),
    ("Reaction ~ Days + (Days || Subject)", "sleepstudy", {}),
    ("Reaction ~ 1 + (1 | Subject)", "sleepstudy", {}),
    ("Reaction ~ 0 + Days + (0 + Days | Subject)", "sleepstudy", {}),
    ("science ~ 1 + grpCmath + grade + (grpCmath + grpChoursTV | idschool)", "timss", {}),
    ("y ~ x + (x + z | g)", "one", {"weights": "w"}),
]


def _data(name):
    if name == "timss":
        return timss()
    if name == "one":
        return one_factor(300, 5)
    return load_data(name)


@pytest.mark.parametrize("formula,data,kw", CASES)
def test_objective_solution_and_gradient_equal_cholmod(formula, data, kw):
    d = slm.design(formula, _data(data), **kw)
    assert blockdiag_eligible(d)
    a, b = d.pls("cholmod"), d.pls("blockdiag")
    assert isinstance(b, BlockDiagState)
    rng = np.random.default_rng(7)
    for _ in range(3):
        th = d.theta_start + np.where(d.lower == 0, rng.uniform(-0.5, 0.5, d.theta_start.size), rng.normal(0, 0.3, d.theta_start.size))
        th = np.maximum(th, d.lower)
        for REML in (True, False):
            assert b.objective(th, REML) == pytest.approx(a.objective(th, REML), rel=1e-11)
            np.testing.assert_allclose(b.beta, a.beta, rtol=1e-8, atol=1e-10)
            np.testing.assert_allclose(b.u, a.u, rtol=1e-7, atol=1e-9)
            np.testing.assert_allclose(Gradient(b)(th, REML), Gradient(a)(th, REML), rtol=1e-6, atol=1e-6)


def test_inverse_blocks_and_solves_are_exact():
    d = slm.design("Reaction ~ Days + (Days | Subject)", load_data("sleepstudy"))
    b = d.pls("blockdiag")
    th = np.array([0.9, -0.2, 0.4])
    b.update(th)
    Lam = d.Lambda(th).toarray()
    Minv = np.linalg.inv(Lam.T @ d.cross.ZtZ.toarray() @ Lam + np.eye(d.q))
    np.testing.assert_allclose(b.minv_diag(), np.diag(Minv), rtol=1e-12)
    blocks = b.minv_diag_blocks()[0]
    np.testing.assert_allclose(blocks[3], Minv[6:8, 6:8], rtol=1e-12)
    rhs = np.random.default_rng(1).normal(size=(d.q, 3))
    np.testing.assert_allclose(b.solve_M(rhs), Minv @ rhs, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(b.solve_M(rhs[:, 0]), Minv @ rhs[:, 0], rtol=1e-10, atol=1e-12)


def test_failed_factorisation_is_reported_not_raised():
    d = slm.design("Reaction ~ Days + (Days | Subject)", load_data("sleepstudy"))
    b = d.pls("blockdiag")
    assert b.objective(np.array([np.nan, 0.0, 1.0]), True) == np.inf


def test_auto_choice_and_eligibility():
    big = slm.design("y ~ x + (x | g)", one_factor())
    assert isinstance(big.pls(), BlockDiagState)  # q = 2400: chosen
    small = slm.design("Reaction ~ Days + (Days | Subject)", load_data("sleepstudy"))
    assert not isinstance(small.pls(), BlockDiagState)  # q = 36: CHOLMOD's fewer calls are cheaper
    crossed = slm.design("diameter ~ 1 + (1 | plate) + (1 | sample)", load_data("Penicillin"))
    assert not blockdiag_eligible(crossed)
    with pytest.raises(ModelSpecError, match="one factor"):
        crossed.pls("blockdiag")


def test_fit_on_a_large_single_factor_design_is_the_cholmod_optimum():
    df = one_factor()
    m = slm.lmer("y ~ x + (x | g)", df, REML=False)
    assert isinstance(m._state, BlockDiagState)
    ch = m.design.pls("cholmod")
    off = m.design.objective_offset(False)  # the state is in the design's internal units
    f = lambda th: ch.objective(m.design.internal_theta(th), False) + off  # noqa: E731
    assert f(m.theta) == pytest.approx(m.objective, rel=1e-12)
    for i in range(3):  # no coordinate move lowers the CHOLMOD objective
        for h in (1e-4, -1e-4):
            th = m.theta.copy()
            th[i] += h
            if th[i] >= m.design.lower[i]:
                assert f(th) >= m.objective - 1e-8
