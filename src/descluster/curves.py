"""The knee of a curve (Kneedle): one implementation for the choice of k and for DBSCAN's eps."""

from __future__ import annotations

import numpy as np

from .errors import ParameterError

__all__ = ["kneedle"]


def kneedle(x: np.ndarray, y: np.ndarray, increasing: bool = False) -> int:
    """Index of the knee of a convex curve (Kneedle, Satopaa et al. 2011).

    Both axes are min-max normalised to [0, 1]; the knee is the point farthest below
    the chord joining the first and last points: ``argmax((1 - x_n) - y_n)`` for a
    decreasing curve (e.g. inertia against k), ``argmax(x_n - y_n)`` for an increasing
    one (e.g. sorted k-distances, Ester et al. 1996).

    Satopaa, Albrecht, Irwin & Raghavan (2011), "Finding a 'Kneedle' in a haystack:
    detecting knee points in system behavior", ICDCS workshops.

    Parameters
    ----------
    x : ndarray of shape (m,), increasing
    y : ndarray of shape (m,)
        Decreasing (``increasing=False``) or increasing.
    increasing : bool, default False
        Direction of ``y``.

    Returns
    -------
    int
        Position in ``x``; 0 for a flat curve.

    Raises
    ------
    ParameterError
        If fewer than 2 points or the shapes differ.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise ParameterError(f"kneedle needs two 1-D arrays of equal length >= 2; got {x.shape}, {y.shape}")
    xr = x.max() - x.min()
    yr = y.max() - y.min()
    if not (xr > 0) or not (yr > 0):
        return 0
    xn = (x - x.min()) / xr
    yn = (y - y.min()) / yr
    return int(np.argmax((xn if increasing else 1.0 - xn) - yn))
