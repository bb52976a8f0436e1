"""The checks a design makes of its data, each written once with its message.

Both pipelines call them: :func:`sparselmm.frame.modelframe.design` on the rows of a pandas
DataFrame, :func:`sparselmm.frame.dask_design.dask_design` on what its scan of the partitions
counted (and each partition on its own rows).  A mistake in the data therefore reads the same
whichever path finds it.  The checks on the model's columns (rank, collinear term columns,
lme4's scale warning) are in :mod:`sparselmm.frame.rank`.
"""

from __future__ import annotations

import warnings
from collections import Counter
from typing import Any, Collection, Mapping, Sequence

import numpy as np
import pandas as pd

from sparselmm.errors import ArgumentError, DataError, FormulaError, ModelSpecError, SparseLMMWarning
from sparselmm.spec.vocabulary import suggest
from sparselmm.spec.vocabulary import variables as formula_variables

__all__ = [
    "check_na_action",
    "not_a_dataframe",
    "check_formula_columns",
    "check_unique_columns",
    "check_named_column",
    "complex_numbers",
    "count_invalid",
    "check_weights",
    "check_offset",
    "check_missing",
    "check_rows_left",
    "check_infinite",
    "check_response_varies",
    "check_finite",
    "term_finite_what",
    "check_term_has_columns",
    "check_term_split",
    "check_random_terms",
    "warn_numeric_labels",
    "check_contrasts",
]


def check_na_action(na_action: str) -> None:
    """Check that ``na_action`` is one of ``"omit"`` and ``"fail"``.

    Raises
    ------
    ArgumentError
    """
    if na_action not in ("omit", "fail"):
        raise ArgumentError(f"na_action must be 'omit' or 'fail', got {na_action!r}")


def not_a_dataframe(kind: str, data: Any) -> DataError:
    """The error for ``data`` that is not the DataFrame a design needs (``kind``: "pandas" or "dask")."""
    return DataError(f"data must be a {kind} DataFrame, got {type(data).__name__}")


def check_formula_columns(formula: str, used: Sequence[str], columns: Sequence[str]) -> None:
    """Check that every column the formula uses is in the data.

    Parameters
    ----------
    formula : str
    used : sequence of str
        The columns the formula names.
    columns : sequence of str
        The data's columns.

    Raises
    ------
    FormulaError
        For the first missing column, with the nearest names of the data.
    """
    have = set(columns)
    for v in used:
        if v not in have:
            raise FormulaError(f"column {v!r} in formula {formula!r} is not in the data{suggest(v, list(columns))}")


def check_unique_columns(columns: Sequence[str], among: Collection[str] | None = None) -> None:
    """Check that no column name occurs twice (among the names ``among``, or at all).

    Raises
    ------
    DataError
        Naming the duplicated names.
    """
    counts = Counter(columns)
    dups = sorted(c for c, k in counts.items() if k > 1 and (among is None or c in among))
    if dups:
        raise DataError(f"the data have duplicated column name(s) {dups}; rename them so the formula is unambiguous")


def check_named_column(what: str, name: str, columns: Sequence[str]) -> None:
    """Check that the column ``name`` given for ``what`` (weights, offset) is in the data.

    Raises
    ------
    DataError
        With the nearest names of the data.
    """
    if name not in columns:
        raise DataError(f"{what} column {name!r} is not in the data{suggest(name, list(columns))}")


def complex_numbers(name: str) -> DataError:
    """The error for a used column ``name`` that holds complex numbers (a float matrix would lose
    their imaginary part)."""
    return DataError(f"column {name!r} holds complex numbers; a linear mixed model needs real numbers")


def check_not_datetime(name: str, dtype: Any) -> None:
    """Refuse a predictor column of dates or times: R computes with one as a number (seconds since
    1970 for a POSIXct, days for a Date), pandas has no such number, and coding it as a factor
    of its timestamps would be a silent other model."""
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        raise DataError(
            f"column {name!r} holds dates or times, which R would use as numbers (seconds since 1970 for a POSIXct, "
            f"days for a Date); make the number you mean first, e.g. data['days'] = (data[{name!r}] - "
            f"data[{name!r}].min()).dt.days, or a factor with data[{name!r}].astype(str)"
        )


def count_invalid(
    weights: np.ndarray | None, offset: np.ndarray | None, complete: np.ndarray
) -> tuple[int, tuple[int, Any] | None, int]:
    """The weights that are infinite or not positive, and the infinite offsets, in the rows
    otherwise complete (a missing value drops its row: it is not invalid).

    Parameters
    ----------
    weights, offset : numpy.ndarray of float or None
        One value per row.
    complete : numpy.ndarray of bool
        The rows with no missing value in a used column, the weights or the offset.

    Returns
    -------
    n_weights : int
        Invalid weights (for :func:`check_weights`),
    first : (int, float) or None
        the row and value of the first of them,
    n_offset : int
        and infinite offsets (for :func:`check_offset`).
    """
    n_w, first, n_off = 0, None, 0
    if weights is not None:
        bad = complete & (np.isinf(weights) | (weights <= 0))
        n_w = int(bad.sum())
        if n_w:
            i = int(np.flatnonzero(bad)[0])
            first = (i, weights[i])
    if offset is not None:
        n_off = int((complete & np.isinf(offset)).sum())
    return n_w, first, n_off


def check_weights(n_invalid: int, first: tuple[int, Any] | None = None) -> None:
    """Refuse weights of which ``n_invalid`` are infinite or not positive.

    Parameters
    ----------
    n_invalid : int
        How many are (see :func:`count_invalid`).
    first : (int, float), optional
        The row and value of the first of them, when known.

    Raises
    ------
    DataError
    """
    if n_invalid:
        where = "" if first is None else f" (first at row {first[0]}: {first[1]})"
        raise DataError(f"weights must be finite and positive; {n_invalid} are not{where}")


def check_offset(n_infinite: int) -> None:
    """Refuse an offset of which ``n_infinite`` values are infinite.

    Raises
    ------
    DataError
    """
    if n_infinite:
        raise DataError("offset has infinite values")


def check_missing(n_dropped: int, columns: Sequence[str], na_action: str) -> None:
    """With ``na_action="fail"``, refuse rows with missing values.

    Parameters
    ----------
    n_dropped : int
        Rows with a missing value in a used column, the weights or the offset.
    columns : sequence of str
        Where the missing values are (``"weights"``, ``"offset"`` for those).
    na_action : {"omit", "fail"}

    Raises
    ------
    DataError
    """
    if n_dropped and na_action == "fail":
        raise DataError(f"missing values in column(s) {list(columns)} ({n_dropped} rows) and na_action='fail'")


def check_rows_left(n: int, n_dropped: int, used: Sequence[str]) -> None:
    """Check that rows are left after dropping the ``n_dropped`` with missing values.

    Raises
    ------
    DataError
    """
    if n == 0:
        raise DataError(f"no observations left after dropping {n_dropped} rows with missing values in {used}")


def check_infinite(frame: Mapping[str, pd.Series] | pd.DataFrame, columns: Sequence[str]) -> None:
    """Refuse infinite values in the numeric columns ``columns`` of ``frame`` (they are not missing
    values, which drop their rows).

    Raises
    ------
    DataError
        Naming the first column with one and how many it has.
    """
    for c in columns:
        col = frame[c]
        if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
            k = int(np.isinf(col.to_numpy(dtype=float)).sum())
            if k:
                raise DataError(f"column {c!r} has {k} infinite value(s); remove or recode them")


def check_response_varies(response: str, ymin: float, ymax: float) -> None:
    """Refuse a constant response (its smallest and largest values over the rows used are equal).

    Raises
    ------
    DataError
    """
    if ymax - ymin == 0:
        raise DataError(f"the response {response!r} is constant ({float(ymin):g} in every row); there is nothing to model")


def check_finite(M: np.ndarray, names: Sequence[str], what: str) -> None:
    """Refuse model columns with non-finite values (a transformation's: ``log`` of a non-positive number).

    Parameters
    ----------
    M : numpy.ndarray
        n × k model columns.
    names : sequence of str
        Their names.
    what : str
        What they are, to start the message (``"fixed-effects column"``).

    Raises
    ------
    DataError
    """
    bad = ~np.isfinite(M).all(axis=0)
    if bad.any():
        cols = [names[j] for j in np.flatnonzero(bad)]
        raise DataError(
            f"{what} {', '.join(cols)} has missing or infinite values after transformation "
            "(e.g. log of a non-positive number); transform or filter the data first"
        )


def term_finite_what(text: str) -> str:
    """The ``what`` of :func:`check_finite` for the columns of the term written ``text``."""
    return f"column of term {text!r}:"


def check_term_has_columns(text: str, k: int) -> None:
    """Refuse a random-effects term whose left side makes no column (``(0 | g)``).

    Raises
    ------
    ModelSpecError
    """
    if k == 0:
        raise ModelSpecError(f"term {text!r} has no columns")


def check_term_split(bar: Any, frame: Mapping[str, pd.Series] | pd.DataFrame) -> None:
    """Warn that ``||`` leaves a factor's columns correlated, as lme4 does it.

    lme4's ``||`` splits the left side into terms (``(f || g)`` is ``(1 | g) + (0 + f | g)``),
    and a factor's indicator columns stay in one term, correlated with each other.

    Parameters
    ----------
    bar : BarTerm
        The term (one of those ``||`` made).
    frame : mapping of str to pandas.Series
        The model frame (factor predictors as categoricals).
    """
    if not bar.text.count("||") or bar.lhs.strip() == "1":
        return
    columns = set(frame.columns)
    factors = [v for v in formula_variables(bar.lhs) if v in columns and isinstance(frame[v].dtype, pd.CategoricalDtype)]
    if factors:
        g = ":".join(bar.factors)
        warnings.warn(
            f"'||' in {bar.text!r} keeps the columns of factor {factors[0]!r} correlated, as lme4 does "
            f"({bar.lhs} | {g} is one term); for independent columns write diag({bar.lhs} | {g})",
            SparseLMMWarning,
            stacklevel=4,
        )


def check_random_terms(terms: Sequence[Any], formula: str) -> None:
    """Refuse a formula without random-effects terms.

    Raises
    ------
    ModelSpecError
    """
    if not terms:
        raise ModelSpecError(
            f"formula {formula!r} has no random-effects term like (1 | g); for a model without random effects "
            "use ordinary least squares"
        )


def warn_numeric_labels(name: str, levels: pd.Index, stacklevel: int = 4) -> None:
    """Warn when a column of strings used as a factor holds only numbers written as text.

    Such a column is a factor (one coefficient per value), as R's character columns are; but a
    number stored as text is a common accident (a CSV read as strings, or a Dask DataFrame, whose
    object columns reach sparselmm as strings under dask's ``dataframe.convert-string``).

    Parameters
    ----------
    name : str
        The column.
    levels : pandas.Index
        Its levels.
    stacklevel : int
        Of the warning, counted from this function.
    """
    if len(levels) < 3:  # "0"/"1" codes are usually meant as a factor
        return
    try:
        pd.to_numeric(pd.Index(levels).astype(str), errors="raise")
    except (TypeError, ValueError):
        return
    warnings.warn(
        f"column {name!r} holds strings that all read as numbers ({', '.join(map(repr, list(levels[:3])))}, ...): it is "
        f"treated as a factor with {len(levels)} levels; if it is a number, give it a numeric dtype "
        f"(df[{name!r}] = df[{name!r}].astype(float))",
        SparseLMMWarning,
        stacklevel=stacklevel,
    )


def check_contrasts(
    contrasts: Any, frame: Mapping[str, pd.Series] | pd.DataFrame, fixed_vars: Sequence[str], valid: Sequence[str]
) -> dict[str, str]:
    """The ``contrasts =`` argument checked: a mapping from factors of the fixed part to R's
    names of contrasts (``{"store": "contr.sum"}``).

    Returns
    -------
    dict of str to str

    Raises
    ------
    ArgumentError
        For a value that is not a mapping, a column that is not a factor of the fixed part, or
        contrasts of an unknown name (the message lists the valid ones).
    """
    if contrasts is None:
        return {}
    if not isinstance(contrasts, Mapping):
        raise ArgumentError(f"contrasts must be a dict of factor -> contrasts name, got {type(contrasts).__name__}")
    factors = [v for v in fixed_vars if isinstance(frame[v].dtype, pd.CategoricalDtype)]
    out: dict[str, str] = {}
    for col, name in contrasts.items():
        if col not in factors:
            raise ArgumentError(
                f"contrasts names {col!r}, which is not a factor of the fixed part"
                + (f" (its factors: {', '.join(map(repr, factors))})" if factors else " (it has no factors)")
            )
        if name not in valid:
            raise ArgumentError(f"contrasts for {col!r} must be one of {', '.join(valid)}, got {name!r}")
        out[str(col)] = str(name)
    return out
