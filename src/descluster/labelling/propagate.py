"""Spread the labels given so far to every image, each with a confidence; choose the space per task.

How labels spread is a strategy object (registry :data:`PROPAGATIONS`), each a
transductive scikit-learn-style estimator: ``fit(X, y, graph=..., n_classes=...)``
with ``y = -1`` for unlabelled rows, then ``proba_`` (n_samples, n_classes) holds a
class distribution for every row (as ``LabelSpreading.label_distributions_``).

``logistic``   :class:`LogisticPropagation`: scikit-learn ``LogisticRegression``
               (multinomial, L2, ``C=1``, ``class_weight="balanced"``: the rows the
               loop asks about are not a sample of the classes) on the space's rows, isotropically
               scaled (one scalar: mean per-feature variance 1, so the
               regularisation means the same in every space; the geometry is kept,
               the PCA components are *not* whitened).
``spreading``  :class:`GraphLabelSpreading`: label spreading (Zhou, Bousquet, Lal,
               Weston & Schölkopf 2004, "Learning with local and global
               consistency", NIPS 16) on the precomputed symmetric kNN graph,
               ``F <- alpha S F + (1 - alpha) Y`` with ``S = D^-1/2 W D^-1/2``, the
               iteration of ``sklearn.semi_supervised.LabelSpreading`` (its
               defaults ``alpha=0.2``, ``max_iter=30``), run on the cached graph so a
               refit needs no new neighbour search. Rows the labels do not reach get
               confidence 0.
``knn``        :class:`KNNVotePropagation`: scikit-learn ``KNeighborsClassifier``
               (5 neighbours, distance weights) fitted on the labelled rows.
``smoothed``   :class:`SmoothedLogisticPropagation` (default): the logistic model's
               class probabilities, with the given rows set to their labels, spread
               over the kNN graph by the same iteration: the "smooth" step of
               Correct & Smooth (Huang, He, Singh, Lim & Benson 2021, "Combining
               label propagation and simple models out-performs graph neural
               networks", ICLR), with ``alpha=0.8``, the smoothing strength of common
               C&S setups (e.g. PyTorch Geometric's ``CorrectAndSmooth`` examples), not
               tuned here.

Measured (``benchmarks/labelling_eval.py``; README "Labelling: measured cost in
human decisions"): with the same simulated answers the smoothed logistic model
needs the fewest decisions of the four on the built-in data and on the
colour attribute, hence the default.

:func:`choose_space` picks, per task, the space whose neighbours best agree with
the labels given so far (leave-one-out k-nearest-neighbour vote among the
labelled rows), so colour labels pick a colour descriptor by themselves.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sps
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning

from ..errors import ParameterError
from ..validation import check_float, check_int
from .spaces import KnnGraph

__all__ = ["Propagation", "LogisticPropagation", "GraphLabelSpreading", "KNNVotePropagation",
           "SmoothedLogisticPropagation", "PROPAGATIONS", "make_propagation", "graph_operator",
           "isotropic_scale", "isotropic_params", "GraphOperator", "choose_space", "SpaceChoice",
           "logistic_weights", "logistic_proba"]


def isotropic_params(X: np.ndarray, chunk_rows: int = 65536) -> tuple[np.ndarray, float]:
    """Column means of ``X`` and the one scalar that makes the mean per-feature variance 1.

    Streamed over row chunks (a memory map is not copied).

    Returns
    -------
    mean : ndarray of shape (n_features,), float32
    scale : float
        ``sqrt(mean over all entries of (X - mean)^2)`` (1 when that is 0).
    """
    n, d = X.shape
    total = np.zeros(d, np.float64)
    for s in range(0, n, chunk_rows):
        total += np.asarray(X[s : s + chunk_rows], dtype=np.float64).sum(axis=0)
    mean = total / max(n, 1)
    sq = 0.0
    for s in range(0, n, chunk_rows):
        Z = np.asarray(X[s : s + chunk_rows], dtype=np.float64) - mean
        sq += float(np.einsum("ij,ij->", Z, Z))
    scale = float(np.sqrt(sq / max(n * d, 1)))
    return mean.astype(np.float32), scale if scale > 0 else 1.0


def isotropic_scale(X: np.ndarray) -> np.ndarray:
    """Centre ``X`` and divide by one scalar so the mean per-feature variance is 1 (:func:`isotropic_params`).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    Returns
    -------
    ndarray of shape (n_samples, n_features), float32
        Distances are those of ``X`` times one constant (no whitening).
    """
    mean, scale = isotropic_params(X)
    return (np.asarray(X, dtype=np.float32) - mean) / np.float32(scale)


class GraphOperator:
    """The normalised affinity ``S = D^-1/2 W D^-1/2`` of the symmetrised kNN connectivity graph.

    ``W_ij = 1`` where j is among i's neighbours or i among j's (scikit-learn's
    ``kneighbors_graph(mode="connectivity")`` made symmetric), no self-loops; ``D``
    its degrees. Zhou et al. (2004), eq. (1)-(2).

    For speed the rows are stored in ``order`` (e.g. sorted by cluster, so that a
    row's neighbours sit close in memory: a product with the class-score matrix is
    bound by memory latency, and this ordering makes it about 3x faster on 416,314
    rows), and the product uses the symmetric matrix's CSC form.

    Parameters
    ----------
    graph : KnnGraph
    n_samples : int
    order : ndarray of shape (n_samples,), int, optional
        Row order used internally (a permutation); default the identity.

    Attributes
    ----------
    matrix_ : scipy.sparse.csr_matrix of shape (n_samples, n_samples), float32
        ``S`` in the original row order.
    """

    def __init__(self, graph: KnnGraph, n_samples: int, order: np.ndarray | None = None):
        I = graph.indices
        rows = np.repeat(np.arange(n_samples, dtype=np.int64), I.shape[1])
        cols = I.ravel().astype(np.int64)
        keep = (cols >= 0) & (cols != rows)
        W = sps.csr_matrix((np.ones(int(keep.sum()), np.float32), (rows[keep], cols[keep])),
                           shape=(n_samples, n_samples))
        W = ((W + W.T) > 0).astype(np.float32)
        deg = np.asarray(W.sum(axis=1)).ravel()
        inv = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-12)), 0.0).astype(np.float32)
        D = sps.diags(inv)
        self.matrix_ = (D @ W @ D).tocsr().astype(np.float32)
        self.order_ = np.arange(n_samples) if order is None else np.asarray(order, dtype=np.int64)
        self.inverse_ = np.empty_like(self.order_)
        self.inverse_[self.order_] = np.arange(n_samples)
        self._permuted_t = self.matrix_[self.order_][:, self.order_].T  # CSC view of the symmetric matrix

    def spread(self, Y0: np.ndarray, alpha: float, max_iter: int, tol: float) -> tuple[np.ndarray, int]:
        """Iterate ``F <- alpha S F + (1 - alpha) Y0`` from ``F = Y0`` (as ``LabelSpreading.fit``).

        Returns
        -------
        F : ndarray of shape like ``Y0``, float32
        n_iter : int
        """
        F = np.ascontiguousarray(Y0[self.order_], dtype=np.float32)
        static = (1.0 - alpha) * F
        it = 0
        for it in range(1, max_iter + 1):
            new = alpha * (self._permuted_t @ F) + static
            delta = float(np.abs(new - F).sum())
            F = new.astype(np.float32, copy=False)
            if delta < tol:
                break
        return F[self.inverse_], it


def graph_operator(graph: KnnGraph, n_samples: int, order: np.ndarray | None = None) -> GraphOperator:
    """:class:`GraphOperator` of ``graph`` (kept as a function for callers that only need ``S``)."""
    return GraphOperator(graph, n_samples, order)


def _normalise(F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-normalise a non-negative score matrix; rows of zeros stay zero. Returns (proba, reached)."""
    total = F.sum(axis=1, keepdims=True)
    reached = total[:, 0] > 0
    P = np.zeros_like(F, dtype=np.float32)
    P[reached] = F[reached] / total[reached]
    return P, reached


def _check_fit_input(X, y, n_classes):
    y = np.asarray(y)
    if y.ndim != 1 or (X is not None and y.shape[0] != X.shape[0]):
        raise ParameterError(f"y must be 1-D with one entry per row of X; got y {y.shape}, X {getattr(X, 'shape', None)}")
    known = y[y >= 0]
    n_classes = int(known.max()) + 1 if n_classes is None and known.size else (n_classes or 1)
    check_int("n_classes", n_classes, 1)
    if known.size and known.max() >= n_classes:
        raise ParameterError(f"y holds class {int(known.max())} but n_classes={n_classes}")
    return y.astype(np.int64), n_classes


class Propagation(BaseEstimator):
    """Base of the propagation strategies (see :data:`PROPAGATIONS`).

    Subclasses implement ``fit(X, y, graph=None, n_classes=None) -> self``.

    Attributes (after ``fit``)
    --------------------------
    classes_ : ndarray of shape (n_classes,), int64
        ``0 .. n_classes - 1``.
    proba_ : ndarray of shape (n_samples, n_classes), float32
        Class distribution of every row; all zeros where nothing reached it.
    transduction_ : ndarray of shape (n_samples,), int64
        ``argmax`` of ``proba_`` (``-1`` where ``proba_`` is all zeros).
    confidence_ : ndarray of shape (n_samples,), float32
        ``max`` of ``proba_`` (0 where unreached).
    description_ : str
        What ran, in words with numbers.
    """

    name = "base"
    needs_graph = False

    def _finish(self, P: np.ndarray, n_classes: int, what: str) -> "Propagation":
        P = np.asarray(P, dtype=np.float32)
        self.classes_ = np.arange(n_classes, dtype=np.int64)
        self.proba_ = P
        self.confidence_ = P.max(axis=1) if P.shape[1] else np.zeros(P.shape[0], np.float32)
        self.transduction_ = np.where(self.confidence_ > 0, P.argmax(axis=1), -1).astype(np.int64)
        self.description_ = what
        return self

    @staticmethod
    def _degenerate(y: np.ndarray, n: int, n_classes: int) -> np.ndarray | None:
        """One labelled class (or none): every row gets it (or nothing); None when >= 2 classes."""
        known = np.unique(y[y >= 0])
        if known.size >= 2:
            return None
        P = np.zeros((n, n_classes), np.float32)
        if known.size == 1:
            P[:, known[0]] = 1.0
        return P


def logistic_weights(model, mean: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Weights on the unscaled rows of a ``LogisticRegression`` fitted on ``(X - mean) / scale``.

    ``logits = X W + b`` with ``W = coef' / scale`` and ``b = intercept - mean W``, so every row
    is predicted without a scaled copy of ``X``.

    Parameters
    ----------
    model : sklearn.linear_model.LogisticRegression
        Fitted; ``coef_`` of shape (n_fitted_classes or 1, d).
    mean : ndarray of shape (d,), float32
    scale : float

    Returns
    -------
    W : ndarray of shape (d, n_fitted_classes or 1), float32
    b : ndarray of shape (n_fitted_classes or 1,), float32
    """
    W = (model.coef_.T / scale).astype(np.float32)
    b = (model.intercept_ - mean @ W).astype(np.float32)
    return W, b


def logistic_proba(X: np.ndarray, W: np.ndarray, b: np.ndarray, classes: np.ndarray, n_classes: int,
                   chunk_rows: int = 65536) -> np.ndarray:
    """Class probabilities (softmax of ``X W + b``) of every row, in chunks.

    A single column (scikit-learn's binary decision function ``z``) is the two-class
    softmax of ``(-z/2, z/2)``, i.e. the logistic sigmoid of ``z``.

    Parameters
    ----------
    X : ndarray of shape (n, d)
    W, b : from :func:`logistic_weights`
    classes : ndarray of int, the class index of each fitted column (``model.classes_``)
    n_classes : int
        Columns of the result; classes never labelled get probability 0.

    Returns
    -------
    ndarray of shape (n, n_classes), float32
    """
    n = X.shape[0]
    P = np.zeros((n, n_classes), np.float32)
    for s in range(0, n, chunk_rows):
        Z = np.asarray(X[s : s + chunk_rows], np.float32) @ W + b
        if Z.shape[1] == 1:
            Z = np.hstack([-Z, Z]) / 2
        Z -= Z.max(axis=1, keepdims=True)
        np.exp(Z, out=Z)
        Z /= Z.sum(axis=1, keepdims=True)
        P[s : s + chunk_rows][:, classes] = Z
    return P


class LogisticPropagation(Propagation):
    """Multinomial logistic regression on the isotropically scaled space (see module docstring).

    Parameters
    ----------
    C : float, default 1.0
        Inverse L2 strength (scikit-learn's default).
    max_iter : int, default 300
        L-BFGS iterations.
    class_weight : "balanced" or None, default "balanced"
        scikit-learn's ``class_weight``. The labelled rows are the ones the loop asked
        about (cluster cores, review batches of one propagated class at a time), so their
        class shares are not the collection's: unweighted, each batch confirming one class
        pulls the model's prior towards it. "balanced" weighs class c by
        ``n_labelled / (n_classes * n_labelled_c)``. Measured on the built-in data (seeds
        0-2, ``benchmarks/labelling_eval.py``) it reaches 0.90 accuracy in 54-77 decisions
        instead of 80-186.

    Attributes
    ----------
    model_ : sklearn.linear_model.LogisticRegression or None
        The fitted model (None with fewer than two labelled classes).
    classes_, proba_, transduction_, confidence_, description_
        See :class:`Propagation`.
    """

    name = "logistic"

    def __init__(self, C: float = 1.0, max_iter: int = 300, class_weight="balanced"):
        self.C = C
        self.max_iter = max_iter
        self.class_weight = class_weight

    def _logistic(self, X, y, n_classes, scaling=None) -> tuple[np.ndarray, str]:
        from sklearn.linear_model import LogisticRegression

        check_float("C", self.C, 0.0, np.inf)
        check_int("max_iter", self.max_iter, 1)
        if self.class_weight not in (None, "balanced"):
            raise ParameterError(f"class_weight must be 'balanced' or None, got {self.class_weight!r}")
        n = X.shape[0]
        P = self._degenerate(y, n, n_classes)
        if P is not None:
            self.model_ = None
            return P, "fewer than two classes labelled: every row gets the one labelled class"
        mean, scale = scaling if scaling is not None else isotropic_params(X)
        lab = np.flatnonzero(y >= 0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model = LogisticRegression(C=self.C, max_iter=self.max_iter, class_weight=self.class_weight).fit(
                (np.asarray(X[lab], np.float32) - mean) / np.float32(scale), y[lab])
        W, b = logistic_weights(model, mean, scale)
        P = logistic_proba(X, W, b, model.classes_, n_classes)
        self.model_ = model
        note = " (L-BFGS stopped at max_iter)" if any(issubclass(w.category, ConvergenceWarning) for w in caught) else ""
        weights = "" if self.class_weight is None else f", class_weight={self.class_weight!r}"
        return P, (f"LogisticRegression(C={self.C:g}{weights}) on {lab.size:,} labelled rows × {X.shape[1]} dims, "
                   f"isotropically scaled{note}")

    def fit(self, X, y, graph: KnnGraph | None = None, n_classes: int | None = None,
            scaling=None) -> "LogisticPropagation":
        """Fit on the labelled rows of ``X`` (n, d) and predict every row; ``graph`` is unused.

        ``scaling`` = ``(mean, scale)`` of :func:`isotropic_params`, computed here when not given.
        """
        y, n_classes = _check_fit_input(X, y, n_classes)
        P, what = self._logistic(X, y, n_classes, scaling)
        return self._finish(P, n_classes, what)


class GraphLabelSpreading(Propagation):
    """Label spreading on the cached kNN graph (Zhou et al. 2004), scikit-learn's iteration.

    Parameters
    ----------
    alpha : float in (0, 1), default 0.2
        Share of a row's score taken from its neighbours each step (``LabelSpreading`` default).
    max_iter : int, default 30
    tol : float, default 1e-3
        Stop when the summed absolute change is below it (``LabelSpreading``'s rule).

    Attributes
    ----------
    n_iter_ : int
        Iterations run.
    classes_, proba_, transduction_, confidence_, description_
        See :class:`Propagation`.
    """

    name = "spreading"
    needs_graph = True

    def __init__(self, alpha: float = 0.2, max_iter: int = 30, tol: float = 1e-3):
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, X, y, graph: KnnGraph | None = None, n_classes: int | None = None,
            operator: GraphOperator | None = None) -> "GraphLabelSpreading":
        """Spread the labels of ``y`` over ``graph`` (or a precomputed ``operator`` S); ``X`` is unused."""
        y, n_classes = _check_fit_input(None, y, n_classes)
        check_float("alpha", self.alpha, 0.0, 1.0)
        check_int("max_iter", self.max_iter, 1)
        S = operator if operator is not None else _need_graph(graph, y.shape[0], self.name)
        Y0 = np.zeros((y.shape[0], n_classes), np.float32)
        lab = np.flatnonzero(y >= 0)
        Y0[lab, y[lab]] = 1.0
        F, self.n_iter_ = S.spread(Y0, float(self.alpha), int(self.max_iter), float(self.tol))
        P, reached = _normalise(F)
        return self._finish(P, n_classes, f"label spreading (alpha={self.alpha:g}, {self.n_iter_} iterations) from "
                                          f"{lab.size:,} labelled rows; {int((~reached).sum()):,} rows not reached")


def _need_graph(graph, n, name) -> GraphOperator:
    if graph is None:
        raise ParameterError(f"propagation {name!r} needs the kNN graph (graph=...)")
    return graph_operator(graph, n)


class KNNVotePropagation(Propagation):
    """Distance-weighted vote of the nearest labelled rows (scikit-learn ``KNeighborsClassifier``).

    Parameters
    ----------
    n_neighbors : int, default 5
        scikit-learn's default.

    Attributes
    ----------
    classes_, proba_, transduction_, confidence_, description_
        See :class:`Propagation`.
    """

    name = "knn"

    def __init__(self, n_neighbors: int = 5):
        self.n_neighbors = n_neighbors

    def fit(self, X, y, graph: KnnGraph | None = None, n_classes: int | None = None) -> "KNNVotePropagation":
        """Fit on the labelled rows of ``X`` (n, d) and predict every row; ``graph`` is unused."""
        from sklearn.neighbors import KNeighborsClassifier

        y, n_classes = _check_fit_input(X, y, n_classes)
        check_int("n_neighbors", self.n_neighbors, 1)
        P = self._degenerate(y, X.shape[0], n_classes)
        if P is not None:
            return self._finish(P, n_classes, "fewer than two classes labelled: every row gets the one labelled class")
        lab = y >= 0
        k = min(self.n_neighbors, int(lab.sum()))
        model = KNeighborsClassifier(n_neighbors=k, weights="distance").fit(np.asarray(X)[lab], y[lab])
        P = np.zeros((X.shape[0], n_classes), np.float32)
        P[:, model.classes_] = model.predict_proba(np.asarray(X))
        return self._finish(P, n_classes, f"KNeighborsClassifier(n_neighbors={k}, distance weights) on "
                                          f"{int(lab.sum()):,} labelled rows")


class SmoothedLogisticPropagation(LogisticPropagation):
    """Logistic-regression probabilities smoothed over the kNN graph (Correct & Smooth's smooth step).

    The base probabilities, with labelled rows replaced by their one-hot labels,
    are the ``Y0`` of the label-spreading iteration (Huang et al. 2021, §3.2).

    Parameters
    ----------
    C : float, default 1.0
    max_iter : int, default 300
    class_weight : "balanced" or None, default "balanced"
        Of the logistic fit (see :class:`LogisticPropagation`).
    alpha : float in (0, 1), default 0.8
    n_iter : int, default 30
        Smoothing iterations (``LabelSpreading``'s ``max_iter``).

    Attributes
    ----------
    model_ : LogisticRegression or None
    classes_, proba_, transduction_, confidence_, description_
        See :class:`Propagation`.
    """

    name = "smoothed"
    needs_graph = True

    def __init__(self, C: float = 1.0, max_iter: int = 300, alpha: float = 0.8, n_iter: int = 30,
                 class_weight="balanced"):
        super().__init__(C=C, max_iter=max_iter, class_weight=class_weight)
        self.alpha = alpha
        self.n_iter = n_iter

    def fit(self, X, y, graph: KnnGraph | None = None, n_classes: int | None = None,
            operator: GraphOperator | None = None, scaling=None) -> "SmoothedLogisticPropagation":
        """Fit the logistic model on the labelled rows of ``X``, then smooth over ``graph``."""
        y, n_classes = _check_fit_input(X, y, n_classes)
        check_float("alpha", self.alpha, 0.0, 1.0)
        check_int("n_iter", self.n_iter, 1)
        P, what = self._logistic(X, y, n_classes, scaling)
        S = operator if operator is not None else _need_graph(graph, X.shape[0], self.name)
        lab = np.flatnonzero(y >= 0)
        P[lab] = 0.0
        P[lab, y[lab]] = 1.0
        F, it = S.spread(P, float(self.alpha), int(self.n_iter), 0.0)
        P2, _ = _normalise(F)
        return self._finish(P2, n_classes, f"{what}, smoothed over the kNN graph (alpha={self.alpha:g}, {it} iterations)")


#: Registry of the propagation strategies.
PROPAGATIONS = {c.name: c for c in (SmoothedLogisticPropagation, LogisticPropagation, GraphLabelSpreading,
                                    KNNVotePropagation)}


def make_propagation(propagation="smoothed") -> Propagation:
    """A propagation strategy from a name of :data:`PROPAGATIONS` or an instance (cloned).

    Raises
    ------
    ParameterError
        Unknown name (lists the valid ones) or a non-strategy object.
    """
    from sklearn.base import clone

    if isinstance(propagation, Propagation):
        return clone(propagation)
    if isinstance(propagation, str) and propagation in PROPAGATIONS:
        return PROPAGATIONS[propagation]()
    raise ParameterError(f"propagation={propagation!r} is unknown; valid: {', '.join(PROPAGATIONS)} "
                         "(from Python, also a Propagation instance)")


# --------------------------------------------------------------------------- space choice
class SpaceChoice(dict):
    """Result of :func:`choose_space`: ``key``, ``scores`` (space -> agreement), ``n_labelled``, ``reason``."""


#: Default of :func:`choose_space`'s ``bonferroni``.
BONFERRONI = False


def choose_space(spaces, rows: np.ndarray, labels: np.ndarray, current: str | None = None,
                 n_neighbors: int = 5, max_queries: int = 2000, random_state: int = 0, keys=None,
                 bonferroni: bool = BONFERRONI) -> SpaceChoice:
    """The space whose nearest labelled neighbours best agree with the given labels.

    For each space, every labelled row (at most ``max_queries``, a seeded sample)
    is classified by a majority vote of its ``n_neighbors`` nearest *other*
    labelled rows (leave-one-out, scikit-learn ``NearestNeighbors``, exact); the
    score is the share classified correctly. The current space is kept unless the
    best scores higher by more than ``z = 1.645`` standard errors of the difference
    of two proportions, ``sqrt(p1 (1 - p1) / m + p2 (1 - p2) / m)`` (a one-sided 5 %
    test), so the choice does not flip on noise. ``bonferroni=True`` divides the 5 %
    by the number of other spaces (stricter: measured on the colour attribute it kept
    a space that cannot see colour for the whole session). Spaces of one dimension
    (degenerate reductions) are not candidates.

    Parameters
    ----------
    spaces : dict of str -> ndarray of shape (n_samples, n_features_s), or callable
        Each space, or a function ``(key, sorted rows) -> rows of that space`` with the keys in ``keys``.
    rows : ndarray of shape (m,), int
        Labelled rows.
    labels : ndarray of shape (m,), int
        Their classes.
    current : str, optional
        The space in use.
    n_neighbors : int, default 5
        scikit-learn ``KNeighborsClassifier``'s default.
    max_queries : int, default 2000
    random_state : int, default 0
    keys : list of str, optional
        Spaces to compare (default all of ``spaces``; needed when ``spaces`` is a callable).
    bonferroni : bool, default False
        See above.

    Returns
    -------
    SpaceChoice
        ``key`` (str), ``scores`` (dict str -> float), ``n_labelled`` (int), ``reason`` (str).

    Raises
    ------
    ParameterError
        Empty ``spaces`` or mismatched ``rows``/``labels``.
    """
    from sklearn.neighbors import NearestNeighbors

    keys = list(spaces) if keys is None else list(keys)
    if not keys:
        raise ParameterError("choose_space needs at least one space")
    read = spaces if callable(spaces) else (lambda k, r: spaces[k][r])
    rows = np.asarray(rows, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    if rows.shape != labels.shape:
        raise ParameterError(f"rows {rows.shape} and labels {labels.shape} must match")
    if current not in keys:
        current = keys[0]
    m = rows.size
    if m <= n_neighbors or np.unique(labels).size < 2:
        return SpaceChoice(key=current, scores={}, n_labelled=int(m),
                           reason=f"{m} labelled rows in {np.unique(labels).size} classes: too few to compare spaces; "
                                  f"kept {current}")
    rng = np.random.default_rng(random_state)
    q = np.sort(rng.choice(m, size=min(m, max_queries), replace=False))
    scores = {}
    for key in keys:
        Xl = np.asarray(read(key, np.sort(rows)), dtype=np.float32)
        if Xl.shape[1] < 2 and key != current:
            continue
        order = np.argsort(rows, kind="stable")
        lab_sorted = labels[order]
        inv = np.empty(m, np.int64)
        inv[order] = np.arange(m)
        nn = NearestNeighbors(n_neighbors=n_neighbors + 1).fit(Xl)
        _, idx = nn.kneighbors(Xl[inv[q]])
        votes = []
        for own, neigh in zip(inv[q], idx):
            neigh = neigh[neigh != own][:n_neighbors]
            votes.append(np.bincount(lab_sorted[neigh]).argmax())
        scores[key] = float(np.mean(np.asarray(votes) == lab_sorted[inv[q]]))
    from scipy.stats import norm

    keys = [k for k in keys if k in scores]
    best = max(keys, key=lambda k: (scores[k], k == current))
    p, pb = scores[current], scores[best]
    se = float(np.sqrt((max(p * (1 - p), 1e-12) + max(pb * (1 - pb), 1e-12)) / q.size))
    z = float(norm.ppf(1 - 0.05 / max(len(keys) - 1, 1))) if bonferroni else float(norm.ppf(0.95))
    key = best if pb - p > z * se else current
    ranked = ", ".join(f"{k} {scores[k]:.3f}" for k in sorted(keys, key=lambda k: -scores[k]))
    why = (f"{key}: its {n_neighbors} nearest labelled neighbours agree with {scores[key]:.1%} of {q.size:,} "
           f"labelled rows (leave-one-out; {ranked})")
    if key == current and best != current:
        why += (f"; {best} is not better by more than {z:.2f} standard errors ({z * se:.3f}, Bonferroni over "
                f"{len(keys)} spaces), so {current} is kept")
    return SpaceChoice(key=key, scores=scores, n_labelled=int(m), reason=why)
