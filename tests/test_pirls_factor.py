"""PIRLS's factors of M (sparselmm/fitting/pirls_factor.py): the block Schur factor and CHOLMOD's
against a dense computation, conjugate gradients, and glmer through the Schur factor against
lme4's reference values (tests/reference/glmer_reference.json)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import sparselmm as slm
from sparselmm.fitting import pirls_factor
from sparselmm.fitting.pirls import agq_deviance
from sparselmm.fitting.pirls_factor import CholmodFactor, SchurFactor, SmallSchurFactor, make_factor, pcg, schur_split

import test_glmer as tg


def _crossed_M(n: int = 600, q1: int = 80, q2: int = 25, seed: int = 0) -> tuple[sp.csc_matrix, np.ndarray]:
    """The lower triangle of M = ΛᵀZᵀWZΛ + I for a random crossed design (a scalar first term with
    ``q1`` levels, a second with ``q2``), and the dense M."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, q1, n), rng.integers(0, q2, n)
    Z = sp.csr_matrix((np.concatenate([0.9 * np.ones(n), 0.4 * np.ones(n)]),
                       (np.r_[np.arange(n), np.arange(n)], np.r_[a, q1 + b])), shape=(n, q1 + q2))
    w = rng.uniform(0.05, 0.25, n)
    Md = (Z.T @ sp.diags(w) @ Z).toarray() + np.eye(q1 + q2)
    low = sp.csc_matrix(np.tril(Md))
    low.sort_indices()
    return low, Md


def test_schur_factor_equals_a_dense_cholesky():
    low, Md = _crossed_M()
    f = SchurFactor(low, 80)
    ld = f.refactor(low.data.copy())
    assert ld == pytest.approx(np.linalg.slogdet(Md)[1], rel=1e-13)
    rng = np.random.default_rng(1)
    b = rng.standard_normal(Md.shape[0])
    B = rng.standard_normal((Md.shape[0], 3))
    np.testing.assert_allclose(f(b), np.linalg.solve(Md, b), rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(f(B), np.linalg.solve(Md, B), rtol=1e-11, atol=1e-13)
    # refactored on new values of the same pattern (the state is reused)
    ld2 = f.refactor(low.data * 1.5)
    Md2 = (np.tril(Md) * 1.5) + (np.tril(Md, -1) * 1.5).T
    assert ld2 == pytest.approx(np.linalg.slogdet(Md2)[1], rel=1e-13)
    c = CholmodFactor(low)
    assert c.refactor(low.data * 1.5) == pytest.approx(ld2, rel=1e-13)
    np.testing.assert_allclose(c(B), f(B), rtol=1e-11, atol=1e-13)


def test_schur_factor_refuses_a_matrix_that_is_not_positive_definite():
    low, _ = _crossed_M()
    f = SchurFactor(low, 80)
    bad = low.data.copy()
    bad[low.indptr[80:-1]] = -5.0  # the trailing block's diagonal
    with pytest.raises(np.linalg.LinAlgError):
        f.refactor(bad)
    with pytest.raises(np.linalg.LinAlgError):
        f(np.ones(low.shape[0]))
    with pytest.raises(np.linalg.LinAlgError):
        CholmodFactor(low).refactor(bad)


def test_the_split_needs_a_diagonal_leading_block():
    low, _ = _crossed_M()
    assert schur_split(low, 80)
    assert not schur_split(low, 81)  # column 80 (the second term's first level) meets rows 81..
    dense = sp.csc_matrix(np.tril(np.ones((5, 5)) + 5 * np.eye(5)))
    assert not schur_split(dense, 2)
    assert isinstance(make_factor(dense, 2), CholmodFactor)
    with pytest.raises(slm.ArgumentError, match="diagonal block"):
        make_factor(dense, 2, "schur")
    with pytest.raises(slm.ArgumentError, match="factor must be"):
        make_factor(low, 80, "dense")
    # "auto": a trailing block below SCHUR_MIN_Q2 takes the small dense factor, unless C is too large
    assert isinstance(make_factor(low, 80), SmallSchurFactor)
    assert isinstance(make_factor(low, 80, "small"), SmallSchurFactor)
    with pytest.raises(slm.ArgumentError, match="diagonal block"):
        make_factor(dense, 2, "small")
    small, pirls_factor.SMALL_MAX_FLOPS = pirls_factor.SMALL_MAX_FLOPS, 80 * 25 * 25 - 1
    try:
        assert isinstance(make_factor(low, 80), CholmodFactor)
    finally:
        pirls_factor.SMALL_MAX_FLOPS = small


@pytest.mark.parametrize("q2", [25, 0])
def test_small_schur_factor_equals_a_dense_cholesky(q2):
    # the dense-C block factor (and, with q2 = 0, one scalar term: M diagonal) against numpy
    low, Md = _crossed_M(q2=max(q2, 1))
    if q2 == 0:
        Md = np.diag(np.diag(Md)[:80])
        low = sp.csc_matrix(Md)
    f = make_factor(low, 80)
    assert isinstance(f, SmallSchurFactor)
    for scale in (1.0, 1.7):
        Ms = (np.tril(Md) * scale) + (np.tril(Md, -1) * scale).T
        assert f.refactor(low.data * scale) == pytest.approx(np.linalg.slogdet(Ms)[1], rel=1e-13)
        B = np.random.default_rng(3).standard_normal((Md.shape[0], 3))
        np.testing.assert_allclose(f(B), np.linalg.solve(Ms, B), rtol=1e-11, atol=1e-13)
        np.testing.assert_allclose(f(B[:, 0]), np.linalg.solve(Ms, B[:, 0]), rtol=1e-11, atol=1e-13)
        np.testing.assert_allclose(f.minv_diag(), np.diag(np.linalg.inv(Ms)), rtol=1e-11)
    bad = low.data.copy()
    bad[low.indptr[0]] = -1.0
    with pytest.raises(np.linalg.LinAlgError):
        f.refactor(bad)


def test_pcg_solves_with_a_nearby_preconditioner():
    low, Md = _crossed_M()
    f = SchurFactor(low, 80)
    f.refactor(low.data * 1.2)  # the factor of a nearby matrix
    rng = np.random.default_rng(2)
    B = rng.standard_normal((Md.shape[0], 4))
    B[:, 2] = 0.0  # a zero column converges at once
    X, it, ok = pcg(lambda V: Md @ V, f, B, rtol=1e-12)
    assert ok and it < 40
    np.testing.assert_allclose(X, np.linalg.solve(Md, B), rtol=1e-9, atol=1e-11)
    x, _, ok1 = pcg(lambda V: Md @ V, f, B[:, 0])
    assert ok1 and x.shape == (Md.shape[0],)
    _, it2, ok2 = pcg(lambda V: Md @ V, lambda R: R, B, rtol=1e-14, maxiter=2)
    assert not ok2 and it2 == 2


SCHUR_MODELS = ["verbagg_binomial", "grouseticks_poisson", "cbpp_binomial_obs_re", "arabidopsis_poisson"]


@pytest.mark.parametrize("key", SCHUR_MODELS)
def test_glmer_through_the_schur_factor_gives_lme4s_numbers(key, monkeypatch):
    monkeypatch.setattr(pirls_factor, "SCHUR_MIN_Q2", 1)
    tg._fit.cache_clear()
    try:
        fit = tg._fit(key)
    finally:
        tg._fit.cache_clear()
    st = fit._fit.state
    assert isinstance(st.factor, SchurFactor)
    assert st.cg_iterations > 0 and st.factorizations < st.steps + st.runs
    m = tg.MODELS[key]
    for p in m["probes"]["stage2"]:
        got = agq_deviance(st, np.asarray(p["theta"], dtype=float), np.asarray(p["beta"], dtype=float), 1)[0]
        assert got == pytest.approx(p["value_converged"], rel=1e-7), p["label"]
    best = m["objective_best_converged"]
    assert fit.objective <= best + 1e-6 * abs(best)


def test_a_crossed_logistic_fit_is_the_same_with_either_factor(monkeypatch):
    df = slm.datasets.simulate_crossed_binary(6000, 600, 60, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", slm.SparseLMMWarning)
        monkeypatch.setattr(pirls_factor, "SMALL_MAX_FLOPS", 1e7)  # 600 x 60²
        small = slm.glmer("y ~ x + (1 | a) + (1 | b)", df)
        monkeypatch.setattr(pirls_factor, "SMALL_MAX_FLOPS", 0)
        ref = slm.glmer("y ~ x + (1 | a) + (1 | b)", df)
        monkeypatch.setattr(pirls_factor, "SCHUR_MIN_Q2", 50)
        got = slm.glmer("y ~ x + (1 | a) + (1 | b)", df)
    assert isinstance(ref._fit.state.factor, CholmodFactor)
    assert isinstance(got._fit.state.factor, SchurFactor)
    assert isinstance(small._fit.state.factor, SmallSchurFactor)
    for other in (got, small):
        assert other.objective == pytest.approx(ref.objective, rel=1e-10)
        np.testing.assert_allclose(other.theta, ref.theta, rtol=1e-5)
        np.testing.assert_allclose(other.fixef, ref.fixef, rtol=1e-5)
        np.testing.assert_allclose(other.se, ref.se, rtol=1e-4)
        np.testing.assert_allclose(other.ranef_table()["condsd"], ref.ranef_table()["condsd"], rtol=1e-6)
