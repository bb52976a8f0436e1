"""Saving a fitted model to a file and loading it back.

A fitted model pickles (``pickle``, ``copy.deepcopy``, joblib, ``concurrent.futures``): its
design, estimates and call go into the pickle, its PLS state (a CHOLMOD factor or a dense
block) does not — the unpickled model makes the state anew on the same backend and updates it
to θ̂, one factorisation.  :func:`save` writes that pickle after a short header naming the
format and the package version; :func:`load` reads it back and refuses a file that is not one.

A pickle runs code when it is loaded: load only files you trust (as for any pickle).
"""

from __future__ import annotations

import os
import pickle
from importlib import metadata
from typing import IO, Any

from sparselmm.errors import ArgumentError
from sparselmm.fitting.fitted import FittedModel

__all__ = ["save", "load", "HEADER"]

#: the first bytes of a file written by :func:`save`
HEADER = b"sparselmm fitted model\n"


def _version() -> str:
    """The installed package's version (recorded in the file, for a reader's message)."""
    try:
        return metadata.version("sparselmm")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "unknown"


def save(model: FittedModel, path: str | os.PathLike[str] | IO[bytes]) -> None:
    """Write a fitted model to ``path`` (a file name or a binary file object).

    Parameters
    ----------
    model : LinearMixedModel
        A fitted model (in-memory or Dask-fitted); the data it was fitted to go with it, as
        its ``call`` holds them (for ``refit`` and ``update``).
    path : str, os.PathLike or binary file

    Raises
    ------
    ArgumentError
        For something that is not a fitted model.
    """
    if not isinstance(model, FittedModel):
        raise ArgumentError(f"save() writes a fitted model, got {type(model).__name__}")
    body = pickle.dumps({"version": _version(), "model": model}, protocol=pickle.HIGHEST_PROTOCOL)
    if hasattr(path, "write"):
        path.write(HEADER + body)  # type: ignore[union-attr]
        return
    with open(path, "wb") as fh:  # type: ignore[arg-type]
        fh.write(HEADER + body)


def load(path: str | os.PathLike[str] | IO[bytes]) -> Any:
    """Read a fitted model written by :func:`save` (or :meth:`LinearMixedModel.save`).

    Parameters
    ----------
    path : str, os.PathLike or binary file

    Returns
    -------
    LinearMixedModel
        The model, its PLS state rebuilt: the same summary, predictions and refits as the
        model that was saved.

    Raises
    ------
    ArgumentError
        For a file that does not exist, is not a saved model (no header), or whose contents
        cannot be read back (truncated, or written by an incompatible version).
    """
    where = getattr(path, "name", path)
    try:
        if hasattr(path, "read"):
            raw = path.read()  # type: ignore[union-attr]
        else:
            with open(path, "rb") as fh:  # type: ignore[arg-type]
                raw = fh.read()
    except OSError as e:
        raise ArgumentError(f"cannot read a saved model from {where!r}: {e.strerror or e}") from None
    if not isinstance(raw, bytes) or not raw.startswith(HEADER):
        raise ArgumentError(f"{where!r} is not a model saved by sparselmm (m.save / sparselmm.save)")
    try:
        payload = pickle.loads(raw[len(HEADER):])
    except Exception as e:  # truncated, corrupt, or classes that no longer exist
        raise ArgumentError(
            f"{where!r} starts as a saved sparselmm model but cannot be read back ({type(e).__name__}: {e})"
        ) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("model"), FittedModel):
        raise ArgumentError(f"{where!r} does not hold a fitted model")
    return payload["model"]
