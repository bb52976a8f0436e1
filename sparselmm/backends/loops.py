"""The compiled loops behind :mod:`sparselmm.backends.kernels` (numba), defined at module level.

Imported only by :func:`sparselmm.backends.kernels.compiled` on a large crossed design's first
fill, never on the path of a small fit (importing numba alone takes about half a second).  The
functions are module-level so that numba's disk cache finds them again in the next process:
defined inside a function, numba keyed each process's closures anew, and every process compiled
the parallel loops again (4-5 s on the first large fit; measured on the MovieLens-1M shape).
Where numba finds no writable cache place (a read-only install, no writable home) they compile
per process instead.
"""

from __future__ import annotations

from typing import Any

import numba as nb
import numpy as np

__all__ = ["fill", "fill_via_tile", "quad"]


def _jit(**options: Any) -> Any:
    """numba's ``njit`` with the compiled code cached on disk where numba finds a writable place
    (beside the source, or the user's cache directory), and compiled per process where it finds
    none (numba refuses ``cache=True`` there)."""

    def decorate(fn: Any) -> Any:
        try:
            return nb.njit(cache=True, **options)(fn)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            return nb.njit(cache=False, **options)(fn)

    return decorate


@_jit(nogil=True)
def start(ptr: np.ndarray, indptr: np.ndarray, indices: np.ndarray, lo: int) -> None:  # pragma: no cover
    """Each row's first entry at or after column ``lo``."""
    for j in range(len(indptr) - 1):
        a, e = indptr[j], indptr[j + 1]
        while a < e and indices[a] < lo:
            a += 1
        ptr[j] = a


@_jit(nogil=True)
def band(T: np.ndarray, off: int, coff: int, hi: int, ptr: np.ndarray, indptr: np.ndarray, indices: np.ndarray,
         vals: np.ndarray, w: np.ndarray) -> None:  # pragma: no cover - compiled
    """``T[l - off, m - coff] -= w_j v_a v_b`` for the entries ``a <= b`` of each row ``j`` with
    ``l = indices[a] < hi``, ``m = indices[b]``; the products in double precision whatever the
    types.  ``ptr`` advances past the band.  Rows of weight zero add nothing and are skipped
    (the caller's way of leaving rows to another update without a copy of the others)."""
    for j in range(len(indptr) - 1):
        wj = np.float64(w[j])
        if wj == 0.0:
            continue
        a = ptr[j]
        e = indptr[j + 1]
        while a < e and indices[a] < hi:
            r = indices[a] - off
            c = wj * np.float64(vals[a])
            for b in range(a, e):
                T[r, indices[b] - coff] -= c * np.float64(vals[b])
            a += 1
        ptr[j] = a


@_jit(parallel=True, nogil=True)
def fill(K: np.ndarray, indptr: np.ndarray, indices: np.ndarray, vals: np.ndarray, w: np.ndarray,
         bands: np.ndarray, chunks: np.ndarray, overwrite: bool) -> None:  # pragma: no cover - compiled
    """The upper triangle of ``-Cᵀ diag(w) C`` added to a double-precision ``K`` in place, or
    written over it (``overwrite``: each band's rows cleared by its thread just before its sums)."""
    q2 = K.shape[1]
    for t in nb.prange(len(chunks) - 1):
        ptr = np.empty(len(indptr) - 1, dtype=np.int64)
        start(ptr, indptr, indices, bands[chunks[t]])
        for bb in range(chunks[t], chunks[t + 1]):
            if overwrite:
                for r in range(bands[bb], bands[bb + 1]):
                    K[r, r:q2] = 0.0
            band(K, 0, 0, bands[bb + 1], ptr, indptr, indices, vals, w)


@_jit(parallel=True, nogil=True)
def fill_via_tile(K: np.ndarray, indptr: np.ndarray, indices: np.ndarray, vals: np.ndarray, w: np.ndarray,
                  bands: np.ndarray, chunks: np.ndarray, overwrite: bool) -> None:  # pragma: no cover - compiled
    """The same for a single-precision ``K``: each band summed in a double-precision tile, then
    added to ``K`` once, or written over it (one rounding per entry, not one per addition).  A band
    of rows ``lo … hi`` writes columns ``lo …`` only (the upper triangle), so its tile is
    ``(hi - lo) × (q₂ - lo)``."""
    q2 = K.shape[1]
    for t in nb.prange(len(chunks) - 1):
        ptr = np.empty(len(indptr) - 1, dtype=np.int64)
        start(ptr, indptr, indices, bands[chunks[t]])
        size = 0
        for bb in range(chunks[t], chunks[t + 1]):
            size = max(size, (bands[bb + 1] - bands[bb]) * (q2 - bands[bb]))
        buf = np.empty(size)
        for bb in range(chunks[t], chunks[t + 1]):
            lo, hi = bands[bb], bands[bb + 1]
            tile = buf[: (hi - lo) * (q2 - lo)].reshape((hi - lo, q2 - lo))
            tile.fill(0.0)
            band(tile, lo, lo, hi, ptr, indptr, indices, vals, w)
            for r in range(hi - lo):
                if overwrite:
                    for m in range(r, q2 - lo):
                        K[lo + r, lo + m] = tile[r, m]
                else:
                    for m in range(r, q2 - lo):
                        K[lo + r, lo + m] += tile[r, m]


@_jit(parallel=True, nogil=True)
def quad(out: np.ndarray, G: np.ndarray, indptr: np.ndarray, indices: np.ndarray, vals: np.ndarray,
         bands: np.ndarray, chunks: np.ndarray) -> None:  # pragma: no cover - compiled
    """``out[t, j] = Σ_{a <= b in row j, a in thread t's bands} (2 - δ_ab) v_a v_b G[l, m]``, ``G``'s
    upper triangle read (so that ``Σ_t out[t] = c_j G c_jᵀ`` for a symmetric ``G``)."""
    q1 = len(indptr) - 1
    for t in nb.prange(len(chunks) - 1):
        b0, b1 = chunks[t], chunks[t + 1]
        ptr = np.empty(q1, dtype=np.int64)
        start(ptr, indptr, indices, bands[b0])
        for bb in range(b0, b1):
            hi = bands[bb + 1]
            for j in range(q1):
                a = ptr[j]
                e = indptr[j + 1]
                s = 0.0
                while a < e and indices[a] < hi:
                    l = indices[a]
                    va = vals[a]
                    s += va * va * G[l, l]
                    acc = 0.0
                    for b in range(a + 1, e):
                        acc += vals[b] * G[l, indices[b]]
                    s += 2.0 * va * acc
                    a += 1
                ptr[j] = a
                out[t, j] += s
