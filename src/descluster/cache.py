"""A stage cache on disk: results keyed by a hash of their inputs and parameters.

Each pipeline stage stores what it computed under
``<cache_dir>/<stage>/<key>/`` as ``arrays.npz`` (NumPy arrays, loaded with
``allow_pickle=False``), ``tables/<name>.csv`` (pandas frames) and ``meta.json``.
The folder is first written under a temporary name and then renamed, so a
stage is either complete in the cache or absent: a run killed in the middle
(even ``kill -9``) resumes by recomputing only the stages that are missing.
Nothing in the cache is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from .io.atomic import json_default
from .rows import row_chunks

CACHE_FORMAT = 1


def stable_hash(obj: Any) -> str:
    """SHA-256 (hex, first 20 chars) of ``obj`` rendered as canonical JSON.

    Parameters
    ----------
    obj : JSON-like (dict, list, str, numbers, tuples, None; NumPy scalars allowed)

    Returns
    -------
    str
        20 hexadecimal characters.
    """
    text = json.dumps(obj, sort_keys=True, default=json_default, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def file_digest(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """SHA-256 of a file's bytes (hex), read in 4 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def array_hasher(shape: tuple[int, ...], dtype) -> "hashlib._Hash":
    """The SHA-256 object :func:`array_digest` starts from (shape and dtype hashed), to be fed the array's
    C-order bytes in row order (``h.update(chunk.tobytes())``) by a writer that streams the rows once
    (``descluster convert``), so that its ``hexdigest()`` equals :func:`array_digest` of the whole array."""
    return hashlib.sha256(f"{tuple(int(s) for s in shape)}|{np.dtype(dtype).str}".encode())


def array_digest(X: np.ndarray, chunk_rows: int = 65536) -> str:
    """SHA-256 (hex) of a 2-D array's shape, dtype and bytes, streamed by row chunks.

    Identifies descriptors given as arrays (``Case.from_arrays``), as :func:`file_digest`
    identifies descriptor files (and :mod:`descluster.io.zarr_store` records it for a Zarr store).
    """
    h = array_hasher(X.shape, X.dtype)
    for sl in row_chunks(X.shape[0], chunk_rows):
        h.update(np.ascontiguousarray(X[sl]).tobytes())
    return h.hexdigest()


@dataclass
class Entry:
    """What one cached stage holds.

    Attributes
    ----------
    arrays : dict of str -> ndarray
    tables : dict of str -> DataFrame
    meta : dict (JSON-serialisable)
    seconds : float or None
        Wall time the stage took when it was computed (set by
        :meth:`StageCache.get_or_compute`); None if unknown (an entry stored
        before this was recorded).
    """

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    seconds: float | None = None


class StageCache:
    """Cache of stage results under ``root`` (see module docstring).

    Parameters
    ----------
    root : str or PathLike or None
        Cache folder; ``None`` disables caching (every stage recomputes).

    Attributes
    ----------
    hits, misses : list of str
        ``"<stage>/<key>"`` of every lookup found / computed by this object.
    fresh : set of str
        ``"<stage>/<key>"`` computed during this run, here or by worker processes
        (:meth:`mark_fresh`): a hit on one of them is not a reuse.
    """

    def __init__(self, root: str | os.PathLike | None):
        self.root = Path(root) if root is not None else None
        self.hits: list[str] = []
        self.misses: list[str] = []
        self.fresh: set[str] = set()
        self._hit_seconds: dict[str, float | None] = {}

    def _dir(self, stage: str, key: str) -> Path:
        assert self.root is not None
        return self.root / stage / key

    def load(self, stage: str, key: str) -> Entry | None:
        """Return the cached entry, or None if absent or unreadable."""
        if self.root is None:
            return None
        d = self._dir(stage, key)
        if not (d / "meta.json").is_file():
            return None
        try:
            meta = json.loads((d / "meta.json").read_text())
            arrays = {}
            if (d / "arrays.npz").is_file():
                with np.load(d / "arrays.npz", allow_pickle=False) as z:
                    arrays = {k: z[k] for k in z.files}
            tables = {p.stem: pd.read_csv(p, keep_default_na=True) for p in sorted((d / "tables").glob("*.csv"))}
        except Exception:
            return None
        seconds = meta.get("seconds")
        return Entry(arrays=arrays, tables=tables, meta=meta.get("meta", {}),
                     seconds=float(seconds) if isinstance(seconds, (int, float)) else None)

    def store(self, stage: str, key: str, entry: Entry) -> None:
        """Write ``entry`` atomically (temporary folder, then rename)."""
        if self.root is None:
            return
        final = self._dir(stage, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=final.parent))
        try:
            if entry.arrays:
                with open(tmp / "arrays.npz", "wb") as fh:
                    np.savez(fh, **{k: np.asarray(v) for k, v in entry.arrays.items()})
            if entry.tables:
                (tmp / "tables").mkdir()
                for name, frame in entry.tables.items():
                    frame.to_csv(tmp / "tables" / f"{name}.csv", index=False, lineterminator="\n")
            record = {"format": CACHE_FORMAT, "stage": stage, "meta": entry.meta}
            if entry.seconds is not None:
                record["seconds"] = round(float(entry.seconds), 3)
            (tmp / "meta.json").write_text(json.dumps(record, default=json_default, allow_nan=True))
            if final.exists():  # a stale or concurrent copy of the same stage: keep one
                shutil.rmtree(final, ignore_errors=True)
            try:
                os.replace(tmp, final)
            except OSError:
                if not (final / "meta.json").is_file():
                    raise
                shutil.rmtree(tmp, ignore_errors=True)  # another process stored it first
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def drop(self, stage: str, params: Any) -> None:
        """Remove the entry of ``(stage, params)`` if stored (one whose companion file is gone)."""
        if self.root is not None:
            shutil.rmtree(self._dir(stage, self.key(stage, params)), ignore_errors=True)

    def mark_fresh(self, stage: str, params: Any) -> None:
        """Record that ``(stage, params)`` was computed during this run by another process."""
        self.fresh.add(f"{stage}/{self.key(stage, params)}")

    def reused(self) -> dict[str, Any]:
        """What this run took from earlier runs: stages found in the cache and not computed in this run.

        Returns
        -------
        dict
            ``count`` (int), ``compute_s`` (stage name -> summed wall time, s, those
            entries took when they were computed), ``total_compute_s`` (float) and
            ``unknown`` (int: entries stored without a recorded time).
        """
        per_stage: dict[str, float] = {}
        count = unknown = 0
        for name in dict.fromkeys(self.hits):
            if name in self.fresh:
                continue
            count += 1
            seconds = self._hit_seconds.get(name)
            if seconds is None:
                unknown += 1
                continue
            stage = name.split("/", 1)[0]
            per_stage[stage] = round(per_stage.get(stage, 0.0) + seconds, 3)
        return {"count": count, "compute_s": per_stage, "total_compute_s": round(sum(per_stage.values()), 3),
                "unknown": unknown}

    @staticmethod
    def key(stage: str, params: Any) -> str:
        """The cache key of ``(stage, params)``."""
        return stable_hash({"stage": stage, "params": params, "format": CACHE_FORMAT})

    def stored(self) -> int:
        """How many complete entries the cache folder holds (any stage, any run; 0 without a folder)."""
        return 0 if self.root is None else sum(1 for _ in self.root.glob("*/*/meta.json"))

    def has(self, stage: str, params: Any) -> bool:
        """Whether a complete entry for ``(stage, params)`` is stored."""
        return self.root is not None and (self._dir(stage, self.key(stage, params)) / "meta.json").is_file()

    def get_or_compute(self, stage: str, params: Any, compute: Callable[[], Entry]) -> Entry:
        """Return the cached entry for ``(stage, params)`` or compute, store and return it.

        Parameters
        ----------
        stage : str
            Stage name (a folder in the cache).
        params : JSON-like
            Everything the result depends on (input digests, parameters, seeds).
        compute : callable returning Entry
        """
        key = self.key(stage, params)
        hit = self.load(stage, key)
        if hit is not None:
            self.hits.append(f"{stage}/{key}")
            self._hit_seconds[f"{stage}/{key}"] = hit.seconds
            return hit
        self.misses.append(f"{stage}/{key}")
        self.fresh.add(f"{stage}/{key}")
        t0 = time.perf_counter()
        entry = compute()
        entry.seconds = time.perf_counter() - t0
        self.store(stage, key, entry)
        # Return what was stored, read back, so that a fresh run and a resumed run
        # hand identical objects (dtypes, float text round trip) to later stages.
        reloaded = self.load(stage, key)
        return reloaded if reloaded is not None else entry
