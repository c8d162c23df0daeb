"""``extract_case``: compute descriptors for a folder or zip of images and write a case.

Work is split into chunks of ``chunk_size`` images (in the sorted image order).
Each chunk is decoded once and fed to every backbone in batches of
``batch_size``; each finished (backbone, chunk) is saved atomically under
``out_dir/.partial``. An interrupted run resumes from the finished chunks; at
the end the chunks are concatenated into ``descriptors/<name>.npy`` and the
partial state is deleted. A rerun on a finished case with the same image list
and backbone parameters returns at once.

Unreadable images (0 bytes, truncated, not an image) are **skipped**: they get
no descriptor row and do not appear in ``images_paths.csv`` (so every row of
every descriptor file stays aligned with the paths), and they are listed with
the decoding error in ``meta/unreadable.csv``; a warning gives their count.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from .. import __version__
from ..errors import CaseError, DesclusterError, ParameterError
from ..io.images import IMAGE_SUFFIXES, ImageSource
from ..io.atomic import write_csv, write_json
from .backbones import DEFAULT_BACKBONES, make_backbone
from ..validation import check_int
from .base import Backbone
from .imagenet import summarise_probs, summary_frame
from .writer import PartialStore, assemble, copy_file, paths_digest, read_json, write_paths, write_unreadable

__all__ = ["extract_case", "list_case_images"]

log = logging.getLogger(__name__)


def list_case_images(source: ImageSource, limit: int | None = None) -> list[str]:
    """Case paths of the images in ``source``, sorted, optionally subsampled.

    Parameters
    ----------
    source : ImageSource
    limit : int or None
        If given and smaller than the number of images, keep ``limit`` images
        evenly spaced over the sorted list (``numpy.linspace`` positions), so a
        small subset still covers every sub-folder.

    Returns
    -------
    list of str
        POSIX paths relative to the image root. For a zip whose images all lie
        under one top-level folder, that folder is dropped, so a zip and the
        folder it was made from give the same paths.
    """
    listed = source.list_images()
    if source.is_zip and listed and all("/" in p for p in listed):
        tops = {p.split("/", 1)[0] for p in listed}
        if len(tops) == 1:
            listed = [p.split("/", 1)[1] for p in listed]
    if limit is not None and limit < len(listed):
        keep = np.unique(np.linspace(0, len(listed) - 1, int(limit)).round().astype(np.int64))
        listed = [listed[i] for i in keep]
    return listed


def _decode(source: ImageSource, paths: Sequence[str]):
    """Decode a chunk: (images of the readable ones, their positions, [(path, error)] of the others)."""
    images, ok, errors = [], [], []
    for i, p in enumerate(paths):
        try:
            images.append(source.open(p))
            ok.append(i)
        except (DesclusterError, OSError) as exc:
            errors.append((p, str(exc)))
    return images, ok, errors


def _find_labels(source: ImageSource) -> bytes | None:
    """Bytes of a ``labels.csv`` at the image root (or inside the zip), else None."""
    try:
        if source.exists("labels.csv"):
            return source.read_bytes("labels.csv")
    except (DesclusterError, OSError):
        return None
    return None


def _cached(out_dir: Path, case: dict | None, digest: str, model: Backbone) -> bool:
    if not case or case.get("paths_sha256") != digest:
        return False
    if (case.get("fingerprints") or {}).get(model.name) != model.fingerprint():
        return False
    if model.has_imagenet_head and not (out_dir / "meta" / "imagenet.csv").is_file():
        return False
    return (out_dir / "descriptors" / f"{model.name}.npy").is_file()


def extract_case(
    images: str | Path,
    out_dir: str | Path,
    backbones: Sequence[str | Backbone] = DEFAULT_BACKBONES,
    batch_size: int = 64,
    progress: bool = True,
    limit: int | None = None,
    *,
    chunk_size: int = 512,
    backbone_params: Mapping[str, dict] | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> Path:
    """Compute descriptors of every image in a folder or zip and write the case layout.

    Parameters
    ----------
    images : str or Path
        Image folder or ``.zip`` archive (read through :class:`~descluster.io.images.ImageSource`).
    out_dir : str or Path
        Case folder to create or complete.
    backbones : sequence of str or Backbone, default ("mobilenetv2", "efficientnet_lite0", "colour")
        Registry names (:data:`~descluster.extract.backbones.BACKBONES`) or instances.
    batch_size : int, default=64
        Images per forward pass, 1 to 4096.
    progress : bool, default=True
        Show a progress bar (images/s) on stderr (:func:`descluster.progress.progress_bar`).
    limit : int or None, default=None
        Extract only ``limit`` evenly spaced images (see :func:`list_case_images`).
    chunk_size : int, default=512
        Images per resumable chunk, 1 to 1,000,000. Changing it restarts a partial run.
    backbone_params : mapping of str to dict, optional
        Constructor parameters per backbone name, e.g. ``{"mobilenetv2": {"input_size": 224}}``.
    on_chunk : callable (chunk_index, n_chunks) -> None, optional
        Called after every saved chunk (progress reporting; tests use it to interrupt).

    Returns
    -------
    Path
        ``out_dir``, now holding ``descriptors/<name>.npy`` (float32, (n, d)),
        ``images_paths.csv``, ``case.json``, ``meta/unreadable.csv``,
        ``meta/imagenet.csv`` (if a backbone has an ImageNet head) and
        ``labels.csv`` (if the image root has one).

    Raises
    ------
    ParameterError
        Bad ``batch_size``, ``chunk_size``, ``limit``, unknown or repeated backbone.
    FileNotFoundError
        If ``images`` does not exist.
    CaseError
        If ``images`` holds no image file, or no image could be decoded.
    ImportError
        If a torch backbone is requested without torch installed.

    Notes
    -----
    Deterministic: the same images, backbones, ``chunk_size`` and ``batch_size``
    give bit-identical descriptors (inference mode, eval mode, fixed batching).
    ``torch.set_num_threads`` is left at its default.

    The cache key of a finished case is the ordered list of image paths
    (SHA-256 in ``case.json``) plus each backbone's name and parameters; images
    edited in place under the same names are not detected (delete the case).
    """
    batch_size = check_int("batch_size", batch_size, 1, 4096)
    chunk_size = check_int("chunk_size", chunk_size, 1, 1_000_000)
    if limit is not None:
        limit = check_int("limit", limit, 1, 2**62)
    if isinstance(backbones, (str, Backbone)):
        backbones = [backbones]
    backbone_params = dict(backbone_params or {})
    unknown = set(backbone_params) - {b if isinstance(b, str) else b.name for b in backbones}
    if unknown:
        raise ParameterError(f"backbone_params names backbones that are not extracted: {sorted(unknown)}")
    models = [make_backbone(b, **backbone_params.get(b, {})) if isinstance(b, str) else b for b in backbones]
    names = [m.name for m in models]
    if not names or len(set(names)) != len(names):
        raise ParameterError(f"backbones={names!r} is invalid: give at least one backbone, each once")

    source = ImageSource(images)
    paths = list_case_images(source, limit)
    if not paths:
        raise CaseError(f"{source.root}: no image files found (looked for {', '.join(IMAGE_SUFFIXES)})")
    out_dir = Path(out_dir)
    digest = paths_digest(paths)
    case = read_json(out_dir / "case.json")
    pending = [m for m in models if not _cached(out_dir, case, digest, m)]
    if not pending:
        log.info("%s: descriptors %s already extracted for these %d images", out_dir, names, len(paths))
        return out_dir
    if case and case.get("paths_sha256") != digest:
        case = None  # another image list: nothing of the old case is reusable
        for old in (out_dir / "descriptors").glob("*.npy"):
            if old.stem not in names:
                log.warning("%s: removing %s, computed for another image list", out_dir, old.name)
                old.unlink()

    store = PartialStore(out_dir, digest, len(paths), chunk_size)
    for m in pending:
        store.prepare_backbone(m.name, m.fingerprint())
    seconds = _run_chunks(source, paths, pending, store, chunk_size, batch_size, progress, on_chunk)
    _finish(out_dir, source, paths, pending, store, case, digest, seconds, limit)
    return out_dir


def _run_chunks(source, paths, models, store, chunk_size, batch_size, progress, on_chunk) -> dict:
    from ..progress import progress_bar

    n_chunks = store.n_chunks
    bounds = [(c, c * chunk_size, min((c + 1) * chunk_size, len(paths))) for c in range(n_chunks)]
    todo = {
        c: [m for m in models if not store.has_chunk(m.name, c, m.has_imagenet_head)] for c, _, _ in bounds
    }
    work = [b for b in bounds if todo[b[0]] or store.load_status(b[0]) is None]
    seconds = {m.name: 0.0 for m in models}
    seconds["decode"] = 0.0
    cpu = {m.name: 0.0 for m in models}
    done_images = len(paths) - sum(hi - lo for _, lo, hi in work)
    if work:  # the first progress line comes after a whole chunk: say at once what runs
        log.info("extract: %s on %s of %s images (%s done before), %s chunks of %s images ...",
                 ", ".join(m.name for m in models), f"{len(paths) - done_images:,}", f"{len(paths):,}",
                 f"{done_images:,}", f"{len(work):,}", f"{chunk_size:,}")
    bar = progress_bar(total=len(paths), initial=done_images, unit="img", desc="extract", disable=not progress)

    def timed_decode(lo, hi):
        t0 = time.perf_counter()
        result = _decode(source, paths[lo:hi])
        return result, time.perf_counter() - t0

    try:
        with ThreadPoolExecutor(max_workers=1) as pool:  # decode the next chunk while the CNNs run
            future = pool.submit(timed_decode, *work[0][1:]) if work else None
            for i, (c, lo, hi) in enumerate(work):
                (images, ok, errors), dt = future.result()
                seconds["decode"] += dt
                future = pool.submit(timed_decode, *work[i + 1][1:]) if i + 1 < len(work) else None
                status = store.load_status(c)
                if status is not None and status["ok"] != ok:  # files changed since the interrupted run
                    log.warning("chunk %d: readable images changed since the partial run; recomputing it", c)
                    todo[c] = list(models)
                if status is None or status["ok"] != ok:
                    store.save_status(c, ok, errors)
                for m in todo[c]:
                    t0, c0 = time.perf_counter(), time.process_time()
                    feats, summary = _embed_chunk(m, images, batch_size)
                    seconds[m.name] += time.perf_counter() - t0
                    cpu[m.name] += time.process_time() - c0
                    store.save_chunk(m.name, c, feats, summary)
                bar.update(hi - lo)
                if on_chunk is not None:
                    on_chunk(c, n_chunks)
    finally:
        bar.close()
    return {"wall": seconds, "cpu": cpu}


def _embed_chunk(model: Backbone, images, batch_size: int):
    feats, summaries = [], []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        if model.has_imagenet_head:
            f, probs = model.embed_and_classify(batch)
            summaries.append(summarise_probs(probs))
        else:
            f = model.embed(batch)
        feats.append(np.asarray(f, dtype=np.float32))
    feats = np.concatenate(feats) if feats else np.zeros((0, model.n_features), np.float32)
    if feats.shape != (len(images), model.n_features) or not np.isfinite(feats).all():
        raise RuntimeError(f"backbone {model.name!r} returned {feats.shape} (or non-finite values) for {len(images)} images")
    if not model.has_imagenet_head:
        return feats, None
    return feats, (np.concatenate(summaries) if summaries else summarise_probs(np.zeros((0, 1000))))


def _finish(out_dir, source, paths, models, store, case, digest, seconds, limit) -> None:
    readable, errors = [], []
    for c in range(store.n_chunks):
        status = store.load_status(c)
        chunk_paths = paths[c * store.chunk_size : (c + 1) * store.chunk_size]
        readable.extend(chunk_paths[i] for i in status["ok"])
        errors.extend((p, e) for p, e in status["errors"])
    if not readable:
        raise CaseError(f"{source.root}: none of the {len(paths)} images could be decoded (see the errors above)")
    if errors:
        log.warning("%d of %d images are unreadable and were skipped; see %s", len(errors), len(paths),
                    out_dir / "meta" / "unreadable.csv")
    chunks = range(store.n_chunks)
    for m in models:
        assemble((store.feature_path(m.name, c) for c in chunks), out_dir / "descriptors" / f"{m.name}.npy",
                 len(readable), m.n_features)
        if m.has_imagenet_head:
            summary = np.concatenate([store.load(store.imagenet_path(m.name, c)) for c in chunks])
            write_csv(out_dir / "meta" / "imagenet.csv", summary_frame(readable, summary))
    write_paths(out_dir, readable)
    write_unreadable(out_dir, errors)
    labels = _find_labels(source)
    if labels is not None:
        copy_file(labels, out_dir / "labels.csv")
    old = case or {}
    record = {
        "images": str(source.root.resolve()),
        "backbones": {**old.get("backbones", {}), **{m.name: int(m.n_features) for m in models}},
        "n_images": len(readable),
        "n_listed": len(paths),
        "n_unreadable": len(errors),
        "limit": limit,
        "descluster_version": __version__,
        "paths_sha256": digest,
        "fingerprints": {**old.get("fingerprints", {}), **{m.name: m.fingerprint() for m in models}},
        # wall-clock and process CPU seconds (all threads) spent per backbone in the last run
        "extract_seconds": {**old.get("extract_seconds", {}), **{k: round(v, 3) for k, v in seconds["wall"].items()}},
        "extract_cpu_seconds": {**old.get("extract_cpu_seconds", {}),
                                **{k: round(v, 3) for k, v in seconds["cpu"].items()}},
    }
    write_json(out_dir / "case.json", record)
    store.remove()
