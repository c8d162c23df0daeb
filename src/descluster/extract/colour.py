"""Joint CIELAB colour histogram: a torch-free descriptor of an image's colours.

Pixels are converted from sRGB to CIELAB with Pillow's LittleCMS binding
(:mod:`PIL.ImageCms`, D50 Lab profile), then counted in a joint
``l_bins x ab_bins x ab_bins`` grid and L1-normalised. CIELAB is used because
Euclidean distance in it approximates perceived colour difference
(CIE 1976, see e.g. Fairchild, *Color Appearance Models*, 3rd ed., ch. 10), so
equal-width bins are roughly perceptually equal; joint colour histograms for
image retrieval follow Swain & Ballard, "Color Indexing", IJCV 7(1), 1991.

Binning (defaults give 5 x 7 x 7 = 245 bins):

* ``L*`` in [0, 100] (Pillow stores it as 0..255): ``l_bins`` equal bins.
* ``a*`` and ``b*`` clipped to [-112, 112): ``ab_bins`` equal bins each. With an
  odd ``ab_bins`` the middle bin is centred on 0, so grey, white, black and
  silver pixels (the usual car colours) fall in the neutral bin instead of
  being split by tint noise across four bins. The sRGB gamut spans roughly
  a* in [-86, 98] and b* in [-108, 95], inside the clipped range.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageCms

from ..validation import check_int
from .base import Backbone

__all__ = ["ColourHistogram", "AB_LIMIT"]

AB_LIMIT = 112
"""Half-width of the a*/b* range that is binned; values outside are clipped into the end bins."""

_TRANSFORM = None


def _srgb_to_lab():
    global _TRANSFORM
    if _TRANSFORM is None:
        _TRANSFORM = ImageCms.buildTransform(
            ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"), "RGB", "LAB"
        )
    return _TRANSFORM


def lab_pixels(image: Image.Image) -> np.ndarray:
    """Convert an RGB image to CIELAB pixels.

    Parameters
    ----------
    image : PIL.Image.Image
        Mode ``RGB``.

    Returns
    -------
    ndarray of shape (h * w, 3), float32
        Columns ``L*`` in [0, 100], ``a*`` and ``b*`` in [-128, 127] (integer-valued;
        Pillow's 8-bit Lab encoding).
    """
    lab = np.asarray(ImageCms.applyTransform(image.convert("RGB"), _srgb_to_lab()), dtype=np.uint8)
    lab = lab.reshape(-1, 3)
    out = np.empty(lab.shape, dtype=np.float32)
    out[:, 0] = lab[:, 0].astype(np.float32) * (100.0 / 255.0)
    out[:, 1:] = lab[:, 1:].view(np.int8)  # a*, b* are stored as two's-complement bytes
    return out


class ColourHistogram(Backbone):
    """Joint CIELAB colour histogram, L1-normalised (numpy/Pillow only, no torch).

    Parameters
    ----------
    l_bins : int, default=5
        Number of lightness bins over L* in [0, 100]; 1 to 32.
    ab_bins : int, default=7
        Number of bins for each of a* and b* over [-112, 112); 1 to 31. Odd
        values put a bin centred on neutral grey.

    Attributes
    ----------
    name : str
        ``"colour"``.
    n_features : int
        ``l_bins * ab_bins ** 2`` (245 by default).

    Raises
    ------
    ParameterError
        If a bin count is out of range.

    Notes
    -----
    Bin index of a pixel = ``(l * ab_bins + a) * ab_bins + b`` with ``l``, ``a``,
    ``b`` its L*, a*, b* bin numbers (row-major over the L, a, b grid).
    """

    name = "colour"

    def __init__(self, l_bins: int = 5, ab_bins: int = 7):
        self.l_bins = check_int("l_bins", l_bins, 1, 32)
        self.ab_bins = check_int("ab_bins", ab_bins, 1, 31)
        self.n_features = self.l_bins * self.ab_bins**2

    def get_params(self) -> dict:
        return {"l_bins": self.l_bins, "ab_bins": self.ab_bins}

    def bin_index(self, lab: np.ndarray) -> np.ndarray:
        """Histogram bin of each Lab pixel.

        Parameters
        ----------
        lab : ndarray of shape (n, 3)
            L* in [0, 100], a*, b* in any range (clipped to [-112, 112)).

        Returns
        -------
        ndarray of shape (n,), int64
            Values in ``[0, n_features)``.
        """
        lab = np.asarray(lab, dtype=np.float64)
        l_idx = np.clip((lab[:, 0] / 100.0 * self.l_bins).astype(np.int64), 0, self.l_bins - 1)
        ab = np.floor((lab[:, 1:] + AB_LIMIT) / (2 * AB_LIMIT) * self.ab_bins).astype(np.int64)
        ab = np.clip(ab, 0, self.ab_bins - 1)
        return (l_idx * self.ab_bins + ab[:, 0]) * self.ab_bins + ab[:, 1]

    def histogram(self, image: Image.Image) -> np.ndarray:
        """Histogram of one RGB image, shape (n_features,), float32, summing to 1."""
        idx = self.bin_index(lab_pixels(image))
        counts = np.bincount(idx, minlength=self.n_features).astype(np.float64)
        return (counts / counts.sum()).astype(np.float32)

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Histograms of a batch, shape (b, n_features), float32; each row sums to 1."""
        if len(images) == 0:
            return np.zeros((0, self.n_features), dtype=np.float32)
        return np.stack([self.histogram(im) for im in images]).astype(np.float32, copy=False)
