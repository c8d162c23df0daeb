"""The benchmark scripts run end to end on a small case and write what they promise."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import bench_script

from descluster.case import load_case

from conftest import BENCHMARKS as BENCH



@pytest.fixture(scope="module")
def small_case(tmp_path_factory):
    out = tmp_path_factory.mktemp("case")
    kinds = "efficientnet-b7=96,osnet=32"
    assert bench_script("make_case").main([str(out), "--rows", "5000", "--with-images", "--kinds", kinds, "--seed", "3"]) == 0
    return out


def test_make_case_layout_and_truth(small_case):
    case = load_case(small_case)
    assert case.n_images == 5000 and not case.missing_images
    assert {k: v.shape for k, v in case.descriptors.items()} == {"efficientnet-b7": (5000, 96), "osnet": (5000, 32)}
    X = np.asarray(case.descriptors["efficientnet-b7"])
    assert X.dtype == np.float32 and X.min() == 0.0  # ReLU-like, non-negative
    paths = pd.read_csv(small_case / "images_paths.csv")["paths"]
    assert paths[0] == "veriwild\\1\\00001\\000001.jpg"
    assert paths.str.fullmatch(r"veriwild\\\d+\\\d{5}\\\d{6}\.jpg").all()
    truth = pd.read_csv(small_case / "truth.csv")
    assert truth.is_outlier.sum() == 25  # 0.5 % of 5000
    dup = truth[truth.duplicate_of >= 0]
    assert 10 <= (truth.duplicate_group >= 0).sum() <= 30
    # planted near-duplicates are much closer to their source than typical neighbours
    d_dup = np.linalg.norm(X[dup.index] - X[dup.duplicate_of], axis=1)
    d_any = np.linalg.norm(X[dup.index] - X[(dup.index + 2500) % 5000], axis=1)
    assert np.median(d_dup) < 0.2 * np.median(d_any)
    with zipfile.ZipFile(small_case / "row_data" / "veriwild.zip") as zf:
        info = zf.infolist()
        assert len(info) == 5000 and all(i.compress_type == zipfile.ZIP_STORED for i in info)
        digest = {i.filename: hashlib.sha1(zf.read(i)).hexdigest() for i in info}
    # only the planted duplicates share file bytes (what the pixel checks group as exact duplicates);
    # rows of one vehicle id, of one cluster, and the planted outliers are distinct files
    truth["file"] = truth.path.str.replace("\\", "/", regex=False)
    by_bytes = pd.Series(list(digest), index=list(digest.values())).groupby(level=0).agg(frozenset)
    planted = truth[truth.duplicate_group >= 0].groupby("duplicate_group").file.agg(frozenset)
    assert {g for g in by_bytes if len(g) > 1} == set(planted) and len(planted) >= 5


def test_make_case_is_deterministic(tmp_path, small_case):
    bench_script("make_case").main([str(tmp_path), "--rows", "5000", "--kinds", "efficientnet-b7=96,osnet=32",
                               "--seed", "3", "--format", "npy"])
    a = load_case(small_case).descriptors["osnet"]
    b = np.load(tmp_path / "descriptors" / "osnet.npy")
    np.testing.assert_array_equal(np.asarray(a), b)


@pytest.mark.slow
def test_run_case_parity(small_case, tmp_path):
    # a subprocess, as a user runs it: the stages spawn workers that import the script by path
    cmd = [sys.executable, str(BENCH / "run_case.py"), str(small_case), "--rows", "5000",
           "--stages", "pca,kmeans,metrics", "--ks", "4,8", "--gram-dtypes", "float32", "--name", "t", "--results", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads((tmp_path / "t.json").read_text())
    assert res["complete"] and res["machine"]["cpu_count"] >= 1 and res["machine"]["blas"]
    by = {r["stage"]: r for r in res["results"]}
    assert not any("ours_error" in r or "ref_error" in r for r in res["results"])
    pca = by["pca float32"]
    assert pca["ours"]["out_shape"] == [5000, 96] and abs(pca["parity"]["explained_diff"]) < 1e-3
    assert by["kmeans"]["parity"]["within_1pct"]
    for value in by["metrics CH+DB"]["parity"].values():
        assert abs(value) < 1e-4
    assert by["pca float32"]["ours_peak_mb"] > 0 and by["pca float32"]["ours_s"] > 0


@pytest.mark.slow
def test_run_case_study_stage(small_case, tmp_path):
    # the same code as the full-scale study benchmark, on the 5,000-row case with a short sweep
    cmd = [sys.executable, str(BENCH / "run_case.py"), str(small_case), "--stages", "study", "--name", "s",
           "--results", str(tmp_path), "--keep", str(tmp_path / "work"),
           "--study-args", "--algorithms kmeans,minibatch_kmeans,hdbscan --every-scaler kmeans,minibatch_kmeans "
                           "--k-max 6 --no-mixtures"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads((tmp_path / "s.json").read_text())
    by = {r["stage"].strip(): r for r in res["results"]}
    study = by["study (descluster run)"]
    assert study["ours_peak_mb"] > 50 and study["ours"]["n_images"] == 5000
    timings = study["ours"]["timings_s"]
    assert {"reduce", "cluster", "embedding", "outliers", "report", "total"} <= set(timings)
    assert study["ours_s"] >= timings["total"] > 0  # the child's wall time includes loading
    assert by["study: cluster"]["ours_s"] == timings["cluster"]
    sweeps = {(s["space"], s["algorithm"]): s for s in study["ours"]["sweeps"]}
    # both scalers of both kinds with k-means and MiniBatchKMeans (--every-scaler), k = 2..6;
    # HDBSCAN (k-free, one row) only on each kind's chosen scaler
    spaces = {f"{d}/{p}" for d in ("efficientnet-b7", "osnet") for p in ("standard", "l2")}
    assert {(sp, a) for sp in spaces for a in ("kmeans", "minibatch_kmeans")} <= set(sweeps)
    assert all(s["k_values"] == 5 for (sp, a), s in sweeps.items() if a != "hdbscan")
    assert sorted(sp.split("/")[0] for sp, a in sweeps if a == "hdbscan") == ["efficientnet-b7", "osnet"]
    rec = study["ours"]["recommended"]
    assert rec["algorithm"] in {"kmeans", "minibatch_kmeans", "hdbscan"}
    clusters = pd.read_csv(tmp_path / "work" / "study" / "clusters.csv")
    assert len(clusters) == 5000 and list(clusters.columns) == ["path", "cluster"]


def test_app_bench_runs_the_real_server(tmp_path):
    out = tmp_path / "app_bench.json"
    mod = bench_script("app_bench")
    out.write_text(json.dumps({"runs": [{"run_id": "older", "rows": 2000, "answers": 1}]}))
    assert mod.main(["--rows", "2000", "--dims", "8", "--answers", "3", "--out", str(out), "--label", "ci"]) == 0
    older, got = json.loads(out.read_text())["runs"]
    assert older == {"run_id": "older", "rows": 2000, "answers": 1}  # a new run at the same size keeps the old one
    assert got["rows"] == 2000 and got["answers"] == 3 and got["decisions"] >= 3 and got["label"] == "ci"
    assert got["first_page_s"] > 0 and got["rss_mb"] > 0 and got["answer_next_ms_p95"] >= got["answer_next_ms_median"]
    assert got["git_commit"] == mod.git_facts()["git_commit"] and got["run_id"].endswith("-2000")
    assert got["run_id"].startswith(got["timestamp"]) and len(got["load_average"]) == 3


def test_app_bench_keeps_every_run(tmp_path):
    """Runs are appended, never keyed by their row count: the older rows-keyed file is read as runs."""
    mod = bench_script("app_bench")
    dest = tmp_path / "app_bench.json"
    dest.write_text(json.dumps({"4800": {"rows": 4800, "url_s": 3.5}, "416314": {"rows": 416314, "url_s": 0.06}}))
    runs = mod.read_runs(dest)
    assert [(r["run_id"], r["rows"], r["url_s"], r["timestamp"]) for r in runs] == [
        ("rows-4800", 4800, 3.5, None), ("rows-416314", 416314, 0.06, None)]
    mod.append_run(dest, {"run_id": "t-abc-4800", "rows": 4800, "url_s": 1.0})
    mod.append_run(dest, {"run_id": "t-abc-4800", "rows": 4800, "url_s": 2.0})
    stored = json.loads(dest.read_text())["runs"]
    assert [(r["run_id"], r["url_s"]) for r in stored] == [
        ("rows-4800", 3.5), ("rows-416314", 0.06), ("t-abc-4800", 1.0), ("t-abc-4800-2", 2.0)]
    table = mod.runs_table(stored).splitlines()
    assert len(table) == 5 and table[0].startswith("timestamp") and "416314" in table[2]
    dest.write_text("[1, 2]")
    with pytest.raises(ValueError, match="neither"):
        mod.append_run(dest, {"run_id": "x", "rows": 1})
    assert dest.read_text() == "[1, 2]"


def test_machine_facts_name_the_blas_that_runs():
    import os

    facts = bench_script("machine").machine_facts()
    assert facts["cpu_count"] == os.cpu_count() and facts["ram_gb"] > 0 and len(facts["load_avg_start"]) == 3
    assert any(lib["user_api"] == "blas" and lib["num_threads"] >= 1 for lib in facts["blas"])
    # faiss-cpu's own OpenBLAS is loaded before the libraries are listed
    assert facts["faiss"] and any("faiss" in lib.get("filepath", "") for lib in facts["blas"])
    json.dumps(facts)  # JSON-able as written into every result file
