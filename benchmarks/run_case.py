"""Time descluster's heavy stages on a case against the straightforward library way.

Every measurement runs in its own fresh process (``multiprocessing`` spawn), so
its wall time and peak resident memory (``ru_maxrss``) belong to that stage
alone. For each stage the reference is the plain scikit-learn call on the same
rows, and the table gives ours/reference ratios and the parity values:

========  ===================================================  ==========================================
stage     ours                                                 reference (parity)
========  ===================================================  ==========================================
load      ``io.descriptors.load_descriptor`` (safe pickle ->   --
          cached float32 memmap)
scale     ``preprocess.StandardChunkScaler.fit`` (streamed)    ``StandardScaler().fit`` (mean/var equal)
pca       ``preprocess.ChunkedPCA(250)`` covariance route,     ``PCA(250, svd_solver="randomized")``
          float32 and float64 Gram                             (explained variance within 1e-3)
reduce    ``reduce_descriptor`` every kind, ``standard``,      --
          90 % variance target
kmeans    ``cluster.ALGORITHMS["kmeans"]`` and                 ``KMeans(k, n_init=3)`` best of restarts
          ``["minibatch_kmeans"]`` per k                       (inertia within 1 %)
sweep     ``cluster.sweep.sweep`` k = 2..30 with every per-k   --
          metric, k-means and MiniBatchKMeans
metrics   ``metrics.calinski_harabasz/davies_bouldin``         ``sklearn.metrics`` (values equal)
study     the whole ``descluster run`` (``--preprocessing``,   -- (the stages above are its parts measured
          default ``standard,l2``): every sweep, all metrics,  against the references)
          the 2-D map of all rows, kNN outliers, the report;
          wall time per pipeline stage (manifest.json) and
          the peak RSS of the whole process tree (psutil,
          sampled every 0.5 s, parallel workers summed)
default   the default ``descluster run`` (screened: every      ``descluster run --exhaustive`` (every
          configuration on a stratified sample, finalists on   configuration on all rows), one after the
          all rows; pixel checks when the case has images)     other: both recommendations, NMI of
                                                               clusters.csv against truth.csv ``cluster``
                                                               and the outlier AUC of outliers.csv
                                                               ``score`` against ``is_outlier``
========  ===================================================  ==========================================

``--ref-rows M`` runs the references (and a parity copy of ours) on the first
M rows only when the full reference would be too slow; the output says so.

Usage::

    python benchmarks/run_case.py /tmp/bigcase                       # everything, full size
    python benchmarks/run_case.py /tmp/small --rows 5000 --name ci-5000
    python benchmarks/run_case.py /tmp/bigcase --stages study --name veriwild-synthetic-416314-study
    python benchmarks/run_case.py /tmp/case104k --stages default --name default-104078
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
STAGES = ("load", "scale", "pca", "reduce", "kmeans", "sweep", "metrics", "study", "default")
WIDE = "efficientnet-b7"


# ------------------------------------------------------------------ child-side tasks


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _load(case: str, kind: str, rows: int | None) -> np.ndarray:
    from descluster.io.descriptors import load_descriptor

    files = {p.stem: p for p in (Path(case) / "descriptors").iterdir() if p.suffix in (".npy", ".pickle", ".pkl")}
    X = load_descriptor(files[kind])
    return X if rows is None else X[:rows]


def task_load(case, kind, rows, **_):
    out = {}
    for k in kind.split(","):
        t = time.perf_counter()
        X = _load(case, k, rows)  # converts a pickle once (safe unpickler) to the float32 cache
        out[k] = {"shape": list(X.shape), "seconds": time.perf_counter() - t}
    return out


def task_scale_ours(case, kind, rows, **_):
    from descluster.preprocess import make_scaler

    sc = make_scaler("standard").fit(_load(case, kind, rows))
    return {"mean": sc.mean_.tolist()[:8], "var_sum": float(sc.var_.sum())}


def task_scale_ref(case, kind, rows, **_):
    from sklearn.preprocessing import StandardScaler

    sc = StandardScaler().fit(_load(case, kind, rows))
    return {"mean": sc.mean_.tolist()[:8], "var_sum": float(sc.var_.sum())}


def task_pca_ours(case, kind, rows, n_components=250, gram_dtype="float32", **_):
    from descluster.preprocess import ChunkedPCA

    X = _load(case, kind, rows)
    p = ChunkedPCA(n_components=n_components, solver="covariance", gram_dtype=gram_dtype)
    Z = p.fit_transform(X)
    return {"explained": float(p.explained_variance_ratio_[:n_components].sum()),
            "ev_head": p.explained_variance_[:5].tolist(), "out_shape": list(Z.shape)}


def task_pca_ref(case, kind, rows, n_components=250, **_):
    from sklearn.decomposition import PCA

    X = np.asarray(_load(case, kind, rows))
    p = PCA(n_components=n_components, svd_solver="randomized", random_state=0)
    Z = p.fit_transform(X)
    return {"explained": float(p.explained_variance_ratio_.sum()), "ev_head": p.explained_variance_[:5].tolist(),
            "out_shape": list(Z.shape)}


def task_reduce_ours(case, kind, rows, out=None, **_):
    from descluster.preprocess import reduce_descriptor

    res = {}
    for k in kind.split(","):
        t = time.perf_counter()
        sp = reduce_descriptor(_load(case, k, rows), "standard", variance_target=0.90, max_components=256, descriptor=k)
        res[k] = {"n_components": sp.n_components, "variance": float(sp.explained_variance_ratio[: sp.n_components].sum()),
                  "seconds": time.perf_counter() - t}
        if out and k == WIDE:
            np.save(out, sp.X)
    return res


def _reduced(out: str, rows: int | None) -> np.ndarray:
    X = np.load(out, mmap_mode="r")
    return np.ascontiguousarray(X if rows is None else X[:rows])


def task_kmeans_ours(out, ks, ref_rows=None, algorithm="kmeans", **_):
    from descluster.cluster.algorithms import make_algorithm

    X = _reduced(out, ref_rows)
    res = {}
    for k in ks:
        a = make_algorithm(algorithm, random_state=0, n_clusters=k)
        labels = a.fit_predict(X)
        res[str(k)] = {"inertia": float(a.inertia_), "n_iter": int(a.n_iter_)}
        if k == ks[-1] and ref_rows is None:
            np.save(out.replace(".npy", ".labels.npy"), labels)
    return res


def task_sweep_ours(out, algorithm="kmeans", **_):
    """One full k = 2..30 sweep as the study runs it: every fit plus CH, DB, inertia, silhouette, stability."""
    from descluster.cluster.sweep import sweep

    X = _reduced(out, None)
    res = sweep(X, algorithm, ks=range(2, 31), random_state=0)
    t = res.table
    return {"fit_seconds": float(t["fit_seconds"].sum()), "k_values": int(len(t)),
            "silhouette_sample_size": int(t["silhouette_sample_size"].max())}


def task_kmeans_ref(out, ks, ref_rows=None, **_):
    from sklearn.cluster import KMeans

    X = _reduced(out, ref_rows)
    res = {}
    for k in ks:
        km = KMeans(k, n_init=3, random_state=0).fit(X)
        res[str(k)] = {"inertia": float(km.inertia_), "n_iter": int(km.n_iter_)}
    return res


def task_metrics_ours(out, **_):
    from descluster import metrics

    X = _reduced(out, None)
    y = np.load(out.replace(".npy", ".labels.npy"))
    return {"calinski_harabasz": float(metrics.calinski_harabasz(X, y)), "davies_bouldin": float(metrics.davies_bouldin(X, y))}


def task_metrics_ref(out, **_):
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score

    X = _reduced(out, None)
    y = np.load(out.replace(".npy", ".labels.npy"))
    return {"calinski_harabasz": float(calinski_harabasz_score(X, y)), "davies_bouldin": float(davies_bouldin_score(X, y))}


def _child(name: str, kwargs: dict) -> dict:
    # import the libraries before the clock starts: the stage time is the work, not the imports
    import sklearn.cluster, sklearn.decomposition, sklearn.metrics, sklearn.preprocessing  # noqa: F401, E401
    import descluster.cluster.algorithms, descluster.metrics, descluster.preprocess  # noqa: F401, E401

    t, c = time.perf_counter(), time.process_time()
    values = globals()[name](**kwargs)
    return {"seconds": time.perf_counter() - t, "cpu_seconds": time.process_time() - c, "peak_rss_mb": _peak_mb(),
            "values": values}


# ------------------------------------------------------------------ parent side


def measure(name: str, **kwargs) -> dict:
    """Run ``name`` in a fresh spawned process; return its seconds, peak RSS (MB) and values."""
    with cf.ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as ex:
        try:
            return ex.submit(_child, name, kwargs).result()
        except Exception as exc:  # keep benchmarking the other stages; the error goes in the report
            return {"seconds": float("nan"), "cpu_seconds": float("nan"), "peak_rss_mb": float("nan"), "values": {}, "error": f"{type(exc).__name__}: {exc}"}


def run_study(case: Path, out: Path, preprocessings: str, rows: int | None, extra: list[str] | None = None) -> dict:
    """Run ``descluster run`` in a child process; return wall time, peak tree RSS and stage timings.

    The peak is the largest sum of proportional set size (PSS: private pages plus each
    shared page divided by the processes sharing it, so memory maps shared with the
    joblib workers count once) over the child and all its descendants, sampled every
    0.5 s with psutil (short spikes between samples can be missed). The largest sum of
    plain RSS (which counts shared pages once per process) and ``ru_maxrss`` of the
    largest single process are reported beside it.
    """
    import json
    import subprocess

    import psutil

    if rows:
        raise SystemExit("--rows with the study stage: make a smaller case with make_case.py --rows N instead")
    cmd = [sys.executable, "-m", "descluster", "run", str(case), "--out", str(out),
           *(["--preprocessing", preprocessings] if preprocessings else []), *(extra or [])]
    t0 = time.perf_counter()
    log = open(out.parent / f"{out.name}.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    ps = psutil.Process(proc.pid)
    peak = peak_rss = 0
    while proc.poll() is None:
        pss = rss = 0
        for p in [ps, *ps.children(recursive=True)]:
            try:
                info = p.memory_full_info()
                pss, rss = pss + info.pss, rss + info.rss
            except psutil.Error:  # a worker that just ended
                pass
        peak, peak_rss = max(peak, pss), max(peak_rss, rss)
        time.sleep(0.5)
    wall = time.perf_counter() - t0
    log.close()
    res = {"seconds": wall, "cpu_seconds": None, "peak_rss_mb": peak / 2**20, "peak_rss_sum_mb": peak_rss / 2**20,
           "max_single_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
           "returncode": proc.returncode, "command": " ".join(cmd[1:]), "values": {}}
    if proc.returncode != 0:
        res["error"] = f"descluster run exited {proc.returncode}; see {log.name}"
        return res
    manifest = json.loads((out / "manifest.json").read_text())
    res["values"] = {"timings_s": manifest.get("timings_s", {}), "n_images": manifest["case"]["n_images"],
                     "descriptors": manifest["case"]["descriptors"]}
    import pandas as pd

    study = pd.read_csv(out / "study.csv")
    per = study.groupby(["descriptor", "preprocessing", "algorithm"])["fit_seconds"].agg(["sum", "count"])
    res["values"]["sweeps"] = [{"space": f"{d}/{p}", "algorithm": a, "fit_seconds": round(float(r["sum"]), 2),
                                "k_values": int(r["count"])} for (d, p, a), r in per.iterrows()]
    comp = pd.read_csv(out / "comparison.csv")
    rec = comp[comp["recommended"].astype(bool)] if "recommended" in comp else comp.head(1)
    res["values"]["recommended"] = rec.iloc[0][["descriptor", "preprocessing", "algorithm", "k"]].astype(str).to_dict()
    return res


def truth_scores(case: Path, out: Path) -> dict:
    """NMI of ``clusters.csv`` against ``truth.csv``'s planted ``cluster`` and the ROC AUC of ``outliers.csv``'s
    ``score`` against ``is_outlier`` (rows matched by path); empty when the case has no ``truth.csv``."""
    import pandas as pd
    from sklearn.metrics import normalized_mutual_info_score, roc_auc_score

    if not (case / "truth.csv").is_file():
        return {}
    truth = pd.read_csv(case / "truth.csv").set_index("path")
    cl = pd.read_csv(out / "clusters.csv")
    res = {"nmi_cluster": float(normalized_mutual_info_score(truth.loc[cl["path"], "cluster"], cl["cluster"]))}
    if (out / "outliers.csv").is_file():
        ol = pd.read_csv(out / "outliers.csv", usecols=["path", "score", "flagged"])
        y = truth.loc[ol["path"], "is_outlier"].astype(bool).to_numpy()
        res["outlier_auc"] = float(roc_auc_score(y, ol["score"]))
        res["flagged"] = int(ol["flagged"].sum())
    return res


def run_default(case: Path, work: Path) -> list[dict]:
    """The ``default`` stage: the default run, then ``--exhaustive``, on the same case; one row each."""
    import json

    out = []
    for name, extra in (("default", []), ("exhaustive", ["--exhaustive"])):
        la = os.getloadavg()
        o = run_study(case, work / name, None, None, extra)
        o["values"]["load_avg_start"], o["values"]["load_avg_end"] = la, os.getloadavg()
        if "error" not in o:
            o["values"]["truth"] = truth_scores(case, work / name)
            o["values"]["screen"] = {k: v for k, v in json.loads((work / name / "manifest.json").read_text())
                                     .get("screen", {}).items() if k != "intervals"}
        out.append(o)
    return out


def _row(stage, ours, ref, n, parity, note=""):
    r = {"stage": stage, "rows": n, "ours_s": ours["seconds"], "ours_cpu_s": ours.get("cpu_seconds"),
         "ours_peak_mb": ours["peak_rss_mb"],
         "ours_rows_per_s": n / ours["seconds"] if ours["seconds"] else None, "ours": ours["values"],
         "parity": parity, "note": note}
    if ours.get("error"):
        r["ours_error"] = ours["error"]
    if ref is not None:
        r.update({"ref_s": ref["seconds"], "ref_cpu_s": ref.get("cpu_seconds"), "ref_peak_mb": ref["peak_rss_mb"],
                  "ref": ref["values"],
                  "ratio_time": ours["seconds"] / ref["seconds"] if ref["seconds"] else None,
                  "ratio_peak": ours["peak_rss_mb"] / ref["peak_rss_mb"] if ref["peak_rss_mb"] else None})
        if ref.get("error"):
            r["ref_error"] = ref["error"]
    return r


def run(case: Path, rows: int | None, stages: list[str], reference: bool, ref_rows: int | None,
        ks: list[int], work: Path, gram_dtypes: tuple[str, ...] = ("float32", "float64"),
        on_row=None, study_preprocessing: str = "standard,l2", study_args: str = "") -> list[dict]:
    """Run the stages; return one result row per measurement (``on_row(rows_so_far)`` after each)."""
    from descluster.io.descriptors import load_descriptor

    kinds = sorted(p.stem for p in (case / "descriptors").iterdir() if p.suffix in (".npy", ".pickle", ".pkl"))
    wide = WIDE if WIDE in kinds else kinds[0]
    base = dict(case=str(case), kind=wide, rows=rows)
    out = str(work / "reduced.npy")
    rows_out = []

    def add(row: dict) -> None:
        rows_out.append(row)
        if on_row is not None:
            on_row(rows_out)
    say = lambda m: print(m, flush=True)  # noqa: E731
    if "load" in stages:  # first: a pickle is converted once to the float32 cache, later stages read a memmap
        say("stage load")
        o = measure("task_load", **dict(base, kind=",".join(kinds)))
        n0 = o["values"].get(wide, {}).get("shape", [0])[0]
        add(_row("load", o, None, n0, None, "safe unpickle + float32 cache (first run), else memmap"))
    for k in kinds:
        load_descriptor(next((case / "descriptors").glob(f"{k}.*")))
    n, d = load_descriptor(next((case / "descriptors").glob(f"{wide}.*"))).shape
    n = min(n, rows) if rows else n
    if "scale" in stages:
        say("stage scale")
        o = measure("task_scale_ours", **base)
        r = measure("task_scale_ref", **base) if reference else None
        par = None if r is None or r.get("error") or o.get("error") else {
            "var_sum_rel_diff": abs(o["values"]["var_sum"] / r["values"]["var_sum"] - 1)}
        add(_row("scale standard fit", o, r, n, par))
    if "pca" in stages:
        nc = min(250, n, d)
        for gd in gram_dtypes:
            say(f"stage pca ({gd} Gram)")
            o = measure("task_pca_ours", **base, n_components=nc, gram_dtype=gd)
            r = None
            if reference and gd == gram_dtypes[0]:
                rr = dict(base, rows=min(n, ref_rows) if ref_rows else rows)
                r = measure("task_pca_ref", **rr, n_components=nc)
            par = None if r is None or r.get("error") or o.get("error") else {
                "explained_ours": o["values"]["explained"], "explained_ref": r["values"]["explained"],
                "explained_diff": o["values"]["explained"] - r["values"]["explained"]}
            note = f"{wide} -> {nc} components, gram {gd}"
            if r is not None and ref_rows and ref_rows < n:
                note += f"; reference on first {ref_rows:,} rows only"
            add(_row(f"pca {gd}", o, r, n, par, note))
    if "reduce" in stages or "kmeans" in stages or "metrics" in stages or "sweep" in stages:
        say("stage reduce")
        o = measure("task_reduce_ours", **dict(base, kind=",".join(kinds)), out=out)
        add(_row("reduce (standard, 90%)", o, None, n, None, "all kinds: " + ", ".join(kinds)))
    if "kmeans" in stages and Path(out).exists():
        for algo in ("kmeans", "minibatch_kmeans"):
            say(f"stage {algo}")
            o = measure("task_kmeans_ours", out=out, ks=ks, algorithm=algo)
            r = p = None
            note = f"k in {ks} on the reduced {wide}"
            if reference and algo == "kmeans":
                sub = ref_rows if ref_rows and ref_rows < n else None
                r = measure("task_kmeans_ref", out=out, ks=ks, ref_rows=sub)
                po = measure("task_kmeans_ours", out=out, ks=ks, ref_rows=sub, algorithm=algo) if sub else o
                if sub:
                    note += f"; reference (and the parity copy of ours) on first {sub:,} rows only"
                if not (r.get("error") or po.get("error")):
                    p = {k: po["values"][k]["inertia"] / r["values"][k]["inertia"] for k in r["values"]}
                    p = {"inertia_ratio": p, "within_1pct": all(v <= 1.01 for v in p.values())}
            add(_row(algo, o, r, n, p, note))
    if "sweep" in stages and Path(out).exists():
        for algo in ("kmeans", "minibatch_kmeans"):
            say(f"stage sweep {algo}")
            o = measure("task_sweep_ours", out=out, algorithm=algo)
            add(_row(f"sweep {algo} k=2..30", o, None, n, None,
                     f"on the reduced {wide}, with every per-k metric (fits alone: {o['values'].get('fit_seconds', float('nan')):.1f} s)"))
    if "metrics" in stages and Path(out.replace(".npy", ".labels.npy")).exists():
        say("stage metrics")
        o = measure("task_metrics_ours", out=out)
        r = measure("task_metrics_ref", out=out) if reference else None
        p = None if r is None or r.get("error") or o.get("error") else {
            m: o["values"][m] / r["values"][m] - 1 for m in ("calinski_harabasz", "davies_bouldin")}
        add(_row("metrics CH+DB", o, r, n, p, f"labels of kmeans k={ks[-1]}"))
    if "study" in stages:
        say("stage study (descluster run, all rows)")
        o = run_study(case, work / "study", study_preprocessing, rows, study_args.split())
        add(_row("study (descluster run)", o, None, n, None,
                 f"--preprocessing {study_preprocessing} {study_args}".strip()
                 + f"; peak memory = PSS of the process tree (plain RSS sum {o.get('peak_rss_sum_mb', float('nan')):,.0f} MB)"))
        for name, sec in o["values"].get("timings_s", {}).items():
            if name != "total":
                add(_row(f"  study: {name}", {"seconds": sec, "peak_rss_mb": float("nan"), "values": {}}, None, n,
                         None, "from manifest.json"))
    if "default" in stages:
        say("stage default (default descluster run, then --exhaustive, all rows)")
        both = run_default(case, work)
        for name, o in zip(("default", "exhaustive"), both):
            add(_row(f"{name} (descluster run{' --exhaustive' if name == 'exhaustive' else ''})", o, None, n, None,
                     f"recommended {o['values'].get('recommended')}; truth {o['values'].get('truth')}; "
                     f"load {o['values'].get('load_avg_start')}"))
        d, e = (o["values"] for o in both)
        if d.get("recommended") and e.get("recommended"):
            add(_row("default vs exhaustive", {"seconds": both[0]["seconds"] / both[1]["seconds"],
                                               "peak_rss_mb": float("nan"), "values": {}}, None, n,
                     {"same_recommendation": d["recommended"] == e["recommended"],
                      **{f"{m}_diff": d["truth"].get(m, float("nan")) - e["truth"].get(m, float("nan"))
                         for m in ("nmi_cluster", "outlier_auc")}}, "ours_s here = wall time ratio default/exhaustive"))
    return rows_out


def print_table(results: list[dict]) -> None:
    """Print one line per measurement (rich table when available)."""
    from rich.console import Console
    from rich.table import Table

    t = Table(title="descluster benchmark")
    for c in ("stage", "rows", "ours s", "ours cpu s", "ours MB", "rows/s", "ref s", "ref cpu s", "ref MB",
              "time ours/ref", "parity", "note"):
        t.add_column(c)
    f = lambda v, fmt: "-" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, fmt)  # noqa: E731
    for r in results:
        par = r.get("parity")
        par_s = "-" if par is None else ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in par.items() if not isinstance(v, dict))
        if par and "inertia_ratio" in par:
            par_s = "inertia ours/ref " + ", ".join(f"k={k}: {v:.4f}" for k, v in par["inertia_ratio"].items()) + f" ({par_s})"
        err = r.get("ours_error") or r.get("ref_error")
        t.add_row(r["stage"], f"{r['rows']:,}", f(r["ours_s"], ".2f"), f(r.get("ours_cpu_s"), ".1f"),
                  f(r["ours_peak_mb"], ".0f"), f(r["ours_rows_per_s"], ",.0f"), f(r.get("ref_s"), ".2f"),
                  f(r.get("ref_cpu_s"), ".1f"), f(r.get("ref_peak_mb"), ".0f"),
                  f(r.get("ratio_time"), ".2f"), par_s, (r["note"] + (f" ERROR {err}" if err else "")))
    Console(width=220).print(t)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("case", type=Path)
    ap.add_argument("--rows", type=int, help="use only the first N rows")
    ap.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    ap.add_argument("--reference", action=argparse.BooleanOptionalAction, default=True,
                    help="also run the scikit-learn references (default on)")
    ap.add_argument("--ref-rows", type=int, help="run the references on the first M rows only")
    ap.add_argument("--ks", default="20,60", help="k values for the k-means stages")
    ap.add_argument("--gram-dtypes", default="float32,float64", help="Gram precisions timed in the pca stage")
    ap.add_argument("--study-preprocessing", default="standard,l2", help="scalers of the study stage")
    ap.add_argument("--study-args", default="", help="further `descluster run` options of the study stage, one string")
    ap.add_argument("--keep", type=Path, help="keep the work folder (reduced space, study results) here")
    ap.add_argument("--name", help="results/<name>.json (default: <case folder>-<rows or all>)")
    ap.add_argument("--results", type=Path, default=RESULTS)
    a = ap.parse_args(argv)
    stages = [s.strip() for s in a.stages.split(",") if s.strip()]
    bad = [s for s in stages if s not in STAGES]
    if bad:
        ap.error(f"--stages {bad} unknown; valid: {','.join(STAGES)}")
    if not (a.case / "descriptors").is_dir():
        ap.error(f"{a.case} has no descriptors/ folder (make one with benchmarks/make_case.py)")
    ks = [int(k) for k in a.ks.split(",")]
    from machine import machine_facts

    facts = machine_facts()
    print(f"BLAS: {facts['blas']}", flush=True)
    t0 = time.perf_counter()
    from descluster.io.atomic import write_json

    def save(results: list[dict], done: bool = False) -> Path:
        """Write the JSON (also after every stage, so an interrupted run keeps what it measured)."""
        n = results[0]["rows"] if results else 0
        name = a.name or f"{a.case.resolve().name}-{a.rows or 'all'}"
        facts["load_avg_end"] = os.getloadavg()
        return write_json(a.results / f"{name}.json", {
            "case": str(a.case), "rows": n, "stages": stages, "complete": done, "reference": a.reference,
            "ref_rows": a.ref_rows, "ks": ks, "total_seconds": time.perf_counter() - t0, "machine": facts,
            "results": results})

    with tempfile.TemporaryDirectory(prefix="descluster-bench-") as tmp:
        work = a.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        results = run(a.case, a.rows, stages, a.reference, a.ref_rows, ks, work,
                      tuple(x.strip() for x in a.gram_dtypes.split(",")), on_row=save,
                      study_preprocessing=a.study_preprocessing, study_args=a.study_args)
    print_table(results)
    path = save(results, done=True)
    print(f"wrote {path}")
    errors = [r["stage"] for r in results if "ours_error" in r or "ref_error" in r]
    if errors:
        print(f"stages with errors: {errors}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
