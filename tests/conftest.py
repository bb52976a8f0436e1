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
