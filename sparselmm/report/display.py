"""Text output in lme4's layout, and its HTML for notebooks.

:func:`summary_text` reproduces ``summary(<lmerModLmerTest>)`` (lme4's
``print.summary.merMod`` with lmerTest's Satterthwaite or Kenward–Roger
columns), :func:`short_text` reproduces ``print(<merMod>)`` and :class:`VarCorr`
reproduces lme4's ``VarCorr(m)`` and its print (``formatVC``, the same table as
the summary's random effects).  :func:`summary_html` writes the summary's
sections as HTML tables (a notebook's ``_repr_html_``) from the same computation
of each section as the text.  Numbers are formatted by small ports of R's own
rules (:mod:`sparselmm.report.rformat`: ``format``, ``format.pval``, ``abbreviate``,
``zapsmall``, R's matrix print), so that the output reads like R's, and:

* ``_coef_matrix`` — R's ``printCoefmat`` (common rounding of estimate,
  standard error and df, test statistic to ``digits - 1`` decimals,
  p-values with significance stars).

Byte-for-byte equality with R is not a goal of the summary; the layout, the row
and column names and the rounding are.  The print of :class:`VarCorr` is
compared with lme4's text exactly (``tests/reference/varcorr_print.json``).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from sparselmm import validate
from sparselmm.errors import ArgumentError
from sparselmm.report.rformat import (
    SIGNIF_LEGEND,
    abbreviate,
    format1,
    format_pval,
    format_real,
    print_matrix,
    print_named,
    signif_stars,
    zapsmall,
)

if TYPE_CHECKING:  # pragma: no cover
    from sparselmm.fitting.fitted import FittedModel

__all__ = [
    "summary_text",
    "glmm_summary_text",
    "summary_html",
    "short_text",
    "VarCorr",
    "match_comp",
    "format_real",
    "format_pval",
    "abbreviate",
    "signif_stars",
]

#: lme4's ``digits = max(3, getOption("digits") - 3)`` with R's default ``digits = 7``.
DIGITS = 4
#: lme4's ``digits`` of ``print(VarCorr(m))``: ``max(3, getOption("digits") - 2)``.
VC_DIGITS = 5
#: lme4's ``getOption("lme4.summary.cor.max")``: largest p whose correlation is printed.
COR_MAX = 12

_DDF_TITLES = {
    "satterthwaite": "Satterthwaite's method",
    "satt": "Satterthwaite's method",
    "kenward-roger": "Kenward-Roger's method",
    "kenward-rogers": "Kenward-Roger's method",
    "kr": "Kenward-Roger's method",
}


# ----------------------------------------------------------------------------------------
# the sections: each computed once, as a _Table or named values, then printed as R prints it
# (the text) or written as an HTML table (summary_html)


@dataclass(frozen=True)
class _Table:
    """A section's character matrix as R prints it: column names, row names, cells, justification."""

    colnames: list[str]
    rownames: list[str]
    cells: list[list[str]]
    right: bool = False

    def lines(self) -> list[str]:
        return print_matrix(self.cells, self.colnames, self.rownames, right=self.right)


def _method_title(m: "FittedModel") -> str:
    # lme4's methTitle: the ML title ends in a space ("maximum likelihood ").
    return "Linear mixed model fit by " + ("REML" if m.REML else "maximum likelihood ")


def _summary_title(m: "FittedModel", ddf: str) -> str:
    """The first line of the summary: the method, lmerTest's df method and the class."""
    key = str(ddf).lower().replace("_", "-")
    title = _method_title(m)
    if key in _DDF_TITLES:
        return f"{title.rstrip() if m.REML else title}. t-tests use {_DDF_TITLES[key]} ['lmerModLmerTest']"
    return f"{title} ['lmerMod']"


def _criterion(m: "FittedModel", digits: int) -> tuple[list[str], list[str]]:
    """Names and formatted values of lme4's ``.prt.aictab``: the REML criterion, or AIC, BIC,
    logLik, deviance and df.resid, rounded to ``digits`` decimals."""
    if m.REML:
        return ["REML criterion at convergence"], [format1(round(m.objective, digits))]
    return _aic_table([m.aic, m.bic, m.loglik, m.deviance], m.df_resid, digits)


def _aic_table(vals: list[float], df_resid: int, digits: int) -> tuple[list[str], list[str]]:
    """lme4's ``.prt.aictab`` of a fit by maximum likelihood: AIC, BIC, logLik, deviance (``-2 logLik``)
    rounded to ``digits`` decimals, and df.resid."""
    txt = [s.strip() for s in format_real(np.round(vals, digits))] + [str(int(df_resid))]
    return ["AIC", "BIC", "logLik", "deviance", "df.resid"], txt


def _criterion_lines(reml: bool, names: list[str], vals: list[str]) -> list[str]:
    """The text of ``_criterion``: one line of the REML criterion, or a named vector."""
    return [f"{names[0]}: {vals[0]} "] if reml else print_named(vals, names)


def _aic_lines(m: "FittedModel", digits: int) -> list[str]:
    """lme4's ``.prt.aictab``: the REML criterion, or AIC, BIC, logLik, deviance and df.resid."""
    return _criterion_lines(bool(m.REML), *_criterion(m, digits))


def _residual_quantiles(m: "FittedModel", digits: int) -> tuple[list[str], list[str]]:
    """Names and formatted values of lme4's ``.prt.resids``: type-7 quantiles of the Pearson residuals."""
    r = np.asarray(m.residuals("pearson", scaled=True), dtype=float)
    r = r[np.isfinite(r)]
    q = zapsmall(np.quantile(r, [0, 0.25, 0.5, 0.75, 1.0]), digits + 1)
    return ["Min", "1Q", "Median", "3Q", "Max"], format_real(q, digits)


def _residual_lines(names: list[str], vals: list[str]) -> list[str]:
    """lme4's ``.prt.resids``: the text of ``_residual_quantiles``."""
    return ["Scaled residuals: ", *print_named(vals, names), ""]


_VCGroups = list[tuple[str, list[str], np.ndarray, np.ndarray]]


def _vc_groups_of(vc: pd.DataFrame) -> tuple[_VCGroups, float]:
    """Per group of a ``varcorr()`` frame: name, column names, standard deviations, correlation matrix; and σ."""
    groups: _VCGroups = []
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


def _vc_groups(m: "FittedModel") -> tuple[_VCGroups, float]:
    """Per group of ``m.varcorr()``: name, column names, standard deviations, correlation matrix; and σ."""
    return _vc_groups_of(m.varcorr())


def _vc_table(groups: _VCGroups, sigma: float, digits: int, comp: Sequence[str]) -> _Table:
    """lme4's ``formatVC``: Groups, Name, the columns of ``comp`` in its order, Corr.

    Variances and standard deviations are each formatted together (all groups and the
    residual) with ``digits`` significant digits, the variances as the squares of the
    standard deviations; the correlations of each group to ``max(2, digits - 2)`` decimals,
    the lower triangle, in ``max(k) - 1`` columns.
    """
    grp_col: list[str] = []
    name_col: list[str] = []
    sds: list[float] = []
    for grp, names, sd, _ in groups:
        for i, n in enumerate(names):
            grp_col.append(grp if i == 0 else "")
            name_col.append(n)
        sds.extend(sd.tolist())
    if not np.isnan(sigma):  # no residual row for a GLMM without a dispersion (binomial, Poisson)
        grp_col.append("Residual")
        name_col.append("")
        sds.append(sigma)
    sd_arr = np.asarray(sds)
    cols: list[list[str]] = [grp_col, name_col]
    colnames = ["Groups", "Name"]
    for c in comp:
        cols.append(format_real(sd_arr**2 if c == "Variance" else sd_arr, digits))
        colnames.append(c)
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
        if not np.isnan(sigma):
            corr_rows.append([""] * ccols)
        for j in range(ccols):
            cols.append([r[j] for r in corr_rows])
            colnames.append("Corr" if j == 0 else "")
    cells = [list(r) for r in zip(*cols)]
    return _Table(colnames, [""] * len(cells), cells, right=False)


#: lme4's components of a printed VarCorr, in formatVC's order.
VC_COMPONENTS = ("Variance", "Std.Dev.")


def _vc_lines(m: "FittedModel", digits: int, variance: bool) -> list[str]:
    """lme4's ``.prt.VC`` / ``formatVC``: Groups, Name, [Variance,] Std.Dev., Corr."""
    comp = VC_COMPONENTS if variance else ("Std.Dev.",)
    return ["Random effects:", *_vc_table(*_vc_groups(m), digits, comp).lines()]


def _groups_text(nobs: int, ngroups: dict[str, int]) -> str:
    """lme4's ``.prt.grps``: ``Number of obs: n, groups:  g1, n1; g2, n2``."""
    grps = "; ".join(f"{g}, {n}" for g, n in ngroups.items())
    return f"Number of obs: {nobs}, groups:  {grps}"


def _groups_line(m: "FittedModel") -> str:
    """lme4's ``.prt.grps`` of a model."""
    return _groups_text(m.nobs, dict(m.ngroups))


def _coef_cells(tab: pd.DataFrame, digits: int = DIGITS, stars: bool = True) -> tuple[_Table, bool]:
    """R's ``printCoefmat`` of a coefficient table, as a table and whether the legend follows.

    Estimate, standard error (and df) are rounded together to
    ``max(1, digits - 1 - floor(log10 min|x|))`` decimals and formatted with
    ``digits`` significant digits; the test statistic (the column named
    ``"... value"``) to ``digits - 1`` decimals; p-values by
    :func:`format_pval`, then a column of significance stars (named ``""``).
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
                    Cf[i][j] = format1(x, max(1, digits - 1))
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
    return _Table(colnames, [str(r) for r in tab.index], Cf, right=True), legend


def _coef_matrix(tab: pd.DataFrame, digits: int = DIGITS, stars: bool = True) -> list[str]:
    """R's ``printCoefmat`` of a coefficient table (last column a p-value when named ``Pr(...)``),
    with the legend of the significance stars when they are shown (see ``_coef_cells``)."""
    return _coef_lines(*_coef_cells(tab, digits, stars))


def _coef_lines(table: _Table, legend: bool) -> list[str]:
    """The text of ``_coef_cells``: the matrix, then the legend of the stars when shown."""
    lines = table.lines()
    if legend:
        lines += ["---", f"Signif. codes:  {SIGNIF_LEGEND}"]
    return lines


def _fixef_corr(m: "FittedModel") -> _Table | list[str] | None:
    """lme4's "Correlation of Fixed Effects": the lower triangle to 3 decimals with abbreviated
    names; the note lines instead when p > COR_MAX; None for p <= 1."""
    V = m.vcov
    p = V.shape[0]
    if p <= 1:
        return None
    if p > COR_MAX:
        return [f"Correlation matrix not shown by default, as p = {p} > {COR_MAX}.", "Use m.vcov if you need it"]
    rn = [str(n) for n in V.index]
    v = V.to_numpy(dtype=float)
    d = np.sqrt(np.diag(v))
    with np.errstate(invalid="ignore", divide="ignore"):
        C = v / np.outer(d, d)
    f = np.array(format_real(np.round(C, 3).ravel(), 7, nsmall=3, na="NaN"), dtype=object).reshape(p, p)
    rows = abbreviate(rn, 11)
    cols = abbreviate(rn, 6)
    cells = [[f[i, j] if j < i else "" for j in range(p - 1)] for i in range(1, p)]
    return _Table(cols[:-1], rows[1:], cells, right=False)


def _fixef_corr_lines(m: "FittedModel") -> list[str]:
    """lme4's "Correlation of Fixed Effects": lower triangle, 3 decimals, abbreviated names."""
    return _fixef_corr_text(_fixef_corr(m))


def _fixef_corr_text(corr: _Table | list[str] | None) -> list[str]:
    """The text of ``_fixef_corr``: a blank line, then the titled matrix or the note."""
    if corr is None:
        return []
    if isinstance(corr, list):
        return ["", *corr]
    return ["", "Correlation of Fixed Effects:", *corr.lines()]


def _warning_lines(m: "FittedModel") -> list[str]:
    """Convergence notes: singular fit, then the optimiser's warnings."""
    out = []
    if m.singular:
        out.append("boundary (singular) fit: see help('isSingular')")
    for msg in m.optsum.warnings:
        out.append(f"Note: {msg}")
    return out


# ----------------------------------------------------------------------------------------
# HTML (a notebook's display of a model): the sections' tables, cells as the text prints them


def _html_cell(tag: str, text: str, left: bool) -> str:
    align = "left" if left else "right"
    return f'<{tag} style="text-align: {align};">{html.escape(text.strip())}</{tag}>'


def _html_table(
    t: _Table, cls: str, caption: str | None = None, left_cols: Sequence[int] | None = None, headed: bool = True
) -> str:
    """An HTML table of a section: a header row of the column names (when ``headed``), a row
    per row of cells (a header cell with the row name first, unless no row has a name); cells
    stripped of the text's padding and escaped.  The columns ``left_cols`` are left-aligned,
    the others right-aligned (default: as the text justifies them)."""
    named = any(r for r in t.rownames)
    ncol = len(t.colnames) if t.colnames else max((len(r) for r in t.cells), default=0)
    if left_cols is None:
        left_cols = () if t.right else range(ncol)
    left = set(left_cols)
    out = [f'<table class="{cls}">']
    if caption is not None:
        out.append(f"<caption>{html.escape(caption)}</caption>")
    if headed:
        head = ['<th style="text-align: left;"></th>'] if named else []
        head += [_html_cell("th", c, j in left) for j, c in enumerate(t.colnames)]
        out.append("<thead><tr>" + "".join(head) + "</tr></thead>")
    out.append("<tbody>")
    for rn, row in zip(t.rownames, t.cells):
        cells = [_html_cell("th", rn, True)] if named else []
        cells += [_html_cell("td", c, j in left) for j, c in enumerate(row)]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _html_named(names: Sequence[str], values: Sequence[str], cls: str, caption: str) -> str:
    """An HTML table of a named vector: the names as the header row, the values below."""
    return _html_table(_Table(list(names), [""], [list(values)], right=True), cls, caption)


def _html_par(text: str, cls: str) -> str:
    return f'<p class="{cls}">{html.escape(text)}</p>'


# ----------------------------------------------------------------------------------------
# lme4's VarCorr


def match_comp(comp: str | Sequence[str]) -> tuple[str, ...]:
    """The components a printed VarCorr shows, matched as lme4's ``formatVC`` matches ``comp``.

    Each name is matched by R's ``pmatch`` against ``"Variance"`` and ``"Std.Dev."``: exact
    matches first, then unique partial ones (``"Var"``, ``"Std"``), each component at most once;
    the columns follow the order of ``comp``.

    Parameters
    ----------
    comp : str or sequence of str
        ``"Std.Dev."``, ``"Variance"``, or both in either order (or their prefixes).

    Returns
    -------
    tuple of str
        The full names, in the order given.

    Raises
    ------
    ArgumentError
        When ``comp`` is not a string or a sequence of strings, is empty, or has a name that
        matches no component (or one already matched), as lme4's "Illegal 'comp'".
    """
    items = [comp] if isinstance(comp, str) else comp
    if not isinstance(items, (list, tuple)) or not all(isinstance(c, str) for c in items):
        raise ArgumentError(
            f"comp must be 'Std.Dev.', 'Variance' or a list of both, got {comp!r} ({type(comp).__name__})"
        )
    if not items:
        raise ArgumentError("comp is empty: a VarCorr must show variances or standard deviations (or both)")
    matched: list[str | None] = [None] * len(items)
    free = list(VC_COMPONENTS)
    for i, c in enumerate(items):  # R's pmatch: the exact matches first
        if c in free:
            matched[i] = c
            free.remove(c)
    for i, c in enumerate(items):  # then the unique partial ones
        if matched[i] is None and c:
            hits = [f for f in free if f.startswith(c)]
            if len(hits) == 1:
                matched[i] = hits[0]
                free.remove(hits[0])
    bad = [c for c, hit in zip(items, matched) if hit is None]
    if bad:
        raise ArgumentError(f"illegal comp {bad[0]!r}; choose 'Std.Dev.', 'Variance' or both (each once)")
    return tuple(str(c) for c in matched)


class VarCorr:
    """lme4's ``VarCorr(m)``: the estimated variance components, printed as lme4 prints them.

    ``str()`` (and ``repr()``) is lme4's ``print(VarCorr(m), comp = comp, digits = digits)``:
    Groups, Name, the standard deviations and/or variances (each column formatted together
    with ``digits`` significant digits), and for terms of several columns the correlations
    (``max(2, digits - 2)`` decimals, lower triangle, the Corr columns).  The same table is
    the random-effects section of :func:`summary_text` (``comp = ("Variance", "Std.Dev.")``,
    ``digits = 4``) and of :func:`short_text` (``"Std.Dev."``, 4).

    Parameters
    ----------
    frame : pandas.DataFrame
        The components in lme4's ``as.data.frame(VarCorr(m))`` layout, as
        :meth:`~sparselmm.fitting.fitted.FittedModel.varcorr` returns them (columns ``grp``,
        ``var1``, ``var2``, ``vcov``, ``sdcor``; the residual last).
    comp : str or sequence of str
        The components printed, as lme4's ``comp`` (see :func:`match_comp`); lme4's default
        ``"Std.Dev."``.
    digits : int
        Significant digits, as lme4's ``digits``; its default
        ``max(3, getOption("digits") - 2) = 5``.

    Raises
    ------
    ArgumentError
        For a ``comp`` lme4 refuses or a ``digits`` that is not an integer from 1 to 22.

    Examples
    --------
    >>> vc = m.VarCorr()                                         # doctest: +SKIP
    >>> print(vc.format(comp=["Std.Dev.", "Variance"]))          # doctest: +SKIP
     Groups   Name        Std.Dev. Variance Corr
     Subject  (Intercept) 24.7405  612.090
              Days         5.9221   35.072  0.066
     Residual             25.5918  654.941
    """

    def __init__(self, frame: pd.DataFrame, comp: str | Sequence[str] = "Std.Dev.", digits: int = VC_DIGITS) -> None:
        self._frame = frame.copy()
        self._groups, self._sigma = _vc_groups_of(frame)
        self._comp = match_comp(comp)
        self._digits = validate.count(digits, "digits", minimum=1, maximum=22)

    @property
    def comp(self) -> tuple[str, ...]:
        """The components :meth:`__str__` prints (full names, in their order)."""
        return self._comp

    @property
    def digits(self) -> int:
        """The significant digits :meth:`__str__` prints."""
        return self._digits

    @property
    def sigma(self) -> float:
        """The residual standard deviation (lme4's ``attr(VarCorr(m), "sc")``)."""
        return self._sigma

    @property
    def stddev(self) -> dict[str, pd.Series]:
        """Per group, the standard deviations of its columns (lme4's ``attr(, "stddev")``)."""
        return {g: pd.Series(sd, index=names, name=g) for g, names, sd, _ in self._groups}

    @property
    def correlation(self) -> dict[str, pd.DataFrame]:
        """Per group, the correlation matrix of its columns (lme4's ``attr(, "correlation")``)."""
        return {g: pd.DataFrame(c, index=names, columns=names) for g, names, _, c in self._groups}

    def as_data_frame(self) -> pd.DataFrame:
        """lme4's ``as.data.frame(VarCorr(m))``: the frame of ``m.varcorr()`` (a copy).

        Returns
        -------
        pandas.DataFrame
            Columns ``grp``, ``var1``, ``var2``, ``vcov``, ``sdcor``.
        """
        return self._frame.copy()

    def format(self, comp: str | Sequence[str] | None = None, digits: int | None = None) -> str:
        """lme4's ``print(VarCorr(m), comp = comp, digits = digits)`` as text.

        Parameters
        ----------
        comp : str or sequence of str, optional
            The components, as lme4's ``comp``; default this object's :attr:`comp`.
        digits : int, optional
            Significant digits; default this object's :attr:`digits`.

        Returns
        -------
        str
            The lines of R's print, ending with a newline.

        Raises
        ------
        ArgumentError
            For an unknown ``comp`` or a bad ``digits``.
        """
        return "\n".join(self._table(comp, digits).lines()) + "\n"

    def _table(self, comp: str | Sequence[str] | None, digits: int | None) -> _Table:
        c = self._comp if comp is None else match_comp(comp)
        d = self._digits if digits is None else validate.count(digits, "digits", minimum=1, maximum=22)
        return _vc_table(self._groups, self._sigma, d, c)

    def __str__(self) -> str:
        return self.format()

    def __repr__(self) -> str:
        return self.format()

    def _repr_html_(self) -> str:
        return _html_table(self._table(None, None), "sparselmm-varcorr", left_cols=(0, 1))


# ----------------------------------------------------------------------------------------
# public entry points


@dataclass(frozen=True)
class _Summary:
    """The sections of a summary, each computed once; :func:`summary_text` prints them and
    :func:`summary_html` writes them as HTML."""

    title: str
    formula: str
    reml: bool
    criterion: tuple[list[str], list[str]]
    residuals: tuple[list[str], list[str]]
    random: _Table
    nobs: int
    ngroups: dict[str, int]
    fixed: tuple[_Table, bool] | None
    fixef_corr: _Table | list[str] | None
    warnings: list[str]


def _summary_sections(m: "FittedModel", ddf: str) -> _Summary:
    digits = DIGITS
    tab = m.coef_table(ddf) if m.fixef.size else None
    has_fixed = tab is not None and len(tab) > 0
    return _Summary(
        title=_summary_title(m, ddf),
        formula=str(m.formula),
        reml=bool(m.REML),
        criterion=_criterion(m, 1),
        residuals=_residual_quantiles(m, digits),
        random=_vc_table(*_vc_groups(m), digits, VC_COMPONENTS),
        nobs=int(m.nobs),
        ngroups=dict(m.ngroups),
        fixed=_coef_cells(tab, digits) if has_fixed else None,
        fixef_corr=_fixef_corr(m) if has_fixed else None,
        warnings=_warning_lines(m),
    )


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
    s = _summary_sections(m, ddf)
    lines = [s.title, f"Formula: {s.formula}", ""]
    lines += _criterion_lines(s.reml, *s.criterion)
    lines.append("")
    lines += _residual_lines(*s.residuals)
    lines += ["Random effects:", *s.random.lines()]
    lines.append(_groups_text(s.nobs, s.ngroups))
    if s.fixed is not None:
        lines += ["", "Fixed effects:", *_coef_lines(*s.fixed)]
        lines += _fixef_corr_text(s.fixef_corr)
    lines += s.warnings
    return "\n".join(lines) + "\n"


def summary_html(m: "FittedModel", ddf: str = "satterthwaite") -> str:
    """HTML of lme4's ``summary()`` of a fitted model, for a notebook's display.

    The sections of :func:`summary_text`, from the same computation and with the same
    formatted entries (stripped of the text's padding, escaped by :func:`html.escape`): the
    title; a table of the formula, the REML criterion (or AIC, BIC, logLik, deviance and
    df.resid), the number of observations and each grouping factor's number of levels; the
    scaled residuals' quantiles; the random effects (Groups, Name, Variance, Std.Dev., Corr);
    the fixed effects with their t-tests and significance stars (and the legend); the
    correlation of the fixed effects (or the note that it is not shown) and convergence notes.

    Parameters
    ----------
    m : LinearMixedModel
        The fitted model.
    ddf : {"satterthwaite", "kenward-roger", "wald"}
        Denominator degrees of freedom of the t-tests, as :func:`summary_text`.

    Returns
    -------
    str
        A ``<div class="sparselmm-summary">`` with one ``<table>`` per section; the tables
        have the classes ``sparselmm-model``, ``sparselmm-residuals``, ``sparselmm-random``,
        ``sparselmm-fixed`` and ``sparselmm-fixef-corr``.
    """
    s = _summary_sections(m, ddf)
    names, vals = s.criterion
    model_rows = [("Formula", s.formula), *zip(names, vals), ("Number of obs", str(s.nobs))]
    model_rows += [(f"Groups: {g}", str(n)) for g, n in s.ngroups.items()]
    model = _Table([], [r[0] for r in model_rows], [[r[1]] for r in model_rows], right=False)
    out = ['<div class="sparselmm-summary">', _html_par(s.title, "sparselmm-title")]
    out.append(_html_table(model, "sparselmm-model", headed=False))
    out.append(_html_named(s.residuals[0], s.residuals[1], "sparselmm-residuals", "Scaled residuals"))
    out.append(_html_table(s.random, "sparselmm-random", "Random effects", left_cols=(0, 1)))
    if s.fixed is not None:
        table, legend = s.fixed
        out.append(_html_table(table, "sparselmm-fixed", "Fixed effects"))
        if legend:
            out.append(_html_par(f"Signif. codes:  {SIGNIF_LEGEND}", "sparselmm-signif"))
        if isinstance(s.fixef_corr, list):
            out += [_html_par(line, "sparselmm-note") for line in s.fixef_corr]
        elif s.fixef_corr is not None:
            out.append(_html_table(s.fixef_corr, "sparselmm-fixef-corr", "Correlation of Fixed Effects", left_cols=()))
    out += [_html_par(w, "sparselmm-warning") for w in s.warnings]
    out.append("</div>")
    return "\n".join(out)


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
        lines += print_named(format_real(fe.to_numpy(), digits), [str(n) for n in fe.index], gap=2)
    else:
        lines.append("No fixed effect coefficients")
    lines += _warning_lines(m)
    return "\n".join(lines) + "\n"


def glmm_summary_text(m: Any) -> str:
    """Text of lme4's ``summary()`` of a GLMM (``summary(<glmerMod>)``).

    Sections: the title with the approximation, the family and link, the formula, AIC, BIC,
    logLik, deviance (``-2 logLik``, as lme4's summary labels it) and df.resid, the quantiles of
    the scaled Pearson residuals, the random effects (variances and standard deviations), the
    numbers of observations and groups, glmer's coefficient table (z tests) and the correlation of
    the fixed effects.

    Parameters
    ----------
    m : GeneralizedLinearMixedModel

    Returns
    -------
    str
    """
    approx = "Laplace Approximation" if m.nAGQ == 1 else f"Adaptive Gauss-Hermite Quadrature, nAGQ = {m.nAGQ}"
    lines = [f"Generalized linear mixed model fit by maximum likelihood ({approx}) ['glmerMod']",
             f" Family: {m.family.name}  ( {m.family.link.name} )", f"Formula: {m.formula}", ""]
    lines += _criterion_lines(False, *_aic_table([m.aic, m.bic, m.loglik, -2.0 * m.loglik], m.df_resid, 1))
    lines.append("")
    lines += _residual_lines(*_residual_quantiles(m, DIGITS))
    lines += ["Random effects:", *str(VarCorr(m.varcorr(), comp=("Variance", "Std.Dev."), digits=DIGITS)).splitlines()]
    lines.append(_groups_text(m.nobs, m.ngroups))
    lines += ["", "Fixed effects:", *_coef_lines(*_coef_cells(m.coef_table()))]
    lines += _fixef_corr_text(_fixef_corr(m))
    if m.singular:
        lines += ["optimizer (bobyqa) convergence code: 0 (OK)", "boundary (singular) fit: see help('isSingular')"]
    return "\n".join(lines) + "\n"
