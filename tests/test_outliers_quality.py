"""Tests of the pixel facts and pixel rules."""

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from descluster.errors import ParameterError
from descluster.io.images import ImageSource
from descluster.outliers.quality import image_quality_table, quality_flags


def _noise_image(seed, size=(64, 64)):
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 200, size=(size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    img = Image.fromarray(base).resize(size, Image.Resampling.NEAREST)
    arr = np.asarray(img).astype(np.int16) + rng.integers(-20, 20, size=(size[1], size[0], 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs")
    names = []
    for i in range(30):  # normal, textured colour images
        _noise_image(i).save(root / f"ok{i}.png")
        names.append(f"ok{i}.png")
    Image.new("RGB", (64, 64), (255, 255, 255)).save(root / "white.png")
    Image.new("RGB", (64, 64), (3, 3, 3)).save(root / "black.png")
    (root / "empty.jpg").write_bytes(b"")
    buf = io.BytesIO()
    _noise_image(99).save(buf, format="JPEG", quality=90)
    (root / "half.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    rgba = _noise_image(5).convert("RGBA")
    rgba.putalpha(128)
    rgba.save(root / "rgba.png")
    _noise_image(6).convert("CMYK").save(root / "cmyk.jpg")
    Image.fromarray((np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 15)).save(root / "i16.png")
    _noise_image(7).convert("L").save(root / "grey.png")
    (root / "copy.png").write_bytes((root / "ok0.png").read_bytes())
    names += ["white.png", "black.png", "empty.jpg", "half.jpg", "rgba.png", "cmyk.jpg", "i16.png", "grey.png", "copy.png"]
    return root, names


@pytest.fixture(scope="module")
def table(folder):
    root, names = folder
    return image_quality_table(ImageSource(root), names, progress=False, n_jobs=1)


def test_every_row_in_order_and_unreadable_reported(table, folder):
    _, names = folder
    assert table["path"].tolist() == names
    t = table.set_index("path")
    assert not t.loc["empty.jpg", "readable"] and "0 bytes" in t.loc["empty.jpg", "error"]
    assert not t.loc["half.jpg", "readable"] and "truncated" in t.loc["half.jpg", "error"].lower()
    assert t.drop(["empty.jpg", "half.jpg"])["readable"].all()
    assert np.isnan(t.loc["half.jpg", "mean_luminance"])


def test_odd_modes_give_sane_rows(table):
    t = table.set_index("path")
    for name in ("rgba.png", "cmyk.jpg", "i16.png", "grey.png"):
        row = t.loc[name]
        assert row["readable"] and (row["width"], row["height"]) == (64, 64), name
        assert 0 <= row["mean_luminance"] <= 255 and 0 <= row["entropy"] <= 8
        assert len(row["phash"]) == 16 and len(row["sha1"]) == 40
    assert t.loc["grey.png", "greyscale"] and t.loc["i16.png", "greyscale"]
    assert not t.loc["ok0.png", "greyscale"]


def test_known_facts(table):
    t = table.set_index("path")
    assert t.loc["white.png", "saturated_share"] == 1.0 and t.loc["white.png", "bright_blob_share"] == 1.0
    assert t.loc["white.png", "colour"] == "white" and t.loc["black.png", "colour"] == "black"
    assert t.loc["black.png", "mean_luminance"] == pytest.approx(3.0, abs=0.01)
    assert t.loc["black.png", "entropy"] == 0.0 and t.loc["black.png", "laplacian_var"] == 0.0
    assert t.loc["ok0.png", "sha1"] == t.loc["copy.png", "sha1"]


def test_rules_flag_with_reasons(table):
    v = quality_flags(table)
    reason = dict(zip(table["path"], v.reasons))
    assert reason["white.png"].startswith("over-exposed: 100% saturated pixels")
    assert "dark: mean luminance 3/255" in reason["black.png"]
    assert "low information: entropy 0.0 bits" in reason["black.png"]
    assert reason["empty.jpg"].startswith("unreadable:")
    assert "grey-scale/infra-red frame" in reason["grey.png"]
    ok = [reason[f"ok{i}.png"] for i in range(30)]
    assert ok == [""] * 30
    notes = dict(zip(table["path"], v.notes))
    assert notes["copy.png"] == "exact duplicate of ok0.png"
    assert v.exact_group[0] == v.exact_group[-1] >= 0
    assert set(v.thresholds) >= {"over-exposed", "dark", "blurred", "unreadable"}


def test_no_vehicle_rule(table):
    imagenet = pd.DataFrame({"path": ["ok1.png", "ok2.png"], "vehicle_share": [0.03, 0.9]})
    v = quality_flags(table, imagenet=imagenet)
    reason = dict(zip(table["path"], v.reasons))
    assert reason["ok1.png"] == "no vehicle: 3%" and reason["ok2.png"] == ""


def test_bad_parameter(table):
    with pytest.raises(ParameterError, match="max_aspect"):
        quality_flags(table, max_aspect=0.5)


@pytest.mark.slow
def test_process_pool_gives_the_same_table(table, folder):
    root, names = folder
    pooled = image_quality_table(ImageSource(root), names, progress=False, n_jobs=2, chunksize=4)
    pd.testing.assert_frame_equal(pooled, table)
