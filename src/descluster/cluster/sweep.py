"""Fit one algorithm over a range of k and score every fit: the per-k table.

A failure at one k (invalid k, too few distinct rows, a solver error, a memory
refusal) is caught and recorded as a row of NaNs with its ``reason``; the sweep
continues. k-free algorithms (HDBSCAN) give a single row with the k they found.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from sklearn.base import clone
from threadpoolctl import threadpool_limits

from ..errors import ParameterError
from ..metrics.internal import (MetricValue, SilhouetteSample, calinski_harabasz, cluster_stats, davies_bouldin,
                                inertia, silhouette)
from ..metrics.stability import SplitHalves
from ..validation import check_int
from .algorithms import _SMALL, ClusterAdapter, make_algorithm
from .context import SweepContext

__all__ = ["SweepResult", "sweep", "TABLE_COLUMNS"]

#: Columns of ``SweepResult.table`` in order.
TABLE_COLUMNS = [
    "k", "n_clusters", "calinski_harabasz", "davies_bouldin", "silhouette", "silhouette_sampled",
    "silhouette_sample_size", "inertia", "bic", "stability", "min_cluster_size",
    "max_cluster_size", "size_cv", "noise_share", "n_clustered", "fit_seconds", "reason",
]


@dataclass
class SweepResult:
    """Per-k scores and labels of one algorithm on one space.

    Attributes
    ----------
    algorithm : str
        Registry name of the algorithm.
    table : DataFrame
        One row per k tried, columns ``TABLE_COLUMNS``: ``k`` (requested; for
        HDBSCAN the clusters found), ``n_clusters`` (non-empty clusters actually
        found), ``calinski_harabasz`` (higher better), ``davies_bouldin`` (lower
        better), ``silhouette`` (higher better) with ``silhouette_sampled`` and
        ``silhouette_sample_size``, ``inertia`` (squared units of X),
        ``bic`` (GMM only, lower better), ``stability`` (split-half ARI),
        ``min_cluster_size``/``max_cluster_size`` (rows), ``size_cv`` (std/mean
        of cluster sizes), ``noise_share``, ``n_clustered`` (non-noise rows),
        ``fit_seconds`` (wall time of the fit on all rows), ``reason`` (why
        values are NaN, ``"; "``-joined, empty when none).
    labels : ndarray of shape (n_k, n_samples), int32
        Labels for each row of ``table`` (``-1`` everywhere for a failed k), or an
        empty (0, n_samples) array when ``keep_labels=False``.
    centroids : dict of int -> ndarray of shape (k, n_features), float32
        Cluster centres per k where the algorithm defines them.
    predictors : dict of int -> Predictor
        How each k's fit labels rows (the adapter's ``predictor_``), for saving a model.
    total_inertia : float
        Inertia of the one-cluster partition (total sum of squares about the mean): the
        k = 1 anchor of the inertia curve for the knee (``selection.choose_k``).
    """

    algorithm: str
    table: pd.DataFrame
    labels: np.ndarray
    centroids: dict[int, np.ndarray] = field(default_factory=dict)
    predictors: dict[int, object] = field(default_factory=dict)
    total_inertia: float = float("nan")

    def labels_for(self, k: int) -> np.ndarray:
        """Labels (n_samples,) int64 of the row whose ``k`` equals ``k``.

        Raises
        ------
        KeyError
            If ``k`` was not swept or labels were not kept.
        """
        rows = np.flatnonzero(self.table["k"].to_numpy() == k)
        if rows.size == 0 or self.labels.shape[0] == 0:
            raise KeyError(f"k = {k} not in this sweep (or labels not kept)")
        return self.labels[rows[0]].astype(np.int64)


def _size_facts(labels: np.ndarray) -> dict:
    valid = labels[labels >= 0]
    sizes = np.bincount(valid) if valid.size else np.zeros(0, np.int64)
    return size_facts(sizes, int(labels.size - valid.size))


def size_facts(sizes: np.ndarray, n_noise: int = 0) -> dict:
    """Cluster-size columns of the sweep table from the rows per cluster (zeros ignored) and the noise rows.

    Returns
    -------
    dict
        ``n_clusters``, ``min_cluster_size``, ``max_cluster_size``, ``size_cv`` (std/mean of the sizes),
        ``noise_share``, ``n_clustered``.
    """
    sizes = np.asarray(sizes)
    sizes = sizes[sizes > 0]
    total = int(sizes.sum()) + int(n_noise)
    noise_share = float(n_noise / total) if total else float("nan")
    if sizes.size == 0:
        return dict(n_clusters=0, min_cluster_size=0, max_cluster_size=0, size_cv=float("nan"),
                    noise_share=noise_share, n_clustered=0)
    return dict(
        n_clusters=int(sizes.size),
        min_cluster_size=int(sizes.min()),
        max_cluster_size=int(sizes.max()),
        size_cv=float(sizes.std() / sizes.mean()),
        noise_share=noise_share,
        n_clustered=int(sizes.sum()),
    )


def _failed_row(k: int, reason: str, seconds: float) -> dict:
    row = {c: float("nan") for c in TABLE_COLUMNS}
    row.update(k=k, n_clusters=0, silhouette_sampled=False, silhouette_sample_size=0,
               min_cluster_size=0, max_cluster_size=0, n_clustered=0, fit_seconds=seconds,
               reason=reason)
    return row


def _score(X, labels, adapter, stability, sil_sample) -> dict:
    stats = cluster_stats(X, labels)
    vals = {
        "calinski_harabasz": calinski_harabasz(X, labels, stats=stats),
        "davies_bouldin": davies_bouldin(X, labels, stats=stats),
        "inertia": inertia(X, labels, stats=stats),
        "silhouette": silhouette(X, labels, stats=stats, sample=sil_sample),
    }
    if stability is not None:
        try:
            vals["stability"] = stability()
        except Exception as exc:  # a fit on a half can fail where the full fit did not
            vals["stability"] = MetricValue.undefined(f"{type(exc).__name__}: {exc}")
    else:
        vals["stability"] = MetricValue.undefined("not computed")
    row = {name: v.value for name, v in vals.items()}
    row["silhouette_sampled"] = vals["silhouette"].sampled
    row["silhouette_sample_size"] = int(vals["silhouette"].sample_size or 0)
    bic = getattr(adapter, "bic_", None)
    row["bic"] = float(bic) if bic is not None else float("nan")
    reasons = [f"{name}: {v.reason}" for name, v in vals.items()
               if v.reason and not (name == "stability" and v.reason == "not computed")]
    row["reason"] = "; ".join(dict.fromkeys(reasons))
    row.update(_size_facts(labels))
    return row


def sweep(
    X: np.ndarray,
    algorithm: str | ClusterAdapter,
    ks: Iterable[int] = range(2, 31),
    random_state: int = 0,
    stability_rows: int | None = 5_000,
    silhouette_sample: int = 10_000,
    progress: Callable[[int, int, int], None] | None = None,
    on_labels: Callable[[int, np.ndarray, ClusterAdapter], None] | None = None,
    keep_labels: bool = True,
) -> SweepResult:
    """Fit ``algorithm`` for every k in ``ks`` on ``X`` and score each fit.

    Scores: Calinski-Harabasz, Davies-Bouldin, inertia (streaming, exact, all rows),
    silhouette (exact up to ``silhouette_sample`` rows, else on one fixed uniform
    sample whose distance matrix is computed once for the whole sweep,
    :class:`~descluster.metrics.internal.SilhouetteSample`), split-half stability (two
    fits on disjoint ``stability_rows``-row halves drawn once for the sweep, ARI of their
    nearest-centroid extensions; Lange et al. 2004,
    :class:`~descluster.metrics.stability.SplitHalves`) and cluster sizes. Every fit on
    ``X`` shares one :class:`~descluster.cluster.context.SweepContext`, and every fit on
    each half another, so work that does not depend on k (the distinct-row bound,
    Ward's tree) is done once per matrix.

    Parameters
    ----------
    X : ndarray or memmap of shape (n_samples, n_features), float32 or float64
        The reduced space.
    algorithm : str or ClusterAdapter
        A name in ``ALGORITHMS`` (built with ``random_state``) or a configured adapter
        (its ``n_clusters`` is set per k on clones; the adapter itself is not fitted).
    ks : iterable of int
        k values to try (ignored for k-free algorithms), default 2..30.
    random_state : int
        Seed for the adapter (when built here), the silhouette and stability samples.
    stability_rows : int or None
        Rows per half for the stability fits (>= 10); None or 0 skips stability.
        Default 5,000: cheap at any n, since stability is a property of the partition
        of the distribution, estimated from subsamples.
    silhouette_sample : int
        Largest exact silhouette (>= 10).
    progress : callable, optional
        ``progress(done, total, k)`` after each k.
    on_labels : callable, optional
        ``on_labels(k, labels (n,) int64, adapter)`` after each successful fit (for caching).
    keep_labels : bool
        Keep all labels in ``SweepResult.labels`` (n_k x n int32; 48 MB for 29 x 416k).

    Returns
    -------
    SweepResult

    Raises
    ------
    ParameterError
        For an unknown algorithm name, bad ``stability_rows``/``silhouette_sample``,
        an empty ``ks`` or ``X`` not 2-D. Per-k failures are recorded, not raised.
    """
    base = make_algorithm(algorithm, random_state=random_state) if isinstance(algorithm, str) else algorithm
    if not isinstance(base, ClusterAdapter):
        raise ParameterError(f"algorithm must be a name or a ClusterAdapter; got {type(algorithm).__name__}")
    X = X if isinstance(X, np.ndarray) else np.asarray(X)
    if X.ndim != 2:
        raise ParameterError(f"X must be 2-D (n_samples, n_features); got shape {X.shape}")
    if stability_rows:
        check_int("stability_rows", stability_rows, 10)
    check_int("silhouette_sample", silhouette_sample, 10)
    ks = [None] if not base.needs_k else [int(k) for k in ks]
    if not ks:
        raise ParameterError("ks is empty: give at least one k >= 2")
    n = X.shape[0]
    rows, all_labels, centroids, predictors = [], [], {}, {}
    sil_sample = None  # built at the first successful fit (it costs O(m^2 d) once)
    context = SweepContext(X)
    halves = parts = half_contexts = None
    if stability_rows:
        halves = SplitHalves(n, stability_rows, max(stability_rows, 10), random_state)
        if halves.enough:
            parts = halves.take(X)
            half_contexts = (SweepContext(parts[0]), SweepContext(parts[1]))

    def estimator(k):
        est = clone(base)
        return est.set_params(n_clusters=k) if k is not None else est

    for i, k in enumerate(ks):
        t0 = time.perf_counter()
        try:
            est = estimator(k).fit(X, context=context)
            labels = est.labels_
        except Exception as exc:  # recorded; the sweep goes on
            rows.append(_failed_row(k if k is not None else 0, f"fit: {type(exc).__name__}: {exc}",
                                    time.perf_counter() - t0))
            if keep_labels:
                all_labels.append(np.full(n, -1, np.int32))
            if progress:
                progress(i + 1, len(ks), k)
            continue
        seconds = time.perf_counter() - t0
        k_row = k if k is not None else int(len(np.unique(labels[labels >= 0])))

        def stability(_k=k):
            if parts is None:
                return halves.score((X, X, X), None)
            return halves.score(parts, lambda h, Xh: estimator(_k).fit_predict(Xh, context=half_contexts[h]))

        with threadpool_limits(limits=1 if X.shape[0] * X.shape[1] < _SMALL else None):
            if sil_sample is None:
                sil_sample = SilhouetteSample(X, sample_size=silhouette_sample, random_state=random_state)
            row = _score(X, labels, est, stability if halves is not None else None, sil_sample)
        row.update(k=k_row, fit_seconds=seconds)
        rows.append(row)
        if getattr(est, "cluster_centers_", None) is not None:
            centroids[k_row] = est.cluster_centers_
        predictors[k_row] = est.predictor_
        if keep_labels:
            all_labels.append(labels.astype(np.int32))
        if on_labels:
            on_labels(k_row, labels, est)
        if progress:
            progress(i + 1, len(ks), k)
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    table["reason"] = table["reason"].fillna("").astype(str)
    labels_arr = np.stack(all_labels) if keep_labels else np.zeros((0, n), np.int32)
    total = inertia(X, np.zeros(n, dtype=np.int64)).value
    return SweepResult(algorithm=base.name, table=table, labels=labels_arr, centroids=centroids,
                       predictors=predictors, total_inertia=float(total))
