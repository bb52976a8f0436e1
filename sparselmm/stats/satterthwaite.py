"""Satterthwaite's denominator degrees of freedom as lmerTest computes them.

The deviance in ``(θ, σ)`` (lmerTest's ``devfun_vp``), its Hessian and the Jacobian of
``Var(β̂)``, taken in the engine's units and mapped to lme4's (see ``docs/architecture.md``,
"Units").  The σ row of the Hessian is in closed form; the θθ block and the Jacobian come from
one Richardson tableau (numDeriv's steps) over θ alone: of the analytic gradient where the
backend gives it (:class:`~sparselmm.backends.gradient.Gradient`), else of the deviance, whose
points also give the Jacobian — a fraction of the factorisations of lmerTest's two tableaux
over ``(θ, σ)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from sparselmm.backends.base import LOG2PI
from sparselmm.backends.gradient import Gradient
from sparselmm.progress import Progress, show_progress

if TYPE_CHECKING:  # pragma: no cover
    from sparselmm.fitting.fitted import FittedModel

__all__ = ["satterthwaite", "satterthwaite_df", "satterthwaite_se_df", "deviance_at_varpar", "aux_state"]

#: levels of the Richardson tableau of the deviance (numDeriv's r; lmerTest uses 4)
_LEVELS = 4
#: the tableau of the analytic gradient: an exact first derivative needs no tableau as long as a
#: second difference's; two levels from steps of 1% (the truncation error ~(h/2)⁴ ≈ 1e-9
#: relative, the gradient's rounding ~1e-13/h) estimate the same Hessian as lmerTest's to its own
#: accuracy at 4 gradients per θ instead of 8 (tests/test_lmertest.py, 1e-5 on every df)
_GRADIENT_LEVELS = 2
_GRADIENT_STEP = 0.01


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


def _first_steps(x: np.ndarray, d: float = 0.1) -> np.ndarray:
    """numDeriv's first steps: ``d·|x|``, and ``1e-4`` where ``x`` is near 0 (its zero.tol)."""
    return np.where(np.abs(x) < 1.781029e-5, 1e-4, d * np.abs(x))


def _extrapolate(tab: list[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
    """Richardson's extrapolation in powers of ``h²`` of a tableau of estimates (one tuple of
    arrays per step size, the step halving from one to the next), as numDeriv's."""
    for lev in range(1, len(tab)):
        fac = 4.0**lev
        tab = [tuple((fac * b - a) / (fac - 1) for a, b in zip(tab[k], tab[k + 1])) for k in range(len(tab) - 1)]
    return tab[0]


def _richardson(f: Any, x: np.ndarray, levels: int = _LEVELS, d: float = 0.1) -> np.ndarray:
    """The Jacobian of the array-valued ``f`` at ``x`` (last axis = parameters) by
    Richardson-extrapolated central differences (numDeriv's scheme, as lmerTest uses it): steps
    from :func:`_first_steps` (``d·|x|``), halved ``levels - 1`` times, extrapolated by
    :func:`_extrapolate`."""
    x = np.asarray(x, dtype=float)
    m = len(x)

    def jac(h: np.ndarray) -> np.ndarray:
        cols = []
        for i in range(m):
            e = np.zeros(m)
            e[i] = h[i]
            cols.append((np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * h[i]))
        return np.stack(cols, axis=-1)

    h0 = _first_steps(x, d)
    return _extrapolate([(jac(h0 / 2**k),) for k in range(levels)])[0]


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
    grad = Gradient(st)
    if grad.available:
        return _from_gradient(m, st, grad, vp, s_int)
    return _from_deviance(m, st, vp, s_int)


def _sigma_rows(st: Any, REML: bool, sig: float, dpw: np.ndarray) -> tuple[np.ndarray, float]:
    """The σ row of the Hessian of ``dev = ldL2 + pwrss/σ² + n_e log(2πσ²) (+ ldRX2)`` in closed
    form (``n_e = n - p`` for REML, else n): ``∂²/∂θ∂σ = -2 (∂pwrss/∂θ)/σ³`` (θ in the scaled x,
    ``dpw`` already ∂/∂x) and ``∂²/∂σ² = 6 pwrss/σ⁴ - 2 n_e/σ²``, at the state's θ."""
    n_e = st.n - (st.p if REML else 0)
    return -2.0 * dpw / sig**3, 6.0 * st.pwrss / sig**4 - 2.0 * n_e / sig**2


def _assemble(Hth: np.ndarray, Hts: np.ndarray, Hss: float, dU: list[np.ndarray], U: np.ndarray,
              sig: float) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    m_th = Hth.shape[0]
    H = np.zeros((m_th + 1, m_th + 1))
    H[:m_th, :m_th] = 0.5 * (Hth + Hth.T)
    H[:m_th, -1] = H[-1, :m_th] = Hts
    H[-1, -1] = Hss
    try:
        A = 2.0 * np.linalg.inv(H)
    except np.linalg.LinAlgError:
        A = 2.0 * np.linalg.pinv(H)
    return A, [sig**2 * J for J in dU] + [2.0 * sig * U], sig**2 * U


def _from_deviance(
    m: "FittedModel", st: Any, vp: np.ndarray, s_int: np.ndarray
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """:func:`_satterthwaite_parts` from the deviance alone (no analytic gradient on this backend):
    lmerTest's Richardson tableau (numDeriv's steps) over θ only, at σ̂, its points also giving
    ``∂pwrss/∂θ`` and the Jacobian of ``(R_XᵀR_X)⁻¹`` (the same central differences); the σ row in
    closed form (:func:`_sigma_rows`): 130 factorisations for four θ, where lmerTest's tableau
    over ``(θ, σ)`` and its second one for the Jacobian take 240."""
    x0, sig = vp[:-1], float(vp[-1])
    m_th, p = len(x0), st.p
    progress = Progress("Satterthwaite df: factorisation", _LEVELS * m_th * (2 * m_th) + 2, show_progress(m))

    def at(x: np.ndarray) -> tuple[float, float, np.ndarray]:
        progress.step()
        dev = _dev_vp(st, np.concatenate([x / s_int, [sig]]), m.REML)
        if not np.isfinite(dev):
            return np.inf, np.nan, np.full((p, p), np.nan)
        return dev, st.pwrss, st.unscaled_vcov()

    f0 = at(x0)[0]
    h0 = _first_steps(x0)
    levels = []
    for k in range(_LEVELS):
        h = h0 / 2**k
        H = np.zeros((m_th, m_th))
        gpw = np.zeros(m_th)
        dU = np.zeros((m_th, p, p))
        for i in range(m_th):
            e = np.zeros(m_th)
            e[i] = h[i]
            (fp, pp, Up), (fm, pm, Um) = at(x0 + e), at(x0 - e)
            H[i, i] = (fp - 2 * f0 + fm) / h[i] ** 2
            gpw[i] = (pp - pm) / (2 * h[i])
            dU[i] = (Up - Um) / (2 * h[i])
            for j in range(i):
                ej = np.zeros(m_th)
                ej[j] = h[j]
                H[i, j] = H[j, i] = (at(x0 + e + ej)[0] - at(x0 + e - ej)[0] - at(x0 - e + ej)[0] + at(x0 - e - ej)[0]) / (
                    4 * h[i] * h[j]
                )
        levels.append((H, gpw, dU))
    Hth, gpw, dU = _extrapolate(levels)
    at(x0)  # the state back at the optimum
    progress.close()
    Hts, Hss = _sigma_rows(st, m.REML, sig, gpw)
    return _assemble(Hth, Hts, Hss, list(dU), st.unscaled_vcov(), sig)


def _from_gradient(
    m: "FittedModel", st: Any, grad: Gradient, vp: np.ndarray, s_int: np.ndarray
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """:func:`_satterthwaite_parts` from the analytic gradient of the deviance's pieces
    (:class:`~sparselmm.backends.gradient.Gradient`): the θθ block of the Hessian as the Jacobian
    of the gradient at fixed σ, and the Jacobian of ``(R_XᵀR_X)⁻¹``, both by one short Richardson
    tableau over θ alone (``_GRADIENT_LEVELS``, one factorisation per step for both: 4 per θ);
    the σ row in closed form (:func:`_sigma_rows`)."""
    m_th = len(vp) - 1
    sig = float(vp[-1])
    p = st.p

    progress = Progress("Satterthwaite df: gradient", 2 * _GRADIENT_LEVELS * m_th + 1, show_progress(m))

    def gradient_and_vcov(x: np.ndarray) -> np.ndarray:
        progress.step()
        parts = grad.parts(x / s_int, m.REML)
        if parts is None:
            return np.full(m_th + p * p, np.nan)
        dldL, dpw, dldRX = parts
        g = (dldL + dpw / sig**2 + (dldRX if m.REML else 0.0)) / s_int  # d/dx, x = s θ'
        return np.concatenate([g, st.unscaled_vcov().ravel()])

    Jc = _richardson(gradient_and_vcov, vp[:-1], _GRADIENT_LEVELS, _GRADIENT_STEP)  # (m_th + p², m_th)
    progress.close()
    parts = grad.parts(vp[:-1] / s_int, m.REML)
    if parts is None:  # pragma: no cover - the optimum factorised
        raise ValueError("the factorisation failed at the optimum")
    Hts, Hss = _sigma_rows(st, m.REML, sig, parts[1] / s_int)
    dU = [Jc[m_th:, i].reshape(p, p) for i in range(m_th)]
    return _assemble(Jc[:m_th], Hts, Hss, dU, st.unscaled_vcov(), sig)


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


def satterthwaite_se_df(m: "FittedModel", L: np.ndarray) -> tuple[float, float]:
    """The standard error of ``L β̂`` and its Satterthwaite df ``2 (LCLᵀ)² / (gᵀ A g)``,
    ``g_i = L J_i Lᵀ``, for one row ``L`` (computed for ``L J`` on the internal β',
    sparselmm.frame.conditioning, scaled to a largest entry of 1: the df do not depend on L's
    scale, nor on J's, and the SE is scaled back after its square root, so a column of size
    1e-200 does not overflow)."""
    A, jac, C = satterthwaite_internal(m)
    Li = np.asarray(L, dtype=float).ravel() @ m.design.cond.J
    scale = float(np.max(np.abs(Li))) if np.any(Li) else 1.0
    u = Li / scale
    var = float(u @ C @ u)
    g = np.array([u @ J @ u for J in jac])
    denom = float(g @ A @ g)
    return float(np.sqrt(var) * scale), (2 * var**2 / denom if denom > 0 else np.nan)


def satterthwaite_df(m: "FittedModel", L: np.ndarray) -> float:
    """Satterthwaite df of the contrast ``L β`` (one row; see :func:`satterthwaite_se_df`)."""
    return satterthwaite_se_df(m, L)[1]
