"""Kenward–Roger: against pbkrtest/lmerTest (tests/reference/lme4_extra.json) and a dense n × n check."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import sparselmm as slm
from sparselmm.errors import ModelSpecError
from sparselmm.spec.covariance import STRUCTURE_CLASSES
from sparselmm.stats.kenward_roger import (
    kenward_roger,
    kenward_roger_contrast,
    kenward_roger_test,
    kr_adjustment,
    kr_adjustment_at,
)

REF = json.loads((Path(__file__).parent / "reference" / "lme4_extra.json").read_text())["kenward_roger"]
CASES = sorted(REF)


def _data(name: str):
    if name == "timss":  # as the R script builds it: school means and centred columns
        t = slm.datasets.load_timss()
        g = t.groupby("idschool", observed=True)
        t["grpMmath"] = g["math"].transform("mean")
        t["grpCmath"] = t["math"] - t["grpMmath"]
        t["grpMhoursTV"] = g["hoursTV"].transform("mean")
        t["grpChoursTV"] = t["hoursTV"] - t["grpMhoursTV"]
        return t
    return slm.datasets.load(name)


_FITS: dict = {}


def _fit(dataset: str, formula: str, REML: bool = True, **kw):
    key = (dataset, formula, REML, tuple(sorted(kw)))
    if key not in _FITS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _FITS[key] = slm.lmer(formula, _data(dataset), REML=REML, **kw)
    return _FITS[key]


def _ref(cid: str) -> dict:
    """The reference at lme4's optimum (for the one unconverged lme4 fit: at the bobyqa refit)."""
    r = REF[cid]
    return r if r["converged"] else r["refit_bobyqa"]


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    """Max abs difference relative to the max abs entry of the reference."""
    b = np.asarray(b, dtype=float)
    return float(np.max(np.abs(np.asarray(a) - b)) / np.max(np.abs(b)))


# ----------------------------------------------------------------------------------------
# against R


@pytest.mark.parametrize("cid", CASES)
def test_against_pbkrtest_at_our_fit(cid: str) -> None:
    r = REF[cid]
    m = _fit(r["dataset"], r["formula"])
    ref = _ref(cid)
    assert list(m.fixef.index) == ref["beta_names"]
    vadj, df = kenward_roger(m)
    assert _rel(vadj, ref["vcov_adj"]) < 1e-3
    assert np.max(np.abs(df - np.array(ref["df"])) / np.array(ref["df"])) < 2e-3
    assert np.allclose(np.sqrt(np.diag(vadj)), ref["se"], rtol=1e-3)


@pytest.mark.parametrize("cid", CASES)
def test_against_pbkrtest_at_lme4_theta(cid: str) -> None:
    """At lme4's θ the computation is deterministic: agreement to rounding."""
    r = REF[cid]
    ref = _ref(cid)
    d = _fit(r["dataset"], r["formula"]).design
    adj = kr_adjustment_at(d, np.array(ref["theta"]))
    assert _rel(adj.vcov_adj, ref["vcov_adj"]) < 1e-8
    assert _rel(adj.vcov, ref["vcov_unadjusted"]) < 1e-8
    from sparselmm.stats.kenward_roger import _kr_ddf

    p = len(ref["df"])
    df = np.array([_kr_ddf(adj, np.eye(p)[j : j + 1])[0] for j in range(p)])
    assert np.allclose(df, ref["df"], rtol=1e-8)


# pbkrtest 0.5.2: KRmodcomp(m, L)$stats on the project's data (R script in the comments)
#   cake: m <- lmer(angle ~ recipe * temp + (1 | recipe:replicate), cake)
#         L <- rbind(c(0,1,0,0,0,0), c(0,0,1,0,0,0))    -> ndf 2, ddf 254.015763178215, F.scaling 1,
#                                                          Fstat 0.0956779645965032
#   Hsb82: m <- lmer(mAch ~ meanses * cses + sector * cses + (cses | school), Hsb82)
#         L <- rbind(c(0,1,0,0,0,0), c(0,0,0,1,0,0), c(0,0,0,0,0,1))
#                                                       -> ndf 3, ddf 173.366147587249,
#                                                          F.scaling 0.993790557538762, Fstat 117.864131806385
#         L <- rbind(c(0,1,0,1,0,0), c(0,1,0,1,0,0))    -> ndf 1, ddf 155.335716215313, Fstat 54.2818190864696
KRMODCOMP = [
    ("cake", [[0, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0]], 2, 254.015763178215, 1.0, 0.0956779645965032),
    (
        "Hsb82",
        [[0, 1, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0], [0, 0, 0, 0, 0, 1]],
        3,
        173.366147587249,
        0.993790557538762,
        117.864131806385,
    ),
    ("Hsb82", [[0, 1, 0, 1, 0, 0], [0, 1, 0, 1, 0, 0]], 1, 155.335716215313, 1.0, 54.2818190864696),
]
FORMULAS = {
    "cake": "angle ~ recipe * temp + (1 | recipe:replicate)",
    "Hsb82": "mAch ~ meanses * cses + sector * cses + (cses | school)",
}


@pytest.mark.parametrize("ds, L, ndf, ddf, scaling, F", KRMODCOMP)
def test_contrast_against_krmodcomp(ds: str, L: list, ndf: int, ddf: float, scaling: float, F: float) -> None:
    m = _fit(ds, FORMULAS[ds])
    got_ddf, got_scaling = kenward_roger_contrast(m, np.array(L, dtype=float))
    assert got_ddf == pytest.approx(ddf, rel=2e-3)
    assert got_scaling == pytest.approx(scaling, rel=1e-4)
    res = kenward_roger_test(m, np.array(L, dtype=float))
    assert res["ndf"] == ndf
    assert res["F"] == pytest.approx(F, rel=1e-3)
    assert res["ddf"] == got_ddf


def test_single_row_contrast_matches_coefficient_df() -> None:
    m = _fit("Hsb82", FORMULAS["Hsb82"])
    _, df = kenward_roger(m)
    for j in range(len(df)):
        e = np.zeros(len(df))
        e[j] = 1.0
        ddf, scaling = kenward_roger_contrast(m, e)
        assert ddf == pytest.approx(df[j], rel=1e-12)
        assert scaling == pytest.approx(1.0, abs=1e-10)  # one row: A1 = A2, no scaling
    # t test of β_j = 0 is the F test with rhs 0
    res = kenward_roger_test(m, np.eye(len(df))[1])
    vadj, _ = kenward_roger(m)
    t = m.fixef.iloc[1] / np.sqrt(vadj[1, 1])
    assert res["F_unscaled"] == pytest.approx(t**2, rel=1e-10)


def test_rhs_shifts_the_hypothesis() -> None:
    m = _fit("sleepstudy", "Reaction ~ Days + (Days | Subject)")
    b = m.fixef.to_numpy()
    res = kenward_roger_test(m, [0, 1], rhs=b[1])
    assert res["F"] == pytest.approx(0.0, abs=1e-20)
    with pytest.raises(ModelSpecError):
        kenward_roger_test(m, [[0, 1], [0, 1]], rhs=[1.0, 2.0])


# ----------------------------------------------------------------------------------------
# ML fits: lmerTest refuses, pbkrtest refits by REML


def test_ml_fit_raises_or_refits() -> None:
    m = _fit("sleepstudy", "Reaction ~ Days + (Days | Subject)", REML=False)
    with pytest.raises(ModelSpecError, match="REML"):
        kenward_roger(m)
    vadj, df = kenward_roger(m, refit=True)  # pbkrtest::vcovAdj(ML fit) refits by REML
    ref = REF["sleepstudy__Reaction_Days_Days_Subject___REML"]
    assert _rel(vadj, ref["vcov_adj"]) < 1e-3
    assert np.allclose(df, ref["df"], rtol=2e-3)


def test_bad_contrast() -> None:
    m = _fit("sleepstudy", "Reaction ~ Days + (Days | Subject)")
    with pytest.raises(ModelSpecError, match="columns"):
        kenward_roger_contrast(m, np.ones(3))
    with pytest.raises(ModelSpecError):
        kenward_roger_contrast(m, np.zeros(2))


# ----------------------------------------------------------------------------------------
# independent dense check: pbkrtest's vcovAdj_internal and Lb_ddf transcribed with n × n matrices


def _dense_kr(m) -> tuple[np.ndarray, np.ndarray]:
    """pbkrtest, literally: Σ = Σ γ_i G_i with explicit n × n G_i; residual G = W⁻¹."""
    d = m.design
    Z = d.Zt.T.toarray()
    X = d.X
    n, p = X.shape
    s2 = m.sigma**2
    G, gam = [], []
    for t, lo, hi, T in zip(d.terms, d.Gp[:-1], d.Gp[1:], m._blocks()):
        k = t.k
        cov = s2 * T @ T.T
        Zt_ = Z[:, lo:hi]
        pairs = [(a, b) for b in range(k) for a in range(b, k)] if t.structure.name == "us" else [(a, a) for a in range(k)]
        for a, b in pairs:
            E = np.zeros((k, k))
            E[a, b] = E[b, a] = 1.0
            G.append(Zt_ @ np.kron(np.eye(t.nlevels), E) @ Zt_.T)
            gam.append(cov[a, b])
    w = np.ones(n) if d.weights is None else d.weights
    G.append(np.diag(1.0 / w))
    gam.append(s2)
    Sigma = sum(g * Gi for g, Gi in zip(gam, G))
    Si = np.linalg.inv(Sigma)
    Phi = np.linalg.inv(X.T @ Si @ X)
    mm = len(G)
    HH = [Gi @ Si for Gi in G]
    OO = [H @ X for H in HH]
    TT = Si @ X
    PP = [-(O.T @ TT) for O in OO]
    QQ = {(i, j): OO[i].T @ Si @ OO[j] for i in range(mm) for j in range(i, mm)}
    K = np.array([[np.sum(HH[i].T * HH[j]) for j in range(mm)] for i in range(mm)])
    IE2 = np.zeros((mm, mm))
    for i in range(mm):
        for j in range(i, mm):
            IE2[i, j] = IE2[j, i] = K[i, j] - 2 * np.sum(Phi * QQ[i, j]) + np.sum((Phi @ PP[i]) * (PP[j] @ Phi))
    W = 2 * np.linalg.inv(IE2)
    UU = np.zeros((p, p))
    for i in range(mm - 1):
        for j in range(i + 1, mm):
            UU += W[i, j] * (QQ[i, j] - PP[i] @ Phi @ PP[j])
    UU = UU + UU.T
    for i in range(mm):
        UU += W[i, i] * (QQ[i, i] - PP[i] @ Phi @ PP[i])
    PhiA = Phi + 2 * Phi @ UU @ Phi
    dfs = []
    for jj in range(p):
        L = np.zeros((1, p))
        L[0, jj] = 1
        Theta = L.T @ np.linalg.solve(L @ Phi @ L.T, L)
        A1 = A2 = 0.0
        for i in range(mm):
            for j in range(i, mm):
                e = 1 if i == j else 2
                ui = Theta @ Phi @ PP[i] @ Phi
                uj = Theta @ Phi @ PP[j] @ Phi
                A1 += e * W[i, j] * np.trace(ui) * np.trace(uj)
                A2 += e * W[i, j] * np.sum(ui * uj.T)
        q = 1
        B = (A1 + 6 * A2) / (2 * q)
        g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
        c1, c2, c3 = (g / (3 * q + 2 * (1 - g)), (q - g) / (3 * q + 2 * (1 - g)), (q + 2 - g) / (3 * q + 2 * (1 - g)))
        V0, V1, V2 = 1 + c1 * B, 1 - c2 * B, 1 - c3 * B
        rho = 1 / q * ((1 - A2 / q) / V1) ** 2 * V0 / V2
        dfs.append(4 + (q + 2) / (q * rho - 1))
    return PhiA, np.array(dfs)


DENSE = [
    ("sleepstudy", "Reaction ~ Days + (Days | Subject)"),
    ("sleepstudy", "Reaction ~ Days + (Days || Subject)"),
    ("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)"),
    ("Pastes", "strength ~ 1 + (1 | batch/cask)"),
]


@pytest.mark.parametrize("ds, formula", DENSE)
def test_dense_check(ds: str, formula: str) -> None:
    m = _fit(ds, formula)
    vadj, df = kenward_roger(m)
    PhiA, df_dense = _dense_kr(m)
    assert _rel(vadj, PhiA) < 1e-8
    assert np.allclose(df, df_dense, rtol=1e-8)


def test_dense_check_weighted() -> None:
    """With prior weights the residual G is W⁻¹ (pbkrtest ignores weights; see the module docstring)."""
    data = slm.datasets.load("sleepstudy").copy()
    data["w"] = np.random.default_rng(1).uniform(0.5, 2.0, len(data))
    m = slm.lmer("Reaction ~ Days + (Days | Subject)", data, weights="w")
    vadj, df = kenward_roger(m)
    PhiA, df_dense = _dense_kr(m)
    assert _rel(vadj, PhiA) < 1e-8
    assert np.allclose(df, df_dense, rtol=1e-8)
    adj = kr_adjustment(m)
    assert _rel(adj.vcov, m.vcov.to_numpy()) < 1e-12


def test_adjustment_pieces() -> None:
    m = _fit("sleepstudy", "Reaction ~ Days + (Days | Subject)")
    adj = kr_adjustment(m)
    assert adj.par_names == [
        "Subject:(Intercept)",
        "Subject:Days.(Intercept)",
        "Subject:Days",
        "Residual",
    ]
    assert adj.W.shape == (4, 4) and len(adj.P) == 4
    assert np.allclose(adj.W, adj.W.T)
    assert np.all(np.linalg.eigvalsh(adj.W) > 0)
    assert adj.condition > 1e-10


def test_structures() -> None:
    """diag(x | g) is lme4's (x || g); structures that are not linear in the covariance entries raise."""
    data = slm.datasets.load("sleepstudy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = slm.lmer("Reaction ~ Days + diag(Days | Subject)", data)
        m_cs = slm.lmer("Reaction ~ Days + cs(1 + Days | Subject)", data)
    ref = REF["sleepstudy__Reaction_Days_Days_zerocorr_Subject___REML"]
    vadj, df = kenward_roger(m)
    assert _rel(vadj, ref["vcov_adj"]) < 1e-3
    assert np.allclose(df, ref["df"], rtol=2e-3)
    with pytest.raises(ModelSpecError, match="structure 'cs'"):
        kenward_roger(m_cs)


@pytest.mark.parametrize("name", list(STRUCTURE_CLASSES))
def test_parameters_are_the_structures_covariance_entries(name: str) -> None:
    """KR's variance parameters are each term's ``covariance_entries()``; structures without them raise."""
    data = slm.datasets.load("sleepstudy")
    d = slm.design(f"Reaction ~ Days + {name}(1 + Days | Subject)", data)
    s = d.terms[0].structure
    entries = s.covariance_entries()
    if entries is None:
        with pytest.raises(ModelSpecError, match=f"structure '{name}'"):
            kr_adjustment_at(d, d.theta_start)
        return
    cols = d.terms[0].columns
    adj = kr_adjustment_at(d, d.theta_start)
    assert adj.par_names == [f"Subject:{cols[a]}" if a == b else f"Subject:{cols[a]}.{cols[b]}" for a, b in entries] + [
        "Residual"
    ]
    assert adj.W.shape == (len(entries) + 1,) * 2
