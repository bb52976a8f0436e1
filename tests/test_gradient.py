"""The analytic gradient and the block (Schur) factorisation, against independent computations."""


import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from conftest import REF, load_data

import sparselmm as slm
from sparselmm.backends.gradient import Gradient
from sparselmm.backends.schur import SchurState, schur_eligible

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
@pytest.mark.parametrize("band_bytes", [1 << 30, 4000, 300])
@pytest.mark.parametrize("n_chunks", [1, 3, 64])
def test_schur_fill_kernel_gives_the_cross_gram(band_bytes, n_chunks, weighted, monkeypatch):
    # 3000 rows on 300 x 40 cells: some cells hold two or three rows, so A12 has entries > 1
    from sparselmm.backends import kernels

    df = crossed(3000, 300, 40, seed=2)
    w = np.random.default_rng(1).uniform(0.5, 2.0, len(df)) if weighted else None
    d = slm.design("y ~ 1 + (1 | a) + (1 | b)", df, weights=w)
    A = d.cross.ZtZ.tocsr()
    q1 = int(d.Gp[1])
    q2 = d.q - q1
    A12 = A[:q1, q1:].tocsr()
    A12.sort_indices()
    assert A12.data.max() > 1
    monkeypatch.setattr(kernels, "BAND_BYTES", band_bytes)
    plan = kernels.band_plan(A12.indptr, A12.indices, q2, n_chunks=n_chunks)
    assert plan[0][0] == 0 and plan[0][-1] == q2 and plan[1][-1] == len(plan[0]) - 1
    assert (len(plan[0]) > 2) == (band_bytes < 10**6)  # several bands below a whole block's bytes
    # a band from row lo covers the triangle's columns lo … q₂: taller further down, each within
    # BAND_BYTES of float64 (or 4 rows)
    lo, h = plan[0][:-2], np.diff(plan[0])[:-1]  # the last band is cut at q₂
    assert np.all(np.diff(h) >= 0) and np.all(h >= 4)
    assert np.all((h == 4) | (8 * h * (q2 - lo) <= band_bytes))
    rw = np.random.default_rng(0).random(q1)
    rw[::3] = 0.0  # rows of weight zero are skipped: the sums are the same
    K = np.full((q2, q2), 3.0)
    kernels.schur_fill(K, A12.indptr, A12.indices, A12.data, rw, plan)
    dense = (A12.T @ sp.diags(rw) @ A12).toarray()
    # the upper triangle gets -Cᵀ diag(w) C added; the strict lower triangle is untouched
    np.testing.assert_allclose(np.triu(K), np.triu(3.0 - dense), rtol=1e-13, atol=1e-12)
    assert np.all(np.tril(K, -1)[np.tril_indices(q2, -1)] == 3.0)
    # in single precision: the same sums to float32's rounding
    K32 = np.zeros((q2, q2), dtype=np.float32)
    kernels.schur_fill(K32, A12.indptr, A12.indices, A12.data.astype(np.float32), rw.astype(np.float32), plan)
    np.testing.assert_allclose(np.triu(K32), np.triu(-dense), rtol=2e-5, atol=1e-4)
    # the quadratic forms c_j G c_jᵀ read G's upper triangle only
    G = np.random.default_rng(5).standard_normal((q2, q2))
    Gs = np.triu(G) + np.triu(G, 1).T
    quad = kernels.pair_quad(np.triu(G), A12.indptr, A12.indices, A12.data, plan)
    Ad = A12.toarray()
    np.testing.assert_allclose(quad, np.einsum("ij,jk,ik->i", Ad, Gs, Ad), rtol=1e-12, atol=1e-10)


def test_schur_fill_does_not_depend_on_the_threads():
    import numba

    from sparselmm.backends import kernels

    df = crossed(20000, 2000, 300, seed=4)
    d = slm.design("y ~ 1 + (1 | a) + (1 | b)", df)
    q1 = int(d.Gp[1])
    A12 = d.cross.ZtZ.tocsr()[:q1, q1:].tocsr()
    A12.sort_indices()
    q2 = A12.shape[1]
    rw = np.random.default_rng(2).random(q1)
    out = []
    before = numba.get_num_threads()
    try:
        for th in (1, numba.config.NUMBA_NUM_THREADS):
            numba.set_num_threads(th)
            K = np.zeros((q2, q2))
            kernels.schur_fill(K, A12.indptr, A12.indices, A12.data, rw, kernels.band_plan(A12.indptr, A12.indices, q2))
            out.append(K)
    finally:
        numba.set_num_threads(before)
    # each entry is summed by one thread, over the rows in order: the same bits
    assert np.array_equal(out[0], out[1])


def test_schur_backend_in_many_bands_equals_cholmod(monkeypatch):
    from sparselmm.backends import kernels

    df = crossed(4000, 400, 60, seed=11)
    rng = np.random.default_rng(11)
    df["c"] = pd.Categorical(rng.integers(0, 12, len(df)))
    d = slm.design("y ~ 1 + x + (1 | a) + (1 | b) + (1 | c)", df)
    monkeypatch.setattr(kernels, "BAND_BYTES", 600)
    a, b = d.pls("cholmod"), SchurState(d)
    for th in ([1.0, 0.7, 0.3], [0.2, 1.5, 0.0]):
        th = np.array(th)
        assert b.objective(th, False) == pytest.approx(a.objective(th, False), rel=1e-11)
        assert len(b._plan()[0]) > 5
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


def test_kernels_compile_where_numba_finds_no_cache_directory():
    # numba refuses cache=True where it finds no writable cache place (a read-only install, no
    # writable home); only its zip-file locator allowed reproduces that: the kernels compile
    # uncached and give the dense result
    import os
    import subprocess
    import sys

    code = (
        "import numpy as np, scipy.sparse as sp\n"
        "from sparselmm.backends import kernels\n"
        "C = sp.random(50, 20, density=0.2, format='csr', random_state=1); C.sort_indices()\n"
        "w = np.linspace(0.5, 1.5, 50); K = np.zeros((20, 20))\n"
        "kernels.schur_fill(K, C.indptr, C.indices, C.data, w, kernels.band_plan(C.indptr, C.indices, 20))\n"
        "d = (C.T @ sp.diags(w) @ C).toarray()\n"
        "assert np.allclose(np.triu(K), np.triu(-d), rtol=1e-13, atol=1e-13), 'wrong fill'\n"
        "print('ok')\n"
    )
    env = dict(os.environ, NUMBA_CACHE_LOCATOR_CLASSES="ZipCacheLocator")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


def test_kernels_are_loaded_from_numba_cache_by_the_next_process(tmp_path):
    # the first process compiles the loops into the cache; the next must load every one of them
    # (closures defined inside a function were keyed anew by each process: 4-5 s of compiling per
    # process on the first large crossed fit)
    import os
    import subprocess
    import sys

    code = (
        "import numpy as np, scipy.sparse as sp\n"
        "from sparselmm.backends import kernels\n"
        "C = sp.random(60, 20, density=0.2, format='csr', random_state=1); C.sort_indices()\n"
        "plan = kernels.band_plan(C.indptr, C.indices, 20)\n"
        "for dt in (np.float64, np.float32):\n"
        "    kernels.schur_fill(np.zeros((20, 20), dtype=dt), C.indptr, C.indices, C.data, np.ones(60), plan)\n"
        "kernels.pair_quad(np.eye(20), C.indptr, C.indices, C.data, plan)\n"
        "lp = kernels.compiled()\n"
        "print(sum(sum(getattr(lp, f).stats.cache_misses.values()) for f in ('fill', 'fill_via_tile', 'quad')),"
        " sum(sum(getattr(lp, f).stats.cache_hits.values()) for f in ('fill', 'fill_via_tile', 'quad')))\n"
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
            for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr[-2000:]
    assert runs[0].stdout.split() == ["3", "0"]  # compiled and saved
    assert runs[1].stdout.split() == ["0", "3"]  # all three loaded


def _crossed_terms(df, terms, rng, c_levels):
    """The design of ``y ~ 1 + x + (1 | a) + (1 | b)`` on ``df``, with ``+ (1 | c)`` (a random factor
    of ``c_levels`` levels added to ``df``) for ``terms == 3``, and its CHOLMOD state."""
    formula = "y ~ 1 + x + (1 | a) + (1 | b)"
    if terms == 3:
        df["c"] = pd.Categorical(rng.integers(0, c_levels, len(df)))
        formula += " + (1 | c)"
    d = slm.design(formula, df)
    return d, d.pls("cholmod")


@pytest.mark.parametrize("terms", [2, 3])
def test_schur_heavy_rows_by_the_dense_update_equal_cholmod(terms, monkeypatch):
    # heavy-tailed counts: a few levels of a with many rows each; those rows of A₁₂ go through the
    # BLAS rank-k update, the rest through the pair loop (both in double and single precision)
    rng = np.random.default_rng(8)
    df = crossed(5000, 400, 80, seed=8)
    heavy = rng.random(len(df)) < 0.4
    df.loc[heavy, "a"] = rng.integers(0, 5, heavy.sum())  # five levels take 40 % of the rows
    d, ref = _crossed_terms(df, terms, rng, 10)
    plain = SchurState(d)
    monkeypatch.setattr(SchurState, "HEAVY_MIN", 40)
    split = SchurState(d)
    assert plain._A12H is None and split._A12H is not None and 0 < len(split._heavy) < 20
    for th in ([1.0, 0.7, 0.3][: terms], [0.2, 1.5, 0.4][: terms]):
        th = np.array(th)
        want = ref.objective(th, False)
        assert split.objective(th, False) == pytest.approx(want, rel=1e-11)
        assert plain.objective(th, False) == pytest.approx(want, rel=1e-11)
        np.testing.assert_allclose(split.minv_diag(), ref.minv_diag(), rtol=1e-8, atol=1e-12)
        # single precision: the search's objective to float32's rounding
        monkeypatch.setattr(SchurState, "low_precision_min", 1)
        assert split.search_objective(th, False) == pytest.approx(want, rel=1e-6)
        monkeypatch.setattr(SchurState, "low_precision_min", 1000)


@pytest.mark.parametrize("terms", [2, 3])
def test_schur_rows_with_one_weight_by_their_gram_matrix_equal_cholmod(terms, monkeypatch):
    # every level of a has one of a few row counts (each subject answers 8, 10 or 12 items, as in a
    # lexical-decision design): the rows of A₁₂ sharing a count share their weight at every θ and
    # are filled from one stored Gram matrix per count; objectives, single-precision search values
    # and diag(M⁻¹) equal CHOLMOD's
    rng = np.random.default_rng(11)
    na, nb = 600, 60
    per = rng.choice([8, 10, 12], na)
    a = np.repeat(np.arange(na), per)
    b = np.concatenate([rng.choice(nb, k, replace=False) for k in per])
    df = pd.DataFrame({"a": pd.Categorical(a), "b": pd.Categorical(b), "x": rng.standard_normal(len(a))})
    df["y"] = 0.3 * df.x + rng.standard_normal(na)[a] * 0.6 + rng.standard_normal(nb)[b] * 0.4 + rng.standard_normal(len(a))
    d, ref = _crossed_terms(df, terms, rng, 7)
    monkeypatch.setattr(SchurState, "GROUP_MIN_PAIRS", 0.1)
    grouped = SchurState(d)
    monkeypatch.setattr(SchurState, "GROUP_BYTES", 0)
    plain = SchurState(d)
    assert grouped._gram is not None and grouped._gram.shape[0] == 3 and len(grouped._light) == 0
    assert plain._gram is None and len(plain._light) == na
    monkeypatch.setattr(SchurState, "low_precision_min", 1)
    for th in ([1.0, 0.7, 0.3], [1.0, 0.4, 0.2], [0.2, 1.5, 0.4], [0.2, 0.9, 0.4]):
        th = np.array(th[:terms])
        want = ref.objective(th, False)
        assert grouped.objective(th, False) == pytest.approx(want, rel=1e-12)
        assert plain.objective(th, False) == pytest.approx(want, rel=1e-12)
        np.testing.assert_allclose(grouped.minv_diag(), ref.minv_diag(), rtol=1e-9, atol=1e-12)
        assert grouped.search_objective(th, False) == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("kind", ["scalar", "slope", "weighted", "uneven"])
def test_zt_gram_equals_the_sparse_product(kind):
    # Z'WZ from each row's pairs of entries (rows of one length) and the sparse product (otherwise)
    from sparselmm.backends.base import zt_gram

    rng = np.random.default_rng(5)
    df = crossed(2000, 120, 30, seed=5)
    formula = {"scalar": "y ~ x + (1 | a) + (1 | b)", "slope": "y ~ x + (x | a) + (1 | b)",
               "weighted": "y ~ x + (x | a) + (1 | b)", "uneven": "y ~ x + (1 | a) + (1 | b)"}[kind]
    Zt = slm.design(formula, df).Zt.tocsc()
    if kind == "uneven":  # a row without its second entry: columns of unequal length
        Zt = Zt.tolil()
        Zt[Zt.shape[0] - 1, :] = 0
        Zt = Zt.tocsc()
        Zt.eliminate_zeros()
    w = rng.uniform(0.5, 2.0, Zt.shape[1]) if kind == "weighted" else None
    Zw = Zt if w is None else (Zt @ sp.diags(w)).tocsc()
    want = (Zw @ Zt.T).toarray()
    got = zt_gram(Zt, Zw, chunk=700)
    assert got.format == "csc" and got.has_sorted_indices
    np.testing.assert_allclose(got.toarray(), want, rtol=1e-13, atol=1e-12)
    # given in CSR, the same
    np.testing.assert_allclose(zt_gram(Zt.tocsr(), Zw.tocsr()).toarray(), want, rtol=1e-13, atol=1e-12)


def test_schur_two_terms_keep_the_block_of_the_last_theta1(monkeypatch):
    # with two terms and a fill that costs more than a copy of K, points that change λ only reuse
    # K = A₂₂ - A₂₁ diag(w) A₁₂ of the last θ₁; the objectives (both precisions) equal CHOLMOD's
    d = slm.design("y ~ 1 + x + (1 | a) + (1 | b)", crossed(3000, 300, 40, seed=9))
    ref = d.pls("cholmod")
    monkeypatch.setattr(SchurState, "GROUP_BYTES", 0)  # every row through the pair loop
    st = SchurState(d)
    assert st._keep_k
    fills = []
    orig = SchurState._fill
    monkeypatch.setattr(SchurState, "_fill", lambda self, *a: (fills.append(1), orig(self, *a))[1])
    monkeypatch.setattr(SchurState, "low_precision_min", 1)
    for th in ([0.8, 0.5], [0.8, 0.6], [0.8, 0.4], [0.9, 0.4], [0.9, 0.7]):
        th = np.array(th)
        assert st.objective(th, False) == pytest.approx(ref.objective(th, False), rel=1e-12)
        assert st.search_objective(th * [1.0, 1.01], False) == pytest.approx(ref.objective(th * [1.0, 1.01], False), rel=1e-6)
        np.testing.assert_allclose(st.minv_diag(), ref.minv_diag(), rtol=1e-9, atol=1e-12)
    assert len(fills) == 2  # one per θ₁
    monkeypatch.setattr(SchurState, "KEEP_K_RATIO", 1e9)
    assert not SchurState(d)._keep_k
    # nor where K would take more than KEEP_K_BYTES (q₂² doubles beside the block)
    monkeypatch.setattr(SchurState, "KEEP_K_RATIO", 4.0)
    monkeypatch.setattr(SchurState, "KEEP_K_BYTES", 8 * 40 * 40 - 1)
    assert not SchurState(d)._keep_k


def test_schur_takes_a_trailing_block_above_six_thousand_levels():
    # the old limit of 6,000 trailing levels is gone (20,000 now: the MovieLens-32M shape has
    # 16,034 items): "auto" picks the block factor for 9,000 users x 6,500 items, and its
    # objective, in double and single precision, equals CHOLMOD's
    rng = np.random.default_rng(21)
    na, nb, n = 9000, 6500, 40000
    a = np.concatenate([np.arange(na), rng.integers(0, na, n - na)])
    b = np.concatenate([np.arange(nb), rng.integers(0, nb, n - nb)])
    df = pd.DataFrame({"a": pd.Categorical(a), "b": pd.Categorical(b), "x": rng.standard_normal(n)})
    df["y"] = 0.5 * df.x + 0.7 * rng.standard_normal(na)[a] + 0.4 * rng.standard_normal(nb)[b] + rng.standard_normal(n)
    d = slm.design("y ~ 1 + x + (1 | a) + (1 | b)", df)
    st = d.pls()
    assert type(st) is SchurState and st.q2 == nb
    ref = d.pls("cholmod")
    th = np.array([0.7, 0.4])
    assert st.objective(th, False) == pytest.approx(ref.objective(th, False), rel=1e-12)
    assert st.search_objective(th, False) == pytest.approx(ref.objective(th, False), rel=1e-6)
    assert not schur_eligible(d, max_dense=6000)


@settings(max_examples=40, deadline=None)
@given(q1=st.integers(1, 40), q2=st.integers(1, 60), density=st.floats(0.02, 1.0), band_bytes=st.integers(8, 1 << 16),
       zero_share=st.floats(0.0, 1.0), seed=st.integers(0, 2**31 - 1))
def test_schur_fill_equals_the_dense_product_for_any_bands(q1, q2, density, band_bytes, zero_share, seed):
    # any band layout (heights grown by the triangle's width, from 4 rows to the whole block) and any
    # share of zero weights (rows the loop skips) give the upper triangle of -Cᵀ diag(w) C, in
    # double precision to rounding and in single precision to float32's, subtracted from K or
    # written over it
    from sparselmm.backends import kernels

    rng = np.random.default_rng(seed)
    C = sp.random(q1, q2, density=density, format="csr", random_state=rng, data_rvs=lambda k: rng.integers(1, 4, k))
    C.sort_indices()
    w = rng.uniform(0.1, 2.0, q1)
    w[rng.random(q1) < zero_share] = 0.0
    before = kernels.BAND_BYTES
    try:  # (not monkeypatch: hypothesis runs every example within one call of the test)
        kernels.BAND_BYTES = band_bytes
        plan = kernels.band_plan(C.indptr, C.indices, q2, rows=w != 0)
    finally:
        kernels.BAND_BYTES = before
    want = np.triu((C.T @ sp.diags(w) @ C).toarray())
    K = np.zeros((q2, q2))
    kernels.schur_fill(K, C.indptr, C.indices, C.data, w, plan)
    np.testing.assert_allclose(np.triu(K), -want, rtol=1e-13, atol=1e-12)
    assert not np.tril(K, -1).any()
    K32 = np.zeros((q2, q2), dtype=np.float32)
    kernels.schur_fill(K32, C.indptr, C.indices, C.data, w, plan)
    np.testing.assert_allclose(np.triu(K32), -want, rtol=1e-6, atol=1e-5)
    assert not np.tril(K32, -1).any()
    # written over a block holding anything: the upper triangle is -Cᵀ diag(w) C, the lower one as it was
    for dt, rtol, atol in ((np.float64, 1e-13, 1e-12), (np.float32, 1e-6, 1e-5)):
        junk = rng.normal(0, 100, (q2, q2)).astype(dt)
        Kw = junk.copy()
        kernels.schur_fill(Kw, C.indptr, C.indices, C.data, w, plan, overwrite=True)
        np.testing.assert_allclose(np.triu(Kw), -want, rtol=rtol, atol=atol)
        np.testing.assert_array_equal(np.tril(Kw, -1), np.tril(junk, -1))
