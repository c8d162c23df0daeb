"""Load and validate a *case*: descriptors, image paths, labels and images.

A case is a folder::

    CASE_DIR/
      descriptors/<kind>.npy | <kind>.pickle | <kind>.pkl   (n_images × n_features each)
      descriptors/<kind>.zarr     optional: a float32 Zarr store of <kind> (``descluster convert``), read
                                  in its place while it is current (see :mod:`descluster.io.zarr_store`)
      images_paths.csv            column ``paths``: one image path per descriptor row
      labels.csv                  optional: column ``path`` + any label columns
      meta/imagenet.csv           optional: per-image ImageNet summary (from ``extract``)
      case.json                   optional: {"name": ..., "images": <folder or .zip>}
      <images folder or .zip>     optional, see :func:`find_image_root`

:func:`load_case` checks that every descriptor and ``images_paths.csv`` agree
on the number of rows, finds rows with NaN/inf, aligns the optional tables to
the paths and counts images that are missing. Every error names the file, the
counts and the rows involved.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import CaseError, UnsafePathError
from .extract.imagenet import readable_class_names
from .io.descriptors import (
    CACHE_DIRNAME,
    DESCRIPTOR_SUFFIXES,
    cache_path,
    default_cache_dir,
    find_bad_rows,
    load_descriptor,
    take_rows,
)
from .io.images import ImageSource, normalise_case_path, path_key
from .io.tables import read_csv_table
from .io.zarr_store import ZARR_SUFFIX, ZarrDescriptor, store_is_current

__all__ = ["Case", "load_case", "find_image_root", "align_by_path", "identities_from_paths"]

log = logging.getLogger(__name__)

PATHS_FILE = "images_paths.csv"
LABELS_FILE = "labels.csv"
IMAGENET_FILE = Path("meta") / "imagenet.csv"
CASE_FILE = "case.json"
#: How many row numbers / paths an error or note lists.
_SHOW = 10
_SKIP_DIRS = {"descriptors", "meta", CACHE_DIRNAME}


@dataclass
class Case:
    """A loaded, validated case.

    Attributes
    ----------
    name : str
        ``case.json``'s ``"name"``, else the case folder's name.
    root : Path or None
        The case folder (None for a case built from arrays).
    descriptors : dict of str -> ndarray of shape (n_images, n_features), float32
        Keyed by file stem, in sorted order; read-only (usually memory maps; a
        :class:`~descluster.io.zarr_store.ZarrDescriptor` for a ``.zarr`` kind).
        All have the same ``n_images`` rows, aligned with ``paths``.
    paths : list of str, length n_images
        Image paths exactly as written in ``images_paths.csv`` (bad rows removed
        if ``drop_bad_rows``).
    labels : DataFrame of shape (n_images, n_label_columns) or None
        ``labels.csv`` aligned to ``paths`` (RangeIndex; NaN where a path has no label).
    images : ImageSource or None
        Where the images are read from; None if not found.
    imagenet : DataFrame of shape (n_images, n_columns) or None
        ``meta/imagenet.csv`` aligned to ``paths`` (RangeIndex); its ``path``
        column is set to ``paths`` (NaN elsewhere where a path has no row).
    dropped_rows : list of int
        Original row numbers (0-based, in ``images_paths.csv`` order, header
        excluded) removed because a descriptor had NaN/inf there.
    notes : list of str
        Things the report must show (dropped rows, missing images, fallbacks).
    missing_images : list of str
        Paths (as in ``paths``) that ``images`` does not hold; empty if ``images`` is None.
    descriptor_files : dict of str -> Path
        The file (or ``.zarr`` store) each descriptor kind was read from (hashed into ``manifest.json``).
    attribution : str or None
        Credit line for the images (from ``ATTRIBUTION.md`` beside them), shown in the report.
    identity_layout : str
        How object identities are read from the paths: ``"parent_folder"`` (declared in
        ``case.json`` as ``"identities": "parent_folder"``), ``"none"`` (declared
        ``"identities": "none"``) or ``"auto"`` (default: see :attr:`identities`).
    """

    name: str
    root: Path | None
    descriptors: dict[str, np.ndarray]
    paths: list[str]
    labels: pd.DataFrame | None = None
    images: ImageSource | None = None
    imagenet: pd.DataFrame | None = None
    dropped_rows: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    missing_images: list[str] = field(default_factory=list)
    descriptor_files: dict[str, Path] = field(default_factory=dict)
    attribution: str | None = None
    identity_layout: str = "auto"
    _fingerprint: str | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_arrays(cls, descriptors: dict, paths, labels=None, name: str = "arrays", images=None) -> "Case":
        """A case from in-memory arrays: no file is read or written.

        Parameters
        ----------
        descriptors : dict of str -> array-like of shape (n_images, n_features)
            One matrix per descriptor kind; converted to float32.
        paths : sequence of str, length n_images
            Image paths (the row names; they need not exist unless pixel checks run).
        labels : DataFrame, optional
            Label columns for external checks only: with a ``path`` column (aligned by
            path, as ``labels.csv``) or exactly ``n_images`` rows in row order.
        name : str
            Case name.
        images : str or PathLike, optional
            Image folder or ``.zip`` (for pixel checks and report grids).

        Returns
        -------
        Case

        Raises
        ------
        CaseError
            No descriptors, a matrix that is not 2-D or holds no rows, row counts that differ
            from ``len(paths)`` (named), NaN/inf rows (the first rows listed), empty, absolute or
            ``..`` paths, a path given twice, or labels of the wrong length.
        """
        paths = [str(p) for p in paths]
        if not descriptors:
            raise CaseError("Case.from_arrays needs at least one descriptor matrix")
        if not paths or any(not p.strip() for p in paths):
            raise CaseError(f"paths: {len(paths)} paths given, {sum(not p.strip() for p in paths)} empty; "
                            "give one non-empty path per row")
        refuse_unsafe_paths(paths, "paths")
        refuse_repeated_paths(paths, duplicate_path_rows(paths), "paths", "give one row per image")
        arrays = {}
        for kind in sorted(descriptors):
            X = np.asarray(descriptors[kind], dtype=np.float32)
            if X.ndim != 2 or X.shape[1] < 1:
                raise CaseError(f"descriptor {kind!r}: expected a 2-D array (n_images, n_features); got shape {X.shape}")
            if X.shape[0] != len(paths):
                raise CaseError(f"descriptor {kind!r} has {X.shape[0]:,} rows but {len(paths):,} paths are given")
            bad = find_bad_rows(X)
            if bad.size:
                raise CaseError(f"descriptor {kind!r} has {bad.size:,} row(s) with NaN/inf (rows {_list(bad)})")
            arrays[str(kind)] = X
        table = None
        if labels is not None:
            labels = pd.DataFrame(labels)
            if "path" in labels.columns:
                table, _ = align_by_path(labels, paths, "labels")
            elif len(labels) == len(paths):
                table = labels.reset_index(drop=True)
            else:
                raise CaseError(f"labels has {len(labels):,} rows and no 'path' column, for {len(paths):,} paths")
        source = None
        if images is not None:
            try:
                source = ImageSource(images)
            except FileNotFoundError as exc:
                raise CaseError(f"images {images}: {exc}") from exc
        return cls(name=name, root=None, descriptors=arrays, paths=paths, labels=table, images=source)

    def release_pages(self) -> int:
        """Re-open every memory-mapped descriptor, so the pages read so far leave this process.

        Reading a 416,314 x 2560 float32 memory map once (PCA) leaves its 4.3 GB of file
        pages counted in the process's resident memory for as long as the mapping lives,
        although the study only needs the reduced spaces afterwards. A fresh mapping of
        the same file (same dtype, shape and offset) holds no resident pages; the old one
        is unmapped when its last reference goes. Arrays that are not memory maps are kept.

        Returns
        -------
        int
            Number of descriptors re-opened.
        """
        n = 0
        for name, X in list(self.descriptors.items()):
            if isinstance(X, np.memmap) and X.filename is not None:
                self.descriptors[name] = np.memmap(X.filename, dtype=X.dtype, mode="r", offset=X.offset,
                                                   shape=X.shape, order="F" if np.isfortran(X) else "C")
                n += 1
        return n

    @property
    def n_images(self) -> int:
        """Number of rows (images) in every descriptor."""
        return len(self.paths)

    @property
    def identities(self) -> np.ndarray | None:
        """Object identity of every image, from the path layout, or None (see :attr:`identity_source`;
        the rule is :func:`descluster.profile.identities_from_paths`).

        Returns
        -------
        ndarray of shape (n_images,), dtype object, or None
        """
        return self._identity()[0]

    @property
    def identity_source(self) -> str:
        """In words, where :attr:`identities` come from, or why there are none."""
        return self._identity()[1]

    def _identity(self) -> tuple[np.ndarray | None, str]:
        from .profile import identities_from_paths

        return identities_from_paths(self.paths, self.identity_layout)

    @property
    def images_fingerprint(self) -> str | None:
        """SHA-256 (hex) identifying the image files this case reads; None without images.

        For a zip: its resolved path, size and modification time (ns). For a
        folder: its resolved path and the size and modification time of every
        image in ``paths`` (one ``stat`` each, computed once and remembered).
        Used as a cache key for pixel statistics.
        """
        if self.images is None:
            return None
        if self._fingerprint is None:
            self._fingerprint = _fingerprint(self.images, self.paths)
        return self._fingerprint


def identities_from_paths(paths: list[str]) -> np.ndarray | None:
    """Object identity of every image from the path layout (see :attr:`Case.identities`), or None.

    Parameters
    ----------
    paths : list of str
        Case paths (``/`` or ``\\`` separators).

    Returns
    -------
    ndarray of shape (len(paths),), dtype object, or None
        The folder holding each image, when every path is at least three levels deep
        and some folder holds two or more images.
    """
    parts = [p.replace("\\", "/").split("/") for p in paths]
    if not parts or min(len(p) for p in parts) < 3:
        return None
    ids = np.array(["/".join(p[:-1]) for p in parts], dtype=object)
    _, counts = np.unique(ids, return_counts=True)
    return ids if (counts >= 2).any() else None


def load_case(
    case_dir: str | os.PathLike,
    images: str | os.PathLike | None = None,
    drop_bad_rows: bool = False,
    trust_pickle: bool = False,
    cache_dir: str | os.PathLike | None = None,
) -> Case:
    """Load and validate the case in ``case_dir``.

    Parameters
    ----------
    case_dir : str or PathLike
        The case folder (layout in the module docstring).
    images : str or PathLike, optional
        Image folder or ``.zip``; overrides ``case.json`` and the search of
        :func:`find_image_root`.
    drop_bad_rows : bool, default False
        Remove rows where any descriptor holds NaN/inf, and rows that repeat an
        earlier row's path (from every descriptor and from the paths), instead
        of raising.
    trust_pickle : bool, default False
        Allow plain ``pickle`` for descriptor pickles (``--trust-pickle``).
    cache_dir : str or PathLike, optional
        Where converted descriptors go; default ``CASE_DIR/.descluster_cache``.

    Returns
    -------
    Case

    Raises
    ------
    CaseError
        No descriptor files (lists what ``descriptors/`` holds); no
        ``images_paths.csv`` or no ``paths`` column (lists the columns); row
        counts that disagree (names both files and both counts); NaN/inf rows
        or repeated paths without ``drop_bad_rows`` (names the file, the count,
        the first rows and their paths); an absolute path or one with ``..``
        (names the rows); an ``images`` argument that does not exist; malformed
        ``case.json``/``labels.csv``.
    UnsafePickleError
        A descriptor pickle outside the NumPy allow-list (see ``io.safe_pickle``).
    """
    root = Path(case_dir)
    if not root.is_dir():
        raise CaseError(_not_a_case_folder(root))
    meta = _read_case_json(root)
    notes: list[str] = []

    files = _descriptor_files(root, notes)
    paths_file = root / PATHS_FILE
    paths = _read_paths(paths_file)  # cheap checks first: converting a pickle can take a while
    descriptors = {stem: _open_descriptor(f, cache_dir, trust_pickle) for stem, f in files.items()}
    _check_counts(descriptors, files, paths_file, len(paths))

    n_total = len(paths)
    repeats = duplicate_path_rows(paths)
    if not drop_bad_rows:
        refuse_repeated_paths(paths, repeats, str(paths_file),
                              "fix the list, or rerun with --drop-bad-rows to keep the first row of each path")
    keep, dropped = _handle_bad_rows(descriptors, files, paths, drop_bad_rows)
    if repeats:
        dropped = np.union1d(dropped, np.fromiter(repeats, dtype=np.int64))
        keep = np.setdiff1d(np.arange(n_total, dtype=np.int64), dropped, assume_unique=True)
    if dropped.size:
        descriptors = {
            stem: _drop(X, keep, dropped, files[stem], cache_dir) for stem, X in descriptors.items()
        }
        paths = [paths[i] for i in keep]
        why = [f"{len(dropped) - len(repeats):,} with NaN/inf descriptors"] if len(dropped) > len(repeats) else []
        why += [f"{len(repeats):,} repeating an earlier row's path"] if repeats else []
        msg = (
            f"dropped {len(dropped):,} of {n_total:,} rows ({', '.join(why)}; "
            f"rows {_list(dropped)}); {len(paths):,} rows remain"
        )
        notes.append(msg)  # said once, with the other notes (console.describe_case, the report)

    source = _open_images(root, images, meta, paths, notes)
    missing: list[str] = []
    if source is not None:
        missing = source.missing(paths)
        if missing:
            notes.append(
                f"{len(missing):,} of {len(paths):,} images are missing from {source.root} "
                f"(first: {', '.join(missing[:5])}); grids skip them"
            )

    labels = _load_labels(root, source, paths, notes)
    imagenet = _load_imagenet(root, paths, keep if dropped.size else None, n_total, notes)
    layout = meta.get("identities", "auto")
    if layout not in ("auto", "parent_folder", "none"):
        raise CaseError(f"{root / CASE_FILE}: \"identities\" is {layout!r}; valid: \"auto\", \"parent_folder\", \"none\"")
    return Case(
        identity_layout=layout,
        name=str(meta.get("name") or root.resolve().name),
        root=root,
        descriptors=descriptors,
        paths=paths,
        labels=labels,
        images=source,
        imagenet=imagenet,
        dropped_rows=[int(i) for i in dropped],
        notes=notes,
        missing_images=missing,
        descriptor_files=dict(files),
        attribution=_attribution(source),
    )


def _attribution(source: ImageSource | None) -> str | None:
    """First paragraph naming the source and licence, from ATTRIBUTION.md beside the images."""
    if source is None:
        return None
    folder = source.root if source.root.is_dir() else source.root.parent
    f = folder / "ATTRIBUTION.md"
    if not f.is_file():
        return None
    text = " ".join(ln.strip() for ln in f.read_text(errors="replace").splitlines())
    start = text.find("Source:")
    if start < 0:
        return None
    end = text.find("Anything that", start)
    return text[start:end if end > 0 else None].strip()


# -- descriptors and paths ------------------------------------------------------


def _not_a_case_folder(root: Path) -> str:
    """Why ``root`` cannot be a case folder, and what to do instead."""
    if root.is_file() and root.suffix.lower() == ".zip":
        return (f"{root} is a file (a .zip), not a case folder. If it holds images, make a case from it with "
                f"`descluster extract {root} --out CASE`; if it holds the images of a case, pass it to "
                f"`descluster run CASE --images {root}`")
    if root.is_file():
        return f"{root} is a file, not a case folder (a folder holding descriptors/ and images_paths.csv)"
    return f"case folder {root} does not exist"


def _read_case_json(root: Path) -> dict:
    f = root / CASE_FILE
    if not f.is_file():
        return {}
    try:
        meta = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CaseError(f"{f}: cannot read case description: {exc}") from exc
    if not isinstance(meta, dict):
        raise CaseError(f"{f}: expected a JSON object, got {type(meta).__name__}")
    return meta


def _descriptor_sources(root: Path, notes: list[str] | None = None, allow_none: bool = False) -> dict[str, Path]:
    """The descriptor files (``.npy``/``.pickle``/``.pkl``) of ``root/descriptors``, one per kind (stem),
    ``.npy`` first where a kind has several (noted in ``notes``); empty only if ``allow_none``.

    Raises
    ------
    CaseError
        No ``descriptors/`` folder (says whether ``root`` is an image folder), or no descriptor file in it.
    """
    folder = root / "descriptors"
    if not folder.is_dir():
        has = sorted(p.name for p in root.iterdir())
        n_images = len(ImageSource(root).list_images())
        if n_images:
            raise CaseError(
                f"{root} holds {n_images:,} images but no descriptors/ folder: it is an image folder, not a case. "
                f"Compute descriptors first with `descluster extract {root} --out CASE`, then "
                f"`descluster run CASE --out OUT`"
            )
        raise CaseError(f"{root}: no descriptors/ folder; the case folder holds {has[:_SHOW]}"
                        + (f" and {len(has) - _SHOW:,} more" if len(has) > _SHOW else ""))
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in DESCRIPTOR_SUFFIXES)
    if not found and not allow_none:
        has = sorted(p.name for p in folder.iterdir())
        raise CaseError(
            f"{folder}: no descriptor files (*.npy, *.pickle, *.pkl, *.zarr); the folder holds {has or 'nothing'}"
        )
    files: dict[str, Path] = {}
    rank = {".npy": 0, ".pickle": 1, ".pkl": 2}
    for f in sorted(found, key=lambda p: (p.stem, rank[p.suffix.lower()])):
        if f.stem in files:
            if notes is not None:
                notes.append(f"descriptor {f.stem!r}: both {files[f.stem].name} and {f.name} exist; "
                             f"using {files[f.stem].name}")
            continue
        files[f.stem] = f
    return dict(sorted(files.items()))


def _descriptor_files(root: Path, notes: list[str]) -> dict[str, Path]:
    """The file or Zarr store each descriptor kind is read from.

    A ``<kind>.zarr`` written by ``descluster convert`` is preferred to its source while it is a complete
    conversion of the source as it is now (:func:`descluster.io.zarr_store.store_is_current`); a stale or
    incomplete store is passed over for the source, with a note; a store without a source must be complete.

    Raises
    ------
    CaseError
        As :func:`_descriptor_sources`; a broken store with no source to fall back on (names the store).
    """
    folder = root / "descriptors"
    stores = ({p.stem: p for p in folder.iterdir() if p.is_dir() and p.suffix.lower() == ZARR_SUFFIX
               and not p.name.startswith(".")} if folder.is_dir() else {})
    files = _descriptor_sources(root, notes, allow_none=bool(stores))
    for stem, store in sorted(stores.items()):
        source = files.get(stem)
        try:
            ok, why = store_is_current(store, source)
        except ImportError as exc:
            ok, why = False, f"{store}: {exc}"
        if ok:
            files[stem] = store
            log.info("descriptor %s: reading the Zarr store %s", stem, store)
        elif source is not None:
            notes.append(f"descriptor {stem!r}: {why}; reading {source.name} instead "
                         "(run `descluster convert CASE --to zarr` again)")
        else:
            raise CaseError(why)
    return dict(sorted(files.items()))


def _open_descriptor(f: Path, cache_dir, trust_pickle: bool):
    """A descriptor file as a float32 memory map (:func:`~descluster.io.descriptors.load_descriptor`), or a
    ``.zarr`` store as a :class:`~descluster.io.zarr_store.ZarrDescriptor`."""
    if f.suffix.lower() == ZARR_SUFFIX and f.is_dir():
        return ZarrDescriptor(f)
    return load_descriptor(f, cache_dir=cache_dir, trust_pickle=trust_pickle)


def _read_paths(paths_file: Path) -> list[str]:
    if not paths_file.is_file():
        raise CaseError(f"{paths_file}: not found; a case needs images_paths.csv with a 'paths' column")
    table = read_csv_table(paths_file, "image list", required=("paths",), dtype=str, keep_default_na=False,
                           na_filter=False)
    paths = [str(p) for p in table["paths"]]
    if not paths:
        raise CaseError(f"{paths_file}: has a 'paths' column but no rows")
    empty = [i for i, p in enumerate(paths) if not p.strip()]
    if empty:
        raise CaseError(f"{paths_file}: {len(empty)} empty path(s) in column 'paths', at rows {_list(empty)}")
    refuse_unsafe_paths(paths, str(paths_file))
    return paths


def refuse_unsafe_paths(paths: list[str], source: str) -> None:
    """Raise unless every path is relative to the image root (:func:`~descluster.io.images.normalise_case_path`).

    Parameters
    ----------
    paths : list of str, length n_images
    source : str
        Where the paths come from, for the message (a file, or ``"paths"``).

    Raises
    ------
    CaseError
        Naming ``source``, the count and the first rows (0-based data rows) of absolute paths and
        paths with ``..``: nothing is ever read outside the image root.
    """
    unsafe = []
    for i, p in enumerate(paths):
        try:
            normalise_case_path(p)
        except UnsafePathError as exc:
            unsafe.append((i, exc))
    if unsafe:
        shown = "; ".join(f"row {i}: {exc}" for i, exc in unsafe[:_SHOW])
        more = f" (and {len(unsafe) - _SHOW:,} more)" if len(unsafe) > _SHOW else ""
        raise CaseError(f"{source}: {len(unsafe):,} path(s) refused, nothing is read outside the image "
                        f"root (rows counted from 0, the header not counted): {shown}{more}")


def refuse_repeated_paths(paths: list[str], repeats: dict[int, int], source: str, way_out: str) -> None:
    """Raise if ``repeats`` (:func:`duplicate_path_rows` of ``paths``) is not empty.

    Raises
    ------
    CaseError
        Naming ``source``, the count and the first repeating rows with the row they repeat, then ``way_out``.
    """
    if repeats:
        shown = "; ".join(f"row {i} repeats row {j} ({paths[i]})" for i, j in list(repeats.items())[:_SHOW])
        more = f" (and {len(repeats) - _SHOW:,} more)" if len(repeats) > _SHOW else ""
        raise CaseError(f"{source}: {len(repeats):,} path(s) listed more than once (rows counted from 0): "
                        f"{shown}{more}. Each image must be listed once; {way_out}")


def duplicate_path_rows(paths: list[str]) -> dict[int, int]:
    """Rows whose path repeats an earlier row's path, matched by :func:`~descluster.io.images.path_key`.

    Parameters
    ----------
    paths : list of str, length n_images
        The image paths in row order (``a\\b.jpg`` and ``a/b.jpg`` are the same image).

    Returns
    -------
    dict of int -> int
        Each repeating row mapped to the first row with the same path, in row order; empty when every
        path is distinct.
    """
    first: dict[str, int] = {}
    repeats: dict[int, int] = {}
    for i, p in enumerate(paths):
        j = first.setdefault(path_key(p), i)
        if j != i:
            repeats[i] = j
    return repeats


def _check_counts(descriptors: dict[str, np.ndarray], files: dict[str, Path], paths_file: Path, n_paths: int) -> None:
    stems = list(descriptors)
    first = stems[0]
    for stem in stems[1:]:
        a, b = descriptors[first].shape[0], descriptors[stem].shape[0]
        if a != b:
            raise CaseError(
                f"descriptor row counts differ: {files[first]} has {a:,} rows but {files[stem]} has {b:,}"
            )
    n = descriptors[first].shape[0]
    if n != n_paths:
        raise CaseError(
            f"row count mismatch: {files[first]} has {n:,} rows but {paths_file} lists {n_paths:,} paths"
        )


def _handle_bad_rows(
    descriptors: dict[str, np.ndarray], files: dict[str, Path], paths: list[str], drop: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Return (rows kept, rows dropped); raise if bad rows exist and ``drop`` is False."""
    bad = {stem: X.bad_rows if isinstance(X, ZarrDescriptor) else find_bad_rows(X)  # recorded by convert
           for stem, X in descriptors.items()}
    bad = {stem: rows for stem, rows in bad.items() if rows.size}
    n = len(paths)
    if not bad:
        return np.arange(n, dtype=np.int64), np.empty(0, dtype=np.int64)
    if not drop:
        parts = []
        for stem, rows in bad.items():
            shown = "; ".join(f"row {int(i)}: {paths[int(i)]}" for i in rows[:_SHOW])
            more = f" (and {rows.size - _SHOW:,} more)" if rows.size > _SHOW else ""
            parts.append(f"{files[stem]} has {rows.size:,} row(s) with NaN/inf: {shown}{more}")
        raise CaseError(
            "; ".join(parts) + ". Fix the descriptors or rerun with --drop-bad-rows to drop these rows "
            "from every descriptor and from images_paths.csv"
        )
    dropped = np.unique(np.concatenate(list(bad.values())))
    keep = np.setdiff1d(np.arange(n, dtype=np.int64), dropped, assume_unique=True)
    if keep.size == 0:
        raise CaseError(f"every one of the {n:,} rows has NaN/inf in some descriptor; nothing is left to cluster")
    return keep, dropped


def _drop(X: np.ndarray, keep: np.ndarray, dropped: np.ndarray, source: Path, cache_dir) -> np.ndarray:
    tag = "drop-" + hashlib.sha1(np.ascontiguousarray(dropped, dtype=np.int64).tobytes()).hexdigest()[:12]
    try:
        if isinstance(X, ZarrDescriptor):  # a store: keyed by its recorded digest
            folder = Path(cache_dir) if cache_dir is not None else default_cache_dir(source)
            target = folder / f"{source.stem}.zarr-{X.digest[:16]}.{tag}.npy"
        else:
            target = cache_path(source, cache_dir, tag=tag)
        target.parent.mkdir(parents=True, exist_ok=True)
        return take_rows(X, keep, target)
    except OSError as exc:
        log.warning("cannot cache %s without bad rows (%s); keeping it in memory", source, exc)
        return take_rows(X, keep)


def _list(rows) -> str:
    rows = [int(i) for i in rows]
    text = ", ".join(str(i) for i in rows[:_SHOW])
    return text + (f", ... ({len(rows) - _SHOW:,} more)" if len(rows) > _SHOW else "")


# -- images ------------------------------------------------------------------------


def _open_images(root: Path, images, meta: dict, paths: list[str], notes: list[str]) -> ImageSource | None:
    if images is not None:
        try:
            return ImageSource(images)
        except FileNotFoundError as exc:
            raise CaseError(f"images {images}: {exc}") from exc
    declared = meta.get("images")
    if declared:
        p = Path(declared)
        p = p if p.is_absolute() else root / p
        try:
            return ImageSource(p)
        except FileNotFoundError:
            notes.append(f"{root / CASE_FILE} names images {declared!r}, which does not exist; searching the case folder")
    found = _search_images(root, paths)
    if found is None:
        notes.append(
            f"no image folder or .zip found in {root} (pass --images); image grids and pixel checks are skipped"
        )
        return None
    return found


def find_image_root(case_dir: str | os.PathLike, paths: list[str]) -> Path | None:
    """Find the folder or ``.zip`` inside ``case_dir`` that holds the case's images.

    Candidates are ``case_dir`` itself, its sub-folders one and two levels
    down, and ``.zip`` files one or two levels down (``descriptors/``, ``meta/``
    and hidden folders such as the cache are skipped). The first candidate that
    holds any of a few sample paths (first, middle, last) wins, zips before
    folders; failing that, a lone ``.zip`` is taken.

    Parameters
    ----------
    case_dir : str or PathLike
    paths : list of str
        Case paths as in ``images_paths.csv``.

    Returns
    -------
    Path or None
    """
    source = _search_images(Path(case_dir), paths)
    if source is None:
        return None
    source.close()
    return source.root


def _search_images(root: Path, paths: list[str]) -> ImageSource | None:
    """:func:`find_image_root`, returning the opened source (a zip's index is built once)."""
    level1 = [d for d in sorted(root.iterdir()) if d.name not in _SKIP_DIRS and not d.name.startswith(".")]
    dirs1 = [d for d in level1 if d.is_dir()]
    level2 = [d for parent in dirs1 for d in sorted(parent.iterdir()) if not d.name.startswith(".")]
    zips = [p for p in level1 + level2 if p.is_file() and p.suffix.lower() == ".zip"]
    folders = [root] + dirs1 + [d for d in level2 if d.is_dir()]
    samples = list(dict.fromkeys([paths[0], paths[len(paths) // 2], paths[-1]])) if paths else []
    for candidate in zips + folders:
        try:
            src = ImageSource(candidate)
        except FileNotFoundError:
            continue
        if any(src.exists(p) for p in samples):
            return src
        src.close()
    return ImageSource(zips[0]) if len(zips) == 1 else None


def _fingerprint(source: ImageSource, paths: list[str]) -> str:
    h = hashlib.sha256()
    root = source.root.resolve()
    if source.is_zip:
        st = root.stat()
        h.update(f"zip\0{root}\0{st.st_size}\0{st.st_mtime_ns}".encode())
        return h.hexdigest()
    h.update(f"dir\0{root}".encode())
    for p in paths:
        try:
            found = source._file(normalise_case_path(p))  # same lookup as reading (top folder optional)
            st = found.stat() if found is not None else None
        except (OSError, UnsafePathError):
            st = None
        h.update((f"\0{p}\0{st.st_size}\0{st.st_mtime_ns}" if st else f"\0{p}\0missing").encode())
    return h.hexdigest()


# -- optional tables -----------------------------------------------------------


def _strip_top(key: str) -> str | None:
    return key.split("/", 1)[1] if "/" in key else None


def align_by_path(table: pd.DataFrame, paths: list[str], source: str | os.PathLike) -> tuple[pd.DataFrame, int]:
    """Reorder ``table`` (which has a ``path`` column) to follow ``paths``.

    Paths are compared after :func:`~descluster.io.images.normalise_case_path`
    (so ``a\\b.jpg`` matches ``a/b.jpg``); if that fails, with the first folder
    removed on either side (``veriwild/1/x.jpg`` matches ``1/x.jpg``). The first
    row wins for duplicated paths.

    Parameters
    ----------
    table : DataFrame with a ``path`` column
    paths : list of str, length n
    source : str or PathLike
        File name for error messages.

    Returns
    -------
    aligned : DataFrame of shape (n, n_columns - 1)
        The other columns, RangeIndex, NaN where a path has no row.
    n_unmatched : int
        How many of ``paths`` had no row.

    Raises
    ------
    CaseError
        If ``table`` has no ``path`` column (lists the columns it has).
    """
    if "path" not in table.columns:
        raise CaseError(f"{source}: no 'path' column; the columns are {list(table.columns)}")
    keys = [path_key(p) for p in table["path"].astype(str)]
    exact: dict[str, int] = {}
    stripped: dict[str, int] = {}
    for i, k in enumerate(keys):
        exact.setdefault(k, i)
        s = _strip_top(k)
        if s is not None:
            stripped.setdefault(s, i)
    index = np.full(len(paths), -1, dtype=np.int64)
    for j, p in enumerate(paths):
        k = path_key(p)
        i = exact.get(k)
        if i is None:
            s = _strip_top(k)
            i = exact.get(s) if s is not None else None
            if i is None:
                i = stripped.get(k)
        if i is not None:
            index[j] = i
    body = table.drop(columns="path").reset_index(drop=True)
    aligned = body.reindex(index).reset_index(drop=True)
    return aligned, int((index < 0).sum())


def _read_table(f: Path) -> pd.DataFrame:
    return read_csv_table(f, "table", dtype={"path": str})


def _load_labels(root: Path, source: ImageSource | None, paths: list[str], notes: list[str]) -> pd.DataFrame | None:
    candidates = [root / LABELS_FILE]
    if source is not None and not source.is_zip:
        candidates.append(source.root / LABELS_FILE)
    f = next((c for c in candidates if c.is_file()), None)
    if f is None:
        return None
    aligned, unmatched = align_by_path(_read_table(f), paths, f)
    if unmatched:
        notes.append(f"{f}: {unmatched:,} of {len(paths):,} images have no row (their labels are empty)")
    return aligned


def _load_imagenet(
    root: Path, paths: list[str], keep: np.ndarray | None, n_total: int, notes: list[str]
) -> pd.DataFrame | None:
    f = root / IMAGENET_FILE
    if not f.is_file():
        return None
    table = _read_table(f)
    if "path" in table.columns:
        aligned, unmatched = align_by_path(table, paths, f)
        if unmatched:
            notes.append(f"{f}: {unmatched:,} of {len(paths):,} images have no row")
    elif len(table) == n_total:  # positional, one row per line of images_paths.csv
        aligned = table.reset_index(drop=True)
        aligned = aligned if keep is None else aligned.iloc[keep].reset_index(drop=True)
    else:
        notes.append(f"{f}: has no 'path' column and {len(table):,} rows for {n_total:,} images; ignored")
        return None
    aligned.insert(0, "path", list(paths))
    for col in [c for c in aligned.columns if str(c).endswith("_class")]:  # older cases wrote imagenet_<index>
        aligned[col] = readable_class_names(aligned[col].fillna(""))
    return aligned
