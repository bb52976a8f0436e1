"""The command line: ``sparselmm`` / ``python -m sparselmm``."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

import sparselmm as slm
from sparselmm.cli import main

from conftest import REF

SLEEP = "Reaction ~ Days + (Days | Subject)"


def _sleep_ref(REML: bool) -> dict:
    for r in REF.values():
        if r["dataset"] == "sleepstudy" and r["formula"] == SLEEP and r["REML"] == REML:
            return r
    pytest.skip("no lme4 reference for sleepstudy")


@pytest.fixture
def sleep_csv(tmp_path):
    """sleepstudy written as a user's CSV, with the subject as a string column."""
    df = slm.datasets.load("sleepstudy")
    df["Subject"] = "S" + df["Subject"].astype(str)
    path = tmp_path / "sleep.csv"
    df.to_csv(path, index=False)
    return path


def test_fit_csv_prints_lme4_summary(sleep_csv, capsys):
    assert main(["fit", str(sleep_csv), SLEEP]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("Linear mixed model fit by REML")
    assert "Random effects:" in out.out and "Fixed effects:" in out.out
    assert "Number of obs: 180, groups:  Subject, 18" in out.out
    assert out.err == ""


def test_fit_json_matches_lme4(sleep_csv, capsys):
    assert main(["fit", str(sleep_csv), SLEEP, "--ml", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    keys = {"fixef", "se", "theta", "sigma", "objective", "loglik", "aic", "bic", "varcorr", "ngroups", "nobs", "converged"}
    assert keys <= set(doc)
    assert doc["REML"] is False
    assert doc["nobs"] == 180 and doc["ngroups"] == {"Subject": 18} and doc["converged"] is True
    ref = _sleep_ref(False)
    assert doc["objective"] == pytest.approx(ref["objective"], rel=1e-6)
    np.testing.assert_allclose(doc["theta"], ref["theta"], rtol=1e-3, atol=1e-4)
    assert list(doc["fixef"]) == ["(Intercept)", "Days"]
    assert doc["varcorr"][0]["grp"] == "Subject" and doc["varcorr"][0]["var2"] is None
    assert doc["varcorr"][-1]["grp"] == "Residual"
    assert doc["loglik"] == pytest.approx(-doc["objective"] / 2)


def test_fit_bundled_dataset_by_name(capsys):
    assert main(["fit", "sleepstudy", SLEEP, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    ref = _sleep_ref(True)
    assert doc["REML"] is True
    assert doc["objective"] == pytest.approx(ref["objective"], rel=1e-6)


def test_string_columns_are_factors(tmp_path, capsys):
    df = slm.datasets.load("grocery")
    df["store"] = "shop_" + df["store"].astype(str)
    df["item"] = df["item"].astype(str)
    path = tmp_path / "g.csv"
    df.to_csv(path, index=False)
    assert main(["fit", str(path), "price ~ store + (1 | item)", "--ml", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert list(doc["fixef"])[1:] == ["storeshop_B", "storeshop_C", "storeshop_D"]


def test_factor_option(tmp_path, capsys):
    df = pd.DataFrame({"y": np.arange(12.0) % 5, "x": [1, 2, 3] * 4, "g": np.repeat([1, 2, 3, 4], 3)})
    path = tmp_path / "f.csv"
    df.to_csv(path, index=False)
    assert main(["fit", str(path), "y ~ x + (1 | g)", "--json", "--factor", "x"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert list(doc["fixef"]) == ["(Intercept)", "x2", "x3"]
    assert main(["fit", str(path), "y ~ x + (1 | g)", "--factor", "zz"]) == 1
    assert "no column 'zz'" in capsys.readouterr().err


def test_datasets_lists_names_and_shapes(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["name", "rows", "columns"]
    rows = {ln.split()[0]: (int(ln.split()[1]), int(ln.split()[2])) for ln in lines[1:]}
    assert set(rows) == set(slm.datasets.names())
    assert rows["sleepstudy"] == (180, 3)


@pytest.mark.parametrize(
    "args, message",
    [
        (["fit", "missing_file.csv", "y ~ x + (1 | g)"], "no file 'missing_file.csv'"),
        (["fit", "sleepstudy", "Reaction ~ Days + (Days | Subject"], "unbalanced parentheses"),
        (["fit", "sleepstudy", "Reaction ~ Dayz + (1 | Subject)"], "'Dayz'"),
        (["fit", "sleepstudy", "Reaction ~ Days + (1 | Subjekt)"], "'Subjekt'"),
        (["fit", "sleepstudy", "Reaction ~ Days"], ""),
    ],
)
def test_bad_input_clear_message_nonzero_exit(args, message, capsys):
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("sparselmm: error: ")
    assert message in err
    assert "Traceback" not in err


def test_unreadable_csv(tmp_path, capsys):
    path = tmp_path / "bin.csv"
    path.write_bytes(b"\xff\xfe\x00\x01garbage\x00\n\x80\x81")
    assert main(["fit", str(path), "y ~ 1 + (1 | g)"]) == 1
    assert capsys.readouterr().err.startswith("sparselmm: error: ")
    assert main(["fit", str(tmp_path), "y ~ 1 + (1 | g)"]) == 1
    assert "is not a file" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys):
    assert main([]) == 2
    assert main(["fit"]) == 2
    assert main(["frobnicate"]) == 2
    assert main(["--help"]) == 0
    assert "fit" in capsys.readouterr().out


def test_warnings_go_to_stderr(capsys):
    # a singular fit: lme4 says "boundary (singular) fit"; sparselmm may warn; nothing but JSON on stdout
    assert main(["fit", "Dyestuff2", "Yield ~ 1 + (1 | Batch)", "--json"]) == 0
    out = capsys.readouterr()
    doc = json.loads(out.out)
    assert doc["singular"] is True
    assert all(line.startswith("sparselmm: warning: ") for line in out.err.splitlines())


def test_python_dash_m(sleep_csv):
    r = subprocess.run(
        [sys.executable, "-m", "sparselmm", "fit", str(sleep_csv), SLEEP, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["fixef"]["Days"] == pytest.approx(10.467286, rel=1e-5)

    r = subprocess.run(
        [sys.executable, "-m", "sparselmm", "fit", "nope.csv", "y ~ x + (1 | g)"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1
    assert r.stderr.startswith("sparselmm: error: no file 'nope.csv'")
    assert "Traceback" not in r.stderr

    r = subprocess.run([sys.executable, "-m", "sparselmm", "datasets"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "sleepstudy" in r.stdout


# ---- bad CSV options and multi-line messages: one line, no traceback -------------------------------
@pytest.mark.parametrize("sep", ["", "((", "\n"])
def test_bad_separator_is_a_usage_error(sep, sleep_csv, capsys):
    assert main(["fit", str(sleep_csv), SLEEP, "--sep", sep]) == 2
    err = capsys.readouterr().err
    assert "argument --sep" in err and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("sparselmm fit: error: argument --sep: ")


def test_regex_separator_reads_without_a_parser_warning(tmp_path, capsys):
    df = slm.datasets.load("sleepstudy")
    path = tmp_path / "semi.csv"
    path.write_text("\n".join(" ; ".join(map(str, row)) for row in [df.columns, *df.itertuples(index=False)]) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pandas' "falling back to the 'python' engine" was a ParserWarning
        assert main(["fit", str(path), SLEEP, "--sep", r"\s*;\s*", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["nobs"] == 180 and doc["fixef"]["Days"] == pytest.approx(10.467286, rel=1e-5)


def test_formula_error_with_a_caret_is_one_line_keeping_the_position(capsys):
    assert main(["fit", "sleepstudy", "Reaction ~ Days + (Days | Subject"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "^" not in err
    assert err == (
        "sparselmm: error: unbalanced parentheses: '(' is never closed: "
        "Reaction ~ Days + (Days | Subject (at position 18: '(')\n"
    )
    assert main(["fit", "sleepstudy", "Reaction Days"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith("Reaction Days (at position 13: the end)\n")


def test_parser_error_message_is_one_line(tmp_path, capsys):
    path = tmp_path / "ragged.csv"
    path.write_text("a,b\n1,2\n3,4,5\n")
    assert main(["fit", str(path), "a ~ 1 + (1 | b)"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("sparselmm: error: cannot read")
    assert "--sep ','" in err and "Expected 2 fields in line 3" in err


def test_one_line_joins_other_messages():
    from sparselmm.cli import _one_line

    assert _one_line("first\n  second\n\nthird\n") == "first; second; third"
    assert _one_line("msg\n  y ~ x +\n        ^") == "msg: y ~ x + (at position 6: '+')"
    assert _one_line("msg\n  y ~ x +\n         ^") == "msg: y ~ x + (at position 7: the end)"
    assert _one_line("single") == "single"
