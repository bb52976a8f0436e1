"""Fitted models pickle, deep-copy, save and load, and travel to worker processes (issue 21).

One model per backend "auto" chooses (the designs of tests/test_backends.py's kinds), structured
covariances, and a Dask fit: the round trip gives the identical summary, predictions, Satterthwaite
table and refit.
"""

from __future__ import annotations

import copy
import functools
import io
import multiprocessing
import pickle
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
import pytest

import sparselmm as slm


def _data(name: str) -> pd.DataFrame:
    """The conformance suite's data sets (tests/test_backends.py), or a bundled one."""
    from test_backends import _data as backend_data

    return backend_data(name)


#: id -> (data, formula, the backend "auto" takes)
MODELS = {
    "cholmod": ("sleepstudy", "Reaction ~ Days + (Days | Subject)", "cholmod"),
    "blockdiag": ("one-factor", "y ~ x + (x | g)", "blockdiag"),
    "schur": ("crossed-large", "y ~ 1 + x + (1 | a) + (1 | b)", "schur"),
    "schur_dense": ("crossed-dense", "y ~ 1 + x + (1 | a) + (1 | b)", "schur_dense"),
    "schur_blocks": ("crossed-slope-dense", "y ~ 1 + x + (1 + x | a) + (1 | b)", "schur_blocks"),
    "cs": ("repeated", "y ~ time * treatment + cs(0 + occasion | subject)", "cholmod"),
    "ar1": ("repeated", "y ~ time * treatment + ar1(0 + occasion | subject)", "cholmod"),
}


@functools.lru_cache(maxsize=None)
def _fit(name: str) -> slm.LinearMixedModel:
    data, formula, _ = MODELS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return slm.lmer(formula, _data(data))


def _same(a: slm.LinearMixedModel, b: slm.LinearMixedModel, data: pd.DataFrame) -> None:
    assert type(a) is type(b)
    assert a.backend == b.backend
    assert a.summary() == b.summary()  # every printed number, Satterthwaite's df included
    np.testing.assert_array_equal(a.theta, b.theta)
    np.testing.assert_array_equal(a.fixef, b.fixef)
    np.testing.assert_array_equal(a.vcov, b.vcov)
    assert a.objective == b.objective
    pd.testing.assert_frame_equal(a.coef_table(), b.coef_table())
    pd.testing.assert_frame_equal(a.ranef_table(), b.ranef_table())
    head = data.iloc[:50]
    pd.testing.assert_series_equal(a.predict(head), b.predict(head))


@pytest.mark.parametrize("name", list(MODELS))
def test_pickle_and_deepcopy_round_trip(name):
    m = _fit(name)
    assert m.backend == MODELS[name][2]
    m.coef_table()  # Satterthwaite's derivatives in the memo (plain data: they travel), a second state
    data = _data(MODELS[name][0])
    m2 = pickle.loads(pickle.dumps(m))
    _same(m, m2, data)
    _same(m, copy.deepcopy(m), data)
    # the unpickled model works on: a refit from its call gives the original's refit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_allclose(m2.refit(REML=False).theta, m.refit(REML=False).theta, rtol=0, atol=0)


def test_save_and_load_round_trip(tmp_path):
    m = _fit("cholmod")
    path = tmp_path / "m.slm"
    m.save(path)
    m2 = slm.load(path)
    _same(m, m2, _data("sleepstudy"))
    buf = io.BytesIO()
    slm.save(m, buf)
    _same(m, slm.load(io.BytesIO(buf.getvalue())), _data("sleepstudy"))


def test_dask_fit_round_trip():
    dd = pytest.importorskip("dask.dataframe")
    ss = slm.datasets.load("sleepstudy")
    m = slm.lmer("Reaction ~ Days + (Days | Subject)", dd.from_pandas(ss, npartitions=3))
    m2 = pickle.loads(pickle.dumps(m))
    assert type(m2).__name__ == "DaskLinearMixedModel"
    assert m.summary() == m2.summary()
    np.testing.assert_array_equal(m.fitted().compute(), m2.fitted().compute())
    np.testing.assert_array_equal(m.refit().theta, m2.refit().theta)


def _use_in_worker(blob: bytes) -> tuple[str, np.ndarray, np.ndarray]:
    m = pickle.loads(blob)
    return m.summary(), m.predict(slm.datasets.load("sleepstudy")).to_numpy(), m.refit(REML=False).theta


def test_a_fit_sent_to_a_worker_process_is_used_there():
    m = _fit("cholmod")
    # spawn: a fresh interpreter, as joblib's loky and multiprocessing on macOS/Windows start them
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as ex:
        text, pred, theta = ex.submit(_use_in_worker, pickle.dumps(m)).result(timeout=300)
    assert text == m.summary()
    np.testing.assert_array_equal(pred, m.predict(_data("sleepstudy")).to_numpy())
    np.testing.assert_array_equal(theta, m.refit(REML=False).theta)


def test_loading_what_is_not_a_saved_model_is_refused(tmp_path):
    bad = tmp_path / "data.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(slm.ArgumentError, match="is not a model saved by sparselmm"):
        slm.load(bad)
    with pytest.raises(slm.ArgumentError, match="cannot read a saved model"):
        slm.load(tmp_path / "missing.slm")
    good = tmp_path / "m.slm"
    _fit("cholmod").save(good)
    cut = tmp_path / "cut.slm"
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(slm.ArgumentError, match="cannot be read back"):
        slm.load(cut)
    other = tmp_path / "other.slm"
    other.write_bytes(slm.persistence.HEADER + pickle.dumps({"model": [1, 2]}))
    with pytest.raises(slm.ArgumentError, match="does not hold a fitted model"):
        slm.load(other)
    with pytest.raises(slm.ArgumentError, match="writes a fitted model"):
        slm.save(slm.datasets.load("sleepstudy"), tmp_path / "x.slm")


def test_dask_crossed_fit_round_trip():
    # a Dask design keeps only the block-lower part of Z'WZ: scalar terms on CHOLMOD's lean fill
    dd = pytest.importorskip("dask.dataframe")
    df = slm.datasets.simulate_crossed(3000, 300, 40, seed=3)
    m = slm.lmer("y ~ 1 + x + (1 | a) + (1 | b)", dd.from_pandas(df, npartitions=3))
    assert m.backend == "cholmod_scalar"
    m2 = copy.deepcopy(m)
    assert m2.backend == m.backend and m2.summary() == m.summary()
    pd.testing.assert_series_equal(m2.predict(df.iloc[:40]), m.predict(df.iloc[:40]))
