"""Never a silent wrong answer (issue #17): property tests on formula strings and awkward data.

Two families of properties, with hypothesis (bounded for CI, derandomized so that every run
draws the same examples):

1. **Every outcome is a fit or a SparseLMMError.**  Formula strings from a grammar of lme4's
   formulas (fixed terms, transforms, bar terms, nesting, interactions) and malformed strings
   (which must give a :class:`~sparselmm.FormulaError`), on random DataFrames of awkward
   dtypes (nullable Int64/Float64/boolean with ``pd.NA``, object columns of mixed Python
   objects, categoricals with unused or missing categories, datetimes, strings, booleans,
   one- and two-row frames, constant columns, infinite values).  A fit must have finite
   results, its accessors must work (``predict`` on its own rows gives its fitted values), and
   nothing may emit a warning other than sparselmm's own.  The same data in plain dtypes must
   give the same design.
2. **Invariances with exact expectations**, at a fixed θ (``Design.objective_function``): shifts
   and scales of y and of X's columns, row order, level labels, and the index order of
   ``weights=``/``offset=`` given as pandas Series.

To hunt for bugs, raise the number of examples and vary the seed::

    SPARSELMM_HYPOTHESIS_EXAMPLES=2000 pytest tests/test_robustness.py --hypothesis-seed=7

(with the variable set the draws are random, so ``--hypothesis-seed`` picks them).
"""

from __future__ import annotations

import decimal
import numbers
import os
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sparselmm as slm

_HUNT = int(os.environ.get("SPARSELMM_HYPOTHESIS_EXAMPLES", "0"))


def _settings(n: int) -> settings:
    """``n`` examples, the same ones on every run (CI); many random ones when hunting."""
    return settings(
        max_examples=_HUNT or n,
        deadline=None,
        derandomize=not _HUNT,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


# ---------------------------------------------------------------------------------------------
# choices: from hypothesis in the tests, from a numpy generator in a bug-hunting loop


class Chooser:
    """The choices a generator makes, from hypothesis' ``draw`` or a numpy generator."""

    def __init__(self, draw=None, rng: np.random.Generator | None = None) -> None:
        self.draw, self.rng = draw, rng

    def choice(self, options):
        options = list(options)
        if self.draw is not None:
            return self.draw(st.sampled_from(options))
        return options[int(self.rng.integers(len(options)))]

    def integer(self, lo: int, hi: int) -> int:
        if self.draw is not None:
            return self.draw(st.integers(lo, hi))
        return int(self.rng.integers(lo, hi + 1))

    def flag(self) -> bool:
        return bool(self.choice([False, True]))

    def subset(self, options, lo: int, hi: int) -> list:
        k = self.integer(lo, hi)
        return [self.choice(options) for _ in range(k)]


# ---------------------------------------------------------------------------------------------
# columns of awkward dtypes

#: the kinds of a covariate's column; plain ones more often, so that most draws can be fitted
NUMERIC_KINDS = (
    "float", "float", "float", "float", "int", "Int64", "Float64", "float_nan", "object_num", "big",
    "object_decimal", "bool", "boolean", "object_bool", "string", "str", "category", "category_nan",
    "const", "inf", "object_mixed", "datetime", "none",
)
#: the kinds of a grouping column
GROUP_KINDS = (
    "str", "str", "str", "int", "float", "Int64", "string", "category", "category_nan", "bool", "boolean",
    "object_num", "datetime", "object_mixed", "none",
)
#: the kinds of the response
RESPONSE_KINDS = (
    "float", "float", "float", "float", "float", "float", "Int64", "Float64", "float_nan", "object_num", "int",
    "big", "const", "inf", "bool", "str",
)
#: the kinds of a factor
FACTOR_KINDS = ("str", "str", "string", "category", "category_nan", "bool", "boolean", "object_bool", "int",
                "object_mixed")


def _with_missing(values: list, rng: np.random.Generator, frac: float, na=None) -> list:
    out = list(values)
    for i in np.flatnonzero(rng.random(len(out)) < frac):
        out[i] = na
    return out


def numeric_column(kind: str, n: int, rng: np.random.Generator, frac: float) -> pd.Series | np.ndarray:
    """A covariate (or the response) of ``kind``: values of various dtypes, some missing."""
    x = rng.normal(size=n)
    if kind == "float":
        return x * rng.choice([1.0, 1e-3, 1e3])
    if kind == "big":
        return x + 1e8
    if kind == "int":
        return rng.integers(0, 6, n)
    if kind == "Int64":
        return pd.array(_with_missing(rng.integers(-3, 6, n).tolist(), rng, frac), dtype="Int64")
    if kind == "Float64":
        return pd.array(_with_missing(x.tolist(), rng, frac), dtype="Float64")
    if kind == "float_nan":
        return np.array(_with_missing(x.tolist(), rng, frac, np.nan), dtype=float)
    if kind == "object_num":
        vals = [int(v) if i % 2 else float(v) for i, v in enumerate(np.round(x * 3, 1))]
        return pd.Series(_with_missing(vals, rng, frac), dtype=object)
    if kind == "object_decimal":  # numbers of other Python types
        import fractions

        vals = [decimal.Decimal(str(v)) if i % 2 else fractions.Fraction(str(v)) for i, v in enumerate(np.round(x, 2))]
        return pd.Series(_with_missing(vals, rng, frac), dtype=object)
    if kind == "const":
        return np.full(n, 2.5)
    if kind == "inf":
        x[int(rng.integers(n))] = rng.choice([np.inf, -np.inf])
        return x
    if kind == "bool":
        return rng.random(n) < 0.5
    if kind == "boolean":
        return pd.array(_with_missing((rng.random(n) < 0.5).tolist(), rng, frac), dtype="boolean")
    if kind == "object_bool":
        return pd.Series(_with_missing((rng.random(n) < 0.5).tolist(), rng, frac), dtype=object)
    if kind == "object_mixed":
        pool = ["a", 1, 2.5, "b", True, None]
        return pd.Series([pool[i] for i in rng.integers(0, len(pool), n)], dtype=object)
    if kind == "string":
        return pd.array(_with_missing(rng.choice(["u", "v", "w"], n).tolist(), rng, frac), dtype="string")
    if kind == "str":
        return rng.choice(["u", "v", "w"], n).astype(object)
    if kind == "category":
        return pd.Categorical(rng.choice(["v", "u"], n), categories=["w", "u", "v", "unused"])
    if kind == "category_nan":
        return pd.Categorical(_with_missing(rng.choice(["u", "v", "w"], n).tolist(), rng, max(frac, 0.1)),
                              categories=["u", "v", "w", "zz"])
    if kind == "datetime":
        t = pd.Timestamp("2021-03-01") + pd.to_timedelta(rng.integers(0, 30, n), unit="D")
        return pd.Series(_with_missing(list(t), rng, frac, pd.NaT), dtype="datetime64[ns]")
    if kind == "none":
        return pd.Series([None] * n, dtype=object)
    raise AssertionError(kind)


def group_column(kind: str, n: int, levels: int, rng: np.random.Generator, frac: float) -> pd.Series | np.ndarray:
    """A grouping column of ``kind`` with about ``levels`` levels."""
    codes = rng.integers(0, max(levels, 1), n)
    if kind == "str":
        return np.array([f"L{c}" for c in codes], dtype=object)
    if kind == "int":
        return codes * 10 + 3
    if kind == "float":
        return codes * 0.5
    if kind == "Int64":
        return pd.array(_with_missing(codes.tolist(), rng, frac), dtype="Int64")
    if kind == "string":
        return pd.array(_with_missing([f"s{c}" for c in codes], rng, frac), dtype="string")
    if kind == "category":
        cats = [f"c{c}" for c in range(levels + 2)][::-1]  # two unused, in reverse order
        return pd.Categorical([f"c{c}" for c in codes], categories=cats)
    if kind == "category_nan":
        cats = [f"c{c}" for c in range(levels + 1)]
        return pd.Categorical(_with_missing([f"c{c}" for c in codes], rng, max(frac, 0.1)), categories=cats)
    if kind == "bool":
        return codes % 2 == 0
    if kind == "boolean":
        return pd.array(_with_missing((codes % 2 == 0).tolist(), rng, frac), dtype="boolean")
    if kind == "object_mixed":
        return pd.Series([f"m{c}" if c % 2 else int(c) for c in codes], dtype=object)
    if kind == "object_num":
        return pd.Series(_with_missing([int(c) for c in codes], rng, frac), dtype=object)
    if kind == "datetime":
        return pd.Series(pd.Timestamp("2020-01-01") + pd.to_timedelta(codes, unit="h"))
    if kind == "none":
        return pd.Series([None] * n, dtype=object)
    raise AssertionError(kind)


def awkward_frame(c: Chooser) -> pd.DataFrame:
    """A random DataFrame with columns y (response), x, z (covariates), f (a factor), g, h
    (grouping) and w (positive, for weights), each of a random awkward dtype."""
    # hypothesis starts from (and shrinks towards) the first of each list: a plain model that can be fitted
    n = c.choice([30, 20, 45, 60, 12, 6, 3, 2, 1, 25, 40, 30])
    rng = np.random.default_rng(c.integer(0, 2**32 - 1))
    frac = c.choice([0.0, 0.1, 0.0, 0.3])
    cols = {
        "y": numeric_column(c.choice(RESPONSE_KINDS), n, rng, frac),
        "x": numeric_column(c.choice(NUMERIC_KINDS), n, rng, frac),
        "z": numeric_column(c.choice(NUMERIC_KINDS[:10]), n, rng, frac),
        "f": numeric_column(c.choice(FACTOR_KINDS), n, rng, frac),
        "g": group_column(c.choice(GROUP_KINDS), n, c.choice([4, 5, 6, 8, 3, 2, 1]), rng, frac),
        "h": group_column(c.choice(GROUP_KINDS), n, c.choice([3, 2, 4, 3, 1]), rng, frac),
        "w": rng.uniform(0.5, 2.0, n),
    }
    df = pd.DataFrame({k: (v.reset_index(drop=True) if isinstance(v, pd.Series) else v) for k, v in cols.items()})
    if c.flag():  # an index that is not 0..n-1
        df.index = pd.Index(rng.permutation(n) * 3 + 100)
    return df


# ---------------------------------------------------------------------------------------------
# formula strings

RESPONSES = ("y", "y", "y", "I(2 * y)", "log(abs(y) + 1)")
FIXED_TERMS = (
    "1", "0", "x", "x", "z", "f", "x*f", "x:z", "x*z", "I(x^2)", "log(x)", "poly(x, 2)", "scale(x)",
    "I(x * 1e3)", "I(x + 1e3)", "I(1e-3 * z)", "exp(z)", "f:x", "center(z)", "C(f)", "-1",
)
BAR_TERMS = (
    "(1|g)", "(1 | g)", "(x|g)", "(x||g)", "(1|g/h)", "(1|g:h)", "(0+x|g)", "(1|h)", "(z|h)",
    "(1 + z | g)", "(f | g)", "(0 + z || h)", "diag(x | g)", "cs(1 | h)",
)


def lme4_formula(c: Chooser) -> str:
    """A well-formed lme4 formula over the columns of :func:`awkward_frame`."""
    fixed = c.subset(FIXED_TERMS, 0, 3)
    bars = c.subset(BAR_TERMS, 1, 2)
    terms = fixed + bars
    rhs = terms[0]
    for t in terms[1:]:
        rhs += (" - " if t == "-1" else " + ") + t.lstrip("-")
    return f"{c.choice(RESPONSES)} ~ {rhs}"


def _break(formula: str, how: str) -> str:
    lhs, rhs = formula.split(" ~ ", 1)
    bad = {
        "drop_paren": formula[:-1] if formula.endswith(")") else formula + "(",
        "open_paren": f"{lhs} ~ ({rhs}",
        "close_paren": f"{formula} + )",
        "stray_bar": f"{lhs} ~ x | z + {rhs}",
        "bar_in_response": f"{lhs} | g ~ {rhs}",
        "two_tildes": f"{lhs} ~ x ~ {rhs}",
        "no_tilde": f"{lhs} {rhs}",
        "no_response": f" ~ {rhs}",
        "no_rhs": f"{lhs} ~ ",
        "empty_term": f"{lhs} ~ x + + {rhs}",
        "trailing_plus": f"{formula} +",
        "unknown_name": f"{lhs} ~ nonexistent + {rhs}",
        "unknown_function": f"{lhs} ~ gamma(x) + {rhs}",
        "attribute": f"{lhs} ~ np.log(x) + {rhs}",
        "attribute_of_column": f"{lhs} ~ x.real + {rhs}",
        "dunder_import": f"{lhs} ~ __import__('os') + {rhs}",
        "dunder_in_I": f"{lhs} ~ I(__import__('os').getcwd()) + {rhs}",
        "subscript": f"{lhs} ~ I(x[0]) + {rhs}",
        "lambda": f"{lhs} ~ I((lambda: 1)()) + {rhs}",
        "eval": f"{lhs} ~ eval('x') + {rhs}",
        "empty_bar_lhs": f"{formula} + ( | g)",
        "empty_group": f"{formula} + (1 | )",
        "group_expression": f"{formula} + (1 | g + h)",
        "group_function": f"{formula} + (1 | log(g))",
        "minus_bar": f"{lhs} ~ x - (1 | g)",
        "times_bar": f"{lhs} ~ x * (1 | g)",
        "three_bars": f"{formula} + (1 | g | h)",
        "unclosed_backquote": f"{lhs} ~ `x + {rhs}",
        "unclosed_string": f"{lhs} ~ C(f, Treatment('u) + {rhs}",
        "unknown_structure": f"{formula} + foo(1 | g)",
        "walrus": f"{lhs} ~ I(a := 1) + {rhs}",
        "double_star_kwargs": f"{lhs} ~ poly(x, **{{}}) + {rhs}",
    }
    return bad[how]


MALFORMED = (
    "drop_paren", "open_paren", "close_paren", "stray_bar", "bar_in_response", "two_tildes", "no_tilde",
    "no_response", "no_rhs", "empty_term", "trailing_plus", "unknown_name", "unknown_function", "attribute",
    "attribute_of_column", "dunder_import", "dunder_in_I", "subscript", "lambda", "eval", "empty_bar_lhs",
    "empty_group", "group_expression", "group_function", "minus_bar", "times_bar", "three_bars",
    "unclosed_backquote", "unclosed_string", "unknown_structure", "walrus", "double_star_kwargs",
)


# ---------------------------------------------------------------------------------------------
# the outcome of a fit


class _Strict(warnings.catch_warnings):
    """Every warning is an error, but sparselmm's own (SparseLMMWarning and its subclasses)."""

    def __enter__(self):
        out = super().__enter__()
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", slm.SparseLMMWarning)
        return out


def _finite(*values) -> bool:
    return all(np.all(np.isfinite(np.asarray(v, dtype=float))) for v in values)


def check_fit(m: slm.LinearMixedModel, data: pd.DataFrame) -> None:
    """A fit's numbers are finite and its accessors work (inside :class:`_Strict`)."""
    assert _finite(m.objective, m.theta, m.fixef, m.sigma, m.se), (m.objective, m.theta, m.fixef, m.sigma, m.se)
    assert m.sigma > 0
    assert isinstance(m.summary(), str) and isinstance(repr(m), str)
    tab = m.coef_table()
    assert _finite(tab["Estimate"], tab["Std. Error"])
    ci = m.confint("wald")
    assert _finite(ci.loc[list(m.fixef.index)])
    if m.nobs <= 30 and m.REML:  # Kenward-Roger on the small REML fits (its cost grows with q)
        try:
            kr = m.coef_table("kenward-roger")
        except slm.ModelSpecError as exc:  # structured covariances, no fixed effects: refused by name
            assert "Kenward-Roger" in str(exc) or "no fixed effects" in str(exc), str(exc)
        else:
            assert _finite(kr["Estimate"], kr["Std. Error"])
    vc = m.varcorr()
    assert _finite(vc["vcov"]) and _finite(vc.loc[vc["var2"].isna(), "sdcor"])
    rt = m.ranef_table()
    assert _finite(rt["condval"], rt["condsd"])
    assert all(_finite(r) for r in m.ranef().values()) and all(_finite(r) for r in m.coef().values())
    assert _finite(m.residuals("pearson")) and _finite(m.simulate(2, seed=1))
    d = m.design
    used = data.loc[d.row_index]
    pred, fitted = m.predict(used).to_numpy(), m.fitted().to_numpy()
    # the same sum in another order: equal to the rounding of its terms (Xβ near -1e8 plus an offset near 1e8)
    size = np.abs(d.X) @ np.abs(m.fixef.to_numpy()) + np.abs(d.Zt.T) @ np.abs(m.b)
    if d.offset is not None:
        size = size + np.abs(d.offset)
    assert np.all(np.abs(pred - fitted) <= 1e-12 * size + 1e-300), np.max(np.abs(pred - fitted) / size)
    assert _finite(m.predict(used, re_form="NA"))


#: what formulaic's and numpy's own messages say; a SparseLMMError says what is wrong in the user's terms
INTERNALS = ("Unable to evaluate factor", "Error encountered while", "has generated too many columns",
             "contains null values", "ufunc", "Traceback")


def fit_outcome(formula: str, data: pd.DataFrame, **kw) -> slm.LinearMixedModel | None:
    """Fit; the outcome must be a fit that passes :func:`check_fit` or a SparseLMMError (None) whose
    message is sparselmm's own."""
    with _Strict():
        try:
            m = slm.lmer(formula, data, **kw)
        except slm.SparseLMMError as exc:
            assert not any(s in str(exc) for s in INTERNALS), str(exc)
            return None
        check_fit(m, data)
    return m


def _anova_outcome(m: slm.LinearMixedModel, data: pd.DataFrame) -> None:
    """``anova`` of the fit against its model without fixed effects but the intercept."""
    pf = m.design.formula
    rhs = " + ".join(dict.fromkeys(b.text for b in pf.bars))
    used = data.loc[m.design.row_index]
    with _Strict():
        try:
            m0 = slm.lmer(f"{pf.response} ~ 1 + {rhs}", used, REML=m.REML)
        except slm.SparseLMMError:
            return
        check_fit(m0, used)
        tab = slm.anova(m0, m)
    assert _finite(tab[["npar", "AIC", "BIC", "logLik", "deviance"]])


# ---------------------------------------------------------------------------------------------
# property 1: a fit or a SparseLMMError, on grammar-made formulas and awkward data


def fit_arguments(c: Chooser) -> dict:
    """REML or ML; weights from a column or as an array, or none."""
    kw: dict = {"REML": c.flag()}
    how = c.choice([None, None, "column", "array", "awkward"])
    if how == "column":
        kw["weights"] = "w"
    elif how == "awkward":  # a covariate of some awkward dtype as weights: negative, missing, not numbers
        kw["weights"] = "z"
    elif how == "array":
        kw["weights"] = np.linspace(0.5, 2.0, 1000)  # cut to the frame's length by the caller
    off = c.choice([None, None, None, "z", "x"])  # a column of some awkward dtype, as an offset
    if off is not None:
        kw["offset"] = off
    return kw


@st.composite
def formula_and_frame(draw):
    c = Chooser(draw)
    formula, df, kw = lme4_formula(c), awkward_frame(c), fit_arguments(c)
    if isinstance(kw.get("weights"), np.ndarray):
        kw["weights"] = kw["weights"][: len(df)]
    return formula, df, kw


@_settings(120)
@given(formula_and_frame())
def test_every_outcome_is_a_finite_fit_or_a_sparselmm_error(case):
    formula, df, kw = case
    m = fit_outcome(formula, df, **kw)
    if m is not None and m.nobs <= 30 and not kw.keys() - {"REML"}:  # anova refits both: small fits only
        _anova_outcome(m, df)


@_settings(60)
@given(st.data())
def test_malformed_formulas_are_formula_errors(data):
    c = Chooser(data.draw)
    formula, df = lme4_formula(c), awkward_frame(c)
    bad = _break(formula, c.choice(MALFORMED))
    with _Strict(), pytest.raises(slm.FormulaError):
        slm.lmer(bad, df)
    with _Strict(), pytest.raises(slm.FormulaError):
        slm.design(bad, df)


# ---------------------------------------------------------------------------------------------
# the same data in plain dtypes give the same design


def plain(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` in plain numpy/object dtypes: nullable columns as floats, bools or strings (missing
    values as NaN/None), object columns of numbers as floats and of booleans as bools, categoricals
    without their unused categories."""
    out = {}
    for name, col in df.items():
        dt = col.dtype
        miss = col.isna().to_numpy()
        if isinstance(dt, pd.CategoricalDtype):
            col = col.cat.remove_unused_categories()
        elif isinstance(dt, pd.BooleanDtype):
            col = col.astype(bool) if not miss.any() else col.astype(object).where(~miss, None)
        elif isinstance(dt, pd.StringDtype):
            col = col.astype(object).where(~miss, None)
        elif pd.api.types.is_extension_array_dtype(dt) and pd.api.types.is_numeric_dtype(dt):
            col = col.astype(float) if miss.any() else col.to_numpy(dtype=dt.numpy_dtype)
        elif dt == object:
            vals = col[~miss]
            kinds = {type(v) for v in vals}
            if kinds and all(issubclass(t, bool) for t in kinds):
                col = col.astype(bool) if not miss.any() else col
            elif kinds and all(issubclass(t, (numbers.Real, decimal.Decimal)) and not issubclass(t, bool) for t in kinds):
                col = pd.Series(col.to_numpy(dtype=float, na_value=np.nan), index=col.index)
        out[name] = col
    return pd.DataFrame(out, index=df.index)


@_settings(60)
@given(st.data())
def test_awkward_dtypes_give_the_design_of_plain_dtypes(data):
    c = Chooser(data.draw)
    formula, df = lme4_formula(c), awkward_frame(c)
    with _Strict():
        try:
            d = slm.design(formula, df)
        except slm.SparseLMMError:
            return
        rows = df.loc[d.row_index]
        p = slm.design(formula, plain(rows))
    assert p.n == d.n and p.X_names == d.X_names and p.cnms == d.cnms
    assert [list(t.levels) for t in p.terms] == [list(t.levels) for t in d.terms]
    np.testing.assert_array_equal(p.X, d.X)
    th = 0.7 * d.theta_start + 0.1
    with _Strict():
        try:
            fd = d.objective_function
            fp = p.objective_function
            for REML in (True, False):
                a, b = fd(REML)(th), fp(REML)(th)
                assert a == pytest.approx(b, rel=1e-12), (REML, a, b)
        except slm.SparseLMMError as exc:  # a design that cannot be fitted (n ≤ p): the same for both
            with pytest.raises(type(exc)):
                fp(True)


# ---------------------------------------------------------------------------------------------
# the bugs these properties found, one test each


def _quiet(fn, *args, **kw):
    with _Strict():
        return fn(*args, **kw)


def test_predict_reads_an_object_column_of_numbers_as_the_fit_did():
    # before: the fit read the object column as numbers, predict() gave formulaic the raw column, which
    # it coded as a factor: "Term `x:z` has generated too many columns" on the fit's own data
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"y": rng.normal(size=40), "x": pd.Series(list(np.round(rng.normal(size=40), 1)), dtype=object),
                       "z": rng.normal(size=40), "g": np.repeat(list("abcde"), 8)})
    for formula in ("y ~ x:z + (1 | g)", "y ~ I(x^2) + (1 | g)", "y ~ x + (x | g)"):
        m = _quiet(slm.lmer, formula, df)
        np.testing.assert_allclose(m.predict(df).to_numpy(), m.fitted().to_numpy(), rtol=1e-12)


def test_an_object_column_of_booleans_is_a_logical_column():
    # before: a factor with levels False/True (coefficient "fTrue"); R, and a bool column, give "fTRUE"
    rng = np.random.default_rng(4)
    flags = rng.random(40) < 0.5
    df = pd.DataFrame({"y": rng.normal(size=40), "f": flags, "g": np.repeat(list("abcde"), 8)})
    m0 = _quiet(slm.lmer, "y ~ f + (1 | g)", df)
    obj = df.assign(f=pd.Series([bool(v) if i % 7 else None for i, v in enumerate(flags)], dtype=object))
    m = _quiet(slm.lmer, "y ~ f + (1 | g)", obj)
    assert list(m.fixef.index) == ["(Intercept)", "fTRUE"] and m.nobs == 40 - 6
    m1 = _quiet(slm.lmer, "y ~ f + (1 | g)", df[obj["f"].notna()])
    assert m.objective == m1.objective and np.array_equal(m.fixef, m1.fixef)
    np.testing.assert_allclose(m.predict(obj.dropna()).to_numpy(), m.fitted().to_numpy(), rtol=1e-12)
    assert list(m0.fixef.index) == list(m.fixef.index)


@pytest.mark.parametrize("values", [[True, 1, 2.5], [True, "a"], [np.True_, 0]])
def test_an_object_column_mixing_booleans_and_other_values_is_refused(values):
    # before: True == 1 in Python, so a factor silently merged the levels True and 1
    df = pd.DataFrame({"y": np.arange(12.0) % 5, "f": pd.Series((values * 12)[:12], dtype=object),
                       "g": np.repeat(list("abc"), 4)})
    with pytest.raises(slm.DataError, match="column 'f' mixes booleans"):
        slm.lmer("y ~ f + (1 | g)", df)


def test_a_logical_grouping_column_with_one_value_has_one_level():
    # before: levels FALSE and TRUE, FALSE empty: a zero row in Z, a RuntimeWarning (0/0) in the start
    df = pd.DataFrame({"y": np.arange(20.0) % 7, "h": pd.array([True] * 20, dtype="boolean"), "x": np.arange(20.0)})
    with pytest.raises(slm.ModelSpecError, match="grouping factor 'h'.* has 1 level"):
        _quiet(slm.lmer, "y ~ 0 + cs(1 | h)", df)
    with pytest.raises(slm.ModelSpecError, match="has 1 level"):
        _quiet(slm.lmer, "y ~ x + (1 | h)", df.assign(h=True))


def test_the_moment_start_without_residual_degrees_of_freedom():
    # n - levels - p = 0: before, a RuntimeWarning (division by zero) in Design.moment_start
    df = pd.DataFrame({"y": [-126.7, -1261.7, 1303.7], "f": ["v", "u", "u"], "h": [2, 3, 3]})
    d = _quiet(slm.design, "y ~ f + (1 | h)", df)
    np.testing.assert_array_equal(_quiet(d.moment_start), d.theta_start)
    # one grouping factor with slopes: 4 levels × 2 columns + 1 fixed effect for 9 observations
    df = pd.DataFrame({"y": [0.3, 1.2, 2.9, 1.1, 0.5, -0.7, 2.2, 0.1, 1.7], "h": list("aabbccddd"),
                       "x": [0.0, 1.0, 0.0, 1.0, 0.0, 2.0, 1.0, 3.0, 2.0]})
    d = _quiet(slm.design, "y ~ 1 + (x | h)", df)
    np.testing.assert_array_equal(_quiet(d.moment_start), d.theta_start)


@pytest.mark.parametrize("term", ["log(x)", "scale(c)", "(log(x) | g)"])  # poly(c, 2): refused as R's (test_formulas)
def test_a_transform_that_makes_nan_is_a_data_error_naming_it(term):
    # before: formulaic's "Error encountered while checking for nulls in `log(x)`" as a FormulaError
    rng = np.random.default_rng(5)
    df = pd.DataFrame({"y": rng.normal(size=40), "x": rng.normal(size=40), "c": 1.0, "g": np.repeat(list("abcd"), 10)})
    formula = f"y ~ x + {term}" if term.startswith("(") else f"y ~ {term} + (1 | g)"
    with pytest.raises(slm.DataError, match=r"missing or infinite values after transformation"):
        _quiet(slm.lmer, formula, df)


@pytest.mark.parametrize("term", ["log(f)", "I(f^2)", "poly(f, 2)", "scale(t)", "I(`f-g` + 1)"])
def test_arithmetic_on_a_factor_is_a_data_error_naming_the_column(term):
    # before: FormulaError "Unable to evaluate factor `log(f)`. [TypeError: Object with dtype category
    # cannot perform the numpy op log]", formulaic's words
    rng = np.random.default_rng(6)
    df = pd.DataFrame({"y": rng.normal(size=40), "f": rng.choice(["a", "b"], 40), "g": np.repeat(list("abcd"), 10),
                       "t": pd.Timestamp("2020-01-01") + pd.to_timedelta(np.arange(40) % 3, unit="D")})
    df["f-g"] = df["f"]
    col = {"scale(t)": "t", "I(`f-g` + 1)": "f-g"}.get(term, "f")
    want = "holds dates or times" if col == "t" else "which is a factor"  # R computes with dates as numbers: refused
    with pytest.raises(slm.DataError, match=rf"column '{col}',? (computes with|{want})") as err:
        slm.lmer(f"y ~ {term} + (1 | g)", df)
    assert not any(s in str(err.value) for s in INTERNALS)


@pytest.mark.parametrize("formula", ["y ~ z + (1 | g:h) + (z | h)", "y ~ (1 | h) + (1 | h2)", "y ~ (x | h) + (x || h2)"])
def test_two_factors_that_group_the_rows_alike_are_one_random_effect_twice(formula):
    # g has one level, so g:h is h; h2 is h relabelled.  Before: fitted, the two variances an arbitrary
    # split of one (and Kenward-Roger's information matrix exactly singular: numpy's LinAlgError)
    rng = np.random.default_rng(2)
    df = pd.DataFrame({"y": rng.normal(size=30), "z": rng.normal(size=30), "x": rng.normal(size=30),
                       "h": np.repeat(list("abc"), 10), "g": "one"})
    df["h2"] = df.h.map({"a": 3, "b": 1, "c": 2})
    with pytest.raises(slm.ModelSpecError, match="group the observations the same way"):
        slm.lmer(formula, df)
    _quiet(slm.lmer, "y ~ (1 | h) + (0 + z | h2)", df)  # other columns on the same grouping: (z || h)


def test_kenward_roger_with_an_exactly_singular_information_matrix(monkeypatch):
    # pbkrtest's rule takes solve() above an absolute 1e-10 on the smallest |eigenvalue|; beside a largest
    # of 1e14 that let an exactly singular matrix through: numpy's LinAlgError.  Now ginv, as below the rule
    import sparselmm.frame.modelframe as mf
    from sparselmm.stats.kenward_roger import kr_adjustment_at

    rng = np.random.default_rng(2)
    df = pd.DataFrame({"y": rng.normal(size=30), "z": rng.normal(size=30) * 300, "h": np.repeat(list("abc"), 10)})
    df["h2"] = df.h.map({"a": 3, "b": 1, "c": 2})
    monkeypatch.setattr(mf, "check_terms", lambda terms, n, residual_variance=True: None)  # the design refused above, built all the same
    d = mf.design("y ~ z + (1 | h2) + (z | h)", df)
    adj = _quiet(kr_adjustment_at, d, np.array([0.0, 0.45, 2.7e-4, 0.0]))
    assert np.all(np.isfinite(adj.vcov_adj))


@pytest.mark.parametrize("kind", ["decimal", "fraction", "numpy"])
def test_an_object_column_of_any_real_numbers_is_numeric(kind):
    # before: Decimal and Fraction values were labels, one level per value: a factor of 40 levels
    # (ModelSpecError "reproduces the response exactly"), where a float column gives one slope
    import fractions

    rng = np.random.default_rng(9)
    x = np.round(rng.normal(size=40), 2)
    to = {"decimal": lambda v: decimal.Decimal(str(v)), "fraction": lambda v: fractions.Fraction(str(v)),
          "numpy": lambda v: np.float32(v) if v > 0 else np.int64(round(v))}[kind]
    df = pd.DataFrame({"y": rng.normal(size=40), "x": x, "g": np.repeat(list("abcde"), 8)})
    obj = df.assign(x=pd.Series([to(v) for v in x], dtype=object))
    plain_x = obj.x.map(float).to_numpy()
    m0 = _quiet(slm.lmer, "y ~ x + (x | g)", df.assign(x=plain_x))
    m = _quiet(slm.lmer, "y ~ x + (x | g)", obj)
    assert m.objective == m0.objective and list(m.fixef.index) == ["(Intercept)", "x"]
    np.testing.assert_allclose(m.predict(obj).to_numpy(), m.fitted().to_numpy(), rtol=1e-12)


def test_predict_on_data_with_non_string_column_labels():
    # design() reads the labels by their str(); before, predict() on the very frame of the fit did not:
    # DataError "newdata lacks grouping column(s) ['2']"
    rng = np.random.default_rng(10)
    df = pd.DataFrame({0: rng.normal(size=40), 1: rng.normal(size=40), 2: np.repeat(list("abcde"), 8)})
    m = _quiet(slm.lmer, "`0` ~ `1` + (1 | `2`)", df, offset="1")
    np.testing.assert_allclose(m.predict(df).to_numpy(), m.fitted().to_numpy(), rtol=1e-12)


def test_predict_reads_the_offset_column_as_given():
    # before: an offset column that the model also uses as a factor was read from the recoded new data
    # (its categories 'FALSE'/'TRUE'): DataError "offset must be numeric: Unable to parse string 'FALSE'"
    rng = np.random.default_rng(8)
    df = pd.DataFrame({"y": rng.normal(size=40), "b": rng.random(40) < 0.5, "g": np.repeat(list("abcde"), 8)})
    m = _quiet(slm.lmer, "y ~ b + (1 | g)", df, offset="b")
    np.testing.assert_allclose(m.predict(df).to_numpy(), m.fitted().to_numpy(), rtol=1e-12)


@pytest.mark.parametrize("case", ["factor", "factor_weights", "offset", "near_exact", "near_exact_offset"])
def test_a_response_that_the_fixed_effects_reproduce_is_refused(case):
    # before: y a function of a factor (y' = 0 after conditioning) passed the check and failed as
    # ConvergenceError("the objective cannot be evaluated at the starting values of θ"), with weights as a
    # RuntimeWarning (overflow); y − offset = 1e-9 noise about a line was fitted (σ = 9.7e-9, 10 times the
    # truth: the cross-products keep no digit of it), or failed in the convergence check (LinAlgError)
    rng = np.random.default_rng(0)
    n = 40
    df = pd.DataFrame({"f": rng.choice(list("abc"), n), "g": np.repeat(list("abcde"), 8), "z": rng.normal(size=n)})
    df["y"] = df.f.map({"a": 1.0, "b": 2.5, "c": -1.0})
    noise = 1e-9 * rng.normal(size=n)
    if case == "near_exact":
        df["y"] = 18.42 + noise - df.z
    formula, kw = {
        "near_exact": ("y ~ z + (1 | g)", {}),
        "factor": ("y ~ f + (1 | g)", {}),
        "factor_weights": ("y ~ f + (1 | g)", {"weights": np.linspace(0.5, 2.0, n)}),
        "offset": ("y ~ 1 + (1 | g)", {"offset": df.y.to_numpy()}),
        "near_exact_offset": ("y ~ z + (1 | g)", {"offset": df.y.to_numpy() - 0.5 * df.z.to_numpy() + noise}),
    }[case]
    with pytest.raises(slm.ModelSpecError, match="reproduces the response 'y' exactly"):
        _quiet(slm.lmer, formula, df, **kw)
    # 1e-4 noise is fitted, σ to 1e-6
    m = _quiet(slm.lmer, "y ~ z + (1 | g)", df.assign(y=df.z * 2 + 1e-4 * rng.normal(size=n)))
    assert m.sigma == pytest.approx(1e-4, rel=0.3)


def test_a_slope_on_a_covariate_near_1e8_without_a_moment_start():
    # the random-effects columns enter Z unconditioned: lme4's start θ = 1 on a slope whose covariate
    # is near 1e8 puts ΛᵀZᵀZΛ + I where the fixed effects' Schur complement has no digit left.
    # before: ConvergenceError("the objective cannot be evaluated at the starting values of θ")
    rng = np.random.default_rng(3)
    n = 9
    df = pd.DataFrame({"g": [1.0, 2.0, 1.0, 0.0, 1.0, 1.0, 0.5, 1.5, 0.0], "x": rng.normal(size=n) + 1e8,
                       "y": np.log(np.abs(rng.integers(-3, 6, n)) + 1.0), "z": rng.integers(-3, 6, n)})
    m = _quiet(slm.lmer, "y ~ z + (x || g)", df)
    check_fit(m, df)
    f = m.design.objective_function(True)
    grid = min(f(np.array([a, b])) for a in np.linspace(0, 3, 16) for b in np.linspace(0, 3e-8, 16))
    assert m.objective <= grid + 1e-9 and not m.optsum.warnings


def test_an_exact_fit_is_refused_whatever_the_factor_levels_spell():
    # before: naming the terms that hold the response read the columns' names (with their factor
    # levels) as formula text: FormulaError "unexpected number '00'" for a datetime level
    df = pd.DataFrame({"t": (pd.Timestamp("2021-03-02") + pd.to_timedelta(np.arange(12) % 3, unit="D")).astype(str),
                       "f": np.tile(["a b", "c-d", "e"], 4), "g": np.repeat(list("abcd"), 3)})
    df["y"] = np.arange(12) % 3 * 1.5 + 2.0
    for formula in ("y ~ t + (1 | g)", "y ~ f + (1 | g)"):
        with pytest.raises(slm.ModelSpecError, match="reproduces the response 'y' exactly"):
            _quiet(slm.lmer, formula, df)


# ---------------------------------------------------------------------------------------------
# property 2: invariances with exact expectations, at a fixed θ

#: formulas over tame data: a, b grouping; x, z covariates; v a covariate only in the fixed part
#: (linearly, for the scale property); f a factor.  Every one spans the constant.
TAME_FORMULAS = (
    "y ~ v + x + (1 | a)",
    "y ~ v + z + (1 | a) + (1 | b)",
    "y ~ v + x + (x | a)",
    "y ~ v * f + (1 | a/b)",
    "y ~ f + v + (x || a)",
    "y ~ 0 + f + v + (1 | a)",
    "y ~ v + poly(z, 2) + (1 | a:b)",
    "y ~ v:x + v + x + I(z^2) + (z | a)",
    "y ~ v + x + diag(1 + x | a) + (1 | b)",
    "y ~ v + f:x + cs(1 | b)",
)


@st.composite
def tame_case(draw):
    """A random crossed design on which every formula of TAME_FORMULAS can be fitted, with weights,
    an offset and a θ to evaluate at."""
    c = Chooser(draw)
    rng = np.random.default_rng(c.integer(0, 2**32 - 1))
    na, nb, reps = c.integer(4, 7), c.integer(3, 5), c.integer(2, 4)
    a, b = np.meshgrid(np.arange(na), np.arange(nb), indexing="ij")
    a, b = np.repeat(a.ravel(), reps), np.repeat(b.ravel(), reps)
    # unbalanced: some rows dropped, but two of every cell kept (a:b needs replicates)
    keep = (np.arange(len(a)) % reps < 2) | (rng.random(len(a)) > c.choice([0.0, 0.3]))
    a, b = a[keep], b[keep]
    n = len(a)
    df = pd.DataFrame({
        "a": [f"a{i}" for i in a], "b": [f"b{j}" for j in b],
        "x": rng.normal(size=n), "z": rng.normal(size=n) * 2 + 1, "v": rng.uniform(-1, 3, n),
        "f": rng.choice(["p", "q", "r"], n),
    })
    df["y"] = (rng.normal(size=n) + 0.5 * df["x"] - 0.3 * df["v"] + rng.normal(size=na)[a] * c.choice([0.0, 1.0])
               + rng.normal(size=nb)[b])
    df["w"] = rng.uniform(0.5, 2.0, n)
    df["o"] = np.round(rng.normal(size=n) * 0.3 * 2**10) / 2**10  # on a binary grid: y + c - o has no rounding
    df.index = pd.Index(rng.permutation(n) + 10)
    formula = c.choice(TAME_FORMULAS)
    kw = {}
    if c.flag():
        kw["weights"] = "w"
    if c.flag():
        kw["offset"] = "o"
    # a generator for what a test draws besides (permutations, relabellings), seeded from hypothesis
    return df, formula, kw, rng.uniform(0.1, 1.5, 8), np.random.default_rng(c.integer(0, 2**32 - 1))


def _objective(formula, df, REML, theta, **kw):
    d = _quiet(slm.design, formula, df, **kw)
    th = theta[: len(d.theta_start)].copy()
    th[d.lower == -np.inf] -= 0.8  # off-diagonal entries may be negative
    return d.objective_function(REML)(th), d


def _beta_at(d, theta):
    """β̂(θ) of the design, in the data's units."""
    st_ = d.pls()
    th = theta[: len(d.theta_start)].copy()
    th[d.lower == -np.inf] -= 0.8
    assert st_.update(d.internal_theta(th))
    return d.cond.beta(st_.beta)


@_settings(25)
@given(tame_case(), st.sampled_from([1e3, -1e6, 1e8, 1.7e9]))
def test_a_shift_of_the_response_leaves_the_objective(case, c):
    df, formula, kw, theta, _ = case
    shifted, back = df.assign(y=df.y + c), df.assign(y=(df.y + c) - c)  # the same values: no rounding of y + c
    for REML in (True, False):
        a, _ = _objective(formula, shifted, REML, theta, **kw)
        b, _ = _objective(formula, back, REML, theta, **kw)
        assert a == pytest.approx(b, rel=1e-9, abs=1e-9), (REML, a, b)


@_settings(25)
@given(tame_case(), st.sampled_from([2.0**-20, 2.0**7, 1e-3, 7.3, 1e6]))
def test_a_scale_of_the_response_moves_the_objective_by_its_jacobian(case, k):
    # y -> k y: the ML deviance gains 2 n log k, the REML criterion 2 (n - p) log k; β scales by k
    df, formula, kw, theta, _ = case
    for REML in (True, False):
        a, d = _objective(formula, df.assign(y=df.y * k, o=df.o * k), REML, theta, **kw)
        b, d0 = _objective(formula, df, REML, theta, **kw)
        jac = 2 * (d.n - (d.p if REML else 0)) * np.log(k)
        assert a == pytest.approx(b + jac, rel=1e-11, abs=1e-9), (REML, a, b + jac)
    np.testing.assert_allclose(_beta_at(d, theta), k * _beta_at(d0, theta), rtol=1e-9, atol=1e-12 * k)


def _columns_of(d, var: str) -> np.ndarray:
    """Which columns of X are linear in the variable ``var`` (``v``, ``v:x``, ``v:fq``)."""
    return np.array([var in nm.split(":") for nm in d.X_names])


@_settings(25)
@given(tame_case(), st.sampled_from([2.0**-30, 2.0**12, 1e-5, 3.7, 1e200]))
def test_a_scale_of_a_column_scales_its_coefficients(case, k):
    # v -> k v: β_v -> β_v / k (exactly for a power of two), the ML deviance unchanged, the REML
    # criterion + 2 log k per column of X that v enters
    df, formula, kw, theta, _ = case
    for REML in (True, False):
        a, d = _objective(formula, df.assign(v=df.v * k), REML, theta, **kw)
        b, d0 = _objective(formula, df, REML, theta, **kw)
        cols = _columns_of(d, "v")
        jac = 2 * cols.sum() * np.log(k) if REML else 0.0
        assert a == pytest.approx(b + jac, rel=1e-11, abs=1e-9), (REML, a, b + jac)
    beta, beta0 = _beta_at(d, theta), _beta_at(d0, theta)
    if np.log2(k) % 1 == 0:  # a power of two: the engine sees the same numbers
        np.testing.assert_array_equal(beta[cols] * k, beta0[cols])
        np.testing.assert_array_equal(beta[~cols], beta0[~cols])
    else:
        np.testing.assert_allclose(beta[cols] * k, beta0[cols], rtol=1e-9)
        np.testing.assert_allclose(beta[~cols], beta0[~cols], rtol=1e-9, atol=1e-9 * np.abs(beta0).max())


@_settings(25)
@given(tame_case(), st.sampled_from([1e3, -1e6, 1e9, 1.7e9]))
def test_a_shift_of_a_column_leaves_the_objective(case, c):
    df, formula, kw, theta, _ = case
    # v in an interaction with a continuous covariate (v:x) is centred against the binary columns only,
    # so (v + c):x keeps c·x: test_a_shifted_column_in_a_continuous_interaction below
    formula = formula.replace("v:x + v + x", "f + v:f + x")
    for REML in (True, False):
        a, d = _objective(formula, df.assign(v=df.v + c), REML, theta, **kw)
        b, d0 = _objective(formula, df.assign(v=(df.v + c) - c), REML, theta, **kw)
        assert a == pytest.approx(b, rel=1e-9, abs=1e-9), (REML, a, b)
    cols = _columns_of(d, "v")
    np.testing.assert_allclose(_beta_at(d, theta)[cols], _beta_at(d0, theta)[cols], rtol=1e-7, atol=1e-9)


@_settings(25)
@given(tame_case())
def test_the_objective_ignores_row_order(case):
    df, formula, kw, theta, rng = case
    perm = rng.permutation(len(df))
    for REML in (True, False):
        a, _ = _objective(formula, df, REML, theta, **kw)
        b, _ = _objective(formula, df.iloc[perm], REML, theta, **kw)
        assert a == pytest.approx(b, rel=1e-10), (REML, a, b)


@_settings(25)
@given(tame_case())
def test_the_objective_ignores_level_labels(case):
    # grouping levels renamed (to other strings, or to numbers in another order) and the factor's
    # levels renamed (its reference level may change: the same column space, unimodular change of basis)
    df, formula, kw, theta, rng = case
    la, lb = sorted(df.a.unique()), sorted(df.b.unique())
    to_a = dict(zip(la, [[f"level {i}" for i in rng.permutation(len(la))], list(rng.permutation(len(la)) * 7)][rng.integers(2)]))
    to_b = dict(zip(lb, [f"B{i}" for i in rng.permutation(len(lb))]))
    to_f = dict(zip("pqr", [["x", "y", "z"], ["zz", "a", "m"], ["1", "0", "2"]][rng.integers(3)]))
    renamed = df.assign(a=df.a.map(to_a), b=df.b.map(to_b), f=df.f.map(to_f))
    for REML in (True, False):
        a, _ = _objective(formula, df, REML, theta, **kw)
        b, _ = _objective(formula, renamed, REML, theta, **kw)
        assert a == pytest.approx(b, rel=1e-10), (REML, a, b)


@_settings(15)
@given(tame_case())
def test_weights_and_offset_series_align_by_label(case):
    df, formula, kw, theta, rng = case
    w = pd.Series(df.w.to_numpy(), index=df.index)
    o = pd.Series(df.o.to_numpy(), index=df.index)
    perm = rng.permutation(len(df))
    extra = pd.Series([5.0, 7.0], index=[-1, -2])  # labels the data lack are ignored
    for REML in (True, False):
        a, _ = _objective(formula, df, REML, theta, weights=w.to_numpy(), offset=o.to_numpy())
        b, _ = _objective(formula, df, REML, theta, weights=w.iloc[perm], offset=pd.concat([o.iloc[perm], extra]))
        assert a == b
    m0 = _quiet(slm.lmer, formula, df, weights=w.to_numpy(), offset=o.to_numpy())
    m1 = _quiet(slm.lmer, formula, df, weights=w.iloc[perm], offset=o.iloc[perm])
    assert m1.objective == m0.objective and np.array_equal(m1.theta, m0.theta)
    assert np.array_equal(m1.fixef, m0.fixef) and np.array_equal(m1.se, m0.se)
    # a Series that lacks some of the data's labels is refused, never taken by position
    drop = int(rng.integers(len(df)))
    with pytest.raises(slm.DataError, match="weights.*index lacks 1 "):
        slm.design(formula, df, weights=w.iloc[perm].drop(df.index[drop]))
    with pytest.raises(slm.DataError, match="offset.*index lacks"):
        slm.design(formula, df, offset=pd.Series(o.to_numpy(), index=df.index + 10**6))
    # duplicated labels cannot be matched
    dup = pd.Series(w.to_numpy(), index=np.zeros(len(df), dtype=int))
    with pytest.raises(slm.DataError, match="duplicated"):
        slm.design(formula, df, weights=dup)


def test_power_of_two_scales_give_the_same_fit_exactly():
    """A fit, not just the objective: y and a column scaled by powers of two reach the engine as
    the same numbers, so the search takes the same path (ML: no constant added to the objective)."""
    rng = np.random.default_rng(11)
    n = 60
    df = pd.DataFrame({"a": np.repeat([f"a{i}" for i in range(6)], 10), "x": rng.normal(size=n),
                       "v": rng.uniform(-1, 3, n)})
    df["y"] = rng.normal(size=n) + df.x + np.repeat(rng.normal(size=6), 10)
    f = "y ~ v + x + (x | a)"
    m0 = _quiet(slm.lmer, f, df, REML=False)
    m = _quiet(slm.lmer, f, df.assign(v=df.v * 2.0**-7), REML=False)
    np.testing.assert_array_equal(m.theta, m0.theta)
    np.testing.assert_array_equal(m.fixef.to_numpy() * [1.0, 2.0**-7, 1.0], m0.fixef.to_numpy())
    np.testing.assert_array_equal(m.se.to_numpy() * [1.0, 2.0**-7, 1.0], m0.se.to_numpy())
    assert m.objective == m0.objective and m.sigma == m0.sigma
    # where the objective moves by a constant (y scaled; REML and a column scaled) the search may
    # round otherwise: the same optimum, the coefficients scaled
    for REML, y_k, v_k in ((False, 2.0**10, 1.0), (True, 1.0, 3.7), (True, 1e-3, 2.0**5)):
        r0 = _quiet(slm.lmer, f, df, REML=REML)
        r = _quiet(slm.lmer, f, df.assign(y=df.y * y_k, v=df.v * v_k), REML=REML)
        jac = 2 * (n - (3 if REML else 0)) * np.log(y_k) + (2 * np.log(v_k) if REML else 0.0)
        assert r.objective == pytest.approx(r0.objective + jac, rel=1e-12)
        np.testing.assert_allclose(r.theta, r0.theta, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(r.fixef.to_numpy() * [1.0, v_k, 1.0] / y_k, r0.fixef.to_numpy(), rtol=1e-6)
        assert r.sigma == pytest.approx(r0.sigma * y_k, rel=1e-7)


def test_a_shifted_column_in_a_continuous_interaction():
    # (D + c):x ≈ c·x: the column is also conditioned on the continuous columns before it when it is
    # nearly collinear with them (before: c = 1e6 put the REML criterion 2e-8 relative off)
    ss = slm.datasets.load("sleepstudy")
    ss = ss.assign(x=np.random.default_rng(0).normal(size=len(ss)))
    f = "Reaction ~ D:x + D + x + (Days | Subject)"
    th = np.array([0.9, 0.02, 0.25])
    for c in (1e3, 1e6):
        with warnings.catch_warnings():  # lme4's checkScaleX at c = 1e6: D:x's SD is ~c times x's
            warnings.simplefilter("ignore", slm.ScaleWarning)
            a = slm.design(f, ss.assign(D=ss.Days + c))
        b = slm.design(f, ss.assign(D=(ss.Days + c) - c))
        assert a.X_names == b.X_names == ["(Intercept)", "D", "x", "D:x"]
        for REML in (True, False):
            assert a.objective_function(REML)(th) == pytest.approx(b.objective_function(REML)(th), rel=1e-12)
    # at c = 1e9 the column is within R's rank tolerance (1e-7) of c·x: dropped, as lme4's qr() drops
    # it, and said so — the rank test cannot tell a shift's collinearity from any other
    with pytest.warns(slm.RankDeficiencyWarning, match="D:x"):
        slm.design(f, ss.assign(D=ss.Days + 1e9))
