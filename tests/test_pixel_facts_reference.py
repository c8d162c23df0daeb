"""The pixel checks compute what they computed before their speed-up (issue 17), and their exact helpers agree
with the library functions they stand in for.

``tests/data/pixel_facts_reference.json`` holds ``image_facts`` (and ``colour_facts`` after camera levels) of
69 fixed images as the checks computed them before the speed-up (``main`` at a5259a9), written by
``benchmarks/pixel_facts_fixture.py``, which also rebuilds the images here.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from descluster.errors import ImageReadError
from descluster.io.images import ImageSource
from descluster.outliers import pixels as P

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import pixel_facts_fixture as fixture  # noqa: E402

REFERENCE = json.loads((REPO / "tests" / "data" / "pixel_facts_reference.json").read_text())
#: Facts are compared to within this relative (and absolute, near 0) difference. On the machine that wrote
#: the fixture the new code reproduces every one of the 3,390 values bit for bit; the facts are float32
#: arithmetic, and another CPU (other SIMD width / FMA) may round the last bit differently: CI saw
#: p95_luminance 190.70700073 against 190.70698547, one float32 step (8e-8 relative). 1e-6 is about eight
#: float32 steps (eps = 1.19e-7), far below any change of a formula.
REL_TOL = 1e-6


@pytest.fixture(scope="module")
def images():
    built = fixture.reference_images()
    assert [n for n, _ in built] == [c["name"] for c in REFERENCE["cases"]]
    return built


def _same(got: dict, want: dict, where: str) -> None:
    assert set(got) == set(want), where
    for key, w in want.items():
        g = got[key]
        if isinstance(w, float) and isinstance(g, float):
            assert math.isclose(g, w, rel_tol=REL_TOL, abs_tol=REL_TOL), f"{where} {key}: {g!r} != {w!r}"
        else:
            assert g == w, f"{where} {key}: {g!r} != {w!r}"


def test_image_facts_equal_the_reference(images):
    compared = 0
    for (name, image), case in zip(images, REFERENCE["cases"]):
        if fixture.pixel_sha1(image) != case["pixel_sha1"]:
            continue  # another decoder or random stream made other pixels: nothing to compare
        _same(fixture.compute(image), case["facts"], name)
        if "levels_colour" in case:
            _same(fixture.compute_levels(image), case["levels_colour"], f"{name} (levels)")
        compared += 1
    assert compared >= 50  # the demo crops and the synthetic frames decode the same everywhere


def test_reference_covers_the_edge_cases():
    facts = {c["name"]: c["facts"] for c in REFERENCE["cases"]}
    assert facts["white"]["blur_effect"] is None and facts["flat-grey"]["greyscale"] is True  # flat: NaN blur
    assert facts["large-700x500"]["width"] == 700 and facts["tiny-2x2"]["height"] == 2
    assert facts["blurred"]["blur_effect"] > 0.5 > facts["demo:bike/bike1.jpg"]["blur_effect"]
    assert sum("levels_colour" in c for c in REFERENCE["cases"]) == 12


def _foreground_reference(rgb: np.ndarray) -> np.ndarray:
    """The object estimate written plainly: the whole pixel-to-border distance matrix, a k-th smallest per row."""
    h, w = rgb.shape[:2]
    lab = P.rgb_to_lab(rgb).reshape(-1, 3)
    yy, xx = np.mgrid[0:h, 0:w]
    ring = max(1, int(round(P.BORDER_SHARE * min(h, w))))
    border = ((yy < ring) | (yy >= h - ring) | (xx < ring) | (xx >= w - ring)).ravel()
    ref = lab[border]
    k = max(1, int(np.ceil(P.BORDER_K_SHARE * ref.shape[0])))
    d2 = (lab**2).sum(1)[:, None] + (ref**2).sum(1)[None, :] - 2.0 * (lab @ ref.T)
    d = np.sqrt(np.partition(np.maximum(d2, 0.0), k - 1, axis=1)[:, k - 1])
    db = d[border]
    mad = np.median(np.abs(db - np.median(db))) / 0.6745
    fg = d > max(P.JND, float(np.median(db)) + 3.5 * float(mad))
    return fg.reshape(h, w) if fg.mean() >= P.MIN_FOREGROUND else np.zeros((h, w), dtype=bool)


def test_foreground_mask_equals_the_whole_matrix_computation(images):
    rng = np.random.default_rng(5)
    smalls = [P._small(P._bounded(im)) for _, im in images[::2]]
    smalls += [rng.integers(0, 256, size=(s, s, 3), dtype=np.uint8) for s in (3, 7, 20, 32, 45)]
    # few colours: ties among the distances (16-bit keys and exact values) and blocks pruned by L*
    smalls += [(rng.integers(0, 4, size=(32, 32, 3)) * 60).astype(np.uint8) for _ in range(3)]
    framed = np.full((32, 32, 3), (200, 30, 40), dtype=np.uint8)
    framed[8:24, 6:26] = rng.integers(0, 256, size=(16, 20, 3))
    smalls += [framed, np.full((32, 32, 3), 128, dtype=np.uint8)]
    for small in smalls:
        mask, share = P.foreground_mask(small)
        assert np.array_equal(mask, _foreground_reference(small))
        assert share == pytest.approx(mask.mean())


def test_kth_smallest_equals_numpy_partition():
    rng = np.random.default_rng(8)
    for t in range(60):
        n, m = int(rng.integers(1, 140)), int(rng.integers(1, 400))
        x = rng.normal(size=(n, m)) * 10.0 ** rng.uniform(-12, 5)
        if t % 3 == 1:  # ties, zeros of both signs, tiny negatives (as rounding leaves in squared distances)
            x = np.round(np.abs(x), 1) * rng.choice([1.0, -1e-13], size=(n, m))
            x[rng.random((n, m)) < 0.2] = -0.0
        if t % 3 == 2:
            x = np.repeat(rng.uniform(0, 1e4, size=(n, 1)), m, axis=1)  # a row of one value
        kth = int(rng.integers(0, m))
        assert np.array_equal(P._kth_smallest(np.ascontiguousarray(x), kth), np.partition(x, kth, axis=1)[:, kth])


def test_whole_number_helpers_equal_the_general_ones():
    rng = np.random.default_rng(9)
    for shape in ((4, 4), (37, 53), (128, 128)):
        g = rng.integers(0, 256, size=shape).astype(np.float64)
        pad = P._pad1(g)
        for axis in (0, 1):
            assert np.array_equal(P._sobel_abs4_whole(pad, axis), P._sobel_abs4(pad, axis))
        assert P._blur_effect(g, pad, whole=True) == P.blur_effect(g)
    a = rng.integers(0, 256, size=(9, 7, 3), dtype=np.uint8)
    assert np.array_equal(P._channel_min(a), a.min(axis=2))


def test_largest_square_within():
    for thr in (2.3, 5.0, 7.123456789, 31.5, 1e3 / 3):
        x0 = P._largest_square_within(thr)
        assert math.sqrt(x0) <= thr < math.sqrt(math.nextafter(x0, math.inf))


def test_blur_effect_equals_scikit_image():
    from scipy import ndimage
    from skimage.measure import blur_effect

    rng = np.random.default_rng(3)
    for t in range(40):
        shape = (int(rng.integers(8, 140)), int(rng.integers(8, 140)))
        g = np.round(ndimage.gaussian_filter(rng.integers(0, 256, shape).astype(float), rng.uniform(0, 4)))
        if g.max() == g.min():
            continue
        assert P.blur_effect(g) == pytest.approx(float(blur_effect(g, h_size=P.BLUR_H_SIZE)), rel=1e-12)
        non_integer = g / 7.0  # the helper does not rely on whole numbers
        assert P.blur_effect(non_integer) == pytest.approx(float(blur_effect(non_integer, h_size=11)), rel=1e-12)


def test_laplace_equals_scipy_on_whole_numbers():
    from scipy import ndimage

    g = np.random.default_rng(2).integers(0, 256, size=(37, 53)).astype(np.float64)
    assert np.array_equal(P._laplace(P._pad1(g)), ndimage.laplace(g))
    assert np.array_equal(P._pad1(g), np.pad(g, 1, mode="symmetric"))


@pytest.mark.parametrize("dtype, qs", [(np.float32, (5, 95)), (np.int16, (1, 95, 99)), (np.uint8, (1, 99)),
                                       (np.float64, (0, 50, 100))])
def test_percentiles_equal_numpy(dtype, qs):
    rng = np.random.default_rng(1)
    for n in (1, 2, 3, 10, 99, 4096):
        x = rng.integers(0, 256, size=(n, 3)).astype(dtype)
        if dtype == np.float32:
            x = (x @ np.array([0.299, 0.587, 0.114], dtype=np.float32))
        assert np.array_equal(P._percentiles(x, qs), np.percentile(x, qs, axis=0))


def test_median_equals_numpy():
    rng = np.random.default_rng(4)
    for n in (1, 2, 5, 348):
        v = rng.normal(size=n) * 10
        assert P._median(v) == float(np.median(v))


def test_decode_is_open_of_the_same_bytes(tmp_path):
    Image.new("RGB", (9, 7), (10, 200, 30)).save(tmp_path / "a.png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    src = ImageSource(tmp_path)
    decoded = src.decode(src.read_bytes("a.png"), "a.png")
    assert np.array_equal(np.asarray(decoded), np.asarray(src.open("a.png")))
    with pytest.raises(ImageReadError, match="empty"):
        src.decode(b"", "empty.jpg")
    row = P._row(src, "empty.jpg")
    assert not row["readable"] and "empty" in row["error"]


def test_palette_ships_its_lookup_table_and_survey_values():
    from matplotlib.colors import XKCD_COLORS

    from descluster import palette

    assert palette.LUT_FILE.is_file()
    assert np.array_equal(palette._lut(), palette.compute_lut())  # `python -m descluster.palette` rewrites it
    assert {e: XKCD_COLORS[f"xkcd:{e}"] for e in palette.SURVEY_HEX} == palette.SURVEY_HEX


def test_pixel_checks_do_not_import_matplotlib():
    code = ("import sys, numpy as np; from descluster.outliers.pixels import image_facts; from PIL import Image; "
            "image_facts(Image.new('RGB', (40, 30), (90, 20, 30))); print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_lab_of_8_bit_pixels_equals_scikit_image():
    from skimage.color import rgb2lab

    from descluster.palette import rgb_to_lab

    levels = np.arange(0, 256, 3)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).astype(np.uint8)
    assert np.array_equal(rgb_to_lab(grid), rgb2lab(grid / 255.0))
    small = np.random.default_rng(6).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    assert np.array_equal(rgb_to_lab(small), rgb2lab(small / 255.0))
    assert np.array_equal(rgb_to_lab(small.astype(np.float64)), rgb_to_lab(small))  # float input: scikit-image
