"""The MovieLens-32M-cutoff shape (issue 23): in memory, from Parquet through Dask, and a subsample beside lme4.

Usage::

    python benchmarks/movielens32.py [--dir /tmp/sparselmm_ml32] [--phases memory,dask,check]
                                     [--check-every 10] [--check-items 2000] [--workers 2]
                                     [--memory-limit 8GiB]

*Data*: ``sparselmm.datasets.simulate_ratings(27_100_000, 94_380, 16_034, seed=1,
min_per_user=80)`` — a synthetic stand-in with the shape of MovieLens 32M after its cut-offs
(users with at least 80 ratings, movies with at least 50; the real data cannot be bundled) —
written once as Parquet parts of 5M rows (``<dir>/parts``) (``y`` float64, ``user`` and ``item`` int32 codes) and
reused while the parameters match.

Each phase runs in its own process (so that one's memory does not count for the next), and
prints one JSON line; the summary goes to ``--out`` (default ``benchmarks/results/ml32_<commit>.json``):

- ``memory``: ``pd.read_parquet`` then ``sparselmm.lmer(..., REML=False)``; the fit's seconds
  (read included and not), its evaluations, the seconds spent filling the Schur complement and
  factoring it (the backend's ``_fill`` and ``_factorize``, timed by wrapping them), and the
  process's peak RSS.
- ``dask``: ``sparselmm.lmer`` on ``dask.dataframe.read_parquet`` of the same files on a
  ``LocalCluster`` of worker processes; seconds from the read to the fitted model, peak RSS of
  this process and its workers.
- ``check``: a subsample of the same kind — every ``--check-every``-th user, their ratings of the
  ``--check-items`` most-rated items (so that, as in the whole set, users outnumber items and the
  block Schur factor is chosen) — fitted by sparselmm and by lme4 (``Rscript``; skipped when R or
  lme4 is missing): the deviance and θ side by side.

The optimum of the whole data has no lme4 figure (lme4's CHOLMOD-based fit of 27 M rows on
these 2 cores takes hours); the subsample is the check that both reach the same optimum.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from dask_big import PeakMemory, reusable  # noqa: E402  (a sibling script, not a package)

FORMULA = "y ~ 1 + (1 | user) + (1 | item)"
SHAPE = dict(n_obs=27_100_000, n_users=94_380, n_items=16_034, seed=1, min_per_user=80)
CHUNK = 5_000_000
DEFAULT_DIR = "/tmp/sparselmm_ml32"


def generate(folder: Path) -> float:
    """Write the data set's Parquet parts unless they are there for the same :data:`SHAPE`; seconds taken."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import sparselmm as slm

    manifest = {"shape": SHAPE, "chunk": CHUNK}
    mf = folder.parent / "manifest.json"  # beside the parts: readers take every file of the folder
    if reusable(folder, mf, manifest):
        return 0.0
    t0 = time.perf_counter()
    df = slm.datasets.simulate_ratings(**SHAPE)
    y = df["y"].to_numpy()
    user = df["user"].cat.codes.to_numpy().astype(np.int32)
    item = np.asarray(df["item"].cat.categories)[df["item"].cat.codes.to_numpy()].astype(np.int32)
    del df
    for i, lo in enumerate(range(0, len(y), CHUNK)):
        hi = min(len(y), lo + CHUNK)
        table = pa.table({"y": y[lo:hi], "user": user[lo:hi], "item": item[lo:hi]})
        pq.write_table(table, folder / f"part-{i:04d}.parquet", row_group_size=1_000_000)
    mf.write_text(json.dumps(manifest))
    return time.perf_counter() - t0


def _timed_backend() -> dict:
    """Wrap the Schur backend's fill and factorisation with timers; the dict they add to."""
    from sparselmm.backends.schur import SchurState

    acc = {"fill_s": 0.0, "fills": 0, "factorize_s": 0.0, "factorizations": 0}

    def timed(method, seconds: str, count: str):  # type: ignore[no-untyped-def]
        def wrapper(self, *a, **k):  # type: ignore[no-untyped-def]
            t = time.perf_counter()
            try:
                return method(self, *a, **k)
            finally:
                acc[seconds] += time.perf_counter() - t
                acc[count] += 1

        return wrapper

    SchurState._fill = timed(SchurState._fill, "fill_s", "fills")
    SchurState._factorize = timed(SchurState._factorize, "factorize_s", "factorizations")
    return acc


def _summary(m, seconds: float, acc: dict | None = None) -> dict:  # type: ignore[no-untyped-def]
    """The fit's figures; with ``acc`` (from :func:`_timed_backend`) its fill and factorisation
    seconds too, ``factor_s`` being the rest of ``_factorize`` (the dense Cholesky factor)."""
    extra = {} if acc is None else {**acc, "factor_s": acc["factorize_s"] - acc["fill_s"]}
    return {
        "backend": m.backend,
        "optimizer": m.optsum.optimizer,
        "evaluations": m.optsum.feval,
        "seconds_fit": seconds,
        "deviance": m.objective,
        "theta": m.theta.tolist(),
        "fixef": m.fixef.tolist(),
        "sigma": m.sigma,
        **extra,
    }


def phase_memory(folder: Path) -> dict:
    """The in-memory fit."""
    import pandas as pd

    import sparselmm as slm

    acc = _timed_backend()
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        df = pd.read_parquet(folder)
        t1 = time.perf_counter()
        m = slm.lmer(FORMULA, df, REML=False, verbose=True)
        t2 = time.perf_counter()
    out = _summary(m, t2 - t1, acc)
    out.update(seconds_read=t1 - t0, seconds_total=t2 - t0, peak_rss_gb=mem.peak_self / 1e9)
    return out


def phase_dask(folder: Path, workers: int, memory_limit: str) -> dict:
    """The fit from Parquet through Dask."""
    import dask.dataframe as dd
    from dask.distributed import Client, LocalCluster

    import sparselmm as slm

    acc = _timed_backend()
    with PeakMemory() as mem, LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                           memory_limit=memory_limit, dashboard_address=None) as cluster, \
            Client(cluster):
        mem.reset()
        t0 = time.perf_counter()
        m = slm.lmer(FORMULA, dd.read_parquet(str(folder)), REML=False, verbose=True)
        t1 = time.perf_counter()
    out = _summary(m, t1 - t0, acc)
    out.update(seconds_total=t1 - t0, peak_rss_tree_gb=mem.peak_tree / 1e9, peak_rss_driver_gb=mem.peak_self / 1e9,
               workers=workers, memory_limit_per_worker=memory_limit)
    return out


R_CHECK = """
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
d <- read.csv("{csv}"); d$user <- factor(d$user); d$item <- factor(d$item)
t <- system.time(m <- lmer(y ~ 1 + (1 | user) + (1 | item), d, REML = FALSE))[["elapsed"]]
cat(toJSON(list(deviance = deviance(m), theta = unname(getME(m, "theta")), seconds = t,
                evaluations = m@optinfo$feval), digits = NA, auto_unbox = TRUE), "\\n")
"""


def phase_check(folder: Path, every: int, items: int) -> dict:
    """sparselmm and lme4 on every ``every``-th user's ratings of the ``items`` most-rated items."""
    import pandas as pd

    import sparselmm as slm

    df = pd.read_parquet(folder)
    top = df["item"].value_counts().index[:items]
    sub = df[(df["user"] % every == 0) & df["item"].isin(top)].reset_index(drop=True)
    del df
    t0 = time.perf_counter()
    m = slm.lmer(FORMULA, sub, REML=False)
    out = {"every": every, "top_items": items, "rows": len(sub), "users": int(sub["user"].nunique()),
           "items": int(sub["item"].nunique()), "sparselmm": _summary(m, time.perf_counter() - t0)}
    if shutil.which("Rscript"):
        with tempfile.TemporaryDirectory() as tmp:
            csv = Path(tmp) / "sub.csv"
            sub.to_csv(csv, index=False)
            r = subprocess.run(["Rscript", "-e", R_CHECK.replace("{csv}", str(csv))], capture_output=True, text=True)
        if r.returncode == 0:
            out["lme4"] = json.loads(r.stdout.strip().splitlines()[-1])
            out["deviance_sparselmm_minus_lme4"] = m.objective - out["lme4"]["deviance"]
            out["theta_max_abs_diff"] = float(np.max(np.abs(m.theta - np.asarray(out["lme4"]["theta"]))))
        else:
            out["lme4"] = {"error": r.stderr[-500:]}
    return out


def main(argv: list[str] | None = None) -> dict:
    """Generate the data, run the phases (each in a subprocess), print and save the summary."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default=DEFAULT_DIR)
    ap.add_argument("--phases", default="memory,dask,check")
    ap.add_argument("--check-every", type=int, default=10)
    ap.add_argument("--check-items", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--memory-limit", default="8GiB", help="per worker (a cap, not a reservation)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--phase", default=None, help=argparse.SUPPRESS)  # internal: run one phase here
    args = ap.parse_args(argv)
    folder = Path(args.dir) / "parts"
    if args.phase:
        run = {"memory": lambda: phase_memory(folder),
               "dask": lambda: phase_dask(folder, args.workers, args.memory_limit),
               "check": lambda: phase_check(folder, args.check_every, args.check_items)}[args.phase]
        print("RESULT " + json.dumps(run()), flush=True)
        return {}

    out: dict = {"shape": SHAPE, "formula": FORMULA, "REML": False}
    try:
        import threadpoolctl

        info = next(i for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas")
        out["blas"] = (f"{info.get('internal_api')} {info.get('version')} {info.get('architecture')}, "
                       f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}")
    except Exception:  # noqa: BLE001 - informational only
        pass
    print(f"data in {folder} ...", flush=True)
    out["seconds_generate"] = generate(folder)
    for phase in args.phases.split(","):
        cmd = [sys.executable, __file__, "--phase", phase, "--dir", args.dir, "--check-every", str(args.check_every),
               "--check-items", str(args.check_items), "--workers", str(args.workers),
               "--memory-limit", args.memory_limit]
        print(f"phase {phase}: {' '.join(cmd[1:])}", flush=True)
        p = subprocess.run(cmd, capture_output=True, text=True)
        lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
        if p.returncode or not lines:
            out[phase] = {"error": (p.stderr or p.stdout)[-1500:]}
        else:
            out[phase] = json.loads(lines[-1][len("RESULT "):])
        print(json.dumps(out[phase], indent=1), flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE).stdout.strip()
    path = Path(args.out or HERE / "results" / f"ml32_{commit or 'local'}.json")
    path.write_text(json.dumps(out, indent=1))
    print(f"written {path}")
    return out


if __name__ == "__main__":
    main()
