"""Resumable on-disk state of an extraction and the files of the finished case.

Layout under the case folder ``out_dir``::

    .partial/manifest.json               image-list hash, image count, chunk size
    .partial/_images/<chunk>.json         which images of the chunk decoded, and errors
    .partial/<backbone>/fingerprint.json  backbone name and parameters
    .partial/<backbone>/<chunk>.npy       float32 (n_readable_in_chunk, d)
    .partial/<backbone>/<chunk>.imagenet.npy   classifier summary (heads only)
    descriptors/<backbone>.npy            float32 (n_readable, d), final
    images_paths.csv                      column ``paths`` (readable images, row order)
    meta/unreadable.csv                   path, error
    meta/imagenet.csv                     classifier summary per image
    labels.csv                            copied from the image root if present
    case.json                             provenance and cache key

Every file is written atomically (:mod:`descluster.io.atomic`), so a chunk file
that exists is complete: a rerun trusts it and skips the work.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ..io.atomic import atomic_path, write_bytes, write_csv, write_json, write_npy

__all__ = ["PartialStore", "paths_digest", "read_json", "write_paths", "write_unreadable", "assemble", "copy_file"]


def paths_digest(paths: Sequence[str]) -> str:
    """SHA-256 (hex) of the ordered image list; identifies "the same images" across runs."""
    h = hashlib.sha256()
    for p in paths:
        h.update(p.encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def read_json(path: Path) -> dict | None:
    """Parsed JSON object at ``path``, or None if missing or unreadable (treated as absent)."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


class PartialStore:
    """Finished chunks of an interrupted extraction under ``out_dir/.partial``.

    Parameters
    ----------
    out_dir : Path
        The case folder.
    digest : str
        :func:`paths_digest` of the full image list.
    n_images : int
        Number of listed images.
    chunk_size : int
        Images per chunk.

    Attributes
    ----------
    root : Path
        ``out_dir/.partial``.
    chunk_size : int
    n_chunks : int
        ``ceil(n_images / chunk_size)``.

    Notes
    -----
    If an existing ``.partial`` was made for another image list or chunk size,
    it is deleted and the extraction restarts cleanly. A backbone folder whose
    fingerprint differs (other parameters) is deleted alone.
    """

    def __init__(self, out_dir: Path, digest: str, n_images: int, chunk_size: int):
        self.root = Path(out_dir) / ".partial"
        manifest = {"paths_sha256": digest, "n_images": int(n_images), "chunk_size": int(chunk_size)}
        if self.root.exists() and read_json(self.root / "manifest.json") != manifest:
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        if not (self.root / "manifest.json").exists():
            write_json(self.root / "manifest.json", manifest)
        self.chunk_size = int(chunk_size)
        self.n_chunks = -(-int(n_images) // self.chunk_size)

    # -- backbones ------------------------------------------------------------
    def prepare_backbone(self, name: str, fingerprint: dict) -> None:
        """Create (or validate, wiping on mismatch) the folder of one backbone."""
        folder = self.root / name
        if folder.exists() and read_json(folder / "fingerprint.json") != fingerprint:
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / "fingerprint.json").exists():
            write_json(folder / "fingerprint.json", fingerprint)

    def feature_path(self, name: str, chunk: int) -> Path:
        return self.root / name / f"{chunk:06d}.npy"

    def imagenet_path(self, name: str, chunk: int) -> Path:
        return self.root / name / f"{chunk:06d}.imagenet.npy"

    def has_chunk(self, name: str, chunk: int, head: bool = False) -> bool:
        """Whether backbone ``name`` finished ``chunk`` (with its classifier summary if ``head``)."""
        done = self.feature_path(name, chunk).is_file()
        return done and (not head or self.imagenet_path(name, chunk).is_file())

    def save_chunk(self, name: str, chunk: int, features: np.ndarray, imagenet: np.ndarray | None = None) -> None:
        """Save one chunk of one backbone (the summary first: the feature file marks completion)."""
        if imagenet is not None:
            write_npy(self.imagenet_path(name, chunk), np.asarray(imagenet, dtype=np.float64))
        write_npy(self.feature_path(name, chunk), np.asarray(features, dtype=np.float32))

    def load(self, path: Path) -> np.ndarray:
        return np.load(path, allow_pickle=False)

    # -- decoding status ------------------------------------------------------
    def status_path(self, chunk: int) -> Path:
        return self.root / "_images" / f"{chunk:06d}.json"

    def save_status(self, chunk: int, ok: Sequence[int], errors: Sequence[tuple[str, str]]) -> None:
        """Record which positions of ``chunk`` decoded (``ok``) and the (path, error) of the others."""
        write_json(self.status_path(chunk), {"ok": [int(i) for i in ok], "errors": [list(e) for e in errors]})

    def load_status(self, chunk: int) -> dict | None:
        """``{"ok": [...], "errors": [[path, error], ...]}`` for a chunk, or None if not recorded."""
        return read_json(self.status_path(chunk))

    def remove(self) -> None:
        """Delete all partial state (after the final files are written)."""
        shutil.rmtree(self.root, ignore_errors=True)


def assemble(chunks: Iterable[Path], dest: Path, n_rows: int, n_cols: int, dtype=np.float32) -> Path:
    """Concatenate chunk ``.npy`` files row-wise into ``dest``, atomically, without holding all rows in memory.

    Parameters
    ----------
    chunks : iterable of Path
        ``.npy`` files of shape (n_i, n_cols), in order; ``sum(n_i) == n_rows``.
    dest : Path
        Final ``.npy`` file.
    n_rows, n_cols : int
    dtype : numpy dtype, default float32

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    ValueError
        If the chunk shapes do not add up to (n_rows, n_cols).
    """
    with atomic_path(dest) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(int(n_rows), int(n_cols)))
        row = 0
        for path in chunks:
            part = np.load(path, allow_pickle=False)
            if part.ndim != 2 or part.shape[1] != n_cols or row + part.shape[0] > n_rows:
                raise ValueError(f"{path}: chunk of shape {part.shape} does not fit ({n_rows}, {n_cols}) at row {row}")
            out[row : row + part.shape[0]] = part
            row += part.shape[0]
        if row != n_rows:
            raise ValueError(f"{dest}: chunks hold {row} rows, expected {n_rows}")
        out.flush()
        del out
    return Path(dest)


def write_paths(out_dir: Path, paths: Sequence[str]) -> Path:
    """Write ``images_paths.csv`` (single column ``paths``, POSIX relative paths, row order)."""
    return write_csv(Path(out_dir) / "images_paths.csv", pd.DataFrame({"paths": list(paths)}))


def write_unreadable(out_dir: Path, errors: Sequence[tuple[str, str]]) -> Path:
    """Write ``meta/unreadable.csv`` (columns ``path, error``; header only when all images decoded)."""
    frame = pd.DataFrame([tuple(e) for e in errors], columns=["path", "error"])
    return write_csv(Path(out_dir) / "meta" / "unreadable.csv", frame)


def copy_file(data: bytes, dest: Path) -> Path:
    """Write ``data`` to ``dest`` atomically (used to copy ``labels.csv`` into the case)."""
    return write_bytes(dest, data)
