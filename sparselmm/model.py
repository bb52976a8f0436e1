"""The fitted model users hold: :class:`LinearMixedModel` (lme4's ``lmerMod``).

Its estimates and accessors are :class:`~sparselmm.fitting.fitted.FittedModel`'s; this class
adds the methods that reach the layers above the fit: tests and intervals
(:mod:`sparselmm.stats`), printing and plots (:mod:`sparselmm.report`).  ``lmer()`` and
``fit_design()`` are in :mod:`sparselmm.api`.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from sparselmm import persistence, validate
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
        offset: Any = None, se_fit: bool = False,
    ) -> pd.Series | pd.DataFrame:
        """Predictions for new data, with their standard errors if ``se_fit`` (see
        :func:`sparselmm.stats.inference.predict`)."""
        return inference.predict(self, newdata, re_form=re_form, allow_new_levels=allow_new_levels, offset=offset,
                                 se_fit=se_fit)

    def simulate(self, nsim: int = 1, seed: int | None = None) -> pd.DataFrame:
        """Simulated responses (see :func:`sparselmm.stats.inference.simulate`)."""
        return inference.simulate(self, nsim=nsim, seed=seed)

    # ----- saving (sparselmm.persistence) --------------------------------------------------------
    def save(self, path: Any) -> None:
        """Write the model to a file that :func:`sparselmm.load` reads back (see
        :func:`sparselmm.persistence.save`; the model also pickles directly)."""
        persistence.save(self, path)

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

    def tidy(self, effects: str | list[str] | tuple[str, ...] = ("fixed", "ran_pars"), conf_int: bool = False,
             conf_level: float = 0.95, *, ddf: str = "satterthwaite") -> pd.DataFrame:
        """broom.mixed's ``tidy()``: one row per estimate (see :func:`sparselmm.report.tidy.tidy`)."""
        from sparselmm.report import tidy as tables

        return tables.tidy(self, effects, conf_int=conf_int, conf_level=conf_level, ddf=ddf)

    def glance(self) -> pd.DataFrame:
        """broom.mixed's ``glance()``: one row of fit statistics (see :func:`sparselmm.report.tidy.glance`)."""
        from sparselmm.report import tidy as tables

        return tables.glance(self)

    def augment(self, data: pd.DataFrame | None = None) -> pd.DataFrame:
        """broom.mixed's ``augment()``: the model frame with fitted values, residuals, hat values,
        Cook's distances (see :func:`sparselmm.report.tidy.augment`)."""
        from sparselmm.report import tidy as tables

        return tables.augment(self, data)

    # ----- printing ---------------------------------------------------------------------
    def summary(self, ddf: str = "satterthwaite") -> str:
        """lme4's ``summary()`` text (see :mod:`sparselmm.report.display`)."""
        return display.summary_text(self, ddf=validate.choice(ddf, "ddf", inference.DDF))

    def VarCorr(  # noqa: N802 - lme4's name
        self, comp: str | list[str] | tuple[str, ...] = "Std.Dev.", digits: int = display.VC_DIGITS
    ) -> display.VarCorr:
        """lme4's ``VarCorr(m)``: the variance components, printed as lme4 prints them.

        Parameters
        ----------
        comp : str or sequence of str
            What ``str()`` shows, as lme4's ``print(VarCorr(m), comp = )``: ``"Std.Dev."``
            (lme4's default), ``"Variance"``, or both in the order given (prefixes such as
            ``"Var"`` match as R's ``pmatch``).
        digits : int
            Significant digits, lme4's default ``max(3, getOption("digits") - 2) = 5``.

        Returns
        -------
        sparselmm.report.display.VarCorr
            ``str()`` is lme4's print; ``.format(comp=, digits=)`` prints other components;
            ``.as_data_frame()`` is :meth:`varcorr` (lme4's ``as.data.frame(VarCorr(m))``).

        Raises
        ------
        ArgumentError
            For an unknown ``comp`` or a ``digits`` that is not an integer from 1 to 22.
        """
        return display.VarCorr(self.varcorr(), comp=comp, digits=digits)

    def __repr__(self) -> str:
        return display.short_text(self)

    def _repr_html_(self) -> str:
        """The summary's sections as HTML tables, for notebooks (see :func:`sparselmm.report.display.summary_html`)."""
        return display.summary_html(self)

    def __str__(self) -> str:
        return self.__repr__()

    # ----- plots (sparselmm.report.plots; needs matplotlib) --------------------------------------
    def plot_ranef(self, **kw: Any) -> Any:
        """Caterpillar plot of the conditional modes (see :func:`sparselmm.report.plots.plot_ranef`)."""
        return plots.plot_ranef(self, **kw)

    def plot_residuals(self, **kw: Any) -> Any:
        """Residuals vs fitted and a normal QQ plot (see :func:`sparselmm.report.plots.plot_residuals`)."""
        return plots.plot_residuals(self, **kw)
