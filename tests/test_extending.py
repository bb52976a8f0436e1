"""Adding a backend or a covariance structure is one class and one registry entry.

Both are shown here the way a contributor would add them — a class written against the
contract (sparselmm.backends.base.PLSBackend, sparselmm.spec.covariance's structure protocol)
and one entry in its registry (monkeypatched here, a line of source there) — and the fit
through lmer() is then the same as by the built-in ones."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.linalg as sla

import sparselmm as slm
from conftest import load_data
from sparselmm.backends import registry
from sparselmm.backends.base import PLSBackend
from sparselmm.spec import covariance
from sparselmm.spec.covariance import _Structure

F = "Reaction ~ Days + (Days | Subject)"


class DenseBackend(PLSBackend):
    """``M = ΛᵀAΛ + I`` as a dense matrix and numpy's Cholesky: the smallest possible backend."""

    name = "dense"
    needs = "at most 400 random effects"

    @classmethod
    def applies(cls, design):
        return design.q <= 400

    @classmethod
    def preferred(cls, design):
        return cls.applies(design)

    def _setup_factor(self):
        self._A = self.design.cross.ZtZ.toarray()
        self._L = None

    def _factorize(self, blocks):
        d = self.design
        Lam = np.zeros((d.q, d.q))
        for T, t, lo in zip(blocks, d.terms, d.Gp[:-1]):
            for j in range(t.nlevels):
                s = lo + j * t.k
                Lam[s : s + t.k, s : s + t.k] = T
        try:
            self._L = np.linalg.cholesky(Lam.T @ self._A @ Lam + np.eye(d.q))
        except np.linalg.LinAlgError:
            return False
        return True

    def _logdet(self):
        return float(2.0 * np.log(np.diag(self._L)).sum())

    def solve_M(self, rhs):
        return sla.cho_solve((self._L, True), rhs)


class Isotropic(_Structure):
    """``T = s I``: one standard deviation shared by independent columns (glmmTMB's homdiag)."""

    name = "iso"

    def __init__(self, k, columns=None):
        super().__init__(k, columns)
        self.n_par = 1

    def start(self):
        return np.ones(1)

    def lower(self):
        return np.zeros(1)

    def upper(self):
        return np.full(1, np.inf)

    def block(self, par):
        return float(par[0]) * np.eye(self.k)

    def par_names(self):
        return ["sd"]

    def scales_with_block(self):
        return np.array([True])

    def linear_entries(self):
        return [(0, i, i) for i in range(self.k)]


def test_a_new_backend_is_one_class_and_one_registry_entry(monkeypatch):
    ss = load_data("sleepstudy")
    ref = slm.lmer(F, ss)
    monkeypatch.setattr(registry, "BACKENDS", (DenseBackend,) + registry.BACKENDS)
    assert "dense" in registry.names()
    m = slm.lmer(F, ss)
    assert m.backend == "dense"  # "auto" asked it first, and it prefers q = 36
    assert m.objective == pytest.approx(ref.objective, rel=1e-12)
    np.testing.assert_allclose(m.theta, ref.theta, rtol=1e-6)
    np.testing.assert_allclose(m.fixef, ref.fixef, rtol=1e-9)
    np.testing.assert_allclose(m.coef_table()["df"], ref.coef_table()["df"], rtol=1e-6)
    big = slm.design("diameter ~ 1 + (1 | plate) + (1 | sample)", load_data("Penicillin"))
    assert not isinstance(big.pls(), DenseBackend) or big.q <= 400
    tiny = slm.design("y ~ 1 + (1 | g)", slm.datasets.simulate_crossed(2000, 500, 2, seed=3).rename(columns={"a": "g"}))
    with pytest.raises(slm.ModelSpecError, match="backend 'dense' does not apply to this design: it needs at most 400"):
        tiny.pls("dense")


def test_a_new_structure_is_one_class_and_one_table_entry(monkeypatch):
    ss = load_data("sleepstudy")
    with pytest.raises(slm.FormulaError, match="unknown covariance structure 'iso'"):
        slm.design("Reaction ~ Days + iso(1 + Days | Subject)", ss)
    monkeypatch.setitem(covariance.STRUCTURE_CLASSES, "iso", Isotropic)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = slm.lmer("Reaction ~ Days + iso(1 + Days | Subject)", ss)
        ref = slm.lmer("Reaction ~ Days + homdiag(1 + Days | Subject)", ss)
        g = slm.lmer("Reaction ~ Days + iso(1 + Days | Subject)", ss, optimizer="lbfgsb")  # its analytic gradient
    assert m.objective == pytest.approx(ref.objective, rel=1e-10)
    assert g.objective == pytest.approx(ref.objective, rel=1e-8)
    np.testing.assert_allclose(m.theta, ref.theta, rtol=1e-5)
    np.testing.assert_allclose(m.varcorr()["sdcor"], ref.varcorr()["sdcor"], rtol=1e-5)
    assert "Subject" in m.summary()


def test_a_backend_refuses_a_design_it_does_not_apply_to_however_it_is_made():
    # built directly, as by the registry: the factor of another matrix would be a wrong objective
    from sparselmm.backends.schur import DenseSchurPLSState, SchurState

    d = slm.design("y ~ x + (1 | a) + (1 + x | b)", slm.datasets.simulate_crossed(3000, 300, 30, seed=1))
    for cls in (SchurState, DenseSchurPLSState):
        with pytest.raises(slm.ModelSpecError, match=f"backend '{cls.name}' does not apply to this design: it needs two or more"):
            cls(d)
    assert slm.lmer("y ~ x + (1 | a) + (1 | b)", slm.datasets.simulate_crossed(3000, 300, 30, seed=1)).backend == "cholmod"
