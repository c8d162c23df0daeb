"""Turning an outlier score into a decision by a threshold that means something.

Strategies (small objects with ``decide(scores)``):

- :class:`RobustZ` — modified z-score of Iglewicz & Hoaglin (1993), "How to
  Detect and Handle Outliers", ASQC Basic References in Quality Control vol. 16:
  ``z = 0.6745 (x - median) / MAD``; points with ``z > 3.5`` are outliers. Scores
  that are ratios or distances are taken in log first (their spread is
  multiplicative). If MAD is 0, the mean absolute deviation scaled by 1.253314
  replaces ``MAD / 0.6745`` (same reference).
- :class:`TopShare` — the highest ``share`` of scores (a contamination guess;
  available, but not the default).

Each returns a :class:`Decision` whose ``description`` is printed in the report.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError


@dataclass
class Decision:
    """A thresholded score.

    Attributes
    ----------
    flags : ndarray of shape (n,), bool
        True where the score is beyond the threshold.
    threshold : float
        The cut in the score's own units (flag when ``score > threshold``).
    description : str
        The rule in words, with the numbers, e.g.
        ``"robust z of log score > 3.5 (median 0.52, MAD 0.08): score > 1.34"``.
    """

    flags: np.ndarray
    threshold: float
    description: str


def robust_z(values: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Modified z-scores (Iglewicz & Hoaglin 1993) of ``values``.

    Parameters
    ----------
    values : ndarray of shape (n,), float
        NaN entries are ignored for the median/MAD and get z = 0.

    Returns
    -------
    z : ndarray of shape (n,), float64
        ``(x - median) / scale``; 0 everywhere if the scale is 0.
    median : float
    scale : float
        ``MAD / 0.6745``, or ``1.253314 × mean absolute deviation`` when MAD = 0.
    """
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    if not ok.any():
        return np.zeros_like(v), float("nan"), 0.0
    med = float(np.median(v[ok]))
    dev = np.abs(v[ok] - med)
    scale = float(np.median(dev)) / 0.6745
    if scale == 0.0:
        scale = 1.253314 * float(np.mean(dev))
    z = np.zeros_like(v)
    if scale > 0:
        z[ok] = (v[ok] - med) / scale
    return z, med, scale


class RobustZ:
    """Flag scores whose robust z-score exceeds ``z`` (Iglewicz & Hoaglin 1993).

    Parameters
    ----------
    z : float, default 3.5
        Cut on the modified z-score; > 0.
    log : bool, default True
        Take ``log`` of the (positive) scores first.

    Raises
    ------
    ParameterError
        If ``z`` is not positive.
    """

    def __init__(self, z: float = 3.5, log: bool = True):
        if not (isinstance(z, (int, float)) and z > 0):
            raise ParameterError(f"z={z!r} must be a positive number (3.5 is the usual cut)")
        self.z = float(z)
        self.log = bool(log)

    def decide(self, scores: np.ndarray) -> Decision:
        """Threshold ``scores`` (shape (n,), larger = more outlying)."""
        s = np.asarray(scores, dtype=np.float64)
        v = np.log(np.maximum(s, 1e-12)) if self.log else s
        z, med, scale = robust_z(v)
        cut = med + self.z * scale if scale > 0 else np.inf
        threshold = float(np.exp(cut)) if self.log else float(cut)
        flags = z > self.z
        what = "log score" if self.log else "score"
        centre = float(np.exp(med)) if self.log else med
        desc = (
            f"robust z of {what} > {self.z:g} (median score {centre:.4g}): score > {threshold:.4g}; "
            f"{int(flags.sum()):,} of {s.size:,} flagged"
        )
        return Decision(flags=flags, threshold=threshold, description=desc)

    def __repr__(self) -> str:
        return f"RobustZ(z={self.z:g}, log={self.log})"


class TopShare:
    """Flag the highest ``share`` of scores.

    Parameters
    ----------
    share : float
        Fraction flagged, 0 < share < 0.5.

    Raises
    ------
    ParameterError
        If ``share`` is outside (0, 0.5).
    """

    def __init__(self, share: float = 0.01):
        if not (isinstance(share, (int, float)) and 0 < share < 0.5):
            raise ParameterError(f"share={share!r} is out of range: need 0 < share < 0.5")
        self.share = float(share)

    def decide(self, scores: np.ndarray) -> Decision:
        """Threshold ``scores`` (shape (n,), larger = more outlying)."""
        s = np.asarray(scores, dtype=np.float64)
        threshold = float(np.quantile(s, 1.0 - self.share))
        flags = s > threshold
        desc = f"top {self.share:.1%} of scores: score > {threshold:.4g}; {int(flags.sum()):,} of {s.size:,} flagged"
        return Decision(flags=flags, threshold=threshold, description=desc)

    def __repr__(self) -> str:
        return f"TopShare(share={self.share:g})"
