"""Bounded optimisation of the profiled objective over θ.

Derivative-free routines as lme4 uses them: a bounded quadratic-model
trust-region method (scipy's COBYQA, the successor of Powell's BOBYQA that
lme4 calls), bounded Nelder–Mead, and L-BFGS-B on finite differences.
Around them: lme4's ``restart_edge`` (restart when a parameter sits on its
bound with the objective going down into the interior), snapping of tiny
boundary parameters to the bound when that does not raise the objective,
and a convergence check at the optimum (finite-difference gradient and
Hessian: the objective decrease a Newton step would still achieve) with
the Newton finish it drives.  The finite differences, the Newton steps and
the Newton search on a single-precision objective are in
:mod:`sparselmm.fitting.newton`; :class:`OptSummary` and the counted
objective in :mod:`sparselmm.fitting.summary`.
"""

from __future__ import annotations

import time
import warnings
from typing import Callable

import numpy as np
from scipy import optimize as sopt

from sparselmm import validate
from sparselmm.errors import ArgumentError, ConvergenceError, SparseLMMError
from sparselmm.fitting.newton import check_convergence, chord_step, newton_point, run_newton_search
from sparselmm.fitting.summary import Counted, OptSummary

__all__ = ["OptSummary", "minimize_theta", "OPTIMIZERS", "check_convergence"]

OPTIMIZERS = ("auto", "bobyqa", "cobyqa", "nelder_mead", "lbfgsb")


def _run(
    method: str,
    f: Counted,
    x0: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    options: dict,
    grad: Callable[[np.ndarray], np.ndarray] | None = None,
) -> str:
    lo = np.where(np.isfinite(lower), lower, -np.inf)
    hi = np.where(np.isfinite(upper), upper, np.inf)
    bounds = sopt.Bounds(lo, hi)
    x0 = np.clip(x0, lo, hi)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method == "bobyqa":
            return _nlopt_bobyqa(f, x0, lo, hi, options)
        if method == "cobyqa":
            opts = {**validate.COBYQA_DEFAULT_RADII, "maxfev": 100000}
            opts.update(options)
            res = sopt.minimize(f, x0, method="COBYQA", bounds=bounds, options=opts)
        elif method == "nelder_mead":
            opts = {"xatol": 1e-8, "fatol": 1e-10, "maxfev": 100000, "adaptive": len(x0) > 4}
            opts.update(options)
            res = sopt.minimize(f, x0, method="Nelder-Mead", bounds=bounds, options=opts)
        elif method == "lbfgsb" and len(x0) == 1:
            return _brent(f, float(x0[0]), float(lo[0]), float(hi[0]), options.get("maxfun"))
        elif method == "lbfgsb":
            opts = {"ftol": 1e-14, "gtol": 1e-8, "maxfun": 100000}
            opts.update(options)
            if grad is None:
                res = sopt.minimize(f, x0, method="L-BFGS-B", bounds=bounds, options=opts)
            else:

                # optimise over x = SCALE·θ: L-BFGS-B's first step has unit length, which from
                # θ = 1 would land exactly on θ = 0, a stationary point for scalar terms
                sc = 10.0

                def fg(x: np.ndarray) -> tuple[float, np.ndarray]:
                    v = f(x / sc)
                    if v >= f.big:
                        return v, np.zeros(len(x))
                    g = grad(x / sc) / sc
                    return v, np.where(np.isfinite(g), g, 0.0)

                res = sopt.minimize(
                    fg, x0 * sc, jac=True, method="L-BFGS-B", bounds=sopt.Bounds(lo * sc, hi * sc), options=opts
                )
        else:
            raise SparseLMMError(f"unknown optimizer {method!r}; choose one of {', '.join(OPTIMIZERS)}")
    return str(res.message)


def _brent(f: Counted, x0: float, lo: float, hi: float, maxfev: int | None = None) -> str:
    """One parameter: bounded Brent search on ``[lo, U]``, ``U`` grown until the minimum is inside,
    within ``maxfev`` evaluations in all (the caller's evaluation limit, as for the other optimizers)."""
    a = lo if np.isfinite(lo) else x0 - 10 * max(1.0, abs(x0))
    b = hi if np.isfinite(hi) else max(10.0 * max(abs(x0), 1.0), a + 1.0)
    first = f.n
    limit = 100000 if maxfev is None else int(maxfev)
    for _ in range(8):
        left = limit - (f.n - first)
        if left < 1:
            break
        res = sopt.minimize_scalar(lambda t: f(np.array([t])), bounds=(a, b), method="bounded",
                                   options={"xatol": 1e-10 * max(1.0, abs(x0)), "maxiter": left})
        if not np.isfinite(hi) and res.x > b - 1e-3 * (b - a):
            a, b = res.x - (b - a) * 0.1, b * 10
            continue
        break
    if f.n - first >= limit:
        return "bounded Brent: maxeval reached"
    f(np.array([a]))  # the bound itself (a singular fit) when it is the minimum
    return f"bounded Brent: {res.message if hasattr(res, 'message') else 'done'}"


def _nlopt_bobyqa(f: Counted, x0: np.ndarray, lo: np.ndarray, hi: np.ndarray, options: dict) -> str:
    """Powell's BOBYQA through NLopt, with lme4's ``nloptwrap`` defaults
    (``xtol_abs = ftol_abs = 1e-8``); COBYQA when NLopt is not installed."""
    try:
        import nlopt
    except ImportError:  # pragma: no cover - nlopt is a dependency, but keep working without it
        return _run("cobyqa", f, x0, lo, hi, {k: v for k, v in options.items() if k == "maxfev"})
    n = len(x0)
    if n == 1:  # NLopt's BOBYQA needs two parameters at least: Brent's method on an interval
        return _brent(f, float(x0[0]), float(lo[0]), float(hi[0]), options.get("maxfev"))
    opt = nlopt.opt(nlopt.LN_BOBYQA, n)
    opt.set_min_objective(lambda x, grad: f(x))
    opt.set_lower_bounds(np.where(np.isfinite(lo), lo, -1e300))
    opt.set_upper_bounds(np.where(np.isfinite(hi), hi, 1e300))
    opt.set_xtol_abs(options.get("xtol_abs", 1e-8))
    opt.set_ftol_abs(options.get("ftol_abs", 1e-8))
    if "ftol_rel" in options:
        opt.set_ftol_rel(options["ftol_rel"])
    if "xtol_rel" in options:
        opt.set_xtol_rel(options["xtol_rel"])
    opt.set_maxeval(int(options.get("maxfev", 100000)))
    msgs = []
    # with polish: a second pass from the best point with a small initial step (BOBYQA's ftol
    # stop is sometimes premature on flat ridges; at a true optimum the pass costs ~2n+5 evaluations)
    steps = [options.get("initial_step", 0.5)]
    if options.get("polish", False):
        steps = [options.get("polish_step", 0.02)]
    for step in steps:
        opt.set_initial_step(step)
        start = f.best_x if f.best_x is not None else np.asarray(x0, dtype=float)
        try:
            opt.optimize(np.clip(start, lo, hi))
            msgs.append(opt.last_optimize_result())
        except (nlopt.RoundoffLimited, ValueError, RuntimeError) as exc:  # best point is kept by Counted
            msgs.append(type(exc).__name__)
    code = msgs[-1]
    names = {1: "success", 2: "stopval reached", 3: "ftol reached", 4: "xtol reached", 5: "maxeval reached",
             6: "maxtime reached"}
    return f"NLopt BOBYQA: {names.get(code, code)}"


def _polish(
    fc: Counted, x: np.ndarray, lower: np.ndarray, upper: np.ndarray, fbest: float, summary: OptSummary, options: dict
) -> tuple[np.ndarray, float]:
    """A second BOBYQA pass from the best point with a small initial step: BOBYQA's first stop is
    sometimes early on flat ridges (the objective right, θ off); at an optimum it costs ~2n+5 evaluations.
    After a first pass stopped by a relative tolerance, a full pass with lme4's tolerances comes first."""
    opts = {k: v for k, v in options.items() if k != "ftol_rel"}  # lme4's absolute tolerances only
    if "ftol_rel" in options:
        # the first pass stopped on the relative tolerance: a full pass with lme4's tolerances first
        _run("bobyqa", fc, x, lower, upper, opts)
    # the polish starts from the best point seen (the Counted keeps it; _nlopt_bobyqa starts there)
    summary.message = _run("bobyqa", fc, x, lower, upper, {**opts, "polish": True})
    if fc.best_f < fbest:
        x, fbest = fc.best_x.copy(), fc.best_f
        summary.theta, summary.objective = x, fbest
    return x, fbest


def _newton_finish(
    fc: Counted,
    x: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    fbest: float,
    summary: OptSummary,
    optimizer: str,
    options: dict,
    tol: float = 1e-7,
    max_steps: int = 4,
    grad: Callable[[np.ndarray], np.ndarray] | None = None,
    hessian: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """Check the optimum by finite differences and finish it by Newton steps (on the
    analytic gradient and its differences where ``grad`` is given).

    At the optimiser's point the check's gradient and Hessian give a Newton step
    over the free parameters (projected onto the bounds); it is taken when it lowers
    the objective, and the check is repeated, until the Newton decrement is below
    ``tol`` deviance units.  Near an optimum this converges quadratically, so it
    replaces the slow tail of a derivative-free search.  When a step fails to help
    while the decrement is still above the warning level, a BOBYQA polish pass follows.
    """
    polished = False
    if hessian is not None and grad is None:
        # a Hessian in hand (run_newton_search's, near the point): first a step on a fresh gradient with
        # it (m + 1 evaluations); where its gain is the one its model predicted, what is left is the
        # model's error there, and the check is not made again
        x, fbest, dec_end = chord_step(fc, x, lower, upper, fbest, hessian, summary, None, max_steps=1)
        summary.hessian = hessian
        if dec_end is not None:
            summary.newton_decrement = dec_end
            return x, fbest
    for _ in range(max_steps + 1):
        g, H, dec, msgs = check_convergence(fc, x, lower, fbest, grad=grad, upper=upper)
        summary.gradient, summary.hessian, summary.newton_decrement = g, H, dec
        summary.warnings = msgs
        if not np.isfinite(dec):  # no derivatives to finish on
            summary.gradient = summary.hessian = summary.newton_decrement = None
            break
        xn = None if any("negative eigenvalue" in m for m in msgs) else newton_point(x, g, H, lower, upper)
        fn = fc(xn) if xn is not None else np.inf  # one evaluation: the Newton step
        if fn < fbest:
            gain = fbest - float(fn)
            x, fbest = xn, float(fn)
            summary.theta, summary.objective = x, fbest
            held = dec <= tol or abs(dec - gain) <= max(1e-5, 0.01 * dec)
            if held or grad is not None:
                # the quadratic model held (it predicted the gain to 1e-5, or to 1 % where the
                # deviance is large and its finite differences noisier: 1M rows, 0.014 gained);
                # what is left is of the order of the model's error, far below the warning level;
                # one more step on a fresh gradient with the same Hessian (m + 1 evaluations)
                # settles θ in flat directions.  With the exact gradient the steps on the same
                # Hessian cost one evaluation and one gradient each: taken even where the model
                # did not hold (TIMSS slopes from 0.14 above the optimum: 3 checks -> 1), and the
                # Hessian is renewed by a new check only when they leave more than `tol`
                x, fbest, dec_end = chord_step(
                    fc, x, lower, upper, fbest, H, summary, grad, max_steps=3 if held else 6
                )
                if not held and (dec_end is None or dec_end > tol):
                    continue
                # the decrement left: measured from the exact gradient, else the model's error
                summary.newton_decrement = dec_end if dec_end is not None else abs(dec - gain)
                summary.warnings = [m for m in msgs if not m.startswith("model may not have converged")]
                break
            # by finite differences, a long step over which the quadratic model did not hold (from
            # a loose stop 1.2 deviance units above the optimum on the MovieLens-1M shape): one
            # step on a fresh gradient with the same Hessian (m + 1 evaluations) before a new check
            # (m(m+3)/2 + 1); where that step's gain is the one its model predicted, what is left is
            # the model's error there (MovieLens-1M shape: 17 -> 9 evaluations of the finish)
            x, fbest, dec_end = chord_step(fc, x, lower, upper, fbest, H, summary, None, max_steps=1)
            if dec_end is not None:
                summary.newton_decrement = dec_end
                summary.warnings = [m for m in msgs if not m.startswith("model may not have converged")]
                break
            continue
        if dec <= tol or polished or optimizer != "bobyqa" or len(x) < 2:
            break
        polished = True
        x, fbest = _polish(fc, x, lower, upper, fbest, summary, options)
    return x, fbest


def minimize_theta(
    f: Callable[[np.ndarray], float],
    start: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray | None = None,
    *,
    optimizer: str = "bobyqa",
    options: dict | None = None,
    restart_edge: bool = True,
    boundary_tol: float = 1e-5,
    check: bool | str = "auto",
    grad: Callable[[np.ndarray], np.ndarray] | None = None,
    scale: np.ndarray | None = None,
    search: Callable[[np.ndarray], float] | None = None,
    newton_search: bool = False,
) -> OptSummary:
    """Minimise the profiled objective ``f`` over θ within bounds.

    Parameters
    ----------
    f : callable
        θ ↦ objective (``inf`` where it cannot be evaluated).
    start, lower, upper : numpy.ndarray
        Start and bounds of θ.
    optimizer : {"bobyqa", "auto", "cobyqa", "nelder_mead", "lbfgsb"}
        ``"bobyqa"`` (default; ``"auto"`` is the same here): Powell's BOBYQA through NLopt,
        as lme4's ``nloptwrap``; ``"cobyqa"``: scipy's COBYQA; ``"nelder_mead"``: scipy's
        bounded Nelder–Mead; ``"lbfgsb"``: L-BFGS-B, with the analytic gradient when given.
    options : dict, optional
        Settings of the optimizer, checked by :func:`sparselmm.validate.optimizer_options`
        (the keys each optimizer reads; lme4's names such as ``maxfun`` accepted where they
        mean the same).
    restart_edge : bool
        lme4's restart when a bounded parameter ends on its bound while the
        objective decreases into the interior.
    boundary_tol : float
        Parameters within this of their lower bound are tried at the bound
        and kept there when the objective does not increase.
    check : bool or "auto"
        Run :func:`check_convergence`; ``"auto"`` does so when θ has at most 20 entries.
    grad : callable, optional
        Analytic gradient θ ↦ ∇f (called right after ``f`` at the same θ), used by
        ``"lbfgsb"`` and by the convergence check and Newton finish: the Hessian then
        comes from ``m`` forward differences of the gradient, each beside one counted
        evaluation of ``f``, and the last step's gradient is exact (finite differences of
        ``f`` otherwise).
    scale : numpy.ndarray, optional
        Positive units of θ: the search (its steps, tolerances and finite differences)
        runs in ``x = scale · θ`` (:meth:`sparselmm.Design.theta_scale`); the summary is
        returned in θ's units.
    search : callable, optional
        A cheaper approximation of ``f`` for the derivative-free passes (the optimizer's
        runs and restarts), e.g. :meth:`sparselmm.backends.schur.SchurState.search_objective`; the
        boundary tests, the convergence check, the Newton finish and the reported
        objective use ``f``.  Its evaluations are counted in ``feval``.
    newton_search : bool
        With ``search`` (and no ``grad``): start by Newton steps on finite differences of
        ``search`` (:func:`~sparselmm.fitting.newton.run_newton_search`; from a start near the optimum, such as a moment start),
        their last point evaluated by ``f``, and the finish started from their Hessian; the
        optimizer runs only where the steps cannot be trusted, from the last point they reached.
        ``message`` then says which did the search.

    Returns
    -------
    OptSummary

    Raises
    ------
    ArgumentError
        For an unknown optimizer, options it does not read or of the wrong type or range,
        bounds or a start that are not real arrays of one length, a start outside the
        bounds, a non-boolean ``restart_edge`` or ``newton_search``, a ``check`` not True, False or ``"auto"``,
        or a ``scale`` that is not one positive number per θ entry.  Nothing wrong reaches
        scipy or NLopt.
    ConvergenceError
        If the objective cannot be evaluated at any point visited.
    """
    optimizer = validate.choice(optimizer, "optimizer", OPTIMIZERS, fold=False)
    if optimizer == "auto":
        optimizer = "bobyqa"
    options = validate.optimizer_options(optimizer, options)
    check = validate.flag_or_auto(check, "check")
    restart_edge = validate.flag(restart_edge, "restart_edge")
    newton_search = validate.flag(newton_search, "newton_search")
    boundary_tol = validate.number(boundary_tol, "boundary_tol", minimum=0.0)
    lower, upper = validate.theta_bounds(lower, upper)
    start = validate.theta_start(start, len(lower), lower, upper)
    if scale is not None:
        sc = validate.real_array(scale, "scale", length=len(start))
        if not np.all(sc > 0):
            i = int(np.flatnonzero(~(sc > 0))[0])
            raise ArgumentError(f"scale must hold one positive number per θ entry; scale[{i}] is {sc[i]:g}")
        g0 = grad
        s0 = search
        summary = minimize_theta(
            lambda x: f(x / sc), start * sc, lower * sc, upper * sc, optimizer=optimizer, options=options,
            restart_edge=restart_edge, boundary_tol=boundary_tol, check=check,
            grad=None if g0 is None else (lambda x: g0(x / sc) / sc),
            search=None if s0 is None else (lambda x: s0(x / sc)), newton_search=newton_search,
        )
        return _unscaled(summary, sc)
    ngrad = [0]
    if grad is not None:
        g_raw = grad

        def counted_grad(x: np.ndarray) -> np.ndarray:
            ngrad[0] += 1
            return g_raw(x)

        grad = counted_grad

    fc = Counted(f)
    fsearch = fc if search is None else Counted(search)  # the derivative-free passes
    t0 = time.perf_counter()
    f_start = fsearch(start)
    if not np.isfinite(f_start) or f_start >= fsearch.big:
        raise ConvergenceError("the objective cannot be evaluated at the starting values of θ")
    found = None
    if newton_search and fsearch is not fc and grad is None:
        found = run_newton_search(fsearch, fc, start, f_start, lower, upper)
    if found is None:
        message = _run(optimizer, fsearch, start, lower, upper, options, grad)
        x = fsearch.best_x.copy()
        if fsearch is not fc:
            fc(x)  # the search's best point in full precision: the tests below compare against it
    else:
        x = found[0]
        message = "a Newton step on single-precision finite differences"
    restarts = 0
    if restart_edge:
        for _ in range(3):
            at = np.flatnonzero(np.isfinite(lower) & (x == lower))
            if not len(at):
                break
            f0 = fc.best_f
            down = []
            for i in at:
                xp = x.copy()
                xp[i] = lower[i] + 1e-5
                if (fc(xp) - f0) / 1e-5 < 0:
                    down.append(i)
            if not down:
                break
            restarts += 1
            # restart away from the bound: a scalar term's θ = 0 is a stationary point of the objective
            x0 = x.copy()
            x0[down] = np.where(start[down] > lower[down], start[down], lower[down] + 1.0)
            message = _run(optimizer, fsearch, x0, lower, upper, options, grad)
            x = fsearch.best_x.copy()
            if fsearch is not fc:
                fc(x)
    # snap parameters that are essentially on their bound
    snapped = []
    for i in np.flatnonzero(np.isfinite(lower) & (x > lower) & (x < lower + boundary_tol)):
        xs = x.copy()
        xs[i] = lower[i]
        fs = fc(xs)
        if fs <= fc.best_f + 1e-10 * max(1.0, abs(fc.best_f)):
            x = xs
            fc.best_x, fc.best_f = xs, min(fs, fc.best_f)
            snapped.append(int(i))
    fbest = float(f(x))
    if fsearch is not fc:  # one count for both
        fc.n += fsearch.n
        fsearch.n = 0
    summary = OptSummary(
        optimizer=optimizer,
        theta_start=start,
        theta=x,
        lower=lower,
        upper=upper,
        objective=fbest,
        feval=fc.n,
        seconds=0.0,
        message=message,
        restarts=restarts,
        snapped=snapped,
    )
    run_check = check is True or (check == "auto" and len(x) <= 20)
    if run_check:
        x, fbest = _newton_finish(fc, x, lower, upper, fbest, summary, optimizer, options, grad=grad,
                                  hessian=None if found is None or not np.array_equal(x, found[0]) else found[2])
    elif optimizer == "bobyqa" and len(x) > 1 and "maxeval reached" not in message:
        # (a search stopped by the caller's evaluation limit is not continued past it)
        x, fbest = _polish(fc, x, lower, upper, fbest, summary, options)
    if "maxeval reached" in message or "aximum number of function evaluations" in message:
        summary.warnings.append(
            f"model may not have converged: the optimizer stopped at its evaluation limit ({message}); "
            "raise maxfev or try another optimizer"
        )
    summary.feval = fc.n
    summary.geval = ngrad[0]
    summary.seconds = time.perf_counter() - t0
    return summary


def _unscaled(summary: OptSummary, sc: np.ndarray) -> OptSummary:
    """An :class:`OptSummary` of a search in ``x = sc · θ``, in θ's units."""
    summary.theta_start = summary.theta_start / sc
    summary.theta = summary.theta / sc
    summary.lower, summary.upper = summary.lower / sc, summary.upper / sc
    if summary.gradient is not None:
        summary.gradient = summary.gradient * sc
    if summary.hessian is not None:
        summary.hessian = summary.hessian * np.outer(sc, sc)
    return summary
