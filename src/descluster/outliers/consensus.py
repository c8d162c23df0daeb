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
``flagged = 1`` when

1. a pixel rule fires (unreadable, over-exposed, dark = object hidden, blurred,
   low information, grey-scale frame, unusual size; see :mod:`.quality`), or
2. the image belongs to a junk group (:class:`~.groups.GroupOutlierDetector`:
   a cluster or sub-cluster with no vehicle evidence, low information, or
   near-identical frames of one folder) in any descriptor space, or
3. descriptor detectors flag it in at least ``min_descriptor_kinds`` (default: all
   of the kinds given) different descriptor kinds -- any detector counts; one
   kind is not enough: each detector flags its own tail of clean images,
   detectors in the same space share that tail, and a colour-histogram kind flags
   every rare paint colour, while agreement between descriptor kinds is evidence --
   **unless the ImageNet head sees a vehicle in it** (vehicle share at least
   ``vehicle_veto``, default 0.5: the vehicle classes outweigh all others): an
   image that is far from the others *and* shows a vehicle is a rare vehicle (a
   red tanker, a branded lorry), not junk; pixel rules and groups still apply;
4. or its vehicle share is under ``no_vehicle_share`` (default
   :data:`~.vehicle.VEHICLE_PRIOR_SHARE`, 0.05: less than a head that knows
   nothing would give the 50 vehicle classes of 1,000) and descriptor detectors flag
   it in at least ``no_vehicle_kinds`` (default 2, a majority of three) kinds: two
   independent signs that it is not a vehicle. The image-level
   :class:`~.vehicle.LowVehicleEvidence` ("no vehicle" in ``flagged_by``) stays
   advisory: it is listed in ``flagged_by`` and ``reason`` and adds to the rank.

Duplicates are reported in ``duplicate_group`` and ``reason`` but never flagged
for being duplicates. :attr:`OutlierReport.flag_rule` states this rule with the
numbers that ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.base import clone

from ..errors import ParameterError
from ..palette import describe_palette
from .detectors import DETECTORS, DetectorResult, NeighbourGraph
from .duplicates import merge_groups
from .groups import GroupOutlierDetector
from .quality import QualityVerdict, no_vehicle_flags, quality_flags
from .vehicle import VEHICLE_PRIOR_SHARE, VEHICLE_SHARE_BOUND, vehicle_shares

#: Phrases for the reason column, per descriptor detector.
PHRASES = {
    "knn": "far from all neighbours",
    "lof": "much sparser than its neighbours (LOF)",
    "iforest": "easy to isolate (isolation forest)",
    "dbscan": "density noise (DBSCAN)",
    "group": "junk group",
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
        ``flagged_by`` (``"knn:osnet;pixel:dark;group:osnet"``), ``duplicate_group`` (int,
        -1 = none), ``reason`` (str), ``group_flagged`` (0/1: member of a junk group)
        and ``group`` (str: which group and why, "" if none).
    thresholds : dict of str -> str
        ``"<detector>:<space>"`` or ``"pixel:<rule>"`` -> the threshold in words;
        ``"neighbours:<space>"`` -> which kNN index ran (exact, or faiss IVF with
        its measured recall@k).
    flag_rule : str
        The final ``flagged`` rule in words.
    results : dict of str -> DetectorResult
        Keyed ``"<detector>:<space>"``.
    quality : QualityVerdict or None
    groups : dict of str -> GroupOutlierDetector
        The fitted group detector of each space (its ``groups_`` table lists every judged group).
    """

    table: pd.DataFrame
    thresholds: dict[str, str]
    flag_rule: str
    results: dict[str, DetectorResult] = field(default_factory=dict)
    quality: QualityVerdict | None = None
    groups: dict[str, GroupOutlierDetector] = field(default_factory=dict)


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
    min_descriptor_kinds: int | None = None,
    no_vehicle_kinds: int | None = 2,
    advisory: tuple[str, ...] = ("no-vehicle",),
    neighbour_index="auto",
    neighbour_dims="auto",
    groups: GroupOutlierDetector | None = None,
    clusters: np.ndarray | None = None,
    max_pixel_share: float = 0.10,
    vehicle_veto: float | None = VEHICLE_SHARE_BOUND,
    no_vehicle_share: float = VEHICLE_PRIOR_SHARE,
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
    min_descriptor_kinds : int or None, default None
        Descriptor kinds in which some detector must flag an image to set ``flagged``
        (capped at the number of kinds given); None = all kinds given (see module notes).
    no_vehicle_kinds : int or None, default 2
        An image whose vehicle share is under ``no_vehicle_share`` is flagged when
        detectors flag it in at least this many kinds (capped at the number of kinds);
        None turns this clause off.
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
    groups : GroupOutlierDetector or None, default None
        Group detector (cloned per space); None means ``GroupOutlierDetector(random_state=random_state)``.
    clusters : ndarray of shape (n,), int, optional
        A clustering (e.g. the recommended one) whose clusters are judged as groups too.
    max_pixel_share : float, default 0.10
        A pixel rule that would flag more than this share of the images flags none
        (:func:`~.quality.quality_flags`).
    vehicle_veto : float or None, default 0.5
        Descriptor agreement alone (clause 3) does not flag an image whose vehicle
        share is at least this (a rare vehicle); None = no veto. Needs ``imagenet``.
    no_vehicle_share : float, default :data:`~.vehicle.VEHICLE_PRIOR_SHARE`
        Vehicle share under which clause 4 applies; in (0, 1].

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
    if min_descriptor_kinds is not None and not (isinstance(min_descriptor_kinds, int) and min_descriptor_kinds >= 1):
        raise ParameterError(f"min_descriptor_kinds={min_descriptor_kinds!r} must be None (all kinds) or an integer >= 1")
    if no_vehicle_kinds is not None and not (isinstance(no_vehicle_kinds, int) and no_vehicle_kinds >= 1):
        raise ParameterError(f"no_vehicle_kinds={no_vehicle_kinds!r} must be None or an integer >= 1")
    if vehicle_veto is not None and not (isinstance(vehicle_veto, (int, float)) and 0 < vehicle_veto <= 1):
        raise ParameterError(f"vehicle_veto={vehicle_veto!r} must be None or a share in (0, 1]")
    if not (isinstance(no_vehicle_share, (int, float)) and 0 < no_vehicle_share <= 1):
        raise ParameterError(f"no_vehicle_share={no_vehicle_share!r} must be a share in (0, 1]")
    if groups is not None and not isinstance(groups, GroupOutlierDetector):
        raise ParameterError(f"groups={groups!r} must be a GroupOutlierDetector or None")
    if clusters is not None and len(clusters) != n:
        raise ParameterError(f"clusters has {len(clusters):,} entries but there are {n:,} paths")
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

    shares = vehicle_shares(imagenet, paths) if imagenet is not None else None
    sharp = entropy = None
    if quality is not None and {"sharpness", "object_entropy"} <= set(quality.columns):
        sharp = pd.to_numeric(quality["sharpness"], errors="coerce").to_numpy(dtype=np.float64)
        entropy = pd.to_numeric(quality["object_entropy"], errors="coerce").to_numpy(dtype=np.float64)
    fitted_groups: dict[str, GroupOutlierDetector] = {}
    group_text = [""] * n
    for space, X in arrays.items():
        if X.shape[0] < 2 * (groups.min_group_size if groups is not None else 10):
            break
        det = clone(groups) if groups is not None else GroupOutlierDetector(random_state=random_state)
        det.fit(X, vehicle_share=shares, sharpness=sharp, entropy=entropy, paths=paths, clusters=clusters)
        fitted_groups[space] = det
        flag_cols[f"group:{space}"] = det.flags_
        for key, text in det.thresholds_.items():
            thresholds[f"{key}:{space}"] = f"{space}: {text}"
        for i in np.flatnonzero(det.flags_):
            if not group_text[i]:
                group_text[i] = f"{space} {det.reasons_[i]}"

    verdict = None
    pixel_reasons = [""] * n
    notes = [""] * n
    if quality is not None and "colour" in quality.columns:
        thresholds["colour:palette"] = describe_palette() + "; weighted to the centre of the frame"
    if quality is not None:
        verdict = quality_flags(quality, imagenet=imagenet, max_share=max_pixel_share)
        for col in verdict.scores.columns:
            table[col] = verdict.scores[col].to_numpy()
        for rule in verdict.flags.columns:
            flag_cols[f"pixel:{rule}"] = verdict.flags[rule].to_numpy(dtype=bool)
            thresholds[f"pixel:{rule}"] = verdict.thresholds[rule]
        pixel_reasons, notes = verdict.reasons, verdict.notes
        dup_groups.append(verdict.exact_group)
    elif imagenet is not None:
        nov, vs, pixel_reasons, desc = no_vehicle_flags(imagenet, paths)
        flag_cols["pixel:no-vehicle"] = nov
        thresholds["pixel:no-vehicle"] = desc
        table["pixel_no-vehicle"] = np.where(np.isfinite(vs), 1.0 - vs, 0.0)

    keys = list(flag_cols)
    F = np.column_stack([flag_cols[k] for k in keys]) if keys else np.zeros((n, 0), bool)
    kind = np.array([k.split(":", 1)[0] for k in keys], dtype=object)
    is_pixel = kind == "pixel"
    is_group = kind == "group"
    is_desc = ~is_pixel & ~is_group
    is_advisory = np.array([k.split(":", 1)[1] in advisory for k in keys], dtype=bool) & is_pixel
    n_flags = F.sum(axis=1)
    any_pixel = F[:, is_pixel & ~is_advisory].any(axis=1)
    in_group = F[:, is_group].any(axis=1)
    space_of = np.array([k.split(":", 1)[1] for k in keys], dtype=object)
    desc_spaces = sorted(set(space_of[is_desc]))
    n_kinds = np.zeros(n, dtype=np.int64)
    for sp in desc_spaces:
        n_kinds += F[:, (space_of == sp) & is_desc].any(axis=1)
    clause = descriptor_clauses(n_kinds, len(desc_spaces), shares, min_descriptor_kinds, no_vehicle_kinds,
                                vehicle_veto, no_vehicle_share)
    by_descriptors, by_no_vehicle, shows_vehicle = clause.by_descriptors, clause.by_no_vehicle, clause.shows_vehicle
    need_kinds, nv_kinds, vs = clause.need_kinds, clause.no_vehicle_kinds, clause.shares
    flagged = any_pixel | in_group | by_descriptors | by_no_vehicle
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
    reasons = _reasons(keys, F, pixel_reasons, notes, group_text)
    for i in np.flatnonzero(by_no_vehicle & ~any_pixel & ~in_group & ~by_descriptors):
        if "no vehicle" not in reasons[i]:
            reasons[i] = f"{no_vehicle_reason(vs[i], no_vehicle_share)}; {reasons[i]}"
    table["reason"] = reasons
    table["group_flagged"] = in_group.astype(np.int64)
    table["group"] = group_text

    clauses = [f"a pixel rule fires ({', '.join(advisory) or 'none'} advisory only)"]
    if fitted_groups:
        clauses.append(f"it belongs to a junk group (cluster or sub-cluster) in any of the {len(fitted_groups)} "
                       f"descriptor kind{'s' if len(fitted_groups) > 1 else ''}")
    if desc_spaces:
        veto = (f" and its ImageNet vehicle share is under {vehicle_veto:g} (an image far from the others that shows "
                f"a vehicle is a rare vehicle; {int((shows_vehicle & (n_kinds >= need_kinds)).sum()):,} held back)"
                if vehicle_veto is not None and shares is not None else "")
        clauses.append(f"some descriptor detector ({', '.join(detectors)}) flags it in at least {need_kinds} of the "
                       f"{len(desc_spaces)} descriptor kinds{veto}")
        if no_vehicle_kinds is not None and shares is not None:
            clauses.append(f"its ImageNet vehicle share is under {no_vehicle_share:.3g} (less than a head that knows "
                           f"nothing gives the vehicle classes) and a descriptor detector flags it in at least "
                           f"{nv_kinds} kind{'s' if nv_kinds != 1 else ''}")
    flag_rule = "flagged when " + "; or ".join(clauses) + "; duplicates are reported, never flagged for being duplicates"
    return OutlierReport(table=table, thresholds=thresholds, flag_rule=flag_rule, results=results, quality=verdict,
                         groups=fitted_groups)


@dataclass
class DescriptorClauses:
    """The descriptor part of the flag rule, per image (see :func:`descriptor_clauses`).

    Attributes
    ----------
    by_descriptors : ndarray of shape (n,), bool
        Detectors flag the image in at least ``need_kinds`` kinds and it does not show a vehicle.
    by_no_vehicle : ndarray of shape (n,), bool
        Vehicle share under the uniform-head share and detectors flag it in ``no_vehicle_kinds`` kinds.
    shows_vehicle : ndarray of shape (n,), bool
        Vehicle share at least the veto (held back from ``by_descriptors``).
    shares : ndarray of shape (n,), float64
        The vehicle shares used (NaN: unknown).
    need_kinds, no_vehicle_kinds : int
        The kind counts after capping at the number of kinds (0 when a clause is off).
    """

    by_descriptors: np.ndarray
    by_no_vehicle: np.ndarray
    shows_vehicle: np.ndarray
    shares: np.ndarray
    need_kinds: int
    no_vehicle_kinds: int


def descriptor_clauses(n_kinds: np.ndarray, total_kinds: int, shares: np.ndarray | None,
                       min_descriptor_kinds: int | None = None, no_vehicle_kinds: int | None = 2,
                       vehicle_veto: float | None = VEHICLE_SHARE_BOUND,
                       no_vehicle_share: float = VEHICLE_PRIOR_SHARE) -> DescriptorClauses:
    """The flag rule's descriptor clauses, shared by the study (:func:`find_outliers`) and ``assign``.

    Parameters
    ----------
    n_kinds : ndarray of shape (n,), int
        In how many descriptor kinds some detector flags each image.
    total_kinds : int
        Descriptor kinds judged (0: no clause fires).
    shares : ndarray of shape (n,), float, or None
        ImageNet vehicle share per image (NaN or None: unknown; then neither vehicle clause applies).
    min_descriptor_kinds, no_vehicle_kinds, vehicle_veto, no_vehicle_share
        As in :func:`find_outliers`.

    Returns
    -------
    DescriptorClauses
    """
    n = len(n_kinds)
    vs = np.asarray(shares, dtype=np.float64) if shares is not None else np.full(n, np.nan)
    need = min(min_descriptor_kinds or total_kinds, total_kinds) if total_kinds else 0
    by_descriptors = (n_kinds >= need) if total_kinds else np.zeros(n, dtype=bool)
    shows = np.isfinite(vs) & (vs >= vehicle_veto) if vehicle_veto is not None else np.zeros(n, bool)
    nv = min(no_vehicle_kinds, total_kinds) if no_vehicle_kinds is not None else 0
    by_no_vehicle = (np.isfinite(vs) & (vs < no_vehicle_share) & (n_kinds >= nv)) \
        if (no_vehicle_kinds is not None and total_kinds) else np.zeros(n, bool)
    return DescriptorClauses(by_descriptors & ~shows, by_no_vehicle, shows, vs, need, nv)


def no_vehicle_reason(share: float, no_vehicle_share: float = VEHICLE_PRIOR_SHARE) -> str:
    """The reason text of the no-vehicle clause for one image's vehicle ``share``."""
    return f"no vehicle: ImageNet vehicle share {share:.1%} (under {no_vehicle_share:.0%})"


def _reasons(keys: list[str], F: np.ndarray, pixel_reasons: list[str], notes: list[str],
             group_text: list[str]) -> list[str]:
    """Short human text per row: group finding, descriptor findings by detector, pixel reasons, notes."""
    out = []
    dets = [(k.split(":", 1)[0], k.split(":", 1)[1]) for k in keys]
    for i in range(F.shape[0]):
        by_det: dict[str, list[str]] = {}
        for (det, space), f in zip(dets, F[i]):
            if f and det not in ("pixel", "group"):
                by_det.setdefault(det, []).append(space)
        parts = [f"junk group: {group_text[i]}"] if group_text[i] else []
        parts += [f"{PHRASES.get(d, d)} in {_join_names(s)}" for d, s in by_det.items()]
        if pixel_reasons[i]:
            parts.append(pixel_reasons[i])
        if notes[i]:
            parts.append(notes[i])
        out.append("; ".join(parts))
    return out
