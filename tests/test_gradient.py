"""The analytic gradient and the block (Schur) factorisation, against independent computations."""

import functools

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from conftest import REF, load_data

import sparselmm as slm
from sparselmm.backends.gradient import Gradient
from sparselmm.backends import schur as schur
from sparselmm.backends.schur import SchurState, _pair_matrix, schur_eligible

GRAD_CASES = [k for k in sorted(REF) if REF[k]["dataset"] not in ("InstEval",)]


def fd_gradient(f, th, h=1e-6):
    out = []
    for i in range(len(th)):
        e = np.zeros(len(th))
        e[i] = h * max(abs(th[i]), 1e-2)
        out.append((f(th + e) - f(th - e)) / (2 * e[i]))
    return np.array(out)


@pytest.mark.parametrize("case", GRAD_CASES)
@pytest.mark.parametrize("REML", [True, False])
def test_gradient_matches_finite_differences(case, REML):
    r = REF[case]
    d = slm.design(r["formula"], load_data(r["dataset"]))
    st = d.pls()
    g = Gradient(st)
    assert g.available
    th = np.array(r["probe"]["theta"])
    ga = g(th, REML)
    gn = fd_gradient(lambda t: st.objective(t, REML), th)
    np.testing.assert_allclose(ga, gn, rtol=1e-4, atol=1e-4 * max(1.0, np.max(np.abs(gn))))


def crossed(n=3000, na=300, nb=40, seed=3):
    return slm.datasets.simulate_crossed(n, na, nb, seed=seed)


@pytest.mark.parametrize("REML", [True, False])
def test_one_factor_gradient_beside_cholmod_equals_the_dense_inverse(REML):
    # sleepstudy and TIMSS slopes are small enough for CHOLMOD; their gradient takes the inverse
    # blocks level by level (LevelInverse), and must equal the one from a dense M⁻¹
    for dataset, formula in [
        ("sleepstudy", "Reaction ~ Days + (Days | Subject)"),
        ("timss", "science ~ 1 + grpCmath + gender + (grpCmath + grpChoursTV | idschool)"),
        ("timss", "science ~ 1 + grpCmath + (1 | idschool) + (0 + grpChoursTV | idschool)"),
    ]:
        d = slm.design(formula, load_data(dataset))
        st = d.pls()
        assert type(st).__name__ == "PLSState"
        g = Gradient(st)
        assert g.available and g.levels is not None
        dense = Gradient(st)
        dense.levels = None
        rng = np.random.default_rng(3)
        th0 = st.design.theta_start
        for _ in range(3):
            # the diagonal entries scaled, the off-diagonal ones (0 at the start) set
            th = np.where(th0 != 0, th0 * np.exp(0.3 * rng.standard_normal(len(th0))), 0.3 * rng.standard_normal(len(th0)))
            a, b = g(th, REML), dense(th, REML)
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12 * np.max(np.abs(b)))


def test_schur_backend_equals_cholmod():
    df = crossed()
    d = slm.design("y ~ 1 + x + (1 | a) + (1 | b)", df)
    assert schur_eligible(d)
    a, b = d.pls("cholmod"), SchurState(d)
    for th in ([1.0, 1.0], [0.3, 2.0], [0.0, 0.7], [1.5, 0.0]):
        th = np.array(th)
        for REML in (True, False):
            assert b.objective(th, REML) == pytest.approx(a.objective(th, REML), rel=1e-11)
        np.testing.assert_allclose(b.beta, a.beta, rtol=1e-9)
        np.testing.assert_allclose(b.u, a.u, rtol=1e-7, atol=1e-9)


def test_schur_inverse_diagonal_is_exact():
    df = crossed(1500, 120, 25)
    d = slm.design("y ~ 1 + x + (1 | a) + (1 | b)", df)
    b = SchurState(d)
    th = np.array([0.8, 1.3])
    b.update(th)
    Lam = d.Lambda(th).toarray()
    M = Lam.T @ d.cross.ZtZ.toarray() @ Lam + np.eye(d.q)
    np.testing.assert_allclose(b.minv_diag(), np.diag(np.linalg.inv(M)), rtol=1e-10)


def test_schur_gradient_and_fit_match_cholmod_fit():
    df = crossed(6000, 2500, 60, seed=5)
    d = slm.design("y ~ 1 + x + (1 | a) + (1 | b)", df)
    st = d.pls()
    assert isinstance(st, SchurState)  # chosen automatically for a large crossed design
    g = Gradient(st)
    th = np.array([0.7, 0.4])
    np.testing.assert_allclose(g(th, False), fd_gradient(lambda t: st.objective(t, False), th), rtol=1e-5)
    m = slm.lmer("y ~ 1 + x + (1 | a) + (1 | b)", df, REML=False, optimizer="lbfgsb")
    assert m.optsum.optimizer == "lbfgsb"
    ref = slm.fit_design(d, REML=False, optimizer="bobyqa")
    assert m.objective <= ref.objective + 1e-6 * abs(ref.objective)
    np.testing.assert_allclose(m.theta, ref.theta, rtol=1e-3)


def test_schur_backend_with_two_trailing_terms_equals_cholmod():
    # three crossed scalar terms (InstEval's shape): λ per trailing term by table look-up
    df = crossed(4000, 400, 60, seed=11)
    rng = np.random.default_rng(11)
    df["c"] = pd.Categorical(rng.integers(0, 12, len(df)))
    d = slm.design("y ~ 1 + x + (1 | a) + (1 | b) + (1 | c)", df)
    a, b = d.pls("cholmod"), SchurState(d)
    for th in ([1.0, 0.7, 0.3], [0.2, 1.5, 0.0], [0.9, 0.0, 2.0]):
        th = np.array(th)
        for REML in (True, False):
            assert b.objective(th, REML) == pytest.approx(a.objective(th, REML), rel=1e-11)
        np.testing.assert_allclose(b.minv_diag(), a.minv_diag(), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("piece", [10**9, 5000, 700])
def test_pair_matrix_pieces_give_the_cross_gram(piece, weighted):
    # 3000 rows on 300 x 40 cells: some cells hold two or three rows, so A12 has entries > 1
    df = crossed(3000, 300, 40, seed=2)
    w = np.random.default_rng(1).uniform(0.5, 2.0, len(df)) if weighted else None
    d = slm.design("y ~ 1 + (1 | a) + (1 | b)", df, weights=w)
    A = d.cross.ZtZ.tocsr()
    q1 = int(d.Gp[1])
    q2 = d.q - q1
    A12 = A[:q1, q1:].tocsr()
    A12.sort_indices()
    assert A12.data.max() > 1
    pieces, flat = _pair_matrix(A12, q1, q2, chunk=997, piece=piece)
    # counts are stored in float32 (exact), weighted sums in float64
    assert {p.dtype for p, _, _ in pieces} == {np.dtype(np.float64 if weighted else np.float32)}
    assert (len(pieces) > 3) == (piece < 1000)
    assert [k0 for _, k0, _ in pieces] == sorted(k0 for _, k0, _ in pieces) and pieces[-1][2] == len(flat)
    w = np.random.default_rng(0).random(q1)
    S = np.zeros(q2 * q2)
    for PTc, k0, k1 in pieces:
        S[flat[k0:k1]] = PTc.T @ w
    dense = (A12.T @ sp.diags(w) @ A12).toarray()
    # float32 counts lose nothing: the same agreement as float64 (sums in another order)
    np.testing.assert_allclose(S.reshape(q2, q2), np.triu(dense), rtol=1e-13, atol=1e-12)


def test_schur_backend_in_many_pieces_equals_cholmod(monkeypatch):
    df = crossed(4000, 400, 60, seed=11)
    rng = np.random.default_rng(11)
    df["c"] = pd.Categorical(rng.integers(0, 12, len(df)))
    d = slm.design("y ~ 1 + x + (1 | a) + (1 | b) + (1 | c)", df)
    monkeypatch.setattr(schur, "_pair_matrix", functools.partial(schur._pair_matrix, piece=400))
    a, b = d.pls("cholmod"), SchurState(d)
    assert len(b.pieces) > 5
    for th in ([1.0, 0.7, 0.3], [0.2, 1.5, 0.0]):
        th = np.array(th)
        assert b.objective(th, False) == pytest.approx(a.objective(th, False), rel=1e-11)
        np.testing.assert_allclose(b.minv_diag(), a.minv_diag(), rtol=1e-8, atol=1e-12)


def test_dense_crossed_design_takes_the_dense_schur_factor():
    # most (a, b) pairs occur: one dsyrk per θ beats a pair table and CHOLMOD; same numbers
    from sparselmm.backends.schur import DenseSchurPLSState

    df = crossed(60000, 2000, 40, seed=4)
    d = slm.design("y ~ 1 + x + (1 | a) + (1 | b)", df)
    st = d.pls()
    assert isinstance(st, DenseSchurPLSState)
    ref = d.pls("cholmod")
    for th in ([1.0, 0.5], [0.3, 2.0], [0.0, 1.0]):
        th = np.array(th)
        for REML in (True, False):
            assert st.objective(th, REML) == pytest.approx(ref.objective(th, REML), rel=1e-11)
        np.testing.assert_allclose(st.u, ref.u, rtol=1e-7, atol=1e-9)


def test_busy_look_is_reused_briefly():
    import time

    from sparselmm import threads

    threads._BUSY[:] = [time.monotonic(), True]
    assert threads._machine_busy() is True  # a fresh look is reused...
    threads._BUSY[:] = [time.monotonic() - 1.0, True]
    assert isinstance(threads._machine_busy(), bool)  # ...an old one is taken again
    assert time.monotonic() - threads._BUSY[0] < 0.5


def test_a_fit_runs_blas_on_one_thread_and_large_steps_get_the_callers_threads():
    import time

    from sparselmm import threads
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads() -> set[int]:
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    with threadpool_limits(limits=2, user_api="blas"):  # what the caller had
        with threads.single_threaded():
            assert blas_threads() == {1}
            threads._BUSY[:] = [time.monotonic() + 60, False]  # the machine looks idle
            with threads.dense_step_threads():
                assert blas_threads() == {2}  # a dense factor gets the caller's threads back
            assert blas_threads() == {1}
            threads._BUSY[:] = [time.monotonic() + 60, True]  # another process is running
            with threads.dense_step_threads():
                assert blas_threads() == {1}
        assert blas_threads() == {2}
    threads._BUSY[:] = [-1.0, True]
