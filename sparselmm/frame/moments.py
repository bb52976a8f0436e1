"""``scale()`` and ``center()`` for data that is never held at once: their state from all rows.

R evaluates ``scale(x)`` on the data as given (missing values left out of the mean and
SD) before it drops incomplete rows.  A Dask design builds its model specs on a sample, so
the mean and SD of each argument are taken in the first pass over the data instead: per
partition the count, mean and centred sum of squares of the argument (evaluated as the
fit evaluates it), combined by Chan's update, then written into the specs' transform state
(:func:`with_global_moments`), so every partition is scaled as the whole column is.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from sparselmm.errors import ModelSpecError
from sparselmm.frame.modelframe import model_matrix
from sparselmm.spec.vocabulary import ClosedSpec, call_arguments, call_texts, formulaic_name

__all__ = ["SCALING", "Moments", "moment_arguments", "partition_moments", "combine_moments", "with_global_moments"]

#: the transforms whose state is a mean and an SD
SCALING = ("scale", "center")

#: (count, mean, centred sum of squares) of an argument's non-missing values
Moments = tuple[float, float, float]

_TRUE = ("TRUE", "T", "True")
_FALSE = ("FALSE", "F", "False")


def _calls(text: str) -> list[tuple[str, str, str, str]]:
    """(call text, argument, center, scale) of every scale()/center() call in ``text``."""
    out = []
    for name in SCALING:
        for call in call_texts(text, name):
            pos, named = call_arguments(call)
            arg = named.get("x", named.get("data", pos[0] if pos else ""))
            if name == "center":
                center, scale = "TRUE", "FALSE"
            else:
                center = named.get("center", pos[1] if len(pos) > 1 else "TRUE")
                scale = named.get("scale", pos[2] if len(pos) > 2 else "TRUE")
            out.append((call, arg, center, scale))
    return out


def moment_arguments(texts: Sequence[str], stateful: Sequence[str]) -> tuple[str, ...]:
    """The arguments (R text) whose moments the fragments ``texts`` need from all rows.

    Raises
    ------
    ModelSpecError
        For an argument that is itself a transform of the whole column (``scale(poly(x, 2))``).
    """
    args: list[str] = []
    for text in texts:
        for call, arg, _, _ in _calls(text):
            for name in stateful:
                if re.search(rf"(?<![A-Za-z0-9_.]){re.escape(name)}\s*\(", arg):
                    raise ModelSpecError(
                        f"{call}: the argument {name}() depends on the whole column, which a Dask fit never holds; "
                        "compute it as a column first"
                    )
            if arg and arg not in args:
                args.append(arg)
    return tuple(args)


def partition_moments(part: pd.DataFrame, args: Sequence[str]) -> dict[str, Moments]:
    """(count, mean, centred sum of squares) of each argument on all rows of one partition."""
    out: dict[str, Moments] = {}
    for arg in args:
        X, _, _ = model_matrix(f"0 + I({arg})", part, f"the argument of scale({arg})")
        x = X[:, 0][~np.isnan(X[:, 0])]
        n = float(x.size)
        mean = float(x.mean()) if n else 0.0
        out[arg] = (n, mean, float(((x - mean) ** 2).sum()) if n else 0.0)
    return out


def combine_moments(parts: Sequence[Mapping[str, Moments]]) -> dict[str, Moments]:
    """Moments of the union of partitions (Chan, Golub and LeVeque's pairwise update)."""
    out: dict[str, Moments] = {}
    for m in parts:
        for arg, (nb, mb, sb) in m.items():
            if arg not in out:
                out[arg] = (nb, mb, sb)
                continue
            na, ma, sa = out[arg]
            n = na + nb
            if n == 0:
                continue
            d = mb - ma
            out[arg] = (n, ma + d * nb / n, sa + sb + d * d * na * nb / n)
    return out


def with_global_moments(spec: Any, text: str, columns: Sequence[str], moments: Mapping[str, Moments]) -> Any:
    """``spec`` (made on a sample) with the mean and SD of each scale()/center() call of ``text``
    taken from ``moments`` (all rows), as R's ``scale()`` on the whole column; numbers given for
    ``center``/``scale`` stay as given."""
    if not isinstance(spec, ClosedSpec) or not spec.spec.transform_state:
        return spec
    state = dict(spec.spec.transform_state)
    for call, arg, center, scale in _calls(text):
        key = formulaic_name(call, columns)
        if key not in state or arg not in moments:
            continue
        n, mean, ss = moments[arg]
        entry = dict(state[key])
        if center in _TRUE:
            entry["center"] = np.float64(mean)
        elif center in _FALSE:
            entry["center"] = None
        if scale in _TRUE:
            c = 0.0 if entry["center"] is None else float(entry["center"])
            entry["scale"] = np.float64(np.sqrt((ss + n * (mean - c) ** 2) / max(1.0, n - 1.0)))
        state[key] = entry
    return ClosedSpec(spec.spec.update(transform_state=state), spec.columns, spec.renames, spec.terms)
