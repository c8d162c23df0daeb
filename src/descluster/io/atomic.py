"""Atomic file writes: write to a temporary name in the same folder, then rename.

An interrupted run therefore never leaves a half-written output: either the old
file (or none) or the complete new one is there. ``os.replace`` is atomic on
POSIX and Windows when source and target are on the same file system.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    Parameters
    ----------
    path : str or PathLike
        Final destination. Its parent folder is created if missing.

    Yields
    ------
    tmp : Path
        Where the caller writes. Removed if the ``with`` body raises.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically and return the path."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically (NumPy scalars/arrays converted)."""
    return write_text(path, json.dumps(obj, indent=2, default=json_default, allow_nan=True) + "\n")


def write_csv(path: str | os.PathLike, frame) -> Path:
    """Write a pandas DataFrame as CSV (no index, ``\\n`` line ends) atomically.

    Text cells that a spreadsheet would run as a formula are neutralised with a leading ``'``
    (OWASP; reversible, see :mod:`descluster.io.tables`, whose reader restores them).
    """
    from .tables import neutralise_frame

    buf = io.StringIO()
    neutralise_frame(frame).to_csv(buf, index=False, lineterminator="\n")
    return write_text(path, buf.getvalue())


def write_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write one array as ``.npy`` (no pickle) atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, np.asarray(array), allow_pickle=False)
    return Path(path)


def json_default(obj: Any) -> Any:
    """The one ``json.dumps(default=...)`` hook of descluster: NumPy, paths, sets and ranges to JSON.

    NumPy scalars become Python numbers (``.item()``), arrays nested lists, paths
    strings, sets sorted lists and ranges ``[start, stop, step]``.

    Raises
    ------
    TypeError
        For any other type (as ``json.dumps`` expects).
    """
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, range):
        return [obj.start, obj.stop, obj.step]
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")
