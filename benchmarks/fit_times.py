"""In-process fit times of benchmark cases, for before/after comparisons of two checkouts.

    PYTHONPATH=/path/to/checkout python benchmarks/fit_times.py 1:200,2:100,3:7,4:2

fits each case ``id`` once to warm up, then ``R`` timed times (``id:R``), and prints the median
and fastest fit with the evaluations and the objective.  Run it alternately for two checkouts
(A B A B ...) and compare the rounds' medians: the machine's speed drifts between rounds.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))
from benchmarks.cases import CASES  # noqa: E402

import sparselmm as slm  # noqa: E402


def main(spec: str) -> None:
    for item in spec.split(","):
        i, R = (int(x) for x in item.split(":"))
        c = CASES[i]
        df = c.load()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            slm.lmer(c.formula, df, REML=c.REML)  # warm-up
            ts = []
            for _ in range(R):
                t0 = time.perf_counter()
                m = slm.lmer(c.formula, df, REML=c.REML)
                ts.append(time.perf_counter() - t0)
        ts.sort()
        print(f"case {i}: median {ts[len(ts) // 2] * 1e3:.1f} ms min {ts[0] * 1e3:.1f} ms "
              f"feval {m.optsum.feval} objective {m.objective:.10f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
