"""Small ports of R's own formatting rules, so that printed output reads like R's.

* :func:`format_real` — R's ``format(x, digits=)``: one common number of decimals for a vector,
  the fewest that show every element to ``digits`` significant digits, or scientific notation
  when that is narrower;
* :func:`format_pval` — R's ``format.pval``; :func:`signif_stars` — ``printCoefmat``'s stars;
* :func:`abbreviate` — R's ``abbreviate`` (``"(Intercept)" -> "(Intr)"``);
* :func:`zapsmall` — R's ``zapsmall``;
* :func:`print_matrix`, :func:`print_named` — R's ``print.default`` of a character matrix and of
  a named vector.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = ["format_real", "format_pval", "format1", "signif_stars", "zapsmall", "abbreviate", "print_matrix",
           "print_named", "EPS", "WIDTH", "SIGNIF_LEGEND"]

#: R's ``.Machine$double.eps``, the ``eps`` of ``format.pval``.
EPS = float(np.finfo(float).eps)
#: R's ``getOption("width")``.
WIDTH = 80
#: ``printCoefmat``'s legend of the significance stars.
SIGNIF_LEGEND = "0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"


# ----------------------------------------------------------------------------------------
# R's number formatting


def _sig_parts(x: float, digits: int) -> tuple[int, int]:
    """Exponent and number of significant digits of ``|x|`` shown to ``digits`` digits (R's ``scientific``).

    ``|x|`` is rounded to ``digits`` significant digits, ``α·10^kp`` with
    ``1 <= α < 10``; ``nsig`` is ``digits`` less the trailing zeros of α.
    """
    if x == 0:
        return 0, 1
    mant, exp = f"{abs(x):.{digits - 1}e}".split("e")
    kp = int(exp)
    d = mant.replace(".", "").rstrip("0")
    return kp, max(1, len(d))


def format_real(x: Sequence[float] | np.ndarray, digits: int = 7, nsmall: int = 0, na: str = "NA") -> list[str]:
    """Format numbers with one common layout, as R's ``format(x, digits = digits)``.

    For each finite ``x_i`` rounded to ``digits`` significant digits, with
    ``kp_i = floor(log10|x_i|)`` and ``nsig_i`` significant digits left after
    dropping trailing zeros, fixed notation needs
    ``rgt = max_i(nsig_i - kp_i - 1)`` decimals and width
    ``neg + max_i(max(kp_i + 1, 1)) + rgt + (rgt > 0)``; scientific notation
    needs width ``neg + (mxns > 1) + mxns + 4`` with ``mxns = max_i nsig_i``.
    Fixed notation is used when it is not wider (R's ``scipen = 0``).

    Parameters
    ----------
    x : sequence of float
    digits : int
        Significant digits (R's ``digits``).
    nsmall : int
        Minimum number of decimals in fixed notation (R's ``nsmall``).
    na : str
        Text for missing values.

    Returns
    -------
    list of str
        The formatted numbers, right-justified to a common width.
    """
    v = np.asarray(x, dtype=float).ravel()
    fin = np.isfinite(v)
    out: list[str] = []
    if fin.any():
        neg = int(bool(np.any(v[fin] < 0)))
        rgt, mxsl, mxns, mxe, mne = 0, 1, 1, -10**9, 10**9
        for xi in v[fin]:
            kp, nsig = _sig_parts(float(xi), digits)
            left = kp + 1
            rgt = max(rgt, nsig - left)
            mxsl = max(mxsl, left if left > 0 else 1)
            mxns = max(mxns, nsig)
            mxe, mne = max(mxe, kp), min(mne, kp)
        wF = neg + mxsl + rgt + (rgt > 0)
        e = 2 if (mxe >= 100 or mne <= -99) else 1
        d = mxns - 1
        wE = neg + (d > 0) + d + 4 + e
        fixed = wF <= wE
        if fixed:
            rgt = max(rgt, nsmall)
        for xi, ok in zip(v, fin):
            if not ok:
                out.append(_nonfinite(xi, na))
            elif fixed:
                out.append(f"{xi:.{rgt}f}")
            else:
                out.append(f"{xi:.{d}e}")
    else:
        out = [_nonfinite(xi, na) for xi in v]
    w = max((len(s) for s in out), default=0)
    return [s.rjust(w) for s in out]


def _nonfinite(x: float, na: str) -> str:
    if np.isnan(x):
        return na
    return "Inf" if x > 0 else "-Inf"


def format1(x: float, digits: int = 7) -> str:
    """Format one number as R's ``format(x, digits)``."""
    return format_real([x], digits)[0]


def format_pval(pv: Sequence[float] | np.ndarray, digits: int = 3, eps: float = EPS) -> list[str]:
    """Format p-values as R's ``format.pval``.

    Values below ``eps`` print as ``"< 2e-16"``; the others as
    ``format(p, digits)``, fixed and scientific ones formatted separately
    (fixed when ``floor(log10 p) >= -3``).

    Parameters
    ----------
    pv : sequence of float
    digits : int
        Significant digits (printCoefmat uses ``dig.tst = digits - 1 = 3``).
    eps : float
        Smallest p-value printed as a number.

    Returns
    -------
    list of str
    """
    p = np.asarray(pv, dtype=float).ravel()
    out = ["NA"] * len(p)
    ok = ~np.isnan(p)
    is0 = ok & (p < eps)
    rest = ok & ~is0
    rr: list[str] = []
    if rest.any():
        idx = np.flatnonzero(rest)
        vals = p[idx]
        expo = np.floor(np.log10(np.where(vals > 0, vals, 1e-50)))
        fixp = (expo >= -3) | (vals == 0)
        for mask in (fixp, ~fixp):
            if mask.any():
                f = [s.strip() for s in format_real(vals[mask], digits)]
                for i, s in zip(idx[mask], f):
                    out[i] = s
        rr = [out[i] for i in idx]
    if is0.any():
        dg = max(1, digits - 2)
        if rr:
            nc = max(len(s) for s in rr)
            if dg > 1 and dg + 6 > nc:
                dg = max(1, nc - 7)
            sep = "" if (dg == 1 and nc <= 6) else " "
        else:
            sep = "" if dg == 1 else " "
        txt = "<" + sep + format1(eps, dg)
        for i in np.flatnonzero(is0):
            out[i] = txt
    return out


def signif_stars(pv: Sequence[float] | np.ndarray) -> list[str]:
    """Significance codes of R's ``symnum``: ``***`` < 0.001 <= ``**`` < 0.01 <= ``*`` < 0.05 <= ``.`` < 0.1.

    Parameters
    ----------
    pv : sequence of float

    Returns
    -------
    list of str
        One code per p-value (``" "`` above 0.1 and for missing values).
    """
    out = []
    for p in np.asarray(pv, dtype=float).ravel():
        if np.isnan(p) or p > 0.1:
            out.append(" ")
        elif p <= 0.001:
            out.append("***")
        elif p <= 0.01:
            out.append("**")
        elif p <= 0.05:
            out.append("*")
        else:
            out.append(".")
    return out


def zapsmall(x: np.ndarray, digits: int) -> np.ndarray:
    """R's ``zapsmall``: ``round(x, max(0, digits - ceiling(log10(max|x|))))``."""
    mx = float(np.max(np.abs(x))) if len(x) else 0.0
    nd = max(0, digits - math.ceil(math.log10(mx))) if mx > 0 else digits
    return np.round(x, nd)


def _strip_chars(s: str, minlen: int) -> str:
    """R's C routine behind ``abbreviate(use.classes = TRUE)`` for one string."""
    b = list(s.lstrip())
    while b and b[-1].isspace():
        b.pop()
    nspace = sum(c.isspace() for c in b)

    def done() -> bool:
        return len(b) - nspace <= minlen

    if done():
        return "".join(b)

    def first_char(i: int) -> bool:
        return b[i - 1].isspace()

    def last_char(i: int) -> bool:
        return not b[i - 1].isspace() and (i + 1 >= len(b) or b[i + 1].isspace())

    def vowel(c: str) -> bool:
        return c in "aeiou"

    rules = (
        lambda i: vowel(b[i]) and last_char(i),
        lambda i: vowel(b[i]) and not first_char(i),
        lambda i: b[i].islower() and last_char(i),
        lambda i: b[i].islower() and not first_char(i),
        lambda i: not first_char(i) and not b[i].isspace(),
    )
    for rule in rules:
        i = len(b) - 1
        while i > 0:
            if i < len(b) and rule(i):
                del b[i]
            if done():
                return "".join(b)
            i -= 1
    out = "".join(b)
    if len(out) > minlen:
        out = out.replace(" ", "")
    return out


def abbreviate(names: Sequence[str], minlength: int = 4) -> list[str]:
    """Abbreviate names as R's ``abbreviate(names, minlength)`` (method ``"left.kept"``).

    Lower-case vowels are dropped from the right (not at a word's start),
    then lower-case letters, then any character, until the name has
    ``minlength`` characters; names that collide are redone with a larger
    ``minlength``.

    Parameters
    ----------
    names : sequence of str
    minlength : int

    Returns
    -------
    list of str

    Examples
    --------
    >>> abbreviate(["(Intercept)", "Days"], 6)
    ['(Intr)', 'Days']
    """
    names = [str(n) for n in names]
    out = list(names)
    todo = [True] * len(names)
    ml = minlength
    while True:
        for i, t in enumerate(todo):
            if t:
                out[i] = _strip_chars(names[i], ml)
        dup = [out[i] in out[:i] for i in range(len(out))]
        if not any(dup):
            return out
        ml += 1
        dupvals = {out[i] for i, d in enumerate(dup) if d}
        todo = [out[i] in dupvals for i in range(len(out))]


# ----------------------------------------------------------------------------------------
# R's printing of matrices and named vectors


def print_matrix(
    cells: list[list[str]],
    colnames: Sequence[str],
    rownames: Sequence[str],
    right: bool = True,
) -> list[str]:
    """Lines of R's ``print.default`` of a character matrix (``quote = FALSE``).

    Row names are left-justified; cells and column names are right-justified
    (``right = TRUE``) or left-justified; columns are separated by one space.
    """
    ncol = len(colnames)
    rw = max((len(r) for r in rownames), default=0)
    widths = [max([len(colnames[j])] + [len(row[j]) for row in cells]) for j in range(ncol)]

    def just(s: str, w: int) -> str:
        return s.rjust(w) if right else s.ljust(w)

    lines = [" " * rw + "".join(" " + just(colnames[j], widths[j]) for j in range(ncol))]
    for rn, row in zip(rownames, cells):
        lines.append(rn.ljust(rw) + "".join(" " + just(row[j], widths[j]) for j in range(ncol)))
    return lines


def print_named(values: Sequence[str], names: Sequence[str], gap: int = 1, width: int = WIDTH) -> list[str]:
    """Lines of R's print of a named vector: right-justified fields of one width, wrapped at ``width``."""
    w = max([len(s) for s in values] + [len(s) for s in names])
    per = max(1, width // (w + gap))
    lines = []
    for s in range(0, len(values), per):
        lines.append("".join(n.rjust(w) + " " * gap for n in names[s : s + per]))
        lines.append("".join(v.rjust(w) + " " * gap for v in values[s : s + per]))
    return lines
