"""Progress of long steps: a line about every second, to the ``sparselmm`` logger (INFO) and,
with ``verbose``, to standard output."""

from __future__ import annotations

import logging
import time

__all__ = ["Progress"]


class Progress:
    """Counts the steps of one long computation and reports them about once a second.

    Parameters
    ----------
    what : str
        What a step is, for the lines (``"evaluation"``: "evaluation 12: objective 1743.63, 2.1 s").
    total : int, optional
        The number of steps, when known.
    verbose : bool
        Also print the lines (as a fit with ``verbose=True`` prints its evaluations).
    """

    def __init__(self, what: str, total: int | None = None, verbose: bool = False) -> None:
        self.what, self.total, self.verbose = what, total, verbose
        self.log = logging.getLogger("sparselmm")
        self.on = verbose or self.log.isEnabledFor(logging.INFO)
        self.count = 0
        self.t0 = self.last = time.perf_counter()

    def step(self, detail: str = "") -> None:
        """One step done; a line if a second has passed since the last one (or on the first)."""
        self.count += 1
        if not self.on:
            return
        now = time.perf_counter()
        if now - self.last > 1.0 or self.count == 1:
            self.last = now
            of = f" of {self.total}" if self.total else ""
            msg = f"{self.what} {self.count}{of}{': ' + detail if detail else ''}, {now - self.t0:.1f} s"
            self.log.info(msg)
            if self.verbose:
                print(msg, flush=True)
