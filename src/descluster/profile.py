"""The domain profile: everything that knows these images are vehicle crops in the VeRi layout.

The core (preprocessing, clustering, metrics, the model) knows only rows and paths;
the words and layouts of the camera system live here:

- :func:`identities_from_paths`: the VeRi / VeRi-Wild layout
  ``<part>\\<object id>\\<image>.jpg``, where the folder that holds an image names one
  vehicle (Liu et al. 2016, "A deep learning-based approach to progressive vehicle
  re-identification", ECCV; Lou et al. 2019, "VERI-Wild", CVPR);
- :data:`DEMO_DATA` : the folder name of the built-in demo images;
- :data:`OBJECT` : the word for what one image shows, for messages;
- :data:`ADVISORY_RULES` : pixel rules reported but never flagging alone (the "no vehicle"
  rule of the ImageNet head, unreliable on small crops; see ``outliers.consensus``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["OBJECT", "DEMO_DATA", "ADVISORY_RULES", "identities_from_paths"]

#: What one image shows (used in messages and reports).
OBJECT = "vehicle"
#: Folder of the built-in demo images under ``data/``.
DEMO_DATA = "tiny-vehicles"
#: Pixel rules that are reported (reason, rank) but do not flag an image on their own.
ADVISORY_RULES = ("no-vehicle",)


def identities_from_paths(paths) -> np.ndarray | None:
    """Object identity of every image, from the VeRi path layout, or None.

    In the VeRi layout ``<part>\\<object id>\\<image>.jpg`` the folder that holds an
    image names the object (one vehicle); that folder is the identity. Returned only
    when paths are at least three levels deep and some identity holds two or more
    images (otherwise folders are categories, not identities).

    Parameters
    ----------
    paths : sequence of str
        Image paths, ``\\`` or ``/`` separated.

    Returns
    -------
    ndarray of shape (n_images,), dtype object, or None
    """
    parts = [str(p).replace("\\", "/").split("/") for p in paths]
    if not parts or min(len(p) for p in parts) < 3:
        return None
    ids = np.array(["/".join(p[:-1]) for p in parts], dtype=object)
    _, counts = np.unique(ids, return_counts=True)
    return ids if (counts >= 2).any() else None
