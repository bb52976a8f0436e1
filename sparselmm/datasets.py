"""Bundled data sets.

The files live in the project's top-level ``datasets/`` folder and are
installed with the wheel as the package ``sparselmm._data``; see
``datasets/README.md`` for each file's source and licence.

>>> from sparselmm import datasets
>>> datasets.names()[:3]
['Arabidopsis', 'Contraception', 'Dyestuff']
>>> datasets.load("sleepstudy").shape
(180, 3)
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from sparselmm.errors import DataError

__all__ = ["names", "load", "load_timss", "simulate_crossed", "simulate_crossed_binary", "path"]

# file name and the columns that are factors (categorical with sorted levels),
# as R's column classes declare them (coltypes_shared.json, the lecture's colClasses).
_CATALOGUE: dict[str, tuple[str, tuple[str, ...]]] = {
    "sleepstudy": ("sleepstudy.csv", ("Subject",)),
    "Dyestuff": ("Dyestuff.csv", ("Batch",)),
    "Dyestuff2": ("Dyestuff2.csv", ("Batch",)),
    "Penicillin": ("Penicillin.csv", ("plate", "sample")),
    "Pastes": ("Pastes.csv", ("batch", "cask", "sample")),
    "InstEval": ("InstEval.csv", ("s", "d", "studage", "lectage", "service", "dept")),
    "cake": ("cake.csv", ("replicate", "recipe", "temperature")),
    "Hsb82": ("Hsb82.csv", ("school", "minrty", "sx", "sector")),
    "grocery": ("grocery.csv", ("item", "store")),
    "timss": ("timss1997_surrogate.txt", ("idschool", "idstudent", "grade", "gender")),
    "repeated": ("repeated.csv", ("subject", "occasion", "treatment")),
    "cbpp": ("cbpp.csv", ("herd", "period")),
    "grouseticks": ("grouseticks.csv", ("INDEX", "BROOD", "YEAR", "LOCATION")),
    "VerbAgg": ("VerbAgg.csv", ("Gender", "item", "resp", "id", "btype", "situ", "mode", "r2")),
    "Arabidopsis": ("Arabidopsis.csv", ("reg", "popu", "amd", "status")),
    "Contraception": ("Contraception.csv", ("woman", "district", "use", "livch", "urban")),
}

_TIMSS_FACTORS = ("idschool", "idstudent", "grade", "gender")
_TIMSS_NUMERIC = ("science", "math", "hoursTV")


def names() -> list[str]:
    """List the names of the bundled data sets, sorted.

    Returns
    -------
    list of str
        Names accepted by :func:`load`.
    """
    return sorted(_CATALOGUE)


def _data_dir() -> Path:
    """Folder holding the data files, in an installed wheel or a source checkout."""
    try:
        root = resources.files("sparselmm._data")
        if root.joinpath("sleepstudy.csv").is_file():
            return Path(str(root))
    except ModuleNotFoundError:  # running from a checkout that is not installed
        pass
    return Path(__file__).resolve().parent.parent / "datasets"


def path(name: str) -> Path:
    """Path of the file behind the bundled data set ``name``.

    Parameters
    ----------
    name : str
        One of :func:`names`.

    Returns
    -------
    pathlib.Path
    """
    if name not in _CATALOGUE:
        raise DataError(f"no bundled data set named {name!r}; available: {', '.join(names())}")
    return _data_dir() / _CATALOGUE[name][0]


def _as_sorted_categorical(values: pd.Series) -> pd.Categorical:
    """Categorical with levels sorted as strings, as R's ``factor()`` of a character vector."""
    s = values.astype(str)
    return pd.Categorical(s, categories=sorted(s.unique()))


def load(name: str) -> pd.DataFrame:
    """Load a bundled data set as a DataFrame with R's column types.

    Factor columns (grouping factors and categorical predictors, as R's
    column classes declare them) are :class:`pandas.Categorical` with their
    levels sorted as strings, as R's ``factor()`` sorts them; the other
    columns are numeric.

    Parameters
    ----------
    name : str
        One of :func:`names`: ``"sleepstudy"``, ``"InstEval"``, ``"timss"``
        (the synthetic TIMSS 1997 surrogate), ...

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    DataError
        If there is no data set of that name.
    """
    if name == "timss":
        return load_timss()
    file = path(name)
    factors = _CATALOGUE[name][1]
    df = pd.read_csv(file, dtype={c: str for c in factors})
    for c in factors:
        df[c] = _as_sorted_categorical(df[c])
    return df


def load_timss(path: str | os.PathLike[str] | IO[str] | None = None) -> pd.DataFrame:
    """Load the TIMSS 1997 teaching file of the lecture.

    Reads the layout of the lecture's ``timss1997.txt``: a header line and
    whitespace-separated columns ``idschool idstudent grade gender science
    math hoursTV``, read as R's ``read.table(..., header=TRUE,
    colClasses=c(rep("factor", 4), rep("numeric", 3)))`` reads them.

    Parameters
    ----------
    path : path-like or file object, optional
        The real ``timss1997.txt``.  Without it the bundled synthetic
        surrogate (same columns, sizes and nesting; not real data) is read.

    Returns
    -------
    pandas.DataFrame
        7 columns; the first four Categorical with sorted levels.

    Raises
    ------
    DataError
        If the file lacks one of the expected columns or a numeric column
        holds something that is not a number.
    """
    src = _data_dir() / "timss1997_surrogate.txt" if path is None else path
    try:
        df = pd.read_csv(src, sep=r"\s+", dtype={c: str for c in _TIMSS_FACTORS})
    except FileNotFoundError as exc:
        raise DataError(f"TIMSS file not found: {src}") from exc
    missing = [c for c in _TIMSS_FACTORS + _TIMSS_NUMERIC if c not in df.columns]
    if missing:
        raise DataError(
            f"{src}: not the layout of timss1997.txt; missing column(s) {missing}, found {list(df.columns)}"
        )
    for c in _TIMSS_NUMERIC:
        try:
            df[c] = pd.to_numeric(df[c]).astype(float)
        except (ValueError, TypeError) as exc:
            raise DataError(f"{src}: column {c!r} must be numeric ({exc})") from exc
    for c in _TIMSS_FACTORS:
        df[c] = _as_sorted_categorical(df[c])
    return df[list(_TIMSS_FACTORS + _TIMSS_NUMERIC)]


def simulate_crossed(
    n_obs: int,
    n_a: int,
    n_b: int,
    seed: int = 0,
    *,
    sd_a: float = 1.0,
    sd_b: float = 0.5,
    sigma: float = 1.0,
    beta: tuple[float, float] = (2.0, 0.5),
) -> pd.DataFrame:
    """Simulate a crossed two-factor design (users x items, students x instructors).

    Each row draws its levels of ``a`` and ``b`` uniformly at random, a
    predictor ``x ~ N(0, 1)``, and the response

    .. math:: y = \\beta_0 + \\beta_1 x + a_{g(i)} + b_{h(i)} + \\varepsilon_i,
              a \\sim N(0, sd_a^2),\\ b \\sim N(0, sd_b^2),\\ \\varepsilon \\sim N(0, \\sigma^2).

    Parameters
    ----------
    n_obs, n_a, n_b : int
        Rows, and levels of the two grouping factors.
    seed : int
        Seed of :func:`numpy.random.default_rng`.
    sd_a, sd_b, sigma : float
        Standard deviations of the two random effects and of the residual.
    beta : (float, float)
        Intercept and slope of ``x``.

    Returns
    -------
    pandas.DataFrame
        Columns ``y``, ``x`` (float) and ``a``, ``b`` (Categorical; levels that
        were not drawn are dropped).
    """
    rng = np.random.default_rng(seed)
    eta, x, a, b = _crossed_predictor(rng, n_obs, n_a, n_b, sd_a, sd_b, beta)
    y = eta + sigma * rng.standard_normal(n_obs)
    return pd.DataFrame({"y": y, "x": x, "a": a, "b": b})


def _crossed_predictor(rng: np.random.Generator, n_obs: int, n_a: int, n_b: int, sd_a: float, sd_b: float,
                       beta: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, pd.Categorical, pd.Categorical]:
    """The simulated crossed designs' linear predictor ``β₀ + β₁x + a + b``, ``x`` and the two
    factors (levels that were not drawn dropped)."""
    ia = rng.integers(0, n_a, n_obs)
    ib = rng.integers(0, n_b, n_obs)
    x = rng.standard_normal(n_obs)
    ea = rng.standard_normal(n_a) * sd_a
    eb = rng.standard_normal(n_b) * sd_b
    eta = beta[0] + beta[1] * x + ea[ia] + eb[ib]
    a = pd.Categorical.from_codes(ia, categories=np.arange(n_a)).remove_unused_categories()
    b = pd.Categorical.from_codes(ib, categories=np.arange(n_b)).remove_unused_categories()
    return eta, x, a, b


def simulate_crossed_binary(
    n_obs: int,
    n_a: int,
    n_b: int,
    seed: int = 0,
    *,
    sd_a: float = 1.0,
    sd_b: float = 0.5,
    beta: tuple[float, float] = (-0.5, 0.5),
) -> pd.DataFrame:
    """Simulate a crossed two-factor design with a binary response (users x items answering
    right or wrong): the logistic counterpart of :func:`simulate_crossed`.

    Each row draws its levels of ``a`` and ``b`` uniformly at random and a predictor
    ``x ~ N(0, 1)``; the response is a Bernoulli draw with

    .. math:: \\operatorname{logit} P(y_i = 1) = \\beta_0 + \\beta_1 x_i + a_{g(i)} + b_{h(i)},
              a \\sim N(0, sd_a^2),\\ b \\sim N(0, sd_b^2),

    the model ``glmer(y ~ x + (1 | a) + (1 | b), family = binomial)`` fits.  Issue 22's benchmark
    uses ``simulate_crossed_binary(1_000_000, 20_000, 5_000, seed=1)``.

    Parameters
    ----------
    n_obs, n_a, n_b : int
        Rows, and levels of the two grouping factors.
    seed : int
        Seed of :func:`numpy.random.default_rng`.
    sd_a, sd_b : float
        Standard deviations of the two random effects on the logit scale.
    beta : (float, float)
        Intercept and slope of ``x`` on the logit scale.

    Returns
    -------
    pandas.DataFrame
        Columns ``y`` (0/1 integers), ``x`` (float) and ``a``, ``b`` (Categorical; levels that
        were not drawn are dropped).
    """
    rng = np.random.default_rng(seed)
    eta, x, a, b = _crossed_predictor(rng, n_obs, n_a, n_b, sd_a, sd_b, beta)
    y = (rng.random(n_obs) < 1.0 / (1.0 + np.exp(-eta))).astype(np.int64)
    return pd.DataFrame({"y": y, "x": x, "a": a, "b": b})
