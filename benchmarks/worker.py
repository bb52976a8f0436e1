"""One (case, tool) measurement in a fresh Python process.

``python -m benchmarks.worker --tool sparselmm --case 1 --repeat 5`` builds the
case's data, fits once as a warm-up, then ``--repeat`` timed fits, and prints
one JSON object per line on stdout:

* ``{"event": "ready", ...}`` after the data are built;
* ``{"event": "fit", "warmup": bool, "seconds": ..., "cpu_seconds": ...,
  "objective": ..., "feval": ..., "fit_peak_mb": ..., ...}`` after each fit;
* ``{"event": "done", "peak_rss_mb": ..., "version": ...}`` at the end, or
  ``{"event": "error", "message": ...}``.

Lines are flushed as they are written, so the runner keeps the fits that
finished when it has to kill a worker at its timeout.

Memory: before each fit the kernel's peak-RSS mark (``VmHWM``) is reset to the
current RSS by writing ``5`` to ``/proc/self/clear_refs``; ``fit_peak_mb`` is
``VmHWM`` after the fit minus ``VmRSS`` before it (what the fit itself added at
its peak, CHOLMOD's and BLAS's C allocations included).  ``peak_rss_mb`` is the
process's peak RSS over its whole life (interpreter, imports, data, fits).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import sys
import time
import traceback
import warnings
from typing import Any

import numpy as np

# -------------------------------------------------------------------- memory


def _status() -> dict[str, int]:
    """VmRSS and VmHWM of this process, in kB (empty off Linux)."""
    try:
        with open("/proc/self/status") as fh:
            text = fh.read()
    except OSError:
        return {}
    out = {}
    for key in ("VmRSS", "VmHWM"):
        m = re.search(key + r":\s+(\d+)", text)
        if m:
            out[key] = int(m.group(1))
    return out


_PEAK_KB = 0  # highest VmHWM seen across resets


def _note_peak() -> None:
    global _PEAK_KB
    _PEAK_KB = max(_PEAK_KB, _status().get("VmHWM", 0))


def _reset_hwm() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False if not allowed."""
    _note_peak()
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _maxrss_kb() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


class FitMemory:
    """Peak memory a block of code adds: VmHWM after minus VmRSS before."""

    def __enter__(self) -> "FitMemory":
        gc.collect()
        self.resettable = _reset_hwm()
        st = _status()
        self.rss0 = st.get("VmRSS", 0)
        self.maxrss0 = _maxrss_kb()
        return self

    def __exit__(self, *exc: Any) -> None:
        st = _status()
        if self.resettable and "VmHWM" in st:
            self.peak_kb = st["VmHWM"] - self.rss0
        else:  # ru_maxrss cannot be reset: only growth of the process peak shows
            self.peak_kb = max(_maxrss_kb() - self.maxrss0, 0)
        _note_peak()

    @property
    def mb(self) -> float:
        return self.peak_kb / 1024.0


def emit(**kw: Any) -> None:
    print(json.dumps(kw, default=_json_default), flush=True)


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


# -------------------------------------------------------------------- tools


def _version(tool: str) -> str:
    from importlib.metadata import version

    try:
        return version(tool)
    except Exception:  # noqa: BLE001
        return "?"


def fit_sparselmm(case: Any, df: Any) -> tuple[Any, dict[str, Any]]:
    import sparselmm as slm

    m = slm.lmer(case.formula, df, REML=case.REML)
    out = {
        "objective": float(m.objective),
        "feval": int(m.optsum.feval),
        "opt_seconds": float(m.optsum.seconds),
        "opt_ms_per_eval": 1e3 * float(m.optsum.seconds) / max(int(m.optsum.feval), 1),
        "theta": [float(t) for t in m.theta],
        "optimizer": m.optsum.optimizer,
    }
    if m.optsum.geval:  # the analytic gradients of the Newton finish (one grouping factor)
        out["grad_evals"] = int(m.optsum.geval)
    return m, out


def fit_mixedlm(case: Any, df: Any) -> tuple[Any, dict[str, Any]]:
    import mixedlm

    r = mixedlm.lmer(case.formula, df, REML=case.REML)
    obj = float(r.REMLcrit()) if case.REML else float(r.deviance)
    return r, {
        "objective": obj,
        "feval": int(getattr(r, "function_evals", 0) or 0),
        "optimizer": str(getattr(r, "optimizer", "")),
        "theta": [float(t) for t in np.ravel(getattr(r, "theta", []))],
        "converged": bool(getattr(r, "converged", True)),
    }


def fit_statsmodels(case: Any, df: Any) -> tuple[Any, dict[str, Any]]:
    import statsmodels.formula.api as smf

    spec = dict(case.statsmodels)
    formula = spec.pop("formula")
    model = smf.mixedlm(formula, df, **spec)
    counts = {"f": 0, "g": 0}
    loglike, score = model.loglike, model.score

    def counted_loglike(*a: Any, **k: Any) -> Any:
        counts["f"] += 1
        return loglike(*a, **k)

    def counted_score(*a: Any, **k: Any) -> Any:
        counts["g"] += 1
        return score(*a, **k)

    model.loglike = counted_loglike  # type: ignore[method-assign]
    model.score = counted_score  # type: ignore[method-assign]
    res = model.fit(reml=case.REML)
    return res, {
        # statsmodels' llf is the (REML) log-likelihood on lme4's scale:
        # -2 llf is lme4's deviance (ML) or REML criterion (REML).
        "objective": float(-2.0 * res.llf),
        "feval": counts["f"],
        "grad_evals": counts["g"],
        "converged": bool(getattr(res, "converged", True)),
        "method": str(getattr(res, "method", "")),
    }


FITTERS = {"sparselmm": fit_sparselmm, "mixedlm": fit_mixedlm, "statsmodels": fit_statsmodels}


def run_case(tool: str, case_id: int, repeat: int, slow: float) -> None:
    from .cases import CASES

    case = CASES[case_id]
    fitter = FITTERS[tool]
    __import__(tool)  # imports outside the timed region, as R's library(lme4)
    t0 = time.perf_counter()
    df = case.load()
    if tool == "statsmodels" and case.statsmodels and case.statsmodels.get("groups") == "__one__":
        df["__one__"] = 1
    st = _status()
    emit(event="ready", load_seconds=time.perf_counter() - t0, rss_mb=st.get("VmRSS", 0) / 1024, nrow=len(df))
    runs = 1 + repeat
    i = 0
    while i < runs:
        with warnings.catch_warnings(record=True) as wlist:
            warnings.simplefilter("always")
            with FitMemory() as mem:
                c0, t0 = time.process_time(), time.perf_counter()
                model, info = fitter(case, df)
                secs, cpu = time.perf_counter() - t0, time.process_time() - c0
        msgs = sorted({f"{w.category.__name__}: {str(w.message)[:160]}" for w in wlist})
        emit(
            event="fit",
            i=i,
            warmup=(i == 0),
            seconds=secs,
            cpu_seconds=cpu,
            fit_peak_mb=mem.mb,
            loadavg=os.getloadavg()[0],
            warnings=msgs,
            **info,
        )
        del model
        if i == 0 and secs > slow:
            # a slow fit: the warm-up costs nothing measurable, count it as the one run
            break
        i += 1
    _note_peak()
    emit(event="done", peak_rss_mb=max(_PEAK_KB, _maxrss_kb()) / 1024, version=_version(tool))


def _nnz_ztz(d: Any) -> int | None:
    """Stored entries of ZᵀZ as the design keeps it (its fill grows with n until saturated)."""
    ztz = getattr(getattr(d, "cross", None), "ZtZ", None)
    return int(ztz.nnz) if ztz is not None and hasattr(ztz, "nnz") else None


def run_scaling(n: int, evals: int, fit: bool, backend: str = "auto") -> None:
    """Case 5 for one n: design-build time, ms per objective evaluation at a fixed θ, fit.

    ``backend="auto"`` times ``d.objective_function(REML=False)`` as it stands;
    another value times the PLS state ``d.pls(backend=...)`` (no fit then).
    """
    import sparselmm as slm

    from .cases import SCALING_FORMULA, SCALING_THETA, scaling_data

    t0 = time.perf_counter()
    df = scaling_data(n)
    emit(event="ready", load_seconds=time.perf_counter() - t0, rss_mb=_status().get("VmRSS", 0) / 1024, nrow=len(df))
    with FitMemory() as mem:
        c0, t0 = time.process_time(), time.perf_counter()
        d = slm.design(SCALING_FORMULA, df)
        design_s, design_cpu = time.perf_counter() - t0, time.process_time() - c0
    design_mb = mem.mb
    del df
    gc.collect()
    theta = np.asarray(SCALING_THETA, dtype=float)
    with FitMemory() as mem:
        if backend == "auto":
            f = d.objective_function(REML=False)
        else:
            state = d.pls(backend=backend)
            f = lambda th: state.objective(th, REML=False)  # noqa: E731
        v = f(theta)  # warm-up: symbolic analysis happens here
        times, cpus = [], []
        for k in range(evals):
            # a distinct θ each time (by 1e-9 relative): the PLS state skips a repeated θ
            th = theta * (1.0 + 1e-9 * (k + 1))
            c0, t0 = time.process_time(), time.perf_counter()
            last = f(th)
            times.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
    eval_mb = mem.mb
    out: dict[str, Any] = dict(
        event="scaling",
        n=n,
        q=d.q,
        nnz_ZtZ=_nnz_ztz(d),
        backend=backend,
        design_seconds=design_s,
        design_cpu_seconds=design_cpu,
        design_peak_mb=design_mb,
        ms_per_eval_mean=1e3 * float(np.mean(times)),
        ms_per_eval_median=1e3 * float(np.median(times)),
        ms_per_eval_min=1e3 * float(np.min(times)),
        cpu_ms_per_eval_mean=1e3 * float(np.mean(cpus)),
        evals=evals,
        objective_at_theta=float(v),
        objective_last=float(last),
        eval_peak_mb=eval_mb,
        loadavg=os.getloadavg()[0],
    )
    if fit and backend == "auto":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            m = slm.fit_design(d, REML=False)
            out.update(
                fit_seconds=time.perf_counter() - t0,
                fit_feval=int(m.optsum.feval),
                fit_objective=float(m.objective),
                fit_ms_per_eval=1e3 * float(m.optsum.seconds) / max(int(m.optsum.feval), 1),
            )
    emit(**out)
    _note_peak()
    emit(event="done", peak_rss_mb=max(_PEAK_KB, _maxrss_kb()) / 1024, version=_version("sparselmm"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.worker")
    p.add_argument("--tool", required=True, choices=sorted(FITTERS))
    p.add_argument("--case", type=int, default=0)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--slow", type=float, default=10.0)
    p.add_argument("--scaling-n", type=int, default=0)
    p.add_argument("--evals", type=int, default=10)
    p.add_argument("--fit", action="store_true")
    p.add_argument("--backend", default="auto")
    a = p.parse_args(argv)
    try:
        if a.scaling_n:
            run_scaling(a.scaling_n, a.evals, a.fit, a.backend)
        else:
            run_case(a.tool, a.case, a.repeat, a.slow)
    except MemoryError:
        emit(event="error", message="MemoryError (address-space limit of the runner)", kind="memory",
             traceback=traceback.format_exc()[-2000:])
        return 3
    except Exception as exc:  # noqa: BLE001
        emit(event="error", message=f"{type(exc).__name__}: {exc}"[:500], traceback=traceback.format_exc()[-2000:])
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
