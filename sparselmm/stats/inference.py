"""Inference for fitted models: t-tests, likelihood-ratio tests, intervals, prediction.

* :func:`coef_table` — Wald t-tests with Satterthwaite denominator df as
  lmerTest computes them (numerical Hessian of the deviance in
  ``(θ, σ)`` and Jacobian of ``Var(β̂)``), Kenward–Roger, or z-tests.
* :func:`anova` — lme4's likelihood-ratio table, refitting REML fits by ML.
* :func:`confint` — Wald, profile-likelihood (lme4's ``profile``; by ML as
  lme4 does) and parametric-bootstrap intervals.
* :func:`predict`, :func:`simulate`.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd
from scipy import optimize as sopt
from scipy import stats

from sparselmm import validate
from sparselmm.errors import ArgumentError, DataError, ModelSpecError, SparseLMMError, SparseLMMWarning
from sparselmm.backends.base import LOG2PI, CrossProducts

if TYPE_CHECKING:  # pragma: no cover
    from sparselmm.model import LinearMixedModel

__all__ = [
    "coef_table",
    "satterthwaite",
    "anova",
    "confint",
    "predict",
    "simulate",
    "varpar_names",
]


#: the denominator-df methods of coef_table and summary, by the names users write
DDF = {
    "satterthwaite": "satterthwaite", "satt": "satterthwaite",
    "kenward-roger": "kenward-roger", "kr": "kenward-roger", "kenward-rogers": "kenward-roger",
    "wald": "wald", "z": "wald", "normal": "wald",
}

# ----------------------------------------------------------------------------------------
# the deviance in (θ, σ), lmerTest's devfun_vp


def _dev_vp(state: Any, varpar: np.ndarray, REML: bool) -> float:
    """Deviance (or REML deviance) at θ = varpar[:-1], σ = varpar[-1], β at β̂(θ).

    ``ldL2 - ldW + pwrss/σ² + n log(2πσ²)``, and for REML ``+ ldRX2 - p log(2πσ²)``.
    """
    theta, s = varpar[:-1], varpar[-1]
    if not state.update(theta):
        return np.inf
    s2 = s * s
    n, p = state.n, state.p
    dev = state.ldL2 - state.design.cross.ldW + state.pwrss / s2 + n * (LOG2PI + np.log(s2))
    if REML:
        dev += state.ldRX2 - p * (LOG2PI + np.log(s2))
    return float(dev)


def _dev_vp_model(m: "LinearMixedModel", state: Any, varpar: np.ndarray, REML: bool) -> float:
    """:func:`_dev_vp` at lme4's (θ, σ) for a model's design, on lme4's scale (the state
    computes in the design's internal units, sparselmm.conditioning)."""
    d = m.design
    vp = np.concatenate([d.internal_theta(varpar[:-1]), [varpar[-1] / d.cond.sigma_factor]])
    return _dev_vp(state, vp, REML) + d.objective_offset(REML)


def _richardson(f: Any, x: np.ndarray, hess: bool, d: float = 0.1, r: int = 4) -> np.ndarray:
    """Richardson-extrapolated central differences (numDeriv's scheme, as lmerTest uses it).

    Steps start at ``h = d·|x|`` (``1e-4`` where ``x ≈ 0``) and halve ``r`` times;
    the central-difference tableau is extrapolated in powers of ``h²``.  Returns
    the Hessian of the scalar ``f`` (``hess=True``) or the Jacobian of the
    array-valued ``f`` (last axis = parameters).
    """
    x = np.asarray(x, dtype=float)
    m = len(x)
    h0 = np.where(np.abs(x) < 1.781029e-5, 1e-4, d * np.abs(x))  # numDeriv's zero.tol and eps
    f0 = f(x) if hess else None

    def jac(h: np.ndarray) -> np.ndarray:
        cols = []
        for i in range(m):
            e = np.zeros(m)
            e[i] = h[i]
            cols.append((np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * h[i]))
        return np.stack(cols, axis=-1)

    def hes(h: np.ndarray) -> np.ndarray:
        H = np.zeros((m, m))
        for i in range(m):
            e = np.zeros(m)
            e[i] = h[i]
            H[i, i] = (f(x + e) - 2 * f0 + f(x - e)) / h[i] ** 2
            for j in range(i):
                ei, ej = np.zeros(m), np.zeros(m)
                ei[i], ej[j] = h[i], h[j]
                H[i, j] = H[j, i] = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (
                    4 * h[i] * h[j]
                )
        return H

    g = hes if hess else jac
    tab = [g(h0 / 2**k) for k in range(r)]
    for lev in range(1, r):
        fac = 4.0**lev
        tab = [(fac * tab[k + 1] - tab[k]) / (fac - 1) for k in range(len(tab) - 1)]
    return tab[0]


def _aux_state(m: "LinearMixedModel") -> Any:
    st = getattr(m, "_aux", None)
    if st is None:
        st = m.design.pls()
        m._aux = st
    return st


def _satterthwaite_internal(m: "LinearMixedModel") -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """:func:`satterthwaite`'s ingredients in the design's internal units (sparselmm.conditioning),
    with ``Var(β̂')``: ``(A', J'_i, C')``.  The derivatives are taken in ``(x, σ')`` with
    ``x = s θ'`` (``s``: :meth:`Design.theta_scale` in the engine's units), where every entry is of
    natural size whatever the data's units: numDeriv's steps are relative, but absolute (1e-4)
    below 1.8e-5, where weights scaled by 1e10, or a slope on a covariate of size 1e5, put lme4's
    θ.  The df of a contrast ``L`` on β is that of ``L J`` on β' (invariant under the
    reparametrisation)."""
    cached = getattr(m, "_satt", None)
    if cached is not None:
        return cached
    st = _aux_state(m)
    d = m.design
    s_int = d.internal_theta_scale()
    vp = np.concatenate([s_int * d.internal_theta(m.theta), [m.sigma / d.cond.sigma_factor]])

    def internal(v: np.ndarray) -> np.ndarray:
        return np.concatenate([v[:-1] / s_int, v[-1:]])

    H = _richardson(lambda v: _dev_vp(st, internal(v), m.REML), vp, hess=True)
    H = 0.5 * (H + H.T)
    try:
        A = 2.0 * np.linalg.inv(H)
    except np.linalg.LinAlgError:
        A = 2.0 * np.linalg.pinv(H)
    p = d.p

    def covbeta(v: np.ndarray) -> np.ndarray:
        if not st.update(v[:-1] / s_int):
            return np.full(p * p, np.nan)
        return (v[-1] ** 2 * st.unscaled_vcov()).ravel()

    J = _richardson(covbeta, vp, hess=False)  # (p*p, m)
    jac = [J[:, i].reshape(p, p) for i in range(J.shape[1])]
    st.update(vp[:-1] / s_int)
    C = vp[-1] ** 2 * st.unscaled_vcov()
    m._satt = (A, jac, C)
    return m._satt


def satterthwaite(m: "LinearMixedModel") -> tuple[np.ndarray, list[np.ndarray]]:
    """lmerTest's ingredients: ``A`` = asymptotic covariance of ``(θ, σ)`` and the Jacobian of Var(β̂).

    ``A = 2 H⁻¹`` with ``H`` the Hessian of the deviance in ``(θ, σ)``
    (REML deviance for REML fits); ``J_i = ∂(σ² (R_XᵀR_X)⁻¹)/∂varpar_i``.  Computed in the
    design's internal units and mapped to lme4's (``varpar' = D varpar``, ``β − γ_y = Jβ'``):
    ``A = D⁻¹A'D⁻¹``, ``J_i = J J'_i Jᵀ D_i``.

    Returns
    -------
    A : numpy.ndarray
    jac : list of numpy.ndarray
        One p × p matrix per variance parameter.
    """
    A, jac, _ = _satterthwaite_internal(m)
    d = m.design
    F = d.theta_factor()
    s_int = d.internal_theta_scale()
    D = np.concatenate([s_int * (np.ones(len(m.theta)) if F is None else F), [1.0 / d.cond.sigma_factor]])
    Jm = d.cond.J
    return A / np.outer(D, D), [Jm @ Ji @ Jm.T * Di for Ji, Di in zip(jac, D)]


def satterthwaite_df(m: "LinearMixedModel", L: np.ndarray) -> float:
    """Satterthwaite df of the contrast ``L β`` (one row): ``2 (LCLᵀ)² / (gᵀ A g)``, ``g_i = L J_i Lᵀ``
    (computed for ``L J`` on the internal β', sparselmm.conditioning)."""
    A, jac, C = _satterthwaite_internal(m)
    L = np.asarray(L, dtype=float).ravel() @ m.design.cond.J
    L = L / np.max(np.abs(L)) if np.any(L) else L  # the df do not depend on L's scale, and J's
    var = L @ C @ L
    g = np.array([L @ J @ L for J in jac])
    denom = g @ A @ g
    return float(2 * var**2 / denom) if denom > 0 else np.nan


def coef_table(m: "LinearMixedModel", ddf: str = "satterthwaite") -> pd.DataFrame:
    """Fixed-effects table with tests.

    Parameters
    ----------
    m : LinearMixedModel
    ddf : {"satterthwaite", "kenward-roger", "wald"}
        Denominator degrees of freedom: lmerTest's Satterthwaite (default),
        Kenward–Roger (adjusted standard errors too), or none (z-tests).

    Returns
    -------
    pandas.DataFrame
        ``Estimate, Std. Error, df, t value, Pr(>|t|)`` (or ``z value, Pr(>|z|)`` for ``"wald"``).
    """
    est = m.fixef.to_numpy()
    key = validate.choice(ddf, "ddf", DDF)
    if key == "wald":
        se = m.se.to_numpy()
        z = est / se
        return pd.DataFrame(
            {"Estimate": est, "Std. Error": se, "z value": z, "Pr(>|z|)": 2 * stats.norm.sf(np.abs(z))},
            index=m.fixef.index,
        )
    if key == "satterthwaite":
        se = m.se.to_numpy()
        p = len(est)
        df = np.array([satterthwaite_df(m, np.eye(p)[j]) for j in range(p)])
    else:  # "kenward-roger"
        from sparselmm.stats.kenward_roger import kenward_roger_se_df

        se, df = kenward_roger_se_df(m)
    t = est / se
    return pd.DataFrame(
        {"Estimate": est, "Std. Error": se, "df": df, "t value": t, "Pr(>|t|)": 2 * stats.t.sf(np.abs(t), df)},
        index=m.fixef.index,
    )


# ----------------------------------------------------------------------------------------
# likelihood-ratio tests


def anova(*models: "LinearMixedModel", names: Sequence[str] | None = None, refit: bool = True) -> pd.DataFrame:
    """Likelihood-ratio tests between nested models (lme4's ``anova(m0, m1, ...)``).

    REML fits are refitted by ML first (with a warning saying so), as lme4
    does; the models are ordered by number of parameters and each is tested
    against the one before it.

    Parameters
    ----------
    *models : LinearMixedModel
        Two or more models fitted to the same observations.
    names : sequence of str, optional
        Row labels (default ``model1``, ``model2``, ... in the order given).
    refit : bool
        Refit REML fits by ML (lme4's default); if false, their REML criteria are compared.

    Returns
    -------
    pandas.DataFrame
        Columns ``npar, AIC, BIC, logLik, deviance, Chisq, Df, Pr(>Chisq)``;
        ``attrs["refitted_ML"]`` tells whether a refit happened.
    """
    from sparselmm.model import LinearMixedModel

    for i, mi in enumerate(models, 1):
        validate.instance(mi, f"anova's argument {i}", LinearMixedModel, "a fitted LinearMixedModel")
    refit = validate.flag(refit, "refit")
    if len(models) < 2:
        raise ArgumentError("anova needs at least two models to compare")
    if names is not None and (isinstance(names, str) or not all(isinstance(v, str) for v in names)):
        raise ArgumentError(f"names must be a sequence of strings, one per model, got {names!r}")
    names = list(names) if names is not None else [f"model{i + 1}" for i in range(len(models))]
    if len(names) != len(models):
        raise ArgumentError(f"{len(names)} names for {len(models)} models")
    ns = {m.nobs for m in models}
    if len(ns) > 1:
        raise ModelSpecError(
            f"models were not all fitted to the same number of observations ({sorted(ns)}); "
            "likelihood-ratio tests need the same data"
        )
    for i, mi in enumerate(models[1:], 2):
        _check_same_data(models[0], mi, names[0], names[i - 1])
    refitted = False
    if refit and any(m.REML for m in models):
        warnings.warn("refitting model(s) with ML (instead of REML)", SparseLMMWarning, stacklevel=2)
        models = tuple(m.refit(REML=False) if m.REML else m for m in models)
        refitted = True
    order = sorted(range(len(models)), key=lambda i: models[i].npar)
    rows = []
    prev = None
    for i in order:
        m = models[i]
        dev = m.deviance
        row = {"npar": m.npar, "AIC": m.aic, "BIC": m.bic, "logLik": m.loglik, "deviance": dev}
        if prev is None:
            row.update({"Chisq": np.nan, "Df": np.nan, "Pr(>Chisq)": np.nan})
        else:
            chisq = max(prev.deviance - dev, 0.0)
            ddf = m.npar - prev.npar
            row.update(
                {"Chisq": chisq, "Df": ddf, "Pr(>Chisq)": stats.chi2.sf(chisq, ddf) if ddf > 0 else np.nan}
            )
        rows.append(row)
        prev = m
    out = pd.DataFrame(rows, index=[names[i] for i in order])
    out["Df"] = out["Df"].astype("Int64")
    out.attrs["refitted_ML"] = refitted
    return out


def _check_same_data(a: "LinearMixedModel", b: "LinearMixedModel", na: str, nb: str) -> None:
    """Refuse to compare models that were not fitted to the same response and data.

    In memory: the same rows (by index label), the same response values, the same prior
    weights, and the same values of every grouping factor and fixed-effect column the two
    share by name.  From Dask: the same data (the collection's name), response and weights.
    """
    da, db = a.design, b.design
    dask_a, dask_b = hasattr(da, "source"), hasattr(db, "source")
    what = f"{na} and {nb}"
    if dask_a or dask_b:
        if not (dask_a and dask_b):
            raise ModelSpecError(f"{what}: one was fitted from a Dask DataFrame, the other in memory; fit both the same way")
        same = (da.data_name is not None and da.data_name == db.data_name
                and da.formula.response.replace(" ", "") == db.formula.response.replace(" ", "")
                and da.builder.weights == db.builder.weights)
        if not same:
            raise ModelSpecError(f"{what} were not fitted to the same data, response and weights")
        return
    ia, ib = da.row_index, db.row_index
    if ia.equals(ib):
        pos = np.arange(len(ib))
    else:
        pos = ib.get_indexer(ia) if not (ia.has_duplicates or ib.has_duplicates) else np.full(len(ia), -1)
        if (pos < 0).any():
            raise ModelSpecError(f"{what} were not fitted to the same rows of data (their row labels differ)")
    if not np.array_equal(da.y, db.y[pos]):
        raise ModelSpecError(
            f"{what} have different responses ({da.formula.response!r} and {db.formula.response!r}, or the same "
            "column with other values); likelihood-ratio tests compare models of one response"
        )
    wa, wb = da.weights, db.weights
    if (wa is None) != (wb is None) or (wa is not None and not np.array_equal(wa, wb[pos])):
        raise ModelSpecError(f"{what} have different prior weights; their likelihoods cannot be compared")
    ga = {t.group: t for t in da.terms}
    for t in db.terms:
        s = ga.get(t.group)
        if s is not None and not np.array_equal(np.asarray(s.levels)[s.codes], np.asarray(t.levels)[t.codes][pos]):
            raise ModelSpecError(f"{what} have different values of grouping factor {t.group!r}")
    xb = {nm: j for j, nm in enumerate(db.X_names)}
    for j, nm in enumerate(da.X_names):
        k = xb.get(nm)
        if k is not None and not np.array_equal(da.X[:, j], db.X[pos, k]):
            raise ModelSpecError(f"{what} have different values of the fixed-effect column {nm!r}")


# ----------------------------------------------------------------------------------------
# intervals


def varpar_names(m: "LinearMixedModel") -> list[str]:
    """lme4's names of the variance parameters: ``.sig01, .sig02, ..., .sigma``."""
    n = len(m.theta)
    return [f".sig{i + 1:02d}" for i in range(n)] + [".sigma"]


def _sdcor_from_theta(m: "LinearMixedModel", theta: np.ndarray, sigma: float) -> np.ndarray:
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


def _theta_from_sdcor(m: "LinearMixedModel", sdcor: np.ndarray, sigma: float) -> np.ndarray | None:
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
            except np.linalg.LinAlgError:
                return None
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


def _profile_ml(m: "LinearMixedModel") -> "LinearMixedModel":
    return m.refit(REML=False) if m.REML else m


def _dev_sdcor(st: Any, mm: "LinearMixedModel", vec: np.ndarray) -> float:
    """ML deviance at (sd/cor..., σ) with β profiled."""
    sigma = vec[-1]
    if sigma <= 0:
        return np.inf
    th = _theta_from_sdcor(mm, vec[:-1], sigma)
    if th is None:
        return np.inf
    return _dev_vp_model(mm, st, np.concatenate([th, [sigma]]), REML=False)


def _sdcor_bounds(mm: "LinearMixedModel") -> list[tuple[float, float]]:
    b = []
    for t in mm.design.terms:
        for j in range(t.k):
            for i in range(j, t.k):
                b.append((0.0, None) if i == j else (-1.0, 1.0))
    return b + [(1e-12, None)]


def _profile_intervals(m: "LinearMixedModel", level: float) -> pd.DataFrame:
    mm = _profile_ml(m)
    st = mm.design.pls()
    cut = float(np.sqrt(stats.chi2.ppf(level, 1)))
    dev0 = mm.deviance
    vec0 = np.concatenate([_sdcor_from_theta(mm, mm.theta, mm.sigma), [mm.sigma]])
    bounds = _sdcor_bounds(mm)
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
            return _dev_sdcor(st, mm, full)

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
    for j, name in enumerate(names):
        lo_b, hi_b = bounds[j]
        v0 = vec0[j]
        scale = max(abs(v0), 1e-2 * unit[j])
        step = 0.1 if hi_b == 1.0 else 0.25 * scale  # correlations live in [-1, 1]
        rows[name] = _profile_ends(zeta_fn(j), v0, cut, step, 1.6, lo_b, hi_b, 60, 1e-10 * unit[j], name, unreached)
    # fixed effects: profile the deviance over θ with β_j fixed
    d = mm.design
    for j, name in enumerate(d.X_names):
        bhat, se = mm.fixef.iloc[j], mm.se.iloc[j]

        def zb(v: float, j: int = j, bhat: float = bhat) -> float:
            dv = _fixed_profile_dev(mm, j, v)
            return float(np.sign(v - bhat) * np.sqrt(max(dv - dev0, 0.0)))

        rows[name] = _profile_ends(zb, bhat, cut, cut * se, 1.0, None, None, 30,
                                   1e-10 * max(abs(bhat), se), name, unreached)
    if unreached:
        warnings.warn(
            f"the profile of {', '.join(unreached)} does not reach the confidence level's cut-off within its "
            "search range: that end of the interval is reported as NaN",
            SparseLMMWarning,
            stacklevel=3,
        )
    pct = [f"{100 * (1 - level) / 2:.1f} %", f"{100 * (1 + level) / 2:.1f} %"]
    return pd.DataFrame.from_dict(rows, orient="index", columns=pct)


def _profile_ends(
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


def _fixed_profile_dev(mm: "LinearMixedModel", j: int, value: float) -> float:
    """ML deviance minimised over θ with β_j held at ``value`` (lme4's scale).

    In the engine's units ``β = γ_y + J β'`` (sparselmm.conditioning), so ``β_j = value`` is
    the linear constraint ``ℓᵀβ' = v`` with ``ℓ = J_j·`` and ``v = value − γ_y,j``.  With
    ``β' = ℓ v/|ℓ|² + N γ`` (N: an orthonormal basis of ℓ's complement) the constrained model
    is the design with columns ``X'N`` and offset ``X'ℓ v/|ℓ|²``, whose cross-products follow
    from the design's (nothing touches the n rows).
    """
    from sparselmm.fitting.optimize import minimize_theta

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
    cross = CrossProducts(
        ZtZ=cp.ZtZ,
        ZtX=cp.ZtX @ N,
        Zty=cp.Zty - Zb0,
        XtX=N.T @ cp.XtX @ N,
        Xty=N.T @ (cp.Xty - XtXb0),
        yty=float(cp.yty - 2.0 * b0 @ cp.Xty + b0 @ XtXb0),
        n=cp.n,
        ldW=cp.ldW,
    )
    keep = [i for i in range(d.p) if i != j]
    d2 = replace(d, X=d.X[:, keep], X_names=[d.X_names[i] for i in keep], cross=cross)
    st = d2.pls()
    off = d.objective_offset(False)  # 2n log s_y: the same with one column fewer
    to_int = d.internal_theta
    f = lambda th: st.objective(to_int(th), REML=False) + off  # noqa: E731
    opt = minimize_theta(f, mm.theta, d.lower, d.upper, optimizer="nelder_mead", check=False, restart_edge=False)
    return opt.objective


def confint(
    m: "LinearMixedModel",
    method: str = "profile",
    level: float = 0.95,
    *,
    nsim: int = 500,
    seed: int | None = None,
) -> pd.DataFrame:
    """Confidence intervals for the variance parameters and fixed effects (lme4's ``confint``).

    Parameters
    ----------
    m : LinearMixedModel
    method : {"profile", "wald", "boot"}
        Profile likelihood (by ML, as lme4's ``profile`` refits REML fits),
        Wald (fixed effects only; variance rows are NaN), or parametric
        bootstrap percentile intervals.
    level : float
        Confidence level.
    nsim, seed : int
        Bootstrap replicates and seed.

    Returns
    -------
    pandas.DataFrame
        Rows ``.sig01, ..., .sigma`` then the fixed effects; columns ``"2.5 %"``, ``"97.5 %"``.
    """
    method = validate.choice(method, "method", {"profile": "profile", "wald": "wald", "boot": "boot", "bootstrap": "boot"})
    level = validate.probability(level, "level")
    nsim = validate.count(nsim, "nsim")
    seed = validate.seed(seed)
    pct = [f"{100 * (1 - level) / 2:.1f} %", f"{100 * (1 + level) / 2:.1f} %"]
    if method == "wald":
        z = stats.norm.ppf((1 + level) / 2)
        fe, se = m.fixef, m.se
        vp = pd.DataFrame(np.nan, index=varpar_names(m), columns=pct)
        fx = pd.DataFrame({pct[0]: fe - z * se, pct[1]: fe + z * se})
        return pd.concat([vp, fx])
    if method == "profile":
        return _profile_intervals(m, level)
    if method == "boot":
        sims = simulate(m, nsim=nsim, seed=seed)
        rows = []
        for c in sims.columns:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mb = m.refit(sims[c].to_numpy())
            rows.append(np.concatenate([_sdcor_from_theta(mb, mb.theta, mb.sigma), [mb.sigma], mb.fixef.to_numpy()]))
        arr = np.array(rows)
        lo = np.quantile(arr, (1 - level) / 2, axis=0)
        hi = np.quantile(arr, (1 + level) / 2, axis=0)
        return pd.DataFrame({pct[0]: lo, pct[1]: hi}, index=varpar_names(m) + list(m.fixef.index))
    raise SparseLMMError(f"internal error: confint method {method!r}")  # pragma: no cover - checked above


# ----------------------------------------------------------------------------------------
# prediction and simulation


def no_random_effects(re_form: Any) -> bool:
    """Whether ``re_form`` asks for predictions without the random effects (lme4's ``re.form``:
    ``None``/``"all"`` keeps them, ``"NA"``/``"~0"``/``NA``/``False`` leaves them out).

    Raises
    ------
    ArgumentError
        For any other value.
    """
    if re_form is None:
        return False
    if isinstance(re_form, str):
        s = re_form.replace(" ", "").lower()
        if s in ("all", ""):
            return False
        if s in ("na", "~0", "0", "none"):
            return True
        raise ArgumentError(f"re_form must be None/'all' (all random effects) or 'NA'/'~0' (none), got {re_form!r}")
    if re_form is False:
        return True
    if isinstance(re_form, float) and np.isnan(re_form):
        return True
    raise ArgumentError(f"re_form must be None/'all' (all random effects) or 'NA'/'~0' (none), got {re_form!r}")


def predict(
    m: "LinearMixedModel",
    newdata: pd.DataFrame | None = None,
    re_form: Any = None,
    allow_new_levels: bool = False,
    offset: Any = None,
) -> pd.Series:
    """Predictions ``Xβ̂ (+ Zb̂) (+ offset)`` for new data (lme4's ``predict.merMod``).

    Factor levels and grouping levels of ``newdata`` are matched to the fit's by value,
    whatever the dtype (a float, boolean or datetime grouping column finds its levels).

    Parameters
    ----------
    m : LinearMixedModel
    newdata : pandas.DataFrame, optional
        Default: the fitted values of the data used.
    re_form : None, "all", "NA" or "~0"
        ``None``/``"all"`` include every random effect (lme4's ``re.form=NULL``);
        ``"NA"``/``"~0"`` give population-level predictions (``re.form=NA``).
    allow_new_levels : bool
        Levels not seen in the fit (and missing grouping values) contribute 0 (the
        population value) instead of raising, as lme4's ``allow.new.levels``.
    offset : array-like or str, optional
        The offset of ``newdata``'s rows (an array or Series aligned on its index, or a
        column name).  Default: a fit whose offset was a column reads that column of
        ``newdata``; a fit whose offset was an array needs this argument.

    Returns
    -------
    pandas.Series
    """
    from sparselmm.spec.terms import level_codes, level_labels

    d = m.design
    no_re = no_random_effects(re_form)
    allow_new_levels = validate.flag(allow_new_levels, "allow_new_levels")
    if newdata is None:
        if offset is not None:
            raise ArgumentError("offset= goes with newdata; the data of the fit use the fit's own offset")
        eta = d.X @ m.fixef.to_numpy()
        if d.offset is not None:
            eta = eta + d.offset
        if not no_re:
            eta = eta + d.Zt.T @ m._b
        return pd.Series(eta, index=d.row_index, name="predicted")
    if not isinstance(newdata, pd.DataFrame):
        raise DataError(f"newdata must be a pandas DataFrame, got {type(newdata).__name__}")
    raw = newdata  # the columns as given: an offset column is read from them, as the fit read its own
    if any(not isinstance(c, str) for c in raw.columns):  # non-string labels by their str(), as design() reads them
        raw = raw.set_axis([str(c) for c in raw.columns], axis=1)
    nd = raw.copy(deep=False)  # the model's columns recoded below
    groups = _group_columns(d)
    # the columns the model uses, read as the design read them (an object column of numbers is
    # numeric, one of booleans logical; complex numbers refused)
    from sparselmm.frame.modelframe import _real_column
    from sparselmm.spec.vocabulary import variables

    pf = d.formula
    texts = [f.text for f in pf.fragments] or [pf.response, pf.fixed, *(b.lhs for b in pf.bars)]
    for c in dict.fromkeys([v for t in texts for v in variables(t)] + sorted(groups)):
        if c in nd.columns:
            nd[c] = _real_column(nd[c], c)
    for c, cats in d.factor_categories.items():
        if c in nd.columns and c not in groups:
            codes = level_codes(nd[c], cats, c)
            if (codes == -2).any():
                rows = list(nd.index[codes == -2][:5])
                raise DataError(f"newdata column {c!r} has missing values (rows {rows}); a prediction needs every level")
            if (codes < 0).any():
                bad = sorted({str(v) for v in nd[c][codes < 0]})[:5]
                raise DataError(
                    f"newdata column {c!r} has level(s) {bad} that the fit did not see "
                    f"(levels: {d.factor_levels.get(c, list(map(str, cats)))[:10]})"
                )
            nd[c] = pd.Categorical.from_codes(codes, categories=cats)
    Xn = _new_matrix(d.fixed_spec, nd, "the fixed-effects matrix")[:, d.fixed_keep]
    eta = Xn @ m.fixef.to_numpy()
    off = _newdata_offset(d, raw, offset)
    if off is not None:
        eta = eta + off
    if not no_re:
        for t, eff in zip(d.terms, m._term_effects()):
            missing = [f for f in t.bar.factors if f not in nd.columns]
            if missing:
                raise DataError(f"newdata lacks grouping column(s) {missing} of term {t.bar.text!r}")
            codes = [level_codes(nd[f], cats, f) for f, cats in zip(t.bar.factors, t.categories)]
            if len(codes) == 1:
                pos = codes[0].copy()
            else:  # an interaction a:b: the fit's label of each row's combination
                names = [level_labels(cats) for cats in t.categories]
                labels = [":".join(nm[c] for nm, c in zip(names, row)) if min(row) >= 0 else None
                          for row in zip(*codes)]
                pos = t.levels.get_indexer(pd.Index(labels, dtype=object))
                pos[np.any(np.array(codes) == -2, axis=0)] = -2
            new = pos < 0
            if new.any() and not allow_new_levels:
                na = pos == -2
                if na.any():
                    rows = list(nd.index[na][:5])
                    raise DataError(
                        f"newdata has missing values in grouping factor {t.group!r} (rows {rows}); use "
                        "allow_new_levels=True to predict them at the population level"
                    )
                bad = sorted({":".join(str(nd[f].iloc[i]) for f in t.bar.factors) for i in np.flatnonzero(new)[:50]})[:5]
                raise DataError(
                    f"new level(s) {bad} of grouping factor {t.group!r} not seen in the fit; "
                    "use allow_new_levels=True to predict them at the population level"
                )
            Zn = np.ones((len(nd), 1)) if t.spec is None else _new_matrix(t.spec, nd, f"the columns of term {t.bar.text!r}")
            B = eff.to_numpy()
            contrib = np.einsum("ij,ij->i", Zn, B[np.where(new, 0, pos)])
            eta = eta + np.where(new, 0.0, contrib)
    return pd.Series(eta, index=newdata.index, name="predicted")


def _new_matrix(spec: Any, nd: pd.DataFrame, what: str) -> np.ndarray:
    """A model matrix of new data from the fit's spec (formulaic's errors as a DataError)."""
    try:
        with np.errstate(all="ignore"):
            return np.asarray(spec.get_model_matrix(nd, na_action="raise").to_numpy(dtype=float))
    except SparseLMMError:
        raise
    except Exception as exc:
        raise DataError(f"cannot build {what} for newdata: {exc}") from exc


def _newdata_offset(d: Any, nd: pd.DataFrame, offset: Any) -> np.ndarray | None:
    """The offset of new data: the ``offset`` argument (aligned on ``nd``'s index), else the fit's
    offset column read from ``nd``; a fit with an array offset needs the argument."""
    from sparselmm.frame.modelframe import vector_argument

    if offset is not None:
        return vector_argument(offset, nd, "offset")
    name = getattr(d, "offset_name", None)
    if name is not None:
        if name not in nd.columns:
            raise DataError(f"newdata lacks the offset column {name!r} of the fit; add it or pass offset=")
        return vector_argument(name, nd, "offset")
    if d.offset is not None:
        raise DataError(
            "the model was fitted with an offset given as an array: pass offset= (one value per row of "
            "newdata) to predict for new data"
        )
    return None


def _group_columns(d: Any) -> set[str]:
    return {f for t in d.terms for f in t.bar.factors}


def simulate(m: "LinearMixedModel", nsim: int = 1, seed: int | None = None) -> pd.DataFrame:
    """Simulate responses from the fitted model (lme4's ``simulate``, unconditional on b).

    ``y* = Xβ̂ + Z Λ(θ̂) σ̂ u* + σ̂ ε / √w (+ offset)``, ``u*, ε ~ N(0, I)``.

    Parameters
    ----------
    nsim : int
        Number of simulated responses.
    seed : int, optional
        Seed of :func:`numpy.random.default_rng`.

    Returns
    -------
    pandas.DataFrame
        n × nsim, columns ``sim_1, ...``.
    """
    nsim = validate.count(nsim, "nsim")
    rng = np.random.default_rng(validate.seed(seed))
    d = m.design
    st = _aux_state(m)
    n, q = d.n, d.q
    mu = d.X @ m.fixef.to_numpy()
    if d.offset is not None:
        mu = mu + d.offset
    U = rng.standard_normal((q, nsim))
    B = st.lambda_times(m.theta, U) * m.sigma
    E = rng.standard_normal((n, nsim)) * m.sigma
    if d.weights is not None:
        E = E / np.sqrt(d.weights)[:, None]
    Y = mu[:, None] + np.asarray(d.Zt.T @ B) + E
    return pd.DataFrame(Y, index=d.row_index, columns=[f"sim_{i + 1}" for i in range(nsim)])
