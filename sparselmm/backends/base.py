"""The backend contract: the PLS state every factorisation backend implements, and its inputs.

For relative covariance factor Λ = Λ(θ) and the cross-products of :class:`CrossProducts`
(``A = ZᵀWZ``), the PLS problem

.. math:: \\min_{u, β}\\ \\|W^{1/2}(y - Xβ - ZΛu)\\|^2 + \\|u\\|^2

is solved through a factor of ``M = ΛᵀAΛ + I`` (each backend its own: CHOLMOD, the block
Schur factors, the per-level block-diagonal one) and the dense Schur complement of the fixed
effects, which :class:`PLSBackend` computes for all of them:

.. math::

    B &= ΛᵀZᵀWX, \\qquad c = ΛᵀZᵀWy,\\\\
    R_Xᵀ R_X &= XᵀWX - Bᵀ M^{-1} B,\\\\
    β &= (R_XᵀR_X)^{-1} (XᵀWy - Bᵀ M^{-1} c),\\qquad u = M^{-1}(c - Bβ),\\\\
    \\text{pwrss} &= yᵀWy - cᵀM^{-1}c - β̂ᵀ(XᵀWy - BᵀM^{-1}c).

``log det M`` and ``log|R_X|² = log det(R_XᵀR_X)`` give lme4's objective
(:func:`objective_from_parts`).  Nothing here touches the n observations.

:class:`PLSProblem` is what a backend reads of a design; the registry
(:mod:`sparselmm.backends.registry`) chooses a backend for one.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Protocol

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from scipy.linalg import lapack

from sparselmm.errors import ModelSpecError

if TYPE_CHECKING:  # pragma: no cover
    from sparselmm.spec.terms import RandomTerm

__all__ = [
    "PLSBackend",
    "PLSProblem",
    "CrossProducts",
    "zt_gram",
    "BlockLowerCrossProducts",
    "objective_from_parts",
    "rx_inverse_gram",
    "stored_entries",
    "symmetric_csr",
    "LOG2PI",
]

LOG2PI = float(np.log(2 * np.pi))


def objective_from_parts(ldL2: float, ldRX2: float, pwrss: float, n: int, p: int, REML: bool, ldW: float = 0.0) -> float:
    """lme4's profiled objective from the PLS pieces.

    ML deviance ``ldL2 - ldW + n (1 + log(2π pwrss / n))``; REML criterion
    ``ldL2 - ldW + ldRX2 + (n - p)(1 + log(2π pwrss / (n - p)))``.
    """
    if pwrss <= 0 or not np.isfinite(pwrss):
        return np.inf
    if REML:
        nmp = n - p
        return ldL2 - ldW + ldRX2 + nmp * (1.0 + LOG2PI + np.log(pwrss / nmp))
    return ldL2 - ldW + n * (1.0 + LOG2PI + np.log(pwrss / n))


def rx_inverse_gram(RX: np.ndarray) -> np.ndarray:
    """``(R_XᵀR_X)⁻¹`` from the upper-triangular ``R_X`` (p × p; empty for p = 0).

    Parameters
    ----------
    RX : numpy.ndarray

    Returns
    -------
    numpy.ndarray
    """
    p = RX.shape[0]
    if p == 0:
        return np.zeros((0, 0))
    Rinv = sla.solve_triangular(RX, np.eye(p), lower=False)
    return Rinv @ Rinv.T


def stored_entries(A: sp.spmatrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rows, columns, values)`` of the stored entries of a sparse matrix; a CSC matrix's own
    arrays, columns expanded from its pointers (a COO copy costs ~0.1 ms of scipy's checks)."""
    if A.format == "csc":
        return A.indices, np.repeat(np.arange(A.shape[1]), np.diff(A.indptr)), A.data
    A = A.tocoo()
    return A.row, A.col, A.data


def symmetric_csr(A: sp.spmatrix) -> sp.csr_matrix:
    """A symmetric matrix (``ZᵀWZ``) in CSR: a CSC matrix's arrays read as CSR are the same
    matrix, so no copy is made."""
    if A.format == "csc":
        return sp.csr_matrix((A.data, A.indices, A.indptr), shape=A.shape)
    return A.tocsr()


def zt_gram(Zt: sp.csc_matrix, Zw: sp.csc_matrix | None = None, chunk: int = 4_000_000) -> sp.csc_matrix:
    """``Zw Ztᵀ`` (``ZᵀWZ`` for ``Zw = Zt W``; ``Zt Ztᵀ`` without ``Zw``), CSC with sorted indices.

    Where every column of ``Zt`` (a row of the data) holds the same number ``K`` of entries, as the
    random effects of scalar and vector terms do, the diagonal is a weighted count of each
    column's squares and the rest the sum ``U + Uᵀ`` of the products of its ``K(K-1)/2`` pairs
    (``U`` by a COO-to-CSR conversion, ``chunk`` rows at a time): on 2.7M rows of two crossed factors
    (issue 23's ELP shape) 0.4 s against 0.8 s for the sparse product, which is used otherwise.

    Parameters
    ----------
    Zt : scipy.sparse.spmatrix
        ``Zᵀ``, q × n (read as CSC).
    Zw : scipy.sparse.spmatrix, optional
        ``ZᵀW``, the same pattern with weighted values; ``Zt`` when omitted.
    chunk : int
        Rows of the data converted at a time (bounds the COO arrays' memory).

    Returns
    -------
    scipy.sparse.csc_matrix
        The symmetric q × q product, indices sorted.
    """
    Zt = Zt.tocsc()  # the column arrays are read below (no copy for CSC)
    Zw = Zt if Zw is None else Zw.tocsc()
    q, n = Zt.shape
    cnt = np.diff(Zt.indptr)
    K = int(cnt[0]) if n else 0
    if n == 0 or K == 0 or not np.all(cnt == K) or not np.array_equal(Zt.indptr, Zw.indptr) \
            or not np.array_equal(Zt.indices, Zw.indices):
        A = (Zw @ Zt.T).tocsc()
        A.sort_indices()
        return A
    rows = Zt.indices.reshape(n, K)
    v, vw = Zt.data.reshape(n, K), Zw.data.reshape(n, K)
    A = sp.diags(np.bincount(rows.ravel(), weights=(v * vw).ravel(), minlength=q), format="csr")
    pa, pb = np.triu_indices(K, 1)
    if len(pa):
        U = sp.csr_matrix((q, q))
        for lo in range(0, n, chunk):
            hi = min(n, lo + chunk)
            r = rows[lo:hi]
            part = sp.coo_matrix(((vw[lo:hi, pa] * v[lo:hi, pb]).ravel(), (r[:, pa].ravel(), r[:, pb].ravel())),
                                 shape=(q, q)).tocsr()  # duplicates summed
            U = part if lo == 0 else U + part
        A = A + U + U.T.tocsr()
    A.sort_indices()
    # a symmetric matrix's CSR arrays are its CSC ones
    return sp.csc_matrix((A.data, A.indices, A.indptr), shape=(q, q))


@dataclass
class CrossProducts:
    """Weighted cross-products of ``[Z X y]``, computed once per model.

    With ``W = diag(weights)``: ``ZtZ = Zᵀ W Z`` (sparse, q × q), ``ZtX``,
    ``Zty``, ``XtX``, ``Xty`` and ``yty``; ``n`` observations and
    ``ldW = Σ log wᵢ``.  Nothing after this depends on n.
    """

    ZtZ: sp.csc_matrix
    ZtX: np.ndarray
    Zty: np.ndarray
    XtX: np.ndarray
    Xty: np.ndarray
    yty: float
    n: int
    ldW: float = 0.0
    _memo: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    #: the stored block-lower part of ``ZᵀWZ`` when only that is kept (see
    #: :class:`BlockLowerCrossProducts`); None when ``ZtZ`` is stored whole
    lower_part: sp.csc_matrix | None = None

    def ZtZ_diagonal(self) -> np.ndarray:
        """The diagonal of ``ZᵀWZ`` (from the stored part, without building the full matrix)."""
        A = self.ZtZ if self.lower_part is None else self.lower_part
        return np.asarray(A.diagonal(), dtype=float)

    def memo(self, key: str, make: Callable[[], Any]) -> Any:
        """A quantity derived from these cross-products alone, computed on first request and kept
        (the per-level blocks of ``ZᵀWZ``, the search's θ units): the moment start, the fit and the
        backends ask for the same ones."""
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    @classmethod
    def from_arrays(
        cls, Zt: sp.csc_matrix, X: np.ndarray, y: np.ndarray, weights: np.ndarray | None,
        XtX: np.ndarray | None = None,
    ) -> "CrossProducts":
        """Compute the cross-products from ``Zt`` (q × n), ``X`` (n × p), ``y`` (n)
        (``XtX``, unweighted, when the caller has it already)."""
        if weights is None:
            Zw, Xw, yw, ldW = Zt, X, y, 0.0
        else:
            Zw = Zt @ sp.diags(weights)
            Xw = X * weights[:, None]
            yw = y * weights
            ldW = float(np.sum(np.log(weights)))
        ZtZ = zt_gram(Zt, Zw)
        return cls(
            ZtZ=ZtZ,
            ZtX=np.asarray(Zw @ X),
            Zty=np.asarray(Zw @ y).ravel(),
            XtX=X.T @ Xw if XtX is None or weights is not None else XtX,
            Xty=X.T @ yw,
            yty=float(y @ yw),
            n=len(y),
            ldW=ldW,
        )

    def with_fixed_part(self, ZtX: np.ndarray, Zty: np.ndarray, XtX: np.ndarray, Xty: np.ndarray, yty: float) -> "CrossProducts":
        """The same ``ZᵀWZ`` (shared, in the same storage) with other fixed-effects and response
        parts (a constrained model: the profile of a fixed effect)."""
        return CrossProducts(ZtZ=self.ZtZ, ZtX=ZtX, Zty=Zty, XtX=XtX, Xty=Xty, yty=yty, n=self.n, ldW=self.ldW)

    def __add__(self, other: "CrossProducts") -> "CrossProducts":
        """Sum of two partial cross-products over disjoint rows (for chunked data)."""
        return CrossProducts(
            ZtZ=(self.ZtZ + other.ZtZ).tocsc(),
            ZtX=self.ZtX + other.ZtX,
            Zty=self.Zty + other.Zty,
            XtX=self.XtX + other.XtX,
            Xty=self.Xty + other.Xty,
            yty=self.yty + other.yty,
            n=self.n + other.n,
            ldW=self.ldW + other.ldW,
        )


def symmetric_from_block_lower(L: sp.csc_matrix, block_of: np.ndarray) -> sp.csc_matrix:
    """The symmetric matrix whose block-lower part is ``L``: ``L + Sᵀ`` with ``S`` = ``L`` less its
    diagonal blocks (``block_of``: the level block of each row/column)."""
    q = L.shape[1]
    col = np.repeat(np.arange(q, dtype=L.indices.dtype), np.diff(L.indptr))
    strict = block_of[L.indices] != block_of[col]
    counts = np.bincount(col[strict], minlength=q)
    del col
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(L.indptr.dtype)
    S = sp.csc_matrix((L.data[strict], L.indices[strict], indptr), shape=L.shape)
    del strict
    out = (L + S.T.tocsc()).tocsc()
    del S
    out.sort_indices()
    return out


class BlockLowerCrossProducts(CrossProducts):
    """:class:`CrossProducts` that keeps only the block-lower part of ``ZᵀWZ``.

    ``lower_part`` holds the level blocks on and below the block diagonal (for
    scalar terms: the lower triangle).  The PLS states of this module work
    from it directly; the full symmetric ``ZtZ`` that other code reads is built
    on first access and kept, so a 10⁸-row crossed fit never holds both.

    Parameters
    ----------
    ZtZ_lower : scipy.sparse.csc_matrix
    block_of : numpy.ndarray
        Level block of every row of ``ZtZ_lower``.
    **kw
        The other fields of :class:`CrossProducts`.
    """

    def __init__(self, ZtZ_lower: sp.csc_matrix, block_of: np.ndarray, **kw: Any) -> None:
        self._full: sp.csc_matrix | None = None
        super().__init__(ZtZ=None, **kw)  # type: ignore[arg-type]
        self.lower_part = ZtZ_lower
        self._block_of = block_of

    @property
    def block_of(self) -> np.ndarray:
        """The level block of every row of ``lower_part`` (which blocks are stored whole)."""
        return self._block_of

    @property  # type: ignore[override]
    def ZtZ(self) -> sp.csc_matrix:
        """The full symmetric ``ZᵀWZ`` (built from ``ZtZ_lower`` when first read)."""
        if self._full is None and self.lower_part is not None:
            self._full = symmetric_from_block_lower(self.lower_part, self._block_of)
        return self._full  # type: ignore[return-value]

    @ZtZ.setter
    def ZtZ(self, value: sp.csc_matrix | None) -> None:
        self._full = value

    def with_fixed_part(self, ZtX: np.ndarray, Zty: np.ndarray, XtX: np.ndarray, Xty: np.ndarray, yty: float) -> "CrossProducts":
        """As :meth:`CrossProducts.with_fixed_part`, keeping the block-lower storage (and the full
        ``ZᵀWZ`` if it was built)."""
        out = BlockLowerCrossProducts(self.lower_part, self._block_of, ZtX=ZtX, Zty=Zty, XtX=XtX, Xty=Xty, yty=yty,
                                      n=self.n, ldW=self.ldW)
        out.ZtZ = self._full  # the full matrix, if it was built, is shared
        return out

    def __repr__(self) -> str:
        return f"BlockLowerCrossProducts(q={self.lower_part.shape[0]}, nnz_lower={self.lower_part.nnz}, n={self.n})"



class PLSProblem(Protocol):
    """What a backend reads of a design (:class:`~sparselmm.frame.modelframe.Design` has it all).

    Attributes
    ----------
    cross : CrossProducts
        ``[Z X y]ᵀW[Z X y]`` in the engine's units.
    terms : list of RandomTerm
        The random-effect terms, lme4's order (each with its ``structure``, ``k``, ``nlevels``, ``group``).
    Gp : numpy.ndarray
        First row of each term in Z's rows (lme4's ``Gp``).
    theta_slices : list of slice
        Each term's entries of θ.
    Lambda_pattern : scipy.sparse.csr_matrix
        The pattern of Λ.
    """

    cross: CrossProducts
    terms: "list[RandomTerm]"
    Gp: np.ndarray
    theta_slices: list[slice]
    Lambda_pattern: sp.csr_matrix

    @property
    def p(self) -> int:
        """Number of fixed-effect columns."""

    @property
    def q(self) -> int:
        """Number of random effects."""

    def lambda_data(self, theta: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Stored values of Λ(θ) in the order of ``Lambda_pattern.data``."""


class PLSBackend(ABC):
    """The θ-dependent state of a linear mixed model (lme4's ``merPredD``): the contract every
    backend implements.

    A backend **declares** (class attributes and class methods, read by the registry and the
    fit, never probed):

    * :attr:`name` — the name ``Design.pls(backend=...)`` takes;
    * :meth:`applies` — whether it can factor a design's ``M`` at all;
    * :meth:`preferred` — whether ``"auto"`` takes it for a design (the registry asks the
      backends in its order; the first that prefers a design gets it, CHOLMOD otherwise);
    * its capabilities: :attr:`gradient_blocks_available` (``Σ_j (M⁻¹ΛᵀA)_jj`` straight
      from the factor: :meth:`gradient_blocks`), :attr:`cheap_minv_diag` (``diag(M⁻¹)``
      at about the cost of one evaluation), :attr:`single_precision_search` (a
      :meth:`search_objective` that may factor in single precision).

    and **does**, per θ, the factorisation of ``M = ΛᵀAΛ + I`` (:meth:`_setup_factor`
    once, :meth:`_factorize` and :meth:`_logdet` per θ) and the solves with it
    (:meth:`solve_M`); everything else here — the right-hand sides, the Schur complement
    of the fixed effects, β, u, pwrss, the objective — is shared.

    Parameters
    ----------
    design : PLSProblem
        What the backend reads of a design (a :class:`~sparselmm.frame.modelframe.Design`).
    """

    #: the backend's name in ``Design.pls(backend=...)``
    name: ClassVar[str] = ""
    #: what :meth:`applies` asks of a design, in words (for the message when it does not)
    needs: ClassVar[str] = ""
    #: :meth:`gradient_blocks` gives ``Σ_j (M⁻¹ΛᵀA)_jj`` per θ (the analytic gradient's costly part)
    gradient_blocks_available: ClassVar[bool] = False
    #: :meth:`minv_diag` costs about one evaluation (not ``q`` solves)
    cheap_minv_diag: ClassVar[bool] = False
    #: :meth:`search_objective` may factor in single precision
    single_precision_search: ClassVar[bool] = False

    @classmethod
    @abstractmethod
    def applies(cls, design: "PLSProblem") -> bool:
        """Whether this backend can factor the design's ``M``."""

    @classmethod
    def preferred(cls, design: "PLSProblem") -> bool:
        """Whether ``Design.pls("auto")`` should take this backend for the design."""
        return False

    @classmethod
    def require(cls, design: "PLSProblem") -> None:
        """Refuse a design the backend does not apply to (its factor would be of another matrix).

        Raises
        ------
        ModelSpecError
            Naming the backend and what it needs (:attr:`needs`).
        """
        if not cls.applies(design):
            raise ModelSpecError(f"backend {cls.name!r} does not apply to this design: it needs {cls.needs}")

    def __init__(self, design: "PLSProblem") -> None:
        type(self).require(design)
        self.design = design
        cp = design.cross
        self.n, self.p, self.q = cp.n, design.p, design.q
        if self.n <= self.p:
            raise ModelSpecError(f"{self.n} observations for {self.p} fixed effects: too few to fit")
        self._setup_factor()
        # right-hand sides [ZᵀWX | ZᵀWy], reshaped per term for the blockwise Λᵀ product
        self._rhs0 = np.column_stack([cp.ZtX, cp.Zty]) if self.p else cp.Zty[:, None].copy()
        self._rhs = np.empty_like(self._rhs0)
        self.theta: np.ndarray | None = None
        self._theta_key: bytes | None = None
        self.ok = False

    # ----- the factorisation: each backend's own ----------------------------------
    @abstractmethod
    def _setup_factor(self) -> None:
        """What is done once: the symbolic analysis, the fixed pattern of ``ΛᵀAΛ``, tables."""

    @abstractmethod
    def _factorize(self, blocks: list[np.ndarray]) -> bool:
        """Numeric factorisation of ``ΛᵀAΛ + I`` for the blocks of Λ; False on failure."""

    @abstractmethod
    def _logdet(self) -> float:
        """``log det(ΛᵀAΛ + I)`` of the current factor."""

    @abstractmethod
    def solve_M(self, rhs: np.ndarray) -> np.ndarray:
        """``M⁻¹ rhs`` with the current factor, ``M = ΛᵀAΛ + I``."""

    # ----- θ -> blocks ------------------------------------------------------------
    def blocks(self, theta: np.ndarray) -> list[np.ndarray]:
        """The relative factor block ``T_t`` of every term at θ."""
        d = self.design
        return [t.structure.block(theta[sl]) for t, sl in zip(d.terms, d.theta_slices)]

    def _lambda_t_times(self, blocks: list[np.ndarray], R: np.ndarray, out: np.ndarray) -> np.ndarray:
        """``out = Λᵀ R`` for a dense q × m matrix R, blockwise."""
        Gp = self.design.Gp
        m = R.shape[1]
        for T, lo, hi in zip(blocks, Gp[:-1], Gp[1:]):
            k = T.shape[0]
            seg = R[lo:hi].reshape(-1, k, m)
            if k == 1:
                np.multiply(R[lo:hi], T[0, 0], out=out[lo:hi])
            else:
                out[lo:hi] = (T.T @ seg).reshape(-1, m)
        return out

    def lambda_times(self, theta: np.ndarray, u: np.ndarray, blocks: list[np.ndarray] | None = None) -> np.ndarray:
        """``b = Λ(θ) u`` for a vector or a q × m matrix ``u`` (``blocks``: θ's blocks, when in hand)."""
        Gp = self.design.Gp
        u2 = u[:, None] if u.ndim == 1 else u
        out = np.empty_like(u2, dtype=float)
        for T, lo, hi in zip(self.blocks(theta) if blocks is None else blocks, Gp[:-1], Gp[1:]):
            k = T.shape[0]
            out[lo:hi] = (T @ u2[lo:hi].reshape(-1, k, u2.shape[1])).reshape(-1, u2.shape[1])
        return out[:, 0] if u.ndim == 1 else out

    # ----- the hot path -----------------------------------------------------------
    def update(self, theta: np.ndarray) -> bool:
        """Refactor and solve the PLS problem at θ; return False if the factorisation failed."""
        theta = np.asarray(theta, dtype=float)
        key = theta.tobytes()  # a repeated θ (the optimiser's final point, the model's set-up) is not redone
        if key == self._theta_key:
            return self.ok
        self._theta_key = key
        self.theta = theta.copy()
        self.ok = False
        blocks = self.blocks(theta)
        if not self._factorize(blocks):
            return False
        self.ldL2 = self._logdet()
        if not np.isfinite(self.ldL2):
            return False
        G, sol = self._rhs_solution(blocks)
        cp, p = self.design.cross, self.p
        if p:
            RX, info = lapack.dpotrf(cp.XtX - G[:p, :p], lower=0, clean=1)  # reads the upper triangle
            if info != 0:
                return False
            r = cp.Xty - G[:p, p]
            beta, info = lapack.dpotrs(RX, r, lower=0)
            self.ldRX2 = 2.0 * sum(map(math.log, RX.diagonal().tolist()))  # p is small: no numpy calls
            self.RX = RX
            self.V = sol[:, :p]  # M⁻¹ΛᵀZᵀX, reused by the gradient
            self.beta = beta
            self.u = sol[:, p] - self.V @ beta
            self.pwrss = float(cp.yty - G[p, p] - r @ beta)
        else:
            self.ldRX2 = 0.0
            self.RX = np.zeros((0, 0))
            self.beta = np.zeros(0)
            self.u = sol[:, 0]
            self.pwrss = float(cp.yty - G[0, 0])
        self.blocks_ = blocks
        self.ok = bool(np.isfinite(self.pwrss) and self.pwrss > 0)
        return self.ok

    def _rhs_solution(self, blocks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """``G = [B c]ᵀM⁻¹[B c]`` and ``M⁻¹[B c]`` for ``[B c] = Λᵀ[ZᵀWX | ZᵀWy]``, with the current factor."""
        rhs = self._lambda_t_times(blocks, self._rhs0, self._rhs)
        sol = self.solve_M(rhs)
        return rhs.T @ sol, sol

    def objective(self, theta: np.ndarray, REML: bool = True) -> float:
        """Profiled deviance (ML) or REML criterion at θ, lme4's scale; ``inf`` on failure."""
        if not self.update(theta):
            return np.inf
        return objective_from_parts(self.ldL2, self.ldRX2, self.pwrss, self.n, self.p, REML, self.design.cross.ldW)

    def search_objective(self, theta: np.ndarray, REML: bool = True) -> float:
        """The objective for a derivative-free search's evaluations: :meth:`objective` unless the
        backend declares :attr:`single_precision_search`."""
        return self.objective(theta, REML)

    @property
    def searches_in_single_precision(self) -> bool:
        """Whether :meth:`search_objective` factors in single precision for this design now."""
        return False

    def gradient_blocks(self) -> np.ndarray:
        """``Σ_j (M⁻¹ΛᵀA)_jj`` at the current θ, for backends that declare
        :attr:`gradient_blocks_available`."""
        raise NotImplementedError(f"backend {self.name!r} does not give the gradient's blocks")

    # ----- after the fit ----------------------------------------------------------
    def unscaled_vcov(self) -> np.ndarray:
        """``(R_XᵀR_X)^{-1}``: the fixed-effects covariance divided by σ²."""
        return rx_inverse_gram(self.RX)

    def minv_diag_blocks(self, budget: float = 2e7) -> list[np.ndarray]:
        """Per term, the ``(nlevels, k, k)`` diagonal blocks of ``M⁻¹``, by solves against
        chunks of whole level blocks of unit vectors (``q`` solves in all, ``budget`` doubles at a time)."""
        d = self.design
        q = self.q
        chunk = max(1, min(q, int(budget // max(q, 1))))
        out = []
        for t, lo, hi in zip(d.terms, d.Gp[:-1], d.Gp[1:]):
            k = t.k
            per = max(k, (chunk // k) * k)
            blocks = np.zeros((t.nlevels, k, k))
            for s in range(lo, hi, per):
                e = min(hi, s + per)
                E = np.zeros((q, e - s))
                E[np.arange(s, e), np.arange(e - s)] = 1.0
                nb = (e - s) // k
                Sb = self.solve_M(E)[s:e].reshape(nb, k, nb, k)  # rows and columns s..e of M⁻¹
                idx = np.arange(nb)
                blocks[(s - lo) // k : (s - lo) // k + nb] = Sb[idx, :, idx, :]
            out.append(blocks)
        return out

    def minv_diag(self) -> np.ndarray:
        """``diag(M⁻¹)`` (from :meth:`minv_diag_blocks`; cheaper where a backend declares :attr:`cheap_minv_diag`)."""
        return np.concatenate([np.diagonal(b, axis1=1, axis2=2).ravel() for b in self.minv_diag_blocks()])
