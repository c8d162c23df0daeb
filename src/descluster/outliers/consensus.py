"""Consensus of all outlier detectors and pixel rules: ``outliers.csv``.

For every descriptor space, one duplicate-collapsed faiss kNN graph
(:class:`~.detectors.NeighbourGraph`) feeds the descriptor detectors
(default ``knn``, ``lof``, ``iforest``; see :data:`~.detectors.DETECTORS`).
Pixel rules come from :func:`~.quality.quality_flags` when a quality table is
given, and the "no vehicle" rule from ``meta/imagenet.csv``.

Ranking (rank aggregation)
--------------------------
``consensus = mean over descriptor scores of their percentile rank (0..1)
+ 1 per flag`` (descriptor-detector flags and pixel flags alike)
``+ (number of checks + 1) if flagged``, and ``rank = 1`` for the largest
consensus: flagged images come first, then by number of flags, then by the
mean percentile rank. Mean-of-ranks aggregation makes
detectors with different units comparable (cf. Aggarwal & Sathe 2017,
"Outlier Ensembles", Springer, ch. 5); the per-flag bonus puts images flagged
by several detectors or descriptor kinds first.

Flag rule
---------
``flagged = 1`` when a pixel rule fires (unreadable, over-exposed, dark,
blurred, low information, grey-scale/IR, unusual size), **or** at
least ``min_descriptor_flags`` (default 2) descriptor detector × descriptor kind
pairs flag the image, coming from at least ``min_descriptor_spaces`` (default 3,
capped at the number of kinds given) descriptor kinds. "No vehicle" (ImageNet
vehicle share < 10%) is advisory: it is listed in ``flagged_by`` and ``reason``
and adds to the rank, but does not flag alone, because the ImageNet head is
unreliable on small crops (on the 4,800 clean demo crops, 11% have a vehicle
share below 10% and 2.5% below 1%). One detector alone in one
space is noisy (each flags its own tail of clean images), and detectors in the
same space share that tail (LOF and isolation forest both flag the rim of a
Gaussian cloud); agreement between descriptor kinds is evidence. Duplicates are
reported in ``duplicate_group`` and ``reason`` but never flagged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from ..errors import ParameterError
from .detectors import DETECTORS, DetectorResult, NeighbourGraph
from .duplicates import merge_groups
from .quality import QualityVerdict, no_vehicle_flags, quality_flags

#: Phrases for the reason column, per descriptor detector.
PHRASES = {
    "knn": "far from all neighbours",
    "lof": "much sparser than its neighbours (LOF)",
    "iforest": "easy to isolate (isolation forest)",
    "dbscan": "density noise (DBSCAN)",
}


@dataclass
class OutlierReport:
    """Result of :func:`find_outliers`.

    Attributes
    ----------
    table : DataFrame of shape (n, ...)
        ``outliers.csv`` in input order: ``path``; one score column per detector
        and space (``knn_<space>``, ``lof_<space>``, ``iforest_<space>``, ...;
        larger = more outlying) and per pixel rule (``pixel_<rule>``: signed
        robust z, larger = more suspicious); ``score`` (float, the consensus score), ``rank``
        (int, 1 = most suspicious), ``flagged`` (0/1), ``n_flags`` (int),
        ``flagged_by`` (``"knn:osnet;pixel:dark"``), ``duplicate_group`` (int,
        -1 = none) and ``reason`` (str).
    thresholds : dict of str -> str
        ``"<detector>:<space>"`` or ``"pixel:<rule>"`` -> the threshold in words;
        ``"neighbours:<space>"`` -> which kNN index ran (exact, or faiss IVF with
        its measured recall@k).
    flag_rule : str
        The final ``flagged`` rule in words.
    results : dict of str -> DetectorResult
        Keyed ``"<detector>:<space>"``.
    quality : QualityVerdict or None
    """

    table: pd.DataFrame
    thresholds: dict[str, str]
    flag_rule: str
    results: dict[str, DetectorResult] = field(default_factory=dict)
    quality: QualityVerdict | None = None


def _join_names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


#: Above this many rows the kNN graphs use only the leading :data:`LARGE_N_DIMS` principal components.
LARGE_N = 50_000
#: Measured at 416,314 rows (faiss IVF, nprobe 16): 31 s per space at 32 columns vs 136 s at 248.
LARGE_N_DIMS = 32


def find_outliers(
    spaces: dict,
    paths: list[str],
    quality: pd.DataFrame | None = None,
    imagenet: pd.DataFrame | None = None,
    random_state: int = 0,
    progress: bool = True,
    detectors: tuple[str, ...] = ("knn", "lof", "iforest"),
    n_neighbors: int = 20,
    min_descriptor_flags: int = 2,
    min_descriptor_spaces: int = 3,
    advisory: tuple[str, ...] = ("no-vehicle",),
    neighbour_index="auto",
    neighbour_dims="auto",
) -> OutlierReport:
    """Run every detector on every descriptor space, add pixel rules, and rank.

    Parameters
    ----------
    spaces : dict of str -> ndarray of shape (n, p_i), float32 (or ReducedSpace)
        One reduced space per descriptor kind; the key names the columns.
    paths : list of str, length n
        Image paths in row order.
    quality : DataFrame or None
        From :func:`~.quality.image_quality_table` (n rows, same order).
    imagenet : DataFrame or None
        ``meta/imagenet.csv`` (``path``, ``vehicle_share``, ...).
    random_state : int, default 0
        Seed of the isolation forest and any sampling.
    progress : bool, default True
        Show progress bars.
    detectors : tuple of str, default ("knn", "lof", "iforest")
        Names in :data:`~.detectors.DETECTORS`.
    n_neighbors : int, default 20
        Neighbours kept in each space's kNN graph (LOF uses 20, k-distance 10).
    min_descriptor_flags : int, default 2
        Descriptor detector × space flags needed to set ``flagged`` (see module notes).
    min_descriptor_spaces : int, default 3
        Of which from at least this many descriptor kinds (capped at the number of kinds given).
    advisory : tuple of str, default ("no-vehicle",)
        Pixel rules that are reported (``flagged_by``, ``reason``, rank bonus) but do
        not set ``flagged`` on their own.
    neighbour_index : str or NeighbourIndex, default "auto"
        kNN strategy of each space's graph (:data:`~.neighbours.INDEXES`); which
        index ran, with its measured recall, is reported in
        ``thresholds["neighbours:<space>"]``.
    neighbour_dims : "auto", int or None, default "auto"
        Leading columns (principal components) each kNN graph is built on: "auto" is
        all of them up to :data:`LARGE_N` rows and :data:`LARGE_N_DIMS` above (see
        :class:`~.detectors.NeighbourGraph`); None is always all.

    Returns
    -------
    OutlierReport

    Raises
    ------
    ParameterError
        Unknown detector, no spaces, row counts that differ from ``len(paths)``,
        a quality table of the wrong length, or bad numbers.
    """
    paths = [str(p) for p in paths]
    n = len(paths)
    unknown = [d for d in detectors if d not in DETECTORS]
    if unknown:
        raise ParameterError(f"detectors={unknown} unknown; valid: {sorted(DETECTORS)}")
    if not spaces and quality is None and imagenet is None:
        raise ParameterError("find_outliers needs at least one descriptor space, a quality table or an imagenet table")
    if not (isinstance(min_descriptor_flags, int) and min_descriptor_flags >= 1):
        raise ParameterError(f"min_descriptor_flags={min_descriptor_flags!r} must be an integer >= 1")
    if not (isinstance(min_descriptor_spaces, int) and min_descriptor_spaces >= 1):
        raise ParameterError(f"min_descriptor_spaces={min_descriptor_spaces!r} must be an integer >= 1")
    if not (isinstance(n_neighbors, int) and n_neighbors >= 1):
        raise ParameterError(f"n_neighbors={n_neighbors!r} must be an integer >= 1")
    if neighbour_dims == "auto":
        neighbour_dims = LARGE_N_DIMS if n > LARGE_N else None
    elif neighbour_dims is not None and not (isinstance(neighbour_dims, int) and neighbour_dims >= 1):
        raise ParameterError(f"neighbour_dims={neighbour_dims!r} must be 'auto', None or an integer >= 1")
    arrays = {}
    for name, X in spaces.items():
        X = getattr(X, "X", X)
        if np.shape(X)[0] != n:
            raise ParameterError(f"space {name!r} has {np.shape(X)[0]:,} rows but there are {n:,} paths")
        arrays[str(name)] = X
    if quality is not None and len(quality) != n:
        raise ParameterError(f"quality table has {len(quality):,} rows but there are {n:,} paths")

    table = pd.DataFrame({"path": paths})
    thresholds: dict[str, str] = {}
    results: dict[str, DetectorResult] = {}
    flag_cols: dict[str, np.ndarray] = {}  # "knn:osnet" / "pixel:dark" -> (n,) bool
    pct = []
    dup_groups = []
    for space, X in arrays.items():
        graph = NeighbourGraph(
            n_neighbors=n_neighbors, progress=progress, index=neighbour_index, random_state=random_state,
            max_dims=neighbour_dims,
        ).fit(X)
        thresholds[f"neighbours:{space}"] = f"{space}: {graph.search_description_}"
        dup_groups.append(graph.duplicate_group_)
        for det in detectors:
            est = DETECTORS[det]()
            if hasattr(est, "random_state"):
                est.random_state = random_state
            res = est.fit(X, graph=graph).result()
            key = f"{det}:{space}"
            results[key] = res
            table[f"{det}_{space}"] = res.scores
            thresholds[key] = f"{space}: {est.threshold_description_}"
            flag_cols[key] = res.flags
            pct.append(rankdata(res.scores, method="average") / n)

    verdict = None
    pixel_reasons = [""] * n
    notes = [""] * n
    if quality is not None:
        verdict = quality_flags(quality, imagenet=imagenet)
        for col in verdict.scores.columns:
            table[col] = verdict.scores[col].to_numpy()
        for rule in verdict.flags.columns:
            flag_cols[f"pixel:{rule}"] = verdict.flags[rule].to_numpy(dtype=bool)
            thresholds[f"pixel:{rule}"] = verdict.thresholds[rule]
        pixel_reasons, notes = verdict.reasons, verdict.notes
        dup_groups.append(verdict.exact_group)
    elif imagenet is not None:
        nov, vs, desc = no_vehicle_flags(imagenet, paths)
        flag_cols["pixel:no-vehicle"] = nov
        thresholds["pixel:no-vehicle"] = desc
        table["pixel_no-vehicle"] = np.where(np.isfinite(vs), 1.0 - vs, 0.0)
        pixel_reasons = [f"no vehicle: {vs[i]:.0%}" if nov[i] else "" for i in range(n)]

    keys = list(flag_cols)
    F = np.column_stack([flag_cols[k] for k in keys]) if keys else np.zeros((n, 0), bool)
    is_pixel = np.array([k.startswith("pixel:") for k in keys], dtype=bool)
    is_advisory = np.array([k.split(":", 1)[1] in advisory and k.startswith("pixel:") for k in keys], dtype=bool)
    n_flags = F.sum(axis=1)
    n_desc = F[:, ~is_pixel].sum(axis=1)
    any_pixel = F[:, is_pixel & ~is_advisory].any(axis=1)
    space_of = np.array([k.split(":", 1)[1] for k in keys], dtype=object)
    desc_spaces = sorted(set(space_of[~is_pixel]))
    n_spaces_flagging = np.zeros(n, dtype=np.int64)
    for sp in desc_spaces:
        n_spaces_flagging += F[:, (space_of == sp) & ~is_pixel].any(axis=1)
    need_spaces = min(min_descriptor_spaces, len(desc_spaces))
    flagged = any_pixel | ((n_desc >= min_descriptor_flags) & (n_spaces_flagging >= need_spaces))
    consensus = (np.mean(pct, axis=0) if pct else np.zeros(n)) + n_flags + (F.shape[1] + 1) * flagged
    order = np.argsort(-consensus, kind="stable")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(1, n + 1)

    table["score"] = consensus  # consensus score: higher = more suspicious; `rank` orders by it
    table["rank"] = rank
    table["flagged"] = flagged.astype(np.int64)
    table["n_flags"] = n_flags.astype(np.int64)
    table["flagged_by"] = [";".join(k for k, f in zip(keys, row) if f) for row in F]
    table["duplicate_group"] = merge_groups(*dup_groups) if dup_groups else np.full(n, -1, dtype=np.int64)
    table["reason"] = _reasons(keys, F, pixel_reasons, notes)

    flag_rule = (
        f"flagged when any pixel rule fires (advisory only: {', '.join(advisory) or 'none'}), or when at least {min_descriptor_flags} of the "
        f"{int((~is_pixel).sum())} descriptor detector × descriptor kind checks flag the image, in at least "
        f"{need_spaces} descriptor kind{'s' if need_spaces > 1 else ''}; duplicates are reported, never flagged"
    )
    return OutlierReport(table=table, thresholds=thresholds, flag_rule=flag_rule, results=results, quality=verdict)


def _reasons(keys: list[str], F: np.ndarray, pixel_reasons: list[str], notes: list[str]) -> list[str]:
    """Short human text per row: descriptor findings grouped by detector, then pixel reasons, then notes."""
    out = []
    dets = [(k.split(":", 1)[0], k.split(":", 1)[1]) for k in keys]
    for i in range(F.shape[0]):
        by_det: dict[str, list[str]] = {}
        for (det, space), f in zip(dets, F[i]):
            if f and det != "pixel":
                by_det.setdefault(det, []).append(space)
        parts = [f"{PHRASES.get(d, d)} in {_join_names(s)}" for d, s in by_det.items()]
        if pixel_reasons[i]:
            parts.append(pixel_reasons[i])
        if notes[i]:
            parts.append(notes[i])
        out.append("; ".join(parts))
    return out
