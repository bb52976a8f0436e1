"""The cost of Satterthwaite's df beside the fit, and beside lmerTest's (issue 20).

    python benchmarks/satterthwaite_df.py [--rows 200000 --n-a 2000 --n-b 400] [--r] [--cholmod]

times, in one process: the fit, then the Satterthwaite ingredients (the Hessian of the
deviance in (θ, σ) and the Jacobian of Var(β̂)) as ``summary()`` computes them (the analytic
gradient where the backend has it) and from the deviance alone (the fallback), on the TIMSS
slopes model and on a crossed ``y ~ x + (x | a) + (1 | b)`` design.
With ``--r`` it also runs lme4 and lmerTest on the same data (``lmer`` and then ``summary``)
and prints their times beside; with ``--cholmod`` it fits the crossed design once more on
CHOLMOD (the block Schur backend not preferred), as before that backend existed.
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
import sparselmm.stats.satterthwaite as S
from sparselmm.backends.blockschur import BlockSchurPLSState


class _NoGradient:
    def __init__(self, state: object) -> None:
        self.available = False


def _time(model: slm.LinearMixedModel) -> tuple[float, float, float]:
    t0 = time.perf_counter()
    new = S._satterthwaite_parts(model)
    t1 = time.perf_counter()
    real, S.Gradient = S.Gradient, _NoGradient
    try:
        old = S._satterthwaite_parts(model)
    finally:
        S.Gradient = real
    t2 = time.perf_counter()
    rel = max(np.max(np.abs(a - b)) / np.max(np.abs(b)) for a, b in zip([new[0], *new[1]], [old[0], *old[1]]))
    return t1 - t0, t2 - t1, rel


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--n-a", type=int, default=2000)
    ap.add_argument("--n-b", type=int, default=400)
    ap.add_argument("--r", action="store_true")
    ap.add_argument("--cholmod", action="store_true")
    a = ap.parse_args()
    warnings.simplefilter("ignore")
    timss = slm.group_center(slm.datasets.load_timss(), ["math", "hoursTV"], "idschool")
    df = slm.datasets.simulate_crossed(a.rows, a.n_a, a.n_b, seed=1)
    rng = np.random.default_rng(2)
    df["y"] = df["y"] + rng.normal(0, 0.3, a.n_a)[df["a"].cat.codes.to_numpy()] * df["x"]  # a random slope
    cases = [("TIMSS slopes", "science ~ 1 + grpCmath + grade + gender + (grpCmath + grpChoursTV | idschool)", timss, False),
             (f"crossed {a.rows} rows, {a.n_a} x {a.n_b}", "y ~ x + (x | a) + (1 | b)", df, True)]
    print(f"{'model':47s} {'backend':>13s} {'evals':>6s} {'fit s':>8s} {'df s':>8s} {'df/fit':>7s} "
          f"{'df from deviance s':>19s} {'max rel diff':>12s}")
    if a.cholmod:
        cases.append((cases[1][0] + ", CHOLMOD", *cases[1][1:]))
    for name, f, data, reml in cases:
        if name.endswith("CHOLMOD"):
            BlockSchurPLSState.preferred = classmethod(lambda cls, design: False)  # type: ignore[method-assign]
        t0 = time.perf_counter()
        m = slm.lmer(f, data, REML=reml)
        fit = time.perf_counter() - t0
        tg, tr, rel = _time(m)
        print(f"{name:47s} {m.backend:>13s} {m.optsum.feval:6d} {fit:8.2f} {tg:8.2f} {tg / fit:7.2f} {tr:19.2f} {rel:12.1e}")
    if a.r:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "crossed.csv")
            df.to_csv(path, index=False)
            code = (
                "suppressMessages(library(lmerTest)); d <- read.csv('%s'); d$a <- factor(d$a); d$b <- factor(d$b);"
                "t0 <- proc.time()[['elapsed']]; m0 <- lme4::lmer(y ~ x + (x | a) + (1 | b), d);"
                "t1 <- proc.time()[['elapsed']]; m <- lmer(y ~ x + (x | a) + (1 | b), d);"
                "t2 <- proc.time()[['elapsed']]; s <- summary(m); t3 <- proc.time()[['elapsed']];"
                "cat(sprintf('lme4 crossed: fit %%.2f s; lmerTest: fit with its df ingredients %%.2f s (df %%.2f s beyond "
                "lme4), summary %%.2f s\\n', t1 - t0, t2 - t1, t2 - t1 - (t1 - t0), t3 - t2))"
            ) % path
            print(subprocess.run(["Rscript", "-e", code], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
