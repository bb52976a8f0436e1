"""The fitted model users hold: :class:`LinearMixedModel` (lme4's ``lmerMod``).

Its estimates and accessors are :class:`~sparselmm.fitting.fitted.FittedModel`'s; this class
adds the methods that reach the layers above the fit: tests and intervals
(:mod:`sparselmm.stats`), printing and plots (:mod:`sparselmm.report`).  ``lmer()`` and
``fit_design()`` are in :mod:`sparselmm.api`.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from sparselmm import validate
from sparselmm.fitting.fitted import FittedModel
from sparselmm.report import display, plots
from sparselmm.stats import inference

__all__ = ["LinearMixedModel"]


class LinearMixedModel(FittedModel):
    """A fitted linear mixed model (lme4's ``lmerMod``).

    The estimates, lme4's accessors and the statsmodels aliases are
    :class:`~sparselmm.fitting.fitted.FittedModel`'s (same constructor); this class adds
    :meth:`coef_table`, :meth:`confint`, :meth:`predict`, :meth:`simulate`, :meth:`summary`
    and the plots.
    """

    # ----- inference (sparselmm.stats.inference) ---------------------------------------------
    def coef_table(self, ddf: str = "satterthwaite") -> pd.DataFrame:
        """Fixed effects with standard errors, df, t and p (see :func:`sparselmm.stats.inference.coef_table`)."""
        return inference.coef_table(self, ddf=ddf)

    def confint(self, method: str = "profile", level: float = 0.95, **kwargs: Any) -> pd.DataFrame:
        """Confidence intervals (see :func:`sparselmm.stats.inference.confint`)."""
        return inference.confint(self, method=method, level=level, **kwargs)

    def predict(
        self, newdata: pd.DataFrame | None = None, re_form: Any = None, allow_new_levels: bool = False,
        offset: Any = None,
    ) -> pd.Series:
        """Predictions for new data (see :func:`sparselmm.stats.inference.predict`)."""
        return inference.predict(self, newdata, re_form=re_form, allow_new_levels=allow_new_levels, offset=offset)

    def simulate(self, nsim: int = 1, seed: int | None = None) -> pd.DataFrame:
        """Simulated responses (see :func:`sparselmm.stats.inference.simulate`)."""
        return inference.simulate(self, nsim=nsim, seed=seed)

    # ----- printing ---------------------------------------------------------------------
    def summary(self, ddf: str = "satterthwaite") -> str:
        """lme4's ``summary()`` text (see :mod:`sparselmm.report.display`)."""
        return display.summary_text(self, ddf=validate.choice(ddf, "ddf", inference.DDF))

    def __repr__(self) -> str:
        return display.short_text(self)

    def __str__(self) -> str:
        return self.__repr__()

    # ----- plots (sparselmm.report.plots; needs matplotlib) --------------------------------------
    def plot_ranef(self, **kw: Any) -> Any:
        """Caterpillar plot of the conditional modes (see :func:`sparselmm.report.plots.plot_ranef`)."""
        return plots.plot_ranef(self, **kw)

    def plot_residuals(self, **kw: Any) -> Any:
        """Residuals vs fitted and a normal QQ plot (see :func:`sparselmm.report.plots.plot_residuals`)."""
        return plots.plot_residuals(self, **kw)
