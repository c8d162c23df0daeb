"""No lost work: kill -9 in the middle of the k sweep, rerun, get what an uninterrupted run gets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from descluster.cli import main

pytestmark = pytest.mark.slow

ARGS = ["--k-max", "8", "--preprocessing", "standard,l2", "--algorithms", "kmeans,gmm,ward",
        "--embedding", "pca", "--no-pixel-checks"]
TIMING = ["fit_seconds"]


def _frame(path):
    df = pd.read_csv(path)
    return df.drop(columns=[c for c in TIMING if c in df.columns])


def test_kill_during_sweep_then_resume_gives_identical_results(demo_slice_case, tmp_path, capsys):
    ref = tmp_path / "ref"
    assert main(["run", str(demo_slice_case), "--out", str(ref), *ARGS]) == 0

    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "descluster", "run", str(demo_slice_case), "--out", str(out), *ARGS],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sweep_dir = out / ".cache" / "sweep"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        done = [p for p in sweep_dir.glob("*") if not p.name.startswith(".")] if sweep_dir.exists() else []
        if len(done) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "clusters.csv").exists()  # nothing half-written
    finished_before = {p.name for p in sweep_dir.glob("*") if not p.name.startswith(".")}
    assert 3 <= len(finished_before) < 3 * 2 * 3

    capsys.readouterr()
    assert main(["run", str(demo_slice_case), "--out", str(out), *ARGS]) == 0
    said = capsys.readouterr().out
    stored = sum(1 for _ in (out / ".cache").glob("*/*/meta.json"))
    assert f"resuming: {out / '.cache'} holds" in said  # the rerun says so before it starts
    reused = int(said.split("resumed: ", 1)[1].split(" stage(s) reused", 1)[0])
    assert len(finished_before) <= reused < stored  # at least the finished sweeps; not the stages run now
    assert (out / "clusters.csv").read_bytes() == (ref / "clusters.csv").read_bytes()
    for name in ("clusters_mobilenetv2.csv", "clusters_colour.csv"):
        assert (out / name).read_bytes() == (ref / name).read_bytes()
    for name in ("study.csv", "comparison.csv"):
        pd.testing.assert_frame_equal(_frame(out / name), _frame(ref / name))
    leftovers = [p for p in out.rglob("*.tmp")]
    assert leftovers == []


def test_same_command_twice_gives_byte_identical_clusters(demo_slice_case, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        assert main(["run", str(demo_slice_case), "--out", str(d), *ARGS]) == 0
    assert (a / "clusters.csv").read_bytes() == (b / "clusters.csv").read_bytes()


def test_sweep_cache_key_follows_the_adapter_parameters():
    from descluster.cache import stable_hash
    from descluster.cluster.algorithms import KMeansAdapter
    from descluster.config import RunConfig
    from descluster.pipeline import _sweep_params
    from descluster.results import SpaceId

    config = RunConfig()
    space = SpaceId.single("d", "standard", fingerprint="f" * 20)
    before = _sweep_params(space, "kmeans", config)
    assert before["adapter"] == KMeansAdapter(random_state=config.seed).get_params()
    # a changed adapter parameter (here: more restarts) must not reuse results cached under the old one
    after = _sweep_params(space, "kmeans", RunConfig.from_dict({"cluster": {"params": {"kmeans": {"n_init": 7}}}}))
    assert after["adapter"]["n_init"] == 7 and stable_hash(after) != stable_hash(before)
    # ... nor a space with other inputs (its fingerprint), nor another selection rule
    assert stable_hash(_sweep_params(SpaceId.single("d", "standard", "e" * 20), "kmeans", config)) != stable_hash(before)
    assert stable_hash(_sweep_params(space, "kmeans", RunConfig.from_dict({"window": 2.0}))) != stable_hash(before)
