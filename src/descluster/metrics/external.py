"""External checks of a clustering against known classes (never used for any choice): ARI, NMI,
purity, and the share of object identities kept in one cluster.

References
----------
Hubert, L. & Arabie, P. (1985). Comparing partitions. J. Classification 2, 193-218.
Manning, C. D., Raghavan, P. & Schuetze, H. (2008). Introduction to Information Retrieval, 16.3.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from ..errors import ParameterError
from .internal import MetricValue

__all__ = ["external_scores", "identity_share"]


def external_scores(labels: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Agreement of a clustering with known classes: ARI, NMI and purity.

    ARI (Hubert & Arabie 1985) and NMI (arithmetic normalisation) come from
    scikit-learn. Purity is ``sum_k max_j |c_k & t_j| / n`` (Manning et al. 2008,
    Introduction to IR, 16.3). Noise (``-1``) counts as **one cluster of its own**
    in all three, so dropping rows as noise never inflates the scores.

    Parameters
    ----------
    labels : ndarray of shape (n,), int
        Cluster ids.
    truth : array-like of shape (n,)
        Class labels (any hashable type). Missing values (None/NaN) must be
        removed by the caller.

    Returns
    -------
    dict
        ``{"ari": float, "nmi": float, "purity": float}``.

    Raises
    ------
    ParameterError
        If the lengths differ or are zero.
    """
    labels = np.asarray(labels)
    truth = np.asarray(truth)
    if labels.shape != truth.shape or labels.ndim != 1 or labels.size == 0:
        raise ParameterError(
            f"labels and truth must be 1-D of equal non-zero length; got {labels.shape} and {truth.shape}"
        )
    _, t = np.unique(truth, return_inverse=True)
    _, c = np.unique(labels, return_inverse=True)
    table = np.zeros((c.max() + 1, t.max() + 1), dtype=np.int64)
    np.add.at(table, (c, t), 1)
    return {
        "ari": float(adjusted_rand_score(t, c)),
        "nmi": float(normalized_mutual_info_score(t, c)),
        "purity": float(table.max(axis=1).sum() / labels.size),
    }


def identity_share(labels: np.ndarray, identities: np.ndarray) -> MetricValue:
    """Share of identities (with >= 2 images) whose images all land in one cluster.

    An identity with any image labelled noise (``-1``) counts as split.

    Parameters
    ----------
    labels : ndarray of shape (n,), int
    identities : array-like of shape (n,)
        Identity of each image (e.g. vehicle id).

    Returns
    -------
    MetricValue
        In [0, 1]; NaN with reason ``"no identity with >= 2 images"``.
        ``sample_size`` is the number of identities counted.

    Raises
    ------
    ParameterError
        If the lengths differ.
    """
    labels = np.asarray(labels)
    identities = np.asarray(identities)
    if labels.shape != identities.shape or labels.ndim != 1:
        raise ParameterError(f"labels {labels.shape} and identities {identities.shape} must match")
    _, ident = np.unique(identities, return_inverse=True)
    sizes = np.bincount(ident)
    multi = sizes >= 2
    if not multi.any():
        return MetricValue.undefined("no identity with >= 2 images")
    lab = labels.astype(np.int64)
    # an identity is "together" when min label == max label and that label is not noise
    mn = np.full(sizes.size, np.iinfo(np.int64).max)
    mx = np.full(sizes.size, np.iinfo(np.int64).min)
    np.minimum.at(mn, ident, lab)
    np.maximum.at(mx, ident, lab)
    together = (mn == mx) & (mn >= 0)
    return MetricValue(float(together[multi].mean()), sample_size=int(multi.sum()))
