"""Diagnostic plots of a fitted model (matplotlib, the optional extra ``plot``).

* :func:`plot_ranef` — caterpillar plot of the conditional modes (BLUPs)
  with intervals ``b̂ ± z·condsd`` (lme4's ``dotplot(ranef(m, condVar = TRUE))``);
* :func:`plot_residuals` — residuals against fitted values and a normal QQ
  plot of the Pearson residuals (lme4's ``plot(m)`` and ``qqnorm(resid(m))``);
* :func:`profile` and :func:`plot_profile` — the profile ζ traces behind
  ``confint(method="profile")`` and their plot (lme4's
  ``xyplot(profile(m))``).

matplotlib is imported only when a plot is drawn; without it the plotting
functions raise :class:`~sparselmm.SparseLMMError` saying how to install it
(``pip install "sparselmm[plot]"``).  Every plotting function returns the
:class:`matplotlib.figure.Figure`; it is created through ``pyplot`` so that
``plt.show()`` and notebooks display it.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd
from scipy import optimize as sopt
from scipy import stats

from sparselmm.errors import DataError, SparseLMMError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from sparselmm.fitting.fitted import FittedModel

__all__ = ["plot_ranef", "plot_residuals", "plot_profile", "profile"]

_INSTALL_HINT = 'plotting needs matplotlib; install it with: pip install "sparselmm[plot]"'


def _select(requested: str | Sequence[str] | None, available: list[str], message: str) -> list[str]:
    """``requested`` (one name, several, or None for all) checked against ``available``."""
    if requested is None:
        return list(available)
    chosen = [requested] if isinstance(requested, str) else list(requested)
    unknown = [c for c in chosen if c not in available]
    if unknown:
        raise DataError(message.format(unknown[0], available))
    return chosen


def _pyplot() -> Any:
    """Import ``matplotlib.pyplot`` lazily, with a clear error when it is missing."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise SparseLMMError(_INSTALL_HINT) from exc
    return plt


def _check_level(level: float) -> float:
    if not 0 < level < 1:
        raise DataError(f"level must be between 0 and 1, got {level}")
    return float(level)


# ----------------------------------------------------------------------------------------
# caterpillar plot of the random effects


def plot_ranef(
    m: "FittedModel",
    *,
    level: float = 0.95,
    groups: Sequence[str] | None = None,
    order: bool = True,
    max_labels: int = 60,
    figsize: tuple[float, float] | None = None,
) -> "Figure":
    """Caterpillar plot of the conditional modes with conditional-SD intervals.

    One panel per (grouping factor, term): each level's conditional mode
    ``b̂`` with the interval ``b̂ ± z·condsd``, ``z = Φ⁻¹((1 + level)/2)``
    (1.96 for ``level = 0.95``), from :meth:`LinearMixedModel.ranef_table`.
    As lme4's ``dotplot(ranef(m, condVar = TRUE))``, the levels of a grouping
    factor are sorted by the conditional modes of its first term, and its
    other terms use the same order, so that panels of one factor read across.

    Parameters
    ----------
    m : LinearMixedModel
    level : float
        Coverage of the intervals (default 0.95, i.e. ±1.96 condsd).
    groups : sequence of str, optional
        Grouping factors to draw (default: all, in the model's term order).
    order : bool
        Sort levels by their conditional mode (default) or keep the factor's order.
    max_labels : int
        Level names are written on the axis only when a factor has at most this many levels.
    figsize : (float, float), optional
        Figure size in inches (default: grows with the number of levels and panels).

    Returns
    -------
    matplotlib.figure.Figure
        Axes titled ``"<grouping factor>: <term>"``, x label ``"conditional mode"``.
    """
    z = float(stats.norm.ppf((1 + _check_level(level)) / 2))
    tab = m.ranef_table()
    all_groups = list(dict.fromkeys(tab["grpvar"]))
    groups = _select(groups, all_groups, "no grouping factor {!r} in the model; it has {}")
    plt = _pyplot()
    panels = [(g, list(dict.fromkeys(tab.loc[tab["grpvar"] == g, "term"]))) for g in groups]
    ncol = max(len(terms) for _, terms in panels)
    nrow = len(panels)
    nlev = [int((tab["grpvar"] == g).sum() / len(terms)) for g, terms in panels]
    if figsize is None:
        heights = [min(max(2.0, 0.18 * n + 1.0), 12.0) for n in nlev]
        figsize = (max(4.0, 3.6 * ncol), sum(heights))
    fig = plt.figure(figsize=figsize, layout="constrained")
    grid = fig.add_gridspec(nrow, ncol, height_ratios=[max(n, 5) for n in nlev] if nrow > 1 else None)
    for r, (g, terms) in enumerate(panels):
        sub = tab[tab["grpvar"] == g]
        first = sub[sub["term"] == terms[0]]
        levels = list(first["grp"])
        if order:
            levels = list(first.sort_values("condval", kind="stable")["grp"])
        ypos = {lev: i for i, lev in enumerate(levels)}
        share = None
        for c, term in enumerate(terms):
            ax = fig.add_subplot(grid[r, c], sharey=share)
            share = share or ax
            t = sub[sub["term"] == term]
            y = t["grp"].map(ypos).to_numpy(dtype=float)
            x = t["condval"].to_numpy(dtype=float)
            half = z * t["condsd"].to_numpy(dtype=float)
            many = len(levels) > 200
            ax.errorbar(
                x,
                y,
                xerr=half,
                fmt="o",
                ms=2 if many else 3.5,
                color="#1f4e9c",
                ecolor="#7f9cc9",
                elinewidth=0.6 if many else 1.0,
                capsize=0,
            )
            ax.axvline(0.0, color="0.5", lw=0.8, ls="--")
            ax.set_title(f"{g}: {term}", fontsize=10)
            ax.set_xlabel("conditional mode")
            ax.set_ylim(-1, len(levels))
            if c == 0:
                ax.set_ylabel(g)
                if len(levels) <= max_labels:
                    ax.set_yticks(range(len(levels)), [str(v) for v in levels], fontsize=7)
                else:
                    ax.set_yticks([])
            else:
                ax.tick_params(labelleft=False)
    fig.suptitle(f"Random effects, {100 * level:g}% intervals (±{z:.2f} condsd)", fontsize=11)
    return fig


# ----------------------------------------------------------------------------------------
# residuals


def _ppoints(n: int) -> np.ndarray:
    """R's ``ppoints(n)``: ``(i - a) / (n + 1 - 2a)`` with ``a = 3/8`` for ``n <= 10``, else ``1/2``."""
    a = 3 / 8 if n <= 10 else 0.5
    return (np.arange(1, n + 1) - a) / (n + 1 - 2 * a)


def plot_residuals(
    m: "FittedModel",
    *,
    type: str = "pearson",
    figsize: tuple[float, float] = (9.0, 4.0),
) -> "Figure":
    """Residuals against fitted values, and a normal QQ plot of the residuals.

    The left panel is lme4's ``plot(m)``: residuals ``r_i`` against fitted
    values ``ŷ_i = x_iᵀβ̂ + z_iᵀb̂`` with a reference line at 0.  The right
    panel is ``qqnorm(r); qqline(r)``: sorted residuals against
    ``Φ⁻¹(ppoints(n))`` with the line through the first and third quartiles.

    Parameters
    ----------
    m : LinearMixedModel
    type : {"pearson", "response"}
        Residuals scaled by ``√w / σ̂`` (default) or on the response scale.
    figsize : (float, float)
        Figure size in inches.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes, titled ``"Residuals vs fitted"`` and ``"Normal Q-Q"``.
    """
    res = m.residuals(type=type).to_numpy(dtype=float)
    fit = m.fitted().to_numpy(dtype=float)
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=figsize, layout="constrained")
    many = len(res) > 2000
    ax1.scatter(fit, res, s=4 if many else 12, alpha=0.4 if many else 0.8, color="#1f4e9c", edgecolors="none")
    ax1.axhline(0.0, color="0.4", lw=0.8, ls="--")
    ax1.set_title("Residuals vs fitted")
    ax1.set_xlabel("fitted values")
    ax1.set_ylabel(f"{type} residuals")

    r = np.sort(res)
    q = stats.norm.ppf(_ppoints(len(r)))
    ax2.scatter(q, r, s=4 if many else 12, alpha=0.4 if many else 0.8, color="#1f4e9c", edgecolors="none")
    y1, y2 = np.quantile(res, [0.25, 0.75])
    x1, x2 = stats.norm.ppf([0.25, 0.75])
    slope = (y2 - y1) / (x2 - x1)
    xs = np.array([q[0], q[-1]])
    ax2.plot(xs, y1 + slope * (xs - x1), color="#c0392b", lw=1.0)
    ax2.set_title("Normal Q-Q")
    ax2.set_xlabel("theoretical quantiles")
    ax2.set_ylabel(f"sample quantiles ({type} residuals)")
    return fig


# ----------------------------------------------------------------------------------------
# profile zeta traces


def _varpar_labels(mm: "FittedModel") -> list[str]:
    """Readable names of the standard deviations and correlations in θ's order, then σ."""
    out = []
    for t in mm.design.terms:
        for j in range(t.k):
            for i in range(j, t.k):
                if i == j:
                    out.append(f"sd({t.columns[i]} | {t.group})")
                else:
                    out.append(f"cor({t.columns[j]}, {t.columns[i]} | {t.group})")
    return out + ["sigma"]


def _trace(zeta: Any, v0: float, pilot: float, lo: float | None, hi: float | None, cut: float, npts: int) -> list:
    """Walk from the estimate ``v0`` in both directions until ``|ζ| >= cut`` or a bound.

    A short pilot step gauges the slope of ζ near the estimate; the walk then
    takes steps of about ``(distance to the cut) / npts`` for a linear ζ, and
    lengthens them by half whenever ζ rises slower than that.
    """
    pts = [(v0, 0.0)]
    for direction in (-1, 1):
        prev = v0
        step = pilot
        for i in range(4 * npts + 1):
            v = prev + direction * step
            at_bound = False
            if lo is not None and v <= lo:
                v, at_bound = lo, True
            if hi is not None and v >= hi:
                v, at_bound = hi, True
            if v == prev:
                break
            zv = zeta(v)
            if not np.isfinite(zv):
                break
            pts.append((v, zv))
            if abs(zv) >= cut or at_bound:
                break
            if i == 0:
                # ζ is about linear near the estimate: npts steps to the cut
                step = abs(v - v0) * cut / abs(zv) / npts if abs(zv) > 1e-8 else 10 * step
            elif abs(zv) < cut * i / (2 * npts):
                step *= 1.5
            prev = v
    return sorted(pts)


def profile(
    m: "FittedModel",
    *,
    which: Sequence[str] | None = None,
    alphamax: float = 0.01,
    npts: int = 8,
) -> pd.DataFrame:
    """Profile ζ traces of every parameter (lme4's ``profile(m)``, as a long table).

    For a parameter ψ with estimate ψ̂, ``ζ(ψ) = sign(ψ - ψ̂) √(d(ψ) - d(ψ̂))``,
    where ``d(ψ)`` is the ML deviance minimised over the other parameters
    with ψ held fixed (a REML fit is refitted by ML first, as lme4 does).  The
    variance parameters are profiled on the scale of standard deviations and
    correlations (lme4's ``.sig01, ..., .sigma``), the fixed effects on their
    own scale.  Each trace runs from the estimate in both directions until
    ``|ζ|`` reaches ``√χ²₁(1 - alphamax)`` (2.58 for lme4's default
    ``alphamax = 0.01``) or the parameter reaches a bound.  The points where
    ``ζ = ±√χ²₁(level)`` are the ``confint(method="profile")`` limits.

    Parameters
    ----------
    m : LinearMixedModel
        Unstructured random-effect terms only (as ``confint(method="profile")``).
    which : sequence of str, optional
        Parameters to profile, by lme4's names (``".sig01"``, ``".sigma"``,
        ``"(Intercept)"``, ...); default all.
    alphamax : float
        How far out the traces go (see above).
    npts : int
        About this many points on each side of the estimate.

    Returns
    -------
    pandas.DataFrame
        Long form: columns ``parameter`` (lme4's name), ``label`` (readable
        name, e.g. ``"sd((Intercept) | Subject)"``), ``value``, ``zeta``;
        sorted by parameter then value; one row per evaluated point, including
        the estimate (``zeta = 0``).
    """
    from sparselmm.stats import profile as pf

    if not 0 < alphamax < 1:
        raise DataError(f"alphamax must be between 0 and 1, got {alphamax}")
    if npts < 2:
        raise DataError(f"npts must be at least 2, got {npts}")
    mm = pf.profile_ml(m)
    st = mm.design.pls()
    cut = float(np.sqrt(stats.chi2.ppf(1 - alphamax, 1)))
    dev0 = mm.deviance
    vec0 = np.concatenate([pf.sdcor_from_theta(mm, mm.theta, mm.sigma), [mm.sigma]])
    bounds = pf.sdcor_bounds(mm)
    vp_names = pf.varpar_names(mm)
    labels = dict(zip(vp_names, _varpar_labels(mm)))
    fe_names = list(mm.fixef.index)
    labels.update({n: n for n in fe_names})
    all_names = vp_names + fe_names
    which = _select(which, all_names, "no parameter {!r} to profile; parameters are {}")

    def var_zeta(j: int) -> Any:
        free = [i for i in range(len(vec0)) if i != j]
        lo = np.array([bounds[i][0] if bounds[i][0] is not None else -np.inf for i in free])
        hi = np.array([bounds[i][1] if bounds[i][1] is not None else np.inf for i in free])
        state = {"x": vec0.copy(), "side": 0.0}

        def zeta(v: float) -> float:
            side = float(np.sign(v - vec0[j]))
            if side != state["side"]:  # a new direction: warm start from the optimum again
                state["x"], state["side"] = vec0.copy(), side
            def f(zf: np.ndarray) -> float:
                full = np.empty(len(vec0))
                full[free] = zf
                full[j] = v
                return pf.deviance_at_sdcor(st, mm, full)

            if free:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    best = sopt.minimize(
                        f,
                        np.clip(state["x"][free], lo, hi),
                        method="Nelder-Mead",
                        bounds=sopt.Bounds(lo, hi),
                        options={"xatol": 1e-10, "fatol": 1e-10, "maxfev": 20000, "adaptive": len(free) > 4},
                    )
                dv = float(best.fun)
                state["x"][free] = best.x
            else:
                dv = f(np.zeros(0))
            return float(np.sign(v - vec0[j]) * np.sqrt(max(dv - dev0, 0.0)))

        return zeta

    rows = []
    for name in which:
        if name in vp_names:
            j = vp_names.index(name)
            v0 = float(vec0[j])
            lo_b, hi_b = bounds[j]
            pilot = 0.01 if hi_b == 1.0 else 0.01 * max(abs(v0), 1e-2)
            pts = _trace(var_zeta(j), v0, pilot, lo_b, hi_b, cut, npts)
        else:
            j = fe_names.index(name)
            bhat, se = float(mm.fixef.iloc[j]), float(mm.se.iloc[j])

            def zb(v: float, j: int = j, bhat: float = bhat) -> float:
                dv = pf.fixed_profile_deviance(mm, j, v)
                return float(np.sign(v - bhat) * np.sqrt(max(dv - dev0, 0.0)))

            pts = _trace(zb, bhat, 0.1 * se, None, None, cut, npts)
        rows.extend((name, labels[name], v, zv) for v, zv in pts)
    return pd.DataFrame(rows, columns=["parameter", "label", "value", "zeta"])


def plot_profile(
    m: "FittedModel",
    *,
    prof: pd.DataFrame | None = None,
    level: float = 0.95,
    absolute: bool = False,
    which: Sequence[str] | None = None,
    ncol: int = 3,
    figsize: tuple[float, float] | None = None,
) -> "Figure":
    """Profile zeta plots (lme4's ``xyplot(profile(m))``), one panel per parameter.

    Each panel draws ζ against the parameter's value (from :func:`profile`),
    horizontal lines at ``±√χ²₁(level)`` and vertical lines at the profile
    confidence limits where ζ crosses them; for the fixed effects the Wald
    line ``(β - β̂)/SE`` is drawn dashed for comparison (a straight ζ means the
    Wald interval is accurate).

    Parameters
    ----------
    m : LinearMixedModel
    prof : pandas.DataFrame, optional
        The output of :func:`profile` (computed when not given).
    level : float
        Confidence level of the reference lines.
    absolute : bool
        Plot ``|ζ|`` (lme4's ``absVal = TRUE``) instead of ζ.
    which : sequence of str, optional
        Parameters to plot (default all that were profiled).
    ncol : int
        Panels per row.
    figsize : (float, float), optional
        Figure size in inches.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per parameter, titled with the parameter's readable name,
        y label ``"ζ"`` (or ``"|ζ|"``).
    """
    cut = float(np.sqrt(stats.chi2.ppf(_check_level(level), 1)))
    if prof is None:
        prof = profile(m, which=which)
    elif which is not None:
        which = [which] if isinstance(which, str) else list(which)
        prof = prof[prof["parameter"].isin(which)]
    params = list(dict.fromkeys(prof["parameter"]))
    if not params:
        raise DataError("nothing to plot: the profile table is empty")
    plt = _pyplot()
    ncol = max(1, min(ncol, len(params)))
    nrow = math.ceil(len(params) / ncol)
    if figsize is None:
        figsize = (3.4 * ncol, 2.9 * nrow)
    fig, axes = plt.subplots(nrow, ncol, figsize=figsize, layout="constrained", squeeze=False)
    fe = m.fixef
    se = m.se
    if m.REML:  # the profile is by ML; its Wald line uses the ML estimates
        from sparselmm.stats import profile as pf

        mm = pf.profile_ml(m)
        fe, se = mm.fixef, mm.se
    for ax, name in zip(axes.ravel(), params):
        p = prof[prof["parameter"] == name].sort_values("value")
        x = p["value"].to_numpy(dtype=float)
        zt = p["zeta"].to_numpy(dtype=float)
        ax.plot(x, np.abs(zt) if absolute else zt, "-o", color="#1f4e9c", ms=3, lw=1.2)
        for s in (1, -1):
            if s == 1 or not absolute:
                ax.axhline(s * cut, color="0.5", lw=0.8, ls=":")
            # profile limit: where ζ crosses s·cut, by linear interpolation of the trace
            xs = _crossing(x, zt, s * cut)
            if xs is not None:
                ax.axvline(xs, color="#c0392b", lw=0.8, ls=":")
        if name in fe.index:
            b, e = float(fe[name]), float(se[name])
            w = (x - b) / e
            ax.plot(x, np.abs(w) if absolute else w, "--", color="0.45", lw=0.9)
        ax.axhline(0.0, color="0.8", lw=0.6)
        ax.set_title(str(p["label"].iloc[0]), fontsize=9)
        ax.set_xlabel(name)
        ax.set_ylabel("|ζ|" if absolute else "ζ")
    for ax in axes.ravel()[len(params) :]:
        fig.delaxes(ax)
    fig.suptitle(f"Profile zeta, {100 * level:g}% limits", fontsize=11)
    return fig


def _crossing(x: np.ndarray, z: np.ndarray, target: float) -> float | None:
    """First x where the piecewise-linear trace (x, z) crosses ``target`` (None if it does not)."""
    d = z - target
    for i in range(len(x) - 1):
        if d[i] == 0:
            return float(x[i])
        if d[i] * d[i + 1] < 0:
            return float(x[i] - d[i] * (x[i + 1] - x[i]) / (d[i + 1] - d[i]))
    return float(x[-1]) if len(d) and d[-1] == 0 else None
