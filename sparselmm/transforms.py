"""Data preparation helpers for multilevel analyses."""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from sparselmm.errors import DataError

__all__ = ["group_center"]


def group_center(
    df: pd.DataFrame,
    columns: str | Sequence[str],
    by: str,
    *,
    mean_prefix: str = "grpM",
    centered_prefix: str = "grpC",
) -> pd.DataFrame:
    """Split level-1 predictors into group means and within-group deviations.

    For every column ``x`` and group ``j`` of ``by``:
    ``grpMx = mean of x in group j`` and ``grpCx = x - grpMx`` (group-mean
    centring, the lecture's level-1/level-2 split).

    Parameters
    ----------
    df : pandas.DataFrame
    columns : str or sequence of str
        Numeric columns to centre, e.g. ``["math", "hoursTV"]``.
    by : str
        Grouping column, e.g. ``"idschool"``.
    mean_prefix, centered_prefix : str
        Name prefixes of the new columns (the lecture's ``grpM`` and ``grpC``).

    Returns
    -------
    pandas.DataFrame
        A copy of ``df`` with the new columns appended (``grpMmath``,
        ``grpCmath``, ...).  Missing values are ignored in the means and stay
        missing in the centred column.

    Raises
    ------
    DataError
        If a column is missing or not numeric.
    """
    cols = [columns] if isinstance(columns, str) else list(columns)
    for c in [*cols, by]:
        if c not in df.columns:
            raise DataError(f"group_center: column {c!r} is not in the data")
    out = df.copy()
    grouped = out.groupby(by, observed=True, sort=False)
    for c in cols:
        if not pd.api.types.is_numeric_dtype(out[c].dtype):
            raise DataError(f"group_center: column {c!r} must be numeric, it is {out[c].dtype}")
        means = grouped[c].transform("mean")
        out[f"{mean_prefix}{c}"] = means
        out[f"{centered_prefix}{c}"] = out[c] - means
    return out
