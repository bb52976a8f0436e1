r"""Covariance structures of random-effects terms: θ ↦ Λ for one term.

A term ``(lhs | g)`` with ``k`` model columns has, for every level of ``g``,
the same relative covariance factor block ``T`` (``k × k``, lower
triangular), so that the term's random effects have covariance

.. math::  \operatorname{Var}(b_g) = \sigma^2 \, T T^\top = \sigma^2 \, \Sigma_{\mathrm{rel}}

per level.  A structure maps its parameter vector (the term's slice of θ) to
``T``; the PLS engine places ``T`` on the block diagonal of Λ for every level.

Every structure implements :class:`CovStructure`.  The structures follow
glmmTMB's names:

* ``us``: any positive semi-definite matrix (lme4's), ``k(k+1)/2`` parameters;
* ``diag``: ``diag(s_1², …, s_k²)``, ``k``;
* ``homdiag``: ``s² I``, 1;
* ``cs``: ``D R D`` with ``R_ij = ρ`` (``i ≠ j``), ``k + 1``;
* ``homcs``: ``s² R`` with ``R_ij = ρ``, 2;
* ``ar1``: ``s² R`` with ``R_ij = ρ^|i−j|``, 2;
* ``toep``: ``D R D`` with Toeplitz ``R_ij = ρ_|i−j|``, ``2k − 1``;
* ``homtoep``: ``s² R`` with Toeplitz ``R``, ``k``;

with ``D = diag(s_1, …, s_k)``.  All parameters are on natural scales with
simple bounds, which is all the optimiser sees:

* standard deviations relative to σ, ``s ≥ 0`` (start 1), as lme4's diagonal θ;
* the common correlation of ``cs``/``homcs``, ``−1/(k−1) ≤ ρ ≤ 1`` — exactly the
  range in which the equicorrelation matrix is positive semi-definite;
* the AR(1) correlation, ``−1 ≤ ρ ≤ 1``;
* for ``toep``/``homtoep``, the partial autocorrelations ``φ_1, …, φ_{k−1}``,
  each in ``[−1, 1]``: the Durbin–Levinson recursion maps this box one to one
  onto the positive definite Toeplitz correlation matrices (its interior), so
  no other constraint is needed.

Inside the bounds ``Σ_rel`` is positive semi-definite, and on the bounds it may
be singular; the factors below are computed in closed form (or by the
Levinson recursion) so that the boundary never makes ``block`` fail.  Values
slightly outside the bounds (finite-difference stencils) are clipped onto them.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from sparselmm.errors import ModelSpecError

__all__ = [
    "CovStructure",
    "Unstructured",
    "Diagonal",
    "HomDiagonal",
    "CompoundSymmetry",
    "HomCompoundSymmetry",
    "AR1",
    "Toeplitz",
    "HomToeplitz",
    "STRUCTURE_CLASSES",
    "make_structure",
    "levinson_autocorrelations",
]


@runtime_checkable
class CovStructure(Protocol):
    """What the engine needs from a covariance structure of one term.

    Attributes
    ----------
    name : str
        Short name (``"us"``, ``"diag"``, ``"cs"``, ...), glmmTMB's.
    k : int
        Size of the block ``T``.
    n_par : int
        Number of parameters the optimiser sees for this term.
    lme4_theta : bool
        Whether the parameters are lme4's θ: the lower triangle of ``T`` column by column, every
        entry free (diagonal ≥ 0), so that the term's covariance is any positive semi-definite
        matrix and its standard deviations and correlations map one to one onto θ.
    """

    name: str
    k: int
    n_par: int
    lme4_theta: bool

    def start(self) -> np.ndarray:
        """Starting parameters (lme4's: ``T = I``)."""

    def lower(self) -> np.ndarray:
        """Lower bounds of the parameters."""

    def upper(self) -> np.ndarray:
        """Upper bounds of the parameters."""

    def block(self, par: np.ndarray) -> np.ndarray:
        """The relative factor block ``T(par)`` (``k × k``, lower triangular)."""

    def tril_values(self, par: np.ndarray) -> np.ndarray:
        """The lower triangle of ``T(par)`` in row-major order (``k(k+1)/2`` values)."""

    def par_names(self) -> list[str]:
        """Names of the parameters, for messages and tables."""

    def relative_cov(self, par: np.ndarray) -> np.ndarray:
        """``Σ_rel = T Tᵀ``: the term's covariance divided by σ²."""

    def sd(self, par: np.ndarray) -> np.ndarray:
        """Standard deviations relative to σ, ``sqrt(diag(T Tᵀ))``."""

    def corr(self, par: np.ndarray) -> np.ndarray:
        """The implied correlation matrix (``k × k``)."""

    def scales_with_block(self) -> np.ndarray:
        """Which parameters are multiplied by ``f`` when ``T`` is (``T(par') = f T(par)``, ``f > 0``)."""

    def linear_entries(self) -> list[tuple[int, int, int]] | None:
        """``(parameter, row, column)`` of every entry of ``T`` that one parameter sets linearly
        (``T = Σ_i par_i E_i``), or None when ``T`` is not linear in its parameters.  The analytic
        gradient, the search's units and the block backends need a linear structure."""

    def theta_from_covariance(self, S: np.ndarray) -> np.ndarray | None:
        """The parameters whose ``T Tᵀ`` is the relative covariance ``S`` (``k × k``, positive
        definite), or None when the structure has no such closed form (the moment start then
        leaves the term at :meth:`start`)."""

    @property
    def lind(self) -> np.ndarray | None:
        """The parameter index of each stored entry of ``T`` (its lower triangle, row-major): lme4's
        ``Lind`` within a block; None when some stored entry is not one parameter (e.g. a zero)."""

    def covariance_entries(self) -> list[tuple[int, int]] | None:
        """The free entries ``(a, b)``, ``a ≥ b``, of ``Σ_rel``, lower triangle column by column, when the
        structure's covariances are the positive semi-definite matrices that are zero elsewhere (so
        ``Σ_rel = Σ_ab γ_ab E_ab`` is linear in its free entries ``γ``, ``E_ab`` the symmetric indicator:
        pbkrtest's variance parameters); None when the structure ties entries together."""


# ----------------------------------------------------------------------------------------
# shared machinery


class _Structure:
    """Common helpers: the implied covariance and correlation, the row-major lower triangle."""

    name = "?"
    lme4_theta = False

    def __init__(self, k: int, columns: list[str] | None = None) -> None:
        if k < 1:
            raise ModelSpecError(f"a covariance structure needs at least one column, got k = {k}")
        self.k = int(k)
        self.columns = list(columns) if columns else [f"x{i}" for i in range(k)]
        self._r, self._c = np.tril_indices(self.k)  # row-major lower triangle

    def tril_values(self, par: np.ndarray) -> np.ndarray:
        """The stored entries of ``T`` in row-major order."""
        return self.block(par)[self._r, self._c]

    def relative_cov(self, par: np.ndarray) -> np.ndarray:
        """``Σ_rel = T Tᵀ``: the term's covariance is ``σ² Σ_rel``."""
        T = self.block(par)
        return T @ T.T

    def sd(self, par: np.ndarray) -> np.ndarray:
        """Standard deviations relative to σ: ``sqrt(diag(T Tᵀ))``."""
        return np.sqrt(np.diag(self.relative_cov(par)))

    def corr(self, par: np.ndarray) -> np.ndarray:
        r"""The implied correlation matrix ``R_ij = Σ_ij / sqrt(Σ_ii Σ_jj)``.

        Entries of a column with zero variance are ``nan`` off the diagonal.
        """
        S = self.relative_cov(par)
        sd = np.sqrt(np.diag(S))
        with np.errstate(divide="ignore", invalid="ignore"):
            R = S / np.outer(sd, sd)
        R[~np.isfinite(R)] = np.nan
        np.fill_diagonal(R, 1.0)
        return R

    def scales_with_block(self) -> np.ndarray:
        """Which parameters are multiplied by ``f`` when the block ``T`` is: all of them for the
        linear structures (``us``, ``diag``: θ holds entries of ``T``)."""
        return np.ones(self.n_par, dtype=bool)  # type: ignore[attr-defined]

    def linear_entries(self) -> list[tuple[int, int, int]] | None:
        """None: ``T`` is not linear in the parameters (overridden by the linear structures)."""
        return None

    def theta_from_covariance(self, S: np.ndarray) -> np.ndarray | None:
        """None: no closed form from a covariance (overridden by ``us`` and ``diag``)."""
        return None

    @property
    def lind(self) -> np.ndarray | None:
        """None: ``T`` has stored entries that are not parameters (overridden by ``us``)."""
        return None

    def covariance_entries(self) -> list[tuple[int, int]] | None:
        """None: the entries of ``Σ_rel`` are not free (overridden by ``us`` and ``diag``)."""
        return None

    def clip(self, par: np.ndarray) -> np.ndarray:
        """``par`` moved onto the box ``[lower, upper]``."""
        return np.clip(np.asarray(par, dtype=float), self.lower(), self.upper())

    def lower(self) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def upper(self) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def block(self, par: np.ndarray) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(k={self.k}, n_par={self.n_par})"  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------------------
# lme4's structures


class Unstructured(_Structure):
    """lme4's general positive semi-definite ``k × k`` covariance (glmmTMB's ``us``).

    θ is the lower triangle of ``T`` column by column:
    ``T = [[θ₀, 0], [θ₁, θ₂]]`` for ``k = 2``; diagonal entries are bounded below by 0.
    ``Λ`` is linear in θ (the engine may use lme4's ``Lind``).
    """

    name = "us"
    lme4_theta = True

    def __init__(self, k: int, columns: list[str] | None = None) -> None:
        super().__init__(k, columns)
        self.n_par = k * (k + 1) // 2
        r, c = self._r, self._c
        # column-major position of each row-major entry: θ order is column by column
        colmajor = {(rr, cc): i for i, (cc, rr) in enumerate((cc, rr) for cc in range(k) for rr in range(cc, k))}
        self._rowmajor_to_theta = np.array([colmajor[(rr, cc)] for rr, cc in zip(r, c)], dtype=np.int64)
        self._diag = np.array([colmajor[(i, i)] for i in range(k)], dtype=np.int64)

    @property
    def lind(self) -> np.ndarray:
        """θ index of each stored entry of ``T`` in row-major order (lme4's ``Lind`` within a block)."""
        return self._rowmajor_to_theta

    def start(self) -> np.ndarray:
        th = np.zeros(self.n_par)
        th[self._diag] = 1.0
        return th

    def lower(self) -> np.ndarray:
        lo = np.full(self.n_par, -np.inf)
        lo[self._diag] = 0.0
        return lo

    def upper(self) -> np.ndarray:
        return np.full(self.n_par, np.inf)

    def block(self, par: np.ndarray) -> np.ndarray:
        T = np.zeros((self.k, self.k))
        T[self._r, self._c] = np.asarray(par, dtype=float)[self._rowmajor_to_theta]
        return T

    def tril_values(self, par: np.ndarray) -> np.ndarray:
        """The stored entries of ``T`` in row-major order (the hot path: no k × k allocation)."""
        return np.asarray(par, dtype=float)[self._rowmajor_to_theta]

    def par_names(self) -> list[str]:
        k, cols = self.k, self.columns
        return [f"{cols[r]}" if r == c else f"{cols[r]}.{cols[c]}" for c in range(k) for r in range(c, k)]

    def linear_entries(self) -> list[tuple[int, int, int]]:
        """Every entry of the lower triangle, θ column by column: ``(i, r, c)``."""
        k = self.k
        return [(i, r, c) for i, (c, r) in enumerate((c, r) for c in range(k) for r in range(c, k))]

    def theta_from_covariance(self, S: np.ndarray) -> np.ndarray:
        """lme4's θ: the lower Cholesky factor of ``S``, column by column."""
        L = np.linalg.cholesky(S)
        return np.array([L[r, c] for c in range(self.k) for r in range(c, self.k)])

    def covariance_entries(self) -> list[tuple[int, int]]:
        """The whole lower triangle of ``Σ_rel``, column by column (R's ``lower.tri(diag = TRUE)``)."""
        k = self.k
        return [(a, b) for b in range(k) for a in range(b, k)]


class Diagonal(Unstructured):
    r"""Independent columns with their own variances (``diag(...)``, lme4's ``||``).

    ``T = diag(s_1, …, s_k)``, so ``Σ_rel = diag(s_1², …, s_k²)``; ``s_i ≥ 0``.
    """

    name = "diag"
    lme4_theta = False

    def __init__(self, k: int, columns: list[str] | None = None) -> None:
        super().__init__(k, columns)
        self.n_par = k
        self._pos = np.flatnonzero(self._r == self._c)

    def start(self) -> np.ndarray:
        return np.ones(self.k)

    def lower(self) -> np.ndarray:
        return np.zeros(self.k)

    def upper(self) -> np.ndarray:
        return np.full(self.k, np.inf)

    def block(self, par: np.ndarray) -> np.ndarray:
        return np.diag(np.asarray(par, dtype=float))

    def tril_values(self, par: np.ndarray) -> np.ndarray:
        out = np.zeros(self.k * (self.k + 1) // 2)
        out[self._pos] = par
        return out

    def par_names(self) -> list[str]:
        return list(self.columns)

    def linear_entries(self) -> list[tuple[int, int, int]]:
        """The diagonal: ``(i, i, i)``."""
        return [(i, i, i) for i in range(self.k)]

    def theta_from_covariance(self, S: np.ndarray) -> np.ndarray:
        """The standard deviations ``sqrt(diag(S))`` (the correlations are not modelled)."""
        return np.sqrt(np.diag(S))

    @property
    def lind(self) -> None:
        """None: the off-diagonal entries of ``T`` are stored zeros, not parameters."""
        return None

    def covariance_entries(self) -> list[tuple[int, int]]:
        """The variances: ``(a, a)``."""
        return [(a, a) for a in range(self.k)]


# ----------------------------------------------------------------------------------------
# correlation factors in closed form


def _cs_factor(rho: float, k: int) -> np.ndarray:
    r"""Cholesky factor ``L`` of the equicorrelation matrix ``R = (1−ρ) I + ρ 11ᵀ``.

    Eliminating the first ``j`` variables leaves the conditional variance and
    covariance

    .. math::  d_j = \frac{(1-\rho)(1+j\rho)}{1+(j-1)\rho}, \qquad
               c_j = \frac{\rho(1-\rho)}{1+(j-1)\rho},

    so ``L_jj = sqrt(d_j)`` and ``L_ij = c_j / sqrt(d_j) = ρ sqrt(1−ρ) / sqrt((1+(j−1)ρ)(1+jρ))``
    for ``i > j ≥ 1``; the first column is ``(1, ρ, …, ρ)``.  Exact (no
    cancellation) for ``−1/(k−1) ≤ ρ ≤ 1``, including both ends, where ``R``
    is singular.
    """
    L = np.zeros((k, k))
    L[0, 0] = 1.0
    if k == 1:
        return L
    L[1:, 0] = rho
    j = np.arange(1, k, dtype=float)
    a = np.maximum(1.0 + (j - 1.0) * rho, 0.0)  # 1 + (j−1)ρ  (> 0 inside the bounds)
    b = np.maximum(1.0 + j * rho, 0.0)  # 1 + jρ  (0 for j = k−1 at ρ = −1/(k−1))
    om = max(1.0 - rho, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(a > 0, om * b / a, 0.0)
        c = np.where(a * b > 0, rho * np.sqrt(om) / np.sqrt(a * b), 0.0)
    idx = np.arange(1, k)
    L[idx, idx] = np.sqrt(np.maximum(d, 0.0))
    for jj in range(1, k - 1):
        L[jj + 1 :, jj] = c[jj - 1]
    return L


def _ar1_factor(rho: float, k: int) -> np.ndarray:
    r"""Cholesky factor of the AR(1) correlation matrix ``R_ij = ρ^|i−j|``.

    ``L_i0 = ρ^i`` and ``L_ij = ρ^(i−j) sqrt(1−ρ²)`` for ``1 ≤ j ≤ i``: the
    innovations representation ``x_i = ρ x_{i−1} + sqrt(1−ρ²) e_i``.  Exact for
    ``|ρ| ≤ 1`` (at ``|ρ| = 1`` only the first column is non-zero).
    """
    i = np.arange(k)
    lag = i[:, None] - i[None, :]
    L = np.where(lag >= 0, float(rho) ** np.maximum(lag, 0), 0.0)
    L[:, 1:] *= np.sqrt(max(1.0 - rho * rho, 0.0))
    return L


def levinson_autocorrelations(pacf: np.ndarray) -> np.ndarray:
    r"""Autocorrelations ``ρ_1, …, ρ_m`` of the partial autocorrelations ``φ_1, …, φ_m`` (Durbin–Levinson).

    With ``a^{(1)} = (φ_1)``, ``v_0 = 1``, ``v_n = v_{n−1}(1 − φ_n²)``:

    .. math::  \rho_n = \sum_{j=1}^{n-1} a^{(n-1)}_j \rho_{n-j} + \phi_n v_{n-1}, \qquad
               a^{(n)}_j = a^{(n-1)}_j - \phi_n a^{(n-1)}_{n-j}, \quad a^{(n)}_n = \phi_n.

    Every ``φ ∈ [−1, 1]^m`` gives a positive semi-definite Toeplitz matrix
    (definite when all ``|φ_n| < 1``), and every positive definite one arises.
    """
    _, _, rho = _levinson(np.asarray(pacf, dtype=float))
    return rho


def _levinson(phi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Durbin–Levinson: (A, v, ρ) with ``A`` unit lower triangular, ``A R Aᵀ = diag(v)``."""
    m = len(phi)
    k = m + 1
    A = np.eye(k)
    v = np.ones(k)
    rho = np.zeros(m)
    a = np.zeros(0)
    for n in range(1, k):
        f = phi[n - 1]
        rho[n - 1] = (a @ rho[: n - 1][::-1] if n > 1 else 0.0) + f * v[n - 1]
        a = np.concatenate([a - f * a[::-1], [f]])
        v[n] = v[n - 1] * max(1.0 - f * f, 0.0)
        A[n, :n] = -a[::-1]  # prediction error e_n = x_n − Σ_j a_j x_{n−j}
    return A, v, rho


def _toep_factor(phi: np.ndarray, k: int) -> np.ndarray:
    r"""Cholesky factor of the Toeplitz correlation matrix with partial autocorrelations ``φ``.

    The Levinson recursion gives the prediction-error transform ``A`` (unit
    lower triangular) with ``A R Aᵀ = diag(v)``, ``v_n = Π_{j≤n}(1 − φ_j²)``, so

    .. math::  L = A^{-1} \operatorname{diag}(\sqrt{v}), \qquad L L^\top = R.

    ``A`` is always invertible, so the factor exists also where some
    ``|φ_n| = 1`` and ``R`` is singular.
    """
    if k == 1:
        return np.ones((1, 1))
    A, v, _ = _levinson(phi)
    # forward substitution for A⁻¹ (k is small; LAPACK's call overhead would dominate)
    Ainv = np.eye(k)
    for n in range(1, k):
        Ainv[n, :n] = -A[n, :n] @ Ainv[:n, :n]
    return Ainv * np.sqrt(v)[None, :]


# ----------------------------------------------------------------------------------------
# structured covariances: SDs (heterogeneous or one) times a correlation factor


class _Scaled(_Structure):
    """``T = D L(ρ)``: the SDs ``D`` (``k`` or one) times the Cholesky factor of a correlation matrix.

    Parameters are ``[s_1, …, s_k or s, correlation parameters…]``; the
    subclasses set ``hom`` (one SD), the correlation parameters' count,
    bounds, names and factor.
    """

    hom = False

    def __init__(self, k: int, columns: list[str] | None = None) -> None:
        super().__init__(k, columns)
        self.n_sd = 1 if self.hom else self.k
        self.n_cor = self._n_cor()
        self.n_par = self.n_sd + self.n_cor
        self._clo, self._chi = self._cor_bounds()

    # --- what the subclasses define
    def _n_cor(self) -> int:
        return 0

    def _cor_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros(0), np.zeros(0)

    def _cor_names(self) -> list[str]:
        return []

    def _factor(self, cpar: np.ndarray) -> np.ndarray:
        return np.eye(self.k)

    # --- the protocol
    def start(self) -> np.ndarray:
        return np.concatenate([np.ones(self.n_sd), np.zeros(self.n_cor)])

    def lower(self) -> np.ndarray:
        return np.concatenate([np.zeros(self.n_sd), self._cor_bounds()[0]])

    def upper(self) -> np.ndarray:
        return np.concatenate([np.full(self.n_sd, np.inf), self._cor_bounds()[1]])

    def block(self, par: np.ndarray) -> np.ndarray:
        r"""``T = diag(s) L``, with ``L L^T`` the correlation matrix; parameters clipped to their bounds."""
        par = np.asarray(par, dtype=float)
        s = np.maximum(par[: self.n_sd], 0.0)
        cpar = par[self.n_sd :]
        if self.n_cor:
            cpar = np.clip(cpar, self._clo, self._chi)
        L = self._factor(cpar)
        return L * (s[0] if self.hom else s[:, None])

    def par_names(self) -> list[str]:
        sd = ["sd"] if self.hom else [f"sd({c})" for c in self.columns]
        return sd + self._cor_names()

    def scales_with_block(self) -> np.ndarray:
        """The standard deviations scale with ``T``; the correlation parameters do not."""
        return np.arange(self.n_par) < self.n_sd


class HomDiagonal(_Scaled):
    r"""One variance, independent columns (``homdiag``): ``T = s I``, ``Σ_rel = s² I``."""

    name = "homdiag"
    hom = True


class CompoundSymmetry(_Scaled):
    r"""Heterogeneous variances and one common correlation (glmmTMB's ``cs``).

    .. math::  \Sigma_{\mathrm{rel}} = D R D, \quad D = \operatorname{diag}(s_1,…,s_k), \quad
               R = (1-\rho) I + \rho\, \mathbf 1 \mathbf 1^\top,

    parameters ``(s_1, …, s_k, ρ)`` with ``s_i ≥ 0`` and ``−1/(k−1) ≤ ρ ≤ 1``
    (the range where ``R`` is positive semi-definite).  ``T = D L(ρ)`` with ``L``
    the closed-form Cholesky factor of ``R``.
    """

    name = "cs"

    def _n_cor(self) -> int:
        return 1 if self.k > 1 else 0

    def _cor_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        if self.k == 1:
            return np.zeros(0), np.zeros(0)
        return np.array([-1.0 / (self.k - 1)]), np.array([1.0])

    def _cor_names(self) -> list[str]:
        return ["rho"] if self.n_cor else []

    def _factor(self, cpar: np.ndarray) -> np.ndarray:
        return _cs_factor(float(cpar[0]), self.k) if self.n_cor else np.eye(self.k)


class HomCompoundSymmetry(CompoundSymmetry):
    r"""One variance, one common correlation (``homcs``, SAS's ``CS``): ``Σ_rel = s² R``, ``R_ij = ρ``."""

    name = "homcs"
    hom = True


class AR1(_Scaled):
    r"""First-order autoregressive correlation with one variance (glmmTMB's ``ar1``, SAS's ``AR(1)``).

    .. math::  (\Sigma_{\mathrm{rel}})_{ij} = s^2 \rho^{|i-j|},

    in the order of the term's columns (the factor's levels); parameters
    ``(s, ρ)``, ``s ≥ 0``, ``−1 ≤ ρ ≤ 1``.
    """

    name = "ar1"
    hom = True

    def _n_cor(self) -> int:
        return 1 if self.k > 1 else 0

    def _cor_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        n = self._n_cor()
        return np.full(n, -1.0), np.full(n, 1.0)

    def _cor_names(self) -> list[str]:
        return ["rho"] if self.n_cor else []

    def _factor(self, cpar: np.ndarray) -> np.ndarray:
        return _ar1_factor(float(cpar[0]), self.k) if self.n_cor else np.eye(self.k)


class Toeplitz(_Scaled):
    r"""Heterogeneous variances and Toeplitz correlations (glmmTMB's ``toep``, SAS's ``TOEPH``).

    .. math::  \Sigma_{\mathrm{rel}} = D R D, \quad R_{ij} = \rho_{|i-j|}, \ \rho_0 = 1,

    parametrised by the SDs ``s_1, …, s_k ≥ 0`` and the partial
    autocorrelations ``φ_1, …, φ_{k−1} ∈ [−1, 1]``; the lag correlations
    ``ρ_1, …, ρ_{k−1}`` follow by the Durbin–Levinson recursion
    (:func:`levinson_autocorrelations`), which keeps ``R`` positive
    (semi-)definite on the whole box.
    """

    name = "toep"

    def _n_cor(self) -> int:
        return self.k - 1

    def _cor_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return np.full(self.k - 1, -1.0), np.full(self.k - 1, 1.0)

    def _cor_names(self) -> list[str]:
        return [f"pacf{j}" for j in range(1, self.k)]

    def _factor(self, cpar: np.ndarray) -> np.ndarray:
        return _toep_factor(cpar, self.k)

    def lag_correlations(self, par: np.ndarray) -> np.ndarray:
        """The correlations ``ρ_1, …, ρ_{k−1}`` at lags ``1, …, k−1``."""
        return levinson_autocorrelations(np.clip(np.asarray(par, dtype=float)[self.n_sd :], self._clo, self._chi))


class HomToeplitz(Toeplitz):
    r"""One variance, Toeplitz correlations (``homtoep``, SAS's ``TOEP``): ``Σ_rel = s² R``, ``R_ij = ρ_|i−j|``."""

    name = "homtoep"
    hom = True


#: the structures by glmmTMB name
STRUCTURE_CLASSES: dict[str, type] = {
    "us": Unstructured,
    "diag": Diagonal,
    "homdiag": HomDiagonal,
    "cs": CompoundSymmetry,
    "homcs": HomCompoundSymmetry,
    "ar1": AR1,
    "toep": Toeplitz,
    "homtoep": HomToeplitz,
}


def make_structure(name: str, k: int, columns: list[str]) -> CovStructure:
    """The structure called ``name`` for a term with ``k`` columns.

    Raises
    ------
    ModelSpecError
        If the structure is unknown or not available.
    """
    try:
        cls = STRUCTURE_CLASSES[name]
    except KeyError:
        raise ModelSpecError(
            f"covariance structure {name!r} is not available; available: {', '.join(sorted(STRUCTURE_CLASSES))}"
        ) from None
    return cls(k, columns)
