"""k-nearest-neighbour graph of a reduced space: exact or faiss IVF, recall measured.

One kNN pass serves every neighbour-based detector (k-distance, LOF) and the
descriptor-duplicate grouping, so it is computed once per descriptor kind.

How the neighbours are found is a strategy object (registry :data:`INDEXES`):

``exact``  :class:`ExactIndex`: blocked brute force. Squared distances
           ``|q|^2 + |x|^2 - 2 q.x`` come from NumPy's ``sgemm`` over blocks of
           the indexed rows, and the k smallest per query are kept in faiss's
           C++ heaps (``faiss.ResultHeap``). On the development machine this is
           3× faster than ``faiss.IndexFlatL2`` (2 cores, faiss-cpu's bundled
           OpenBLAS runs a generic "Prescott" kernel, NumPy's a SkylakeX one;
           ``benchmarks/knn_bench.py`` measures both).
``flat``   :class:`FlatIndex`: ``faiss.IndexFlatL2`` (the former route; kept as the
           reference the exact route is tested against).
``ivf``    :class:`IVFIndex`: faiss ``IndexIVFFlat`` (inverted file, Jégou, Douze &
           Schmid 2011, "Product quantization for nearest neighbor search", IEEE
           TPAMI, §IV-A; Sivic & Zisserman 2003 "Video Google"). ``nlist ≈ 4·sqrt(n)``
           k-means centroids (scikit-learn ``KMeans``, seeded, on a sample); queries
           visit their ``nprobe`` nearest lists. Its recall@k against exact search
           is *measured* on sampled rows and ``nprobe`` doubled until it reaches
           ``recall_target``.
``auto``   :class:`AutoIndex`: ``exact`` up to ``max_exact_rows`` (50,000) rows,
           ``ivf`` above. Exact search costs ``n^2 · p`` flops: at 50,000 × 256 that
           is ~30 s on 2 cores; at 416,314 × 256 ~35 min per descriptor kind, over
           the study budget, hence the approximate index.

Every index is fitted on the rows to search (``fit(X, n_neighbors=k)``), then
returns raw candidates with ``search(Q, k)``; :func:`knn_search` drives it in
query chunks (with a tqdm bar), removes each row's own entry and recomputes the
returned neighbours' distances exactly (float64 differences, because the
``|x|^2 + |y|^2 - 2 x.y`` form loses precision for close pairs). Each fitted index
says what ran in ``description_`` (e.g. "faiss IVF-Flat, nlist=2,581, nprobe=8,
recall@20 = 0.998 on 2,000 sampled queries"), which the outlier report carries.

Reference: Johnson, Douze & Jégou (2019), "Billion-scale similarity search with
GPUs", IEEE Trans. Big Data (the faiss library).
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator, clone

from ..errors import ParameterError
from ..validation import check_int as _check_int

try:  # faiss is a hard dependency; the import is guarded only for a clear error
    import faiss
    from faiss.contrib.ivf_tools import add_preassigned, search_preassigned
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


# --------------------------------------------------------------------------- exact engine
def exact_search(
    Q: np.ndarray,
    X: np.ndarray,
    k: int,
    x_sqnorms: np.ndarray | None = None,
    chunk_size: int = 2048,
    block_size: int = 16384,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k smallest squared L2 distances by NumPy ``sgemm`` blocks and faiss heaps.

    For each chunk of queries and block of indexed rows, ``|q|^2 + |x|^2 - 2 q.x``
    is one matrix product (NumPy's BLAS); the k smallest per query are merged
    into faiss's C++ max-heaps (``faiss.ResultHeap.add_result_subset``).
    Memory: ``chunk_size × block_size × 4`` bytes (128 MiB by default).

    Parameters
    ----------
    Q : ndarray of shape (m, p), float32, C-contiguous
        Queries.
    X : ndarray of shape (n, p), float32, C-contiguous
        Indexed rows.
    k : int
        Results per query, ``1 <= k``; when ``k > n`` the missing entries get
        index -1 and distance ``+inf``-like (faiss heap sentinel).
    x_sqnorms : ndarray of shape (n,), float32, optional
        Precomputed ``|x|^2`` (saves one pass when called repeatedly).
    chunk_size, block_size : int
        Queries and indexed rows per matrix product.

    Returns
    -------
    sq_distances : ndarray of shape (m, k), float32
        Squared distances, ascending (float32 rounding: may be slightly negative).
    indices : ndarray of shape (m, k), int64
    """
    m, n = Q.shape[0], X.shape[0]
    if x_sqnorms is None:
        x_sqnorms = np.einsum("ij,ij->i", X, X)
    D = np.empty((m, k), dtype=np.float32)
    I = np.empty((m, k), dtype=np.int64)
    for s in range(0, m, chunk_size):
        e = min(s + chunk_size, m)
        q = Q[s:e]
        q_sq = np.einsum("ij,ij->i", q, q)[:, None]
        heap = faiss.ResultHeap(e - s, k)
        rows = np.arange(e - s, dtype=np.int64)
        for b in range(0, n, block_size):
            c = min(b + block_size, n)
            G = q @ X[b:c].T
            G *= -2.0
            G += x_sqnorms[b:c]
            G += q_sq
            heap.add_result_subset(rows, G, np.arange(b, c, dtype=np.int64))
        heap.finalize()
        D[s:e], I[s:e] = heap.D, heap.I
    return D, I


# --------------------------------------------------------------------------- strategies
class NeighbourIndex(BaseEstimator):
    """Base of the neighbour-search strategies (see :data:`INDEXES`).

    Subclasses implement ``fit(X, n_neighbors=20)`` (index the rows (n, p)
    float32; ``n_neighbors`` is the k the caller will ask for) and
    ``search(Q, k) -> (sq_distances (m, k) float32, indices (m, k) int64)``
    returning candidates (ascending, possibly approximate; index -1 = none).

    Attributes (after ``fit``)
    --------------------------
    n_samples_fit_ : int
        Rows indexed.
    recall_ : float or None
        Measured recall@k against exact search (None for exact routes: 1 by construction).
    description_ : str
        What ran, in words with numbers.
    """

    name = "base"

    def search(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
        raise NotImplementedError


class ExactIndex(NeighbourIndex):
    """Exact search by NumPy ``sgemm`` blocks + faiss heaps (:func:`exact_search`).

    Parameters
    ----------
    block_size : int, default 16384
        Indexed rows per matrix product (memory ``chunk × block_size × 4`` bytes).

    Attributes
    ----------
    X_ : ndarray of shape (n_samples, n_features), float32
        The indexed rows (a reference, not a copy).
    sqnorms_ : ndarray of shape (n_samples,), float32
        ``|x|^2`` per row.
    n_samples_fit_ : int
    recall_ : None
    description_ : str
    """

    name = "exact"

    def __init__(self, block_size: int = 16384):
        self.block_size = block_size

    def fit(self, X, y=None, n_neighbors: int = 20) -> "ExactIndex":
        """Index ``X`` (n, p) float32; ``n_neighbors`` is unused (exact)."""
        _check_int("block_size", self.block_size, 1)
        self.X_ = check_matrix(X)
        self.sqnorms_ = np.einsum("ij,ij->i", self.X_, self.X_)
        self.n_samples_fit_ = self.X_.shape[0]
        self.recall_ = None
        self.description_ = (
            f"exact search (NumPy sgemm blocks + faiss heaps) over {self.n_samples_fit_:,} rows × {self.X_.shape[1]} dims"
        )
        return self

    def search(self, Q, k):
        """Exact ``(sq_distances (m, k) float32, indices (m, k) int64)`` of queries ``Q`` (m, p)."""
        return exact_search(Q, self.X_, k, x_sqnorms=self.sqnorms_, block_size=self.block_size)


class FlatIndex(NeighbourIndex):
    """Exact search with ``faiss.IndexFlatL2`` (brute force inside faiss).

    Attributes
    ----------
    index_ : faiss.IndexFlatL2
        Holds a copy of the n_samples × n_features float32 rows.
    n_samples_fit_ : int
    recall_ : None
    description_ : str
    """

    name = "flat"

    def fit(self, X, y=None, n_neighbors: int = 20) -> "FlatIndex":
        """Index ``X`` (n, p) float32; ``n_neighbors`` is unused (exact)."""
        X = check_matrix(X)
        self.index_ = faiss.IndexFlatL2(X.shape[1])
        self.index_.add(X)
        self.n_samples_fit_ = X.shape[0]
        self.recall_ = None
        self.description_ = f"exact search (faiss IndexFlatL2) over {self.n_samples_fit_:,} rows × {X.shape[1]} dims"
        return self

    def search(self, Q, k):
        """Exact ``(sq_distances (m, k) float32, indices (m, k) int64)`` of queries ``Q`` (m, p)."""
        return self.index_.search(Q, k)


class IVFIndex(NeighbourIndex):
    """Approximate search with faiss ``IndexIVFFlat``, recall measured on sampled rows.

    The coarse quantizer is ``nlist`` k-means centroids (scikit-learn ``KMeans``,
    random init, ``max_iter`` Lloyd iterations, seeded) of ``train_size`` sampled
    rows. Rows are assigned to lists and queries to their ``nprobe`` nearest lists
    with :func:`exact_search` (NumPy BLAS; faiss's bundled BLAS is slower here),
    then faiss scans the lists (``faiss.contrib.ivf_tools.add_preassigned`` /
    ``search_preassigned``). Jégou, Douze & Schmid (2011), IEEE TPAMI 33(1), §IV-A.

    Recall: ``n_recall_queries`` rows (seeded sample) are searched both exactly
    and through the index, self excluded; recall@k is the mean share of the
    exact k nearest distances that the index matches (a returned neighbour counts
    when its distance is <= the exact k-th distance, so ties between duplicates do
    not count as misses). While it is below ``recall_target``, ``nprobe`` doubles
    (up to ``max_nprobe``); if the target is still missed a warning is raised and
    the description says so.

    Parameters
    ----------
    nlist : int or None, default None
        Inverted lists; None = ``round(4 · sqrt(n))``, capped at ``train_size // 4``.
    nprobe : int, default 8
        Lists visited per query at the start of the recall search.
    recall_target : float, default 0.95
        In (0, 1].
    max_nprobe : int, default 128
        Largest nprobe tried.
    n_recall_queries : int, default 2000
        Sampled rows on which recall is measured (all rows if fewer).
    train_size : int or None, default None
        Rows sampled for k-means; None = ``min(n, 40 · nlist)``.
    max_iter : int, default 10
        Lloyd iterations of the k-means.
    random_state : int, default 0
        Seed of the samples and of the k-means.

    Attributes
    ----------
    index_ : faiss.IndexIVFFlat
        Holds a copy of the n_samples × n_features rows.
    centroids_ : ndarray of shape (nlist_, n_features), float32
    nlist_ : int
    nprobe_ : int
        nprobe used for searching.
    recall_ : float
        Measured recall@``recall_k_`` at ``nprobe_``.
    recall_k_ : int
        k at which recall was measured (``min(n_neighbors, n - 1)``).
    recall_curve_ : dict of int -> float
        Recall at each nprobe tried.
    recall_queries_ : int
        Sampled rows the recall was measured on.
    n_samples_fit_ : int
    description_ : str

    Raises
    ------
    ParameterError
        Bad parameters, or fewer than 2 rows.
    """

    name = "ivf"

    def __init__(
        self,
        nlist: int | None = None,
        nprobe: int = 8,
        recall_target: float = 0.95,
        max_nprobe: int = 128,
        n_recall_queries: int = 2000,
        train_size: int | None = None,
        max_iter: int = 10,
        random_state: int = 0,
    ):
        self.nlist = nlist
        self.nprobe = nprobe
        self.recall_target = recall_target
        self.max_nprobe = max_nprobe
        self.n_recall_queries = n_recall_queries
        self.train_size = train_size
        self.max_iter = max_iter
        self.random_state = random_state

    def _validate(self, n: int) -> None:
        if self.nlist is not None:
            _check_int("nlist", self.nlist, 1, n)
        _check_int("nprobe", self.nprobe, 1)
        _check_int("max_nprobe", self.max_nprobe, 1)
        _check_int("n_recall_queries", self.n_recall_queries, 1)
        _check_int("max_iter", self.max_iter, 1)
        if self.train_size is not None:
            _check_int("train_size", self.train_size, 2)
        ok = isinstance(self.recall_target, (int, float, np.floating)) and 0 < self.recall_target <= 1
        if not ok:
            raise ParameterError(f"recall_target={self.recall_target!r} is out of range: must be in (0, 1]")
        if n < 2:
            raise ParameterError(f"X has {n} rows; an IVF index needs at least 2")

    def fit(self, X, y=None, n_neighbors: int = 20) -> "IVFIndex":
        """Train, fill and tune the index on ``X`` (n, p) float32 for k = ``n_neighbors``."""
        from sklearn.cluster import KMeans

        X = check_matrix(X)
        n, p = X.shape
        self._validate(n)
        _check_int("n_neighbors", n_neighbors, 1)
        rng = np.random.default_rng(self.random_state)
        nlist = self.nlist if self.nlist is not None else max(1, int(round(4 * np.sqrt(n))))
        n_train = min(n, self.train_size if self.train_size is not None else 40 * nlist)
        nlist = max(1, min(nlist, n_train // 4)) if self.nlist is None else min(nlist, n_train)
        train = X if n_train == n else X[np.sort(rng.choice(n, n_train, replace=False))]
        km = KMeans(nlist, init="random", n_init=1, max_iter=self.max_iter, random_state=self.random_state)
        self.centroids_ = np.ascontiguousarray(km.fit(train).cluster_centers_, dtype=np.float32)
        self.nlist_ = nlist
        self._quantizer = faiss.IndexFlatL2(p)  # kept alive for the IVF index
        self._quantizer.add(self.centroids_)
        self.index_ = faiss.IndexIVFFlat(self._quantizer, p, nlist)
        self._centroid_sq = np.einsum("ij,ij->i", self.centroids_, self.centroids_)
        assign = exact_search(X, self.centroids_, 1, x_sqnorms=self._centroid_sq)[1][:, 0]
        add_preassigned(self.index_, X, assign)
        self._X = X  # a reference, for the exact fallback of short candidate lists
        self.n_samples_fit_ = n

        # recall against exact search on sampled rows (self excluded)
        k = min(n_neighbors, n - 1)
        n_q = min(self.n_recall_queries, n)
        rows = np.sort(rng.choice(n, n_q, replace=False)) if n_q < n else np.arange(n)
        Q = X[rows]
        exact = ExactIndex().fit(X)
        d_true = _finish(Q, X, exact.search(Q, k + 1)[1], rows, k)[0]
        self.nprobe_ = min(self.nprobe, nlist)
        self.recall_curve_ = {}
        while True:
            d_ivf = _finish(Q, X, self.search(Q, k + 1)[1], rows, k)[0]
            self.recall_curve_[self.nprobe_] = recall_at_k(d_ivf, d_true)
            if self.recall_curve_[self.nprobe_] >= self.recall_target or self.nprobe_ >= min(self.max_nprobe, nlist):
                break
            self.nprobe_ = min(2 * self.nprobe_, self.max_nprobe, nlist)
        self.recall_ = self.recall_curve_[self.nprobe_]
        self.recall_k_ = k
        self.recall_queries_ = n_q
        self.description_ = (
            f"faiss IVF-Flat, nlist={nlist:,}, nprobe={self.nprobe_}, recall@{k} = {self.recall_:.3f} "
            f"on {n_q:,} sampled queries (k-means on {n_train:,} sampled rows, seed {self.random_state})"
        )
        if self.recall_ < self.recall_target:
            self.description_ += f"; below the target {self.recall_target:.2f} at the largest nprobe tried"
            warnings.warn(f"IVF neighbour search: {self.description_}", RuntimeWarning, stacklevel=2)
        return self

    def search(self, Q, k):
        """Approximate ``(sq_distances (m, k) float32, indices (m, k) int64)``; rows whose
        probed lists hold fewer than k entries are searched exactly instead."""
        self.index_.nprobe = self.nprobe_
        coarse_d, coarse_i = exact_search(Q, self.centroids_, self.nprobe_, x_sqnorms=self._centroid_sq)
        D, I = search_preassigned(self.index_, Q, k, coarse_i, coarse_d)
        short = (I < 0).any(axis=1)
        if short.any():
            d2, pos = exact_search(np.ascontiguousarray(Q[short]), self._X, k)
            D[short], I[short] = d2, pos
        return D, I


class AutoIndex(NeighbourIndex):
    """``exact`` (:class:`ExactIndex`) up to ``max_exact_rows`` rows, ``ivf`` (:class:`IVFIndex`) above.

    Parameters
    ----------
    max_exact_rows : int, default 50000
        Largest n searched exactly (~30 s at 256 dims on 2 cores; cost grows as n²).
    random_state : int, default 0
        Seed passed to the IVF index.

    Attributes
    ----------
    chosen_ : NeighbourIndex
        The fitted index that runs.
    n_samples_fit_, recall_, description_
        Copied from ``chosen_``.
    """

    name = "auto"

    def __init__(self, max_exact_rows: int = 50_000, random_state: int = 0):
        self.max_exact_rows = max_exact_rows
        self.random_state = random_state

    def fit(self, X, y=None, n_neighbors: int = 20) -> "AutoIndex":
        """Pick and fit the index for ``X`` (n, p) float32."""
        _check_int("max_exact_rows", self.max_exact_rows, 1)
        X = check_matrix(X)
        small = X.shape[0] <= self.max_exact_rows
        self.chosen_ = ExactIndex() if small else IVFIndex(random_state=self.random_state)
        self.chosen_.fit(X, n_neighbors=n_neighbors)
        self.n_samples_fit_ = self.chosen_.n_samples_fit_
        self.recall_ = self.chosen_.recall_
        self.description_ = self.chosen_.description_
        return self

    def search(self, Q, k):
        """Delegate to ``chosen_.search``."""
        return self.chosen_.search(Q, k)


#: Registry: strategy name -> neighbour index class.
INDEXES: dict[str, type] = {"auto": AutoIndex, "exact": ExactIndex, "flat": FlatIndex, "ivf": IVFIndex}


def make_index(index="auto", random_state: int | None = None) -> NeighbourIndex:
    """A fresh, unfitted neighbour index from a registry name or a template object.

    Parameters
    ----------
    index : str or NeighbourIndex
        A key of :data:`INDEXES`, or an index whose parameters are copied
        (``sklearn.base.clone``; a fitted one is not modified).
    random_state : int or None
        Seed to set when the index has a ``random_state`` parameter and a name was given.

    Returns
    -------
    NeighbourIndex

    Raises
    ------
    ParameterError
        Unknown name or wrong type.
    """
    if isinstance(index, NeighbourIndex):
        return clone(index)
    if isinstance(index, str) and index in INDEXES:
        est = INDEXES[index]()
        if random_state is not None and "random_state" in est.get_params():
            est.set_params(random_state=random_state)
        return est
    raise ParameterError(f"index={index!r} unknown; valid: {sorted(INDEXES)} or a NeighbourIndex instance")


def recall_at_k(approx_distances: np.ndarray, exact_distances: np.ndarray, rtol: float = 1e-5) -> float:
    """Recall@k of approximate neighbour lists, by distance (ties count as hits).

    Parameters
    ----------
    approx_distances : ndarray of shape (m, k), float
        Distances of the returned neighbours (ascending or not; ``inf`` = missing).
    exact_distances : ndarray of shape (m, k), float
        The exact k nearest distances, ascending.
    rtol : float
        Relative tolerance on the k-th distance.

    Returns
    -------
    float
        Mean over queries of ``min(k, #{returned d <= exact k-th d}) / k``, in [0, 1].
    """
    kth = exact_distances[:, -1:] * (1 + rtol) + 1e-12
    hits = np.minimum((approx_distances <= kth).sum(axis=1), exact_distances.shape[1])
    return float(hits.mean() / exact_distances.shape[1])


def _finish(Q: np.ndarray, X: np.ndarray, idx: np.ndarray, own: np.ndarray | None, k: int):
    """Drop each query's own row, recompute distances exactly, sort: (m, k) float32, (m, k) int64."""
    m = Q.shape[0]
    if own is not None:
        is_own = idx == own[:, None]
        is_own[~is_own.any(axis=1), -1] = True  # rows without their own entry drop the last column
        idx = idx[~is_own].reshape(m, k)
    missing = idx < 0
    diff = Q[:, None, :].astype(np.float64) - X[np.maximum(idx, 0)].astype(np.float64)
    dist = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
    dist[missing] = np.inf
    order = np.argsort(dist, axis=1, kind="stable")
    return np.take_along_axis(dist, order, axis=1).astype(np.float32), np.take_along_axis(idx, order, axis=1)


def knn_search(
    X: np.ndarray,
    k: int,
    queries: np.ndarray | None = None,
    chunk_size: int = 2048,
    progress: bool = True,
    desc: str = "kNN",
    index="exact",
) -> tuple[np.ndarray, np.ndarray]:
    """k nearest neighbours of every query (or every row of ``X``, self excluded).

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
        Queries per search call (memory: chunk_size × 16384 × 4 bytes for exact).
    progress : bool
        Show a progress bar (:func:`descluster.progress.progress_bar`).
    desc : str
        Progress-bar label.
    index : str or NeighbourIndex, default "exact"
        Strategy (see :data:`INDEXES`). A name builds a fresh index; an *unfitted*
        or fitted instance is (re)fitted **in place** on ``X`` so that the caller
        can read its ``description_`` and ``recall_`` afterwards.

    Returns
    -------
    distances : ndarray of shape (n_queries, k), float32
        Euclidean (not squared) distances, ascending per row, recomputed exactly
        (``inf`` where an approximate index found fewer than k).
    indices : ndarray of shape (n_queries, k), int64
        Row numbers in ``X`` of the neighbours (-1 where missing).

    Raises
    ------
    ParameterError
        If ``k``, ``chunk_size`` or ``index`` is out of range, or the arrays are malformed.

    Notes
    -----
    With exact duplicates the search may return another row at distance 0 before
    the query row itself; the query's own index is removed wherever it appears (or
    the last column dropped if it does not appear).
    """
    X = check_matrix(X)
    n = X.shape[0]
    self_search = queries is None
    Q = X if self_search else check_matrix(queries, "queries")
    if Q.shape[1] != X.shape[1]:
        raise ParameterError(f"queries have {Q.shape[1]} features but X has {X.shape[1]}")
    kmax = n - 1 if self_search else n
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= k <= kmax:
        raise ParameterError(f"k={k!r} is out of range: need 1 <= k <= {kmax} for {n} indexed rows")
    _check_int("chunk_size", chunk_size, 1)
    est = index if isinstance(index, NeighbourIndex) else make_index(index)
    est.fit(X, n_neighbors=k)
    kk = k + 1 if self_search else k
    m = Q.shape[0]
    D = np.empty((m, k), dtype=np.float32)
    I = np.empty((m, k), dtype=np.int64)
    starts = range(0, m, chunk_size)
    if progress:
        from ..progress import progress_bar

        starts = progress_bar(starts, total=(m + chunk_size - 1) // chunk_size, desc=desc, unit="chunk")
    for s in starts:
        e = min(s + chunk_size, m)
        q = Q[s:e]
        idx = est.search(q, kk)[1]
        D[s:e], I[s:e] = _finish(q, X, idx, np.arange(s, e) if self_search else None, k)
    return D, I
