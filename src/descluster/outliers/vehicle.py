"""The one "no vehicle" rule: low vehicle evidence of an image, a group or a cluster.

The vehicle evidence of an image is its ``vehicle_share`` in ``meta/imagenet.csv``:
the ImageNet-1k probability mass on vehicle classes
(:data:`descluster.extract.imagenet.VEHICLE_CLASSES`), 0..1. Of a group of images
(a cluster, a sub-cluster) it is the median share of its members.

:class:`LowVehicleEvidence` decides, for a set of such values (images, or groups
compared with each other), which lack vehicle evidence. Both must hold:

- **absolute**: the value is below ``max_share`` (default 0.5: the head gives the
  vehicle classes less probability than all other classes together);
- **relative**: its robust z-score (Iglewicz & Hoaglin 1993, see
  :mod:`.thresholds`) on the logit scale, ``log(v / (1 - v))`` with ``v`` clipped to
  [1e-6, 1 - 1e-6] (:data:`LOGIT_CLIP`), is below ``-z`` among the values compared, so a collection of
  tiny crops on which the head is unsure everywhere is not flagged wholesale.

Image-level results are advisory (the head is unreliable on one small crop:
11% of the 4,800 clean demo crops have a share below 10%); group-level results
flag the whole group (see :mod:`.groups`) and make a cluster description say
"no vehicle" (:mod:`descluster.interpret`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..case import align_by_path
from ..errors import ParameterError
from ..validation import check_float
from .thresholds import robust_z

#: Clip of shares before the logit (a share of 0 or 1 has no finite logit). Softmax shares of junk reach
#: 1e-5 and below; a clip at 1e-3 (the first version) floored them at logit -6.9 and, where the groups'
#: medians spread widely, left the relative condition unable to fire.
LOGIT_CLIP = 1e-6


def _prior_share() -> float:
    from ..extract.imagenet import VEHICLE_CLASSES

    return len(VEHICLE_CLASSES) / 1000.0


#: The vehicle share of a head that knows nothing: the vehicle classes' share of the 1,000 ImageNet-1k
#: classes (50 / 1000 = 0.05). An image below it is less likely a vehicle than a uniform guess says.
VEHICLE_PRIOR_SHARE = _prior_share()

#: Where an ImageNet vehicle share counts as "shows a vehicle": the head gives the vehicle classes at least half
#: its probability. The no-vehicle rule's ``max_share`` and the flag rule's vehicle veto
#: (:func:`~descluster.outliers.consensus.find_outliers`) are this one bound.
VEHICLE_SHARE_BOUND = 0.5


def vehicle_shares(imagenet: pd.DataFrame, paths: list[str]) -> np.ndarray:
    """Vehicle share per path from ``meta/imagenet.csv``, matched by path (either separator).

    Parameters
    ----------
    imagenet : DataFrame
        Columns ``path`` and ``vehicle_share`` (0..1).
    paths : list of str, length n

    Returns
    -------
    ndarray of shape (n,), float64
        NaN where a path has no row.

    Raises
    ------
    ParameterError
        If a column is missing.
    """
    if not {"path", "vehicle_share"} <= set(imagenet.columns):
        raise ParameterError(f"imagenet table needs columns path and vehicle_share; has {list(imagenet.columns)}")
    aligned, _ = align_by_path(imagenet[["path", "vehicle_share"]], list(paths), "meta/imagenet.csv")
    return pd.to_numeric(aligned["vehicle_share"], errors="coerce").to_numpy(dtype=np.float64)


def logit(v: np.ndarray) -> np.ndarray:
    """``log(v / (1 - v))`` of shares clipped to [:data:`LOGIT_CLIP`, 1 - :data:`LOGIT_CLIP`]; NaN stays NaN."""
    v = np.clip(np.asarray(v, dtype=np.float64), LOGIT_CLIP, 1 - LOGIT_CLIP)
    return np.log(v / (1 - v))


@dataclass
class EvidenceVerdict:
    """Result of :meth:`LowVehicleEvidence.decide`.

    Attributes
    ----------
    flags : ndarray of shape (n,), bool
        True = lacks vehicle evidence (False where the value is NaN).
    z : ndarray of shape (n,), float64
        Robust z of the logit (0 where NaN).
    cut : float
        The share below which the relative condition holds (back-transformed).
    description : str
        The rule in words with its numbers.
    """

    flags: np.ndarray
    z: np.ndarray
    cut: float
    description: str


class LowVehicleEvidence:
    """Which values (image shares, or group medians) lack vehicle evidence (see the module notes).

    Parameters
    ----------
    max_share : float, default 0.5
        Absolute condition: value < ``max_share``; in (0, 1].
    z : float, default 3.5
        Relative condition: robust z of the logit < ``-z``; > 0.

    Raises
    ------
    ParameterError
        On a parameter out of range.
    """

    def __init__(self, max_share: float = VEHICLE_SHARE_BOUND, z: float = 3.5):
        self.max_share = check_float("max_share", max_share, 0.0, 1.0)
        self.z = check_float("z", z, 0.0, np.inf)

    def decide(self, values: np.ndarray, what: str = "images") -> EvidenceVerdict:
        """Apply the rule to ``values`` (shape (n,), 0..1, NaN = unknown); ``what`` names them in the text."""
        v = np.asarray(values, dtype=np.float64)
        ok = np.isfinite(v)
        z, med, scale = robust_z(np.where(ok, logit(v), np.nan))
        cut_logit = med - self.z * scale if scale > 0 else -np.inf
        cut = float(1 / (1 + np.exp(-cut_logit))) if np.isfinite(cut_logit) else 0.0
        flags = ok & (v < self.max_share) & (z < -self.z)
        centre = float(1 / (1 + np.exp(-med))) if np.isfinite(med) else float("nan")
        desc = (f"vehicle share < {min(cut, self.max_share):.3g} (below {self.max_share:g}, and robust z of its logit "
                f"< -{self.z:g} among {int(ok.sum()):,} {what}, median {centre:.2f}); "
                f"{int(flags.sum()):,} of {int(ok.sum()):,} {what}")
        return EvidenceVerdict(flags=flags, z=np.where(ok, z, 0.0), cut=cut, description=desc)

    def __repr__(self) -> str:
        return f"LowVehicleEvidence(max_share={self.max_share:g}, z={self.z:g})"
