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

import pandas as pd

from sparselmm.errors import DataError

from sparselmm.synthetic import (  # noqa: E402  (the simulated designs, reached as datasets.simulate_*)
    simulate_crossed,
    simulate_crossed_binary,
    simulate_lexical_decision,
    simulate_ratings,
)

__all__ = ["names", "load", "load_timss", "simulate_crossed", "simulate_crossed_binary", "simulate_ratings",
           "simulate_lexical_decision", "path"]

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
