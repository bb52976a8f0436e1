"""The model matrix of main-effects formulas built without formulaic equals formulaic's."""

import numpy as np
import pandas as pd
import pytest

import sparselmm as slm
from sparselmm.frame.modelframe import SimpleSpec, _formulaic_matrix, _simple_spec, model_matrix
from sparselmm.spec.terms import as_factor


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 60
    df = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "z": rng.normal(size=n),
            "g": rng.choice(["b", "a", "c"], size=n),
            "h": pd.Categorical(rng.choice(["lo", "hi", "mid", "unused"][:3], size=n),
                                categories=["lo", "mid", "hi", "unused"]),
            "flag": rng.random(n) > 0.5,
        }
    )
    for c in ("g", "h", "flag"):
        df[c] = as_factor(df[c], c)  # as design() prepares them
    return df


@pytest.mark.parametrize(
    "text",
    ["1 + x + g", "x + h + z", "0 + g + x", "-1 + h + g", "g + flag", "0 + x + h", "1", "0 + x"],
)
def test_fast_path_equals_formulaic(frame, text):
    spec = _simple_spec(text, frame)
    assert isinstance(spec, SimpleSpec)
    X, names, _ = model_matrix(text, frame, "X")
    Xf, names_f, _ = _formulaic_matrix(text, frame, "X")
    assert names == names_f
    np.testing.assert_array_equal(X, Xf)


def test_fast_path_encodes_new_data_and_names_an_unseen_level(frame):
    spec = _simple_spec("x + g", frame)
    new = pd.DataFrame({"x": [0.5, 1.0], "g": ["c", "a"]})
    np.testing.assert_array_equal(spec.get_model_matrix(new).to_numpy(), [[1, 0.5, 0, 1], [1, 1.0, 0, 0]])
    with pytest.raises(slm.DataError, match="'g' has level 'zz'"):
        spec.get_model_matrix(pd.DataFrame({"x": [0.0], "g": ["zz"]}))


def test_formulas_beyond_main_effects_go_to_formulaic(frame):
    for text in ("x * g", "x + I(x**2)", "g:x", "x - 1 + log(z**2)"):
        assert _simple_spec(text, frame) is None


def test_fixed_factor_fit_and_predict_as_before():
    df = slm.datasets.load("sleepstudy").copy()
    df["period"] = np.where(df["Days"] < 5, "early", "late")
    m = slm.lmer("Reaction ~ Days + period + (Days | Subject)", df)
    assert list(m.fixef.index) == ["(Intercept)", "Days", "periodlate"]
    p = m.predict(df.iloc[:3], re_form="NA")
    X = np.column_stack([np.ones(3), df["Days"][:3], (df["period"][:3] == "late").astype(float)])
    np.testing.assert_allclose(p.to_numpy(), X @ m.fixef.to_numpy())
    with pytest.raises(slm.DataError, match=r"'period' has level\(s\) \['middle'\]"):
        m.predict(df.iloc[:2].assign(period="middle"), re_form="NA")
