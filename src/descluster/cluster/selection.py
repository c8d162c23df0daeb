"""The documented rule that chooses k from a sweep table (labels are never used).

Why not argmax/argmin of one index: Calinski-Harabasz, Davies-Bouldin and the
silhouette favour the coarsest split on data without strongly separated groups
(Milligan & Cooper 1985 found them among the better indices, but all biased to
small k when clusters overlap). Measured on the demo CNN descriptors (standard
scaling, PCA 100, k-means) all three peak at k = 2, where NMI against vehicle type
is 0.32, while every k in 3..15 gives 0.49-0.57.

The rule ("knee, then consensus"):

1. **Valid k**: rows whose CH, DB and silhouette are finite and whose algorithm
   actually produced k clusters.
2. **No tiny splits**: drop k whose smallest cluster holds fewer than
   ``tiny_share`` (default 10 %) of the average cluster size ``n/k``, i.e. where a
   good score is bought by splitting off a handful of rows (skipped if it would
   drop every k).
3. **Knee of the inertia curve** (Kneedle, Satopaa et al. 2011): min-max normalise
   k and inertia, take the k whose point lies farthest below the chord joining the
   first and last points. The curve starts at k = 1 (the total sum of squares, when the
   sweep gives it): without that anchor a sweep from k = 2 cannot see the drop from one
   group to two, and two well-separated groups get a knee at a larger k. Left of the knee each extra cluster still removes much
   more variance than the average step, so the partition is still merging real
   groups; k below the knee are not considered.
4. **Consensus in the window** ``knee <= k <= max(knee + 2, ceil(window * knee))``
   (default ``window = 1.5``): the k with the best mean rank over CH (high),
   DB (low), silhouette (high) and, where computed, split-half stability (high,
   Lange et al. 2004). Ties go to the smaller k.

With fewer than 3 valid k there is no curve; step 4 runs over all valid k.
The knee depends on the range of k swept (a known property of Kneedle); the
numbers below are for the default k = 2..30.

Evaluation (labels used only afterwards, never by the rule). Demo data
(4,800 images, 6 vehicle types), descriptors from ``descluster.extract``, scaling +
PCA to 90 % variance capped at 100 components (``preprocess.reduce_descriptor``),
k-means, k = 2..30, stability on 2,000-row halves:

========================  ======  ==========  ============  ================
space                     knee    chosen k    NMI at k      NMI at k = 2
========================  ======  ==========  ============  ================
mobilenetv2/standard      11      11          0.539         0.328
mobilenetv2/l2            9       10          0.557         0.331
efficientnet_lite0/std    10      11          0.537         0.382
efficientnet_lite0/l2     7       7           0.569         0.354
========================  ======  ==========  ============  ================

(NMI over k = 3..15 ranges 0.50-0.57 on these spaces; the colour histogram
reaches NMI <= 0.14 at any k: colour does not encode vehicle type.) On Gaussian
blobs with k_true = 3, 5, 8 the rule returns k_true (tests).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..curves import kneedle
from ..errors import ParameterError

__all__ = ["kneedle", "choose_k", "RANKED", "supported_k_range", "MIN_ROWS_PER_CLUSTER_HALF"]

#: Fewest rows an average cluster must have in each half of the split-half stability check
#: (``metrics.stability`` clusters two disjoint halves of the rows): the largest k swept is
#: ``n // (2 * MIN_ROWS_PER_CLUSTER_HALF)``, and a case needs ``2 * 2 * 5 = 20`` rows for k = 2.
MIN_ROWS_PER_CLUSTER_HALF = 5

#: Column -> True when higher is better; the indices combined in step 4.
RANKED = {"calinski_harabasz": True, "davies_bouldin": False, "silhouette": True, "stability": True}


def _mean_rank(sub: pd.DataFrame) -> pd.Series:
    ranks = []
    for col, higher in RANKED.items():
        if col in sub and sub[col].notna().any():
            ranks.append(sub[col].rank(ascending=not higher, method="average", na_option="bottom"))
    return pd.concat(ranks, axis=1).mean(axis=1)


def choose_k(table: pd.DataFrame, tiny_share: float = 0.1, window: float = 1.5,
             total_inertia: float | None = None) -> tuple[int, str]:
    """Choose k from a sweep table by the rule in the module docstring.

    Parameters
    ----------
    table : DataFrame
        ``SweepResult.table`` (needs ``k``, ``calinski_harabasz``, ``davies_bouldin``,
        ``silhouette``, ``inertia``; uses ``stability``, ``n_clusters``,
        ``min_cluster_size``, ``n_clustered`` when present).
    tiny_share : float
        In [0, 1): smallest cluster, as a share of the average size, for a k to count.
    window : float
        >= 1: upper end of the window as a multiple of the knee.
    total_inertia : float, optional
        Inertia at k = 1 (``SweepResult.total_inertia``): the first point of the knee's curve.
        The knee itself is never k = 1.

    Returns
    -------
    k : int
    reason : str
        The rule's steps in words, with the knee, the window and the runner-up k
        values and their scores.

    Raises
    ------
    ParameterError
        If ``tiny_share``/``window`` are out of range, a column is missing, or no k
        is valid (the message lists each k's reason).
    """
    if not (0 <= tiny_share < 1):
        raise ParameterError(f"tiny_share must be in [0, 1); got {tiny_share}")
    if not (window >= 1):
        raise ParameterError(f"window must be >= 1; got {window}")
    need = {"k", "calinski_harabasz", "davies_bouldin", "silhouette", "inertia"}
    missing = need - set(table.columns)
    if missing:
        raise ParameterError(f"sweep table lacks columns {sorted(missing)}")
    t = table.copy()
    ok = t[["calinski_harabasz", "davies_bouldin", "silhouette"]].apply(np.isfinite).all(axis=1)
    if "n_clusters" in t:
        ok &= t["n_clusters"] == t["k"]
    valid = t[ok].sort_values("k")
    if valid.empty:
        why = "; ".join(f"k={int(r.k)}: {getattr(r, 'reason', '') or 'scores undefined'}" for r in t.itertuples())
        raise ParameterError(f"no valid k in the sweep ({why})")
    notes = []
    if "min_cluster_size" in valid and "n_clustered" in valid and tiny_share > 0:
        big = valid["min_cluster_size"] >= tiny_share * valid["n_clustered"] / valid["k"]
        dropped = valid.loc[~big, "k"].astype(int).tolist()
        if big.any() and dropped:
            notes.append(f"k {dropped} dropped: smallest cluster < {tiny_share:.0%} of the average size")
            valid = valid[big]
        elif dropped:
            notes.append("every k splits off a tiny cluster; kept all")
    if len(valid) == 1:
        k = int(valid["k"].iloc[0])
        return k, f"k = {k}: the only valid k. " + " ".join(notes)
    if len(valid) >= 3 and np.all(np.isfinite(valid["inertia"])):
        ks, inertias = valid["k"].to_numpy(), valid["inertia"].to_numpy()
        anchored = total_inertia is not None and np.isfinite(total_inertia) and ks[0] > 1
        if anchored:
            ks, inertias = np.r_[1, ks], np.r_[float(total_inertia), inertias]
        at = kneedle(ks, inertias)
        knee = int(ks[max(at, 1) if anchored else at])
        hi = max(knee + 2, math.ceil(window * knee))
        window_rows = valid[(valid["k"] >= knee) & (valid["k"] <= hi)]
        step = (f"inertia knee (Kneedle) at k = {knee}; window k = {knee}..{hi} "
                f"({len(window_rows)} valid k)")
    else:
        window_rows, step = valid, f"only {len(valid)} valid k: no knee, all considered"
    ranks = _mean_rank(window_rows)
    order = sorted(window_rows.index, key=lambda i: (ranks[i], window_rows.at[i, "k"]))
    best = order[0]
    k = int(window_rows.at[best, "k"])

    def fmt(i):
        r = window_rows.loc[i]
        stab = f", stab {r['stability']:.2f}" if "stability" in r and np.isfinite(r["stability"]) else ""
        return (f"k={int(r['k'])} (mean rank {ranks[i]:.2f}: CH {r['calinski_harabasz']:.4g}, "
                f"DB {r['davies_bouldin']:.3f}, sil {r['silhouette']:.3f}{stab})")

    runners = ", ".join(fmt(i) for i in order[1:4])
    reason = (f"k = {k}: {step}; best mean rank of CH, DB, silhouette"
              f"{', stability' if 'stability' in window_rows and window_rows['stability'].notna().any() else ''}"
              f" there: {fmt(best)}.")
    if runners:
        reason += f" Runners-up: {runners}."
    if notes:
        reason += " " + "; ".join(notes) + "."
    return k, reason


def supported_k_range(n_rows: int, k_min: int, k_max: int) -> tuple[int, int, str | None]:
    """The part of the requested k range that ``n_rows`` rows can support.

    Every k is scored by split-half stability, which clusters two disjoint halves of
    ``n_rows // 2`` rows each; an average cluster then has ``n_rows / (2 k)`` rows per half,
    and below :data:`MIN_ROWS_PER_CLUSTER_HALF` (5) its mean, and so the transfer of the
    partition between halves (Lange et al. 2004), is noise. The largest k swept is
    therefore ``n_rows // 10``. This also keeps the range narrow relative to ``n``, where
    the inertia knee (Kneedle) and the internal indices stay meaningful.

    Parameters
    ----------
    n_rows : int
        Rows (images) to cluster.
    k_min, k_max : int
        The requested range (``2 <= k_min <= k_max``).

    Returns
    -------
    k_min, k_max : int
        The range to sweep (``k_max`` capped).
    note : str or None
        What was capped and why, in words with the numbers (None when nothing was).

    Raises
    ------
    ParameterError
        Fewer than 20 rows (no k >= 2 is supported), or ``k_min`` above the supported maximum;
        the message gives the numbers.
    """
    per = 2 * MIN_ROWS_PER_CLUSTER_HALF
    cap = n_rows // per
    if cap < 2:
        raise ParameterError(
            f"the case has {n_rows:,} image(s): too few for a clustering study, which needs at least "
            f"{2 * per} (k >= 2 clusters of >= {MIN_ROWS_PER_CLUSTER_HALF} images in each half of the split-half "
            "stability check); look at these images directly")
    if k_min > cap:
        raise ParameterError(
            f"--k-min {k_min}: {n_rows:,} images support at most k = {cap} ({n_rows:,} // {per}: "
            f">= {MIN_ROWS_PER_CLUSTER_HALF} images per cluster in each stability half); use --k-min 2..{cap}")
    if k_max <= cap:
        return k_min, k_max, None
    return k_min, cap, (f"k_max = {k_max} (--k-max, or its default) capped to {cap}: {n_rows:,} images support at most k = {cap} "
                        f"({n_rows:,} // {per}: >= {MIN_ROWS_PER_CLUSTER_HALF} images per cluster in each "
                        "half of the split-half stability check)")
