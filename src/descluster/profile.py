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


def identities_from_paths(paths, layout: str = "auto") -> tuple[np.ndarray | None, str]:
    """Object identity of every image from the path layout, or None, with where it came from.

    The folder that holds an image names the object (one vehicle) when the case declares
    ``"identities": "parent_folder"`` (``case.json``). Without a declaration (``auto``) it does so
    only where the layout is unambiguous, the VeRi layout ``<part>\\<object id>\\<image>``:
    paths at least three levels deep, every holding folder named by a number (an id, not a
    word such as ``train/black``), at least 20 such folders and some with two or more images.

    Parameters
    ----------
    paths : sequence of str
        Image paths, ``\\`` or ``/`` separated.
    layout : {"auto", "parent_folder", "none"}

    Returns
    -------
    identities : ndarray of shape (n_images,), dtype object, or None
    source : str
        In words, where the identities come from, or why there are none.
    """
    if layout == "none":
        return None, "none: case.json declares \"identities\": \"none\""
    parts = [str(p).replace("\\", "/").split("/") for p in paths]
    depth = 2 if layout == "parent_folder" else 3
    if not parts or min(len(p) for p in parts) < depth:
        return None, f"none: paths are not {depth} levels deep"
    ids = np.array(["/".join(p[:-1]) for p in parts], dtype=object)
    uniq, counts = np.unique(ids, return_counts=True)
    if not (counts >= 2).any():
        return None, "none: no folder holds two or more images"
    if layout == "parent_folder":
        return ids, f"declared in case.json: parent folder ({len(uniq):,} identities)"
    numeric = all(u.rsplit("/", 1)[-1].isdigit() for u in uniq)
    if not numeric or len(uniq) < 20:
        return None, ("none: the folders are not unambiguously object ids (VeRi layout needs >= 20 numbered "
                      "folders); declare \"identities\": \"parent_folder\" in case.json if they are")
    return ids, f"VeRi layout: numbered parent folders ({len(uniq):,} identities, median {int(np.median(counts))} images)"
