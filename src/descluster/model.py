"""The fitted model of a study: what labels tomorrow's images in seconds, without rerunning the study.

``descluster run`` saves it to ``OUT/model/`` and :class:`FittedModel` reads it back:

``model.json``
    format version, the versions of descluster and of the libraries that fitted it,
    the seed, every space (its :class:`~descluster.results.SpaceId`, scaler name,
    widths, mixture parts and block factors), every saved configuration (the
    recommended one and each descriptor kind's best: space, algorithm, k, predictor
    kind), cluster names, the outlier thresholds and flag rule in numbers and words,
    and the drift reference (quantile, cluster counts of the study).
``arrays.npz``
    the arrays those entries name (scaler offsets and factors, PCA means and
    components, cluster centres or mixture parameters or fitted rows, outlier
    reference rows with their k-distances and local reachability densities, drift
    radii), loaded with ``allow_pickle=False``.

Nothing is pickled: a model file from elsewhere can be read safely.

A labelling session (``OUT/labels.sqlite``) adds one classifier per task
(:class:`LabelModel`, :meth:`FittedModel.with_labelling`): ``descluster assign``
fits them from the session's answers when the model it loads has none, and
``model.with_labelling(OUT).save(OUT / "model")`` keeps them in the model files.

What :meth:`FittedModel.assign` does with a new case (rows in input order):

1. each needed space: the saved scaler + PCA (and mixture factors) applied to the new
   raw descriptors (:class:`~descluster.preprocess.spaces.Reduction`), by the same
   float32 loop that made the study's space;
2. each saved configuration: its predictor's labels and confidence
   (:mod:`descluster.cluster.predictors`);
3. outlier checks per descriptor kind against a reference sample of the study's rows
   in that kind's best space: the distance to the ``k_knn``-th reference neighbour
   (Ramaswamy, Rastogi & Shim 2000) and the local outlier factor with respect to the
   reference (Breunig et al. 2000, "novelty" form as in scikit-learn's
   ``LocalOutlierFactor(novelty=True)``), each cut at the robust-z threshold of the
   reference's own scores (Iglewicz & Hoaglin 1993), and, where the study ran it, the
   isolation forest (Liu, Ting & Zhou 2008) fitted on the reference, saved as tree
   arrays (:func:`~descluster.outliers.detectors.forest_arrays`) and cut at the robust z
   3.5 of the reference's scores as in the study; combined by the study's flag rule;
   then the pixel rules at the study's cuts, when the new case has images
   (:class:`PixelReference`);
4. drift (:class:`Drift`): images far from every cluster (beyond the study's
   ``drift_quantile`` of distances to that centre), new dense groups among them
   (connected components of the graph joining far images that are as close to each other
   as 90 % of the study's images are to their neighbours), and the shift of cluster shares (total variation
   distance and Pearson's chi-square test against the study's shares).
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import __version__
from .cluster.predictors import CentroidPredictor, Predictor, predictor_from_state
from .errors import CaseError, ParameterError
from .io.atomic import json_default, write_bytes, write_csv, write_text
from .preprocess.spaces import Mixture, Reduction
from .results import SpaceId
from .rows import sample_rows

__all__ = ["FittedModel", "OutlierReference", "PixelReference", "LabelModel", "DriftReference", "Assignment", "MODEL_DIR", "MODEL_FORMAT"]

MODEL_DIR = "model"
MODEL_JSON = "model.json"
MODEL_ARRAYS = "arrays.npz"
MODEL_FORMAT = 1
#: Quantile of the study's neighbour distances under which far images count as one dense group.
GROUP_DENSITY = 0.9
#: Libraries whose versions are recorded with a model.
LIBRARIES = ("numpy", "scipy", "scikit-learn", "hdbscan", "faiss-cpu", "pandas")


def _versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {"descluster": __version__}
    for pkg in LIBRARIES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


# --------------------------------------------------------------------------- outlier reference


@dataclass
class OutlierReference:
    """Reference rows of one descriptor space and the thresholds new rows are judged by.

    Attributes
    ----------
    space : str
        ``SpaceId.key`` of the space.
    rows : ndarray of shape (m, p), float32
        A fixed-seed sample of the study's rows in the space (m <= ``reference_rows``).
    kdist : ndarray of shape (m,), float64
        Each reference row's distance to its ``k_lof``-th nearest other reference row.
    lrd : ndarray of shape (m,), float64
        Each reference row's local reachability density (Breunig et al. 2000).
    k_knn, k_lof : int
        Neighbours of the k-distance score and of LOF.
    knn_threshold, lof_threshold : float
        Flag a new row when its score exceeds these.
    rules : dict of str -> str
        ``{"knn": ..., "lof": ..., "iforest": ...}``: the thresholds in words, with numbers.
    forest : dict of str -> ndarray or None
        The isolation forest fitted on ``rows`` (:func:`~descluster.outliers.detectors.forest_arrays`);
        None when the study did not run the isolation forest.
    iforest_threshold : float
        Flag a new row when its isolation-forest score exceeds this (NaN without a forest).
    """

    space: str
    rows: np.ndarray
    kdist: np.ndarray
    lrd: np.ndarray
    k_knn: int
    k_lof: int
    knn_threshold: float
    lof_threshold: float
    rules: dict[str, str]
    forest: dict[str, np.ndarray] | None = None
    iforest_threshold: float = float("nan")

    @classmethod
    def fit(cls, space: str, X: np.ndarray, reference_rows: int, random_state: int = 0, k_knn: int = 10,
            k_lof: int = 20, iforest: bool = True, n_estimators: int = 200,
            max_samples: int = 256) -> "OutlierReference":
        """Sample the reference rows of ``X`` (n, p) and score them against each other.

        ``iforest`` also fits an isolation forest of ``n_estimators`` trees on ``max_samples``
        rows each (the study's detector defaults, :class:`~descluster.outliers.detectors.IsolationForestDetector`).

        Raises
        ------
        ParameterError
            Fewer than 3 rows.
        """
        from .outliers.detectors import lof_from_knn
        from .outliers.neighbours import knn_search
        from .outliers.thresholds import RobustZ

        idx = sample_rows(X.shape[0], reference_rows, random_state)
        R = np.ascontiguousarray(np.asarray(X[idx], dtype=np.float32))
        m = R.shape[0]
        if m < 3:
            raise ParameterError(f"space {space}: {m} rows; an outlier reference needs at least 3")
        k_knn, k_lof = min(k_knn, m - 1), min(k_lof, m - 1)
        D, I = knn_search(R, max(k_knn, k_lof), progress=False, index="exact")
        D = D.astype(np.float64)
        knn = D[:, k_knn - 1]
        lof = lof_from_knn(D, I, k_lof)
        kdist = D[:, k_lof - 1]
        reach = np.maximum(D[:, :k_lof], kdist[I[:, :k_lof]])
        lrd = 1.0 / (reach.mean(axis=1) + 1e-10)
        rules, thresholds = {}, {}
        for name, label, scores in (("knn", f"k-distance (k={k_knn})", knn), ("lof", f"LOF (k={k_lof})", lof)):
            d = RobustZ().decide(scores)
            thresholds[name] = d.threshold
            rules[name] = f"{space}: {label} against {m:,} reference rows: {d.description}"
        forest, iforest_threshold = None, float("nan")
        if iforest:
            from sklearn.ensemble import IsolationForest

            from .outliers.detectors import forest_arrays, forest_scores

            est = IsolationForest(n_estimators=n_estimators, max_samples=min(max_samples, m),
                                  random_state=random_state, n_jobs=1).fit(R)
            forest = forest_arrays(est)
            d = RobustZ(3.5, log=False).decide(forest_scores(forest, R))
            iforest_threshold = d.threshold
            rules["iforest"] = (f"{space}: isolation forest ({n_estimators} trees) fitted on {m:,} reference rows: "
                                f"{d.description}")
        return cls(space, R, kdist, lrd, k_knn, k_lof, thresholds["knn"], thresholds["lof"], rules, forest,
                   iforest_threshold)

    def score(self, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """k-distance and LOF of new rows ``Y`` (n, p) with respect to the reference.

        Returns
        -------
        knn : ndarray of shape (n,), float64
        lof : ndarray of shape (n,), float64
        """
        from .outliers.neighbours import knn_search

        k = max(self.k_knn, self.k_lof)
        D, I = knn_search(self.rows, k, queries=np.ascontiguousarray(Y, dtype=np.float32), progress=False,
                          index="exact")
        D = D.astype(np.float64)
        reach = np.maximum(D[:, : self.k_lof], self.kdist[I[:, : self.k_lof]])
        lrd = 1.0 / (reach.mean(axis=1) + 1e-10)
        return D[:, self.k_knn - 1], self.lrd[I[:, : self.k_lof]].mean(axis=1) / lrd

    def iforest_score(self, Y: np.ndarray) -> np.ndarray | None:
        """Isolation-forest scores of new rows ``Y`` (n, p): ndarray (n,) float64, or None without a forest."""
        from .outliers.detectors import forest_scores

        return None if self.forest is None else forest_scores(self.forest, Y)

    def to_state(self) -> tuple[dict, dict]:
        """``(meta, arrays)`` for saving."""
        meta = {"space": self.space, "k_knn": self.k_knn, "k_lof": self.k_lof, "knn_threshold": self.knn_threshold,
                "lof_threshold": self.lof_threshold, "rules": self.rules, "iforest": self.forest is not None,
                "iforest_threshold": self.iforest_threshold}
        arrays = {"rows": self.rows, "kdist": self.kdist, "lrd": self.lrd}
        arrays.update({f"forest_{k}": v for k, v in (self.forest or {}).items()})
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict) -> "OutlierReference":
        """Inverse of :meth:`to_state`."""
        forest = {k[len("forest_"):]: v for k, v in arrays.items() if k.startswith("forest_")} if meta.get("iforest") else None
        return cls(meta["space"], arrays["rows"], arrays["kdist"], arrays["lrd"], int(meta["k_knn"]),
                   int(meta["k_lof"]), float(meta["knn_threshold"]), float(meta["lof_threshold"]), dict(meta["rules"]),
                   forest, float(meta.get("iforest_threshold", float("nan"))))


# --------------------------------------------------------------------------- pixel reference


@dataclass
class PixelReference:
    """The study's pixel rules at the thresholds it derived, to judge new images' pixels the same way.

    A pixel rule's threshold comes from the collection's own statistics
    (:mod:`descluster.outliers.quality`); new images are judged against the study's
    collection, not against their own batch, so a batch that is all blurred is flagged
    as blurred.

    Attributes
    ----------
    cuts : dict of str -> float
        Rule name (of :data:`~descluster.outliers.quality.QUALITY_RULES`) -> threshold in its
        column's units (:attr:`~descluster.outliers.quality.QualityVerdict.cuts`); rules the
        study held back (they described too much of its collection) are absent.
    held_back : list of str
        Those rules, named.
    unusual_size : bool
        Whether the size rule (a side under 16 px or aspect outside [1/4, 4]) applies.
    rules : dict of str -> str
        The study's rule texts for the kept rules.
    """

    cuts: dict[str, float]
    held_back: list[str]
    unusual_size: bool
    rules: dict[str, str]

    @classmethod
    def fit(cls, quality: pd.DataFrame, max_share: float) -> "PixelReference":
        """The cuts the study's pixel table ``quality`` (n rows) gives under ``max_share``.

        Raises
        ------
        ParameterError
            Bad ``max_share`` (:func:`~descluster.outliers.quality.quality_flags`).
        """
        from .outliers.quality import quality_flags

        v = quality_flags(quality, imagenet=None, max_share=max_share)
        keep = {k: t for k, t in v.thresholds.items() if k in v.cuts or k in ("unreadable", "unusual-size")}
        return cls(dict(v.cuts), list(v.held_back), "unusual-size" not in v.held_back, keep)

    def judge(self, quality: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
        """Flags and reasons of new images' pixel table ``quality`` (n rows, input order).

        Returns
        -------
        flags : ndarray of shape (n,), bool
            Any kept rule fires, or the file is unreadable.
        reasons : list of str, length n
            "; "-joined reasons ("" where none fired).
        """
        from .outliers.quality import QUALITY_RULES, _with_fallback_columns, unusual_size

        table = _with_fallback_columns(quality)
        n = len(table)
        readable = table["readable"].to_numpy(dtype=bool)
        cols: list[tuple[np.ndarray, list[str]]] = [
            (~readable, [f"unreadable: {e}" if not r else "" for r, e in zip(readable, table["error"].astype(str))])]
        for rule in QUALITY_RULES:
            if rule.name not in self.cuts:
                continue
            v = pd.to_numeric(table[rule.column], errors="coerce").to_numpy(dtype=np.float64)
            f = rule.fires(table, readable, self.cuts[rule.name])
            cols.append((f, [rule.reason.format(v=v[i]) if f[i] else "" for i in range(n)]))
        if self.unusual_size:
            cols.append(unusual_size(table, readable))
        flags = np.column_stack([f for f, _ in cols]).any(axis=1)
        reasons = ["; ".join(r[i] for _, r in cols if r[i]) for i in range(n)]
        return flags, reasons

    def to_state(self) -> dict:
        """The JSON entry (no arrays)."""
        return {"cuts": self.cuts, "held_back": self.held_back, "unusual_size": self.unusual_size, "rules": self.rules}

    @classmethod
    def from_state(cls, meta: dict) -> "PixelReference":
        """Inverse of :meth:`to_state`."""
        return cls({k: float(v) for k, v in meta["cuts"].items()}, list(meta["held_back"]),
                   bool(meta["unusual_size"]), dict(meta["rules"]))


# --------------------------------------------------------------------------- labelling models


@dataclass
class LabelModel:
    """A labelling task's classifier for new images: the inductive part of the session's propagation.

    The session (:mod:`descluster.labelling`) spreads labels with a logistic model
    smoothed over the study's kNN graph (Correct & Smooth); the smoothing needs the
    study's graph, so a new image gets the logistic part alone: a multinomial
    ``LogisticRegression(C=1)`` on the task's answered rows, isotropically scaled
    (:class:`~descluster.labelling.propagate.LogisticPropagation`), in the task's space.

    Attributes
    ----------
    task : str
    space : str
        ``SpaceId.key`` the classifier reads (the task's chosen space, or the recommended
        configuration's when the model does not hold that one; ``note`` says so).
    classes : list of str
        The task's classes (index = class code).
    fitted : ndarray of shape (m,), int64
        Class codes of the fitted columns (classes with answers).
    W : ndarray of shape (p, m or 1), float32
    b : ndarray of shape (m or 1,), float32
    n_labelled : int
        Answered rows it was fitted on.
    note : str
    """

    task: str
    space: str
    classes: list[str]
    fitted: np.ndarray
    W: np.ndarray
    b: np.ndarray
    n_labelled: int
    note: str = ""

    @classmethod
    def fit(cls, task: str, space: str, classes: list[str], X: np.ndarray, y: np.ndarray,
            note: str = "") -> "LabelModel":
        """Fit on the rows of ``X`` (n, p) with ``y >= 0`` (int, class codes; -1 = unlabelled).

        Raises
        ------
        ParameterError
            Fewer than two classes answered.
        """
        from sklearn.linear_model import LogisticRegression

        from .labelling.propagate import isotropic_params, logistic_weights

        lab = np.flatnonzero(y >= 0)
        if np.unique(y[lab]).size < 2:
            raise ParameterError(f"task {task!r}: {np.unique(y[lab]).size} class(es) answered; a classifier needs two")
        mean, scale = isotropic_params(X)
        model = LogisticRegression(C=1.0, max_iter=300).fit((np.asarray(X[lab], np.float32) - mean) / np.float32(scale),
                                                            y[lab])
        W, b = logistic_weights(model, mean, scale)
        return cls(task, space, list(classes), np.asarray(model.classes_, np.int64), W, b, int(lab.size), note)

    def predict(self, X: np.ndarray) -> tuple[list[str], np.ndarray]:
        """Class names and confidence (largest probability, float64) of rows ``X`` (n, p) of :attr:`space`."""
        from .labelling.propagate import logistic_proba

        P = logistic_proba(X, self.W, self.b, self.fitted, len(self.classes))
        return [self.classes[i] for i in P.argmax(axis=1)], P.max(axis=1).astype(np.float64)

    def to_state(self) -> tuple[dict, dict]:
        """``(meta, arrays)`` for saving."""
        meta = {"task": self.task, "space": self.space, "classes": self.classes, "n_labelled": self.n_labelled,
                "note": self.note}
        return meta, {"fitted": self.fitted, "W": self.W, "b": self.b}

    @classmethod
    def from_state(cls, meta: dict, arrays: dict) -> "LabelModel":
        """Inverse of :meth:`to_state`."""
        return cls(meta["task"], meta["space"], list(meta["classes"]), arrays["fitted"], arrays["W"], arrays["b"],
                   int(meta["n_labelled"]), meta.get("note", ""))


# --------------------------------------------------------------------------- drift reference


@dataclass
class DriftReference:
    """What the study looked like, to tell when new images differ from it.

    Attributes
    ----------
    space : str
        ``SpaceId.key`` of the recommended clustering's space.
    centers : ndarray of shape (k, p), float32
        Its cluster means.
    radii : ndarray of shape (k,), float64
        Per centre, the ``quantile`` of the study's distances to it over the rows nearest to it.
    quantile : float
    scale : float
        The :data:`GROUP_DENSITY` quantile of the reference rows' distances to their
        ``new_group_min - 1``-th nearest reference row: far images closer than this to each other
        (as close as 90 % of the study's images are to their neighbours) are one group.
    new_group_min : int
    counts : dict of int -> int
        Study images per recommended cluster (-1 = noise).
    own_far_share : float or None
        Share of the study's own rows beyond their centre's radius: what "far" means for
        images like the study's. About ``1 - quantile`` for large clusters, more for small
        ones (the quantile of a few distances, interpolated, lies below their largest). None
        for a model saved before it was recorded (then ``1 - quantile`` is quoted).
    """

    space: str
    centers: np.ndarray
    radii: np.ndarray
    quantile: float
    scale: float
    new_group_min: int
    counts: dict[int, int]
    own_far_share: float | None = None

    @classmethod
    def fit(cls, space: str, X: np.ndarray, labels: np.ndarray, centers: np.ndarray, quantile: float,
            new_group_min: int, reference_rows: int, random_state: int = 0) -> "DriftReference":
        """Radii from the study's rows ``X`` (n, p), scale from a fixed-seed sample of them."""
        from .outliers.neighbours import knn_search

        pred = CentroidPredictor(centers)
        D = pred.distances(X)
        near = D.argmin(axis=1)
        d = D[np.arange(D.shape[0]), near]
        radii = np.array([np.quantile(d[near == c], quantile) if np.any(near == c) else np.max(d)
                          for c in range(pred.centers.shape[0])], dtype=np.float64)
        idx = sample_rows(X.shape[0], reference_rows, random_state)
        R = np.ascontiguousarray(np.asarray(X[idx], dtype=np.float32))
        kk = max(1, min(new_group_min - 1, R.shape[0] - 1))
        scale = float(np.quantile(knn_search(R, kk, progress=False, index="exact")[0][:, -1], GROUP_DENSITY))
        values, counts = np.unique(np.asarray(labels), return_counts=True)
        own_far = float(np.mean(d > radii[near])) if d.size else 0.0
        return cls(space, pred.centers, radii, float(quantile), scale, int(new_group_min),
                   {int(v): int(c) for v, c in zip(values, counts)}, own_far)

    def to_state(self) -> tuple[dict, dict]:
        """``(meta, arrays)`` for saving."""
        meta = {"space": self.space, "quantile": self.quantile, "scale": self.scale,
                "new_group_min": self.new_group_min, "counts": {str(k): v for k, v in self.counts.items()},
                "own_far_share": self.own_far_share}
        return meta, {"centers": self.centers, "radii": self.radii}

    @classmethod
    def from_state(cls, meta: dict, arrays: dict) -> "DriftReference":
        """Inverse of :meth:`to_state`."""
        return cls(meta["space"], arrays["centers"], arrays["radii"], float(meta["quantile"]), float(meta["scale"]),
                   int(meta["new_group_min"]), {int(k): int(v) for k, v in meta["counts"].items()},
                   None if meta.get("own_far_share") is None else float(meta["own_far_share"]))


# --------------------------------------------------------------------------- the model


@dataclass
class Configuration:
    """One saved clustering: its space, algorithm, k and predictor."""

    key: str
    space: str
    algorithm: str
    k: int
    predictor: Predictor


@dataclass
class FittedModel:
    """Everything needed to label new images like the study (see the module docstring).

    Attributes
    ----------
    descriptors : dict of str -> int
        Descriptor kind -> number of raw features a new case must have.
    spaces : dict of str -> (SpaceId, Reduction or Mixture)
        Every space a configuration or an outlier reference needs (mixture parts included).
    configurations : dict of str -> Configuration
        The recommended configuration and each descriptor kind's best, by ``Choice.key``.
    recommended : str
    per_descriptor : dict of str -> str
        Descriptor kind -> key of its best configuration.
    cluster_names : dict of int -> str
        Names of the recommended clusters (the automatic descriptions until a team names them).
    outliers : dict of str -> OutlierReference
        Descriptor kind -> reference in its best configuration's space.
    flag_rule : dict of str -> int
        ``min_descriptor_kinds`` of the study's flag rule (None: every kind).
    drift : DriftReference or None
    pixels : PixelReference or None
        The study's pixel rules and cuts (None when the study ran no pixel checks).
    labelling : dict of str -> LabelModel
        Task name -> classifier of a labelling session (:meth:`with_labelling`); empty before one.
    seed : int
    versions : dict of str -> str or None
        descluster and library versions that fitted the model.
    """

    descriptors: dict[str, int]
    spaces: dict[str, tuple[SpaceId, Any]]
    configurations: dict[str, Configuration]
    recommended: str
    per_descriptor: dict[str, str]
    cluster_names: dict[int, str] = field(default_factory=dict)
    outliers: dict[str, OutlierReference] = field(default_factory=dict)
    flag_rule: dict[str, int] = field(default_factory=dict)
    drift: DriftReference | None = None
    pixels: PixelReference | None = None
    labelling: dict[str, LabelModel] = field(default_factory=dict)
    seed: int = 0
    versions: dict[str, str | None] = field(default_factory=_versions)

    # -- building ------------------------------------------------------------------
    @classmethod
    def from_run(cls, result, config) -> "FittedModel":
        """The model of a finished study (``RunResult``) under its ``RunConfig``.

        Raises
        ------
        ParameterError
            If a saved configuration has no predictor (e.g. it found no usable clustering).
        """
        keys = list(dict.fromkeys([result.recommended, *result.per_descriptor.values()]))
        configurations = {}
        for key in keys:
            ch = result.choices[key]
            if ch.predictor is None:
                raise ParameterError(f"configuration {key} has no predictor (k = {ch.k}: {ch.reason})")
            configurations[key] = Configuration(key, ch.space.key, ch.algorithm, int(ch.k), ch.predictor)
        needed = {c.space for c in configurations.values()}
        spaces: dict[str, tuple[SpaceId, Any]] = {}
        for skey in sorted(needed):
            sid = result.spaces[skey].id
            for part in (sid.parts or (sid,)):
                spaces[part.key] = (part, result.spaces[part.key].transform)
            spaces[skey] = (sid, result.spaces[skey].transform)
        outliers = {}
        mc = config.model
        if config.outliers.enabled:
            for d, key in sorted(result.per_descriptor.items()):
                skey = result.choices[key].space.key
                outliers[d] = OutlierReference.fit(skey, result.spaces[skey].X, mc.reference_rows, config.seed,
                                                   iforest="iforest" in config.outliers.detectors)
                spaces.setdefault(skey, (result.spaces[skey].id, result.spaces[skey].transform))
        rec = result.choices[result.recommended]
        drift = None
        if rec.centroids is not None and np.all(np.isfinite(rec.centroids)):
            drift = DriftReference.fit(rec.space.key, result.spaces[rec.space.key].X, rec.labels, rec.centroids,
                                       mc.drift_quantile, mc.new_group_min, mc.reference_rows, config.seed)
        names = {}
        if result.cluster_facts is not None and "description" in result.cluster_facts:
            names = {int(c): str(t) for c, t in zip(result.cluster_facts["cluster"], result.cluster_facts["description"])}
        descriptors = {}
        for sid, transform in spaces.values():
            if not sid.is_mixture:
                descriptors[sid.descriptor] = int(transform.n_features_in)
        from .outliers.vehicle import VEHICLE_PRIOR_SHARE, VEHICLE_SHARE_BOUND

        return cls(descriptors=dict(sorted(descriptors.items())), spaces=spaces, configurations=configurations,
                   recommended=result.recommended, per_descriptor=dict(result.per_descriptor), cluster_names=names,
                   outliers=outliers,
                   flag_rule={"min_descriptor_kinds": config.outliers.min_descriptor_kinds,
                              "no_vehicle_kinds": config.outliers.no_vehicle_kinds,
                              "vehicle_veto": VEHICLE_SHARE_BOUND, "no_vehicle_share": VEHICLE_PRIOR_SHARE},
                   drift=drift, seed=config.seed,
                   pixels=None if result.quality is None else PixelReference.fit(result.quality,
                                                                                 config.outliers.max_pixel_share))

    # -- saving --------------------------------------------------------------------
    def to_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """``(model.json content, arrays)``; array names are ``<entry>.<name>``."""
        arrays: dict[str, np.ndarray] = {}

        def put(prefix: str, values: dict) -> None:
            for k, v in values.items():
                arrays[f"{prefix}.{k}"] = np.asarray(v)

        spaces = []
        for i, (key, (sid, transform)) in enumerate(self.spaces.items()):
            entry = {"key": key, "id": sid.to_dict(), "arrays": f"space{i}"}
            if isinstance(transform, Mixture):
                entry.update(kind="mixture", parts=[p.key for p in transform.parts],
                             factors=[float(f) for f in transform.factors])
            else:
                entry.update(kind="reduction", preprocessing=transform.preprocessing,
                             n_features=transform.n_features_in, n_components=transform.n_components,
                             chunk_size=int(transform.chunk_size))
                put(f"space{i}", transform.to_arrays())
            spaces.append(entry)
        configs = []
        for i, c in enumerate(self.configurations.values()):
            meta, arr = c.predictor.to_state()
            put(f"config{i}", arr)
            configs.append({"key": c.key, "space": c.space, "algorithm": c.algorithm, "k": c.k, "predictor": meta,
                            "arrays": f"config{i}"})
        outliers = {}
        for i, (d, ref) in enumerate(sorted(self.outliers.items())):
            meta, arr = ref.to_state()
            put(f"outlier{i}", arr)
            outliers[d] = {**meta, "arrays": f"outlier{i}"}
        drift = None
        if self.drift is not None:
            meta, arr = self.drift.to_state()
            put("drift", arr)
            drift = {**meta, "arrays": "drift"}
        labelling = []
        for i, lm in enumerate(self.labelling.values()):
            meta, arr = lm.to_state()
            put(f"label{i}", arr)
            labelling.append({**meta, "arrays": f"label{i}"})
        doc = {"tool": "descluster", "format": MODEL_FORMAT, "versions": self.versions, "seed": self.seed,
               "descriptors": self.descriptors, "spaces": spaces, "configurations": configs,
               "recommended": self.recommended, "per_descriptor": self.per_descriptor,
               "cluster_names": {str(k): v for k, v in sorted(self.cluster_names.items())},
               "outliers": outliers, "flag_rule": self.flag_rule, "drift": drift,
               "pixels": None if self.pixels is None else self.pixels.to_state(), "labelling": labelling,
               "arrays": MODEL_ARRAYS}
        return doc, arrays

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``model.json`` and ``arrays.npz`` into ``folder`` (created), atomically each.

        Returns
        -------
        Path
            The folder.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        doc, arrays = self.to_state()
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        write_bytes(folder / MODEL_ARRAYS, buf.getvalue())
        write_text(folder / MODEL_JSON, json.dumps(doc, indent=2, default=json_default, allow_nan=True) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "FittedModel":
        """Read a model saved by :meth:`save` (``folder`` or a results folder holding ``model/``).

        Raises
        ------
        CaseError
            No model there, an unreadable or unknown-format ``model.json``, or arrays missing.
        """
        folder = Path(folder)
        if not (folder / MODEL_JSON).is_file() and (folder / MODEL_DIR / MODEL_JSON).is_file():
            folder = folder / MODEL_DIR
        f = folder / MODEL_JSON
        if not f.is_file():
            raise CaseError(f"{folder}: no fitted model ({MODEL_JSON}); `descluster run` writes one to OUT/{MODEL_DIR}/")
        try:
            doc = json.loads(f.read_text(encoding="utf-8"))
            with np.load(folder / doc.get("arrays", MODEL_ARRAYS), allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError) as exc:
            raise CaseError(f"{folder}: cannot read the model: {exc}") from exc
        if doc.get("tool") != "descluster" or doc.get("format") != MODEL_FORMAT:
            raise CaseError(f"{f}: not a descluster model of format {MODEL_FORMAT} "
                            f"(tool {doc.get('tool')!r}, format {doc.get('format')!r})")

        def get(prefix: str) -> dict:
            return {k[len(prefix) + 1:]: v for k, v in arrays.items() if k.startswith(prefix + ".")}

        try:
            spaces: dict[str, tuple[SpaceId, Any]] = {}
            for e in doc["spaces"]:
                sid = SpaceId.from_dict(e["id"])
                if e["kind"] == "mixture":
                    transform = Mixture([spaces[p][0] for p in e["parts"]], e["factors"])
                else:
                    transform = Reduction.from_arrays(e["preprocessing"], get(e["arrays"]))
                    transform.chunk_size = int(e.get("chunk_size", transform.chunk_size))
                spaces[e["key"]] = (sid, transform)
            configurations = {}
            for e in doc["configurations"]:
                configurations[e["key"]] = Configuration(e["key"], e["space"], e["algorithm"], int(e["k"]),
                                                         predictor_from_state(e["predictor"], get(e["arrays"])))
            outliers = {d: OutlierReference.from_state(m, get(m["arrays"])) for d, m in doc["outliers"].items()}
            drift = DriftReference.from_state(doc["drift"], get(doc["drift"]["arrays"])) if doc.get("drift") else None
            labelling = {m["task"]: LabelModel.from_state(m, get(m["arrays"])) for m in doc.get("labelling", [])}
        except (KeyError, TypeError) as exc:
            raise CaseError(f"{f}: the model is incomplete ({type(exc).__name__}: {exc})") from exc
        return cls(descriptors={k: int(v) for k, v in doc["descriptors"].items()}, spaces=spaces,
                   configurations=configurations, recommended=doc["recommended"],
                   per_descriptor=dict(doc["per_descriptor"]),
                   cluster_names={int(k): v for k, v in doc.get("cluster_names", {}).items()}, outliers=outliers,
                   flag_rule=dict(doc.get("flag_rule", {})), drift=drift, seed=int(doc.get("seed", 0)),
                   pixels=PixelReference.from_state(doc["pixels"]) if doc.get("pixels") else None,
                   labelling=labelling,
                   versions=dict(doc.get("versions", {})))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FittedModel):
            return NotImplemented
        a, b = self.to_state(), other.to_state()
        return (json.dumps(a[0], sort_keys=True, default=json_default) == json.dumps(b[0], sort_keys=True, default=json_default)
                and a[1].keys() == b[1].keys() and all(np.array_equal(a[1][k], b[1][k]) for k in a[1]))

    def with_labelling(self, results: str | os.PathLike, case=None) -> "FittedModel":
        """A copy with a :class:`LabelModel` per task of the results folder's labelling session.

        Parameters
        ----------
        results : str or PathLike
            The ``descluster run`` folder holding ``labels.sqlite`` (the session's decisions).
        case : Case, optional
            The study's case (default: loaded from the folder's ``manifest.json``); its rows
            are mapped through this model's spaces, so new images are read the same way.

        Returns
        -------
        FittedModel
            Tasks with fewer than two answered classes are left out.

        Raises
        ------
        CaseError
            No labelling session there, or the case's paths differ from the study's.
        """
        from dataclasses import replace

        from .labelling.session import DB_NAME, Session

        results = Path(results)
        if not (results / DB_NAME).is_file():
            raise CaseError(f"{results}: no labelling session ({DB_NAME}); `descluster serve` or the Session API make one")
        session = Session(results)
        try:
            states = session.replay()
            if case is None:
                from .case import load_case

                case = load_case(session.results.manifest["case"]["root"])
            if list(case.paths) != list(session.results.paths):
                raise CaseError(f"{results}: the case's {len(case.paths):,} paths are not the study's "
                                f"{len(session.results.paths):,} in order")
            rec_space = self.configurations[self.recommended].space
            models: dict[str, LabelModel] = {}
            for task, st in states.items():
                if np.unique(st.label[st.labelled]).size < 2:
                    continue
                key, note = (st.space or session.results.recommended), ""
                if key not in self.spaces:
                    note = f"the task's space {key} is not in the model; fitted in {rec_space}"
                    key = rec_space
                X = self.space_rows(case.descriptors, keys=[key])[key]
                models[task] = LabelModel.fit(task, key, st.classes, X, st.label, note)
        finally:
            session.close()
        return replace(self, labelling=models)

    # -- applying ------------------------------------------------------------------
    def space_rows(self, descriptors: dict[str, np.ndarray], keys=None) -> dict[str, np.ndarray]:
        """Rows of every space in ``keys`` (default all) for raw ``descriptors``.

        Raises
        ------
        CaseError
            A descriptor kind the model needs is missing, or has another width (both named).
        """
        for kind, width in self.descriptors.items():
            if kind not in descriptors:
                raise CaseError(f"the new case has no descriptor {kind!r} (it has {sorted(descriptors)}); "
                                f"the model needs {sorted(self.descriptors)}")
            if descriptors[kind].shape[1] != width:
                raise CaseError(f"descriptor {kind!r} has {descriptors[kind].shape[1]} features in the new case "
                                f"but {width} in the study")
        out: dict[str, np.ndarray] = {}

        def rows(key: str) -> np.ndarray:
            if key not in out:
                sid, transform = self.spaces[key]
                if isinstance(transform, Mixture):
                    out[key] = transform.transform([rows(p.key) for p in transform.parts])
                else:
                    out[key] = transform.transform(descriptors[sid.descriptor])
            return out[key]

        for key in (keys if keys is not None else list(self.spaces)):
            rows(key)
        return out

    def assign(self, case, names: dict[int, str] | None = None, progress: bool = False) -> "Assignment":
        """Label the images of ``case`` (a :class:`~descluster.case.Case`) like the study did.

        Parameters
        ----------
        case : Case
            Must hold every descriptor kind of :attr:`descriptors`, with the same widths.
        names : dict of int -> str, optional
            Cluster names to use instead of :attr:`cluster_names` (e.g. a team's names).
        progress : bool
            Show a progress bar over the steps.

        Returns
        -------
        Assignment

        Raises
        ------
        CaseError
            A needed descriptor kind missing or of another width.
        """
        from tqdm.auto import tqdm

        steps = tqdm(total=4, desc="assign", unit="step", disable=not progress)
        rows = self.space_rows(case.descriptors)
        steps.update(1)
        table = pd.DataFrame({"path": list(case.paths)})
        rec = self.configurations[self.recommended]
        labels, conf = rec.predictor.predict_confidence(rows[rec.space])
        names = self.cluster_names if names is None else names
        table["cluster"] = labels
        table["label"] = [names.get(int(c), "") for c in labels]
        table["confidence"] = np.round(conf, 6)
        for d, key in sorted(self.per_descriptor.items()):
            c = self.configurations[key]
            table[f"cluster_{d}"] = c.predictor.predict(rows[c.space])
        for task, lm in self.labelling.items():
            names_, conf_ = lm.predict(rows[lm.space])
            table[f"label_{task}"] = names_
            table[f"label_{task}_confidence"] = np.round(conf_, 6)
        steps.update(1)
        shares = None
        if getattr(case, "imagenet", None) is not None:
            from .outliers.vehicle import vehicle_shares

            shares = vehicle_shares(case.imagenet, list(case.paths))
        flags, n_flags, reasons = self._outliers(rows, table, shares)
        steps.update(1)
        drift = Drift.of(self.drift, rows[self.drift.space], labels) if self.drift is not None else None
        if drift is not None:
            table["distance"] = np.round(drift.distance, 6)
            table["far"] = drift.far.astype(np.int64)
            table["new_group"] = drift.group
        if self.pixels is not None and getattr(case, "images", None) is not None:
            from .outliers.pixels import image_quality_table

            quality = image_quality_table(case.images, list(case.paths), progress=progress)
            pixel_flags, pixel_reasons = self.pixels.judge(quality)
            table["pixel_flagged"] = pixel_flags.astype(np.int64)
            flags = flags | pixel_flags
            reasons = ["; ".join(r for r in pair if r) for pair in zip(reasons, pixel_reasons)]
        table["flagged"] = flags.astype(np.int64)
        table["n_flags"] = n_flags
        table["reason"] = reasons
        steps.update(1)
        steps.close()
        return Assignment(table=table, drift=drift, model=self)

    def _outliers(self, rows: dict[str, np.ndarray], table: pd.DataFrame,
                  shares: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Score columns added to ``table``; returns ``(flagged, n_flags, reasons)`` (see the module docstring).

        The descriptor clauses of the study's flag rule
        (:func:`~descluster.outliers.consensus.descriptor_clauses`), with ``shares`` (the new images' ImageNet
        vehicle shares, shape (n,), NaN or None: unknown) for the vehicle veto and the no-vehicle clause.
        """
        n = len(table)
        checks, F = [], []  # (detector, descriptor kind, space) per flag column
        for d, ref in sorted(self.outliers.items()):
            knn, lof = ref.score(rows[ref.space])
            table[f"knn_{ref.space}"] = knn
            table[f"lof_{ref.space}"] = lof
            checks += [("knn", d, ref.space), ("lof", d, ref.space)]
            F += [knn > ref.knn_threshold, lof > ref.lof_threshold]
            iso = ref.iforest_score(rows[ref.space])
            if iso is not None:
                table[f"iforest_{ref.space}"] = iso
                checks.append(("iforest", d, ref.space))
                F.append(iso > ref.iforest_threshold)
        if not F:
            return np.zeros(n, dtype=bool), np.zeros(n, dtype=np.int64), [""] * n
        F = np.column_stack(F)
        kinds = sorted({d for _, d, _ in checks})
        per_kind = np.column_stack([F[:, [d == k for _, d, _ in checks]].any(axis=1) for k in kinds])
        n_flags = F.sum(axis=1).astype(np.int64)
        from .outliers.consensus import PHRASES, descriptor_clauses, no_vehicle_reason
        from .outliers.vehicle import VEHICLE_PRIOR_SHARE

        rule = self.flag_rule  # a model saved before the vehicle clauses were recorded: those clauses off
        prior = float(rule.get("no_vehicle_share") or VEHICLE_PRIOR_SHARE)
        clause = descriptor_clauses(per_kind.sum(axis=1), len(kinds), shares, rule.get("min_descriptor_kinds"),
                                    rule.get("no_vehicle_kinds"), rule.get("vehicle_veto"), prior)
        flagged = clause.by_descriptors | clause.by_no_vehicle

        # against the study's images, not the batch's own neighbours: the k-distance says so
        words = {**PHRASES, "knn": "far from the study's images"}
        reasons = []
        for i in range(n):
            by: dict[str, list[str]] = {}
            for (det, _, space), f in zip(checks, F[i]):
                if f:
                    by.setdefault(det, []).append(space)
            text = "; ".join(f"{words[det]} in {', '.join(s)}" for det, s in by.items())
            if clause.by_no_vehicle[i] and not clause.by_descriptors[i]:
                text = f"{no_vehicle_reason(clause.shares[i], prior)}; {text}"
            reasons.append(text)
        return flagged, n_flags, reasons

    def rule_text(self) -> dict[str, str]:
        """The outlier thresholds and the flag rule in words."""
        out = {f"{det}:{ref.space}": text for ref in self.outliers.values() for det, text in ref.rules.items()}
        need = min(int(self.flag_rule.get("min_descriptor_kinds") or len(self.outliers)), len(self.outliers))
        checks = "the k-distance, the LOF or the isolation-forest check" if any(
            r.forest is not None for r in self.outliers.values()) else "the k-distance or the LOF check"
        out["flag rule"] = (f"flagged when {checks} flags the image in at least {need} of "
                            f"the {len(self.outliers)} descriptor kinds")
        rule = self.flag_rule
        if rule.get("vehicle_veto") is not None:
            out["flag rule"] += (f" and, where the new case has meta/imagenet.csv, its ImageNet vehicle share is under "
                                 f"{rule['vehicle_veto']:g}")
        if rule.get("no_vehicle_kinds") is not None:
            nv = min(int(rule["no_vehicle_kinds"]), len(self.outliers))
            out["flag rule"] += (f"; or its ImageNet vehicle share is under {rule['no_vehicle_share']:.3g} and a "
                                 f"check flags it in at least {nv} kind{'s' if nv != 1 else ''}")
        if self.pixels is not None:
            out.update({f"pixel:{k}": t for k, t in self.pixels.rules.items()})
            out["flag rule"] += ("; or, for a new case with images, when a pixel rule fires at the study's "
                                 "threshold (" + (", ".join(sorted(self.pixels.cuts)) or "none") + ")")
        return out


# --------------------------------------------------------------------------- drift and assignment


@dataclass
class Drift:
    """How a batch of new images differs from the study (see the module docstring).

    Attributes
    ----------
    distance : ndarray of shape (n,), float64
        Each new image's distance to the nearest recommended cluster centre.
    nearest : ndarray of shape (n,), int64
        That centre.
    far : ndarray of shape (n,), bool
        Beyond the centre's study radius.
    group : ndarray of shape (n,), int64
        New dense group of a far image (-1 = none).
    groups : DataFrame
        One row per new group: ``group``, ``size``, ``nearest_cluster``, ``median_distance``.
    shares : DataFrame
        One row per cluster: ``cluster``, ``study_count``, ``study_share``, ``new_count``,
        ``new_share``, ``change`` (share points).
    summary : dict
        ``n_new``, ``far``, ``far_share``, ``expected_far_share``, ``new_groups``,
        ``total_variation``, ``chi2``, ``chi2_dof``, ``chi2_p`` and the rules in words.
    """

    distance: np.ndarray
    nearest: np.ndarray
    far: np.ndarray
    group: np.ndarray
    groups: pd.DataFrame
    shares: pd.DataFrame
    summary: dict

    @classmethod
    def of(cls, ref: DriftReference, Y: np.ndarray, labels: np.ndarray) -> "Drift":
        """Compare new rows ``Y`` (n, p) in the reference's space, labelled ``labels``, with the study."""
        from scipy import stats
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import connected_components

        from .outliers.neighbours import knn_search

        D = CentroidPredictor(ref.centers).distances(Y)
        nearest = D.argmin(axis=1)
        distance = D[np.arange(D.shape[0]), nearest]
        far = distance > ref.radii[nearest]
        n = Y.shape[0]
        group = np.full(n, -1, dtype=np.int64)
        rows = []
        F = np.flatnonzero(far)
        if F.size >= ref.new_group_min:
            k = min(ref.new_group_min - 1, F.size - 1)
            Dk, Ik = knn_search(np.ascontiguousarray(Y[F], dtype=np.float32), k, progress=False, index="exact")
            keep = Dk <= ref.scale
            r = np.repeat(np.arange(F.size), k)[keep.ravel()]
            c = Ik.ravel()[keep.ravel()]
            graph = csr_matrix((np.ones(r.size), (r, c)), shape=(F.size, F.size))
            _, comp = connected_components(graph, directed=False)
            sizes = np.bincount(comp)
            for g, cid in enumerate(np.flatnonzero(sizes >= ref.new_group_min)):
                members = F[comp == cid]
                group[members] = g
                near = np.bincount(nearest[members]).argmax()
                rows.append({"group": g, "size": int(members.size), "nearest_cluster": int(near),
                             "median_distance": float(np.median(distance[members]))})
        groups = pd.DataFrame(rows, columns=["group", "size", "nearest_cluster", "median_distance"])
        clusters = sorted(set(ref.counts) | set(np.unique(labels).tolist()))
        study_n = sum(ref.counts.values())
        new_counts = {int(c): int(v) for c, v in zip(*np.unique(labels, return_counts=True))}
        shares = pd.DataFrame({"cluster": clusters,
                               "study_count": [ref.counts.get(c, 0) for c in clusters],
                               "new_count": [new_counts.get(c, 0) for c in clusters]})
        shares["study_share"] = shares["study_count"] / study_n
        shares["new_share"] = shares["new_count"] / max(n, 1)
        shares["change"] = shares["new_share"] - shares["study_share"]
        shares = shares[["cluster", "study_count", "study_share", "new_count", "new_share", "change"]]
        tvd = float(0.5 * np.abs(shares["change"]).sum())
        seen = shares["study_share"] > 0
        observed = shares.loc[seen, "new_count"].to_numpy().astype(np.float64)
        p_seen = shares.loc[seen, "study_share"].to_numpy()
        expected = p_seen / p_seen.sum() * observed.sum()
        chi2, p = (stats.chisquare(observed, expected) if seen.sum() >= 2 and observed.sum() > 0
                   else (float("nan"), float("nan")))
        expected_far = ref.own_far_share if ref.own_far_share is not None else 1.0 - ref.quantile
        summary = {
            "n_new": int(n), "far": int(far.sum()), "far_share": float(far.mean()) if n else float("nan"),
            "expected_far_share": round(expected_far, 6), "new_groups": int(len(groups)),
            "in_new_groups": int((group >= 0).sum()), "total_variation": round(tvd, 6),
            "chi2": float(chi2), "chi2_dof": int(seen.sum() - 1), "chi2_p": float(p),
            "unseen_clusters": int((~seen & (shares["new_count"] > 0)).sum()),
            "rules": {
                "far": f"distance to the nearest cluster centre of {ref.space} beyond that centre's study "
                       f"{ref.quantile:.0%} quantile (" + (f"{expected_far:.1%} of the study's own images are far "
                       "by this rule)" if ref.own_far_share is not None else
                       f"so about {expected_far:.0%} of the study's own images are far)"),
                "new group": f"at least {ref.new_group_min} far images joined by distances <= {ref.scale:.4g} "
                             f"(the study's {GROUP_DENSITY:.0%} quantile of distances to the "
                             f"{ref.new_group_min - 1}-th neighbour)",
                "shares": "total variation distance 0.5 * sum |new share - study share|; Pearson's chi-square "
                          "test of the new counts against the study's shares (scipy.stats.chisquare)",
            },
        }
        return cls(distance, nearest, far, group, groups, shares, summary)


@dataclass
class Assignment:
    """New images labelled by a :class:`FittedModel`.

    Attributes
    ----------
    table : DataFrame
        ``assignments.csv``, input order: ``path``, ``cluster`` (recommended configuration),
        ``label`` (cluster name), ``confidence`` (0..1, see :mod:`descluster.cluster.predictors`),
        ``cluster_<descriptor>`` (each kind's best configuration), ``knn_<space>`` and
        ``lof_<space>`` scores, ``distance``, ``far`` (0/1), ``new_group`` (-1 = none),
        ``flagged`` (0/1), ``n_flags`` (checks that fired) and ``reason``.
    drift : Drift or None
    model : FittedModel
    """

    table: pd.DataFrame
    drift: Drift | None
    model: FittedModel

    def save(self, out: str | os.PathLike) -> Path:
        """Write ``assignments.csv``, ``drift.json``, ``drift_shares.csv`` and ``drift_groups.csv``."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_csv(out / "assignments.csv", self.table)
        summary = {"recommended": self.model.recommended, "outlier_rules": self.model.rule_text(),
                   "model_versions": self.model.versions}
        if self.drift is not None:
            write_csv(out / "drift_shares.csv", self.drift.shares)
            write_csv(out / "drift_groups.csv", self.drift.groups)
            summary["drift"] = self.drift.summary
        write_text(out / "drift.json", json.dumps(summary, indent=2, default=json_default, allow_nan=True) + "\n")
        return out
