"""Kenward–Roger adjusted covariance of β̂ and denominator degrees of freedom.

This reproduces R's ``pbkrtest::vcovAdj`` and ``pbkrtest::Lb_ddf`` /
``KRmodcomp`` (Kenward & Roger 1997; Halekoh & Højsgaard 2014), which is
what lmerTest's ``summary(m, ddf = "Kenward-Roger")`` reports, without ever
forming an n × n matrix.

The marginal covariance of y is written linearly in the variance parameters
γ = (γ_1, …, γ_m) as pbkrtest does:

.. math::

    Σ = \\sum_i γ_i G_i, \\qquad
    G_r = Z_t (I_{ℓ_t} ⊗ E_{ab}) Z_tᵀ, \\qquad G_m = W^{-1},

one parameter per free entry ``(a, b)``, ``a ≥ b``, of each term's ``k × k``
covariance matrix ``σ² T Tᵀ`` (``E_ab`` the symmetric indicator of that
entry; the structure's ``covariance_entries()``: all ``k(k+1)/2`` entries for
an unstructured term, the ``k`` variances for a diagonal one), in pbkrtest's order (term by term, lower
triangle column by column), and the residual variance σ² last.  With
``Φ = (XᵀΣ⁻¹X)⁻¹`` (the unadjusted ``vcov``):

.. math::

    P_i &= -XᵀΣ^{-1}G_iΣ^{-1}X, \\qquad Q_{ij} = XᵀΣ^{-1}G_iΣ^{-1}G_jΣ^{-1}X,\\\\
    I_{ij} &= \\operatorname{tr}(Σ^{-1}G_iΣ^{-1}G_j) - 2\\operatorname{tr}(ΦQ_{ij})
             + \\operatorname{tr}(ΦP_iΦP_j), \\qquad W = 2 I^{-1},\\\\
    U &= \\sum_{i,j} W_{ij}\\,(Q_{ij} - P_iΦP_j), \\qquad
    Φ_A = Φ + 2 Φ U Φ.

(``I/2`` is the expected REML information of γ; ``W`` estimates the
covariance of γ̂.  pbkrtest uses the generalised inverse when the smallest
absolute eigenvalue of ``I`` is below 1e-10, and so do we.)

Everything is computed in the space of the q random effects by Woodbury's
identity.  With ``C = ZᵀWZ`` and the other weighted cross-products of
:class:`~sparselmm.backends.base.CrossProducts`, ``M = ΛᵀCΛ + I`` and
``H = ΛM⁻¹Λᵀ``,

.. math::

    W^{1/2}Σ^{-1}W^{1/2} = σ^{-2}(I - \\tilde Z H \\tilde Zᵀ), \\qquad \\tilde Z = W^{1/2}Z,

so, with ``S = Σ⁻¹`` and ``F = I - HC``,

.. math::

    ZᵀSZ &= σ^{-2}(C - CHC), \\qquad ZᵀSX = σ^{-2}FᵀC_{ZX}, \\qquad
    XᵀSX = σ^{-2}(C_{XX} - C_{ZX}ᵀHC_{ZX}),\\\\
    ZᵀSW^{-1}SZ &= σ^{-4}FᵀCF, \\qquad ZᵀSW^{-1}SX = σ^{-2}Fᵀ(ZᵀSX),\\\\
    XᵀSW^{-1}SX &= σ^{-4}(C_{XX} - 2C_{ZX}ᵀHC_{ZX} + C_{ZX}ᵀHCHC_{ZX}),\\\\
    XᵀSW^{-1}SW^{-1}SX &= σ^{-2}\\bigl(XᵀSW^{-1}SX - (ZᵀSX)ᵀH(ZᵀSX)\\bigr),\\\\
    \\operatorname{tr}(SW^{-1}SW^{-1}) &= σ^{-4}\\bigl(n - 2\\operatorname{tr}(HC)
                                      + \\operatorname{tr}(HCHC)\\bigr),

and every trace and product with a ``G_r = Z D_r Zᵀ`` (``D_r`` sparse,
q × q) reduces to products of q × q and q × p matrices.  The cost is
``O(q³ + m² q²)`` time and ``O(m q²)`` memory, independent of n.

Prior weights: the residual "design" matrix is ``G_m = W⁻¹`` (the model's
residual covariance is ``σ²W⁻¹``), which is the textbook Kenward–Roger
adjustment for a weighted model.  pbkrtest 0.5.2 ignores prior weights in
its ``Σ`` (it uses ``G_m = I`` while taking ``Φ`` from the weighted fit), so
for weighted models the two differ; without weights they agree.

The denominator df for a contrast matrix ``L`` (``q_L`` rows) follow
pbkrtest's ``.KR_adjust``: with ``Θ = Lᵀ(LΦLᵀ)⁻¹L`` and
``u_i = ΘΦP_iΦ``,

.. math::

    A_1 &= \\sum_{i,j} W_{ij}\\operatorname{tr}(u_i)\\operatorname{tr}(u_j), \\qquad
    A_2 = \\sum_{i,j} W_{ij}\\operatorname{tr}(u_iu_j),\\\\
    B &= (A_1 + 6A_2)/(2q_L), \\qquad g = \\frac{(q_L+1)A_1 - (q_L+4)A_2}{(q_L+2)A_2},\\\\
    c_1 &= \\frac{g}{3q_L + 2(1-g)}, \\quad c_2 = \\frac{q_L - g}{3q_L + 2(1-g)}, \\quad
    c_3 = \\frac{q_L + 2 - g}{3q_L + 2(1-g)},\\\\
    ρ &= \\frac{1}{q_L}\\Bigl(\\frac{1 - A_2/q_L}{1 - c_2B}\\Bigr)^2 \\frac{1 + c_1B}{1 - c_3B},
    \\qquad ν = 4 + \\frac{q_L + 2}{q_Lρ - 1},

and the F statistic ``(β̂ᵀLᵀ(LΦ_ALᵀ)⁻¹Lβ̂)/q_L`` is scaled by
``ν(1 - A_2/q_L)/(ν - 2)`` (1 when ``|ν - 2| < 0.01``).

References
----------
Kenward, M. G. and Roger, J. H. (1997). Small sample inference for fixed
effects from restricted maximum likelihood. *Biometrics* 53, 983–997.

Halekoh, U. and Højsgaard, S. (2014). A Kenward-Roger approximation and
parametric bootstrap methods for tests in linear mixed models – the R
package pbkrtest. *Journal of Statistical Software* 59(9).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.linalg as sla
from scipy import stats

from sparselmm.errors import ModelSpecError
from sparselmm.progress import Progress, show_progress

if TYPE_CHECKING:  # pragma: no cover
    from sparselmm.fitting.fitted import FittedModel
    from sparselmm.frame.modelframe import Design

__all__ = [
    "KRAdjustment",
    "kr_adjustment",
    "kr_adjustment_at",
    "kenward_roger",
    "kenward_roger_se_df",
    "kenward_roger_contrast",
    "kenward_roger_test",
]

_EIG_TOL = 1e-10  # pbkrtest: ginv instead of solve below this smallest |eigenvalue|


@dataclass(frozen=True)
class KRAdjustment:
    """The pieces of pbkrtest's ``vcovAdj`` result.

    Attributes
    ----------
    vcov : numpy.ndarray
        ``Φ = (XᵀΣ⁻¹X)⁻¹``, the unadjusted covariance of β̂ (p × p).
    vcov_adj : numpy.ndarray
        ``Φ_A = Φ + 2ΦUΦ``, the Kenward–Roger adjusted covariance (p × p).
    P : list of numpy.ndarray
        ``P_i = -XᵀΣ⁻¹G_iΣ⁻¹X`` per variance parameter (pbkrtest's sign).
    W : numpy.ndarray
        ``2 I⁻¹``: the estimated covariance of the variance parameters (m × m).
    par_names : list of str
        Names of the variance parameters (``"Subject:(Intercept)"``,
        ``"Subject:Days.(Intercept)"``, ..., ``"Residual"``).
    condition : float
        Smallest absolute eigenvalue of the information matrix ``I``
        (pbkrtest's ``condi``); below 1e-10 the generalised inverse was used.
    """

    vcov: np.ndarray
    vcov_adj: np.ndarray
    P: list[np.ndarray]
    W: np.ndarray
    par_names: list[str]
    condition: float
    internal: "KRAdjustment | None" = None  # the same in the design's internal units, with
    J: np.ndarray | None = None  # the map β − c_y a = J β' (the df of L on β are those of L J on β')


# ----------------------------------------------------------------------------------------
# variance parameters: which entries of each term's covariance are free


def _term_entries(term: object) -> list[tuple[int, int]]:
    """Free entries ``(a, b)``, ``a ≥ b``, of a term's covariance, pbkrtest's order.

    The structure's :meth:`~sparselmm.spec.covariance.CovStructure.covariance_entries`:
    for an unstructured term the whole lower triangle, column by column (R's
    ``lower.tri(diag = TRUE)`` order); for a diagonal one the variances.
    """
    s = term.structure  # type: ignore[attr-defined]
    entries = s.covariance_entries()
    if entries is None:
        raise ModelSpecError(
            "Kenward-Roger needs a covariance that is linear in its free entries (unstructured or "
            f"diagonal); term {term.bar.text!r} has structure {s.name!r}"  # type: ignore[attr-defined]
        )
    return entries


class _Param:
    """One variance parameter ``G_r = Z_t (I ⊗ E_ab) Z_tᵀ``: applies ``D_r = I ⊗ E_ab`` to rows."""

    __slots__ = ("lo", "hi", "k", "a", "b", "name")

    def __init__(self, lo: int, hi: int, k: int, a: int, b: int, name: str) -> None:
        self.lo, self.hi, self.k, self.a, self.b, self.name = lo, hi, k, a, b, name

    def apply(self, V: np.ndarray) -> np.ndarray:
        """``(D_r V)[lo:hi]`` for a q × m matrix ``V`` (the other rows of ``D_r V`` are zero)."""
        k, a, b = self.k, self.a, self.b
        m = V.shape[1]
        Vt = V[self.lo : self.hi].reshape(-1, k, m)
        if k == 1:
            return V[self.lo : self.hi].copy()
        R = np.zeros_like(Vt)
        if a == b:
            R[:, a] = Vt[:, a]
        else:
            R[:, a] = Vt[:, b]
            R[:, b] = Vt[:, a]
        return R.reshape(-1, m)


def _params(d: "Design") -> list[_Param]:
    out = []
    for t, lo, hi in zip(d.terms, d.Gp[:-1], d.Gp[1:]):
        for a, b in _term_entries(t):
            cols = t.columns
            name = f"{t.group}:{cols[a]}" if a == b else f"{t.group}:{cols[a]}.{cols[b]}"
            out.append(_Param(int(lo), int(hi), int(t.k), a, b, name))
    return out


# ----------------------------------------------------------------------------------------
# the core, in q-space


def _vcov_adj_core(d: "Design", theta: np.ndarray, sigma2: float, Phi: np.ndarray, verbose: bool = False) -> KRAdjustment:
    """pbkrtest's ``vcovAdj_internal`` at θ, σ², Φ, computed with q × q matrices (``verbose``:
    show the progress of its steps, :mod:`sparselmm.progress`).

    See the module docstring for the equations.
    """
    cp = d.cross
    q, p, n = d.q, d.p, cp.n
    params = _params(d)
    m = len(params) + 1  # + residual
    progress = Progress("Kenward-Roger: step", m, verbose)

    C = cp.ZtZ.toarray()
    CZX = np.asarray(cp.ZtX, dtype=float).reshape(q, p)
    CXX = np.asarray(cp.XtX, dtype=float).reshape(p, p)
    Lam = d.Lambda(np.asarray(theta, dtype=float)).tocsc()

    # H = Λ M⁻¹ Λᵀ with M = ΛᵀCΛ + I (dense: q is the number of random effects)
    LtC = np.asarray((Lam.T @ C))  # Λᵀ C, q × q dense
    Mm = np.asarray((Lam.T @ LtC.T))  # ΛᵀCΛ
    Mm = 0.5 * (Mm + Mm.T)
    Mm[np.diag_indices(q)] += 1.0
    cho = sla.cho_factor(Mm, lower=True, check_finite=False)
    LamT = Lam.T.toarray()
    H = np.asarray(Lam @ sla.cho_solve(cho, LamT, check_finite=False))
    H = 0.5 * (H + H.T)

    HC = H @ C
    F = -HC
    F[np.diag_indices(q)] += 1.0  # F = I - HC
    s2inv = 1.0 / sigma2
    A = s2inv * (C - C @ HC)  # ZᵀSZ
    A = 0.5 * (A + A.T)
    U = H @ CZX  # H C_ZX
    N = s2inv * (F.T @ CZX)  # ZᵀSX
    XSX2 = s2inv**2 * (CXX - 2.0 * (CZX.T @ U) + U.T @ (C @ U))  # XᵀSW⁻¹SX
    XSX2 = 0.5 * (XSX2 + XSX2.T)
    XSX3 = s2inv * (XSX2 - N.T @ (H @ N))  # XᵀSW⁻¹SW⁻¹SX
    XSX3 = 0.5 * (XSX3 + XSX3.T)
    ZS2Z = s2inv**2 * (F.T @ (C @ F))  # ZᵀSW⁻¹SZ
    ZS2X = s2inv * (F.T @ N)  # ZᵀSW⁻¹SX
    trS2 = s2inv**2 * (n - 2.0 * np.trace(HC) + np.sum(HC * HC.T))

    progress.step("the dense q × q products")
    DA = [pr.apply(A) for pr in params]  # (D_r A)[rows_r], q_r × q
    DN = [pr.apply(N) for pr in params]  # (D_r N)[rows_r], q_r × p

    P: list[np.ndarray] = []
    for pr, dn in zip(params, DN):
        P.append(-(N[pr.lo : pr.hi].T @ dn))
    P.append(-XSX2)

    K = np.empty((m, m))
    Q: dict[tuple[int, int], np.ndarray] = {}
    for i, (pi, dai, dni) in enumerate(zip(params, DA, DN)):
        for j in range(i, m - 1):
            pj, daj, dnj = params[j], DA[j], DN[j]
            K[i, j] = K[j, i] = np.sum(dai[:, pj.lo : pj.hi] * daj[:, pi.lo : pi.hi].T)
            Q[i, j] = dni.T @ (A[pi.lo : pi.hi, pj.lo : pj.hi] @ dnj)
        # with the residual: tr(D_r ZᵀSW⁻¹SZ) and (D_r N)ᵀ ZᵀSW⁻¹SX
        K[i, m - 1] = K[m - 1, i] = np.trace(pi.apply(ZS2Z[:, pi.lo : pi.hi]))
        Q[i, m - 1] = dni.T @ ZS2X[pi.lo : pi.hi]
        progress.step(f"parameter {pi.name}")
    progress.close()
    K[m - 1, m - 1] = trS2
    Q[m - 1, m - 1] = XSX3

    # expected information (times 2) of the variance parameters, pbkrtest's IE2
    IE2 = np.empty((m, m))
    PhiP = [Phi @ Pi for Pi in P]
    PPhi = [Pi @ Phi for Pi in P]
    for i in range(m):
        for j in range(i, m):
            IE2[i, j] = IE2[j, i] = K[i, j] - 2.0 * np.sum(Phi * Q[i, j]) + np.sum(PhiP[i] * PPhi[j])
    eig = np.linalg.eigvalsh(IE2)
    condi = float(np.min(np.abs(eig)))
    W = None
    if condi > _EIG_TOL:
        try:
            W = 2.0 * np.linalg.inv(IE2)
        except np.linalg.LinAlgError:  # singular all the same (a smallest eigenvalue above the absolute
            pass  # tolerance beside a largest of 1e14, as from two terms of the same grouping): ginv
    if W is None:  # MASS::ginv's tolerance
        W = 2.0 * np.linalg.pinv(IE2, rcond=np.sqrt(np.finfo(float).eps), hermitian=True)
    W = 0.5 * (W + W.T)

    UU = np.zeros((p, p))
    for i in range(m - 1):
        for j in range(i + 1, m):
            UU += W[i, j] * (Q[i, j] - P[i] @ Phi @ P[j])
    UU = UU + UU.T
    for i in range(m):
        UU += W[i, i] * (Q[i, i] - P[i] @ Phi @ P[i])
    PhiA = Phi + 2.0 * (Phi @ UU @ Phi)
    PhiA = 0.5 * (PhiA + PhiA.T)
    names = [pr.name for pr in params] + ["Residual"]
    return KRAdjustment(vcov=Phi, vcov_adj=PhiA, P=P, W=W, par_names=names, condition=condi)


# ----------------------------------------------------------------------------------------
# public entry points


def _reml_model(m: "FittedModel", refit: bool) -> "FittedModel":
    if m.REML:
        return m
    if refit:
        return m.refit(REML=True)
    raise ModelSpecError(
        "Kenward-Roger's method is only available for REML fits (as in lmerTest); refit with "
        "REML=True, or pass refit=True to refit by REML as pbkrtest's vcovAdj does"
    )


def kr_adjustment(m: "FittedModel", *, refit: bool = False) -> KRAdjustment:
    """Kenward–Roger adjustment of a REML fit (pbkrtest's ``vcovAdj``, with its pieces).

    Parameters
    ----------
    m : LinearMixedModel
        A REML fit.
    refit : bool
        For an ML fit: refit by REML first, as ``pbkrtest::vcovAdj`` does
        (default: raise, as lmerTest does).

    Returns
    -------
    KRAdjustment
        ``Φ``, ``Φ_A = Φ + 2ΦUΦ``, the ``P_i``, ``W = 2I⁻¹`` (module docstring).

    Raises
    ------
    ModelSpecError
        For an ML fit without ``refit``, or a covariance structure that is not
        linear in its free entries (not unstructured or diagonal).
    """
    m = _reml_model(m, refit)
    if m.design.p == 0:
        raise ModelSpecError("the model has no fixed effects: there is nothing to adjust")
    return kr_adjustment_at(m.design, m.theta, show_progress(m))


def kr_adjustment_at(d: "Design", theta: np.ndarray, verbose: bool = False) -> KRAdjustment:
    """Kenward–Roger adjustment of the REML fit of a design at a given θ.

    σ̂² and ``Φ = σ̂²(R_XᵀR_X)⁻¹`` are those of the REML criterion profiled at
    θ, so this equals :func:`kr_adjustment` of a fit whose optimum is θ (useful
    to compare with R at R's θ).

    Parameters
    ----------
    d : Design
    theta : numpy.ndarray
        θ in lme4's layout.
    verbose : bool
        Show the progress of the dense steps (:mod:`sparselmm.progress`).

    Returns
    -------
    KRAdjustment
    """
    theta = np.asarray(theta, dtype=float)
    if d.p == 0:
        raise ModelSpecError("the model has no fixed effects: there is nothing to adjust")
    st = d.pls()
    th = d.internal_theta(theta)
    if not st.update(th):
        raise ModelSpecError("the PLS problem cannot be solved at the given theta")
    sigma2 = st.pwrss / (d.n - d.p)
    return _external(d, _vcov_adj_core(d, th, sigma2, sigma2 * st.unscaled_vcov(), verbose))


def _external(d: "Design", adj: KRAdjustment) -> KRAdjustment:
    """An adjustment computed in the design's internal units (sparselmm.frame.conditioning) in lme4's.

    With ``β − c_y a = J β'`` and the variance parameters ``γ_i = k_i γ'_i`` (``k = s_y²`` for the
    terms' covariance entries, ``s_y² c_w`` for σ²): ``Φ = JΦ'Jᵀ``, ``Φ_A = JΦ'_AJᵀ``,
    ``P_i = J⁻ᵀP'_iJ⁻¹ / k_i`` (``P_i = ∂(XᵀΣ⁻¹X)/∂γ_i``) and ``W_ij = k_i k_j W'_ij``; the df and
    F scalings of every contrast are unchanged by the map.
    """
    c = d.cond
    if c.is_identity:
        return adj
    J = c.J
    Ji = np.linalg.inv(J)
    k = np.full(len(adj.P), c.y_scale**2)
    k[-1] *= c.w_scale
    with np.errstate(over="ignore", invalid="ignore"):  # a column near 1e200: P_i = ±inf, kept as
        return _mapped(adj, J, Ji, k)  # information (the df are computed from `internal`)


def _mapped(adj: KRAdjustment, J: np.ndarray, Ji: np.ndarray, k: np.ndarray) -> KRAdjustment:
    """:func:`_external`'s map, for given ``J``, ``J⁻¹`` and ``k``."""
    return KRAdjustment(
        vcov=J @ adj.vcov @ J.T,
        vcov_adj=J @ adj.vcov_adj @ J.T,
        P=[Ji.T @ Pi @ Ji / ki for Pi, ki in zip(adj.P, k)],
        W=adj.W * np.outer(k, k),
        par_names=adj.par_names,
        condition=adj.condition,
        internal=adj,
        J=J,
    )


def _kr_ddf(adj: KRAdjustment, L: np.ndarray) -> tuple[float, float, float, float]:
    """pbkrtest's ``.KR_adjust``: (ddf, F scaling, A1, A2) for contrast rows ``L``."""
    L = np.atleast_2d(np.asarray(L, dtype=float))
    if adj.internal is not None:  # well-conditioned units (a timestamp covariate's J is not)
        L, adj = L @ adj.J, adj.internal
        r = np.max(np.abs(L), axis=1, keepdims=True)
        L = L / np.where(r > 0, r, 1.0)  # the df depend on L's rows only through their span
    Phi, P, W = adj.vcov, adj.P, adj.W
    ql = int(np.linalg.matrix_rank(L))
    Theta = L.T @ np.linalg.solve(L @ Phi @ L.T, L)
    ThetaPhi = Theta @ Phi
    u = [ThetaPhi @ Pi @ Phi for Pi in P]
    tr = np.array([np.trace(ui) for ui in u])
    m = len(P)
    A1 = A2 = 0.0
    for i in range(m):
        for j in range(i, m):
            e = 1.0 if i == j else 2.0
            A1 += e * W[i, j] * tr[i] * tr[j]
            A2 += e * W[i, j] * np.sum(u[i] * u[j].T)
    B = (A1 + 6.0 * A2) / (2.0 * ql)
    g = ((ql + 1) * A1 - (ql + 4) * A2) / ((ql + 2) * A2)
    den = 3.0 * ql + 2.0 * (1.0 - g)
    c1, c2, c3 = g / den, (ql - g) / den, (ql + 2 - g) / den
    V0 = 1.0 + c1 * B
    V1 = 1.0 - c2 * B
    V2 = 1.0 - c3 * B
    V0 = 0.0 if abs(V0) < 1e-10 else V0
    x = 1.0 - A2 / ql
    ratio = 1.0 if (abs(x) < 1e-14 and abs(V1) < 1e-14) else x / V1  # pbkrtest's .divZero
    rho = ratio**2 * V0 / V2 / ql
    df2 = 4.0 + (ql + 2) / (ql * rho - 1.0)
    scaling = 1.0 if abs(df2 - 2.0) < 0.01 else df2 * (1.0 - A2 / ql) / (df2 - 2.0)
    return float(df2), float(scaling), float(A1), float(A2)


def kenward_roger(m: "FittedModel", *, refit: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Kenward–Roger adjusted covariance of β̂ and per-coefficient denominator df.

    Reproduces ``pbkrtest::vcovAdj(m)`` and the ``df`` column of lmerTest's
    ``summary(m, ddf = "Kenward-Roger")`` (``pbkrtest::Lb_ddf`` with
    ``L = e_j``): see the module docstring for the equations.  The t statistic
    of coefficient j is ``β̂_j / sqrt(Φ_A[j, j])`` on ``df[j]`` degrees of freedom.

    Parameters
    ----------
    m : LinearMixedModel
        A REML fit.
    refit : bool
        For an ML fit, refit by REML first (pbkrtest's behaviour); by default
        an ML fit raises (lmerTest's behaviour).

    Returns
    -------
    vcov_adj : numpy.ndarray
        ``Φ_A`` (p × p), in the order of ``m.fixef``.
    df : numpy.ndarray
        Denominator degrees of freedom, one per fixed effect (p,).

    Raises
    ------
    ModelSpecError
        For an ML fit without ``refit``, or an unsupported covariance structure.

    Examples
    --------
    >>> import sparselmm as slm
    >>> from sparselmm.stats.kenward_roger import kenward_roger
    >>> m = slm.lmer("Reaction ~ Days + (Days | Subject)", slm.datasets.load("sleepstudy"))
    >>> vadj, df = kenward_roger(m)
    >>> [round(float(v), 3) for v in df]
    [17.0, 17.0]
    """
    adj = kr_adjustment(m, refit=refit)
    return adj.vcov_adj.copy(), _coefficient_df(adj)


def _coefficient_df(adj: KRAdjustment) -> np.ndarray:
    """The denominator df of each coefficient (``L = e_j``, pbkrtest's ``Lb_ddf``)."""
    p = adj.vcov.shape[0]
    return np.array([_kr_ddf(adj, np.eye(p)[j : j + 1])[0] for j in range(p)])


def kenward_roger_se_df(m: "FittedModel", *, refit: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Kenward–Roger standard errors ``sqrt(diag(Φ_A))`` and per-coefficient df (lmerTest's
    ``summary(m, ddf = "Kenward-Roger")`` columns), from one adjustment.

    The standard errors come from the design's internal units, so they are right where a
    variance is not a double (a coefficient of a column scaled by 1e200).

    Returns
    -------
    se, df : numpy.ndarray
    """
    adj = kr_adjustment(m, refit=refit)
    df = _coefficient_df(adj)
    if adj.internal is None:
        return np.sqrt(np.diag(adj.vcov_adj)), df
    return _reml_model(m, refit).design.cond.sd(adj.internal.vcov_adj), df


def kenward_roger_contrast(m: "FittedModel", L: np.ndarray, *, refit: bool = False) -> tuple[float, float]:
    """Kenward–Roger denominator df and F scaling for the hypothesis ``Lβ = 0``.

    pbkrtest's ``KRmodcomp`` with a restriction matrix ``L`` (r × p): the
    scaled statistic ``F* = λ (L β̂)ᵀ(LΦ_ALᵀ)⁻¹(L β̂) / rank(L)`` is referred to
    ``F(rank(L), ddf)``.

    Parameters
    ----------
    m : LinearMixedModel
        A REML fit.
    L : numpy.ndarray
        Contrast matrix (r × p) or a single row (p,).
    refit : bool
        See :func:`kenward_roger`.

    Returns
    -------
    ddf : float
        Denominator degrees of freedom ν.
    scaling : float
        The F scaling factor ``λ = ν(1 - A₂/rank(L))/(ν - 2)``.
    """
    adj = kr_adjustment(m, refit=refit)
    L = _check_L(L, adj.vcov.shape[0])
    ddf, scaling, _, _ = _kr_ddf(adj, L)
    return ddf, scaling


def kenward_roger_test(
    m: "FittedModel", L: np.ndarray, rhs: np.ndarray | float = 0.0, *, refit: bool = False
) -> dict[str, float]:
    """Kenward–Roger F test of ``Lβ = rhs`` (pbkrtest's ``KRmodcomp`` statistics).

    Parameters
    ----------
    m : LinearMixedModel
        A REML fit.
    L : numpy.ndarray
        Contrast matrix (r × p) or a single row (p,).
    rhs : float or numpy.ndarray
        Hypothesised value(s) of ``Lβ`` (length r).
    refit : bool
        See :func:`kenward_roger`.

    Returns
    -------
    dict
        ``F`` (scaled statistic ``λ W/ndf``), ``ndf`` (rank of L), ``ddf``,
        ``F_scaling`` (λ), ``p_value``, ``F_unscaled`` and ``p_value_unscaled``
        (``W/ndf`` on the same df), where ``W = (Lβ̂ - rhs)ᵀ(LΦ_ALᵀ)⁻¹(Lβ̂ - rhs)``.
    """
    mr = _reml_model(m, refit)
    adj = kr_adjustment(mr)
    L0 = np.atleast_2d(np.asarray(L, dtype=float))
    L = _check_L(L0, adj.vcov.shape[0])
    ddf, scaling, _, _ = _kr_ddf(adj, L)
    ndf = L.shape[0]
    h = np.broadcast_to(np.asarray(rhs, dtype=float), (L0.shape[0],))
    beta0 = np.linalg.lstsq(L0, h, rcond=None)[0]  # a β with L β = rhs
    if not np.allclose(L0 @ beta0, h, rtol=1e-8, atol=1e-10 * (1.0 + np.max(np.abs(h)))):
        raise ModelSpecError("the hypothesis L β = rhs is inconsistent (no β satisfies it)")
    diff = L @ (mr.fixef.to_numpy() - beta0)
    wald = float(diff @ np.linalg.solve(L @ adj.vcov_adj @ L.T, diff))
    Fu = wald / ndf
    F = scaling * Fu
    return {
        "F": F,
        "ndf": float(ndf),
        "ddf": ddf,
        "F_scaling": scaling,
        "p_value": float(stats.f.sf(F, ndf, ddf)),
        "F_unscaled": Fu,
        "p_value_unscaled": float(stats.f.sf(Fu, ndf, ddf)),
    }


def _check_L(L: np.ndarray, p: int) -> np.ndarray:
    """Validate ``L`` (r × p); a rank-deficient ``L`` becomes an orthonormal basis of its row space
    (pbkrtest's ``force_full_rank``; the test does not depend on the basis)."""
    L = np.atleast_2d(np.asarray(L, dtype=float))
    if L.ndim != 2 or L.shape[1] != p:
        raise ModelSpecError(f"contrast matrix L must have {p} columns (one per fixed effect), got shape {L.shape}")
    if not np.all(np.isfinite(L)):
        raise ModelSpecError("contrast matrix L has missing or infinite entries")
    r = int(np.linalg.matrix_rank(L))
    if r == 0:
        raise ModelSpecError("contrast matrix L is zero: there is no hypothesis to test")
    if r < L.shape[0]:
        _, _, Vt = np.linalg.svd(L, full_matrices=False)
        L = Vt[:r]
    return L
