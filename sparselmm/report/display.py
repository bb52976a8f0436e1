"""Text output in lme4's layout.

:func:`summary_text` reproduces ``summary(<lmerModLmerTest>)`` (lme4's
``print.summary.merMod`` with lmerTest's Satterthwaite or Kenward–Roger
columns) and :func:`short_text` reproduces ``print(<merMod>)``.  Numbers are
formatted by small ports of R's own rules, so that the output reads like R's:

* :func:`format_real` — R's ``format(x, digits=)``: one common number of
  decimals for a vector, the fewest that show every element to ``digits``
  significant digits, or scientific notation when that is narrower;
* :func:`format_pval` — R's ``format.pval``;
* :func:`abbreviate` — R's ``abbreviate`` (used for the column names of the
  correlation of fixed effects, ``"(Intercept)" -> "(Intr)"``);
* ``_coef_matrix`` — R's ``printCoefmat`` (common rounding of estimate,
  standard error and df, test statistic to ``digits - 1`` decimals,
  p-values with significance stars).

Byte-for-byte equality with R is not a goal; the layout, the row and column
names and the rounding are.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from sparselmm.fitting.fitted import FittedModel

__all__ = ["summary_text", "short_text", "format_real", "format_pval", "abbreviate", "signif_stars"]

#: lme4's ``digits = max(3, getOption("digits") - 3)`` with R's default ``digits = 7``.
DIGITS = 4
#: lme4's ``getOption("lme4.summary.cor.max")``: largest p whose correlation is printed.
COR_MAX = 12
#: R's ``.Machine$double.eps``, the ``eps`` of ``format.pval``.
EPS = float(np.finfo(float).eps)
#: R's ``getOption("width")``.
WIDTH = 80

SIGNIF_LEGEND = "0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"

_DDF_TITLES = {
    "satterthwaite": "Satterthwaite's method",
    "satt": "Satterthwaite's method",
    "kenward-roger": "Kenward-Roger's method",
    "kenward-rogers": "Kenward-Roger's method",
    "kr": "Kenward-Roger's method",
}


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


def _format1(x: float, digits: int = 7) -> str:
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
        txt = "<" + sep + _format1(eps, dg)
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


def _zapsmall(x: np.ndarray, digits: int) -> np.ndarray:
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


def _print_matrix(
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


def _print_named(values: Sequence[str], names: Sequence[str], gap: int = 1, width: int = WIDTH) -> list[str]:
    """Lines of R's print of a named vector: right-justified fields of one width, wrapped at ``width``."""
    w = max([len(s) for s in values] + [len(s) for s in names])
    per = max(1, width // (w + gap))
    lines = []
    for s in range(0, len(values), per):
        lines.append("".join(n.rjust(w) + " " * gap for n in names[s : s + per]))
        lines.append("".join(v.rjust(w) + " " * gap for v in values[s : s + per]))
    return lines


# ----------------------------------------------------------------------------------------
# the sections


def _method_title(m: "FittedModel") -> str:
    # lme4's methTitle: the ML title ends in a space ("maximum likelihood ").
    return "Linear mixed model fit by " + ("REML" if m.REML else "maximum likelihood ")


def _aic_lines(m: "FittedModel", digits: int) -> list[str]:
    """lme4's ``.prt.aictab``: the REML criterion, or AIC, BIC, logLik, deviance and df.resid."""
    if m.REML:
        return [f"REML criterion at convergence: {_format1(round(m.objective, digits))} "]
    vals = [m.aic, m.bic, m.loglik, m.deviance]
    txt = [s.strip() for s in format_real(np.round(vals, digits))] + [str(int(m.df_resid))]
    return _print_named(txt, ["AIC", "BIC", "logLik", "deviance", "df.resid"])


def _residual_lines(m: "FittedModel", digits: int) -> list[str]:
    """lme4's ``.prt.resids``: type-7 quantiles of the Pearson residuals."""
    r = np.asarray(m.residuals("pearson"), dtype=float)
    r = r[np.isfinite(r)]
    q = _zapsmall(np.quantile(r, [0, 0.25, 0.5, 0.75, 1.0]), digits + 1)
    return ["Scaled residuals: ", *_print_named(format_real(q, digits), ["Min", "1Q", "Median", "3Q", "Max"]), ""]


def _vc_groups(m: "FittedModel") -> tuple[list[tuple[str, list[str], np.ndarray, np.ndarray]], float]:
    """Per group of ``m.varcorr()``: name, column names, standard deviations, correlation matrix; and σ."""
    vc = m.varcorr()
    groups: list[tuple[str, list[str], np.ndarray, np.ndarray]] = []
    sigma = float("nan")
    order: list[str] = []
    rows: dict[str, list[tuple[object, object, float]]] = {}
    for grp, v1, v2, sdcor in zip(vc["grp"], vc["var1"], vc["var2"], vc["sdcor"]):
        if grp == "Residual" and pd.isna(v1):
            sigma = float(sdcor)
            continue
        if grp not in rows:
            order.append(grp)
            rows[grp] = []
        rows[grp].append((v1, v2, float(sdcor)))
    for grp in order:
        names = [str(v1) for v1, v2, _ in rows[grp] if pd.isna(v2)]
        sd = np.array([s for _, v2, s in rows[grp] if pd.isna(v2)])
        k = len(names)
        corr = np.eye(k)
        pos = {n: i for i, n in enumerate(names)}
        for v1, v2, s in rows[grp]:
            if not pd.isna(v2):
                i, j = pos[str(v2)], pos[str(v1)]
                corr[i, j] = corr[j, i] = s
        groups.append((grp, names, sd, corr))
    return groups, sigma


def _vc_lines(m: "FittedModel", digits: int, variance: bool) -> list[str]:
    """lme4's ``.prt.VC`` / ``formatVC``: Groups, Name, [Variance,] Std.Dev., Corr."""
    groups, sigma = _vc_groups(m)
    grp_col: list[str] = []
    name_col: list[str] = []
    sds: list[float] = []
    for grp, names, sd, _ in groups:
        for i, n in enumerate(names):
            grp_col.append(grp if i == 0 else "")
            name_col.append(n)
        sds.extend(sd.tolist())
    grp_col.append("Residual")
    name_col.append("")
    sds.append(sigma)
    sd_arr = np.asarray(sds)
    cols: list[list[str]] = [grp_col, name_col]
    colnames = ["Groups", "Name"]
    if variance:
        cols.append(format_real(sd_arr**2, digits))
        colnames.append("Variance")
    cols.append(format_real(sd_arr, digits))
    colnames.append("Std.Dev.")
    maxlen = max((len(g[1]) for g in groups), default=1)
    if maxlen > 1:
        dig = max(2, digits - 2)
        ccols = maxlen - 1
        corr_rows: list[list[str]] = []
        for _, names, _, corr in groups:
            k = len(names)
            f = format_real(np.round(corr, dig).ravel(), 7, nsmall=dig, na="NaN")
            cc = np.array(f, dtype=object).reshape(k, k)
            for i in range(k):
                corr_rows.append([cc[i, j] if j < i else "" for j in range(ccols)])
        corr_rows.append([""] * ccols)
        for j in range(ccols):
            cols.append([r[j] for r in corr_rows])
            colnames.append("Corr" if j == 0 else "")
    cells = [list(r) for r in zip(*cols)]
    return ["Random effects:", *_print_matrix(cells, colnames, [""] * len(cells), right=False)]


def _groups_line(m: "FittedModel") -> str:
    """lme4's ``.prt.grps``: ``Number of obs: n, groups:  g1, n1; g2, n2``."""
    grps = "; ".join(f"{g}, {n}" for g, n in m.ngroups.items())
    return f"Number of obs: {m.nobs}, groups:  {grps}"


def _coef_matrix(tab: pd.DataFrame, digits: int = DIGITS, stars: bool = True) -> list[str]:
    """R's ``printCoefmat`` of a coefficient table (last column a p-value when named ``Pr(...)``).

    Estimate, standard error (and df) are rounded together to
    ``max(1, digits - 1 - floor(log10 min|x|))`` decimals and formatted with
    ``digits`` significant digits; the test statistic (the column named
    ``"... value"``) to ``digits - 1`` decimals; p-values by
    :func:`format_pval` with significance stars and the legend.
    """
    cn = [str(c) for c in tab.columns]
    xm = tab.to_numpy(dtype=float)
    nr, nc = xm.shape
    has_p = nc >= 4 and cn[-1][:3] in ("Pr(", "p-v")
    tst = [j for j, c in enumerate(cn) if c.endswith(" value")]
    tst_ind = tst[-1] if tst else nc - has_p - 1
    k = nc - has_p - 1
    cs_ind = [j for j in range(k) if j != tst_ind]
    dig_tst = max(1, min(5, digits - 1))
    Cf = [[""] * nc for _ in range(nr)]
    if cs_ind:
        cs = xm[:, cs_ind]
        acs = np.abs(cs[np.isfinite(cs) & (cs != 0)])
        digmin = 1 + (np.floor(np.log10([acs.min(), acs.max()])) if len(acs) else np.zeros(2))
        nd = int(max(1, np.max(digits - digmin)))
        f = np.array(format_real(np.round(cs, nd).ravel(), digits), dtype=object).reshape(cs.shape)
        for jj, j in enumerate(cs_ind):
            for i in range(nr):
                Cf[i][j] = f[i, jj]
                x = xm[i, j]
                if np.isfinite(x) and x != 0 and float(f[i, jj]) == 0:
                    Cf[i][j] = _format1(x, max(1, digits - 1))
    t = format_real(np.round(xm[:, tst_ind], dig_tst), digits)
    for i in range(nr):
        Cf[i][tst_ind] = t[i]
    for j in range(nc):
        if j not in cs_ind and j != tst_ind and not (has_p and j == nc - 1):
            f = format_real(xm[:, j], digits)
            for i in range(nr):
                Cf[i][j] = f[i]
    legend = False
    colnames = list(cn)
    if has_p:
        pv = xm[:, -1]
        pf = format_pval(pv, dig_tst)
        for i in range(nr):
            Cf[i][-1] = pf[i]
        ok = ~np.isnan(pv)
        if stars and ok.any() and np.any(pv[ok] < 0.1):
            st = signif_stars(pv)
            w = max(len(s) for s in st)
            for i in range(nr):
                Cf[i].append(st[i].ljust(w))
            colnames.append("")
            legend = True
    lines = _print_matrix(Cf, colnames, [str(r) for r in tab.index], right=True)
    if legend:
        lines += ["---", f"Signif. codes:  {SIGNIF_LEGEND}"]
    return lines


def _fixef_corr_lines(m: "FittedModel") -> list[str]:
    """lme4's "Correlation of Fixed Effects": lower triangle, 3 decimals, abbreviated names."""
    V = m.vcov
    p = V.shape[0]
    if p <= 1:
        return []
    if p > COR_MAX:
        return [
            "",
            f"Correlation matrix not shown by default, as p = {p} > {COR_MAX}.",
            "Use m.vcov if you need it",
        ]
    rn = [str(n) for n in V.index]
    v = V.to_numpy(dtype=float)
    d = np.sqrt(np.diag(v))
    with np.errstate(invalid="ignore", divide="ignore"):
        C = v / np.outer(d, d)
    f = np.array(format_real(np.round(C, 3).ravel(), 7, nsmall=3, na="NaN"), dtype=object).reshape(p, p)
    rows = abbreviate(rn, 11)
    cols = abbreviate(rn, 6)
    cells = [[f[i, j] if j < i else "" for j in range(p - 1)] for i in range(1, p)]
    return ["", "Correlation of Fixed Effects:", *_print_matrix(cells, cols[:-1], rows[1:], right=False)]


def _warning_lines(m: "FittedModel") -> list[str]:
    """Convergence notes: singular fit, then the optimiser's warnings."""
    out = []
    if m.singular:
        out.append("boundary (singular) fit: see help('isSingular')")
    for msg in m.optsum.warnings:
        out.append(f"Note: {msg}")
    return out


# ----------------------------------------------------------------------------------------
# public entry points


def summary_text(m: "FittedModel", ddf: str = "satterthwaite") -> str:
    """Text of lme4's ``summary()`` of a fitted model (lmerTest's layout).

    Sections, in order: title, formula, REML criterion (REML fit) or
    AIC/BIC/logLik/deviance/df.resid (ML fit), quantiles of the scaled
    (Pearson) residuals, random effects (variances, standard deviations,
    correlations), numbers of observations and groups, the fixed-effects
    table from :meth:`LinearMixedModel.coef_table` with significance stars,
    the correlation of the fixed effects
    ``C = D^{-1/2} V D^{-1/2}`` (``V`` = ``m.vcov``), and convergence notes.

    Parameters
    ----------
    m : LinearMixedModel
        The fitted model.
    ddf : {"satterthwaite", "kenward-roger", "wald"}
        Denominator degrees of freedom of the t-tests; ``"wald"`` gives lme4's
        plain ``['lmerMod']`` title and z-tests.

    Returns
    -------
    str
        The text, lines joined by newlines (ending with a newline).
    """
    digits = DIGITS
    tab = m.coef_table(ddf) if m.fixef.size else None
    key = str(ddf).lower().replace("_", "-")
    title = _method_title(m)
    if key in _DDF_TITLES:
        title = f"{title.rstrip() if m.REML else title}. t-tests use {_DDF_TITLES[key]} ['lmerModLmerTest']"
    else:
        title = f"{title} ['lmerMod']"
    lines = [title, f"Formula: {m.formula}", ""]
    lines += _aic_lines(m, 1)
    lines.append("")
    lines += _residual_lines(m, digits)
    lines += _vc_lines(m, digits, variance=True)
    lines.append(_groups_line(m))
    if tab is not None and len(tab):
        lines += ["", "Fixed effects:"]
        lines += _coef_matrix(tab, digits)
        lines += _fixef_corr_lines(m)
    lines += _warning_lines(m)
    return "\n".join(lines) + "\n"


def short_text(m: "FittedModel") -> str:
    """Text of lme4's ``print()`` of a fitted model (the short form used by ``repr``).

    Title, formula, REML criterion or AIC/BIC/logLik/deviance/df.resid (4
    decimals), random-effect standard deviations and correlations, numbers of
    observations and groups, and the fixed-effect estimates in a row.

    Parameters
    ----------
    m : LinearMixedModel
        The fitted model.

    Returns
    -------
    str
        The text, ending with a newline.
    """
    digits = DIGITS
    lines = [f"{_method_title(m)} ['lmerMod']", f"Formula: {m.formula}"]
    lines += _aic_lines(m, 4)
    lines += _vc_lines(m, digits, variance=False)
    lines.append(_groups_line(m))
    fe = m.fixef
    if fe.size:
        lines.append("Fixed Effects:")
        lines += _print_named(format_real(fe.to_numpy(), digits), [str(n) for n in fe.index], gap=2)
    else:
        lines.append("No fixed effect coefficients")
    lines += _warning_lines(m)
    return "\n".join(lines) + "\n"
