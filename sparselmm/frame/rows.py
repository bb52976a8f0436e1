"""Data read as a design read its own: for predictions, and for the model frame of a fit.

:func:`read_as_the_fit` reads the columns a design uses as :func:`sparselmm.frame.modelframe.design`
read them (an object column of numbers is numeric, one of booleans logical); :func:`model_frame`
gives the rows a design used, its factors coded with the design's levels (R's ``model.frame``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from sparselmm.errors import SparseLMMError
from sparselmm.frame.modelframe import real_column
from sparselmm.spec.terms import level_codes
from sparselmm.spec.vocabulary import variables

__all__ = ["group_columns", "read_as_the_fit", "model_frame"]


def group_columns(d: Any) -> set[str]:
    """The columns of a design's grouping factors."""
    return {f for t in d.terms for f in t.bar.factors}


def read_as_the_fit(d: Any, raw: pd.DataFrame) -> pd.DataFrame:
    """``raw`` with the columns the design uses read as the design read them (an object column of
    numbers is numeric, one of booleans logical; complex numbers refused); the others as they are."""
    nd = raw.copy(deep=False)
    pf = d.formula
    texts = [f.text for f in pf.fragments] or [pf.response, pf.fixed, *(b.lhs for b in pf.bars)]
    for c in dict.fromkeys([v for t in texts for v in variables(t)] + sorted(group_columns(d))):
        if c in nd.columns:
            nd[c] = real_column(nd[c], c)
    return nd


def model_frame(d: Any, data: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows of ``data`` that design ``d`` used, read and coded as the fit coded them (the fixed
    part's factors as categoricals with the fit's levels), and all of ``data`` read the same way
    (what the transforms take their state from): R's ``model.frame``.

    Raises
    ------
    SparseLMMError
        For data that are not the pandas DataFrame of the fit.
    """
    if not isinstance(data, pd.DataFrame):
        raise SparseLMMError("this needs the data of the fit: fit the model with lmer() on a pandas DataFrame")
    raw = data
    if any(not isinstance(c, str) for c in raw.columns):
        raw = raw.set_axis([str(c) for c in raw.columns], axis=1)
    given = read_as_the_fit(d, raw)
    try:
        frame = given.loc[d.row_index].copy()
    except KeyError:
        raise SparseLMMError("the data of the fit changed since the fit (rows are missing): fit the model again") from None
    groups = group_columns(d)
    for c, cats in d.factor_categories.items():
        if c in frame.columns and c not in groups:
            frame[c] = pd.Categorical.from_codes(level_codes(frame[c], cats, c), categories=cats)
    _check_unchanged(d, frame)
    return frame, given


def _check_unchanged(d: Any, frame: pd.DataFrame) -> None:
    """Refuse data changed since the fit (a column edited in place): its model matrix is no longer
    the fit's, and what is built from it would not belong to the model."""
    if d.X.shape[0] != len(frame) or d.fixed_spec is None:
        return
    try:
        X = np.asarray(d.fixed_spec.get_model_matrix(frame, na_action="ignore").to_numpy(dtype=float))
        X = X if d.fixed_keep is None else X[:, d.fixed_keep]
        same = X.shape == d.X.shape and bool(np.allclose(X, d.X, rtol=1e-10, atol=1e-12, equal_nan=False))
    except Exception:  # a column that no longer reads as it did
        same = False
    if not same:
        raise SparseLMMError("the data of the fit changed since the fit (its model matrix is not the fit's): fit the model again")
