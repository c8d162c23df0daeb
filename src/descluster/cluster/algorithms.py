"""Clustering algorithms as scikit-learn estimators, and their registry ``ALGORITHMS``.

Every adapter is a ``BaseEstimator`` + ``ClusterMixin``: parameters (``n_clusters``
for the algorithms that need k, ``random_state``, ...) are stored unchanged by
``__init__`` and validated at the start of ``fit`` (:mod:`descluster.validation`),
so ``sklearn.base.clone`` and ``set_params`` work. ``fit(X, y=None, context=None)``
sets ``labels_`` (n,) int64, ``n_iter_``, ``predictor_`` (how rows are labelled,
:mod:`descluster.cluster.predictors`) and, where defined, ``cluster_centers_`` (k, p)
float32 and ``inertia_``; ``predict(X)`` is ``predictor_.predict``: the way the
adapter extends a sample fit to all rows, and what a saved model applies to new
images. ``fit_predict`` comes from ``ClusterMixin``. ``random_state`` is fixed
(default 0), so a fit is reproducible. A k sweep passes one
:class:`~descluster.cluster.context.SweepContext` per matrix, in which work that does
not depend on k (the distinct-row bound, Ward's tree) is done once.

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
variance, ~0.5 s), the distinct-row check (~0.5 s, once per matrix in a sweep context).
"""

from __future__ import annotations

import warnings
from contextlib import nullcontext

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.exceptions import ConvergenceWarning

from ..errors import MemoryBudgetError, ParameterError
from ..metrics.internal import count_distinct_rows
from ..rows import label_means, sample_rows
from ..validation import Int, OneOf, Optional, Real, check_choice, validate_params
from .context import SweepContext
from .predictors import CentroidPredictor, GaussianPredictor, NeighbourPredictor
from .seeding import INITS, kmeans_parallel, local_blocks

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
    "cluster_means",
]


#: Inputs with fewer cells than this run single-threaded (see ``ClusterAdapter.fit``).
_SMALL = 2_000_000


def check_k(X: np.ndarray, k, distinct_at_least: int | None = None, low: int = 2) -> int:
    """Validate ``k`` for ``X``: an integer with low <= k <= number of distinct rows.

    Parameters
    ----------
    X : ndarray of shape (n, p)
    k : int
    distinct_at_least : int, optional
        A known lower bound on the distinct rows of ``X`` (skips the count when >= k).
    low : int, default 2
        Smallest valid k (the sweep's; an estimator on its own accepts 1, as scikit-learn's do).

    Returns
    -------
    int

    Raises
    ------
    ParameterError
        Naming ``k``, its value and the valid range.
    """
    if k is None or isinstance(k, bool) or int(k) != k:
        raise ParameterError(f"k must be an integer >= {low}; got {k!r}")
    k = int(k)
    n = X.shape[0]
    if k < low or k > n:
        raise ParameterError(f"k = {k} is outside the valid range {low}..{n} (n_samples = {n})")
    if distinct_at_least is not None and distinct_at_least >= k:
        return k
    m = count_distinct_rows(X, at_least=k)
    if m < k:
        raise ParameterError(
            f"k = {k} exceeds the number of distinct rows ({m}); valid range is {low}..{m}"
        )
    return k


def cluster_means(X: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """(k, p) float32 means of the rows of each label 0..k-1 (NaN rows for empty labels).

    :func:`descluster.rows.label_means` (streamed, float64 sums) cast to float32, the
    dtype of the adapters' ``cluster_centers_``; noise (-1) is ignored.
    """
    return label_means(X, labels, k).astype(np.float32)


class ClusterAdapter(ClusterMixin, BaseEstimator):
    """Base class: parameter and input validation, threading, ``predict`` through ``predictor_``.

    Subclasses list their parameter constraints in ``_constraints`` and implement
    ``_fit(X, context)``, which must set ``labels_``, ``cluster_centers_``, ``predictor_``,
    ``n_iter_``, ``sample_size_`` and ``extended_`` (use :meth:`_finish`).

    Attributes
    ----------
    name : str
        Registry name (class attribute).
    needs_k : bool
        Whether the algorithm takes ``n_clusters`` (class attribute).
    labels_ : ndarray of shape (n_samples,), int64
        Labels of the fitted rows (``-1`` = noise, HDBSCAN only).
    cluster_centers_ : ndarray of shape (k, n_features), float32 or None
        Cluster means (or model centres) in the input space.
    predictor_ : Predictor
        Labels rows the way this fit does (:mod:`descluster.cluster.predictors`).
    n_iter_ : int
        Iterations of the underlying solver (0 where not applicable).
    sample_size_ : int
        Rows the model was fitted on (== n_samples unless sampled).
    extended_ : bool
        True when fitted on a sample and extended to all rows by ``predict``.
    n_features_in_ : int
        Columns of the fitted ``X``.
    """

    name = "base"
    needs_k = True
    _constraints: dict = {"random_state": Int(0)}

    # -- validation ----------------------------------------------------------------
    def _params(self) -> dict:
        """Every parameter checked against ``_constraints`` (raises :class:`ParameterError`)."""
        return validate_params(self, self._constraints, owner=f"{type(self).__name__}.")

    def _check_X(self, X, reset: bool) -> np.ndarray:
        """``X`` as a finite float32/float64 2-D array (scikit-learn's ``validate_data``), >= 2 rows to fit.

        Raises
        ------
        ParameterError
            Not 2-D, fewer than 2 rows, NaN/inf, complex, or (``reset=False``) another width.
        """
        from sklearn.utils.validation import validate_data

        try:
            return validate_data(self, X, dtype=[np.float32, np.float64], ensure_min_samples=2 if reset else 1,
                                 reset=reset)
        except ValueError as exc:
            if isinstance(exc, ParameterError):
                raise
            raise ParameterError(f"{type(self).__name__}: {exc}") from exc

    def _k(self, X: np.ndarray, context: SweepContext) -> int:
        """``n_clusters`` checked against ``X`` (:func:`check_k` with k >= 1, distinct-row bound from the context)."""
        return check_k(X, self.n_clusters, distinct_at_least=context.distinct_at_least(X), low=1)

    # -- estimator API -------------------------------------------------------------
    def fit(self, X, y=None, context: SweepContext | None = None):
        """Fit on ``X`` (n, p) float32/float64 and return ``self``.

        Small inputs (n x p < 2,000,000) run single-threaded: OpenMP/BLAS thread
        start-up and spin-waiting cost more than they save there, and on a loaded
        2-core machine a 3,000 x 20 k-means took 2.4 s with 2 threads vs 0.06 s with 1.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored
        context : SweepContext, optional
            Made for this same ``X`` by the caller (a k sweep); holds work shared by fits.

        Raises
        ------
        ParameterError
            An invalid parameter (named, with its valid range), invalid ``X``, ``n_clusters``
            outside 2..distinct rows (see :func:`check_k`), or a context made for another matrix.
        """
        from threadpoolctl import threadpool_limits

        self._params()
        if context is not None:
            context.check(X)
        X = self._check_X(X, reset=True)
        context = context if context is not None else SweepContext(X)
        with threadpool_limits(limits=1) if X.shape[0] * X.shape[1] < _SMALL else nullcontext():
            self._fit(X, context)
        return self

    def _fit(self, X, context):  # pragma: no cover - abstract
        raise NotImplementedError

    def predict(self, X) -> np.ndarray:
        """Labels (n,) int64 for rows ``X`` (n, p): ``predictor_.predict`` (-1 = noise)."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "predictor_")
        return self.predictor_.predict(self._check_X(X, reset=False))

    def describe_fit(self, n_samples: int, n_features: int | None = None) -> str:
        """How a fit on ``n_samples`` rows (of ``n_features`` columns, where that matters) runs, in
        words: rows used, sample, extension to all rows. Shown in the report."""
        return f"fitted on all {n_samples:,} rows"

    def _finish(self, X, labels, centers=None, predictor=None):
        self.labels_ = np.asarray(labels, dtype=np.int64)
        self.cluster_centers_ = None if centers is None else np.asarray(centers, dtype=np.float32)
        self.predictor_ = predictor if predictor is not None else CentroidPredictor(self.cluster_centers_)
        return self.labels_


class KMeansAdapter(ClusterAdapter):
    """k-means (Lloyd) on ALL rows, seeded by k-means++ on a sample (scikit-learn ``KMeans``).

    Why scikit-learn and not faiss: see the module docstring (measured 2-2.5x faster
    here). Seeding: the best (lowest inertia) of ``n_init`` k-means++ + Lloyd runs on
    a fixed-seed sample of ``init_sample`` rows; then Lloyd on all rows from those
    centres, at most ``max_iter`` iterations, relative tolerance ``tol``.

    Parameters
    ----------
    n_clusters : int, default 8
        k (>= 1, at most the number of distinct rows; the sweep uses k >= 2).
    random_state : int, default 0
    n_init : int, default 3
        Restarts on the sample (>= 1).
    init_sample : int, default 10,000
        Rows of the seeding sample (>= 100); when n <= init_sample the restarts run
        on all rows directly.
    max_iter : int, default 10
        Lloyd iterations on all rows (>= 1) (see the module docstring).
    tol : float, default 1e-4
        scikit-learn's relative centre-shift tolerance (> 0).
    init : {"k-means++", "k-means||"}, default "k-means++"
        Seeding. ``"k-means++"``: as above (on the ``init_sample`` rows). ``"k-means||"``: the scalable
        k-means++ of Bahmani et al. (2012) over ALL rows, a few passes each of which is a map over row
        blocks (:mod:`descluster.cluster.seeding`; per block on the workers with ``--engine dask``),
        then Lloyd on all rows from its centres (100 iterations at most when n <= init_sample, else
        ``max_iter``).

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features), float32
    inertia_ : float
        Sum of squared distances to the closest centre (squared units of X).
    n_iter_ : int
        Lloyd iterations on all rows.
    labels_ : ndarray of shape (n_samples,), int64
    predictor_ : CentroidPredictor
    sample_size_ : int
    extended_ : bool
        Always False (every row is in the final Lloyd iterations).
    n_features_in_ : int
    """

    name = "kmeans"
    needs_k = True
    _constraints = {**ClusterAdapter._constraints, "n_clusters": Int(1), "n_init": Int(1), "init_sample": Int(100),
                    "max_iter": Int(1), "tol": Real(0.0), "init": OneOf(INITS)}

    def __init__(self, n_clusters: int = 8, random_state: int = 0, n_init: int = 3, init_sample: int = 10_000,
                 max_iter: int = 10, tol: float = 1e-4, init: str = "k-means++"):
        self.n_clusters = n_clusters
        self.random_state = random_state
        self.n_init = n_init
        self.init_sample = init_sample
        self.max_iter = max_iter
        self.tol = tol
        self.init = init

    def describe_fit(self, n_samples: int, n_features: int | None = None) -> str:
        """See :meth:`ClusterAdapter.describe_fit`."""
        if self.init == "k-means||":
            return (f"k-means|| seeding over all {n_samples:,} rows (5 rounds, l = 2k, best of {self.n_init} weighted "
                    f"k-means++ starts on the candidates), then up to "
                    f"{max(self.max_iter, 100) if n_samples <= self.init_sample else self.max_iter} Lloyd iterations")
        if n_samples <= self.init_sample:
            return f"Lloyd on all {n_samples:,} rows, best of {self.n_init} k-means++ starts"
        return (f"k-means++ seeding, best of {self.n_init} starts on a {self.init_sample:,}-row sample, then up to "
                f"{self.max_iter} Lloyd iterations on all {n_samples:,} rows")

    def _fit(self, X, context) -> None:
        from sklearn.cluster import KMeans

        k = self._k(X, context)
        n = X.shape[0]
        if self.init == "k-means||":
            seeds = kmeans_parallel(local_blocks(X), lambda idx: X[idx], n, k, random_state=self.random_state,
                                    n_init=self.n_init)["centres"]
            km = KMeans(k, init=seeds.astype(X.dtype), n_init=1, random_state=self.random_state,
                        max_iter=max(self.max_iter, 100) if n <= self.init_sample else self.max_iter,
                        tol=self.tol).fit(X)
        elif n <= self.init_sample:
            km = KMeans(k, n_init=self.n_init, random_state=self.random_state,
                        max_iter=max(self.max_iter, 100), tol=self.tol).fit(X)
        else:
            idx = sample_rows(n, self.init_sample, self.random_state)
            seed = KMeans(k, n_init=self.n_init, random_state=self.random_state, max_iter=100,
                          tol=self.tol).fit(X[idx])
            km = KMeans(k, init=seed.cluster_centers_, n_init=1, random_state=self.random_state,
                        max_iter=self.max_iter, tol=self.tol).fit(X)
        self.sample_size_, self.extended_ = n, False
        self.inertia_ = float(km.inertia_)
        self.n_iter_ = int(km.n_iter_)
        self._finish(X, km.labels_, centers=km.cluster_centers_)


class MiniBatchKMeansAdapter(ClusterAdapter):
    """Mini-batch k-means (Sculley 2010) via scikit-learn ``MiniBatchKMeans``, all rows.

    Parameters
    ----------
    n_clusters : int, default 8
    random_state : int, default 0
    batch_size : int, default 4,096
        Rows per mini-batch (>= 16) (scikit-learn's advice for 2 cores is >= 256 x cores).
    n_init : int, default 3
        k-means++ restarts (>= 1).

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features), float32
    inertia_ : float
    n_iter_ : int
    labels_ : ndarray of shape (n_samples,), int64
    predictor_ : CentroidPredictor
    sample_size_ : int
    extended_ : bool
    n_features_in_ : int
    """

    name = "minibatch_kmeans"
    needs_k = True
    _constraints = {**ClusterAdapter._constraints, "n_clusters": Int(1), "batch_size": Int(16), "n_init": Int(1)}

    def __init__(self, n_clusters: int = 8, random_state: int = 0, batch_size: int = 4096, n_init: int = 3):
        self.n_clusters = n_clusters
        self.random_state = random_state
        self.batch_size = batch_size
        self.n_init = n_init

    def describe_fit(self, n_samples: int, n_features: int | None = None) -> str:
        """See :meth:`ClusterAdapter.describe_fit`."""
        return f"mini-batches of {self.batch_size:,} rows over all {n_samples:,} rows, best of {self.n_init} starts"

    def _fit(self, X, context) -> None:
        from sklearn.cluster import MiniBatchKMeans

        k = self._k(X, context)
        mb = MiniBatchKMeans(k, batch_size=self.batch_size, n_init=self.n_init,
                             random_state=self.random_state).fit(X)
        self.inertia_ = float(mb.inertia_)
        self.n_iter_ = int(mb.n_iter_)
        self.sample_size_, self.extended_ = X.shape[0], False
        self._finish(X, mb.labels_, centers=mb.cluster_centers_)


class GMMAdapter(ClusterAdapter):
    """Gaussian mixture with diagonal covariances (scikit-learn ``GaussianMixture``).

    Fitted (EM, k-means initialisation) on a fixed-seed sample of at most
    ``max_fit_rows`` rows and predicted (maximum posterior) on all rows.
    ``bic_`` is Schwarz's BIC on the fitting sample (lower is better; Schwarz 1978).

    Parameters
    ----------
    n_clusters : int, default 8
        Mixture components.
    random_state : int, default 0
    max_fit_rows : int, default 20,000
        Largest fitting sample (>= 100) (EM costs O(m k d) per iteration: at
        50,000 x 248 a fit took 3.4-6.7 s per k on 2 cores).
    reg_covar : float, default 1e-6
        Added to the diagonal variances (> 0).

    Attributes
    ----------
    model_ : sklearn.mixture.GaussianMixture
    cluster_centers_ : ndarray of shape (n_clusters, n_features), float32
        Component means.
    bic_ : float
    n_iter_ : int
    converged_ : bool
        Whether EM converged within scikit-learn's ``max_iter`` (its ``ConvergenceWarning`` is not
        printed: the fit is used either way, like scikit-learn's, and this records it).
    sample_size_ : int
    extended_ : bool
    labels_ : ndarray of shape (n_samples,), int64
    predictor_ : GaussianPredictor
    n_features_in_ : int
    """

    name = "gmm"
    needs_k = True
    _constraints = {**ClusterAdapter._constraints, "n_clusters": Int(1), "max_fit_rows": Int(100),
                    "reg_covar": Real(0.0)}

    def __init__(self, n_clusters: int = 8, random_state: int = 0, max_fit_rows: int = 20_000,
                 reg_covar: float = 1e-6):
        self.n_clusters = n_clusters
        self.random_state = random_state
        self.max_fit_rows = max_fit_rows
        self.reg_covar = reg_covar

    def describe_fit(self, n_samples: int, n_features: int | None = None) -> str:
        """See :meth:`ClusterAdapter.describe_fit`."""
        m = min(n_samples, self.max_fit_rows)
        if m == n_samples:
            return f"EM with diagonal covariances on all {n_samples:,} rows"
        return f"EM with diagonal covariances on a {m:,}-row sample; all {n_samples:,} rows labelled by maximum posterior"

    def _fit(self, X, context) -> None:
        from sklearn.mixture import GaussianMixture

        k = self._k(X, context)
        idx = sample_rows(X.shape[0], self.max_fit_rows, self.random_state)
        Xs = np.asarray(X[idx], dtype=np.float64)
        with warnings.catch_warnings():  # not converging is recorded in converged_ (scikit-learn's attribute)
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model_ = GaussianMixture(k, covariance_type="diag", reg_covar=self.reg_covar,
                                          random_state=self.random_state).fit(Xs)
        self.converged_ = bool(self.model_.converged_)
        self.bic_ = float(self.model_.bic(Xs))
        self.n_iter_ = int(self.model_.n_iter_)
        self.sample_size_, self.extended_ = idx.size, idx.size < X.shape[0]
        predictor = GaussianPredictor(self.model_)
        self._finish(X, predictor.predict(X), centers=self.model_.means_, predictor=predictor)


class BirchAdapter(ClusterAdapter):
    """BIRCH (Zhang et al. 1996) via scikit-learn ``Birch(n_clusters=k)``.

    The CF-tree ``threshold`` (a subcluster radius, in units of X) is chosen from the
    data scale: ``threshold_factor`` x the median nearest-neighbour distance in a
    2,000-row sample, so subclusters merge near-duplicates but not distinct images.
    Fitted on a fixed-seed sample of at most ``max_fit_rows`` rows; all rows are
    labelled by the nearest final cluster mean.

    Parameters
    ----------
    n_clusters : int, default 8
    random_state : int, default 0
    max_fit_rows : int, default 20,000
        Largest fitting sample (>= 100).
    threshold_factor : float, default 1.0
        Multiplier of the median nearest-neighbour distance (> 0) (0.5 gave ~30x more
        subclusters and a 30 s fit on 20,000 x 50 blobs; 1.0 took 1 s, same ARI).

    Attributes
    ----------
    threshold_ : float
    cluster_centers_ : ndarray of shape (k, n_features), float32
        Means of the final clusters (k <= n_clusters: empty ones dropped).
    n_iter_ : int
        Always 0 (single pass).
    sample_size_ : int
    extended_ : bool
    labels_ : ndarray of shape (n_samples,), int64
    predictor_ : CentroidPredictor
    n_features_in_ : int
    """

    name = "birch"
    needs_k = True
    _constraints = {**ClusterAdapter._constraints, "n_clusters": Int(1), "max_fit_rows": Int(100),
                    "threshold_factor": Real(0.0)}

    def __init__(self, n_clusters: int = 8, random_state: int = 0, max_fit_rows: int = 20_000,
                 threshold_factor: float = 1.0):
        self.n_clusters = n_clusters
        self.random_state = random_state
        self.max_fit_rows = max_fit_rows
        self.threshold_factor = threshold_factor

    def describe_fit(self, n_samples: int, n_features: int | None = None) -> str:
        """See :meth:`ClusterAdapter.describe_fit`."""
        m = min(n_samples, self.max_fit_rows)
        if m == n_samples:
            return f"CF-tree on all {n_samples:,} rows, rows labelled by the nearest final cluster mean"
        return f"CF-tree on a {m:,}-row sample; all {n_samples:,} rows labelled by the nearest cluster mean"

    def _fit(self, X, context) -> None:
        from sklearn.cluster import Birch
        from sklearn.neighbors import NearestNeighbors

        k = self._k(X, context)
        idx = sample_rows(X.shape[0], self.max_fit_rows, self.random_state)
        Xs = np.asarray(X[idx], dtype=np.float64)
        probe = Xs[sample_rows(Xs.shape[0], 2000, self.random_state + 1)]
        dist, _ = NearestNeighbors(n_neighbors=2).fit(probe).kneighbors(probe)
        nn = float(np.median(dist[:, 1]))
        if not (nn > 0):
            nn = float(np.median(dist[dist > 0])) if np.any(dist > 0) else 1.0
        self.threshold_ = float(self.threshold_factor) * nn
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = Birch(threshold=self.threshold_, n_clusters=k).fit(Xs)
        lab_s = model.labels_.astype(np.int64)
        centers = cluster_means(Xs, lab_s, int(lab_s.max()) + 1)
        centers = centers[np.all(np.isfinite(centers), axis=1)]
        self.n_iter_ = 0
        self.sample_size_, self.extended_ = idx.size, idx.size < X.shape[0]
        predictor = CentroidPredictor(centers)
        self._finish(X, predictor.predict(X), centers=centers, predictor=predictor)


class WardAdapter(ClusterAdapter):
    """Ward agglomerative clustering on a sample, extended by nearest centroid.

    Ward's minimum-variance linkage (Ward 1963) via ``scipy.cluster.hierarchy.linkage``
    (the routine scikit-learn's ``AgglomerativeClustering(linkage="ward")`` calls
    without connectivity), fitted on a fixed-seed sample of at most ``max_fit_rows``
    rows; the tree is cut at ``n_clusters`` clusters (``fcluster(..., "maxclust")``)
    and every other row gets the nearest cluster mean. The tree depends on the sample,
    not on k, so a sweep that passes a :class:`~descluster.cluster.context.SweepContext`
    builds it once.

    New rows (``predict``): the nearest cluster mean when the tree was built on a
    sample (as the fit labelled the other rows); when it holds every row, the label
    of the nearest fitted row (a Ward cluster is not a Voronoi cell of its mean).

    Memory: the condensed distance matrix needs ``8 * m * (m - 1) / 2`` bytes for m
    sample rows, about 2x that at peak; checked against ``memory_budget`` first.

    Parameters
    ----------
    n_clusters : int, default 8
    random_state : int, default 0
    max_fit_rows : int, default 20,000
        Largest sample (>= 10) (about 3.2 GB peak).
    memory_budget : int, default 6 GiB
        Bytes allowed.

    Attributes
    ----------
    linkage_ : ndarray of shape (m - 1, 4), float64
        scipy linkage matrix of the sample.
    cluster_centers_ : ndarray of shape (n_clusters, n_features), float32
    n_iter_ : int
        Always 0.
    sample_size_ : int
    extended_ : bool
    labels_ : ndarray of shape (n_samples,), int64
    predictor_ : CentroidPredictor (sampled fit) or NeighbourPredictor (every row in the tree)
    n_features_in_ : int

    Raises
    ------
    MemoryBudgetError
        At fit time, when the estimate exceeds ``memory_budget``.
    """

    name = "ward"
    needs_k = True
    _constraints = {**ClusterAdapter._constraints, "n_clusters": Int(1), "max_fit_rows": Int(10),
                    "memory_budget": Int(1)}

    def __init__(self, n_clusters: int = 8, random_state: int = 0, max_fit_rows: int = 20_000,
                 memory_budget: int = 6 * 2**30):
        self.n_clusters = n_clusters
        self.random_state = random_state
        self.max_fit_rows = max_fit_rows
        self.memory_budget = memory_budget

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

    def _fit(self, X, context) -> None:
        from scipy.cluster.hierarchy import fcluster, linkage

        k = self._k(X, context)
        idx = sample_rows(X.shape[0], self.max_fit_rows, self.random_state)
        need = self.memory_estimate(idx.size)
        if need > self.memory_budget:
            raise MemoryBudgetError(
                f"ward on {idx.size:,} rows needs about {need / 2**30:.1f} GiB "
                f"(> memory_budget {self.memory_budget / 2**30:.1f} GiB); lower max_fit_rows"
            )
        self.linkage_ = context.get(("ward_linkage", self.max_fit_rows, self.random_state),
                                    lambda: linkage(np.asarray(X[idx], dtype=np.float64), method="ward"))
        lab_s = fcluster(self.linkage_, t=k, criterion="maxclust").astype(np.int64) - 1
        centers = cluster_means(X[idx], lab_s, int(lab_s.max()) + 1)
        self.n_iter_ = 0
        self.sample_size_, self.extended_ = idx.size, idx.size < X.shape[0]
        if self.extended_:
            predictor = CentroidPredictor(centers)
            labels = predictor.predict(X)
        else:  # idx == arange(n): the tree's own labels; new rows take their nearest fitted row's
            predictor = NeighbourPredictor(X, lab_s)
            labels = lab_s
        self._finish(X, labels, centers=centers, predictor=predictor)


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
    random_state : int, default 0
    min_cluster_size : int or None, default None
        >= 2; None for the default above.
    min_samples : int or None, default None
        Core-distance neighbours (>= 1); None = ``min_cluster_size`` (library default).
    max_fit_rows : int, default 20,000
        Largest fitting sample (>= 100).
    max_dims : int, default 20
        Largest number of columns HDBSCAN sees (>= 2); wider inputs are
        projected by PCA fitted on the sample.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,), int64
    model_ : hdbscan.HDBSCAN
    projection_ : sklearn.decomposition.PCA or None
        The PCA applied before HDBSCAN (None when ``X`` had <= ``max_dims`` columns).
    fit_rows_ : ndarray of shape (m, min(p, max_dims)), float64
        The (projected) rows HDBSCAN was fitted on.
    core_distances_ : ndarray of shape (m,), float64
        Core distance of each fitted row (the radius within which a new row takes its label).
    noise_share_ : float
        Share of rows labelled ``-1``.
    outlier_scores_ : ndarray of shape (n_samples,), float64 or None
        GLOSH scores (higher = more outlying); None when fitted on a sample.
    cluster_centers_ : ndarray of shape (k, n_features), float32 or None
        Means of the non-noise clusters (None when no cluster).
    predictor_ : NeighbourPredictor
    min_cluster_size_ : int
    n_iter_ : int
        Always 0.
    sample_size_ : int
    extended_ : bool
    n_features_in_ : int
    """

    name = "hdbscan"
    needs_k = False
    _constraints = {**ClusterAdapter._constraints, "min_cluster_size": Optional(Int(2)),
                    "min_samples": Optional(Int(1)), "max_fit_rows": Int(100), "max_dims": Int(2)}

    def __init__(self, random_state: int = 0, min_cluster_size: int | None = None,
                 min_samples: int | None = None, max_fit_rows: int = 20_000, max_dims: int = 20):
        self.random_state = random_state
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.max_fit_rows = max_fit_rows
        self.max_dims = max_dims

    def describe_fit(self, n_samples: int, n_features: int | None = None) -> str:
        """See :meth:`ClusterAdapter.describe_fit`; ``n_features`` says whether the PCA projection applies."""
        m = min(n_samples, self.max_fit_rows)
        proj = (f", on its {self.max_dims} leading principal components"
                if n_features is None or n_features > self.max_dims else "")
        if m == n_samples:
            return f"on all {n_samples:,} rows{proj}"
        return (f"on a {m:,}-row sample{proj}; the other rows take the label of the nearest sampled row "
                f"within its core distance, else noise")

    def _fit(self, X, context) -> None:
        import hdbscan
        from sklearn.neighbors import NearestNeighbors

        idx = sample_rows(X.shape[0], self.max_fit_rows, self.random_state)
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
        self.fit_rows_ = Xs
        self.model_ = hdbscan.HDBSCAN(min_cluster_size=self.min_cluster_size_,
                                      min_samples=self.min_samples,
                                      core_dist_n_jobs=2).fit(Xs)
        fit_labels = np.asarray(self.model_.labels_, dtype=np.int64)
        kn = min(self.model_.min_samples or self.min_cluster_size_, Xs.shape[0])
        self.core_distances_ = NearestNeighbors(n_neighbors=kn).fit(Xs).kneighbors(Xs)[0][:, -1]
        predictor = NeighbourPredictor(Xs, fit_labels, self.core_distances_, self.projection_)
        if self.extended_:
            labels = predictor.predict(X)
            labels[idx] = fit_labels
            self.outlier_scores_ = None
        else:
            labels = fit_labels
            self.outlier_scores_ = np.asarray(self.model_.outlier_scores_, dtype=np.float64)
        labels = np.asarray(labels, dtype=np.int64)
        self.noise_share_ = float(np.mean(labels < 0))
        self.n_iter_ = 0
        k_found = int(labels.max()) + 1 if labels.max() >= 0 else 0
        centers = cluster_means(X, labels, k_found) if k_found else None
        self._finish(X, labels, centers=centers, predictor=predictor)


#: name -> adapter class (an unfitted estimator; ``n_clusters`` set per k by the sweep).
ALGORITHMS: dict[str, type[ClusterAdapter]] = {
    cls.name: cls
    for cls in (KMeansAdapter, MiniBatchKMeansAdapter, GMMAdapter, BirchAdapter, WardAdapter, HDBSCANAdapter)
}


def make_algorithm(name: str, **params) -> ClusterAdapter:
    """Build the adapter registered as ``name`` with ``params`` (checked when it is fitted).

    Raises
    ------
    ParameterError
        If ``name`` is not in ``ALGORITHMS`` (lists the valid names), or a parameter
        name is not one of the adapter's.
    """
    check_choice("algorithm", name, lambda: sorted(ALGORITHMS))
    try:
        return ALGORITHMS[name](**params)
    except TypeError as exc:
        raise ParameterError(f"algorithm {name!r}: {exc}") from exc
