"""Tests of descluster.io.images: folder/zip sources, path safety, conversion to 8-bit RGB."""

from __future__ import annotations

import io
import pickle
import zipfile

import numpy as np
import pytest
from PIL import Image

from descluster.errors import ImageReadError, UnsafePathError
from descluster.io.images import ImageSource, normalise_case_path, to_rgb8


def _jpeg(colour=(200, 30, 40), size=(8, 6)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "JPEG", quality=95)
    return buf.getvalue()


@pytest.fixture
def zip_with_top(tmp_path):
    path = tmp_path / "images.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("veriwild/1/00001/000001.jpg", _jpeg())
        zf.writestr("veriwild/1/00002/000002.jpg", _jpeg((0, 0, 255)))
        zf.writestr("veriwild/readme.txt", b"not an image")
    return path


@pytest.mark.parametrize(
    "case_path",
    ["veriwild/1/00001/000001.jpg", "1/00001/000001.jpg", r"veriwild\1\00001\000001.jpg", r"1\00001\000001.jpg"],
)
def test_zip_paths_with_and_without_top_folder(zip_with_top, case_path):
    src = ImageSource(zip_with_top)
    assert src.is_zip and src.exists(case_path)
    rgb = src.read_rgb(case_path)
    assert rgb.shape == (6, 8, 3) and rgb.dtype == np.uint8
    assert abs(int(rgb[..., 0].mean()) - 200) < 10 and abs(int(rgb[..., 2].mean()) - 40) < 10


def test_zip_without_top_folder_accepts_prefixed_case_path(tmp_path):
    path = tmp_path / "flat.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("1/a.jpg", _jpeg())
        zf.writestr("2/b.jpg", _jpeg())
    src = ImageSource(path)
    assert src.exists("veriwild/1/a.jpg") and src.exists("2/b.jpg")
    assert src.missing(["1/a.jpg", "3/c.jpg", r"x\2\b.jpg"]) == ["3/c.jpg"]
    assert src.list_images() == ["1/a.jpg", "2/b.jpg"]


def test_zip_source_survives_pickling(zip_with_top):
    src = ImageSource(zip_with_top)
    src.read_bytes("1/00001/000001.jpg")
    clone = pickle.loads(pickle.dumps(src))
    assert clone.read_rgb("1/00002/000002.jpg")[0, 0, 2] > 200


@pytest.mark.parametrize("bad", ["../secret.txt", "a/../../secret.txt", "/etc/passwd", r"C:\secret.txt", r"..\secret.txt", ""])
def test_unsafe_paths_refused(tmp_path, bad):
    (tmp_path / "secret.txt").write_text("secret")
    root = tmp_path / "images"
    root.mkdir()
    (root / "a").mkdir()
    src = ImageSource(root)
    with pytest.raises(UnsafePathError):
        src.read_bytes(bad)
    assert not src.exists(bad)
    with pytest.raises(UnsafePathError):
        normalise_case_path(bad)


def test_zip_member_with_dotdot_is_never_reachable(tmp_path):
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ok/a.jpg", _jpeg())
        zf.writestr("../escape.jpg", _jpeg())
    src = ImageSource(path)
    with pytest.raises(UnsafePathError):
        src.read_bytes("../escape.jpg")
    assert not (tmp_path.parent / "escape.jpg").exists()


def test_normalise_case_path():
    assert normalise_case_path(r" veriwild\1\.\x.jpg ") == "veriwild/1/x.jpg"
    assert normalise_case_path("a//b/c.png") == "a/b/c.png"


def test_folder_source_backslash_and_missing(tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "001.jpg").write_bytes(_jpeg())
    src = ImageSource(tmp_path)
    assert src.exists(r"cat\001.jpg") and src.exists("images/cat/001.jpg")
    assert src.missing([r"cat\001.jpg", r"cat\002.jpg"]) == [r"cat\002.jpg"]
    with pytest.raises(ImageReadError, match=r"cat\\002\.jpg: not found"):
        src.read_bytes(r"cat\002.jpg")
    assert src.list_images() == ["cat/001.jpg"]


def test_missing_root():
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageSource("/no/such/folder")


def _reload(image: Image.Image, fmt: str, **kw) -> Image.Image:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    buf.seek(0)
    out = Image.open(buf)
    out.load()
    return out


def _rgb(image):
    out = to_rgb8(image)
    assert out.mode == "RGB" and out.size == image.size
    arr = np.asarray(out)
    assert arr.dtype == np.uint8 and arr.shape == (image.size[1], image.size[0], 3)
    return arr


def test_rgba_transparent_is_white_opaque_kept():
    im = Image.new("RGBA", (5, 4), (255, 0, 0, 0))
    im.putpixel((1, 1), (10, 200, 30, 255))
    arr = _rgb(_reload(im, "PNG"))
    assert tuple(arr[0, 0]) == (255, 255, 255) and tuple(arr[1, 1]) == (10, 200, 30)


def test_cmyk_jpeg():
    im = _reload(Image.new("CMYK", (6, 5), (0, 255, 255, 0)), "JPEG", quality=95)  # pure red ink
    assert im.mode == "CMYK"
    r, g, b = _rgb(im)[2, 2].astype(int)
    assert r > 200 and g < 60 and b < 60


def test_16bit_png():
    a = np.zeros((3, 4), dtype=np.uint16)
    a[0, 0], a[1, 1] = 65535, 32768
    im = _reload(Image.fromarray(a), "PNG")
    assert im.mode.startswith("I")
    arr = _rgb(im)
    assert tuple(arr[0, 0]) == (255, 255, 255) and tuple(arr[2, 2]) == (0, 0, 0) and arr[1, 1, 0] == 128
    assert tuple(_rgb(_reload(Image.fromarray(np.full((2, 2), 65535, np.uint16)), "PNG"))[0, 0]) == (255, 255, 255)


def test_palette_with_and_without_transparency():
    im = Image.new("P", (4, 4), 1)
    im.putpalette([0, 0, 0, 0, 128, 255] + [0] * 762)
    assert tuple(_rgb(_reload(im, "PNG"))[0, 0]) == (0, 128, 255)
    im.info["transparency"] = 1
    assert tuple(_rgb(_reload(im, "PNG", transparency=1))[0, 0]) == (255, 255, 255)


@pytest.mark.parametrize("mode, value, expected", [("L", 77, 77), ("1", 1, 255), ("LA", (90, 255), 90)])
def test_grey_scale_modes(mode, value, expected):
    arr = _rgb(Image.new(mode, (3, 2), value))
    assert (arr == expected).all()


def test_truncated_jpeg_and_empty_file_raise(tmp_path):
    data = _jpeg(size=(64, 64))
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_bytes(b"hello")
    src = ImageSource(tmp_path)
    with pytest.raises(ImageReadError, match=r"cut\.jpg: cannot decode"):
        src.open("cut.jpg")
    with pytest.raises(ImageReadError, match=r"empty\.jpg: file is empty \(0 bytes\)"):
        src.read_rgb("empty.jpg")
    with pytest.raises(ImageReadError, match=r"text\.jpg: cannot decode"):
        src.thumbnail("text.jpg")


def test_thumbnail_bounds_longer_side(tmp_path):
    (tmp_path / "big.jpg").write_bytes(_jpeg(size=(300, 120)))
    th = ImageSource(tmp_path).thumbnail("big.jpg", size=96)
    assert th.mode == "RGB" and max(th.size) == 96 and th.size[0] == 96
