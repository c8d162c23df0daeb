"""Exact k-nearest-neighbour graph of a reduced space, with faiss.

One kNN pass serves every neighbour-based detector (k-distance, LOF) and the
descriptor-duplicate grouping, so it is computed once per descriptor kind.

The index is ``faiss.IndexFlatL2`` (exact, brute force, no training): on 2 cores
it handles n <= ~500,000 rows at p <= 256 dimensions in minutes. Queries are
searched in chunks so that the (chunk, k) result arrays stay small and a tqdm
progress bar can show advance. faiss computes squared distances in float32 as
``|x|^2 + |y|^2 - 2 x.y``, which loses precision for close pairs; the returned
neighbours' distances are therefore recomputed exactly (float64 differences)
before use.

Reference: Johnson, Douze & Jégou (2019), "Billion-scale similarity search with
GPUs", IEEE Trans. Big Data (the faiss library).
"""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError

try:  # faiss is a hard dependency; the import is guarded only for a clear error
    import faiss
except ImportError as exc:  # pragma: no cover
    raise ImportError("descluster.outliers needs faiss-cpu (pip install faiss-cpu)") from exc


def check_matrix(X, name: str = "X") -> np.ndarray:
    """Return ``X`` as a C-contiguous float32 matrix, refusing bad shapes and values.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    name : str
        Name used in error messages.

    Returns
    -------
    ndarray of shape (n_samples, n_features), float32

    Raises
    ------
    ParameterError
        If ``X`` is not 2-D, is empty, or holds NaN/inf (the first bad row is named).
    """
    X = np.ascontiguousarray(np.asarray(X, dtype=np.float32))
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ParameterError(f"{name} must be a non-empty 2-D array (n_samples, n_features); got shape {X.shape}")
    finite = np.isfinite(X).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise ParameterError(f"{name} has NaN or infinite values in {int((~finite).sum())} rows (first: row {row})")
    return X


def knn_search(
    X: np.ndarray,
    k: int,
    queries: np.ndarray | None = None,
    chunk_size: int = 2048,
    progress: bool = True,
    desc: str = "kNN",
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours with ``faiss.IndexFlatL2``, searched in chunks.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32
        Rows to index.
    k : int
        Neighbours per query, 1 <= k; when ``queries`` is None (self-search) each
        row's own entry is removed, so k <= n_samples - 1.
    queries : ndarray of shape (n_queries, n_features), optional
        Rows to search for; None searches ``X`` against itself, excluding self.
    chunk_size : int
        Queries per faiss call (memory: chunk_size × (k+1) × 12 bytes).
    progress : bool
        Show a tqdm progress bar.
    desc : str
        Progress-bar label.

    Returns
    -------
    distances : ndarray of shape (n_queries, k), float32
        Euclidean (not squared) distances, ascending per row, recomputed exactly.
    indices : ndarray of shape (n_queries, k), int64
        Row numbers in ``X`` of the neighbours.

    Raises
    ------
    ParameterError
        If ``k`` or ``chunk_size`` is out of range, or the arrays are malformed.

    Notes
    -----
    With exact duplicates faiss may return another row at distance 0 before the
    query row itself; the query's own index is removed wherever it appears (or
    the last column dropped if it does not appear).
    """
    X = check_matrix(X)
    n = X.shape[0]
    self_search = queries is None
    Q = X if self_search else check_matrix(queries, "queries")
    if Q.shape[1] != X.shape[1]:
        raise ParameterError(f"queries have {Q.shape[1]} features but X has {X.shape[1]}")
    kmax = n - 1 if self_search else n
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= kmax:
        raise ParameterError(f"k={k!r} is out of range: need 1 <= k <= {kmax} for {n} indexed rows")
    if not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ParameterError(f"chunk_size={chunk_size!r} must be a positive integer")
    index = faiss.IndexFlatL2(X.shape[1])
    index.add(X)
    kk = k + 1 if self_search else k
    m = Q.shape[0]
    D = np.empty((m, k), dtype=np.float32)
    I = np.empty((m, k), dtype=np.int64)
    starts = range(0, m, chunk_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, total=(m + chunk_size - 1) // chunk_size, desc=desc, unit="chunk")
    for s in starts:
        e = min(s + chunk_size, m)
        _, idx = index.search(Q[s:e], kk)
        if self_search:
            own = idx == np.arange(s, e)[:, None]
            # drop the own entry; rows where it is missing drop their last column
            missing = ~own.any(axis=1)
            own[missing, -1] = True
            idx = idx[~own].reshape(e - s, k)
        # exact distances for the found neighbours (float64 differences)
        diff = Q[s:e, None, :].astype(np.float64) - X[idx].astype(np.float64)
        dist = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
        order = np.argsort(dist, axis=1, kind="stable")
        D[s:e] = np.take_along_axis(dist, order, axis=1)
        I[s:e] = np.take_along_axis(idx, order, axis=1)
    return D, I
