"""Grammar of lme4 formulas: parsing, expansion, and the designs lme4 builds for them."""

import numpy as np
import pandas as pd
import pytest
from conftest import EXTRA, load_data

import sparselmm as slm
from sparselmm.spec.formula import parse_formula


def bars(f):
    return [(b.lhs, b.group) for b in parse_formula(f).bars]


@pytest.mark.parametrize(
    "formula, fixed, expected",
    [
        ("y ~ x + (1 | g)", "x", [("1", "g")]),
        ("y ~ x + (x | g)", "x", [("x", "g")]),
        ("y ~ (1 + x + z | g)", "1", [("1 + x + z", "g")]),
        ("y ~ 1 + (0 + x | g)", "1", [("0 + x", "g")]),
        ("y ~ x + (x - 1 | g)", "x", [("x - 1", "g")]),
        ("y ~ x + (x || g)", "x", [("1", "g"), ("0 + x", "g")]),
        ("y ~ (1 + x + z || g)", "1", [("1", "g"), ("0 + x", "g"), ("0 + z", "g")]),
        ("y ~ (0 + x + z || g)", "1", [("0 + x", "g"), ("0 + z", "g")]),
        ("y ~ 1 + (1 | a/b)", "1", [("1", "b:a"), ("1", "a")]),
        ("y ~ 1 + (1 | a/b/c)", "1", [("1", "c:b:a"), ("1", "b:a"), ("1", "a")]),
        ("y ~ 1 + (1 | a:b)", "1", [("1", "a:b")]),
        ("y ~ x + (1 | a) + (1 | b)", "x", [("1", "a"), ("1", "b")]),
        ("y ~ x + (1 | g) + (0 + x | g)", "x", [("1", "g"), ("0 + x", "g")]),
        ("y ~ (0 + f | g)", "1", [("0 + f", "g")]),
        ("y~x+(1|g)", "x", [("1", "g")]),  # no spaces, as R users often write
        ("y ~ a * b + I(x^2) + log(x) + (1 | g)", "a * b + I(x^2) + log(x)", [("1", "g")]),
        ("y ~ 0 + x + (1 | g)", "0 + x", [("1", "g")]),
        ("y ~ x - 1 + (1 | g)", "x - 1", [("1", "g")]),
        ("y ~ (1 | g) + x", "x", [("1", "g")]),
    ],
)
def test_parse(formula, fixed, expected):
    pf = parse_formula(formula)
    assert pf.response == "y"
    assert pf.fixed == fixed
    assert bars(formula) == expected


@pytest.mark.parametrize(
    "formula, match, caret_at",
    [
        ("y ~ x + (1 | g", "never closed", 8),
        ("y ~ x + 1 | g)", "without a matching", 13),
        ("y ~ x + (1 | )", "without a grouping factor", None),
        ("y ~ x + ( | g)", "without a left side", None),
        ("y x + (1 | g)", "needs '~'", None),
        ("~ x + (1 | g)", "no response", None),
        ("y ~ x + (1 | g + h)", "make it a column|must be a column", None),
        ("y ~ x + (1 | factor(g))", "make it a column|must be a column", None),
        ("y ~ x - (1 | g)", "cannot be subtracted", None),
        ("y ~ x * (1 | g)", "whole term", None),
        ("y ~ x + foo(1 | g)", "unknown covariance structure 'foo'", None),
    ],
)
def test_syntax_errors_point_at_the_place(formula, match, caret_at):
    with pytest.raises(slm.FormulaError, match=match) as ei:
        parse_formula(formula)
    msg = str(ei.value)
    assert formula in msg  # the formula is shown
    assert "^" in msg.splitlines()[-1]  # with a caret line under it
    if caret_at is not None:
        assert msg.splitlines()[-1].index("^") - 2 == caret_at


def _check_design(d, rec):
    assert d.X_names == rec["X_names"]
    assert list(d.Zt.shape) == rec["Zt_dim"]
    np.testing.assert_array_equal(d.theta_start, rec["theta"])
    lower = [-np.inf if v is None else v for v in rec["lower"]]
    np.testing.assert_array_equal(d.lower, lower)
    assert list(d.Gp) == rec["Gp"]
    assert [(g, c) for g, c in d.cnms] == [(c["group"], c["columns"]) for c in rec["cnms"]]


@pytest.mark.parametrize("case", sorted(EXTRA["formula_designs"]))
def test_grammar_designs_match_lme4(case):
    """R-verbatim formulas give lme4's lFormula design (X names, Zt, θ start, bounds, Gp, cnms)."""
    rec = EXTRA["formula_designs"][case]
    data = load_data(rec["dataset"])
    if rec["design_with_checks_ignored"]:
        # lme4 refuses this model (as many random effects as observations); so do we
        with pytest.raises(slm.ModelSpecError, match="random effects"):
            slm.design(rec["formula"], data)
        return
    _check_design(slm.design(rec["formula"], data), rec)


def test_factor_slope_columns():
    g = load_data("grocery")
    d = slm.design("price ~ 1 + (0 + store | item)", pd.concat([g, g]))  # 80 obs > 40 effects
    assert d.cnms == [("item", ["storeA", "storeB", "storeC", "storeD"])]
    assert len(d.theta_start) == 10


def test_r_style_names_for_functions_and_interactions():
    df = pd.DataFrame(
        {
            "y": np.arange(12.0) ** 1.5,
            "x": np.arange(1.0, 13.0),
            "f": list("abc") * 4,
            "g": list("uuvvwwuuvvww"),
        }
    )
    d = slm.design("y ~ f * x + I(x^2) + log(x) + (1 | g)", df)
    assert d.X_names == ["(Intercept)", "fb", "fc", "x", "I(x^2)", "log(x)", "fb:x", "fc:x"]
    np.testing.assert_allclose(d.X[:, d.X_names.index("I(x^2)")], df["x"] ** 2)
    np.testing.assert_allclose(d.X[:, d.X_names.index("log(x)")], np.log(df["x"]))


def test_ordered_categorical_keeps_its_reference_level():
    df = pd.DataFrame({"y": np.arange(9.0), "t": pd.Categorical(list("hml") * 3, categories=["l", "m", "h"]),
                       "g": list("aaabbbccc")})
    assert slm.design("y ~ t + (1 | g)", df).X_names == ["(Intercept)", "tm", "th"]


def test_integer_grouping_factor_is_categorical():
    df = load_data("sleepstudy").assign(S=lambda d: d["Subject"].astype(int))
    d1 = slm.design("Reaction ~ Days + (1 | S)", df)
    d2 = slm.design("Reaction ~ Days + (1 | Subject)", df)
    assert d1.ngroups == {"S": 18}
    assert (d1.Zt != d2.Zt).nnz == 0


def test_dotted_column_names():
    df = load_data("sleepstudy").rename(columns={"Days": "days.n"})
    d = slm.design("Reaction ~ days.n + (days.n | Subject)", df)
    assert d.X_names == ["(Intercept)", "days.n"]
    assert d.cnms == [("Subject", ["(Intercept)", "days.n"])]


# ---- back-quoted names, '~' and '|' in the wrong place ------------------------------------


def test_backquoted_names_are_names_whatever_they_hold():
    pf = parse_formula("`y|z` ~ `x-y` + `a(b` + (`u+v` | `my g`) + (1 | `g|h`:k) + (`x-y` || `a/b`)")
    assert pf.response == "`y|z`"
    assert pf.fixed == "`x-y` + `a(b`"
    assert bars(pf.formula) == [
        ("`u+v`", "my g"),
        ("1", "g|h:k"),
        ("1", "a/b"),
        ("0 + `x-y`", "a/b"),
    ]
    assert [b.factors for b in parse_formula("y ~ x + (1 | `a`/`b c`)").bars] == [("b c", "a"), ("a",)]


def test_strings_hold_no_operators():
    pf = parse_formula("y ~ C(f, Treatment('|(')) + (1 | g)")
    assert pf.fixed == "C(f, Treatment('|('))" and bars(pf.formula) == [("1", "g")]


def test_fragments_keep_their_place_in_the_formula():
    f = "log(y) ~ x + I(z^2) - 1 + (1 + x || g) + (0 + z | h)"
    frags = parse_formula(f).fragments
    assert [(fr.role, fr.text) for fr in frags] == [
        ("response", "log(y)"),
        ("fixed", "x"),
        ("fixed", "I(z^2)"),
        ("fixed", "1"),
        ("bar", "1 + x"),
        ("bar", "0 + z"),
    ]
    assert all(f[fr.start : fr.start + len(fr.text)] == fr.text for fr in frags)


@pytest.mark.parametrize(
    "formula, match, at",
    [
        ("y|z ~ x + (1 | g)", "the response cannot contain '[|]'; .* back-quotes: `y[|]z`", "|"),
        ("(y | z) ~ x + (1 | g)", "the response cannot contain '[|]'", "|"),
        ("log(y ~ 1) ~ x + (1 | g)", "the response cannot contain '~'", "~"),
        ("y ~ (x ~ z | g)", "the left side of a bar term cannot contain '~'", "~ z"),
        ("y ~ (x ~ 1 || g)", "the left side of a bar term cannot contain '~'", "~ 1"),
        ("y ~ ((x | z) | g)", "the left side of a bar term cannot contain '[|]'", "| z"),
        ("y ~ I(x ~ z) + (1 | g)", "a formula has one '~'", "~ z"),
        ("log(y ~ x + (1 | g))", "cannot be inside parentheses", "~"),
        ("y ~ `x + (1 | g)", "unclosed back-quoted name", "`"),
        ("y ~ C(f, Treatment('b)) + (1 | g)", "unclosed string", "'"),
        ("y ~ `` + (1 | g)", "empty back-quoted name", "`"),
        ("y ~ (x ^ || g)", r"cannot read the left side 'x \^' of a '\|\|' term: Operator", "x ^"),
        ("y ~ (1 | g + `h`)", "must be a column name|make it a column", "g +"),
    ],
)
def test_tilde_and_bar_in_the_wrong_place_point_at_it(formula, match, at):
    with pytest.raises(slm.FormulaError, match=match) as ei:
        parse_formula(formula)
    lines = str(ei.value).splitlines()
    assert lines[-2] == f"  {formula}"
    assert lines[-1].index("^") - 2 == formula.index(at)


def test_tilde_in_a_bar_term_is_a_formula_error_not_a_traceback():
    df = pd.DataFrame({"y": np.arange(12.0), "x": np.arange(12.0) % 5, "z": np.arange(12.0) % 3, "g": list("aabbccddeeff")})
    for f in ("y ~ (x ~ z | g)", "y|z ~ x + (1 | g)", "y ~ ((x | z) | g)"):
        with pytest.raises(slm.FormulaError):
            slm.lmer(f, df)


def test_parse_formula_is_remembered():
    f = "y ~ `x-y` + (1 | `my g`)"
    assert parse_formula(f) is parse_formula(f)
