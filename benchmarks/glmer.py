"""glmer beside lme4's glmer in one run (issue 22).

    python benchmarks/glmer.py [--r] [--repeat 3]

fits, with sparselmm and (``--r``) with lme4 1.1 in the same run, cbpp (Laplace and nAGQ = 9),
grouseticks (Poisson, three nested terms), VerbAgg (binomial, crossed ``(1 | id) + (1 | item)``,
7,584 rows) and Contraception (binomial, a correlated random slope), and prints per model the
wall time (the best of ``--repeat`` runs), objective evaluations (both stages), PIRLS runs and
scoring steps, the objective against lme4's, and the process's peak resident memory.

    python benchmarks/glmer.py --big 1000000 [--r]

fits instead only the crossed logistic design ``y ~ x + (1 | a) + (1 | b)`` of
``slm.datasets.simulate_crossed_binary(N, 20_000, 5_000, seed=1)`` (once: at 10⁶ rows lme4
takes hours), with lme4 (``--r``, ``benchmarks/lme4_glmer_crossed.R`` on the same rows written to
a CSV) after it, and prints also M's factorisations and the conjugate-gradient iterations.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import tempfile
import time
import warnings

import pandas as pd

import sparselmm as slm

CASES = [
    ("cbpp Laplace", "cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial", 1),
    ("cbpp nAGQ = 9", "cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial", 9),
    ("grouseticks", "grouseticks", "TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)", "poisson", 1),
    ("VerbAgg", "VerbAgg", "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)", "binomial", 1),
    ("Contraception", "Contraception", "use ~ age + I(age^2) + urban + livch + (urban | district)", "binomial", 1),
]


def _r_times(repeat: int) -> dict[str, tuple[float, float]]:
    """lme4's best time and objective per case (the bundled CSVs read with R's factor())."""
    lines = ["suppressMessages(library(lme4))"]
    for name, data, formula, fam, nagq in CASES:
        path = str(slm.datasets.path(data))
        lines.append(
            f"d <- read.csv({path!r}, stringsAsFactors = TRUE); for (v in names(d)) if (!is.numeric(d[[v]])) "
            "d[[v]] <- factor(d[[v]]);"
            "if (!is.null(d$YEAR)) { d$YEAR <- factor(d$YEAR); d$BROOD <- factor(d$BROOD); d$INDEX <- factor(d$INDEX);"
            " d$LOCATION <- factor(d$LOCATION) }; if (!is.null(d$herd)) { d$herd <- factor(d$herd); d$period <- factor(d$period) };"
            "if (!is.null(d$district)) d$district <- factor(d$district); if (!is.null(d$id)) d$id <- factor(d$id);"
            f"best <- Inf; for (i in 1:{repeat}) {{ t0 <- proc.time()[['elapsed']];"
            f" m <- suppressWarnings(suppressMessages(glmer({formula}, d, family = {fam}, nAGQ = {nagq})));"
            " best <- min(best, proc.time()[['elapsed']] - t0) };"
            f"cat({name!r}, best, -2 * as.numeric(logLik(m)), '\\n', sep = '|')"
        )
    out = subprocess.run(["Rscript", "-e", "\n".join(lines)], capture_output=True, text=True)
    res = {}
    for ln in out.stdout.splitlines():
        parts = ln.split("|")
        if len(parts) >= 3:
            res[parts[0]] = (float(parts[1]), float(parts[2]))
    if not res:
        print(out.stderr[-2000:])
    return res


def _big(n: int, with_r: bool) -> None:
    """The crossed logistic design of ``n`` rows, sparselmm then (``with_r``) lme4."""
    df = slm.datasets.simulate_crossed_binary(n, 20_000, 5_000, seed=1)
    formula = "y ~ x + (1 | a) + (1 | b)"
    t0 = time.perf_counter()
    m = slm.glmer(formula, df)
    el = time.perf_counter() - t0
    f = m._fit
    st = f.state
    counts = (st.runs, st.steps, st.factorizations, st.cg_iterations)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t1 = time.perf_counter()
    se = m.se.to_numpy()  # the Hessian in (θ, β), which lme4's glmer computes before it returns
    el_se = time.perf_counter() - t1
    print(f"sparselmm  rows {m.nobs}  glmer {el:.1f} s  evaluations {f.stage1.feval}+{f.stage2.feval}  PIRLS runs "
          f"{counts[0]} steps {counts[1]}  factorisations {counts[2]}  CG iterations {counts[3]}  "
          f"factor {type(st.factor).__name__}  peak {peak:.0f} MB")
    print(f"           then the Hessian's SEs {el_se:.1f} s ({st.runs - counts[0]} PIRLS runs); glmer + SEs {el + el_se:.1f} s")
    print(f"           deviance {m.objective:.6f}  theta {m.theta}  beta {m.fixef.to_numpy()}  se {se}")
    el += el_se
    if with_r:
        with tempfile.TemporaryDirectory() as tmp:
            csv = os.path.join(tmp, "crossed.csv")
            df.to_csv(csv, index=False)
            del df, m, f, st
            script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lme4_glmer_crossed.R")
            out = subprocess.run(["Rscript", script, csv], capture_output=True, text=True)
        line = [ln for ln in out.stdout.splitlines() if ln.startswith("lme4|")]
        if not line:
            print(out.stderr[-2000:])
            return
        _, rows, secs, dev, theta, beta, feval, _ = line[0].split("|")
        print(f"lme4       rows {rows}  {float(secs):.1f} s  evaluations {feval}  deviance {float(dev):.6f}  "
              f"theta {theta}  beta {beta}")
        print(f"ratio lme4 / sparselmm (glmer + SEs): {float(secs) / el:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--r", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--big", type=int, default=0, help="rows of the crossed logistic design (only it is fitted)")
    a = ap.parse_args()
    warnings.simplefilter("ignore")
    if a.big:
        _big(a.big, a.r)
        return
    rows = []
    for name, data, formula, fam, nagq in CASES:
        df = slm.datasets.load(data)
        best = float("inf")
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            m = slm.glmer(formula, df, family=fam, nAGQ=nagq)
            best = min(best, time.perf_counter() - t0)
        f = m._fit
        evals = f.stage1.feval + (f.stage2.feval if f.stage2 is not None else 0)
        rows.append({"model": name, "rows": m.nobs, "sparselmm s": best, "evaluations": evals,
                     "PIRLS runs": f.state.runs, "PIRLS steps": f.state.steps, "objective": m.objective})
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tab = pd.DataFrame(rows)
    if a.r:
        r = _r_times(a.repeat)
        tab["lme4 s"] = [r.get(n, (float("nan"),) * 2)[0] for n in tab["model"]]
        tab["lme4 objective"] = [r.get(n, (float("nan"),) * 2)[1] for n in tab["model"]]
        tab["ratio"] = tab["lme4 s"] / tab["sparselmm s"]
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.4f}".format):
        print(tab.to_string(index=False))
    print(f"peak resident memory of this process: {peak:.0f} MB (the PIRLS counts include the Hessian's evaluations)")


if __name__ == "__main__":
    main()
