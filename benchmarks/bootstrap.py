"""The parametric bootstrap in one process and in several, beside lme4's ``bootMer`` (issue 21).

    python benchmarks/bootstrap.py [--nsim 200] [--r]

times ``sparselmm.stats.bootstrap.bootstrap(m, nsim, seed=1, n_jobs=...)`` for ``n_jobs`` 1 and
2 on sleepstudy's slope model and the lecture's TIMSS slopes model (the surrogate data), checks
that the replicates are identical, and with ``--r`` times lme4's ``bootMer`` (its default
parametric bootstrap, ``FUN = fixef``-and-``sigma``, the same number of refits) on the same data
in the same run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
import warnings

import numpy as np

import sparselmm as slm
from sparselmm.stats.bootstrap import bootstrap

CASES = [
    ("sleepstudy slopes", "Reaction ~ Days + (Days | Subject)"),
    ("TIMSS slopes (surrogate)", "science ~ 1 + grpCmath + grade + gender + (grpCmath + grpChoursTV | idschool)"),
]


def _data(name: str):  # type: ignore[no-untyped-def]
    if name.startswith("TIMSS"):
        return slm.group_center(slm.datasets.load_timss(), ["math", "hoursTV"], "idschool")
    return slm.datasets.load("sleepstudy")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nsim", type=int, default=200)
    ap.add_argument("--r", action="store_true")
    a = ap.parse_args()
    warnings.simplefilter("ignore")
    print(f"{'model':28s} {'replicates':>10s} {'n_jobs=1 s':>11s} {'n_jobs=2 s':>11s} {'identical':>9s}")
    for name, formula in CASES:
        data = _data(name)
        m = slm.lmer(formula, data)
        times, reps = [], []
        for n_jobs in (1, 2):
            t0 = time.perf_counter()
            reps.append(bootstrap(m, nsim=a.nsim, seed=1, n_jobs=n_jobs).to_numpy())
            times.append(time.perf_counter() - t0)
        same = bool(np.array_equal(reps[0], reps[1]))
        print(f"{name:28s} {a.nsim:10d} {times[0]:11.2f} {times[1]:11.2f} {str(same):>9s}")
        if a.r:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "d.csv")
                data.to_csv(path, index=False)
                code = (
                    "suppressMessages(library(lme4)); d <- read.csv('%s', stringsAsFactors = TRUE);"
                    "for (v in c('Subject', 'idschool', 'grade', 'gender')) if (!is.null(d[[v]])) d[[v]] <- factor(d[[v]]);"
                    "m <- lmer(%s, d); f <- function(x) c(fixef(x), sigma(x));"
                    "t0 <- proc.time()[['elapsed']]; b <- suppressMessages(suppressWarnings(bootMer(m, f, nsim = %d, seed = 1)));"
                    "cat(sprintf('lme4 bootMer: %%.2f s\\n', proc.time()[['elapsed']] - t0))"
                ) % (path, formula, a.nsim)
                out = subprocess.run(["Rscript", "-e", code], capture_output=True, text=True)
                print(f"{'':28s} {(out.stdout.strip() or out.stderr.strip()[-200:])}")


if __name__ == "__main__":
    main()
