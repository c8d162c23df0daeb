"""ImageNet-1k class names (shipped as data), the vehicle classes, and the head's summary table.

The 1,000 class names are in ``imagenet_classes.txt`` next to this module (the
standard ILSVRC-2012 index order, as in Keras' ``imagenet_class_index.json`` and
lukemelas/EfficientNet-PyTorch's ``labels_map.txt``; first synonym kept, see the
file's header). :func:`class_name` turns an index into words; tables written by
older versions that hold ``imagenet_<index>`` placeholders are translated by
:func:`readable_class_names`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from typing import Sequence

import numpy as np
import pandas as pd

__all__ = ["VEHICLE_CLASSES", "IMAGENET_NAMES", "class_name", "imagenet_class_names",
           "readable_class_names", "summarise_probs", "summary_frame"]

VEHICLE_CLASSES: dict[int, str] = {
    407: "ambulance",
    408: "amphibian",
    436: "beach wagon",
    444: "bicycle-built-for-two",
    466: "bullet train",
    468: "cab",
    475: "car mirror",
    479: "car wheel",
    511: "convertible",
    535: "disk brake",
    547: "electric locomotive",
    555: "fire engine",
    561: "forklift",
    565: "freight car",
    569: "garbage truck",
    573: "go-kart",
    575: "golfcart",
    581: "grille",
    586: "half track",
    595: "harvester",
    603: "horse cart",
    609: "jeep",
    612: "jinrikisha",
    627: "limousine",
    654: "minibus",
    656: "minivan",
    661: "Model T",
    665: "moped",
    670: "motor scooter",
    671: "mountain bike",
    675: "moving van",
    705: "passenger car",
    717: "pickup",
    734: "police van",
    751: "racer",
    757: "recreational vehicle",
    779: "school bus",
    802: "snowmobile",
    803: "snowplow",
    817: "sports car",
    820: "steam locomotive",
    829: "streetcar",
    847: "tank",
    856: "thresher",
    864: "tow truck",
    866: "tractor",
    867: "trailer truck",
    870: "tricycle",
    874: "trolleybus",
    880: "unicycle",
}
"""ImageNet-1k classes that are vehicles (road, rail, farm, bicycles) or vehicle parts
(car wheel, grille, car mirror, disk brake). Their summed softmax probability is an
image's ``vehicle_share``."""

@lru_cache(maxsize=1)
def imagenet_class_names() -> tuple[str, ...]:
    """The 1,000 ImageNet-1k class names in index order, read from ``imagenet_classes.txt``.

    Returns
    -------
    tuple of str, length 1000
        Entry ``k`` names class ``k`` (e.g. 817 -> ``"sports car"``).

    Raises
    ------
    RuntimeError
        If the shipped data file does not hold exactly 1,000 distinct names (a broken install).
    """
    text = resources.files(__package__).joinpath("imagenet_classes.txt").read_text(encoding="utf-8")
    names = tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))
    if len(names) != 1000 or len(set(names)) != 1000:
        raise RuntimeError(f"imagenet_classes.txt holds {len(names)} names ({len(set(names))} distinct); expected 1,000")
    return names


IMAGENET_NAMES: dict[int, str] = dict(enumerate(imagenet_class_names()))
"""Every ImageNet-1k class index -> its name."""

_VEHICLE_INDEX = np.array(sorted(VEHICLE_CLASSES), dtype=np.int64)
_PLACEHOLDER = re.compile(r"imagenet_(\d{1,3})\b")


def class_name(index: int) -> str:
    """Name of ImageNet-1k class ``index`` in words.

    Parameters
    ----------
    index : int
        0..999.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        If ``index`` is outside 0..999.
    """
    i = int(index)
    if not 0 <= i < 1000:
        raise ValueError(f"ImageNet-1k class index {i} is outside 0..999")
    return IMAGENET_NAMES[i]


def readable_class_names(values: pd.Series) -> pd.Series:
    """Replace ``imagenet_<index>`` placeholders (tables from older versions) by the class names.

    Parameters
    ----------
    values : Series of str
        E.g. a ``top1_class`` column.

    Returns
    -------
    Series of str
        Same index; other text is left unchanged.
    """
    return values.astype(str).str.replace(_PLACEHOLDER, lambda m: class_name(int(m.group(1))) if int(m.group(1)) < 1000
                                          else m.group(0), regex=True)


def summarise_probs(probs: np.ndarray, top: int = 3) -> np.ndarray:
    """Compress softmax rows to vehicle share and the top classes.

    Parameters
    ----------
    probs : ndarray of shape (n, 1000)
        ImageNet-1k probabilities (rows sum to 1).
    top : int, default=3
        Number of top classes kept.

    Returns
    -------
    ndarray of shape (n, 1 + 2 * top), float64
        Columns ``vehicle_share, top1_index, top1_prob, top2_index, ...``;
        ``vehicle_share`` = sum of ``probs`` over :data:`VEHICLE_CLASSES`, in [0, 1].
        Ties in the top-k are broken by the lower class index (stable sort).
    """
    probs = np.asarray(probs, dtype=np.float64)
    out = np.empty((probs.shape[0], 1 + 2 * top), dtype=np.float64)
    out[:, 0] = probs[:, _VEHICLE_INDEX].sum(axis=1)
    order = np.argsort(-probs, axis=1, kind="stable")[:, :top]
    out[:, 1::2] = order
    out[:, 2::2] = np.take_along_axis(probs, order, axis=1)
    return out


def summary_frame(paths: Sequence[str], summary: np.ndarray) -> pd.DataFrame:
    """Table for ``meta/imagenet.csv`` from :func:`summarise_probs` rows.

    Parameters
    ----------
    paths : sequence of str, length n
        Case paths, in row order.
    summary : ndarray of shape (n, 1 + 2 * top)

    Returns
    -------
    pandas.DataFrame
        Columns ``path, vehicle_share, top1_class, top1_prob, ..., top<top>_class, top<top>_prob``.
    """
    summary = np.asarray(summary, dtype=np.float64).reshape(len(paths), -1)
    top = (summary.shape[1] - 1) // 2
    data = {"path": list(paths), "vehicle_share": summary[:, 0]}
    for k in range(top):
        data[f"top{k + 1}_class"] = [class_name(i) for i in summary[:, 1 + 2 * k].astype(np.int64)]
        data[f"top{k + 1}_prob"] = summary[:, 2 + 2 * k]
    return pd.DataFrame(data)
