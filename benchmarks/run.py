"""Benchmark runner: sparselmm beside lme4, statsmodels MixedLM and mixedlm.

Usage (from the repository root)::

    python -m benchmarks                          # cases 1-7, every tool found
    python -m benchmarks --cases 1,2,3 --tools sparselmm,lme4 --repeat 5
    python -m benchmarks --cases 5 --big          # scaling series up to n = 1e7

Every (case, tool) pair runs in a fresh process (``benchmarks/worker.py`` for
the Python tools, ``Rscript benchmarks/lme4_time.R`` for lme4): the data are
built, one warm-up fit is made, then ``--repeat`` timed fits; the median is
reported.  A fit slower than ``--slow`` seconds is measured once (its warm-up
is the measurement).  Each external process has a timeout; a tool that is not
installed, times out, fails or hits the memory cap gets a row saying so.

The Markdown table is printed and written to ``--out``; the raw numbers
(every fit, versions, machine load) go to the same path with ``.json``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: python benchmarks/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "benchmarks"  # noqa: A001

from .cases import CASES, SCALING_FORMULA, SCALING_LEVELS, SCALING_N, SCALING_N_BIG, SCALING_THETA, scaling_data

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
R_SCRIPT = HERE / "lme4_time.R"
TOOLS = ("sparselmm", "lme4", "statsmodels", "mixedlm")


# ------------------------------------------------------------------ availability


def _py_available(tool: str) -> tuple[bool, str]:
    if importlib.util.find_spec(tool) is None:
        return False, "not installed"
    if tool == "mixedlm":
        # the PyPI name has been used by more than one project: check the API
        probe = subprocess.run(
            [sys.executable, "-c", "import mixedlm, sys; sys.exit(0 if callable(getattr(mixedlm, 'lmer', None)) else 1)"],
            capture_output=True,
            timeout=120,
        )
        if probe.returncode != 0:
            return False, "installed, but without an lme4-style mixedlm.lmer(formula, data, REML=) API"
    return True, ""


def _r_available() -> tuple[bool, str]:
    rs = shutil.which("Rscript")
    if rs is None:
        return False, "not installed (no Rscript on PATH)"
    probe = subprocess.run(
        [rs, "-e", "q(status = !all(sapply(c('lme4','jsonlite','data.table'), requireNamespace, quietly = TRUE)))"],
        capture_output=True,
        timeout=120,
    )
    if probe.returncode != 0:
        return False, "not installed (R found, but lme4, jsonlite or data.table missing)"
    return True, ""


def available(tool: str) -> tuple[bool, str]:
    return _r_available() if tool == "lme4" else _py_available(tool)


# ------------------------------------------------------------------ subprocesses


def _limit_memory(gb: float):  # noqa: ANN202
    def pre() -> None:
        if gb and gb > 0:
            import resource

            lim = int(gb * 1024**3)
            resource.setrlimit(resource.RLIMIT_AS, (lim, lim))

    return pre


_PYTHONPATH = [str(ROOT)]


def snapshot_sources(tmp: Path) -> str:
    """Copy ``sparselmm/`` to ``tmp`` and put it first on the workers' (and this process's)
    path, so one run measures one version of the code even while it is being edited.
    Returns a short hash of the copied sources."""
    import hashlib

    src = tmp / "src"
    shutil.copytree(ROOT / "sparselmm", src / "sparselmm", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (src / "datasets").symlink_to(ROOT / "datasets")  # the data files, found beside the package
    h = hashlib.sha256()
    for f in sorted((src / "sparselmm").rglob("*")):
        if f.is_file():
            h.update(f.relative_to(src).as_posix().encode())
            h.update(f.read_bytes())
    _PYTHONPATH.insert(0, str(src))
    sys.path.insert(0, str(src))
    for mod in [m for m in sys.modules if m == "sparselmm" or m.startswith("sparselmm.")]:
        del sys.modules[mod]
    return h.hexdigest()[:12]


def run_process(cmd: list[str], timeout: float, mem_gb: float = 0.0) -> dict[str, Any]:
    """Run ``cmd`` (its own process group) with a timeout; parse its JSON lines."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        load0 = os.getloadavg()[0]
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=err,
            cwd=ROOT,
            start_new_session=True,
            preexec_fn=_limit_memory(mem_gb),
            env={**os.environ, "PYTHONPATH": os.pathsep.join(_PYTHONPATH + [os.environ.get("PYTHONPATH", "")])},
        )
        timed_out = False
        sampled_kb = 0
        try:
            # poll, sampling the child's RSS: gives a peak even for a process killed at its timeout
            deadline = time.monotonic() + timeout
            while True:
                try:
                    proc.wait(timeout=min(0.5, max(deadline - time.monotonic(), 0.01)))
                    break
                except subprocess.TimeoutExpired:
                    sampled_kb = max(sampled_kb, _rss_kb(proc.pid))
                    if time.monotonic() >= deadline:
                        raise
        except subprocess.TimeoutExpired:
            timed_out = True
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the worker and anything it started
            except ProcessLookupError:
                pass
            proc.wait()
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        events = []
        for line in out:
            line = line.strip()
            if line.startswith("{"):
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
        stderr = err.read()
    return {
        "cmd": cmd,
        "events": events,
        "returncode": proc.returncode,
        "timed_out": timed_out,
        "wall_seconds": wall,
        "loadavg_start": load0,
        "loadavg_end": os.getloadavg()[0],
        "stderr_tail": stderr[-1500:],
        "sampled_peak_rss_mb": sampled_kb / 1024,
    }


def _rss_kb(pid: int) -> int:
    """Current resident memory of ``pid`` and its children (kB; 0 if unreadable)."""
    total = 0
    pids = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            pids += [int(x) for x in fh.read().split()]
    except OSError:
        pass
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def summarise(proc: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Median over the timed fits, status and notes of one (case, tool) process."""
    ev = proc["events"]
    fits = [e for e in ev if e.get("event") == "fit"]
    timed = [e for e in fits if not e.get("warmup")]
    notes: list[str] = []
    if not timed and fits and fits[0]["seconds"] is not None:
        timed = fits[:1]
        notes.append("one cold fit (slow: warm-up is the measurement)" if not proc["timed_out"] else "one cold fit")
    errors = [e for e in ev if e.get("event") == "error"]
    done = next((e for e in ev if e.get("event") == "done"), {})
    s: dict[str, Any] = {"runs": len(timed), "version": done.get("version", "")}
    if done.get("blas"):
        s["blas"] = done["blas"]
    if proc["timed_out"] and not timed:
        s["status"] = f"timeout (> {timeout:.0f} s)"
        if proc.get("sampled_peak_rss_mb"):
            s["notes"] = [f"RSS had reached {proc['sampled_peak_rss_mb']:.0f} MB when killed (sampled every 0.5 s)"]
        ready = next((e for e in ev if e.get("event") == "ready"), None)
        if ready is None:
            s["status"] += ", before the data were ready"
        return s
    if not timed:
        if errors:
            msg = errors[0].get("message", "")
            if errors[0].get("kind") == "memory":
                tb = [ln.strip() for ln in errors[0].get("traceback", "").splitlines() if ln.strip()]
                where = [ln for ln in tb if ln.startswith("File ")][-1:]
                s["status"] = "memory limit"
                s["notes"] = [" ".join(where + tb[-1:])[-300:]]
            else:
                s["status"] = f"error: {msg[:200]}"
        elif proc["returncode"] not in (0, None):
            rc = proc["returncode"]
            why = "killed (out of memory?)" if rc in (-9, 137) else f"exit {rc}"
            tail = proc["stderr_tail"].strip().splitlines()[-1:] or [""]
            s["status"] = f"error: {why} {tail[0][:150]}".strip()
        else:
            s["status"] = "error: no result"
        return s
    if proc["timed_out"]:
        notes.append(f"timeout after {len(timed)} timed fit(s)")
    if errors:
        notes.append("error after some fits: " + errors[0].get("message", "")[:120])
    secs = [e["seconds"] for e in timed]
    cpus = [e.get("cpu_seconds") for e in timed if e.get("cpu_seconds") is not None]
    last = timed[-1]
    peaks = [e.get("fit_peak_mb") for e in fits if e.get("fit_peak_mb") is not None]
    s.update(
        status="ok",
        seconds=statistics.median(secs),
        seconds_min=min(secs),
        seconds_all=secs,
        cpu_seconds=statistics.median(cpus) if cpus else None,
        objective=last.get("objective"),
        feval=last.get("feval"),
        fit_peak_mb=max(peaks) if peaks else None,
        peak_rss_mb=done.get("peak_rss_mb"),
        loadavg=statistics.median([e.get("loadavg", 0.0) for e in timed]),
    )
    if s["feval"]:
        s["ms_per_eval"] = 1e3 * s["seconds"] / s["feval"]
    for key in ("opt_seconds", "opt_ms_per_eval", "grad_evals", "converged", "optimizer", "theta", "method"):
        if key in last:
            s[key] = last[key]
    if "grad_evals" in last:
        notes.append(f"+{last['grad_evals']} gradient evals")
    if last.get("optimizer") and "opt_ms_per_eval" in last:
        notes.append(f"optimizer {last['optimizer']}")
    if "opt_ms_per_eval" in last:
        notes.append(f"optimiser alone {last['opt_seconds']:.3g} s, {last['opt_ms_per_eval']:.3g} ms/eval")
    if last.get("converged") is False:
        notes.append("reports non-convergence")
    warns = sorted({w for e in timed for w in (e.get("warnings") or [])})
    if warns:
        notes.append("warnings: " + "; ".join(w[:100] for w in warns[:2]))
    s["notes"] = notes
    return s


# ------------------------------------------------------------------ cases


def write_case_csv(case: Any, tmp: Path) -> Path:
    df = case.load()
    path = tmp / f"case{case.id}.csv"
    df[list(case.columns)].to_csv(path, index=False)
    return path


def python_cmd(tool: str, case_id: int, a: argparse.Namespace) -> list[str]:
    return [
        sys.executable, "-m", "benchmarks.worker", "--tool", tool, "--case", str(case_id),
        "--repeat", str(a.repeat), "--slow", str(a.slow),
    ]  # fmt: skip


def r_cmd(case: Any, csv: Path, a: argparse.Namespace) -> list[str]:
    return [
        shutil.which("Rscript") or "Rscript", str(R_SCRIPT), "mode=fit", f"data={csv}",
        f"formula={case.formula}", f"reml={'TRUE' if case.REML else 'FALSE'}",
        f"factors={','.join(case.factors)}", f"repeat={a.repeat}", f"slow={a.slow}",
    ]  # fmt: skip


def run_fit_cases(a: argparse.Namespace, tools: list[str], avail: dict[str, tuple[bool, str]], tmp: Path) -> list[dict]:
    rows = []
    for cid in [c for c in a.cases if c in CASES]:
        case = CASES[cid]
        csv = None
        print(f"\n== case {cid}: {case.name}  {case.formula}  ({'REML' if case.REML else 'ML'})", flush=True)
        for tool in tools:
            row: dict[str, Any] = {"case": cid, "case_name": case.name, "tool": tool, "formula": case.formula,
                                   "REML": case.REML}  # fmt: skip
            ok, why = avail[tool]
            if not ok:
                row.update(status=why)
            elif tool == "statsmodels" and case.statsmodels is None:
                row.update(status="skipped", notes=[case.statsmodels_skip])
            elif tool == "lme4" and case.lme4_skip:
                row.update(status="skipped", notes=[case.lme4_skip])
            else:
                if tool == "lme4":
                    if csv is None:
                        csv = write_case_csv(case, tmp)
                    cmd, timeout, mem = r_cmd(case, csv, a), a.timeout, 0.0
                else:
                    cmd = python_cmd(tool, cid, a)
                    timeout = a.timeout_self if tool == "sparselmm" else a.timeout
                    mem = a.mem_limit
                proc = run_process(cmd, timeout, mem)
                row.update(summarise(proc, timeout))
                row["process"] = proc
            rows.append(row)
            print(f"   {tool:12s} {_brief(row)}", flush=True)
        base = next((r for r in rows if r["case"] == cid and r["tool"] == "lme4" and r.get("status") == "ok"), None)
        for r in rows:
            if r["case"] != cid or r.get("status") != "ok" or base is None:
                continue
            r["ratio_to_lme4"] = r["seconds"] / base["seconds"]
            if r.get("objective") is not None and base.get("objective") is not None:
                r["delta_objective"] = r["objective"] - base["objective"]
                if r["tool"] != "lme4":
                    d = r["delta_objective"]
                    tol = 1e-3 * max(1.0, abs(base["objective"]) * 1e-6)
                    r.setdefault("notes", []).insert(
                        0,
                        "optimum agrees with lme4" if abs(d) <= tol
                        else f"optimum {'below' if d < 0 else 'ABOVE'} lme4's by {abs(d):.3g}",
                    )
    return rows


def run_scaling(a: argparse.Namespace, tools: list[str], avail: dict[str, tuple[bool, str]], tmp: Path) -> list[dict]:
    rows = []
    if a.scaling_n:
        ns = [int(float(x)) for x in a.scaling_n.split(",") if x.strip()]
    else:
        ns = list(SCALING_N) + (list(SCALING_N_BIG) if a.big else [])
    print(f"\n== case 5: scaling, {SCALING_FORMULA}, {SCALING_LEVELS[0]:,} x {SCALING_LEVELS[1]:,} levels, "
          f"theta = {SCALING_THETA}", flush=True)  # fmt: skip
    variants = [t for t in tools if t in ("sparselmm", "lme4")]
    if "sparselmm" in variants and avail["sparselmm"][0]:
        try:
            import inspect

            import sparselmm as slm

            if "backend" in inspect.signature(slm.Design.pls).parameters:
                variants.insert(1, "sparselmm[cholmod]")
        except Exception:  # noqa: BLE001
            pass
    for n in ns:
        for tool in variants:
            row: dict[str, Any] = {"case": 5, "tool": tool, "n": n}
            ok, why = avail[tool.split("[")[0]]
            if not ok:
                row["status"] = why
                rows.append(row)
                continue
            if tool.startswith("sparselmm"):
                backend = tool[len("sparselmm["):-1] if "[" in tool else "auto"
                cmd = [sys.executable, "-m", "benchmarks.worker", "--tool", "sparselmm", "--scaling-n", str(n),
                       "--evals", str(a.evals), "--backend", backend]  # fmt: skip
                if backend == "auto":
                    cmd.append("--fit")
                proc = run_process(cmd, a.timeout_self, a.mem_limit)
                timeout = a.timeout_self
            else:
                csv = tmp / f"scaling_{n}.csv"
                scaling_data(n).to_csv(csv, index=False)
                cmd = [shutil.which("Rscript") or "Rscript", str(R_SCRIPT), "mode=devfun", f"data={csv}",
                       f"formula={SCALING_FORMULA}", "reml=FALSE", "factors=a,b",
                       f"theta={','.join(map(str, SCALING_THETA))}", f"evals={a.evals}"]  # fmt: skip
                proc = run_process(cmd, a.timeout, 0.0)
                timeout = a.timeout
                csv.unlink(missing_ok=True)
            sc = next((e for e in proc["events"] if e.get("event") == "scaling"), None)
            done = next((e for e in proc["events"] if e.get("event") == "done"), {})
            if sc is None:
                row.update(summarise(proc, timeout))
                if row.get("status") == "ok":
                    row["status"] = "error: no scaling result"
            else:
                row.update({k: v for k, v in sc.items() if k != "event"}, status="ok",
                           peak_rss_mb=done.get("peak_rss_mb"), version=done.get("version", ""))  # fmt: skip
            row["process"] = proc
            rows.append(row)
            print(f"   n={n:>10,} {tool:10s} {_brief_scaling(row)}", flush=True)
    return rows


# ------------------------------------------------------------------ output


def _f(x: Any, fmt: str = "{:.3g}") -> str:
    if x is None:
        return ""
    try:
        return fmt.format(x)
    except (TypeError, ValueError):
        return str(x)


def _cell(text: str) -> str:
    """One Markdown table cell: no newlines, no bare pipes."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _secs(x: float | None) -> str:
    if x is None:
        return ""
    if x < 1:
        return f"{x * 1e3:.3g} ms"
    return f"{x:.3g} s"


def _brief(r: dict) -> str:
    if r.get("status") != "ok":
        return r.get("status", "")
    return f"{_secs(r['seconds'])}, objective {r['objective']:.4f}, {r.get('feval')} evals, fit peak {_f(r.get('fit_peak_mb'), '{:.0f}')} MB"


def _brief_scaling(r: dict) -> str:
    if r.get("status") != "ok":
        return r.get("status", "")
    return (f"setup {r['design_seconds']:.3g} s, {r['ms_per_eval_mean']:.3g} ms/eval at theta"
            + (f", fit {r['fit_seconds']:.3g} s / {r['fit_feval']} evals" if "fit_seconds" in r else ""))  # fmt: skip


def markdown(rows: list[dict], srows: list[dict], env: dict) -> str:
    out = [
        f"# sparselmm benchmarks ({env['date']})",
        "",
        f"Machine: {env['nproc']} cores, {env['mem_gb']:.0f} GB, {env['platform']}; "
        f"1-min load average {env['loadavg_start']:.2f} at start, {env['loadavg_end']:.2f} at end "
        f"(other jobs were running: see the `load` column). Run took {env['wall_seconds'] / 60:.1f} min.",
        f"Versions: {'; '.join(f'{k} {v}' for k, v in env['versions'].items() if v)}.",
        f"sparselmm commit {env.get('git', '?')}, sources copied at start (sha256 {env.get('sources_sha256')}). Command: `{env['command']}`.",
        "",
    ]
    if rows:
        out += [
            "| case | tool | objective | Δ vs lme4 | evals | ms/eval | time (median) | (min) | CPU s | × lme4 | peak RSS MB | fit peak MB | runs | load | notes |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in rows:
            name = f"{r['case']} {r['case_name']} ({'REML' if r['REML'] else 'ML'})"
            if r.get("status") != "ok":
                notes = _cell("; ".join(r.get("notes", [])))
                out.append(f"| {name} | {r['tool']} | {r.get('status')} |  |  |  |  |  |  |  |  |  |  |  | {notes} |")
                continue
            d = r.get("delta_objective")
            out.append(
                "| "
                + " | ".join(
                    [
                        name,
                        r["tool"],
                        _f(r["objective"], "{:.4f}"),
                        "" if d is None else ("0" if r["tool"] == "lme4" else _f(d, "{:+.2g}")),
                        _f(r.get("feval"), "{}"),
                        _f(r.get("ms_per_eval"), "{:.3g}"),
                        _secs(r["seconds"]),
                        _secs(r["seconds_min"]),
                        _f(r.get("cpu_seconds"), "{:.3g}"),
                        _f(r.get("ratio_to_lme4"), "{:.2f}"),
                        _f(r.get("peak_rss_mb"), "{:.0f}"),
                        _f(r.get("fit_peak_mb"), "{:.0f}"),
                        str(r["runs"]),
                        _f(r.get("loadavg"), "{:.1f}"),
                        _cell("; ".join(r.get("notes", []))),
                    ]
                )
                + " |"
            )
        out.append("")
        # the cases' data and, for the anchors' shapes, the published figures they are set beside
        for cid in sorted({r["case"] for r in rows}):
            if CASES[cid].notes:
                out.append(f"- case {cid} ({CASES[cid].name}): {CASES[cid].notes}")
        out.append("")
    if srows:
        out += [
            f"Scaling (case 5): `{SCALING_FORMULA}`, ML, {SCALING_LEVELS[0]:,} × {SCALING_LEVELS[1]:,} levels, "
            f"profiled deviance evaluated at fixed θ = {SCALING_THETA} (sparselmm: "
            f"`d.objective_function(REML=False)`; lme4: `mkLmerDevfun`), after one warm-up evaluation.",
            "",
            "| n | tool | nnz(ZᵀZ) | setup s | ms/eval at θ (mean) | (min) | CPU ms/eval | deviance at θ | full fit | fit evals | peak RSS MB | setup peak MB | load / notes |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in srows:
            if r.get("status") != "ok":
                out.append(f"| {r['n']:,} | {r['tool']} |  | {r.get('status')} |  |  |  |  |  |  |  |  | "
                           f"{_cell('; '.join(r.get('notes', [])))} |")
                continue
            out.append(
                f"| {r['n']:,} | {r['tool']} | {_f(r.get('nnz_ZtZ'), '{:,}')} | {r['design_seconds']:.3g} | {r['ms_per_eval_mean']:.3g} | "
                f"{r['ms_per_eval_min']:.3g} | {_f(r.get('cpu_ms_per_eval_mean'), '{:.3g}')} | {r['objective_at_theta']:.4f} | {_secs(r.get('fit_seconds'))} | "
                f"{_f(r.get('fit_feval'), '{}')} | {_f(r.get('peak_rss_mb'), '{:.0f}')} | "
                f"{_f(r.get('design_peak_mb'), '{:.0f}')} | {_f(r.get('loadavg'), '{:.1f}')} |"
            )
        out.append("")
    out += [
        "Columns: objective = REML criterion (REML) or deviance (ML) on lme4's scale (statsmodels: −2·llf); "
        "Δ vs lme4 = objective − lme4's (negative: a lower optimum); evals = objective evaluations "
        "(lme4 `optinfo$feval`; sparselmm `optsum.feval`; mixedlm `function_evals`; statsmodels counted "
        "`loglike` calls); ms/eval = time / evals; time = median wall time of the whole fitting call "
        "(`lmer()`, `slm.lmer()`, `mixedlm.lmer()`, `smf.mixedlm(...).fit()`) over the timed runs after a "
        "warm-up, (min) the fastest of them; CPU s = its process CPU time; × lme4 = time / lme4's time; peak RSS = the process's peak "
        "resident set (interpreter, data and fits); fit peak = peak RSS during one fit minus RSS before it; "
        "load = 1-minute load average when the fit ended.",
        "",
    ]
    return "\n".join(out)


def _env(a: argparse.Namespace, avail: dict, rows: list[dict], srows: list[dict]) -> dict[str, Any]:
    from importlib.metadata import version

    vers: dict[str, str] = {"python": platform.python_version()}
    for pkg in ("sparselmm", "numpy", "scipy", "scikit-sparse", "statsmodels", "mixedlm"):
        try:
            vers[pkg] = version(pkg)
        except Exception:  # noqa: BLE001
            pass
    rv = next((r.get("version") for r in rows + srows if r.get("tool") == "lme4" and r.get("version")), None)
    if rv:
        vers["R"] = rv
    blas = next((r.get("blas") for r in rows if r.get("blas")), None)
    if blas:
        vers["R BLAS"] = blas
    try:
        import numpy as np

        cfg = np.show_config(mode="dicts")
        vers["numpy BLAS"] = cfg["Build Dependencies"]["blas"]["name"]
    except Exception:  # noqa: BLE001
        pass
    try:  # the BLAS kernel in use (OPENBLAS_CORETYPE picks it on this machine; users' machines do not set it)
        import threadpoolctl

        info = next(i for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas")
        vers["BLAS kernel"] = (f"{info.get('internal_api')} {info.get('version')} {info.get('architecture')}, "
                               f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}")
    except Exception:  # noqa: BLE001
        pass
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    except (ValueError, OSError):
        mem = 0.0
    return {"versions": vers, "nproc": os.cpu_count(), "mem_gb": mem, "platform": platform.platform()}


def _git_state() -> str:
    """The checked-out commit, and whether sparselmm/ differs from it (read when the sources are copied)."""
    try:
        git = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "sparselmm"], capture_output=True, text=True).stdout.strip()
        return git + (" (+ uncommitted changes in sparselmm/)" if dirty else "")
    except Exception:  # noqa: BLE001
        return "?"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", default="1,2,3,4,5,6,7",
                   help="comma-separated case ids (1-8); default 1-7 (8, the MovieLens-32M shape, is asked for by name)")
    p.add_argument("--tools", default=",".join(TOOLS), help=f"comma-separated subset of {','.join(TOOLS)}")
    p.add_argument("--repeat", type=int, default=5, help="timed fits after the warm-up (default 5)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per lme4/peer process (default 300)")
    p.add_argument("--timeout-self", type=float, default=1800.0, help="seconds per sparselmm process (default 1800)")
    p.add_argument("--slow", type=float, default=10.0, help="fits slower than this are measured once (default 10 s)")
    p.add_argument("--mem-limit", type=float, default=12.0, help="address-space cap (GB) of Python workers; 0: none")
    p.add_argument("--evals", type=int, default=10, help="objective evaluations timed per n in case 5")
    p.add_argument("--big", action="store_true", help="add n = 10,000,000 to the scaling series")
    p.add_argument("--scaling-n", default="", help="override the scaling series, e.g. 1e5,1e6,1e7")
    p.add_argument("--no-snapshot", action="store_true", help="run the live sparselmm/ tree, not a copy taken at start")
    p.add_argument("--out", default=str(HERE / "results" / "latest.md"), help="Markdown output (JSON beside it)")
    a = p.parse_args(argv)
    a.cases = [int(c) for c in a.cases.split(",") if c.strip()]
    tools = [t.strip() for t in a.tools.split(",") if t.strip()]
    bad = [t for t in tools if t not in TOOLS]
    if bad:
        p.error(f"unknown tool(s) {bad}; choose from {TOOLS}")
    t_start = time.perf_counter()
    load_start = os.getloadavg()[0]
    avail = {t: available(t) for t in tools}
    for t, (ok, why) in avail.items():
        print(f"{t:12s} {'available' if ok else why}", flush=True)
    with tempfile.TemporaryDirectory(prefix="slm-bench-") as tmpd:
        tmp = Path(tmpd)
        git = _git_state()  # the version the snapshot holds (the tree may change during the run)
        src_hash = "live tree" if a.no_snapshot else snapshot_sources(tmp)
        rows = run_fit_cases(a, tools, avail, tmp)
        srows = run_scaling(a, tools, avail, tmp) if 5 in a.cases else []
    env = _env(a, avail, rows, srows)
    env.update(
        date=_dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        loadavg_start=load_start,
        loadavg_end=os.getloadavg()[0],
        wall_seconds=time.perf_counter() - t_start,
        sources_sha256=src_hash,
        git=git,
        command="python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:]),
        availability={t: {"available": ok, "why": why} for t, (ok, why) in avail.items()},
    )
    md = markdown(rows, srows, env)
    print("\n" + md)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(md)
    out.with_suffix(".json").write_text(json.dumps({"env": env, "cases": rows, "scaling": srows}, indent=1, default=str))
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
