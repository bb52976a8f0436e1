"""Conformance suite of the PLS backends, parametrised over the registry.

Every backend of :data:`sparselmm.backends.registry.BACKENDS` is run on every design of
:data:`DESIGNS` it applies to and compared with the reference, CHOLMOD
(:class:`sparselmm.backends.cholmod.PLSState`), at a few θ per design (lme4's start, the
moment start, a perturbed point inside the bounds and a point with one SD on its bound 0).
CHOLMOD itself is checked against a dense numpy solution of the PLS system.  The Dask designs
are checked against CHOLMOD on the in-memory design of the same formula and data, on lme4's
scale.  The registry's choice and every backend's declared capabilities are checked against
what the backends do.

Tolerances (all measured well inside them on this machine; none is loosened to pass):

* objective: ``rtol 1e-10`` (measured: the backends agree to 2e-14);
* β, u, pwrss, ldL2, ldRX2, R_X, ``M⁻¹b``, ``diag(M⁻¹)`` and its blocks: ``rtol 1e-9`` entrywise
  plus ``atol 1e-12`` of the largest entry of the reference.  The absolute part: a
  backward-stable factorisation determines a solution normwise, so an entry near 0 (a u of a
  level whose effect nearly cancels, an off-diagonal entry of an inverse block) is only known
  to the rounding of the largest ones, ~cond(M)·eps·‖x‖; 1e-12 of ‖x‖∞ is still far below any
  meaningful difference.  For β the absolute scale is the engine's response RMS instead
  (:func:`y_scale`: the intercept's β' is 0 to rounding after the conditioning centres y).
  Measured: 1e-10 entrywise at worst (β of the slope, ``schur-crossed-dense`` at lme4's start),
  ≤ 3e-12 for everything else.
* gradient: analytic against analytic ``rtol 1e-8 + atol 1e-9·max(1, ‖g‖∞)``; they share the
  formulas but not the solves/inverse blocks, and each entry is a difference of terms of the
  size of ``n`` (``n·dpwrss/pwrss`` against ``2 tr(M⁻¹ΛᵀAE)``), so an entry much smaller than the
  largest (near an optimum) carries the cancellation of the large ones: measured 3e-10 relative
  on such entries, 1e-12 normwise.  Finite differences (CHOLMOD's own gradient, at the interior
  point; any backend where CHOLMOD had no analytic gradient) are limited by their truncation and
  the objective's rounding over the step (eps·|f|/h ≈ 1e-16·1e4/1e-5): ``rtol 1e-5 + atol
  1e-5·max(1, ‖g‖∞)``.
* ``search_objective``: identical to ``objective`` unless ``searches_in_single_precision``, then
  within ``1e-4`` relative (the single-precision factor's log-determinant); with single
  precision forced on a small design, β and pwrss after the refined solves to ``1e-8``.
* Dask designs: the objective on lme4's scale ``rtol 1e-9``, the rest as above in comparable
  units (see :func:`test_dask_design_state_matches_in_memory_cholmod`).
"""

from __future__ import annotations

import functools
import zlib

import numpy as np
import pandas as pd
import pytest

import sparselmm as slm
from sparselmm import ModelSpecError
from sparselmm.backends.base import PLSBackend, objective_from_parts
from sparselmm.backends.cholmod import PLSState
from sparselmm.backends.gradient import Gradient
from sparselmm.backends.registry import BACKENDS, choose, names

RTOL = 1e-9  # solution pieces (β, u, pwrss, log-determinants, solves, inverse diagonals)
ATOL_REL = 1e-12  # absolute part, relative to the reference's largest entry (see the docstring)
RTOL_OBJ = 1e-10


# ----- data and designs ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _data(name: str) -> pd.DataFrame:
    if name == "crossed":
        # 300 x 40 crossed levels, ~10 rows per level of a: a trailing (dense) block of 40
        df = slm.datasets.simulate_crossed(3000, 300, 40, seed=3)
        # prior weights with geometric mean ~4: the engine's θ is then 2 x lme4's (c_w = 4)
        df["w"] = np.random.default_rng(1).uniform(2.0, 8.0, len(df))
        return df
    if name == "crossed-large":
        # 2,500 x 60 levels: SchurState is "auto"'s choice (first factor >= 2,000 levels)
        return slm.datasets.simulate_crossed(6000, 2500, 60, seed=5)
    if name == "crossed-dense":
        # 2,000 x 20 levels with 10 rows per level of a: most level pairs occur, the dense Schur pays
        return slm.datasets.simulate_crossed(20000, 2000, 20, seed=4)
    if name == "crossed-slope-dense":
        # 500 x 100 levels, ~70 rows per level of a: half the level pairs occur, so with a slope
        # on a the block Schur factor pays (q = 1,100)
        return slm.datasets.simulate_crossed(35000, 500, 100, seed=6)
    if name == "one-factor":
        # 600 levels x (intercept, slope): q = 1,200, BlockDiagState is "auto"'s choice
        rng = np.random.default_rng(2)
        nl, per = 600, 5
        g = np.repeat(np.arange(nl), per)
        x = rng.normal(size=len(g))
        y = 1 + 0.5 * x + rng.normal(size=nl)[g] + 0.4 * rng.normal(size=nl)[g] * x + rng.normal(size=len(g))
        return pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g)})
    return slm.datasets.load(name)


#: id -> (data, formula, keyword arguments of slm.design)
DESIGNS: dict[str, tuple[str, str, dict]] = {
    # one grouping factor, correlated slope (blockdiag, cholmod)
    "sleepstudy-us": ("sleepstudy", "Reaction ~ Days + (Days | Subject)", {}),
    # one factor, two scalar terms: every backend applies
    "sleepstudy-diag": ("sleepstudy", "Reaction ~ Days + (Days || Subject)", {}),
    # crossed scalar terms
    "penicillin": ("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", {}),
    # nested scalar terms
    "pastes": ("Pastes", "strength ~ 1 + (1 | batch/cask)", {}),
    # crossed scalar terms with prior weights (θ's units differ between lme4 and the engine)
    "crossed-weighted": ("crossed", "y ~ 1 + x + (1 | a) + (1 | b)", {"weights": "w"}),
    # a slope crossed with an intercept (CHOLMOD, and the block Schur factor)
    "crossed-slope": ("crossed", "y ~ 1 + x + (1 + x | a) + (1 | b)", {}),
    # structured covariances (non-linear in θ: no analytic gradient)
    "repeated-cs": ("repeated", "y ~ time * treatment + cs(0 + occasion | subject)", {}),
    "repeated-ar1": ("repeated", "y ~ time * treatment + ar1(0 + occasion | subject)", {}),
    # a linear structure on one factor (analytic gradient through the level blocks)
    "repeated-diag": ("repeated", "y ~ time * treatment + diag(0 + occasion | subject)", {}),
    # designs "auto" gives to a non-CHOLMOD backend
    "crossed-large": ("crossed-large", "y ~ 1 + x + (1 | a) + (1 | b)", {}),
    "crossed-dense": ("crossed-dense", "y ~ 1 + x + (1 | a) + (1 | b)", {}),
    "one-factor": ("one-factor", "y ~ x + (x | g)", {}),
    "crossed-slope-dense": ("crossed-slope-dense", "y ~ 1 + x + (1 + x | a) + (1 | b)", {}),
    # slopes on both factors: a trailing term with level blocks (with prior weights)
    "crossed-two-slopes": ("crossed", "y ~ 1 + x + (1 + x | a) + (1 + x | b)", {"weights": "w"}),
}

#: designs small enough for the dense checks (M⁻¹ formed densely)
DENSE_Q = 700
#: the designs also built from a Dask DataFrame
DASK_DESIGNS = ["sleepstudy-us", "penicillin", "crossed-weighted", "crossed-two-slopes"]


@functools.lru_cache(maxsize=None)
def design(name: str):
    data, formula, kw = DESIGNS[name]
    return slm.design(formula, _data(data), **kw)


@functools.lru_cache(maxsize=None)
def dask_design_of(name: str):
    dd = pytest.importorskip("dask.dataframe")
    from sparselmm.frame.dask_design import dask_design

    data, formula, kw = DESIGNS[name]
    return dask_design(formula, dd.from_pandas(_data(data), npartitions=3, sort=False), **kw)


@functools.lru_cache(maxsize=None)
def reference(name: str) -> PLSState:
    """CHOLMOD's state on the in-memory design (shared: states are re-updated per θ)."""
    st = design(name).pls("cholmod")
    assert type(st) is PLSState
    return st


@functools.lru_cache(maxsize=None)
def rhs_of(dname: str) -> np.ndarray:
    """A random right-hand side (q × 3) for the solves."""
    return np.random.default_rng(11).standard_normal((design(dname).q, 3))


@functools.lru_cache(maxsize=None)
def ref_inverse(dname: str, pname: str) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """CHOLMOD's ``M⁻¹ rhs``, ``diag(M⁻¹)`` and its blocks at a point (computed once per design)."""
    d, ref = design(dname), reference(dname)
    assert ref.update(d.internal_theta(thetas(dname)[pname]))
    return ref.solve_M(rhs_of(dname)), ref.minv_diag(), ref.minv_diag_blocks()


@functools.lru_cache(maxsize=None)
def ref_gradient(dname: str, pname: str, REML: bool) -> np.ndarray | None:
    """CHOLMOD's analytic gradient at a point in the engine's units (None where not available)."""
    d = design(dname)
    g = Gradient(reference(dname))
    return g(d.internal_theta(thetas(dname)[pname]), REML) if g.available else None


@functools.lru_cache(maxsize=None)
def thetas(dname: str) -> dict[str, np.ndarray]:
    """θ in lme4's units: lme4's start, the moment start, a perturbed point within the bounds
    and the moment start with its first SD on the bound 0."""
    d = design(dname)
    lo, hi = d.lower, d.upper
    start = np.asarray(d.theta_start, dtype=float)
    mom = np.asarray(d.moment_start(), dtype=float)
    rng = np.random.default_rng(zlib.crc32(dname.encode()))
    z = rng.standard_normal(len(start))
    pert = np.empty_like(mom)
    for i in range(len(mom)):
        if np.isfinite(lo[i]) and np.isfinite(hi[i]):  # a correlation: well inside its interval
            pert[i] = lo[i] + (hi[i] - lo[i]) * rng.uniform(0.2, 0.8)
        elif lo[i] == 0:  # an SD
            pert[i] = (mom[i] if mom[i] > 0 else 0.5) * np.exp(0.4 * z[i])
        else:  # an unbounded off-diagonal entry of a Cholesky factor
            pert[i] = mom[i] + 0.3 * z[i]
    assert np.all(pert >= lo) and np.all(pert <= hi)
    bound = mom.copy()
    bound[np.flatnonzero(lo == 0)[0]] = 0.0
    return {"start": start, "moment": mom, "perturbed": pert, "boundary": bound}


def pairs(applicable: bool) -> list:
    out = []
    for cls in BACKENDS:
        for dn in DESIGNS:
            if cls.applies(design(dn)) == applicable:
                out.append(pytest.param(cls, dn, id=f"{cls.name}-{dn}"))
    return out


APPLIES = pairs(True)
NOT_APPLIES = pairs(False)
POINTS = ["start", "moment", "perturbed", "boundary"]


def close(a, b, rtol=RTOL, what="", scale=0.0):
    """``|a - b| <= rtol·|b| + 1e-12·max(‖b‖∞, scale)`` entrywise."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape, (what, a.shape, b.shape)
    scale = max(float(np.max(np.abs(b))) if b.size else 0.0, scale)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=ATOL_REL * scale, err_msg=what)


def y_scale(d) -> float:
    """RMS of the engine's response (≈ 1 by the conditioning): the absolute scale of β'.  The
    conditioning centres y against the binary columns, so the intercept's β' is 0 to rounding
    (1e-15) and is determined only absolutely, to the rounding of y'."""
    return float(np.sqrt(d.cross.yty / d.cross.n))


def fresh(cls, d) -> PLSBackend:
    st = d.pls(cls.name)
    assert type(st) is cls
    return st


def dense_M(d, th_int: np.ndarray) -> np.ndarray:
    Lam = d.Lambda(th_int).toarray()
    return Lam.T @ d.cross.ZtZ.toarray() @ Lam + np.eye(d.q)


def fd_gradient(f, th, lower, upper, h=1e-5):
    g = np.empty(len(th))
    for i in range(len(th)):
        e = np.zeros(len(th))
        e[i] = h * max(abs(th[i]), 1e-1)
        if th[i] - e[i] < lower[i]:
            g[i] = (f(th + e) - f(th)) / e[i]
        elif th[i] + e[i] > upper[i]:
            g[i] = (f(th) - f(th - e)) / e[i]
        else:
            g[i] = (f(th + e) - f(th - e)) / (2 * e[i])
    return g


def test_the_designs_exercise_every_backend():
    # each backend applies to at least two designs, and refuses at least one (but CHOLMOD)
    for cls in BACKENDS:
        n_app = sum(cls.applies(design(dn)) for dn in DESIGNS)
        assert n_app >= 2, cls.name
        assert n_app < len(DESIGNS) or cls is PLSState, cls.name
    # and each backend is "auto"'s choice for at least one design, in memory or from Dask
    chosen = {choose(design(dn), "auto") for dn in DESIGNS}
    dd = pytest.importorskip("dask.dataframe")  # noqa: F841
    chosen |= {choose(dask_design_of(dn), "auto") for dn in DASK_DESIGNS}
    assert chosen == set(BACKENDS)


# ----- the PLS solution against CHOLMOD -----------------------------------------------------------


@pytest.mark.parametrize("cls,dname", APPLIES)
def test_pls_solution_matches_cholmod(cls, dname):
    d = design(dname)
    st, ref = fresh(cls, d), reference(dname)
    for pname, th in thetas(dname).items():
        ti = d.internal_theta(th)
        for REML in (True, False):
            f, f0 = st.objective(ti, REML), ref.objective(ti, REML)
            assert np.isfinite(f0)
            assert f == pytest.approx(f0, rel=RTOL_OBJ, abs=0), (pname, REML)
        assert st.update(ti) is True and ref.update(ti) is True
        what = f"{pname} {ti}"
        close(st.beta, ref.beta, what="beta " + what, scale=y_scale(d))
        close(st.u, ref.u, what="u " + what)
        close(st.pwrss, ref.pwrss, what="pwrss " + what)
        close(st.ldL2, ref.ldL2, what="ldL2 " + what)
        close(st.ldRX2, ref.ldRX2, what="ldRX2 " + what)
        close(st.RX, ref.RX, what="RX " + what)


@pytest.mark.parametrize("cls,dname", APPLIES)
def test_solves_and_inverse_diagonal_match_cholmod(cls, dname):
    d = design(dname)
    st = fresh(cls, d)
    rhs = rhs_of(dname)
    for pname in ("moment", "boundary"):
        x0, md0, blocks0 = ref_inverse(dname, pname)
        assert st.update(d.internal_theta(thetas(dname)[pname]))
        close(st.solve_M(rhs), x0, what=f"solve_M {pname}")
        x1 = st.solve_M(rhs[:, 1])
        assert x1.shape == (d.q,)
        close(x1, x0[:, 1], what=f"solve_M vector {pname}")
        close(st.minv_diag(), md0, what=f"minv_diag {pname}")
        got = st.minv_diag_blocks()
        assert len(got) == len(blocks0) == len(d.terms)
        for t, g, w in zip(d.terms, got, blocks0):
            assert g.shape == w.shape == (t.nlevels, t.k, t.k)
            close(g, w, what=f"minv_diag_blocks {t.group} {pname}")


@pytest.mark.parametrize("cls,dname", APPLIES)
def test_gradient_matches_cholmod_or_finite_differences(cls, dname):
    d = design(dname)
    st, ref = fresh(cls, d), reference(dname)
    g = Gradient(st)
    linear = all(t.structure.linear_entries() is not None for t in d.terms)
    # the gradient needs structures linear in θ; with them, every backend gives it on these designs
    assert g.available == linear
    if not g.available:
        pytest.skip("no analytic gradient for a structure non-linear in θ")
    for pname, th in thetas(dname).items():
        ti = d.internal_theta(th)
        for REML in (True, False):
            ga = g(ti, REML)
            gb = ref_gradient(dname, pname, REML)
            if gb is not None:
                np.testing.assert_allclose(ga, gb, rtol=1e-8, atol=1e-9 * max(1.0, np.max(np.abs(gb))),
                                           err_msg=f"{pname} REML={REML}")
            if gb is None or (cls is PLSState and pname == "perturbed"):
                # the reference's own gradient against finite differences (and any backend's
                # where CHOLMOD has none: no such design in DESIGNS today)
                gb = fd_gradient(lambda t: ref.objective(t, REML), ti, d.internal_theta(d.lower), d.upper)
                np.testing.assert_allclose(ga, gb, rtol=1e-5, atol=1e-5 * max(1.0, np.max(np.abs(gb))),
                                           err_msg=f"finite differences {pname} REML={REML}")


@pytest.mark.parametrize("cls,dname", APPLIES)
def test_search_objective_matches_the_objective(cls, dname):
    d = design(dname)
    st, ref = fresh(cls, d), reference(dname)
    if not cls.single_precision_search:
        assert not st.searches_in_single_precision
    for pname, th in thetas(dname).items():
        ti = d.internal_theta(th)
        for REML in (True, False):
            f0 = ref.objective(ti, REML)
            single = st.searches_in_single_precision
            fs = st.search_objective(ti, REML)
            if single:
                assert abs(fs - f0) <= 1e-4 * abs(f0), (pname, REML, fs, f0)
            else:
                assert fs == st.objective(ti, REML), (pname, REML)
                assert fs == pytest.approx(f0, rel=RTOL_OBJ, abs=0)
            # an ordinary evaluation after a search is double precision's again
            assert st.objective(ti, REML) == pytest.approx(f0, rel=RTOL_OBJ, abs=0)


def _forced_single_precision_pairs() -> list:
    out = []
    for cls in BACKENDS:
        if cls.single_precision_search:
            for dn in ("penicillin", "crossed-weighted"):
                if cls.applies(design(dn)):
                    out.append(pytest.param(cls, dn, id=f"{cls.name}-{dn}"))
    return out


@pytest.mark.parametrize("cls,dname", _forced_single_precision_pairs())
def test_single_precision_search_when_forced_on_a_small_design(cls, dname):
    # the dense blocks here are below the size where single precision is used: lower the size on
    # this instance (a documented class default) so the single-precision path runs at all
    d = design(dname)
    st, ref = fresh(cls, d), reference(dname)
    assert not st.searches_in_single_precision
    st.low_precision_min = 0
    assert st.searches_in_single_precision
    for pname, th in thetas(dname).items():
        ti = d.internal_theta(th)
        for REML in (True, False):
            f0 = ref.objective(ti, REML)
            fs = st.search_objective(ti, REML)
            assert abs(fs - f0) <= 1e-4 * abs(f0), (pname, REML, fs, f0)
            # the solves are refined once in double precision (each step gains cond(S)·6e-8): β
            # and pwrss to ~1e-11 of the response's scale, as SchurState documents; 1e-8 here
            np.testing.assert_allclose(st.beta, ref.beta, rtol=1e-8, atol=1e-8 * y_scale(d))
            assert st.pwrss == pytest.approx(ref.pwrss, rel=1e-8)
            # after the search: the objective and diag(M⁻¹) in double precision again
            assert st.objective(ti, REML) == pytest.approx(f0, rel=RTOL_OBJ, abs=0)
            st.search_objective(ti, REML)
            close(st.minv_diag(), ref.minv_diag(), what="minv_diag after a search")


# ----- declared capabilities --------------------------------------------------------------------


@pytest.mark.parametrize("cls,dname", APPLIES)
def test_declared_capabilities_are_true(cls, dname):
    d = design(dname)
    st = fresh(cls, d)
    ti = d.internal_theta(thetas(dname)["perturbed"])
    assert st.update(ti)
    if cls.cheap_minv_diag:
        # a cheap diag(M⁻¹) is the backend's own, not the base class's q solves
        assert type(st).minv_diag is not PLSBackend.minv_diag
    if cls.single_precision_search:
        assert type(st).search_objective is not PLSBackend.search_objective
    else:
        # never in single precision, not even where a parent class's size threshold is lowered
        if hasattr(st, "low_precision_min"):
            st.low_precision_min = 0
        assert not st.searches_in_single_precision
        f = st.objective(ti, True)
        assert st.search_objective(ti, True) == f
        if hasattr(st, "_L"):
            assert st._L.dtype == np.float64
    if not cls.gradient_blocks_available:
        with pytest.raises(NotImplementedError):
            st.gradient_blocks()
        return
    assert d.q <= 3000  # dense M⁻¹ΛᵀA below (crossed-large, q = 2,560, is the largest)
    Lam = d.Lambda(ti).toarray()
    A = d.cross.ZtZ.toarray()
    G = np.linalg.solve(dense_M(d, ti), Lam.T @ A)
    got = st.gradient_blocks()
    K = sum(t.k for t in d.terms)
    assert got.shape == (K, K)
    # per term, Σ over its levels of its diagonal blocks: what the gradient reads
    o = 0
    for t, lo in zip(d.terms, d.Gp[:-1]):
        want = sum(G[np.ix_(r, r)] for r in lo + np.arange(t.nlevels)[:, None] * t.k + np.arange(t.k))
        close(got[o : o + t.k, o : o + t.k], want, what=f"gradient_blocks of {t.group}")
        o += t.k
    if cls.name != "blockdiag":
        return
    # the level blocks also give the blocks between terms on the one grouping factor: Σ_j (M⁻¹ΛᵀA)_jj
    # over its levels j, all its terms' columns together
    nl = d.terms[0].nlevels
    idx = np.array(
        [np.concatenate([lo + j * t.k + np.arange(t.k) for t, lo in zip(d.terms, d.Gp[:-1])]) for j in range(nl)]
    )
    want = sum(G[np.ix_(r, r)] for r in idx)
    close(got, want, what="gradient_blocks")


@pytest.mark.parametrize("cls,dname", NOT_APPLIES)
def test_backend_refuses_a_design_it_does_not_apply_to(cls, dname):
    d = design(dname)
    with pytest.raises(ModelSpecError, match="does not apply"):
        d.pls(cls.name)
    with pytest.raises(ModelSpecError, match="does not apply"):
        choose(d, cls.name)


# ----- CHOLMOD against a dense computation ----------------------------------------------------------


@pytest.mark.parametrize("dname", [dn for dn in DESIGNS if design(dn).q <= DENSE_Q])
def test_cholmod_matches_a_dense_solution(dname):
    d = design(dname)
    st = reference(dname)
    cp = d.cross
    A, ZtX, Zty = cp.ZtZ.toarray(), cp.ZtX, cp.Zty
    p, q = d.p, d.q
    rhs = np.random.default_rng(5).standard_normal((q, 2))
    for pname, th in thetas(dname).items():
        ti = d.internal_theta(th)
        assert st.update(ti)
        Lam = d.Lambda(ti).toarray()
        M = Lam.T @ A @ Lam + np.eye(q)
        sign, ld = np.linalg.slogdet(M)
        assert sign == 1
        assert st.ldL2 == pytest.approx(ld, rel=RTOL, abs=1e-10)
        close(st.solve_M(rhs), np.linalg.solve(M, rhs), what=f"solve_M {pname}")
        Minv = np.linalg.inv(M)
        close(st.minv_diag(), np.diag(Minv), what=f"minv_diag {pname}")
        for t, lo, blocks in zip(d.terms, d.Gp[:-1], st.minv_diag_blocks()):
            idx = lo + np.arange(t.nlevels)[:, None] * t.k + np.arange(t.k)
            close(blocks, Minv[idx[:, :, None], idx[:, None, :]], what=f"minv_diag_blocks {pname}")
        # the whole PLS system [[M, ΛᵀZᵀWX], [XᵀWZΛ, XᵀWX]] [u; β] = [ΛᵀZᵀWy; XᵀWy]
        B = Lam.T @ ZtX
        K = np.block([[M, B], [B.T, cp.XtX]])
        r = np.concatenate([Lam.T @ Zty, cp.Xty])
        sol = np.linalg.solve(K, r)
        close(st.u, sol[:q], what=f"u {pname}")
        close(st.beta, sol[q:], what=f"beta {pname}", scale=y_scale(d))
        pwrss = cp.yty - r @ sol
        assert st.pwrss == pytest.approx(pwrss, rel=1e-9)
        ldRX2 = np.linalg.slogdet(cp.XtX - B.T @ np.linalg.solve(M, B))[1]
        assert st.ldRX2 == pytest.approx(ldRX2, rel=RTOL, abs=1e-10)
        for REML in (True, False):
            want = objective_from_parts(ld, ldRX2, pwrss, cp.n, p, REML, cp.ldW)
            assert st.objective(ti, REML) == pytest.approx(want, rel=RTOL_OBJ)


# ----- the registry -------------------------------------------------------------------------------


def test_names_list_auto_then_every_backend_once():
    nm = names()
    assert nm[0] == "auto"
    assert sorted(nm[1:]) == sorted(cls.name for cls in BACKENDS)
    assert len(set(nm)) == len(nm)
    assert BACKENDS[-1] is PLSState  # the fallback last
    assert all(issubclass(cls, PLSBackend) for cls in BACKENDS)


@pytest.mark.parametrize("dname", list(DESIGNS))
def test_auto_takes_the_first_preferred_backend(dname):
    d = design(dname)
    want = next((cls for cls in BACKENDS if cls.preferred(d)), PLSState)
    assert choose(d, "auto") is want
    assert type(d.pls("auto")) is want
    assert type(d.pls()) is want
    for cls in BACKENDS:
        if cls.preferred(d):
            assert cls.applies(d), cls.name  # a preferred backend must apply
        if cls.applies(d):
            assert choose(d, cls.name) is cls


def test_unknown_backend_name_is_refused():
    d = design("penicillin")
    for bad in ("nope", "CHOLMOD", ""):
        with pytest.raises(ModelSpecError, match=repr(bad)):
            d.pls(bad)
        with pytest.raises(ModelSpecError):
            choose(d, bad)


# ----- Dask designs against CHOLMOD on the in-memory design -----------------------------------------


def _dask_pairs() -> list:
    dd = pytest.importorskip("dask.dataframe")  # noqa: F841
    out = []
    for dn in DASK_DESIGNS:
        dk = dask_design_of(dn)
        for cls in BACKENDS:
            if cls.applies(dk):
                out.append(pytest.param(cls, dn, id=f"{cls.name}-dask-{dn}"))
    return out


try:
    DASK_PAIRS = _dask_pairs()
except pytest.skip.Exception:  # no dask: the parametrised test is skipped
    DASK_PAIRS = [pytest.param(None, None, marks=pytest.mark.skip(reason="dask is not installed"))]


@pytest.mark.parametrize("cls,dname", DASK_PAIRS)
def test_dask_design_state_matches_in_memory_cholmod(cls, dname):
    # The two designs' engine units may differ: the Dask design fits its conditioning (centring and
    # power-of-two scales of y and X, the power of four of the weights) on a sample.  Comparable:
    # * the objective on lme4's scale at θ in lme4's units (the brief's rtol 1e-9);
    # * log det M (rtol 1e-9): M = Λ'ᵀA'Λ' + I is the same matrix in any units, since Λ' = √c_w Λ
    #   and A' = A / c_w — so also M⁻¹b and diag(M⁻¹);
    # * β in the data's units (cond.beta), u·s_y·√c_w (u' = u / (s_y √c_w)) and pwrss·(s_y √c_w)²
    #   (the penalised residual sum of squares in the data's units).
    # Not comparable raw: the engine's β, u, pwrss, ldRX2 (the X scales enter log|R_X|²).
    dk, d = dask_design_of(dname), design(dname)
    assert d.cross.lower_part is None and dk.cross.lower_part is not None
    assert dk.n == d.n and dk.q == d.q and dk.p == d.p
    st, ref = fresh(cls, dk), reference(dname)
    sf, sf0 = dk.cond.sigma_factor, d.cond.sigma_factor
    rhs = rhs_of(dname)
    g = Gradient(st)
    # the gradient in lme4's units: dθ'/dθ = theta_factor per entry
    Fk = dk.theta_factor() if dk.theta_factor() is not None else 1.0
    F0 = d.theta_factor() if d.theta_factor() is not None else 1.0
    for pname, th in thetas(dname).items():
        tk, ti = dk.internal_theta(th), d.internal_theta(th)
        for REML in (True, False):
            f = st.objective(tk, REML) + dk.objective_offset(REML)
            f0 = ref.objective(ti, REML) + d.objective_offset(REML)
            assert f == pytest.approx(f0, rel=1e-9, abs=0), (pname, REML)
        assert st.update(tk) and ref.update(ti)
        close(st.ldL2, ref.ldL2, what=f"ldL2 {pname}")
        close(dk.cond.beta(st.beta), d.cond.beta(ref.beta), what=f"beta (data units) {pname}")
        close(st.u * sf, ref.u * sf0, what=f"u (data units) {pname}")
        close(st.pwrss * sf**2, ref.pwrss * sf0**2, what=f"pwrss (data units) {pname}")
        x0, md0, blocks0 = ref_inverse(dname, pname)
        assert st.update(tk)
        close(st.solve_M(rhs), x0, what=f"solve_M {pname}")
        close(st.minv_diag(), md0, what=f"minv_diag {pname}")
        for b, b0 in zip(st.minv_diag_blocks(), blocks0):
            close(b, b0, what=f"minv_diag_blocks {pname}")
        if g.available:
            for REML in (True, False):
                gb = ref_gradient(dname, pname, REML)
                assert gb is not None
                ga, gb = g(tk, REML) * Fk, gb * F0
                np.testing.assert_allclose(ga, gb, rtol=1e-8, atol=1e-9 * max(1.0, np.max(np.abs(gb))),
                                           err_msg=f"gradient {pname} REML={REML}")
