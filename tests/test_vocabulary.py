"""The closed vocabulary of formulas: what is refused (never evaluated), what works, and how
the evaluation is kept away from Python's builtins and the caller's frame."""

from __future__ import annotations

import os
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import load_data

import sparselmm as slm
from sparselmm.cli import main
from sparselmm.spec.vocabulary import VOCABULARY, ClosedSpec, check, namespace, python_name, to_formulaic, translate


@pytest.fixture
def ss():
    return load_data("sleepstudy").copy()


def _caret_col(msg: str) -> int:
    """Column of the caret under the formula (the message's last line, indented by 2)."""
    return msg.splitlines()[-1].index("^") - 2


def refused(formula: str, data: pd.DataFrame, match: str) -> str:
    with pytest.raises(slm.FormulaError, match=match) as ei:
        slm.lmer(formula, data)
    msg = str(ei.value)
    assert formula in msg.splitlines()[-2]  # the formula is shown, with a caret under it
    return msg


# ---- code execution is refused, never run -----------------------------------------------


def test_import_and_getpid_never_run(ss, monkeypatch):
    calls = []
    monkeypatch.setattr(os, "getpid", lambda: calls.append(1) or 1)
    f = "Reaction ~ I(__import__('os').getpid()) + (1 | Subject)"
    msg = refused(f, ss, r"attribute access \('.getpid'\)")
    assert _caret_col(msg) == f.index(".getpid")
    assert calls == []
    msg = refused("Reaction ~ I(__import__('os')) + (1 | Subject)", ss, "function '__import__' is not in the formula vocabulary")


def test_open_never_runs(ss, tmp_path):
    marker = tmp_path / "marker.txt"
    for f in (
        f"Reaction ~ I(len(open('{marker}', 'w'))) + (1 | Subject)",
        f"Reaction ~ Days + (1 + I(len(open('{marker}', 'w'))) | Subject)",
        f"I(len(open('{marker}', 'w'))) ~ Days + (1 | Subject)",
    ):
        msg = refused(f, ss, "function 'len' is not in the formula vocabulary")
        assert _caret_col(msg) == f.index("len(")
    assert not marker.exists()


@pytest.mark.parametrize("marker_in", ["response", "fixed"])
def test_cli_refuses_code_with_one_error_and_exit_1(tmp_path, capsys, marker_in):
    df = load_data("sleepstudy")
    csv = tmp_path / "sleep.csv"
    df.to_csv(csv, index=False)
    marker = tmp_path / "marker.txt"
    hostile = f"I(len(open('{marker}', 'w')))"
    formula = f"{hostile} ~ Days + (1 | Subject)" if marker_in == "response" else f"Reaction ~ {hostile} + (1 | Subject)"
    assert main(["fit", str(csv), formula]) == 1
    out = capsys.readouterr()
    assert out.out == ""
    lines = out.err.splitlines()
    # one line: the error, the formula and where in it (the caret picture, joined by the CLI)
    assert len(lines) == 1
    assert lines[0].startswith("sparselmm: error: function 'len' is not in the formula vocabulary")
    assert lines[0].endswith(f": {formula} (at position {formula.index('len(')}: 'l')")
    assert "Traceback" not in out.err
    assert not marker.exists()


def test_cli_refuses_attribute_access(tmp_path, capsys):
    csv = tmp_path / "sleep.csv"
    load_data("sleepstudy").to_csv(csv, index=False)
    assert main(["fit", str(csv), "Reaction ~ I(__import__('os').getpid()) + (1 | Subject)"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("sparselmm: error: attribute access ('.getpid') is not allowed in a formula")
    assert len(err.splitlines()) == 1 and "Traceback" not in err


# ---- each refused construct, named, with the caret under it -------------------------------


@pytest.mark.parametrize(
    "term, match, at",
    [
        ("np.log(Days + 1)", r"attribute access \('np.log'\) is not allowed in a formula; write log\(...\)", "np.log"),
        ("I(Days.real)", "'Days.real' is not a column of the data, and attribute access is not allowed", "Days.real"),
        ("I(Days).real", r"attribute access \('.real'\)", ".real"),
        ("I('a'.upper())", r"attribute access \('.upper'\)", ".upper"),
        ("I(Days.__class__)", "attribute access is not allowed", "Days.__class__"),
        ("Days[0]", r"subscripts \('\['\)", "["),
        ("I(Days)[0]", r"subscripts \('\['\)", "["),
        ("I([d for d in Days])", r"subscripts \('\['\)", "["),
        ("I((d for d in Days))", "Python's 'for' is not part of the formula vocabulary", "for"),
        ("I((lambda: 1)())", "Python's 'lambda' is not part of the formula vocabulary", "lambda"),
        ("I(lambda x: x)", "Python's 'lambda'", "lambda"),
        ("I((a := 2))", "assignment ':=' is not allowed", ":="),
        ("I(*Days)", r"starred arguments \('\*x'\)", "*"),
        ("I(**Days)", r"'\*\*' unpacking", "Days"),
        ("I(f'{Days}')", "f-strings", "f'"),
        ("{Days + 1}", "braces", "{"),
        ("I(Days if True else 1)", "Python's 'if'", "if"),
        ("I(__builtins__)", "'__builtins__' is neither a column of the data nor a word of the formula vocabulary", "__b"),
        ("I(Days, _state={})", "braces", "{"),
        ("scale(Days, _context=1)", "the argument '_context' is not allowed", "_context"),
        ("gamma(Days)", "function 'gamma' is not in the formula vocabulary", "gamma"),
        ("lgo(Days)", "function 'lgo' is not in the formula vocabulary; did you mean 'log'", "lgo"),
        ("trunc(Days)", "function 'trunc' is not in the formula vocabulary", "trunc"),
        ("Q('Days')", "function 'Q' is not in the formula vocabulary", "Q("),
        ("I(Days)(1)", "only the functions of the formula vocabulary can be called", "I("),
        ("I(Days & 1)", "logical operator '&'", "&"),
        ("I(1 < Days < 3)", "chained comparisons", "Days <"),
        ("I(Days<-2)", "assignment '<-'", "<-"),
        ("I(Days %% 2)", "the operator '%%' is not in the formula vocabulary", "%%"),
        ("I(Days // 2)", "'//' is not an operator of formulas", "//"),
        ("Days > 2", r"must be inside I\(\)", ">"),
        ("log", r"'log' is a function of the formula vocabulary, not a column of the data; call it, like log\(x\)", "log"),
        ("I(Days $ x)", "element access", "$"),
        ("I(Days * 0x10)", "cannot read the number '0x10'", "0x10"),
        ("I(Days ~ 1)", "a formula has one '~'", "~"),
        ("I(Days:Days)", "formula operator", ":D"),
    ],
)
def test_refused_constructs(ss, term, match, at):
    f = f"Reaction ~ {term} + (1 | Subject)"
    msg = refused(f, ss, match)
    assert _caret_col(msg) == f.index(at, len("Reaction ~ "))


def test_unknown_column_in_a_call_suggests_near_names(ss):
    f = "Reaction ~ log(Dayz + 1) + (1 | Subject)"
    msg = refused(f, ss, "column 'Dayz' in formula .* is not in the data; did you mean 'Days'")
    assert _caret_col(msg) == f.index("Dayz")


def test_refused_in_a_bar_term_and_the_response(ss):
    f = "Reaction ~ Days + (np.log(Days + 1) | Subject)"
    assert _caret_col(refused(f, ss, "attribute access")) == f.index("np.log")
    f = "Reaction ~ Days + (I(Days)[0] || Subject)"
    assert _caret_col(refused(f, ss, "subscripts")) == f.index("[")
    f = "exp(Reaction.real) ~ Days + (1 | Subject)"
    assert _caret_col(refused(f, ss, "attribute access")) == f.index("Reaction.real")


def test_refused_with_dask(ss):
    dd = pytest.importorskip("dask.dataframe")
    from sparselmm.dask_model import lmer_dask

    with pytest.raises(slm.FormulaError, match="function '__import__'"):
        lmer_dask("Reaction ~ I(__import__('os')) + (1 | Subject)", dd.from_pandas(ss, npartitions=2))


# ---- valid input that used to be refused ----------------------------------------------------


def _same_fit(f1: str, d1: pd.DataFrame, f2: str, d2: pd.DataFrame, names: list[str] | None = None) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m1, m2 = slm.lmer(f1, d1), slm.lmer(f2, d2)
    assert m1.objective == pytest.approx(m2.objective, rel=1e-12)
    np.testing.assert_allclose(m1.fixef.to_numpy(), m2.fixef.to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(m1.theta, m2.theta, rtol=1e-8)
    if names is not None:
        assert list(m1.fixef.index) == names


@pytest.mark.parametrize("name", ["e", "pi", "np", "True", "None", "lambda", "len", "log", "C", "__x"])
def test_columns_with_special_names_are_columns(ss, name):
    """R's rule: a name that is a column of the data is that column (identical fit to the same
    values in a column 'x'), plain and back-quoted, as a term, inside calls and in a bar term."""
    d1 = ss.assign(**{name: ss["Days"]})
    d2 = ss.assign(x=ss["Days"])
    _same_fit(f"Reaction ~ {name} + (1 | Subject)", d1, "Reaction ~ x + (1 | Subject)", d2, ["(Intercept)", name])
    _same_fit(f"Reaction ~ `{name}` + (1 | Subject)", d1, "Reaction ~ x + (1 | Subject)", d2, ["(Intercept)", name])
    q = name if not name.startswith("_") else f"`{name}`"
    _same_fit(
        f"Reaction ~ I({q} * 2) + log({q} + 1) + (`{name}` | Subject)",
        d1,
        "Reaction ~ I(x * 2) + log(x + 1) + (x | Subject)",
        d2,
        ["(Intercept)", f"I({q} * 2)", f"log({q} + 1)"],
    )


def test_function_and_column_of_the_same_name(ss):
    d1 = ss.assign(log=ss["Days"] + 1.0)
    d2 = ss.assign(x=ss["Days"] + 1.0)
    _same_fit("Reaction ~ log(log) + (1 | Subject)", d1, "Reaction ~ log(x) + (1 | Subject)", d2, ["(Intercept)", "log(log)"])


@pytest.mark.parametrize(
    "f1, f2",
    [
        ("`y|z` ~ Days + (1 | Subject)", "Reaction ~ Days + (1 | Subject)"),
        ("Reaction ~ `x-y` + (`x-y` | Subject)", "Reaction ~ Days + (Days | Subject)"),
        ("Reaction ~ I(`x-y` * 2) + (1 | Subject)", "Reaction ~ I(Days * 2) + (1 | Subject)"),
        ("Reaction ~ I(`y|z` - Reaction + `x-y`) + (1 | Subject)", "Reaction ~ I(Reaction - Reaction + Days) + (1 | Subject)"),
        ("log(`y|z`) ~ `x-y` + (`x-y` || `g|h`)", "log(Reaction) ~ Days + (Days || Subject)"),
        ("Reaction ~ Days + (1 | `g|h`)", "Reaction ~ Days + (1 | Subject)"),
        ("Reaction ~ Days + (1 | `my group`:`early-late`)", "Reaction ~ Days + (1 | Subject:half)"),
        ("Reaction ~ Days + (1 | `my group`/`early-late`)", "Reaction ~ Days + (1 | Subject/half)"),
    ],
)
def test_backquoted_names_with_operators_and_bars(ss, f1, f2):
    ss["half"] = np.where(ss["Days"] < 5, "early", "late")
    d1 = ss.assign(
        **{"y|z": ss["Reaction"], "x-y": ss["Days"], "g|h": ss["Subject"], "my group": ss["Subject"], "early-late": ss["half"]}
    )
    _same_fit(f1, d1, f2, ss)


def test_backquoted_names_get_r_names(ss):
    d = ss.assign(**{"x-y": ss["Days"], "g|h": ss["Subject"]})
    m = slm.lmer("Reaction ~ I(`x-y` * 2) + (`x-y` | `g|h`)", d)
    assert list(m.fixef.index) == ["(Intercept)", "I(`x-y` * 2)"]
    assert m.ngroups == {"g|h": 18}


@pytest.mark.parametrize(
    "number, value",
    [("1e3", 1e3), ("1.5E-3", 1.5e-3), (".5", 0.5), ("2.", 2.0), ("1e+2", 100.0), ("007", 7.0)],
)
def test_numbers_in_scientific_notation_are_numbers(ss, number, value):
    d = slm.design(f"Reaction ~ I(Days * {number}) + (1 | Subject)", ss)
    np.testing.assert_allclose(d.X[:, 1], ss["Days"].to_numpy() * value, rtol=1e-15)


# ---- the vocabulary: every word works ----------------------------------------------------------


@pytest.mark.parametrize(
    "term, expected",
    [
        ("log(Days + 1)", lambda x: np.log(x + 1)),
        ("log10(Days + 1)", lambda x: np.log10(x + 1)),
        ("log2(Days + 1)", lambda x: np.log2(x + 1)),
        ("exp(Days / 10)", lambda x: np.exp(x / 10)),
        ("exp2(Days)", lambda x: 2.0**x),
        ("exp10(Days / 10)", lambda x: 10.0 ** (x / 10)),
        ("abs(Days - 4.5)", lambda x: np.abs(x - 4.5)),
        ("I(Days^2)", lambda x: x**2),
        ("I(Days**2)", lambda x: x**2),
        ("I(-Days / 2 + 1)", lambda x: -x / 2 + 1),
        ("I(Days > 4)", lambda x: (x > 4).astype(float)),
        ("I(Days != 4)", lambda x: (x != 4).astype(float)),
        ("center(Days)", lambda x: x - x.mean()),
        ("scale(Days)", lambda x: (x - x.mean()) / x.std(ddof=1)),
        ("scale(Days, center=False)", None),
        ("standardize(Days)", lambda x: (x - x.mean()) / x.std(ddof=0)),
    ],
)
def test_pointwise_and_stateful_words(ss, term, expected):
    d = slm.design(f"Reaction ~ {term} + (1 | Subject)", ss)
    assert d.X.shape[1] == 2
    if expected is not None:
        np.testing.assert_allclose(d.X[:, 1], expected(ss["Days"].to_numpy(dtype=float)), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "term, ncol",
    [
        ("poly(Days, 2)", 2),
        ("poly(Days, degree=3)", 3),
        ("poly(Days, 2, raw=True)", 2),
        ("bs(Days)", 3),
        ("bs(Days, df=4)", 4),
        ("cr(Days, df=3)", 2),
        ("cs(Days, df=3)", 2),
        ("cc(Days, df=4)", 3),
        ("C(f)", 2),
        ("C(f, Treatment('b'))", 2),
        ("C(f, Treatment(reference='b'))", 2),
        ("C(f, Sum)", 2),
        ("C(f, Sum())", 2),
        ("C(f, Helmert)", 2),
        ("C(f, Poly)", 2),
        ("C(f, Diff)", 2),
        ("C(f, contr.treatment)", 2),
        ("C(f, contr.sum)", 2),
        ("C(f, contr.helmert)", 2),
        ("C(f, contr.poly)", 2),
        ("C(f, contr.diff)", 2),
        ("Days %in% f", 3),  # R's nesting: Days:fa, Days:fb, Days:fc (no f main effect)
        ("f/Days", 5),
        ("(Days + f)^2", 5),
    ],
)
def test_basis_factor_and_contrast_words(ss, term, ncol):
    ss["f"] = np.where(ss["Days"] < 3, "a", np.where(ss["Days"] < 6, "b", "c"))
    d = slm.design(f"Reaction ~ {term} + (1 | Subject)", ss)
    assert d.X.shape[1] == 1 + ncol


def test_treatment_reference_level(ss):
    ss["f"] = np.where(ss["Days"] < 3, "a", np.where(ss["Days"] < 6, "b", "c"))
    d = slm.design("Reaction ~ C(f, Treatment('b')) + (1 | Subject)", ss)
    assert d.X_names == ["(Intercept)", 'C(f, Treatment("b"))a', 'C(f, Treatment("b"))c']  # R deparses strings in "
    np.testing.assert_array_equal(d.X[:, 1], (ss["f"] == "a").to_numpy(dtype=float))
    d = slm.design("Reaction ~ C(f, contr.sum) + (1 | Subject)", ss)
    assert d.X_names[1:] == ["C(f, contr.sum)1", "C(f, contr.sum)2"]  # R's spelling and R's numbering


def test_every_function_of_the_table_is_tested():
    tested = {
        "log", "log10", "log2", "exp", "exp2", "exp10", "abs", "I", "center", "scale", "standardize", "poly", "bs", "cr",
        "cs", "cc", "C", "Treatment", "Sum", "Helmert", "Poly", "Diff", "contr.treatment", "contr.sum", "contr.helmert",
        "contr.poly", "contr.diff",
        # R's words, against lme4 in tests/test_formulas.py (the reference table)
        "factor", "as.factor", "as.numeric", "log1p", "expm1", "sqrt", "sin", "cos", "tan", "sign", "floor", "ceiling",
        "round", "pmin", "pmax", "relevel", "ns", "ordered", "contr.SAS", "c",
    }
    assert {n for n, w in VOCABULARY.items() if w.kind == "function"} == tested
    assert {n for n, w in VOCABULARY.items() if w.kind == "constant"} == {"True", "False", "TRUE", "FALSE", "T", "F", "pi"}


# ---- the closed evaluation ------------------------------------------------------------------


def test_namespace_is_the_vocabulary_only():
    ns = namespace()
    assert set(ns) == {python_name(n) for n, w in VOCABULARY.items() if not w.source.startswith("python:")}
    assert "__builtins__" not in ns and "np" not in ns and "open" not in ns
    assert ns["_contr_sum_"] is not None and callable(ns["log"])
    with pytest.raises(TypeError):
        ns["open"] = open  # read-only


FORMULAS_USING_THE_VOCABULARY = [  # (formula, a coefficient it must have)
    ("Reaction ~ log(Days + 1) + exp10(Days / 10) + abs(Days - 4) + I(Days^2 > 3) + (1 | Subject)", "abs(Days - 4)"),
    ("Reaction ~ scale(Days, center=False) + poly(Days, 2, raw=True) + C(f, contr.sum) + (1 | Subject)", "C(f, contr.sum)1"),
    ("Reaction ~ bs(Days, df=4) + C(f, Treatment('b')) + (log(Days + 1) || Subject)", 'C(f, Treatment("b"))a'),
    ("log(Reaction) ~ I(`x-y` * 2) + I(True * 3) + (1 | Subject)", "I(True * 3)"),
]


@pytest.mark.parametrize("formula, coefficient", FORMULAS_USING_THE_VOCABULARY)
def test_formulaic_never_needs_the_builtins(ss, formula, coefficient, monkeypatch):
    """Every eval formulaic makes runs with no builtins at all, and gives the same fit and
    prediction: no name that passes the check is resolved past the data and the vocabulary."""
    import builtins

    import formulaic.utils.stateful_transforms as st
    import formulaic.utils.variables as fv

    ss["f"] = np.where(ss["Days"] < 3, "a", np.where(ss["Days"] < 6, "b", "c"))
    ss["x-y"] = ss["Days"]
    if "I(True" in formula:  # a column named True is that column (so not in raw = True elsewhere)
        ss["True"] = ss["Days"] ** 2 * 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m0 = slm.lmer(formula, ss)
        p0 = m0.predict(newdata=ss)
    evals = []

    def strict_eval(code, globals_=None, locals_=None):
        evals.append(1)
        assert not globals_  # formulaic passes {}: Python would put the builtins there
        return builtins.eval(code, {"__builtins__": {}}, locals_)

    monkeypatch.setattr(st, "eval", strict_eval, raising=False)
    monkeypatch.setattr(fv, "eval", strict_eval, raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m1 = slm.lmer(formula, ss)
        p1 = m1.predict(newdata=ss)
    assert evals  # formulaic did evaluate expressions, under the strict eval
    assert coefficient in m1.fixef.index
    assert m1.objective == m0.objective
    np.testing.assert_array_equal(m1.fixef.to_numpy(), m0.fixef.to_numpy())
    np.testing.assert_array_equal(p1.to_numpy(), p0.to_numpy())


def test_the_callers_globals_are_not_reachable(ss):
    """formulaic's default context is the calling frame (its globals and, through them, the
    builtins); the context sparselmm gives it is the vocabulary: a name that only the frame
    knows is not found even when an expression gets past the check (here: called directly)."""
    from formulaic import model_matrix

    frame_only = warnings  # a name of the calling frame, as np and pd are of modelframe's
    assert np.all(model_matrix("0 + I(frame_only is not None)", ss).to_numpy() == 1)  # the hazard
    with pytest.raises(Exception, match="frame_only"):
        model_matrix("0 + I(frame_only is not None)", ss, context=namespace())
    with pytest.raises(slm.FormulaError, match="column 'pd' in formula .* is not in the data"):
        slm.lmer("Reaction ~ I(pd) + (1 | Subject)", ss)
    with pytest.raises(slm.FormulaError, match="column 'np' in formula .* is not in the data"):
        check("I(np)", ["x"])  # np is a name like any other: a column, or nothing


def test_prediction_is_closed_too(ss):
    """New data's matrix is built from the used columns only, under the fit's aliases, with the
    vocabulary as context: another column named like a word does not shadow it, a missing
    column is an error (never a lookup in formulaic's transforms or the builtins)."""
    ss["True"] = ss["Days"] * 1.0
    m = slm.lmer("Reaction ~ log(Days + 1) + I(True * 2) + (1 | Subject)", ss)
    assert isinstance(m.design.fixed_spec, ClosedSpec)
    p = m.predict(newdata=ss)
    np.testing.assert_allclose(p.to_numpy(), m.predict().to_numpy(), rtol=1e-12)
    shadow = ss.assign(log="not a function", I=0.0, open=1.0)
    np.testing.assert_allclose(m.predict(newdata=shadow).to_numpy(), p.to_numpy(), rtol=1e-12)
    with pytest.raises(slm.DataError, match=r"lack column\(s\) \['True'\]"):
        m.predict(newdata=ss.drop(columns=["True"]))


def test_closed_spec_survives_pickling(ss):
    ss["None"] = ss["Days"] * 1.0
    d = slm.design("Reaction ~ log(None + 1) + exp10(Days / 10) + (1 | Subject)", ss)
    spec = pickle.loads(pickle.dumps(d.fixed_spec))
    np.testing.assert_allclose(spec.get_model_matrix(ss).to_numpy(), d.X, rtol=1e-12)


def test_exp10_is_ten_to_the_power(ss):
    """formulaic's own exp10 computes x**10; the vocabulary's is 10**x, at fit and prediction."""
    m = slm.lmer("Reaction ~ exp10(Days / 10) + (1 | Subject)", ss)
    np.testing.assert_allclose(m.design.X[:, 1], 10.0 ** (ss["Days"].to_numpy() / 10), rtol=1e-14)
    Xn = m.design.fixed_spec.get_model_matrix(ss.iloc[:3]).to_numpy()
    np.testing.assert_allclose(Xn[:, 1], 10.0 ** (ss["Days"].to_numpy()[:3] / 10), rtol=1e-14)


# ---- the module's functions ----------------------------------------------------------------------


def test_check_returns_the_columns_in_order_of_first_appearance():
    cols = ["z", "y", "x", "f", "x-y", "True"]
    assert check("log(x) + z:x + C(f, Sum) + I(`x-y` * 1e3) + x", cols) == ["x", "z", "f", "x-y"]
    assert check("poly(x, degree = 2) + I(True * 2)", cols) == ["x", "True"]
    assert check("scale(x, center = False)", cols) == ["x"]  # False: the constant, not a column
    assert check("bs(x, df = 4)", cols + ["df"]) == ["x"]  # an argument's name is not a column


def test_check_without_formula_puts_the_caret_under_the_fragment():
    with pytest.raises(slm.FormulaError) as ei:
        check("x + np.log(x)", ["x"])
    assert ei.value.args[0].splitlines()[-2:] == ["  x + np.log(x)", "      ^"]


def test_to_formulaic():
    cols = ["x", "ground.beef", "x-y", "True", "log", "z"]
    assert to_formulaic("I(x^2) + log(x^2)", cols) == "I(x**2) + log(x**2)"
    assert to_formulaic("(x + z)^2", cols) == "(x + z)^2"  # the formula's power stays
    assert to_formulaic("ground.beef + I(`x-y` * 1e3)", cols) == "`ground.beef` + I(`x-y` * 1e3)"
    assert to_formulaic("I(x * 1.5E-3) + I(.5 * x)", cols) == "I(x * 1.5E-3) + I(.5 * x)"
    tr = translate("log(log) + I(True * 2) + C(x, contr.sum)", cols)
    assert tr.text == "log(_log_) + I(_True_ * 2) + C(x, _contr_sum_)"
    assert dict(tr.renames) == {"log": "_log_", "True": "_True_"}
    assert tr.columns == ("log", "True", "x")
    assert tr.r_spelling("I(_True_ * 2)") == "I(True * 2)"
    assert tr.r_spelling("C(x, _contr_sum_)[S.a]") == "C(x, contr.sum)[S.a]"
    with pytest.raises(slm.FormulaError, match="attribute access"):
        to_formulaic("np.log(x)", cols)


def test_the_table_is_all_there_is_to_extend(ss, monkeypatch):
    """R's words (sqrt, pi, as.factor, TRUE, ...) are rows of the table, one each,
    whatever the name (as.factor is not a Python identifier), and nothing else to change."""
    from types import MappingProxyType

    import sparselmm.spec.vocabulary as voc

    def clear():
        for cached in (voc._read, voc._python_names, voc.namespace):
            cached.cache_clear()

    extended = dict(voc.VOCABULARY)
    extended["sinh"] = voc.Word("function", "numpy:sinh", "hyperbolic sine")
    extended["tau"] = voc.Word("constant", "numpy:pi", "a constant (here π)")
    extended["as.logical"] = voc.Word("function", "formulaic:C", "a factor")
    extended["YES"] = voc.Word("constant", "python:True", "a logical")
    monkeypatch.setattr(voc, "VOCABULARY", MappingProxyType(extended))
    clear()
    try:
        ss["f"] = np.where(ss["Days"] < 5, "a", "b")
        d = slm.design("Reaction ~ sinh(Days) + I(tau * Days^2) + as.logical(f) + poly(Days, 2, raw = YES) + (1 | Subject)", ss)
        assert d.X_names[:4] == ["(Intercept)", "sinh(Days)", "I(tau * Days^2)", "as.logical(f)b"]
        np.testing.assert_allclose(d.X[:, 2], np.pi * ss["Days"].to_numpy() ** 2)
        d = slm.design("Reaction ~ I(tau * Days) + (1 | Subject)", ss.assign(tau=2.0))  # the data first
        np.testing.assert_allclose(d.X[:, 1], 2.0 * ss["Days"].to_numpy())
    finally:
        monkeypatch.undo()
        clear()
    with pytest.raises(slm.FormulaError, match="function 'sinh' is not in the formula vocabulary"):
        slm.design("Reaction ~ sinh(Days) + (1 | Subject)", ss)
