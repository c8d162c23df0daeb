"""The study, wired in order: load -> reduce -> sweep -> choose -> compare -> map -> outliers -> report.

Each stage is a plain function of its inputs and the :class:`~descluster.config.RunConfig`,
cached by :class:`~descluster.cache.StageCache` under a hash of everything it depends on,
so a rerun skips finished stages and an interrupted run (even ``kill -9``) resumes and
produces byte-identical outputs. Outputs are written atomically at the end.
"""

from __future__ import annotations

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
from .cache import Entry, StageCache, file_digest, stable_hash
from .config import RunConfig
from .errors import DesclusterError
from .io.atomic import write_csv, write_json
from .progress import stage
from .recommend import build_comparison, recommend
from .results import Choice, ReducedSpace, RunResult

log = logging.getLogger("descluster")


@dataclass
class _Timer:
    timings: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, seconds: float) -> None:
        self.timings[name] = round(self.timings.get(name, 0.0) + seconds, 3)


def _descriptor_digests(case, cache: StageCache) -> dict[str, str]:
    """SHA-256 of every descriptor file, memoised by (path, size, mtime) in the cache."""
    memo_path = cache.root / "file_digests.json" if cache.root else None
    memo: dict[str, str] = {}
    if memo_path is not None and memo_path.is_file():
        import json

        try:
            memo = json.loads(memo_path.read_text())
        except ValueError:
            memo = {}
    out = {}
    for name, path in case.descriptor_files.items():
        st = Path(path).stat()
        tag = f"{Path(path).resolve()}|{st.st_size}|{st.st_mtime_ns}"
        if tag not in memo:
            memo[tag] = file_digest(path)
        out[name] = memo[tag]
    if memo_path is not None:
        write_json(memo_path, memo)
    return out


def _space_from_entry(descriptor: str, preprocessing: str, entry: Entry, target: float) -> ReducedSpace:
    return ReducedSpace(
        descriptor=descriptor,
        preprocessing=preprocessing,
        X=entry.arrays["X"],
        explained_variance_ratio=entry.arrays["evr"],
        n_components=int(entry.meta["n_components"]),
        variance_target=target,
    )


def reduce_params(digest: str, dropped_rows, preprocessing: str, config: RunConfig) -> dict:
    """Cache-key material of one reduced space (descriptor file digest, dropped rows, scaler, PCA settings)."""
    return {
        "descriptor": digest,
        "dropped": list(map(int, dropped_rows)),
        "preprocessing": preprocessing,
        "variance_target": config.variance_target,
        "max_components": config.max_components,
        "seed": config.seed,
    }


def reduce_stage(case, config: RunConfig, cache: StageCache, digests: dict[str, str]) -> tuple[dict[str, ReducedSpace], dict[str, str]]:
    """Scale + PCA every descriptor kind under every preprocessing.

    Returns
    -------
    spaces : dict of str -> ReducedSpace
        Keyed ``"<descriptor>/<preprocessing>"``.
    keys : dict of str -> str
        Cache-key material of each space (chained into later stages).
    """
    from .preprocess import GramMoments, reduce_descriptor

    spaces, keys = {}, {}
    for name in sorted(case.descriptors):
        X = case.descriptors[name]
        raw_moments: list[GramMoments] = []  # one streamed covariance pass shared by the affine scalers

        def moments_of(X=X, memo=raw_moments) -> GramMoments:
            if not memo:
                memo.append(GramMoments.from_matrix(X))
            return memo[0]

        for prep in config.preprocessings:
            params = reduce_params(digests[name], case.dropped_rows, prep, config)

            def compute(X=X, prep=prep) -> Entry:
                with stage(f"reduce {name}/{prep}", rows=X.shape[0]):
                    sp = reduce_descriptor(X, prep, variance_target=config.variance_target,
                                           max_components=config.max_components, random_state=config.seed,
                                           descriptor=name, moments=None if prep == "l2" else moments_of())
                return Entry(arrays={"X": sp.X.astype(np.float32), "evr": sp.explained_variance_ratio},
                             meta={"n_components": int(sp.n_components)})

            entry = cache.get_or_compute("reduce", params, compute)
            sp = _space_from_entry(name, prep, entry, config.variance_target)
            spaces[sp.key] = sp
            keys[sp.key] = stable_hash(params)
    return spaces, keys


def _sweep_params(space_key: str, algorithm: str, config: RunConfig) -> dict:
    """Cache-key material of one sweep: the space, the k values, the seed, the silhouette sample
    and every parameter of the adapter (so a changed default, e.g. k-means restarts, is a miss)."""
    from .cluster.algorithms import make_algorithm

    return {"space": space_key, "algorithm": algorithm, "ks": config.ks, "seed": config.seed,
            "silhouette_sample": config.silhouette_sample,
            "adapter": make_algorithm(algorithm, random_state=config.seed).get_params()}


def sweep_stage(space: ReducedSpace, space_key: str, algorithm: str, config: RunConfig, cache: StageCache,
                progress: bool = True) -> Choice:
    """Run one algorithm over the k sweep on one space and choose k (cached)."""
    from .cluster.algorithms import cluster_means
    from .cluster.selection import choose_k
    from .cluster.sweep import sweep

    params = _sweep_params(space_key, algorithm, config)

    def compute() -> Entry:
        from tqdm.auto import tqdm

        with stage(f"sweep {space.key} {algorithm}", rows=space.X.shape[0]), \
                tqdm(total=len(config.ks), desc=f"{algorithm} k values", unit=" k value", leave=False,
                     disable=not progress) as bar:
            res = sweep(space.X, algorithm, ks=config.ks, random_state=config.seed,
                        silhouette_sample=config.silhouette_sample,
                        progress=lambda done, total, k: bar.update(1))
            try:
                k, reason = choose_k(res.table)
                labels = res.labels_for(k)
            except DesclusterError as exc:  # e.g. HDBSCAN calls every point noise: recorded, not fatal
                k, reason = 0, f"no usable clustering: {exc}"
                labels = np.full(space.X.shape[0], -1, dtype=np.int64)
        arrays = {"labels": np.asarray(labels, dtype=np.int64)}
        centroids = res.centroids.get(k) if k else None
        if centroids is None and (labels >= 0).any():
            centroids = cluster_means(space.X, labels, int(labels.max()) + 1)
        if centroids is not None:
            arrays["centroids"] = centroids
        return Entry(arrays=arrays, tables={"sweep": res.table}, meta={"k": int(k), "reason": reason})

    entry = cache.get_or_compute("sweep", params, compute)
    sweep_table = entry.tables["sweep"].copy()
    sweep_table.insert(0, "algorithm", algorithm)
    sweep_table.insert(0, "preprocessing", space.preprocessing)
    sweep_table.insert(0, "descriptor", space.descriptor)
    return Choice(descriptor=space.descriptor, preprocessing=space.preprocessing, algorithm=algorithm,
                  k=int(entry.meta["k"]), labels=entry.arrays["labels"], reason=entry.meta["reason"],
                  sweep=sweep_table, centroids=entry.arrays.get("centroids"))


def _sweep_worker(space: ReducedSpace, space_key: str, algorithm: str, config: RunConfig, cache_root: str,
                  threads: int) -> None:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        sweep_stage(space, space_key, algorithm, config, StageCache(cache_root), progress=False)


def run_sweeps(tasks: list[tuple[ReducedSpace, str, str]], config: RunConfig, cache: StageCache,
               progress: bool = True, label: str = "sweeps") -> list[Choice]:
    """Run (space, space cache key, algorithm) sweeps, one process per core.

    Independent sweeps run in parallel worker processes (joblib/loky; the spaces are
    passed as memory maps), each limited to ``cores // processes`` BLAS/OpenMP threads:
    much of a sweep (sample-based fits, metrics, the extension to all rows) is
    single-threaded, so two one-thread sweeps finish sooner than two two-thread
    sweeps in turn. Each sweep is seeded on its own and stored in the stage cache by
    the worker; the parent then reads every result back through :func:`sweep_stage`
    (a cache hit), so the outcome does not depend on the order of completion.

    Returns
    -------
    list of Choice, in the order of ``tasks``.
    """
    todo = [t for t in tasks if not cache.has("sweep", _sweep_params(t[1], t[2], config))]
    cores = os.cpu_count() or 1
    n_jobs = min(len(todo), cores)
    if n_jobs > 1 and cache.root is not None:
        from joblib import Parallel, delayed
        from tqdm.auto import tqdm

        log.info("%s: %d sweeps of k = %d…%d in %d processes ...", label, len(todo), config.k_min, config.k_max, n_jobs)
        threads = max(1, cores // n_jobs)
        jobs = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
            delayed(_sweep_worker)(sp, key, algo, config, str(cache.root), threads) for sp, key, algo in todo)
        for _ in tqdm(jobs, total=len(todo), desc="sweeps", unit="sweep", disable=not progress):
            pass
    return [sweep_stage(sp, key, algo, config, cache, progress) for sp, key, algo in tasks]


def _full_preprocessing(descriptor: str, comparison: pd.DataFrame, config: RunConfig) -> list[str]:
    """Scalers on which every algorithm runs for ``descriptor`` (configured, or auto: the best-scoring
    first-pass configuration's scaler; ``comparison`` is sorted by score)."""
    if config.full_preprocessings:
        return list(config.full_preprocessings)
    rows = comparison[comparison["descriptor"] == descriptor]
    return [str(rows.iloc[0]["preprocessing"])] if len(rows) else []


def mixture_stage(spaces: dict[str, ReducedSpace], keys: dict[str, str], best_prep: dict[str, str],
                  pair: tuple[str, str] | None) -> tuple[dict[str, ReducedSpace], dict[str, str]]:
    """Weighted concatenations: all descriptor kinds, and the best pair (each at its best preprocessing)."""
    from .preprocess import mix_spaces

    out, out_keys = {}, {}
    names = sorted(best_prep)
    groups = []
    if len(names) >= 2:
        groups.append(tuple(names))
    if pair is not None and len(names) > 2:
        groups.append(tuple(sorted(pair)))
    for group in groups:
        parts = [spaces[f"{d}/{best_prep[d]}"] for d in group]
        mixed = mix_spaces(parts)
        out[mixed.key] = mixed
        out_keys[mixed.key] = stable_hash([keys[p.key] for p in parts])
    return out, out_keys


def run_study(case, out_dir: str | os.PathLike, config: RunConfig | None = None, progress: bool = True) -> RunResult:
    """Run the whole study on a loaded case and write every output into ``out_dir``.

    Parameters
    ----------
    case : descluster.case.Case
        The loaded, validated case (``descluster.case.load_case``).
    out_dir : path
        Results folder (created). Its ``.cache/`` subfolder holds stage results.
    config : RunConfig, optional
    progress : bool
        Show progress bars.

    Returns
    -------
    RunResult

    Outputs
    -------
    ``clusters.csv``, ``clusters_<descriptor>.csv``, ``metrics.csv``, ``study.csv``,
    ``comparison.csv``, ``agreement.csv``, ``outliers.csv``, ``cluster_facts.csv``,
    ``report.html`` (+ ``report_files/``), ``manifest.json``.
    """
    config = config or RunConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = StageCache(out_dir / ".cache")
    timer = _Timer()
    t_all = time.perf_counter()
    notes = list(case.notes)

    t0 = time.perf_counter()
    digests = _descriptor_digests(case, cache)
    spaces, keys = reduce_stage(case, config, cache, digests)
    case.release_pages()  # the raw descriptors are not read again: drop their resident pages
    timer.add("reduce", time.perf_counter() - t0)

    t0 = time.perf_counter()
    truth = _truth_columns(case)
    everywhere = [a for a in config.algorithms if a in config.every_scaler_algorithms] or [config.algorithms[0]]
    first = "kmeans" if "kmeans" in everywhere else everywhere[0]  # also clusters the mixtures
    choices: dict[str, Choice] = {}
    # every scaler with the every-scaler algorithms (default k-means) ...
    for ch in run_sweeps([(sp, keys[skey], algo) for algo in everywhere for skey, sp in spaces.items()], config,
                         cache, progress, label=f"{', '.join(everywhere)} on every scaler"):
        choices[ch.key] = ch
    first_pass = build_comparison(choices, spaces, {}, None)  # label-free: no truth passed
    # ... then every other algorithm on the chosen scaler(s) of each descriptor
    tasks = [(spaces[f"{name}/{prep}"], keys[f"{name}/{prep}"], algo)
             for name in sorted(case.descriptors) for prep in _full_preprocessing(name, first_pass, config)
             for algo in config.algorithms if algo not in everywhere]
    for ch in run_sweeps(tasks, config, cache, progress,
                         label="the other algorithms on each descriptor's chosen scaler"):
        choices[ch.key] = ch
    timer.add("cluster", time.perf_counter() - t0)

    comparison = build_comparison(choices, spaces, truth, case.identities)
    if config.mixtures and len(case.descriptors) >= 2:
        t0 = time.perf_counter()
        best_prep, pair = _mixture_inputs(comparison)
        mspaces, mkeys = mixture_stage(spaces, keys, best_prep, pair)
        spaces.update(mspaces)
        keys.update(mkeys)
        for ch in run_sweeps([(sp, mkeys[skey], first) for skey, sp in mspaces.items()], config, cache, progress,
                             label="descriptor mixtures"):
            choices[ch.key] = ch
        comparison = build_comparison(choices, spaces, truth, case.identities)
        timer.add("mixtures", time.perf_counter() - t0)

    rec_key, rec_text, comparison = recommend(comparison)
    per_descriptor = _best_per_descriptor(comparison)
    study = pd.concat([c.sweep for c in choices.values()], ignore_index=True)
    agreement = _agreement(choices, per_descriptor)

    result = RunResult(
        paths=list(case.paths), spaces=spaces, choices=choices, study=study, comparison=comparison,
        recommended=rec_key, recommendation=rec_text, per_descriptor=per_descriptor,
        labels=case.labels, imagenet=case.imagenet, agreement=agreement, notes=notes,
    )

    t0 = time.perf_counter()
    _embedding_stage(result, config, cache, keys)
    timer.add("embedding", time.perf_counter() - t0)

    if config.outliers:
        t0 = time.perf_counter()
        _outlier_stage(result, case, config, cache, keys)
        timer.add("outliers", time.perf_counter() - t0)

    t0 = time.perf_counter()
    from .interpret import cluster_facts

    result.cluster_facts = cluster_facts(result)
    timer.add("interpret", time.perf_counter() - t0)

    result.meta = _manifest(case, config, digests, timer, cache)
    result.meta["outlier_rules"] = result.outlier_rules
    if case.attribution:
        result.meta["attribution"] = case.attribution

    t0 = time.perf_counter()
    write_outputs(result, out_dir)
    from .report.build import build_report

    with stage("report"):
        build_report(result, out_dir, case.images)
    timer.add("report", time.perf_counter() - t0)
    timer.add("total", time.perf_counter() - t_all)
    result.meta["timings_s"] = timer.timings
    write_json(out_dir / "manifest.json", result.meta)
    return result


def _truth_columns(case) -> dict[str, np.ndarray]:
    """Label columns of labels.csv as arrays aligned to the case rows (for external checks only)."""
    if case.labels is None:
        return {}
    out = {}
    for col in case.labels.columns:
        if col == "path":
            continue
        out[col] = case.labels[col].to_numpy()
    return out


def _mixture_inputs(comparison: pd.DataFrame) -> tuple[dict[str, str], tuple[str, str] | None]:
    """Best preprocessing per descriptor (by the label-free score) and the best pair of descriptors."""
    single = comparison[~comparison["descriptor"].str.startswith("mix:")]
    best = single.sort_values("score", ascending=False, kind="mergesort").drop_duplicates("descriptor")
    best_prep = dict(zip(best["descriptor"], best["preprocessing"]))
    ranked = list(best["descriptor"])
    pair = (ranked[0], ranked[1]) if len(ranked) >= 2 else None
    return best_prep, pair


def _best_per_descriptor(comparison: pd.DataFrame) -> dict[str, str]:
    """Descriptor kind -> key of its best configuration by the label-free score (mixtures excluded)."""
    comparison = comparison[~comparison["descriptor"].str.startswith("mix:")]
    best = comparison.sort_values("score", ascending=False, kind="mergesort").drop_duplicates("descriptor")
    return {d: f"{d}/{p}/{a}" for d, p, a in zip(best["descriptor"], best["preprocessing"], best["algorithm"])}


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


def _embedding_stage(result: RunResult, config: RunConfig, cache: StageCache, keys: dict[str, str]) -> None:
    from .embed import embed_2d

    rec = result.choices[result.recommended]
    space = result.spaces[f"{rec.descriptor}/{rec.preprocessing}"]
    params = {"space": keys[f"{rec.descriptor}/{rec.preprocessing}"], "method": config.embedding, "seed": config.seed,
              "labels": stable_hash(np.bincount(rec.labels + 1).tolist())}

    def compute() -> Entry:
        with stage(f"2-D map ({config.embedding})", rows=space.X.shape[0]):
            Y, how = embed_2d(space.X, method=config.embedding, random_state=config.seed, labels=rec.labels)
        return Entry(arrays={"Y": np.asarray(Y, dtype=np.float32)}, meta={"how": how})

    entry = cache.get_or_compute("embedding", params, compute)
    result.embeddings[rec.key] = entry.arrays["Y"]
    result.embedding_method[rec.key] = entry.meta["how"]


def _outlier_stage(result: RunResult, case, config: RunConfig, cache: StageCache, keys: dict[str, str]) -> None:
    from .outliers.consensus import find_outliers
    from .outliers.quality import image_quality_table

    quality = None
    if config.pixel_checks and case.images is not None:
        qparams = {"paths": stable_hash(list(case.paths)), "images": case.images_fingerprint}

        def qcompute() -> Entry:
            return Entry(tables={"quality": image_quality_table(case.images, list(case.paths), progress=True)})

        quality = cache.get_or_compute("quality", qparams, qcompute).tables["quality"]
    result.quality = quality

    per_desc = {}
    for d, ckey in sorted(result.per_descriptor.items()):
        ch = result.choices[ckey]
        per_desc[d] = f"{ch.descriptor}/{ch.preprocessing}"
    params = {"spaces": [keys[s] for s in per_desc.values()], "seed": config.seed,
              "quality": None if quality is None else stable_hash(quality.to_csv(index=False)),
              "imagenet": None if case.imagenet is None else stable_hash(case.imagenet.to_csv(index=False)),
              "entry": 2}  # entry layout: meta["rules"]

    def compute() -> Entry:
        with stage("outliers", rows=len(result.paths)):
            rep = find_outliers({d: result.spaces[s].X for d, s in per_desc.items()}, list(result.paths),
                                quality=quality, imagenet=case.imagenet, random_state=config.seed, progress=True)
        return Entry(tables={"outliers": rep.table}, meta={"rules": {"flag rule": rep.flag_rule, **rep.thresholds}})

    entry = cache.get_or_compute("outliers", params, compute)
    result.outliers = entry.tables["outliers"]
    result.outlier_rules = dict(entry.meta.get("rules", {}))


def _manifest(case, config: RunConfig, digests: dict[str, str], timer: _Timer, cache: StageCache) -> dict[str, Any]:
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
            "root": str(case.root),
            "n_images": len(case.paths),
            "descriptors": {k: list(v.shape) for k, v in case.descriptors.items()},
            "descriptor_sha256": digests,
            "images_paths_sha256": stable_hash(list(case.paths)),
            "images": None if case.images is None else str(case.images.root),
            "dropped_rows": list(map(int, case.dropped_rows)),
        },
        "cache": {"hits": len(cache.hits), "misses": len(cache.misses)},
        "timings_s": timer.timings,
    }


def write_outputs(result: RunResult, out_dir: Path) -> None:
    """Write every CSV of the results folder atomically (the report is written separately)."""
    rec = result.choices[result.recommended]
    paths = pd.Series(result.paths, name="path")
    write_csv(out_dir / "clusters.csv", pd.DataFrame({"path": paths, "cluster": rec.labels}))
    for d, ckey in sorted(result.per_descriptor.items()):
        safe = d.replace(":", "_").replace("+", "_").replace("/", "_")
        write_csv(out_dir / f"clusters_{safe}.csv",
                  pd.DataFrame({"path": paths, "cluster": result.choices[ckey].labels}))
    write_csv(out_dir / "study.csv", result.study)
    metrics = result.study[result.study["algorithm"] == "kmeans"].reset_index(drop=True)
    write_csv(out_dir / "metrics.csv", metrics)
    write_csv(out_dir / "comparison.csv", result.comparison)
    if result.agreement is not None:
        write_csv(out_dir / "agreement.csv", result.agreement.reset_index(names="descriptor"))
    if result.outliers is not None:
        write_csv(out_dir / "outliers.csv", result.outliers)
    if result.cluster_facts is not None:
        write_csv(out_dir / "cluster_facts.csv", result.cluster_facts)
