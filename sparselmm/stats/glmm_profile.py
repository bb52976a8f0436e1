"""Profile-likelihood intervals of a GLMM's parameters (lme4's ``confint(m, method = "profile")``
for a ``glmer`` fit).

The profiled function is the fit's own deviance (the Laplace approximation, or adaptive
Gauss–Hermite quadrature with the fit's ``nAGQ``) over ``(θ, β)`` jointly, as lme4's stage-2
deviance function: each parameter held at a value, the deviance minimised over the others by
BOBYQA (β in units of its standard error, as the fit's stage 2), warm-started from the last point.
The parameters are lme4's: the standard deviations and correlations of each term
(``.sig01, …``: with no dispersion they are the entries of ``ΛΛᵀ`` in lme4's scale) and the fixed
effects.  An interval's end is where the signed root ``ζ = ±√(D(v) - D̂)`` crosses the normal
quantile, found by stepping out and Brent's method (:func:`sparselmm.stats.profile.profile_ends`,
which the linear model's profile uses too); lme4 inverts an interpolating spline over a grid of
``ζ``, so its ends differ from these in the third or fourth digit.

As lme4, families with a dispersion parameter (Gamma, inverse Gaussian) are not profiled.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from sparselmm.errors import ConvergenceError, ModelSpecError
from sparselmm.fitting.optimize import minimize_theta
from sparselmm.fitting.pirls import agq_deviance
from sparselmm.progress import Progress
from sparselmm.stats.profile import (
    interval_frame,
    profile_ends,
    sdcor_bounds,
    sdcor_from_theta,
    theta_from_sdcor,
    varpar_search,
)

__all__ = ["glmm_profile_intervals"]


def glmm_profile_intervals(m: Any, level: float = 0.95,
                           which: Sequence[str] | None = None, verbose: bool = False) -> pd.DataFrame:
    """Profile-likelihood intervals of a glmer fit's parameters.

    Parameters
    ----------
    m : sparselmm.glmm.GeneralizedLinearMixedModel
        The fit (its PIRLS state, θ, β and modes are read through its public members).
    level : float
        Confidence level.
    which : sequence of str, optional
        Parameters to profile (``.sig01``…, fixed-effect names); default all.
    verbose : bool
        Show the progress parameter by parameter.

    Returns
    -------
    pandas.DataFrame
        One row per parameter (lme4's names and order), the two ends as columns ``"2.5 %"`` and
        ``"97.5 %"`` (for the level); an end the profile does not reach within its search range
        is NaN, with a :class:`~sparselmm.errors.SparseLMMWarning`.  A standard deviation whose
        profile stays below the cut-off down to 0 has 0 as its lower end (lme4's convention).

    Raises
    ------
    ModelSpecError
        For a family with a dispersion parameter, or a term whose covariance is structured.
    """
    if not m.family.dispersion_free:
        raise ModelSpecError(f"profile intervals of a GLMM with a dispersion parameter ({m.family.name}) are not "
                             "available (lme4 does not profile them either); use method='wald' or 'boot'")
    d = m.design
    st = m.pirls_state
    nagq = max(1, m.nAGQ)
    sd0 = sdcor_from_theta(m, m.theta, 1.0)  # refuses structured terms
    nv = len(sd0)
    beta0 = m.fixef.to_numpy(dtype=float)
    vec0 = np.concatenate([sd0, beta0])
    bounds = sdcor_bounds(m)[:-1] + [(None, None)] * len(beta0)
    lo_all = np.array([-np.inf if b[0] is None else b[0] for b in bounds])
    hi_all = np.array([np.inf if b[1] is None else b[1] for b in bounds])
    se = np.asarray(m.se, dtype=float)
    unit = np.concatenate([np.ones(nv), np.where(np.isfinite(se) & (se > 0), se, 1.0)])
    warm: dict[str, Any] = {"u": m.u}

    def deviance(vec: np.ndarray) -> float:
        th = theta_from_sdcor(m, vec[:nv], 1.0)
        if th is None:
            return np.inf
        try:
            value, r = agq_deviance(st, th, vec[nv:], nagq, warm["u"])
        except ConvergenceError:
            return np.inf
        warm["u"] = r.u
        return value

    dev0 = deviance(vec0)
    cut = float(np.sqrt(stats.chi2.ppf(level, 1)))

    def zeta_fn(j: int) -> Any:
        free = np.array([i for i in range(len(vec0)) if i != j])
        state = {"x": vec0.copy()}

        def zeta(v: float) -> float:
            def g(z: np.ndarray) -> float:
                full = np.empty(len(vec0))
                full[free] = z * unit[free]
                full[j] = v
                return deviance(full)

            x0 = np.clip(state["x"][free], lo_all[free], hi_all[free]) / unit[free]
            try:
                opt = minimize_theta(g, x0, lo_all[free] / unit[free], hi_all[free] / unit[free], optimizer="bobyqa",
                                     check=False, restart_edge=False, options={"initial_step": 0.1, "ftol_rel": 1e-8})
            except ConvergenceError:  # the deviance cannot be evaluated there: beyond any cut-off
                return float(np.sign(v - vec0[j]) * 1e3)
            full = np.empty(len(vec0))
            full[free] = opt.theta * unit[free]
            full[j] = v
            state["x"] = full
            return float(np.sign(v - vec0[j]) * np.sqrt(max(opt.objective - dev0, 0.0)))

        return zeta

    names = [f".sig{i + 1:02d}" for i in range(nv)] + list(d.X_names)
    wanted = set(names) if which is None else set(which)
    unknown = sorted(wanted - set(names))
    if unknown:
        raise ModelSpecError(f"confint: no parameter named {', '.join(map(repr, unknown))}; the parameters are "
                             + ", ".join(names))
    rows: dict[str, list[float]] = {}
    unreached: list[str] = []
    bar = Progress("profile: parameter", len(wanted), verbose)
    for j, name in enumerate(names):
        if name not in wanted:
            continue
        bar.step(name)
        lo_b, hi_b = bounds[j]
        if j < nv:
            step, grow, steps = varpar_search(vec0[j], hi_b)
        else:
            step, grow, steps = cut * unit[j], 1.0, 30
        rows[name] = profile_ends(zeta_fn(j), vec0[j], cut, step, grow, lo_b, hi_b, steps,
                                   1e-6 * max(abs(vec0[j]), unit[j]), name, unreached)
    bar.close()
    return interval_frame(rows, level, unreached).reindex([n for n in names if n in wanted])
