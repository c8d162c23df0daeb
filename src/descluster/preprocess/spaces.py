"""Reduced spaces: one descriptor kind scaled and PCA-reduced (:func:`reduce_descriptor`), or
a weighted concatenation of such (:func:`mix_spaces`); and the fitted maps that make them
(:class:`Reduction`, :class:`Mixture`), which a saved model applies to new images.

Because ``none``, ``standard``, ``minmax`` and ``robust`` are per-column affine maps
``y = (x - offset) * factor``, the covariance of the scaled data is
``diag(factor) C diag(factor)`` where ``C`` is the covariance of the raw data.
:func:`reduce_descriptor` therefore reads the big matrix once for ``C``
(:class:`~descluster.preprocess.moments.GramMoments`, reusable across scalers via
``moments=``) and once more to project; only ``l2`` needs the Gram of its own scaled rows.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ParameterError
from ..results import ReducedSpace, SpaceId
from ..rows import sample_rows
from ._chunks import DEFAULT_CHUNK, SAMPLE_ROWS, check_fitted_width, check_matrix, map_chunks, read_rows
from .moments import GramMoments
from .pca import ChunkedPCA
from .scalers import ChunkedScaler, make_scaler

__all__ = ["reduce_descriptor", "mix_spaces", "Reduction", "Mixture"]


def reduce_descriptor(X, preprocessing: str, variance_target: float = 0.90, max_components: int = 256, *,
                      n_components: int | None = None, solver: str = "auto", chunk_size: int = DEFAULT_CHUNK,
                      random_state: int = 0, descriptor: str = "", gram_dtype: str = "float32",
                      moments: GramMoments | None = None, fingerprint: str = "") -> ReducedSpace:
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
        Descriptor kind stored in the result's :class:`~descluster.results.SpaceId`.
    gram_dtype : {"float32", "float64"}
    moments : GramMoments, optional
        Raw-data moments of ``X`` (e.g. from an earlier call's
        ``GramMoments.from_matrix(X)``); reused for affine scalers.
    fingerprint : str
        Stored in the result's :class:`~descluster.results.SpaceId` (what the rows depend on).

    Returns
    -------
    ReducedSpace
        ``X`` of shape (n_samples, n_components), float32; the ratio curve of the PCA;
        ``transform`` the fitted :class:`Reduction` (applies the same map to new rows).

    Raises
    ------
    ParameterError
        Unknown preprocessing or invalid PCA parameter, non-finite input.
    """
    scaler = make_scaler(preprocessing, chunk_size=chunk_size, random_state=random_state).fit(X)
    pca = ChunkedPCA(n_components=n_components, variance_target=variance_target, max_components=max_components,
                     solver=solver, chunk_size=chunk_size, random_state=random_state, gram_dtype=gram_dtype)
    pca._validate()
    n, d = check_matrix(X)
    if pca._resolve_solver(d) == "randomized":
        idx = sample_rows(n, SAMPLE_ROWS, random_state)
        sample = scaler.transform_chunk(read_rows(X, idx, chunk_size))
        pca.fit(sample)  # a sample of <= SAMPLE_ROWS rows: the solver does not resample
        pca.n_samples_ = n
    elif scaler.affine:
        if moments is None or moments.n_samples_ != n or moments.n_features != d:
            moments = GramMoments.from_matrix(X, chunk_size, gram_dtype)
        pca.fit_moments(moments, scaler.offset_, np.where(scaler.constant_, 0.0, scaler.factor_))
    else:
        pca.fit_moments(GramMoments.from_matrix(X, chunk_size, gram_dtype, transform=scaler.transform_chunk))
    reduction = Reduction(preprocessing, scaler, pca, chunk_size)
    return ReducedSpace(id=SpaceId.single(descriptor, preprocessing, fingerprint),
                        X=reduction.transform(X, check=False),  # checked by the scaler's fit
                        explained_variance_ratio=pca.explained_variance_ratio_, n_components=pca.n_components_,
                        variance_target=float(variance_target), transform=reduction)


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
    factors, col_var = [], []
    for s, wi in zip(spaces, w):
        var = np.asarray(s.X).var(axis=0, dtype=np.float64, ddof=1 if n > 1 else 0)
        total = float(var.sum())
        f = wi / math.sqrt(total) if total > 0 else 0.0
        factors.append(f)
        col_var.append(var * f * f)
    mixture = Mixture(tuple(s.id for s in spaces), np.asarray(factors, dtype=np.float64))
    col_var = np.concatenate(col_var)
    mixed_total = col_var.sum()
    return ReducedSpace(
        id=SpaceId.mixture(mixture.parts),
        X=mixture.transform([s.X for s in spaces]),
        explained_variance_ratio=col_var / mixed_total if mixed_total > 0 else np.zeros(col_var.size),
        n_components=int(col_var.size),
        variance_target=float(min(s.variance_target for s in spaces)),
        transform=mixture,
    )


class Reduction:
    """A fitted scaler followed by a fitted PCA: the map from raw descriptor rows to one reduced space.

    Parameters
    ----------
    preprocessing : str
        The scaler's :data:`~descluster.preprocess.scalers.SCALERS` name.
    scaler : ChunkedScaler
        Fitted.
    pca : ChunkedPCA
        Fitted.
    chunk_size : int, default 32768
        Rows transformed at a time.

    Notes
    -----
    :meth:`transform` runs exactly the chunk loop that made the study's space
    (same float32 operations in the same order), so the study's own rows map to
    the same bits. :meth:`to_arrays` / :meth:`from_arrays` save and restore it as
    plain arrays (``offset``, ``factor``, ``constant``, ``mean``, ``components``).
    """

    def __init__(self, preprocessing: str, scaler: ChunkedScaler, pca: ChunkedPCA, chunk_size: int = DEFAULT_CHUNK):
        self.preprocessing = preprocessing
        self.scaler = scaler
        self.pca = pca
        self.chunk_size = chunk_size

    @property
    def n_features_in(self) -> int:
        """Columns of the raw descriptor."""
        return int(self.scaler.n_features_in_)

    @property
    def n_components(self) -> int:
        """Columns of the reduced space."""
        return int(self.pca.n_components_)

    def transform(self, X, check: bool = True) -> np.ndarray:
        """Scale and project ``X`` (n, n_features_in) chunk by chunk.

        Returns
        -------
        ndarray of shape (n, n_components), float32

        Raises
        ------
        ParameterError
            Wrong number of columns (names both), or a non-finite value when ``check``
            (names row and column).
        """
        check_fitted_width(X, f"this {self.preprocessing} + PCA space", True, self.n_features_in)
        return map_chunks(X, self.n_components, lambda C: self.pca.transform_chunk(self.scaler.transform_chunk(C)),
                          self.chunk_size, check=check)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The fitted state as arrays: scaler ``offset``/``factor`` (affine only) and ``constant``,
        PCA ``mean`` and ``components``."""
        out = {"constant": np.asarray(self.scaler.constant_, dtype=bool), "mean": np.asarray(self.pca.mean_),
               "components": np.asarray(self.pca.components_)}
        if self.scaler.affine:
            out["offset"] = np.asarray(self.scaler.offset_, dtype=np.float64)
            out["factor"] = np.asarray(self.scaler.factor_, dtype=np.float64)
        return out

    @classmethod
    def from_arrays(cls, preprocessing: str, arrays: dict[str, np.ndarray]) -> "Reduction":
        """Rebuild from :meth:`to_arrays` output.

        Raises
        ------
        ParameterError
            Unknown scaler name, or arrays missing or of inconsistent shapes.
        """
        scaler = make_scaler(preprocessing)
        try:
            constant = np.asarray(arrays["constant"], dtype=bool)
            mean = np.asarray(arrays["mean"], dtype=np.float64)
            components = np.ascontiguousarray(arrays["components"], dtype=np.float32)
            if scaler.affine:
                scaler.offset_ = np.asarray(arrays["offset"], dtype=np.float64)
                scaler.factor_ = np.asarray(arrays["factor"], dtype=np.float64)
        except KeyError as exc:
            raise ParameterError(f"saved {preprocessing} + PCA space lacks the array {exc}") from exc
        d = constant.size
        if mean.shape != (d,) or components.ndim != 2 or components.shape[1] != d or (
                scaler.affine and (scaler.offset_.shape != (d,) or scaler.factor_.shape != (d,))):
            raise ParameterError(f"saved {preprocessing} + PCA space has inconsistent shapes: constant {constant.shape}, "
                                 f"mean {mean.shape}, components {components.shape}")
        scaler.constant_, scaler.n_features_in_ = constant, d
        pca = ChunkedPCA()
        pca.mean_, pca.components_ = mean, components
        pca.n_components_, pca.n_features_in_ = components.shape[0], d
        return cls(preprocessing, scaler, pca)


class Mixture:
    """Weighted concatenation of single spaces (see :func:`mix_spaces`).

    Parameters
    ----------
    parts : tuple of SpaceId
        The single spaces, in block order.
    factors : ndarray of shape (n_parts,), float64
        Each block's multiplier ``weight / sqrt(total variance of the block)``.
    """

    def __init__(self, parts, factors):
        self.parts = tuple(parts)
        self.factors = np.asarray(factors, dtype=np.float64)

    def transform(self, blocks) -> np.ndarray:
        """Concatenate ``blocks`` (one (n, p_i) array per part, in order), each times its factor.

        Returns
        -------
        ndarray of shape (n, sum p_i), float32

        Raises
        ------
        ParameterError
            Wrong number of blocks or different row counts.
        """
        if len(blocks) != len(self.parts):
            raise ParameterError(f"a mixture of {len(self.parts)} spaces got {len(blocks)} blocks")
        n = blocks[0].shape[0]
        if any(B.shape[0] != n for B in blocks):
            raise ParameterError(f"mixture blocks have different row counts: {[B.shape[0] for B in blocks]}")
        out = np.empty((n, sum(B.shape[1] for B in blocks)), dtype=np.float32)
        j = 0
        for B, f in zip(blocks, self.factors):
            out[:, j : j + B.shape[1]] = np.asarray(B) * np.float32(f)
            j += B.shape[1]
        return out
