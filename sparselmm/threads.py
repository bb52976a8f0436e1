"""Thread control for BLAS and OpenMP: one thread for a whole fit, more for one large dense step.

:func:`single_threaded` wraps a fit (``lmer()``, ``fit_design()``); the block Schur
backends wrap their dense factor in :func:`dense_step_threads`, which gives the
caller's threads back only while no other process is runnable.
"""

from __future__ import annotations

import contextlib
import os
import time

__all__ = ["single_threaded", "dense_step_threads"]

_CONTROLLER = None


_BUSY: list = [-1.0, True]  # time of the last look, and what it found


def _machine_busy(max_age: float = 0.05) -> bool:
    """True when another process has a runnable thread right now: ``/proc/loadavg``'s count
    of running threads beyond this process's own (its BLAS threads spin for a while after a
    call); True where that cannot be read.  A look younger than ``max_age`` seconds is reused
    (a look costs ~0.3 ms, and an evaluation asks twice)."""
    now = time.monotonic()
    if now - _BUSY[0] < max_age:
        return bool(_BUSY[1])
    _BUSY[0], _BUSY[1] = now, _look_busy()
    return bool(_BUSY[1])


def _look_busy() -> bool:
    try:
        with open("/proc/loadavg") as fh:
            running = int(fh.read().split()[3].split("/")[0])
        own = 0
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/stat") as fh:
                    own += fh.read().rsplit(")", 1)[1].split()[0] == "R"
            except OSError:
                continue
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        return True
    return running - own > 0


def _controller():  # type: ignore[no-untyped-def]
    """threadpoolctl's controller of the loaded BLAS and OpenMP libraries, made once."""
    global _CONTROLLER
    if _CONTROLLER is None:
        import sksparse.cholmod  # noqa: F401  (its BLAS is loaded, so the controller sees it)
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


# the BLAS threads the caller had before single_threaded() lowered them (None outside it)
_OUTER_THREADS: list = [None]


def single_threaded() -> "contextlib.AbstractContextManager[None]":
    """Context for a whole fit: BLAS and OpenMP on one thread, except where a step asks
    for more through :func:`dense_step_threads`.

    Most of a fit is small dense algebra between Python calls, where a second OpenBLAS
    thread only spins: measured on TIMSS slopes, 73 ms of CPU for 45 ms of wall time
    with two threads, 46 ms for 46 ms with one; beside another busy process the spinning
    thread made the fit 2-3 times slower (122 ms in a benchmark run).  The libraries'
    thread counts are restored on exit (they are process-wide: fits running in parallel
    threads share them).

    Returns
    -------
    contextlib.AbstractContextManager
        Use as ``with single_threaded(): ...``.
    """

    try:
        ctl = _controller()
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        return contextlib.nullcontext()
    outer = max((lib.num_threads for lib in ctl.lib_controllers if lib.user_api == "blas"), default=1)

    @contextlib.contextmanager
    def ctx():  # type: ignore[no-untyped-def]
        saved = _OUTER_THREADS[0]
        _OUTER_THREADS[0] = outer if saved is None else saved
        try:
            with ctl.limit(limits=1):
                yield
        finally:
            _OUTER_THREADS[0] = saved

    return ctx()


def dense_step_threads() -> "contextlib.AbstractContextManager[None]":
    """Context for one large dense step: BLAS on one thread, unless the machine is otherwise idle.

    A second BLAS thread makes the dense factor about 1.4× faster on a quiet 2-core
    machine, but beside another busy process OpenBLAS's spinning threads make a
    Cholesky up to 40× slower (measured: 20 ms single-threaded, 830 ms with two
    threads beside another process).  So all threads are used only when nothing
    else is runnable at the moment of the call (inside :func:`single_threaded`: the
    threads the caller had before).

    Returns
    -------
    contextlib.AbstractContextManager
    """

    try:
        ctl = _controller()
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        return contextlib.nullcontext()
    if not _machine_busy():
        outer = _OUTER_THREADS[0]
        return contextlib.nullcontext() if outer is None else ctl.limit(limits=outer, user_api="blas")
    return ctl.limit(limits=1, user_api="blas")
