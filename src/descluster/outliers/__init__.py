"""Outlier detection: descriptor detectors, pixel checks and their consensus.

Entry points for the pipeline:

- :func:`image_quality_table` (``pixels.py``): pixel facts per image, on the object.
- :func:`quality_flags` (``quality.py``): pixel rules with thresholds from the data.
- :class:`GroupOutlierDetector` (``groups.py``): junk clusters and sub-clusters.
- :class:`LowVehicleEvidence` (``vehicle.py``): the one "no vehicle" rule.
- :func:`find_outliers` (``consensus.py``): all detectors on all descriptor
  spaces + groups + pixel rules -> :class:`OutlierReport` whose ``table`` is ``outliers.csv``.
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
from .groups import GroupOutlierDetector
from .pixels import image_quality_table
from .quality import QUALITY_RULES, QualityRule, QualityVerdict, quality_flags
from .vehicle import LowVehicleEvidence
from .thresholds import RobustZ, TopShare

__all__ = [
    "DETECTORS",
    "DBSCANNoiseDetector",
    "DetectorResult",
    "GroupOutlierDetector",
    "IsolationForestDetector",
    "KNNDistanceDetector",
    "LocalOutlierFactorDetector",
    "LowVehicleEvidence",
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
