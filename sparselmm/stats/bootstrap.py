"""Parametric bootstrap of a fitted model (lme4's ``bootMer`` with its default statistic), in one
process or several.

All ``nsim`` responses are simulated first, in this process, from one generator seeded by
``seed`` (:func:`sparselmm.stats.simulate.simulate`); the refits of them are then shared out
among ``n_jobs`` worker processes, each holding a pickled copy of the model
(:mod:`sparselmm.persistence`).  A refit is a deterministic computation of its response, so the
replicates are the same whatever ``n_jobs``.  Workers are started by ``spawn`` (a fresh
interpreter each: ~1 s of start-up and imports), so ``n_jobs > 1`` pays only when the refits
take longer than that.
"""

from __future__ import annotations

import multiprocessing
import pickle
import warnings
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sparselmm import validate
from sparselmm.progress import Progress
from sparselmm.stats.profile import has_dispersion, sdcor_from_theta, varpar_names
from sparselmm.stats.simulate import simulate

if TYPE_CHECKING:  # pragma: no cover
    from sparselmm.fitting.fitted import FittedModel

__all__ = ["bootstrap"]


def _statistics(m: Any) -> np.ndarray:
    """The replicate's row: the standard deviations and correlations, σ (where the model has
    one), the fixed effects (lme4's ``confint(method="boot")`` parameters)."""
    sig = [m.sigma] if has_dispersion(m) else []
    return np.concatenate([sdcor_from_theta(m, m.theta, m.sigma), sig, m.fixef.to_numpy()])


def _refits(m: "FittedModel", Y: np.ndarray) -> np.ndarray:
    rows = []
    for j in range(Y.shape[1]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rows.append(_statistics(m.refit(Y[:, j])))
    return np.array(rows).reshape(Y.shape[1], -1)


_WORKER_MODEL: list[Any] = [None]


def _worker_start(blob: bytes) -> None:
    _WORKER_MODEL[0] = pickle.loads(blob)


def _worker_refits(Y: np.ndarray) -> np.ndarray:
    return _refits(_WORKER_MODEL[0], Y)


def bootstrap(
    m: "FittedModel", nsim: int = 500, seed: Any = None, *, n_jobs: int = 1, progress: bool = False
) -> pd.DataFrame:
    """Parametric bootstrap replicates of a model's parameters.

    Each replicate simulates a response from the fit (:func:`~sparselmm.stats.simulate.simulate`,
    unconditional on the random effects, as lme4's ``simulate``), refits the model to it from the
    fit's own θ̂ (lme4's ``refit``), and records its standard deviations and correlations, σ and
    fixed effects — lme4's ``bootMer(m, FUN)`` with the statistic that
    ``confint(m, method = "boot")`` uses.

    Parameters
    ----------
    m : LinearMixedModel or GeneralizedLinearMixedModel
        A glmer fit of a binomial or Poisson family (whose responses :meth:`simulate` draws).
    nsim : int
        Number of replicates.
    seed : int, numpy Generator or None
        Seed of the one generator all responses are drawn from (the replicates depend on it
        alone, not on ``n_jobs``).
    n_jobs : int
        Worker processes for the refits (``-1``: one per core; ``1``: this process).
    progress : bool
        Show the refits' progress (:mod:`sparselmm.progress`).

    Returns
    -------
    pandas.DataFrame
        ``nsim`` rows, columns ``.sig01, ..., .sigma`` (no ``.sigma`` for a binomial or Poisson
        GLMM) then the fixed effects' names.

    Raises
    ------
    ArgumentError
        For an ``nsim`` that is not a positive integer, a bad ``seed`` or ``n_jobs``.
    """
    nsim = validate.count(nsim, "nsim")
    seed = validate.seed(seed)
    n_jobs = min(validate.n_jobs(n_jobs), nsim)
    progress = validate.flag(progress, "progress")
    # a GLMM simulates from its family (its own method); a linear model by stats.simulate
    Y = (m.simulate(nsim=nsim, seed=seed) if hasattr(m, "family") else simulate(m, nsim=nsim, seed=seed)).to_numpy()
    columns = varpar_names(m) + list(m.fixef.index)
    bar = Progress("bootstrap refit", nsim, progress)
    try:
        if n_jobs == 1:
            rows = []
            for j in range(nsim):
                rows.append(_refits(m, Y[:, j : j + 1]))
                bar.step()
            out = np.vstack(rows)
        else:
            # chunks of a few refits each, several per worker, so that the bar moves and a slow
            # chunk does not leave a worker idle at the end; the results in the chunks' order
            size = max(1, min(25, nsim // (4 * n_jobs)))
            chunks = [Y[:, k : k + size] for k in range(0, nsim, size)]
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(n_jobs, mp_context=ctx, initializer=_worker_start,
                                     initargs=(pickle.dumps(m),)) as ex:
                futures = [ex.submit(_worker_refits, c) for c in chunks]
                parts = []
                for f, c in zip(futures, chunks):
                    parts.append(f.result())
                    bar.step(n=c.shape[1])
            out = np.vstack(parts)
    finally:
        bar.close()
    return pd.DataFrame(out, columns=columns, index=pd.RangeIndex(1, nsim + 1, name="replicate"))
