"""A model fitted from a Dask DataFrame, and the Dask entry point ``lmer_dask``.

:class:`DaskLinearMixedModel` is :class:`~sparselmm.model.LinearMixedModel` on a
:class:`~sparselmm.frame.dask_design.DaskDesign`: everything that depends on θ, β̂, σ̂ and the
BLUPs is as for an in-memory fit; quantities with one value per observation are lazy Dask
Series computed partition by partition.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Unpack

import numpy as np
import pandas as pd

from sparselmm import validate
from sparselmm.errors import ArgumentError, SparseLMMError
from sparselmm.fitting.control import FitControl, FitSettings
from sparselmm.fitting.fitted import Call
from sparselmm.frame.dask_design import DaskDesign, PartitionBuilder, dask_design, is_dask_dataframe
from sparselmm.model import LinearMixedModel
from sparselmm.progress import dask_passes
from sparselmm.stats import inference

__all__ = ["lmer_dask", "DaskLinearMixedModel"]


def lmer_dask(
    formula: str,
    data: Any,
    REML: bool = True,
    *,
    weights: str | None = None,
    offset: str | None = None,
    na_action: str = "omit",
    split_every: int = 8,
    control: FitControl | None = None,
    **settings: Unpack[FitSettings],
) -> "DaskLinearMixedModel":
    """Fit a linear mixed model to a Dask DataFrame (what :func:`sparselmm.lmer` calls for one).

    The cross-products are computed partition by partition on the current Dask
    scheduler (a ``dask.distributed.Client`` if one exists, else the default
    threaded scheduler); θ is optimised on the driver.

    Parameters
    ----------
    formula : str
        lme4 formula.
    data : dask.dataframe.DataFrame
    REML : bool
        REML criterion (default) or maximum likelihood.
    weights, offset : str, optional
        Column names of prior weights and an offset.
    na_action : {"omit", "fail"}
    split_every : int
        Fan-in of the tree reduction.
    control, **settings
        The fit's settings, as :func:`sparselmm.lmer`'s.

    Returns
    -------
    DaskLinearMixedModel
    """
    control = FitControl.from_settings(
        control, settings, caller="lmer_dask", own=("formula", "data", "REML", "weights", "offset", "na_action", "split_every")
    )
    REML = validate.flag(REML, "REML")
    with dask_passes(control.verbose or control.progress):
        d = dask_design(formula, data, weights=weights, offset=offset, na_action=na_action, split_every=split_every)
    return DaskLinearMixedModel.fit(d, REML, control, call=Call(formula, data, weights, offset, na_action, None, control))


def _partition_eta(
    part: pd.DataFrame,
    builder: PartitionBuilder,
    beta: np.ndarray,
    keep: np.ndarray,
    b: np.ndarray | None,
    what: str,
    sigma: float,
    newdata: bool,
    allow_new_levels: bool,
) -> pd.Series:
    """Per partition: fitted values, residuals or predictions as a pandas Series."""
    eta, frame, w = builder.linear_predictor(part, beta, keep, b, newdata=newdata, allow_new_levels=allow_new_levels)
    if what in ("fitted", "predicted"):
        return eta.rename(what)
    y = builder.response_values(frame) if len(frame) else np.zeros(0)
    r = y - eta.to_numpy()
    if what in ("pearson", "pearson_scaled"):
        if w is not None:
            r = r * np.sqrt(w)
    if what in ("response_scaled", "pearson_scaled"):
        r = r / sigma
    return pd.Series(r, index=frame.index, name="residuals", dtype=float)


class DaskLinearMixedModel(LinearMixedModel):
    """A model fitted from a Dask DataFrame.

    Everything that depends on θ, β̂, σ̂ and the BLUPs (``fixef``, ``theta``,
    ``sigma``, ``vcov``, ``objective``, ``varcorr()``, ``ranef()``,
    ``coef_table()``, ``summary()``...) is as for an in-memory fit.  Quantities
    with one value per observation — :meth:`fitted`, :meth:`residuals`,
    :meth:`predict` without new data — are lazy ``dask.dataframe.Series``
    computed partition by partition; call ``.compute()`` (or write them out
    with ``.to_parquet``) to get the values.
    """

    design: DaskDesign

    def _lazy(self, what: str, b: np.ndarray | None, data: Any = None, newdata: bool = False,
              allow_new_levels: bool = False, builder: PartitionBuilder | None = None) -> Any:
        d = self.design
        src = d.source if data is None else data
        name = "residuals" if what.startswith(("response", "pearson")) else what
        return src.map_partitions(
            _partition_eta,
            d.builder if builder is None else builder,
            self._beta,
            d.fixed_keep,
            b,
            what,
            self.sigma,
            newdata,
            allow_new_levels,
            meta=pd.Series([], dtype=float, name=name),
        )

    def fitted(self) -> Any:
        """Fitted values ``Xβ̂ + Zb̂`` (+ offset), lazily, indexed like the rows used.

        Returns
        -------
        dask.dataframe.Series
        """
        return self._lazy("fitted", self.b)

    def residuals(self, type: str = "response", scaled: bool = False) -> Any:
        """Residuals as lme4's: ``y - fitted`` (``"response"``) or ``√w (y - fitted)``
        (``"pearson"``), divided by σ̂ when ``scaled``, lazily.

        Parameters
        ----------
        type : {"response", "pearson"}
        scaled : bool

        Returns
        -------
        dask.dataframe.Series
        """
        if type not in ("response", "pearson"):
            raise ArgumentError(f"residual type must be 'response' or 'pearson', got {type!r}")
        return self._lazy(type + ("_scaled" if validate.flag(scaled, "scaled") else ""), self.b)

    def predict(self, newdata: Any = None, re_form: Any = None, allow_new_levels: bool = False,
                offset: Any = None, se_fit: bool = False) -> Any:
        """Predictions ``Xβ̂ (+ Zb̂)`` (lme4's ``predict.merMod``).

        Parameters
        ----------
        newdata : pandas.DataFrame or dask.dataframe.DataFrame, optional
            Default: the data of the fit.  A pandas DataFrame gives a pandas Series
            (as :func:`sparselmm.stats.inference.predict`), a Dask one a lazy Dask Series.
        re_form : None, "all", "NA", "~0" or a formula
            Include the random effects (default), predict at the population level, or keep the
            terms a formula names (:func:`sparselmm.stats.inference.kept_terms`).
        allow_new_levels : bool
            Levels not seen in the fit contribute 0 instead of raising.
        se_fit : bool
            Standard errors too (a pandas ``newdata`` only: see
            :func:`sparselmm.stats.inference.predict`).

        Returns
        -------
        pandas.Series or dask.dataframe.Series (a pandas DataFrame with ``se_fit``)
        """
        keep = inference.kept_terms(self, re_form)
        allow_new_levels = validate.flag(allow_new_levels, "allow_new_levels")
        if validate.flag(se_fit, "se_fit") and not isinstance(newdata, pd.DataFrame):
            raise ArgumentError("se_fit=True on a Dask-fitted model needs newdata as a pandas DataFrame (the "
                                "standard errors take one solve per row)")
        b = None if not any(keep) else self.b
        if b is not None and not all(keep):
            b = b.copy()
            for lo, hi, kept in zip(self.design.Gp[:-1], self.design.Gp[1:], keep):
                if not kept:
                    b[lo:hi] = 0.0
        if newdata is None:
            if offset is not None:
                raise ArgumentError("offset= goes with newdata; the data of the fit use the fit's own offset")
            return self._lazy("predicted", b)
        if is_dask_dataframe(newdata):
            builder = self.design.builder
            if offset is not None:  # the new data's own offset column
                if not isinstance(offset, str):
                    raise ArgumentError(
                        f"with a Dask newdata, offset= must be the name of one of its columns, got {type(offset).__name__}"
                    )
                builder = replace(builder, offset=offset)
            return self._lazy("predicted", b, data=newdata, newdata=True, allow_new_levels=allow_new_levels,
                              builder=builder)
        return super().predict(newdata, re_form=re_form, allow_new_levels=allow_new_levels, offset=offset, se_fit=se_fit)

    def simulate(self, nsim: int = 1, seed: int | None = None) -> pd.DataFrame:
        """Not available for a Dask fit (it would hold ``nsim`` × n values in memory)."""
        raise SparseLMMError("simulate() is not available for a model fitted from a Dask DataFrame")

    def refit(self, new_y: Any = None, *, REML: bool | None = None) -> "DaskLinearMixedModel":
        """Refit with ``REML`` changed (the cross-products are reused; a new response is not supported).

        Parameters
        ----------
        new_y : None
            Must be None for a Dask fit.
        REML : bool, optional
        """
        if new_y is not None:
            raise SparseLMMError("refit(new_y) is not available for a model fitted from a Dask DataFrame")
        reml = self.REML if REML is None else validate.flag(REML, "REML")
        control = FitControl.make(optimizer=self.optsum.optimizer, start=self.theta, check=False)
        return self.fit(self.design, reml, control, call=self.call)
