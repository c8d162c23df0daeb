"""A corpus of hostile and unlucky inputs, each run through the real CLI in a subprocess.

Every input must end either in exit 0 with sane outputs (one row per image, input order, paths
unchanged) or in exit 2 with one ``descluster: error:`` message naming the file or parameter;
never in a Python traceback (issue 11).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from descluster.io.tables import read_csv_table

FAST = ["--preprocessing", "standard", "--algorithms", "kmeans", "--no-mixtures", "--embedding", "pca"]


def cli(*args, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "descluster", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env)


def assert_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 2, no traceback, one ``descluster: error:`` line that contains every needle."""
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    errors = [line for line in proc.stderr.splitlines() if line.startswith("descluster: error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def assert_ok(proc: subprocess.CompletedProcess, out: Path, paths: list[str]) -> pd.DataFrame:
    """Exit 0, no traceback, clusters.csv and outliers.csv with one row per image in input order."""
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode == 0, proc.stderr[-3000:]
    clusters = read_csv_table(out / "clusters.csv", dtype={"path": str}, keep_default_na=False)
    assert clusters["path"].tolist() == paths
    if (out / "outliers.csv").is_file():
        outliers = read_csv_table(out / "outliers.csv", dtype={"path": str}, keep_default_na=False)
        assert outliers["path"].tolist() == paths
    return clusters


def make_case(root: Path, n: int, kinds=(("a", 16), ("b", 8)), blobs: int = 0, images: bool = True,
              paths: list[str] | None = None, seed: int = 0, separation: float = 10.0) -> list[str]:
    """A case of ``n`` rows: Gaussian descriptors (optionally ``blobs`` well-separated groups) and images."""
    rng = np.random.default_rng(seed)
    (root / "descriptors").mkdir(parents=True, exist_ok=True)
    centres = rng.normal(size=(max(blobs, 1), 64)) * separation
    group = np.arange(n) % max(blobs, 1)
    for name, d in kinds:
        X = rng.normal(size=(n, d)).astype(np.float32)
        if blobs:
            X += centres[group][:, :d]
        np.save(root / "descriptors" / f"{name}.npy", X)
    paths = paths or [f"img/{i:04d}.png" for i in range(n)]
    pd.DataFrame({"paths": paths}).to_csv(root / "images_paths.csv", index=False)
    if images:
        for i, p in enumerate(paths):
            f = root / p
            f.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(f, format="PNG")
    return paths


# -- 2. small collections ---------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 5, 12, 19])
def test_too_few_images_is_a_clear_refusal(tmp_path, n):
    make_case(tmp_path / "case", n)
    proc = cli("run", tmp_path / "case", "--out", tmp_path / "out")
    assert_error(proc, f"{n} image(s)", "at least 20", str(tmp_path / "case"))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").glob("*.csv"))


@pytest.mark.slow
def test_smallest_supported_case_runs_the_whole_default_study(tmp_path):
    """20 images, every default stage (5 scalers, 6 algorithms, mixtures, t-SNE, outliers, pixels)."""
    paths = make_case(tmp_path / "case", 20)
    proc = cli("run", tmp_path / "case", "--out", tmp_path / "out")
    clusters = assert_ok(proc, tmp_path / "out", paths)
    assert clusters["cluster"].nunique() == 2  # 20 rows support k = 2 only
    assert (tmp_path / "out" / "report.html").is_file()


def test_all_noise_hdbscan_is_a_clear_refusal_and_keeps_the_study(tmp_path):
    make_case(tmp_path / "case", 20, kinds=(("a", 4),))
    proc = cli("run", tmp_path / "case", "--out", tmp_path / "out", "--algorithms", "hdbscan",
               "--preprocessing", "standard", "--no-mixtures")
    assert_error(proc, "no configuration", "study.csv")
    study = pd.read_csv(tmp_path / "out" / "study.csv")
    assert set(study["algorithm"]) == {"hdbscan"} and len(study) >= 1


# -- 3. one-component spaces -------------------------------------------------------------------------

@pytest.mark.parametrize("embedding", [
    "tsne", "pca",
    pytest.param("umap", marks=pytest.mark.skipif(importlib.util.find_spec("umap") is None,
                                                  reason="umap-learn not installed: run refuses --embedding umap"))])
def test_two_separated_groups_give_a_one_component_space_and_a_map(tmp_path, embedding):
    paths = make_case(tmp_path / "case", 60, kinds=(("a", 16),), blobs=2, images=False)
    proc = cli("run", tmp_path / "case", "--out", tmp_path / "out", "--preprocessing", "none,standard",
               "--algorithms", "kmeans", "--embedding", embedding)
    clusters = assert_ok(proc, tmp_path / "out", paths)
    comparison = pd.read_csv(tmp_path / "out" / "comparison.csv")
    assert (comparison["n_components"] == 1).any()  # the space that used to crash the map
    truth = np.arange(60) % 2
    assert pd.crosstab(clusters["cluster"], truth).gt(0).sum(axis=1).eq(1).all()  # the two groups are kept apart
    assert clusters["cluster"].nunique() == 2


def test_one_column_descriptor(tmp_path):
    paths = make_case(tmp_path / "case", 40, kinds=(("only", 1),), blobs=2, images=False)
    proc = cli("run", tmp_path / "case", "--out", tmp_path / "out", *FAST[:4], "--no-mixtures")
    assert_ok(proc, tmp_path / "out", paths)


# -- 4. the k range follows the data ----------------------------------------------------------------

def test_huge_k_max_is_capped_with_the_numbers(tmp_path):
    paths = make_case(tmp_path / "case", 60, images=False)
    proc = cli("run", tmp_path / "case", "--out", tmp_path / "out", *FAST, "--k-max", "100000", timeout=300)
    assert_ok(proc, tmp_path / "out", paths)
    assert "k_max = 100000 (--k-max, or its default) capped to 6" in proc.stderr and "60 images" in proc.stderr
    study = pd.read_csv(tmp_path / "out" / "study.csv")
    assert study["k"].max() <= 6


def test_three_blobs_in_forty_rows_choose_three(tmp_path):
    paths = make_case(tmp_path / "case", 40, kinds=(("a", 16),), blobs=3, images=False)
    proc = cli("run", tmp_path / "case", "--out", tmp_path / "out", *FAST)
    clusters = assert_ok(proc, tmp_path / "out", paths)
    assert clusters["cluster"].nunique() == 3


def test_k_min_above_what_the_data_supports_is_refused(tmp_path):
    make_case(tmp_path / "case", 30, images=False)
    assert_error(cli("run", tmp_path / "case", "--out", tmp_path / "out", "--k-min", "5"), "--k-min 5", "at most k = 3")


# -- 5. symbolic links never lead outside the image root ------------------------------------------

def test_symlinks_out_of_the_image_root_are_not_read(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    Image.fromarray(np.full((24, 24, 3), 255, np.uint8)).save(outside / "secret.png")
    paths = make_case(tmp_path / "case", 40)
    (tmp_path / "case" / paths[0]).unlink()
    (tmp_path / "case" / paths[0]).symlink_to("/etc/passwd")
    (tmp_path / "case" / paths[1]).unlink()
    (tmp_path / "case" / paths[1]).symlink_to(outside / "secret.png")
    proc = cli("run", tmp_path / "case", "--out", tmp_path / "out", *FAST)
    assert_ok(proc, tmp_path / "out", paths)
    from descluster.io.images import ImageSource
    from descluster.errors import UnsafePathError

    source = ImageSource(tmp_path / "case")
    for p in paths[:2]:
        assert not source.exists(p)
        with pytest.raises(UnsafePathError, match="outside the image root"):
            source.read_bytes(p)
    assert source.exists(paths[2])
    assert paths[0] not in source.list_images() and paths[1] not in source.list_images()


# -- 6. CSV formula injection ------------------------------------------------------------------------

def test_formula_cells_are_neutralised_and_read_back_exactly(tmp_path):
    hostile = ["=HYPERLINK(\"http://x\")/a.png", "+1/b.png", "-2/c.png", "@SUM(A1)/d.png", "\tt/e.png",
               "'q/f.png"]
    paths = hostile + [f"img/{i:03d}.png" for i in range(40 - len(hostile))]
    make_case(tmp_path / "case", 40, paths=paths)
    proc = cli("run", tmp_path / "case", "--out", tmp_path / "out", *FAST)
    clusters = assert_ok(proc, tmp_path / "out", paths)  # read back through the reader: exact paths
    raw = (tmp_path / "out" / "clusters.csv").read_text().splitlines()[1:]
    for line in raw:
        assert not line.lstrip('"').startswith(("=", "+", "-", "@", "\t", "\r")), line
    names = tmp_path / "names.csv"
    pd.DataFrame({"cluster": sorted(clusters["cluster"].unique()),
                  "name": ["=cmd|' /C calc'!A0"] + ["car"] * (clusters["cluster"].nunique() - 1)}).to_csv(names, index=False)
    proc = cli("label", tmp_path / "out", "--names", names)
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "out" / "labels.csv").read_text()
    assert "'=cmd" in text and "\n=cmd" not in text and ",=cmd" not in text


# -- 7. every error path is one message and exit 2 ---------------------------------------------------

@pytest.fixture(scope="module")
def small_case(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad") / "case"
    make_case(root, 40, images=False)
    return root


def test_out_is_an_existing_file(small_case, tmp_path):
    (tmp_path / "f").write_text("x")
    assert_error(cli("run", small_case, "--out", tmp_path / "f"), "--out", "existing file")
    assert_error(cli("run", small_case, "--out", tmp_path / "f" / "sub"), "--out", "is a file")
    assert (tmp_path / "f").read_text() == "x"  # nothing lost


def test_extract_out_is_an_existing_file(tmp_path):
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "imgs" / "a.png")
    (tmp_path / "f").write_text("x")
    assert_error(cli("extract", tmp_path / "imgs", "--out", tmp_path / "f"), "--out", "existing file")


@pytest.mark.parametrize("text, needle", [
    ('k_min = \n', "not valid TOML"),
    ('k_min = "two"\n', "k_min='two' is invalid: expected an integer"),
    ('algorithms = 3\n', "algorithms=3 is invalid"),
    ('no_such_key = 1\n', "unknown keys ['no_such_key']"),
    ('variance_target = true\n', "variance_target=True"),
])
def test_bad_config_files(small_case, tmp_path, text, needle):
    cfg = tmp_path / "run.toml"
    cfg.write_text(text)
    assert_error(cli("run", small_case, "--out", tmp_path / "out", "--config", cfg), str(cfg), needle)


@pytest.mark.parametrize("content, needle", [
    (b"", "is empty (0 bytes)"),
    (b"paths\nimg/0.png\n", "is not a NumPy .npy file"),
])
def test_descriptor_files_that_are_not_npy(small_case, tmp_path, content, needle):
    import shutil

    case = tmp_path / "case"
    shutil.copytree(small_case, case)
    (case / "descriptors" / "a.npy").write_bytes(content)
    msg = assert_error(cli("run", case, "--out", tmp_path / "out"), "a.npy", needle)
    assert "allow_pickle" not in msg and "pickle.load" not in msg


def test_values_beyond_float32(small_case, tmp_path):
    import shutil

    case = tmp_path / "case"
    shutil.copytree(small_case, case)
    X = np.load(case / "descriptors" / "a.npy").astype(np.float64)
    X[7, 3] = 1e300
    np.save(case / "descriptors" / "a.npy", X)
    assert_error(cli("run", case, "--out", tmp_path / "out"), "a.npy", "beyond float32's range", "rows 7")


@pytest.fixture(scope="module")
def results(tmp_path_factory, small_case) -> Path:
    out = tmp_path_factory.mktemp("results") / "out"
    proc = cli("run", small_case, "--out", out, *FAST, "--no-outliers")
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.mark.parametrize("content, needle", [
    (b"", "is empty"),
    ("cluster,name\n0,caf\xe9\n".encode("latin-1"), "is not UTF-8"),
    (b'cluster,name\n0,"car\n1,bus\n', "cannot be parsed as CSV"),
    (b"cluster,title\n0,car\n", "missing column(s) ['name']"),
])
def test_bad_names_files(results, tmp_path, content, needle):
    names = tmp_path / "names.csv"
    names.write_bytes(content)
    assert_error(cli("label", results, "--names", names), str(names), needle)


def test_label_out_is_a_folder(results, tmp_path):
    names = tmp_path / "names.csv"
    names.write_text("cluster,name\n0,car\n")
    assert_error(cli("label", results, "--names", names, "--out", tmp_path), "--out", "is a folder")


def test_header_only_clusters_csv(results, tmp_path):
    import shutil

    out = tmp_path / "res"
    shutil.copytree(results, out)
    (out / "clusters.csv").write_text("path,cluster\n")
    names = tmp_path / "names.csv"
    names.write_text("cluster,name\n0,car\n")
    assert_error(cli("label", out, "--names", names), "clusters.csv", "0 data row(s)")


def test_a_killed_worker_is_explained():
    from joblib.externals.loky.process_executor import TerminatedWorkerError

    from descluster.cli import describe_failure

    text = describe_failure(TerminatedWorkerError("A worker process managed by the executor was terminated"))
    assert "out-of-memory" in text and "resume" in text


def test_unexpected_errors_end_in_one_line_and_a_log(tmp_path, capsys):
    from descluster.cli import report_failure

    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        assert report_failure(exc, tmp_path) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unexpected RuntimeError: boom" in err and "Traceback" not in err
    assert "RuntimeError: boom" in (tmp_path / "descluster-error.log").read_text()


def test_workers_end_when_the_main_process_is_killed(tmp_path):
    """kill -9 of a process that started a worker: the worker ends by itself within seconds."""
    import signal
    import time

    code = ("import multiprocessing as mp, os, sys, time\n"
            "from descluster.workers import exit_with_parent\n"
            "def work():\n"
            "    exit_with_parent(0.1)\n"
            "    time.sleep(60)\n"
            "if __name__ == '__main__':\n"
            "    p = mp.get_context('spawn').Process(target=work); p.start()\n"
            "    print(p.pid, flush=True); time.sleep(60)\n")
    script = tmp_path / "parent.py"
    script.write_text(code)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    time.sleep(2)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    for _ in range(50):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(child, signal.SIGKILL)
        pytest.fail("the worker outlived its parent")


# -- 8. numbers that mean what they say --------------------------------------------------------------

def test_identity_share_is_a_number_only_for_an_identity_layout(tmp_path):
    from descluster.case import load_case

    cats = [f"train/{c}/{i}.png" for c in ("black", "white") for i in range(20)]
    make_case(tmp_path / "cats", 40, paths=cats, images=False)
    case = load_case(tmp_path / "cats")
    assert case.identities is None and "not unambiguously object ids" in case.identity_source
    veri = [f"veri/{v:05d}/{i:06d}.jpg" for v in range(20) for i in range(2)]
    make_case(tmp_path / "veri", 40, paths=veri, images=False)
    case = load_case(tmp_path / "veri")
    assert case.identities is not None and len(set(case.identities)) == 20
    proc = cli("run", tmp_path / "veri", "--out", tmp_path / "out", *FAST, "--no-outliers")
    assert proc.returncode == 0, proc.stderr
    share = pd.read_csv(tmp_path / "out" / "comparison.csv")["identity_share"]
    assert share.dtype.kind == "f" and share.between(0, 1).all()
