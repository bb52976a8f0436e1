"""Finite differences of the profiled objective and the Newton steps on them.

The convergence check (:func:`check_convergence`: the gradient and Hessian at a point by finite
differences, or by differences of an analytic gradient, and the Newton decrement), the projected
Newton step and the chord step on a known Hessian that the Newton finish of
:func:`~sparselmm.fitting.optimize.minimize_theta` takes, and the Newton search on a
single-precision objective (:func:`run_newton_search`) that replaces the derivative-free search of
two-θ crossed designs.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from sparselmm.fitting.summary import Counted, OptSummary

__all__ = ["check_convergence", "newton_point", "chord_step", "run_newton_search", "NEWTON_SEARCH_STEP", "NEWTON_SEARCH_ROUNDING"]


def _forward_steps(x: np.ndarray, upper: np.ndarray | None) -> np.ndarray:
    """The finite-difference step of each entry, ``1e-4 · max(|x|, 0.1)``: forward, or backward
    where a finite upper bound is within it."""
    h = 1e-4 * np.maximum(np.abs(x), 0.1)
    return h if upper is None else np.where(x + h > upper, -h, h)


def _fd_derivatives(
    f: Callable[[np.ndarray], float],
    x: np.ndarray,
    lower: np.ndarray,
    f0: float,
    hessian: np.ndarray | None = None,
    upper: np.ndarray | None = None,
    rel: float = 1e-4,
    mixed: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Finite-difference gradient and Hessian, one-sided away from a bound; each entry's
    step ``rel · max(|xᵢ|, 0.1)``.  With ``mixed`` (a Hessian), its off-diagonal entries are
    taken instead of the mixed second differences (``m(m-1)/2`` evaluations fewer).

    The gradient and the Hessian's diagonal are central differences (``2m``
    evaluations); each off-diagonal entry takes one more evaluation,
    ``(f(x+hᵢ+hⱼ) - f(x+hᵢ) - f(x+hⱼ) + f(x)) / hᵢhⱼ`` (``m(m-1)/2`` in all).

    With ``hessian`` given, only the gradient is computed, by forward differences
    corrected by that Hessian's curvature, ``(f(x+hᵢ) - f(x))/hᵢ - Hᵢᵢhᵢ/2``: the
    same ``O(h²)`` error as a central difference for ``m`` evaluations instead of
    ``2m``; that Hessian is returned with it.
    """
    m = len(x)
    h = rel * np.maximum(np.abs(x), 0.1)
    if hessian is not None:
        g = np.zeros(m)
        # the last entry first (see below): its point shares θ₁ with x, evaluated just before
        for i, hi in reversed(list(enumerate(_forward_steps(x, upper)))):
            e = np.zeros(m)
            e[i] = hi
            g[i] = (f(x + e) - f0) / hi - hessian[i, i] * hi / 2
        return g, hessian
    # keep steps inside the bounds: shift the stencil up where x sits near its lower bound
    base = x.copy()
    near = (x - h) < lower
    base[near] = lower[near] + h[near]
    fb = f(base) if near.any() else f0
    g = np.zeros(m)
    H = np.zeros((m, m))
    fp = np.zeros(m)
    fm = np.zeros(m)
    # the last entry first and, for each, the point below before the one above: with two scalar terms
    # the block Schur backend keeps its fill for the last θ₁ (SchurState._schur), so θ₂'s two points
    # follow the base's θ₁ and the cross point the +h₁ one (3 of the 5 fills skipped)
    for i in reversed(range(m)):
        e = np.zeros(m)
        e[i] = h[i]
        fm[i] = f(base - e)
        fp[i] = f(base + e)
        g[i] = (fp[i] - fm[i]) / (2 * h[i])
        H[i, i] = (fp[i] - 2 * fb + fm[i]) / h[i] ** 2
    for i in range(m):
        for j in range(i):
            if mixed is not None:
                H[i, j] = H[j, i] = mixed[i, j]
                continue
            eij = np.zeros(m)
            eij[i], eij[j] = h[i], h[j]
            H[i, j] = H[j, i] = (f(base + eij) - fp[i] - fp[j] + fb) / (h[i] * h[j])
    if near.any():  # move the gradient from the shifted base back to x
        g = g + H @ (x - base)
    return g, H


def _grad_derivatives(
    f: Callable[[np.ndarray], float],
    grad: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    upper: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """The analytic gradient at ``x`` and the Hessian by forward differences of it
    (``m`` gradients, each beside an evaluation of ``f`` at its point, so that the
    best point is tracked and the state is in hand); backward where a finite upper
    bound is within the step.  None when a gradient is not finite (the caller falls
    back to :func:`_fd_derivatives`)."""
    m = len(x)
    g = np.asarray(grad(x), dtype=float)
    if not np.all(np.isfinite(g)):
        return None
    H = np.zeros((m, m))
    for i, hi in enumerate(_forward_steps(x, upper)):
        e = np.zeros(m)
        e[i] = hi
        f(x + e)
        gi = np.asarray(grad(x + e), dtype=float)
        if not np.all(np.isfinite(gi)):
            return None
        H[:, i] = (gi - g) / hi
    return g, 0.5 * (H + H.T)


def _free(x: np.ndarray, g: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """The parameters free to move: not at their lower bound with the gradient pushing into it."""
    return ~((x <= lower + 1e-8) & (g >= 0))


def check_convergence(
    f: Callable[[np.ndarray], float],
    theta: np.ndarray,
    lower: np.ndarray,
    f0: float,
    tol: float = 1e-4,
    grad: Callable[[np.ndarray], np.ndarray] | None = None,
    upper: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, float, list[str]]:
    """Check an optimum by finite differences.

    The free parameters are those not at their bound (or at it with an
    uphill gradient into the interior).  The criterion is the Newton
    decrement ``δ = gᵀH⁻¹g / 2`` over them: the decrease of the objective
    still available to a Newton step.  ``δ < tol`` (deviance units) is
    converged; this is scale-free in θ, unlike lme4's ``max|grad|``, which
    raises false alarms when θ is large.

    Parameters
    ----------
    f : callable
        θ ↦ objective.
    theta, lower : numpy.ndarray
        The point and the lower bounds.
    f0 : float
        ``f(theta)``.
    tol : float
        Decrement (deviance units) above which a warning is given.
    grad : callable, optional
        Analytic gradient: then the Hessian is its forward differences (``m``
        gradients) instead of second differences of ``f`` (``m(m+3)/2`` evaluations).
    upper : numpy.ndarray, optional
        Upper bounds (steps with ``grad`` turn back before them).

    Returns
    -------
    gradient, hessian, decrement, messages
    """
    gh = _grad_derivatives(f, grad, theta, upper) if grad is not None else None
    with np.errstate(all="ignore"):  # a non-finite evaluation within a step is reported below
        g, H = gh if gh is not None else _fd_derivatives(f, theta, lower, f0)
    if not (np.all(np.isfinite(g)) and np.all(np.isfinite(H)) and np.max(np.abs(H), initial=0.0) < 1e100):
        # the objective is not finite within a finite-difference step of the point (a value
        # of Counted's 1e300 stands for inf): the derivatives say nothing there
        return np.full(len(theta), np.nan), np.full((len(theta),) * 2, np.nan), np.nan, [
            "the convergence check could not be made: the objective is not finite within a finite-difference "
            "step of the optimum"
        ]
    free = _free(theta, g, lower)
    msgs: list[str] = []
    dec = 0.0
    if free.any():
        gf, Hf = g[free], H[np.ix_(free, free)]
        ev = np.linalg.eigvalsh(0.5 * (Hf + Hf.T))
        if ev.min() <= 0:
            if ev.min() < -1e-6 * max(1.0, abs(ev.max())):
                msgs.append(
                    f"the Hessian of the objective at the optimum has a negative eigenvalue ({ev.min():.3g}): "
                    "the fit may be at a saddle point, not a minimum"
                )
            dec = float(np.max(np.abs(gf)))
        else:
            dec = float(0.5 * gf @ np.linalg.solve(Hf, gf))
        if dec > tol:
            msgs.append(
                f"model may not have converged: a Newton step from the optimum would still lower the objective "
                f"by {dec:.3g} (tolerance {tol:g}); try another optimizer or rescale predictors"
            )
    return g, H, dec, msgs


def newton_point(
    x: np.ndarray, g: np.ndarray, H: np.ndarray, lower: np.ndarray, upper: np.ndarray
) -> np.ndarray | None:
    """The projected Newton point ``x - H⁻¹g`` over the free parameters (not at a bound with the
    gradient pushing into it).

    Parameters
    ----------
    x, g, H : numpy.ndarray
        The point, the gradient and the Hessian there.
    lower, upper : numpy.ndarray
        The bounds the point is projected onto.

    Returns
    -------
    numpy.ndarray or None
        The new point; None when there is no step (no free parameter, singular H, no move).
    """
    free = _free(x, g, lower)
    if not free.any():
        return None
    step = np.zeros_like(x)
    try:
        step[free] = -np.linalg.solve(H[np.ix_(free, free)], g[free])
    except np.linalg.LinAlgError:
        return None
    xn = np.clip(x + step, lower, upper)
    return xn if np.all(np.isfinite(xn)) and np.any(xn != x) else None


def _decrement(x: np.ndarray, g: np.ndarray, H: np.ndarray, lower: np.ndarray) -> float:
    """The Newton decrement ``gᵀH⁻¹g / 2`` over the free parameters (inf where H is singular there)."""
    free = _free(x, g, lower)
    if not free.any():
        return 0.0
    try:
        return float(0.5 * g[free] @ np.linalg.solve(H[np.ix_(free, free)], g[free]))
    except np.linalg.LinAlgError:
        return np.inf


def chord_step(
    fc: Counted, x: np.ndarray, lower: np.ndarray, upper: np.ndarray, fbest: float, H: np.ndarray,
    summary: OptSummary, grad: Callable[[np.ndarray], np.ndarray] | None = None, max_steps: int = 3,
    tol: float = 1e-10,
) -> tuple[np.ndarray, float, float | None]:
    """A Newton step on a fresh gradient and a given Hessian, kept if it helps.

    By finite differences (``m`` evaluations) one step is taken.  With the analytic
    gradient a step costs one evaluation and one gradient, so steps are repeated (at
    most ``max_steps``) while the decrement at the point, from its exact gradient, is
    ``tol`` or more.

    Returns
    -------
    x, fbest, decrement
        The point reached, its objective, and the decrement there: from its exact gradient, or by
        finite differences the error of the quadratic model over the step (``|predicted gain -
        gain|``) where that held, the gain predicted to ``max(1e-8, 5 %)`` (None otherwise).
    """

    def exact(x: np.ndarray) -> np.ndarray | None:  # x was the last point evaluated: its state is in hand
        g = np.asarray(grad(x), dtype=float)  # type: ignore[misc]
        return g if np.all(np.isfinite(g)) else None

    g = exact(x) if grad is not None else None
    if g is None:
        g, _ = _fd_derivatives(fc, x, lower, fbest, hessian=H, upper=upper)
        max_steps = 1
    for _ in range(max_steps):
        summary.gradient = g
        if max_steps > 1 and _decrement(x, g, H, lower) < tol:
            break
        xn = newton_point(x, g, H, lower, upper)
        fn = fc(xn) if xn is not None else np.inf
        # the step comes from the gradient, which averages the objective's rounding noise over the
        # stencil: trust it unless the objective rises beyond that noise
        if not fn <= fbest + 1e-11 * max(1.0, abs(fbest)):
            break
        xo = x
        pred, gain = _decrement(x, g, H, lower), fbest - float(fn)
        x, fbest = xn, float(fn)
        summary.theta, summary.objective = x, fbest
        if max_steps == 1:
            # steps on a Hessian off by a relative ε converge linearly: the gain misses the predicted
            # one by ~ε·pred and leaves ~ε²·pred; within 5 % that is below 0.0025·pred (MovieLens-1M
            # shape: ε = 0.019 of 4.8e-4), and |pred - gain| is reported as the decrement left
            err = abs(pred - gain)
            return x, fbest, (err if err <= max(1e-8, 0.05 * pred) else None)
        gn = exact(x)
        if gn is None:
            return x, fbest, None
        # BFGS update of the Hessian from the step and the change of the exact gradient (the
        # steps then converge superlinearly where the Hessian of the check is off)
        sv, yv = xn - xo, gn - g
        Hs = H @ sv
        if yv @ sv > 1e-12 * np.linalg.norm(yv) * np.linalg.norm(sv) and sv @ Hs > 0:
            H = H + np.outer(yv, yv) / (yv @ sv) - np.outer(Hs, Hs) / (sv @ Hs)
        g = gn
    summary.gradient = g
    return x, fbest, (_decrement(x, g, H, lower) if max_steps > 1 else None)


#: the relative step of :func:`run_newton_search`'s stencil: on the single-precision objective of the
#: 1M crossed design (its rounding ~1e-5 deviance units) the second differences at 1e-3 miss the
#: double-precision Hessian by up to 0.45 %, at 3e-3 by 0.003 % (the truncation of the central
#: differences still below that)
NEWTON_SEARCH_STEP = 3e-3
#: the relative rounding of the single-precision objective allowed for when :func:`run_newton_search`'s
#: last point (in double precision) is compared with the single-precision one it steps from (the
#: block Schur factor's single-precision objective is within 1e-8 of the double-precision one,
#: measured ~1e-11 on the crossed designs)
NEWTON_SEARCH_ROUNDING = 1e-8


def run_newton_search(
    fs: Counted, fc: Counted, x: np.ndarray, f0: float, lower: np.ndarray, upper: np.ndarray,
    max_steps: int = 6,
) -> tuple[np.ndarray, float, np.ndarray] | None:
    """Newton steps from the start on finite differences of the single-precision objective ``fs``.

    Each step takes a stencil of single-precision evaluations (of relative step
    :data:`NEWTON_SEARCH_STEP`: large enough that the single precision's rounding does not reach
    the second differences; ``m(m+3)/2`` at the start, ``2m`` after it, the mixed derivatives
    kept from the first) and one at the point it reaches.  The steps stop once a step falls
    within the stencil's (the Hessian then measured where the Newton finish's chord steps
    converge); that last point is evaluated in double precision by ``fc``.  From the moment start
    of the 1M crossed design (1.6 % from the optimum) two steps, 11 single-precision evaluations,
    where the derivative-free search took 10 and left the finish a check of 5 evaluations in
    double precision.

    Returns
    -------
    (x, f, H) or None
        The point reached, its objective in double precision and the last stencil's Hessian; None
        where a step cannot be trusted (a derivative not finite, the Hessian not positive definite
        over the free parameters, no step, the objective not lower) or the steps do not settle
        within ``max_steps``.  Then ``fs``'s best point is set back to the last point a step reached
        (the start where none did), where the derivative-free optimizer starts.
    """
    x0, fx0 = x, f0
    found = _newton_steps(fs, fc, x, f0, lower, upper, max_steps)
    if found is None or len(found) == 2:
        fs.best_x, fs.best_f = (x0, fx0) if found is None else found
        return None
    return found


def _newton_steps(
    fs: Counted, fc: Counted, x: np.ndarray, f0: float, lower: np.ndarray, upper: np.ndarray, max_steps: int
) -> tuple[np.ndarray, float, np.ndarray] | tuple[np.ndarray, float] | None:
    """:func:`run_newton_search`'s steps: ``(x, f, H)`` where they settle, ``(x, f)`` (the last point
    reached) or None (no step taken) where they do not."""
    reached = None
    H = None
    for _ in range(max_steps):
        with np.errstate(all="ignore"):
            # after the first step the mixed derivatives are the first stencil's: they change little
            # over a step and are small beside the diagonal (1M crossed design: -766 against 75,000)
            g, H = _fd_derivatives(fs, x, lower, f0, upper=upper, rel=NEWTON_SEARCH_STEP, mixed=H)
        if not (np.all(np.isfinite(g)) and np.all(np.isfinite(H)) and np.max(np.abs(H), initial=0.0) < 1e100):
            return reached
        free = _free(x, g, lower)
        if not free.any() or np.linalg.eigvalsh(H[np.ix_(free, free)]).min() <= 0:
            return reached
        xn = newton_point(x, g, H, lower, upper)
        if xn is None:
            return reached
        last = bool(np.all(np.abs(xn - x) <= NEWTON_SEARCH_STEP * np.maximum(np.abs(x), 0.1)))
        fn = (fc if last else fs)(xn)
        # the last point is evaluated in double precision, f0 in single: within the stencil the gain
        # can be below the single precision's rounding (1.8e-6 predicted, 1.3e-6 of rounding on a
        # 100k-row crossed design), so it need only not rise beyond that rounding
        if not fn < f0 + (NEWTON_SEARCH_ROUNDING * max(1.0, abs(f0)) if last else 0.0):
            return reached
        if last:
            return xn, float(fn), H
        x, f0 = xn, float(fn)
        reached = (x, f0)
    return reached
