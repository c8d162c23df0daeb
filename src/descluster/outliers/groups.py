"""Group outliers: clusters and sub-clusters that are junk as a whole.

Common junk is dense: many crops of the same road or verge, one camera's empty
frames. Such images sit close to each other, so point detectors (k-distance,
LOF, isolation forest) that look for images far from their neighbours do not
see them. :class:`GroupOutlierDetector` looks at groups instead and flags a
group, with its reason, so that the labelling loop can discard it in one
decision.

Groups
------
- **sub-clusters**: k-means (scikit-learn ``KMeans``; ``MiniBatchKMeans`` above
  50,000 rows, on the leading 32 columns, i.e. principal components) with
  ``k = round(sqrt(n))`` (at most ``n / min_group_size``) in one descriptor
  space: groups of a few dozen similar images;
- **clusters** of a given clustering (the recommended one in a run), when given.

Only groups of at least ``min_group_size`` images are judged. Each level is
compared within itself (clusters with clusters, sub-clusters with sub-clusters).
A flagged group flags its members, except that a group flagged for "no vehicle"
or "low information" does not flag a member whose own vehicle share is at least
the no-vehicle rule's ``max_share`` (0.5): that image shows a vehicle itself (a
red truck grouped with the red roofs of an empty scene); near-identical frames
of one folder flag every member.

Reasons (a group is flagged when one of the first three holds)
---------------------------------------------------------------
``no vehicle``
    The group's median vehicle share lacks vehicle evidence among the groups'
    medians: :class:`~.vehicle.LowVehicleEvidence` (below 0.5 and robust z of its
    logit below -3.5).
``low information``
    The group's median sharpness (:mod:`.pixels`: Laplacian energy over grey
    variance on the object, log) **and** median object entropy (bits) both have
    robust z below -3.5 among the groups, and the sharpness is under
    :data:`EFFECT_RATIO` (1/4) of the groups' median: texture-free frames (sky,
    walls, lens cap, fog); not a group whose median vehicle share reaches the
    no-vehicle rule's ``max_share`` (0.5): smooth vehicles (a trailer's flat side)
    are vehicles.
``near-identical frames of one folder``
    The group's spread (median distance of its members to its centre, log) has
    robust z below -3.5 among the groups and is under :data:`EFFECT_RATIO` of the
    groups' median spread (far tighter than a group of different vehicles), and at
    least ``min_folder_share`` (90%) of it comes from one top-level folder (a
    camera) that holds at most half of the collection (so the folder says
    something): one camera's empty frames, or a parked vehicle filmed all day.
``far from the other groups`` (supporting only)
    Distance from the group's centre to the nearest other centre (log) has robust z
    above 3.5; stated in the reason but never flags alone (a rare vehicle type is far too).

Robust z: Iglewicz & Hoaglin (1993), see :mod:`.thresholds`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from ..errors import ParameterError
from ..validation import check_float, check_int
from .neighbours import check_matrix
from .thresholds import robust_z
from .vehicle import LowVehicleEvidence

#: Above this many rows, sub-clusters come from MiniBatchKMeans on the leading :data:`LARGE_N_DIMS` columns.
LARGE_N = 50_000
LARGE_N_DIMS = 32

#: Effect size of the relative group conditions: beyond robust z, at most this share of the groups' median.
EFFECT_RATIO = 0.25
#: A folder that holds more than this share of the collection does not single a group out.
MAX_FOLDER_SHARE_OF_COLLECTION = 0.5

#: Column order of :attr:`GroupOutlierDetector.groups_`.
GROUP_COLUMNS = [
    "level", "group", "size", "vehicle_share", "sharpness", "entropy", "spread", "separation", "folder",
    "folder_share", "no_vehicle", "low_information", "one_folder_frames", "far", "flagged", "reason",
]


def top_folder(path: str) -> str:
    """First folder of a case path (``"cam3/0001.jpg"`` -> ``"cam3"``), ``""`` for a file at the root."""
    p = str(path).replace("\\", "/")
    p = (p[2:] if p.startswith("./") else p).lstrip("/")
    return p.split("/", 1)[0] if "/" in p else ""


def _median_by(labels: np.ndarray, values: np.ndarray | None, ids: np.ndarray) -> np.ndarray:
    if values is None:
        return np.full(ids.size, np.nan)
    s = pd.Series(np.asarray(values, dtype=np.float64)).groupby(labels).median()
    return s.reindex(ids).to_numpy(dtype=np.float64)


class GroupOutlierDetector(BaseEstimator):
    """Flag clusters and sub-clusters that are junk as a whole (see the module notes).

    Parameters
    ----------
    n_groups : "auto" or int, default "auto"
        Sub-clusters: ``round(sqrt(n))`` when "auto", capped at ``n // min_group_size``.
    min_group_size : int, default 10
        Smallest group that is judged.
    z : float, default 3.5
        Robust-z cut of every relative condition.
    evidence : LowVehicleEvidence or None, default None
        The "no vehicle" rule; None means ``LowVehicleEvidence(z=z)``.
    min_folder_share : float, default 0.9
        Share of a tight group that must come from one top-level folder.
    random_state : int, default 0
        Seed of k-means.

    Attributes
    ----------
    sub_labels_ : ndarray of shape (n_samples,), int64
        Sub-cluster of every row.
    groups_ : DataFrame of shape (n_groups_judged, 16)
        One row per judged group, columns :data:`GROUP_COLUMNS`: ``level``
        ("cluster" or "sub-cluster"), ``group`` (its id), ``size``, the medians
        ``vehicle_share``, ``sharpness``, ``entropy``, ``spread`` (space units),
        ``separation`` (distance to the nearest other centre), ``folder`` and
        ``folder_share`` (most common top-level folder), one bool per reason,
        ``flagged`` and ``reason`` (str).
    flags_ : ndarray of shape (n_samples,), bool
        Flagged as a member of at least one flagged group (see the module notes).
    reasons_ : list of str, length n_samples
        "; "-joined reasons of the flagged groups a row belongs to ("" if none).
    group_of_ : ndarray of shape (n_samples,), int64
        Row number in ``groups_`` of the (first) flagged group of each row, -1 if none.
    thresholds_ : dict of str -> str
        Each condition in words with its numbers and counts.
    """

    def __init__(self, n_groups="auto", min_group_size: int = 10, z: float = 3.5, evidence=None,
                 min_folder_share: float = 0.9, random_state: int = 0):
        self.n_groups = n_groups
        self.min_group_size = min_group_size
        self.z = z
        self.evidence = evidence
        self.min_folder_share = min_folder_share
        self.random_state = random_state

    # ------------------------------------------------------------------ fitting
    def _validate(self, n: int) -> int:
        check_int("min_group_size", self.min_group_size, 2)
        check_float("z", self.z, 0.0, np.inf)
        check_float("min_folder_share", self.min_folder_share, 0.0, 1.0)
        if self.evidence is not None and not isinstance(self.evidence, LowVehicleEvidence):
            raise ParameterError(f"evidence={self.evidence!r} must be a LowVehicleEvidence or None")
        cap = max(1, n // self.min_group_size)
        if self.n_groups == "auto":
            return int(min(cap, max(1, round(np.sqrt(n)))))
        return min(cap, check_int("n_groups", self.n_groups, 1))

    def _sub_clusters(self, X: np.ndarray, k: int) -> np.ndarray:
        from sklearn.cluster import KMeans, MiniBatchKMeans

        if k <= 1:
            return np.zeros(X.shape[0], dtype=np.int64)
        if X.shape[0] > LARGE_N:
            Xs = np.ascontiguousarray(X[:, :LARGE_N_DIMS])
            model = MiniBatchKMeans(n_clusters=k, random_state=self.random_state, n_init=3, batch_size=4096)
            return model.fit_predict(Xs).astype(np.int64)
        return KMeans(n_clusters=k, random_state=self.random_state, n_init=1).fit_predict(X).astype(np.int64)

    def fit(self, X, y=None, vehicle_share=None, sharpness=None, entropy=None, paths=None, clusters=None):
        """Group the rows of ``X`` and judge every group.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features), float32
            One reduced descriptor space.
        y : ignored
        vehicle_share : ndarray of shape (n_samples,), float, optional
            ImageNet vehicle share per row (NaN = unknown); without it no "no vehicle" reason.
        sharpness, entropy : ndarray of shape (n_samples,), float, optional
            From the pixel table; without both no "low information" reason.
        paths : list of str, length n_samples, optional
            Case paths (their top-level folder is the camera); without them no
            "one folder" reason.
        clusters : ndarray of shape (n_samples,), int, optional
            A clustering whose clusters are judged too (-1 = noise, not judged).

        Returns
        -------
        self

        Raises
        ------
        ParameterError
            Bad parameters, or an array whose length differs from ``X``.
        """
        X = check_matrix(X)
        n = X.shape[0]
        k = self._validate(n)
        for name, v in (("vehicle_share", vehicle_share), ("sharpness", sharpness), ("entropy", entropy),
                        ("paths", paths), ("clusters", clusters)):
            if v is not None and len(v) != n:
                raise ParameterError(f"{name} has {len(v):,} entries but X has {n:,} rows")
        evidence = self.evidence or LowVehicleEvidence(z=self.z)
        self.sub_labels_ = self._sub_clusters(X, k)
        folders = np.array([top_folder(p) for p in paths], dtype=object) if paths is not None else None
        log_sharp = np.log(np.maximum(np.asarray(sharpness, dtype=np.float64), 1e-12)) if sharpness is not None else None
        tables, self.thresholds_ = [], {}
        levels = [("sub-cluster", self.sub_labels_)]
        if clusters is not None:
            levels.insert(0, ("cluster", np.asarray(clusters, dtype=np.int64)))
        for level, labels in levels:
            t, th = self._judge(level, X, labels, vehicle_share, log_sharp, entropy, folders, evidence)
            tables.append(t)
            self.thresholds_.update(th)
        self.groups_ = pd.concat(tables, ignore_index=True).reindex(columns=GROUP_COLUMNS)
        self.flags_ = np.zeros(n, dtype=bool)
        self.group_of_ = np.full(n, -1, dtype=np.int64)
        reasons: list[list[str]] = [[] for _ in range(n)]
        own = np.asarray(vehicle_share, dtype=np.float64) if vehicle_share is not None else np.full(n, np.nan)
        for row in np.flatnonzero(self.groups_["flagged"].to_numpy(dtype=bool)):
            g = self.groups_.iloc[row]
            labels = dict(levels)[g["level"]]
            members = np.flatnonzero(labels == g["group"])
            if not g["one_folder_frames"]:  # no vehicle / low information: not the members that show one themselves
                members = members[~(own[members] >= evidence.max_share)]
            text = f"{g['level']} {int(g['group'])} ({int(g['size'])} images): {g['reason']}"
            for i in members:
                if self.group_of_[i] < 0:
                    self.group_of_[i] = row
                reasons[i].append(text)
            self.flags_[members] = True
        self.reasons_ = ["; ".join(r) for r in reasons]
        return self

    def _judge(self, level, X, labels, vehicle_share, log_sharp, entropy, folders, evidence):
        ids, sizes = np.unique(labels[labels >= 0], return_counts=True)
        ids = ids[sizes >= self.min_group_size]
        sizes = sizes[sizes >= self.min_group_size]
        m = ids.size
        empty = pd.DataFrame(columns=GROUP_COLUMNS)
        if m == 0:
            return empty, {f"group:{level}": f"{level}s: none with at least {self.min_group_size} images"}
        centres = np.stack([X[labels == g].mean(axis=0) for g in ids])
        spread = np.array([np.median(np.linalg.norm(X[labels == g] - c, axis=1)) for g, c in zip(ids, centres)])
        if m > 1:
            d2 = (centres**2).sum(1)[:, None] + (centres**2).sum(1)[None, :] - 2 * centres @ centres.T
            np.fill_diagonal(d2, np.inf)
            separation = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
        else:
            separation = np.full(1, np.nan)
        t = pd.DataFrame({"level": level, "group": ids, "size": sizes,
                          "vehicle_share": _median_by(labels, vehicle_share, ids),
                          "sharpness": np.exp(_median_by(labels, log_sharp, ids)),
                          "entropy": _median_by(labels, entropy, ids), "spread": spread, "separation": separation})
        th = {}
        what = f"{level}s of >= {self.min_group_size} images"
        # no vehicle
        if vehicle_share is not None and np.isfinite(t["vehicle_share"]).any():
            ev = evidence.decide(t["vehicle_share"].to_numpy(), what)
            t["no_vehicle"] = ev.flags
            th[f"group:{level}:no-vehicle"] = f"no vehicle: median {ev.description}"
        else:
            t["no_vehicle"] = False
        # low information
        if log_sharp is not None and entropy is not None:
            sh = t["sharpness"].to_numpy()
            zs = robust_z(np.log(np.maximum(sh, 1e-12)))[0]
            ze = robust_z(t["entropy"].to_numpy())[0]
            # a group whose median image shows a vehicle to the ImageNet head is plain vehicles (a trailer's
            # flat side, a van's panel), not a texture-free frame: the no-vehicle rule's own bound decides
            shows = t["vehicle_share"].to_numpy() >= evidence.max_share  # NaN (unknown): False
            t["low_information"] = ((zs < -self.z) & (ze < -self.z) & (sh <= EFFECT_RATIO * np.nanmedian(sh))
                                    & ~shows)
            th[f"group:{level}:low-information"] = (
                f"low information: robust z of median log sharpness and of median object entropy both < -{self.z:g} "
                f"among {m:,} {what}, sharpness under {EFFECT_RATIO:g} × their median (medians "
                f"{np.nanmedian(sh):.3g}, {np.nanmedian(t['entropy']):.2f} bits), and a median vehicle share "
                f"under {evidence.max_share:g} (or unknown); {int(t['low_information'].sum()):,} flagged")
        else:
            t["low_information"] = False
        # near-identical frames of one folder
        if folders is not None:
            overall = pd.Series(folders).value_counts(normalize=True)
            fs = [pd.Series(folders[labels == g]).value_counts(normalize=True) for g in ids]
            t["folder"] = [s.index[0] for s in fs]
            t["folder_share"] = [float(s.iloc[0]) for s in fs]
            zt = robust_z(np.log(np.maximum(spread, 1e-12)))[0]
            tight = (zt < -self.z) & (spread <= EFFECT_RATIO * np.median(spread))
            telling = t["folder"].map(overall).to_numpy() <= MAX_FOLDER_SHARE_OF_COLLECTION
            t["one_folder_frames"] = tight & telling & (t["folder_share"].to_numpy() >= self.min_folder_share)
            th[f"group:{level}:one-folder"] = (
                f"near-identical frames of one folder: robust z of log spread < -{self.z:g} among {m:,} {what} and "
                f"spread under {EFFECT_RATIO:g} × their median ({np.median(spread):.3g}), >= {self.min_folder_share:.0%} "
                f"from one top-level folder holding at most {MAX_FOLDER_SHARE_OF_COLLECTION:.0%} of the collection; "
                f"{int(t['one_folder_frames'].sum()):,} flagged")
        else:
            t["folder"], t["folder_share"], t["one_folder_frames"] = "", np.nan, False
        t["far"] = (robust_z(np.log(np.maximum(separation, 1e-12)))[0] > self.z) if m > 2 else False
        t["flagged"] = t["no_vehicle"] | t["low_information"] | t["one_folder_frames"]
        t["reason"] = [self._reason(r) for r in t.itertuples()]
        return t, th

    @staticmethod
    def _reason(r) -> str:
        parts = []
        if r.no_vehicle:
            parts.append(f"no vehicle (median vehicle share {r.vehicle_share:.0%})")
        if r.low_information:
            parts.append(f"low information (median entropy {r.entropy:.1f} bits, sharpness {r.sharpness:.3g})")
        if r.one_folder_frames:
            parts.append(f"near-identical frames of one folder ({r.folder or 'root'}/ {r.folder_share:.0%})")
        if parts and r.far:
            parts.append("far from the other groups")
        return "; ".join(parts)

    def fit_predict(self, X, y=None, **kwargs) -> np.ndarray:
        """Fit and return ``flags_`` (shape (n_samples,), bool)."""
        return self.fit(X, **kwargs).flags_
