"""The study, wired in order: load -> reduce -> sweep -> choose -> compare -> map -> outliers -> model -> report.

Each stage is a plain function of its inputs and the :class:`~descluster.config.RunConfig`
that *returns* what it made; :func:`fit_study` builds the :class:`~descluster.results.RunResult`
once, at the end, from those values. Stages are cached by
:class:`~descluster.cache.StageCache` under a hash of everything they depend on (a space's
:class:`~descluster.results.SpaceId` fingerprint is chained into the keys of later stages),
so a rerun skips finished stages and an interrupted run (even ``kill -9``) resumes and
produces byte-identical outputs. :func:`save_run` writes the results folder atomically, file
by file; :func:`run_study` is the two together (``descluster run``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import __version__
from .cache import Entry, StageCache, array_digest, file_digest, stable_hash
from .cluster.predictors import predictor_from_state
from .config import RunConfig
from .engine import current_engine
from .errors import DesclusterError
from .io.atomic import write_csv, write_json
from .model import MODEL_DIR, FittedModel
from .preprocess.spaces import Reduction
from .progress import stage
from .recommend import build_comparison, mixture_names, recommend
from .results import Choice, ReducedSpace, RunResult, SpaceId, choice_key

log = logging.getLogger("descluster")

#: Layout version of the cache entries written here (part of every key).
ENTRY_LAYOUT = 2


@dataclass
class _Timer:
    timings: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, seconds: float) -> None:
        self.timings[name] = round(self.timings.get(name, 0.0) + seconds, 3)


def _descriptor_digests(case, cache: StageCache) -> dict[str, str]:
    """SHA-256 of every descriptor: of its file (memoised by path, size and mtime in the cache), or of the
    array itself for a case built from arrays."""
    memo_path = cache.root / "file_digests.json" if cache.root else None
    memo: dict[str, str] = {}
    if memo_path is not None and memo_path.is_file():
        try:
            memo = json.loads(memo_path.read_text())
        except ValueError:
            memo = {}
    out = {}
    for name in sorted(case.descriptors):
        path = case.descriptor_files.get(name)
        if path is None:
            out[name] = array_digest(case.descriptors[name])
            continue
        digest = getattr(case.descriptors[name], "digest", None)  # a Zarr store: its verified conversion digest
        if isinstance(digest, str):
            out[name] = digest
            continue
        st = Path(path).stat()
        tag = f"{Path(path).resolve()}|{st.st_size}|{st.st_mtime_ns}"
        if tag not in memo:
            memo[tag] = file_digest(path)
        out[name] = memo[tag]
    if memo_path is not None and memo:
        write_json(memo_path, memo)
    return out


# --------------------------------------------------------------------------- reduce


def reduce_params(digest: str, dropped_rows, preprocessing: str, config: RunConfig) -> dict:
    """Cache-key material of one reduced space (descriptor file digest, dropped rows, scaler, PCA settings).

    Also used by the labelling engine to find a study's spaces in its stage cache.
    """
    rc = config.reduce
    return {"descriptor": digest, "dropped": list(map(int, dropped_rows)), "preprocessing": preprocessing,
            "variance_target": rc.variance_target, "max_components": rc.max_components, "seed": config.seed,
            "entry": ENTRY_LAYOUT, **current_engine().cache_tag()}


#: Folder of the stage cache holding reduced spaces written by the workers of an engine that keeps them
#: out of the client (:attr:`descluster.engine.Engine.writes_blocks`), one ``reduce-<key>.npy`` per space.
BLOCKS_DIR = "blocks"


def _blocks_path(cache: StageCache, params: dict) -> Path:
    """Where the ``.npy`` of the reduce entry of ``params`` lives (see :data:`BLOCKS_DIR`)."""
    assert cache.root is not None
    return cache.root / BLOCKS_DIR / f"reduce-{cache.key('reduce', params)}.npy"


def reduced_rows(cache: StageCache, params: dict, entry: Entry) -> np.ndarray | None:
    """The reduced rows (n, p) float32 of a reduce cache entry: its ``X`` array, or (an entry whose rows the
    workers wrote, ``meta["blocks"]``) its ``.npy`` opened read-only as a :class:`numpy.memmap`, so that the
    client holds pages of it on demand rather than a copy; None if that file is gone."""
    if "X" in entry.arrays:
        return entry.arrays["X"]
    path = _blocks_path(cache, params)
    if not entry.meta.get("blocks") or cache.root is None or not path.is_file():
        return None
    return np.load(path, mmap_mode="r")


def reduce_stage(case, config: RunConfig, cache: StageCache, digests: dict[str, str],
                 only: dict[str, list[str]] | None = None) -> dict[str, ReducedSpace]:
    """Scale + PCA every descriptor kind under every preprocessing (or, given ``only``, descriptor kind ->
    the preprocessings to run: the screening's finalists).

    With an engine that :attr:`~descluster.engine.Engine.writes_blocks` (Dask) and a cache folder, the
    workers write each space into the cache (:data:`BLOCKS_DIR`) and the space's ``X`` is that file as a
    read-only memory map: the client never gathers the reduced rows, and the later stages read them as
    they read an array.

    Returns
    -------
    dict of str -> ReducedSpace
        Keyed by ``SpaceId.key``; each space's ``id.fingerprint`` is the hash of its cache
        parameters and its ``transform`` the fitted :class:`~descluster.preprocess.spaces.Reduction`.
    """
    from .preprocess import GramMoments

    rc = config.reduce
    engine = current_engine()
    blocks = engine.writes_blocks and cache.root is not None
    spaces = {}
    for name in sorted(case.descriptors):
        X = case.descriptors[name]
        raw_moments: list[GramMoments] = []  # one streamed covariance pass shared by the affine scalers

        def moments_of(X=X, memo=raw_moments) -> GramMoments:
            if not memo:
                memo.append(engine.raw_moments(X))
            return memo[0]

        for prep in rc.preprocessings:
            if only is not None and prep not in only.get(name, ()):
                continue
            params = reduce_params(digests[name], case.dropped_rows, prep, config)

            def compute(X=X, prep=prep, params=params) -> Entry:
                where = {"store": _blocks_path(cache, params)} if blocks else {}
                with stage(f"reduce {name}/{prep}", rows=X.shape[0]):
                    sp = engine.reduce_descriptor(X, prep, variance_target=rc.variance_target,
                                           max_components=rc.max_components, random_state=config.seed,
                                           descriptor=name, moments=None if prep == "l2" else moments_of(),
                                           **where)
                arrays = {"evr": sp.explained_variance_ratio}
                if not where:
                    arrays["X"] = sp.X.astype(np.float32)
                arrays.update({f"t_{k}": v for k, v in sp.transform.to_arrays().items()})
                return Entry(arrays=arrays, meta={"n_components": int(sp.n_components), "blocks": bool(where)})

            entry = cache.get_or_compute("reduce", params, compute)
            Xr = reduced_rows(cache, params, entry)
            if Xr is None:  # the workers' file of a cached entry was removed: computed again
                cache.drop("reduce", params)
                entry = cache.get_or_compute("reduce", params, compute)
                Xr = reduced_rows(cache, params, entry)
            sid = SpaceId.single(name, prep, stable_hash(params))
            transform = Reduction.from_arrays(prep, {k[2:]: v for k, v in entry.arrays.items() if k.startswith("t_")})
            spaces[sid.key] = ReducedSpace(id=sid, X=Xr, explained_variance_ratio=entry.arrays["evr"],
                                           n_components=int(entry.meta["n_components"]),
                                           variance_target=rc.variance_target, transform=transform)
    return spaces


# --------------------------------------------------------------------------- sweeps


def _sweep_params(space: SpaceId, algorithm: str, config: RunConfig) -> dict:
    """Cache-key material of one sweep: the space's fingerprint, the k values, the seed, the samples,
    the selection rule and every parameter of the adapter (so a changed parameter is a miss)."""
    cc = config.cluster
    return {"space": space.fingerprint, "algorithm": algorithm, "ks": cc.ks, "seed": config.seed,
            "silhouette_sample": cc.silhouette_sample, "stability_rows": cc.stability_rows,
            "selection": config.selection.to_dict(), "adapter": cc.adapter(algorithm, config.seed).get_params(),
            "entry": ENTRY_LAYOUT, "k_rule": 2,  # k_rule 2: the knee curve is anchored at k = 1
            **current_engine().cache_tag()}


def _sweep_steps(algorithm: str, config: RunConfig) -> int:
    """Progress steps of one sweep: one per k, or one for a k-free algorithm (HDBSCAN)."""
    return len(config.cluster.ks) if config.cluster.adapter(algorithm, config.seed).needs_k else 1


def sweep_stage(space: ReducedSpace, algorithm: str, config: RunConfig, cache: StageCache,
                progress: bool = True, queue=None) -> Choice:
    """Run one algorithm over the k sweep on one space and choose k (cached).

    Parameters
    ----------
    space : ReducedSpace
    algorithm : str
        A name in ``descluster.cluster.algorithms.ALGORITHMS``.
    config : RunConfig
    cache : StageCache
    progress : bool, default True
        Show a progress bar of the k values (this process only).
    queue : WorkerProgress queue, optional
        Report each k here instead (from a worker process; :func:`run_sweeps`).

    Returns
    -------
    Choice
        With the chosen k's labels, centroids and predictor.
    """
    from .cluster.algorithms import cluster_means
    from .cluster.selection import choose_k
    from .progress import progress_bar, report_progress

    params = _sweep_params(space.id, algorithm, config)

    def compute() -> Entry:
        cc = config.cluster
        t0 = time.perf_counter()
        # the bar starts inside the stage, so that the stage's first log line comes before it
        with stage(f"sweep {space.key} {algorithm}", rows=space.X.shape[0]), \
                progress_bar(total=_sweep_steps(algorithm, config), desc=f"sweep {space.key} {algorithm}", unit=" k",
                             leave=False, disable=not progress or queue is not None) as bar:

            def step(done: int, total: int, k) -> None:
                text = (f"{space.key} {algorithm}: " + (f"k = {k} ({done} of {total})" if k is not None else "fitted")
                        + f", {time.perf_counter() - t0:.0f} s into the sweep")
                report_progress(queue, 1, text)
                bar.set_postfix_str(f"k = {k}" if k is not None else "", refresh=False)
                bar.update(1)

            res = current_engine().sweep(space.X, cc.adapter(algorithm, config.seed), ks=cc.ks,
                                         random_state=config.seed, stability_rows=cc.stability_rows,
                                         silhouette_sample=cc.silhouette_sample, progress=step)
            try:
                k, reason = choose_k(res.table, tiny_share=config.selection.tiny_share,
                                     window=config.selection.window, total_inertia=res.total_inertia)
                labels = res.labels_for(k)
            except DesclusterError as exc:  # e.g. HDBSCAN calls every point noise: recorded, not fatal
                k, reason = 0, f"no usable clustering: {exc}"
                labels = np.full(space.X.shape[0], -1, dtype=np.int64)
        arrays = {"labels": np.asarray(labels, dtype=np.int64)}
        meta: dict[str, Any] = {"k": int(k), "reason": reason}
        centroids = res.centroids.get(k) if k else None
        if centroids is None and (labels >= 0).any():
            centroids = cluster_means(space.X, labels, int(labels.max()) + 1)
        if centroids is not None:
            arrays["centroids"] = centroids
        predictor = res.predictors.get(k) if k else None
        if predictor is not None:
            pmeta, parrays = predictor.to_state()
            meta["predictor"] = pmeta
            arrays.update({f"p_{name}": v for name, v in parrays.items()})
        return Entry(arrays=arrays, tables={"sweep": res.table}, meta=meta)

    entry = cache.get_or_compute("sweep", params, compute)
    sweep_table = entry.tables["sweep"].copy()
    sweep_table.insert(0, "algorithm", algorithm)
    sweep_table.insert(0, "preprocessing", space.preprocessing)
    sweep_table.insert(0, "descriptor", space.descriptor)
    predictor = None
    if "predictor" in entry.meta:
        predictor = predictor_from_state(entry.meta["predictor"],
                                         {k[2:]: v for k, v in entry.arrays.items() if k.startswith("p_")})
    return Choice(space=space.id, algorithm=algorithm, k=int(entry.meta["k"]), labels=entry.arrays["labels"],
                  reason=entry.meta["reason"], sweep=sweep_table, centroids=entry.arrays.get("centroids"),
                  predictor=predictor)


def _sweep_worker(space: ReducedSpace, algorithm: str, config: RunConfig, cache_root: str, threads: int,
                  queue=None) -> tuple[str, str, int, float]:
    """Run one sweep in a worker process; returns (space key, algorithm, chosen k, seconds)."""
    from threadpoolctl import threadpool_limits

    from .workers import exit_with_parent

    exit_with_parent()
    with threadpool_limits(limits=threads):
        t0 = time.perf_counter()
        ch = sweep_stage(space, algorithm, config, StageCache(cache_root), progress=False, queue=queue)
    return space.key, algorithm, ch.k, time.perf_counter() - t0


def run_sweeps(tasks: list[tuple[ReducedSpace, str]], config: RunConfig, cache: StageCache,
               progress: bool = True, label: str = "sweeps") -> list[Choice]:
    """Run (space, algorithm) sweeps, one process per core.

    Independent sweeps run in parallel worker processes (joblib/loky; the spaces are
    passed as memory maps), each limited to ``cores // processes`` BLAS/OpenMP threads:
    much of a sweep (sample-based fits, metrics, the extension to all rows) is
    single-threaded, so two one-thread sweeps finish sooner than two two-thread
    sweeps in turn. Each sweep is seeded on its own and stored in the stage cache by
    the worker; the parent then reads every result back through :func:`sweep_stage`
    (a cache hit), so the outcome does not depend on the order of completion. Without
    a cache folder the sweeps run in turn in this process.
    Workers report every k to one progress bar here (:class:`~descluster.progress.WorkerProgress`),
    and each finished sweep is logged with its chosen k and time.

    Returns
    -------
    list of Choice, in the order of ``tasks``.
    """
    todo = [t for t in tasks if not cache.has("sweep", _sweep_params(t[0].id, t[1], config))]
    cores = os.cpu_count() or 1
    n_jobs = min(len(todo), cores)
    if n_jobs > 1 and cache.root is not None and current_engine().parallel_sweeps:
        from joblib import Parallel, delayed

        from .progress import WorkerProgress

        cc = config.cluster
        log.info("%s: %d sweeps of k = %d…%d in %d processes ...", label, len(todo), cc.k_min, cc.k_max, n_jobs)
        threads = max(1, cores // n_jobs)
        steps = sum(_sweep_steps(algo, config) for _, algo in todo)
        with WorkerProgress(steps, desc="sweeps", unit=" k", disable=not progress) as board:
            jobs = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
                delayed(_sweep_worker)(sp, algo, config, str(cache.root), threads, board.queue) for sp, algo in todo)
            for i, (space_key, algo, k, seconds) in enumerate(jobs, 1):
                chosen = f"k = {k} chosen" if k else "no usable clustering"
                log.info("sweep %d of %d done: %s %s, %s, %.1f s", i, len(todo), space_key, algo, chosen, seconds)
        for sp, algo in todo:
            cache.mark_fresh("sweep", _sweep_params(sp.id, algo, config))
    return [sweep_stage(sp, algo, config, cache, progress) for sp, algo in tasks]


def _full_preprocessing(descriptor: str, comparison: pd.DataFrame, config: RunConfig) -> list[str]:
    """Scalers on which every algorithm runs for ``descriptor`` (configured, or auto: the best-scoring
    first-pass configuration's scaler; ``comparison`` is sorted by score)."""
    if config.cluster.full_preprocessings:
        return list(config.cluster.full_preprocessings)
    rows = comparison[comparison["descriptor"] == descriptor]
    return [str(rows.iloc[0]["preprocessing"])] if len(rows) else []


def cluster_stage(spaces: dict[str, ReducedSpace], config: RunConfig, cache: StageCache,
                  progress: bool = True, others: dict[str, list[str]] | None = None) -> tuple[dict[str, Choice], str]:
    """The every-scaler algorithms on every space, then the others on each descriptor's chosen scaler(s)
    (given ``others``, descriptor kind -> the other algorithms to run: the screening's finalists).

    Returns
    -------
    choices : dict of str -> Choice
        Keyed by ``Choice.key``.
    first : str
        The algorithm that also clusters the mixtures (k-means when it runs on every scaler).
    """
    cc = config.cluster
    everywhere = [a for a in cc.algorithms if a in cc.every_scaler_algorithms] or [cc.algorithms[0]]
    first = "kmeans" if "kmeans" in everywhere else everywhere[0]
    choices: dict[str, Choice] = {}
    for ch in run_sweeps([(sp, algo) for algo in everywhere for sp in spaces.values()], config, cache, progress,
                         label=f"{', '.join(everywhere)} on every scaler"):
        choices[ch.key] = ch
    first_pass = build_comparison(choices, spaces, {}, None)  # label-free: no truth passed
    descriptors = sorted({sp.descriptor for sp in spaces.values()})
    tasks = [(spaces[SpaceId.single(name, prep).key], algo) for name in descriptors
             for prep in _full_preprocessing(name, first_pass, config) for algo in cc.algorithms if algo not in everywhere
             and (others is None or algo in others.get(name, ()))]
    for ch in run_sweeps(tasks, config, cache, progress, label="the other algorithms on each descriptor's chosen scaler"):
        choices[ch.key] = ch
    return choices, first


def _best_rows(comparison: pd.DataFrame, choices: dict[str, Choice]) -> pd.DataFrame:
    """The best-scoring single-descriptor row of every descriptor kind (mixtures excluded)."""
    single = comparison[~comparison["descriptor"].isin(mixture_names(choices))]
    return single.sort_values("score", ascending=False, kind="mergesort").drop_duplicates("descriptor")


def mixture_stage(spaces: dict[str, ReducedSpace], choices: dict[str, Choice], comparison: pd.DataFrame,
                  algorithm: str, config: RunConfig, cache: StageCache,
                  progress: bool = True, keep: set[str] | None = None) -> tuple[dict[str, ReducedSpace], dict[str, Choice]]:
    """Weighted concatenations (all descriptor kinds, and the best pair, each at its best preprocessing),
    clustered with ``algorithm`` (given ``keep``, only the mixtures of those ``descriptor`` names).

    Returns
    -------
    spaces : dict of str -> ReducedSpace
        The mixture spaces, keyed by ``SpaceId.key``.
    choices : dict of str -> Choice
        Their clusterings.
    """
    from .preprocess import mix_spaces

    best = _best_rows(comparison, choices)
    best_space = {d: SpaceId.single(d, p).key for d, p in zip(best["descriptor"], best["preprocessing"])}
    ranked = list(best["descriptor"])
    names = sorted(best_space)
    groups = []
    if len(names) >= 2:
        groups.append(tuple(names))
    if len(ranked) >= 2 and len(names) > 2:
        groups.append(tuple(sorted(ranked[:2])))
    out = {}
    for group in groups:
        mixed = mix_spaces([spaces[best_space[d]] for d in group])
        if keep is None or mixed.id.descriptor in keep:
            out[mixed.key] = mixed
    mixed_choices = {ch.key: ch for ch in run_sweeps([(sp, algorithm) for sp in out.values()], config, cache,
                                                     progress, label="descriptor mixtures")}
    return out, mixed_choices


def _best_per_descriptor(comparison: pd.DataFrame, choices: dict[str, Choice]) -> dict[str, str]:
    """Descriptor kind -> key of its best configuration by the label-free score (mixtures excluded)."""
    best = _best_rows(comparison, choices)
    return {d: choice_key(d, p, a) for d, p, a in zip(best["descriptor"], best["preprocessing"], best["algorithm"])}


def _agreement(choices: dict[str, Choice], per_descriptor: dict[str, str]) -> pd.DataFrame:
    """Adjusted Rand index between the chosen clusterings of every pair of descriptor kinds."""
    from sklearn.metrics import adjusted_rand_score

    names = sorted(per_descriptor)
    mat = np.eye(len(names))
    for i, a in enumerate(names):
        for j in range(i + 1, len(names)):
            b = names[j]
            v = adjusted_rand_score(choices[per_descriptor[a]].labels, choices[per_descriptor[b]].labels)
            mat[i, j] = mat[j, i] = round(float(v), 6)
    return pd.DataFrame(mat, index=names, columns=names)


# --------------------------------------------------------------------------- map, outliers


def embedding_stage(space: ReducedSpace, choice: Choice, config: RunConfig, cache: StageCache) -> tuple[np.ndarray, str]:
    """2-D map of ``choice``'s space (cached).

    Returns
    -------
    Y : ndarray of shape (n_samples, 2), float32
    how : str
        How the map was made, in words.
    """
    from .embed import embed_2d

    method = config.embedding.method
    params = {"space": space.id.fingerprint, "method": method, "seed": config.seed,
              "labels": stable_hash(np.bincount(choice.labels + 1).tolist())}

    def compute() -> Entry:
        with stage(f"2-D map ({method})", rows=space.X.shape[0]):
            Y, how = embed_2d(space.X, method=method, random_state=config.seed, labels=choice.labels)
        return Entry(arrays={"Y": np.asarray(Y, dtype=np.float32)}, meta={"how": how})

    entry = cache.get_or_compute("embedding", params, compute)
    return entry.arrays["Y"], entry.meta["how"]


def outlier_stage(case, spaces: dict[str, ReducedSpace], config: RunConfig, cache: StageCache,
                  progress: bool = True, clusters: np.ndarray | None = None
                  ) -> tuple[pd.DataFrame | None, pd.DataFrame, dict[str, str]]:
    """Pixel checks (when configured and the images are there) and the outlier consensus.

    Parameters
    ----------
    spaces : dict of str -> ReducedSpace
        Descriptor kind -> the space of its best configuration.
    clusters : ndarray of shape (n_images,), int, optional
        The recommended clustering, whose clusters are also judged as groups (junk as a whole).

    Returns
    -------
    quality : DataFrame or None
        Pixel facts per image.
    outliers : DataFrame
        ``outliers.csv``.
    rules : dict of str -> str
        How images were judged, in words.
    """
    from .outliers.consensus import find_outliers
    from .outliers.pixels import image_quality_table

    oc = config.outliers
    quality = None
    if oc.pixel_checks and case.images is not None:
        qparams = {"paths": stable_hash(list(case.paths)), "images": case.images_fingerprint,
                   "columns": 3}  # 2: object measurements, camera levels; 3: blur effect, kept tones, palette shares

        def qcompute() -> Entry:
            return Entry(tables={"quality": image_quality_table(case.images, list(case.paths), progress=progress)})

        quality = cache.get_or_compute("quality", qparams, qcompute).tables["quality"]
        from .console import unreadable_lines

        for line in unreadable_lines(quality, case.missing_images):
            log.info(line)
    options = {"detectors": list(oc.detectors), "n_neighbors": oc.n_neighbors,
               "min_descriptor_kinds": oc.min_descriptor_kinds, "no_vehicle_kinds": oc.no_vehicle_kinds,
               "max_pixel_share": oc.max_pixel_share, "advisory": list(oc.advisory),
               "neighbour_index": oc.neighbour_index, **current_engine().cache_tag()}
    params = {"spaces": [sp.id.fingerprint for _, sp in sorted(spaces.items())], "seed": config.seed,
              "quality": None if quality is None else stable_hash(quality.to_csv(index=False)),
              "imagenet": None if case.imagenet is None else stable_hash(case.imagenet.to_csv(index=False)),
              "clusters": None if clusters is None else stable_hash(np.asarray(clusters).tolist()),
              "options": options, "entry": ENTRY_LAYOUT, "groups": 1}  # groups 1: group outliers

    def compute() -> Entry:
        with stage("outliers", rows=len(case.paths)):
            rep = find_outliers({d: sp.X for d, sp in sorted(spaces.items())}, list(case.paths),
                                quality=quality, imagenet=case.imagenet, random_state=config.seed, progress=progress,
                                detectors=tuple(oc.detectors), n_neighbors=oc.n_neighbors,
                                min_descriptor_kinds=oc.min_descriptor_kinds, no_vehicle_kinds=oc.no_vehicle_kinds,
                                max_pixel_share=oc.max_pixel_share, advisory=tuple(oc.advisory),
                                neighbour_index=current_engine().neighbour_index(oc.neighbour_index),
                                clusters=clusters)
        return Entry(tables={"outliers": rep.table}, meta={"rules": {"flag rule": rep.flag_rule, **rep.thresholds}})

    entry = cache.get_or_compute("outliers", params, compute)
    return quality, entry.tables["outliers"], dict(entry.meta.get("rules", {}))


def _truth_columns(case) -> dict[str, np.ndarray]:
    """Label columns of labels.csv as arrays aligned to the case rows (for external checks only)."""
    if case.labels is None:
        return {}
    return {col: case.labels[col].to_numpy() for col in case.labels.columns if col != "path"}


def _manifest(case, config: RunConfig, digests: dict[str, str], cache: StageCache) -> dict[str, Any]:
    from importlib import metadata

    versions = {}
    for pkg in ("numpy", "scipy", "scikit-learn", "faiss-cpu", "openTSNE", "hdbscan", "pandas", "pillow",
                "matplotlib", "plotly", "jinja2", "threadpoolctl", "torch", "umap-learn"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "tool": "descluster",
        "version": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libraries": versions,
        "parameters": config.to_dict(),
        "case": {
            "root": None if case.root is None else str(case.root),
            "n_images": len(case.paths),
            "descriptors": {k: list(v.shape) for k, v in case.descriptors.items()},
            "descriptor_sha256": digests,
            "images_paths_sha256": stable_hash(list(case.paths)),
            "images": None if case.images is None else str(case.images.root),
            "dropped_rows": list(map(int, case.dropped_rows)),
            "identities": case.identity_source,
        },
        "cache": _cache_summary(cache),
    }


# --------------------------------------------------------------------------- the study


def _cache_summary(cache: StageCache) -> dict[str, Any]:
    """``manifest.json``'s ``cache``: stages computed in this run and stages reused from earlier runs.

    ``timings_s`` of the manifest is the wall time of this run (a reused stage costs
    only its loading there); ``reused.compute_s`` is what the reused stages took when
    they were computed, per stage name (``unknown``: entries stored without a time).
    """
    reused = cache.reused()
    return {"computed": len(dict.fromkeys(cache.fresh)), "reused": reused["count"],
            "reused_compute_s": reused["compute_s"], "reused_compute_total_s": reused["total_compute_s"],
            "reused_without_time": reused["unknown"],
            "note": "timings_s is this run's wall time; reused_compute_s is the time the reused cached stages "
                    "took when an earlier run computed them"}


def fit_study(case, config: RunConfig | None = None, cache_dir: str | os.PathLike | None = None,
              progress: bool = True, engine=None) -> RunResult:
    """Run every stage of the study on a loaded case, on ``engine`` (:mod:`descluster.engine`; default the
    local one): :func:`_fit_study` under :func:`descluster.engine.use_engine`. With another engine the
    manifest's ``engine`` says where it ran."""
    from .engine import use_engine

    with use_engine(engine) as eng:
        result = _fit_study(case, config, cache_dir, progress)
        if eng.name != "local":
            result.meta["engine"] = eng.describe()
    return result


def _fit_study(case, config: RunConfig | None = None, cache_dir: str | os.PathLike | None = None,
               progress: bool = True) -> RunResult:
    """Run every stage of the study on a loaded case and return its result (nothing written but the cache).

    Parameters
    ----------
    case : descluster.case.Case
        From :func:`descluster.case.load_case` or :meth:`~descluster.case.Case.from_arrays`.
    config : RunConfig, optional
    cache_dir : path, optional
        Stage cache folder; None computes every stage (and runs the sweeps in this process).
    progress : bool
        Show progress bars (``tqdm.auto``: notebook widgets in Jupyter).

    Returns
    -------
    RunResult
        With ``meta`` (the manifest without the report's timing) and ``model``.
    """
    from .cluster.selection import supported_k_range
    from .console import describe_case

    for line in describe_case(case):  # first, what was found
        log.info(line)
    config = config or RunConfig()
    cc = config.cluster
    try:
        k_min, k_max, k_note = supported_k_range(len(case.paths), cc.k_min, cc.k_max)
    except DesclusterError as exc:
        raise type(exc)(f"{case.root}: {exc}") from None
    if k_note:
        log.warning("%s", k_note)
        config = dataclasses.replace(config, cluster=dataclasses.replace(cc, k_min=k_min, k_max=k_max))
    cache = StageCache(cache_dir)
    timer = _Timer()
    t_all = time.perf_counter()

    digests = _descriptor_digests(case, cache)
    screen = None
    if config.screen.applies(len(case.paths)):  # every configuration on a sample, the finalists on all rows
        from .cluster.screen import screen_study

        t0 = time.perf_counter()
        with stage(f"screening on a {config.screen.screen_rows:,}-row stratified sample"):
            screen = screen_study(case, config, cache, digests, progress)
        timer.add("screen", time.perf_counter() - t0)
    t0 = time.perf_counter()
    spaces = reduce_stage(case, config, cache, digests, only=None if screen is None else screen.scalers)
    case.release_pages()  # the raw descriptors are not read again: drop their resident pages
    timer.add("reduce", time.perf_counter() - t0)

    t0 = time.perf_counter()
    truth = _truth_columns(case)
    choices, first = cluster_stage(spaces, config, cache, progress,
                                   others=None if screen is None else screen.algorithms)
    timer.add("cluster", time.perf_counter() - t0)

    comparison = build_comparison(choices, spaces, truth, case.identities)
    if config.cluster.mixtures and len(case.descriptors) >= 2:
        t0 = time.perf_counter()
        mixed, mixed_choices = mixture_stage(spaces, choices, comparison, first, config, cache, progress,
                                             keep=None if screen is None else set(screen.mixtures))
        spaces = {**spaces, **mixed}
        choices = {**choices, **mixed_choices}
        comparison = build_comparison(choices, spaces, truth, case.identities)
        timer.add("mixtures", time.perf_counter() - t0)

    try:
        rec_key, rec_text, comparison = recommend(comparison)
    except DesclusterError as exc:  # the tables the message points to go with it (run_study writes them)
        exc.tables = {"study": pd.concat([c.sweep for c in choices.values()], ignore_index=True),
                      "comparison": comparison}
        raise
    per_descriptor = _best_per_descriptor(comparison, choices)
    study = pd.concat([c.sweep for c in choices.values()], ignore_index=True)
    agreement = _agreement(choices, per_descriptor)
    rec = choices[rec_key]

    t0 = time.perf_counter()
    Y, how = embedding_stage(spaces[rec.space.key], rec, config, cache)
    timer.add("embedding", time.perf_counter() - t0)

    quality, outliers, rules = None, None, {}
    if config.outliers.enabled:
        t0 = time.perf_counter()
        outlier_spaces = {d: spaces[choices[k].space.key] for d, k in per_descriptor.items()}
        quality, outliers, rules = outlier_stage(case, outlier_spaces, config, cache, progress,
                                                 clusters=np.asarray(rec.labels))
        timer.add("outliers", time.perf_counter() - t0)

    meta = _manifest(case, config, digests, cache)
    meta.update(recommended=rec_key, recommendation=rec_text, per_descriptor=per_descriptor, outlier_rules=rules)
    meta["screen"] = screen.to_dict() if screen is not None else {
        "sample_rows": None, "note": "every configuration ran on all rows (exhaustive study)" if not
        config.screen.enabled else f"not screened: {len(case.paths):,} rows < 2 × screen_rows "
        f"({config.screen.screen_rows:,}); every configuration ran on all rows"}
    if case.attribution:
        meta["attribution"] = case.attribution
    result = RunResult(
        paths=list(case.paths), spaces=spaces, choices=choices, study=study, comparison=comparison,
        recommended=rec_key, recommendation=rec_text, per_descriptor=per_descriptor,
        embeddings={rec_key: Y}, embedding_method={rec_key: how}, outliers=outliers, outlier_rules=rules,
        quality=quality, imagenet=case.imagenet, labels=case.labels, agreement=agreement,
        notes=list(case.notes) + ([k_note] if k_note else []) + ([] if screen is None else screen.notes()),
        meta=meta, images=case.images,
    )

    t0 = time.perf_counter()
    from .interpret import cluster_facts

    facts = cluster_facts(result)
    timer.add("interpret", time.perf_counter() - t0)
    t0 = time.perf_counter()
    with stage("fitted model"):
        model = FittedModel.from_run(dataclasses.replace(result, cluster_facts=facts), config)
    timer.add("model", time.perf_counter() - t0)
    timer.add("fit", time.perf_counter() - t_all)
    meta = {**meta, "cache": _cache_summary(cache), "timings_s": timer.timings,
            "model": {"folder": MODEL_DIR, "configurations": list(model.configurations),
                      "outlier_rules": model.rule_text()}}
    return dataclasses.replace(result, cluster_facts=facts, model=model, meta=meta)


def result_tables(result: RunResult) -> dict[str, pd.DataFrame]:
    """Every CSV of the results folder, by file name, from a run's result."""
    rec = result.choices[result.recommended]
    paths = pd.Series(result.paths, name="path")
    tables = {"clusters.csv": pd.DataFrame({"path": paths, "cluster": rec.labels})}
    for d, ckey in sorted(result.per_descriptor.items()):
        tables[per_descriptor_file(d)] = pd.DataFrame({"path": paths, "cluster": result.choices[ckey].labels})
    tables["study.csv"] = result.study
    tables["metrics.csv"] = result.study[result.study["algorithm"] == "kmeans"].reset_index(drop=True)
    tables["comparison.csv"] = result.comparison
    if result.agreement is not None:
        tables["agreement.csv"] = result.agreement.reset_index(names="descriptor")
    if result.outliers is not None:
        tables["outliers.csv"] = result.outliers
    if result.cluster_facts is not None:
        tables["cluster_facts.csv"] = result.cluster_facts
    if result.meta.get("screen", {}).get("intervals"):
        tables["screen.csv"] = pd.DataFrame(result.meta["screen"]["intervals"])
    return tables


def per_descriptor_file(descriptor: str) -> str:
    """``clusters_<descriptor>.csv`` with ``:``, ``+`` and ``/`` replaced by ``_``."""
    return "clusters_" + descriptor.replace(":", "_").replace("+", "_").replace("/", "_") + ".csv"


def write_tables(tables: dict[str, pd.DataFrame], out_dir: Path) -> None:
    """Write every CSV of the results folder atomically (the report and the manifest are written separately)."""
    for name, frame in tables.items():
        write_csv(out_dir / name, frame)


def save_run(result: RunResult, out_dir: str | os.PathLike, config: RunConfig | None = None,
             report: bool = True) -> dict[str, Any]:
    """Write a fitted study's results folder: CSVs, ``model/``, ``report.html`` and ``manifest.json``.

    Returns
    -------
    dict
        The manifest written (``timings_s`` with the report's time and the total).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    write_tables(result_tables(result), out_dir)
    if result.model is not None:
        result.model.save(out_dir / MODEL_DIR)
    timings = dict(result.meta.get("timings_s", {}))
    if report:
        from .report.build import build_report

        options = (config or RunConfig.from_dict(result.meta.get("parameters", {}))).report.build(
            result.meta.get("parameters", {}).get("seed", 0))
        with stage("report"):
            build_report(result, out_dir, result.images, options)
    timings["report"] = round(time.perf_counter() - t0, 3)
    timings["total"] = round(timings.get("fit", 0.0) + timings["report"], 3)
    manifest = {**result.meta, "timings_s": timings}
    write_json(out_dir / "manifest.json", manifest)
    return manifest


def run_study(case, out_dir: str | os.PathLike, config: RunConfig | None = None, progress: bool = True,
              engine=None) -> RunResult:
    """Run the whole study on a loaded case and write every output into ``out_dir`` (``descluster run``).

    Parameters
    ----------
    case : descluster.case.Case
        The loaded, validated case (``descluster.case.load_case``).
    out_dir : path
        Results folder (created). Its ``.cache/`` subfolder holds stage results.
    config : RunConfig, optional
    progress : bool
        Show progress bars.
    engine : descluster.engine.Engine, optional
        Where the heavy stages run (default: this machine).

    Returns
    -------
    RunResult

    Outputs
    -------
    ``clusters.csv``, ``clusters_<descriptor>.csv``, ``metrics.csv``, ``study.csv``,
    ``comparison.csv``, ``agreement.csv``, ``outliers.csv``, ``cluster_facts.csv``,
    ``model/`` (``model.json`` + ``arrays.npz``), ``report.html`` (+ ``report_files/``),
    ``manifest.json``.
    """
    config = config or RunConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        result = fit_study(case, config, cache_dir=out_dir / ".cache", progress=progress, engine=engine)
    except DesclusterError as exc:
        for name, table in getattr(exc, "tables", {}).items():  # e.g. no usable clustering: the study is kept
            write_csv(out_dir / f"{name}.csv", table)
        raise
    manifest = save_run(result, out_dir, config)
    return dataclasses.replace(result, meta=manifest)
