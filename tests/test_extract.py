"""Tests of descluster.extract: backbones, colour histogram, resumable case writing."""

from __future__ import annotations

import copy
import json
import logging
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import make_demo_slice

from descluster.errors import CaseError, ParameterError
from descluster.extract import ColourHistogram, extract_case, list_case_images, make_backbone
from descluster.extract.base import require_torch
from descluster.extract.imagenet import VEHICLE_CLASSES, summarise_probs, summary_frame
from descluster.io.images import ImageSource

DEMO = Path(__file__).resolve().parents[1] / "data" / "tiny-vehicles"
TYPES = ["bike", "car", "juggernaut", "minibus", "pickup", "truck"]


# -- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def six_images(tmp_path_factory) -> Path:
    """One demo image of each of the 6 vehicle types, with their labels.csv."""
    return make_demo_slice(tmp_path_factory.mktemp("six") / "images", per_type=1)


@pytest.fixture(scope="module")
def cnn_models():
    """The two CNN backbones, built once for the module at 64 px (fast; sizes are not under test).

    Runs torch single-threaded while the module's tests run: with tiny batches on a
    busy 2-core machine, OpenMP's spinning threads made these tests ~10x slower.
    """
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield make_backbone("mobilenetv2", input_size=64), make_backbone("efficientnet_lite0", input_size=64)
    torch.set_num_threads(threads)


def _models(cnn_models):
    return [*cnn_models, ColourHistogram()]


def _load(case: Path, name: str) -> np.ndarray:
    return np.load(case / "descriptors" / f"{name}.npy", allow_pickle=False)


def _zip_folder(folder: Path, dest: Path, top: str = "images") -> Path:
    with zipfile.ZipFile(dest, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, f"{top}/{p.relative_to(folder).as_posix()}")
    return dest


# -- import hygiene ---------------------------------------------------------------------------
def test_import_does_not_import_torch():
    code = "import sys, descluster.extract; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_torch_gives_install_advice(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    with pytest.raises(ImportError, match=r"pip install \.\[extract\]"):
        require_torch()


# -- colour histogram -------------------------------------------------------------------------
def test_pure_red_falls_in_one_known_bin():
    hist = ColourHistogram()  # 5 L* bins x 7 a* bins x 7 b* bins
    h = hist.embed([Image.new("RGB", (20, 10), (255, 0, 0))])
    assert h.shape == (1, 245) and h.dtype == np.float32
    # sRGB red is L*=53.2, a*=80.1, b*=67.2: L bin 2 of [0,100]/5, a bin 6 and b bin 5 of [-112,112)/7
    assert np.argmax(h[0]) == (2 * 7 + 6) * 7 + 5
    assert h[0].max() == pytest.approx(1.0) and h[0].sum() == pytest.approx(1.0)


def test_neutral_colours_use_the_middle_ab_bin_and_mixtures_split_mass():
    hist = ColourHistogram(l_bins=4, ab_bins=5)
    grey, white = (128, 128, 128), (255, 255, 255)
    img = np.zeros((10, 10, 3), np.uint8)
    img[:, :3] = grey  # 30 % grey, 70 % white
    img[:, 3:] = white
    h = hist.embed([Image.fromarray(img)])[0]
    centre = 2  # the middle of 5 a*/b* bins holds a* = b* = 0
    assert h.sum() == pytest.approx(1.0)
    assert h[(2 * 5 + centre) * 5 + centre] == pytest.approx(0.3)  # grey: L* 53.6 -> bin 2
    assert h[(3 * 5 + centre) * 5 + centre] == pytest.approx(0.7)  # white: L* 100 -> last bin


@pytest.mark.parametrize("params", [{"l_bins": 0}, {"ab_bins": 32}, {"l_bins": 2.5}])
def test_colour_parameters_are_validated(params):
    with pytest.raises(ParameterError, match=next(iter(params))):
        ColourHistogram(**params)


# -- registry and ImageNet summary ------------------------------------------------------------
def test_unknown_backbone_is_refused_with_the_valid_names():
    with pytest.raises(ParameterError, match="colour"):
        make_backbone("resnet50")


def test_summarise_probs_known_answer():
    probs = np.zeros((2, 1000))
    probs[0, 817] = 0.7  # sports car
    probs[0, 656] = 0.2  # minivan
    probs[0, 3] = 0.1  # tiger shark: not a vehicle
    probs[1, 919] = 1.0  # street sign
    s = summarise_probs(probs)
    assert s[:, 0] == pytest.approx([0.9, 0.0])
    table = summary_frame(["a.jpg", "b.jpg"], s)
    assert list(table.columns) == ["path", "vehicle_share", "top1_class", "top1_prob", "top2_class",
                                   "top2_prob", "top3_class", "top3_prob"]
    assert table.loc[0, ["top1_class", "top2_class", "top3_class"]].tolist() == ["sports car", "minivan", "tiger shark"]
    assert table.loc[0, "top1_prob"] == pytest.approx(0.7)
    assert table.loc[1, "top1_class"] == "street sign"
    assert all(0 <= i < 1000 for i in VEHICLE_CLASSES)


# -- case writing with the colour backbone (no torch) ----------------------------------------
def test_colour_case_layout(six_images, tmp_path):
    case = extract_case(six_images, tmp_path / "case", backbones=("colour",), progress=False)
    paths = pd.read_csv(case / "images_paths.csv")["paths"].tolist()
    assert paths == sorted(paths) and len(paths) == 6 and {p.split("/")[0] for p in paths} == set(TYPES)
    X = _load(case, "colour")
    assert X.shape == (6, 245) and X.dtype == np.float32
    np.testing.assert_allclose(X.sum(axis=1), 1.0, rtol=1e-5)
    src = ImageSource(six_images)
    np.testing.assert_array_equal(X[4], ColourHistogram().histogram(src.open(paths[4])))  # rows follow paths
    meta = json.loads((case / "case.json").read_text())
    assert meta["images"] == str(six_images.resolve())
    assert meta["backbones"] == {"colour": 245} and meta["n_images"] == 6
    assert (case / "labels.csv").read_bytes() == (six_images / "labels.csv").read_bytes()
    assert pd.read_csv(case / "meta" / "unreadable.csv").empty
    assert not (case / ".partial").exists()


def test_unreadable_images_are_listed_and_skipped(six_images, tmp_path, caplog):
    images = tmp_path / "images"
    shutil.copytree(six_images, images)
    (images / "car" / "empty.jpg").write_bytes(b"")
    good = (images / "bike").glob("*.jpg").__next__().read_bytes()
    (images / "truck" / "cut.jpg").write_bytes(good[: len(good) // 2])
    with caplog.at_level(logging.WARNING, logger="descluster.extract"):
        case = extract_case(images, tmp_path / "case", backbones=("colour",), progress=False)
    bad = pd.read_csv(case / "meta" / "unreadable.csv")
    assert sorted(bad["path"]) == ["car/empty.jpg", "truck/cut.jpg"]
    assert bad.set_index("path").loc["car/empty.jpg", "error"].endswith("file is empty (0 bytes)")
    paths = pd.read_csv(case / "images_paths.csv")["paths"].tolist()
    assert len(paths) == 6 and "car/empty.jpg" not in paths and "truck/cut.jpg" not in paths
    assert _load(case, "colour").shape == (6, 245)
    assert "2 of 8 images are unreadable" in caplog.text
    assert json.loads((case / "case.json").read_text())["n_unreadable"] == 2


def test_no_images_is_a_case_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CaseError, match="no image files"):
        extract_case(tmp_path / "empty", tmp_path / "case", backbones=("colour",), progress=False)


@pytest.mark.parametrize("kwargs", [{"batch_size": 0}, {"chunk_size": -1}, {"limit": 0},
                                    {"backbones": ("colour", "colour")}])
def test_extract_parameters_are_validated(six_images, tmp_path, kwargs):
    kwargs = {"backbones": ("colour",), **kwargs}
    with pytest.raises(ParameterError):
        extract_case(six_images, tmp_path / "case", progress=False, **kwargs)


def test_limit_takes_evenly_spaced_images_over_all_folders():
    paths = list_case_images(ImageSource(DEMO), limit=12)
    assert len(paths) == 12 and paths == sorted(paths)
    assert {p.split("/")[0] for p in paths} == set(TYPES)


def test_resume_after_interruption_gives_the_same_arrays(six_images, tmp_path):
    full = extract_case(six_images, tmp_path / "full", backbones=("colour",), chunk_size=2, progress=False)
    seen = []

    def stop_after_first(chunk, n_chunks):
        seen.append((chunk, n_chunks))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract_case(six_images, tmp_path / "part", backbones=("colour",), chunk_size=2, progress=False,
                     on_chunk=stop_after_first)
    assert seen == [(0, 3)]
    assert (tmp_path / "part" / ".partial" / "colour" / "000000.npy").is_file()
    assert not (tmp_path / "part" / "descriptors").exists()
    resumed = []
    extract_case(six_images, tmp_path / "part", backbones=("colour",), chunk_size=2, progress=False,
                 on_chunk=lambda c, n: resumed.append(c))
    assert resumed == [1, 2]  # chunk 0 was not redone
    np.testing.assert_array_equal(_load(tmp_path / "part", "colour"), _load(full, "colour"))
    assert not (tmp_path / "part" / ".partial").exists()
    # a finished case is cached: nothing runs and the file is untouched
    mtime = (full / "descriptors" / "colour.npy").stat().st_mtime_ns
    again = []
    extract_case(six_images, full, backbones=("colour",), chunk_size=2, progress=False,
                 on_chunk=lambda c, n: again.append(c))
    assert again == [] and (full / "descriptors" / "colour.npy").stat().st_mtime_ns == mtime


def test_changed_image_list_restarts_cleanly(six_images, tmp_path):
    images = tmp_path / "images"
    shutil.copytree(six_images, images)

    def stop(chunk, n):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract_case(images, tmp_path / "case", backbones=("colour",), chunk_size=2, progress=False, on_chunk=stop)
    Image.new("RGB", (8, 8), (0, 0, 255)).save(images / "bike" / "aaa_blue.png")  # sorts first
    case = extract_case(images, tmp_path / "case", backbones=("colour",), chunk_size=2, progress=False)
    paths = pd.read_csv(case / "images_paths.csv")["paths"].tolist()
    X = _load(case, "colour")
    assert len(paths) == 7 and paths[0] == "bike/aaa_blue.png"
    src = ImageSource(images)
    for i, p in enumerate(paths):  # every row belongs to its path: no stale chunk was reused
        np.testing.assert_array_equal(X[i], ColourHistogram().histogram(src.open(p)))


def test_zip_and_folder_give_the_same_case(six_images, tmp_path):
    archive = _zip_folder(six_images, tmp_path / "six.zip")
    a = extract_case(six_images, tmp_path / "a", backbones=("colour",), progress=False)
    b = extract_case(archive, tmp_path / "b", backbones=("colour",), progress=False)
    assert (a / "images_paths.csv").read_bytes() == (b / "images_paths.csv").read_bytes()
    np.testing.assert_array_equal(_load(a, "colour"), _load(b, "colour"))
    assert (b / "labels.csv").read_bytes() == (six_images / "labels.csv").read_bytes()


# -- CNN backbones (need torch) ---------------------------------------------------------------
def test_cnn_case_shapes_and_imagenet_table(six_images, tmp_path, cnn_models):
    case = extract_case(six_images, tmp_path / "case", backbones=_models(cnn_models), progress=False)
    for name, d in [("mobilenetv2", 1280), ("efficientnet_lite0", 1280), ("colour", 245)]:
        X = _load(case, name)
        assert X.shape == (6, d) and X.dtype == np.float32 and np.isfinite(X).all()
        assert X.std(axis=0).max() > 0  # images differ
    meta = json.loads((case / "case.json").read_text())
    assert meta["backbones"] == {"mobilenetv2": 1280, "efficientnet_lite0": 1280, "colour": 245}
    table = pd.read_csv(case / "meta" / "imagenet.csv")
    paths = pd.read_csv(case / "images_paths.csv")["paths"]
    assert table["path"].tolist() == paths.tolist()
    assert table["vehicle_share"].between(0, 1 + 1e-9).all()
    assert (table["top1_prob"] >= table["top2_prob"]).all() and (table["top2_prob"] >= table["top3_prob"]).all()
    np.testing.assert_allclose(table["top1_prob"] + table["top2_prob"] + table["top3_prob"] <= 1 + 1e-6, True)


def test_cnn_extraction_is_deterministic_and_resumable(six_images, tmp_path, cnn_models):
    models = _models(cnn_models)
    a = extract_case(six_images, tmp_path / "a", backbones=models, progress=False, chunk_size=4, batch_size=3)
    b = extract_case(six_images, tmp_path / "b", backbones=models, progress=False, chunk_size=4, batch_size=3)

    def stop(chunk, n):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract_case(six_images, tmp_path / "c", backbones=models, progress=False, chunk_size=4, batch_size=3,
                     on_chunk=stop)
    c = extract_case(six_images, tmp_path / "c", backbones=models, progress=False, chunk_size=4, batch_size=3)
    for name in ("mobilenetv2", "efficientnet_lite0", "colour"):
        np.testing.assert_array_equal(_load(a, name), _load(b, name))
        np.testing.assert_array_equal(_load(a, name), _load(c, name))
    assert (a / "meta" / "imagenet.csv").read_bytes() == (c / "meta" / "imagenet.csv").read_bytes()


def test_cnn_zip_and_folder_give_identical_descriptors(six_images, tmp_path, cnn_models):
    archive = _zip_folder(six_images, tmp_path / "six.zip", top="tiny")
    a = extract_case(six_images, tmp_path / "a", backbones=cnn_models[:1], progress=False)
    b = extract_case(archive, tmp_path / "b", backbones=cnn_models[:1], progress=False)
    np.testing.assert_array_equal(_load(a, "mobilenetv2"), _load(b, "mobilenetv2"))


def test_folded_batchnorm_matches_the_original_networks(six_images, cnn_models):
    torch = pytest.importorskip("torch")
    images = [ImageSource(six_images).open(p) for p in list_case_images(ImageSource(six_images))]
    for backbone in cnn_models:
        unfused = copy.copy(backbone.load())
        unfused.model_ = backbone._build(torch).eval()  # same weights, BatchNorm not folded
        np.testing.assert_allclose(backbone.embed(images), unfused.embed(images), rtol=1e-3, atol=1e-4)
        assert backbone.n_fused_ == {"mobilenetv2": 52, "efficientnet_lite0": 49}[backbone.name]  # every conv


def test_preprocessing_normalises_with_the_documented_mean(cnn_models):
    pytest.importorskip("torch")
    mobilenet, effnet = cnn_models
    imagenet_mean = Image.new("RGB", (37, 23), (124, 116, 104))  # 255 * (0.485, 0.456, 0.406)
    x = mobilenet.preprocess([imagenet_mean])
    assert tuple(x.shape) == (1, 3, mobilenet.input_size, mobilenet.input_size)
    assert np.abs(x.numpy()).max() < 0.01
    x = effnet.preprocess([Image.new("RGB", (50, 50), (127, 127, 127)), Image.new("RGB", (50, 50), (255, 0, 255))])
    assert np.abs(x[0].numpy()).max() == 0  # TF-Lite preprocessing: (p - 127) / 128
    assert x[1, 0].numpy().max() == pytest.approx(1.0) and x[1, 1].numpy().min() == pytest.approx(-127 / 128)


def test_input_size_is_validated():
    pytest.importorskip("torch")
    with pytest.raises(ParameterError, match="input_size=100"):
        make_backbone("mobilenetv2", input_size=100)
