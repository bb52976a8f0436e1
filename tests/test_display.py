"""Tests of sparselmm.report.display: lme4's summary() and print() layouts."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import sparselmm as slm
from conftest import fit
from sparselmm.report import display as display
from sparselmm.report.display import abbreviate, format_pval, format_real, signif_stars

SLEEP = "Reaction ~ Days + (Days | Subject)"


# ----------------------------------------------------------------------------------------
# fitted models, fitted once per module


@pytest.fixture(scope="module")
def sleep_reml() -> slm.LinearMixedModel:
    return slm.lmer(SLEEP, slm.datasets.load("sleepstudy"), REML=True)


@pytest.fixture(scope="module")
def sleep_ml() -> slm.LinearMixedModel:
    return slm.lmer(SLEEP, slm.datasets.load("sleepstudy"), REML=False)


@pytest.fixture(scope="module")
def sleep_diag() -> slm.LinearMixedModel:
    return slm.lmer("Reaction ~ Days + (Days || Subject)", slm.datasets.load("sleepstudy"))


@pytest.fixture(scope="module")
def penicillin() -> slm.LinearMixedModel:
    return slm.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", slm.datasets.load("Penicillin"))


@pytest.fixture(scope="module")
def pastes() -> slm.LinearMixedModel:
    return slm.lmer("strength ~ 1 + (1 | batch/cask)", slm.datasets.load("Pastes"))


@pytest.fixture(scope="module")
def dyestuff2() -> slm.LinearMixedModel:
    return slm.lmer("Yield ~ 1 + (1 | Batch)", slm.datasets.load("Dyestuff2"))


@pytest.fixture(scope="module")
def sleep_summary(sleep_reml: slm.LinearMixedModel) -> str:
    return sleep_reml.summary()


# ----------------------------------------------------------------------------------------
# helpers that read the text back


def _lines(text: str) -> list[str]:
    return text.rstrip("\n").split("\n")


def _section(text: str, header: str) -> list[str]:
    """Lines after ``header`` up to the next blank line."""
    lines = _lines(text)
    i = lines.index(header)
    out = []
    for ln in lines[i + 1 :]:
        if not ln.strip():
            break
        out.append(ln)
    return out


def _vc_rows(text: str) -> tuple[list[str], list[list[str]]]:
    """Header fields and rows of the random-effects table, split at the header's column starts."""
    lines = _lines(text)
    i = lines.index("Random effects:")
    header = lines[i + 1]
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    names = header.split()
    rows = []
    for ln in lines[i + 2 :]:
        if ln.startswith("Number of obs"):
            break
        cells = [ln[s:e].strip() for s, e in zip(starts, starts[1:] + [None])]
        rows.append(cells)
    return names, rows


def _coef_rows(text: str, header: str = "Fixed effects:") -> tuple[list[str], dict[str, list[str]]]:
    block = _section(text, header)
    cols = [c for c in re.findall(r"Std\. Error|Pr\(>\|[tz]\|\)|[tz] value|\S+", block[0])]
    rows = {}
    for ln in block[1:]:
        if ln.startswith("---"):
            break
        name, rest = ln.split(maxsplit=1)
        vals = re.findall(r"< ?[\d.e+-]+|\S+", rest)
        rows[name] = vals
    return cols, rows


# ----------------------------------------------------------------------------------------
# R's number formatting


@pytest.mark.parametrize(
    "x, digits, expected",
    [
        ([612.0899, 35.0717, 654.941], 4, ["612.09", " 35.07", "654.94"]),
        ([24.7405, 5.9221, 25.5918], 4, ["24.741", " 5.922", "25.592"]),
        ([1, 10, 100], 7, ["  1", " 10", "100"]),
        ([3.26378e-06], 3, ["3.26e-06"]),
        ([123456789.0], 4, ["123456789"]),
        ([1234567890123.0], 4, ["1.235e+12"]),
        ([0.1 + 0.2], 7, ["0.3"]),
        ([-0.4634, 0.0231, 5.1793], 4, ["-0.4634", " 0.0231", " 5.1793"]),
        ([np.nan, 1.5], 4, [" NA", "1.5"]),
        ([0.0, 0.0], 4, ["0", "0"]),
    ],
)
def test_format_real_follows_r(x: list[float], digits: int, expected: list[str]) -> None:
    assert format_real(x, digits) == expected


def test_format_real_nsmall() -> None:
    assert format_real([0.07, 1.0], 7, nsmall=2) == ["0.07", "1.00"]
    assert format_real([-0.138, 1.0], 7, nsmall=3) == ["-0.138", " 1.000"]


def test_format_pval_follows_r() -> None:
    assert format_pval([1e-17, 3.26378e-06]) == ["< 2e-16", "3.26e-06"]
    assert format_pval([1e-20]) == ["<2e-16"]
    assert format_pval([0.941]) == ["0.941"]
    assert format_pval([0.00123, 0.5]) == ["0.00123", "0.50000"]
    assert format_pval([np.nan]) == ["NA"]


def test_signif_stars() -> None:
    assert signif_stars([0.0001, 0.001, 0.005, 0.03, 0.07, 0.5, np.nan]) == ["***", "***", "**", "*", ".", " ", " "]


def test_abbreviate_follows_r() -> None:
    assert abbreviate(["(Intercept)", "Days"], 6) == ["(Intr)", "Days"]
    assert abbreviate(["Reaction"], 4) == ["Rctn"]
    assert abbreviate(["(Intercept)"], 11) == ["(Intercept)"]
    out = abbreviate(["recipeB", "recipeC", "temperature"], 4)
    assert len(set(out)) == 3
    assert all(len(a) >= 4 for a in out)


# ----------------------------------------------------------------------------------------
# summary(): sleepstudy REML


def test_summary_sections_in_order(sleep_summary: str) -> None:
    lines = _lines(sleep_summary)
    assert lines[0] == "Linear mixed model fit by REML. t-tests use Satterthwaite's method ['lmerModLmerTest']"
    assert lines[1] == f"Formula: {SLEEP}"
    heads = [
        "REML criterion at convergence:",
        "Scaled residuals:",
        "Random effects:",
        "Number of obs:",
        "Fixed effects:",
        "Signif. codes:",
        "Correlation of Fixed Effects:",
    ]
    pos = [next(i for i, ln in enumerate(lines) if ln.startswith(h)) for h in heads]
    assert pos == sorted(pos)
    assert "boundary (singular)" not in sleep_summary
    assert sleep_summary.endswith("\n")


def test_summary_reml_criterion(sleep_reml: slm.LinearMixedModel, sleep_summary: str) -> None:
    line = next(ln for ln in _lines(sleep_summary) if ln.startswith("REML criterion"))
    assert float(line.split(":")[1]) == round(sleep_reml.objective, 1)
    assert "AIC" not in sleep_summary


def test_summary_scaled_residuals(sleep_reml: slm.LinearMixedModel, sleep_summary: str) -> None:
    names, values = _section(sleep_summary, "Scaled residuals: ")
    assert names.split() == ["Min", "1Q", "Median", "3Q", "Max"]
    q = np.quantile(sleep_reml.residuals("pearson", scaled=True).to_numpy(), [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose([float(v) for v in values.split()], q, atol=5e-5)


def test_summary_random_effects(sleep_reml: slm.LinearMixedModel, sleep_summary: str) -> None:
    names, rows = _vc_rows(sleep_summary)
    assert names == ["Groups", "Name", "Variance", "Std.Dev.", "Corr"]
    assert [r[0] for r in rows] == ["Subject", "", "Residual"]
    assert [r[1] for r in rows] == ["(Intercept)", "Days", ""]
    vc = sleep_reml.varcorr()
    var = vc[vc["var2"].isna()]
    np.testing.assert_allclose([float(r[2]) for r in rows], var["vcov"], atol=0.005)
    np.testing.assert_allclose([float(r[3]) for r in rows], var["sdcor"], atol=5e-4)
    np.testing.assert_allclose([float(r[3]) for r in rows], np.sqrt(var["vcov"]), atol=5e-4)
    corr = vc.loc[vc["var2"].notna(), "sdcor"].iloc[0]
    assert [r[4] for r in rows] == ["", f"{round(corr, 2):.2f}", ""]


def test_summary_groups_line(sleep_summary: str) -> None:
    assert "Number of obs: 180, groups:  Subject, 18" in _lines(sleep_summary)


def test_summary_fixed_effects(sleep_reml: slm.LinearMixedModel, sleep_summary: str) -> None:
    cols, rows = _coef_rows(sleep_summary)
    assert cols == ["Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"]
    assert list(rows) == ["(Intercept)", "Days"]
    tab = sleep_reml.coef_table()
    for name, vals in rows.items():
        est, se, df, t, p, stars = vals
        assert float(est) == pytest.approx(sleep_reml.fixef[name], abs=5e-4)
        assert float(se) == pytest.approx(sleep_reml.se[name], abs=5e-4)
        assert float(df) == pytest.approx(tab.loc[name, "df"], abs=5e-4)
        assert float(t) == pytest.approx(tab.loc[name, "t value"], abs=5e-4)
        assert stars == "***"
    assert rows["(Intercept)"][4] == "< 2e-16"
    assert rows["Days"][4] == format_pval([tab.loc["Days", "Pr(>|t|)"]])[0]
    assert re.fullmatch(r"\d\.\d\de-0\d", rows["Days"][4])
    block = _section(sleep_summary, "Fixed effects:")
    assert block[-2] == "---"
    assert block[-1] == "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"


def test_summary_fixef_correlation(sleep_reml: slm.LinearMixedModel, sleep_summary: str) -> None:
    block = _section(sleep_summary, "Correlation of Fixed Effects:")
    assert block[0].split() == ["(Intr)"]
    name, val = block[1].split()
    V = sleep_reml.vcov.to_numpy()
    assert name == "Days"
    assert float(val) == round(V[1, 0] / np.sqrt(V[0, 0] * V[1, 1]), 3)


def test_summary_column_alignment(sleep_summary: str) -> None:
    """Numbers of the coefficient table end under the end of their column names."""
    block = _section(sleep_summary, "Fixed effects:")
    header = block[0]
    for col in ("Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"):
        end = header.index(col) + len(col)
        for ln in block[1:3]:
            assert ln[end - 1] != " " and (end == len(ln) or ln[end] == " ")


# ----------------------------------------------------------------------------------------
# other models


def test_summary_ml(sleep_ml: slm.LinearMixedModel) -> None:
    s = sleep_ml.summary()
    lines = _lines(s)
    assert lines[0] == (
        "Linear mixed model fit by maximum likelihood . t-tests use Satterthwaite's method ['lmerModLmerTest']"
    )
    assert "REML criterion" not in s
    i = next(i for i, ln in enumerate(lines) if ln.split() == ["AIC", "BIC", "logLik", "deviance", "df.resid"])
    vals = lines[i + 1].split()
    m = sleep_ml
    assert [float(v) for v in vals[:4]] == [round(x, 1) for x in (m.aic, m.bic, m.loglik, m.deviance)]
    assert vals[4] == str(m.df_resid) == "174"
    assert lines[i - 1] == "" and lines[i + 2] == ""


def test_summary_uncorrelated_terms(sleep_diag: slm.LinearMixedModel) -> None:
    s = sleep_diag.summary()
    names, rows = _vc_rows(s)
    assert names == ["Groups", "Name", "Variance", "Std.Dev."]
    assert [r[0] for r in rows] == ["Subject", "Subject.1", "Residual"]
    assert [r[1] for r in rows] == ["(Intercept)", "Days", ""]
    np.testing.assert_allclose([float(r[3]) for r in rows], sleep_diag.varcorr()["sdcor"], atol=5e-4)
    assert "Number of obs: 180, groups:  Subject, 18" in _lines(s)


def test_summary_crossed(penicillin: slm.LinearMixedModel) -> None:
    s = penicillin.summary()
    names, rows = _vc_rows(s)
    assert [r[0] for r in rows] == ["plate", "sample", "Residual"]
    np.testing.assert_allclose([float(r[3]) for r in rows], penicillin.varcorr()["sdcor"], rtol=1e-3)
    assert "Number of obs: 144, groups:  plate, 24; sample, 6" in _lines(s)
    cols, coef = _coef_rows(s)
    assert list(coef) == ["(Intercept)"]
    assert float(coef["(Intercept)"][0]) == pytest.approx(penicillin.fixef.iloc[0], abs=5e-4)
    assert "Correlation of Fixed Effects" not in s


def test_summary_nested(pastes: slm.LinearMixedModel) -> None:
    s = pastes.summary()
    names, rows = _vc_rows(s)
    assert [r[0] for r in rows] == ["cask:batch", "batch", "Residual"]
    assert "Number of obs: 60, groups:  cask:batch, 30; batch, 10" in _lines(s)
    line = next(ln for ln in _lines(s) if ln.startswith("REML criterion"))
    assert float(line.split(":")[1]) == round(pastes.objective, 1)


def test_summary_singular(dyestuff2: slm.LinearMixedModel) -> None:
    assert dyestuff2.singular
    s = dyestuff2.summary()
    assert _lines(s)[-1] == "boundary (singular) fit: see help('isSingular')"
    names, rows = _vc_rows(s)
    assert float(rows[0][3]) == 0.0
    assert _lines(repr(dyestuff2))[-1] == "boundary (singular) fit: see help('isSingular')"


def test_summary_wald(sleep_reml: slm.LinearMixedModel) -> None:
    s = sleep_reml.summary(ddf="wald")
    assert _lines(s)[0] == "Linear mixed model fit by REML ['lmerMod']"
    cols, rows = _coef_rows(s)
    assert cols == ["Estimate", "Std. Error", "z value", "Pr(>|z|)"]
    tab = sleep_reml.coef_table("wald")
    for name, vals in rows.items():
        assert float(vals[0]) == pytest.approx(sleep_reml.fixef[name], abs=5e-4)
        assert float(vals[2]) == pytest.approx(tab.loc[name, "z value"], abs=5e-4)
    assert rows["(Intercept)"][3] == "< 2e-16"


def test_summary_kenward_roger_title(sleep_reml: slm.LinearMixedModel) -> None:
    try:
        s = sleep_reml.summary(ddf="kenward-roger")
    except (ImportError, NotImplementedError) as e:  # pragma: no cover - until KR lands
        pytest.skip(f"Kenward-Roger not available: {e}")
    assert _lines(s)[0].endswith("t-tests use Kenward-Roger's method ['lmerModLmerTest']")


def test_summary_bad_ddf(sleep_reml: slm.LinearMixedModel) -> None:
    with pytest.raises(slm.SparseLMMError):
        sleep_reml.summary(ddf="containment")


def test_summary_prints_optimizer_notes(sleep_reml: slm.LinearMixedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sleep_reml.optsum, "warnings", ["Model failed to converge with max|grad| = 0.01"])
    s = sleep_reml.summary()
    assert _lines(s)[-1] == "Note: Model failed to converge with max|grad| = 0.01"
    assert "Note: Model failed" in repr(sleep_reml)


# ----------------------------------------------------------------------------------------
# repr / print


def test_repr_reml(sleep_reml: slm.LinearMixedModel) -> None:
    r = repr(sleep_reml)
    assert r == str(sleep_reml)
    lines = _lines(r)
    assert lines[0] == "Linear mixed model fit by REML ['lmerMod']"
    assert lines[1] == f"Formula: {SLEEP}"
    # round(objective, 4) printed with R's 7 significant digits
    assert lines[2] == f"REML criterion at convergence: {round(sleep_reml.objective, 3)} "
    assert lines[3] == "Random effects:"
    names, rows = _vc_rows(r)
    assert names == ["Groups", "Name", "Std.Dev.", "Corr"]
    vc = sleep_reml.varcorr()
    np.testing.assert_allclose([float(x[2]) for x in rows], vc.loc[vc["var2"].isna(), "sdcor"], atol=5e-4)
    assert "Variance" not in r and "Scaled residuals" not in r and "Pr(>|t|)" not in r
    i = lines.index("Fixed Effects:")
    assert lines[i - 1] == "Number of obs: 180, groups:  Subject, 18"
    assert lines[i + 1].split() == ["(Intercept)", "Days"]
    np.testing.assert_allclose([float(v) for v in lines[i + 2].split()], sleep_reml.fixef, atol=0.005)


def test_repr_ml(sleep_ml: slm.LinearMixedModel) -> None:
    lines = _lines(repr(sleep_ml))
    assert lines[0] == "Linear mixed model fit by maximum likelihood  ['lmerMod']"
    assert lines[2].split() == ["AIC", "BIC", "logLik", "deviance", "df.resid"]
    vals = lines[3].split()
    m = sleep_ml
    np.testing.assert_allclose([float(v) for v in vals[:4]], [m.aic, m.bic, m.loglik, m.deviance], atol=5e-5)
    assert vals[4] == "174"


# ----------------------------------------------------------------------------------------
# layouts checked on stand-in models (no fitting)


def _fake_model(vc: pd.DataFrame, ngroups: dict[str, int]) -> SimpleNamespace:
    return SimpleNamespace(varcorr=lambda: vc, ngroups=ngroups, nobs=100)


def test_random_effects_three_correlated_columns_and_a_second_group() -> None:
    vc = pd.DataFrame(
        [
            ("g", "(Intercept)", None, 4.0, 2.0),
            ("g", "x", None, 1.0, 1.0),
            ("g", "z", None, 0.25, 0.5),
            ("g", "(Intercept)", "x", 0.2, 0.1),
            ("g", "(Intercept)", "z", -0.3, -0.3),
            ("g", "x", "z", 0.25, 0.5),
            ("h", "(Intercept)", None, 9.0, 3.0),
            ("Residual", None, None, 1.0, 1.0),
        ],
        columns=["grp", "var1", "var2", "vcov", "sdcor"],
    )
    m = _fake_model(vc, {"g": 10, "h": 5})
    text = "\n".join(display._vc_lines(m, 4, variance=True))
    names, rows = _vc_rows(text + "\nNumber of obs: 100")
    assert names == ["Groups", "Name", "Variance", "Std.Dev.", "Corr"]
    assert [r[0] for r in rows] == ["g", "", "", "h", "Residual"]
    lines = text.split("\n")
    # lower triangle: row x has one correlation, row z two; h and Residual none
    assert lines[2].split() == ["g", "(Intercept)", "4.00", "2.0"]
    assert lines[3].split()[-1] == "0.10"
    assert lines[4].split()[-2:] == ["-0.30", "0.50"]
    assert lines[5].split() == ["h", "(Intercept)", "9.00", "3.0"]
    assert display._groups_line(m) == "Number of obs: 100, groups:  g, 10; h, 5"


def test_coef_matrix_without_significance_has_no_legend() -> None:
    tab = pd.DataFrame(
        {"Estimate": [0.5, -0.25], "Std. Error": [1.0, 2.0], "df": [10.0, np.nan], "t value": [0.5, -0.125],
         "Pr(>|t|)": [0.63, np.nan]},
        index=["(Intercept)", "x"],
    )
    lines = display._coef_matrix(tab)
    assert len(lines) == 3
    assert not any(ln.startswith("Signif") for ln in lines)
    assert lines[2].split() == ["x", "-0.25", "2.00", "NA", "-0.125", "NA"]


def test_coef_matrix_keeps_tiny_nonzero_values_visible() -> None:
    tab = pd.DataFrame(
        {"Estimate": [1234.5, 1e-7], "Std. Error": [10.0, 1e-8], "t value": [123.45, 10.0], "Pr(>|t|)": [0.0, 1e-5]},
        index=["a", "b"],
    )
    lines = display._coef_matrix(tab)
    est_b = lines[2].split()[1]
    assert float(est_b) != 0 and "e-" in est_b


def test_fixef_correlation_omitted_for_many_coefficients() -> None:
    names = [f"x{i}" for i in range(13)]
    m = SimpleNamespace(vcov=pd.DataFrame(np.eye(13), index=names, columns=names))
    lines = display._fixef_corr_lines(m)
    assert "Correlation matrix not shown by default, as p = 13 > 12." in lines


# ----------------------------------------------------------------------------------------
# VarCorr: lme4's print(VarCorr(m), comp = , digits = ), against R's text
# (tests/reference/varcorr_reference.R -> varcorr_print.json, fits at lme4's optimum)

VC_REF = json.loads((Path(__file__).parent / "reference" / "varcorr_print.json").read_text())
VC_CASES = sorted(k for k in VC_REF if not k.startswith("_"))


def _vc_model(case: str) -> slm.LinearMixedModel:
    c = VC_REF[case]
    return fit(c["data"], c["formula"], c["REML"])


def _vc_print(vc: display.VarCorr, p: dict) -> str:
    return vc.format(p["comp"]) if p["digits"] is None else vc.format(p["comp"], p["digits"])


def _assert_same_print(got: str, want: str) -> None:
    """R's print of a value on a rounding boundary (JSON's ``stable`` false): the same lines and
    words, each number within one unit of R's last printed digit."""
    gl, wl = _lines(got), _lines(want)
    assert len(gl) == len(wl)
    for g, w in zip(gl, wl):
        gt, wt = g.split(), w.split()
        assert len(gt) == len(wt), (g, w)
        for a, b in zip(gt, wt):
            if re.fullmatch(r"-?\d+(\.\d+)?", b):
                unit = 10.0 ** -len(b.partition(".")[2])
                assert abs(float(a) - float(b)) <= unit * (1 + 1e-9), (g, w)
            else:
                assert a == b, (g, w)


def test_varcorr_reference_covers_the_cases() -> None:
    assert {"sleep_slope", "sleep_diag", "penicillin", "pastes", "sleep_quadratic"} <= set(VC_CASES)
    for case in VC_CASES:
        c = VC_REF[case]
        assert not c["singular"]
        assert c["default"] == c["prints"]["std"]["text"]  # lme4's default comp is "Std.Dev."
    stable = [p for c in VC_CASES for p in VC_REF[c]["prints"].values() if p["stable"]]
    assert len(stable) >= 60
    assert {str(p["comp"]) for p in stable} >= {"Std.Dev.", "Variance", str(["Std.Dev.", "Variance"])}
    assert {p["digits"] for p in stable} == {None, 3, 4}


@pytest.mark.parametrize("case", VC_CASES)
def test_varcorr_prints_as_lme4(case: str) -> None:
    m = _vc_model(case)
    c = VC_REF[case]
    vc = m.VarCorr()
    if c["prints"]["std"]["stable"]:
        assert str(vc) == repr(vc) == c["default"]
    else:
        _assert_same_print(str(vc), c["default"])
    for key, p in c["prints"].items():
        got = _vc_print(vc, p)
        if p["stable"]:
            assert got == p["text"], key
            digits = display.VC_DIGITS if p["digits"] is None else p["digits"]
            assert str(m.VarCorr(comp=p["comp"], digits=digits)) == p["text"], key
        else:
            _assert_same_print(got, p["text"])


@pytest.mark.parametrize("case", VC_CASES)
def test_summary_random_effects_are_lme4s_varcorr_print(case: str) -> None:
    """The summary prints formatVC(comp = c("Variance", "Std.Dev."), digits = 4), print() "Std.Dev."."""
    m = _vc_model(case)
    prints = VC_REF[case]["prints"]
    summary_block = _section(m.summary().replace("\nNumber of obs", "\n\nNumber of obs"), "Random effects:")
    short_block = _section(repr(m).replace("\nNumber of obs", "\n\nNumber of obs"), "Random effects:")
    assert summary_block == _lines(m.VarCorr().format(["Variance", "Std.Dev."], 4))
    assert short_block == _lines(m.VarCorr().format("Std.Dev.", 4))
    for block, key in ((summary_block, "both_var_first_digits4"), (short_block, "std_digits4")):
        text = "\n".join(block) + "\n"
        if prints[key]["stable"]:
            assert text == prints[key]["text"]
        else:
            _assert_same_print(text, prints[key]["text"])


@pytest.mark.parametrize("case", VC_CASES)
def test_varcorr_as_data_frame(case: str) -> None:
    m = _vc_model(case)
    vc = m.VarCorr()
    df = vc.as_data_frame()
    pd.testing.assert_frame_equal(df, m.varcorr())
    r = VC_REF[case]["varcorr"]
    assert list(df["grp"]) == r["grp"]
    assert [None if pd.isna(v) else v for v in df["var1"]] == r["var1"]
    assert [None if pd.isna(v) else v for v in df["var2"]] == r["var2"]
    np.testing.assert_allclose(df["vcov"], r["vcov"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(df["sdcor"], r["sdcor"], rtol=1e-5, atol=1e-7)
    df.loc[0, "vcov"] = -1.0  # a copy
    assert vc.as_data_frame().loc[0, "vcov"] == m.varcorr().loc[0, "vcov"]


def test_varcorr_components(sleep_reml: slm.LinearMixedModel) -> None:
    vc = sleep_reml.VarCorr()
    assert vc.comp == ("Std.Dev.",) and vc.digits == 5
    vcd = sleep_reml.varcorr()
    assert vc.sigma == pytest.approx(sleep_reml.sigma)
    np.testing.assert_allclose(vc.stddev["Subject"], vcd.loc[vcd["var2"].isna(), "sdcor"].iloc[:2])
    assert list(vc.stddev["Subject"].index) == ["(Intercept)", "Days"]
    C = vc.correlation["Subject"]
    assert C.loc["Days", "(Intercept)"] == C.loc["(Intercept)", "Days"] == vcd["sdcor"].iloc[2]
    assert np.all(np.diag(C) == 1)
    both = sleep_reml.VarCorr(comp=("Variance", "Std.Dev."))
    assert both.comp == ("Variance", "Std.Dev.")
    assert str(both) == vc.format(["Var", "Std"])
    assert _lines(str(both))[0].split() == ["Groups", "Name", "Variance", "Std.Dev.", "Corr"]


@pytest.mark.parametrize(
    "comp", ["sd", "variance", "", [], ["Variance", "Variance"], ["Var", "Variance"], 3, None, [1, "Variance"]]
)
def test_varcorr_bad_comp_names_the_argument(sleep_reml: slm.LinearMixedModel, comp: object) -> None:
    with pytest.raises(slm.ArgumentError, match="comp"):
        sleep_reml.VarCorr(comp=comp)  # type: ignore[arg-type]
    if comp is not None:  # format(comp=None) is the object's own comp
        with pytest.raises(slm.ArgumentError, match="comp"):
            sleep_reml.VarCorr().format(comp)  # type: ignore[arg-type]


@pytest.mark.parametrize("digits", [0, 23, 2.0, "5", True])
def test_varcorr_bad_digits_names_the_argument(sleep_reml: slm.LinearMixedModel, digits: object) -> None:
    with pytest.raises(slm.ArgumentError, match="digits"):
        sleep_reml.VarCorr(digits=digits)  # type: ignore[arg-type]
    with pytest.raises(slm.ArgumentError, match="digits"):
        sleep_reml.VarCorr().format(digits=digits)  # type: ignore[arg-type]
