"""The search for θ: one policy turns a design and a :class:`~sparselmm.fitting.control.FitControl`
into the optimiser's run (lme4's ``optimizeLmer``).

:func:`search` refuses a model that reproduces its response exactly, wraps the backend's
objective in lme4's units (θ and objective; the engine computes in its own, see
:mod:`sparselmm.frame.conditioning`), and for ``optimizer="auto"`` chooses the start (the
moment start), BOBYQA's first step and stop, the search's units
(:meth:`Design.theta_scale`), the analytic gradient for the check and the Newton finish where
it is cheap, and a single-precision search objective where the backend declares one; then it
runs :func:`~sparselmm.fitting.optimize.minimize_theta` with BLAS on one thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from sparselmm import validate
from sparselmm.backends.base import PLSBackend
from sparselmm.backends.gradient import Gradient
from sparselmm.errors import ModelSpecError
from sparselmm.progress import Progress
from sparselmm.fitting.control import FitControl
from sparselmm.fitting.optimize import OptSummary, minimize_theta
from sparselmm.frame.modelframe import Design
from sparselmm.spec.vocabulary import variables
from sparselmm.threads import single_threaded

__all__ = ["search", "plan", "SearchPlan"]


def search(d: Design, REML: bool, control: FitControl) -> tuple[OptSummary, PLSBackend]:
    """Minimise the profiled REML criterion or deviance of a design over θ.

    Parameters
    ----------
    d : Design
    REML : bool
    control : FitControl

    Returns
    -------
    OptSummary
        The search's result in lme4's units (its ``warnings`` not yet issued).
    PLSBackend
        The design's PLS state (the registry's choice), last evaluated by the search.

    Raises
    ------
    ModelSpecError
        When the fixed and random effects reproduce the response exactly.
    """
    state = d.pls()
    # the search runs on lme4's θ and objective; the state computes in the design's internal
    # units (sparselmm.frame.conditioning): θ' = F θ, objective = internal + offset
    off = d.objective_offset(REML)
    to_int = d.internal_theta
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if _exact_by_fixed_effects(d):
            raise _exact_fit_error(d)
    how = plan(d, state, REML, control)
    guard = _ExactFitGuard(d, state, REML)
    f = _progress(lambda th: guard(state.objective, to_int(th)) + off, control.verbose or control.progress)
    search_f = None
    if how.single_precision:
        search_f = _progress(lambda th: guard(state.search_objective, to_int(th)) + off, control.verbose or control.progress)
    # BLAS threads only where a large dense step asks for them; numpy's floating-point warnings
    # off, since θ far from the optimum (a user's start, a trust region's step) can overflow
    # ΛᵀAΛ: the objective is then inf, which the search handles, and nothing else is reported
    with single_threaded(), np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        opt = minimize_theta(
            f,
            how.start,
            d.lower,
            d.upper,
            optimizer=how.optimizer,
            options=how.options,
            check=how.check,
            grad=how.gradient,
            scale=how.scale,
            search=search_f,
            newton_search=how.newton_search,
        )
    guard.raise_if_refused()
    return opt, state


@dataclass(frozen=True)
class SearchPlan:
    """What :func:`~sparselmm.fitting.optimize.minimize_theta` is given for one fit.

    Attributes
    ----------
    optimizer : str
        The optimizer that runs (``"auto"`` becomes ``"bobyqa"``).
    start : numpy.ndarray
        The starting θ (lme4's units).
    options : dict
        The optimizer's options: the policy's, overridden by the user's.
    check : bool or "auto"
        The convergence check and Newton finish.
    gradient : callable or None
        The analytic gradient in lme4's θ, where the policy uses it.
    scale : numpy.ndarray or None
        The search's units (:meth:`Design.theta_scale`), for ``"auto"``.
    single_precision : bool
        Whether the derivative-free passes evaluate the backend's single-precision objective.
    newton_search : bool
        Whether the search starts by a Newton step on finite differences of that objective
        (:func:`~sparselmm.fitting.optimize.minimize_theta`'s ``newton_search``).
    """

    optimizer: str
    start: np.ndarray
    options: dict
    check: bool | str
    gradient: Callable[[np.ndarray], np.ndarray] | None = None
    scale: np.ndarray | None = None
    single_precision: bool = False
    newton_search: bool = False


def plan(d: Design, state: PLSBackend, REML: bool, control: FitControl) -> SearchPlan:
    """The fit's policy: a design, its backend and the settings turned into a :class:`SearchPlan`.

    For ``optimizer="auto"``: BOBYQA in the units of :meth:`Design.theta_scale`, from
    :meth:`Design.moment_start` with a small first step and a loose stop (the Newton finish of
    the check does the rest) or from lme4's start with lme4's tolerances; the analytic gradient
    for the check and the finish where the backend makes it cheap; the backend's single-precision
    objective for the passes where it declares one.  For ``"lbfgsb"``: the analytic gradient
    where it is available.  The user's options override the policy's.

    Parameters
    ----------
    d : Design
    state : PLSBackend
        The design's backend.
    REML : bool
    control : FitControl

    Returns
    -------
    SearchPlan
    """
    optimizer, check, start = control.optimizer, control.check, control.start
    options = dict(control.options)
    F = d.theta_factor()
    to_int = d.internal_theta
    grad = None
    scale = None
    single = False
    moment = False
    theta0 = d.theta_start if start is None else validate.theta_start(start, len(d.theta_start), d.lower, d.upper)
    if optimizer == "auto":
        # BOBYQA (lme4's default), finished by the Newton steps of the convergence check.  Where
        # the design has a moment start it starts near the optimum: a small first step and a stop
        # at a relative change of 1e-9, the Newton steps doing the rest.  From lme4's start, lme4's
        # tolerances (far from the optimum a loose stop on a flat ridge lands where the Hessian is
        # indefinite, and the restart costs more than it saved).  Measured in docs/performance.md.
        # The search runs in the units of Design.theta_scale (a slope's θ times its covariate's
        # root mean square), where BOBYQA's spherical steps suit every entry.
        optimizer = "bobyqa"
        auto_opts: dict = {}
        scale = d.theta_scale()
        if len(d.theta_start) >= 2 and (check is True or (check == "auto" and len(d.theta_start) <= 20)):
            g = Gradient(state)
            # the check and the Newton finish take the analytic gradient where it costs about one
            # evaluation (one grouping factor): the FD Hessian of m(m+3)/2 evaluations becomes m
            # gradients (TIMSS slopes: 27 -> 6), and the last steps are repeated on exact gradients;
            # measured in docs/performance.md
            if g.cheap:
                grad = _external_gradient(g, to_int, F, REML)
        if start is None:
            theta0 = d.moment_start()
            if not np.array_equal(theta0, d.theta_start):
                moment = True
                step = 0.05 * max(1.0, float(np.max(np.abs(theta0 * scale))))
                # the Newton finish holds from a looser stop for variance components alone (scalar
                # terms: InstEval 33 -> 26 evaluations at 1e-6 rather than 1e-7) and where it runs on
                # the analytic gradient (TIMSS slopes 61 -> 42 at 1e-7); other slope models need 1e-9;
                # measured in docs/performance.md
                loose = 1e-6 if all(t.k == 1 for t in d.terms) else 1e-7 if grad is not None else 1e-9
                auto_opts = {"initial_step": step, "ftol_rel": loose}
            else:
                # no moment start: lme4's start in the search's units (1 on each diagonal entry of
                # scale·θ), so a slope on a covariate of size 1e8 starts where its random effect is
                # of the response's size, not 1e8 times larger (where ΛᵀZᵀZΛ + I holds no digit of
                # the fixed effects' Schur complement and the objective is not even evaluable)
                theta0 = np.where(d.lower == 0, d.theta_start / scale, d.theta_start)
        options = {**auto_opts, **(options or {})}
        # a large dense Schur block: BOBYQA's passes factor it in single precision (the check
        # and the Newton finish in double); InstEval's search evaluations 29 -> 22 ms
        single = state.searches_in_single_precision
    if optimizer == "lbfgsb":
        g = Gradient(state)
        if g.available:
            grad = _external_gradient(g, to_int, F, REML)
    # two θ entries (two crossed scalar terms), a moment start and a single-precision objective:
    # Newton steps on its finite differences first, the derivative-free search only where they fail
    # (1M crossed design: 20 -> 15 evaluations, 10 -> 4 of them in double precision).  Their first
    # stencil takes m(m+3)/2 evaluations, which beyond m = 2 outgrows the search it replaces
    # (InstEval's three: 27 -> 45); measured in docs/performance.md
    newton = single and moment and grad is None and not control.options and len(theta0) == 2
    return SearchPlan(optimizer, theta0, options, check, grad, scale, single, newton)


#: the relative residual sum of squares the cross-products can tell from zero: below it, their
#: cancellation (``y'ᵀy' − y'ᵀX'b``) leaves no digit of the residual, and σ cannot be estimated
_RESOLUTION = 1e3 * float(np.finfo(float).eps)


def _exact_fit_error(d: Design) -> ModelSpecError:
    """The refusal of a model whose random effects and fixed effects reproduce the response exactly.

    Then the residual variance is zero, the profiled objective has no minimum (it falls without
    bound as θ grows), and an optimiser wanders until its evaluation limit — lme4 runs 82,000
    evaluations on ``x ~ (poly(x, 2) || g) + (0 + f | i)`` and reports σ = 3e-4.  Two tests find
    such a model: the fixed effects alone (:func:`_exact_by_fixed_effects`, before the search) and
    with the random effects (:func:`_exact_by_random_effects`, once the search comes near it:
    :class:`_ExactFitGuard`).
    """
    resp = set(variables(d.formula.response))
    own = [t.bar.text for t in d.terms if resp & set(variables(t.bar.lhs))]
    # the fixed part's terms as written (its columns' names hold factor levels, which need not
    # read as a formula: a level "2021-03-02 00:00:00" or "a b")
    own += [f.text for f in d.formula.fragments if f.role == "fixed" and resp & set(variables(f.text))]
    return ModelSpecError(
        f"the model reproduces the response {d.formula.response!r} exactly (to within the precision of the "
        "cross-products): the fixed and random effects leave no residual variation, so the likelihood has no "
        "maximum (σ → 0)"
        + (f"; the response is in the model's own term(s) {', '.join(dict.fromkeys(own))}" if own else
           "; check that the response is not a function of the model's columns and that the grouping leaves "
           "replicates within its levels")
    )


def _exact_by_random_effects(d: Design, state: PLSBackend, REML: bool, big: float = 1e6) -> bool:
    """Whether the fixed and random effects together reproduce the response.

    At θ = ``big`` (in the units of :meth:`Design.theta_scale`) the penalised residual sum of
    squares is that of y on ``[X Z]`` plus the ridge term ``O(|b|²/big²)``.  When it is below 1e-9
    of ``y'ᵀy'``, a second evaluation at ``big/10`` tells the two apart: the ridge term grows a
    hundredfold there, a residual (precise data, σ ≈ 1e-6 of the response's spread, which lme4
    fits) stays.  Leaves the state at one of those θ.
    """
    cp = d.cross
    if not cp.yty > 0:
        return False
    p_big = _pwrss_at(d, state, REML, big)
    if p_big is None or p_big > 1e-9 * cp.yty:
        return False
    p_near = _pwrss_at(d, state, REML, big / 10)
    return p_big <= 0 or (p_near is not None and p_big <= 0.05 * p_near)


class _ExactFitGuard:
    """:func:`_exact_by_random_effects`, run when the search comes near it.

    For every θ the penalised residual sum of squares is at least the residual of y on ``[X Z]``
    (the ridge term only adds), so an exact fit shows itself as a search whose ``pwrss`` falls
    toward zero, and ordinary data never come near: the check's evaluations at large θ are made
    only once an evaluation's ``pwrss`` is below :attr:`NEAR` of ``y'ᵀy'`` (1e-6; the check's own
    test is 1e-9), and then once (saving an evaluation of every fit: 0.6 s on the MovieLens-1M
    shape).  The state is then evaluated again at the θ asked for, so that it holds that θ."""

    NEAR = 1e-6

    def __init__(self, d: Design, state: PLSBackend, REML: bool) -> None:
        self.d, self.state, self.REML = d, state, REML
        self.done = not d.cross.yty > 0
        #: the refusal, once made: raised again by every later call (NLopt turns an exception in its
        #: objective into a stop, which the search survives), and by :meth:`raise_if_refused`
        self.error: ModelSpecError | None = None

    def __call__(self, objective: Any, theta: np.ndarray) -> float:
        if self.error is not None:
            raise self.error
        v = objective(theta, REML=self.REML)
        p = getattr(self.state, "pwrss", np.nan)
        if not self.done and np.isfinite(p) and p <= self.NEAR * self.d.cross.yty:
            self.done = True
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                exact = _exact_by_random_effects(self.d, self.state, self.REML)
            if exact:
                self.error = _exact_fit_error(self.d)
                raise self.error
            v = objective(theta, REML=self.REML)
        return v

    def raise_if_refused(self) -> None:
        """Raise the refusal made during the search, if any."""
        if self.error is not None:
            raise self.error


def _pwrss_at(d: Design, state: PLSBackend, REML: bool, big: float) -> float | None:
    """The penalised residual sum of squares (engine's units) at θ = ``big`` on each diagonal
    entry in :meth:`Design.theta_scale`'s units, 0 below; None where the factor fails."""
    th = np.clip(np.where(d.lower == 0, big / d.theta_scale(), 0.0), d.lower, d.upper)
    state.pwrss = np.nan  # set by the update if the factorisation at this θ succeeds
    state.objective(d.internal_theta(th), REML)
    return float(state.pwrss) if np.isfinite(state.pwrss) else None


def _exact_by_fixed_effects(d: Design) -> bool:
    """Whether the fixed effects alone reproduce the response (``y − offset``), from the
    cross-products, in the engine's units (sparselmm.frame.conditioning).

    ``y'`` is the response's residual on the binary columns of X, scaled to unit size by ``s_y``:
    when that residual is at the rounding of the data (``s_y·rms(y')`` within 1000 ulps of the
    cells' means, ``Σ|γ_y|`` bounds them), y − offset is a combination of those columns; else
    the least-squares residual of ``y'`` on ``X'``, ``y'ᵀy' − y'ᵀX'(X'ᵀX')⁻¹X'ᵀy'``, within
    :data:`_RESOLUTION` of ``y'ᵀy'``.
    """
    cp, c = d.cross, d.cond
    n = max(int(cp.n), 1)
    shift = float(np.sum(np.abs(c.y_shift)))
    if not cp.yty > 0 or c.y_scale * np.sqrt(cp.yty / n) <= 1e3 * np.finfo(float).eps * shift:
        return True
    if not d.p:
        return False
    b = np.linalg.lstsq(cp.XtX, cp.Xty, rcond=None)[0]
    return bool(cp.yty - float(cp.Xty @ b) <= _RESOLUTION * cp.yty)


def _external_gradient(g: Any, to_int: Any, F: np.ndarray | None, REML: bool) -> Any:
    """The gradient in lme4's θ of the objective whose engine gradient is ``g``: ``F·∇f'(Fθ)``."""
    if F is None:
        return lambda th: g(to_int(th), REML)
    return lambda th: g(to_int(th), REML) * F


def _progress(f: Any, verbose: bool) -> Any:
    progress = Progress("evaluation", verbose=verbose)
    if not progress.on:
        return f

    def wrapped(th: np.ndarray) -> float:
        v = f(th)
        progress.step(f"objective {v:.6f}")
        return v

    return wrapped


