"""Estimated marginal means and their pairwise contrasts, as R's emmeans computes them.

The reference grid is every combination of the levels of the fixed part's factors, with each
numeric predictor at its mean over the rows the model used; the marginal mean of a level of
the ``specs`` factors (within each level of the ``by`` factors) is the average, with equal
weights, of the model's predictions over the other factors' levels: a row ``l`` of linear
weights on β.  Its SE is ``sqrt(l V lᵀ)`` and its df Satterthwaite's or Kenward–Roger's
(:func:`sparselmm.stats.ftests.contest1D`).  ``pairs()`` tests every difference of two means
within a ``by`` group, with emmeans' p-value adjustments (Tukey's studentized range over the
family, Holm, Bonferroni, none).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from sparselmm.errors import ArgumentError, DataError
from sparselmm.frame.rows import model_frame
from sparselmm.spec.deparse import r_number
from sparselmm.spec.vocabulary import call_arguments, call_texts, variables
from sparselmm.stats.ftests import check_ddf, contest1D
from sparselmm.stats.inference import fixed_rows

if TYPE_CHECKING:  # pragma: no cover
    from sparselmm.fitting.fitted import FittedModel

__all__ = ["EMMeans", "emmeans"]

_ADJUST = ("tukey", "holm", "bonferroni", "none")


@dataclass
class EMMeans:
    """Estimated marginal means of a fitted model (emmeans' ``emmGrid`` summary).

    Attributes
    ----------
    table : pandas.DataFrame
        The factor columns (``specs`` then ``by``), ``emmean``, ``SE``, ``df``, ``lower.CL``,
        ``upper.CL``.
    L : numpy.ndarray
        Each mean's weights on β (rows of ``table``).
    """

    table: pd.DataFrame
    L: np.ndarray
    model: Any
    specs: tuple[str, ...]
    by: tuple[str, ...]
    ddf: str
    level: float

    def pairs(self, adjust: str = "tukey") -> pd.DataFrame:
        """emmeans' ``pairs()``: every difference ``mean_i - mean_j`` (i before j) within each ``by``
        group: ``contrast``, the ``by`` columns, ``estimate``, ``SE``, ``df``, ``t.ratio``,
        ``p.value`` adjusted over the group's family by ``adjust``."""
        if adjust not in _ADJUST:
            raise ArgumentError(f"adjust must be one of {', '.join(_ADJUST)}, got {adjust!r}")
        groups = self.table.groupby(list(self.by), sort=False).indices if self.by else {(): np.arange(len(self.table))}
        # emmeans prefixes a variable's levels by its name where every level of the grid reads as
        # a number (its enhance.levels: temp175 - temp185, studage2 - studage4)
        enhance = {s for s in self.specs if all(_is_number(v) for v in self.table[s])}
        blocks = []
        for key, rows in groups.items():
            rows = np.asarray(rows)
            labels = [" ".join(_label(s, self.table.iloc[r][s], s in enhance) for s in self.specs) for r in rows]
            pairs = list(itertools.combinations(range(len(rows)), 2))
            if not pairs:
                continue
            Lp = np.array([self.L[rows[i]] - self.L[rows[j]] for i, j in pairs])
            t = contest1D(self.model, Lp, ddf=self.ddf, confint=False)
            p = _adjusted(t["t value"].to_numpy(), t["df"].to_numpy(), t["Pr(>|t|)"].to_numpy(), len(rows), adjust)
            block = pd.DataFrame({"contrast": [f"{labels[i]} - {labels[j]}" for i, j in pairs]})
            for b, v in zip(self.by, key if isinstance(key, tuple) else (key,)):
                block[b] = v
            block["estimate"] = t["Estimate"].to_numpy()
            block["SE"] = t["Std. Error"].to_numpy()
            block["df"] = t["df"].to_numpy()
            block["t.ratio"] = t["t value"].to_numpy()
            block["p.value"] = p
            blocks.append(block)
        out = pd.concat(blocks, ignore_index=True) if blocks else pd.DataFrame()
        out.attrs["adjust"] = adjust
        return out

    def __repr__(self) -> str:
        return self.table.to_string(index=False)


#: what R's ``as.numeric`` reads as a finite or infinite number (emmeans' ``.is.num``; NaN and NA are not)
_R_NUMBER = re.compile(r"\s*[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d*)?|0[xX][0-9a-fA-F]+|inf|infinity)\s*", re.IGNORECASE)


def _is_number(value: Any) -> bool:
    """Whether emmeans' ``.is.num`` holds for a level: ``as.numeric(as.character(value))`` is not NA."""
    if isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_)):
        return not np.isnan(float(value))
    return _R_NUMBER.fullmatch(str(value)) is not None


def _label(name: str, value: Any, enhance: bool) -> str:
    """A level in a contrast's name, as emmeans writes it: prefixed by its variable where
    ``enhance`` (``temp175``; numbers in R's form), anything else as it is."""
    text = r_number(float(value)) if isinstance(value, (int, float, np.number)) and not isinstance(value, bool) else str(value)
    return f"{name}{text}" if enhance else text


def _adjusted(t: np.ndarray, df: np.ndarray, p: np.ndarray, k: int, adjust: str) -> np.ndarray:
    if adjust == "none":
        return p
    if adjust == "bonferroni":
        return np.minimum(1.0, p * len(p))
    if adjust == "holm":
        order = np.argsort(p)
        adj = np.minimum(1.0, np.maximum.accumulate(p[order] * (len(p) - np.arange(len(p)))))
        out = np.empty_like(p)
        out[order] = adj
        return out
    return np.array([float(stats.studentized_range.sf(abs(ti) * np.sqrt(2.0), k, di)) for ti, di in zip(t, df)])


def _names(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ArgumentError(f"{what} must be a factor's name or a list of them, got {value!r}")


def emmeans(m: "FittedModel", specs: Any, by: Any = None, *, ddf: str | None = None, level: float = 0.95) -> EMMeans:
    """Estimated marginal means of the levels of ``specs`` (within ``by``), as R's
    ``emmeans(m, specs, by = by, lmer.df = ddf)``.

    Parameters
    ----------
    m : FittedModel
        A fit by ``lmer()`` on a pandas DataFrame (the grid's covariate means need the data).
    specs, by : str or list of str
        Factors of the fixed part.
    ddf : {"Kenward-Roger", "Satterthwaite"}, optional
        The df; default emmeans' for an lmer fit: Kenward–Roger for a REML fit, Satterthwaite
        for an ML fit (Kenward–Roger needs REML).
    level : float
        Of the confidence intervals ``lower.CL``, ``upper.CL``.

    Returns
    -------
    EMMeans
        ``.table`` and ``.pairs(adjust=)``.
    """
    d = m.design
    specs_, by_ = _names(specs, "specs"), _names(by, "by")
    if not specs_:
        raise ArgumentError("specs must name at least one factor of the fixed part")
    method = check_ddf(ddf if ddf is not None else ("Kenward-Roger" if m.REML else "Satterthwaite"), allow_lme4=False)
    if not (isinstance(level, (int, float)) and 0 < level < 1):
        raise ArgumentError(f"level must be a number between 0 and 1, got {level!r}")
    call = getattr(m, "call", None)
    frame, _ = model_frame(d, None if call is None else call.data)
    used = [v for v in variables(d.formula.fixed) if v in frame.columns]
    # a numeric column made a factor in the formula (factor(temp)) is a factor of the grid, as emmeans has it
    made = [a for w in ("factor", "as.factor", "ordered") for c in call_texts(d.formula.fixed, w)
            for a in call_arguments(c)[0][:1] if a in frame.columns]
    factors = [v for v in used if isinstance(frame[v].dtype, pd.CategoricalDtype) or v in made]
    for s in specs_ + by_:
        if s not in factors:
            raise DataError(f"emmeans: {s!r} is not a factor of the fixed part (its factors: {factors})")
    grid_levels = {f: list(frame[f].cat.categories) if isinstance(frame[f].dtype, pd.CategoricalDtype)
                   else sorted(frame[f].dropna().unique()) for f in factors}
    combos = list(itertools.product(*[grid_levels[f] for f in reversed(factors)]))  # the first factor varies fastest
    grid = pd.DataFrame([dict(zip(reversed(factors), c)) for c in combos])
    for f in factors:
        if isinstance(frame[f].dtype, pd.CategoricalDtype):
            grid[f] = pd.Categorical(grid[f], categories=grid_levels[f])
    for v in used:
        if v not in factors:
            grid[v] = float(frame[v].astype(float).mean())
    Xg = fixed_rows(m, grid)
    keys = list(specs_ + by_)
    cells = list(itertools.product(*[grid_levels[f] for f in reversed(keys)]))
    rows, L = [], []
    for c in cells:
        cell = dict(zip(reversed(keys), c))
        mask = np.ones(len(grid), dtype=bool)
        for f, v in cell.items():
            mask &= (grid[f] == v).to_numpy()
        L.append(Xg[mask].mean(axis=0))
        rows.append({f: cell[f] for f in keys})  # a factor(x) of numbers keeps x's values, as emmeans
    Lm = np.array(L)
    t = contest1D(m, Lm, ddf=method, confint=True, level=level)
    table = pd.DataFrame(rows)
    table["emmean"] = t["Estimate"].to_numpy()
    table["SE"] = t["Std. Error"].to_numpy()
    table["df"] = t["df"].to_numpy()
    table["lower.CL"] = t["lower"].to_numpy()
    table["upper.CL"] = t["upper"].to_numpy()
    return EMMeans(table, Lm, m, specs_, by_, method, float(level))
