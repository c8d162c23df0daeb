"""Outlier detection: descriptor detectors, pixel checks and their consensus.

Entry points for the pipeline:

- :func:`image_quality_table` (``quality.py``): pixel facts per image.
- :func:`find_outliers` (``consensus.py``): all detectors on all descriptor
  spaces + pixel rules -> :class:`OutlierReport` whose ``table`` is ``outliers.csv``.
"""

from .consensus import OutlierReport, find_outliers
from .detectors import (
    DETECTORS,
    DBSCANNoiseDetector,
    DetectorResult,
    IsolationForestDetector,
    KNNDistanceDetector,
    LocalOutlierFactorDetector,
    NeighbourGraph,
    lof_from_knn,
)
from .quality import QUALITY_RULES, QualityRule, QualityVerdict, image_quality_table, quality_flags
from .thresholds import RobustZ, TopShare

__all__ = [
    "DETECTORS",
    "DBSCANNoiseDetector",
    "DetectorResult",
    "IsolationForestDetector",
    "KNNDistanceDetector",
    "LocalOutlierFactorDetector",
    "NeighbourGraph",
    "OutlierReport",
    "QUALITY_RULES",
    "QualityRule",
    "QualityVerdict",
    "RobustZ",
    "TopShare",
    "find_outliers",
    "image_quality_table",
    "lof_from_knn",
    "quality_flags",
]
