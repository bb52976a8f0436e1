"""Generalised linear mixed models: :func:`glmer` (lme4's ``glmer``) and the fitted model.

The design is the linear model's (:func:`sparselmm.design`: the same formula grammar, Z, Λ's
pattern and θ's layout); the response is the family's (:mod:`sparselmm.families`): a binomial
response may be 0/1, a factor (its first level a failure), proportions with ``weights=`` the
trials, or ``cbind(successes, failures)``.  The fit is lme4's PIRLS and Laplace approximation
(:mod:`sparselmm.fitting.pirls`) and its two-stage optimisation
(:mod:`sparselmm.fitting.glmer_search`).
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from sparselmm import families, validate
from sparselmm.errors import ArgumentError, ConvergenceWarning, DataError, FormulaError, SingularFitWarning
from sparselmm.fitting.fitted import ranef_of, term_effects_of, varcorr_frame
from sparselmm.fitting.glmer_search import GLMMFit, deviance_hessian, fit_glmm, rx_vcov
from sparselmm.fitting.pirls import GLMMProblem, working
from sparselmm.frame.dask_design import is_dask_dataframe
from sparselmm.frame.modelframe import Design, design
from sparselmm.stats import inference
from sparselmm.threads import single_threaded

__all__ = ["glmer", "GeneralizedLinearMixedModel"]

_Y = "sparselmm_glmer_response_"
_N = "sparselmm_glmer_trials_"


def _split_formula(formula: str) -> tuple[str, str]:
    depth = 0
    for i, ch in enumerate(formula):
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "~" and depth == 0:
            return formula[:i].strip(), formula[i + 1 :].strip()
    raise FormulaError(f"the formula {formula!r} has no '~'")


def _split_args(text: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "(["
        depth -= ch in ")]"
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    out.append(cur.strip())
    return out


def _evaluate(expr: str, data: pd.DataFrame, what: str) -> np.ndarray:
    name = expr.strip().strip("`")
    if name in data.columns:
        return data[name].to_numpy()
    try:
        v = data.eval(expr.replace("`", ""), engine="python")
    except Exception as e:  # noqa: BLE001 - any failure of the expression is the user's to fix
        raise FormulaError(f"{what} {expr!r} cannot be evaluated on the data: {e}") from None
    return np.asarray(v)


def _response(formula: str, data: pd.DataFrame, fam: Any, weights: Any) -> tuple[str, pd.DataFrame, Any]:
    """The formula and data with the response in the family's terms: a binomial ``cbind(s, f)``
    as proportions with the trials as prior weights (times any given), a factor or boolean as 0/1."""
    lhs, rhs = _split_formula(formula)
    m = re.fullmatch(r"cbind\s*\((.*)\)", lhs, flags=re.S)
    if m:
        if fam.name != "binomial":
            raise FormulaError(f"cbind(successes, failures) is a binomial response; the family is {fam.name}")
        args = _split_args(m.group(1))
        if len(args) != 2:
            raise FormulaError(f"cbind() in the response takes two columns (successes, failures), got {len(args)}")
        s = np.asarray(_evaluate(args[0], data, "the successes"), dtype=float)
        f = np.asarray(_evaluate(args[1], data, "the failures"), dtype=float)
        tot = s + f
        bad = np.isfinite(tot) & ((s < 0) | (f < 0) | (s != np.round(s)) | (f != np.round(f)))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(f"cbind({args[0]}, {args[1]}): counts must be non-negative integers; row {data.index[i]!r} "
                            f"has {s[i]:g} and {f[i]:g}")
        if np.any(np.isfinite(tot) & (tot == 0)):
            raise DataError(f"cbind({args[0]}, {args[1]}): a row with no trials (successes + failures = 0)")
        out = data.copy()
        with np.errstate(invalid="ignore", divide="ignore"):
            out[_Y] = s / tot
        w = tot
        if weights is not None:
            w0 = out[weights].to_numpy(dtype=float) if isinstance(weights, str) else np.asarray(weights, dtype=float)
            w = w * w0
        out[_N] = w
        return f"{_Y} ~ {rhs}", out, _N
    name = lhs.strip("`")
    if name in data.columns:
        col = data[name]
        if isinstance(col.dtype, pd.CategoricalDtype) or col.dtype == object or col.dtype == bool or \
                pd.api.types.is_string_dtype(col.dtype):
            if fam.name != "binomial":
                raise DataError(f"the response {name!r} is not numeric: a factor response needs family='binomial'")
            if col.dtype == bool:
                y = col.astype(float)
            else:
                cat = col if isinstance(col.dtype, pd.CategoricalDtype) else col.astype("category")
                if len(cat.cat.categories) < 2:
                    raise DataError(f"the response {name!r} has one level only")
                y = pd.Series(np.where(cat.isna(), np.nan, (cat.cat.codes > 0).astype(float)), index=col.index)
            out = data.copy()
            out[_Y] = y  # R: the first level is a failure, every other a success
            return f"{_Y} ~ {rhs}", out, weights
    return formula, data, weights


class GeneralizedLinearMixedModel:
    """A fitted GLMM (lme4's ``glmerMod``): lme4's accessors.

    Parameters
    ----------
    design : Design
    problem : GLMMProblem
    fit : GLMMFit
    nAGQ : int
    formula : str
    """

    def __init__(self, design: Design, problem: GLMMProblem, fit: GLMMFit, nAGQ: int, formula: str) -> None:
        self.design, self.problem, self._fit, self.nAGQ = design, problem, fit, nAGQ
        self.formula = formula
        self.family = problem.family

    # ----- pickling: the CHOLMOD factor is rebuilt, not serialised ------------------
    def __getstate__(self) -> dict[str, Any]:
        """Everything but the PIRLS state's factor (it cannot be pickled): the fit's estimates,
        modes and derived quantities travel, the state is made anew when unpickled."""
        from dataclasses import replace

        out = self.__dict__.copy()
        out["_fit"] = replace(self._fit, state=None)
        out["_pirls_tol"] = self._fit.state.tol
        return out

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore a pickled fit: the PIRLS state analysed again (one symbolic analysis)."""
        from dataclasses import replace

        from sparselmm.fitting.pirls import PIRLSState

        tol = state.pop("_pirls_tol")
        self.__dict__.update(state)
        self._fit = replace(self._fit, state=PIRLSState(self.problem, tol=tol))

    # ----- estimates ----------------------------------------------------------------
    @property
    def theta(self) -> np.ndarray:
        """θ at the optimum (lme4's layout)."""
        return self._fit.theta.copy()

    @property
    def fixef(self) -> pd.Series:
        """β̂ with the fixed effects' names."""
        return pd.Series(self._fit.beta, index=self.design.X_names, name="Estimate")

    @property
    def b(self) -> np.ndarray:
        """The conditional modes ``b = Λu`` in Z's column order."""
        return np.asarray(self.design.Lambda(self._fit.theta) @ self._fit.result.u)

    @property
    def pirls_state(self) -> Any:
        """The fit's :class:`~sparselmm.fitting.pirls.PIRLSState` (its factor analysed, θ's ``ZΛ``
        cached): evaluates the deviance at other ``(θ, β)`` (the profile, the Hessian)."""
        return self._fit.state

    @property
    def u(self) -> np.ndarray:
        """The spherical conditional modes ``u``."""
        return self._fit.result.u.copy()

    @property
    def sigma(self) -> float:
        """1 for families without a dispersion (binomial, Poisson); else lme4's ``sigmaML``:
        ``√(pwrss/n)``, the working-weighted residual sum of squares plus ``‖u‖²`` at the modes."""
        if self.family.dispersion_free:
            return 1.0
        r = self._fit.result
        w, wr = working(self.problem, r.eta, r.mu)
        return float(np.sqrt((np.sum(w * wr * wr) + r.sqrL) / self.nobs))

    @property
    def objective(self) -> float:
        """The deviance lme4 minimised (Laplace, or nAGQ = 0's): ``-2 logLik``."""
        return float(self._fit.objective)

    @property
    def loglik(self) -> float:
        """lme4's ``logLik``: minus half the Laplace deviance."""
        return -0.5 * self.objective

    @property
    def npar(self) -> int:
        """Parameters counted by AIC: β, θ and, for families with a dispersion, σ."""
        return len(self._fit.beta) + len(self._fit.theta) + (0 if self.family.dispersion_free else 1)

    @property
    def aic(self) -> float:
        """lme4's AIC."""
        return -2.0 * self.loglik + 2.0 * self.npar

    @property
    def bic(self) -> float:
        """lme4's BIC."""
        return -2.0 * self.loglik + np.log(self.nobs) * self.npar

    @property
    def nobs(self) -> int:
        """Observations used."""
        return int(self.design.n)

    @property
    def df_resid(self) -> int:
        """lme4's ``df.residual``: observations less the parameters."""
        return self.nobs - self.npar

    @property
    def deviance(self) -> float:
        """lme4 1.1's ``deviance(m)`` of a GLMM: the sum of the squared deviance residuals at the
        conditional modes."""
        return float(self._fit.result.dev_sum)

    @property
    def singular(self) -> bool:
        """lme4's ``isSingular``: some θ with lower bound 0 is below 1e-4."""
        return bool(np.any(self._fit.theta[self.design.lower == 0] < 1e-4))

    @property
    def convergence_warnings(self) -> list[str]:
        """The convergence check's messages at the optimum (of stage 2; of stage 1 for ``nAGQ = 0``):
        a gradient or Hessian test that failed, or the evaluation limit reached (lme4's
        ``m@optinfo$conv$lme4$messages``).  Empty for a converged fit."""
        f = self._fit
        return list((f.stage2 if f.stage2 is not None else f.stage1).warnings)

    @property
    def converged(self) -> bool:
        """False when the convergence check raised a warning (:attr:`convergence_warnings`)."""
        return not self.convergence_warnings

    @property
    def ngroups(self) -> dict[str, int]:
        """Grouping factor -> number of levels."""
        return self.design.ngroups

    # ----- covariance of β̂ --------------------------------------------------------
    @cached_property
    def _hessian(self) -> np.ndarray:
        f = self._fit
        return deviance_hessian(f.state, f.theta, f.beta, f.result.u, nAGQ=max(1, self.nAGQ))

    def vcov_matrix(self, use_hessian: bool = True) -> np.ndarray:
        """Var(β̂): by default lme4's, from the Hessian of the Laplace deviance in ``(θ, β)``
        (``2 H⁻¹``'s β block); ``use_hessian=False`` for the one from the PIRLS system at the
        conditional modes (lme4's ``vcov(use.hessian = FALSE)``), times σ² where the family has
        a dispersion."""
        use_hessian = validate.flag(use_hessian, "use_hessian")
        m = len(self._fit.theta)
        if use_hessian and self.nAGQ > 0:  # lme4's calc.vcov.hess: no σ² (the deviance has it)
            return 2.0 * np.linalg.inv(self._hessian)[m:, m:]
        V = rx_vcov(self._fit.state, self._fit.theta, self._fit.result)
        return V * self.sigma**2 if not self.family.dispersion_free else V

    @property
    def vcov(self) -> pd.DataFrame:
        """lme4's default ``vcov(m)`` (Hessian-based)."""
        names = self.design.X_names
        return pd.DataFrame(self.vcov_matrix(), index=names, columns=names)

    @property
    def se(self) -> pd.Series:
        """Standard errors of β̂ (from :attr:`vcov`)."""
        return pd.Series(np.sqrt(np.diag(self.vcov_matrix())), index=self.design.X_names, name="Std. Error")

    def coef_table(self) -> pd.DataFrame:
        """glmer's coefficient table: ``Estimate``, ``Std. Error``, ``z value``, ``Pr(>|z|)`` (for
        families with a dispersion the statistic is labelled ``t value``, as lme4 labels it, with the
        same normal p-value)."""
        est, se = self.fixef.to_numpy(), self.se.to_numpy()
        z = est / se
        stat = "z value" if self.family.dispersion_free else "t value"
        return pd.DataFrame({"Estimate": est, "Std. Error": se, stat: z, "Pr(>|z|)": 2 * stats.norm.sf(np.abs(z))},
                            index=self.design.X_names)

    # ----- random effects ---------------------------------------------------------
    def term_effects(self) -> list[pd.DataFrame]:
        """Per random-effect term, its conditional modes: levels × the term's columns."""
        return term_effects_of(self.design, self.b)

    def ranef(self) -> dict[str, pd.DataFrame]:
        """lme4's ``ranef(m)``: grouping factor -> levels × columns (see
        :func:`sparselmm.fitting.fitted.ranef_of`)."""
        return ranef_of(self.design, self.term_effects())

    def ranef_table(self) -> pd.DataFrame:
        """lme4's ``as.data.frame(ranef(m, condVar = TRUE))``: the conditional modes and their
        conditional SDs, the diagonal of ``s² Λ M⁻¹ Λᵀ`` at the modes (``s`` = 1 for families
        without a dispersion, else σ̂)."""
        d, f = self.design, self._fit
        st, r = f.state, f.result
        Lam = d.Lambda(f.theta).tocsc()
        st.set_theta(f.theta)
        st.factor_at(working(self.problem, r.eta, r.mu)[0])
        s2 = 1.0 if self.family.dispersion_free else self.sigma**2
        minv_diag = getattr(st.factor, "minv_diag", None)
        dg = minv_diag() if minv_diag is not None and all(t.k == 1 for t in d.terms) else None
        lam_diag = Lam.diagonal()
        rows = []
        for t, lo, hi, eff in zip(d.terms, d.Gp[:-1], d.Gp[1:], self.term_effects()):
            if dg is not None:  # scalar terms: Λ is diagonal, diag(Λ M⁻¹ Λᵀ) = λ² diag(M⁻¹)
                diag = lam_diag[lo:hi] ** 2 * dg[lo:hi]
            else:  # diag(Λ M⁻¹ Λᵀ) on the term's columns, in chunks (never a q × q matrix)
                diag = np.empty(hi - lo)
                for c0 in range(lo, hi, 512):
                    c1 = min(hi, c0 + 512)
                    E = np.zeros((d.q, c1 - c0))
                    E[np.arange(c0, c1), np.arange(c1 - c0)] = 1.0
                    B = np.asarray(Lam @ st.factor(np.asarray(Lam.T @ E)))
                    diag[c0 - lo : c1 - lo] = B[np.arange(c0, c1), np.arange(c1 - c0)]
            var = s2 * diag.reshape(t.nlevels, t.k)
            for c, col in enumerate(t.columns):
                rows.append(pd.DataFrame({"grpvar": t.group, "term": col, "grp": t.levels,
                                          "condval": eff[col].to_numpy(), "condsd": np.sqrt(np.maximum(var[:, c], 0))}))
        return pd.concat(rows, ignore_index=True)

    def confint(self, method: str = "profile", level: float = 0.95, **kwargs: Any) -> pd.DataFrame:
        """Confidence intervals (lme4's ``confint``): ``"profile"`` (lme4's default; the fit's
        deviance profiled over (θ, β), binomial and Poisson families), ``"wald"`` (the fixed effects;
        the variance rows NaN, as lme4's) or ``"boot"`` (parametric bootstrap percentiles); the other
        arguments (``parm``, ``nsim``, ``seed``, ``n_jobs``, ``progress``) as
        :func:`sparselmm.stats.inference.confint`'s."""
        return inference.confint(self, method=method, level=level, **kwargs)

    def varcorr(self) -> pd.DataFrame:
        """lme4's ``as.data.frame(VarCorr(m))`` (no residual row for binomial and Poisson fits)."""
        d = self.design
        sigma = None if self.family.dispersion_free else self.sigma
        s2 = 1.0 if sigma is None else sigma**2
        cov = [s2 * (T @ T.T) for T in (t.structure.block(self._fit.theta[sl]) for t, sl in zip(d.terms, d.theta_slices))]
        return varcorr_frame(d, cov, sigma)

    # ----- fitted values, residuals, predictions ------------------------------------
    def fitted(self) -> pd.Series:
        """Fitted means ``μ̂ = g⁻¹(η̂)`` (lme4's ``fitted``), indexed like the rows used."""
        return pd.Series(self._fit.result.mu, index=self.design.row_index, name="fitted")

    def residuals(self, type: str = "deviance", scaled: bool = False) -> pd.Series:
        """lme4's residuals of a GLMM: ``"deviance"`` (default), ``"pearson"``, ``"response"``,
        ``"working"``; divided by σ̂ when ``scaled`` (lme4's ``scaled = TRUE``; σ̂ = 1 for binomial
        and Poisson fits)."""
        type = validate.choice(type, "type", {k: k for k in ("deviance", "pearson", "response", "working")})
        pb, fam, r = self.problem, self.family, self._fit.result
        y, mu = pb.y, r.mu
        with np.errstate(divide="ignore", invalid="ignore"):
            if type == "response":
                out = y - mu
            elif type == "working":
                out = working(pb, r.eta, mu)[1]
            elif type == "pearson":
                out = (y - mu) * np.sqrt(pb.prior_weights) / np.sqrt(fam.variance(mu))
            else:
                out = np.sign(y - mu) * np.sqrt(np.maximum(fam.dev_resids(y, mu, pb.prior_weights), 0.0))
        if validate.flag(scaled, "scaled"):
            out = out / self.sigma
        return pd.Series(out, index=self.design.row_index, name="residuals")

    def predict(self, newdata: pd.DataFrame | None = None, type: str = "link", re_form: Any = None,
                allow_new_levels: bool = False) -> pd.Series:
        """lme4's ``predict`` of a GLMM: the linear predictor (``type="link"``) or the mean
        (``"response"``), with the random effects ``re_form`` keeps (as
        :func:`sparselmm.stats.inference.predict`; the offset of the fit's own rows included)."""
        type = validate.choice(type, "type", {"link": "link", "response": "response"})
        eta = inference.predict(self, newdata, re_form=re_form, allow_new_levels=allow_new_levels)
        if type == "response":
            return pd.Series(self.family.link.linkinv(eta.to_numpy()), index=eta.index, name="predicted")
        return eta

    def simulate(self, nsim: int = 1, seed: Any = None) -> pd.DataFrame:
        """Responses simulated from the fit, unconditional on the random effects (lme4's
        ``simulate``): ``b* = Λ(θ̂)u*``, ``u* ~ N(0, I)``, ``μ* = g⁻¹(Xβ̂ + Zb* + offset)``, then the
        family's draw — binomial successes out of the trials (returned as proportions, the
        response as the fit takes it), Poisson counts.

        Raises
        ------
        ArgumentError
            For families with a dispersion (Gamma, inverse Gaussian: not available yet), a bad
            ``nsim`` or ``seed``.
        """
        nsim = validate.count(nsim, "nsim")
        rng = np.random.default_rng(validate.seed(seed))
        fam, pb, d = self.family, self.problem, self.design
        if fam.name not in ("binomial", "poisson"):
            raise ArgumentError(f"simulate() of a {fam.name} GLMM is not available yet (binomial and Poisson are)")
        U = rng.standard_normal((d.q, nsim))
        B = np.asarray(d.Lambda(self._fit.theta) @ U)
        eta = (pb.X @ self._fit.beta + pb.offset)[:, None] + np.asarray(d.Zt.T @ B)
        mu = fam.link.linkinv(eta)
        if fam.name == "poisson":
            Y = rng.poisson(mu).astype(float)
        else:
            trials = np.round(pb.prior_weights).astype(np.int64)[:, None]
            Y = rng.binomial(np.broadcast_to(trials, mu.shape), mu) / np.maximum(trials, 1)
        return pd.DataFrame(Y, index=d.row_index, columns=[f"sim_{i + 1}" for i in range(nsim)])

    def refit(self, new_y: Any) -> "GeneralizedLinearMixedModel":
        """The same model fitted to a new response (lme4's ``refit``): one value per row used, as
        the fit takes the response (binomial: proportions, the trials unchanged), started at θ̂.

        Raises
        ------
        DataError
            For a response of the wrong length or one the family cannot take.
        """
        y = np.asarray(new_y, dtype=float).ravel()
        pb = self.problem
        if len(y) != len(pb.y):
            raise DataError(f"refit() needs one response value per row used ({len(pb.y)}), got {len(y)}")
        y2, pw, n_trials, mustart = self.family.initialize(y, pb.prior_weights, name="new_y")
        pb2 = GLMMProblem(family=self.family, y=y2, n_trials=pb.n_trials, prior_weights=pw, offset=pb.offset,
                          X=pb.X, Zt=pb.Zt, design=pb.design, mustart=mustart)
        with single_threaded():
            fit = fit_glmm(pb2, self.nAGQ, start=self._fit.theta)
        return GeneralizedLinearMixedModel(self.design, pb2, fit, self.nAGQ, self.formula)

    def overdispersion(self) -> pd.Series:
        """The Pearson χ² of a binomial or Poisson fit against its residual df (the overdispersion
        figure: a ratio well above 1 says the variance exceeds the family's)."""
        r = self.residuals("pearson").to_numpy()
        chisq = float(np.sum(r * r))
        return pd.Series({"chisq": chisq, "ratio": chisq / self.df_resid, "rdf": float(self.df_resid),
                          "p": float(stats.chi2.sf(chisq, self.df_resid))})

    def summary(self) -> str:
        """lme4's ``summary()`` text of the fit (see :func:`sparselmm.report.display.glmm_summary_text`)."""
        from sparselmm.report import display

        return display.glmm_summary_text(self)

    def __repr__(self) -> str:
        return (f"Generalized linear mixed model fit by {'Laplace' if self.nAGQ == 1 else 'nAGQ = ' + str(self.nAGQ)} "
                f"({self.family.name}, {self.family.link.name}): {self.formula}\n"
                f"  logLik {self.loglik:.4f}, AIC {self.aic:.4f}, {self.nobs} observations")


def glmer(
    formula: str,
    data: pd.DataFrame,
    family: Any = "binomial",
    *,
    nAGQ: int = 1,
    weights: Any = None,
    offset: Any = None,
    na_action: str = "omit",
    verbose: bool = False,
    start: Any = None,
) -> GeneralizedLinearMixedModel:
    """Fit a generalised linear mixed model, as lme4's ``glmer``.

    Parameters
    ----------
    formula : str
        lme4 formula; the response may be ``cbind(successes, failures)`` (binomial), a factor
        or boolean column (binomial: the first level a failure), counts or proportions.
    data : pandas.DataFrame
    family : str or sparselmm.families.Family
        ``"binomial"``, ``"poisson"``, ``"Gamma"``, ``"inverse_gaussian"``, or a family object
        with its link (``slm.families.binomial(link="probit")``).
    nAGQ : int
        1: the Laplace approximation (lme4's default); 0: β optimised inside PIRLS (faster,
        approximate); 2 to 25: adaptive Gauss–Hermite quadrature with that many points, for a
        single random-effect term of one column (lme4's condition).
    weights, offset : array-like or str, optional
        Prior weights (binomial proportions: the trials) and an offset, as for :func:`sparselmm.lmer`.
    na_action : {"omit", "fail"}
    verbose : bool
        Show the progress of the evaluations.
    start : array-like, optional
        Starting θ.

    Returns
    -------
    GeneralizedLinearMixedModel

    Raises
    ------
    SparseLMMError
        For a bad formula, a response the family cannot take (a binomial response outside
        [0, 1] or with non-integer successes, a negative or non-integer count, a non-positive
        Gamma response), a link the family does not take, an ``nAGQ`` outside 0–25 or above 1
        with more than one scalar random-effect term.
    """
    fam = families.family(family)
    if is_dask_dataframe(data):
        raise ArgumentError("glmer() from a Dask DataFrame is not available: PIRLS reads every row at each scoring "
                            "step and each conjugate-gradient iteration (the 100,000-row crossed logistic benchmark "
                            "makes ~2,000 such passes), so a fit from partitions on disk would read the data "
                            "thousands of times; compute the data into pandas first (df.compute())")
    nAGQ = validate.count(nAGQ, "nAGQ", minimum=0, maximum=25)
    verbose = validate.flag(verbose, "verbose")
    f2, data2, w2 = _response(formula, data, fam, weights)
    with single_threaded():
        d = design(f2, data2, weights=w2, offset=offset, na_action=na_action,
                   residual_variance=not fam.dispersion_free)
        if nAGQ > 1 and (len(d.terms) != 1 or d.terms[0].k != 1):
            raise ArgumentError(f"nAGQ = {nAGQ} (adaptive Gauss-Hermite quadrature) needs a single random-effect "
                                f"term of one column, as lme4's; the model has {len(d.terms)} term(s): "
                                + ", ".join(t.bar.text for t in d.terms))
        pw = np.ones(d.n) if d.weights is None else np.asarray(d.weights, dtype=float)
        y, pw, n_trials, mustart = fam.initialize(np.asarray(d.y, dtype=float), pw, name=_split_formula(formula)[0])
        pb = GLMMProblem(family=fam, y=y, n_trials=n_trials, prior_weights=pw,
                         offset=np.zeros(d.n) if d.offset is None else np.asarray(d.offset, dtype=float),
                         X=np.asarray(d.X, dtype=float), Zt=d.Zt.tocsc(), design=d, mustart=mustart)
        fit = fit_glmm(pb, nAGQ, verbose=verbose,
                       start=None if start is None else validate.theta_start(start, len(d.theta_start), d.lower, d.upper))
    m = GeneralizedLinearMixedModel(d, pb, fit, nAGQ, formula)
    import warnings

    for msg in m.convergence_warnings:
        warnings.warn(msg, ConvergenceWarning, stacklevel=2)
    if m.singular:
        warnings.warn("boundary (singular) fit: see help('isSingular')", SingularFitWarning, stacklevel=2)
    return m
