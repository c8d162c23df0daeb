"""2-D (or 3-D) maps of a reduced descriptor space, for looking at clusters.

Each method is a small strategy object with ``fit_transform(X, strata=None)``
and a ``description_`` saying in words how the map was made; :data:`EMBEDDINGS`
maps the method names used on the command line to those classes, and
:func:`embed_2d` is the one-call entry point the pipeline uses.

- :class:`TSNEEmbedding`: openTSNE (Poličar, Stražar & Zupan, "openTSNE: a
  modular Python library for t-SNE dimensionality reduction and embedding",
  J. Stat. Softw. 2024) with FFT-accelerated interpolation gradients
  (Linderman et al., Nature Methods 2019) from 10,000 rows up (Barnes–Hut
  below, where it is faster). Above ``max_points`` rows a
  fixed-seed sample, stratified by cluster, is embedded and every other row is
  placed into that map with openTSNE's ``TSNEEmbedding.transform`` (each row on its own, against the
  fixed map; under the Dask engine per block on the workers, :meth:`descluster.engine.Engine.map_rows`).
- :class:`UMAPEmbedding`: umap-learn (McInnes, Healy & Melville 2018), imported
  lazily; if it is not installed the map falls back to t-SNE and says so.
- :class:`PCAEmbedding`: scikit-learn PCA, the fast fallback.

A map only serves looking; clustering never runs on it.
"""

from __future__ import annotations

import logging
import os
from typing import Callable

import numpy as np

from .errors import ParameterError
from .rows import sample_rows
from .validation import check_int as _check_int

logger = logging.getLogger(__name__)

#: Above this many rows t-SNE embeds a stratified sample and places the rest. Measured on
#: 416,314 x 248 (2 cores): openTSNE's fit took 72 s on 40,000 rows at 50 dimensions (over
#: 5 minutes on 100,000), and ``transform`` places 20,000 further rows in 4.3 s.
DEFAULT_MAX_POINTS = 40_000

#: t-SNE runs on at most this many leading principal components (Kobak & Berens 2019,
#: "The art of using t-SNE for single-cell transcriptomics", Nat. Commun.: PCA to 50 first).
DEFAULT_PCA_DIMS = 50

#: From this many embedded rows up, ``gradient="auto"`` uses FFT gradients.
FFT_MIN_ROWS = 10_000

GRADIENTS = ("auto", "fft", "bh")


def _check_X(X) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise ParameterError(f"X has shape {X.shape}: an embedding needs a 2-D array with at least one row and column")
    if not np.isfinite(X).all():
        bad = int((~np.isfinite(X)).any(axis=1).sum())
        raise ParameterError(f"X has {bad} rows with NaN or infinite values; an embedding needs finite values")
    return X


def stratified_sample(n: int, size: int, strata: np.ndarray | None, random_state: int = 0) -> np.ndarray:
    """Indices of a fixed-seed sample of ``size`` rows out of ``n``, stratified by ``strata``.

    Each stratum (cluster) gets ``round(size * share)`` rows, at least one, so
    small clusters stay on the map; the total is then trimmed or topped up at
    random to exactly ``size``.

    Parameters
    ----------
    n : int
        Number of rows.
    size : int
        Sample size, ``1 <= size <= n``.
    strata : ndarray of shape (n,), int, or None
        Cluster of every row; ``None`` means a plain uniform sample.
    random_state : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    ndarray of shape (size,), int64
        Sorted row indices.

    Raises
    ------
    ParameterError
        If ``size`` is out of range or ``strata`` has the wrong length.
    """
    size = _check_int("size", size, 1, n)
    if strata is None:
        return sample_rows(n, size, random_state).astype(np.int64)
    rng = np.random.default_rng(random_state)
    strata = np.asarray(strata)
    if strata.shape != (n,):
        raise ParameterError(f"strata has shape {strata.shape}; expected ({n},), one cluster per row")
    picked = []
    for value in np.unique(strata):
        members = np.flatnonzero(strata == value)
        take = min(len(members), max(1, int(round(size * len(members) / n))))
        picked.append(rng.choice(members, size=take, replace=False))
    chosen = np.concatenate(picked)
    if len(chosen) > size:
        chosen = rng.choice(chosen, size=size, replace=False)
    elif len(chosen) < size:
        rest = np.setdiff1d(np.arange(n), chosen, assume_unique=False)
        chosen = np.concatenate([chosen, rng.choice(rest, size=size - len(chosen), replace=False)])
    return np.sort(chosen).astype(np.int64)


def degenerate_space(X: np.ndarray, n_components: int) -> str | None:
    """Why a neighbour-graph map (t-SNE, UMAP) cannot or need not be made of ``X``, or None.

    A space with fewer dimensions than the map (PCA kept one component, a one-column or
    rank-one descriptor), fewer than 5 rows, or fewer than ``n_components + 1`` distinct
    rows has nothing for t-SNE/UMAP to unfold, and their PCA initialisation fails on it;
    its principal axes (zero-padded) are then the map.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32
    n_components : int
        Dimensions of the map (2 or 3).

    Returns
    -------
    str or None
        The reason in words, e.g. ``"the space has 1 dimension(s), the map 2"``.
    """
    n, p = X.shape
    if n < 5:
        return f"only {n} rows (t-SNE and UMAP need at least 5)"
    if p < n_components:
        return f"the space has {p} dimension(s), the map {n_components}"
    head = np.asarray(X[: min(n, 2_000)], dtype=np.float64)
    rank = np.linalg.matrix_rank(head - head.mean(axis=0)) if np.isfinite(head).all() else p
    if rank < n_components:
        return f"the rows span only {rank} dimension(s) (first {len(head):,} rows), the map has {n_components}"
    return None


class PCAEmbedding:
    """Map by the first principal components (scikit-learn ``PCA``); fast fallback.

    Parameters
    ----------
    n_components : int, 2 or 3
    random_state : int

    Attributes
    ----------
    description_ : str
        How the map was made, in words.
    explained_variance_ratio_ : ndarray of shape (n_components,), float64
        Share of variance each map axis carries.
    """

    name = "pca"

    def __init__(self, n_components: int = 2, random_state: int = 0):
        self.n_components = n_components
        self.random_state = random_state

    def fit_transform(self, X: np.ndarray, strata: np.ndarray | None = None) -> np.ndarray:
        """Return the map of ``X``.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features), float32
        strata : ignored (kept for a common interface)

        Returns
        -------
        ndarray of shape (n_samples, n_components), float32
        """
        from sklearn.decomposition import PCA

        _check_int("n_components", self.n_components, 2, 3)
        X = _check_X(X)
        n, p = X.shape
        k = min(self.n_components, n, p)
        Y = np.zeros((n, self.n_components), dtype=np.float32)
        if n >= 2 and k >= 1 and float(np.ptp(X, axis=0).max()) > 0:
            pca = PCA(n_components=k, random_state=self.random_state, svd_solver="auto")
            Y[:, :k] = pca.fit_transform(X).astype(np.float32)
            ratio = np.zeros(self.n_components)
            ratio[:k] = np.nan_to_num(pca.explained_variance_ratio_)
            self.explained_variance_ratio_ = ratio
        else:
            self.explained_variance_ratio_ = np.zeros(self.n_components)
        share = 100 * float(self.explained_variance_ratio_.sum())
        self.description_ = f"PCA (first {self.n_components} components, {share:.0f}% of variance), all {n:,} rows"
        return Y


class TSNEEmbedding:
    """openTSNE map with FFT gradients; samples and places above ``max_points`` rows.

    Parameters
    ----------
    n_components : int, 2 or 3
        openTSNE's FFT gradients exist for up to 2 dimensions; a 3-D map uses
        Barnes–Hut gradients instead (said in ``description_``).
    gradient : {"auto", "fft", "bh"}
        Negative-gradient approximation. ``"auto"`` uses FFT interpolation
        (Linderman et al. 2019) from :data:`FFT_MIN_ROWS` embedded rows up and
        Barnes–Hut below, where FFT's fixed grid cost dominates (8 s vs 0.05 s
        for 20 rows, measured) — openTSNE's own recommendation.
    perplexity : float, > 0
        Lowered for small inputs to the largest valid value ``(n - 2) / 3``
        (t-SNE needs ``3 * perplexity < n - 1`` neighbours); the change is
        logged and written into ``description_``.
    max_points : int, >= 10
        Above this many rows, a fixed-seed sample of ``max_points`` rows
        stratified by cluster is embedded and the other rows are placed with
        ``openTSNE.TSNEEmbedding.transform``.
    random_state : int
    n_jobs : int
        Threads openTSNE may use; ``-1`` means all cores from
        :data:`FFT_MIN_ROWS` embedded rows up and one thread below.
    n_iter, early_exaggeration_iter : int, >= 1
        Optimisation iterations after / during early exaggeration (openTSNE
        defaults 500 / 250).
    pca_dims : int or None, >= 2
        Inputs wider than this are first projected on their ``pca_dims`` leading
        principal axes (scikit-learn ``PCA`` fitted on the embedded rows); None keeps
        every column. Default :data:`DEFAULT_PCA_DIMS`.

    Attributes
    ----------
    perplexity_ : float
        Perplexity actually used.
    sample_ : ndarray of shape (n_sampled,), int64
        Rows embedded directly (all rows when not sampled).
    pca_dims_ : int or None
        Principal components t-SNE ran on (None: the input columns as given).
    description_ : str
        How the map was made, in words.
    """

    name = "tsne"

    def __init__(self, n_components: int = 2, perplexity: float = 30.0, max_points: int = DEFAULT_MAX_POINTS,
                 random_state: int = 0, n_jobs: int = -1, n_iter: int = 500, early_exaggeration_iter: int = 250,
                 gradient: str = "auto", pca_dims: int | None = DEFAULT_PCA_DIMS):
        self.pca_dims = pca_dims
        self.gradient = gradient
        self.n_iter = n_iter
        self.early_exaggeration_iter = early_exaggeration_iter
        self.n_components = n_components
        self.perplexity = perplexity
        self.max_points = max_points
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _validate(self) -> None:
        _check_int("n_components", self.n_components, 2, 3)
        _check_int("max_points", self.max_points, 10)
        _check_int("n_iter", self.n_iter, 1)
        if self.gradient not in GRADIENTS:
            raise ParameterError(f"gradient={self.gradient!r} is invalid: choose one of {GRADIENTS}")
        _check_int("early_exaggeration_iter", self.early_exaggeration_iter, 1)
        if self.pca_dims is not None:
            _check_int("pca_dims", self.pca_dims, 2)
        if not isinstance(self.perplexity, (int, float)) or not (self.perplexity > 0):
            raise ParameterError(f"perplexity={self.perplexity!r} is invalid: it must be a number > 0")

    def fit_transform(self, X: np.ndarray, strata: np.ndarray | None = None) -> np.ndarray:
        """Return the t-SNE map of ``X``.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features), float32
        strata : ndarray of shape (n_samples,), int, optional
            Cluster of every row, used to stratify the sample when
            ``max_points``.

        Returns
        -------
        ndarray of shape (n_samples, n_components), float32

        Raises
        ------
        ParameterError
            For invalid parameters or non-finite ``X``.
        """
        import openTSNE

        self._validate()
        source = X  # a file's memory map stays one, so that the Dask engine's workers read its blocks by path
        X = _check_X(X)
        if not isinstance(source, np.memmap):
            source = X
        n = X.shape[0]
        why = degenerate_space(X, self.n_components)
        if why:
            pca = PCAEmbedding(self.n_components, self.random_state)
            Y = pca.fit_transform(X)
            self.perplexity_ = float("nan")
            self.pca_dims_ = None
            self.sample_ = np.arange(n)
            self.description_ = f"PCA instead of t-SNE: {why}; {pca.description_}"
            logger.warning(self.description_)
            return Y
        sampled = n > self.max_points
        self.sample_ = stratified_sample(n, self.max_points, strata, self.random_state) if sampled else np.arange(n)
        n_fit = len(self.sample_)
        perplexity = float(self.perplexity)
        limit = (n_fit - 2) / 3.0
        notes = []
        if perplexity > limit:
            logger.warning("perplexity %.4g is too large for %d rows; using %.4g ((n - 2) / 3)", perplexity, n_fit, limit)
            notes.append(f"perplexity lowered from {perplexity:g} to {limit:.3g} for {n_fit} rows")
            perplexity = limit
        self.perplexity_ = perplexity
        if self.n_components > 2:
            method = "bh"
        elif self.gradient == "auto":
            method = "fft" if n_fit >= FFT_MIN_ROWS else "bh"
        else:
            method = self.gradient
        if self.n_jobs == -1:  # one thread below FFT_MIN_ROWS: thread start-up dominates (6 s vs 0.05 s, 20 rows)
            n_jobs = (os.cpu_count() or 1) if n_fit >= FFT_MIN_ROWS else 1
        else:
            n_jobs = int(self.n_jobs)
        tsne = openTSNE.TSNE(n_components=self.n_components, perplexity=perplexity, negative_gradient_method=method,
                             random_state=self.random_state, n_jobs=n_jobs, verbose=False, n_iter=self.n_iter,
                             early_exaggeration_iter=self.early_exaggeration_iter)
        project = self._projection(X)
        embedding = tsne.fit(project(X[self.sample_]))
        Y = np.empty((n, self.n_components), dtype=np.float32)
        Y[self.sample_] = np.asarray(embedding, dtype=np.float32)
        grad = "FFT" if method == "fft" else f"Barnes-Hut, {self.n_components}-D"
        if sampled:
            from .engine import current_engine

            rest = np.setdiff1d(np.arange(n), self.sample_)
            engine = current_engine()

            def place(rows: np.ndarray) -> np.ndarray:  # each row is placed against the fixed map, on its own
                return np.asarray(embedding.transform(project(rows)), dtype=np.float32)

            # 50,000 rows per call: bounded memory for the affinity rows; per block on the workers (Dask engine)
            Y[rest] = engine.map_rows(place, source, rest, chunk_rows=50_000)
            where = "" if engine.name == "local" else f", per block on the {engine.name} workers"
            what = (f"a {n_fit:,}-row sample stratified by cluster (seed {self.random_state}); "
                    f"the other {len(rest):,} rows placed with openTSNE transform{where}")
        else:
            what = f"all {n:,} rows"
        self.description_ = f"openTSNE ({grad}, perplexity {perplexity:.3g}), {what}"
        if self.pca_dims_ is not None:
            notes.insert(0, f"on the leading {self.pca_dims_} of {X.shape[1]} principal components")
        if notes:
            self.description_ += "; " + "; ".join(notes)
        return Y


    def _projection(self, X: np.ndarray):
        """Callable mapping rows of ``X`` to the t-SNE input: PCA to ``pca_dims`` when wider, else identity."""
        self.pca_dims_ = None
        if self.pca_dims is None or X.shape[1] <= self.pca_dims or len(self.sample_) <= self.pca_dims:
            return lambda rows: rows
        from sklearn.decomposition import PCA

        pca = PCA(n_components=self.pca_dims, random_state=self.random_state).fit(X[self.sample_])
        self.pca_dims_ = int(self.pca_dims)
        return lambda rows: pca.transform(rows).astype(np.float32)


class UMAPEmbedding:
    """UMAP map (umap-learn, imported lazily); falls back to t-SNE if it is missing.

    Parameters
    ----------
    n_components : int, 2 or 3
    n_neighbors : int, >= 2
        Lowered to ``n - 1`` for tiny inputs.
    max_points : int
        Passed to the t-SNE fallback.
    random_state : int

    Attributes
    ----------
    description_ : str
        How the map was made, in words (names the fallback if there was one).
    """

    name = "umap"

    def __init__(self, n_components: int = 2, n_neighbors: int = 15, max_points: int = DEFAULT_MAX_POINTS,
                 random_state: int = 0):
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.max_points = max_points
        self.random_state = random_state

    def fit_transform(self, X: np.ndarray, strata: np.ndarray | None = None) -> np.ndarray:
        """Return the UMAP map of ``X``.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features), float32
        strata : ndarray of shape (n_samples,), optional
            Only used by the t-SNE fallback.

        Returns
        -------
        ndarray of shape (n_samples, n_components), float32
        """
        _check_int("n_components", self.n_components, 2, 3)
        _check_int("n_neighbors", self.n_neighbors, 2)
        X = _check_X(X)
        try:
            import umap  # noqa: F401  (optional extra)
        except Exception as exc:  # ImportError, or numba failing to initialise
            logger.warning("umap-learn is not usable (%s); falling back to t-SNE", exc)
            tsne = TSNEEmbedding(self.n_components, max_points=self.max_points, random_state=self.random_state)
            Y = tsne.fit_transform(X, strata)
            self.description_ = f"UMAP unavailable ({type(exc).__name__}); {tsne.description_}"
            return Y
        n = X.shape[0]
        why = degenerate_space(X, self.n_components)
        if why:
            pca = PCAEmbedding(self.n_components, self.random_state)
            Y = pca.fit_transform(X)
            self.description_ = f"PCA instead of UMAP: {why}; {pca.description_}"
            return Y
        k = min(self.n_neighbors, n - 1)
        reducer = umap.UMAP(n_components=self.n_components, n_neighbors=k, random_state=self.random_state)
        Y = np.asarray(reducer.fit_transform(X), dtype=np.float32)
        self.description_ = f"UMAP (n_neighbors {k}), all {n:,} rows"
        return Y


#: Method name -> strategy class.
EMBEDDINGS: dict[str, Callable[..., object]] = {
    "tsne": TSNEEmbedding,
    "umap": UMAPEmbedding,
    "pca": PCAEmbedding,
}


def make_embedding(method: str = "tsne", *, n_components: int = 2, random_state: int = 0,
                   max_points: int = DEFAULT_MAX_POINTS):
    """Return the strategy object for ``method`` (a key of :data:`EMBEDDINGS`).

    Raises
    ------
    ParameterError
        If ``method`` is unknown.
    """
    if method not in EMBEDDINGS:
        raise ParameterError(f"method={method!r} is invalid: choose one of {sorted(EMBEDDINGS)}")
    if method == "pca":
        return PCAEmbedding(n_components=n_components, random_state=random_state)
    return EMBEDDINGS[method](n_components=n_components, max_points=max_points, random_state=random_state)


def embed_2d(X: np.ndarray, method: str = "tsne", random_state: int = 0, max_points: int = DEFAULT_MAX_POINTS,
             n_components: int = 2, labels: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """Map the rows of ``X`` to 2 (or 3) dimensions for display.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32
        A reduced descriptor space (``ReducedSpace.X``).
    method : {"tsne", "umap", "pca"}
        See :data:`EMBEDDINGS`.
    random_state : int
        Seed; the same inputs give the same map.
    max_points : int
        t-SNE embeds at most this many rows (a sample stratified by
        ``labels``) and places the rest with openTSNE's ``transform``.
    n_components : int, 2 or 3
    labels : ndarray of shape (n_samples,), int, optional
        Cluster of every row (stratifies the t-SNE sample).

    Returns
    -------
    Y : ndarray of shape (n_samples, n_components), float32
    description : str
        How the map was made, e.g. ``"openTSNE (FFT, perplexity 30), all 4,800 rows"``.

    Raises
    ------
    ParameterError
        Unknown ``method``, invalid sizes, non-finite ``X``.
    """
    model = make_embedding(method, n_components=n_components, random_state=random_state, max_points=max_points)
    Y = model.fit_transform(X, labels)
    return Y, model.description_
