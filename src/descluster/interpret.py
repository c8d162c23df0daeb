"""Measurable facts about each cluster, and an automatic one–two sentence draft that discriminates.

The draft is a starting point for the person naming the cluster, built only
from facts that are computed here and shown beside it:

- the **object colour** of the cluster, named from the object pixels' palette:
  the mean over its images of their palette shares (``quality.palette_<name>``:
  the weight share of each colour name among the object's pixels, weighted to the
  object and after the camera levels; see :mod:`descluster.outliers.pixels`) and
  the median lit-face lightness (``quality.colour_lit_lightness``), named by the
  same rule as one image (:func:`descluster.palette.name_from_shares`: black only
  when black holds half of the pixels -- tyres, glass and shade are black on every
  vehicle, so a count of images whose shadows tip them to "black" does not make a
  cluster of grey loads black). The shares of the images' own names follow
  ("images named ..."). Pixel tables without the palette columns fall back to the
  majority of the images' names (``quality.colour``); with no pixel table but
  images, the names of a sample of thumbnails (:func:`sample_colours`);
- the **light** (``quality.mean_luminance``, ITU-R BT.601 luma 0–255): ``>= 110``
  "bright daylight", ``>= 60`` "dim light" (60 is
  :data:`descluster.outliers.quality.NIGHT_LUMA`), else "night-like";
- the most common **ImageNet classes** in words (``imagenet.top1_class``) and the
  median ImageNet **vehicle share**; a cluster whose median share lacks vehicle
  evidence among the clusters (the one rule,
  :class:`descluster.outliers.vehicle.LowVehicleEvidence`) is described as
  "No vehicle";
- **size and aspect** (image area tertiles of the collection: small / medium / large;
  aspect wide > 4:3, tall < 3:4) and the **folder** (first path component: a camera,
  or the folder it was sorted into);
- label purity for every label column; spread in the reduced space.

What sets a cluster apart
-------------------------
Each image gives one word per facet (its colour, light, ImageNet top-1 class,
size, aspect and folder). Words are scored per cluster by class-based TF-IDF
(c-TF-IDF, Grootendorst 2022, "BERTopic: neural topic modeling with a class-based
TF-IDF procedure", arXiv:2203.05794): ``W(t, c) = tf(t, c) · log(1 + A / f(t))``
with ``tf`` the share of the cluster's words that are ``t``, ``A`` the average
number of words per cluster and ``f(t)`` the count of ``t`` in the whole
collection. The description names the highest-scoring words that are also
over-represented (at least 1.5 times their share in the whole collection), with
both shares, e.g. "folder minibus/ 92% (17% overall)".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import ParameterError
from .extract.imagenet import readable_class_names
from .outliers.groups import top_folder
from .outliers.pixels import OBJECT_SIZE, colour_facts
from .outliers.quality import NIGHT_LUMA
from .outliers.vehicle import LowVehicleEvidence
from .outliers.pixels import PALETTE_SHARE_COLUMNS
from .palette import COLOUR_NAMES, NEUTRAL_NAMES, name_from_shares
from .palette import colour_name  # noqa: F401  (re-exported: the palette's one naming function)
from .results import RunResult

#: Luma thresholds (0–255) of the time-of-day cue, highest first.
LIGHT_CUES = ((110.0, "bright daylight"), (NIGHT_LUMA, "dim light"), (0.0, "night-like"))

#: Quality-table columns holding a colour name / mean luma (0–255), first found is used.
COLOUR_COLUMNS = ("colour_name", "colour")
LUMA_COLUMNS = ("luminance_mean", "mean_luminance")

#: A colour is "dominant" in a cluster ("mostly white vehicles") from this share up.
DOMINANT_SHARE = 0.5
#: A word sets a cluster apart when its share there is at least this many times its share overall.
OVER_REPRESENTED = 1.5
#: Distinctive words named per description.
N_DISTINCTIVE = 3


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
    """Object colour names of a random sample of images per cluster, from their thumbnails.

    The name is :func:`descluster.outliers.pixels.colour_facts` of a
    :data:`~descluster.outliers.pixels.OBJECT_SIZE` px copy (centre prior, clipped
    pixels left out; no camera levels, which need the whole collection).

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
    from PIL import Image

    rng = np.random.default_rng(random_state)
    names = {}
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        for i in rng.choice(rows, size=min(per_cluster, len(rows)), replace=False):
            try:
                im = images.thumbnail(paths[int(i)], 2 * OBJECT_SIZE)
            except Exception:  # a missing image must not stop the description
                continue
            small = np.asarray(im.resize((OBJECT_SIZE, OBJECT_SIZE), Image.Resampling.BILINEAR), dtype=np.uint8)
            names[int(i)] = colour_facts(small)["colour"]
    return pd.Series(names, dtype=object)


def _words(quality: pd.DataFrame, imagenet: pd.DataFrame, paths: list[str], colours, luma) -> dict[str, pd.Series]:
    """One word per image and facet (see the module notes); missing facts are NaN."""
    n = len(paths)
    words: dict[str, pd.Series] = {}
    if colours is not None:
        words["colour"] = colours.where(colours.astype(str).str.strip() != "")
    if luma is not None:
        words["light"] = pd.Series([light_cue(v) if v == v else np.nan for v in luma], dtype=object)
    if "top1_class" in imagenet:
        words["imagenet"] = readable_class_names(imagenet["top1_class"].fillna("")).replace("", np.nan)
    if "width" in quality and "height" in quality:
        w = pd.to_numeric(quality["width"], errors="coerce")
        h = pd.to_numeric(quality["height"], errors="coerce")
        area = w * h
        if area.notna().any() and area.nunique() > 1:
            lo, hi = np.nanquantile(area, [1 / 3, 2 / 3])
            words["size"] = pd.Series(np.where(area.isna(), None, np.where(area <= lo, "small images",
                                      np.where(area <= hi, "medium images", "large images"))), dtype=object)
        asp = w / h.replace(0, np.nan)
        words["aspect"] = pd.Series(np.where(asp.isna(), None, np.where(asp > 4 / 3, "wide", np.where(
            asp < 3 / 4, "tall", "squarish"))), dtype=object)
    folders = [top_folder(p) for p in paths]
    if any(folders) and len(set(folders)) > 1:
        words["folder"] = pd.Series([f"folder {f}/" if f else "top folder" for f in folders], dtype=object)
    for k in words:
        words[k] = words[k].reset_index(drop=True).reindex(range(n))
    return words


def distinctive_words(words: dict[str, pd.Series], labels: np.ndarray) -> dict[int, list[tuple[str, str, float, float, float]]]:
    """c-TF-IDF words that set each cluster apart (see the module notes).

    Parameters
    ----------
    words : dict of facet -> Series of str (NaN = no word), each of length n
    labels : ndarray of shape (n,), int

    Returns
    -------
    dict of cluster id -> list of (facet, word, score, share in cluster, share overall)
        Over-represented words (at least :data:`OVER_REPRESENTED` times their overall
        share), best c-TF-IDF score first.
    """
    labels = np.asarray(labels)
    ids = np.unique(labels)
    out: dict[int, list] = {int(c): [] for c in ids}
    rows = []
    for facet, series in words.items():
        s = pd.DataFrame({"word": series.to_numpy(dtype=object), "cluster": labels}).dropna()
        if s.empty:
            continue
        counts = s.groupby(["cluster", "word"]).size()
        for (c, w), k in counts.items():
            rows.append((int(c), facet, str(w), int(k)))
    if not rows:
        return out
    t = pd.DataFrame(rows, columns=["cluster", "facet", "word", "count"])
    per_cluster = t.groupby("cluster")["count"].sum()
    t["tf"] = t["count"] / t["cluster"].map(per_cluster)
    f = t.groupby(["facet", "word"])["count"].transform("sum")
    A = per_cluster.mean()
    t["score"] = t["tf"] * np.log1p(A / f)
    facet_total = t.groupby("facet")["count"].transform("sum")
    t["overall"] = f / facet_total
    facet_in_cluster = t.groupby(["cluster", "facet"])["count"].transform("sum")
    t["share"] = t["count"] / facet_in_cluster
    t = t[t["share"] >= OVER_REPRESENTED * t["overall"]].sort_values(["cluster", "score"], ascending=[True, False])
    for r in t.itertuples():
        out[int(r.cluster)].append((r.facet, r.word, float(r.score), float(r.share), float(r.overall)))
    return out


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
        Used only to name colours when ``quality`` has no colour column.
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
        (the cluster's colour and the share that decided it: from the object pixels'
        palette when the pixel table has it, ``colour_basis`` = "object pixels", with
        ``colour_lit_lightness`` and the mean ``palette_<name>`` shares; else the
        majority of the images' names), ``colours`` (the images' top names, text),
        ``luminance`` (mean luma 0–255), ``light`` (cue), ``imagenet``
        (top classes, text), ``imagenet_top``/``imagenet_top_share``,
        ``vehicle_share`` (mean), ``vehicle_median`` (median), ``no_vehicle``
        (bool: the cluster lacks vehicle evidence among the clusters),
        ``distinctive`` (the words that set it apart, text), ``folder`` /
        ``folder_share`` (most common top-level folder), ``width``/``height``
        (median, px), ``aspect`` (median width/height), ``purity_<label>`` and
        ``label_<label>`` (share and value of the most common label),
        ``dist_median``/``dist_p90`` (distance to the centre, units of the reduced
        space). Columns whose source is absent are NaN / empty.

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
    palette = None
    if set(PALETTE_SHARE_COLUMNS) <= set(quality.columns):
        palette = quality[PALETTE_SHARE_COLUMNS].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
        lit_all = (pd.to_numeric(quality["colour_lit_lightness"], errors="coerce").to_numpy(dtype=np.float64)
                   if "colour_lit_lightness" in quality else np.full(n, np.nan))
    luma_col = next((c for c in LUMA_COLUMNS if c in quality), None)
    luma = quality[luma_col].astype(float) if luma_col else None
    if luma is not None and luma.max() <= 1.0:  # a 0–1 scale: bring to 0–255
        luma = luma * 255.0
    words = _words(quality, imagenet, list(result.paths), colours, luma)
    apart = distinctive_words(words, labels)

    space_key = f"{choice.descriptor}/{choice.preprocessing}"
    dist = None
    if space_key in result.spaces and len(result.spaces[space_key].X) == n:
        dist = centroid_distances(result.spaces[space_key].X, labels, choice.centroids)
    shares = pd.to_numeric(imagenet["vehicle_share"], errors="coerce") if "vehicle_share" in imagenet else None

    rows = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        row = {"cluster": int(c), "size": len(idx), "share": len(idx) / n}
        if colours is not None:
            top = _top_shares(colours.iloc[idx], 3)
            row["colour"], row["colour_share"] = top[0] if top else ("", np.nan)
            row["colours"] = ", ".join(f"{k} {_pct(v)}" for k, v in top)
        if palette is not None:
            rows_ok = palette[idx][np.isfinite(palette[idx]).all(axis=1)]
            if len(rows_ok):
                mean = rows_ok.mean(axis=0)
                lit_c = lit_all[idx]
                lit_c = float(np.median(lit_c[np.isfinite(lit_c)])) if np.isfinite(lit_c).any() else float("nan")
                name, share, _, _ = name_from_shares(mean, lit_c)
                row["colour"], row["colour_share"], row["colour_basis"] = name, share, "object pixels"
                row["colour_lit_lightness"] = lit_c
                for cname, v in zip(COLOUR_NAMES, mean):
                    row[f"palette_{cname}"] = float(v)
        if luma is not None:
            row["luminance"] = float(luma.iloc[idx].mean())
            row["light"] = light_cue(row["luminance"])
        if "imagenet" in words:
            top = _top_shares(words["imagenet"].iloc[idx], 2)
            row["imagenet"] = ", ".join(f"{k} {_pct(v)}" for k, v in top)
            row["imagenet_top"], row["imagenet_top_share"] = top[0] if top else ("", np.nan)
        if shares is not None:
            row["vehicle_share"] = float(shares.iloc[idx].mean())
            row["vehicle_median"] = float(shares.iloc[idx].median())
        if "folder" in words:
            top = _top_shares(words["folder"].iloc[idx], 1)
            row["folder"], row["folder_share"] = (top[0][0][len("folder "):], top[0][1]) if top else ("", np.nan)
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
        stated = {row.get("colour"), row.get("light")}  # already in the sentence's head
        row["distinctive"] = "; ".join(f"{w} {_pct(sh)} ({_pct(ov)} overall)" for _, w, _, sh, ov in
                                       [a for a in apart.get(int(c), []) if a[1] not in stated][:N_DISTINCTIVE])
        rows.append(row)
    facts = pd.DataFrame(rows)
    if "vehicle_median" in facts:
        judged = (facts["cluster"] >= 0).to_numpy()
        flags = np.zeros(len(facts), dtype=bool)
        flags[judged] = LowVehicleEvidence().decide(facts.loc[judged, "vehicle_median"].to_numpy(), "clusters").flags
        facts["no_vehicle"] = flags
    cols = list(label_table.columns) if label_table is not None else []
    facts.insert(3, "description", [describe(r, cols) for r in facts.to_dict(orient="records")])
    return facts


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
        e.g. ``"Mostly white vehicles (white 78%, silver 12%, black 5%), bright daylight;
        ImageNet: minivan 46%, moving van 21%. Sets it apart: folder minibus/ 92% (17%
        overall), moving van 21% (3% overall). 88% of images share one vehicle_type (minibus).
        Typical size 100×100 px."``; a cluster with low vehicle evidence starts
        ``"No vehicle: images ..."``, and one without any (no ImageNet summary, ``vehicle_median``
        NaN or missing) says ``"images"``, not ``"vehicles"``.
    """
    no_vehicle = bool(facts.get("no_vehicle", False))
    evidence = facts.get("vehicle_median", np.nan)
    # "vehicles" only where the ImageNet head saw them: without it (no meta/imagenet.csv) nothing says so
    thing = "images" if no_vehicle or evidence is None or evidence != evidence else "vehicles"
    colour, cshare = facts.get("colour"), facts.get("colour_share", np.nan)
    detail = facts.get("colours") or ""
    if colour and facts.get("colour_basis") == "object pixels":
        if colour in NEUTRAL_NAMES and colour != "black":
            basis = f"white, silver and grey {_pct(cshare)} of the object pixels"
            lit = facts.get("colour_lit_lightness", np.nan)
            if lit == lit:
                basis += f", lit face L* {lit:.0f}"
        else:
            basis = f"{colour} {_pct(cshare)} of the object pixels"
        detail = basis + (f"; images named {detail}" if detail else "")
    if colour and cshare == cshare and cshare >= DOMINANT_SHARE:
        subject = f"mostly {colour} {thing} ({detail})"
    elif colour and facts.get("colour_basis") == "object pixels":
        # the word comes from the object pixels, which can disagree with the count of image names given
        # beside it (e.g. silver by pixels, black the most frequent image name): say which one it is
        subject = f"{thing} of mixed colours, their object pixels leaning {colour} ({detail})"
    elif colour:
        subject = f"{thing} of mixed colours, most often {colour} ({detail})"
    else:
        subject = thing
    if no_vehicle:
        vm = facts.get("vehicle_median", np.nan)
        subject = f"no vehicle: {subject}, median ImageNet vehicle share {_pct(vm)}"
    if facts.get("cluster", 0) < 0:
        subject = "noise (no cluster): " + subject
    head = subject
    if facts.get("light"):
        head += f", {facts['light']}"
    if facts.get("imagenet"):
        head += f"; ImageNet: {facts['imagenet']}"
    parts = [head + "."]
    if facts.get("distinctive"):
        parts.append(f"Sets it apart: {facts['distinctive']}.")
    clauses = []
    for col in label_columns:
        purity = facts.get(f"purity_{col}", np.nan)
        if purity == purity and purity is not None:  # not NaN
            clauses.append(f"{_pct(purity)} of images share one {col} ({facts.get(f'label_{col}')})")
    width = facts.get("width")
    if width is not None and width == width:
        clauses.append(f"typical size {facts['width']:.0f}×{facts['height']:.0f} px")
    if clauses:
        sentence = "; ".join(clauses)
        parts.append(sentence[0].upper() + sentence[1:] + ".")
    text = " ".join(parts)
    return text[0].upper() + text[1:]
