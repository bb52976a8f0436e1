"""Responses simulated from a fitted model (lme4's ``simulate``), for users and for the parametric
bootstrap (:mod:`sparselmm.stats.bootstrap`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sparselmm import validate
from sparselmm.stats.satterthwaite import aux_state

if TYPE_CHECKING:  # pragma: no cover
    from sparselmm.fitting.fitted import FittedModel

__all__ = ["simulate"]


def simulate(m: "FittedModel", nsim: int = 1, seed: int | None = None) -> pd.DataFrame:
    """Simulate responses from the fitted model (lme4's ``simulate``, unconditional on b).

    ``y* = Xβ̂ + Z Λ(θ̂) σ̂ u* + σ̂ ε / √w (+ offset)``, ``u*, ε ~ N(0, I)``.

    Parameters
    ----------
    nsim : int
        Number of simulated responses.
    seed : int, optional
        Seed of :func:`numpy.random.default_rng`.

    Returns
    -------
    pandas.DataFrame
        n × nsim, columns ``sim_1, ...``.
    """
    nsim = validate.count(nsim, "nsim")
    rng = np.random.default_rng(validate.seed(seed))
    d = m.design
    st = aux_state(m)
    n, q = d.n, d.q
    mu = d.X @ m.fixef.to_numpy()
    if d.offset is not None:
        mu = mu + d.offset
    U = rng.standard_normal((q, nsim))
    B = st.lambda_times(m.theta, U) * m.sigma
    E = rng.standard_normal((n, nsim)) * m.sigma
    if d.weights is not None:
        E = E / np.sqrt(d.weights)[:, None]
    Y = mu[:, None] + np.asarray(d.Zt.T @ B) + E
    return pd.DataFrame(Y, index=d.row_index, columns=[f"sim_{i + 1}" for i in range(nsim)])
