"""Tests of the notebook display: ``LinearMixedModel._repr_html_`` (the summary's sections as
HTML tables) and ``VarCorr._repr_html_``.

The HTML is read back with the standard library's ``html.parser`` (pandas.read_html needs
lxml, which the project does not depend on); the cells are compared with the text summary's
formatted entries and with the model's numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

import numpy as np
import pytest

import sparselmm as slm
from conftest import fit
from sparselmm.report.display import SIGNIF_LEGEND, format_pval

SLEEP = "Reaction ~ Days + (Days | Subject)"
PENICILLIN = "diameter ~ 1 + (1 | plate) + (1 | sample)"
GROCERY = "price ~ store + (1 | item)"
CAKE = "angle ~ recipe * temperature + (1 | replicate)"


# ----------------------------------------------------------------------------------------
# reading the HTML back


@dataclass
class Table:
    cls: str
    caption: str | None = None
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    row_heads: list[bool] = field(default_factory=list)  # the first cell of a body row is a <th>

    def body(self) -> list[list[str]]:
        """The body cells without the row-name cell."""
        return [r[1:] if h else r for r, h in zip(self.rows, self.row_heads)]

    def rownames(self) -> list[str]:
        return [r[0] for r, h in zip(self.rows, self.row_heads) if h]


class _Reader(HTMLParser):
    """Tables (class, caption, header row, body rows) and paragraphs (class, text) of the HTML."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[Table] = []
        self.pars: list[tuple[str, str]] = []
        self.divs: list[str] = []
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._row_head = False
        self._in_head = False
        self._caption: list[str] | None = None
        self._par: tuple[str, list[str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "div":
            self.divs.append(a.get("class") or "")
        elif tag == "table":
            self.tables.append(Table(a.get("class") or ""))
        elif tag == "caption":
            self._caption = []
        elif tag == "thead":
            self._in_head = True
        elif tag == "tr":
            self._row, self._row_head = [], False
        elif tag in ("td", "th"):
            if self._row is not None and not self._row and tag == "th":
                self._row_head = True
            self._cell = []
        elif tag == "p":
            self._par = (a.get("class") or "", [])

    def handle_endtag(self, tag: str) -> None:
        t = self.tables[-1] if self.tables else None
        if tag == "caption" and self._caption is not None and t is not None:
            t.caption = "".join(self._caption)
            self._caption = None
        elif tag == "thead":
            self._in_head = False
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell))
            self._cell = None
        elif tag == "tr" and self._row is not None and t is not None:
            if self._in_head:
                t.header = self._row
            else:
                t.rows.append(self._row)
                t.row_heads.append(self._row_head)
            self._row = None
        elif tag == "p" and self._par is not None:
            self.pars.append((self._par[0], "".join(self._par[1])))
            self._par = None

    def handle_data(self, data: str) -> None:
        for buf in (self._cell, self._caption, self._par[1] if self._par else None):
            if buf is not None:
                buf.append(data)
                return


def _read(html_text: str) -> _Reader:
    r = _Reader()
    r.feed(html_text)
    r.close()
    return r


def _table(r: _Reader, cls: str) -> Table:
    hits = [t for t in r.tables if t.cls == cls]
    assert len(hits) == 1, [t.cls for t in r.tables]
    return hits[0]


# ----------------------------------------------------------------------------------------
# reading the text summary (the entries the HTML must repeat)


def _lines(text: str) -> list[str]:
    return text.rstrip("\n").split("\n")


def _text_block(text: str, header: str, stop: str | None = None) -> list[str]:
    lines = _lines(text)
    i = lines.index(header)
    out = []
    for ln in lines[i + 1 :]:
        if (stop is None and not ln.strip()) or (stop is not None and ln.startswith(stop)):
            break
        out.append(ln)
    return out


def _split_at_header(block: list[str]) -> tuple[list[str], list[list[str]]]:
    """A left-justified R matrix print: columns start where the header's fields start."""
    header = block[0]
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    cols = header.split()
    rows = [[ln[s:e].strip() for s, e in zip(starts, starts[1:] + [None])] for ln in block[1:]]
    return cols, rows


def _coef_text(text: str) -> dict[str, list[str]]:
    """Rows of the text's fixed-effects table: name -> entries (stars last, "" when blank)."""
    rows = {}
    for ln in _text_block(text, "Fixed effects:")[1:]:
        if ln.startswith("---"):
            break
        name, rest = ln.split(maxsplit=1)
        rows[name] = re.findall(r"< ?[\d.e+-]+|\S+", rest)
    n = max(len(v) for v in rows.values())
    return {k: v + [""] * (n - len(v)) for k, v in rows.items()}


# ----------------------------------------------------------------------------------------
# fitted models (shared with the session cache)


@pytest.fixture(scope="module")
def sleep() -> slm.LinearMixedModel:
    return fit("sleepstudy", SLEEP, True)


@pytest.fixture(scope="module")
def penicillin() -> slm.LinearMixedModel:
    return fit("Penicillin", PENICILLIN, True)


@pytest.fixture(scope="module")
def grocery_ml() -> slm.LinearMixedModel:
    return fit("grocery", GROCERY, False)


@pytest.fixture(scope="module")
def cake() -> slm.LinearMixedModel:
    return fit("cake", CAKE, True)


# ----------------------------------------------------------------------------------------
# the sleepstudy slope model: every section


def test_html_sections_and_title(sleep: slm.LinearMixedModel) -> None:
    h = sleep._repr_html_()
    r = _read(h)
    assert r.divs[0] == "sparselmm-summary"
    assert [t.cls for t in r.tables] == [
        "sparselmm-model", "sparselmm-residuals", "sparselmm-random", "sparselmm-fixed", "sparselmm-fixef-corr",
    ]
    assert [t.caption for t in r.tables[1:]] == [
        "Scaled residuals", "Random effects", "Fixed effects", "Correlation of Fixed Effects",
    ]
    text = sleep.summary()
    assert r.pars[0] == ("sparselmm-title", _lines(text)[0])
    assert ("sparselmm-signif", f"Signif. codes:  {SIGNIF_LEGEND}") in r.pars
    assert not any(c == "sparselmm-warning" for c, _ in r.pars)
    # text is escaped: the quotes of the title, the "<" and ">" of the p-values and headers
    assert "&lt; 2e-16" in h and "Pr(&gt;|t|)" in h and "Satterthwaite&#x27;s" in h
    assert "< 2e-16" not in h


def test_html_header_table(sleep: slm.LinearMixedModel) -> None:
    t = _table(_read(sleep._repr_html_()), "sparselmm-model")
    assert t.header == []
    rows = dict(zip(t.rownames(), (b[0] for b in t.body())))
    assert list(rows) == ["Formula", "REML criterion at convergence", "Number of obs", "Groups: Subject"]
    assert rows["Formula"] == SLEEP == sleep.formula
    crit = next(ln for ln in _lines(sleep.summary()) if ln.startswith("REML criterion"))
    assert rows["REML criterion at convergence"] == crit.split(":")[1].strip()
    assert float(rows["REML criterion at convergence"]) == round(sleep.objective, 1)
    assert rows["Number of obs"] == str(sleep.nobs) == "180"
    assert rows["Groups: Subject"] == str(sleep.ngroups["Subject"]) == "18"


def test_html_scaled_residuals(sleep: slm.LinearMixedModel) -> None:
    t = _table(_read(sleep._repr_html_()), "sparselmm-residuals")
    names, values = _text_block(sleep.summary(), "Scaled residuals: ")
    assert t.header == names.split() == ["Min", "1Q", "Median", "3Q", "Max"]
    assert t.body() == [values.split()]
    q = np.quantile(sleep.residuals("pearson", scaled=True).to_numpy(), [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose([float(v) for v in t.body()[0]], q, atol=5e-5)


def test_html_random_effects(sleep: slm.LinearMixedModel) -> None:
    t = _table(_read(sleep._repr_html_()), "sparselmm-random")
    cols, rows = _split_at_header(_text_block(sleep.summary(), "Random effects:", stop="Number of obs"))
    assert t.header == cols == ["Groups", "Name", "Variance", "Std.Dev.", "Corr"]
    assert t.rownames() == []
    assert t.body() == rows
    vc = sleep.varcorr()
    var = vc[vc["var2"].isna()]
    assert [b[0] for b in t.body()] == ["Subject", "", "Residual"]
    assert [b[1] for b in t.body()] == ["(Intercept)", "Days", ""]
    np.testing.assert_allclose([float(b[2]) for b in t.body()], var["vcov"], atol=0.005)
    np.testing.assert_allclose([float(b[3]) for b in t.body()], var["sdcor"], atol=5e-4)
    corr = vc.loc[vc["var2"].notna(), "sdcor"].iloc[0]
    assert [b[4] for b in t.body()] == ["", f"{corr:.2f}", ""]


def test_html_fixed_effects(sleep: slm.LinearMixedModel) -> None:
    t = _table(_read(sleep._repr_html_()), "sparselmm-fixed")
    assert t.header == ["", "Estimate", "Std. Error", "df", "t value", "Pr(>|t|)", ""]
    assert t.rownames() == list(sleep.fixef.index) == ["(Intercept)", "Days"]
    assert dict(zip(t.rownames(), t.body())) == _coef_text(sleep.summary())
    tab = sleep.coef_table()
    pvals = [s.strip() for s in format_pval(tab["Pr(>|t|)"])]
    for name, (est, se, df, tv, p, stars), pv in zip(t.rownames(), t.body(), pvals):
        assert float(est) == pytest.approx(sleep.fixef[name], abs=5e-4)
        assert float(se) == pytest.approx(sleep.se[name], abs=5e-4)
        assert float(df) == pytest.approx(tab.loc[name, "df"], abs=5e-4)
        assert float(tv) == pytest.approx(tab.loc[name, "t value"], abs=5e-4)
        assert p == pv
        assert stars == "***"


def test_html_fixef_correlation(sleep: slm.LinearMixedModel) -> None:
    t = _table(_read(sleep._repr_html_()), "sparselmm-fixef-corr")
    block = _text_block(sleep.summary(), "Correlation of Fixed Effects:")
    assert t.header == ["", *block[0].split()] == ["", "(Intr)"]
    assert t.rownames() == ["Days"]
    V = sleep.vcov.to_numpy()
    assert t.body() == [[f"{V[1, 0] / np.sqrt(V[0, 0] * V[1, 1]):.3f}"]] == [block[1].split()[1:]]


# ----------------------------------------------------------------------------------------
# other models


def test_html_crossed(penicillin: slm.LinearMixedModel) -> None:
    r = _read(penicillin._repr_html_())
    assert [t.cls for t in r.tables] == ["sparselmm-model", "sparselmm-residuals", "sparselmm-random", "sparselmm-fixed"]
    model = _table(r, "sparselmm-model")
    rows = dict(zip(model.rownames(), (b[0] for b in model.body())))
    assert rows["Formula"] == PENICILLIN
    assert rows["Number of obs"] == "144"
    assert (rows["Groups: plate"], rows["Groups: sample"]) == ("24", "6") == tuple(map(str, penicillin.ngroups.values()))
    rand = _table(r, "sparselmm-random")
    text = penicillin.summary()
    cols, trows = _split_at_header(_text_block(text, "Random effects:", stop="Number of obs"))
    assert rand.header == cols == ["Groups", "Name", "Variance", "Std.Dev."]
    assert rand.body() == trows
    assert [b[0] for b in rand.body()] == ["plate", "sample", "Residual"]
    np.testing.assert_allclose([float(b[3]) for b in rand.body()], penicillin.varcorr()["sdcor"], rtol=1e-3)
    vc_table = _read(penicillin.VarCorr(comp=["Variance", "Std.Dev."], digits=4)._repr_html_()).tables[0]
    assert vc_table.body() == rand.body() and vc_table.header == rand.header
    fixed = _table(r, "sparselmm-fixed")
    assert fixed.rownames() == ["(Intercept)"]
    assert dict(zip(fixed.rownames(), fixed.body())) == _coef_text(text)
    assert float(fixed.body()[0][0]) == pytest.approx(penicillin.fixef.iloc[0], abs=5e-4)
    assert float(fixed.body()[0][1]) == pytest.approx(penicillin.se.iloc[0], abs=5e-4)


def test_html_factor_ml(grocery_ml: slm.LinearMixedModel) -> None:
    m = grocery_ml
    r = _read(m._repr_html_())
    text = m.summary()
    assert r.pars[0][1] == _lines(text)[0]
    model = _table(r, "sparselmm-model")
    rows = dict(zip(model.rownames(), (b[0] for b in model.body())))
    lines = _lines(text)
    i = next(i for i, ln in enumerate(lines) if ln.split() == ["AIC", "BIC", "logLik", "deviance", "df.resid"])
    assert [rows[k] for k in ("AIC", "BIC", "logLik", "deviance", "df.resid")] == lines[i + 1].split()
    assert [float(rows[k]) for k in ("AIC", "BIC", "logLik", "deviance")] == [
        round(x, 1) for x in (m.aic, m.bic, m.loglik, m.deviance)
    ]
    assert rows["df.resid"] == str(m.df_resid)
    assert "REML criterion at convergence" not in rows
    fixed = _table(r, "sparselmm-fixed")
    assert fixed.rownames() == list(m.fixef.index)
    assert dict(zip(fixed.rownames(), fixed.body())) == _coef_text(text)
    for name, b in zip(fixed.rownames(), fixed.body()):
        assert float(b[0]) == pytest.approx(m.fixef[name], abs=5e-3)
        assert float(b[1]) == pytest.approx(m.se[name], abs=5e-3)
    corr = _table(r, "sparselmm-fixef-corr")
    block = _text_block(text, "Correlation of Fixed Effects:")
    assert corr.header == ["", *block[0].split()]
    p = len(m.fixef)
    assert corr.rownames() == [ln.split()[0] for ln in block[1:]] and len(corr.rownames()) == p - 1
    V = m.vcov.to_numpy()
    C = V / np.sqrt(np.outer(np.diag(V), np.diag(V)))
    for i, row in enumerate(corr.body(), start=1):
        assert [c for c in row if c] == [f"{C[i, j]:.3f}" for j in range(i)]
        assert all(c == "" for c in row[i:])


def test_html_many_coefficients_note(cake: slm.LinearMixedModel) -> None:
    r = _read(cake._repr_html_())
    assert "sparselmm-fixef-corr" not in [t.cls for t in r.tables]
    notes = [txt for c, txt in r.pars if c == "sparselmm-note"]
    assert notes == _lines(cake.summary())[-2:] == [
        "Correlation matrix not shown by default, as p = 18 > 12.", "Use m.vcov if you need it",
    ]
    fixed = _table(r, "sparselmm-fixed")
    assert fixed.rownames() == list(cake.fixef.index)
    assert dict(zip(fixed.rownames(), fixed.body())) == _coef_text(cake.summary())


def test_html_singular_note() -> None:
    m = fit("Dyestuff2", "Yield ~ 1 + (1 | Batch)", True)
    r = _read(m._repr_html_())
    assert r.pars[-1] == ("sparselmm-warning", "boundary (singular) fit: see help('isSingular')")
    assert "boundary (singular) fit: see help(&#x27;isSingular&#x27;)" in m._repr_html_()


def test_html_escapes_names() -> None:
    m = fit("sleepstudy", "Reaction ~ I(Days > 4) + (1 | Subject)", True)
    h = m._repr_html_()
    assert "I(Days &gt; 4)TRUE" in h and "I(Days > 4)" not in h
    r = _read(h)
    assert _table(r, "sparselmm-fixed").rownames() == list(m.fixef.index) == ["(Intercept)", "I(Days > 4)TRUE"]
    rows = dict(zip(_table(r, "sparselmm-model").rownames(), (b[0] for b in _table(r, "sparselmm-model").body())))
    assert rows["Formula"] == m.formula


def test_varcorr_html_cells_are_the_printed_cells(sleep: slm.LinearMixedModel) -> None:
    vc = sleep.VarCorr(comp=["Std.Dev.", "Variance"])
    t = _read(vc._repr_html_()).tables[0]
    assert t.cls == "sparselmm-varcorr"
    cols, rows = _split_at_header(_lines(str(vc)))
    assert t.header == cols == ["Groups", "Name", "Std.Dev.", "Variance", "Corr"]
    assert t.body() == rows
