"""Argument checks (sparselmm.validate) and minimize_theta's refusals: one ArgumentError
that names the argument and the value, never a silent misreading or a numpy/scipy/NLopt
traceback."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import sparselmm as slm
from sparselmm import validate
from sparselmm.fitting.optimize import OPTIMIZERS, minimize_theta

from conftest import load_data

F = "Reaction ~ Days + (Days | Subject)"


def refused(match: str, func, *args, **kw) -> str:
    """The message of the ArgumentError that ``func(*args, **kw)`` raises (matching ``match``)."""
    with pytest.raises(slm.ArgumentError, match=match) as ei:
        func(*args, **kw)
    assert isinstance(ei.value, slm.SparseLMMError) and isinstance(ei.value, ValueError)
    return str(ei.value)


def test_argument_error_is_exported_in_the_family():
    assert issubclass(slm.ArgumentError, slm.SparseLMMError)
    assert "ArgumentError" in slm.__all__


# ---- flags ------------------------------------------------------------------------------
@pytest.mark.parametrize("value, expected", [(True, True), (False, False), (np.bool_(True), True), (np.False_, False)])
def test_flag_accepts_booleans(value, expected):
    out = validate.flag(value, "REML")
    assert out is expected  # a Python bool


@pytest.mark.parametrize("value", ["False", "yes", "", 2, 1, 0, None, 1.0, [True]])
def test_flag_refuses_everything_else(value):
    msg = refused("REML", validate.flag, value, "REML")
    assert repr(value) in msg and "True or False" in msg


@pytest.mark.parametrize("value, expected", [(True, True), (np.True_, True), (False, False), ("auto", "auto")])
def test_flag_or_auto_accepts(value, expected):
    assert validate.flag_or_auto(value, "check") == expected


@pytest.mark.parametrize("value", ["yes", "Auto", None, 1, 0.0])
def test_flag_or_auto_refuses(value):
    msg = refused("check", validate.flag_or_auto, value, "check")
    assert repr(value) in msg and "'auto'" in msg


# ---- counts, numbers, seeds, levels ---------------------------------------------------------
def test_count_accepts_integers():
    assert validate.count(3, "nsim") == 3
    out = validate.count(np.int64(500), "nsim")
    assert out == 500 and type(out) is int
    assert validate.count(0, "n", minimum=0) == 0


@pytest.mark.parametrize("value", [-1, 0, 2.5, 2.0, True, "3", None, np.float64(3.0)])
def test_count_refuses_non_positive_and_non_integers(value):
    msg = refused("nsim must be a positive integer", validate.count, value, "nsim")
    assert repr(value) in msg


def test_count_maximum():
    msg = refused("maxfev", validate.count, 11, "maxfev", 1, 10)
    assert "from 1 to 10" in msg and "11" in msg


@pytest.mark.parametrize("value", [None, 0, 42, np.int32(7), 2**70])
def test_seed_accepts_none_and_non_negative_integers(value):
    out = validate.seed(value)
    assert out == value and (out is None or type(out) is int)
    np.random.default_rng(out)  # and numpy takes it


def test_seed_passes_numpy_generators_through():
    g = np.random.default_rng(1)
    assert validate.seed(g) is g
    ss = np.random.SeedSequence(3)
    assert validate.seed(ss) is ss


@pytest.mark.parametrize("value", ["abc", -1, 1.5, True, [1, 2]])
def test_seed_refuses(value):
    msg = refused("seed must be None, a non-negative integer", validate.seed, value)
    assert repr(value) in msg


@pytest.mark.parametrize("value", [0.95, 0.5, np.float64(0.9), 1e-9])
def test_probability_accepts_levels_in_the_open_interval(value):
    out = validate.probability(value, "level")
    assert out == pytest.approx(float(value)) and type(out) is float


@pytest.mark.parametrize("value", ["0.95", None, True, 0, 1, 0.0, 1.0, -0.1, np.nan, np.inf, 95])
def test_probability_refuses(value):
    msg = refused("level must be a number strictly between 0 and 1", validate.probability, value, "level")
    assert repr(value) in msg


def test_probability_hints_at_percentages():
    assert "write 0.95" in refused("level", validate.probability, 95, "level")


def test_number():
    assert validate.number(0, "boundary_tol", minimum=0.0) == 0.0
    refused("boundary_tol must be a non-negative finite number", validate.number, -1e-9, "boundary_tol", minimum=0.0)
    refused("step must be a positive finite number", validate.number, 0, "step", minimum=0.0, strict=True)
    refused("x must be a finite real number", validate.number, np.nan, "x")
    refused("x must be a finite real number", validate.number, "1", "x")
    refused("x must be a finite real number", validate.number, 10**400, "x")


# ---- choices and types ------------------------------------------------------------------------
DDF = {
    "satterthwaite": "satterthwaite", "satt": "satterthwaite",
    "kenward-roger": "kenward-roger", "kr": "kenward-roger", "kenward-rogers": "kenward-roger",
    "wald": "wald", "z": "wald", "normal": "wald",
}


@pytest.mark.parametrize(
    "value, expected",
    [("satterthwaite", "satterthwaite"), ("Kenward_Roger", "kenward-roger"), ("KR", "kenward-roger"),
     ("WALD", "wald"), ("z", "wald")],
)
def test_choice_folds_case_and_separators_and_maps_aliases(value, expected):
    assert validate.choice(value, "ddf", DDF) == expected


def test_choice_refuses_with_the_canonical_names():
    msg = refused("unknown ddf 'foo'", validate.choice, "foo", "ddf", DDF)
    assert "'satterthwaite', 'kenward-roger', 'wald'" in msg and "'satt'" not in msg
    msg = refused("ddf must be one of", validate.choice, None, "ddf", DDF)
    assert "None (NoneType)" in msg


def test_choice_exact():
    assert validate.choice("nelder_mead", "optimizer", OPTIMIZERS, fold=False) == "nelder_mead"
    refused("unknown optimizer 'BOBYQA'", validate.choice, "BOBYQA", "optimizer", OPTIMIZERS, fold=False)
    assert validate.choice("Boot", "method", ("profile", "wald", "boot")) == "boot"


def test_instance():
    assert validate.instance(3, "x", int, "an int") == 3
    msg = refused("anova's argument 2 must be a fitted LinearMixedModel", validate.instance, 3, "anova's argument 2",
                  slm.LinearMixedModel, "a fitted LinearMixedModel")
    assert "3 (int)" in msg


# ---- arrays ---------------------------------------------------------------------------------------
def test_real_array_accepts_lists_arrays_series():
    import pandas as pd

    for v in ([1, 2.5], np.array([1, 2]), pd.Series([1.0, 2.0]), (1, 2)):
        out = validate.real_array(v, "new_y")
        assert out.dtype == np.float64 and out.shape == (2,)
    assert validate.real_array(np.ones((3, 1)), "new_y", flatten=True).shape == (3,)
    assert np.isnan(validate.real_array([1, np.nan], "new_y", finite=False)[1])


@pytest.mark.parametrize(
    "value, match",
    [("abc", "new_y must be an array of real numbers"), (None, "new_y must be an array of real numbers"),
     ([1, None], "entry 1 is None"), ([True, False], "booleans"), (["1", "2"], "strings"),
     ([1j, 2], "complex"), (np.ones((2, 2)), "one-dimensional"), ([1.0, np.inf], r"new_y\[1\] is inf")],
)
def test_real_array_refuses(value, match):
    refused(match, validate.real_array, value, "new_y")


def test_real_array_length():
    refused("new_y must have 3 values, got 2", validate.real_array, [1, 2], "new_y", length=3)


def test_theta_start():
    lo, hi = np.array([0.0, -np.inf, -1.0]), np.array([np.inf, np.inf, 1.0])
    out = validate.theta_start([1, -2, 0.5], 3, lo, hi)
    np.testing.assert_array_equal(out, [1.0, -2.0, 0.5])
    # rounding beyond a bound (θ / scale · scale) is moved onto it, a real violation refused
    np.testing.assert_array_equal(validate.theta_start([-1e-14, 0, 1 + 1e-13], 3, lo, hi), [0.0, 0.0, 1.0])
    msg = refused("start lies outside the bounds", validate.theta_start, [-0.5, 0, 2], 3, lo, hi)
    assert "start[0] = -0.5 is below its lower bound 0" in msg and "start[2] = 2 is above its upper bound 1" in msg
    assert "got 2" in refused("start must have one value per θ entry \\(3", validate.theta_start, [1, 2], 3, lo, hi)
    refused("start must be an array of real numbers, got 'a'", validate.theta_start, "a", 3, lo, hi)
    refused(r"start\[1\] is nan", validate.theta_start, [1, np.nan, 0], 3, lo, hi)
    np.testing.assert_array_equal(validate.theta_start(0.5, 1, [0.0], [np.inf]), [0.5])  # one θ: a scalar


def test_theta_bounds():
    lo, hi = validate.theta_bounds([0, -np.inf])
    np.testing.assert_array_equal(hi, [np.inf, np.inf])
    refused("lower and upper must have one length", validate.theta_bounds, [0, 0], [1])
    refused("lower must not hold NaN", validate.theta_bounds, [0, np.nan])
    refused(r"the bounds of θ\[0\] are empty", validate.theta_bounds, [1.0], [0.0])
    refused("lower must be an array of real numbers", validate.theta_bounds, "0")


# ---- optimizer options ----------------------------------------------------------------------------
def test_every_optimizer_has_its_option_table():
    assert set(OPTIMIZERS) == {"auto", "bobyqa", "cobyqa", "nelder_mead", "lbfgsb"}
    for opt in OPTIMIZERS:
        assert validate.accepted_options(opt)
        assert validate.optimizer_options(opt, None) == {}


@pytest.mark.parametrize(
    "optimizer, given, expected",
    [
        ("bobyqa", {"maxfun": 50}, {"maxfev": 50}),
        ("auto", {"maxeval": np.int64(50), "rhobeg": 0.1}, {"maxfev": 50, "initial_step": 0.1}),
        ("bobyqa", {"xtol_abs": 1e-6, "ftol_abs": 1e-6, "ftol_rel": 1e-9, "xtol_rel": 1e-7, "polish_step": 0.01},
         {"xtol_abs": 1e-6, "ftol_abs": 1e-6, "ftol_rel": 1e-9, "xtol_rel": 1e-7, "polish_step": 0.01}),
        ("cobyqa", {"maxfun": 10, "rhobeg": 0.5, "rhoend": 1e-6},
         {"maxfev": 10, "initial_tr_radius": 0.5, "final_tr_radius": 1e-6}),
        ("nelder_mead", {"maxfun": 10, "FtolAbs": 1e-5, "xatol": 1e-6, "adaptive": np.True_, "maxiter": 3},
         {"maxfev": 10, "fatol": 1e-5, "xatol": 1e-6, "adaptive": True, "maxiter": 3}),
        ("lbfgsb", {"maxfev": 10, "ftol": 1e-12, "gtol": 1e-6, "maxcor": 5, "maxls": 10, "eps": 1e-7, "maxiter": 4},
         {"maxfun": 10, "ftol": 1e-12, "gtol": 1e-6, "maxcor": 5, "maxls": 10, "eps": 1e-7, "maxiter": 4}),
    ],
)
def test_optimizer_options_canonical_copy(optimizer, given, expected):
    out = validate.optimizer_options(optimizer, given)
    assert out == expected and out is not given
    assert all(type(v) in (int, float, bool) for v in out.values())
    assert validate.optimizer_options(optimizer, out) == out  # idempotent


def test_unknown_option_lists_the_accepted_keys():
    msg = refused("unknown option 'foo' for optimizer 'bobyqa'", validate.optimizer_options, "bobyqa", {"foo": 1})
    assert "maxfev (or maxeval, maxfun)" in msg and "initial_step (or rhobeg)" in msg
    # each optimizer's own keys: scipy's xatol is not a BOBYQA setting, maxeval not L-BFGS-B's
    refused("unknown option 'xatol' for optimizer 'bobyqa'", validate.optimizer_options, "bobyqa", {"xatol": 1e-8})
    msg = refused("unknown option 'maxeval' for optimizer 'lbfgsb'", validate.optimizer_options, "lbfgsb",
                  {"maxeval": 5})
    assert "maxfun (or maxfev)" in msg


@pytest.mark.parametrize(
    "optimizer, options, match",
    [
        ("bobyqa", {"maxfev": -1}, r"options\['maxfev'\] must be an integer from 1 to 2147483647, got -1"),
        ("bobyqa", {"maxfev": 0}, r"options\['maxfev'\] must be an integer"),
        ("bobyqa", {"maxfev": "a"}, r"options\['maxfev'\] must be an integer .* got 'a' \(str\)"),
        ("bobyqa", {"maxfun": 1e5 + 0.5}, r"options\['maxfun'\] \(read as 'maxfev'\) must be an integer"),
        ("bobyqa", {"maxfev": 2**31}, r"options\['maxfev'\]"),
        ("bobyqa", {"initial_step": -1}, r"options\['initial_step'\] must be a positive finite number, got -1"),
        ("bobyqa", {"initial_step": 0}, r"options\['initial_step'\] must be a positive finite number, got 0"),
        ("bobyqa", {"xtol_abs": np.nan}, r"options\['xtol_abs'\]"),
        ("bobyqa", {"ftol_rel": True}, r"options\['ftol_rel'\] .* got True"),
        ("nelder_mead", {"adaptive": "yes"}, r"options\['adaptive'\] must be True or False, got 'yes'"),
        ("cobyqa", {"maxfev": 2.5}, r"options\['maxfev'\]"),
        ("cobyqa", {"final_tr_radius": 0.5}, "initial trust-region radius must be ≥ its final radius"),
        ("lbfgsb", {"gtol": "small"}, r"options\['gtol'\]"),
    ],
)
def test_option_values_checked(optimizer, options, match):
    refused(match, validate.optimizer_options, optimizer, options)


def test_options_must_be_a_mapping_with_string_keys():
    refused("options must be a dict .* got 'x' \\(str\\)", validate.optimizer_options, "bobyqa", "x")
    refused("options must be a dict", validate.optimizer_options, "bobyqa", [("maxfev", 3)])
    refused("options keys must be strings", validate.optimizer_options, "bobyqa", {1: 3})


def test_one_setting_under_two_names_is_refused():
    msg = refused("one setting", validate.optimizer_options, "bobyqa", {"maxfev": 5, "maxfun": 6})
    assert "'maxfev'" in msg and "'maxfun'" in msg


def test_unknown_optimizer():
    refused("unknown optimizer 'newton'", validate.optimizer_options, "newton", {})


# ---- minimize_theta refuses before anything is evaluated ------------------------------------------
class Quadratic:
    """``10 + Σ (θ - 0.5)²``, counting its evaluations."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, th: np.ndarray) -> float:
        self.n += 1
        return 10.0 + float(np.sum((np.asarray(th) - 0.5) ** 2))


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"options": {"foo": 1}}, "unknown option 'foo'"),
        ({"options": {"maxfev": -1}}, r"options\['maxfev'\]"),
        ({"options": {"initial_step": -1}}, r"options\['initial_step'\]"),
        ({"options": {"initial_step": 0}}, r"options\['initial_step'\]"),
        ({"options": "x"}, "options must be a dict"),
        ({"options": {"maxfev": "a"}}, r"options\['maxfev'\]"),
        ({"start": "a"}, "start must be an array of real numbers"),
        ({"start": [1.0, 1.0, 1.0]}, "start must have one value per θ entry"),
        ({"start": [1.0, 1.0, 1.0], "optimizer": "nelder_mead"}, "start must have one value per θ entry"),
        ({"start": [1.0, 1.0, 1.0], "optimizer": "cobyqa"}, "start must have one value per θ entry"),
        ({"start": [1.0, 1.0, 1.0], "scale": np.ones(2)}, "start must have one value per θ entry"),
        ({"start": [-1.0, 1.0]}, "start lies outside the bounds"),
        ({"start": [np.nan, 1.0], "optimizer": "lbfgsb"}, "start must be finite"),
        ({"scale": np.ones(3)}, "scale must have 2 values"),
        ({"scale": [1.0, 0.0]}, r"scale must hold one positive number per θ entry; scale\[1\] is 0"),
        ({"check": "yes"}, "check must be True, False or 'auto', got 'yes'"),
        ({"restart_edge": "no"}, "restart_edge must be True or False"),
        ({"boundary_tol": -1}, "boundary_tol"),
        ({"optimizer": "newton"}, "unknown optimizer 'newton'"),
        ({"optimizer": None}, "optimizer must be one of"),
        ({"optimizer": "cobyqa", "options": {"rhoend": 1.0}}, "initial trust-region radius"),
        ({"lower": np.zeros(3)}, "start must have one value per θ entry \\(3"),
    ],
)
def test_minimize_theta_refuses_bad_arguments_before_evaluating(kw, match):
    f = Quadratic()
    kw = dict(kw)
    start = kw.pop("start", np.ones(2))
    lower = kw.pop("lower", np.zeros(2))
    refused(match, minimize_theta, f, start, lower, **kw)
    assert f.n == 0  # nothing reached the objective, scipy or NLopt


def test_minimize_theta_reads_lme4s_maxfun():
    # the limit is honoured (it was ignored): each BOBYQA pass (the search, then the polish that
    # check=False brings) stops at 5 evaluations and says so
    o = minimize_theta(Quadratic(), np.ones(2), np.zeros(2), options={"maxfun": 5}, check=False, restart_edge=False)
    assert "maxeval reached" in o.message and o.feval <= 1 + 2 * 5
    assert o.warnings and "evaluation limit" in o.warnings[0]
    full = minimize_theta(Quadratic(), np.ones(2), np.zeros(2), check=False, restart_edge=False)
    assert full.feval > o.feval and not full.warnings


@pytest.mark.parametrize("optimizer", ["cobyqa", "nelder_mead"])
def test_scipy_optimizers_read_maxfun(optimizer):
    f = Quadratic()
    minimize_theta(f, np.ones(3), np.zeros(3), optimizer=optimizer, options={"maxfun": 8}, check=False,
                   restart_edge=False)
    assert f.n <= 8 + 2  # the start, the pass, the final evaluation


def test_minimize_theta_auto_is_bobyqa():
    a = minimize_theta(Quadratic(), np.ones(2), np.zeros(2), optimizer="auto")
    b = minimize_theta(Quadratic(), np.ones(2), np.zeros(2), optimizer="bobyqa")
    assert a.optimizer == "bobyqa"
    np.testing.assert_array_equal(a.theta, b.theta)
    assert a.feval == b.feval


def test_minimize_theta_numpy_bool_check_runs_the_check():
    o = minimize_theta(Quadratic(), np.ones(2), np.zeros(2), check=np.True_)
    assert o.newton_decrement is not None  # was: np.True_ is not True, so no check ran
    o = minimize_theta(Quadratic(), np.ones(2), np.zeros(2), check=np.False_)
    assert o.newton_decrement is None


def test_bobyqa_reads_xtol_rel():
    loose = minimize_theta(Quadratic(), np.full(3, 2.0), np.zeros(3), options={"xtol_rel": 0.3}, check=False,
                           restart_edge=False)
    tight = minimize_theta(Quadratic(), np.full(3, 2.0), np.zeros(3), check=False, restart_edge=False)
    assert loose.feval < tight.feval


# ---- through lmer (the checks in minimize_theta, with the fit's own optimizer name) --------------
@pytest.fixture
def ss():
    return load_data("sleepstudy").copy()


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"options": {"foo": 1}}, "unknown option 'foo'"),
        ({"options": {"maxfev": -1}}, r"options\['maxfev'\]"),
        ({"options": {"initial_step": 0}}, r"options\['initial_step'\]"),
        ({"options": {"maxfev": "a"}}, r"options\['maxfev'\]"),
        ({"start": [1.0, 0.0]}, "start must have one value per θ entry \\(3"),
        ({"start": [1.0, 0.0, 1.0, 1.0], "optimizer": "nelder_mead"}, "start must have one value per θ entry"),
        ({"start": [1.0, 0.0, 1.0, 1.0], "optimizer": "cobyqa"}, "start must have one value per θ entry"),
        ({"start": [-1.0, 0.0, 1.0], "optimizer": "bobyqa"}, r"start\[0\] = -1 is below its lower bound 0"),
    ],
)
def test_lmer_refuses_bad_options_and_start(ss, kw, match):
    refused(match, slm.lmer, F, ss, **kw)


def test_lmer_accepts_lme4s_maxfun(ss):
    with pytest.warns(slm.ConvergenceWarning, match="evaluation limit"):
        m = slm.lmer(F, ss, options={"maxfun": 6})
    assert not m.converged
    with warnings.catch_warnings():
        warnings.simplefilter("error", slm.ConvergenceWarning)
        assert slm.lmer(F, ss, options={"maxfun": 10000}).converged
