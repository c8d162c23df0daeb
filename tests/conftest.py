"""Shared fixtures: a small slice of the built-in demo data, extracted once per test session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "data" / "tiny-vehicles"


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def bench_script(name: str):
    """Import ``benchmarks/<name>.py`` as a module (the benchmarks are scripts, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def make_demo_slice(dest: Path, per_type: int) -> Path:
    """Copy the first ``per_type`` images of each vehicle type (and their labels) into ``dest``."""
    labels = pd.read_csv(DEMO / "labels.csv")
    picked = labels.groupby("vehicle_type", sort=True).head(per_type).reset_index(drop=True)
    for rel in picked["path"]:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DEMO / rel, dest / rel)
    picked.to_csv(dest / "labels.csv", index=False)
    return dest


@pytest.fixture(scope="session")
def demo_slice_case(tmp_path_factory) -> Path:
    """A case extracted from 40 images per type (240 images) with all default backbones."""
    pytest.importorskip("torch", reason="descriptor extraction needs the [extract] extra")
    from descluster.extract import extract_case

    root = tmp_path_factory.mktemp("demo_slice")
    images = make_demo_slice(root / "images", per_type=40)
    case = root / "case"
    extract_case(images, case, progress=False)
    return case


def make_small_results(root: Path, n_per_kind: int = 100, kinds: int = 3, descriptors=None) -> tuple[Path, pd.DataFrame]:
    """A real results folder (``run_study`` with PCA map, no report) on a synthetic case of coloured PNGs.

    ``kinds`` well-separated groups of ``n_per_kind`` images each (rows in kind order: kind ``c`` is
    rows ``c * n_per_kind`` to ``(c + 1) * n_per_kind - 1``); ``descriptors`` (array of shape
    (kinds * n_per_kind, d)) replaces the default random 8-d ones. Returns ``(OUT, truth)`` with
    truth columns ``path`` and ``kind`` (``k0``, ``k1``, ...).
    """
    import numpy as np
    from PIL import Image

    from descluster.case import load_case
    from descluster.config import RunConfig
    from descluster.pipeline import run_study

    case = root / "case"
    (case / "descriptors").mkdir(parents=True)
    rng = np.random.default_rng(0)
    kind = np.repeat(np.arange(kinds), n_per_kind)
    centres = rng.normal(size=(kinds, 8)) * 6
    A = (centres[kind] + rng.normal(size=(kind.size, 8))).astype(np.float32)
    if descriptors is not None:
        A = np.asarray(descriptors, dtype=np.float32)
        assert A.shape[0] == kind.size, (A.shape, kind.size)
    np.save(case / "descriptors" / "a.npy", A)
    paths = [f"k{k}/img{i:03d}.png" for i, k in enumerate(kind)]
    images = case / "images"
    colours = [(200, 40, 40), (40, 160, 60), (50, 70, 210), (220, 200, 40)]
    for p, k in zip(paths, kind):
        (images / p).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (24, 24), colours[k % len(colours)]).save(images / p)
    pd.DataFrame({"paths": paths}).to_csv(case / "images_paths.csv", index=False)
    truth = pd.DataFrame({"path": paths, "kind": [f"k{k}" for k in kind]})
    out = root / "out"
    config = RunConfig.from_dict(dict(algorithms=("kmeans",), k_min=2, k_max=5, preprocessings=("standard",),
                                      outliers=False, pixel_checks=False, embedding="pca"))
    import descluster.report.build

    with pytest.MonkeyPatch.context() as mp:  # the app reads no report: skip building it
        mp.setattr(descluster.report.build, "build_report", lambda *a, **k: None)
        run_study(load_case(case, images=images), out, config, progress=False)
    return out, truth


@pytest.fixture(scope="session")
def small_results(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """:func:`make_small_results` once per test session (treat as read-only: copy it to write)."""
    return make_small_results(tmp_path_factory.mktemp("small_results"))


CHROMIUM = "/usr/bin/chromium"
#: ``--disable-gpu`` leaves WebGL to SwiftShader (software, no flag needed with Debian's chromium 156): the map
#: test reads the WebGL canvas, and checks the 2-D fallback on a page whose WebGL is stubbed out.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update"]


def find_chromium(candidates=None) -> str | None:
    """The first chromium binary of ``candidates`` (default :data:`CHROMIUM`, then ``chromium`` and
    ``chromium-browser`` on ``PATH``) that is an executable file, or None."""
    if candidates is None:
        candidates = [CHROMIUM, shutil.which("chromium"), shutil.which("chromium-browser")]
    return next((str(c) for c in candidates if c and Path(c).is_file() and os.access(c, os.X_OK)), None)


def start_chromium(candidates=None):
    """Playwright and a headless chromium launched from :func:`find_chromium`: ``(playwright, browser)``.

    Skips the test only when no chromium binary exists at all. A chromium that is installed but
    cannot be driven fails the test (``pytest.fail``, with the reason): playwright not importable
    (it is a ``[test]`` dependency) or Playwright unable to launch the binary.
    """
    path = find_chromium(candidates)
    if path is None:
        pytest.skip(f"no chromium binary ({CHROMIUM} or chromium/chromium-browser on PATH): browser tests skipped")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        pytest.fail(f"chromium is installed ({path}) but playwright cannot be imported ({exc}); "
                    "install the [test] extra (scripts/install.sh test)", pytrace=False)
    pw = None
    try:
        pw = sync_playwright().start()
        return pw, pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, timeout=60_000)
    except Exception as exc:  # noqa: BLE001 - any start or launch failure is reported with its text
        if pw is not None:
            pw.stop()
        pytest.fail(f"chromium is installed ({path}) but Playwright cannot launch it: {exc}", pytrace=False)


@pytest.fixture(scope="module")
def browser():
    """Headless chromium driven by Playwright (:func:`start_chromium`: skips only where no chromium exists)."""
    pw, b = start_chromium()
    yield b
    b.close()
    pw.stop()
