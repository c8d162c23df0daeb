"""Internal clustering quality: Calinski-Harabasz, Davies-Bouldin, inertia, silhouette.

Every metric returns a :class:`MetricValue`: a float plus, when the value is
undefined, ``NaN`` and a short ``reason``. Degenerate labelings never produce a
fake perfect score (Davies-Bouldin 0, silhouette 1) and never raise:

* ``"all points are noise"``: every label is ``-1``;
* ``"single cluster"``: fewer than two clusters after removing noise;
* ``"every point its own cluster"``: as many clusters as (non-noise) points;
* ``"fewer distinct points (m) than clusters (k)"``;
* ``"empty cluster"``: only where a caller passes centroids for labels that have no row;
* ``"coincident centroids"``: two cluster means are equal (DB would divide by 0);
* ``"zero within-cluster spread"``: every cluster is a set of identical points (up to
  round-off: largest mean distance to a centroid <= 1e-10 x the largest |centroid| entry).

Noise (label ``-1``, as HDBSCAN writes it) is **excluded** from every internal
metric: the score describes the clustered rows only; the noise share is
reported separately by the sweep.

The streaming functions read ``X`` in row chunks (``chunk_rows``), so a float32
``numpy.memmap`` of 416,314 x 250 is scored without a full extra copy: per-cluster
sums, counts and dispersions are accumulated in float64.

References
----------
Calinski, T. & Harabasz, J. (1974). A dendrite method for cluster analysis.
    Communications in Statistics 3(1), 1-27.
Davies, D. L. & Bouldin, D. W. (1979). A cluster separation measure.
    IEEE TPAMI 1(2), 224-227.
Rousseeuw, P. J. (1987). Silhouettes. J. Comput. Appl. Math. 20, 53-65.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError
from ..rows import label_means, row_chunks, sample_rows
from ..validation import check_int

__all__ = ["MetricValue", "ClusterStats", "cluster_stats", "count_distinct_rows", "calinski_harabasz",
           "davies_bouldin", "inertia", "internal_scores", "silhouette", "SilhouetteSample"]


@dataclass(frozen=True)
class MetricValue:
    """One metric value, or NaN with the reason it is undefined.

    Attributes
    ----------
    value : float
        The score; ``nan`` when undefined.
    reason : str or None
        Why ``value`` is NaN (``None`` when it is defined).
    sampled : bool
        True when computed on a sample of the rows (silhouette on large inputs).
    sample_size : int or None
        Rows actually used when ``sampled`` (else the number of non-noise rows).
    """

    value: float
    reason: str | None = None
    sampled: bool = False
    sample_size: int | None = None

    @classmethod
    def undefined(cls, reason: str, **kw) -> "MetricValue":
        """NaN with ``reason``."""
        return cls(float("nan"), reason, **kw)

    @property
    def ok(self) -> bool:
        """True when the value is finite."""
        return math.isfinite(self.value)

    def __float__(self) -> float:
        return float(self.value)


def _check_X_labels(X, labels) -> tuple[np.ndarray, np.ndarray]:
    X = X if isinstance(X, np.ndarray) else np.asarray(X)
    if X.ndim != 2:
        raise ParameterError(f"X must be 2-D (n_samples, n_features); got shape {X.shape}")
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != X.shape[0]:
        raise ParameterError(
            f"labels must have shape ({X.shape[0]},) to match X; got {labels.shape}"
        )
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        if not np.all(np.equal(np.mod(labels, 1), 0)):
            raise ParameterError("labels must be integers (cluster ids, -1 for noise)")
    return X, labels.astype(np.int64, copy=False)


def count_distinct_rows(X: np.ndarray, at_least: int | None = None, chunk_rows: int | None = None) -> int:
    """Number of distinct rows of ``X`` (exact), streaming where possible.

    A random float64 projection gives a lower bound (rows with different
    projections differ); when ``at_least`` is given and the bound already
    reaches it, the bound is returned without the exact count. Otherwise the
    exact count uses ``numpy.unique(axis=0)``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float
    at_least : int, optional
        Stop early once this many distinct rows are certain.
    chunk_rows : int, optional
        Rows per chunk for the projection pass.

    Returns
    -------
    int
        Exact count, or a lower bound ``>= at_least`` when stopping early.
    """
    n, d = X.shape
    if n == 0:
        return 0
    rng = np.random.default_rng(12345)
    dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
    r = rng.standard_normal(d).astype(dtype)
    proj = np.empty(n, dtype=dtype)
    # Any deterministic function of a row separates distinct rows only; native dtype is enough.
    for sl in row_chunks(n, chunk_rows, d):
        with np.errstate(over="ignore", invalid="ignore"):
            proj[sl] = np.asarray(X[sl], dtype=dtype) @ r
    if np.all(np.isfinite(proj)):
        lower = np.unique(proj).size
        if at_least is not None and lower >= at_least:
            return int(lower)
        if lower == n:
            return n
    return int(np.unique(np.ascontiguousarray(X), axis=0).shape[0])


@dataclass
class ClusterStats:
    """Per-cluster sufficient statistics from two chunked passes over X.

    Attributes
    ----------
    ids : ndarray of shape (k,), int64
        Cluster labels present (noise ``-1`` excluded), sorted.
    counts : ndarray of shape (k,), int64
        Rows per cluster.
    centroids : ndarray of shape (k, n_features), float64
        Cluster means.
    ssw : ndarray of shape (k,), float64
        Per-cluster sum of squared Euclidean distances to the centroid.
    mean_dist : ndarray of shape (k,), float64
        Per-cluster mean Euclidean (not squared) distance to the centroid.
    n : int
        Non-noise rows.
    n_noise : int
        Rows labelled ``-1``.
    global_mean : ndarray of shape (n_features,), float64
        Mean of the non-noise rows.
    degenerate : str or None
        Reason every internal metric is undefined for this labeling, if any.
    """

    ids: np.ndarray
    counts: np.ndarray
    centroids: np.ndarray
    ssw: np.ndarray
    mean_dist: np.ndarray
    n: int
    n_noise: int
    global_mean: np.ndarray
    degenerate: str | None


def cluster_stats(X: np.ndarray, labels: np.ndarray, chunk_rows: int | None = None,
                  check_distinct: bool = True) -> ClusterStats:
    """Accumulate per-cluster counts, centroids and dispersions in two O(n*d) passes.

    Pass 1 averages rows per cluster (:func:`descluster.rows.label_means`);
    pass 2 accumulates squared and plain Euclidean distances to the centroids.
    Only one chunk of ``X`` is converted to float64 at a time.

    Parameters
    ----------
    X : ndarray or memmap of shape (n_samples, n_features), float32 or float64
    labels : ndarray of shape (n_samples,), int
        Cluster ids; ``-1`` is noise and is excluded.
    chunk_rows : int, optional
        Rows per chunk (default: about 32 MiB of float64).
    check_distinct : bool
        Also check that there are at least as many distinct rows as clusters.

    Returns
    -------
    ClusterStats

    Raises
    ------
    ParameterError
        If shapes disagree or labels are not integers.
    """
    X, labels = _check_X_labels(X, labels)
    n_all, d = X.shape
    valid = labels >= 0
    n_noise = int(n_all - valid.sum())
    ids, codes_valid = np.unique(labels[valid], return_inverse=True)
    k = ids.size
    n = int(valid.sum())
    codes = np.full(n_all, -1, dtype=np.int64)
    codes[valid] = codes_valid
    empty = ClusterStats(ids, np.zeros(k, np.int64), np.zeros((k, d)), np.zeros(k), np.zeros(k),
                         n, n_noise, np.zeros(d), None)
    if n == 0:
        empty.degenerate = "all points are noise"
        return empty
    if k >= n:
        empty.degenerate = "every point its own cluster"
        return empty
    counts = np.bincount(codes_valid, minlength=k).astype(np.int64)
    def valid_chunks():
        for sl in row_chunks(n_all, chunk_rows, d):
            c = codes[sl]
            chunk = np.array(X[sl], dtype=np.float64)  # a copy: modified in place below
            if n_noise:
                m = c >= 0
                c, chunk = c[m], chunk[m]
            if c.size:
                yield c, chunk

    centroids = label_means(X, codes, k, chunk_rows)
    ssw = np.zeros(k)
    dist = np.zeros(k)
    for c, chunk in valid_chunks():
        chunk -= centroids[c]
        sq = np.einsum("ij,ij->i", chunk, chunk)
        ssw += np.bincount(c, weights=sq, minlength=k)
        dist += np.bincount(c, weights=np.sqrt(sq), minlength=k)
    global_mean = (counts @ centroids) / n
    stats = ClusterStats(ids, counts, centroids, ssw, dist / counts, n, n_noise, global_mean, None)
    if k < 2:
        stats.degenerate = "single cluster"
    elif check_distinct:
        Xv = X if n_noise == 0 else X[valid]
        m = count_distinct_rows(Xv, at_least=k, chunk_rows=chunk_rows)
        if m < k:
            stats.degenerate = f"fewer distinct points ({m}) than clusters ({k})"
    return stats


def _coincident(centroids: np.ndarray) -> bool:
    """True when two centroids are equal up to float64 round-off of their scale."""
    from scipy.spatial.distance import pdist

    scale = float(np.max(np.abs(centroids))) if centroids.size else 0.0
    dd = pdist(centroids)
    return bool(np.any(dd <= 1e-12 * max(scale, 1e-300)))


def _zero_spread(s: ClusterStats) -> bool:
    """True when every within-cluster distance is at round-off level of the data scale (1e-10)."""
    spread = float(np.max(s.mean_dist)) if s.mean_dist.size else 0.0
    scale = max(float(np.max(np.abs(s.centroids))) if s.centroids.size else 0.0, spread)
    return spread <= 1e-10 * scale


def _stats_or(X, labels, stats):
    return stats if stats is not None else cluster_stats(X, labels)


def calinski_harabasz(X: np.ndarray, labels: np.ndarray, stats: ClusterStats | None = None) -> MetricValue:
    """Calinski-Harabasz variance-ratio criterion (higher is better).

    ``CH = [B / (k - 1)] / [W / (n - k)]`` with ``B = sum_k n_k ||c_k - c||^2`` and
    ``W = sum_k sum_{i in k} ||x_i - c_k||^2`` (Calinski & Harabasz 1974); equals
    ``sklearn.metrics.calinski_harabasz_score`` on ordinary input. Noise excluded.

    Parameters
    ----------
    X : ndarray or memmap of shape (n_samples, n_features), float32 or float64
    labels : ndarray of shape (n_samples,), int
    stats : ClusterStats, optional
        Reuse statistics already computed for the same ``X`` and ``labels``.

    Returns
    -------
    MetricValue
        NaN with a reason on degenerate input or zero within-cluster spread.
    """
    s = _stats_or(X, labels, stats)
    if s.degenerate:
        return MetricValue.undefined(s.degenerate)
    k = s.ids.size
    W = float(s.ssw.sum())
    B = float(np.sum(s.counts * np.sum((s.centroids - s.global_mean) ** 2, axis=1)))
    if not (W > 0) or _zero_spread(s):
        return MetricValue.undefined("zero within-cluster spread")
    if not (B > 0):
        return MetricValue.undefined("coincident centroids")
    val = (B / (k - 1)) / (W / (s.n - k))
    return MetricValue(val) if math.isfinite(val) else MetricValue.undefined("overflow")


def davies_bouldin(X: np.ndarray, labels: np.ndarray, stats: ClusterStats | None = None) -> MetricValue:
    """Davies-Bouldin index (lower is better).

    ``DB = (1/k) sum_i max_{j != i} (s_i + s_j) / ||c_i - c_j||`` where ``s_i`` is the
    mean Euclidean distance of cluster ``i``'s rows to its centroid (Davies &
    Bouldin 1979); equals ``sklearn.metrics.davies_bouldin_score`` on ordinary
    input. Unlike scikit-learn it returns NaN ("coincident centroids") instead of
    0 or ~1e16 when two centroids coincide, and NaN ("zero within-cluster spread")
    instead of a perfect 0 when every cluster is a set of identical points.

    Parameters
    ----------
    X : ndarray or memmap of shape (n_samples, n_features), float32 or float64
    labels : ndarray of shape (n_samples,), int
    stats : ClusterStats, optional

    Returns
    -------
    MetricValue
    """
    from scipy.spatial.distance import pdist, squareform

    s = _stats_or(X, labels, stats)
    if s.degenerate:
        return MetricValue.undefined(s.degenerate)
    if _coincident(s.centroids):
        return MetricValue.undefined("coincident centroids")
    if _zero_spread(s):
        return MetricValue.undefined("zero within-cluster spread")
    cd = squareform(pdist(s.centroids))
    np.fill_diagonal(cd, np.inf)
    r = (s.mean_dist[:, None] + s.mean_dist[None, :]) / cd
    val = float(np.mean(np.max(r, axis=1)))
    return MetricValue(val) if math.isfinite(val) else MetricValue.undefined("overflow")


def inertia(X: np.ndarray, labels: np.ndarray, centroids: np.ndarray | None = None,
            chunk_rows: int | None = None, stats: ClusterStats | None = None) -> MetricValue:
    """Within-cluster sum of squared Euclidean distances (k-means objective).

    Parameters
    ----------
    X : ndarray or memmap of shape (n_samples, n_features), float32 or float64
    labels : ndarray of shape (n_samples,), int
        Row ``i`` belongs to ``centroids[labels[i]]`` (or to its cluster mean when
        ``centroids`` is None). Noise rows (``-1``) are excluded.
    centroids : ndarray of shape (k, n_features), optional
        Centres indexed by label; default: the cluster means.
    chunk_rows : int, optional
    stats : ClusterStats, optional
        Reuse (only when ``centroids`` is None).

    Returns
    -------
    MetricValue
        In squared units of ``X``; NaN with reason on degenerate input, or
        ``"empty cluster"`` when ``centroids`` has rows that no label uses.
    """
    X, labels = _check_X_labels(X, labels)
    if centroids is None:
        s = _stats_or(X, labels, stats)
        if s.n == 0:
            return MetricValue.undefined("all points are noise")
        if s.degenerate == "every point its own cluster":
            return MetricValue(0.0)
        val = float(s.ssw.sum())
        return MetricValue(val) if math.isfinite(val) else MetricValue.undefined("overflow")
    centroids = np.asarray(centroids, dtype=np.float64)
    valid = labels >= 0
    if valid.any() and labels.max() >= centroids.shape[0]:
        raise ParameterError(
            f"labels go up to {labels.max()} but centroids has {centroids.shape[0]} rows"
        )
    total = 0.0
    for sl in row_chunks(X.shape[0], chunk_rows, X.shape[1]):
        c = labels[sl]
        m = c >= 0
        diff = np.asarray(X[sl], dtype=np.float64)[m] - centroids[c[m]]
        total += float(np.einsum("ij,ij->", diff, diff))
    used = np.unique(labels[valid]).size
    if used < centroids.shape[0]:
        return MetricValue(total, "empty cluster")
    return MetricValue(total)


def internal_scores(X: np.ndarray, labels: np.ndarray, chunk_rows: int | None = None) -> dict[str, MetricValue]:
    """CH, DB and inertia from one shared pair of chunked passes.

    Parameters
    ----------
    X : ndarray or memmap of shape (n_samples, n_features)
    labels : ndarray of shape (n_samples,), int

    Returns
    -------
    dict
        ``{"calinski_harabasz", "davies_bouldin", "inertia"}`` -> MetricValue.
    """
    s = cluster_stats(X, labels, chunk_rows=chunk_rows)
    return {
        "calinski_harabasz": calinski_harabasz(X, labels, stats=s),
        "davies_bouldin": davies_bouldin(X, labels, stats=s),
        "inertia": inertia(X, labels, stats=s),
    }


class SilhouetteSample:
    """Pairwise distances of a fixed row sample, computed once and reused for every labelling.

    A k sweep scores 29 labellings of the same rows; the O(m^2 * d) distance matrix
    of the sample does not depend on the labels, so it is computed once here and each
    :meth:`score` costs only an O(m^2 * k) product. The sample is uniform and
    fixed-seed (the same rows for every k, so silhouettes across k compare like with
    like); when ``n <= sample_size`` it is every row and the result is exact.

    Parameters
    ----------
    X : ndarray or memmap of shape (n_samples, n_features), float32 or float64
    sample_size : int
        Largest number of rows kept (>= 10), default 10,000.
    random_state : int
        Seed of the sample.

    Attributes
    ----------
    rows_ : ndarray of shape (m,), int64
        Sorted row indices of the sample, ``m = min(n_samples, sample_size)``.
    distances_ : ndarray of shape (m, m), float32 (float32 input) or float64
        Euclidean distances between sample rows (after a common rescaling: silhouette
        is scale-invariant), zero diagonal. Memory: ``m^2 x 4`` bytes, 400 MB at 10,000
        float32 rows.
    sampled_ : bool
        True when ``m < n_samples``.
    n_samples_ : int

    Raises
    ------
    ParameterError
        If ``sample_size < 10`` or ``X`` is not 2-D.
    """

    def __init__(self, X: np.ndarray, sample_size: int = 10_000, random_state: int = 0, chunk_rows: int = 2048):
        sample_size = check_int("sample_size", sample_size, 10)
        if np.ndim(X) != 2:
            raise ParameterError(f"X must be 2-D (n_samples, n_features); got shape {np.shape(X)}")
        n = X.shape[0]
        self.n_samples_ = n
        self.sampled_ = n > sample_size
        self.rows_ = sample_rows(n, int(sample_size), random_state)
        dtype = np.float32 if X.dtype == np.float32 else np.float64
        Xs = np.asarray(X[self.rows_], dtype=np.float64)
        Xs = Xs - Xs.mean(axis=0)  # centring keeps ||x||^2 + ||y||^2 - 2x.y well conditioned
        scale = float(np.max(np.abs(Xs))) if Xs.size else 0.0
        if scale > 0 and math.isfinite(scale):
            Xs /= scale  # avoids overflow of squared distances
        Xs = Xs.astype(dtype, copy=False)
        sqn = np.einsum("ij,ij->i", Xs, Xs)
        m = Xs.shape[0]
        D = np.empty((m, m), dtype=dtype)
        for sl in row_chunks(m, chunk_rows):
            block = sqn[sl, None] + sqn[None, :] - 2 * (Xs[sl] @ Xs.T)
            np.maximum(block, 0, out=block)
            np.sqrt(block, out=block)
            D[sl] = block
        np.fill_diagonal(D, 0.0)
        self.distances_ = D

    def score(self, labels: np.ndarray) -> MetricValue:
        """Mean silhouette of the sample rows under ``labels`` (n_samples,) int; noise (-1) dropped.

        Equal to ``sklearn.metrics.silhouette_score`` on the sampled non-noise rows
        (|difference| < 1e-5 for float32 input). Singleton clusters get 0 (Rousseeuw 1987).

        Returns
        -------
        MetricValue
            ``sampled`` and ``sample_size`` (non-noise rows used) set; NaN with reason
            ``"sample too small for silhouette"`` when the sample holds < 2 clusters or
            only singletons, ``"overflow"`` when not finite.

        Raises
        ------
        ParameterError
            If ``labels`` does not have ``n_samples`` entries.
        """
        labels = np.asarray(labels)
        if labels.shape != (self.n_samples_,):
            raise ParameterError(f"labels has shape {labels.shape}; expected ({self.n_samples_},)")
        lab = labels[self.rows_]
        keep = lab >= 0
        D = self.distances_ if keep.all() else self.distances_[np.ix_(keep, keep)]
        lab = lab[keep]
        m = int(lab.size)
        _, codes, counts = np.unique(lab, return_inverse=True, return_counts=True)
        if counts.size < 2 or counts.size >= m:
            return MetricValue.undefined("sample too small for silhouette", sampled=self.sampled_, sample_size=m)
        onehot = np.zeros((m, counts.size), dtype=D.dtype)
        onehot[np.arange(m), codes] = 1.0
        sums = (D @ onehot).astype(np.float64)  # (m, k) summed distances to each cluster
        rows = np.arange(m)
        denom_a = counts[codes] - 1
        a = sums[rows, codes] / np.maximum(denom_a, 1)
        means = sums / counts
        means[rows, codes] = np.inf
        b = means.min(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            si = (b - a) / np.maximum(a, b)
        si[denom_a == 0] = 0.0
        val = float(np.nan_to_num(si, nan=0.0).mean())
        if not math.isfinite(val):
            return MetricValue.undefined("overflow", sampled=self.sampled_, sample_size=m)
        return MetricValue(val, sampled=self.sampled_, sample_size=m)


def silhouette(X: np.ndarray, labels: np.ndarray, sample_size: int = 10_000,
               random_state: int = 0, stats: ClusterStats | None = None,
               sample: SilhouetteSample | None = None) -> MetricValue:
    """Mean silhouette coefficient (Rousseeuw 1987), exact or on a fixed uniform sample.

    Exact (``sklearn.metrics.silhouette_score``) when there are at most
    ``sample_size`` rows; otherwise on a fixed-seed uniform sample of
    ``sample_size`` rows (``sampled=True``, ``sample_size`` = non-noise rows used).
    Noise (-1) is excluded. Cost: O(m^2 * d) for the m sampled rows, paid once when
    a :class:`SilhouetteSample` is passed in and reused (as a k sweep does).

    Parameters
    ----------
    X : ndarray or memmap of shape (n_samples, n_features)
    labels : ndarray of shape (n_samples,), int
    sample_size : int
        Largest exact computation (>= 10).
    random_state : int
    stats : ClusterStats, optional
        Reuse its degeneracy check.
    sample : SilhouetteSample, optional
        Precomputed sample distances of this ``X`` (``sample_size``/``random_state`` then unused).

    Returns
    -------
    MetricValue
        In [-1, 1]; NaN with reason on degenerate input, including
        ``"zero within-cluster spread"`` (where it would be a fake perfect 1).

    Raises
    ------
    ParameterError
        If ``sample_size < 10`` or ``sample`` was built on a different number of rows.
    """
    check_int("sample_size", sample_size, 10)
    X, labels = _check_X_labels(X, labels)
    s = _stats_or(X, labels, stats)
    if s.degenerate:
        return MetricValue.undefined(s.degenerate)
    if _zero_spread(s):
        return MetricValue.undefined("zero within-cluster spread")
    if sample is None:
        sample = SilhouetteSample(X, sample_size=sample_size, random_state=random_state)
    elif sample.n_samples_ != X.shape[0]:
        raise ParameterError(f"sample was built on {sample.n_samples_} rows but X has {X.shape[0]}")
    return sample.score(labels)
