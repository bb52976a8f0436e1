"""The fit's settings as one frozen record (FitControl, lme4's lmerControl), validated once."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

import sparselmm as slm
from conftest import load_data

F = "Reaction ~ Days + (Days | Subject)"


def test_defaults_are_lme4s_and_the_record_is_frozen():
    c = slm.FitControl()
    assert (c.optimizer, dict(c.options), c.check, c.start, c.verbose) == ("auto", {}, "auto", None, False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.optimizer = "bobyqa"  # type: ignore[misc]


def test_make_validates_every_setting():
    c = slm.FitControl.make(optimizer="bobyqa", options={"maxfun": 50, "rhobeg": 0.1}, check=False)
    assert c.optimizer == "bobyqa" and dict(c.options) == {"maxfev": 50, "initial_step": 0.1} and c.check is False
    with pytest.raises(slm.ArgumentError, match=r"unknown fit setting 'maxfun'; the settings are: optimizer, options, check, start, verbose"):
        slm.FitControl.make(maxfun=5)
    with pytest.raises(slm.ArgumentError, match=r"unknown option 'maxfn' for optimizer 'bobyqa'; it accepts: maxfev \(or maxeval, maxfun\)"):
        slm.FitControl.make(optimizer="bobyqa", options={"maxfn": 5})
    with pytest.raises(slm.ArgumentError, match="optimizer"):
        slm.FitControl.make(optimizer="newton")
    with pytest.raises(slm.ArgumentError, match="verbose"):
        slm.FitControl.make(verbose="yes")
    with pytest.raises(slm.ArgumentError, match="control must be a FitControl"):
        slm.FitControl.make({"optimizer": "bobyqa"})  # type: ignore[arg-type]


def test_an_unknown_keyword_of_lmer_is_refused_by_name():
    ss = load_data("sleepstudy")
    with pytest.raises(slm.ArgumentError, match=r"lmer\(\) got an unknown keyword 'maxfun'; its keywords are formula, data, "
                       r"REML, weights, offset, na_action, contrasts, control and the fit settings optimizer, options"):
        slm.lmer(F, ss, maxfun=5)
    with pytest.raises(slm.ArgumentError, match=r"lmer\(\) got an unknown keyword 'weight'"):
        slm.lmer(F, ss, weight="Days")
    d = slm.design(F, ss)
    with pytest.raises(slm.ArgumentError, match=r"fit_design\(\) got an unknown keyword 'REML_criterion'"):
        slm.fit_design(d, REML_criterion=True)


def test_control_and_keywords_give_the_same_fit_and_keywords_override():
    ss = load_data("sleepstudy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = slm.lmer(F, ss, optimizer="bobyqa", check=False)
        b = slm.lmer(F, ss, control=slm.FitControl.make(optimizer="bobyqa", check=False))
        c = slm.lmer(F, ss, control=slm.FitControl.make(optimizer="bobyqa", check=False), optimizer="nelder_mead")
    assert a.optsum.feval == b.optsum.feval and a.objective == b.objective
    np.testing.assert_array_equal(a.theta, b.theta)
    assert c.optsum.optimizer == "nelder_mead"


def test_an_evaluation_limit_is_honoured_and_reported():
    ss = load_data("sleepstudy")
    with pytest.warns(slm.ConvergenceWarning, match="evaluation limit"):
        m = slm.lmer(F, ss, optimizer="bobyqa", options={"maxfun": 5}, check=False)
    assert m.optsum.feval <= 6  # the limit, and the final point's evaluation
    with pytest.warns(slm.ConvergenceWarning, match="evaluation limit"):
        slm.lmer(F, ss, options={"maxfun": 5})  # "auto": the limit holds for its BOBYQA pass


def test_a_start_is_checked_against_the_design():
    ss = load_data("sleepstudy")
    with pytest.raises(slm.ArgumentError, match="start must be an array of real numbers"):
        slm.FitControl.make(start="abc")
    th = np.array([0.9, 0.0, 0.2])
    c = slm.FitControl.make(start=th)
    th[0] = 5.0  # the record keeps its own copy
    assert c.start[0] == 0.9 and not c.start.flags.writeable
    with pytest.raises(slm.ArgumentError, match="start"):
        slm.lmer(F, ss, start=[1.0, 0.0])
    m = slm.lmer(F, ss, control=slm.FitControl.make(start=[0.9, 0.0, 0.2]))
    ref = slm.lmer(F, ss)
    assert m.objective == pytest.approx(ref.objective, rel=1e-10)


def test_refit_keeps_the_optimizer():
    ss = load_data("sleepstudy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = slm.lmer(F, ss, optimizer="nelder_mead")
    assert m.refit(REML=False).optsum.optimizer == "nelder_mead"


def test_convergence_warnings_point_at_the_callers_line():
    ss = load_data("sleepstudy")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        slm.lmer(F, ss, optimizer="bobyqa", options={"maxfun": 5}, check=False)
        slm.fit_design(slm.design(F, ss), optimizer="bobyqa", options={"maxfun": 5}, check=False)
    conv = [x for x in w if issubclass(x.category, slm.ConvergenceWarning)]
    assert len(conv) == 2 and all(x.filename == __file__ for x in conv)
