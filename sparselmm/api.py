"""The fitting entry points: ``lmer()`` and ``fit_design()`` (lme4's ``lmer`` and
``optimizeLmer`` + ``mkMerMod``).

``lmer`` composes the public steps the way lme4 does
(``lFormula -> mkLmerDevfun -> optimizeLmer -> mkMerMod``)::

    d = design(formula, data)              # sparselmm.frame (dask_design for a Dask DataFrame)
    control = FitControl.make(**settings)  # sparselmm.fitting.control
    opt, state = search(d, REML, control)  # sparselmm.fitting.search
    LinearMixedModel(d, REML, opt, state)  # sparselmm.model

Both take the fit's settings once, as :class:`~sparselmm.fitting.control.FitControl`'s
fields (keywords) or as ``control=``.
"""

from __future__ import annotations

from typing import Any, Unpack

import pandas as pd

from sparselmm.dask_model import DaskLinearMixedModel
from sparselmm.fitting.control import FitControl, FitSettings
from sparselmm.fitting.fitted import Call
from sparselmm.frame.dask_design import DaskDesign, dask_design, is_dask_dataframe
from sparselmm.progress import dask_passes
from sparselmm.frame.modelframe import Design, design
from sparselmm.model import LinearMixedModel
from sparselmm.threads import single_threaded

__all__ = ["lmer", "fit_design"]


def fit_design(
    d: Design, REML: bool = True, *, control: FitControl | None = None, **settings: Unpack[FitSettings]
) -> LinearMixedModel:
    """Fit a model whose design is already built (lme4's ``optimizeLmer`` + ``mkMerMod``).

    Parameters
    ----------
    d : Design
    REML : bool
        Minimise the REML criterion (default) or the profiled deviance.
    control : FitControl, optional
        The fit's settings as one record (lme4's ``lmerControl``).
    **settings
        :class:`~sparselmm.fitting.control.FitControl`'s fields (``optimizer``, ``start``,
        ``options``, ``check``, ``verbose``), overriding ``control``'s: see :func:`lmer`.

    Returns
    -------
    LinearMixedModel
        A :class:`~sparselmm.dask_model.DaskLinearMixedModel` for a design made from a Dask DataFrame.
    """
    control = FitControl.from_settings(control, settings, caller="fit_design", own=("d", "REML"))
    cls = DaskLinearMixedModel if isinstance(d, DaskDesign) else LinearMixedModel
    return cls.fit(d, _flag_REML(REML), control, stacklevel=3)


def lmer(
    formula: str,
    data: pd.DataFrame,
    REML: bool = True,
    *,
    weights: Any = None,
    offset: Any = None,
    na_action: str = "omit",
    contrasts: Any = None,
    control: FitControl | None = None,
    **settings: Unpack[FitSettings],
) -> LinearMixedModel:
    """Fit a linear mixed-effects model, as lme4's ``lmer``.

    The model is ``y = Xβ + Zb + ε`` with ``b ~ N(0, σ² ΛΛᵀ)`` and
    ``ε ~ N(0, σ² W⁻¹)``; θ (the parameters of Λ) is estimated by minimising
    the profiled REML criterion or deviance, β and σ follow in closed form.

    Parameters
    ----------
    formula : str
        lme4 formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``.
    data : pandas.DataFrame or dask.dataframe.DataFrame
        The data.
    REML : bool
        REML (default) or maximum likelihood.
    weights, offset : array-like or str, optional
        Prior weights and offset (arrays or column names).
    na_action : {"omit", "fail"}
        Drop rows with missing values in used columns (default) or raise.
    contrasts : dict, optional
        R's ``contrasts =``: per factor of the fixed part, its contrasts
        (``{"store": "contr.sum"}``; ``"contr.treatment"``, ``"contr.sum"``, ``"contr.helmert"``,
        ``"contr.poly"``, ``"contr.SAS"``), columns named as R names them (``store1``, ...).
    control : FitControl, optional
        The fit's settings as one record (lme4's ``lmerControl``); the keywords below
        override its fields.
    **settings
        The fields of :class:`~sparselmm.fitting.control.FitControl`:

        optimizer : {"auto", "bobyqa", "cobyqa", "nelder_mead", "lbfgsb"}
            Optimiser for θ: ``"auto"`` is BOBYQA (lme4's default) from a moment-based start
            (:meth:`Design.moment_start`), finished by Newton steps on the convergence check's
            derivatives; ``"lbfgsb"`` runs L-BFGS-B on the analytic gradient where it is
            available (linear covariance structures).
        start : numpy.ndarray, optional
            Starting θ (default: the moment start with ``"auto"``, else lme4's).
        options : dict, optional
            The optimizer's options (lme4's ``optCtrl`` names accepted, e.g. ``maxfun``);
            an unknown name is an error listing the valid ones.
        check : bool or "auto"
            Finite-difference convergence check at the optimum, whose derivatives also finish
            the search by Newton steps (``"auto"``: when θ has at most 20 entries); with
            ``optimizer="auto"`` on one grouping factor its Hessian comes from differences of
            the analytic gradient.
        verbose : bool
            Report progress of long fits (logging at INFO level, and printed).
        progress : bool
            Show the progress of the fit's evaluations and of the model's later long steps
            (Satterthwaite and Kenward–Roger derivatives): a bar where tqdm is installed and the
            output is a terminal or notebook, else lines (:mod:`sparselmm.progress`).

    Returns
    -------
    LinearMixedModel

    Raises
    ------
    SparseLMMError
        For a bad formula, bad data or a model that cannot be fitted.

    Examples
    --------
    >>> import sparselmm as slm
    >>> m = slm.lmer("Reaction ~ Days + (Days | Subject)", slm.datasets.load("sleepstudy"))
    >>> round(m.objective, 3)
    1743.628
    """
    REML = _flag_REML(REML)
    control = FitControl.from_settings(
        control, settings, caller="lmer", own=("formula", "data", "REML", "weights", "offset", "na_action", "contrasts")
    )
    call = Call(formula, data, weights, offset, na_action, contrasts, control)
    if is_dask_dataframe(data):
        if contrasts is not None:
            from sparselmm.errors import ArgumentError

            raise ArgumentError("contrasts= is not available for a Dask fit yet; write C(f, contr.sum) in the formula")
        with dask_passes(control.verbose or control.progress):  # the passes over the partitions
            d = dask_design(formula, data, weights=weights, offset=offset, na_action=na_action)
        return DaskLinearMixedModel.fit(d, REML, control, stacklevel=3, call=call)
    with single_threaded():  # the design's small dense algebra too (a second BLAS thread only spins)
        d = design(formula, data, weights=weights, offset=offset, na_action=na_action, contrasts=contrasts)
        return LinearMixedModel.fit(d, REML, control, stacklevel=3, call=call)


def _flag_REML(REML: Any) -> bool:
    from sparselmm import validate

    return validate.flag(REML, "REML")
