"""Per-θ cost of each PLS backend on one of the anchors' shapes (issue 23's backend choice).

    python benchmarks/backend_times.py ml schur cholmod schur_dense
    python benchmarks/backend_times.py elp schur cholmod
    python benchmarks/backend_times.py ml32 schur cholmod:1

``ml``: ``simulate_ratings(seed=1)`` with ``y ~ 1 + (1 | user) + (1 | item)``; ``elp``:
``simulate_lexical_decision(seed=1)`` with ``y ~ 1 + (1 | item) + (1 | subj)``; ``ml32``: the
MovieLens-32M-cutoff shape of ``benchmarks/movielens32.py`` (its Parquet parts, made on first use),
the formula of ``ml``.  Builds the design once, then per backend its set-up and three ML objective
evaluations at nearby θ (``name:k`` for the first ``k`` of them only; the first includes numba's
compile or cache load), and the objective's value.
"""

from __future__ import annotations

import sys
import time

import numpy as np

import sparselmm as slm


def main() -> None:
    shape, backends = sys.argv[1], sys.argv[2:]
    if shape == "ml":
        df, formula = slm.datasets.simulate_ratings(seed=1), "y ~ 1 + (1 | user) + (1 | item)"
    elif shape == "ml32":
        from pathlib import Path

        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root
        from benchmarks.cases import _ratings_32m

        df, formula = _ratings_32m(), "y ~ 1 + (1 | user) + (1 | item)"
    else:
        df, formula = slm.datasets.simulate_lexical_decision(seed=1), "y ~ 1 + (1 | item) + (1 | subj)"
    d = slm.design(formula, df)
    print(f"{shape}: {d.n} rows, levels {np.diff(d.Gp).tolist()}, auto takes {d.pls().name}", flush=True)
    for spec in backends:
        b, _, k = spec.partition(":")
        t0 = time.perf_counter()
        st = d.pls(b)
        setup = time.perf_counter() - t0
        ts = []
        for th in ([0.5, 0.4], [0.45, 0.42], [0.46, 0.41])[: int(k or 3)]:
            t1 = time.perf_counter()
            v = st.objective(np.array(th), REML=False)
            ts.append(time.perf_counter() - t1)
        print(f"{b:12s} set-up {setup:.2f} s  per θ {', '.join(f'{t:.3f}' for t in ts)} s  objective {v:.9f}", flush=True)


if __name__ == "__main__":
    main()
