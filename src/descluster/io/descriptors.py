"""Load one descriptor file as a read-only float32 memory map of shape (n, d).

``.npy`` files that are already float32 and C-contiguous are memory-mapped in
place (:func:`numpy.load` with ``mmap_mode="r"``, ``allow_pickle=False``).
Everything else (``.pickle``/``.pkl`` files, ``.npy`` of another dtype or
Fortran order) is converted **once** into a float32 ``.npy`` in a cache folder
and memory-mapped from there afterwards. A memory map costs no RAM until rows
are touched, and its pages are shared between processes and runs.

Cache file names are ``<stem>.<size>-<mtime_ns>-<sha1>.npy`` where ``size`` is
the source's size in bytes, ``mtime_ns`` its modification time in nanoseconds
and ``sha1`` the first 16 hex digits of the SHA-1 of its first MiB: any change
to the source gives a new name (older caches of the same stem are removed).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path

import numpy as np

from ..errors import CaseError, ParameterError
from ..rows import row_chunks
from .atomic import atomic_path
from .safe_pickle import load_array

__all__ = [
    "DESCRIPTOR_SUFFIXES",
    "CACHE_DIRNAME",
    "default_cache_dir",
    "cache_key",
    "cache_path",
    "validate_matrix",
    "load_descriptor",
    "find_bad_rows",
    "take_rows",
]

log = logging.getLogger(__name__)

#: File suffixes recognised as descriptor files.
DESCRIPTOR_SUFFIXES = (".npy", ".pickle", ".pkl")
#: Name of the cache folder created inside a case.
CACHE_DIRNAME = ".descluster_cache"
#: Rows per chunk are chosen so one float32 chunk is about this many bytes.
_CHUNK_BYTES = 64 * 2**20


def default_cache_dir(descriptor_path: str | os.PathLike) -> Path:
    """``<case>/.descluster_cache`` for ``<case>/descriptors/<name>.<ext>``.

    If the file is not inside a folder called ``descriptors``, the cache is
    placed beside it.
    """
    parent = Path(descriptor_path).resolve().parent
    case = parent.parent if parent.name == "descriptors" else parent
    return case / CACHE_DIRNAME


def cache_key(path: str | os.PathLike) -> str:
    """Return ``"<size>-<mtime_ns>-<sha1 of first MiB, 16 hex>"`` for a file.

    Raises
    ------
    CaseError
        If the file cannot be read.
    """
    path = Path(path)
    try:
        st = path.stat()
        with open(path, "rb") as fh:
            head = fh.read(2**20)
    except OSError as exc:
        raise CaseError(f"{path}: cannot read descriptor file: {exc}") from exc
    return f"{st.st_size}-{st.st_mtime_ns}-{hashlib.sha1(head).hexdigest()[:16]}"


def _chunk_rows(n_features: int, chunk_size: int | None) -> int:
    if chunk_size is None:
        return max(1, _CHUNK_BYTES // (4 * max(1, n_features)))
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ParameterError(f"chunk_size={chunk_size!r} is invalid: it must be an integer >= 1 (rows per chunk)")
    return int(chunk_size)


def validate_matrix(X: np.ndarray, source: str | os.PathLike) -> np.ndarray:
    """Check that ``X`` is a non-empty 2-D real-valued matrix.

    Parameters
    ----------
    X : ndarray
        Candidate descriptor matrix.
    source : str or PathLike
        File name for error messages.

    Returns
    -------
    ndarray
        ``X`` itself, or, for an object array holding numbers, a float64 copy.

    Raises
    ------
    CaseError
        Not 2-D (the message gives the shape), zero rows or columns, or a
        non-numeric (string, object, complex, datetime, structured) dtype.
    """
    X = np.asanyarray(X)
    if X.dtype == object:
        try:
            X = X.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise CaseError(f"{source}: descriptor array has dtype object with non-numeric entries ({exc})") from exc
    if X.ndim != 2:
        raise CaseError(
            f"{source}: descriptors must be a 2-D matrix (n_images, n_features), got {X.ndim}-D shape {X.shape}"
        )
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise CaseError(f"{source}: descriptor matrix is empty, shape {X.shape} (needs at least 1 row and 1 column)")
    kind = X.dtype.kind
    if kind not in "biuf":
        raise CaseError(
            f"{source}: descriptor dtype {X.dtype} is not real-valued numeric (need float, int or bool)"
        )
    if X.dtype.itemsize > 4 or kind in "iu":
        _check_float32_range(X, source)
    return X


def _check_float32_range(X: np.ndarray, source: str | os.PathLike) -> None:
    """Raise if finite values of ``X`` lie beyond float32's range (they would become inf on conversion)."""
    limit = float(np.finfo(np.float32).max)
    step = _chunk_rows(X.shape[1], None)
    rows, biggest = [], 0.0
    for start in range(0, X.shape[0], step):
        chunk = np.abs(np.asarray(X[start:start + step], dtype=np.float64))
        over = np.isfinite(chunk) & (chunk > limit)
        if over.any():
            hit = over.any(axis=1)
            rows.extend((np.flatnonzero(hit) + start).tolist())
            biggest = max(biggest, float(chunk[over].max()))
    if rows:
        shown = ", ".join(map(str, rows[:10])) + (f" (and {len(rows) - 10:,} more)" if len(rows) > 10 else "")
        raise CaseError(f"{source}: {len(rows):,} row(s) hold finite values beyond float32's range "
                        f"(|x| up to {biggest:.3g} > {limit:.3g}), at rows {shown}; descriptors are stored "
                        "as float32: rescale them")


def _write_float32(X: np.ndarray, target: Path, chunk_rows: int) -> None:
    """Write ``X`` as a C-ordered float32 ``.npy`` at ``target`` atomically, chunk by chunk."""
    with atomic_path(target) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=X.shape)
        for sl in row_chunks(X.shape[0], chunk_rows):
            out[sl] = X[sl]
        out.flush()
        del out


def _open_npy(path: Path) -> np.ndarray:
    size = path.stat().st_size if path.is_file() else 0
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic != b"\x93NUMPY":
        what = "is empty (0 bytes)" if size == 0 else f"is not a NumPy .npy file ({size:,} bytes; it lacks the .npy header)"
        raise CaseError(f"{path}: {what}; write descriptors with numpy.save(path, array) as float32 (n_images, n_features)")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:  # object arrays (pickled inside the .npy), a damaged header, or a truncated file
        expected = _npy_expected_size(path)
        if expected is not None and size < expected:
            raise CaseError(f"{path}: the .npy file is truncated: {size:,} bytes where its header announces "
                            f"{expected:,}; write it again with numpy.save") from exc
        raise CaseError(f"{path}: the .npy file holds Python objects or has a damaged header, not a numeric "
                        "matrix; save a float32 array (n_images, n_features) with numpy.save") from exc
    except (OSError, EOFError) as exc:
        raise CaseError(f"{path}: cannot read .npy file ({size:,} bytes): {exc}; is it truncated?") from exc


def _npy_expected_size(path: Path) -> int | None:
    """Bytes a ``.npy`` file should hold by its header (header + shape x itemsize), or None if unreadable."""
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(fh)
            if dtype.hasobject:
                return None
            return fh.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    except (ValueError, OSError, EOFError):
        return None


def cache_path(
    path: str | os.PathLike, cache_dir: str | os.PathLike | None = None, tag: str | None = None
) -> Path:
    """Where the float32 copy of ``path`` (or a file derived from it) is cached.

    Parameters
    ----------
    path : str or PathLike
        The source descriptor file.
    cache_dir : str or PathLike, optional
        Default :func:`default_cache_dir`.
    tag : str, optional
        Suffix for derived files, e.g. ``"drop-<hash>"`` for a copy without bad rows.

    Returns
    -------
    Path
        ``<cache_dir>/<stem>.<cache_key>[.<tag>].npy``.
    """
    path = Path(path)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir(path)
    extra = f".{tag}" if tag else ""
    return folder / f"{path.stem}.{cache_key(path)}{extra}.npy"


def _remove_stale(cache_dir: Path, stem: str, key: str) -> None:
    """Delete cached copies of ``stem`` made from an older version of the source."""
    pattern = re.compile(rf"^{re.escape(stem)}\.(\d+-\d+-[0-9a-f]{{16}})(\..*)?\.npy$")
    for old in cache_dir.iterdir():
        m = pattern.match(old.name)
        if m and m.group(1) != key:
            try:
                old.unlink()
            except OSError:
                pass


def load_descriptor(
    path: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    trust_pickle: bool = False,
) -> np.ndarray:
    """Load a descriptor file as a read-only float32 matrix, memory-mapped when possible.

    Parameters
    ----------
    path : str or PathLike
        ``.npy`` (loaded with ``allow_pickle=False``), ``.pickle`` or ``.pkl``
        (loaded by :func:`descluster.io.safe_pickle.load_array`).
    cache_dir : str or PathLike, optional
        Where converted copies go; default :func:`default_cache_dir`.
    trust_pickle : bool, default False
        Passed to :func:`~descluster.io.safe_pickle.load_array` as ``trust``.

    Returns
    -------
    ndarray of shape (n_images, n_features), float32, read-only
        A :class:`numpy.memmap` (of the file itself or of its cached
        conversion). If the cache folder cannot be written, an in-memory
        read-only array is returned instead and a warning is logged.

    Raises
    ------
    CaseError
        Unknown suffix, unreadable file, or a matrix that fails
        :func:`validate_matrix` (names the file and the shape/dtype).
    UnsafePickleError
        A pickle that needs globals outside the NumPy allow-list.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in DESCRIPTOR_SUFFIXES:
        raise CaseError(f"{path}: unknown descriptor file type {suffix!r}; expected one of {DESCRIPTOR_SUFFIXES}")
    if not path.is_file():
        raise CaseError(f"{path}: descriptor file not found")
    if suffix == ".npy":
        X = validate_matrix(_open_npy(path), path)
        if X.dtype == np.float32 and X.flags.c_contiguous and isinstance(X, np.memmap):
            return X
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir(path)
    key = cache_key(path)
    target = cache_dir / f"{path.stem}.{key}.npy"
    if target.is_file():
        cached = _open_npy(target)
        if cached.ndim == 2 and cached.dtype == np.float32:
            log.debug("descriptor %s: using cache %s", path, target)
            return cached
    if suffix != ".npy":
        X = validate_matrix(load_array(path, trust=trust_pickle), path)
    dtype = X.dtype
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        _write_float32(X, target, _chunk_rows(X.shape[1], None))
    except OSError as exc:
        log.warning("descriptor %s: cannot write cache %s (%s); keeping it in memory", path, target, exc)
        out = np.ascontiguousarray(X, dtype=np.float32)
        out.flags.writeable = False
        return out
    del X
    _remove_stale(cache_dir, path.stem, key)
    if dtype != np.float32:  # said once, when the float32 cache is made (values checked to fit float32)
        log.warning("descriptor %s: dtype %s, not float32; converted once to float32 in %s", path, dtype, target)
    else:
        log.info("descriptor %s: converted once to %s", path, target)
    return _open_npy(target)


def find_bad_rows(X: np.ndarray, chunk_size: int | None = None) -> np.ndarray:
    """Indices of rows holding NaN or ±inf, found chunk by chunk.

    Parameters
    ----------
    X : ndarray of shape (n_images, n_features)
        Any float dtype; memory maps are read ``chunk_size`` rows at a time, so
        a 416,314 × 2560 map is scanned without a full copy.
    chunk_size : int, optional
        Rows per chunk, >= 1. Default: about 64 MiB of float32 per chunk.

    Returns
    -------
    ndarray of shape (n_bad,), int64
        Sorted row indices.

    Raises
    ------
    ParameterError
        If ``chunk_size`` is not an integer >= 1.
    """
    X = np.asanyarray(X)
    step = _chunk_rows(X.shape[1] if X.ndim == 2 else 1, chunk_size)
    if X.dtype.kind not in "fc":
        return np.empty(0, dtype=np.int64)
    bad = []
    for sl in row_chunks(X.shape[0], step):
        chunk = X[sl]
        ok = np.isfinite(chunk).reshape(chunk.shape[0], -1).all(axis=1)
        if not ok.all():
            bad.append(np.flatnonzero(~ok) + sl.start)
    return np.concatenate(bad).astype(np.int64) if bad else np.empty(0, dtype=np.int64)


def take_rows(X: np.ndarray, keep: np.ndarray, target: str | os.PathLike | None = None) -> np.ndarray:
    """Return the rows ``keep`` of ``X`` as a read-only float32 matrix.

    Parameters
    ----------
    X : ndarray of shape (n_images, n_features)
    keep : ndarray of shape (n_kept,), int
        Row indices, in the order wanted.
    target : str or PathLike, optional
        If given, the rows are written chunk by chunk into this ``.npy``
        (atomically) and a memory map of it is returned, so no full copy of
        ``X`` is held in RAM; if the file already exists with the right shape
        it is reused. Without ``target`` an in-memory array is returned.

    Returns
    -------
    ndarray of shape (n_kept, n_features), float32, read-only
    """
    keep = np.asarray(keep, dtype=np.int64)
    if target is None:
        out = np.ascontiguousarray(X[keep], dtype=np.float32)
        out.flags.writeable = False
        return out
    target = Path(target)
    if target.is_file():
        cached = _open_npy(target)
        if cached.shape == (keep.size, X.shape[1]) and cached.dtype == np.float32:
            return cached
    step = _chunk_rows(X.shape[1], None)
    with atomic_path(target) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(keep.size, X.shape[1]))
        for sl in row_chunks(keep.size, step):
            out[sl] = X[keep[sl]]
        out.flush()
        del out
    return _open_npy(target)
