"""The one exception family of sparselmm.

Every error that sparselmm raises on purpose is a :class:`SparseLMMError`
(itself a :class:`ValueError`), so ``except sparselmm.SparseLMMError`` catches
all of them.  The subclasses say which part of the user's input is at fault.
"""

from __future__ import annotations

__all__ = [
    "SparseLMMError",
    "FormulaError",
    "DataError",
    "ModelSpecError",
    "ConvergenceError",
    "ArgumentError",
    "SparseLMMWarning",
    "ConvergenceWarning",
    "RankDeficiencyWarning",
    "ScaleWarning",
    "SingularFitWarning",
]


class SparseLMMError(ValueError):
    """Base class of every error sparselmm raises on purpose."""


class FormulaError(SparseLMMError):
    """The formula string cannot be parsed or names something that is not there."""


class DataError(SparseLMMError):
    """The data (columns, values, weights, offset) cannot be used as given."""


class ModelSpecError(SparseLMMError):
    """The formula and data parse, but the model they describe cannot be fitted."""


class ConvergenceError(SparseLMMError):
    """The optimiser failed in a way that leaves no usable estimate."""


class ArgumentError(SparseLMMError):
    """An argument of a call (a flag, an option, a count, a level, a choice) has the wrong
    type or value; the message names the argument and the value at fault."""


class SparseLMMWarning(UserWarning):
    """Base class of sparselmm's warnings."""


class ConvergenceWarning(SparseLMMWarning):
    """The optimum found may not be a (local) minimum of the objective."""


class RankDeficiencyWarning(SparseLMMWarning):
    """Fixed-effect columns were dropped because X is rank deficient."""


class ScaleWarning(SparseLMMWarning):
    """Predictors are on very different scales; consider rescaling."""


class SingularFitWarning(SparseLMMWarning):
    """The fit is on the boundary of the parameter space (lme4's "boundary (singular) fit"
    message): a variance estimated as 0, or a correlation as ±1 (``m.singular``)."""
