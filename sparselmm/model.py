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
from sparselmm.stats import ftests, inference, ranova

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

    # ----- tests of the fixed and random terms (lmerTest's; sparselmm.stats.ftests, .ranova) ------
    def anova(self, type: Any = 3, ddf: str = "Satterthwaite") -> pd.DataFrame:  # noqa: A002 - lmerTest's name
        """lmerTest's F-table of this model (see :func:`sparselmm.stats.ftests.anova_table`)."""
        return ftests.anova_table(self, type=type, ddf=ddf)

    def contest(self, L: Any, rhs: Any = 0.0, *, joint: bool = True, ddf: str = "Satterthwaite",
                confint: bool = True, level: float = 0.95) -> pd.DataFrame:
        """lmerTest's test of ``L β = rhs`` (see :func:`sparselmm.stats.ftests.contest`)."""
        return ftests.contest(self, L, rhs, joint=joint, ddf=ddf, confint=confint, level=level)

    def drop1(self, ddf: str = "Satterthwaite", test: str | None = None) -> pd.DataFrame:
        """lmerTest's ``drop1``: an F test of each term that can be dropped alone; with
        ``test="Chisq"``, lme4's likelihood-ratio version (each such term removed and the
        model refitted by ML)."""
        return ftests.drop1(self, ddf=ddf, test=test)

    def ranova(self) -> pd.DataFrame:
        """lmerTest's likelihood-ratio test of each random term (see :func:`sparselmm.stats.ranova.ranova_table`)."""
        return ranova.ranova_table(self)

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
