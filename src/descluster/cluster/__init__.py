"""Clustering: algorithm adapters, the k sweep and the choice of k.

``ALGORITHMS`` maps names to adapters (scikit-learn estimators with ``n_clusters``;
:mod:`~descluster.cluster.predictors` label new rows like a fit did); :func:`sweep` fits
one over a range of k and scores each fit; :func:`choose_k` applies the documented
rule to the sweep table.
"""

from .algorithms import ALGORITHMS, ClusterAdapter, check_k, make_algorithm
from ..curves import kneedle
from .selection import choose_k
from .sweep import TABLE_COLUMNS, SweepResult, sweep

__all__ = ["ALGORITHMS", "ClusterAdapter", "check_k", "make_algorithm", "choose_k", "kneedle",
           "TABLE_COLUMNS", "SweepResult", "sweep"]
