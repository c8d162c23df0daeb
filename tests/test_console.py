"""What a run says on the console and records in manifest.json; progress bars in logs.

The end-to-end test runs the real CLI in a subprocess (stderr is a pipe, not a
terminal) on a small case whose images sit in a zip with some missing and one
broken, as a user's own case would.
"""

from __future__ import annotations

import io
import json
import logging
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from descluster import progress
from descluster.cache import Entry, StageCache
from descluster.case import load_case
from descluster.console import configuration_words, describe_case, run_summary, unreadable_lines

REPO = Path(__file__).resolve().parents[1]


def make_zip_case(root: Path, n: int = 90, missing: tuple[int, ...] = (4, 40, 77), broken: int = 10) -> Path:
    """Three blobs of two descriptor kinds (one .npy, one .pickle); images in a zip, some missing, one broken."""
    rng = np.random.default_rng(0)
    group = np.arange(n) % 3
    centres = rng.normal(0, 6, size=(3, 12))
    (root / "descriptors").mkdir(parents=True)
    np.save(root / "descriptors" / "alpha.npy", (centres[group] + rng.normal(size=(n, 12))).astype(np.float32))
    with open(root / "descriptors" / "beta.pickle", "wb") as fh:
        pickle.dump((centres[group][:, :8] + rng.normal(size=(n, 8))).astype(np.float32), fh)
    paths = [f"g{g}\\img{i:03d}.png" for i, g in enumerate(group)]
    pd.DataFrame({"paths": paths}).to_csv(root / "images_paths.csv", index=False)
    with zipfile.ZipFile(root / "images.zip", "w") as z:
        for i, (p, g) in enumerate(zip(paths, group)):
            if i in missing:
                continue
            name = "top/" + p.replace("\\", "/")
            if i == broken:
                z.writestr(name, b"not a png")
                continue
            im = Image.fromarray((rng.integers(0, 85, (24, 24, 3)) + 60 * g).astype(np.uint8))
            buf = io.BytesIO()
            im.save(buf, format="PNG")
            z.writestr(name, buf.getvalue())
    return root


def test_describe_case_names_the_zip_the_missing_images_and_the_shapes(tmp_path):
    root = make_zip_case(tmp_path / "case")
    case = load_case(root)
    text = "\n".join(describe_case(case))
    assert f"zip file (read in place, not unpacked) {root / 'images.zip'}: 87 of 90 found, 3 missing" in text
    assert "g1\\img004.png" in text  # the first missing path, as written in images_paths.csv
    assert "alpha 90 × 12 float32 (alpha.npy)" in text and "beta 90 × 8 float32 (beta.pickle)" in text
    assert "are missing from" not in text  # the case's own missing-images note is not repeated


def test_unreadable_lines_do_not_count_missing_images_again():
    quality = pd.DataFrame({"path": ["a", "b", "c", "d"], "readable": [True, False, False, True],
                            "error": ["", "not found in x.zip", "cannot decode image (OSError: truncated <obj at 0x1>)", ""]})
    (line,) = unreadable_lines(quality, missing=["b"])
    assert line.startswith("images: 1 of 4 exist but could not be read") and "c (cannot decode image (OSError: truncated" in line
    assert "0x1" not in line
    assert unreadable_lines(quality.assign(readable=True)) == ["images: 4 of 4 read and checked"]


def test_configuration_words():
    row = {"descriptor": "mix:a+b", "preprocessing": "minmax+l2", "algorithm": "kmeans", "k": 9, "n_components": 40}
    assert configuration_words(row) == ("the mixture of a (min-max scaled) and b (L2-normalised), reduced by PCA to "
                                        "40 dimensions, clustered with k-means into k = 9 clusters")
    assert configuration_words({"descriptor": "osnet", "preprocessing": "standard", "algorithm": "hdbscan", "k": 3}) \
        == "osnet, standard-scaled, clustered with HDBSCAN into k = 3 clusters"


def test_run_summary_counts_match_the_tables():
    from test_report import make_demo_result

    result, _ = make_demo_result(per_class=6)
    lines = run_summary(result, "/tmp/out")
    text = "\n".join(lines)
    labels = np.asarray(result.choices[result.recommended].labels)
    sizes = [int(v.split(": ")[1].replace(",", "")) for v in text.split("largest first): ")[1].split("\n")[0].split(", ")]
    assert sum(sizes) == len(labels) and sizes == sorted(sizes, reverse=True)
    n_flagged = int(result.outliers["flagged"].sum())
    assert f"outliers: {n_flagged} of {len(labels)} images flagged" in text
    assert "/tmp/out/report.html" in text and "flagged = 1" in text
    assert "stability of these clusters" not in text  # the fixture's comparison has no stability column
    import dataclasses

    with_stability = dataclasses.replace(result, comparison=result.comparison.assign(stability=0.4242))
    assert "stability of these clusters: 0.42 (adjusted Rand index" in "\n".join(run_summary(with_stability, "/o"))


def test_progress_bar_off_a_terminal_writes_plain_periodic_lines(caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="descluster")
    assert not progress.stderr_is_terminal()  # pytest captures stderr
    for _ in progress.progress_bar(range(1000), total=1000, desc="quick", unit="img"):
        pass
    assert [r for r in caplog.records if "quick" in r.getMessage()] == []  # shorter than the interval: silent
    monkeypatch.setattr(progress, "LOG_INTERVAL_S", 0.0)
    for _ in progress.progress_bar(range(5), total=5, desc="scan", unit="img"):
        pass
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("scan:")]
    assert lines and all("\r" not in s and "\n" not in s for s in lines)
    assert lines[-1].startswith("scan: 5/5 (100%)") and sum(s.startswith("scan: 5/5") for s in lines) == 1


def test_worker_progress_collects_reports_from_a_queue():
    with progress.WorkerProgress(total=6, desc="sweeps", unit=" k") as board:
        for k in range(2, 8):
            progress.report_progress(board.queue, 1, f"a/standard kmeans: k = {k}")
    assert board.bar.n == 6
    progress.report_progress(None, 1, "ignored")  # no queue: nothing happens


def test_cache_reports_reused_stages_with_their_compute_time(tmp_path):
    first = StageCache(tmp_path)
    first.get_or_compute("reduce", {"a": 1}, lambda: Entry(meta={"x": 1}))
    first.get_or_compute("sweep", {"b": 2}, lambda: Entry(meta={"y": 2}))
    assert first.reused()["count"] == 0 and len(first.fresh) == 2
    stored = first.load("sweep", StageCache.key("sweep", {"b": 2}))
    assert stored.seconds is not None and stored.seconds >= 0

    second = StageCache(tmp_path)
    second.mark_fresh("sweep", {"b": 2})  # as if a worker process computed it during this run
    second.get_or_compute("reduce", {"a": 1}, lambda: pytest.fail("must be a hit"))
    second.get_or_compute("sweep", {"b": 2}, lambda: pytest.fail("must be a hit"))
    reused = second.reused()
    assert reused["count"] == 1 and set(reused["compute_s"]) == {"reduce"}
    assert reused["total_compute_s"] == reused["compute_s"]["reduce"] >= 0


@pytest.mark.slow
def test_run_console_and_manifest_on_a_zip_case(tmp_path):
    root = make_zip_case(tmp_path / "case")
    cmd = [sys.executable, "-m", "descluster", "run", str(root), "--out", str(tmp_path / "out"),
           "--preprocessing", "standard", "--algorithms", "kmeans", "--k-max", "5", "--embedding", "pca"]
    env = {"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    err, out = run.stderr, run.stdout
    assert f"{root / 'images.zip'}: 87 of 90 found, 3 missing" in err
    assert "images: 1 of 90 exist but could not be read" in err and "g1\\img010.png" in err
    assert "\r" not in err and "%|" not in err  # no terminal progress bars in a log
    assert out.startswith("recommended: ") and "clustered with k-means into k = " in out
    assert f"open next: {(tmp_path / 'out' / 'report.html').resolve()}" in out
    outliers = pd.read_csv(tmp_path / "out" / "outliers.csv")
    assert f"outliers: {int(outliers['flagged'].sum())} of 90 images flagged" in out
    first = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert first["cache"]["reused"] == 0 and first["cache"]["computed"] > 0
    assert first["timings_s"]["total"] > 0

    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    second = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert second["cache"]["computed"] == 0 and second["cache"]["reused"] == first["cache"]["computed"]
    assert second["cache"]["reused_without_time"] == 0
    # the reused stages took, when computed, the time the first run spent computing them
    assert set(second["cache"]["reused_compute_s"]) >= {"reduce", "sweep"}
    assert second["cache"]["reused_compute_total_s"] <= first["timings_s"]["total"]
