"""R's functions inside a formula, computed as R computes them.

The words of :data:`sparselmm.spec.vocabulary.VOCABULARY` whose source is
``"sparselmm:NAME"`` are the entries of :data:`FUNCTIONS` (pointwise functions and
constants) and :data:`STATEFUL` (transforms that keep state from the fit's data for new
data, formulaic's stateful transforms): ``log(x, base)``, R 4's ``round``, ``factor``
and ``ordered`` with R's level labels, ``relevel``, ``scale``, ``c()``, R's contrasts
``contr.treatment(n, base)``, ``contr.sum``, ... and ``C(f, contr, ...)`` with R's column
names, and the natural cubic splines ``ns()`` of R's ``splines`` package.

A function refuses what R refuses (``relevel`` of a number) with a
:class:`~sparselmm.errors.FormulaError` naming itself; the model frame adds the term.
"""

from __future__ import annotations

import functools
from types import MappingProxyType
from typing import Any, Callable, Hashable, Mapping, Sequence

import numpy
import pandas
from formulaic.transforms import stateful_transform
from formulaic.transforms.contrasts import C as _formulaic_C
from formulaic.transforms.contrasts import Contrasts

from sparselmm.errors import FormulaError
from sparselmm.spec.deparse import r_number

__all__ = ["FUNCTIONS", "STATEFUL", "RContrasts", "r_round", "natural_spline"]


# ----------------------------------------------------------------------------------------
# pointwise functions


def exp10(x: Any) -> Any:
    """:math:`10^x` (formulaic's own ``exp10`` computes :math:`x^{10}`)."""
    return numpy.power(10.0, x)


def log(x: Any, base: Any = None) -> Any:
    """R's ``log(x, base = exp(1))``: the natural logarithm, or ``log(x) / log(base)``."""
    out = numpy.log(x)
    return out if base is None else out / numpy.log(_number("log", "base", base))


def _number(function: str, argument: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, numpy.number)):
        raise FormulaError(f"{function}(): {argument} must be a number, not {value!r}")
    return float(value)


def _whole(function: str, argument: str, value: Any) -> int:
    v = _number(function, argument, value)
    if v != int(v):
        raise FormulaError(f"{function}(): {argument} must be a whole number, not {value!r}")
    return int(v)


def r_round(x: Any, digits: Any = 0) -> Any:
    """R's ``round(x, digits = 0)``: of the two numbers with ``digits`` decimals around x, the one
    nearer to x as stored (R 4's rule: ``round(0.15, 1)`` is 0.1, the double 0.15 being below
    0.15), the even one on an exact tie (``round(2.5)`` is 2)."""
    d = _whole("round", "digits", digits)
    x = numpy.asarray(x, dtype=float)
    if d == 0:
        return numpy.round(x)
    p = 10.0**d
    lo, hi = numpy.floor(x * p) / p, numpy.ceil(x * p) / p
    dlo, dhi = numpy.abs(x - lo), numpy.abs(hi - x)
    even_lo = numpy.mod(numpy.floor(x * p), 2) == 0
    return numpy.where(dlo < dhi, lo, numpy.where(dhi < dlo, hi, numpy.where(even_lo, lo, hi)))


def pmin(*args: Any) -> Any:
    """R's ``pmin``: the elementwise minimum of its arguments."""
    if not args:
        raise FormulaError("pmin() needs at least one argument")
    return functools.reduce(numpy.minimum, args)


def pmax(*args: Any) -> Any:
    """R's ``pmax``: the elementwise maximum of its arguments."""
    if not args:
        raise FormulaError("pmax() needs at least one argument")
    return functools.reduce(numpy.maximum, args)


def as_numeric(x: Any) -> Any:
    """R's ``as.numeric``: numbers as they are, a factor's level codes from 1, a logical as 0/1."""
    values = getattr(x, "__wrapped__", x)
    if isinstance(getattr(values, "dtype", None), pandas.CategoricalDtype):
        return pandas.Series(values).cat.codes.to_numpy(dtype=float) + 1.0
    return numpy.asarray(values, dtype=float)


def r_c(*values: Any) -> Any:
    """R's ``c(...)`` of constants: a vector of numbers (``knots = c(3, 6)``) or of strings
    (``levels = c("b", "a")``)."""
    if not values:
        raise FormulaError("c() needs at least one value")
    if all(isinstance(v, str) for v in values):
        return list(values)
    if all(isinstance(v, (int, float, numpy.number)) and not isinstance(v, bool) for v in values):
        return numpy.array(values, dtype=float)
    raise FormulaError(f"c() takes numbers or strings, all of one kind: got {', '.join(repr(v) for v in values)}")


# ----------------------------------------------------------------------------------------
# factors


def _labels(values: pandas.Series) -> tuple[pandas.Series, list[str]]:
    """Values as R's ``as.character`` writes them (``1`` not ``1.0``, ``TRUE``) and their sorted
    distinct labels, the levels R's ``factor()`` gives them."""
    if pandas.api.types.is_bool_dtype(values.dtype):
        return values.map({True: "TRUE", False: "FALSE"}), ["FALSE", "TRUE"]
    if pandas.api.types.is_numeric_dtype(values.dtype):
        distinct = sorted(v for v in values.dropna().unique())
        names = [r_number(float(v)) for v in distinct]
        return values.map(dict(zip(distinct, names))), names
    strings = values.astype(object).where(values.notna(), None)
    return strings, sorted({str(v) for v in strings.dropna()})


def _as_factor(function: str, x: Any, levels: Any = None, labels: Any = None, ordered: Any = None) -> pandas.Series:
    values = pandas.Series(getattr(x, "__wrapped__", x))
    if isinstance(values.dtype, pandas.CategoricalDtype) and levels is None and labels is None:
        cat = values
    else:
        if isinstance(values.dtype, pandas.CategoricalDtype):
            values = values.astype(object)
        text, found = _labels(values)
        want = found if levels is None else [str(v) if isinstance(v, str) else r_number(float(v)) for v in numpy.atleast_1d(levels)]
        outside = sorted(set(text.dropna()) - set(want))
        if outside:
            raise FormulaError(
                f"{function}(): the value(s) {outside[:5]} are not among levels = {want}; R would make those rows "
                "missing and drop them: drop them from the data first"
            )
        cat = pandas.Series(pandas.Categorical(text, categories=want), index=values.index)
        if labels is not None:
            names = [str(v) if isinstance(v, str) else r_number(float(v)) for v in numpy.atleast_1d(labels)]
            if len(names) != len(want):
                raise FormulaError(f"{function}(): labels has {len(names)} values for {len(want)} levels")
            cat = cat.cat.rename_categories(names)
    if ordered is not None and bool(ordered) != bool(cat.dtype.ordered):
        cat = cat.cat.as_ordered() if ordered else cat.cat.as_unordered()
    return _coded(cat)


def _coded(cat: pandas.Series) -> Any:
    """A factor for formulaic: an ordered one coded by R's default for it, contr.poly."""
    if cat.dtype.ordered:
        return _formulaic_C(cat, RContrasts("poly"))
    return cat


def r_factor(x: Any, levels: Any = None, labels: Any = None, ordered: Any = None) -> Any:
    """R's ``factor(x, levels, labels, ordered)`` / ``as.factor(x)``: a factor whose levels are the
    sorted distinct values (or ``levels``), labelled as R's ``as.character`` writes them (``1``, not
    ``1.0``; ``TRUE``), so that the columns are named as R names them (``factor(w2)1``).  A factor
    stays as it is; an ordered one keeps R's polynomial contrasts."""
    return _as_factor("factor", x, levels, labels, ordered)


def r_ordered(x: Any, levels: Any = None, labels: Any = None) -> Any:
    """R's ``ordered(x, levels)``: an ordered factor, coded by R's polynomial contrasts (``.L .Q``)."""
    return _as_factor("ordered", x, levels, labels, True)


def _relevel(x: Any, ref: Any, _state: dict | None = None) -> Any:
    """R's ``relevel(f, ref)``: the factor with level ``ref`` first, the reference of its
    treatment contrasts (levels compared as R prints them: ``ref = "3"`` for a level 3).  The
    fit's data must hold ``ref``; new data (a prediction) need not.  As R's, it refuses a number
    and an ordered factor."""
    values = pandas.Series(getattr(x, "__wrapped__", x))
    if isinstance(values.dtype, pandas.CategoricalDtype):
        if values.dtype.ordered:
            raise FormulaError("relevel() takes an unordered factor, as R's; this one is ordered")
        cat = values
    elif pandas.api.types.is_numeric_dtype(values.dtype) or pandas.api.types.is_bool_dtype(values.dtype):
        raise FormulaError("relevel() takes a factor, as R's, not numbers: write relevel(factor(x), ref = ...)")
    else:
        cat = values.astype("category")
    levels = list(cat.cat.categories)
    match = [lv for lv in levels if str(lv) == (ref if isinstance(ref, str) else r_number(float(ref)))]
    if _state is not None and "fitted" in _state:  # new data: the fit's encoding decides, by level
        return cat.cat.reorder_categories(match + [lv for lv in levels if lv is not match[0]]) if match else cat
    if not match:
        raise FormulaError(f"relevel(): ref = {ref!r} is not a level of the factor (levels: {[str(v) for v in levels][:10]})")
    if _state is not None:
        _state["fitted"] = True
    return cat.cat.reorder_categories(match + [lv for lv in levels if lv is not match[0]])


# ----------------------------------------------------------------------------------------
# R's contrasts


_KINDS = ("treatment", "sum", "helmert", "poly", "SAS")


def _poly_matrix(n: int, scores: Sequence[float] | None = None) -> numpy.ndarray:
    """R's ``contr.poly(n, scores)``: orthonormal polynomials of the scores, degrees 1 to n - 1."""
    s = numpy.arange(1.0, n + 1) if scores is None else numpy.asarray(scores, dtype=float)
    if len(s) != n:
        raise FormulaError(f"contr.poly(): scores has {len(s)} values for {n} levels")
    X = numpy.vander(s - s.mean(), n, increasing=True)
    q, r = numpy.linalg.qr(X)
    raw = q * numpy.diag(r)  # the signs as R's qr.qy(QR, diag(R)): independent of the QR's sign convention
    return (raw / numpy.sqrt((raw**2).sum(axis=0)))[:, 1:]


class RContrasts(Contrasts):
    """One of R's contrast functions (``contr.treatment``, ``contr.sum``, ``contr.helmert``,
    ``contr.poly``, ``contr.SAS``), called as R calls it, for formulaic.

    Bare (``C(f, contr.sum)``, ``contrasts = list(f = "contr.sum")``) R calls it with the factor's
    levels; called in the formula (``contr.treatment(4, base = 2)``) or through ``C(f, contr, ...)``
    with extra arguments, with a number of levels.  The columns are named as R's matrix names
    them: by level (treatment, SAS: the levels, or their numbers 1..n when called with n), by
    degree (poly: ``.L .Q .C ^4``), else numbered 1, 2, ... (sum, Helmert).  Where R codes a factor
    by indicators (no intercept before it), each level has its column.

    Parameters
    ----------
    kind : {"treatment", "sum", "helmert", "poly", "SAS"}
    n : int, optional
        The number of levels the matrix is made for (R's ``contr.sum(4)``).
    base : int
        ``contr.treatment``'s reference level, counted from 1.
    contrasts : bool
        False for R's ``contrasts = FALSE`` (indicators of every level).
    scores : sequence of float, optional
        ``contr.poly``'s scores.
    """

    FACTOR_FORMAT = "{name}[{field}]"
    FACTOR_FORMAT_REDUCED = "{name}[{field}]"

    def __init__(self, kind: str, n: Any = None, base: Any = 1, contrasts: Any = True, scores: Any = None) -> None:
        self.kind = kind
        name = f"contr.{kind}"
        self.n = None if n is None else _whole(name, "n", n)
        if self.n is not None and self.n < 2:
            raise FormulaError(f"{name}(): not enough degrees of freedom to define contrasts (n = {self.n})")
        self.base = _whole(name, "base", base)
        if kind != "treatment" and base != 1:
            raise FormulaError(f"{name}() has no argument base (contr.treatment has)")
        self.contrasts = bool(contrasts)
        self.scores = None if scores is None else numpy.atleast_1d(numpy.asarray(scores, dtype=float))

    def __call__(self, *args: Any, **kwargs: Any) -> "RContrasts":
        """R's call ``contr.treatment(n, base = 2)``: the same contrasts made for n levels."""
        if len(args) > 1:
            raise FormulaError(f"contr.{self.kind}(): give the arguments after n by name (base = 2)")
        for k in kwargs:
            if k not in ("base", "contrasts", "scores"):
                raise FormulaError(f"contr.{self.kind}() has no argument {k!r}")
        n = args[0] if args else kwargs.pop("n", None)
        if n is None:
            raise FormulaError(f"contr.{self.kind}() needs the number of levels n, as R's: contr.{self.kind}(4)")
        if not isinstance(n, (int, float, numpy.number)) or isinstance(n, bool):
            raise FormulaError(f"contr.{self.kind}(): n must be the number of levels, as R's contr.{self.kind}(4)")
        return RContrasts(self.kind, n, **kwargs)

    def __repr__(self) -> str:
        return f"contr.{self.kind}" if self.n is None else f"contr.{self.kind}({self.n})"

    def _size(self, levels: Sequence[Hashable]) -> int:
        if self.n is not None and self.n != len(levels):
            raise FormulaError(f"contr.{self.kind}({self.n}) is made for {self.n} levels, but the factor has {len(levels)}")
        if self.kind == "treatment" and not 1 <= self.base <= len(levels):
            raise FormulaError(f"contr.treatment(): base = {self.base}, but there are {len(levels)} levels")
        return len(levels)

    def matrix(self, n: int) -> numpy.ndarray:
        """R's matrix of these contrasts for n levels (rows: levels; columns: contrasts)."""
        if not self.contrasts:
            return numpy.eye(n)
        if self.kind in ("treatment", "SAS"):
            base = n if self.kind == "SAS" else self.base
            return numpy.delete(numpy.eye(n), base - 1, axis=1)
        if self.kind == "sum":
            m = numpy.eye(n, n - 1)
            m[-1, :] = -1.0
            return m
        if self.kind == "helmert":
            m = numpy.zeros((n, n - 1))
            for j in range(n - 1):
                m[: j + 1, j] = -1.0
                m[j + 1, j] = j + 1.0
            return m
        return _poly_matrix(n, self.scores)

    def names(self, levels: Sequence[Hashable]) -> list[str]:
        """R's column names of :meth:`matrix` for these levels."""
        n = len(levels)
        labels = [str(v) for v in levels] if self.n is None else [str(i) for i in range(1, n + 1)]
        if not self.contrasts:
            return labels
        if self.kind in ("treatment", "SAS"):
            base = n if self.kind == "SAS" else self.base
            return [v for i, v in enumerate(labels) if i != base - 1]
        if self.kind == "poly":
            return [".L", ".Q", ".C"][: n - 1] + [f"^{d}" for d in range(4, n)]
        return [str(i) for i in range(1, n)]

    @Contrasts.override
    def _get_coding_matrix(self, levels: Sequence[Hashable], reduced_rank: bool = True, sparse: bool = False) -> Any:
        import scipy.sparse

        n = self._size(levels)
        m = self.matrix(n) if reduced_rank else numpy.eye(n)
        return scipy.sparse.csc_matrix(m) if sparse else m

    @Contrasts.override
    def get_coding_column_names(self, levels: Sequence[Hashable], reduced_rank: bool = True) -> Sequence[Hashable]:
        return self.names(levels) if reduced_rank else [str(v) for v in levels]

    @Contrasts.override
    def get_coefficient_row_names(self, levels: Sequence[Hashable], reduced_rank: bool = True) -> Sequence[Hashable]:
        return [str(v) for v in levels]

    @Contrasts.override
    def get_drop_field(self, levels: Sequence[Hashable], reduced_rank: bool = True) -> Hashable:
        return None


#: R's spellings of its contrasts in C()'s second argument (R's C() maps these names too)
_C_NAMES = {"contr.treatment": "treatment", "contr.sum": "sum", "contr.helmert": "helmert", "contr.poly": "poly",
            "contr.SAS": "SAS"}


def r_C(object: Any, contr: Any = None, how_many: Any = None, **args: Any) -> Any:  # noqa: A002 - R's name
    """R's ``C(object, contr, how.many, ...)``: ``object`` as a factor coded by ``contr``.

    ``contr`` is one of R's contrast functions, bare (``contr.treatment``: R calls it with the
    number of levels, so the columns are numbered, ``2 3 4``) or called
    (``contr.treatment(4, base = 2)``: ``1 3 4``), R's name of one as a string
    (``"contr.treatment"``: R calls it with the levels, so the columns are named by level,
    ``B C D``), or a formulaic contrasts object (``Sum``, ``Treatment('b')``).  Further
    arguments go to the contrast function (``C(f, contr.treatment, base = 2)``).  Without
    ``contr``, R's default by name: treatment contrasts, polynomial ones for an ordered factor.
    Sum and Helmert columns are numbered however they are chosen, as R's."""
    if how_many is not None:
        raise FormulaError("C(): how.many is not supported; give a contrasts matrix of the columns you want")
    values = getattr(object, "__wrapped__", object)
    cat = values if isinstance(getattr(values, "dtype", None), pandas.CategoricalDtype) else _as_factor("C", values)
    if not isinstance(cat, pandas.Series):  # already coded (an ordered factor() inside C())
        cat = pandas.Series(getattr(cat, "__wrapped__", cat))
    named = contr is None or isinstance(contr, str)  # R keeps a name, and calls it with the levels
    if isinstance(contr, str):
        if contr not in _C_NAMES:
            raise FormulaError(f"C(): unknown contrasts {contr!r} (R's are {', '.join(_C_NAMES)})")
        contr = RContrasts(_C_NAMES[contr])
    if contr is None:
        contr = RContrasts("poly" if cat.dtype.ordered else "treatment")
    if args and not (isinstance(contr, RContrasts) and contr.n is None):
        raise FormulaError(f"C(): arguments {', '.join(args)} go to a contrast function, like C(f, contr.treatment, base = 2)")
    if isinstance(contr, RContrasts) and contr.n is None and (args or not named):
        contr = contr(len(cat.cat.categories), **args)  # R's contr(nlevels(f), ...): columns numbered
    elif isinstance(contr, type) and issubclass(contr, Contrasts):
        contr = contr()
    if not isinstance(contr, Contrasts):
        raise FormulaError(f"C(): the contrasts must be R's (contr.sum, contr.treatment(4, base = 2)), not {contr!r}")
    return _formulaic_C(cat, contr)


# ----------------------------------------------------------------------------------------
# transforms of the whole column


def _scale(data: Any, center: Any = True, scale: Any = True, _state: dict | None = None) -> Any:
    """R's ``scale(x, center = TRUE, scale = TRUE)``: subtract the mean, divide by the standard
    deviation (the root mean square when not centred), missing values left out of both as R's
    ``colMeans(na.rm = TRUE)`` and ``sd`` leave them; numbers for ``center``/``scale`` are used
    as given.  The fit's mean and SD are kept for new data."""
    if isinstance(getattr(data, "dtype", None), pandas.CategoricalDtype):  # a factor has no mean (the caller names it)
        raise TypeError("scale() of a factor")
    x = numpy.asarray(data, dtype=float)
    state = {} if _state is None else _state
    ok = ~numpy.isnan(x)
    whole = bool(ok.all())
    if "center" not in state:
        if isinstance(center, (bool, numpy.bool_)):
            state["center"] = (numpy.mean(x, axis=0) if whole else numpy.nanmean(x, axis=0)) if center else None
        else:
            state["center"] = numpy.asarray(_number("scale", "center", center), dtype=float)
    if state["center"] is not None:
        x = x - state["center"]
    if "scale" not in state:
        if isinstance(scale, (bool, numpy.bool_)):
            n = int(ok.sum()) if not whole else x.shape[0]
            sq = numpy.sum(x**2, axis=0) if whole else numpy.nansum(x**2, axis=0)
            state["scale"] = numpy.sqrt(sq / max(1, n - 1)) if scale else None
        else:
            state["scale"] = numpy.asarray(_number("scale", "scale", scale), dtype=float)
    if state["scale"] is not None:
        x = x / state["scale"]
    return x


def _center(data: Any, _state: dict | None = None) -> Any:
    """``scale(x, scale = FALSE)``: subtract the mean (missing values left out of it)."""
    return _scale(data, center=True, scale=False, _state=_state)


def _spline_design(knots: numpy.ndarray, x: numpy.ndarray, derivs: int = 0) -> numpy.ndarray:
    """R's ``splines::splineDesign(knots, x, ord = 4, derivs)``: the cubic B-splines on ``knots``
    (or their derivative) at ``x``; ``x`` at the right boundary takes the last interval's limit."""
    from scipy.interpolate import BSpline

    k = 3
    nb = len(knots) - k - 1
    out = numpy.empty((len(x), nb))
    for j in range(nb):
        c = numpy.zeros(nb)
        c[j] = 1.0
        b = BSpline(knots, c, k, extrapolate=True)
        out[:, j] = (b.derivative(derivs) if derivs else b)(x)
    return out


def natural_spline(
    x: Any, df: Any = None, knots: Any = None, intercept: Any = False, Boundary_knots: Any = None,  # noqa: N803 - R's name
    _state: dict | None = None,
) -> Any:
    """R's ``splines::ns(x, df, knots, intercept = FALSE, Boundary.knots = range(x))``: the natural
    cubic spline basis, computed as R computes it (B-splines on the knots, projected onto the
    null space of the second derivatives at the boundary knots by the QR decomposition R uses),
    linear beyond the boundary knots.  ``df`` places ``df - 1 - intercept`` interior knots at
    quantiles of ``x`` (missing values left out).  The knots are kept for new data.  Columns are
    numbered 1, 2, ... as R's."""
    state = {} if _state is None else _state
    v = numpy.asarray(getattr(x, "__wrapped__", x), dtype=float)
    if "knots" not in state:
        ok = v[~numpy.isnan(v)]
        if ok.size == 0:
            raise FormulaError("ns(): the column has no values")
        bk = numpy.array([ok.min(), ok.max()]) if Boundary_knots is None else _boundary("ns", Boundary_knots)
        icpt = _flag("ns", "intercept", intercept)
        if knots is not None and df is not None:
            raise FormulaError("ns(): give df or knots, not both")
        if knots is not None:
            inner = numpy.sort(_numbers("ns", "knots", knots))
        elif df is not None:
            n_inner = _whole("ns", "df", df) - 1 - int(icpt)
            if n_inner < 0:
                raise FormulaError(f"ns(): df = {df} is too small (at least {1 + int(icpt)})")
            inside = ok[(ok >= bk[0]) & (ok <= bk[1])]
            probs = numpy.linspace(0.0, 1.0, n_inner + 2)[1:-1]
            inner = numpy.quantile(inside, probs) if n_inner else numpy.empty(0)
        else:
            inner = numpy.empty(0)
        state.update(knots=inner.tolist(), boundary=bk.tolist(), intercept=icpt)
    inner, bk, icpt = numpy.asarray(state["knots"], dtype=float), numpy.asarray(state["boundary"]), state["intercept"]
    all_knots = numpy.sort(numpy.concatenate([numpy.repeat(bk, 4), inner]))
    basis = numpy.full((len(v), len(all_knots) - 4), numpy.nan)
    ok = ~numpy.isnan(v)
    lo, hi = ok & (v < bk[0]), ok & (v > bk[1])
    mid = ok & ~lo & ~hi
    basis[mid] = _spline_design(all_knots, v[mid])
    for side, pivot in ((lo, bk[0]), (hi, bk[1])):  # linear beyond the boundary, as R's
        if side.any():
            value, slope = _spline_design(all_knots, numpy.array([pivot])), _spline_design(all_knots, numpy.array([pivot]), 1)
            basis[side] = value + (v[side] - pivot)[:, None] * slope
    const = _spline_design(all_knots, bk, derivs=2)
    if not icpt:
        basis, const = basis[:, 1:], const[:, 1:]
    q, _ = numpy.linalg.qr(const.T, mode="complete")  # Householder, as R's qr(): the same Q
    return _numbered((basis @ q)[:, 2:], icpt)


def _flag(function: str, argument: str, value: Any) -> bool:
    if not isinstance(value, (bool, numpy.bool_)):
        raise FormulaError(f"{function}(): {argument} must be TRUE or FALSE, not {value!r}")
    return bool(value)


def _numbered(columns: numpy.ndarray, spans_intercept: bool) -> Any:
    """Basis columns for formulaic, numbered 1, 2, ... as R numbers a basis's columns."""
    from formulaic.materializers.types import FactorValues

    return FactorValues({i + 1: columns[:, i] for i in range(columns.shape[1])}, kind="numerical",
                        spans_intercept=bool(spans_intercept), drop_field=None, format="{name}[{field}]", encoded=False)


def _boundary(function: str, value: Any) -> numpy.ndarray:
    """A spline's ``Boundary.knots``: two numbers, sorted."""
    bk = numpy.sort(_numbers(function, "Boundary.knots", value))
    if bk.size != 2:
        raise FormulaError(f"{function}(): Boundary.knots must be two numbers, as c(0, 10)")
    return bk


def _numbers(function: str, argument: str, value: Any) -> numpy.ndarray:
    values = numpy.atleast_1d(numpy.asarray(value, dtype=object))
    if not all(isinstance(v, (int, float, numpy.number)) and not isinstance(v, (bool, numpy.bool_)) for v in values):
        raise FormulaError(f"{function}(): {argument} must be numbers, as c(3, 6), not {value!r}")
    return values.astype(float)


def _r_poly(x: Any, degree: Any = 1, raw: Any = False, _state: dict | None = None) -> Any:
    """R's ``poly(x, degree = 1, raw = FALSE)``: orthonormal polynomials of degrees 1..degree
    (formulaic's three-term recurrence, R's basis), or the raw powers; columns numbered 1, 2, ...
    as R's.  As R's, ``degree`` must be at least 1 and, for orthogonal polynomials, below the
    number of distinct values."""
    from formulaic.transforms.poly import poly

    d = _whole("poly", "degree", degree)
    if d < 1:
        raise FormulaError(f"poly(): degree must be at least 1, not {d}")
    is_raw = _flag("poly", "raw", raw)
    state = {} if _state is None else _state
    v = numpy.asarray(getattr(x, "__wrapped__", x), dtype=float)
    if not is_raw and "alpha" not in state:
        distinct = numpy.unique(v[~numpy.isnan(v)]).size
        if d >= distinct:
            raise FormulaError(f"poly(): degree = {d} must be less than the number of distinct values ({distinct}), as R's")
    return _numbered(numpy.asarray(poly.__wrapped__(v, degree=d, raw=is_raw, _state=state)), False)


def _r_bs(
    x: Any, df: Any = None, knots: Any = None, degree: Any = 3, intercept: Any = False, Boundary_knots: Any = None,  # noqa: N803
    _state: dict | None = None,
) -> Any:
    """R's ``splines::bs(x, df, knots, degree = 3, intercept = FALSE, Boundary.knots = range(x))``
    (formulaic's B-splines, the same basis as R's), extended beyond the boundary as R's and
    numbered 1, 2, ... as R numbers the columns."""
    from formulaic.transforms.basis_spline import basis_spline

    lower = upper = None
    if Boundary_knots is not None:
        lower, upper = (float(b) for b in _boundary("bs", Boundary_knots))
    deg, icpt = _whole("bs", "degree", degree), _flag("bs", "intercept", intercept)
    if deg < 1:
        raise FormulaError(f"bs(): degree must be at least 1, not {deg}")
    if df is not None and knots is not None:
        raise FormulaError("bs(): give df or knots, not both")
    if df is not None and _whole("bs", "df", df) < deg + int(icpt):
        raise FormulaError(f"bs(): df = {df} is too small for degree {deg} (at least {deg + int(icpt)})")
    out = basis_spline.__wrapped__(
        x, df=None if df is None else _whole("bs", "df", df),
        knots=None if knots is None else list(_numbers("bs", "knots", knots)),
        degree=deg, include_intercept=icpt, lower_bound=lower, upper_bound=upper,
        extrapolation="extend", _state={} if _state is None else _state,
    )
    cols = out.__wrapped__
    return _numbered(numpy.column_stack([cols[k] for k in sorted(cols)]), icpt)


# ----------------------------------------------------------------------------------------
# the tables


#: pointwise words: R's name -> value (R's T and F are names bound to TRUE and FALSE, so a model
#: column keeps their spelling: poly(x, 2, raw = T)1)
FUNCTIONS: Mapping[str, Any] = MappingProxyType(
    {"exp10": exp10, "log": log, "round": r_round, "pmin": pmin, "pmax": pmax, "as.numeric": as_numeric,
     "factor": r_factor, "ordered": r_ordered, "c": r_c, "C": r_C, "T": True, "F": False,
     **{name: RContrasts(kind) for name, kind in _C_NAMES.items()}}
)

#: words that keep state from the fit's data for new data (formulaic's stateful transforms)
STATEFUL: Mapping[str, Callable[..., Any]] = MappingProxyType(
    {name: stateful_transform(f) for name, f in
     {"relevel": _relevel, "scale": _scale, "center": _center, "ns": natural_spline, "bs": _r_bs, "poly": _r_poly}.items()}
)
