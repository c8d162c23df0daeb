"""JPEG decode throughput of a case's images against the pixel checks' throughput, one process.

Times, on the first ``--images`` images of the case (read through ``io.images.ImageSource``):
reading the bytes, the full decode (``ImageSource.open``), the decode with PIL's ``draft()``
(JPEG DCT scaling to the smallest scale >= 128 px, the checks' working size), and the pixel
checks of one image (``outliers.pixels._row``: bytes, SHA-1, decode, ``image_facts``). The checks'
share of the decode limit is ``decode images/s / checks images/s``.

Usage::

    python benchmarks/decode_bench.py /tmp/case104k --images 2000 --name decode-104078
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("case", type=Path)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--name", default=None)
    a = ap.parse_args(argv)
    import pandas as pd
    from PIL import Image

    from descluster.io.atomic import write_json
    from descluster.io.images import ImageSource
    from descluster.outliers.pixels import _row

    zips = sorted((a.case / "row_data").glob("*.zip"))
    src = ImageSource(zips[0] if zips else a.case / "row_data")
    paths = pd.read_csv(a.case / "images_paths.csv").iloc[:, 0].astype(str).tolist()[:a.images]
    la = os.getloadavg()
    out = {}
    t = time.perf_counter()
    blobs = [src.read_bytes(p) for p in paths]
    out["read_bytes"] = time.perf_counter() - t
    t = time.perf_counter()
    for p in paths:
        src.open(p)
    out["decode_full"] = time.perf_counter() - t
    t = time.perf_counter()
    for b in blobs:
        with Image.open(io.BytesIO(b)) as im:
            im.draft("RGB", (128, 128))
            im.load()
    out["decode_draft_128"] = time.perf_counter() - t
    t = time.perf_counter()
    for p in paths:
        _row(src, p)
    out["pixel_checks"] = time.perf_counter() - t
    rates = {k: len(paths) / v for k, v in out.items()}
    size = Image.open(io.BytesIO(blobs[0])).size
    res = {"case": str(a.case), "images": len(paths), "image_size": list(size), "load_avg_start": la,
           "load_avg_end": os.getloadavg(), "cpu_count": os.cpu_count(), "seconds": out,
           "images_per_s": rates, "checks_share_of_decode_limit": rates["pixel_checks"] / rates["decode_full"],
           "note": "one process; draft() cannot scale a JPEG below its own size, so for thumbnails no larger than "
                   "128 px it changes nothing"}
    for k, v in rates.items():
        print(f"{k:18s} {v:10,.0f} images/s")
    print(f"pixel checks run at {res['checks_share_of_decode_limit']:.1%} of the full-decode rate")
    if a.name:
        write_json(RESULTS / f"{a.name}.json", res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
