"""How a fitted clustering labels rows: strategy objects, saved and restored as plain arrays.

Every adapter of :mod:`descluster.cluster.algorithms` ends its fit with a
``predictor_``, and its ``predict`` *is* that predictor's, so a saved model labels
new rows by the same code (and, for the study's own rows, to the same labels) as
the study did. Registry :data:`PREDICTORS`:

``centroid``  :class:`CentroidPredictor`: nearest centre (k-means, mini-batch k-means,
              BIRCH, Ward fitted on a sample). Confidence ``1 - d1 / d2`` with d1, d2
              the distances to the nearest and second-nearest centre (0 on a boundary,
              1 at a centre; the distance-ratio test of Lowe 2004, IJCV 60(2), §7.1).
``gaussian``  :class:`GaussianPredictor`: the most probable component of a diagonal
              Gaussian mixture (scikit-learn ``GaussianMixture.predict``); confidence is
              that component's posterior probability.
``neighbour`` :class:`NeighbourPredictor`: the label of the nearest fitted row, or noise
              (-1) beyond that row's radius (HDBSCAN's core distance, McInnes et al.
              2017); rows are first projected when the fit was (HDBSCAN's PCA). Used for
              HDBSCAN and for a Ward tree of all rows (whose clusters are not Voronoi
              cells). Confidence ``1 - d_same / d_other``: nearest fitted row of the
              predicted label against nearest row of any other label; 0 for noise.

State is saved by ``to_state() -> (meta: dict, arrays: dict of ndarray)`` and read by
:func:`predictor_from_state`; nothing is pickled.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ParameterError
from ..rows import nearest_centroid, row_chunks

__all__ = ["Predictor", "CentroidPredictor", "GaussianPredictor", "NeighbourPredictor", "PREDICTORS",
           "predictor_from_state"]


def _as_2d(X, width: int, what: str) -> np.ndarray:
    X = X if isinstance(X, np.ndarray) else np.asarray(X)
    if X.ndim != 2 or X.shape[1] != width:
        raise ParameterError(f"X has shape {X.shape}; this {what} predictor needs (n_samples, {width})")
    return X


class Predictor:
    """Base: ``predict(X) -> labels``, ``predict_confidence(X) -> (labels, confidence)``, state I/O.

    Attributes
    ----------
    kind : str
        Registry name.
    n_features : int
        Columns of the rows it labels.
    """

    kind = "base"
    n_features = 0

    def predict(self, X) -> np.ndarray:  # pragma: no cover - abstract
        """Labels (n,) int64 of rows ``X`` (n, n_features); -1 = noise."""
        raise NotImplementedError

    def predict_confidence(self, X) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - abstract
        """``(labels (n,) int64, confidence (n,) float64 in [0, 1])``."""
        raise NotImplementedError

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:  # pragma: no cover - abstract
        """``(meta, arrays)``: JSON-able facts and the arrays that restore this predictor."""
        raise NotImplementedError


class CentroidPredictor(Predictor):
    """Nearest centre (Euclidean), see the module docstring.

    Parameters
    ----------
    centers : ndarray of shape (k, n_features)
        Stored as float32 (the dtype of the adapters' ``cluster_centers_``).
    """

    kind = "centroid"

    def __init__(self, centers):
        self.centers = np.asarray(centers, dtype=np.float32)
        if self.centers.ndim != 2 or self.centers.shape[0] < 1:
            raise ParameterError(f"centers must be (k >= 1, n_features); got shape {self.centers.shape}")
        self.n_features = int(self.centers.shape[1])

    def predict(self, X) -> np.ndarray:
        """Nearest-centre labels (n,) int64 (:func:`descluster.rows.nearest_centroid`)."""
        return nearest_centroid(_as_2d(X, self.n_features, self.kind), self.centers)

    def distances(self, X) -> np.ndarray:
        """Euclidean distances (n, k) float64 to every centre."""
        from sklearn.metrics.pairwise import euclidean_distances

        X = _as_2d(X, self.n_features, self.kind)
        C = self.centers.astype(np.float64)
        out = np.empty((X.shape[0], C.shape[0]), dtype=np.float64)
        for sl in row_chunks(X.shape[0], None, max(X.shape[1], C.shape[0])):
            out[sl] = euclidean_distances(np.asarray(X[sl], dtype=np.float64), C)
        return out

    def predict_confidence(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Labels as :meth:`predict` and ``1 - d1 / d2`` (1 when there is one centre)."""
        labels = self.predict(X)
        if self.centers.shape[0] < 2:
            return labels, np.ones(labels.size)
        D = np.sort(self.distances(X), axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            conf = np.where(D[:, 1] > 0, 1.0 - D[:, 0] / D[:, 1], 0.0)
        return labels, np.clip(conf, 0.0, 1.0)

    def to_state(self):
        """``({"kind", "n_clusters"}, {"centers"})``."""
        return {"kind": self.kind, "n_clusters": int(self.centers.shape[0])}, {"centers": self.centers}

    @classmethod
    def from_state(cls, meta: dict, arrays: dict) -> "CentroidPredictor":
        """Inverse of :meth:`to_state`."""
        return cls(arrays["centers"])


class GaussianPredictor(Predictor):
    """Most probable component of a diagonal-covariance Gaussian mixture.

    Parameters
    ----------
    model : sklearn.mixture.GaussianMixture
        Fitted with ``covariance_type="diag"``; its ``weights_`` (k,), ``means_`` (k, p),
        ``covariances_`` (k, p) and ``precisions_cholesky_`` (k, p), float64, are the state.
    """

    kind = "gaussian"

    def __init__(self, model):
        self.model = model
        self.n_features = int(model.means_.shape[1])

    def predict(self, X) -> np.ndarray:
        """``GaussianMixture.predict`` on float64 row chunks: labels (n,) int64."""
        X = _as_2d(X, self.n_features, self.kind)
        out = np.empty(X.shape[0], dtype=np.int64)
        for sl in row_chunks(X.shape[0], None, X.shape[1]):
            out[sl] = self.model.predict(np.asarray(X[sl], dtype=np.float64))
        return out

    def predict_confidence(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Labels as :meth:`predict` and the posterior probability of that component."""
        labels = self.predict(X)
        X = _as_2d(X, self.n_features, self.kind)
        conf = np.empty(X.shape[0], dtype=np.float64)
        for sl in row_chunks(X.shape[0], None, X.shape[1]):
            P = self.model.predict_proba(np.asarray(X[sl], dtype=np.float64))
            conf[sl] = P[np.arange(P.shape[0]), labels[sl]]
        return labels, conf

    def to_state(self):
        """``({"kind", "n_clusters"}, {"weights", "means", "covariances", "precisions_cholesky"})``."""
        m = self.model
        return ({"kind": self.kind, "n_clusters": int(m.means_.shape[0])},
                {"weights": np.asarray(m.weights_), "means": np.asarray(m.means_),
                 "covariances": np.asarray(m.covariances_), "precisions_cholesky": np.asarray(m.precisions_cholesky_)})

    @classmethod
    def from_state(cls, meta: dict, arrays: dict) -> "GaussianPredictor":
        """Inverse of :meth:`to_state`: a ``GaussianMixture`` with these fitted attributes."""
        from sklearn.mixture import GaussianMixture

        means = np.asarray(arrays["means"], dtype=np.float64)
        m = GaussianMixture(n_components=means.shape[0], covariance_type="diag")
        m.weights_ = np.asarray(arrays["weights"], dtype=np.float64)
        m.means_ = means
        m.covariances_ = np.asarray(arrays["covariances"], dtype=np.float64)
        m.precisions_cholesky_ = np.asarray(arrays["precisions_cholesky"], dtype=np.float64)
        m.precisions_ = m.precisions_cholesky_ ** 2
        m.n_features_in_ = means.shape[1]
        m.converged_, m.n_iter_, m.lower_bound_ = True, 0, float("nan")
        return cls(m)


class NeighbourPredictor(Predictor):
    """Label of the nearest fitted row, noise beyond its radius (see the module docstring).

    Parameters
    ----------
    rows : ndarray of shape (m, q)
        The fitted rows (after ``projection`` when there is one).
    labels : ndarray of shape (m,), int
        Their labels (-1 = noise).
    radii : ndarray of shape (m,), float64, optional
        A query farther than ``radii[j]`` from its nearest fitted row ``j`` is noise.
    projection : sklearn.decomposition.PCA, optional
        Applied to query rows first (fitted, ``whiten=False``); ``n_features`` is then its input width.
    """

    kind = "neighbour"

    def __init__(self, rows, labels, radii=None, projection=None):
        self.rows = np.asarray(rows)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.radii = None if radii is None else np.asarray(radii, dtype=np.float64)
        self.projection = projection
        if self.rows.ndim != 2 or self.labels.shape != (self.rows.shape[0],):
            raise ParameterError(f"rows {self.rows.shape} and labels {self.labels.shape} do not match")
        self.n_features = int(projection.n_features_in_ if projection is not None else self.rows.shape[1])

    def _search(self, X, with_other: bool):
        from sklearn.metrics import pairwise_distances_argmin_min
        from sklearn.metrics.pairwise import euclidean_distances

        X = _as_2d(X, self.n_features, self.kind)
        n = X.shape[0]
        nearest = np.empty(n, dtype=np.int64)
        dist = np.empty(n, dtype=np.float64)
        other = np.full(n, np.inf) if with_other else None
        step = None if not with_other else max(64, (32 * 2**20) // (8 * max(self.rows.shape[0], 1)))
        for sl in row_chunks(n, step, X.shape[1]):
            chunk = np.asarray(X[sl], dtype=np.float64)
            if self.projection is not None:
                chunk = self.projection.transform(chunk)
            if with_other:
                D = euclidean_distances(chunk, self.rows)
                j = D.argmin(axis=1)
                nearest[sl], dist[sl] = j, D[np.arange(j.size), j]
                D[self.labels[None, :] == self.labels[j][:, None]] = np.inf
                other[sl] = D.min(axis=1)
            else:
                nearest[sl], dist[sl] = pairwise_distances_argmin_min(chunk, self.rows)
        labels = self.labels[nearest]
        if self.radii is not None:
            labels = labels.copy()
            labels[dist > self.radii[nearest]] = -1
        return labels, dist, other

    def predict(self, X) -> np.ndarray:
        """Labels (n,) int64: the nearest fitted row's, -1 beyond its radius."""
        return self._search(X, with_other=False)[0]

    def predict_confidence(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Labels as :meth:`predict` and ``1 - d_same / d_other`` (0 for noise, 1 with a single label)."""
        labels, dist, other = self._search(X, with_other=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            conf = np.where(np.isfinite(other), 1.0 - dist / np.where(other > 0, other, np.inf), 1.0)
        conf[labels < 0] = 0.0
        return labels, np.clip(np.nan_to_num(conf, nan=0.0), 0.0, 1.0)

    def to_state(self):
        """``({"kind", "n_clusters", "projected"}, {"rows", "labels"[, "radii"][, "projection_*"]})``."""
        arrays = {"rows": self.rows, "labels": self.labels}
        if self.radii is not None:
            arrays["radii"] = self.radii
        if self.projection is not None:
            arrays["projection_mean"] = np.asarray(self.projection.mean_)
            arrays["projection_components"] = np.asarray(self.projection.components_)
            arrays["projection_variance"] = np.asarray(self.projection.explained_variance_)
        k = int(self.labels.max()) + 1 if self.labels.size and self.labels.max() >= 0 else 0
        return {"kind": self.kind, "n_clusters": k, "projected": self.projection is not None}, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict) -> "NeighbourPredictor":
        """Inverse of :meth:`to_state` (the projection becomes a fitted scikit-learn ``PCA``)."""
        projection = None
        if "projection_components" in arrays:
            from sklearn.decomposition import PCA

            comps = np.asarray(arrays["projection_components"])
            projection = PCA(n_components=comps.shape[0])
            projection.components_ = comps
            projection.mean_ = np.asarray(arrays["projection_mean"])
            projection.explained_variance_ = np.asarray(arrays["projection_variance"])
            projection.n_components_ = comps.shape[0]
            projection.n_features_in_ = comps.shape[1]
        return cls(arrays["rows"], arrays["labels"], arrays.get("radii"), projection)


#: kind -> predictor class.
PREDICTORS: dict[str, type[Predictor]] = {c.kind: c for c in (CentroidPredictor, GaussianPredictor, NeighbourPredictor)}


def predictor_from_state(meta: dict, arrays: dict) -> Predictor:
    """Rebuild a predictor saved by its ``to_state()``.

    Raises
    ------
    ParameterError
        Unknown kind (lists the known ones) or a missing array (names it).
    """
    kind = meta.get("kind")
    if kind not in PREDICTORS:
        raise ParameterError(f"predictor kind {kind!r} is unknown; known: {', '.join(PREDICTORS)}")
    try:
        return PREDICTORS[kind].from_state(meta, arrays)
    except KeyError as exc:
        raise ParameterError(f"saved {kind} predictor lacks the array {exc}") from exc
