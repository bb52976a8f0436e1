"""Checks of call arguments: one clear :class:`~sparselmm.errors.ArgumentError` instead of a
silent misreading or a traceback from numpy, scipy or NLopt.

Each function takes the value and the name the caller knows it by, and returns the value
in the form the code uses (a Python ``bool``, ``int``, ``float``, a float array, a
validated copy of an options dict), or raises :class:`~sparselmm.errors.ArgumentError`
with a message that names the argument and the value at fault.

The flags and counts are strict: ``REML="False"``, ``REML=1`` or ``REML=None`` are refused
rather than truth-tested, and ``nsim=2.0`` is refused rather than rounded (write ``2``).

Optimizer options are checked against the keys each optimizer reads
(:func:`optimizer_options`); lme4's names are accepted where they mean the same setting.
"""

from __future__ import annotations

import numbers
import os
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from sparselmm.errors import ArgumentError

__all__ = [
    "flag",
    "flag_or_auto",
    "count",
    "number",
    "seed",
    "probability",
    "choice",
    "instance",
    "real_array",
    "theta_bounds",
    "theta_start",
    "optimizer_options",
    "accepted_options",
    "COBYQA_DEFAULT_RADII",
]

#: Largest evaluation or iteration limit: NLopt and the Fortran of L-BFGS-B hold it in a C ``int``.
MAX_INT = 2**31 - 1

#: COBYQA's trust-region radii when the options do not set them (scipy requires initial ≥ final);
#: :func:`sparselmm.fitting.optimize.minimize_theta` uses these defaults.
COBYQA_DEFAULT_RADII = {"initial_tr_radius": 0.2, "final_tr_radius": 1e-7}


def _show(value: Any, limit: int = 60) -> str:
    """``repr`` of a value (shortened) with its type: ``'False' (str)``."""
    r = repr(value)
    if len(r) > limit:
        r = r[: limit - 3] + "..."
    return f"{r} ({type(value).__name__})"


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def _is_int(value: Any) -> bool:
    return isinstance(value, (numbers.Integral, np.integer)) and not _is_bool(value)


def _is_real(value: Any) -> bool:
    return isinstance(value, (numbers.Real, np.integer, np.floating)) and not _is_bool(value)


def _as_float(value: Any) -> float:
    """``float(value)`` of a real number; ``inf`` for an integer too large for a float."""
    try:
        return float(value)
    except OverflowError:
        return np.inf


# ----------------------------------------------------------------------------------------
# scalars


def flag(value: Any, name: str) -> bool:
    """A boolean flag (``REML``, ``verbose``, ``refit``, ...).

    Parameters
    ----------
    value : bool or numpy.bool_
    name : str
        The argument's name, for the message.

    Returns
    -------
    bool

    Raises
    ------
    ArgumentError
        For anything else: strings such as ``"False"``, numbers, ``None``.
    """
    if _is_bool(value):
        return bool(value)
    raise ArgumentError(f"{name} must be True or False, got {_show(value)}")


def flag_or_auto(value: Any, name: str) -> bool | Literal["auto"]:
    """A boolean flag or the string ``"auto"`` (``check``).

    Returns
    -------
    bool or "auto"

    Raises
    ------
    ArgumentError
        For anything else (``"yes"``, ``1``, ``None``, ``"Auto"``).
    """
    if _is_bool(value):
        return bool(value)
    if isinstance(value, str) and value == "auto":
        return "auto"
    raise ArgumentError(f"{name} must be True, False or 'auto', got {_show(value)}")


def count(value: Any, name: str, minimum: int = 1, maximum: int | None = None) -> int:
    """An integer ``minimum ≤ value ≤ maximum`` (``nsim``, an evaluation limit).

    Python and numpy integers are accepted; booleans, floats (also ``2.0``) and strings are not.

    Returns
    -------
    int

    Raises
    ------
    ArgumentError
        When ``value`` is not an integer or is out of range.
    """
    if maximum is not None:
        what = f"an integer from {minimum} to {maximum}"
    elif minimum == 1:
        what = "a positive integer"
    elif minimum == 0:
        what = "a non-negative integer"
    else:
        what = f"an integer ≥ {minimum}"
    if not _is_int(value) or value < minimum or (maximum is not None and value > maximum):
        raise ArgumentError(f"{name} must be {what}, got {_show(value)}")
    return int(value)


def number(value: Any, name: str, *, minimum: float | None = None, strict: bool = False) -> float:
    """A finite real number, ``≥ minimum`` (``> minimum`` when ``strict``).

    Returns
    -------
    float

    Raises
    ------
    ArgumentError
        For strings, booleans, ``None``, NaN, infinities, or a value out of range.
    """
    if minimum is None:
        what = "a finite real number"
    elif minimum == 0:
        what = "a positive finite number" if strict else "a non-negative finite number"
    else:
        what = f"a finite number {'>' if strict else '≥'} {minimum:g}"
    ok = _is_real(value) and np.isfinite(_as_float(value))
    if ok and minimum is not None:
        ok = _as_float(value) > minimum if strict else _as_float(value) >= minimum
    if not ok:
        raise ArgumentError(f"{name} must be {what}, got {_show(value)}")
    return float(value)


def n_jobs(value: Any) -> int:
    """A number of worker processes: a positive integer, or -1 for one per core (joblib's
    convention).

    Returns
    -------
    int

    Raises
    ------
    ArgumentError
        For 0, other negative numbers, and anything that is not an integer.
    """
    if _is_int(value) and int(value) == -1:
        return max(1, os.cpu_count() or 1)
    if not _is_int(value) or int(value) < 1:
        raise ArgumentError(f"n_jobs must be a positive integer or -1 (one process per core), got {_show(value)}")
    return int(value)


def seed(value: Any, name: str = "seed") -> Any:
    """A seed for :func:`numpy.random.default_rng`.

    Parameters
    ----------
    value : None, int ≥ 0, numpy.random.Generator, BitGenerator or SeedSequence
        ``None`` (fresh entropy), a non-negative integer, or numpy's generator objects
        (passed through as they are).

    Returns
    -------
    None, int or the numpy object given

    Raises
    ------
    ArgumentError
        For negative integers, booleans, floats, strings and anything else.
    """
    if value is None or isinstance(value, (np.random.Generator, np.random.BitGenerator, np.random.SeedSequence)):
        return value
    if _is_int(value) and value >= 0:
        return int(value)
    raise ArgumentError(
        f"{name} must be None, a non-negative integer or a numpy.random.Generator, got {_show(value)}"
    )


def probability(value: Any, name: str) -> float:
    """A level or probability strictly between 0 and 1 (``confint``'s ``level``).

    Returns
    -------
    float

    Raises
    ------
    ArgumentError
        For strings (``"0.95"``), ``None``, booleans, NaN, and values outside ``(0, 1)``
        (``95`` for 95 %).
    """
    if not _is_real(value) or not 0.0 < _as_float(value) < 1.0:
        hint = "; write 0.95 for 95 %" if _is_real(value) and 1.0 < _as_float(value) < 100.0 else ""
        raise ArgumentError(f"{name} must be a number strictly between 0 and 1, got {_show(value)}{hint}")
    return float(value)


def choice(value: Any, name: str, choices: Sequence[str] | Mapping[str, str], *, fold: bool = True) -> str:
    """One of a set of names; returns the canonical name.

    Parameters
    ----------
    value : str
    name : str
    choices : sequence of str, or mapping alias -> canonical name
        The names accepted; a mapping also lists aliases (``{"kr": "kenward-roger", ...}``;
        canonical names must map to themselves).
    fold : bool
        Match ignoring case and treating ``-`` and ``_`` alike (``"Kenward_Roger"`` is
        ``"kenward-roger"``); ``False`` for an exact match.

    Returns
    -------
    str
        The canonical name (as written in ``choices``).

    Raises
    ------
    ArgumentError
        When ``value`` is not a string (``None``) or not one of the names; the message
        lists the canonical names.
    """
    table = dict(choices) if isinstance(choices, Mapping) else {c: c for c in choices}
    canonical = list(dict.fromkeys(table.values()))
    listed = ", ".join(repr(c) for c in canonical)
    if not isinstance(value, str):
        raise ArgumentError(f"{name} must be one of {listed}, got {_show(value)}")

    def key(s: str) -> str:
        return s.lower().replace("-", "_") if fold else s

    for alias, target in table.items():
        if key(alias) == key(value):
            return target
    raise ArgumentError(f"unknown {name} {value!r}; choose one of {listed}")


def instance(value: Any, name: str, types: type | tuple[type, ...], what: str) -> Any:
    """``value`` itself when it is an instance of ``types``.

    Parameters
    ----------
    what : str
        What is expected, for the message (``"a fitted LinearMixedModel"``).

    Raises
    ------
    ArgumentError
        Otherwise.
    """
    if not isinstance(value, types):
        raise ArgumentError(f"{name} must be {what}, got {_show(value)}")
    return value


# ----------------------------------------------------------------------------------------
# arrays


def real_array(
    value: Any, name: str, *, length: int | None = None, finite: bool = True, flatten: bool = False
) -> np.ndarray:
    """A one-dimensional float array of real numbers (a new response, a start).

    Parameters
    ----------
    value : array-like
        A list, tuple, numpy array or pandas Series of real numbers.
    name : str
    length : int, optional
        The length required.
    finite : bool
        Refuse NaN and infinities.
    flatten : bool
        Accept any shape and flatten it (as ``numpy.ravel``); otherwise the array must be
        one-dimensional.

    Returns
    -------
    numpy.ndarray
        A new float64 array.

    Raises
    ------
    ArgumentError
        For strings, ``None``, booleans, complex numbers, entries that are not numbers,
        a wrong shape or length, or (with ``finite``) NaN or infinite entries.
    """
    if value is None or isinstance(value, (str, bytes)):
        raise ArgumentError(f"{name} must be an array of real numbers, got {_show(value)}")
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged nested lists and other shapes numpy cannot hold
        raise ArgumentError(f"{name} must be an array of real numbers, got {_show(value)}: {exc}") from None
    if arr.dtype.kind == "O":
        flat = arr.ravel()
        bad = [i for i, v in enumerate(flat) if not _is_real(v)]
        if bad:
            raise ArgumentError(
                f"{name} must hold real numbers; entry {bad[0]} is {_show(flat[bad[0]])}"
            )
        arr = arr.astype(float)
    elif arr.dtype.kind not in "iuf":
        kind = {"b": "booleans", "c": "complex numbers", "U": "strings", "S": "bytes"}.get(arr.dtype.kind)
        what = kind or f"values of dtype {arr.dtype}"
        raise ArgumentError(f"{name} must hold real numbers, got {what}: {_show(value)}")
    if flatten:
        arr = arr.ravel()
    elif arr.ndim != 1:
        raise ArgumentError(f"{name} must be one-dimensional, got an array of shape {arr.shape}")
    arr = np.array(arr, dtype=float)
    if length is not None and len(arr) != length:
        raise ArgumentError(f"{name} must have {length} values, got {len(arr)}")
    if finite and not np.all(np.isfinite(arr)):
        i = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ArgumentError(f"{name} must be finite; {name}[{i}] is {arr[i]}")
    return arr


def theta_bounds(lower: Any, upper: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """The bounds of θ: float arrays of one length, no NaN, ``lower ≤ upper``.

    Parameters
    ----------
    lower : array-like
        ``-inf`` where unbounded.
    upper : array-like, optional
        ``+inf`` where unbounded (default: unbounded above).

    Returns
    -------
    lower, upper : numpy.ndarray

    Raises
    ------
    ArgumentError
        For non-numeric bounds, NaN, different lengths, a lower bound of ``+inf`` or
        ``lower > upper``.
    """
    lo = real_array(lower, "lower", finite=False)
    hi = np.full_like(lo, np.inf) if upper is None else real_array(upper, "upper", finite=False)
    if len(hi) != len(lo):
        raise ArgumentError(f"lower and upper must have one length, got {len(lo)} and {len(hi)}")
    for nm, b in (("lower", lo), ("upper", hi)):
        if np.isnan(b).any():
            raise ArgumentError(f"{nm} must not hold NaN ({nm}[{int(np.flatnonzero(np.isnan(b))[0])}])")
    bad = np.flatnonzero(~(lo <= hi) | (lo == np.inf) | (hi == -np.inf))
    if len(bad):
        i = int(bad[0])
        if lo[i] > hi[i]:
            raise ArgumentError(f"the bounds of θ[{i}] are empty: lower {lo[i]} > upper {hi[i]}")
        raise ArgumentError(f"the bounds of θ[{i}] are infinite on the wrong side: lower {lo[i]}, upper {hi[i]}")
    return lo, hi


def theta_start(start: Any, n: int, lower: Any = None, upper: Any = None, *, name: str = "start") -> np.ndarray:
    """A start for θ: ``n`` finite real numbers within ``[lower, upper]``.

    Parameters
    ----------
    start : array-like
        θ in lme4's layout (a scalar is accepted when ``n == 1``).
    n : int
        The length of θ.
    lower, upper : array-like, optional
        The bounds (default unbounded).
    name : str
        The argument's name for the message.

    Returns
    -------
    numpy.ndarray
        A new float array; an entry outside its bound by no more than rounding
        (``1e-10`` relative) is moved onto the bound.

    Raises
    ------
    ArgumentError
        For a start that is not an array of real numbers, has the wrong length, holds
        NaN or infinities, or lies outside the bounds; the message names the entries.
    """
    if n == 1 and _is_real(start):
        start = [start]
    th = real_array(start, name)
    if len(th) != n:
        raise ArgumentError(
            f"{name} must have one value per θ entry ({n}, lme4's layout: each term's lower triangle "
            f"column by column), got {len(th)}"
        )
    lo = np.full(n, -np.inf) if lower is None else np.asarray(lower, dtype=float)
    hi = np.full(n, np.inf) if upper is None else np.asarray(upper, dtype=float)
    tol = 1e-10 * np.maximum(1.0, np.abs(np.where(np.isfinite(lo), lo, 0.0)))
    below = np.flatnonzero(th < lo - tol)
    tol = 1e-10 * np.maximum(1.0, np.abs(np.where(np.isfinite(hi), hi, 0.0)))
    above = np.flatnonzero(th > hi + tol)
    if len(below) or len(above):
        parts = [f"{name}[{i}] = {th[i]:g} is below its lower bound {lo[i]:g}" for i in below[:5]]
        parts += [f"{name}[{i}] = {th[i]:g} is above its upper bound {hi[i]:g}" for i in above[:5]]
        raise ArgumentError(f"{name} lies outside the bounds of θ: " + "; ".join(parts))
    return np.clip(th, lo, hi)


# ----------------------------------------------------------------------------------------
# optimizer options

# kinds: "count" an evaluation/iteration limit (1 ≤ int ≤ MAX_INT), "positive" a finite real > 0,
# "flag" a bool.  Per optimizer: canonical key (the one the optimizer reads) -> (kind, aliases, meaning).
_BOBYQA: dict[str, tuple[str, tuple[str, ...], str]] = {
    "maxfev": ("count", ("maxeval", "maxfun"), "evaluation limit of each BOBYQA pass"),
    "xtol_abs": ("positive", (), "absolute tolerance on θ (lme4's nloptwrap: 1e-8)"),
    "xtol_rel": ("positive", (), "relative tolerance on θ"),
    "ftol_abs": ("positive", (), "absolute tolerance on the objective (lme4's nloptwrap: 1e-8)"),
    "ftol_rel": ("positive", (), "relative tolerance on the objective"),
    "initial_step": ("positive", ("rhobeg",), "first step (BOBYQA's initial trust-region radius)"),
    "polish_step": ("positive", (), "first step of the polishing pass"),
}
_OPTIONS: dict[str, dict[str, tuple[str, tuple[str, ...], str]]] = {
    "auto": _BOBYQA,
    "bobyqa": _BOBYQA,
    "cobyqa": {
        "maxfev": ("count", ("maxfun",), "evaluation limit"),
        "maxiter": ("count", (), "iteration limit"),
        "initial_tr_radius": ("positive", ("rhobeg",), "initial trust-region radius"),
        "final_tr_radius": ("positive", ("rhoend",), "final trust-region radius"),
    },
    "nelder_mead": {
        "maxfev": ("count", ("maxfun",), "evaluation limit"),
        "maxiter": ("count", (), "iteration limit"),
        "xatol": ("positive", (), "absolute tolerance on θ"),
        "fatol": ("positive", ("FtolAbs",), "absolute tolerance on the objective"),
        "adaptive": ("flag", (), "dimension-adapted simplex parameters"),
    },
    "lbfgsb": {
        "maxfun": ("count", ("maxfev",), "evaluation limit"),
        "maxiter": ("count", (), "iteration limit"),
        "ftol": ("positive", (), "relative tolerance on the objective"),
        "gtol": ("positive", (), "tolerance on the projected gradient"),
        "maxcor": ("count", (), "number of stored corrections"),
        "maxls": ("count", (), "line-search steps per iteration"),
        "eps": ("positive", (), "finite-difference step (without the analytic gradient)"),
    },
}


def accepted_options(optimizer: str) -> dict[str, tuple[str, ...]]:
    """The option keys ``optimizer`` reads, each with the aliases accepted for it.

    Returns
    -------
    dict
        Canonical key -> aliases (lme4's names among them).

    Raises
    ------
    ArgumentError
        For an unknown optimizer.
    """
    opt = choice(optimizer, "optimizer", tuple(_OPTIONS), fold=False)
    return {k: spec[1] for k, spec in _OPTIONS[opt].items()}


def optimizer_options(optimizer: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """A validated copy of ``options`` for ``optimizer``, under the keys the optimizer reads.

    Accepted keys (aliases in parentheses; lme4's ``optCtrl`` names where they mean the same):

    - ``"bobyqa"``/``"auto"`` (NLopt): ``maxfev`` (``maxeval``, ``maxfun``), ``xtol_abs``,
      ``xtol_rel``, ``ftol_abs``, ``ftol_rel``, ``initial_step`` (``rhobeg``), ``polish_step``;
    - ``"cobyqa"``: ``maxfev`` (``maxfun``), ``maxiter``, ``initial_tr_radius`` (``rhobeg``),
      ``final_tr_radius`` (``rhoend``), with initial ≥ final (defaults 0.2 and 1e-7);
    - ``"nelder_mead"``: ``maxfev`` (``maxfun``), ``maxiter``, ``xatol``, ``fatol``
      (``FtolAbs``), ``adaptive``;
    - ``"lbfgsb"``: ``maxfun`` (``maxfev``), ``maxiter``, ``ftol``, ``gtol``, ``maxcor``,
      ``maxls``, ``eps``.

    Limits (``maxfev``, ``maxiter``, ...) are integers from 1 to 2³¹ − 1 (a float with an
    integer value, R's ``maxfun = 1e4``, is that integer); tolerances and
    steps finite numbers > 0; ``adaptive`` a bool.

    Parameters
    ----------
    optimizer : str
        One of ``"auto"``, ``"bobyqa"``, ``"cobyqa"``, ``"nelder_mead"``, ``"lbfgsb"``.
    options : mapping or None

    Returns
    -------
    dict
        Canonical keys; Python ``int``, ``float`` and ``bool`` values.  Validating the
        result again returns an equal dict.

    Raises
    ------
    ArgumentError
        For an unknown optimizer, options that are not a mapping, an unknown key (the message
        lists the accepted keys), a key given twice under two names, or a value of the wrong
        type or range (the message names the key and the value).
    """
    opt = choice(optimizer, "optimizer", tuple(_OPTIONS), fold=False)
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ArgumentError(f"options must be a dict of optimizer settings (or None), got {_show(options)}")
    spec = _OPTIONS[opt]
    alias_of = {a: k for k, (_, aliases, _) in spec.items() for a in aliases}
    out: dict[str, Any] = {}
    given_as: dict[str, str] = {}
    for key, value in options.items():
        if not isinstance(key, str):
            raise ArgumentError(f"options keys must be strings, got {_show(key)}")
        canon = key if key in spec else alias_of.get(key)
        if canon is None:
            accepted = ", ".join(
                k + (f" (or {', '.join(a)})" if a else "") for k, (_, a, _) in spec.items()
            )
            raise ArgumentError(f"unknown option {key!r} for optimizer {opt!r}; it accepts: {accepted}")
        if canon in given_as:
            raise ArgumentError(
                f"options[{given_as[canon]!r}] and options[{key!r}] are one setting ({canon!r}, "
                f"the {spec[canon][2]}); give it once"
            )
        given_as[canon] = key
        label = f"options[{key!r}]" + (f" (read as {canon!r})" if canon != key else "")
        kind = spec[canon][0]
        if kind == "count":
            # R writes limits as doubles (maxfun = 1e4): a float with an integer value is that integer
            if isinstance(value, (float, np.floating)) and not _is_bool(value) and np.isfinite(value) \
                    and float(value).is_integer():
                value = int(value)
            out[canon] = count(value, label, 1, MAX_INT)
        elif kind == "positive":
            out[canon] = number(value, label, minimum=0.0, strict=True)
        else:
            out[canon] = flag(value, label)
    if opt == "cobyqa":
        radii = {**COBYQA_DEFAULT_RADII, **{k: out[k] for k in COBYQA_DEFAULT_RADII if k in out}}
        if radii["initial_tr_radius"] < radii["final_tr_radius"]:
            shown = ", ".join(
                f"{given_as.get(k, k)} = {v:g}{'' if k in out else ' (default)'}" for k, v in radii.items()
            )
            raise ArgumentError(
                f"options: COBYQA's initial trust-region radius must be ≥ its final radius, got {shown}"
            )
    return out
