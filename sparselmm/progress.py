"""Progress of long steps, one mechanism for all of them: the evaluations of a fit, the refits of
a parametric bootstrap, the parameters of a profile, the steps of the Satterthwaite and
Kenward–Roger derivatives.

Off by default.  On (``progress=True``, or ``verbose=True`` on a fit), a step shows as a
``tqdm`` bar where tqdm is installed and the output is a terminal or a notebook, else as a line
about every second to the ``sparselmm`` logger (INFO) and to standard output.  With progress
off, lines still go to the logger when it is enabled for INFO (``logging.getLogger("sparselmm")``),
so a pipeline that logs sees its long steps.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from typing import Any

__all__ = ["Progress", "bar_available", "show_progress", "dask_passes"]


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()  # type: ignore[attr-defined]
    except Exception:  # pragma: no cover - an IPython without a shell
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def bar_available() -> bool:
    """Whether a progress bar can be drawn: tqdm is installed and standard error is a terminal or
    the code runs in a notebook."""
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty()) or _in_notebook()


def dask_passes(verbose: bool) -> "contextlib.AbstractContextManager[Any]":
    """Context for the passes over a Dask DataFrame (the design's scan and cross-products): with
    ``verbose``, Dask's own progress bar on the local schedulers (a ``dask.distributed`` client
    shows its progress on its dashboard instead); otherwise nothing."""
    if not verbose:
        return contextlib.nullcontext()
    try:
        from distributed import get_client

        get_client()
        return contextlib.nullcontext()  # a distributed client: its dashboard shows the tasks
    except (ImportError, ValueError):
        pass
    try:
        from dask.diagnostics import ProgressBar
    except ImportError:  # pragma: no cover - dask is there when a Dask fit runs
        return contextlib.nullcontext()
    return ProgressBar()


def show_progress(model: Any) -> bool:
    """Whether a model was fitted with ``verbose=True`` or ``progress=True``: the long steps that
    follow from it (Satterthwaite's and Kenward–Roger's derivatives) then show their progress."""
    control = getattr(getattr(model, "call", None), "control", None)
    return bool(getattr(control, "verbose", False) or getattr(control, "progress", False))


class Progress:
    """Counts the steps of one long computation and shows them.

    Parameters
    ----------
    what : str
        What a step is (``"evaluation"``: "evaluation 12: objective 1743.63, 2.1 s").
    total : int, optional
        The number of steps, when known (the bar's length).
    verbose : bool
        Show the steps (a bar where :func:`bar_available`, else printed lines); ``progress=True``
        of the calls that have it.
    """

    def __init__(self, what: str, total: int | None = None, verbose: bool = False) -> None:
        self.what, self.total, self.verbose = what, total, bool(verbose)
        self.log = logging.getLogger("sparselmm")
        self.count = 0
        self.t0 = self.last = time.perf_counter()
        self.bar: Any = None
        if self.verbose and bar_available():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=what, leave=False)
        self.on = self.verbose or self.log.isEnabledFor(logging.INFO)

    def step(self, detail: str = "", n: int = 1) -> None:
        """``n`` steps done; the bar moves, or a line if a second has passed since the last one
        (or on the first)."""
        self.count += n
        if not self.on:
            return
        if self.bar is not None:
            self.bar.update(n)
            if detail:
                self.bar.set_postfix_str(detail, refresh=False)
        now = time.perf_counter()
        if now - self.last > 1.0 or self.count == n:
            self.last = now
            of = f" of {self.total}" if self.total else ""
            msg = f"{self.what} {self.count}{of}{': ' + detail if detail else ''}, {now - self.t0:.1f} s"
            self.log.info(msg)
            if self.verbose and self.bar is None:
                print(msg, flush=True)

    def close(self) -> None:
        """The computation is over: the bar is removed (the log lines stay)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
