"""Plots (rendered to PNG with the Agg backend) and progress reporting."""

from __future__ import annotations

import logging
import sys

import numpy as np
import pytest

import sparselmm as slm
from sparselmm.report.plots import plot_profile, profile

from conftest import fit

mpl = pytest.importorskip("matplotlib")
mpl.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def sleep():
    return fit("sleepstudy", "Reaction ~ Days + (Days | Subject)", True)


@pytest.fixture(scope="module")
def dyestuff_profile():
    m = fit("Dyestuff", "Yield ~ 1 + (1 | Batch)", True)
    return m, profile(m)


def _save_png(fig, path):
    fig.savefig(path, dpi=60)
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 5000  # not a blank canvas
    img = plt.imread(path)
    assert img.shape[0] > 100 and img.shape[1] > 100
    assert img[..., :3].std() > 0.05  # something is drawn
    return img


def _axes(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


# ----- caterpillar plot -------------------------------------------------------------------


def test_plot_ranef_panels_and_png(sleep, tmp_path):
    fig = sleep.plot_ranef()
    assert isinstance(fig, Figure)
    axes = _axes(fig)
    assert [ax.get_title() for ax in axes] == ["Subject: (Intercept)", "Subject: Days"]
    assert all(ax.get_xlabel() == "conditional mode" for ax in axes)
    assert axes[0].get_ylabel() == "Subject"
    _save_png(fig, tmp_path / "ranef.png")


def test_plot_ranef_ordered_by_first_term(sleep):
    fig = sleep.plot_ranef()
    ax = _axes(fig)[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    tab = sleep.ranef_table()
    first = tab[tab.term == "(Intercept)"].sort_values("condval")
    assert labels == list(first.grp)
    # the intervals are ±1.96 condsd around the modes, in that order
    bars = sorted(ax.collections[0].get_segments(), key=lambda seg: seg[0][1])  # by y position
    lo = np.array([seg[0][0] for seg in bars])
    hi = np.array([seg[1][0] for seg in bars])
    np.testing.assert_allclose((hi - lo) / 2, 1.959964 * first.condsd.to_numpy(), rtol=1e-5)
    np.testing.assert_allclose((hi + lo) / 2, first.condval.to_numpy(), rtol=1e-8, atol=1e-8)


def test_plot_ranef_crossed_one_panel_per_factor(tmp_path):
    m = fit("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", True)
    fig = m.plot_ranef(level=0.9)
    assert [ax.get_title() for ax in _axes(fig)] == ["plate: (Intercept)", "sample: (Intercept)"]
    _save_png(fig, tmp_path / "pen.png")
    fig2 = m.plot_ranef(groups=["sample"])
    assert [ax.get_title() for ax in _axes(fig2)] == ["sample: (Intercept)"]
    with pytest.raises(slm.DataError, match="no grouping factor 'batch'"):
        m.plot_ranef(groups=["batch"])
    with pytest.raises(slm.DataError, match="level"):
        m.plot_ranef(level=1.5)


def test_plot_ranef_many_levels_hides_labels():
    m = fit("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", True)
    fig = m.plot_ranef(max_labels=10)
    assert len(_axes(fig)[0].get_yticks()) == 0  # 24 plates > 10
    assert len(_axes(fig)[1].get_yticks()) == 6


# ----- residuals --------------------------------------------------------------------------


def test_plot_residuals(sleep, tmp_path):
    fig = sleep.plot_residuals()
    axes = _axes(fig)
    assert len(axes) == 2
    assert [ax.get_title() for ax in axes] == ["Residuals vs fitted", "Normal Q-Q"]
    assert axes[0].get_xlabel() == "fitted values"
    assert axes[0].get_ylabel() == "pearson residuals"
    assert axes[1].get_xlabel() == "theoretical quantiles"
    pts = axes[0].collections[0].get_offsets()
    assert len(pts) == sleep.nobs
    np.testing.assert_allclose(np.asarray(pts)[:, 0], sleep.fitted().to_numpy())
    np.testing.assert_allclose(np.asarray(pts)[:, 1], sleep.residuals("pearson").to_numpy())
    _save_png(fig, tmp_path / "resid.png")
    fig2 = sleep.plot_residuals(type="response")
    assert _axes(fig2)[0].get_ylabel() == "response residuals"


# ----- profile ----------------------------------------------------------------------------


def test_profile_table(dyestuff_profile):
    m, prof = dyestuff_profile
    assert list(prof.columns) == ["parameter", "label", "value", "zeta"]
    assert list(dict.fromkeys(prof.parameter)) == [".sig01", ".sigma", "(Intercept)"]
    assert set(prof.label) == {"sd((Intercept) | Batch)", "sigma", "(Intercept)"}
    for name, p in prof.groupby("parameter"):
        p = p.sort_values("value")
        z = p.zeta.to_numpy()
        assert len(p) >= 8
        assert np.all(np.diff(z) > -1e-6), name  # ζ increases with the parameter
        assert z.max() >= 2.5  # reaches the 99% cut (2.576) or near it
        assert np.isclose(np.abs(z).min(), 0.0)


def test_profile_matches_confint(dyestuff_profile):
    """Where ζ crosses ±1.96 is confint(method="profile")."""
    m, prof = dyestuff_profile
    ci = m.confint(method="profile")
    for name in [".sig01", ".sigma", "(Intercept)"]:
        p = prof[prof.parameter == name].sort_values("value")
        for col, target in zip(ci.columns, (-1.959964, 1.959964)):
            est = np.interp(target, p.zeta.to_numpy(), p.value.to_numpy())
            assert est == pytest.approx(ci.loc[name, col], rel=0.02), (name, col)


def test_plot_profile(dyestuff_profile, tmp_path):
    m, prof = dyestuff_profile
    fig = plot_profile(m, prof=prof)
    axes = _axes(fig)
    assert len(axes) == 3
    assert [ax.get_title() for ax in axes] == ["sd((Intercept) | Batch)", "sigma", "(Intercept)"]
    assert [ax.get_xlabel() for ax in axes] == [".sig01", ".sigma", "(Intercept)"]
    assert all(ax.get_ylabel() == "ζ" for ax in axes)
    _save_png(fig, tmp_path / "profile.png")
    fig2 = plot_profile(m, prof=prof, absolute=True, which=[".sigma"])
    assert [ax.get_ylabel() for ax in _axes(fig2)] == ["|ζ|"]


def test_profile_which_and_errors(dyestuff_profile):
    m, _ = dyestuff_profile
    p = profile(m, which=".sigma", npts=3)
    assert set(p.parameter) == {".sigma"}
    with pytest.raises(slm.DataError, match="no parameter 'nope'"):
        profile(m, which=["nope"])


@pytest.mark.slow
def test_profile_sleepstudy_plot(sleep, tmp_path):
    fig = plot_profile(sleep)
    assert len(_axes(fig)) == 6
    _save_png(fig, tmp_path / "profile6.png")


# ----- matplotlib missing -----------------------------------------------------------------


def test_missing_matplotlib_is_a_clear_error(sleep, monkeypatch):
    for mod in [k for k in sys.modules if k == "matplotlib" or k.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(slm.SparseLMMError, match=r"pip install \"sparselmm\[plot\]\""):
        sleep.plot_residuals()
    with pytest.raises(slm.SparseLMMError, match="matplotlib"):
        sleep.plot_ranef()


# ----- progress ---------------------------------------------------------------------------


def test_progress_through_logging_and_silent_by_default(caplog, capsys):
    data = slm.datasets.load("sleepstudy")
    with caplog.at_level(logging.WARNING, logger="sparselmm"):
        slm.lmer("Reaction ~ Days + (Days | Subject)", data)
    assert not [r for r in caplog.records if r.name == "sparselmm"]
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="sparselmm"):
        slm.lmer("Reaction ~ Days + (Days | Subject)", data)
    recs = [r for r in caplog.records if r.name == "sparselmm" and r.levelno == logging.INFO]
    assert recs
    assert "evaluation 1: objective" in recs[0].getMessage()
    assert capsys.readouterr().out == ""  # logging only, no print without verbose=True


def test_progress_verbose_prints(capsys):
    slm.lmer("Reaction ~ Days + (Days | Subject)", slm.datasets.load("sleepstudy"), verbose=True)
    out = capsys.readouterr().out
    assert out.startswith("evaluation 1: objective")
