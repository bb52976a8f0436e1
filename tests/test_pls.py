"""The PLS objective: lme4's devfun at fixed θ, and an independent dense computation."""

import numpy as np
import pandas as pd
import pytest
from conftest import CASES, REF, load_data

import sparselmm as slm


@pytest.mark.parametrize("case", CASES)
def test_probe_objective_matches_lme4(case):
    """The objective at a θ away from the optimum equals lme4's within 1e-8 relative."""
    r = REF[case]
    d = slm.design(r["formula"], load_data(r["dataset"]))
    val = d.objective_function(REML=r["REML"])(np.array(r["probe"]["theta"]))
    assert val == pytest.approx(r["probe"]["objective"], rel=1e-8)


def dense_objective(d, theta, REML, weights=None):
    """-2 log (restricted) likelihood of y ~ N(Xβ, σ²(ZΛΛᵀZᵀ + W⁻¹)), profiled in β and σ, densely."""
    Z = d.Zt.T.toarray()
    Lam = d.Lambda(theta).toarray()
    n, p = d.X.shape
    Winv = np.eye(n) if weights is None else np.diag(1.0 / weights)
    V = Z @ Lam @ Lam.T @ Z.T + Winv
    Vi = np.linalg.inv(V)
    y = d.y_adj
    XtViX = d.X.T @ Vi @ d.X
    beta = np.linalg.solve(XtViX, d.X.T @ Vi @ y)
    r = y - d.X @ beta
    rss = r @ Vi @ r
    ldV = np.linalg.slogdet(V)[1]
    if REML:
        s2 = rss / (n - p)
        return (n - p) * np.log(2 * np.pi * s2) + ldV + np.linalg.slogdet(XtViX)[1] + (n - p)
    s2 = rss / n
    return n * np.log(2 * np.pi * s2) + ldV + n


@pytest.mark.parametrize("REML", [True, False])
@pytest.mark.parametrize(
    "formula",
    [
        "Reaction ~ Days + (Days | Subject)",
        "Reaction ~ Days + (Days || Subject)",
        "Reaction ~ 1 + (1 | Subject)",
    ],
)
def test_dense_agrees_on_sleepstudy(formula, REML):
    d = slm.design(formula, load_data("sleepstudy"))
    f = d.objective_function(REML=REML)
    rng = np.random.default_rng(1)
    for _ in range(3):
        th = np.abs(rng.normal(size=len(d.theta_start))) + 0.05
        th[d.lower == -np.inf] = rng.normal(size=(d.lower == -np.inf).sum())
        assert f(th) == pytest.approx(dense_objective(d, th, REML), rel=1e-9)


def test_dense_agrees_with_weights_and_offset():
    ss = load_data("sleepstudy")
    w = np.linspace(0.5, 2.0, len(ss))
    off = np.sin(np.arange(len(ss)))
    d = slm.design("Reaction ~ Days + (Days | Subject)", ss, weights=w, offset=off)
    th = np.array([0.8, 0.1, 0.3])
    for REML in (True, False):
        assert d.objective_function(REML)(th) == pytest.approx(dense_objective(d, th, REML, w), rel=1e-9)


def test_crossed_and_nested_small_designs():
    rng = np.random.default_rng(7)
    n = 90
    df = pd.DataFrame(
        {
            "a": rng.integers(0, 6, n).astype(str),
            "b": rng.integers(0, 4, n).astype(str),
            "x": rng.normal(size=n),
        }
    )
    df["y"] = rng.normal(size=n) + df["x"]
    for formula in ["y ~ x + (1 | a) + (1 | b)", "y ~ x + (1 | a/b)", "y ~ x + (x | a) + (1 | b)"]:
        d = slm.design(formula, df)
        th = d.theta_start * 0.7 + 0.1
        for REML in (True, False):
            assert d.objective_function(REML)(th) == pytest.approx(dense_objective(d, th, REML), rel=1e-9)


def test_theta_zero_is_evaluable():
    """θ on the boundary (a singular fit) is a valid point, not a failure."""
    d = slm.design("Reaction ~ Days + (Days | Subject)", load_data("sleepstudy"))
    th = np.array([0.0, 0.0, 0.0])
    assert d.objective_function(True)(th) == pytest.approx(dense_objective(d, th, True), rel=1e-9)


def test_pls_solution_is_the_joint_least_squares_solution():
    """β and u from the Schur complement equal the solution of the full penalised system."""
    d = slm.design("Reaction ~ Days + (Days | Subject)", load_data("sleepstudy"))
    st = d.pls()
    th = np.array([0.9, 0.02, 0.25])
    st.update(th)
    ZL = d.Zt.T.toarray() @ d.Lambda(th).toarray()
    A = np.block([[ZL.T @ ZL + np.eye(d.q), ZL.T @ d.X], [d.X.T @ ZL, d.X.T @ d.X]])
    sol = np.linalg.solve(A, np.concatenate([ZL.T @ d.y, d.X.T @ d.y]))
    # the state solves in the design's internal units: β = c_y a + J β', u = s_y u'
    c = d.cond
    np.testing.assert_allclose(c.y_scale * st.u, sol[: d.q], rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(c.beta(st.beta), sol[d.q :], rtol=1e-10)
    u, beta = sol[: d.q], sol[d.q :]
    r = d.y - ZL @ u - d.X @ beta
    assert c.y_scale**2 * st.pwrss == pytest.approx(r @ r + u @ u, rel=1e-10)
