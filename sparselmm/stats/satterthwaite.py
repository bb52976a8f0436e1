"""Satterthwaite's denominator degrees of freedom as lmerTest computes them.

The deviance in ``(θ, σ)`` (lmerTest's ``devfun_vp``), its Hessian and the Jacobian of
``Var(β̂)`` by Richardson extrapolation (numDeriv's ``hessian``/``jacobian``), taken in the
engine's units and mapped to lme4's (see ``docs/architecture.md``, "Units").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from sparselmm.backends.base import LOG2PI

if TYPE_CHECKING:  # pragma: no cover
    from sparselmm.fitting.fitted import FittedModel

__all__ = ["satterthwaite", "satterthwaite_df", "deviance_at_varpar", "aux_state"]


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


def deviance_at_varpar(m: "FittedModel", state: Any, varpar: np.ndarray, REML: bool) -> float:
    """:func:`_dev_vp` at lme4's (θ, σ) for a model's design, on lme4's scale (the state
    computes in the design's internal units, sparselmm.frame.conditioning)."""
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


def aux_state(m: "FittedModel") -> Any:
    """A second PLS state of the model's design, for evaluations away from the optimum (the
    model's own state stays at θ̂); made once per model."""
    return m.memo("aux_state", m.design.pls)


def satterthwaite_internal(m: "FittedModel") -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """:func:`satterthwaite`'s ingredients in the design's internal units (sparselmm.frame.conditioning),
    with ``Var(β̂')``: ``(A', J'_i, C')``.  The derivatives are taken in ``(x, σ')`` with
    ``x = s θ'`` (``s``: :meth:`Design.theta_scale` in the engine's units), where every entry is of
    natural size whatever the data's units: numDeriv's steps are relative, but absolute (1e-4)
    below 1.8e-5, where weights scaled by 1e10, or a slope on a covariate of size 1e5, put lme4's
    θ.  The df of a contrast ``L`` on β is that of ``L J`` on β' (invariant under the
    reparametrisation)."""
    return m.memo("satterthwaite", lambda: _satterthwaite_parts(m))


def _satterthwaite_parts(m: "FittedModel") -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    st = aux_state(m)
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
    return A, jac, C


def satterthwaite(m: "FittedModel") -> tuple[np.ndarray, list[np.ndarray]]:
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
    A, jac, _ = satterthwaite_internal(m)
    d = m.design
    F = d.theta_factor()
    s_int = d.internal_theta_scale()
    D = np.concatenate([s_int * (np.ones(len(m.theta)) if F is None else F), [1.0 / d.cond.sigma_factor]])
    Jm = d.cond.J
    return A / np.outer(D, D), [Jm @ Ji @ Jm.T * Di for Ji, Di in zip(jac, D)]


def satterthwaite_df(m: "FittedModel", L: np.ndarray) -> float:
    """Satterthwaite df of the contrast ``L β`` (one row): ``2 (LCLᵀ)² / (gᵀ A g)``, ``g_i = L J_i Lᵀ``
    (computed for ``L J`` on the internal β', sparselmm.frame.conditioning)."""
    A, jac, C = satterthwaite_internal(m)
    L = np.asarray(L, dtype=float).ravel() @ m.design.cond.J
    L = L / np.max(np.abs(L)) if np.any(L) else L  # the df do not depend on L's scale, and J's
    var = L @ C @ L
    g = np.array([L @ J @ L for J in jac])
    denom = g @ A @ g
    return float(2 * var**2 / denom) if denom > 0 else np.nan
