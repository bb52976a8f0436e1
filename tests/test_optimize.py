"""The optimiser's pieces: the moment start, the Newton finish, the evaluation-limit warning."""

import warnings

import numpy as np
import pytest
from conftest import REF, assert_same_optimum, load_data

import sparselmm as slm
from sparselmm.fitting.optimize import minimize_theta


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


@pytest.mark.parametrize("part", ["(Days | Subject)", "(Days || Subject)"])
def test_one_factor_moment_start_is_near_the_lme4_optimum(part):
    r = _ref("sleepstudy", part, REML=True)
    d = slm.design(r["formula"], load_data("sleepstudy"))
    th0 = d.moment_start()
    theta = np.array(r["theta"])
    # lme4 starts at (1, 0, 1) or (1, 1); the moments land within 5% on the diagonals
    diag = d.lower == 0
    np.testing.assert_allclose(th0[diag], theta[diag], rtol=0.05)
    np.testing.assert_allclose(th0[~diag], theta[~diag], atol=0.01)


def test_moment_start_gives_a_valid_factor_on_three_slopes():
    df = slm.group_center(slm.datasets.load_timss(), ["math", "hoursTV"], "idschool")
    d = slm.design("science ~ 1 + grpCmath + (grpCmath + grpChoursTV | idschool)", df)
    th0 = d.moment_start()
    assert th0.shape == (6,) and not np.array_equal(th0, d.theta_start)
    diag = d.lower == 0
    # diagonal of the Cholesky factor kept off the bound, in the units of theta_scale
    assert np.all(th0[diag] * d.theta_scale()[diag] >= 0.05 * (1 - 1e-12))
    T = d.terms[0].structure.block(th0)
    assert np.all(np.linalg.eigvalsh(T @ T.T) > 0)


def test_moment_start_falls_back_to_lme4s_start():
    d = slm.design("Reaction ~ Days + (Days | Subject) + (1 | Days)", load_data("sleepstudy"))
    np.testing.assert_array_equal(d.moment_start(), d.theta_start)  # slopes on crossed factors: none
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


def test_a_flat_direction_does_not_break_the_newton_finish():
    # the second parameter does not enter: the Hessian is singular, the finish must carry on
    o = minimize_theta(lambda th: 10.0 + (th[0] - 0.5) ** 2, np.array([1.0, 1.0]), np.array([0.0, 0.0]))
    assert abs(o.theta[0] - 0.5) < 1e-4 and o.objective == pytest.approx(10.0, abs=1e-8)


def test_theta_scale_is_the_rms_of_each_rows_model_column():
    df = slm.group_center(slm.datasets.load_timss(), ["math", "hoursTV"], "idschool")
    d = slm.design("science ~ 1 + (grpCmath + grpChoursTV | idschool) + (0 + grpCmath || idgrade)", df.assign(
        idgrade=df["grade"].astype(str)))
    rms = lambda v: float(np.sqrt(np.mean(np.asarray(v, dtype=float) ** 2)))  # noqa: E731
    c, h = rms(df["grpCmath"]), rms(df["grpChoursTV"])
    # us: θ's entries (0,0) (1,0) (2,0) (1,1) (2,1) (2,2) scale with their row's column; diag: its own
    np.testing.assert_allclose(d.theta_scale(), [1, c, h, c, h, h, c], rtol=1e-12)


def test_auto_search_in_scaled_units_reaches_the_unscaled_optimum():
    df = slm.group_center(slm.datasets.load_timss(), ["math", "hoursTV"], "idschool")
    f = "science ~ 1 + grpCmath + grpMmath + grade + gender + grpChoursTV + grpMhoursTV + (grpCmath + grpChoursTV | idschool)"
    m = slm.lmer(f, df, REML=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = slm.lmer(f, df, REML=False, optimizer="bobyqa")  # lme4's search in θ's own units
    # lme4's optimum (its fit warns: max|grad| 0.0026): reached, at a deviance no higher.  The
    # search in θ's own units is not a reference for θ: on some machines (OPENBLAS_CORETYPE=Haswell)
    # it stops 0.0034 above the optimum near a saddle, and says so
    r = _ref("timss", "(grpCmath + grpChoursTV | idschool)", REML=False)
    assert m.objective <= r["objective"] * (1 + 1e-10)
    np.testing.assert_allclose(m.theta, r["theta"], atol=2e-4)
    assert m.optsum.feval < 0.5 * ref.optsum.feval
    # the summary is in θ's units: bounds as the design's, the gradient ~0 at the optimum
    np.testing.assert_array_equal(m.optsum.lower, slm.design(f, df).lower)
    assert m.optsum.newton_decrement < 1e-5  # deviance units; the warning level is 1e-4


def test_finite_differences_are_exact_on_a_quadratic_and_count_their_evaluations():
    from sparselmm.fitting.newton import _fd_derivatives

    A = np.array([[4.0, 1.0, -0.5], [1.0, 3.0, 0.2], [-0.5, 0.2, 2.0]])
    c = np.array([0.3, -0.2, 0.1])
    calls = []

    def f(x):
        calls.append(1)
        return 0.5 * x @ A @ x + c @ x + 7.0

    x = np.array([0.8, 1.3, 4e-6])  # the last entry within a step (1e-5) of its bound 0: the stencil shifts up
    lower = np.array([0.0, -np.inf, 0.0])
    g, H = _fd_derivatives(f, x, lower, f(x))
    np.testing.assert_allclose(H, A, rtol=0, atol=1e-4)  # rounding: ~eps |f| / h^2 with h = 1e-5
    np.testing.assert_allclose(g, A @ x + c, rtol=1e-8, atol=1e-9)
    # 1 (the call above) + 1 (shifted base) + 2m (central) + m(m-1)/2 (one per mixed entry)
    assert len(calls) == 1 + 1 + 6 + 3
    calls.clear()
    # the chord step's gradient: forward differences corrected by the given curvature, m calls
    x1 = np.array([0.7, 1.1, 0.4])
    g1, H1 = _fd_derivatives(f, x1, lower, f(x1), hessian=A, upper=np.array([np.inf, np.inf, 0.40001]))
    assert H1 is A and len(calls) == 1 + 3  # the last entry steps backward from its upper bound
    np.testing.assert_allclose(g1, A @ x1 + c, rtol=1e-8, atol=1e-9)


def test_check_on_an_analytic_gradient_differences_it_and_counts_its_evaluations():
    from sparselmm.fitting.newton import check_convergence

    A = np.array([[4.0, 1.0, -0.5], [1.0, 3.0, 0.2], [-0.5, 0.2, 2.0]])
    c = np.array([0.3, -0.2, 0.1])
    fcalls, gcalls = [], []

    def f(x):
        fcalls.append(x.copy())
        return 0.5 * x @ A @ x + c @ x + 7.0

    def grad(x):
        gcalls.append(x.copy())
        return A @ x + c

    x = np.array([0.8, 1.3, 0.39999])
    lower = np.array([0.0, -np.inf, 0.0])
    upper = np.array([np.inf, np.inf, 0.4])
    g, H, dec, msgs = check_convergence(f, x, lower, f(x), grad=grad, upper=upper)
    np.testing.assert_allclose(H, A, rtol=1e-9)  # a quadratic's gradient is linear: differences are exact
    np.testing.assert_allclose(g, A @ x + c, rtol=1e-14)
    # the gradient at x and at one step along each axis, each step beside one evaluation of f
    assert len(gcalls) == 1 + 3 and len(fcalls) == 1 + 3
    assert fcalls[-1][2] < x[2]  # the last entry steps backward from its upper bound
    gf = g[[0, 1, 2]]
    assert dec == pytest.approx(0.5 * gf @ np.linalg.solve(A, gf), rel=1e-8) and msgs
    # a gradient that cannot be evaluated falls back to finite differences of f
    fcalls.clear()
    g2, H2, _, _ = check_convergence(f, x, lower, f(x), grad=lambda x: np.full(3, np.nan), upper=upper)
    np.testing.assert_allclose(H2, A, atol=1e-4)
    assert len(fcalls) == 1 + 6 + 3


def test_auto_fit_on_one_factor_finishes_on_the_analytic_gradient():
    # TIMSS slopes: the check's Hessian from 6 gradients instead of 27 evaluations, the same optimum
    df = slm.group_center(slm.datasets.load_timss(), ["math", "hoursTV"], "idschool")
    f = "science ~ 1 + grpCmath + grpMmath + grade + gender + grpChoursTV + grpMhoursTV + (grpCmath + grpChoursTV | idschool)"
    from sparselmm.backends import gradient as pls

    m = slm.lmer(f, df, REML=False)
    cheap = pls.Gradient.cheap
    try:
        pls.Gradient.cheap = property(lambda self: False)
        ref = slm.lmer(f, df, REML=False)
    finally:
        pls.Gradient.cheap = cheap
    assert m.optsum.feval < ref.optsum.feval - 15
    # the gradient at the check's point and at one step along each of the 6 axes, then at the last points
    assert m.optsum.geval >= 7 and ref.optsum.geval == 0
    # the same optimum: the objective, and θ in the Hessian's metric (the finite-difference finish
    # stops at a decrement of ~1e-7, which leaves θ free by ~1e-5 along the flattest direction)
    assert_same_optimum(m, ref, rtol_obj=1e-10)
    assert m.optsum.newton_decrement < 1e-9 and not m.optsum.warnings
    # the check's Hessian from the gradient's differences, at the optimum in the search's units,
    # against central second differences of the objective (O(h²) error); the default check's
    # one-sided formula is off by 1 % on H[1, 1] here (3230 against 3264) and more on small
    # entries, which the Newton steps absorb
    from sparselmm.fitting.newton import check_convergence

    d = m.design
    sc = d.theta_scale()
    st = d.pls()
    grad = pls.Gradient(st)
    x = m.theta * sc
    fx = lambda v: st.objective(v / sc, False)  # noqa: E731
    _, Hg, dec, _ = check_convergence(fx, x, d.lower * sc, fx(x), grad=lambda v: grad(v / sc, False) / sc)
    h = 1e-3 * np.maximum(np.abs(x), 0.1)
    E = np.diag(h)
    Hc = np.array([[(fx(x + E[i] + E[j]) - fx(x + E[i] - E[j]) - fx(x - E[i] + E[j]) + fx(x - E[i] - E[j]))
                    / (4 * h[i] * h[j]) for j in range(6)] for i in range(6)])
    np.testing.assert_allclose(Hg, Hc, rtol=3e-3, atol=3e-5 * np.abs(Hc).max())  # forward differences: O(h)
    assert dec < 1e-7


def test_a_non_finite_objective_next_to_the_optimum_is_reported_not_differenced():
    # before: the 1e300 that stands for inf went into the finite differences ("overflow encountered
    # in add", a LinAlgError, or a Newton decrement of 1e299)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        o = minimize_theta(lambda th: np.sum((th - 1) ** 2) if th[0] <= 1 else np.inf, np.array([0.5, 0.5]),
                           np.zeros(2), optimizer="bobyqa", check=True)
    np.testing.assert_allclose(o.theta, [1.0, 1.0], atol=1e-6)
    assert o.newton_decrement is None and any("not finite within a finite-difference step" in w for w in o.warnings)


@pytest.mark.parametrize("optimizer,key", [("bobyqa", "maxfev"), ("lbfgsb", "maxfun"), ("bobyqa", "maxfun")])
def test_one_parameter_search_keeps_the_evaluation_limit(optimizer, key):
    # one θ entry: Brent's method on an interval; before, it ignored every option, maxfev included
    d = slm.design("Yield ~ 1 + (1 | Batch)", load_data("Dyestuff"))
    st = d.pls()
    f = lambda th: st.objective(th, True)  # noqa: E731
    o = minimize_theta(f, d.theta_start, d.lower, optimizer=optimizer, options={key: 4}, check=False)
    assert o.feval <= 4 + 2 and any("evaluation limit" in w for w in o.warnings)
    full = minimize_theta(f, d.theta_start, d.lower, optimizer=optimizer, check=False)
    assert full.feval > 6 and not full.warnings


# ----- Newton steps on a single-precision objective (minimize_theta(newton_search=True)) -----


def _deviance_like(x):
    """A smooth convex objective of two θ entries with the scale of the 1M crossed design's deviance
    (1.5·10⁶, curvature ~7·10⁴) and a cubic term, so that the Hessian changes along the way."""
    u, v = x[0] - 1.0, x[1] - 0.5
    return 1.5e6 + 3.7e4 * u * u + 3.8e4 * v * v - 7.6e2 * u * v + 2e4 * u**3 - 1.5e4 * v**3


def _single(f, rel=1e-11):
    """``f`` carrying a rounding error of relative size up to ``rel`` that jumps from point to point
    (as the single-precision factor's: ~1e-5 on a deviance of 1.5·10⁶), the same at the same point."""
    import zlib

    def fs(x):
        u = zlib.crc32(np.asarray(x, dtype=float).tobytes()) / 2**32 - 0.5
        return f(x) * (1.0 + 2.0 * rel * u)

    return fs


class _Calls:
    def __init__(self, f):
        self.f, self.n = f, 0

    def __call__(self, x):
        self.n += 1
        return self.f(x)


def test_newton_search_lands_on_the_optimum_with_four_double_precision_evaluations():
    fc, fs = _Calls(_deviance_like), _Calls(_single(_deviance_like))
    start = np.array([1.0153, 0.4921])  # 1.5 % off, as the moment start of the 1M crossed design
    o = minimize_theta(fc, start, np.zeros(2), search=fs, newton_search=True)
    assert o.message.startswith("a Newton step")
    np.testing.assert_allclose(o.theta, [1.0, 0.5], rtol=1e-7)
    assert o.objective == pytest.approx(1.5e6, abs=1e-7) and o.newton_decrement < 1e-8 and not o.warnings
    # in single precision the start, its stencil (4 + 1 mixed), the first step and the second stencil
    # (4: the mixed derivative kept); in double precision the last point, the chord step's two
    # differences and its step (the summary's own re-evaluation of the point is not counted)
    assert fs.n == 11 and fc.n <= 5 and o.feval == 15
    plain = minimize_theta(_deviance_like, start, np.zeros(2), search=_single(_deviance_like))
    assert plain.message.startswith("NLopt BOBYQA") and plain.feval > o.feval
    np.testing.assert_allclose(o.theta, plain.theta, rtol=1e-6)


def test_newton_search_that_cannot_be_trusted_leaves_the_search_to_bobyqa_from_the_start():
    # a start where the objective is concave along the radius (a Gaussian well, the start beyond its
    # inflection): the stencil's Hessian is not positive definite, and BOBYQA runs exactly as it
    # would have, from the start, after the stencil's five evaluations
    f = lambda x: -1e3 * np.exp(-np.sum((x - np.array([1.0, 0.5])) ** 2) / 0.08)  # noqa: E731
    start = np.array([1.5, 0.9])
    with_newton = minimize_theta(f, start, np.zeros(2), search=f, newton_search=True)
    without = minimize_theta(f, start, np.zeros(2), search=f)
    assert with_newton.message == without.message and with_newton.message.startswith("NLopt BOBYQA")
    np.testing.assert_array_equal(with_newton.theta, without.theta)
    assert with_newton.feval == without.feval + 5
    np.testing.assert_allclose(with_newton.theta, [1.0, 0.5], atol=1e-4)


def test_newton_search_keeps_an_entry_on_its_bound():
    # the optimum of the unbounded quadratic is at x₁ = -0.1: the bounded one at x₁ = 0, where the
    # gradient pushes into the bound
    f = lambda x: 1e4 * (x[0] - 1.0) ** 2 + 1e4 * (x[1] + 0.1) ** 2 + 5e2 * (x[0] - 1.0) * x[1]  # noqa: E731
    o = minimize_theta(f, np.array([1.02, 0.05]), np.zeros(2), search=_single(f), newton_search=True)
    assert o.message.startswith("a Newton step") and o.theta[1] == 0.0
    assert o.theta[0] == pytest.approx(1.0, abs=1e-7)
    assert not o.warnings


def test_newton_search_must_be_a_flag():
    with pytest.raises(slm.SparseLMMError, match="newton_search"):
        minimize_theta(lambda x: float(x @ x), np.ones(2), np.zeros(2), newton_search="yes")
