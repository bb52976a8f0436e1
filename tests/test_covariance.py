"""Covariance structures: the maps θ ↦ T, fits against glmmTMB, and dense checks of the hom* structures."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import scipy.linalg as sla
import scipy.optimize as sopt
from conftest import REF_DIR, fit, load_data

import sparselmm as slm
from sparselmm.spec.covariance import (
    STRUCTURE_CLASSES,
    AR1,
    CompoundSymmetry,
    CovStructure,
    HomCompoundSymmetry,
    HomDiagonal,
    HomToeplitz,
    Toeplitz,
    levinson_autocorrelations,
    make_structure,
)
from sparselmm.errors import ModelSpecError
from sparselmm.spec.formula import parse_formula
from sparselmm.stats.profile import sdcor_from_theta as _sdcor_from_theta, theta_from_sdcor as _theta_from_sdcor

TMB = json.loads((REF_DIR / "glmmtmb_structured.json").read_text())
TMB_CASES = sorted(TMB)
FIXED = "y ~ time * treatment"
ALL = list(STRUCTURE_CLASSES)
K = 6


def formula(structure: str) -> str:
    return f"{FIXED} + {structure}(0 + occasion | subject)"


def random_par(s: CovStructure, rng: np.random.Generator) -> np.ndarray:
    """A random parameter vector strictly inside the bounds."""
    lo, hi = s.lower(), s.upper()
    lo_f = np.where(np.isfinite(lo), lo, -2.0)
    hi_f = np.where(np.isfinite(hi), hi, 3.0)
    return lo_f + (hi_f - lo_f) * rng.uniform(0.05, 0.95, len(lo))


def expected_cov(name: str, par: np.ndarray, k: int) -> np.ndarray:
    """``Σ_rel`` written from the definitions (independently of the factors)."""
    lag = np.abs(np.subtract.outer(np.arange(k), np.arange(k)))
    if name == "homdiag":
        return par[0] ** 2 * np.eye(k)
    if name in ("cs", "homcs"):
        s = par[:k] if name == "cs" else np.full(k, par[0])
        rho = par[-1]
        R = np.where(lag == 0, 1.0, rho)
        return np.outer(s, s) * R
    if name == "ar1":
        return par[0] ** 2 * par[1] ** lag
    if name in ("toep", "homtoep"):
        s = par[:k] if name == "toep" else np.full(k, par[0])
        phi = par[-(k - 1) :]
        # Yule–Walker in reverse: the autocorrelations whose partial autocorrelations are φ
        r = [1.0]
        for n in range(1, k):
            # choose r_n so that the n-th partial autocorrelation is φ_n
            def pacf_n(rn: float, n: int = n) -> float:
                rr = np.array(r + [rn])
                a = np.linalg.solve(sla.toeplitz(rr[:n]), rr[1 : n + 1])
                return a[-1] - phi[n - 1]

            r.append(sopt.brentq(pacf_n, -1 + 1e-12, 1 - 1e-12, xtol=1e-15))
        return np.outer(s, s) * np.array(r)[lag]
    raise AssertionError(name)


# ----------------------------------------------------------------------------------------
# the maps θ ↦ T


@pytest.mark.parametrize("name", ALL)
def test_structure_protocol_and_shapes(name):
    s = make_structure(name, K, [f"occasiont{i + 1}" for i in range(K)])
    assert isinstance(s, CovStructure)
    assert s.name == name and s.k == K
    n_par = {"us": 21, "diag": 6, "homdiag": 1, "cs": 7, "homcs": 2, "ar1": 2, "toep": 11, "homtoep": 6}[name]
    assert s.n_par == n_par
    for v in (s.start(), s.lower(), s.upper()):
        assert v.shape == (n_par,)
    assert len(s.par_names()) == n_par
    assert np.all(s.lower() <= s.start()) and np.all(s.start() <= s.upper())
    # the start is T = I, as lme4's
    np.testing.assert_allclose(s.block(s.start()), np.eye(K))


@pytest.mark.parametrize("name", ALL)
def test_block_is_lower_triangular_and_matches_tril_values(name):
    rng = np.random.default_rng(1)
    s = make_structure(name, K, None)
    for _ in range(5):
        par = random_par(s, rng)
        T = s.block(par)
        assert T.shape == (K, K)
        np.testing.assert_array_equal(T, np.tril(T))
        r, c = np.tril_indices(K)
        np.testing.assert_allclose(s.tril_values(par), T[r, c], rtol=0, atol=0)
        np.testing.assert_allclose(s.relative_cov(par), T @ T.T)


@pytest.mark.parametrize("name", ["homdiag", "cs", "homcs", "ar1", "toep", "homtoep"])
def test_block_reproduces_the_structure(name):
    rng = np.random.default_rng(2)
    s = make_structure(name, K, None)
    for _ in range(4):
        par = random_par(s, rng)
        np.testing.assert_allclose(s.relative_cov(par), expected_cov(name, par, K), atol=1e-10)
        sd = s.sd(par)
        np.testing.assert_allclose(s.corr(par), s.relative_cov(par) / np.outer(sd, sd), atol=1e-12)


@pytest.mark.parametrize("name", ["cs", "homcs", "ar1", "toep", "homtoep"])
def test_boundaries_give_a_finite_psd_factor(name):
    """Every corner of the correlation box gives a finite factor with T Tᵀ ⪰ 0 and unit correlations on the diagonal."""
    s = make_structure(name, K, None)
    lo, hi = s.lower(), s.upper()
    sd_part = np.full(s.n_par - s.n_cor, 1.5)
    rng = np.random.default_rng(3)
    corners = [np.where(rng.uniform(size=s.n_cor) < 0.5, lo[-s.n_cor :], hi[-s.n_cor :]) for _ in range(6)]
    corners += [lo[-s.n_cor :], hi[-s.n_cor :]]
    for c in corners:
        par = np.concatenate([sd_part, c])
        T = s.block(par)
        assert np.all(np.isfinite(T))
        S = T @ T.T
        assert np.linalg.eigvalsh(S).min() > -1e-10
        np.testing.assert_allclose(np.diag(S), 1.5**2)
    # just outside the box: clipped onto it, never NaN
    out = np.concatenate([sd_part, hi[-s.n_cor :] + 1e-3])
    np.testing.assert_allclose(s.block(out), s.block(np.concatenate([sd_part, hi[-s.n_cor :]])))
    # a zero SD is allowed (lower bound 0)
    assert np.all(np.isfinite(s.block(np.concatenate([np.zeros_like(sd_part), c]))))


def test_cs_bounds_are_the_psd_range():
    s = CompoundSymmetry(K)
    assert s.lower()[-1] == pytest.approx(-1 / (K - 1)) and s.upper()[-1] == 1.0
    assert np.all(s.lower()[:K] == 0) and np.all(np.isinf(s.upper()[:K]))
    T = s.block(np.r_[np.ones(K), -1 / (K - 1)])
    assert abs(np.linalg.det(T @ T.T)) < 1e-12  # singular at the lower end
    assert HomCompoundSymmetry(K).par_names() == ["sd", "rho"]
    assert AR1(K).par_names() == ["sd", "rho"]
    assert HomDiagonal(K).par_names() == ["sd"]
    assert HomToeplitz(K).par_names() == ["sd"] + [f"pacf{j}" for j in range(1, K)]


def test_levinson_autocorrelations():
    # AR(1): φ = (ρ, 0, …) gives ρ^n
    np.testing.assert_allclose(levinson_autocorrelations(np.r_[0.6, np.zeros(4)]), 0.6 ** np.arange(1, 6))
    # random φ inside the box: positive definite Toeplitz, and the partial autocorrelations come back
    rng = np.random.default_rng(4)
    for _ in range(5):
        phi = rng.uniform(-0.99, 0.99, 5)
        r = levinson_autocorrelations(phi)
        R = sla.toeplitz(np.r_[1.0, r])
        assert np.linalg.eigvalsh(R).min() > 0
        back = [np.linalg.solve(sla.toeplitz(np.r_[1.0, r][:n]), r[:n])[-1] for n in range(1, 6)]
        np.testing.assert_allclose(back, phi, atol=1e-10)
    t = Toeplitz(K)
    par = np.r_[np.ones(K), 0.5, -0.2, 0.1, 0.0, 0.3]
    np.testing.assert_allclose(t.lag_correlations(par), t.corr(par)[0, 1:], atol=1e-12)


def test_one_column_terms():
    for name in ALL:
        s = make_structure(name, 1, ["(Intercept)"])
        assert s.n_par == 1
        np.testing.assert_allclose(s.block(np.array([2.0])), [[2.0]])


def test_unknown_structure():
    with pytest.raises(ModelSpecError, match="not available"):
        make_structure("banded", 3, None)


def test_formula_structures_are_the_structure_classes():
    # the parser reads the structure table itself: every registered name is accepted, nothing else
    for name in STRUCTURE_CLASSES:
        assert parse_formula(f"y ~ x + {name}(0 + a + b | g)").bars[0].structure == name
    with pytest.raises(slm.FormulaError, match="unknown covariance structure 'unstr'"):
        parse_formula("y ~ x + unstr(0 + a + b | g)")


# ----------------------------------------------------------------------------------------
# what each structure answers for the engine (every structure, k = 1..4)

EVERY = [(name, k) for name in ALL for k in range(1, 5)]


def _fd_jacobian(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences of a vector function (columns: the parameters)."""
    cols = []
    for i in range(len(x)):
        e = np.zeros_like(x)
        e[i] = h
        cols.append((f(x + e) - f(x - e)) / (2 * h))
    return np.column_stack(cols)


@pytest.mark.parametrize("name, k", EVERY)
def test_linear_entries_reproduce_the_block(name, k):
    """``T = Σ_i par_i E_i`` exactly, with the entries a structure declares linear."""
    s = make_structure(name, k, None)
    entries = s.linear_entries()
    if entries is None:
        return
    assert all(0 <= i < s.n_par and 0 <= c <= r < k for i, r, c in entries)
    rng = np.random.default_rng(10 + k)
    for _ in range(4):
        par = random_par(s, rng)
        T = np.zeros((k, k))
        for i, r, c in entries:
            T[r, c] += par[i]
        np.testing.assert_array_equal(T, s.block(par))


@pytest.mark.parametrize("name, k", EVERY)
def test_theta_from_covariance_round_trip(name, k):
    s = make_structure(name, k, None)
    rng = np.random.default_rng(20 + k)
    for _ in range(4):
        S = s.relative_cov(random_par(s, rng))
        par = s.theta_from_covariance(S)
        if par is None:
            return
        assert par.shape == (s.n_par,)
        assert np.all(s.lower() <= par) and np.all(par <= s.upper())
        np.testing.assert_allclose(s.relative_cov(par), S, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name, k", EVERY)
def test_covariance_entries_are_the_free_entries(name, k):
    """Zero outside the declared entries, and the entries move independently (Jacobian of full rank)."""
    s = make_structure(name, k, None)
    entries = s.covariance_entries()
    if entries is None:
        return
    assert entries == sorted(entries, key=lambda ab: (ab[1], ab[0])) and len(set(entries)) == len(entries)
    assert all(0 <= b <= a < k for a, b in entries)
    assert len(entries) == s.n_par
    free = np.zeros((k, k), dtype=bool)
    for a, b in entries:
        free[a, b] = free[b, a] = True
    a_, b_ = np.array(entries).T
    rng = np.random.default_rng(30 + k)
    for _ in range(4):
        par = random_par(s, rng)
        S = s.relative_cov(par)
        assert np.all(S[~free] == 0)
        J = _fd_jacobian(lambda x: s.relative_cov(x)[a_, b_], par)
        assert np.linalg.matrix_rank(J, tol=1e-6) == len(entries)


@pytest.mark.parametrize("name, k", EVERY)
def test_lind_and_lme4_theta(name, k):
    """``lind`` indexes the row-major lower triangle of ``T``; lme4's θ is that triangle column by column."""
    s = make_structure(name, k, None)
    assert isinstance(s.lme4_theta, bool)
    rng = np.random.default_rng(40 + k)
    par = random_par(s, rng)
    T = s.block(par)
    if s.lind is not None:
        np.testing.assert_array_equal(s.tril_values(par), par[s.lind])
    if s.lme4_theta:
        assert s.lind is not None and s.n_par == k * (k + 1) // 2
        np.testing.assert_array_equal(par, np.concatenate([T[j:, j] for j in range(k)]))
        L = np.linalg.cholesky(T @ T.T)
        np.testing.assert_allclose(s.theta_from_covariance(T @ T.T), np.concatenate([L[j:, j] for j in range(k)]))


@pytest.mark.parametrize("name", ALL)
def test_profile_sdcor_needs_lme4_theta(name):
    """Profile intervals map θ to standard deviations and correlations and back: lme4's θ only."""
    d = slm.design(formula(name), load_data("repeated"))
    m = SimpleNamespace(design=d)
    th = random_par(d.terms[0].structure, np.random.default_rng(6))
    if not d.terms[0].structure.lme4_theta:
        with pytest.raises(ModelSpecError, match="profile"):
            _sdcor_from_theta(m, th, 2.0)
        return
    np.testing.assert_allclose(_theta_from_sdcor(m, _sdcor_from_theta(m, th, 2.0), 2.0), th, rtol=1e-10)


# ----------------------------------------------------------------------------------------
# designs


@pytest.mark.parametrize("name", ALL)
def test_design_layout(name):
    d = slm.design(formula(name), load_data("repeated"))
    s = d.terms[0].structure
    assert s.name == name
    assert len(d.theta_start) == len(d.lower) == len(d.upper) == s.n_par
    assert (d.Lind is None) == (name != "us")
    # Λ from the design equals blockdiag(T, …, T)
    rng = np.random.default_rng(5)
    par = random_par(s, rng)
    L = d.Lambda(par).toarray()
    np.testing.assert_allclose(L[:K, :K], s.block(par))
    np.testing.assert_allclose(L[K : 2 * K, K : 2 * K], s.block(par))
    assert np.all(L[:K, K:] == 0)


@pytest.mark.parametrize("name", ["cs", "ar1", "toep"])
def test_objective_finite_on_the_boundary(name):
    d = slm.design(formula(name), load_data("repeated"))
    f = d.objective_function(REML=True)
    s = d.terms[0].structure
    for bound in (d.lower, d.upper):
        th = d.theta_start.copy()
        th[s.n_par - s.n_cor :] = bound[s.n_par - s.n_cor :]  # every correlation parameter on its bound
        assert np.isfinite(f(th))


# ----------------------------------------------------------------------------------------
# fits against glmmTMB


def _tmb_fit(case: str) -> slm.LinearMixedModel:
    r = TMB[case]
    return fit("repeated", r["formula"], r["REML"])


@pytest.mark.parametrize("case", TMB_CASES)
def test_matches_glmmtmb(case):
    r = TMB[case]
    m = _tmb_fit(case)
    assert r["formula"] == formula(r["structure"])
    # −2 logLik (REML: −2 restricted logLik) within 1e-4 relative, or lower
    assert (m.objective - r["objective"]) / abs(r["objective"]) < 1e-4
    assert m.npar == r["df"]
    assert m.aic == pytest.approx(r["AIC"], rel=1e-4)
    np.testing.assert_allclose(m.fixef.reindex(r["beta_names"]).to_numpy(), r["beta"], atol=1e-3)
    assert m.sigma == pytest.approx(r["sigma"], abs=1e-2)
    S = m.design.terms[0].structure
    Sigma = m.sigma**2 * S.relative_cov(m.theta)
    sd = np.sqrt(np.diag(Sigma))
    np.testing.assert_allclose(sd, r["re_sd"], atol=1e-2)
    np.testing.assert_allclose(Sigma / np.outer(sd, sd), np.array(r["re_cor"]), atol=1e-2)
    # the same through varcorr()
    vc = m.varcorr()
    sub = vc[vc.grp == "subject"]
    np.testing.assert_allclose(sub[sub.var2.isna()].sdcor.to_numpy(), r["re_sd"], atol=1e-2)
    assert not m.singular


@pytest.mark.parametrize("name", ALL)
def test_varcorr_and_summary_every_structure(name):
    m = fit("repeated", formula(name), True)
    vc = m.varcorr()
    assert list(vc.columns) == ["grp", "var1", "var2", "vcov", "sdcor"]
    assert len(vc) == K + K * (K - 1) // 2 + 1
    sds = vc[(vc.grp == "subject") & vc.var2.isna()].sdcor.to_numpy()
    cors = vc[(vc.grp == "subject") & vc.var2.notna()].sdcor.to_numpy()
    assert np.all(np.isfinite(sds)) and np.all(sds > 0)
    if name in ("homdiag", "homcs", "ar1", "homtoep"):
        np.testing.assert_allclose(sds, sds[0], rtol=1e-12)
    if name in ("diag", "homdiag"):
        np.testing.assert_allclose(cors, 0.0, atol=1e-12)
    if name in ("cs", "homcs"):
        np.testing.assert_allclose(cors, cors[0], rtol=1e-10)
    if name == "ar1":
        rho = m.theta[1]
        S = m.design.terms[0].structure.corr(m.theta)
        np.testing.assert_allclose(S[0], rho ** np.arange(K), rtol=1e-10)
    if name in ("toep", "homtoep"):
        R = m.design.terms[0].structure.corr(m.theta)
        for lag in range(1, K):
            np.testing.assert_allclose(np.diag(R, lag), R[0, lag], rtol=1e-10)
    if hasattr(m, "summary") and name != "us":  # us: lme4's case, covered by test_display
        text = m.summary()
        assert isinstance(text, str) and "occasiont6" in text


def test_anova_between_structures():
    """LRT of AR(1) within the unstructured model, and of homcs within cs, on ML fits."""
    m_ar1 = _tmb_fit("ar1__ML")
    m_us = _tmb_fit("us__ML")
    tab = slm.anova(m_ar1, m_us, names=["ar1", "us"])
    assert list(tab.index) == ["ar1", "us"]
    assert list(tab["npar"]) == [7, 26]
    chisq = TMB["ar1__ML"]["objective"] - TMB["us__ML"]["objective"]
    assert tab.loc["us", "Chisq"] == pytest.approx(chisq, abs=1e-3)
    assert tab.loc["us", "Df"] == 19
    from scipy import stats

    assert tab.loc["us", "Pr(>Chisq)"] == pytest.approx(stats.chi2.sf(tab.loc["us", "Chisq"], 19))
    np.testing.assert_allclose(tab["AIC"], [TMB["ar1__ML"]["AIC"], TMB["us__ML"]["AIC"]], rtol=1e-6)
    # REML fits are refitted by ML first
    with pytest.warns(Warning, match="refitting"):
        tab2 = slm.anova(fit("repeated", formula("homcs"), True), fit("repeated", formula("cs"), True))
    assert list(tab2["npar"]) == [7, 12]
    assert tab2.iloc[1]["Chisq"] >= 0


# ----------------------------------------------------------------------------------------
# hom* structures against a dense direct maximisation of the marginal likelihood

N_SUB = 10  # n = 120: small enough for the dense n × n algebra (and below BLAS threading thresholds)


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    d = load_data("repeated")
    keep = d.subject.cat.categories[:N_SUB]
    return d[d.subject.isin(keep)].reset_index(drop=True)


class DenseLMM:
    """The marginal likelihood with ``V = σ² (Z (I ⊗ Σ_rel) Zᵀ + I)`` built explicitly (n × n).

    ``Z`` is the n × (subjects·K) indicator matrix of subject × occasion, so
    ``(Z (I ⊗ Σ_rel) Zᵀ)_ij = Σ_rel[occ_i, occ_j] · [subject_i = subject_j]``;
    the test checks both spellings agree.
    """

    def __init__(self, data: pd.DataFrame) -> None:
        ctrl = (data.treatment == "control").to_numpy(float)
        t = data.time.to_numpy(float)
        self.X = np.column_stack([np.ones(len(data)), t, ctrl, t * ctrl])
        self.y = data.y.to_numpy(float)
        self.subj = data.subject.cat.remove_unused_categories().cat.codes.to_numpy().astype(np.int64)
        self.occ = data.occasion.cat.codes.to_numpy().astype(np.int64)
        self.nsub = int(self.subj.max()) + 1
        self.n, self.p = self.X.shape
        self.Z = np.zeros((self.n, self.nsub * K))
        self.Z[np.arange(self.n), self.subj * K + self.occ] = 1.0
        self.same = (self.subj[:, None] == self.subj[None, :]).astype(float)

    def V_kron(self, Sigma_rel: np.ndarray) -> np.ndarray:
        """``Z (I ⊗ Σ_rel) Zᵀ + I`` by the matrix products."""
        return self.Z @ np.kron(np.eye(self.nsub), Sigma_rel) @ self.Z.T + np.eye(self.n)

    def V(self, Sigma_rel: np.ndarray) -> np.ndarray:
        """The same matrix entry by entry (cheaper inside the optimiser)."""
        return Sigma_rel[np.ix_(self.occ, self.occ)] * self.same + np.eye(self.n)

    def objective(self, Sigma_rel: np.ndarray, REML: bool) -> float:
        """−2 logLik (ML) or −2 restricted logLik (REML) with β and σ² profiled out.

        ``n (1 + log(2π r'V⁻¹r / n)) + log|V|`` (ML) and
        ``(n−p)(1 + log(2π r'V⁻¹r / (n−p))) + log|V| + log|X'V⁻¹X|`` (REML),
        ``r = y − Xβ̂`` with the GLS ``β̂``, ``V`` relative to σ².
        """
        try:
            cf = sla.cho_factor(self.V(Sigma_rel), lower=True)
        except (np.linalg.LinAlgError, ValueError):
            return np.inf
        logdetV = 2 * np.sum(np.log(np.diag(cf[0])))
        ViX = sla.cho_solve(cf, self.X)
        Viy = sla.cho_solve(cf, self.y)
        XtViX = self.X.T @ ViX
        beta = np.linalg.solve(XtViX, self.X.T @ Viy)
        r = self.y - self.X @ beta
        pwrss = r @ sla.cho_solve(cf, r)
        dof = self.n - self.p if REML else self.n
        out = dof * (1 + np.log(2 * np.pi * pwrss / dof)) + logdetV
        if REML:
            out += np.linalg.slogdet(XtViX)[1]
        return float(out)


def _dense_sigma(name: str, z: np.ndarray) -> np.ndarray:
    """Σ_rel from unconstrained parameters (a parametrisation unlike the engine's)."""
    s = np.exp(z[0])
    if name == "homdiag":
        return s**2 * np.eye(K)
    if name == "homcs":
        lo = -1 / (K - 1)
        rho = lo + (1 - lo) / (1 + np.exp(-z[1]))
        return s**2 * ((1 - rho) * np.eye(K) + rho)
    if name == "homtoep":
        R = sla.toeplitz(np.r_[1.0, np.tanh(z[1:])])
        if np.linalg.eigvalsh(R).min() <= 1e-10:
            return np.full((K, K), np.nan)
        return s**2 * R
    raise AssertionError(name)


def _dense_fit(dense: DenseLMM, name: str, REML: bool) -> tuple[float, np.ndarray]:
    npar = {"homdiag": 1, "homcs": 2, "homtoep": K}[name]

    def f(z: np.ndarray) -> float:
        S = _dense_sigma(name, z)
        return dense.objective(S, REML) if np.all(np.isfinite(S)) else np.inf

    # quasi-Newton from z = 0 (Σ = I), then a Nelder–Mead polish
    res = sopt.minimize(f, np.zeros(npar), method="L-BFGS-B", options={"ftol": 1e-14, "gtol": 1e-7})
    res2 = sopt.minimize(f, res.x, method="Nelder-Mead", options={"xatol": 1e-7, "fatol": 1e-10, "maxfev": 400 * npar})
    best = res2 if res2.fun < res.fun else res
    return float(best.fun), _dense_sigma(name, best.x)


@pytest.mark.parametrize("REML", [False, True], ids=["ML", "REML"])
@pytest.mark.parametrize("name", ["homdiag", "homcs", "homtoep"])
def test_hom_structures_against_dense_maximisation(small, name, REML):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = slm.lmer(formula(name), small, REML=REML)
    dense = DenseLMM(small)
    S = m.design.terms[0].structure
    Sigma_rel = S.relative_cov(m.theta)
    np.testing.assert_allclose(dense.V(Sigma_rel), dense.V_kron(Sigma_rel), atol=1e-12)
    # the mathematics: the dense objective at the engine's optimum equals the engine's objective
    assert dense.objective(Sigma_rel, REML) == pytest.approx(m.objective, rel=1e-9)
    # the optimum: the engine is as good as a direct dense maximisation
    f_dense, Sigma_dense = _dense_fit(dense, name, REML)
    assert (m.objective - f_dense) / abs(f_dense) < 1e-7
    assert (f_dense - m.objective) / abs(f_dense) < 1e-5  # and the dense optimiser agrees
    # the estimates (relative to σ²): SDs and correlations
    sd, sd_d = np.sqrt(np.diag(Sigma_rel)), np.sqrt(np.diag(Sigma_dense))
    np.testing.assert_allclose(sd, sd_d, atol=1e-2)
    np.testing.assert_allclose(Sigma_rel / np.outer(sd, sd), Sigma_dense / np.outer(sd_d, sd_d), atol=1e-2)


# ----------------------------------------------------------------------------------------
# the documentation page

DOC = Path(__file__).resolve().parent.parent / "docs" / "structured.md"


def test_doc_table_lists_every_structure():
    text = DOC.read_text()
    for name, cls in STRUCTURE_CLASSES.items():
        assert f"<code>{name}(0 + f &#124; g)</code>" in text, name
        assert f"`{name}`" in text


@pytest.mark.slow
def test_doc_example_runs(capsys):
    code = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(code) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(code[0], str(DOC), "exec"), {})
    out = capsys.readouterr().out
    assert "ar1         7    3672.32  3686.32  3720.38" in out
