"""The single-precision search evaluations of the block Schur factor (SchurState.search_objective)."""

import numpy as np
import pytest
from scipy.linalg import lapack

import sparselmm as slm
import sparselmm.backends.schur as schur
from conftest import assert_same_optimum

FORMULA = "y ~ 1 + x + (1 | a) + (1 | b)"


@pytest.fixture(scope="module")
def crossed():
    # 6,000 x 1,200 levels: the dense block (1,200) is large enough for single precision
    df = slm.datasets.simulate_crossed(40_000, 6_000, 1_200, seed=7)
    d = slm.design(FORMULA, df)
    return df, d


def test_search_evaluations_match_double_precision(crossed):
    _, d = crossed
    st = d.pls()
    assert type(st) is schur.SchurState and st.searches_in_single_precision
    rng = np.random.default_rng(0)
    for theta in [np.array([1.0, 0.5]), *(np.exp(rng.normal(0, 0.7, 2)) for _ in range(3))]:
        f64 = st.objective(theta, False)
        beta64, pw64, ld64 = st.beta.copy(), st.pwrss, st.ldL2
        f32 = st.search_objective(theta, False)
        assert st._L.dtype == np.float32
        # the log-determinant carries single-precision rounding; the solves are refined
        assert abs(f32 - f64) < 1e-8 * abs(f64)
        assert abs(st.ldL2 - ld64) < 1e-4
        np.testing.assert_allclose(st.beta, beta64, rtol=1e-9)
        assert abs(st.pwrss - pw64) < 1e-9 * pw64
        # and the next ordinary evaluation is in double precision again (to rounding: the dense
        # factor takes two BLAS threads only while the machine is otherwise idle, which changes
        # its summation order)
        assert st.objective(theta, False) == pytest.approx(f64, rel=1e-14) and st._L.dtype == np.float64


def test_fit_with_single_precision_search_reaches_the_double_precision_optimum(crossed, monkeypatch):
    df, _ = crossed
    m = slm.lmer(FORMULA, df, REML=False)
    monkeypatch.setattr(schur.SchurState, "low_precision_ok", False)
    ref = slm.lmer(FORMULA, df, REML=False)
    assert_same_optimum(m, ref, rtol_obj=1e-9)
    assert m.optsum.newton_decrement < 1e-5 and not m.optsum.warnings  # deviance units (warning at 1e-4)
    # the model's state is left in double precision (its accessors use it)
    assert m._state._L.dtype == np.float64


def test_the_search_from_the_moment_start_is_newton_steps_in_single_precision(crossed, monkeypatch):
    # two θ entries, a moment start and the single-precision objective: Newton steps on its finite
    # differences do the search, and only their last point and the finish's chord step (its two
    # differences and its step) factor in double precision; the optimum is the double-precision one
    df, _ = crossed
    seen = []
    orig = schur.SchurState._factorize

    def spy(self, blocks):
        seen.append(self._low)
        return orig(self, blocks)

    monkeypatch.setattr(schur.SchurState, "_factorize", spy)
    m = slm.lmer(FORMULA, df, REML=False)
    assert m.optsum.message.startswith("a Newton step")
    assert seen.count(False) <= 4 and seen.count(True) >= 11 and m.optsum.feval == len(seen)
    monkeypatch.setattr(schur.SchurState, "low_precision_ok", False)
    ref = slm.lmer(FORMULA, df, REML=False)  # BOBYQA and the finish, all in double precision
    assert ref.optsum.message.startswith("NLopt BOBYQA")
    assert_same_optimum(m, ref, rtol_obj=1e-12)
    np.testing.assert_allclose(m.theta, ref.theta, rtol=1e-5)
    assert m.optsum.newton_decrement < 1e-7 and not m.optsum.warnings


def test_a_failed_single_precision_factor_falls_back_to_double(crossed, monkeypatch):
    _, d = crossed
    st = d.pls()
    theta = np.array([1.0, 0.5])
    f64 = st.objective(theta, False)
    monkeypatch.setattr(lapack, "spotrf", lambda a, **kw: (a, 1))  # "not positive definite"
    assert st.search_objective(theta * 1.01, False) == st.objective(theta * 1.01, False)
    assert not st.searches_in_single_precision and st._L.dtype == np.float64
    assert st.objective(theta, False) == f64


def test_small_dense_blocks_and_the_dense_variant_search_in_double_precision():
    df = slm.datasets.simulate_crossed(20_000, 3_000, 200, seed=1)
    st = slm.design(FORMULA, df).pls()
    assert type(st) is schur.SchurState and not st.searches_in_single_precision
    assert not schur.DenseSchurPLSState.low_precision_ok


def test_a_change_of_precision_releases_the_old_factor_before_the_new_buffer(crossed, monkeypatch):
    # the factor is a view of the q2 x q2 buffer: holding it while the other precision's buffer
    # is made would add a buffer to the peak (100 MB at q2 = 5000)
    _, d = crossed
    st = d.pls()
    seen = []
    orig = schur.SchurState._schur

    def spy(self, w, lam2, th1=None):
        L = getattr(self, "_L", None)
        seen.append((self._low, None if L is None else L.dtype, getattr(self, "_S", None) is None))
        return orig(self, w, lam2, th1)

    monkeypatch.setattr(schur.SchurState, "_schur", spy)
    theta = np.array([1.0, 0.5])
    st.objective(theta, False)
    st.search_objective(theta * 1.1, False)
    st.search_objective(theta * 1.2, False)
    st.objective(theta, False)
    # each switch finds no factor and no buffer of the old precision; within one precision both are reused
    assert seen[1] == (True, None, True) and seen[3] == (False, None, True)
    assert seen[2] == (True, np.float32, False)
