"""Fit a 10⁸-row crossed design from Parquet through Dask, measuring time and memory.

Usage::

    python benchmarks/dask_big.py [--rows 100000000] [--n-a 100000] [--n-b 2000]
                                  [--chunk 5000000] [--dir /tmp/sparselmm_dask_big]
                                  [--workers 2] [--memory-limit 6GiB] [--check-rows 1000000]

1. *Data*: ``y = 2 + 0.5 x + a_g + b_h + ε`` with ``a ~ N(0, 1)`` on ``n_a``
   levels, ``b ~ N(0, 0.5²)`` on ``n_b`` levels, ``ε ~ N(0, 1)``: the model of
   :func:`sparselmm.datasets.simulate_crossed`, written chunk by chunk (one
   Parquet file of ``--chunk`` rows each, columns ``y``, ``x`` float64 and
   ``a``, ``b`` int32), so the whole set is never in memory.  Files already
   there with the same parameters are reused.
2. *Fit*: ``sparselmm.lmer("y ~ 1 + x + (1 | a) + (1 | b)", dd.read_parquet(dir))``
   on a ``dask.distributed.LocalCluster`` (worker processes), timing the scan,
   the cross-product pass and the optimisation, and sampling the resident
   memory of this process and all its children (the workers) every 0.2 s.
3. *Checks*: the estimates against the simulation's truth (β, σ, and the SDs
   of the drawn effects), the BLUPs against the drawn effects, one lazy pass
   over the residuals; and on a subsample (``--check-rows``) the Dask fit
   against the in-memory fit of the same rows.

Prints a summary and writes it as JSON beside the data (``result.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import warnings
from pathlib import Path

import numpy as np

BETA = (2.0, 0.5)
SD_A, SD_B, SIGMA = 1.0, 0.5, 1.0
FORMULA = "y ~ 1 + x + (1 | a) + (1 | b)"


class PeakMemory:
    """Samples the summed RSS of this process and its descendants in a background thread.

    Parameters
    ----------
    interval : float
        Seconds between samples.
    """

    def __init__(self, interval: float = 0.2) -> None:
        import psutil

        self.proc = psutil.Process(os.getpid())
        self.interval = interval
        self.peak_tree = 0
        self.peak_self = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> tuple[int, int]:
        """(RSS of the tree, RSS of this process) in bytes, now."""
        import psutil

        own = self.proc.memory_info().rss
        total = own
        for c in self.proc.children(recursive=True):
            try:
                total += c.memory_info().rss
            except psutil.Error:
                pass
        return total, own

    def _run(self) -> None:
        while not self._stop.is_set():
            tree, own = self.sample()
            self.peak_tree = max(self.peak_tree, tree)
            self.peak_self = max(self.peak_self, own)
            self._stop.wait(self.interval)

    def reset(self) -> None:
        """Start a new peak from the current level."""
        self.peak_tree, self.peak_self = self.sample()

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def effects(n_a: int, n_b: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The drawn level effects of ``a`` and ``b``."""
    rng = np.random.default_rng([seed, 0])
    return rng.standard_normal(n_a) * SD_A, rng.standard_normal(n_b) * SD_B


def reusable(folder: Path, manifest_file: Path, manifest: dict) -> bool:
    """Whether ``folder`` holds Parquet files written for ``manifest`` (recorded in
    ``manifest_file``); if not, the folder is made and emptied of Parquet files for a fresh write
    (the caller writes ``manifest_file`` when done)."""
    if manifest_file.exists() and json.loads(manifest_file.read_text()) == manifest:
        return True
    folder.mkdir(parents=True, exist_ok=True)
    for f in folder.glob("*.parquet"):
        f.unlink()
    return False


def generate(folder: Path, rows: int, n_a: int, n_b: int, chunk: int, seed: int) -> float:
    """Write the data set as Parquet files of ``chunk`` rows; return the seconds spent (0 if reused)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    manifest = {"rows": rows, "n_a": n_a, "n_b": n_b, "chunk": chunk, "seed": seed}
    mf = folder / "manifest.json"
    if reusable(folder, mf, manifest):
        return 0.0
    t0 = time.perf_counter()
    ea, eb = effects(n_a, n_b, seed)
    for i, start in enumerate(range(0, rows, chunk)):
        m = min(chunk, rows - start)
        rng = np.random.default_rng([seed, i + 1])
        ia = rng.integers(0, n_a, m, dtype=np.int32)
        ib = rng.integers(0, n_b, m, dtype=np.int32)
        x = rng.standard_normal(m)
        y = BETA[0] + BETA[1] * x + ea[ia] + eb[ib] + SIGMA * rng.standard_normal(m)
        table = pa.table({"y": y, "x": x, "a": ia, "b": ib})
        pq.write_table(table, folder / f"part-{i:04d}.parquet", row_group_size=1_000_000)
        del ia, ib, x, y, table
    mf.write_text(json.dumps(manifest))
    return time.perf_counter() - t0


def subsample_check(folder: Path, rows: int) -> dict:
    """Fit the first ``rows`` rows in memory and through Dask; return both estimates."""
    import dask.dataframe as dd
    import pandas as pd

    import sparselmm as slm

    first = sorted(folder.glob("*.parquet"))[0]
    df = pd.read_parquet(first).head(rows)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m0 = slm.lmer(FORMULA, df)
    t_mem = time.perf_counter() - t0
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m1 = slm.lmer(FORMULA, dd.from_pandas(df, npartitions=8))
    t_dask = time.perf_counter() - t0
    return {
        "rows": rows,
        "seconds_in_memory": t_mem,
        "seconds_dask": t_dask,
        "objective": [m0.objective, m1.objective],
        "objective_rel_diff": abs(m1.objective - m0.objective) / abs(m0.objective),
        "theta": [m0.theta.tolist(), m1.theta.tolist()],
        "fixef": [m0.fixef.tolist(), m1.fixef.tolist()],
        "max_rel_diff_theta": float(np.max(np.abs(m1.theta - m0.theta) / np.abs(m0.theta))),
        "max_abs_diff_fixef": float(np.max(np.abs(m1.fixef.to_numpy() - m0.fixef.to_numpy()))),
    }


def main(argv: list[str] | None = None) -> dict:
    """Run the demonstration; return the measurements."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000_000)
    ap.add_argument("--n-a", type=int, default=100_000)
    ap.add_argument("--n-b", type=int, default=2_000)
    ap.add_argument("--chunk", type=int, default=5_000_000)
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--dir", default="/tmp/sparselmm_dask_big")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--memory-limit", default="6GiB", help="per worker (a cap, not a reservation)")
    ap.add_argument("--check-rows", type=int, default=1_000_000, help="0 to skip the subsample check")
    ap.add_argument("--REML", action="store_true", help="REML instead of ML")
    args = ap.parse_args(argv)

    import dask.dataframe as dd
    from dask.distributed import Client, LocalCluster

    import sparselmm as slm
    from sparselmm import fit_design
    from sparselmm.frame.dask_design import dask_design

    folder = Path(args.dir)
    out: dict = {"rows": args.rows, "n_a": args.n_a, "n_b": args.n_b, "formula": FORMULA, "REML": args.REML}
    print(f"generating {args.rows:,} rows in {folder} ...", flush=True)
    out["seconds_generate"] = generate(folder, args.rows, args.n_a, args.n_b, args.chunk, args.seed)
    out["parquet_bytes"] = sum(f.stat().st_size for f in folder.glob("*.parquet"))
    print(f"  {out['seconds_generate']:.1f} s, {out['parquet_bytes'] / 1e9:.2f} GB on disk", flush=True)

    with PeakMemory() as mem, LocalCluster(
        n_workers=args.workers,
        threads_per_worker=1,
        processes=True,
        memory_limit=args.memory_limit,
        dashboard_address=None,
    ) as cluster, Client(cluster) as client:
        out["workers"] = args.workers
        out["memory_limit_per_worker"] = args.memory_limit
        mem.reset()
        out["rss_start_gb"] = mem.peak_tree / 1e9
        ddf = dd.read_parquet(str(folder))
        out["npartitions"] = ddf.npartitions
        t0 = time.perf_counter()
        d = dask_design(FORMULA, ddf)
        t1 = time.perf_counter()
        out["seconds_design"] = t1 - t0
        out["peak_rss_design_gb"] = mem.peak_tree / 1e9
        print(f"design (scan + cross-products): {t1 - t0:.1f} s, n = {d.n:,}, q = {d.q:,}, "
              f"nnz(lower Z'Z) = {d.cross.lower_part.nnz:,}, peak RSS {mem.peak_tree / 1e9:.2f} GB", flush=True)
        m = fit_design(d, REML=args.REML, verbose=True)
        t2 = time.perf_counter()
        out["pls_state"] = m.backend
        out["seconds_optimise"] = t2 - t1
        out["evaluations"] = m.optsum.feval
        out["optimizer"] = m.optsum.optimizer
        out["seconds_per_evaluation"] = (t2 - t1) / max(m.optsum.feval, 1)
        out["seconds_fit_total"] = t2 - t0
        out["peak_rss_fit_gb"] = mem.peak_tree / 1e9
        out["peak_rss_driver_gb"] = mem.peak_self / 1e9
        print(f"optimise: {t2 - t1:.1f} s, {m.optsum.feval} evaluations ({out['pls_state']}, {m.optsum.optimizer})",
              flush=True)

        ea, eb = effects(args.n_a, args.n_b, args.seed)
        vc = m.varcorr()
        sd = dict(zip(vc["grp"], vc["sdcor"]))
        ra, rb = m.ranef()["a"], m.ranef()["b"]
        out["estimates"] = {
            "objective": m.objective,
            "theta": m.theta.tolist(),
            "fixef": m.fixef.to_dict(),
            "se": m.se.to_dict(),
            "sd_a": sd["a"],
            "sd_b": sd["b"],
            "sigma": m.sigma,
        }
        out["truth"] = {
            "fixef": list(BETA),
            "sd_a_model": SD_A,
            "sd_b_model": SD_B,
            "sd_a_drawn": float(ea.std()),
            "sd_b_drawn": float(eb.std()),
            "sigma": SIGMA,
            "intercept_drawn": BETA[0] + float(ea.mean()) + float(eb.mean()),
        }
        out["corr_blup_a"] = float(np.corrcoef(ra["(Intercept)"].to_numpy(), ea[ra.index.astype(int)])[0, 1])
        out["corr_blup_b"] = float(np.corrcoef(rb["(Intercept)"].to_numpy(), eb[rb.index.astype(int)])[0, 1])
        print(m.varcorr().to_string(), flush=True)
        print(m.fixef.to_string(), flush=True)

        # one lazy pass over the residuals, partition by partition on the workers
        t3 = time.perf_counter()
        r = m.residuals()
        import dask

        n_r, ss = dask.compute(r.count(), (r * r).sum())  # one pass for both
        n_r = int(n_r)
        rms = float(np.sqrt(ss / n_r))
        out["seconds_residual_pass"] = time.perf_counter() - t3
        out["residuals"] = {"count": n_r, "rms": rms}
        out["peak_rss_gb"] = mem.peak_tree / 1e9
        out["peak_rss_driver_gb"] = mem.peak_self / 1e9
        print(f"residuals (lazy, one pass): n = {n_r:,}, rms = {rms:.5f}, {out['seconds_residual_pass']:.1f} s",
              flush=True)
        del d, m
        client.run(lambda: None)

    if args.check_rows:
        print(f"subsample check on {args.check_rows:,} rows ...", flush=True)
        out["subsample_check"] = subsample_check(folder, args.check_rows)
    out["sparselmm_version"] = slm.__version__
    (folder / "result.json").write_text(json.dumps(out, indent=2, default=float))
    print(json.dumps(out, indent=2, default=float))
    return out


if __name__ == "__main__":
    main()
