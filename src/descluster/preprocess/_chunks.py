"""Reading a (memory-mapped) descriptor matrix chunk by chunk, with the checks every step shares."""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError
from ..rows import row_chunks

DEFAULT_CHUNK = 32768
#: Rows sampled by the randomized PCA solver and by the robust scaler.
SAMPLE_ROWS = 100_000


def check_matrix(X, name: str = "X") -> tuple[int, int]:
    """``(n_rows, n_columns)`` of a 2-D array with at least one of each.

    Raises
    ------
    ParameterError
        If ``X`` is not 2-D or is empty (names its shape).
    """
    shape = getattr(X, "shape", None)
    if shape is None or len(shape) != 2:
        raise ParameterError(f"{name} must be a 2-D array (n_samples, n_features); got shape {shape}")
    n, d = int(shape[0]), int(shape[1])
    if n < 1 or d < 1:
        raise ParameterError(f"{name} has shape {shape}: need at least 1 row and 1 column")
    return n, d


def read_chunk(X, sl: slice, check: bool = True) -> np.ndarray:
    """Rows ``sl`` of ``X`` as a float32 array (reads a memory map; checks finiteness if ``check``).

    Raises
    ------
    ParameterError
        A non-finite value (names its row and column).
    """
    C = np.asarray(X[sl], dtype=np.float32)
    if check and not np.isfinite(C).all():
        bad = np.argwhere(~np.isfinite(C))[0]
        raise ParameterError(
            f"X has a non-finite value {C[bad[0], bad[1]]} at row {sl.start + int(bad[0])}, column {int(bad[1])}; "
            "drop or repair such rows first (descluster.io.descriptors.find_bad_rows)"
        )
    return C


def read_rows(X, idx: np.ndarray, chunk_size: int) -> np.ndarray:
    """``X[idx]`` as float32, read in chunks of indices (sorted indices keep a memmap sequential).

    Raises
    ------
    ParameterError
        A non-finite value (names its row and column).
    """
    out = np.empty((len(idx), X.shape[1]), dtype=np.float32)
    for sl in row_chunks(len(idx), chunk_size):
        out[sl] = X[idx[sl]]
    if not np.isfinite(out).all():
        bad = np.argwhere(~np.isfinite(out))[0]
        raise ParameterError(f"X has a non-finite value at row {int(idx[bad[0]])}, column {int(bad[1])}")
    return out


def check_fitted_width(X, owner: str, fitted: bool, n_features_in: int | None) -> tuple[int, int]:
    """``(n_rows, n_columns)`` of ``X`` for a fitted transformer of ``n_features_in`` columns.

    Raises
    ------
    ParameterError
        Not fitted, ``X`` not 2-D, or another number of columns (both named).
    """
    if not fitted:
        raise ParameterError(f"{owner} is not fitted: call fit(X) first")
    n, d = check_matrix(X)
    if d != n_features_in:
        raise ParameterError(f"X has {d} columns but {owner} was fitted on {n_features_in}")
    return n, d


def map_chunks(X, width: int, transform_chunk, chunk_size: int, check: bool = True) -> np.ndarray:
    """``transform_chunk`` applied to ``X`` (n, d) ``chunk_size`` rows at a time.

    Parameters
    ----------
    X : array-like or memmap of shape (n, d)
    width : int
        Columns of the output.
    transform_chunk : callable
        float32 chunk (m, d) -> (m, width).
    chunk_size : int
    check : bool
        Refuse non-finite values (names row and column).

    Returns
    -------
    ndarray of shape (n, width), float32
    """
    out = np.empty((X.shape[0], width), dtype=np.float32)
    for sl in row_chunks(X.shape[0], chunk_size):
        out[sl] = transform_chunk(read_chunk(X, sl, check=check))
    return out
