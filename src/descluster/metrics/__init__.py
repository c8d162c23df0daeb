"""Clustering quality metrics, one module per kind.

:mod:`~descluster.metrics.internal`
    label-free scores of one clustering in one space (Calinski-Harabasz, Davies-Bouldin,
    inertia, silhouette), each a :class:`MetricValue` (NaN + reason when undefined);
:mod:`~descluster.metrics.external`
    agreement with known classes (ARI, NMI, purity, identity share), reported, never used;
:mod:`~descluster.metrics.stability`
    split-half stability (Ben-Hur et al. 2002; Lange et al. 2004).
"""

from .external import external_scores, identity_share
from .internal import (ClusterStats, MetricValue, SilhouetteSample, calinski_harabasz, cluster_stats,
                       count_distinct_rows, davies_bouldin, inertia, internal_scores, silhouette)
from .stability import SplitHalves, stability

__all__ = ["MetricValue", "ClusterStats", "cluster_stats", "count_distinct_rows", "calinski_harabasz",
           "davies_bouldin", "inertia", "internal_scores", "silhouette", "SilhouetteSample", "external_scores",
           "identity_share", "stability", "SplitHalves"]
