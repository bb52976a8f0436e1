"""Profile likelihoods of the variance parameters and fixed effects (lme4's ``profile``).

The model is refitted by ML (:func:`profile_ml`); each parameter's profile is the deviance
minimised over the others with it held fixed, on lme4's scale of standard deviations and
correlations (:func:`sdcor_from_theta`), and the interval's ends are where the signed root
``ζ`` reaches the normal quantile (:func:`profile_intervals`).  :mod:`sparselmm.report.plots`
draws the same profiles.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd
from scipy import optimize as sopt
from scipy import stats

from sparselmm.errors import ModelSpecError, SparseLMMWarning
from sparselmm.fitting.optimize import minimize_theta
from sparselmm.progress import Progress
from sparselmm.stats.satterthwaite import deviance_at_varpar

if TYPE_CHECKING:  # pragma: no cover
    from sparselmm.fitting.fitted import FittedModel

__all__ = [
    "varpar_names",
    "has_dispersion",
    "sdcor_from_theta",
    "theta_from_sdcor",
    "profile_ml",
    "deviance_at_sdcor",
    "sdcor_bounds",
    "profile_intervals",
    "fixed_profile_deviance",
    "interval_frame",
    "profile_ends",
    "varpar_search",
]


def has_dispersion(m: Any) -> bool:
    """Whether the model has a residual scale ``σ`` among its parameters: a linear mixed model,
    or a GLMM of a family with a dispersion (Gamma, inverse Gaussian)."""
    fam = getattr(m, "family", None)
    return fam is None or not fam.dispersion_free


def varpar_names(m: Any) -> list[str]:
    """lme4's names of the variance parameters: ``.sig01, .sig02, ..., .sigma`` (no ``.sigma``
    for a binomial or Poisson GLMM)."""
    n = len(m.theta)
    return [f".sig{i + 1:02d}" for i in range(n)] + ([".sigma"] if has_dispersion(m) else [])


def sdcor_from_theta(m: "FittedModel", theta: np.ndarray, sigma: float) -> np.ndarray:
    """The standard deviations and correlations of every term, in θ's order, for θ and σ."""
    out = []
    d = m.design
    for t, sl in zip(d.terms, d.theta_slices):
        if not t.structure.lme4_theta:
            raise ModelSpecError("profile intervals are implemented for unstructured terms only")
        T = t.structure.block(theta[sl])
        S = sigma**2 * T @ T.T
        sd = np.sqrt(np.diag(S))
        for j in range(t.k):
            for i in range(j, t.k):
                out.append(sd[i] if i == j else (S[i, j] / (sd[i] * sd[j]) if sd[i] * sd[j] > 0 else 0.0))
    return np.array(out)


def theta_from_sdcor(m: "FittedModel", sdcor: np.ndarray, sigma: float) -> np.ndarray | None:
    d = m.design
    out = []
    pos = 0
    for t in d.terms:
        k = t.k
        vals = sdcor[pos : pos + k * (k + 1) // 2]
        pos += k * (k + 1) // 2
        it = iter(vals)
        sds = np.zeros(k)
        cor = np.eye(k)
        for j in range(k):
            for i in range(j, k):
                v = next(it)
                if i == j:
                    sds[i] = v
                else:
                    cor[i, j] = cor[j, i] = v
        S = cor * np.outer(sds, sds) / sigma**2
        if k == 1:
            T = np.sqrt(np.maximum(S, 0))
        else:
            try:
                T = np.linalg.cholesky(S + 1e-300 * np.eye(k)) if np.all(sds > 0) else _psd_chol(S)
            except np.linalg.LinAlgError:  # a correlation of ±1: S is singular, its factor pivot-free
                if np.linalg.eigvalsh(S)[0] < -1e-12 * max(1.0, float(np.max(np.abs(S)))):
                    return None
                T = _psd_chol(S)
        out.extend(T[j:, j][i] for j in range(k) for i in range(k - j))
    return np.array(out, dtype=float)


def _psd_chol(S: np.ndarray) -> np.ndarray:
    """Cholesky-like lower factor of a PSD matrix with zero variances (pivot-free)."""
    k = S.shape[0]
    T = np.zeros((k, k))
    for j in range(k):
        v = S[j, j] - T[j, :j] @ T[j, :j]
        if v <= 1e-14 * max(1.0, abs(S[j, j])):
            continue
        T[j, j] = np.sqrt(v)
        for i in range(j + 1, k):
            T[i, j] = (S[i, j] - T[i, :j] @ T[j, :j]) / T[j, j]
    return T


def profile_ml(m: "FittedModel") -> "FittedModel":
    return m.refit(REML=False) if m.REML else m


def deviance_at_sdcor(st: Any, mm: "FittedModel", vec: np.ndarray) -> float:
    """ML deviance at (sd/cor..., σ) with β profiled."""
    sigma = vec[-1]
    if sigma <= 0:
        return np.inf
    th = theta_from_sdcor(mm, vec[:-1], sigma)
    if th is None:
        return np.inf
    return deviance_at_varpar(mm, st, np.concatenate([th, [sigma]]), REML=False)


def sdcor_bounds(mm: "FittedModel") -> list[tuple[float, float]]:
    b = []
    for t in mm.design.terms:
        for j in range(t.k):
            for i in range(j, t.k):
                b.append((0.0, None) if i == j else (-1.0, 1.0))
    return b + [(1e-12, None)]


def profile_intervals(m: "FittedModel", level: float, which: Sequence[str] | None = None,
                      verbose: bool = False) -> pd.DataFrame:
    """Profile-likelihood intervals of the parameters named in ``which`` (default: all; the
    profile of each is computed only if it is asked for), ``verbose`` showing the progress
    parameter by parameter (:mod:`sparselmm.progress`)."""
    mm = profile_ml(m)
    st = mm.design.pls()
    cut = float(np.sqrt(stats.chi2.ppf(level, 1)))
    dev0 = mm.deviance
    vec0 = np.concatenate([sdcor_from_theta(mm, mm.theta, mm.sigma), [mm.sigma]])
    bounds = sdcor_bounds(mm)
    names = varpar_names(mm)
    rows = {}
    # each parameter's unit: σ̂ for the standard deviations (and σ), 1 for the correlations; the
    # tolerances and steps are relative to it, so that a response in nanometres or in 1e12 units
    # is profiled as the same one in metres
    unit = np.array([1.0 if hi == 1.0 else mm.sigma for _, hi in bounds])

    def prof_var(j: int, v: float, x0: np.ndarray) -> tuple[float, np.ndarray]:
        free = [i for i in range(len(vec0)) if i != j]
        u = unit[free]

        def f(z: np.ndarray) -> float:  # z: the free parameters in their units
            full = np.empty(len(vec0))
            full[free] = z * u
            full[j] = v
            return deviance_at_sdcor(st, mm, full)

        if not free:
            return f(np.zeros(0)), x0
        lo = np.array([bounds[i][0] if bounds[i][0] is not None else -np.inf for i in free]) / u
        hi = np.array([bounds[i][1] if bounds[i][1] is not None else np.inf for i in free]) / u
        best = None
        # from the last point's optimum and from the estimate: the lower of the two (on a singular
        # fit a warm start alone can stay on a boundary face, and the profile then jumps)
        for start in (x0, vec0):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = sopt.minimize(
                    f,
                    np.clip(start[free] / u, lo, hi),
                    method="Nelder-Mead",
                    bounds=sopt.Bounds(lo, hi),
                    options={"xatol": 1e-10, "fatol": 1e-10, "maxfev": 20000, "adaptive": len(free) > 4},
                )
            if best is None or r.fun < best.fun:
                best = r
        full = x0.copy()
        full[free] = best.x * u
        full[j] = v
        return float(best.fun), full

    def zeta_fn(j: int) -> Any:
        cache = {"x": vec0.copy()}

        def zeta(v: float) -> float:
            dv, x = prof_var(j, v, cache["x"])
            cache["x"] = x
            return float(np.sign(v - vec0[j]) * np.sqrt(max(dv - dev0, 0.0)))

        return zeta

    unreached: list[str] = []
    wanted = set(names) | set(mm.design.X_names) if which is None else set(which)
    bar = Progress("profile: parameter", len(wanted), verbose)
    for j, name in enumerate(names):
        if name not in wanted:
            continue
        bar.step(name)
        lo_b, hi_b = bounds[j]
        v0 = vec0[j]
        step, grow, steps = varpar_search(v0, hi_b, unit[j])
        rows[name] = profile_ends(zeta_fn(j), v0, cut, step, grow, lo_b, hi_b, steps, 1e-10 * unit[j], name, unreached)
    # fixed effects: profile the deviance over θ with β_j fixed
    d = mm.design
    for j, name in enumerate(d.X_names):
        if name not in wanted:
            continue
        bar.step(name)
        bhat, se = mm.fixef.iloc[j], mm.se.iloc[j]

        def zb(v: float, j: int = j, bhat: float = bhat) -> float:
            dv = fixed_profile_deviance(mm, j, v)
            return float(np.sign(v - bhat) * np.sqrt(max(dv - dev0, 0.0)))

        rows[name] = profile_ends(zb, bhat, cut, cut * se, 1.0, None, None, 30,
                                   1e-10 * max(abs(bhat), se), name, unreached)
    bar.close()
    return interval_frame(rows, level, unreached)


def varpar_search(v0: float, hi: float | None, unit: float = 1.0) -> tuple[float, float, int]:
    """How :func:`profile_ends` steps out from a variance parameter's estimate ``v0``: the first
    step (0.1 for a correlation, whose upper bound is 1; a quarter of the standard deviation, at
    least 1 % of its ``unit``, for a standard deviation), the growth of the steps and their most."""
    step = 0.1 if hi == 1.0 else 0.25 * max(abs(v0), 1e-2 * unit)
    return step, 1.6, 60


def interval_frame(rows: dict[str, list[float]], level: float, unreached: list[str]) -> pd.DataFrame:
    """The profile intervals as lme4 prints them (one row per parameter, the two ends under their
    percentages), warning once about the ends that were not reached (NaN)."""
    if unreached:
        warnings.warn(
            f"the profile of {', '.join(unreached)} does not reach the confidence level's cut-off within its "
            "search range: that end of the interval is reported as NaN",
            SparseLMMWarning,
            stacklevel=4,
        )
    pct = [f"{100 * (1 - level) / 2:.1f} %", f"{100 * (1 + level) / 2:.1f} %"]
    return pd.DataFrame.from_dict(rows, orient="index", columns=pct)


def profile_ends(
    zeta: Any, v0: float, cut: float, step: float, grow: float, lo: float | None, hi: float | None,
    max_steps: int, xtol: float, name: str, unreached: list[str],
) -> list[float]:
    """Where the profile ``ζ`` crosses ``∓cut`` below and above ``v0``.

    Steps out from ``v0`` (``step``, growing by ``grow``) until ``ζ`` passes the cut-off, then
    finds the crossing by Brent's method on the bracket.  ``ζ`` is memoised: each value comes
    from an optimisation, and the bracket must see the values that chose it.  A bound reached
    first is the end; a cut-off never reached gives NaN (and ``name`` in ``unreached``).
    """
    memo: dict[float, float] = {float(v0): 0.0}

    def z(v: float) -> float:
        v = float(v)
        if v not in memo:
            memo[v] = zeta(v)
        return memo[v]

    ends = []
    for direction, target in ((-1, -cut), (1, cut)):
        prev, h, found = float(v0), step, np.nan
        for _ in range(max_steps):
            v = prev + direction * h
            if lo is not None and v <= lo:
                v = lo
            if hi is not None and v >= hi:
                v = hi
            if (z(v) - target) * direction >= 0:
                a, b = min(prev, v), max(prev, v)
                found = float(sopt.brentq(lambda t: z(t) - target, a, b, xtol=xtol))
                break
            if v in (lo, hi):  # ζ never reaches the cut-off before the bound: the bound is the limit
                found = float(v)
                break
            prev = v
            h *= grow
        else:
            unreached.append(name)
        ends.append(found)
    return ends


def fixed_profile_deviance(mm: "FittedModel", j: int, value: float) -> float:
    """ML deviance minimised over θ with β_j held at ``value`` (lme4's scale).

    In the engine's units ``β = γ_y + J β'`` (sparselmm.frame.conditioning), so ``β_j = value`` is
    the linear constraint ``ℓᵀβ' = v`` with ``ℓ = J_j·`` and ``v = value − γ_y,j``.  With
    ``β' = ℓ v/|ℓ|² + N γ`` (N: an orthonormal basis of ℓ's complement) the constrained model
    is the design with columns ``X'N`` and offset ``X'ℓ v/|ℓ|²``, whose cross-products follow
    from the design's (nothing touches the n rows).
    """
    d = mm.design
    cond = d.cond
    ell = cond.J[j]
    v = float(value - cond.y_shift[j])
    nrm2 = float(ell @ ell)
    b0 = ell * (v / nrm2)  # the particular solution
    N = np.linalg.svd(ell[None, :])[2][1:].T  # (p, p-1), orthonormal, ℓᵀN = 0
    cp = d.cross
    XtXb0 = cp.XtX @ b0
    Zb0 = cp.ZtX @ b0
    cross = cp.with_fixed_part(
        ZtX=cp.ZtX @ N,
        Zty=cp.Zty - Zb0,
        XtX=N.T @ cp.XtX @ N,
        Xty=N.T @ (cp.Xty - XtXb0),
        yty=float(cp.yty - 2.0 * b0 @ cp.Xty + b0 @ XtXb0),
    )
    keep = [i for i in range(d.p) if i != j]
    d2 = replace(d, X=d.X[:, keep], X_names=[d.X_names[i] for i in keep], cross=cross)
    st = d2.pls()
    off = d.objective_offset(False)  # 2n log s_y: the same with one column fewer
    to_int = d.internal_theta
    f = lambda th: st.objective(to_int(th), REML=False) + off  # noqa: E731
    opt = minimize_theta(f, mm.theta, d.lower, d.upper, optimizer="nelder_mead", check=False, restart_edge=False)
    return opt.objective
