"""Column scalers for descriptor matrices, fitted and applied chunk by chunk (registry :data:`SCALERS`).

``none``, ``standard``, ``minmax``, ``robust``, ``l2``. All are scikit-learn
transformers with ``fit``/``transform``; ``standard`` and ``minmax`` fit by exact
streaming, ``robust`` on a fixed-seed row sample, ``l2`` is row-wise. Every scaler
maps a constant column to exactly 0. The affine ones (all but ``l2``) are
``y = (x - offset_) * factor_`` per column, which lets the PCA reuse one covariance
of the raw data (see :mod:`descluster.preprocess.moments`).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.preprocessing import RobustScaler, StandardScaler, normalize

from ..errors import ParameterError
from ..rows import row_chunks, sample_rows
from ..validation import check_choice, check_int as _check_int
from ._chunks import DEFAULT_CHUNK, SAMPLE_ROWS, check_fitted_width, check_matrix, map_chunks, read_chunk, read_rows

__all__ = ["SCALERS", "ChunkedScaler", "NoScaler", "StandardChunkScaler", "MinMaxChunkScaler",
           "RobustChunkScaler", "L2ChunkScaler", "make_scaler"]


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
        n, d = check_matrix(X)
        self.n_features_in_ = d
        self.n_samples_seen_ = n
        lo = np.full(d, np.inf)
        hi = np.full(d, -np.inf)
        self._reset(d)
        for sl in row_chunks(n, self.chunk_size):
            C = read_chunk(X, sl)
            np.minimum(lo, C.min(axis=0), out=lo)
            np.maximum(hi, C.max(axis=0), out=hi)
            self._update(C)
        self.data_min_, self.data_max_ = lo, hi
        self.constant_ = lo == hi
        self._finish(X)
        return self

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
        n, d = check_fitted_width(X, type(self).__name__, hasattr(self, "constant_"), getattr(self, "n_features_in_", None))
        return map_chunks(X, d, self.transform_chunk, self.chunk_size)


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
        idx = sample_rows(self.n_samples_seen_, self.sample_size, self.random_state)
        sk = RobustScaler().fit(read_rows(X, idx, self.chunk_size))
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
    check_choice("preprocessing", name, SCALERS)
    if name == "robust":
        return RobustChunkScaler(chunk_size=chunk_size, random_state=random_state)
    return SCALERS[name](chunk_size=chunk_size)
