"""Outlier detectors on one reduced descriptor space.

All detectors share one :class:`NeighbourGraph`: a kNN pass (exact, or faiss
IVF-Flat with measured recall above 50,000 rows; see ``neighbours.py``) that
first groups (near-)duplicate rows and collapses each group to one
representative, then searches the representatives again. Scores are computed
on representatives and copied to every member of a group, so a block of
identical images is not flagged because of its own copies.

Detectors (registry :data:`DETECTORS`):

``knn``     distance to the k-th nearest neighbour (Ramaswamy, Rastogi & Shim 2000,
            "Efficient algorithms for mining outliers from large data sets", SIGMOD).
``lof``     local outlier factor from the same faiss kNN graph (Breunig, Kriegel, Ng
            & Sander 2000, "LOF: identifying density-based local outliers", SIGMOD);
            equal to scikit-learn's ``LocalOutlierFactor`` when there are no ties.
``iforest`` scikit-learn ``IsolationForest`` (Liu, Ting & Zhou 2008) fitted on a
            sample, scored on all rows.
``dbscan``  DBSCAN noise (Ester et al. 1996) with eps at the knee of the sorted
            k-distance curve; a memory estimate comes first.

Every detector is a scikit-learn style estimator: ``fit(X, graph=None)`` sets
``scores_`` (n,) float64 (larger = more outlying), ``flags_`` (n,) bool,
``threshold_`` (float) and ``threshold_description_`` (str); ``fit_predict``
returns ``flags_``; ``result()`` packs them into a :class:`DetectorResult`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..curves import kneedle
from ..errors import MemoryBudgetError, ParameterError
from ..rows import sample_rows
from ..validation import check_float as _check_float, check_int as _check_int
from .duplicates import Collapse, descriptor_duplicate_groups
from .neighbours import _finish, check_matrix, exact_search, knn_search, make_index
from .thresholds import RobustZ


# --------------------------------------------------------------------------- graph
class NeighbourGraph:
    """Duplicate-collapsed kNN graph of a reduced space (exact, or faiss IVF above 50,000 rows).

    Parameters
    ----------
    n_neighbors : int, default 20
        Neighbours kept per representative (the largest k any detector uses).
    duplicate_tol : float, default 0.01
        Rows closer than ``duplicate_tol × median k-distance`` are duplicates
        (0 keeps only exact duplicates). Must be in [0, 1).
    chunk_size : int, default 2048
        Queries per faiss search call.
    progress : bool, default True
        Show tqdm progress bars.
    index : str or NeighbourIndex, default "auto"
        Neighbour-search strategy (:data:`~.neighbours.INDEXES`): ``"auto"`` is
        exact up to 50,000 rows and faiss IVF-Flat with measured recall above.
    random_state : int, default 0
        Seed of an approximate index (sampling, k-means).
    max_dims : int or None, default None
        Use only the first ``max_dims`` columns of ``X`` (None: all). The reduced spaces
        are PCA scores sorted by explained variance, so these are the leading principal
        components; the outlier stage sets it above 50,000 rows, where a full-width
        search of 416,314 x 248 took 136 s per descriptor kind and 32 columns 31 s
        (faiss IVF, nprobe 16, recall@20 0.90 in both).

    Attributes
    ----------
    n_features_used_ : int
        Columns the graph was built on.
    index_ : NeighbourIndex
        The fitted index of the final (representatives') search; ``index_.recall_``
        is its measured recall (None when exact).
    search_description_ : str
        Which index ran, with its recall, in words (carried into the outlier report).
    radius_ : float
        Duplicate radius used, in the space's distance units.
    duplicate_group_ : ndarray of shape (n_samples,), int64
        Duplicate group per row (``-1`` = unique).
    collapse_ : Collapse
        Representatives (m,) and the row -> representative map (n,).
    distances_ : ndarray of shape (m, k), float32
        Euclidean distances from each representative to its k nearest other
        representatives, ascending; ``k = min(n_neighbors, m - 1)``.
    indices_ : ndarray of shape (m, k), int64
        Their positions among the representatives.
    X_rep_ : ndarray of shape (m, n_features), float32
        The representative rows.

    Raises
    ------
    ParameterError
        Bad parameters, or fewer than 3 distinct rows.
    """

    def __init__(self, n_neighbors: int = 20, duplicate_tol: float = 0.01, chunk_size: int = 2048, progress: bool = True,
                 index="auto", random_state: int = 0, max_dims: int | None = None):
        self.max_dims = max_dims
        self.n_neighbors = n_neighbors
        self.duplicate_tol = duplicate_tol
        self.chunk_size = chunk_size
        self.progress = progress
        self.index = index
        self.random_state = random_state

    def fit(self, X, y=None) -> "NeighbourGraph":
        """Find duplicates and the kNN graph of the representatives of ``X`` (n, p) float32.

        One search of ``n_neighbors + extra`` neighbours serves both steps: each
        representative's list is the first pass mapped to representatives (own group
        and repeats dropped, distances recomputed); only representatives left with
        fewer than ``n_neighbors`` are searched again, exactly.
        """
        _check_int("n_neighbors", self.n_neighbors, 1)
        _check_float("duplicate_tol", self.duplicate_tol, 0.0, 0.999, low_open=False)
        _check_int("chunk_size", self.chunk_size, 1)
        if self.max_dims is not None:
            _check_int("max_dims", self.max_dims, 1)
        X = check_matrix(X)
        width = X.shape[1]
        if self.max_dims is not None and width > self.max_dims:
            X = np.ascontiguousarray(X[:, : self.max_dims])
        self.n_features_used_ = X.shape[1]
        n = X.shape[0]
        if n < 3:
            raise ParameterError(f"X has {n} rows; outlier detection needs at least 3")
        k = min(self.n_neighbors, n - 1)
        k_first = min(k + _EXTRA_NEIGHBOURS, n - 1)
        self.index_ = make_index(self.index, random_state=self.random_state)
        D, I = knn_search(X, k_first, chunk_size=self.chunk_size, progress=self.progress, desc="kNN",
                          index=self.index_)
        self.search_description_ = f"neighbour search: {self.index_.description_}"
        if self.n_features_used_ < width:
            self.search_description_ += f", on the leading {self.n_features_used_} of {width} principal components"
        self.radius_ = float(self.duplicate_tol * np.median(D[:, k - 1]))
        self.duplicate_group_ = descriptor_duplicate_groups(D, I, self.radius_)
        self.collapse_ = Collapse.from_groups(self.duplicate_group_)
        reps = self.collapse_.representatives
        m = reps.size
        if m < 3:
            raise ParameterError(f"X has only {m} distinct rows (after merging duplicates); need at least 3")
        if m == n:
            self.X_rep_, self.distances_, self.indices_ = X, D[:, :k], I[:, :k]
            return self
        self.X_rep_ = np.ascontiguousarray(X[reps])
        k = min(self.n_neighbors, m - 1)
        self.distances_, self.indices_, n_short = _representative_lists(
            self.X_rep_, I[reps], self.collapse_.member_to_rep, k)
        self.search_description_ += (
            f"; {n - m:,} duplicate rows merged into {m:,} representatives, whose neighbour lists come from the "
            f"same search ({n_short:,} short lists searched again exactly)")
        return self


#: Extra neighbours fetched by the first search so that representatives keep k after duplicates are merged.
_EXTRA_NEIGHBOURS = 5


def _representative_lists(X_rep: np.ndarray, first: np.ndarray, member_to_rep: np.ndarray, k: int):
    """kNN lists among representatives from a first search over all rows.

    ``first`` (m, k') holds each representative's neighbours as row numbers; they are
    mapped to representative positions, the representative itself and repeats are
    dropped (order kept), distances recomputed in float64 and sorted. Representatives
    left with fewer than ``k`` entries are searched again exactly.

    Returns
    -------
    distances : ndarray of shape (m, k), float32
    indices : ndarray of shape (m, k), int64
    n_short : int
        Representatives searched again.
    """
    m = X_rep.shape[0]
    mapped = np.where(first >= 0, member_to_rep[np.maximum(first, 0)], -1)
    own = np.arange(m)[:, None]
    mapped[mapped == own] = -1
    # drop repeats within a row, keeping the first occurrence
    order = np.argsort(mapped, axis=1, kind="stable")
    srt = np.take_along_axis(mapped, order, axis=1)
    rep = np.zeros_like(srt, dtype=bool)
    rep[:, 1:] = srt[:, 1:] == srt[:, :-1]
    dup = np.zeros_like(rep)
    np.put_along_axis(dup, order, rep, axis=1)
    mapped[dup] = -1
    valid = mapped >= 0
    counts = valid.sum(axis=1)
    short = counts < k
    # left-align the valid entries (stable), take the first k
    pos = np.argsort(~valid, axis=1, kind="stable")
    idx = np.take_along_axis(mapped, pos, axis=1)[:, :k]
    if idx.shape[1] < k:
        idx = np.hstack([idx, np.full((m, k - idx.shape[1]), -1, dtype=idx.dtype)])
    idx[short] = 0  # replaced below
    D = np.empty((m, k), dtype=np.float32)
    I = np.empty((m, k), dtype=np.int64)
    ok = np.flatnonzero(~short)
    for s in range(0, ok.size, 8192):
        rows = ok[s:s + 8192]
        D[rows], I[rows] = _finish(X_rep[rows], X_rep, idx[rows], None, k)
    bad = np.flatnonzero(short)
    if bad.size:
        Q = np.ascontiguousarray(X_rep[bad])
        cand = exact_search(Q, X_rep, k + 1)[1]
        D[bad], I[bad] = _finish(Q, X_rep, cand, bad, k)
    return D, I, int(bad.size)


# --------------------------------------------------------------------------- results
@dataclass
class DetectorResult:
    """What one detector said about one descriptor space.

    Attributes
    ----------
    detector : str
        Registry name, e.g. ``"lof"``.
    scores : ndarray of shape (n,), float64
        Larger = more outlying.
    flags : ndarray of shape (n,), bool
    threshold : float
        Cut in score units.
    description : str
        The threshold rule in words, with numbers.
    """

    detector: str
    scores: np.ndarray
    flags: np.ndarray
    threshold: float
    description: str


class _GraphDetector:
    """Base: score representatives from a :class:`NeighbourGraph`, then expand."""

    name = "base"
    label = "base"

    def _validate(self) -> None:  # pragma: no cover - overridden
        pass

    def _score(self, graph: NeighbourGraph) -> np.ndarray:  # (m,)
        raise NotImplementedError

    def _graph(self, X, graph: NeighbourGraph | None, k: int) -> NeighbourGraph:
        if graph is None:
            graph = NeighbourGraph(n_neighbors=k, progress=getattr(self, "progress", False)).fit(X)
        elif graph.distances_.shape[1] < min(k, graph.X_rep_.shape[0] - 1):
            raise ParameterError(
                f"the neighbour graph holds {graph.distances_.shape[1]} neighbours but {self.name} needs k={k}"
            )
        return graph

    def _decide(self, scores: np.ndarray, default=None) -> None:
        rule = self.threshold if self.threshold is not None else (default or RobustZ())
        decision = rule.decide(scores)
        self.scores_ = scores
        self.flags_ = decision.flags
        self.threshold_ = decision.threshold
        self.threshold_description_ = f"{self.label}: {decision.description}"

    def fit_predict(self, X, y=None, graph: NeighbourGraph | None = None) -> np.ndarray:
        """Fit and return ``flags_``: ndarray of shape (n,), bool, True = outlier."""
        return self.fit(X, graph=graph).flags_

    def result(self) -> DetectorResult:
        """The fitted scores, flags and threshold as a :class:`DetectorResult`."""
        return DetectorResult(self.name, self.scores_, self.flags_, self.threshold_, self.threshold_description_)


class KNNDistanceDetector(_GraphDetector):
    """Distance to the k-th nearest (distinct) neighbour.

    Ramaswamy, Rastogi & Shim (2000), SIGMOD. Neighbours from the shared
    :class:`NeighbourGraph` (exact, or faiss IVF with measured recall).

    Parameters
    ----------
    n_neighbors : int, default 10
    threshold : RobustZ or TopShare, default RobustZ(3.5, log=True)
    progress : bool, default False

    Attributes
    ----------
    scores_ : ndarray of shape (n_samples,), float64
        k-distance of each row's representative, in the space's units.
    flags_ : ndarray of shape (n_samples,), bool
    threshold_ : float
    threshold_description_ : str
    """

    name = "knn"
    label = "k-distance"

    def __init__(self, n_neighbors: int = 10, threshold=None, progress: bool = False):
        self.n_neighbors = n_neighbors
        self.threshold = threshold
        self.progress = progress

    def fit(self, X, y=None, graph: NeighbourGraph | None = None) -> "KNNDistanceDetector":
        """Score ``X`` (n, p) float32; ``graph`` reuses a fitted :class:`NeighbourGraph` of ``X``."""
        _check_int("n_neighbors", self.n_neighbors, 1)
        graph = self._graph(X, graph, self.n_neighbors)
        k = min(self.n_neighbors, graph.distances_.shape[1])
        self.label = f"k-distance (k={k})"
        self._decide(graph.collapse_.expand(graph.distances_[:, k - 1].astype(np.float64)))
        return self


def lof_from_knn(distances: np.ndarray, indices: np.ndarray, k: int) -> np.ndarray:
    """Local outlier factor of every row from its kNN lists.

    Breunig et al. (2000): ``reach-dist_k(p, o) = max(k-distance(o), d(p, o))``;
    ``lrd(p) = 1 / mean_o reach-dist_k(p, o)``; ``LOF(p) = mean_o lrd(o) / lrd(p)``,
    with o over the k nearest neighbours of p. As in scikit-learn, 1e-10 is added
    to the mean reachability distance.

    Parameters
    ----------
    distances : ndarray of shape (n, >= k), float
        Ascending neighbour distances (self excluded).
    indices : ndarray of shape (n, >= k), int
    k : int

    Returns
    -------
    ndarray of shape (n,), float64
        LOF (about 1 for inliers, larger for outliers).
    """
    d = distances[:, :k].astype(np.float64)
    idx = indices[:, :k]
    k_dist = d[:, k - 1]
    reach = np.maximum(d, k_dist[idx])
    lrd = 1.0 / (reach.mean(axis=1) + 1e-10)
    return (lrd[idx].mean(axis=1)) / lrd


class LocalOutlierFactorDetector(_GraphDetector):
    """Local outlier factor from the faiss kNN graph (Breunig et al. 2000).

    Same formula as scikit-learn's ``LocalOutlierFactor`` (see
    :func:`lof_from_knn`), but from the shared exact faiss graph, which scales to
    400k rows where sklearn's tree search is slow.

    Parameters
    ----------
    n_neighbors : int, default 20
    threshold : RobustZ or TopShare, default RobustZ(3.5, log=True)
    progress : bool, default False

    Attributes
    ----------
    scores_ : ndarray of shape (n_samples,), float64
        LOF of each row's representative (dimensionless, ~1 for inliers).
    flags_ : ndarray of shape (n_samples,), bool
    threshold_ : float
    threshold_description_ : str
    """

    name = "lof"
    label = "LOF"

    def __init__(self, n_neighbors: int = 20, threshold=None, progress: bool = False):
        self.n_neighbors = n_neighbors
        self.threshold = threshold
        self.progress = progress

    def fit(self, X, y=None, graph: NeighbourGraph | None = None) -> "LocalOutlierFactorDetector":
        """Score ``X`` (n, p) float32; ``graph`` reuses a fitted :class:`NeighbourGraph` of ``X``."""
        _check_int("n_neighbors", self.n_neighbors, 1)
        graph = self._graph(X, graph, self.n_neighbors)
        k = min(self.n_neighbors, graph.distances_.shape[1])
        self.label = f"LOF (k={k})"
        lof = lof_from_knn(graph.distances_, graph.indices_, k)
        self._decide(graph.collapse_.expand(lof))
        return self


class IsolationForestDetector(_GraphDetector):
    """scikit-learn ``IsolationForest`` fitted on a sample of representatives.

    Liu, Ting & Zhou (2008), "Isolation forest", ICDM. The score is the paper's
    anomaly score ``s = 2^(-E[h(x)] / c(psi))`` (= ``-score_samples``), in (0, 1).

    Parameters
    ----------
    n_estimators : int, default 200
    max_samples : int, default 256
        Sub-sample per tree (psi in the paper).
    sample_size : int, default 50_000
        Rows the forest is fitted on (a random sample of representatives).
    threshold : default RobustZ(3.5, log=False)
    random_state : int, default 0
    progress : bool, default False

    Attributes
    ----------
    scores_ : ndarray of shape (n_samples,), float64
    flags_ : ndarray of shape (n_samples,), bool
    threshold_ : float
    threshold_description_ : str
    estimator_ : sklearn.ensemble.IsolationForest
    """

    name = "iforest"
    label = "isolation forest"

    def __init__(self, n_estimators=200, max_samples=256, sample_size=50_000, threshold=None, random_state=0, progress=False):
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.sample_size = sample_size
        self.threshold = threshold
        self.random_state = random_state
        self.progress = progress

    def fit(self, X, y=None, graph: NeighbourGraph | None = None) -> "IsolationForestDetector":
        """Fit on a sample of the representatives of ``X`` (n, p) float32 and score all rows."""
        from sklearn.ensemble import IsolationForest

        _check_int("n_estimators", self.n_estimators, 1)
        _check_int("max_samples", self.max_samples, 2)
        _check_int("sample_size", self.sample_size, 2)
        graph = self._graph(X, graph, 1)
        Xr = graph.X_rep_
        rng = np.random.default_rng(self.random_state)
        fit_rows = Xr if Xr.shape[0] <= self.sample_size else Xr[rng.choice(Xr.shape[0], self.sample_size, replace=False)]
        self.estimator_ = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=min(self.max_samples, fit_rows.shape[0]),
            random_state=self.random_state,
            n_jobs=1,
        ).fit(fit_rows)
        scores = np.concatenate(
            [-self.estimator_.score_samples(Xr[s : s + 50_000]) for s in range(0, Xr.shape[0], 50_000)]
        )
        self._decide(graph.collapse_.expand(scores.astype(np.float64)), default=RobustZ(3.5, log=False))
        return self


def _average_path_length(n: np.ndarray) -> np.ndarray:
    """``c(n)``, the mean path length of an unsuccessful search in a binary search tree of ``n`` keys.

    Liu, Ting & Zhou (2008), eq. 1: ``c(n) = 2 H(n - 1) - 2 (n - 1) / n`` with
    ``H(i) ~ ln(i) + Euler's constant``; ``c(1) = 0`` and ``c(2) = 1`` as in scikit-learn's
    ``sklearn.ensemble._iforest._average_path_length``.

    Parameters
    ----------
    n : ndarray of int, any shape

    Returns
    -------
    ndarray of float64, the shape of ``n``
    """
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


def forest_arrays(estimator) -> dict[str, np.ndarray]:
    """The trees of a fitted scikit-learn ``IsolationForest`` as plain arrays (saved without pickle).

    Parameters
    ----------
    estimator : sklearn.ensemble.IsolationForest
        Fitted.

    Returns
    -------
    dict of str -> ndarray
        ``left``, ``right`` (int64, child node of every node of every tree, global numbering, -1 at
        leaves), ``feature`` (int64, input column tested, -1 at leaves), ``threshold`` (float64),
        ``n_samples`` (int64, training rows reaching the node), ``roots`` (int64, (n_trees,), first
        node of each tree) and ``max_samples`` (int64, shape (1,), psi of the paper).
        :func:`forest_scores` scores rows with them exactly as ``-estimator.score_samples``.
    """
    left, right, feature, threshold, n_samples, roots = [], [], [], [], [], []
    offset = 0
    for tree, cols in zip(estimator.estimators_, estimator.estimators_features_):
        t = tree.tree_
        leaf = t.children_left < 0
        roots.append(offset)
        left.append(np.where(leaf, -1, t.children_left + offset))
        right.append(np.where(leaf, -1, t.children_right + offset))
        feature.append(np.where(leaf, -1, np.asarray(cols)[np.maximum(t.feature, 0)]))
        threshold.append(t.threshold)
        n_samples.append(t.n_node_samples)
        offset += t.node_count
    cat = np.concatenate
    return {"left": cat(left).astype(np.int64), "right": cat(right).astype(np.int64),
            "feature": cat(feature).astype(np.int64), "threshold": cat(threshold).astype(np.float64),
            "n_samples": cat(n_samples).astype(np.int64), "roots": np.asarray(roots, dtype=np.int64),
            "max_samples": np.asarray([estimator.max_samples_], dtype=np.int64)}


def forest_scores(arrays: dict[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    """Anomaly scores ``s = 2^(-E[h(x)] / c(psi))`` of rows under a forest saved by :func:`forest_arrays`.

    Liu, Ting & Zhou (2008): ``h(x)`` is the depth of the leaf ``x`` reaches plus ``c`` of the training
    rows in that leaf; the mean runs over the trees. Equal to scikit-learn's ``-score_samples`` of the
    forest the arrays came from (rows cast to float32 and compared with ``<=`` as its trees do).

    Parameters
    ----------
    arrays : dict of str -> ndarray
        From :func:`forest_arrays` (or read back from a model file).
    X : ndarray of shape (n, p)
        Rows in the columns the forest was fitted on.

    Returns
    -------
    ndarray of shape (n,), float64, in (0, 1); larger = easier to isolate.

    Raises
    ------
    ParameterError
        If ``X`` has fewer columns than the forest tests.
    """
    X = np.asarray(X, dtype=np.float32)
    left, right, feature = arrays["left"], arrays["right"], arrays["feature"]
    threshold, n_samples = arrays["threshold"], arrays["n_samples"]
    if X.ndim != 2 or (feature.size and X.shape[1] <= int(feature.max())):
        raise ParameterError(f"X of shape {X.shape} lacks the columns the forest tests (up to {int(feature.max())})")
    n = X.shape[0]
    depths = np.zeros(n, dtype=np.float64)
    rows = np.arange(n)
    for root in arrays["roots"]:
        node = np.full(n, int(root), dtype=np.int64)
        depth = np.zeros(n, dtype=np.float64)
        live = rows[left[node] >= 0]
        while live.size:
            nd = node[live]
            go_left = X[live, feature[nd]] <= threshold[nd]
            node[live] = np.where(go_left, left[nd], right[nd])
            depth[live] += 1.0
            live = live[left[node[live]] >= 0]
        depths += depth + _average_path_length(n_samples[node])
    denominator = len(arrays["roots"]) * float(_average_path_length(arrays["max_samples"])[0])
    if denominator == 0:
        return np.ones(n, dtype=np.float64)
    return 2.0 ** (-depths / denominator)


def knee_of_curve(values: np.ndarray) -> float:
    """Value at the knee of the ascending curve of ``values``.

    The knee is the point farthest below the chord from the first to the last
    point after scaling both axes to [0, 1] (the "Kneedle" idea of Satopää et al.
    2011, "Finding a 'kneedle' in a haystack", ICDCS workshops), as used to pick
    DBSCAN's eps from the sorted k-distance plot (Ester et al. 1996).

    Parameters
    ----------
    values : ndarray of shape (n,), float

    Returns
    -------
    float
    """
    y = np.sort(np.asarray(values, dtype=np.float64))
    if y.size < 3 or y[-1] == y[0]:
        return float(y[-1])
    return float(y[kneedle(np.linspace(0.0, 1.0, y.size), y, increasing=True)])


def dbscan_memory_estimate(X: np.ndarray, eps: float, n_queries: int = 500, n_reference: int = 20_000, random_state=0) -> int:
    """Estimated bytes of scikit-learn DBSCAN's eps-neighbourhood lists for ``X``.

    sklearn's DBSCAN stores every row's eps-neighbours as an int64 array; the
    total is ``n × mean neighbour count × 8`` bytes plus ~100 bytes per row. The
    mean count is estimated from ``n_queries`` sampled rows against
    ``n_reference`` sampled rows (scaled by n / n_reference), so nothing of size
    n × n is ever allocated.

    Parameters
    ----------
    X : ndarray of shape (n, p), float32
    eps : float
    n_queries, n_reference : int
        Sample sizes.
    random_state : int

    Returns
    -------
    int
        Estimated bytes.
    """
    n = X.shape[0]
    rng = np.random.default_rng(random_state)
    q = X[rng.choice(n, min(n, n_queries), replace=False)].astype(np.float64)
    r = X[rng.choice(n, min(n, n_reference), replace=False)].astype(np.float64)
    r2 = (r * r).sum(1)
    count = 0
    for s in range(0, q.shape[0], 100):
        qq = q[s : s + 100]
        d2 = (qq * qq).sum(1)[:, None] + r2[None, :] - 2 * qq @ r.T
        count += int((d2 <= eps * eps).sum())
    mean_count = count / q.shape[0] * (n / r.shape[0])
    return int(n * mean_count * 8 + n * 100)


class DBSCANNoiseDetector(_GraphDetector):
    """DBSCAN noise points (Ester, Kriegel, Sander & Xu 1996, KDD), via scikit-learn.

    eps is the knee of the sorted (min_samples - 1)-distance curve of the
    representatives unless given. Before fitting, the memory of sklearn's
    eps-neighbourhoods is estimated (:func:`dbscan_memory_estimate`); above
    ``memory_budget`` the detector refuses with :class:`MemoryBudgetError`,
    unless ``sample_size`` is set: then DBSCAN runs on that many sampled
    representatives, and every row's score is its distance to the nearest core
    sample divided by eps (exactly DBSCAN's noise rule for sampled rows).

    Parameters
    ----------
    min_samples : int, default 10
    eps : float or None, default None (knee)
    memory_budget : int, default 4 GiB
        Bytes allowed for the neighbourhood lists.
    sample_size : int or None, default None
        Rows DBSCAN is fitted on; None = all representatives.
    random_state : int, default 0
    progress : bool, default False

    Attributes
    ----------
    eps_ : float
    memory_estimate_ : int
        Estimated bytes of the neighbourhood lists for the fitted rows.
    scores_ : ndarray of shape (n_samples,), float64
        Distance to the nearest core point / eps; > 1 means noise.
    flags_ : ndarray of shape (n_samples,), bool
        DBSCAN noise.
    threshold_ : float
        Always 1.0.
    threshold_description_ : str

    Raises
    ------
    MemoryBudgetError
        If the estimate exceeds ``memory_budget`` and ``sample_size`` is None.
    """

    name = "dbscan"
    label = "DBSCAN noise"

    def __init__(self, min_samples=10, eps=None, memory_budget=4 * 1024**3, sample_size=None, random_state=0, progress=False):
        self.min_samples = min_samples
        self.eps = eps
        self.memory_budget = memory_budget
        self.sample_size = sample_size
        self.random_state = random_state
        self.progress = progress

    def fit(self, X, y=None, graph: NeighbourGraph | None = None) -> "DBSCANNoiseDetector":
        """Fit DBSCAN on (a sample of) the representatives of ``X`` (n, p) float32; score all rows."""
        from sklearn.cluster import DBSCAN

        _check_int("min_samples", self.min_samples, 2)
        _check_int("memory_budget", self.memory_budget, 1)
        if self.sample_size is not None:
            _check_int("sample_size", self.sample_size, self.min_samples)
        if self.eps is not None:
            _check_float("eps", self.eps, 0.0, np.inf)
        graph = self._graph(X, graph, self.min_samples - 1)
        Xr = graph.X_rep_
        m = Xr.shape[0]
        kcol = min(self.min_samples - 1, graph.distances_.shape[1]) - 1
        self.eps_ = float(self.eps) if self.eps is not None else knee_of_curve(graph.distances_[:, kcol])
        rows = np.arange(m) if self.sample_size is None else sample_rows(m, self.sample_size, self.random_state)
        fit_rows = Xr[rows]
        self.memory_estimate_ = dbscan_memory_estimate(fit_rows, self.eps_, random_state=self.random_state)
        if self.memory_estimate_ > self.memory_budget:
            ns = max(self.min_samples, int(rows.size * self.memory_budget / self.memory_estimate_ * 0.8))
            raise MemoryBudgetError(
                f"DBSCAN on {rows.size:,} rows with eps={self.eps_:.4g} needs about "
                f"{self.memory_estimate_ / 1024**3:.1f} GiB for its eps-neighbourhoods, over the budget of "
                f"{self.memory_budget / 1024**3:.1f} GiB; use the sample-based route "
                f"(DBSCANNoiseDetector(sample_size={ns:,})), a smaller eps, or a larger memory_budget"
            )
        model = DBSCAN(eps=self.eps_, min_samples=self.min_samples, n_jobs=1).fit(fit_rows)
        core = fit_rows[model.core_sample_indices_]
        if core.shape[0] == 0:
            dist = np.full(m, np.inf)
        else:
            dist = knn_search(core, 1, queries=Xr, progress=self.progress, desc="DBSCAN core distance")[0][:, 0]
        scores = graph.collapse_.expand(dist.astype(np.float64) / self.eps_) if self.eps_ > 0 else graph.collapse_.expand(dist)
        self.scores_ = scores
        self.flags_ = scores > 1.0
        self.threshold_ = 1.0
        self.threshold_description_ = (
            f"DBSCAN noise (min_samples={self.min_samples}, eps={self.eps_:.4g} "
            f"{'given' if self.eps is not None else 'at the knee of the k-distance curve'}): farther than eps from "
            f"every core point; {int(self.flags_.sum()):,} of {scores.size:,} flagged"
        )
        return self


DETECTORS: dict[str, type] = {
    "knn": KNNDistanceDetector,
    "lof": LocalOutlierFactorDetector,
    "iforest": IsolationForestDetector,
    "dbscan": DBSCANNoiseDetector,
}
"""Registry: detector name -> class (all take ``fit(X, graph=...)``)."""
