"""``lmer()`` and the fitted model.

``lmer`` composes the public steps the way lme4 does
(``lFormula -> mkLmerDevfun -> optimizeLmer -> mkMerMod``)::

    d = design(formula, data)              # modelframe.py
    f = d.objective_function(REML)         # pls.py
    opt = minimize_theta(f, d.theta_start, d.lower)   # optimize.py
    LinearMixedModel(d, REML, opt)         # this module

The fitted :class:`LinearMixedModel` answers lme4's accessors with pandas
objects; printing lives in :mod:`sparselmm.display`, tests and intervals in
:mod:`sparselmm.inference`.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from sparselmm import validate
from sparselmm.errors import ArgumentError, ConvergenceWarning, DataError, ModelSpecError, SparseLMMError
from sparselmm.frame.modelframe import CrossProducts, Design, design
from sparselmm.fitting.optimize import OptSummary, minimize_theta
from sparselmm.backends.cholmod import PLSState, objective_from_parts, rx_inverse_gram

__all__ = ["lmer", "LinearMixedModel", "fit_design"]


def fit_design(
    d: Design,
    REML: bool = True,
    *,
    optimizer: str = "auto",
    start: np.ndarray | None = None,
    options: dict | None = None,
    check: bool | str = "auto",
    verbose: bool = False,
) -> "LinearMixedModel":
    """Fit a model whose design is already built (lme4's ``optimizeLmer`` + ``mkMerMod``).

    Parameters
    ----------
    d : Design
    REML : bool
        Minimise the REML criterion (default) or the profiled deviance.
    optimizer : str
        ``"auto"`` (BOBYQA from :meth:`Design.moment_start`, finished by Newton steps; see
        ``docs/architecture.md``) or one of :func:`sparselmm.optimize.minimize_theta`'s;
        ``"lbfgsb"`` uses the analytic gradient where it is available.
    start : numpy.ndarray, optional
        Starting θ (default: the moment start with ``"auto"``, else the design's, lme4's).
    options : dict, optional
        Options for the scipy optimiser.
    check : bool or "auto"
        Convergence check at the optimum.
    verbose : bool
        Log progress through :mod:`logging` at INFO level and print it.

    Returns
    -------
    LinearMixedModel
    """
    REML, optimizer, options, check, verbose = _checked_settings(REML, optimizer, options, check, verbose)
    state = d.pls()
    # the search runs on lme4's θ and objective; the state computes in the design's internal
    # units (sparselmm.conditioning): θ' = F θ, objective = internal + offset
    off = d.objective_offset(REML)
    F = d.theta_factor()
    to_int = d.internal_theta
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        _refuse_exact_fit(d, state, REML)
    f = _progress(lambda th: state.objective(to_int(th), REML=REML) + off, verbose)
    grad = None
    scale = None
    search = None
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
            from sparselmm.backends.cholmod import Gradient

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
        if getattr(state, "searches_in_single_precision", False):
            # a large dense Schur block: BOBYQA's passes factor it in single precision (the check
            # and the Newton finish in double); InstEval's search evaluations 29 -> 22 ms
            search = _progress(lambda th: state.search_objective(to_int(th), REML=REML) + off, verbose)
    if optimizer == "lbfgsb":
        from sparselmm.backends.cholmod import Gradient

        g = Gradient(state)
        if g.available:
            grad = _external_gradient(g, to_int, F, REML)
    from sparselmm.backends.schur import single_threaded

    # BLAS threads only where a large dense step asks for them; numpy's floating-point warnings
    # off, since θ far from the optimum (a user's start, a trust region's step) can overflow
    # ΛᵀAΛ: the objective is then inf, which the search handles, and nothing else is reported
    with single_threaded(), np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        opt = minimize_theta(
            f,
            theta0,
            d.lower,
            d.upper,
            optimizer=optimizer,
            options=options,
            check=check,
            grad=grad,
            scale=scale,
            search=search,
        )
        m = LinearMixedModel(d, REML, opt, state)
    for msg in opt.warnings:
        warnings.warn(msg, ConvergenceWarning, stacklevel=3)
    return m


#: the relative residual sum of squares the cross-products can tell from zero: below it, their
#: cancellation (``y'ᵀy' − y'ᵀX'b``) leaves no digit of the residual, and σ cannot be estimated
_RESOLUTION = 1e3 * float(np.finfo(float).eps)


def _refuse_exact_fit(d: Design, state: PLSState, REML: bool, big: float = 1e6) -> None:
    """Refuse a model whose random effects and fixed effects reproduce the response exactly.

    Then the residual variance is zero, the profiled objective has no minimum (it falls without
    bound as θ grows), and an optimiser wanders until its evaluation limit — lme4 runs 82,000
    evaluations on ``x ~ (poly(x, 2) || g) + (0 + f | i)`` and reports σ = 3e-4.

    * The fixed effects alone: the least-squares residual of ``y'`` on ``X'`` within the
      resolution of the cross-products (:data:`_RESOLUTION` of ``y'ᵀy'``).
    * With the random effects: at θ = ``big`` (in the units of :meth:`Design.theta_scale`) the
      penalised residual sum of squares is that of y on ``[X Z]`` plus the ridge term
      ``O(|b|²/big²)``.  When it is below 1e-9 of ``y'ᵀy'``, a second evaluation at ``big/10``
      tells the two apart: the ridge term grows a hundredfold there, a residual (precise data,
      σ ≈ 1e-6 of the response's spread, which lme4 fits) stays.  One evaluation in all for
      ordinary data.

    Raises
    ------
    ModelSpecError
    """
    cp = d.cross
    exact = _exact_by_fixed_effects(d)
    if not exact and cp.yty > 0:
        p_big = _pwrss_at(d, state, REML, big)
        if p_big is not None and p_big <= 1e-9 * cp.yty:
            p_near = _pwrss_at(d, state, REML, big / 10)
            exact = p_big <= 0 or (p_near is not None and p_big <= 0.05 * p_near)
    if exact:
        from sparselmm.spec.vocabulary import variables

        resp = set(variables(d.formula.response))
        own = [t.bar.text for t in d.terms if resp & set(variables(t.bar.lhs))]
        # the fixed part's terms as written (its columns' names hold factor levels, which need not
        # read as a formula: a level "2021-03-02 00:00:00" or "a b")
        own += [f.text for f in d.formula.fragments if f.role == "fixed" and resp & set(variables(f.text))]
        raise ModelSpecError(
            f"the model reproduces the response {d.formula.response!r} exactly (to within the precision of the "
            "cross-products): the fixed and random effects leave no residual variation, so the likelihood has no "
            "maximum (σ → 0)"
            + (f"; the response is in the model's own term(s) {', '.join(dict.fromkeys(own))}" if own else
               "; check that the response is not a function of the model's columns and that the grouping leaves "
               "replicates within its levels")
        )


def _pwrss_at(d: Design, state: PLSState, REML: bool, big: float) -> float | None:
    """The penalised residual sum of squares (engine's units) at θ = ``big`` on each diagonal
    entry in :meth:`Design.theta_scale`'s units, 0 below; None where the factor fails."""
    th = np.clip(np.where(d.lower == 0, big / d.theta_scale(), 0.0), d.lower, d.upper)
    state.pwrss = np.nan  # set by the update if the factorisation at this θ succeeds
    state.objective(d.internal_theta(th), REML)
    return float(state.pwrss) if np.isfinite(state.pwrss) else None


def _exact_by_fixed_effects(d: Design) -> bool:
    """Whether the fixed effects alone reproduce the response (``y − offset``), from the
    cross-products, in the engine's units (sparselmm.conditioning).

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


def _checked_settings(REML: Any, optimizer: Any, options: Any, check: Any, verbose: Any) -> tuple:
    """The fit's settings checked (sparselmm.validate): booleans that are booleans, a known
    optimizer, options it reads with values of the right type and range."""
    from sparselmm.fitting.optimize import OPTIMIZERS

    REML = validate.flag(REML, "REML")
    verbose = validate.flag(verbose, "verbose")
    check = validate.flag_or_auto(check, "check")
    optimizer = validate.choice(optimizer, "optimizer", OPTIMIZERS, fold=False)
    return REML, optimizer, validate.optimizer_options(optimizer, options), check, verbose


def _external_gradient(g: Any, to_int: Any, F: np.ndarray | None, REML: bool) -> Any:
    """The gradient in lme4's θ of the objective whose engine gradient is ``g``: ``F·∇f'(Fθ)``."""
    if F is None:
        return lambda th: g(to_int(th), REML)
    return lambda th: g(to_int(th), REML) * F


def _progress(f: Any, verbose: bool) -> Any:
    import logging
    import time

    log = logging.getLogger("sparselmm")
    if not verbose and not log.isEnabledFor(logging.INFO):
        return f
    t0 = time.perf_counter()
    count = [0, t0]

    def wrapped(th: np.ndarray) -> float:
        v = f(th)
        count[0] += 1
        now = time.perf_counter()
        if now - count[1] > 1.0 or count[0] == 1:
            count[1] = now
            msg = f"evaluation {count[0]}: objective {v:.6f}, {now - t0:.1f} s"
            log.info(msg)
            if verbose:
                print(msg, flush=True)
        return v

    return wrapped


def lmer(
    formula: str,
    data: pd.DataFrame,
    REML: bool = True,
    *,
    weights: Any = None,
    offset: Any = None,
    na_action: str = "omit",
    optimizer: str = "auto",
    start: np.ndarray | None = None,
    options: dict | None = None,
    check: bool | str = "auto",
    verbose: bool = False,
) -> "LinearMixedModel":
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
    optimizer : {"auto", "bobyqa", "cobyqa", "nelder_mead", "lbfgsb"}
        Optimiser for θ: ``"auto"`` is BOBYQA (lme4's default) from a moment-based start
        (:meth:`Design.moment_start`), finished by Newton steps on the convergence check's
        derivatives; ``"lbfgsb"`` runs L-BFGS-B on the analytic gradient where it is
        available (linear covariance structures).
    start : numpy.ndarray, optional
        Starting θ (default: the moment start with ``"auto"``, else lme4's).
    options : dict, optional
        Passed to the scipy optimiser.
    check : bool or "auto"
        Finite-difference convergence check at the optimum, whose derivatives also finish
        the search by Newton steps (``"auto"``: when θ has at most 20 entries); with
        ``optimizer="auto"`` on one grouping factor its Hessian comes from differences of
        the analytic gradient.
    verbose : bool
        Report progress of long fits.

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
    REML, optimizer, options, check, verbose = _checked_settings(REML, optimizer, options, check, verbose)
    if type(data).__module__.startswith("dask"):
        from sparselmm.frame.dask_design import lmer_dask

        return lmer_dask(
            formula, data, REML=REML, weights=weights, offset=offset, na_action=na_action,
            optimizer=optimizer, start=start, options=options, check=check, verbose=verbose,
        )
    from sparselmm.backends.schur import single_threaded

    with single_threaded():  # the design's small dense algebra too (a second BLAS thread only spins)
        d = design(formula, data, weights=weights, offset=offset, na_action=na_action)
        return fit_design(d, REML, optimizer=optimizer, start=start, options=options, check=check, verbose=verbose)


class LinearMixedModel:
    """A fitted linear mixed model (lme4's ``lmerMod``).

    Attributes follow lme4's accessors; statsmodels users find the aliases
    ``fe_params`` (= ``fixef``), ``bse`` (= ``se``), ``llf`` (= ``loglik``),
    ``cov_re`` (covariance of the first grouping factor's effects),
    ``vcomp``, ``random_effects`` (= ``ranef()``), ``k_fe``, ``k_re``, ``k_vc``.

    Parameters
    ----------
    design : Design
    REML : bool
    optsum : OptSummary
    state : PLSState, optional
        The PLS state; updated to the optimum θ.
    """

    def __init__(self, design: Design, REML: bool, optsum: OptSummary, state: PLSState | None = None) -> None:
        self.design = design
        self.REML = bool(REML)
        self.optsum = optsum
        self._state = state if state is not None else design.pls()
        self._theta_int = design.internal_theta(optsum.theta)
        if not self._state.update(self._theta_int):
            raise SparseLMMError("the objective cannot be evaluated at the optimum found")
        st = self._state
        # the state's pieces are in the design's internal units (sparselmm.conditioning); the
        # accessors below report lme4's
        self._beta = design.cond.beta(st.beta)
        self._u = st.u.copy()
        self._pwrss = st.pwrss
        self._ldL2, self._ldRX2 = st.ldL2, st.ldRX2
        self._RX = st.RX.copy()

    # ----- basic quantities ---------------------------------------------------------
    @property
    def formula(self) -> str:
        """The formula as given."""
        return self.design.formula.formula

    @property
    def theta(self) -> np.ndarray:
        """θ at the optimum, lme4's layout."""
        return self.optsum.theta.copy()

    @property
    def objective(self) -> float:
        """REML criterion (REML fit) or deviance (ML fit) at the optimum, lme4's scale."""
        d = self.design
        return (objective_from_parts(self._ldL2, self._ldRX2, self._pwrss, d.n, d.p, self.REML, d.cross.ldW)
                + d.objective_offset(self.REML))

    @property
    def nobs(self) -> int:
        """Number of observations used."""
        return self.design.n

    @property
    def fixef(self) -> pd.Series:
        """Fixed-effect estimates β̂ with R's names."""
        return pd.Series(self._beta, index=self.design.X_names, name="Estimate")

    @property
    def sigma(self) -> float:
        """Residual standard deviation."""
        d = self.design
        return float(d.cond.sigma_factor * np.sqrt(self._pwrss / (d.n - d.p if self.REML else d.n)))

    @property
    def vcov(self) -> pd.DataFrame:
        """Covariance of β̂: ``σ² (R_XᵀR_X)⁻¹``."""
        names = self.design.X_names
        return pd.DataFrame(self.sigma**2 * self._unscaled_vcov, index=names, columns=names)

    @cached_property
    def _unscaled_vcov_int(self) -> np.ndarray:
        """The engine's ``(R_X'ᵀR_X')⁻¹`` (sparselmm.conditioning)."""
        return rx_inverse_gram(self._RX)

    @cached_property
    def _unscaled_vcov(self) -> np.ndarray:
        """``Var(β̂) / σ²``, mapped from the engine's ``(R_X'ᵀR_X')⁻¹``."""
        d = self.design
        return d.cond.vcov(self._unscaled_vcov_int) / d.cond.sigma_factor**2

    @property
    def se(self) -> pd.Series:
        """Standard errors of β̂ (from the engine's units: right where a variance would under- or
        overflow, e.g. the coefficient of a column scaled by 1e200)."""
        d = self.design
        sd = d.cond.sd(self._unscaled_vcov_int) * (self.sigma / d.cond.sigma_factor)
        return pd.Series(sd, index=d.X_names, name="Std. Error")

    @property
    def npar(self) -> int:
        """Number of parameters: β, θ and σ."""
        return self.design.p + len(self.theta) + 1

    @property
    def loglik(self) -> float:
        """Log-likelihood (REML log-likelihood for a REML fit), ``-objective / 2``."""
        return -0.5 * self.objective

    @property
    def aic(self) -> float:
        """``-2 logLik + 2 npar``."""
        return -2 * self.loglik + 2 * self.npar

    @property
    def bic(self) -> float:
        """``-2 logLik + log(n) npar``."""
        return -2 * self.loglik + np.log(self.nobs) * self.npar

    @property
    def deviance(self) -> float:
        """``-2 logLik`` (the ML deviance for ML fits; the REML criterion for REML fits)."""
        return -2 * self.loglik

    @property
    def df_resid(self) -> int:
        """Residual degrees of freedom, ``n - npar`` (lme4's ``df.residual``)."""
        return self.nobs - self.npar

    @property
    def ngroups(self) -> dict[str, int]:
        """Grouping factor name -> number of levels."""
        return self.design.ngroups

    @property
    def singular(self) -> bool:
        """lme4's ``isSingular``: some θ with lower bound 0 is below 1e-4."""
        lo = self.design.lower
        return bool(np.any(self.theta[lo == 0] < 1e-4))

    @property
    def converged(self) -> bool:
        """False when the convergence check raised a warning."""
        return self.optsum.converged

    # ----- random effects -----------------------------------------------------------
    def _blocks(self) -> list[np.ndarray]:
        return self._state.blocks(self.theta)

    @cached_property
    def _b(self) -> np.ndarray:
        """The conditional modes ``b = Λu`` in the response's units (``s_y b'``)."""
        self._state.update(self._theta_int)
        return self.design.cond.y_scale * self._state.lambda_times(self._theta_int, self._u)

    def _term_effects(self) -> list[pd.DataFrame]:
        out = []
        for t, lo, hi in zip(self.design.terms, self.design.Gp[:-1], self.design.Gp[1:]):
            out.append(pd.DataFrame(self._b[lo:hi].reshape(t.nlevels, t.k), index=t.levels, columns=t.columns))
        return out

    def ranef(self) -> dict[str, pd.DataFrame]:
        """Conditional modes of the random effects, one DataFrame per grouping factor.

        Terms on the same factor (``(x || g)``) are joined column-wise, as lme4's ``ranef`` does.

        Returns
        -------
        dict
            grouping factor -> DataFrame (index: level as str, columns: term names).
        """
        out: dict[str, pd.DataFrame] = {}
        for t, df in zip(self.design.terms, self._term_effects()):
            if t.group in out:
                prev = out[t.group]
                df = df.rename(columns=lambda c: f"{c}.1" if c in prev.columns else c)
                out[t.group] = pd.concat([prev, df], axis=1)
            else:
                out[t.group] = df
        return out

    @cached_property
    def _cond_var_blocks(self) -> list[np.ndarray]:
        """Per term, the (nlevels, k, k) blocks of ``σ² Λ M⁻¹ Λᵀ`` (lme4's ``condVar``)."""
        d = self.design
        st = self._state
        st.update(self._theta_int)  # M is the same matrix in both units
        if all(t.k == 1 for t in d.terms):  # scalar terms: diag(M⁻¹) is all that is needed
            md = st.minv_diag()
            minv_blocks = [md[lo:hi].reshape(-1, 1, 1) for lo, hi in zip(d.Gp[:-1], d.Gp[1:])]
        else:
            minv_blocks = st.minv_diag_blocks()
        out = []
        s2 = self.sigma**2
        for T, B in zip(self._blocks(), minv_blocks):
            out.append(s2 * (T @ B @ T.T))
        return out

    def ranef_table(self) -> pd.DataFrame:
        """Conditional modes and conditional SDs in long form (R's ``as.data.frame(ranef(m, condVar=TRUE))``).

        Returns
        -------
        pandas.DataFrame
            Columns ``grpvar``, ``term``, ``grp``, ``condval``, ``condsd``.
        """
        rows = []
        for t, eff, cv in zip(self.design.terms, self._term_effects(), self._cond_var_blocks):
            sd = np.sqrt(np.maximum(np.diagonal(cv, axis1=1, axis2=2), 0))
            for c, col in enumerate(t.columns):
                rows.append(
                    pd.DataFrame(
                        {
                            "grpvar": t.group,
                            "term": col,
                            "grp": t.levels,
                            "condval": eff[col].to_numpy(),
                            "condsd": sd[:, c],
                        }
                    )
                )
        return pd.concat(rows, ignore_index=True)

    def coef(self) -> dict[str, pd.DataFrame]:
        """Fixed plus random effects per level (lme4's ``coef``).

        Returns
        -------
        dict
            grouping factor -> DataFrame with one column per fixed effect.
        """
        out = {}
        fe = self.fixef
        for g, re in self.ranef().items():
            df = pd.DataFrame(np.tile(fe.to_numpy(), (len(re), 1)), index=re.index, columns=fe.index)
            for c in re.columns:
                if c in df.columns:
                    df[c] = df[c] + re[c]
                else:
                    df[c] = re[c]
            out[g] = df
        return out

    # ----- variance components ------------------------------------------------------
    def _term_covariances(self) -> list[np.ndarray]:
        s2 = self.sigma**2
        return [s2 * (T @ T.T) for T in self._blocks()]

    def varcorr(self) -> pd.DataFrame:
        """Variance components in R's ``as.data.frame(VarCorr(m))`` layout.

        Returns
        -------
        pandas.DataFrame
            Columns ``grp``, ``var1``, ``var2``, ``vcov``, ``sdcor``: per term,
            the variances (``var2`` missing) then the covariances with the
            correlation in ``sdcor``; the residual last.  A factor that carries
            several terms is named ``g``, ``g.1``, ... as R's ``make.unique`` does.
        """
        rows = []
        seen: dict[str, int] = {}
        for t, S in zip(self.design.terms, self._term_covariances()):
            n = seen.get(t.group, 0)
            seen[t.group] = n + 1
            grp = t.group if n == 0 else f"{t.group}.{n}"
            sd = np.sqrt(np.diag(S))
            for i, c in enumerate(t.columns):
                rows.append((grp, c, None, S[i, i], sd[i]))
            for j in range(t.k):
                for i in range(j + 1, t.k):
                    corr = S[i, j] / (sd[i] * sd[j]) if sd[i] > 0 and sd[j] > 0 else np.nan
                    rows.append((grp, t.columns[j], t.columns[i], S[i, j], corr))
        rows.append(("Residual", None, None, self.sigma**2, self.sigma))
        return pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])

    # ----- fitted values and residuals -----------------------------------------------
    def fitted(self) -> pd.Series:
        """Fitted values ``Xβ̂ + Zb̂`` (+ offset), indexed like the rows used."""
        d = self.design
        eta = d.X @ self._beta + d.Zt.T @ self._b
        if d.offset is not None:
            eta = eta + d.offset
        return pd.Series(eta, index=d.row_index, name="fitted")

    def residuals(self, type: str = "response") -> pd.Series:
        """Residuals ``y - fitted`` (``"response"``) or scaled by ``√w / σ`` (``"pearson"``).

        Parameters
        ----------
        type : {"response", "pearson"}
        """
        r = self.design.y - self.fitted().to_numpy()
        if type == "pearson":
            w = 1.0 if self.design.weights is None else np.sqrt(self.design.weights)
            r = r * w / self.sigma
        elif type != "response":
            raise ArgumentError(f"residual type must be 'response' or 'pearson', got {type!r}")
        return pd.Series(r, index=self.design.row_index, name="residuals")

    # ----- statsmodels aliases --------------------------------------------------------
    @property
    def fe_params(self) -> pd.Series:
        """Alias of :attr:`fixef` (statsmodels' name)."""
        return self.fixef

    @property
    def bse(self) -> pd.Series:
        """Alias of :attr:`se` (statsmodels' name)."""
        return self.se

    @property
    def llf(self) -> float:
        """Alias of :attr:`loglik` (statsmodels' name)."""
        return self.loglik

    @property
    def random_effects(self) -> dict[str, pd.DataFrame]:
        """Alias of :meth:`ranef` (statsmodels' name)."""
        return self.ranef()

    @property
    def cov_re(self) -> pd.DataFrame:
        """Covariance matrix of the first term's random effects (statsmodels' ``cov_re``)."""
        t = self.design.terms[0]
        S = self._term_covariances()[0]
        return pd.DataFrame(S, index=t.columns, columns=t.columns)

    @property
    def vcomp(self) -> np.ndarray:
        """Variances of every term's columns (statsmodels' ``vcomp``, here for all terms)."""
        return np.concatenate([np.diag(S) for S in self._term_covariances()])

    @property
    def k_fe(self) -> int:
        """Number of fixed effects."""
        return self.design.p

    @property
    def k_re(self) -> int:
        """Number of random-effect covariance parameters (length of θ)."""
        return len(self.theta)

    @property
    def k_vc(self) -> int:
        """Number of variance components (random-effect variances)."""
        return int(sum(t.k for t in self.design.terms))

    # ----- refitting ------------------------------------------------------------------
    def refit(self, new_y: Any = None, *, REML: bool | None = None) -> "LinearMixedModel":
        """Refit to a new response (same design), or with ``REML`` changed (lme4's ``refit``/``refitML``).

        Parameters
        ----------
        new_y : array-like, optional
            New response of length ``nobs``.
        REML : bool, optional
            Fit criterion; default: as this model.
        """
        d = self.design
        reml = self.REML if REML is None else validate.flag(REML, "REML")
        if new_y is not None:
            if isinstance(new_y, (pd.Series, pd.DataFrame)):  # matched to the rows of the fit by label
                from sparselmm.frame.modelframe import vector_argument

                y = vector_argument(new_y, pd.DataFrame(index=d.row_index), "new_y")
            else:
                y = validate.real_array(new_y, "new_y", finite=False, flatten=True)
            if len(y) != d.n:
                raise DataError(f"new response has length {len(y)}, the model has {d.n} observations")
            if not np.all(np.isfinite(y)):
                raise DataError("new response has missing or infinite values")
            y_adj = y if d.offset is None else y - d.offset
            cond = d.cond.with_response(y_adj, d.X, d.weights)
            cross = CrossProducts.from_arrays(d.Zt, cond.X(d.X), cond.y(y_adj, d.X), cond.w(d.weights))
            d = replace(d, y=y, cross=cross, conditioning=cond)
        return fit_design(d, reml, optimizer=self.optsum.optimizer, start=self.theta, check=False)

    # ----- inference (sparselmm.inference) ---------------------------------------------
    def coef_table(self, ddf: str = "satterthwaite") -> pd.DataFrame:
        """Fixed effects with standard errors, df, t and p (see :func:`sparselmm.inference.coef_table`)."""
        from sparselmm.stats.inference import coef_table

        return coef_table(self, ddf=ddf)

    def confint(self, method: str = "profile", level: float = 0.95, **kwargs: Any) -> pd.DataFrame:
        """Confidence intervals (see :func:`sparselmm.inference.confint`)."""
        from sparselmm.stats.inference import confint

        return confint(self, method=method, level=level, **kwargs)

    def predict(
        self, newdata: pd.DataFrame | None = None, re_form: Any = None, allow_new_levels: bool = False,
        offset: Any = None,
    ) -> pd.Series:
        """Predictions for new data (see :func:`sparselmm.inference.predict`)."""
        from sparselmm.stats.inference import predict

        return predict(self, newdata, re_form=re_form, allow_new_levels=allow_new_levels, offset=offset)

    def simulate(self, nsim: int = 1, seed: int | None = None) -> pd.DataFrame:
        """Simulated responses (see :func:`sparselmm.inference.simulate`)."""
        from sparselmm.stats.inference import simulate

        return simulate(self, nsim=nsim, seed=seed)

    # ----- printing ---------------------------------------------------------------------
    def summary(self, ddf: str = "satterthwaite") -> str:
        """lme4's ``summary()`` text (see :mod:`sparselmm.display`)."""
        from sparselmm.report.display import summary_text
        from sparselmm.stats.inference import DDF

        return summary_text(self, ddf=validate.choice(ddf, "ddf", DDF))

    def __repr__(self) -> str:
        from sparselmm.report.display import short_text

        return short_text(self)

    def __str__(self) -> str:
        return self.__repr__()

    # ----- plots (sparselmm.plots; needs matplotlib) --------------------------------------
    def plot_ranef(self, **kw: Any) -> Any:
        """Caterpillar plot of the conditional modes (see :func:`sparselmm.plots.plot_ranef`)."""
        from sparselmm.report.plots import plot_ranef

        return plot_ranef(self, **kw)

    def plot_residuals(self, **kw: Any) -> Any:
        """Residuals vs fitted and a normal QQ plot (see :func:`sparselmm.plots.plot_residuals`)."""
        from sparselmm.report.plots import plot_residuals

        return plot_residuals(self, **kw)
