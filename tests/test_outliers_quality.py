"""Tests of the pixel facts (measured on the object) and the pixel rules (thresholds from the data)."""

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFilter

from descluster.errors import ParameterError
from descluster.io.images import ImageSource
from descluster.outliers.pixels import apply_levels, collection_levels, image_facts, image_quality_table
from descluster.outliers.quality import quality_flags


def _noise_image(seed, size=(64, 64)):
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 200, size=(size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    img = Image.fromarray(base).resize(size, Image.Resampling.NEAREST)
    arr = np.asarray(img).astype(np.int16) + rng.integers(-20, 20, size=(size[1], size[0], 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _car_on(background, body, size=64):
    """A 'car': a body-coloured box with dark windows and wheels, on a background image."""
    a = np.asarray(background).astype(np.int16)
    a[10:54, 6:58] = np.asarray(body) + np.random.default_rng(0).integers(-12, 13, (44, 52, 1))  # paint with texture
    a[16:24, 14:50] = (25, 25, 30)
    a[48:54, 10:20] = a[48:54, 44:54] = (15, 15, 15)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


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
    _noise_image(8).convert("L").convert("RGB").save(root / "grey_rgb.jpg", quality=85)  # RGB file, equal channels
    (root / "copy.png").write_bytes((root / "ok0.png").read_bytes())
    _car_on(_noise_image(9), (128, 128, 130)).save(root / "grey_car.png")  # a grey car on a colourful background
    studio = _car_on(Image.new("RGB", (64, 64), (255, 255, 255)), (190, 30, 30))
    studio.save(root / "studio.png")  # a red car on a clipped white backdrop
    night = (np.asarray(_noise_image(10), dtype=np.float64) / 255) ** 2.2 * 255  # dark, detail kept
    Image.fromarray(night.astype(np.uint8)).save(root / "night.png")
    hidden = np.asarray(_noise_image(11), dtype=np.float64) * 0.08  # the object is lost in darkness
    Image.fromarray(hidden.astype(np.uint8)).save(root / "hidden.png")
    _noise_image(12).filter(ImageFilter.GaussianBlur(3)).save(root / "blurred.png")
    lifted = np.asarray(_noise_image(13), dtype=np.float64) * 3.5 + 80  # over-exposed: shadows lifted, most clipped
    Image.fromarray(np.clip(lifted, 0, 255).astype(np.uint8)).save(root / "lifted.png")
    # a white car on a white studio backdrop: most of the centre clipped, but tyres and glass stay dark
    _car_on(Image.new("RGB", (64, 64), (255, 255, 255)), (255, 255, 255)).save(root / "studio_white.png")
    panel = np.asarray(_noise_image(14)).copy()
    panel[14:50, 14:50] = (170, 40, 40)  # a red truck's plain side panel fills the centre; the frame has detail
    Image.fromarray(panel).save(root / "panel.png")
    names += ["white.png", "black.png", "empty.jpg", "half.jpg", "rgba.png", "cmyk.jpg", "i16.png", "grey.png",
              "grey_rgb.jpg", "copy.png", "grey_car.png", "studio.png", "night.png", "hidden.png", "blurred.png",
              "lifted.png", "studio_white.png", "panel.png"]
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


def test_greyscale_means_equal_channels_over_the_whole_frame(table):
    t = table.set_index("path")
    assert t.loc["grey.png", "greyscale"] and t.loc["i16.png", "greyscale"]
    assert t.loc["grey_rgb.jpg", "greyscale"]  # an RGB JPEG with equal channels (decoding rounds by +-1)
    assert not t.loc["grey_car.png", "greyscale"]  # a grey car on a colourful background is not a grey frame
    assert t.loc["grey_car.png", "colour"] == "grey"
    assert not t.loc["ok0.png", "greyscale"]


def test_known_facts(table):
    t = table.set_index("path")
    assert t.loc["white.png", "saturated_share"] == 1.0 and t.loc["white.png", "bright_blob_share"] == 1.0
    assert t.loc["white.png", "object_saturated_share"] == pytest.approx(1.0)
    assert t.loc["white.png", "colour"] == "white" and t.loc["black.png", "colour"] == "black"
    assert t.loc["black.png", "mean_luminance"] == pytest.approx(3.0, abs=0.01)
    assert t.loc["black.png", "entropy"] == 0.0 and t.loc["black.png", "laplacian_var"] == 0.0
    assert t.loc["ok0.png", "sha1"] == t.loc["copy.png", "sha1"]
    # the studio backdrop is clipped, the car is not: exposure is measured on the object
    assert t.loc["studio.png", "saturated_share"] > 0.4 and t.loc["studio.png", "object_saturated_share"] < 0.2
    assert t.loc["studio.png", "colour"] == "red"


def test_rules_flag_with_reasons_and_thresholds(table):
    v = quality_flags(table, max_share=0.2)  # 5 of the 46 readable frames have equal channels
    reason = dict(zip(table["path"], v.reasons))
    assert reason["white.png"].startswith("over-exposed: 100% of the object clipped")
    assert "low information: entropy 0.0 bits" in reason["black.png"]
    assert reason["hidden.png"].startswith("dark, object hidden")
    assert reason["empty.jpg"].startswith("unreadable:")
    assert "grey-scale frame (equal channels)" in reason["grey.png"] and "grey-scale" in reason["grey_rgb.jpg"]
    assert reason["blurred.png"].startswith("blurred: blur effect")
    assert reason["lifted.png"].startswith("over-exposed:")
    for name in ["grey_car.png", "studio.png", "night.png", "studio_white.png", "panel.png"] + \
            [f"ok{i}.png" for i in range(30)]:
        assert reason[name] == "", name  # a grey car, studio shots, a night frame with detail, a plain panel
    notes = dict(zip(table["path"], v.notes))
    assert notes["copy.png"] == "exact duplicate of ok0.png"
    assert v.exact_group[0] == v.exact_group[table["path"].tolist().index("copy.png")] >= 0
    assert set(v.thresholds) >= {"over-exposed", "dark", "blurred", "unreadable", "property:night", "colour:levels"}
    assert "object_p95_luminance <= 42" in v.thresholds["dark"] and "of 46 flagged" in v.thresholds["dark"]
    assert v.thresholds["blurred"].startswith("pixel:blurred: blur_effect >= 0.5 (robust z above +3.5")
    assert "unclipped_p5_luminance >= 118" in v.thresholds["over-exposed"]
    assert "entropy <= 4 (the whole frame too)" in v.thresholds["low-information"]
    assert "night-like" in v.thresholds["property:night"]


def test_a_rule_that_would_flag_too_many_says_so(table):
    v = quality_flags(table, max_share=0.05)  # 5 grey-scale frames of 46 readable (11%) > 5%
    assert "greyscale" in v.held_back and not v.flags["greyscale"].any()
    assert "would flag 5 of 46 readable images (11%), more than 5%" in v.thresholds["greyscale"]
    assert "property of this collection, not flagged" in v.thresholds["greyscale"]


def test_blur_and_exposure_facts_are_relative_to_the_image_itself(table):
    t = table.set_index("path")
    # blur effect: the image against a re-blurred copy of itself (0 sharp .. 1 blurred)
    assert t.loc["blurred.png", "blur_effect"] > 0.5 > t.loc[[f"ok{i}.png" for i in range(30)], "blur_effect"].max()
    assert t.loc["panel.png", "blur_effect"] < 0.5  # a plain panel with sharp edges is not blurred
    assert np.isnan(t.loc["white.png", "blur_effect"])  # a flat frame has no detail to judge
    # the studio car is mostly clipped in the centre, but its darkest kept tones are dark; the lifted frame's are not
    assert t.loc["studio_white.png", "object_saturated_share"] > 0.5
    assert t.loc["studio_white.png", "unclipped_p5_luminance"] < 60 < 118 < t.loc["lifted.png", "unclipped_p5_luminance"]
    # a plain panel: low entropy in the centre, but the frame carries information
    assert t.loc["panel.png", "object_entropy"] < 4 < t.loc["panel.png", "entropy"]


def test_palette_shares_are_stored_and_sum_to_one(table):
    from descluster.outliers.pixels import PALETTE_SHARE_COLUMNS

    t = table.set_index("path")
    shares = t.loc[t["readable"], PALETTE_SHARE_COLUMNS].to_numpy(dtype=float)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, atol=1e-9)
    assert t.loc["black.png", "palette_black"] == pytest.approx(1.0)
    assert t.loc["studio.png", "palette_red"] > 0.5 and t.loc["grey_car.png", "colour_lit_lightness"] > 40


def test_no_vehicle_rule_is_relative_and_absolute(table):
    n = len(table)
    shares = np.random.default_rng(0).uniform(0.3, 0.99, n)
    shares[1], shares[2] = 0.001, 0.45  # 0.45 is below 0.5 but not far below the others
    imagenet = pd.DataFrame({"path": table["path"], "vehicle_share": shares})
    v = quality_flags(table, imagenet=imagenet)
    reason = dict(zip(table["path"], v.reasons))
    assert reason["ok1.png"] == "no vehicle: 0%" and reason["ok2.png"] == "" and reason["ok3.png"] == ""
    assert v.thresholds["no-vehicle"].startswith("pixel:no-vehicle (advisory): vehicle share <")


def test_camera_levels_stretch_a_hazy_collection():
    rng = np.random.default_rng(0)
    t = pd.DataFrame({"readable": True, "p1_r": rng.uniform(20, 40, 50), "p1_g": rng.uniform(25, 45, 50),
                      "p1_b": rng.uniform(25, 45, 50), "p99_r": rng.uniform(200, 235, 50),
                      "p99_g": rng.uniform(205, 240, 50), "p99_b": rng.uniform(205, 240, 50)})
    levels, text = collection_levels(t)
    assert levels.shape == (2, 3) and 20 < levels[0, 0] < 25 and 230 < levels[1, 1] < 240
    assert text.startswith("camera levels: black point RGB")
    lo, hi = levels
    np.testing.assert_array_equal(apply_levels(np.array([lo, hi]).round(), levels), [[0, 0, 0], [255, 255, 255]])
    assert collection_levels(t.iloc[:5])[0] is None  # too few images
    t[["p1_r", "p1_g", "p1_b"]] = 0.0
    t[["p99_r", "p99_g", "p99_b"]] = 255.0
    assert collection_levels(t)[0] is None and "not needed" in collection_levels(t)[1]


def test_image_facts_of_a_pink_square():
    img = Image.new("RGB", (64, 64), (30, 120, 200))
    img.paste((255, 150, 190), (16, 16, 48, 48))
    assert image_facts(img)["colour"] == "pink"


def test_bad_parameter(table):
    with pytest.raises(ParameterError, match="max_aspect"):
        quality_flags(table, max_aspect=0.5)
    with pytest.raises(ParameterError, match="max_share"):
        quality_flags(table, max_share=0.0)


@pytest.mark.slow
def test_process_pool_gives_the_same_table(table, folder):
    root, names = folder
    pooled = image_quality_table(ImageSource(root), names, progress=False, n_jobs=2, chunksize=4)
    pd.testing.assert_frame_equal(pooled, table)
