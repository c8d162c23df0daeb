"""Reference pixel facts for the equivalence test of the pixel checks (``tests/test_pixel_facts_reference.py``).

Builds a fixed set of images from the demo crops only (no external data) -- 40 demo crops
(100×100, every 120th of ``data/tiny-vehicles/labels.csv``), 12 of them as 64×64 JPEG
thumbnails (a plain resize and JPEG at quality 85, without make_case.py's per-row jitter), 4 JPEG
noise thumbnails, and synthetic frames (all white, all black, flat grey, equal-channel grey,
blurred, half clipped, dark, a 700×500 upscale that the checks bound to 512 px, a 20×90 strip, an
8×8 and a 2×2 image) -- and writes, for each, the SHA-1 of its decoded pixels and
``descluster.outliers.pixels.image_facts`` of it; for 12 of them also ``colour_facts`` after
fixed camera levels. The test rebuilds the same images and compares; an image whose decoded
pixels differ from the fixture's (another Pillow/libjpeg or NumPy random stream) is skipped, not
failed.

``tests/data/pixel_facts_reference.json`` was written by this script with the pixel checks as
they were before the speed-up of issue 17 (``main`` at a5259a9)::

    PYTHONPATH=src python benchmarks/pixel_facts_fixture.py tests/data/pixel_facts_reference.json
"""

from __future__ import annotations

import argparse
import hashlib
import io
import math
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "data" / "tiny-vehicles"
#: Camera levels (black row, white row; R, G, B) of the levels cases.
LEVELS = [[14.0, 9.0, 6.0], [238.0, 246.0, 231.0]]


def _jpeg(image, quality: int = 85):
    from PIL import Image

    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        im.load()
        return im.convert("RGB")


def reference_images() -> list[tuple[str, object]]:
    """The fixture's images: ``(name, PIL RGB image)`` in a fixed order (see the module notes)."""
    import pandas as pd
    from PIL import Image, ImageFilter

    paths = pd.read_csv(DEMO / "labels.csv")["path"].astype(str).tolist()[::120][:40]
    demo = []
    for p in paths:
        with Image.open(DEMO / p) as im:
            demo.append((f"demo:{p}", im.convert("RGB")))
    out = list(demo)
    out += [(f"thumb64:{n[5:]}", _jpeg(im.resize((64, 64)))) for n, im in demo[::3][:12]]
    rng = np.random.default_rng(17)
    out += [(f"noise64:{i}", _jpeg(Image.fromarray(rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8))))
            for i in range(4)]
    base = demo[5][1]
    a = np.asarray(base, dtype=np.uint8)
    half = a.copy()
    half[: a.shape[0] // 2] = 255
    ramp = np.add.outer(np.arange(64), np.arange(64)).astype(np.uint8) * 2
    out += [
        ("white", Image.new("RGB", (64, 64), (255, 255, 255))),
        ("black", Image.new("RGB", (64, 64), (0, 0, 0))),
        ("flat-grey", Image.new("RGB", (64, 64), (128, 128, 128))),
        ("grey-ramp", Image.fromarray(np.repeat(ramp[:, :, None], 3, axis=2))),
        ("grey-demo", base.convert("L").convert("RGB")),
        ("blurred", base.filter(ImageFilter.GaussianBlur(3))),
        ("blurred-thumb", _jpeg(demo[11][1].resize((64, 64)).filter(ImageFilter.GaussianBlur(2)))),
        ("half-clipped", Image.fromarray(half)),
        ("dark", Image.fromarray((a // 10).astype(np.uint8))),
        ("large-700x500", demo[7][1].resize((700, 500), Image.Resampling.BICUBIC)),
        ("strip-20x90", demo[9][1].resize((20, 90))),
        ("tiny-8x8", demo[13][1].resize((8, 8))),
        ("tiny-2x2", demo[15][1].resize((2, 2))),
    ]
    return out


def pixel_sha1(image) -> str:
    """SHA-1 of the decoded pixels (shape and bytes) of an image."""
    a = np.ascontiguousarray(np.asarray(image, dtype=np.uint8))
    return hashlib.sha1(repr(a.shape).encode() + a.tobytes()).hexdigest()


def _plain(v):
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return None if math.isnan(v) else float(v)
    return v


def compute(image) -> dict:
    """``image_facts`` of one image (NaN as None), or ``{"error": ...}`` when it raises."""
    from descluster.outliers.pixels import image_facts

    try:
        return {k: _plain(v) for k, v in image_facts(image).items()}
    except Exception as exc:  # the failure is the reference
        return {"error": f"{type(exc).__name__}: {exc}"}


def compute_levels(image) -> dict:
    """``colour_facts`` after :data:`LEVELS`, on the checks' small copy of the image."""
    from descluster.outliers.pixels import _bounded, _small, colour_facts

    return {k: _plain(v) for k, v in colour_facts(_small(_bounded(image)), np.array(LEVELS)).items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    a = ap.parse_args(argv)
    from descluster.io.atomic import write_json

    cases = []
    for i, (name, image) in enumerate(reference_images()):
        row = {"name": name, "pixel_sha1": pixel_sha1(image), "facts": compute(image)}
        if i % 6 == 0 and "error" not in row["facts"]:
            row["levels_colour"] = compute_levels(image)
        cases.append(row)
    write_json(a.out, {"levels": LEVELS, "cases": cases})
    print(f"{len(cases)} images -> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
