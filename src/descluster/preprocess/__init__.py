"""Scaling and PCA of descriptor matrices, chunk by chunk, at VeRi-Wild scale.

A descriptor matrix can be a read-only float32 memory map of 416,314 × 2560
(4.3 GB). Everything here reads it ``chunk_size`` rows at a time and never
holds more than one float32 chunk (plus its scaled copy) beside the output.

Modules, one concern each:

:mod:`~descluster.preprocess.scalers`
    the column scalers (registry ``SCALERS``, :func:`make_scaler`);
:mod:`~descluster.preprocess.moments`
    streamed mean and covariance (:class:`GramMoments`);
:mod:`~descluster.preprocess.pca`
    :class:`ChunkedPCA` (covariance or randomized solver);
:mod:`~descluster.preprocess.spaces`
    reduced spaces: :func:`reduce_descriptor`, :func:`mix_spaces` and the fitted
    maps :class:`Reduction` and :class:`Mixture` that a saved model applies to new rows.
"""

from .moments import GramMoments, blas_info
from .pca import COVARIANCE_MAX_FEATURES, PCA_SOLVERS, ChunkedPCA
from .scalers import (SCALERS, ChunkedScaler, L2ChunkScaler, MinMaxChunkScaler, NoScaler, RobustChunkScaler,
                      StandardChunkScaler, make_scaler)
from .spaces import Mixture, Reduction, mix_spaces, reduce_descriptor

__all__ = ["SCALERS", "PCA_SOLVERS", "COVARIANCE_MAX_FEATURES", "ChunkedScaler", "NoScaler", "StandardChunkScaler",
           "MinMaxChunkScaler", "RobustChunkScaler", "L2ChunkScaler", "make_scaler", "GramMoments", "ChunkedPCA",
           "reduce_descriptor", "mix_spaces", "Reduction", "Mixture", "blas_info"]
