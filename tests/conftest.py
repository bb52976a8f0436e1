"""Shared fixtures: lme4 reference values and a session cache of fitted models."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd
import pytest

import sparselmm as slm

REF_DIR = Path(__file__).parent / "reference"
REF = json.loads((REF_DIR / "lme4_reference_shared.json").read_text())
EXTRA = json.loads((REF_DIR / "lme4_extra.json").read_text())
CASES = sorted(REF)
FAST_CASES = [k for k in CASES if REF[k]["dataset"] != "InstEval"]
CLEAN_CASES = [k for k in FAST_CASES if not REF[k]["lme4_warnings"]]
REML_CLEAN = [k for k in CLEAN_CASES if REF[k]["REML"]]

_data_cache: dict[str, pd.DataFrame] = {}
_fit_cache: dict[tuple, slm.LinearMixedModel] = {}


def load_data(name: str) -> pd.DataFrame:
    """The data set as the reference script built it (TIMSS with the lecture's group columns)."""
    if name not in _data_cache:
        if name == "timss":
            _data_cache[name] = slm.group_center(slm.datasets.load_timss(), ["math", "hoursTV"], "idschool")
        else:
            _data_cache[name] = slm.datasets.load(name)
    return _data_cache[name]


def fit(dataset: str, formula: str, REML: bool, **kw) -> slm.LinearMixedModel:
    """Fit once per session and reuse."""
    key = (dataset, formula, REML, tuple(sorted(kw.items())))
    if key not in _fit_cache:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _fit_cache[key] = slm.lmer(formula, load_data(dataset), REML=REML, **kw)
    return _fit_cache[key]


def fit_case(case: str) -> slm.LinearMixedModel:
    r = REF[case]
    return fit(r["dataset"], r["formula"], r["REML"])


@pytest.fixture(scope="session")
def ref() -> dict:
    return REF


@pytest.fixture(scope="session")
def extra() -> dict:
    return EXTRA


def assert_same_optimum(m1: slm.LinearMixedModel, m2: slm.LinearMixedModel, rtol_obj: float = 1e-10,
                        max_decrement: float = 1e-5) -> None:
    """Two fits of one model reached the same optimum, to what the objective determines.

    Two searches (other optimisers, finishes, partitions or machines) stop at different points
    of the optimum's basin; in a flat direction θ is not determined beyond the stop.  What is:
    the objective, and θ in the Hessian's metric.  For a quadratic ``f* + ½eᵀHe`` the Newton
    decrement at a point is ``δ = ½eᵀHe``, so two points with decrements ``δ₁, δ₂`` satisfy
    ``½(θ₁-θ₂)ᵀH(θ₁-θ₂) ≤ (√δ₁ + √δ₂)²``: strict in the well-determined directions (in the
    stiffest one of the TIMSS slopes, 1e-7 of θ), loose only where the objective is flat.
    Both fits must also have converged (decrements below ``max_decrement``).
    """
    import numpy as np

    from sparselmm.fitting.newton import _fd_derivatives, _free

    assert abs(m1.objective - m2.objective) <= rtol_obj * abs(m2.objective), (m1.objective, m2.objective)
    decs = [m.optsum.newton_decrement for m in (m1, m2)]
    d = m1.design
    H = m1.optsum.hessian
    if H is None or any(v is None for v in decs):  # no check ran: the Hessian and decrements afresh
        f = d.objective_function(m1.REML)
        H = _fd_derivatives(f, m1.theta, d.lower, f(m1.theta))[1]
        decs = []
        for m in (m1, m2):
            g = _fd_derivatives(f, m.theta, d.lower, f(m.theta), hessian=H, upper=d.upper)[0]
            fr = _free(m.theta, g, d.lower)
            decs.append(float(0.5 * g[fr] @ np.linalg.solve(H[np.ix_(fr, fr)], g[fr])) if fr.any() else 0.0)
    assert max(decs) < max_decrement, decs
    e = m1.theta - m2.theta
    # parameters on a bound in both fits: equal there, the metric over the others
    both = (m1.theta <= d.lower) & (m2.theta <= d.lower)
    assert np.all(e[both] == 0)
    fr = ~both
    quad = 0.5 * e[fr] @ H[np.ix_(fr, fr)] @ e[fr]
    bound = 2.0 * (np.sqrt(max(decs[0], 0.0)) + np.sqrt(max(decs[1], 0.0))) ** 2 + 1e-12 * abs(m2.objective)
    assert quad <= bound, (quad, bound, m1.theta, m2.theta)
    # β̂ and σ̂ move with θ by at most what that deviance difference allows: a parameter is
    # determined to √(2Δ) standard errors by a deviance flat to Δ
    slack = 2.0 * np.sqrt(2.0 * bound)
    assert list(m1.fixef.index) == list(m2.fixef.index)
    b1, b2, se = m1.fixef.to_numpy(), m2.fixef.to_numpy(), m2.se.to_numpy()
    assert np.all(np.abs(b1 - b2) <= 1e-8 * np.abs(b2) + slack * se), (b1 - b2, se)
    assert abs(m1.sigma - m2.sigma) <= m2.sigma * (1e-8 + slack / np.sqrt(2.0 * m2.nobs))
