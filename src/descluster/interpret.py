"""Measurable facts about each cluster, and an automatic one–two sentence draft.

The draft is a starting point for the person naming the cluster, built only
from facts that are computed here and shown beside it:

- dominant colour names (``quality.colour_name`` or ``quality.colour``; or, when the quality table is
  absent and images are given, the nearest colour of a small named palette to
  the median pixel of a sample of thumbnails, see :func:`colour_name`);
- brightness and a time-of-day cue from the mean luminance
  (``quality.luminance_mean`` or ``mean_luminance``, ITU-R BT.601 luma, 0–255): ``>= 110`` "bright daylight", ``>= 60`` "dim light", else "night-like";
- the most common ImageNet top-1 classes (``imagenet.top1_class``) and the mean
  ImageNet vehicle share (``imagenet.vehicle_share``);
- median image size and aspect ratio (``quality.width/height``);
- label purity for every label column (share of the most common value);
- spread: distances of members to the cluster centre in the reduced space.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import ParameterError
from .results import RunResult

#: Luma thresholds (0–255) of the time-of-day cue, highest first.
LIGHT_CUES = ((110.0, "bright daylight"), (60.0, "dim light"), (0.0, "night-like"))

#: Small named palette (sRGB) for colour names computed from pixels.
PALETTE = {
    "black": (20, 20, 20), "grey": (128, 128, 128), "silver": (192, 192, 192), "white": (245, 245, 245),
    "red": (190, 30, 30), "orange": (230, 120, 30), "yellow": (230, 210, 40), "green": (40, 140, 60),
    "blue": (40, 70, 180), "brown": (120, 80, 40), "beige": (210, 190, 150),
}

#: Quality-table columns holding a colour name / mean luma (0–255), first found is used.
COLOUR_COLUMNS = ("colour_name", "colour")
LUMA_COLUMNS = ("luminance_mean", "mean_luminance")

#: A colour (or class) is "dominant" in a cluster from this share up.
DOMINANT_SHARE = 0.5


def colour_name(rgb) -> str:
    """Name of the palette colour nearest to ``rgb`` (Euclidean distance in sRGB).

    Parameters
    ----------
    rgb : sequence of 3 numbers, 0–255

    Returns
    -------
    str
        A key of :data:`PALETTE`.
    """
    c = np.asarray(rgb, dtype=np.float64).reshape(3)
    names = list(PALETTE)
    ref = np.array([PALETTE[k] for k in names], dtype=np.float64)
    return names[int(np.argmin(((ref - c) ** 2).sum(axis=1)))]


def light_cue(luma: float) -> str:
    """Time-of-day cue for a mean luminance ``luma`` in 0–255 (see :data:`LIGHT_CUES`)."""
    for low, word in LIGHT_CUES:
        if luma >= low:
            return word
    return LIGHT_CUES[-1][1]


def centroid_distances(X: np.ndarray, labels: np.ndarray, centroids: np.ndarray | None = None) -> np.ndarray:
    """Euclidean distance of every row to the centre of its cluster.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_components), float32
        The reduced space the clustering ran in.
    labels : ndarray of shape (n_samples,), int
        Cluster ids; ``-1`` (noise) rows get the distance to the noise rows' mean.
    centroids : ndarray of shape (k, n_components), optional
        Row ``i`` is the centre of the ``i``-th smallest non-negative cluster id.
        Computed as cluster means when absent or of the wrong shape.

    Returns
    -------
    ndarray of shape (n_samples,), float32
        In the units of ``X``.

    Raises
    ------
    ParameterError
        If ``X`` and ``labels`` disagree in length.
    """
    X = np.asarray(X, dtype=np.float32)
    labels = np.asarray(labels)
    if X.ndim != 2 or len(labels) != len(X):
        raise ParameterError(f"X has shape {X.shape} but labels has {len(labels)} entries; they must match")
    ids = np.unique(labels)
    positive = ids[ids >= 0]
    use_given = centroids is not None and np.asarray(centroids).shape == (len(positive), X.shape[1])
    out = np.empty(len(X), dtype=np.float32)
    for j, c in enumerate(ids):
        rows = labels == c
        if use_given and c >= 0:
            centre = np.asarray(centroids, dtype=np.float32)[int(np.searchsorted(positive, c))]
        else:
            centre = X[rows].mean(axis=0)
        out[rows] = np.linalg.norm(X[rows] - centre, axis=1)
    return out


def _top_shares(values: pd.Series, n: int = 2) -> list[tuple[str, float]]:
    values = values.dropna().astype(str)
    counts = values[values.str.strip() != ""].value_counts(normalize=True)
    return [(str(k), float(v)) for k, v in counts.head(n).items()]


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def sample_colours(images, paths: list[str], labels: np.ndarray, per_cluster: int = 30,
                   random_state: int = 0) -> pd.Series:
    """Colour names of a random sample of images per cluster, from their thumbnails.

    The colour of an image is :func:`colour_name` of the median pixel of its
    central half (the object usually sits in the middle of a crop).

    Parameters
    ----------
    images : ImageSource
    paths : list of str, length n_samples
    labels : ndarray of shape (n_samples,), int
    per_cluster : int
        Images read per cluster.
    random_state : int

    Returns
    -------
    Series of str indexed by row number (only the sampled rows)
        Unreadable images are skipped.
    """
    rng = np.random.default_rng(random_state)
    names = {}
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        for i in rng.choice(rows, size=min(per_cluster, len(rows)), replace=False):
            try:
                arr = np.asarray(images.thumbnail(paths[int(i)], 48), dtype=np.uint8)
            except Exception:  # a missing image must not stop the description
                continue
            h, w = arr.shape[:2]
            centre = arr[h // 4: h - h // 4 or h, w // 4: w - w // 4 or w].reshape(-1, 3)
            names[int(i)] = colour_name(np.median(centre, axis=0))
    return pd.Series(names, dtype=object)


def cluster_facts(result: RunResult, key: str | None = None, images=None,
                  colour_sample: int = 30) -> pd.DataFrame:
    """One row of facts and an automatic description per cluster.

    Parameters
    ----------
    result : RunResult
        Reads ``paths``, ``choices[key]``, ``spaces``, and (if present)
        ``quality``, ``imagenet`` and ``labels``, each aligned to ``paths``.
    key : str, optional
        ``Choice.key`` to describe; default ``result.recommended``.
    images : ImageSource, optional
        Used only to name colours when ``quality`` has no ``colour_name``.
    colour_sample : int
        Images read per cluster in that case.

    Notes
    -----
    ``quality`` columns used: ``colour_name``/``colour``, ``luminance_mean``/
    ``mean_luminance`` (0–255; a 0–1 scale is detected and rescaled),
    ``width``, ``height``. ``imagenet``: ``top1_class``, ``vehicle_share``.
    Unreadable images (NaN facts) are ignored in the shares and means.

    Returns
    -------
    DataFrame
        One row per cluster id (sorted; ``-1`` = noise), columns:
        ``cluster`` (int), ``size`` (int), ``share`` (float, of all images),
        ``description`` (str, the automatic draft), ``colour``/``colour_share``
        (dominant colour and its share), ``colours`` (top colours, text),
        ``luminance`` (mean luma 0–255), ``light`` (cue), ``imagenet``
        (top classes, text), ``imagenet_top``/``imagenet_top_share``,
        ``vehicle_share`` (mean), ``width``/``height`` (median, px), ``aspect``
        (median width/height), ``purity_<label>`` and ``label_<label>`` (share
        and value of the most common label), ``dist_median``/``dist_p90``
        (distance to the centre, units of the reduced space). Columns whose
        source is absent are NaN / empty.

    Raises
    ------
    ParameterError
        If ``key`` is not in ``result.choices`` or a table's length differs from ``paths``.
    """
    key = key or result.recommended
    if key not in result.choices:
        raise ParameterError(f"key={key!r} is not a clustering of this run; known: {sorted(result.choices)}")
    choice = result.choices[key]
    labels = np.asarray(choice.labels)
    n = len(labels)
    for name in ("quality", "imagenet", "labels"):
        table = getattr(result, name)
        if table is not None and len(table) != n:
            raise ParameterError(f"result.{name} has {len(table)} rows but the clustering has {n}; they must align")
    quality = result.quality if result.quality is not None else pd.DataFrame(index=range(n))
    imagenet = result.imagenet if result.imagenet is not None else pd.DataFrame(index=range(n))
    quality = quality.reset_index(drop=True)
    imagenet = imagenet.reset_index(drop=True)
    label_table = result.labels.reset_index(drop=True) if result.labels is not None else None
    if label_table is not None:
        label_table = label_table[[c for c in label_table.columns if c != "path"]]

    colour_col = next((c for c in COLOUR_COLUMNS if c in quality), None)
    colours = quality[colour_col].astype(object) if colour_col else None
    if colours is None and images is not None:
        colours = sample_colours(images, result.paths, labels, colour_sample).reindex(range(n))
    luma_col = next((c for c in LUMA_COLUMNS if c in quality), None)
    luma = quality[luma_col].astype(float) if luma_col else None
    if luma is not None and luma.max() <= 1.0:  # a 0–1 scale: bring to 0–255
        luma = luma * 255.0

    space_key = f"{choice.descriptor}/{choice.preprocessing}"
    dist = None
    if space_key in result.spaces and len(result.spaces[space_key].X) == n:
        dist = centroid_distances(result.spaces[space_key].X, labels, choice.centroids)

    rows = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        row = {"cluster": int(c), "size": len(idx), "share": len(idx) / n}
        if colours is not None:
            top = _top_shares(colours.iloc[idx], 3)
            row["colour"], row["colour_share"] = top[0] if top else ("", np.nan)
            row["colours"] = ", ".join(f"{k} {_pct(v)}" for k, v in top)
        if luma is not None:
            row["luminance"] = float(luma.iloc[idx].mean())
            row["light"] = light_cue(row["luminance"])
        if "top1_class" in imagenet:
            top = _top_shares(imagenet["top1_class"].iloc[idx], 2)
            row["imagenet"] = ", ".join(f"{k} {_pct(v)}" for k, v in top)
            row["imagenet_top"], row["imagenet_top_share"] = top[0] if top else ("", np.nan)
        if "vehicle_share" in imagenet:
            row["vehicle_share"] = float(imagenet["vehicle_share"].iloc[idx].astype(float).mean())
        if "width" in quality and "height" in quality:
            w = quality["width"].iloc[idx].astype(float)
            h = quality["height"].iloc[idx].astype(float)
            row["width"], row["height"] = float(w.median()), float(h.median())
            row["aspect"] = float((w / h.replace(0, np.nan)).median())
        if label_table is not None:
            for col in label_table.columns:
                top = _top_shares(label_table[col].iloc[idx], 1)
                row[f"label_{col}"], row[f"purity_{col}"] = top[0] if top else ("", np.nan)
        if dist is not None:
            row["dist_median"] = float(np.median(dist[idx]))
            row["dist_p90"] = float(np.percentile(dist[idx], 90))
        row["description"] = describe(row, list(label_table.columns) if label_table is not None else [])
        rows.append(row)
    return pd.DataFrame(rows)


def describe(facts: dict, label_columns: list[str] = ()) -> str:
    """Write the automatic one–two sentence draft from one cluster's facts.

    Parameters
    ----------
    facts : dict
        A row of :func:`cluster_facts` (keys may be missing).
    label_columns : list of str
        Label columns whose purity to mention.

    Returns
    -------
    str
        e.g. ``"Mostly white vehicles (minivan 46%, moving van 21%), bright
        daylight; 88% of images share one vehicle_type (truck)."``
    """
    parts = []
    colour, cshare = facts.get("colour"), facts.get("colour_share", np.nan)
    mixed = False
    if colour and cshare >= DOMINANT_SHARE:
        subject = f"mostly {colour} vehicles"
    elif facts.get("colours"):
        subject, mixed = f"vehicles of mixed colours ({facts['colours']})", True
    else:
        subject = "images"
    if facts.get("imagenet"):
        subject += f", ImageNet top-1 {facts['imagenet']}" if mixed else f" ({facts['imagenet']})"
    if facts.get("cluster", 0) < 0:
        subject = "noise (no cluster): " + subject
    head = subject
    if facts.get("light"):
        head += f", {facts['light']}"
    clauses = [head]
    for col in label_columns:
        purity = facts.get(f"purity_{col}", np.nan)
        if purity == purity:  # not NaN
            clauses.append(f"{_pct(purity)} of images share one {col} ({facts.get(f'label_{col}')})")
    parts.append("; ".join(clauses) + ".")
    extra = []
    if facts.get("width") == facts.get("width") and facts.get("width") is not None:
        extra.append(f"typical size {facts['width']:.0f}×{facts['height']:.0f} px")
    vs = facts.get("vehicle_share", np.nan)
    if vs == vs and vs is not None and vs < 0.5:
        extra.append(f"ImageNet sees a vehicle in only {_pct(vs)} of images")
    if extra:
        sentence = "; ".join(extra)
        parts.append(sentence[0].upper() + sentence[1:] + ".")
    text = " ".join(parts)
    return text[0].upper() + text[1:]
