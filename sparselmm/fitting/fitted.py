"""The fitted model's estimates and lme4's accessors (lme4's ``mkMerMod`` and ``merMod`` methods).

:class:`FittedModel` holds the design, the search's :class:`~sparselmm.fitting.optimize.OptSummary`
and the PLS state at the optimum, and answers in lme4's units (``fixef``, ``vcov``, ``sigma``,
``theta``, ``ranef()``, ``varcorr()``, ...); :meth:`FittedModel.fit` is the one place where a
search becomes a model.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, Self

import numpy as np
import pandas as pd

from sparselmm import validate
from sparselmm.backends.base import CrossProducts, PLSBackend, objective_from_parts, rx_inverse_gram
from sparselmm.errors import ArgumentError, ConvergenceWarning, DataError, SingularFitWarning, SparseLMMError
from sparselmm.fitting.control import FitControl
from sparselmm.fitting.optimize import OptSummary
from sparselmm.fitting.search import search
from sparselmm.frame.dask_design import dask_design, is_dask_dataframe
from sparselmm.frame.modelframe import Design, design, vector_argument
from sparselmm.spec.formula import update_formula
from sparselmm.threads import single_threaded

__all__ = ["FittedModel", "Call", "term_effects_of", "ranef_of", "varcorr_frame"]


@dataclass(frozen=True)
class Call:
    """How a model was fitted (lme4's ``m@call``): what :meth:`FittedModel.update` changes.

    Attributes
    ----------
    formula : str
    data : pandas.DataFrame or dask.dataframe.DataFrame
        The data as given (a reference, not a copy).
    weights, offset : Any
        The arguments as given (column names, or arrays).
    na_action : str
    contrasts : mapping or None
    control : FitControl
    """

    formula: str
    data: Any
    weights: Any = None
    offset: Any = None
    na_action: str = "omit"
    contrasts: Any = None
    control: FitControl | None = None


def term_effects_of(design: Design, b: np.ndarray) -> list[pd.DataFrame]:
    """Per random-effect term (lme4's order), the conditional modes ``b`` (Z's column order):
    levels × the term's columns."""
    return [pd.DataFrame(b[lo:hi].reshape(t.nlevels, t.k), index=t.levels, columns=t.columns)
            for t, lo, hi in zip(design.terms, design.Gp[:-1], design.Gp[1:])]


def ranef_of(design: Design, effects: list[pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """lme4's ``ranef``: the terms' effects joined per grouping factor, column-wise (a column name
    a factor already has gets ``.1``)."""
    out: dict[str, pd.DataFrame] = {}
    for t, df in zip(design.terms, effects):
        if t.group in out:
            prev = out[t.group]
            df = df.rename(columns=lambda c: f"{c}.1" if c in prev.columns else c)
            out[t.group] = pd.concat([prev, df], axis=1)
        else:
            out[t.group] = df
    return out


def varcorr_frame(design: Design, covariances: list[np.ndarray], sigma: float | None) -> pd.DataFrame:
    """R's ``as.data.frame(VarCorr(m))`` from each term's covariance matrix: per term the variances
    (``var2`` missing) then the covariances with the correlation in ``sdcor``; a factor with several
    terms named ``g``, ``g.1``, ... as R's ``make.unique``; the residual last, unless ``sigma`` is
    None (a GLMM without a dispersion)."""
    rows = []
    seen: dict[str, int] = {}
    for t, S in zip(design.terms, covariances):
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
    if sigma is not None:
        rows.append(("Residual", None, None, sigma**2, sigma))
    return pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])


class FittedModel:
    """A fitted linear mixed model (lme4's ``lmerMod``): the estimates and lme4's accessors.

    :class:`sparselmm.LinearMixedModel` adds the methods that reach the tests, printing and
    plots (``coef_table``, ``confint``, ``predict``, ``simulate``, ``summary``, the plots);
    :mod:`sparselmm.stats` and :mod:`sparselmm.report` work on this class.

    Attributes follow lme4's accessors; statsmodels users find the aliases
    ``fe_params`` (= ``fixef``), ``bse`` (= ``se``), ``llf`` (= ``loglik``),
    ``cov_re`` (covariance of the first grouping factor's effects),
    ``vcomp``, ``random_effects`` (= ``ranef()``), ``k_fe``, ``k_re``, ``k_vc``.

    Parameters
    ----------
    design : Design
    REML : bool
    optsum : OptSummary
    state : PLSBackend, optional
        The PLS state; updated to the optimum θ.
    """

    def __init__(self, design: Design, REML: bool, optsum: OptSummary, state: PLSBackend | None = None) -> None:
        self.design = design
        self.REML = bool(REML)
        self.optsum = optsum
        self._state = state if state is not None else design.pls()
        self._theta_int = design.internal_theta(optsum.theta)
        if not self._state.update(self._theta_int):
            raise SparseLMMError("the objective cannot be evaluated at the optimum found")
        st = self._state
        # the state's pieces are in the design's internal units (sparselmm.frame.conditioning); the
        # accessors below report lme4's
        self._beta = design.cond.beta(st.beta)
        self._u = st.u.copy()
        self._pwrss = st.pwrss
        self._ldL2, self._ldRX2 = st.ldL2, st.ldRX2
        self._RX = st.RX.copy()
        self._memo: dict[str, Any] = {}
        #: how the model was fitted (set by :meth:`fit`; None for a model made from a design by hand)
        self.call: Call | None = None

    # ----- pickling: the factor is rebuilt, not serialised --------------------------
    def __getstate__(self) -> dict[str, Any]:
        """Everything but the PLS states (a CHOLMOD factor cannot be pickled): the backend's
        name instead, and the derived quantities that are plain data (Satterthwaite's
        derivatives, say); a second state in the memo is made again when it is asked for."""
        out = self.__dict__.copy()
        out["_state"] = self._state.name
        out["_memo"] = {k: v for k, v in self._memo.items() if not isinstance(v, PLSBackend)}
        return out

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore a pickled model: the PLS state made anew on the same backend and updated to θ̂
        (one factorisation), so every accessor, test and refit gives what the original gave."""
        self.__dict__.update(state)
        st = self.design.pls(state["_state"])
        if not st.update(self._theta_int):  # pragma: no cover - it factored before pickling
            raise SparseLMMError("the objective cannot be evaluated at the saved optimum")
        self._state = st

    def memo(self, key: str, make: Any) -> Any:
        """A quantity derived from this fit alone (a second PLS state, Satterthwaite's
        derivatives), computed on the first request and kept.

        Parameters
        ----------
        key : str
        make : callable
            Computes the quantity (no arguments).
        """
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    @classmethod
    def fit(cls, design: Design, REML: bool, control: FitControl, stacklevel: int = 3, call: Call | None = None) -> "Self":
        """Search θ for a design (:func:`sparselmm.fitting.search.search`) and make the fitted model.

        Parameters
        ----------
        design : Design
        REML : bool
        control : FitControl
        stacklevel : int
            Where the convergence warnings point (as :func:`warnings.warn`'s, counted from here).
        call : Call, optional
            How the design was made, for :meth:`update`.

        Returns
        -------
        FittedModel
            An instance of the class it is called on.
        """
        # BLAS on one thread and numpy's floating-point warnings off, as for the search (θ far from
        # the optimum can overflow ΛᵀAΛ: the objective is then inf, which the search handles)
        with single_threaded(), np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            opt, state = search(design, REML, control)
            m = cls(design, REML, opt, state)
        m.call = call
        for msg in opt.warnings:
            warnings.warn(msg, ConvergenceWarning, stacklevel=stacklevel)
        if m.singular:  # lme4's message at fit time, once per fit
            warnings.warn("boundary (singular) fit: see help('isSingular')", SingularFitWarning, stacklevel=stacklevel)
        return m

    # ----- basic quantities ---------------------------------------------------------
    @property
    def backend(self) -> str:
        """The name of the PLS backend the fit ran on (``Design.pls``'s choice: ``"cholmod"``,
        ``"schur"``, ``"blockdiag"``, ...)."""
        return self._state.name

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
        """The engine's ``(R_X'ᵀR_X')⁻¹`` (sparselmm.frame.conditioning)."""
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
    def b(self) -> np.ndarray:
        """The conditional modes ``b = Λu`` in Z's column order, in the response's units
        (``s_y b'``; lme4's ``getME(m, "b")``)."""
        self._state.update(self._theta_int)
        return self.design.cond.y_scale * self._state.lambda_times(self._theta_int, self._u)

    def term_effects(self) -> list[pd.DataFrame]:
        """Per random-effect term (lme4's order), its conditional modes: levels × the term's columns."""
        return term_effects_of(self.design, self.b)

    def ranef(self) -> dict[str, pd.DataFrame]:
        """Conditional modes of the random effects, one DataFrame per grouping factor.

        Terms on the same factor (``(x || g)``) are joined column-wise, as lme4's ``ranef`` does.

        Returns
        -------
        dict
            grouping factor -> DataFrame (index: level as str, columns: term names).
        """
        return ranef_of(self.design, self.term_effects())

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
        for t, eff, cv in zip(self.design.terms, self.term_effects(), self._cond_var_blocks):
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
        return varcorr_frame(self.design, self._term_covariances(), self.sigma)

    # ----- fitted values and residuals -----------------------------------------------
    def fitted(self) -> pd.Series:
        """Fitted values ``Xβ̂ + Zb̂`` (+ offset), indexed like the rows used."""
        d = self.design
        eta = d.X @ self._beta + d.Zt.T @ self.b
        if d.offset is not None:
            eta = eta + d.offset
        return pd.Series(eta, index=d.row_index, name="fitted")

    def residuals(self, type: str = "response", scaled: bool = False) -> pd.Series:
        """Residuals as lme4's ``residuals(m, type, scaled)``: ``y - fitted`` (``"response"``) or
        ``√w (y - fitted)`` (``"pearson"``, the prior weights' square roots; without weights the
        same), divided by σ̂ when ``scaled``.

        Parameters
        ----------
        type : {"response", "pearson"}
        scaled : bool
            Divide by the residual standard deviation σ̂ (lme4's ``scaled = TRUE``; the summary's
            "Scaled residuals" are the scaled Pearson residuals).
        """
        r = self.design.y - self.fitted().to_numpy()
        if type == "pearson":
            if self.design.weights is not None:
                r = r * np.sqrt(self.design.weights)
        elif type != "response":
            raise ArgumentError(f"residual type must be 'response' or 'pearson', got {type!r}")
        if validate.flag(scaled, "scaled"):
            r = r / self.sigma
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
    def update(
        self, formula: str | None = None, *, data: Any = None, REML: bool | None = None,
        control: FitControl | None = None, **settings: Any,
    ) -> "Self":
        """Fit again with some of the call changed (R's ``update``): a formula in R's
        ``update.formula`` spelling (``". ~ . - Days"``, ``"~ . + (1 | item)"``), new data (the
        same kind of data frame), ``REML``, or fit settings; the rest as in this fit.

        Returns
        -------
        FittedModel
            A new fit, of this model's class.

        Raises
        ------
        SparseLMMError
            For a model not fitted by ``lmer()`` (no call to change), or new data of another kind.
        """
        call = self.call
        if call is None:
            raise SparseLMMError("update() needs the call of lmer(): this model was made from a design; use fit_design()")
        new = replace(
            call,
            formula=call.formula if formula is None else update_formula(call.formula, formula),
            data=call.data if data is None else data,
            control=FitControl.from_settings(control or call.control, settings, caller="update",
                                             own=("formula", "data", "REML")),
        )
        if is_dask_dataframe(new.data) != is_dask_dataframe(call.data):
            raise SparseLMMError("update(data=...) with another kind of data frame (pandas / Dask): fit it with lmer()")
        if is_dask_dataframe(new.data):
            d = dask_design(new.formula, new.data, weights=new.weights, offset=new.offset, na_action=new.na_action)
        else:
            d = design(new.formula, new.data, weights=new.weights, offset=new.offset, na_action=new.na_action,
                       contrasts=new.contrasts)
        reml = self.REML if REML is None else validate.flag(REML, "REML")
        return type(self).fit(d, reml, new.control, call=new)

    def refit(self, new_y: Any = None, *, REML: bool | None = None) -> "Self":
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
        control = FitControl.make(optimizer=self.optsum.optimizer, start=self.theta, check=False)
        return self.fit(d, reml, control, call=self.call if new_y is None else None)
