"""Objective, θ and evaluations of the fits of the 24 lme4 reference cases (tests/reference/).

Run from a checkout's root; the sparselmm imported is the first on the path (``PYTHONPATH=...``
to measure another checkout):

    python benchmarks/reference_cases.py out.json [other.json]

prints the total number of objective evaluations and writes each case's objective, θ and
evaluations to ``out.json``; with a second file (from another checkout), also the largest
differences of the objectives and θ and the cases whose evaluation counts differ.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.append(str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import CASES, REF, load_data  # noqa: E402

import sparselmm as slm  # noqa: E402


def main(argv: list[str]) -> None:
    out: dict[str, dict] = {}
    for c in CASES:
        r = REF[c]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = slm.lmer(r["formula"], load_data(r["dataset"]), REML=r["REML"])
        out[c] = {"objective": m.objective, "theta": [float(t) for t in m.theta], "feval": int(m.optsum.feval)}
    print(f"sparselmm from {slm.__file__}: total evaluations {sum(v['feval'] for v in out.values())} on {len(out)} cases")
    Path(argv[0]).write_text(json.dumps(out, indent=1))
    if len(argv) > 1:
        other = json.loads(Path(argv[1]).read_text())
        dobj = max(abs(out[k]["objective"] - other[k]["objective"]) / abs(other[k]["objective"]) for k in out)
        dth = max(float(np.max(np.abs(np.subtract(out[k]["theta"], other[k]["theta"])))) for k in out)
        differ = [k for k in out if out[k]["feval"] != other[k]["feval"]]
        print(f"against {argv[1]}: objectives within {dobj:.1e} (relative), θ within {dth:.1e}, evaluations differ on {differ}")


if __name__ == "__main__":
    main(sys.argv[1:])
