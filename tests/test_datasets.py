import numpy as np
import pandas as pd
import pytest

import sparselmm as slm
from sparselmm import datasets


def test_names_lists_every_bundled_set():
    assert datasets.names() == sorted(
        ["sleepstudy", "Dyestuff", "Dyestuff2", "Penicillin", "Pastes", "InstEval", "cake", "Hsb82", "grocery",
         "timss", "repeated", "cbpp", "grouseticks", "VerbAgg", "Arabidopsis", "Contraception"]
    )


@pytest.mark.parametrize(
    "name, shape, factors",
    [
        ("sleepstudy", (180, 3), ["Subject"]),
        ("InstEval", (73421, 7), ["s", "d", "studage", "lectage", "service", "dept"]),
        ("timss", (7097, 7), ["idschool", "idstudent", "grade", "gender"]),
        ("Dyestuff", (30, 2), ["Batch"]),
        ("Dyestuff2", (30, 2), ["Batch"]),
        ("Penicillin", (144, 3), ["plate", "sample"]),
        ("Pastes", (60, 4), ["batch", "cask", "sample"]),
        ("cake", (270, 5), ["replicate", "recipe", "temperature"]),
        ("Hsb82", (7185, 8), ["school", "minrty", "sx", "sector"]),
        ("grocery", (40, 3), ["item", "store"]),
        ("repeated", (960, 5), ["subject", "occasion", "treatment"]),
    ],
)
def test_load_shapes_and_dtypes(name, shape, factors):
    df = datasets.load(name)
    assert df.shape == shape
    for c in df.columns:
        if c in factors:
            assert isinstance(df[c].dtype, pd.CategoricalDtype), c
            cats = list(df[c].cat.categories)
            assert cats == sorted(cats), f"{c} levels not sorted"
            assert not df[c].isna().any()
        else:
            assert pd.api.types.is_numeric_dtype(df[c].dtype), c


def test_timss_surrogate_nesting():
    t = datasets.load_timss()
    assert t["idschool"].nunique() == 146
    assert list(t.columns) == ["idschool", "idstudent", "grade", "gender", "science", "math", "hoursTV"]
    # students are nested in schools: every student id belongs to one school
    assert (t.groupby("idstudent", observed=True)["idschool"].nunique() == 1).all()
    assert list(t["grade"].cat.categories) == ["3", "4"]
    assert list(t["gender"].cat.categories) == ["boy", "girl"]


def test_load_timss_reads_the_real_layout(tmp_path):
    # the real timss1997.txt: header, whitespace separated, same columns
    p = tmp_path / "timss1997.txt"
    p.write_text(
        "idschool idstudent grade gender science math hoursTV\n"
        "1010 10100101 4 girl 128 127.2 3\n"
        "1010 10100102 4 boy 170.9 170.6 3\n"
        "1020 10200101 3 boy 150.5 140.1 2\n"
    )
    t = datasets.load_timss(p)
    assert t.shape == (3, 7)
    assert list(t["idschool"].cat.categories) == ["1010", "1020"]
    assert t["science"].dtype == float
    np.testing.assert_allclose(t["math"], [127.2, 170.6, 140.1])


def test_load_timss_rejects_other_layouts(tmp_path):
    p = tmp_path / "other.txt"
    p.write_text("a b\n1 2\n")
    with pytest.raises(slm.DataError, match="missing column"):
        datasets.load_timss(p)


def test_unknown_dataset_is_a_clear_error():
    with pytest.raises(slm.DataError, match="sleepstudy"):
        datasets.load("sleepstdy")


def test_simulate_crossed_is_reproducible():
    a = datasets.simulate_crossed(1000, 50, 20, seed=3)
    b = datasets.simulate_crossed(1000, 50, 20, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert a.shape == (1000, 4)
    assert a["a"].nunique() <= 50 and a["b"].nunique() <= 20


def test_simulate_crossed_binary_is_reproducible_and_recovers_its_parameters():
    a = datasets.simulate_crossed_binary(20_000, 400, 50, seed=3, sd_a=1.0, sd_b=0.5, beta=(-0.5, 0.5))
    pd.testing.assert_frame_equal(a, datasets.simulate_crossed_binary(20_000, 400, 50, seed=3))
    assert not a.equals(datasets.simulate_crossed_binary(20_000, 400, 50, seed=4))
    assert a.shape == (20_000, 4) and set(np.unique(a["y"])) == {0, 1}
    assert a["a"].nunique() == 400 and a["b"].nunique() == 50
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", slm.SparseLMMWarning)
        m = slm.glmer("y ~ x + (1 | a) + (1 | b)", a)
    # θ are the SDs on the logit scale; β the intercept and slope (sampling error at this size
    # ~0.05 for the SDs, ~0.08 for the intercept)
    np.testing.assert_allclose(m.theta, [1.0, 0.5], atol=0.15)
    np.testing.assert_allclose(m.fixef.to_numpy(), [-0.5, 0.5], atol=0.2)


def test_rating_and_lexical_shapes_are_the_anchors():
    r = datasets.simulate_ratings(60_000, 400, 3_000, seed=2, min_per_user=20)
    pd.testing.assert_frame_equal(r, datasets.simulate_ratings(60_000, 400, 3_000, seed=2, min_per_user=20))
    per_user = r.groupby("user", observed=True).size()
    assert abs(len(r) - 60_000) < 400 and r["user"].nunique() == 400 and per_user.min() >= 20
    assert per_user.max() > 5 * per_user.median()  # heavy-tailed counts
    per_item = r.groupby("item", observed=True).size()
    assert per_item.max() > 10 * per_item.median()  # a few popular items
    assert not r.duplicated(["user", "item"]).any()  # each user rates an item once
    e = datasets.simulate_lexical_decision(40, 5_000, 300, seed=3)
    per_subj = e.groupby("subj", observed=True).size()
    assert per_subj.between(270, 330).all() and e["subj"].nunique() == 40
    assert not e.duplicated(["subj", "item"]).any()
    assert list(e.columns) == ["y", "subj", "item"] and e["y"].dtype == float


@pytest.mark.parametrize("call, match", [
    (lambda: datasets.simulate_ratings(0), "n_obs"),
    (lambda: datasets.simulate_ratings(1000, 10.5, 50), "n_users"),
    (lambda: datasets.simulate_ratings(1000, 10, 5, min_per_user=20), "min_per_user"),
    (lambda: datasets.simulate_ratings(1000, 10, 50, zipf=-1), "zipf"),
    (lambda: datasets.simulate_ratings(1000, 10, 50, seed="x"), "seed"),
    (lambda: datasets.simulate_lexical_decision(0), "n_subjects"),
    (lambda: datasets.simulate_lexical_decision(5, 100, 30, sd_item=-1), "sd_item"),
    (lambda: datasets.simulate_crossed(100, 0, 5), "n_a"),
    (lambda: datasets.simulate_crossed(100, 5, 5, sigma=float("nan")), "sigma"),
    (lambda: datasets.simulate_crossed_binary(100, 5, 5, beta=(1,)), "beta"),
])
def test_simulators_refuse_bad_arguments_by_name(call, match):
    with pytest.raises(slm.ArgumentError, match=match):
        call()
