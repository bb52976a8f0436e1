"""Compiled loops of the block Schur factor (numba): the fill of the Schur complement and the
quadratic forms of its inverse, over the pairs of entries in the rows of a sparse matrix.

For a CSR matrix ``C`` (``q₁ × q₂``, sorted column indices) and row weights ``w``,

.. math::

    K = Cᵀ \\mathrm{diag}(w)\\, C = \\sum_j w_j\\, c_j c_jᵀ

costs ``Σ_j n_j(n_j + 1)/2`` multiply-adds (``n_j`` the entries of row ``j``): the per-user outer
products of a crossed design.  The loop is tiled by bands of rows of ``K``: a band of rows
of the ``q₂ × q₂`` dense result (:data:`BAND_BYTES` of float64 of its upper triangle's columns,
so the bands grow taller further down) stays in cache while every row of ``C`` adds the pairs
whose first entry falls in the band, so the scattered writes hit cache, not memory.  The sums are
in double precision; a single-precision ``K`` gets each band's sums from a double-precision tile
of the band's triangle (rows × the columns from its first row on), added once.
Bands are shared between the threads (each thread owns its bands' rows of ``K``: no two
threads write one entry), balanced by their counts of pairs.

The kernels are compiled on first use (a few seconds, measured 3.6 s for the fill and 2.1 s for
the quadratic forms; then cached on disk by numba, loaded in about 0.1 s by the next process) and only by
the backends of large crossed designs, never on the path of a small fit.  The loops themselves are in
:mod:`sparselmm.backends.loops`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["band_plan", "schur_fill", "pair_quad", "compiled"]

#: bytes of the dense result per band (measured on the 1M uniform design, q₂ = 5,000, 2 threads,
#: bands of equal height: 64 KB 0.28 s, 256 KB 0.25 s, 1 MB 0.17 s, 4 MB 0.13 s per fill; on the
#: MovieLens-32M shape, q₂ = 16,034: 4 and 16 MB 12.1 s, 64 MB 28–31 s; the band sits in the shared L3)
BAND_BYTES = 1 << 22


def compiled() -> Any:
    """The module of compiled loops, imported — and numba with it — on first use.

    Returns
    -------
    module
        :mod:`sparselmm.backends.loops` (``fill``, ``fill_via_tile``, ``quad``).
    """
    from sparselmm.backends import loops

    return loops


def _band_edges(q2: int) -> np.ndarray:
    """Band boundaries ``0 … q₂``: a band of rows from ``lo`` writes only the upper triangle's
    columns ``lo … q₂``, so it takes ``BAND_BYTES / (8 (q₂ - lo))`` rows (at least 4), taller
    further down.  Measured on the MovieLens-32M shape (q₂ = 16,034, 8.2·10⁹ pairs, one fill in
    double precision): 8.7–9.2 s, against 11.0–12.1 s with every band as tall as the first."""
    edges = [0]
    while edges[-1] < q2:
        lo = edges[-1]
        edges.append(min(q2, lo + max(4, BAND_BYTES // (8 * (q2 - lo)))))
    return np.asarray(edges, dtype=np.int64)


def band_plan(indptr: np.ndarray, indices: np.ndarray, q2: int,
              n_chunks: int | None = None, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The bands of rows of the ``q₂ × q₂`` result (each about :data:`BAND_BYTES` of float64 of its
    upper triangle's columns, the type every sum is made in) and their split among threads.

    Parameters
    ----------
    indptr, indices : numpy.ndarray
        ``C``'s CSR structure (sorted indices).
    q2 : int
        Columns of ``C``.
    n_chunks : int, optional
        Pieces of work for the threads (default: 4 per numba thread), each a run of bands with
        about the same number of pairs.
    rows : numpy.ndarray, optional
        Boolean mask of the rows the fill will add (the others get weight zero, which the loop
        skips); only their pairs are balanced.  Default: all.

    Returns
    -------
    bands : numpy.ndarray
        Band boundaries (first rows), ``0 … q₂``.
    chunks : numpy.ndarray
        Band indices where each piece of work starts, ``0 … len(bands) - 1``.
    """
    bands = _band_edges(q2)
    cnt = np.diff(indptr).astype(np.int64)
    row_of = np.repeat(np.arange(len(cnt)), cnt)
    first_of = cnt[row_of] - (np.arange(len(indices)) - indptr[row_of])  # pairs an entry starts
    if rows is not None:
        first_of = first_of * rows[row_of]
    per_col = np.bincount(indices, weights=first_of, minlength=q2)
    per_band = np.add.reduceat(per_col, bands[:-1]) if q2 else np.zeros(0)
    if n_chunks is None:
        import numba

        n_chunks = 4 * int(numba.get_num_threads())
    n_chunks = max(1, min(int(n_chunks), len(bands) - 1))
    cum = np.concatenate([[0.0], np.cumsum(per_band)])
    cuts = np.searchsorted(cum, np.linspace(0, cum[-1], n_chunks + 1)[1:-1])
    chunks = np.unique(np.concatenate([[0], np.clip(cuts, 0, len(bands) - 1), [len(bands) - 1]])).astype(np.int64)
    return bands, chunks


def schur_fill(K: np.ndarray, indptr: np.ndarray, indices: np.ndarray, vals: np.ndarray, w: np.ndarray,
               plan: tuple[np.ndarray, np.ndarray], overwrite: bool = False) -> None:
    """Subtract ``Cᵀ diag(w) C`` from the upper triangle of ``K`` in place (``K[l, m]``, ``l ≤ m``),
    or write ``-Cᵀ diag(w) C`` over it.

    Parameters
    ----------
    K : numpy.ndarray
        ``q₂ × q₂``, C-ordered, float64 or float32 (float32: each band summed in float64 and added
        once).  ``vals`` and ``w`` are read as float64 whatever their type.
    indptr, indices, vals : numpy.ndarray
        ``C`` in CSR, sorted indices.
    w : numpy.ndarray
        The row weights; rows of weight zero are skipped.
    plan : tuple
        :func:`band_plan`'s bands and chunks for ``C``.
    overwrite : bool
        Write over the upper triangle instead of subtracting from it: each band of rows is cleared
        by its thread just before its sums (or its tile written over it), so that ``K`` need not be
        zeroed first (a q₂² pass over memory, 0.03–0.06 s at q₂ = 5,000).  The strict lower triangle
        is not touched either way.
    """
    lp = compiled()
    (lp.fill if K.dtype == np.float64 else lp.fill_via_tile)(K, indptr, indices, vals, w, plan[0], plan[1],
                                                               bool(overwrite))


def pair_quad(G: np.ndarray, indptr: np.ndarray, indices: np.ndarray, vals: np.ndarray,
              plan: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The quadratic forms ``c_j G c_jᵀ`` of the rows of ``C`` for a symmetric ``G`` of which the
    upper triangle is read.

    Parameters
    ----------
    G : numpy.ndarray
        ``q₂ × q₂``, C-ordered, float64.
    indptr, indices, vals : numpy.ndarray
        ``C`` in CSR, sorted indices.
    plan : tuple
        :func:`band_plan`'s bands and chunks for ``C``.

    Returns
    -------
    numpy.ndarray
        One value per row of ``C``.
    """
    out = np.zeros((len(plan[1]) - 1, len(indptr) - 1))
    compiled().quad(out, G, indptr, indices, vals, plan[0], plan[1])
    return out.sum(axis=0)
