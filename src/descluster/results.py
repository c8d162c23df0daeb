"""Result objects passed between pipeline stages and to the report.

Each is a plain dataclass: the stage that makes it documents how; the report
and the CSV writers only read it. Arrays are NumPy; tables are pandas.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class ReducedSpace:
    """One descriptor kind after scaling and PCA: the space clustering runs in.

    Attributes
    ----------
    descriptor : str
        Descriptor kind (file stem), e.g. ``"mobilenetv2"``; mixtures are named ``"mix:a+b"``.
    preprocessing : str
        Scaler name: ``"none"``, ``"standard"``, ``"minmax"``, ``"robust"`` or ``"l2"``.
    X : ndarray of shape (n_samples, n_components), float32
        The reduced rows, in input order.
    explained_variance_ratio : ndarray of shape (n_fitted_components,), float64
        Per-component share of the scaled data's total variance (the curve).
    n_components : int
        Components kept (chosen by the explained-variance target).
    variance_target : float
        Cumulative explained-variance target used to choose ``n_components``.
    """

    descriptor: str
    preprocessing: str
    X: np.ndarray
    explained_variance_ratio: np.ndarray
    n_components: int
    variance_target: float

    @property
    def key(self) -> str:
        """``"<descriptor>/<preprocessing>"``: the name of this space in tables."""
        return f"{self.descriptor}/{self.preprocessing}"


@dataclass
class Choice:
    """The k chosen for one (descriptor, preprocessing, algorithm) sweep.

    Attributes
    ----------
    descriptor, preprocessing, algorithm : str
    k : int
        Chosen number of clusters (for HDBSCAN: clusters found, noise excluded).
    labels : ndarray of shape (n_samples,), int64
        Cluster of every row in input order; ``-1`` marks noise (HDBSCAN only).
    reason : str
        The rule's explanation in words, with the runner-up k values and scores.
    sweep : DataFrame
        One row per k tried, with the metric columns of ``study.csv``.
    centroids : ndarray of shape (k, n_components), float32, optional
        Cluster means in the reduced space (used for distances and medoids).
    """

    descriptor: str
    preprocessing: str
    algorithm: str
    k: int
    labels: np.ndarray
    reason: str
    sweep: pd.DataFrame
    centroids: np.ndarray | None = None

    @property
    def key(self) -> str:
        """``"<descriptor>/<preprocessing>/<algorithm>"``."""
        return f"{self.descriptor}/{self.preprocessing}/{self.algorithm}"


@dataclass
class RunResult:
    """Everything one ``descluster run`` produced; the report reads only this.

    Attributes
    ----------
    paths : list of str, length n_samples
        Image paths exactly as in ``images_paths.csv``.
    spaces : dict of str -> ReducedSpace
        Keyed by ``ReducedSpace.key``.
    choices : dict of str -> Choice
        Keyed by ``Choice.key``; every configuration of the study at its chosen k.
    study : DataFrame
        ``study.csv``: one row per descriptor × preprocessing × algorithm × k.
    comparison : DataFrame
        ``comparison.csv``: one row per configuration at its chosen k, ``recommended`` column.
    recommended : str
        ``Choice.key`` of the recommended configuration.
    recommendation : str
        Why it is recommended, in words.
    per_descriptor : dict of str -> str
        Descriptor kind -> ``Choice.key`` of its best configuration (``clusters_<descriptor>.csv``).
    embeddings : dict of str -> ndarray of shape (n_samples, 2), float32
        2-D maps keyed by ``Choice.key`` (at least the recommended one).
    embedding_method : dict of str -> str
        How each map was made, e.g. ``"openTSNE (FFT), all 4,800 rows"``.
    outliers : DataFrame or None
        ``outliers.csv``: ``path``, scores, ``rank``, ``flagged``, ``reason``.
    outlier_rules : dict of str -> str
        How images were judged, in words: ``"flag rule"`` and one entry per detector,
        pixel rule and neighbour search (``"neighbours:<space>"``: index, recall, columns).
    quality : DataFrame or None
        Pixel facts per image (n_samples rows, see ``outliers.quality``).
    imagenet : DataFrame or None
        Per-image ImageNet head summary from extraction (see ``extract``), if present.
    labels : DataFrame or None
        ``labels.csv`` aligned to ``paths`` (columns: label names), if present.
    cluster_facts : DataFrame or None
        One row per cluster of the recommended clustering, with the automatic ``description``.
    agreement : DataFrame or None
        ARI between chosen clusterings of different descriptors (square, keyed by descriptor).
    notes : list of str
        Warnings and fallbacks that the report must show (sampling, capped parameters, ...).
    meta : dict
        Run parameters, versions and timings (also in ``manifest.json``).
    """

    paths: list[str]
    spaces: dict[str, ReducedSpace]
    choices: dict[str, Choice]
    study: pd.DataFrame
    comparison: pd.DataFrame
    recommended: str
    recommendation: str
    per_descriptor: dict[str, str]
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    embedding_method: dict[str, str] = field(default_factory=dict)
    outliers: pd.DataFrame | None = None
    outlier_rules: dict[str, str] = field(default_factory=dict)
    quality: pd.DataFrame | None = None
    imagenet: pd.DataFrame | None = None
    labels: pd.DataFrame | None = None
    cluster_facts: pd.DataFrame | None = None
    agreement: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
