"""Scaling and PCA of descriptor matrices, chunk by chunk, at VeRi-Wild scale.

A descriptor matrix can be a read-only float32 memory map of 416,314 × 2560
(4.3 GB). Everything here reads it ``chunk_size`` rows at a time and never
holds more than one float32 chunk (plus its scaled copy) beside the output.

Scalers (registry :data:`SCALERS`, built by :func:`make_scaler`)
    ``none``, ``standard``, ``minmax``, ``robust``, ``l2``. All are
    scikit-learn transformers with ``fit``/``transform``; ``standard`` and
    ``minmax`` fit by exact streaming, ``robust`` on a fixed-seed row sample,
    ``l2`` is row-wise. Every scaler maps a constant column to exactly 0.

PCA (:class:`ChunkedPCA`)
    ``covariance`` solver: accumulate the (shifted) Gram matrix chunk by chunk,
    then a dense symmetric eigendecomposition (:func:`scipy.linalg.eigh`).
    ``randomized`` solver: :func:`sklearn.utils.extmath.randomized_svd`
    (Halko, Martinsson & Tropp 2011) on a fixed-seed row sample, for very wide data.

Because ``none``, ``standard``, ``minmax`` and ``robust`` are per-column affine
maps ``y = (x - offset) * factor``, the covariance of the scaled data is
``diag(factor) C diag(factor)`` where ``C`` is the covariance of the raw data.
:func:`reduce_descriptor` therefore reads the big matrix once for ``C``
(:class:`GramMoments`, reusable across scalers via ``moments=``) and once more
to project; only ``l2`` needs the Gram of its own scaled rows.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Callable, Iterator

import numpy as np
import scipy.linalg
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.preprocessing import RobustScaler, StandardScaler, normalize
from sklearn.utils.extmath import randomized_svd, svd_flip

from .errors import ParameterError
from .validation import check_int as _check_int
from .results import ReducedSpace

__all__ = [
    "SCALERS",
    "PCA_SOLVERS",
    "ChunkedScaler",
    "NoScaler",
    "StandardChunkScaler",
    "MinMaxChunkScaler",
    "RobustChunkScaler",
    "L2ChunkScaler",
    "make_scaler",
    "GramMoments",
    "ChunkedPCA",
    "reduce_descriptor",
    "mix_spaces",
    "iter_chunks",
    "blas_info",
]

DEFAULT_CHUNK = 32768
#: Widest matrix for which ``solver="auto"`` uses the covariance route: its d × d
#: float64 accumulator is 8 d² bytes (134 MB at 4096) and ``eigh`` is O(d³).
COVARIANCE_MAX_FEATURES = 4096
#: Rows sampled by the randomized solver and by the robust scaler.
SAMPLE_ROWS = 100_000


# --------------------------------------------------------------------------- helpers


def _check_matrix(X, name: str = "X") -> tuple[int, int]:
    shape = getattr(X, "shape", None)
    if shape is None or len(shape) != 2:
        raise ParameterError(f"{name} must be a 2-D array (n_samples, n_features); got shape {shape}")
    n, d = int(shape[0]), int(shape[1])
    if n < 1 or d < 1:
        raise ParameterError(f"{name} has shape {shape}: need at least 1 row and 1 column")
    return n, d


def iter_chunks(n_rows: int, chunk_size: int) -> Iterator[slice]:
    """Yield consecutive row slices of at most ``chunk_size`` rows covering ``range(n_rows)``.

    Parameters
    ----------
    n_rows : int
        Number of rows.
    chunk_size : int
        Rows per slice (the last one may be shorter).

    Yields
    ------
    slice
    """
    for start in range(0, n_rows, chunk_size):
        yield slice(start, min(start + chunk_size, n_rows))


def _chunk(X, sl: slice, check: bool = True) -> np.ndarray:
    """Rows ``sl`` of ``X`` as a float32 array (reads a memory map; checks finiteness if ``check``)."""
    C = np.asarray(X[sl], dtype=np.float32)
    if check and not np.isfinite(C).all():
        bad = np.argwhere(~np.isfinite(C))[0]
        raise ParameterError(
            f"X has a non-finite value {C[bad[0], bad[1]]} at row {sl.start + int(bad[0])}, column {int(bad[1])}; "
            "drop or repair such rows first (descluster.io.descriptors.find_bad_rows)"
        )
    return C


def _sample_rows(n_rows: int, size: int, random_state: int) -> np.ndarray:
    """Sorted indices of ``min(size, n_rows)`` rows drawn without replacement (fixed seed)."""
    if n_rows <= size:
        return np.arange(n_rows)
    return np.sort(np.random.default_rng(random_state).choice(n_rows, size=size, replace=False))


def _read_rows(X, idx: np.ndarray, chunk_size: int) -> np.ndarray:
    """``X[idx]`` as float32, read in chunks of indices (sorted indices keep a memmap sequential)."""
    out = np.empty((len(idx), X.shape[1]), dtype=np.float32)
    for sl in iter_chunks(len(idx), chunk_size):
        out[sl] = X[idx[sl]]
    if not np.isfinite(out).all():
        bad = np.argwhere(~np.isfinite(out))[0]
        raise ParameterError(f"X has a non-finite value at row {int(idx[bad[0]])}, column {int(bad[1])}")
    return out


def blas_info() -> list[dict]:
    """The BLAS/OpenMP libraries loaded in this process and their thread counts (threadpoolctl).

    Returns
    -------
    list of dict
        One per library: ``user_api``, ``internal_api`` (e.g. ``"openblas"``),
        ``version``, ``num_threads``, ``architecture`` where known. The Gram
        gemm of the covariance PCA runs on NumPy's BLAS.
    """
    from threadpoolctl import threadpool_info

    keep = ("user_api", "internal_api", "version", "num_threads", "architecture", "filepath")
    return [{k: v for k, v in lib.items() if k in keep} for lib in threadpool_info()]


# --------------------------------------------------------------------------- scalers


class ChunkedScaler(TransformerMixin, BaseEstimator):
    """Base of the descluster scalers: chunked fit/transform, constant columns -> 0.

    Subclasses set the per-column statistics in ``_fit_stats``; affine scalers
    define ``offset_`` and ``factor_`` so that ``transform(X) = (X - offset_) * factor_``.

    Parameters
    ----------
    chunk_size : int, default 32768
        Rows read at a time from ``X`` (memory: ``chunk_size × n_features × 4`` bytes per copy).

    Attributes
    ----------
    n_features_in_ : int
    n_samples_seen_ : int
    data_min_, data_max_ : ndarray of shape (n_features,), float64
        Column minimum and maximum over all fitted rows (exact, streamed).
    constant_ : ndarray of shape (n_features,), bool
        Columns with ``data_min_ == data_max_``; their output is exactly 0.
    """

    #: True when the scaler is ``(X - offset_) * factor_`` column by column.
    affine = True

    def __init__(self, chunk_size: int = DEFAULT_CHUNK):
        self.chunk_size = chunk_size

    # subclasses -----------------------------------------------------------
    def _reset(self, n_features: int) -> None:
        """Reset subclass statistics before a fit."""

    def _update(self, C: np.ndarray) -> None:
        """Update subclass statistics with one float32 chunk."""

    def _finish(self, X) -> None:
        """Turn statistics into ``offset_``/``factor_`` (may read a sample of ``X``)."""
        raise NotImplementedError

    # public ---------------------------------------------------------------
    def fit(self, X, y=None):
        """Fit the column statistics, streaming over ``X`` in chunks.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Any float dtype; a memory map is read ``chunk_size`` rows at a time.
        y : ignored

        Returns
        -------
        self

        Raises
        ------
        ParameterError
            Bad ``chunk_size``, ``X`` not 2-D, or a NaN/inf in ``X`` (names row and column).
        """
        _check_int("chunk_size", self.chunk_size, 1)
        n, d = _check_matrix(X)
        self.n_features_in_ = d
        self.n_samples_seen_ = n
        lo = np.full(d, np.inf)
        hi = np.full(d, -np.inf)
        self._reset(d)
        for sl in iter_chunks(n, self.chunk_size):
            C = _chunk(X, sl)
            np.minimum(lo, C.min(axis=0), out=lo)
            np.maximum(hi, C.max(axis=0), out=hi)
            self._update(C)
        self.data_min_, self.data_max_ = lo, hi
        self.constant_ = lo == hi
        self._finish(X)
        return self

    def _check_fitted_width(self, X) -> tuple[int, int]:
        if not hasattr(self, "constant_"):
            raise ParameterError(f"{type(self).__name__} is not fitted: call fit(X) first")
        n, d = _check_matrix(X)
        if d != self.n_features_in_:
            raise ParameterError(f"X has {d} columns but {type(self).__name__} was fitted on {self.n_features_in_}")
        return n, d

    def transform_chunk(self, C: np.ndarray) -> np.ndarray:
        """Scale one in-memory float32 chunk; may overwrite ``C``.

        Parameters
        ----------
        C : ndarray of shape (m, n_features), float32

        Returns
        -------
        ndarray of shape (m, n_features), float32
        """
        Y = np.subtract(C, self.offset_.astype(np.float32), dtype=np.float32)
        Y *= self.factor_.astype(np.float32)
        Y[:, self.constant_] = 0.0
        return Y

    def transform(self, X) -> np.ndarray:
        """Scale ``X`` chunk by chunk.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_features), float32
            Constant columns (of the fitted data) are exactly 0.

        Raises
        ------
        ParameterError
            Not fitted, wrong column count, or a non-finite value (names row and column).
        """
        n, d = self._check_fitted_width(X)
        out = np.empty((n, d), dtype=np.float32)
        for sl in iter_chunks(n, self.chunk_size):
            out[sl] = self.transform_chunk(_chunk(X, sl))
        return out


class NoScaler(ChunkedScaler):
    """Identity, except that constant columns become 0 (``none``).

    Zeroing a constant column only shifts it; distances and the PCA are unchanged.

    Attributes
    ----------
    offset_ : ndarray of shape (n_features,), float64
        The constant value on constant columns, 0 elsewhere.
    factor_ : ndarray of shape (n_features,), float64
        All ones.
    """

    def _finish(self, X) -> None:
        self.offset_ = np.where(self.constant_, self.data_min_, 0.0)
        self.factor_ = np.ones(self.n_features_in_)


class StandardChunkScaler(ChunkedScaler):
    """Zero mean, unit variance per column (``standard``), fitted by exact streaming.

    The streaming mean and variance are those of
    :meth:`sklearn.preprocessing.StandardScaler.partial_fit` (Chan, Golub &
    LeVeque's pairwise update, float64 accumulators).

    Attributes
    ----------
    mean_, var_ : ndarray of shape (n_features,), float64
    offset_ : ndarray of shape (n_features,), float64
        ``mean_``.
    factor_ : ndarray of shape (n_features,), float64
        ``1 / sqrt(var_)`` (1 where scikit-learn deems the variance zero), 0 on constant columns.
    """

    def _reset(self, n_features: int) -> None:
        self._sk = StandardScaler()

    def _update(self, C: np.ndarray) -> None:
        self._sk.partial_fit(C)

    def _finish(self, X) -> None:
        self.mean_ = np.asarray(self._sk.mean_, dtype=np.float64)
        self.var_ = np.asarray(self._sk.var_, dtype=np.float64)
        scale = np.asarray(self._sk.scale_, dtype=np.float64)  # 1 on (near-)constant columns
        del self._sk
        self.offset_ = self.mean_.copy()
        self.factor_ = np.where(self.constant_, 0.0, 1.0 / scale)


class MinMaxChunkScaler(ChunkedScaler):
    """Scale each column to [0, 1] (``minmax``), same as :class:`sklearn.preprocessing.MinMaxScaler`.

    Exact streaming: the column minimum and maximum are tracked chunk by chunk.

    Attributes
    ----------
    offset_ : ndarray of shape (n_features,), float64
        ``data_min_``.
    factor_ : ndarray of shape (n_features,), float64
        ``1 / (data_max_ - data_min_)``, 0 on constant columns.
    """

    def _finish(self, X) -> None:
        rng = self.data_max_ - self.data_min_
        self.offset_ = self.data_min_.copy()
        self.factor_ = np.where(self.constant_, 0.0, 1.0 / np.where(self.constant_, 1.0, rng))


class RobustChunkScaler(ChunkedScaler):
    """Subtract the median, divide by the inter-quartile range (``robust``).

    Quantiles are not streamable exactly, so they are computed by
    :class:`sklearn.preprocessing.RobustScaler` on a fixed-seed sample of at most
    ``sample_size`` rows (all rows when fewer). A column whose IQR is 0 (e.g. a
    ReLU feature that is zero in over 75 % of rows) is only centred, as in
    scikit-learn.

    Parameters
    ----------
    chunk_size : int, default 32768
    sample_size : int, default 100000
    random_state : int, default 0

    Attributes
    ----------
    center_, scale_ : ndarray of shape (n_features,), float64
        Median and IQR (1 where the IQR is 0) of the sample.
    n_sampled_ : int
    offset_, factor_ : ndarray of shape (n_features,), float64
        ``center_`` and ``1 / scale_`` (0 on constant columns).
    """

    def __init__(self, chunk_size: int = DEFAULT_CHUNK, sample_size: int = SAMPLE_ROWS, random_state: int = 0):
        super().__init__(chunk_size=chunk_size)
        self.sample_size = sample_size
        self.random_state = random_state

    def _finish(self, X) -> None:
        _check_int("sample_size", self.sample_size, 1)
        idx = _sample_rows(self.n_samples_seen_, self.sample_size, self.random_state)
        sk = RobustScaler().fit(_read_rows(X, idx, self.chunk_size))
        self.n_sampled_ = len(idx)
        self.center_ = np.asarray(sk.center_, dtype=np.float64)
        self.scale_ = np.asarray(sk.scale_, dtype=np.float64)
        self.offset_ = self.center_.copy()
        self.factor_ = np.where(self.constant_, 0.0, 1.0 / self.scale_)


class L2ChunkScaler(ChunkedScaler):
    """Divide each row by its Euclidean norm (``l2``), via :func:`sklearn.preprocessing.normalize`.

    Row-wise and otherwise stateless; the only fitted state is ``constant_``:
    constant columns are set to 0 before normalising (they carry no information
    but would dominate the norm). All-zero rows stay zero.
    """

    affine = False

    def _finish(self, X) -> None:
        pass

    def transform_chunk(self, C: np.ndarray) -> np.ndarray:
        """Zero constant columns, then L2-normalise each row of ``C`` (float32, shape kept)."""
        C = np.array(C, dtype=np.float32, copy=True)
        C[:, self.constant_] = 0.0
        return normalize(C, norm="l2", copy=False)


#: Scaler name -> class; the names are the ``preprocessing`` values of the study.
SCALERS: dict[str, type[ChunkedScaler]] = {
    "none": NoScaler,
    "standard": StandardChunkScaler,
    "minmax": MinMaxChunkScaler,
    "robust": RobustChunkScaler,
    "l2": L2ChunkScaler,
}


def make_scaler(name: str, chunk_size: int = DEFAULT_CHUNK, random_state: int = 0) -> ChunkedScaler:
    """Build the scaler registered under ``name`` in :data:`SCALERS`.

    Parameters
    ----------
    name : str
        ``"none"``, ``"standard"``, ``"minmax"``, ``"robust"`` or ``"l2"``.
    chunk_size : int, default 32768
    random_state : int, default 0
        Seed of the robust scaler's row sample (ignored by the others).

    Returns
    -------
    ChunkedScaler
        Unfitted.

    Raises
    ------
    ParameterError
        Unknown name (lists the valid ones).
    """
    if name not in SCALERS:
        raise ParameterError(f"preprocessing={name!r} is unknown; valid: {', '.join(SCALERS)}")
    if name == "robust":
        return RobustChunkScaler(chunk_size=chunk_size, random_state=random_state)
    return SCALERS[name](chunk_size=chunk_size)


# --------------------------------------------------------------------------- moments


class GramMoments:
    """Streamed mean and covariance of a matrix, from chunks (one pass).

    Each chunk is shifted by a fixed reference row (the first chunk's mean),
    so that ``sum (x - s)(x - s)^T`` does not cancel catastrophically for
    features with a large mean (ReLU outputs); the chunk's Gram matrix is one
    BLAS gemm in ``gram_dtype`` and is added to a float64 accumulator. The
    covariance is ``(S - t t^T / n) / (n - 1)`` with ``t = sum (x - s)``
    (the shifted-data algorithm, Chan, Golub & LeVeque 1983).

    Parameters
    ----------
    n_features : int
    gram_dtype : {"float32", "float64"}, default "float32"
        Precision of each chunk's gemm (float32 is ~4-5× faster here, relative
        error ~1e-6 of the covariance entries; see ``benchmarks/``).

    Attributes
    ----------
    n_samples_ : int
    shift_ : ndarray of shape (n_features,), float64
    sum_ : ndarray of shape (n_features,), float64
        Sum of shifted rows.
    gram_ : ndarray of shape (n_features, n_features), float64
        Sum of outer products of shifted rows.
    """

    def __init__(self, n_features: int, gram_dtype: str = "float32"):
        if gram_dtype not in ("float32", "float64"):
            raise ParameterError(f"gram_dtype={gram_dtype!r} is invalid; valid: float32, float64")
        self.n_features = _check_int("n_features", n_features, 1)
        self.gram_dtype = gram_dtype
        self.n_samples_ = 0
        self.shift_: np.ndarray | None = None
        self.sum_ = np.zeros(n_features)
        self.gram_ = np.zeros((n_features, n_features))

    def update(self, C: np.ndarray) -> "GramMoments":
        """Add one chunk of shape (m, n_features) (any float dtype); returns self."""
        if C.shape[1] != self.n_features:
            raise ParameterError(f"chunk has {C.shape[1]} columns, expected {self.n_features}")
        if C.shape[0] == 0:
            return self
        dt = np.dtype(self.gram_dtype)
        if self.shift_ is None:
            self.shift_ = C.mean(axis=0, dtype=np.float64)
        Y = np.subtract(C, self.shift_.astype(dt), dtype=dt)
        self.sum_ += Y.sum(axis=0, dtype=np.float64)
        self.gram_ += Y.T @ Y
        self.n_samples_ += C.shape[0]
        return self

    @classmethod
    def from_matrix(cls, X, chunk_size: int = DEFAULT_CHUNK, gram_dtype: str = "float32",
                    transform: Callable[[np.ndarray], np.ndarray] | None = None) -> "GramMoments":
        """Stream ``X`` (optionally ``transform``-ed chunk by chunk) into new moments.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        chunk_size : int
        gram_dtype : {"float32", "float64"}
        transform : callable, optional
            Applied to each float32 chunk before accumulating (e.g. a scaler's ``transform_chunk``).

        Returns
        -------
        GramMoments

        Raises
        ------
        ParameterError
            Bad shape or a non-finite value (names row and column).
        """
        n, d = _check_matrix(X)
        m = cls(d, gram_dtype)
        for sl in iter_chunks(n, _check_int("chunk_size", chunk_size, 1)):
            C = _chunk(X, sl)
            m.update(transform(C) if transform is not None else C)
        return m

    def mean(self) -> np.ndarray:
        """Column means, shape (n_features,), float64."""
        return self.shift_ + self.sum_ / self.n_samples_

    def covariance(self) -> np.ndarray:
        """Sample covariance (``ddof=1``, ``ddof=0`` for one row), shape (n_features, n_features), float64."""
        n = self.n_samples_
        C = (self.gram_ - np.outer(self.sum_, self.sum_) / n) / max(n - 1, 1)
        return (C + C.T) / 2.0


# --------------------------------------------------------------------------- PCA


def _fit_covariance_route(pca: "ChunkedPCA", mean: np.ndarray, cov: np.ndarray, n_samples: int) -> None:
    """Eigendecompose ``cov`` and set the PCA attributes (covariance solver)."""
    d = cov.shape[0]
    evals, evecs = scipy.linalg.eigh(cov, driver="evd", check_finite=False)
    evals = np.clip(evals[::-1], 0.0, None)  # descending; tiny negatives are round-off
    total = float(evals.sum())
    ratio = evals / total if total > 0 else np.zeros(d)
    p = pca._choose(ratio, n_samples, d)
    comps = evecs[:, ::-1][:, :p].T
    _, comps = svd_flip(None, comps, u_based_decision=False)
    pca._set(mean, comps, evals[:p], ratio, total, n_samples, d, "covariance")


def _fit_randomized_route(pca: "ChunkedPCA", X, n: int, d: int) -> None:
    """Randomized SVD of the centred row sample (randomized solver)."""
    idx = _sample_rows(n, SAMPLE_ROWS, pca.random_state)
    S = _read_rows(X, idx, pca.chunk_size)
    mean = S.mean(axis=0, dtype=np.float64)
    S -= mean.astype(np.float32)
    m = len(idx)
    total = sum(float(np.square(S[sl], dtype=np.float64).sum()) for sl in iter_chunks(m, 4096)) / max(m - 1, 1)
    limit = min(n, d)
    k = pca._requested(limit)
    k = min(k, min(m, d))
    _, s, vt = randomized_svd(S, n_components=k, n_oversamples=10, n_iter=4, flip_sign=False,
                              random_state=pca.random_state)
    _, vt = svd_flip(None, vt, u_based_decision=False)
    evals = s.astype(np.float64) ** 2 / max(m - 1, 1)
    ratio = evals / total if total > 0 else np.zeros(k)
    p = pca._choose(ratio, n, d, warn=False)
    pca._set(mean, vt[:p], evals[:p], ratio, total, n, d, "randomized")
    pca.n_sampled_ = m


#: PCA solver name -> description; ``auto`` resolves by width (see ChunkedPCA).
PCA_SOLVERS = {
    "covariance": "streamed Gram matrix + scipy.linalg.eigh (exact, full spectrum)",
    "randomized": f"sklearn randomized_svd on a fixed-seed sample of <= {SAMPLE_ROWS:,} rows",
    "auto": f"covariance when n_features <= {COVARIANCE_MAX_FEATURES}, else randomized",
}


class ChunkedPCA(TransformerMixin, BaseEstimator):
    """PCA of a matrix too big to copy, fitted and applied chunk by chunk.

    Parameters
    ----------
    n_components : int or None, default None
        Components to keep. None: the smallest p whose cumulative explained
        variance reaches ``variance_target``, at most ``max_components``.
        Larger than ``min(n_samples, n_features)``: capped, with a warning.
    variance_target : float in (0, 1], default 0.90
    max_components : int, default 256
    solver : {"auto", "covariance", "randomized"}, default "auto"
        See :data:`PCA_SOLVERS`. ``auto`` takes ``covariance`` up to
        ``COVARIANCE_MAX_FEATURES`` columns (measured ~5× faster than
        scikit-learn's randomized PCA at 416,314 × 2560, see ``benchmarks/``).
    chunk_size : int, default 32768
        Rows read per step.
    random_state : int, default 0
        Seed of the randomized solver (sample and projections).
    gram_dtype : {"float32", "float64"}, default "float32"
        Precision of each chunk's Gram gemm (accumulated in float64 either way).

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,), float64
    components_ : ndarray of shape (n_components_, n_features), float32
        Unit principal axes, by decreasing variance; each row's largest-magnitude
        entry is positive (scikit-learn's ``svd_flip`` convention), so fits are reproducible.
    explained_variance_ : ndarray of shape (n_components_,), float64
        Eigenvalues of the covariance (``ddof=1``) for the kept components.
    explained_variance_ratio_ : ndarray of shape (n_curve,), float64
        Eigenvalue / total variance. ``covariance``: the full curve, ``n_curve = n_features``;
        ``randomized``: the components computed (``n_curve`` ≥ ``n_components_``).
    total_variance_ : float
        Trace of the covariance.
    variance_reached_ : float
        Cumulative ratio of the kept components (below ``variance_target`` when capped).
    n_components_ : int
    n_samples_ : int
    n_features_in_ : int
    solver_ : str
        ``"covariance"`` or ``"randomized"``.

    Notes
    -----
    Components equal scikit-learn's ``PCA(svd_solver="full")`` up to sign and
    round-off (covariance route): both are the eigenvectors of the sample
    covariance (Jolliffe, *Principal Component Analysis*, 2002).
    """

    def __init__(self, n_components: int | None = None, variance_target: float = 0.90, max_components: int = 256,
                 solver: str = "auto", chunk_size: int = DEFAULT_CHUNK, random_state: int = 0,
                 gram_dtype: str = "float32"):
        self.n_components = n_components
        self.variance_target = variance_target
        self.max_components = max_components
        self.solver = solver
        self.chunk_size = chunk_size
        self.random_state = random_state
        self.gram_dtype = gram_dtype

    # validation and choice ------------------------------------------------
    def _validate(self) -> None:
        _check_int("n_components", self.n_components, 1, allow_none=True)
        _check_int("max_components", self.max_components, 1)
        _check_int("chunk_size", self.chunk_size, 1)
        _check_int("random_state", self.random_state, 0)
        t = self.variance_target
        if isinstance(t, bool) or not isinstance(t, numbers.Real) or not (0.0 < float(t) <= 1.0):
            raise ParameterError(f"variance_target={t!r} is invalid: expected a number in (0, 1]")
        if self.solver not in PCA_SOLVERS:
            raise ParameterError(f"solver={self.solver!r} is unknown; valid: {', '.join(PCA_SOLVERS)}")
        if self.gram_dtype not in ("float32", "float64"):
            raise ParameterError(f"gram_dtype={self.gram_dtype!r} is invalid; valid: float32, float64")

    def _resolve_solver(self, d: int) -> str:
        if self.solver != "auto":
            return self.solver
        return "covariance" if d <= COVARIANCE_MAX_FEATURES else "randomized"

    def _requested(self, limit: int, warn: bool = True) -> int:
        """Components to compute: explicit ``n_components`` (capped with a warning) or ``max_components``."""
        if self.n_components is not None:
            if self.n_components > limit:
                if not warn:
                    return limit
                warnings.warn(
                    f"n_components={self.n_components} exceeds min(n_samples, n_features)={limit}; using {limit}",
                    UserWarning, stacklevel=4)
                return limit
            return int(self.n_components)
        return min(int(self.max_components), limit)

    def _choose(self, ratio: np.ndarray, n: int, d: int, warn: bool = True) -> int:
        """Kept components from the ratio curve (variance target, caps)."""
        cap = min(self._requested(min(n, d), warn=warn), len(ratio))
        if self.n_components is not None:
            return cap
        if not np.any(ratio > 0):  # no variance at all (every column constant): one zero component
            return 1
        cum = np.cumsum(ratio)
        reached = np.flatnonzero(cum >= float(self.variance_target) - 1e-9)
        p = int(reached[0]) + 1 if reached.size else cap
        return max(1, min(p, cap))

    def _set(self, mean, comps, evals, ratio, total, n, d, solver) -> None:
        self.mean_ = np.asarray(mean, dtype=np.float64)
        self.components_ = np.ascontiguousarray(comps, dtype=np.float32)
        self.explained_variance_ = np.asarray(evals, dtype=np.float64)
        self.explained_variance_ratio_ = np.asarray(ratio, dtype=np.float64)
        self.total_variance_ = float(total)
        self.n_components_ = int(comps.shape[0])
        self.variance_reached_ = float(ratio[: self.n_components_].sum())
        self.n_samples_ = int(n)
        self.n_features_in_ = int(d)
        self.solver_ = solver

    # fitting ---------------------------------------------------------------
    def fit(self, X, y=None):
        """Fit on ``X``, read ``chunk_size`` rows at a time.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Float; a float32 memory map is never copied whole.
        y : ignored

        Returns
        -------
        self

        Raises
        ------
        ParameterError
            Invalid parameter (names it, its value and the valid range), or a
            non-finite value in ``X`` (names row and column).

        Warns
        -----
        UserWarning
            ``n_components`` above ``min(n_samples, n_features)`` (both numbers given).
        """
        self._validate()
        n, d = _check_matrix(X)
        if self._resolve_solver(d) == "randomized":
            _fit_randomized_route(self, X, n, d)
            return self
        m = GramMoments.from_matrix(X, self.chunk_size, self.gram_dtype)
        return self.fit_moments(m)

    def fit_moments(self, moments: GramMoments, offset: np.ndarray | None = None,
                    factor: np.ndarray | None = None) -> "ChunkedPCA":
        """Fit from streamed moments, optionally of the affine map ``(x - offset) * factor``.

        Parameters
        ----------
        moments : GramMoments
            Of the raw matrix.
        offset, factor : ndarray of shape (n_features,), optional
            A per-column affine scaler; the scaled data's mean is
            ``(mean - offset) * factor`` and covariance ``diag(factor) C diag(factor)``.

        Returns
        -------
        self

        Raises
        ------
        ParameterError
            Invalid parameters, or empty moments.
        """
        self._validate()
        if moments.n_samples_ < 1:
            raise ParameterError("moments hold no rows: fit on at least 1 row")
        mean, cov = moments.mean(), moments.covariance()
        if factor is not None:
            off = np.zeros_like(mean) if offset is None else np.asarray(offset, dtype=np.float64)
            f = np.asarray(factor, dtype=np.float64)
            mean = (mean - off) * f
            cov = cov * f[:, None] * f[None, :]
        _fit_covariance_route(self, mean, cov, moments.n_samples_)
        return self

    def transform_chunk(self, C: np.ndarray) -> np.ndarray:
        """Project one float32 chunk of shape (m, n_features) to (m, n_components_), float32; may overwrite ``C``."""
        C = np.subtract(C, self.mean_.astype(np.float32), dtype=np.float32)
        return C @ self.components_.T

    def transform(self, X) -> np.ndarray:
        """Project ``X`` onto the components, chunk by chunk.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_in_)

        Returns
        -------
        ndarray of shape (n_samples, n_components_), float32

        Raises
        ------
        ParameterError
            Not fitted or wrong number of columns.
        """
        if not hasattr(self, "components_"):
            raise ParameterError("ChunkedPCA is not fitted: call fit(X) first")
        n, d = _check_matrix(X)
        if d != self.n_features_in_:
            raise ParameterError(f"X has {d} columns but ChunkedPCA was fitted on {self.n_features_in_}")
        out = np.empty((n, self.n_components_), dtype=np.float32)
        for sl in iter_chunks(n, self.chunk_size):
            out[sl] = self.transform_chunk(_chunk(X, sl))
        return out

    def fit_transform(self, X, y=None) -> np.ndarray:
        """``fit(X).transform(X)``: shape (n_samples, n_components_), float32."""
        return self.fit(X).transform(X)

    def inverse_transform(self, Z: np.ndarray) -> np.ndarray:
        """Map reduced rows back: ``Z @ components_ + mean_``, shape (n, n_features_in_), float32."""
        return (np.asarray(Z, dtype=np.float32) @ self.components_ + self.mean_.astype(np.float32)).astype(np.float32)


# --------------------------------------------------------------------------- spaces


def reduce_descriptor(X, preprocessing: str, variance_target: float = 0.90, max_components: int = 256, *,
                      n_components: int | None = None, solver: str = "auto", chunk_size: int = DEFAULT_CHUNK,
                      random_state: int = 0, descriptor: str = "", gram_dtype: str = "float32",
                      moments: GramMoments | None = None) -> ReducedSpace:
    """Scale then PCA-reduce one descriptor matrix, fused chunk by chunk.

    Passes over ``X``: the scaler's fit (streamed), the covariance (skipped for
    affine scalers when ``moments`` of the raw matrix are given) and the
    projection. Peak memory ≈ the output + a few chunks + the d × d accumulator.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Float32 memory map or array.
    preprocessing : str
        A :data:`SCALERS` name.
    variance_target : float in (0, 1], default 0.90
    max_components : int, default 256
    n_components : int, optional
        Fixed number of components instead of the variance target.
    solver : {"auto", "covariance", "randomized"}
    chunk_size : int, default 32768
    random_state : int, default 0
    descriptor : str
        Name stored in the result (``ReducedSpace.descriptor``).
    gram_dtype : {"float32", "float64"}
    moments : GramMoments, optional
        Raw-data moments of ``X`` (e.g. from an earlier call's
        ``GramMoments.from_matrix(X)``); reused for affine scalers.

    Returns
    -------
    ReducedSpace
        ``X`` of shape (n_samples, n_components), float32; the ratio curve of the PCA.

    Raises
    ------
    ParameterError
        Unknown preprocessing or invalid PCA parameter, non-finite input.
    """
    scaler = make_scaler(preprocessing, chunk_size=chunk_size, random_state=random_state).fit(X)
    pca = ChunkedPCA(n_components=n_components, variance_target=variance_target, max_components=max_components,
                     solver=solver, chunk_size=chunk_size, random_state=random_state, gram_dtype=gram_dtype)
    pca._validate()
    n, d = _check_matrix(X)
    if pca._resolve_solver(d) == "randomized":
        idx = _sample_rows(n, SAMPLE_ROWS, random_state)
        sample = scaler.transform_chunk(_read_rows(X, idx, chunk_size))
        pca.fit(sample)  # a sample of <= SAMPLE_ROWS rows: the solver does not resample
        pca.n_samples_ = n
    elif scaler.affine:
        if moments is None or moments.n_samples_ != n or moments.n_features != d:
            moments = GramMoments.from_matrix(X, chunk_size, gram_dtype)
        pca.fit_moments(moments, scaler.offset_, np.where(scaler.constant_, 0.0, scaler.factor_))
    else:
        pca.fit_moments(GramMoments.from_matrix(X, chunk_size, gram_dtype, transform=scaler.transform_chunk))
    out = np.empty((n, pca.n_components_), dtype=np.float32)
    for sl in iter_chunks(n, chunk_size):
        out[sl] = pca.transform_chunk(scaler.transform_chunk(_chunk(X, sl, check=False)))  # checked by fit
    return ReducedSpace(descriptor=descriptor, preprocessing=preprocessing, X=out,
                        explained_variance_ratio=pca.explained_variance_ratio_, n_components=pca.n_components_,
                        variance_target=float(variance_target))


def mix_spaces(spaces: list[ReducedSpace], weights=None) -> ReducedSpace:
    """Weighted concatenation of reduced spaces of the same rows (a descriptor mixture).

    Each block is divided by the square root of its total variance (sum of
    column variances), so every block has total variance ``weight²`` whatever
    its width or scale, then the blocks are concatenated column-wise.

    Parameters
    ----------
    spaces : list of ReducedSpace
        Same number of rows, in the same row order.
    weights : sequence of float, optional
        One non-negative weight per space, default all 1.

    Returns
    -------
    ReducedSpace
        ``descriptor = "mix:a+b"``; ``preprocessing`` the shared one, or the
        parts' preprocessings joined by ``+`` when they differ; ``X`` of shape
        (n_samples, sum of widths), float32; ``explained_variance_ratio`` the
        per-column share of the mixture's total variance, in block order (not sorted).

    Raises
    ------
    ParameterError
        Empty list, different row counts (names both), wrong number or negative weights.
    """
    if not spaces:
        raise ParameterError("spaces is empty: mix_spaces needs at least one ReducedSpace")
    n = spaces[0].X.shape[0]
    for s in spaces[1:]:
        if s.X.shape[0] != n:
            raise ParameterError(f"space {s.key} has {s.X.shape[0]} rows but {spaces[0].key} has {n}")
    w = np.ones(len(spaces)) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if w.shape != (len(spaces),) or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ParameterError(f"weights={list(np.atleast_1d(w))} must be {len(spaces)} finite non-negative numbers")
    width = sum(s.X.shape[1] for s in spaces)
    out = np.empty((n, width), dtype=np.float32)
    col_var = np.empty(width)
    j = 0
    for s, wi in zip(spaces, w):
        B = np.asarray(s.X)
        var = B.var(axis=0, dtype=np.float64, ddof=1 if n > 1 else 0)
        total = float(var.sum())
        f = wi / math.sqrt(total) if total > 0 else 0.0
        out[:, j : j + B.shape[1]] = B * np.float32(f)
        col_var[j : j + B.shape[1]] = var * f * f
        j += B.shape[1]
    preps = list(dict.fromkeys(s.preprocessing for s in spaces))
    mixed_total = col_var.sum()
    return ReducedSpace(
        descriptor="mix:" + "+".join(s.descriptor for s in spaces),
        preprocessing="+".join(preps),
        X=out,
        explained_variance_ratio=col_var / mixed_total if mixed_total > 0 else np.zeros(width),
        n_components=width,
        variance_target=float(min(s.variance_target for s in spaces)),
    )
