"""The documentation site: ``mkdocs build --strict`` passes, and the pages say what they must."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
MKDOCS_YML = ROOT / "mkdocs.yml"


def _nav_pages() -> list[str]:
    return re.findall(r":\s*([\w./-]+\.md)\s*$", MKDOCS_YML.read_text(), flags=re.M)


def test_nav_pages_exist():
    pages = _nav_pages()
    for want in [
        "index.md",
        "getting-started.md",
        "formulas.md",
        "timss.md",
        "grocery.md",
        "structured.md",
        "scale.md",
        "performance.md",
        "api.md",
        "architecture.md",
    ]:
        assert want in pages
    missing = [p for p in pages if not (DOCS / p).is_file()]
    assert not missing, f"pages in the nav but not in docs/: {missing}"


def test_formula_guide_covers_every_form():
    text = (DOCS / "formulas.md").read_text()
    for form in [
        r"(1 \| g)",
        r"(x \| g)",
        r"(1 + x + z \| g)",
        r"(0 + x \| g)",
        r"(x - 1 \| g)",
        r"(x \|\| g)",
        r"(1 \| a/b)",
        r"(1 \| a:b)",
        r"(1 \| a) + (1 \| b)",
        r"(0 + f \| g)",
        r"(1 \| a) + (1 \| b:a)",  # lme4's expansion of a/b
        r"(1 \| g) + (0 + x \| g)",  # lme4's expansion of ||
    ]:
        assert f"`{form}`" in text, form


def test_api_page_documents_the_entry_points():
    text = (DOCS / "api.md").read_text()
    for obj in ["sparselmm.lmer", "sparselmm.LinearMixedModel", "sparselmm.anova", "sparselmm.report.plots", "sparselmm.cli"]:
        assert f"::: {obj}" in text


def test_performance_page_includes_the_benchmark_table():
    assert '--8<-- "benchmarks/results/latest.md' in (DOCS / "performance.md").read_text()


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    pytest.importorskip("mkdocstrings")
    pytest.importorskip("mkdocstrings_handlers.python")
    site = tmp_path / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    r = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(MKDOCS_YML), "-d", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    for page in ["index.html", "getting-started/index.html", "formulas/index.html", "api/index.html"]:
        assert (site / page).is_file(), page
    api = (site / "api" / "index.html").read_text()
    # mkdocstrings rendered the docstrings, not just the headings
    assert "Fit a linear mixed-effects model" in api
    assert "Caterpillar plot of the conditional modes" in api
