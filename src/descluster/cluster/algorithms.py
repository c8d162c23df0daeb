"""Clustering algorithms behind one small interface, and their registry ``ALGORITHMS``.

Every adapter is an estimator with ``name``, ``needs_k`` and
``fit_predict(X, k=None) -> labels (n,) int64``; after fitting it has
``labels_`` (n,) int64, ``n_iter_`` and, where defined, ``cluster_centers_``
(k, p) float32 and ``inertia_``. ``predict(X)`` labels new rows the way the
adapter extends a sample fit to all rows. ``random_state`` is fixed (default 0),
so a fit is reproducible.

k-means choice (measured, 2-core Xeon, 100,000 x 100 float32, 10 blobs, one init):
scikit-learn ``KMeans`` (Lloyd, OpenMP + its own BLAS) took 0.51 s for k = 5 and
3.6 s for k = 20 (100 iterations), ``faiss.Kmeans`` 1.25 s and 6.4 s (25
iterations) with the same objective. faiss-cpu's bundled OpenBLAS runs a slow
generic kernel on this CPU, so scikit-learn is used. To stay fast on 416,314 x 250
while using ALL rows, :class:`KMeansAdapter` seeds Lloyd on all rows with the
best of ``n_init`` k-means++ runs on a fixed-seed sample of ``init_sample`` rows
(Arthur & Vassilvitskii 2007), then runs at most ``max_iter`` full Lloyd
iterations to tolerance ``tol``.

Measured at scale (416,314 x 250 float32 synthetic, 20 blobs, 2 cores shared with
other jobs): with 50 full iterations k = 30 took 36.5 s; seeded as above, 10 full
iterations gave an inertia within 0.007 % of the 50-iteration one in 10.7 s. On the
60-cluster synthetic case (416,314 x 248) the seeding matters more: against
scikit-learn ``KMeans(n_init=3)`` run to convergence, 2 sample restarts + 5 full
iterations ended 6.7 % above its inertia at k = 60, 3 restarts + 10 iterations
0.65 % (and 0.15 % below it at k = 20), so the defaults are ``n_init=3``,
``max_iter=10`` (scikit-learn's final E-step keeps labels consistent with
the returned centres). Per-fit overheads: scikit-learn's tolerance (a column
variance, ~0.5 s), the distinct-row check (~0.5 s, cached per X by the adapter).
"""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np

from ..errors import MemoryBudgetError, ParameterError
from ..metrics import count_distinct_rows, nearest_centroid, row_chunks

__all__ = [
    "ClusterAdapter",
    "KMeansAdapter",
    "MiniBatchKMeansAdapter",
    "GMMAdapter",
    "BirchAdapter",
    "WardAdapter",
    "HDBSCANAdapter",
    "ALGORITHMS",
    "make_algorithm",
    "check_k",
]


#: Inputs with fewer cells than this run single-threaded (see ``ClusterAdapter.fit_predict``).
_SMALL = 2_000_000


def _check_X(X) -> np.ndarray:
    X = X if isinstance(X, np.ndarray) else np.asarray(X)
    if X.ndim != 2 or X.shape[0] < 2 or X.shape[1] < 1:
        raise ParameterError(f"X must be 2-D with >= 2 rows and >= 1 column; got shape {X.shape}")
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float32)
    return X


def check_k(X: np.ndarray, k, distinct_at_least: int | None = None) -> int:
    """Validate ``k`` for ``X``: an integer with 2 <= k <= number of distinct rows.

    Parameters
    ----------
    X : ndarray of shape (n, p)
    k : int
    distinct_at_least : int, optional
        A known lower bound on the distinct rows of ``X`` (skips the count when >= k).

    Returns
    -------
    int

    Raises
    ------
    ParameterError
        Naming ``k``, its value and the valid range.
    """
    if k is None or isinstance(k, bool) or int(k) != k:
        raise ParameterError(f"k must be an integer >= 2; got {k!r}")
    k = int(k)
    n = X.shape[0]
    if k < 2 or k > n:
        raise ParameterError(f"k = {k} is outside the valid range 2..{n} (n_samples = {n})")
    if distinct_at_least is not None and distinct_at_least >= k:
        return k
    m = count_distinct_rows(X, at_least=k)
    if m < k:
        raise ParameterError(
            f"k = {k} exceeds the number of distinct rows ({m}); valid range is 2..{m}"
        )
    return k


def _sample(n: int, size: int, random_state: int) -> np.ndarray:
    """Sorted fixed-seed sample of ``min(size, n)`` row indices (all rows when n <= size)."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(random_state).choice(n, size=size, replace=False))


def _positive_int(name: str, value, low: int = 1) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < low:
        raise ParameterError(f"{name} must be an integer >= {low}; got {value!r}")
    return int(value)


def cluster_means(X: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """(k, p) float32 means of the rows of each label 0..k-1 (NaN rows for empty labels).

    Streams ``X`` in row chunks (float64 sums via a sparse indicator product), so a
    memory map of 416k rows is never copied whole; noise (-1) is ignored.
    """
    from scipy import sparse

    sums = np.zeros((k, X.shape[1]), dtype=np.float64)
    for sl in row_chunks(X.shape[0], X.shape[1], None):
        lab = labels[sl]
        m = lab >= 0
        ind = sparse.csr_matrix((np.ones(int(m.sum())), (lab[m], np.arange(int(m.sum())))), shape=(k, int(m.sum())))
        sums += ind @ np.asarray(X[sl][m], dtype=np.float64)
    counts = np.bincount(labels[labels >= 0], minlength=k).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sums / counts[:, None]).astype(np.float32)


class ClusterAdapter:
    """Base class: common validation, ``predict`` by nearest centroid, ``fit`` alias.

    Attributes
    ----------
    name : str
        Registry name.
    needs_k : bool
        Whether ``fit_predict`` needs ``k``.
    labels_ : ndarray of shape (n_samples,), int64
        Labels of the last ``fit_predict`` (``-1`` = noise, HDBSCAN only).
    cluster_centers_ : ndarray of shape (k, n_features), float32 or None
        Cluster means (or model centres) in the input space.
    n_iter_ : int
        Iterations of the underlying solver (0 where not applicable).
    sample_size_ : int
        Rows the model was fitted on (== n_samples unless sampled).
    extended_ : bool
        True when fitted on a sample and extended to all rows by ``predict``.
    """

    name = "base"
    needs_k = True

    def __init__(self, random_state: int = 0):
        self.random_state = _positive_int("random_state", random_state, low=0)

    def _check_k(self, X: np.ndarray, k) -> int:
        """:func:`check_k` with the distinct-row lower bound cached per ``X`` (a sweep reuses it)."""
        key = (id(X), X.shape, X[:1].tobytes(), X[-1:].tobytes())
        if getattr(self, "_distinct_key", None) != key:
            self._distinct_lb = count_distinct_rows(X, at_least=min(X.shape[0], 1000))
            self._distinct_key = key
        return check_k(X, k, distinct_at_least=self._distinct_lb)

    def get_params(self) -> dict:
        """Constructor parameters (scikit-learn convention)."""
        import inspect

        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {p: getattr(self, p) for p in names}

    def clone(self) -> "ClusterAdapter":
        """A fresh, unfitted adapter with the same parameters."""
        return type(self)(**self.get_params())

    def fit(self, X, k=None):
        """Fit and return ``self`` (scikit-learn convention)."""
        self.fit_predict(X, k)
        return self

    def fit_predict(self, X, k=None) -> np.ndarray:
        """Fit on ``X`` (n, p) float32/float64 and return labels (n,) int64.

        Small inputs (n x p < 2,000,000) run single-threaded: OpenMP/BLAS thread
        start-up and spin-waiting cost more than they save there, and on a loaded
        2-core machine a 3,000 x 20 k-means took 2.4 s with 2 threads vs 0.06 s with 1.

        Raises
        ------
        ParameterError
            If ``k`` is invalid for an algorithm that needs it (see :func:`check_k`).
        """
        from threadpoolctl import threadpool_limits

        X = _check_X(X)
        if X.shape[0] * X.shape[1] < _SMALL:
            with threadpool_limits(limits=1):
                return self._fit_predict(X, k)
        return self._fit_predict(X, k)

    def _fit_predict(self, X, k):  # pragma: no cover - abstract
        raise NotImplementedError

    def predict(self, X) -> np.ndarray:
        """Nearest-centre labels (n,) int64 for new rows ``X`` (n, p)."""
        return nearest_centroid(_check_X(X), self.cluster_centers_)

    def describe_fit(self, n_samples: int, n_features: int | None = None) -> str:
        """How a fit on ``n_samples`` rows (of ``n_features`` columns, where that matters) runs, in
        words: rows used, sample, extension to all rows. Shown in the report."""
        return f"fitted on all {n_samples:,} rows"

    def _finish(self, X, labels, k=None, centers=None):
        self.labels_ = np.asarray(labels, dtype=np.int64)
        if centers is None and k is not None:
            centers = cluster_means(X, self.labels_, k)
        self.cluster_centers_ = None if centers is None else np.asarray(centers, dtype=np.float32)
        return self.labels_


class KMeansAdapter(ClusterAdapter):
    """k-means (Lloyd) on ALL rows, seeded by k-means++ on a sample (scikit-learn ``KMeans``).

    Why scikit-learn and not faiss: see the module docstring (measured 2-2.5x faster
    here). Seeding: the best (lowest inertia) of ``n_init`` k-means++ + Lloyd runs on
    a fixed-seed sample of ``init_sample`` rows; then Lloyd on all rows from those
    centres, at most ``max_iter`` iterations, relative tolerance ``tol``.

    Parameters
    ----------
    random_state : int
    n_init : int
        Restarts on the sample (>= 1).
    init_sample : int
        Rows of the seeding sample (>= 100); when n <= init_sample the restarts run
        on all rows directly.
    max_iter : int
        Lloyd iterations on all rows (>= 1), default 10 (see the module docstring).
    tol : float
        scikit-learn's relative centre-shift tolerance (> 0).

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (k, n_features), float32
    inertia_ : float
        Sum of squared distances to the closest centre (squared units of X).
    n_iter_ : int
        Lloyd iterations on all rows.
    labels_ : ndarray of shape (n_samples,), int64
    """

    name = "kmeans"
    needs_k = True

    def __init__(self, random_state: int = 0, n_init: int = 3, init_sample: int = 10_000,
                 max_iter: int = 10, tol: float = 1e-4):
        super().__init__(random_state)
        self.n_init = _positive_int("n_init", n_init)
        self.init_sample = _positive_int("init_sample", init_sample, low=100)
        self.max_iter = _positive_int("max_iter", max_iter)
        if not (tol > 0):
            raise ParameterError(f"tol must be > 0; got {tol}")
        self.tol = float(tol)

    def describe_fit(self, n_samples: int, n_features: int | None = None) -> str:
        """See :meth:`ClusterAdapter.describe_fit`."""
        if n_samples <= self.init_sample:
            return f"Lloyd on all {n_samples:,} rows, best of {self.n_init} k-means++ starts"
        return (f"k-means++ seeding, best of {self.n_init} starts on a {self.init_sample:,}-row sample, then up to "
                f"{self.max_iter} Lloyd iterations on all {n_samples:,} rows")

    def _fit_predict(self, X, k=None) -> np.ndarray:
        """Fit k-means with ``k`` clusters on ``X`` (n, p) and return labels (n,) int64.

        Raises
        ------
        ParameterError
            If ``k`` is not in 2..distinct rows.
        """
        from sklearn.cluster import KMeans

        X = _check_X(X)
        k = self._check_k(X, k)
        n = X.shape[0]
        if n <= self.init_sample:
            km = KMeans(k, n_init=self.n_init, random_state=self.random_state,
                        max_iter=max(self.max_iter, 100), tol=self.tol).fit(X)
            self.sample_size_, self.extended_ = n, False
        else:
            idx = _sample(n, self.init_sample, self.random_state)
            seed = KMeans(k, n_init=self.n_init, random_state=self.random_state, max_iter=100,
                          tol=self.tol).fit(X[idx])
            km = KMeans(k, init=seed.cluster_centers_, n_init=1, random_state=self.random_state,
                        max_iter=self.max_iter, tol=self.tol).fit(X)
            self.sample_size_, self.extended_ = n, False
        self.inertia_ = float(km.inertia_)
        self.n_iter_ = int(km.n_iter_)
        return self._finish(X, km.labels_, centers=km.cluster_centers_)


class MiniBatchKMeansAdapter(ClusterAdapter):
    """Mini-batch k-means (Sculley 2010) via scikit-learn ``MiniBatchKMeans``, all rows.

    Parameters
    ----------
    random_state : int
    batch_size : int
        Rows per mini-batch (>= 16); default 4,096 (scikit-learn's advice for 2 cores
        is >= 256 x cores).
    n_init : int
        k-means++ restarts (>= 1).

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (k, n_features), float32
    inertia_ : float
    n_iter_ : int
    labels_ : ndarray of shape (n_samples,), int64
    """

    name = "minibatch_kmeans"
    needs_k = True

    def __init__(self, random_state: int = 0, batch_size: int = 4096, n_init: int = 3):
        super().__init__(random_state)
        self.batch_size = _positive_int("batch_size", batch_size, low=16)
        self.n_init = _positive_int("n_init", n_init)

    def describe_fit(self, n_samples: int, n_features: int | None = None) -> str:
        """See :meth:`ClusterAdapter.describe_fit`."""
        return f"mini-batches of {self.batch_size:,} rows over all {n_samples:,} rows, best of {self.n_init} starts"

    def _fit_predict(self, X, k=None) -> np.ndarray:
        """Fit with ``k`` clusters on ``X`` (n, p); return labels (n,) int64.

        Raises
        ------
        ParameterError
            If ``k`` is not in 2..distinct rows.
        """
        from sklearn.cluster import MiniBatchKMeans

        X = _check_X(X)
        k = self._check_k(X, k)
        mb = MiniBatchKMeans(k, batch_size=self.batch_size, n_init=self.n_init,
                             random_state=self.random_state).fit(X)
        self.inertia_ = float(mb.inertia_)
        self.n_iter_ = int(mb.n_iter_)
        self.sample_size_, self.extended_ = X.shape[0], False
        return self._finish(X, mb.labels_, centers=mb.cluster_centers_)


class GMMAdapter(ClusterAdapter):
    """Gaussian mixture with diagonal covariances (scikit-learn ``GaussianMixture``).

    Fitted (EM, k-means initialisation) on a fixed-seed sample of at most
    ``max_fit_rows`` rows and predicted (maximum posterior) on all rows.
    ``bic_`` is Schwarz's BIC on the fitting sample (lower is better; Schwarz 1978).

    Parameters
    ----------
    random_state : int
    max_fit_rows : int
        Largest fitting sample (>= 100), default 20,000 (EM costs O(m k d) per
        iteration: at 50,000 x 248 a fit took 3.4-6.7 s per k on 2 cores).
    reg_covar : float
        Added to the diagonal variances (> 0).

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (k, n_features), float32
        Component means.
    bic_ : float
    n_iter_ : int
    sample_size_ : int
    extended_ : bool
    labels_ : ndarray of shape (n_samples,), int64
    """

    name = "gmm"
    needs_k = True

    def __init__(self, random_state: int = 0, max_fit_rows: int = 20_000, reg_covar: float = 1e-6):
        super().__init__(random_state)
        self.max_fit_rows = _positive_int("max_fit_rows", max_fit_rows, low=100)
        if not (reg_covar > 0):
            raise ParameterError(f"reg_covar must be > 0; got {reg_covar}")
        self.reg_covar = float(reg_covar)

    def describe_fit(self, n_samples: int, n_features: int | None = None) -> str:
        """See :meth:`ClusterAdapter.describe_fit`."""
        m = min(n_samples, self.max_fit_rows)
        if m == n_samples:
            return f"EM with diagonal covariances on all {n_samples:,} rows"
        return f"EM with diagonal covariances on a {m:,}-row sample; all {n_samples:,} rows labelled by maximum posterior"

    def _fit_predict(self, X, k=None) -> np.ndarray:
        """Fit ``k`` components; return labels (n,) int64.

        Raises
        ------
        ParameterError
            If ``k`` is not in 2..distinct rows.
        """
        from sklearn.mixture import GaussianMixture

        X = _check_X(X)
        k = self._check_k(X, k)
        idx = _sample(X.shape[0], self.max_fit_rows, self.random_state)
        Xs = np.asarray(X[idx], dtype=np.float64)
        self.model_ = GaussianMixture(k, covariance_type="diag", reg_covar=self.reg_covar,
                                      random_state=self.random_state).fit(Xs)
        self.bic_ = float(self.model_.bic(Xs))
        self.n_iter_ = int(self.model_.n_iter_)
        self.sample_size_, self.extended_ = idx.size, idx.size < X.shape[0]
        labels = self.predict(X)
        return self._finish(X, labels, centers=self.model_.means_)

    def predict(self, X) -> np.ndarray:
        """Most probable component (n,) int64 of each row of ``X`` (n, p)."""
        X = _check_X(X)
        out = np.empty(X.shape[0], dtype=np.int64)
        for sl in row_chunks(X.shape[0], X.shape[1], None):
            out[sl] = self.model_.predict(np.asarray(X[sl], dtype=np.float64))
        return out


class BirchAdapter(ClusterAdapter):
    """BIRCH (Zhang et al. 1996) via scikit-learn ``Birch(n_clusters=k)``.

    The CF-tree ``threshold`` (a subcluster radius, in units of X) is chosen from the
    data scale: ``threshold_factor`` x the median nearest-neighbour distance in a
    2,000-row sample, so subclusters merge near-duplicates but not distinct images.
    Fitted on a fixed-seed sample of at most ``max_fit_rows`` rows; all rows are
    labelled by the nearest final cluster mean.

    Parameters
    ----------
    random_state : int
    max_fit_rows : int
        Largest fitting sample (>= 100), default 20,000.
    threshold_factor : float
        Multiplier of the median nearest-neighbour distance (> 0), default 1.0 (0.5 gave
        ~30x more subclusters and a 30 s fit on 20,000 x 50 blobs; 1.0 took 1 s, same ARI).

    Attributes
    ----------
    threshold_ : float
    cluster_centers_ : ndarray of shape (k, n_features), float32
    n_iter_ : int
        Always 0 (single pass).
    sample_size_ : int
    extended_ : bool
    labels_ : ndarray of shape (n_samples,), int64
    """

    name = "birch"
    needs_k = True

    def __init__(self, random_state: int = 0, max_fit_rows: int = 20_000, threshold_factor: float = 1.0):
        super().__init__(random_state)
        self.max_fit_rows = _positive_int("max_fit_rows", max_fit_rows, low=100)
        if not (threshold_factor > 0):
            raise ParameterError(f"threshold_factor must be > 0; got {threshold_factor}")
        self.threshold_factor = float(threshold_factor)

    def describe_fit(self, n_samples: int, n_features: int | None = None) -> str:
        """See :meth:`ClusterAdapter.describe_fit`."""
        m = min(n_samples, self.max_fit_rows)
        if m == n_samples:
            return f"CF-tree on all {n_samples:,} rows, rows labelled by the nearest final cluster mean"
        return f"CF-tree on a {m:,}-row sample; all {n_samples:,} rows labelled by the nearest cluster mean"

    def _fit_predict(self, X, k=None) -> np.ndarray:
        """Fit with ``k`` clusters; return labels (n,) int64.

        Raises
        ------
        ParameterError
            If ``k`` is not in 2..distinct rows.
        """
        from sklearn.cluster import Birch
        from sklearn.neighbors import NearestNeighbors

        X = _check_X(X)
        k = self._check_k(X, k)
        idx = _sample(X.shape[0], self.max_fit_rows, self.random_state)
        Xs = np.asarray(X[idx], dtype=np.float64)
        probe = Xs[_sample(Xs.shape[0], 2000, self.random_state + 1)]
        dist, _ = NearestNeighbors(n_neighbors=2).fit(probe).kneighbors(probe)
        nn = float(np.median(dist[:, 1]))
        if not (nn > 0):
            nn = float(np.median(dist[dist > 0])) if np.any(dist > 0) else 1.0
        self.threshold_ = self.threshold_factor * nn
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = Birch(threshold=self.threshold_, n_clusters=k).fit(Xs)
        lab_s = model.labels_.astype(np.int64)
        centers = cluster_means(Xs, lab_s, int(lab_s.max()) + 1)
        centers = centers[np.all(np.isfinite(centers), axis=1)]
        self.cluster_centers_ = centers
        self.n_iter_ = 0
        self.sample_size_, self.extended_ = idx.size, idx.size < X.shape[0]
        labels = self.predict(X)
        return self._finish(X, labels, centers=centers)


class WardAdapter(ClusterAdapter):
    """Ward agglomerative clustering on a sample, extended by nearest centroid.

    Ward's minimum-variance linkage (Ward 1963) via ``scipy.cluster.hierarchy.linkage``
    (the routine scikit-learn's ``AgglomerativeClustering(linkage="ward")`` calls
    without connectivity), fitted on a fixed-seed sample of at most ``max_fit_rows``
    rows; the tree is cut at ``k`` clusters (``fcluster(..., "maxclust")``) and every
    row gets the nearest cluster mean. The tree of the last sample is cached, so a
    sweep over k on the same ``X`` builds it once.

    Memory: the condensed distance matrix needs ``8 * m * (m - 1) / 2`` bytes for m
    sample rows, about 2x that at peak; checked against ``memory_budget`` first.

    Parameters
    ----------
    random_state : int
    max_fit_rows : int
        Largest sample (>= 10), default 20,000 (about 3.2 GB peak).
    memory_budget : int
        Bytes allowed (default 6 GiB).

    Attributes
    ----------
    linkage_ : ndarray of shape (m - 1, 4), float64
        scipy linkage matrix of the sample.
    cluster_centers_ : ndarray of shape (k, n_features), float32
    n_iter_ : int
        Always 0.
    sample_size_ : int
    extended_ : bool
    labels_ : ndarray of shape (n_samples,), int64

    Raises
    ------
    MemoryBudgetError
        At fit time, when the estimate exceeds ``memory_budget``.
    """

    name = "ward"
    needs_k = True

    def __init__(self, random_state: int = 0, max_fit_rows: int = 20_000, memory_budget: int = 6 * 2**30):
        super().__init__(random_state)
        self.max_fit_rows = _positive_int("max_fit_rows", max_fit_rows, low=10)
        self.memory_budget = _positive_int("memory_budget", memory_budget)

    @staticmethod
    def memory_estimate(m: int) -> int:
        """Peak bytes for Ward on ``m`` rows: 2 x the condensed float64 distance matrix."""
        return int(2 * 8 * m * (m - 1) // 2)

    def describe_fit(self, n_samples: int, n_features: int | None = None) -> str:
        """See :meth:`ClusterAdapter.describe_fit`."""
        m = min(n_samples, self.max_fit_rows)
        mem = f" (O(m²) memory: about {self.memory_estimate(m) / 2**30:.1f} GiB)"
        if m == n_samples:
            return f"Ward tree on all {n_samples:,} rows{mem}"
        return f"Ward tree on a {m:,}-row sample{mem}; all {n_samples:,} rows labelled by the nearest cluster mean"

    def _fit_predict(self, X, k=None) -> np.ndarray:
        """Cut the Ward tree at ``k`` clusters; return labels (n,) int64.

        Raises
        ------
        ParameterError
            If ``k`` is not in 2..distinct rows.
        MemoryBudgetError
            If the sample's O(m^2) memory estimate exceeds ``memory_budget``.
        """
        from scipy.cluster.hierarchy import fcluster, linkage

        X = _check_X(X)
        k = self._check_k(X, k)
        idx = _sample(X.shape[0], self.max_fit_rows, self.random_state)
        need = self.memory_estimate(idx.size)
        if need > self.memory_budget:
            raise MemoryBudgetError(
                f"ward on {idx.size:,} rows needs about {need / 2**30:.1f} GiB "
                f"(> memory_budget {self.memory_budget / 2**30:.1f} GiB); lower max_fit_rows"
            )
        key = (X.shape, idx.size, np.asarray(X[idx[:50]]).tobytes(), np.asarray(X[idx[-50:]]).tobytes())
        if getattr(self, "_key", None) != key:
            self.linkage_ = linkage(np.asarray(X[idx], dtype=np.float64), method="ward")
            self._key = key
        lab_s = fcluster(self.linkage_, t=k, criterion="maxclust").astype(np.int64) - 1
        centers = cluster_means(X[idx], lab_s, int(lab_s.max()) + 1)
        self.n_iter_ = 0
        self.sample_size_, self.extended_ = idx.size, idx.size < X.shape[0]
        self.cluster_centers_ = centers
        labels = self.predict(X) if self.extended_ else lab_s  # idx == arange(n) when not extended
        return self._finish(X, labels, centers=centers)


class HDBSCANAdapter(ClusterAdapter):
    """HDBSCAN (Campello et al. 2013) via the ``hdbscan`` library; k-free.

    ``min_cluster_size`` defaults to ``max(10, m // 200)`` for m fitted rows. Fitted on
    a fixed-seed sample of at most ``max_fit_rows`` rows; when larger, every other row
    takes the label of its nearest fitted row, or noise when it is farther from that
    row than the row's core distance (its distance to its ``min_samples``-th nearest
    fitted row: outside the dense region HDBSCAN saw). That is the first step of
    ``hdbscan.approximate_predict`` (McInnes et al. 2017) without its walk of the
    condensed tree, which took ~6.6 s per 20,000 rows here (about 2 minutes for
    416,314); the nearest fitted row is found by exact BLAS search (scikit-learn
    ``pairwise_distances_argmin_min``), seconds at that size. Noise is ``-1``.
    GLOSH outlier scores (Campello et al. 2015) are exposed only when every row was
    in the fit.

    Density estimates degrade and tree-based neighbour searches slow down sharply
    with dimension: on a 50,000 x 248 sample the fit had not finished after 6 minutes
    (2 cores). So when ``X`` has more than ``max_dims`` columns the sample is first
    projected on its ``max_dims`` leading principal axes (scikit-learn ``PCA``), and
    the same projection is applied to the rows labelled by :meth:`predict`;
    ``projection_`` records it.

    Parameters
    ----------
    random_state : int
    min_cluster_size : int or None
        >= 2; None for the default above.
    min_samples : int or None
        Core-distance neighbours; None = ``min_cluster_size`` (library default).
    max_fit_rows : int
        Largest fitting sample (>= 100), default 20,000.
    max_dims : int
        Largest number of columns HDBSCAN sees (>= 2), default 20; wider inputs are
        projected by PCA fitted on the sample.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,), int64
    projection_ : sklearn.decomposition.PCA or None
        The PCA applied before HDBSCAN (None when ``X`` had <= ``max_dims`` columns).
    fit_rows_ : ndarray of shape (m, min(p, max_dims)), float64
        The (projected) rows HDBSCAN was fitted on.
    core_distances_ : ndarray of shape (m,), float64 or None
        Core distance of each fitted row (set by the first :meth:`predict`).
    noise_share_ : float
        Share of rows labelled ``-1``.
    outlier_scores_ : ndarray of shape (n_samples,), float64 or None
        GLOSH scores (higher = more outlying); None when fitted on a sample.
    cluster_centers_ : ndarray of shape (k, n_features), float32 or None
        Means of the non-noise clusters (None when no cluster).
    min_cluster_size_ : int
    n_iter_ : int
        Always 0.
    sample_size_ : int
    extended_ : bool
    """

    name = "hdbscan"
    needs_k = False

    def __init__(self, random_state: int = 0, min_cluster_size: int | None = None,
                 min_samples: int | None = None, max_fit_rows: int = 20_000, max_dims: int = 20):
        super().__init__(random_state)
        self.min_cluster_size = None if min_cluster_size is None else _positive_int(
            "min_cluster_size", min_cluster_size, low=2)
        self.min_samples = None if min_samples is None else _positive_int("min_samples", min_samples)
        self.max_fit_rows = _positive_int("max_fit_rows", max_fit_rows, low=100)
        self.max_dims = _positive_int("max_dims", max_dims, low=2)

    def describe_fit(self, n_samples: int, n_features: int | None = None) -> str:
        """See :meth:`ClusterAdapter.describe_fit`; ``n_features`` says whether the PCA projection applies."""
        m = min(n_samples, self.max_fit_rows)
        proj = (f", on its {self.max_dims} leading principal components"
                if n_features is None or n_features > self.max_dims else "")
        if m == n_samples:
            return f"on all {n_samples:,} rows{proj}"
        return (f"on a {m:,}-row sample{proj}; the other rows take the label of the nearest sampled row "
                f"within its core distance, else noise")

    def _fit_predict(self, X, k=None) -> np.ndarray:
        """Cluster ``X`` (n, p); ``k`` is ignored. Returns labels (n,) int64, -1 = noise."""
        import hdbscan

        X = _check_X(X)
        idx = _sample(X.shape[0], self.max_fit_rows, self.random_state)
        m = idx.size
        self.min_cluster_size_ = self.min_cluster_size or max(10, m // 200)
        self.min_cluster_size_ = min(self.min_cluster_size_, max(2, m // 2))
        self.sample_size_, self.extended_ = m, m < X.shape[0]
        Xs = np.asarray(X[idx], dtype=np.float64)
        self.projection_ = None
        if Xs.shape[1] > self.max_dims:
            from sklearn.decomposition import PCA

            self.projection_ = PCA(n_components=min(self.max_dims, m), random_state=self.random_state).fit(Xs)
            Xs = self.projection_.transform(Xs)
        self.core_distances_ = None
        self.fit_rows_ = Xs
        self.model_ = hdbscan.HDBSCAN(min_cluster_size=self.min_cluster_size_,
                                      min_samples=self.min_samples,
                                      core_dist_n_jobs=2).fit(Xs)
        if self.extended_:
            labels = self.predict(X)
            labels[idx] = self.model_.labels_
            self.outlier_scores_ = None
        else:
            labels = self.model_.labels_.astype(np.int64)
            self.outlier_scores_ = np.asarray(self.model_.outlier_scores_, dtype=np.float64)
        labels = np.asarray(labels, dtype=np.int64)
        self.noise_share_ = float(np.mean(labels < 0))
        self.n_iter_ = 0
        k_found = int(labels.max()) + 1 if labels.max() >= 0 else 0
        centers = cluster_means(X, labels, k_found) if k_found else None
        return self._finish(X, labels, centers=centers)

    def predict(self, X) -> np.ndarray:
        """Labels (n,) int64 for ``X`` (n, p), -1 = noise: the nearest fitted row's label
        within its core distance (see the class docstring)."""
        from sklearn.metrics import pairwise_distances_argmin_min
        from sklearn.neighbors import NearestNeighbors

        X = _check_X(X)
        Z = self.fit_rows_
        fit_labels = np.asarray(self.model_.labels_, dtype=np.int64)
        if getattr(self, "core_distances_", None) is None:
            k = min(self.model_.min_samples or self.min_cluster_size_, Z.shape[0])
            self.core_distances_ = NearestNeighbors(n_neighbors=k).fit(Z).kneighbors(Z)[0][:, -1]
        out = np.empty(X.shape[0], dtype=np.int64)
        for sl in row_chunks(X.shape[0], X.shape[1], None):
            chunk = np.asarray(X[sl], dtype=np.float64)
            if getattr(self, "projection_", None) is not None:
                chunk = self.projection_.transform(chunk)
            nearest, dist = pairwise_distances_argmin_min(chunk, Z)
            lab = fit_labels[nearest]
            lab[dist > self.core_distances_[nearest]] = -1
            out[sl] = lab
        return out


#: name -> factory(random_state=0, **params) returning a fresh adapter.
ALGORITHMS: dict[str, Callable[..., ClusterAdapter]] = {
    cls.name: cls
    for cls in (KMeansAdapter, MiniBatchKMeansAdapter, GMMAdapter, BirchAdapter, WardAdapter, HDBSCANAdapter)
}


def make_algorithm(name: str, **params) -> ClusterAdapter:
    """Build the adapter registered as ``name`` with ``params``.

    Raises
    ------
    ParameterError
        If ``name`` is not in ``ALGORITHMS`` (lists the valid names).
    """
    if name not in ALGORITHMS:
        raise ParameterError(f"algorithm {name!r} is unknown; valid: {', '.join(sorted(ALGORITHMS))}")
    return ALGORITHMS[name](**params)
