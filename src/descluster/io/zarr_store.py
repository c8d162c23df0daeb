"""Descriptors as Zarr stores: ``descluster convert CASE --to zarr`` and the reader case loading uses.

A converted kind lives beside its source as ``CASE/descriptors/<kind>.zarr``: one float32 Zarr array of
shape (n_images, n_features), chunked by rows (``chunk_rows`` rows x all columns per chunk), whose
attributes (key ``"descluster"``) record

* ``source``: the file it was written from (name) and ``source_key``, that file's
  :func:`~descluster.io.descriptors.cache_key` (size, mtime, SHA-1 of the first MiB) at conversion;
* ``digest``: :func:`descluster.cache.array_digest` of the float32 rows, computed while writing and
  checked again by reading the written store back (the conversion's verification);
* ``bad_rows``: rows holding NaN/inf (found while writing, so loading a case does not scan the store);
* ``complete``: True.

The store is written into a hidden temporary folder beside the target (``.<kind>.zarr.<random>.tmp``)
and renamed onto ``<kind>.zarr`` only once written and verified, so an interrupted conversion leaves no
half-written store: a rerun removes the temporaries, skips the kinds whose store is complete and made
from the unchanged source (:func:`store_is_current`), and converts the others.

Sources are read through the project's loaders only: ``.npy`` memory-mapped with ``allow_pickle=False``,
pickles through the restricted unpickler :func:`descluster.io.safe_pickle.load_array` (never
``pickle.load``), both checked by :func:`~descluster.io.descriptors.validate_matrix`.

The reader, :class:`ZarrDescriptor`, is what :func:`descluster.case.load_case` puts in
``Case.descriptors`` for a ``.zarr`` kind: a read-only, array-like view (``shape``, ``dtype``, row slices
and row index arrays return float32 ndarrays) that the local engine reads chunk by chunk and that the Dask
engine opens on its workers with ``dask.array.from_zarr`` (row blocks, never gathered on the client).
``zarr`` is imported only when a store is opened or written (the ``[dask]`` extra).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import CaseError, ParameterError

__all__ = ["ZARR_SUFFIX", "ATTRS_KEY", "ZarrDescriptor", "open_zarr_descriptor", "store_is_current",
           "convert_descriptor", "convert_case", "ConvertResult", "default_chunk_rows", "describe"]

log = logging.getLogger("descluster")

#: Folder suffix of a converted descriptor kind.
ZARR_SUFFIX = ".zarr"
#: Attribute key under which the conversion record is stored.
ATTRS_KEY = "descluster"
#: Layout version of the conversion record.
FORMAT = 1
#: Bytes of float32 per chunk when ``chunk_rows`` is not given (16 MiB).
CHUNK_BYTES = 16 * 2**20


def _zarr():
    try:
        import zarr
    except ImportError as exc:  # the message is shown as is by the CLI (it names the extra)
        raise ImportError(f"Zarr descriptors need the dask extra (pip install 'descluster[dask]'): {exc}") from None
    return zarr


def default_chunk_rows(n_features: int) -> int:
    """Rows per Zarr chunk by default: about :data:`CHUNK_BYTES` of float32, at least 1,024 rows."""
    return max(1024, CHUNK_BYTES // (4 * max(1, int(n_features))))


class ZarrDescriptor:
    """A read-only float32 descriptor matrix (n, d) stored as a Zarr array (see the module docstring).

    Array-like enough for the local pipeline: ``shape``, ``dtype``, ``ndim``, ``len``, ``np.asarray``
    (reads everything), and ``X[key]`` for a row slice, an integer, a row index array (any order,
    repeats allowed) or a boolean row mask, optionally with a column key, returning a float32
    :class:`numpy.ndarray`. Pickles as its path (workers re-open it).

    Parameters
    ----------
    path : str or PathLike
        The ``<kind>.zarr`` folder.

    Attributes
    ----------
    path : Path
    shape : tuple of int
    dtype : numpy.dtype
        Always float32.
    chunk_rows : int
        Rows per stored chunk.
    record : dict
        The conversion record (``source``, ``source_key``, ``digest``, ``bad_rows``, ``complete``...).

    Raises
    ------
    CaseError
        The folder is not a readable Zarr array, not 2-D float32, empty, or lacks a complete
        conversion record (names the folder).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        z = self._open()
        shape = tuple(int(s) for s in z.shape)
        if len(shape) != 2 or shape[0] < 1 or shape[1] < 1:
            raise CaseError(f"{self.path}: a Zarr descriptor must be a non-empty 2-D array (n_images, n_features), "
                            f"got shape {shape}")
        if np.dtype(z.dtype) != np.float32:
            raise CaseError(f"{self.path}: Zarr descriptor has dtype {z.dtype}, expected float32; "
                            "rewrite it with `descluster convert CASE --to zarr`")
        record = dict(z.attrs.asdict().get(ATTRS_KEY) or {})
        if not record.get("complete"):
            raise CaseError(f"{self.path}: not a complete `descluster convert` store (no conversion record); "
                            "remove it and run `descluster convert CASE --to zarr` again")
        self.shape, self.dtype, self.chunk_rows, self.record = shape, np.dtype(np.float32), int(z.chunks[0]), record
        self._z = z

    def _open(self):
        zarr = _zarr()
        if not (self.path / "zarr.json").is_file() and not (self.path / ".zarray").is_file():
            raise CaseError(f"{self.path}: not a Zarr array (no zarr.json inside)")
        try:
            return zarr.open_array(str(self.path), mode="r")
        except Exception as exc:  # zarr raises several types for damaged metadata
            raise CaseError(f"{self.path}: cannot open the Zarr array: {type(exc).__name__}: {exc}") from None

    # -- array protocol ------------------------------------------------------------
    @property
    def ndim(self) -> int:
        """2."""
        return 2

    @property
    def bad_rows(self) -> np.ndarray:
        """Rows (int64, sorted) holding NaN/inf, as recorded at conversion."""
        return np.asarray(self.record.get("bad_rows", []), dtype=np.int64)

    @property
    def digest(self) -> str:
        """:func:`descluster.cache.array_digest` of the rows, as recorded (and verified) at conversion."""
        return str(self.record["digest"])

    def zarr_array(self):
        """The underlying read-only ``zarr.Array``."""
        if self._z is None:
            self._z = self._open()
        return self._z

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype=None, copy=None):
        out = np.asarray(self.zarr_array()[...], dtype=np.float32)
        return out if dtype is None else out.astype(dtype, copy=False)

    def __getitem__(self, key) -> np.ndarray:
        rows, cols = (key if isinstance(key, tuple) and len(key) == 2 else (key, slice(None)))
        z = self.zarr_array()
        if isinstance(rows, (slice, int, np.integer)) or rows is Ellipsis:
            out = z[rows] if isinstance(rows, (int, np.integer)) or rows is Ellipsis else z[rows, :]
            return np.asarray(out, dtype=np.float32)[..., cols]
        idx = np.asarray(rows)
        if idx.dtype == bool:
            if idx.shape != (self.shape[0],):
                raise IndexError(f"boolean row mask of shape {idx.shape} for {self.shape[0]} rows")
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64, copy=False)
        if idx.ndim != 1:
            raise IndexError(f"row index array must be 1-D, got shape {idx.shape}")
        idx = np.where(idx < 0, idx + self.shape[0], idx)
        if idx.size and (idx.min() < 0 or idx.max() >= self.shape[0]):
            raise IndexError(f"row index out of range 0..{self.shape[0] - 1}")
        uniq, inverse = np.unique(idx, return_inverse=True)  # zarr's orthogonal selection wants sorted, unique
        got = np.asarray(z.oindex[uniq, :], dtype=np.float32) if uniq.size else np.empty((0, self.shape[1]), np.float32)
        return got[inverse][:, cols]

    def __reduce__(self):
        return (ZarrDescriptor, (str(self.path),))

    def __repr__(self) -> str:
        return f"ZarrDescriptor({str(self.path)!r}, shape={self.shape}, chunk_rows={self.chunk_rows})"


def open_zarr_descriptor(path: str | os.PathLike) -> ZarrDescriptor:
    """Open ``<kind>.zarr`` as a :class:`ZarrDescriptor` (raises :class:`~descluster.errors.CaseError`)."""
    return ZarrDescriptor(path)


def store_is_current(store: str | os.PathLike, source: str | os.PathLike | None) -> tuple[bool, str]:
    """Whether ``store`` is a complete conversion of ``source`` as it is now.

    Parameters
    ----------
    store : path of ``<kind>.zarr``
    source : path of the descriptor file it was converted from, or None (the source was removed:
        a complete store stands on its own)

    Returns
    -------
    (bool, str)
        True and ``""``, or False and why not, in words.
    """
    from .descriptors import cache_key

    store = Path(store)
    if not store.is_dir():
        return False, f"{store} does not exist"
    try:
        zd = ZarrDescriptor(store)
    except CaseError as exc:
        return False, str(exc)
    if source is None or not Path(source).is_file():
        return True, ""
    rec = zd.record
    if rec.get("source") != Path(source).name or rec.get("source_key") != cache_key(source):
        return False, f"{store} was written from an older version of {source} (its size, time or content changed)"
    return True, ""


# --------------------------------------------------------------------------- conversion


@dataclass
class ConvertResult:
    """What :func:`convert_descriptor` did for one kind.

    Attributes
    ----------
    kind : str
    source : Path
    store : Path
    status : {"converted", "skipped"}
    shape : tuple of int
    seconds : float
    """

    kind: str
    source: Path
    store: Path
    status: str
    shape: tuple[int, int]
    seconds: float


def _open_source(path: Path, trust_pickle: bool):
    """The source matrix (a memory map for ``.npy``), validated, through the project's safe loaders."""
    from .descriptors import DESCRIPTOR_SUFFIXES, _open_npy, validate_matrix
    from .safe_pickle import load_array

    suffix = path.suffix.lower()
    if suffix not in DESCRIPTOR_SUFFIXES:
        raise CaseError(f"{path}: unknown descriptor file type {suffix!r}; expected one of {DESCRIPTOR_SUFFIXES}")
    if not path.is_file():
        raise CaseError(f"{path}: descriptor file not found")
    X = _open_npy(path) if suffix == ".npy" else load_array(path, trust=trust_pickle)
    return validate_matrix(X, path)


def _remove_temporaries(folder: Path, name: str) -> None:
    for old in folder.glob(f".{name}.*.tmp"):
        shutil.rmtree(old, ignore_errors=True)


def convert_descriptor(source: str | os.PathLike, store: str | os.PathLike | None = None, *,
                       chunk_rows: int | None = None, n_rows: int | None = None, trust_pickle: bool = False,
                       force: bool = False, progress: Callable[[int, int], None] | None = None) -> ConvertResult:
    """Write one descriptor file into a float32 Zarr store beside it, atomically (module docstring).

    Parameters
    ----------
    source : path of ``<kind>.npy`` / ``.pickle`` / ``.pkl``
    store : path, optional
        Default: ``<source folder>/<kind>.zarr``.
    chunk_rows : int, optional
        Rows per Zarr chunk (>= 1); default :func:`default_chunk_rows`.
    n_rows : int, optional
        Rows the case expects (``images_paths.csv``, or the other kinds); another count raises before
        anything is written.
    trust_pickle : bool, default False
        Passed to :func:`~descluster.io.safe_pickle.load_array` as ``trust``.
    force : bool, default False
        Rewrite a current store.
    progress : callable(rows_done, rows_total), optional
        Called after every chunk written.

    Returns
    -------
    ConvertResult
        ``status="skipped"`` when the store is already a complete conversion of the unchanged source.

    Raises
    ------
    CaseError
        Missing or unreadable source, a non-numeric dtype, not 2-D, a row count other than ``n_rows``
        (names the file and both counts), or a store whose read-back digest differs from the rows written.
    UnsafePickleError
        A pickle outside the NumPy allow-list.
    ParameterError
        ``chunk_rows`` not an integer >= 1.
    """
    from ..cache import array_digest, array_hasher
    from .descriptors import cache_key

    t0 = time.perf_counter()
    source = Path(source)
    store = Path(store) if store is not None else source.with_suffix(ZARR_SUFFIX)
    if chunk_rows is not None and (isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer))
                                   or chunk_rows < 1):
        raise ParameterError(f"chunk_rows={chunk_rows!r} (--chunk-rows) must be an integer >= 1")
    if not force:
        ok, _ = store_is_current(store, source)
        if ok:
            shape = ZarrDescriptor(store).shape
            if n_rows is not None and shape[0] != n_rows:
                raise CaseError(f"{store} has {shape[0]:,} rows but the case has {n_rows:,} "
                                f"(images_paths.csv / the other descriptor kinds)")
            return ConvertResult(source.stem, source, store, "skipped", shape, time.perf_counter() - t0)
    X = _open_source(source, trust_pickle)
    n, d = (int(s) for s in X.shape)
    if n_rows is not None and n != n_rows:
        raise CaseError(f"{source} has {n:,} rows but the case has {n_rows:,} (images_paths.csv / the other "
                        "descriptor kinds); every descriptor needs one row per image")
    key = cache_key(source)
    step = int(chunk_rows) if chunk_rows is not None else default_chunk_rows(d)
    zarr = _zarr()
    folder = store.parent
    _remove_temporaries(folder, store.name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{store.name}.", suffix=".tmp", dir=folder))
    try:
        z = zarr.create_array(store=str(tmp), shape=(n, d), chunks=(min(step, n), d), dtype="float32",
                              overwrite=True)
        h = array_hasher((n, d), np.float32)
        bad: list[np.ndarray] = []
        for start in range(0, n, step):
            C = np.ascontiguousarray(X[start:start + step], dtype=np.float32)
            z[start:start + C.shape[0], :] = C
            h.update(C.tobytes())
            ok = np.isfinite(C).all(axis=1)
            if not ok.all():
                bad.append(np.flatnonzero(~ok) + start)
            if progress is not None:
                progress(start + C.shape[0], n)
        digest = h.hexdigest()
        bad_rows = np.concatenate(bad).astype(np.int64).tolist() if bad else []
        record = {"format": FORMAT, "source": source.name, "source_key": key, "shape": [n, d],
                  "digest": digest, "bad_rows": bad_rows, "complete": False}
        z.attrs[ATTRS_KEY] = record
        back = array_digest(_Unchecked(tmp, (n, d)), chunk_rows=step)  # read the written store back
        if back != digest:
            raise CaseError(f"{store}: the written store does not read back as {source} (digest {back[:12]} != "
                            f"{digest[:12]}); the disk may be failing")
        z.attrs[ATTRS_KEY] = {**record, "complete": True}
        del z
        old = None
        if store.exists():
            old = folder / f".{store.name}.{os.getpid()}.old.tmp"
            os.replace(store, old)
        os.replace(tmp, store)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ConvertResult(source.stem, source, store, "converted", (n, d), time.perf_counter() - t0)


class _Unchecked:
    """Row reader of a store being written (no conversion record yet): what :func:`array_digest` reads back."""

    def __init__(self, path: Path, shape: tuple[int, int]):
        self._z = _zarr().open_array(str(path), mode="r")
        self.shape, self.dtype = shape, np.dtype(np.float32)

    def __getitem__(self, sl):
        return np.asarray(self._z[sl, :], dtype=np.float32)


def convert_case(case_dir: str | os.PathLike, to: str = "zarr", *, chunk_rows: int | None = None,
                 trust_pickle: bool = False, force: bool = False, show_progress: bool = True) -> list[ConvertResult]:
    """Convert every descriptor kind of a case to a Zarr store beside it (``descluster convert``).

    Parameters
    ----------
    case_dir : path of the case folder (``descriptors/`` and ``images_paths.csv``)
    to : {"zarr"}
    chunk_rows : int, optional
        Rows per chunk; default :func:`default_chunk_rows`.
    trust_pickle : bool, default False
    force : bool, default False
        Rewrite stores that are current.
    show_progress : bool, default True
        A progress bar of the rows written per kind.

    Returns
    -------
    list of ConvertResult
        One per kind, in sorted order.

    Raises
    ------
    CaseError
        No case folder or descriptors; a kind whose rows differ from ``images_paths.csv`` (or, without it,
        from the first kind), named with both counts; an unreadable source (see :func:`convert_descriptor`).
    ParameterError
        ``to`` other than ``"zarr"``, bad ``chunk_rows``.
    """
    from ..case import PATHS_FILE, _descriptor_sources, _not_a_case_folder, _read_paths
    from ..progress import progress_bar

    if to != "zarr":
        raise ParameterError(f"--to {to!r}: the only target format is 'zarr'")
    root = Path(case_dir)
    if not root.is_dir():
        raise CaseError(_not_a_case_folder(root))
    sources = _descriptor_sources(root)
    paths_file = root / PATHS_FILE
    n_rows = len(_read_paths(paths_file)) if paths_file.is_file() else None
    results = []
    for kind, source in sources.items():
        bar = None

        def step(done: int, total: int) -> None:
            nonlocal bar
            if bar is None:
                bar = progress_bar(total=total, desc=f"convert {kind}", unit=" rows", disable=not show_progress)
            bar.update(done - bar.n)

        try:
            res = convert_descriptor(source, chunk_rows=chunk_rows, n_rows=n_rows, trust_pickle=trust_pickle,
                                     force=force, progress=step)
        finally:
            if bar is not None:
                bar.close()
        if n_rows is None:
            n_rows = res.shape[0]
        log.debug("convert %s: %s %s (%d x %d) in %.1f s", kind, res.status, res.store, *res.shape, res.seconds)
        results.append(res)
    return results


def describe(results: list[ConvertResult]) -> list[str]:
    """One line per kind for the CLI: ``osnet: converted 3,000 x 512 -> CASE/descriptors/osnet.zarr (0.4 s)``."""
    lines = []
    for r in results:
        what = "up to date, skipped" if r.status == "skipped" else f"converted {r.shape[0]:,} x {r.shape[1]:,}"
        lines.append(f"{r.kind}: {what} -> {r.store} ({r.seconds:.1f} s)")
    return lines
