"""R's GLM families (sparselmm.families) against R 4.2's stats: every family x link pair, the
links on grids reaching their clamps (eta = ±30, ±800, mu at 0 and 1), the deviance residuals,
the AIC of cases built to reach each branch of R's dbinom, dpois and dgamma, and the
initialize expressions; then the refusals (DataError, ArgumentError) and the interface.

The reference is tests/reference/families.json (tests/reference/families_reference.R, numbers
with 17 significant digits).  Measured against it: most values are R's to the bit; the rest
differ by one or two units in the last place (numpy's exp, log, pow and tan are not glibc's
to the last bit), the largest relative difference 6e-16 (a Gamma AIC).  RTOL below is 1e-14,
a margin of ~20x for other CPUs' vectorised math.
"""

from __future__ import annotations

import ast
import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest

import sparselmm as slm
from sparselmm import families as F
from sparselmm.families import Family, Link, family, make_link

REF = json.loads((Path(__file__).parent / "reference" / "families.json").read_text())
RTOL = 1e-14

pytestmark = pytest.mark.filterwarnings("error")  # no stray numpy (or other) warnings anywhere


def A(v) -> np.ndarray:
    """A float array of a JSON number or list (R's "Inf", "-Inf", "NaN", "NA" strings as floats)."""
    items = v if isinstance(v, list) else [v]
    table = {"Inf": np.inf, "-Inf": -np.inf, "NaN": np.nan, "NA": np.nan}
    return np.array([table[x] if isinstance(x, str) else x for x in items], dtype=float)


def close(actual, expected, rtol: float = RTOL) -> None:
    """Equal to R's to ``rtol`` (relative), with R's infinities and NaN in the same places."""
    actual = np.atleast_1d(np.asarray(actual, dtype=float))
    expected = np.broadcast_to(np.asarray(expected, dtype=float), actual.shape)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=0, equal_nan=True)


# ----------------------------------------------------------------------------------------
# numbers against R


def test_reference_is_r_4_2():
    assert REF["versions"]["R"].startswith("R version 4.2")


def test_constants_are_r_s_to_the_bit():
    c = REF["constants"]
    assert F.DBL_EPSILON == c["eps"]
    assert F.PROBIT_THRESH == c["probit_thresh"]  # -qnorm(.Machine$double.eps)
    assert F.CAUCHIT_THRESH == c["cauchit_thresh"]  # -qcauchy(.Machine$double.eps)


@pytest.mark.parametrize("link", sorted(REF["links"]))
def test_link_functions_match_r(link):
    ref = REF["links"][link]
    lk = make_link(link)
    eta, mu = A(ref["eta"]), A(ref["mu"])
    close(lk.linkinv(eta), A(ref["linkinv"]))
    close(lk.mu_eta(eta), A(ref["mu_eta"]))
    close(lk.linkfun(mu), A(ref["linkfun"]))
    assert lk.valideta(eta) is ref["valideta"]
    for case in ref["valideta_cases"]:
        assert lk.valideta(A(case["eta"])) is case["value"], case


def test_link_grids_reach_the_clamps():
    # the grids hold what the clamps are for: |eta| > 30 (logit's C code), ±800 (exp overflow),
    # the probit threshold itself, mu at 0 and 1
    eta = A(REF["links"]["logit"]["eta"])
    assert {-800.0, 800.0, -30.5, 30.5, -30.0, 30.0} <= set(eta)
    assert -F.PROBIT_THRESH in set(eta)
    assert {0.0, 1.0} <= set(A(REF["links"]["logit"]["mu"]))
    logit = make_link("logit")
    assert logit.linkinv(np.array([-800.0]))[0] == F.DBL_EPSILON / (1 + F.DBL_EPSILON)
    assert logit.mu_eta(np.array([800.0]))[0] == F.DBL_EPSILON
    assert make_link("cloglog").linkinv(np.array([800.0]))[0] == 1 - F.DBL_EPSILON
    assert make_link("log").linkinv(np.array([-800.0]))[0] == F.DBL_EPSILON


PAIRS = [(p["family"], p["link"]) for p in REF["pairs"]]


def test_every_family_link_pair_is_in_the_reference():
    assert sorted(PAIRS) == sorted((f, lk) for f, links in F.FAMILY_LINKS.items() for lk in links)


@pytest.mark.parametrize("i", range(len(PAIRS)), ids=[f"{f}-{lk}" for f, lk in PAIRS])
def test_family_link_pair_matches_r(i):
    ref = REF["pairs"][i]
    fam = family(ref["family"], ref["link"])
    eta, mu, y, wt, n = (A(ref[k]) for k in ("eta", "mu", "y", "wt", "n"))
    close(fam.linkinv(eta), mu)
    close(fam.linkfun(mu), A(ref["linkfun"]))
    close(fam.mu_eta(eta), A(ref["mu_eta"]))
    close(fam.variance(mu), A(ref["variance"]))
    dr = fam.dev_resids(y, mu, wt)
    close(dr, A(ref["dev_resids"]))
    close(F._rsum(dr), A(ref["dev"]))
    close(fam.aic(y, n, mu, wt, A(ref["dev"])[0]), A(ref["aic"]))
    assert fam.validmu(mu) is ref["validmu"]
    assert fam.valideta(eta) is ref["valideta"]
    assert fam.canonical is ref["canonical_link"]


@pytest.mark.parametrize("name", sorted(REF["variance"]))
def test_variance_matches_r(name):
    ref = REF["variance"][name]
    close(family(name).variance(A(ref["mu"])), A(ref["value"]))


@pytest.mark.parametrize("name", sorted(REF["dev_resids"]))
def test_dev_resids_match_r(name):
    ref = REF["dev_resids"][name]
    y, mu = A(ref["y"]), A(ref["mu"])
    if name == "binomial":
        assert {0.0, 1.0} <= set(y)
    if name == "poisson":
        assert 0.0 in set(y)
    close(family(name).dev_resids(y, mu, A(ref["wt"])), A(ref["value"]))


AIC = [(c["family"], c["case"]) for c in REF["aic"]]


@pytest.mark.parametrize("i", range(len(AIC)), ids=[f"{f}-{c}" for f, c in AIC])
def test_aic_matches_r(i):
    ref = REF["aic"][i]
    fam = family(ref["family"])
    y, n, mu, wt = (A(ref[k]) for k in ("y", "n", "mu", "wt"))
    dev = F._rsum(fam.dev_resids(y, mu, wt))
    close(dev, A(ref["dev"]))
    close(fam.aic(y, n, mu, wt, A(ref["dev"])[0]), A(ref["value"]))


def test_aic_cases_reach_the_branches():
    cases = {f"{f}-{c}" for f, c in AIC}
    for want in ["binomial-proportions", "binomial-zero_weight", "binomial-large_n_extremes",
                 "poisson-extremes", "Gamma-shape_0.3", "Gamma-shape_7.7", "Gamma-shape_600",
                 "inverse.gaussian-weights", "gaussian-weights"]:
        assert want in cases


@pytest.mark.parametrize("i", range(len(REF["initialize"])))
def test_initialize_matches_r(i):
    ref = REF["initialize"][i]
    fam = family(ref["family"], ref["link"])
    y_in = np.array(ref["y_in"], dtype=float)
    out = fam.initialize(y_in, A(ref["weights_in"]), name="resp")
    for got, key in zip(out, ("y", "weights", "n", "mustart")):
        close(got, A(ref[key]), rtol=0)


# ----------------------------------------------------------------------------------------
# the numbers beyond the reference: identities R's formulas satisfy


@pytest.mark.parametrize("link", F.LINK_NAMES)
def test_mu_eta_is_the_derivative_of_linkinv(link):
    lk = make_link(link)
    eta = {"sqrt": np.array([0.3, 1.0, 2.5]), "1/mu^2": np.array([0.3, 1.0, 2.5]),
           "inverse": np.array([-2.0, 0.3, 2.5])}.get(link, np.array([-3.0, -0.4, 0.0, 0.7, 2.5]))
    h = 1e-6
    numeric = (lk.linkinv(eta + h) - lk.linkinv(eta - h)) / (2 * h)
    np.testing.assert_allclose(lk.mu_eta(eta), numeric, rtol=1e-6)  # central differences: ~h^2 and 1e-10/h
    np.testing.assert_allclose(lk.linkfun(lk.linkinv(eta)), eta, rtol=1e-12, atol=1e-12)


def test_binomial_dev_resids_take_0_log_0_as_0():
    fam = F.binomial()
    close(fam.dev_resids([0.0, 1.0], [0.25, 0.25], [1.0, 2.0]), [-2 * np.log(0.75), -4 * np.log(0.25)])
    assert np.all(np.isfinite(fam.dev_resids([0.0, 1.0], [1e-300, 1 - 1e-16], 1.0)))


def test_aic_of_a_non_integer_count_is_infinite_as_r_s():
    # R: dpois(2.5, 2, log = TRUE) is -Inf with a warning; here the same -Inf (initialize refuses the data)
    assert F.poisson().aic([2.5], 1, [2.0], [1.0], 0.0) == np.inf


def test_scalars_and_lists_are_taken():
    fam = F.Gamma("log")
    assert fam.linkinv(0.0).shape == ()
    assert fam.linkinv([0.0, 1.0]).tolist() == [1.0, float(np.exp(1.0))]
    assert isinstance(fam.aic([1.0, 2.0], 1, [1.5, 1.5], 1.0, 0.3), float)


# ----------------------------------------------------------------------------------------
# refusals


def test_unknown_family_names_it_and_lists_the_valid_ones():
    with pytest.raises(slm.ArgumentError, match="unknown family 'negbin'") as ei:
        family("negbin")
    for name in ("binomial", "poisson", "Gamma", "inverse.gaussian", "gaussian"):
        assert repr(name) in str(ei.value)
    with pytest.raises(slm.ArgumentError, match="family"):
        family(3)  # type: ignore[arg-type]
    with pytest.raises(slm.ArgumentError, match="unknown family"):
        Family("quasi", Link("logit"))


@pytest.mark.parametrize(
    "name, link",
    [("binomial", "identity"), ("binomial", "sqrt"), ("poisson", "logit"), ("Gamma", "sqrt"),
     ("inverse_gaussian", "probit"), ("gaussian", "logit"), ("gaussian", "nonsense")],
)
def test_link_the_family_does_not_take_names_both_and_lists_the_valid_ones(name, link):
    fam = F._FAMILY_NAMES[name]
    with pytest.raises(slm.ArgumentError, match=f"link {link!r} not available for the {fam} family") as ei:
        family(name, link)
    for ok in F.FAMILY_LINKS[fam]:
        assert repr(ok) in str(ei.value)
    with pytest.raises(slm.ArgumentError, match="not available"):
        Family(fam, Link("cauchit" if fam != "binomial" else "identity"))


def test_unknown_link():
    with pytest.raises(slm.ArgumentError, match=r"unknown link 'logist'.*'1/mu\^2'"):
        make_link("logist")
    with pytest.raises(slm.ArgumentError, match="link must be one of"):
        family("binomial", link=2)  # type: ignore[arg-type]


def test_logit_of_a_value_outside_0_1_is_refused_as_in_r():
    with pytest.raises(slm.ArgumentError, match=r"mu: value 1.5 out of range \(0, 1\)"):
        F.binomial().linkfun([0.5, 1.5])


def test_binomial_response_outside_0_1_names_the_column():
    with pytest.raises(slm.DataError, match=r"binomial response 'use'.*0 <= y <= 1.*first 1.5 at position 2"):
        F.binomial().initialize([0, 1, 1.5, 0], name="use")
    with pytest.raises(slm.DataError, match="'use'"):
        F.binomial().initialize([0, -1, 1], name="use")


def test_binomial_value_of_a_zero_weight_is_set_to_zero_first_as_r_does():
    y, w, n, mustart = F.binomial().initialize([0, 7, 1], [1, 0, 1])
    assert y.tolist() == [0, 0, 1] and w.tolist() == [1, 0, 1]


def test_binomial_non_integer_successes_are_refused():
    # R warns "non-integer #successes in a binomial glm!"; here a DataError naming the column
    with pytest.raises(slm.DataError, match=r"non-integer #successes in the binomial response 'prop'"):
        F.binomial().initialize([0.5, 0.25], name="prop")
    with pytest.raises(slm.DataError, match="non-integer #successes"):
        F.binomial().initialize([0.5, 1 / 3], [2, 2], name="prop")
    # proportions with their trials as weights are fine (within R's 1e-3)
    y, w, n, mustart = F.binomial().initialize([0.5, 1 / 3], [2, 3])
    assert w.tolist() == [2, 3]


def test_binomial_two_column_counts():
    with pytest.raises(slm.DataError, match=r"non-integer counts in the binomial response 'cbind\(s, f\)'"):
        F.binomial().initialize(np.array([[1.5, 2], [0, 3]]), name="cbind(s, f)")
    with pytest.raises(slm.DataError, match="negative counts"):
        F.binomial().initialize(np.array([[-1.0, 2], [0, 3]]), name="cbind(s, f)")
    with pytest.raises(slm.DataError, match="2-column array"):
        F.binomial().initialize(np.ones((3, 3)), name="m")
    with pytest.raises(slm.DataError, match="must be a vector for the poisson family"):
        F.poisson().initialize(np.ones((3, 2)), name="m")


def test_binomial_boolean_response_and_column_vector():
    y, w, n, mustart = F.binomial().initialize(np.array([True, False, True]))
    assert y.tolist() == [1, 0, 1] and n.tolist() == [1, 1, 1]
    y2, *_ = F.binomial().initialize(np.array([[1.0], [0.0], [1.0]]))
    assert y2.tolist() == [1, 0, 1]


@pytest.mark.parametrize("values, match", [([0, 2, -1], "negative values not allowed for the poisson family"),
                                            ([0, 2.5, 1], "non-integer counts in the poisson response 'count'")])
def test_poisson_counts_are_refused_when_negative_or_non_integer(values, match):
    with pytest.raises(slm.DataError, match=match) as ei:
        F.poisson().initialize(values, name="count")
    assert "'count'" in str(ei.value)


def test_poisson_counts_within_r_s_integer_tolerance_are_counts():
    y, w, n, mustart = F.poisson().initialize([0, 3 + 1e-9, 1e8 + 1])
    close(mustart, np.array([0, 3 + 1e-9, 1e8 + 1]) + 0.1, rtol=0)


@pytest.mark.parametrize("fam", ["Gamma", "inverse_gaussian"])
@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_gamma_and_inverse_gaussian_need_positive_values(fam, bad):
    with pytest.raises(slm.DataError, match=r"non-positive values not allowed for the (Gamma|inverse.gaussian) "
                                            r"family: the response 'time'"):
        family(fam).initialize([1.0, bad], name="time")


def test_gaussian_links_need_starting_values_where_r_does():
    with pytest.raises(slm.DataError, match="cannot find valid starting values.*log link.*'z'"):
        F.gaussian("log").initialize([1.0, 0.0], name="z")
    with pytest.raises(slm.DataError, match="inverse link"):
        F.gaussian("inverse").initialize([1.0, 0.0], name="z")
    y, w, n, mustart = F.gaussian("log").initialize([1.0, 0.0], have_start=True)
    assert mustart.tolist() == [1.0, 0.0]
    F.gaussian().initialize([-1.0, 0.0])


def test_missing_values_and_bad_weights_are_data_errors():
    with pytest.raises(slm.DataError, match=r"response 'y' has missing or infinite values"):
        F.poisson().initialize([1.0, np.nan])
    with pytest.raises(slm.DataError, match="weights must have 2 values"):
        F.poisson().initialize([1.0, 2.0], [1.0])
    with pytest.raises(slm.DataError, match="weights must be non-negative"):
        F.poisson().initialize([1.0, 2.0], [1.0, -1.0])
    with pytest.raises(slm.DataError, match="weights must be finite"):
        F.poisson().initialize([1.0, 2.0], [1.0, np.inf])
    with pytest.raises(slm.DataError, match="must be numeric"):
        F.poisson().initialize(["a", "b"])


# ----------------------------------------------------------------------------------------
# the interface


def test_names_aliases_and_default_links():
    assert family("binomial") == F.binomial() == Family("binomial", Link("logit"))
    assert family("inverse_gaussian") == family("inverse.gaussian") == F.inverse_gaussian()
    assert family("gamma") == family("Gamma") == F.Gamma()
    assert {f: family(f).link.name for f in F.FAMILY_LINKS} == {
        "binomial": "logit", "poisson": "log", "Gamma": "inverse", "inverse.gaussian": "1/mu^2", "gaussian": "identity"}
    assert F.inverse_gaussian().name == "inverse.gaussian"
    assert family(F.binomial) == F.binomial() and family(F.poisson, "sqrt") == F.poisson("sqrt")
    fam = F.binomial("probit")
    assert family(fam) is fam and family(fam, "cloglog") == F.binomial("cloglog")
    assert family("binomial", Link("cauchit")).link.name == "cauchit"


def test_accepted_links_are_r_s():
    assert F.FAMILY_LINKS == {
        "binomial": ("logit", "probit", "cloglog", "cauchit", "log"),
        "poisson": ("log", "identity", "sqrt"),
        "Gamma": ("inverse", "identity", "log"),
        "inverse.gaussian": ("1/mu^2", "inverse", "identity", "log"),
        "gaussian": ("identity", "log", "inverse"),
    }
    assert set(F.LINK_NAMES) == {"logit", "probit", "cloglog", "cauchit", "log", "identity", "inverse", "sqrt",
                                 "1/mu^2"}


def test_canonical_and_dispersion_free():
    for name, links in F.FAMILY_LINKS.items():
        for lk in links:
            fam = family(name, lk)
            assert fam.canonical is (lk == F.DEFAULT_LINKS[name])
            assert fam.dispersion_free is (name in ("binomial", "poisson"))


def test_families_are_values():
    fam = F.Gamma("log")
    assert pickle.loads(pickle.dumps(fam)) == fam
    assert hash(fam) == hash(F.Gamma("log")) and fam != F.Gamma()
    assert repr(fam) == "Gamma(link='log')"
    assert str(F.binomial()) == "Family: binomial\nLink function: logit"
    with pytest.raises(AttributeError):
        fam.name = "poisson"  # type: ignore[misc]


def test_no_warnings_at_the_extremes():
    # R's formulas meet inf and nan on purpose here (exp(800), 1/0, 0 log 0, log(0)); no numpy warning
    eta = np.array([-1e300, -800.0, -30.0, 0.0, 30.0, 800.0, 1e300, np.nan])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for lk in F.LINK_NAMES:
            L = make_link(lk)
            L.linkinv(eta), L.mu_eta(eta), L.valideta(eta)
            if lk != "logit":
                L.linkfun(np.array([-1.0, 0.0, 1.0, 2.0, np.inf, np.nan]))
        for name in F.FAMILY_LINKS:
            fam = family(name)
            mu = np.array([0.0, 1e-300, 0.5, 1.0, np.inf])
            y = np.array([0.0, 0.0, 1.0, 1.0, 2.0])
            fam.variance(mu)
            dr = fam.dev_resids(y, mu, np.array([0.0, 1, 1, 1, 1]))
            fam.aic(y, np.ones(5), mu, np.array([0.0, 1, 1, 1, 1]), float(np.nansum(dr)))
            fam.validmu(mu)


def test_the_module_imports_only_numpy_scipy_errors_and_validate():
    tree = ast.parse(Path(F.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            imported |= {f"{mod}.{a.name}" if mod == "sparselmm" else mod for a in node.names}
    third = {m.split(".")[0] for m in imported if not m.startswith("sparselmm")}
    assert third <= {"numpy", "scipy", "math", "dataclasses", "typing", "__future__"}
    assert {m for m in imported if m.startswith("sparselmm")} <= {"sparselmm.errors", "sparselmm.validate"}


def test_public_names_have_docstrings():
    for name in F.__all__:
        obj = getattr(F, name)
        if callable(obj):
            assert obj.__doc__ and "Returns" in obj.__doc__ or isinstance(obj, type), name
    for meth in ("linkfun", "linkinv", "mu_eta", "valideta"):
        assert "Returns" in getattr(Link, meth).__doc__
    for meth in ("variance", "dev_resids", "aic", "validmu", "initialize"):
        assert "Returns" in getattr(Family, meth).__doc__
