"""JPEG decode throughput of a case's images against the pixel checks' throughput, one process.

Times, on the first ``--images`` images of the case (read through ``io.images.ImageSource``):
reading the bytes, the full decode (``ImageSource.open``), the decode with PIL's ``draft()``
(JPEG DCT scaling to the smallest scale >= 128 px, the checks' working size), and the pixel
checks of one image (``outliers.pixels._row``: bytes, SHA-1, decode, ``image_facts``). The checks'
share of the decode limit is ``decode images/s / checks images/s``.

Each stage is timed in wall-clock and in CPU seconds of this process (``time.process_time``): on a
shared machine the CPU time is the steadier measure of the work per image (the wall clock also counts
the time other processes held the core). The load average is recorded at the start and the end.

``--baseline-src DIR`` also times the pixel checks of another version of the package (``DIR`` put first
on ``PYTHONPATH``, e.g. a checkout of the code before a change) on the same images, in a subprocess,
alternating with this version's for ``--rounds`` rounds, so that both see the same load; the table gives
the best round of each.

``CASE`` is a case folder (``images_paths.csv`` and ``row_data/``) or an image folder with a
``labels.csv`` whose ``path`` column names the images (``data/tiny-vehicles``).

Usage::

    python benchmarks/decode_bench.py /tmp/case104k --images 2000 --name decode-104078
    python benchmarks/decode_bench.py /work/scratch/case2k --images 2000 --baseline-src /tmp/main/src \\
        --rounds 2 --name decode-2000
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_facts  # noqa: E402  (benchmarks/machine.py)

RESULTS = Path(__file__).resolve().parent / "results"


def _source_and_paths(case: Path, n: int):
    import pandas as pd

    from descluster.io.images import ImageSource

    if (case / "images_paths.csv").is_file():
        zips = sorted((case / "row_data").glob("*.zip"))
        src = ImageSource(zips[0] if zips else case / "row_data")
        paths = pd.read_csv(case / "images_paths.csv").iloc[:, 0].astype(str).tolist()
    else:
        src = ImageSource(case)
        paths = pd.read_csv(case / "labels.csv")["path"].astype(str).tolist()
    return src, paths[:n]


def _timed(fn, items) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    for x in items:
        fn(x)
    return time.perf_counter() - w, time.process_time() - c


def checks_only(case: Path, n: int) -> dict:
    """Wall and CPU seconds of the pixel checks (``_row``) of the first ``n`` images, after one warm-up image."""
    import descluster
    from descluster.outliers.pixels import _row

    src, paths = _source_and_paths(case, n)
    w0 = time.perf_counter()
    _row(src, paths[0])  # imports, the palette table: once per process
    first = time.perf_counter() - w0
    wall, cpu = _timed(lambda p: _row(src, p), paths)
    return {"package": str(Path(descluster.__file__).parent), "images": len(paths), "wall_s": wall, "cpu_s": cpu,
            "first_image_s": first}


def _run_checks(case: Path, n: int, src_dir: str | None) -> dict:
    env = dict(os.environ)
    if src_dir is not None:
        env["PYTHONPATH"] = os.pathsep.join([src_dir, *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]])
    out = subprocess.run([sys.executable, __file__, str(case), "--images", str(n), "--checks-only"], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("case", type=Path)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--name", default=None)
    ap.add_argument("--baseline-src", default=None, help="package source folder of the version to compare with")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--checks-only", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.checks_only:
        print(json.dumps(checks_only(a.case, a.images)))
        return 0
    from PIL import Image

    from descluster.io.atomic import write_json

    src, paths = _source_and_paths(a.case, a.images)
    la = os.getloadavg()
    wall, cpu = {}, {}
    w, c = time.perf_counter(), time.process_time()
    blobs = [src.read_bytes(p) for p in paths]
    wall["read_bytes"], cpu["read_bytes"] = time.perf_counter() - w, time.process_time() - c
    wall["decode_full"], cpu["decode_full"] = _timed(src.open, paths)

    def draft(b):
        with Image.open(io.BytesIO(b)) as im:
            im.draft("RGB", (128, 128))
            im.load()

    wall["decode_draft_128"], cpu["decode_draft_128"] = _timed(draft, blobs)
    runs = {"this": [], "baseline": []}
    for _ in range(max(1, a.rounds)):
        if a.baseline_src:
            runs["baseline"].append(_run_checks(a.case, len(paths), a.baseline_src) | {"load_avg": os.getloadavg()})
        runs["this"].append(_run_checks(a.case, len(paths), None) | {"load_avg": os.getloadavg()})
    for key, label in (("this", "pixel_checks"), ("baseline", "pixel_checks_baseline")):
        if runs[key]:
            wall[label] = min(r["wall_s"] for r in runs[key])
            cpu[label] = min(r["cpu_s"] for r in runs[key])
    n = len(paths)
    rates = {k: n / v for k, v in wall.items()}
    cpu_rates = {k: n / v for k, v in cpu.items()}
    size = Image.open(io.BytesIO(blobs[0])).size
    res = {"case": str(a.case), "images": n, "image_size": list(size), "load_avg_start": la,
           "load_avg_end": os.getloadavg(), "cpu_count": os.cpu_count(), "seconds": wall, "cpu_seconds": cpu,
           "images_per_s": rates, "images_per_cpu_s": cpu_rates,
           "checks_share_of_decode_limit": rates["pixel_checks"] / rates["decode_full"],
           "checks_cpu_share_of_decode_limit": cpu_rates["pixel_checks"] / cpu_rates["decode_full"],
           "rounds": runs, "baseline_src": a.baseline_src, "machine": machine_facts(),
           "note": "one process per stage; the pixel checks run in a fresh subprocess each round (best round given), "
                   "after one warm-up image (imports, palette table); draft() cannot scale a JPEG below its own size, "
                   "so for thumbnails no larger than 128 px it changes nothing"}
    if runs["baseline"]:
        res["speedup_cpu"] = cpu["pixel_checks_baseline"] / cpu["pixel_checks"]
        res["speedup_wall"] = wall["pixel_checks_baseline"] / wall["pixel_checks"]
    print(f"{'stage':24s} {'images/s':>10s} {'images/cpu-s':>13s}")
    for k in wall:
        print(f"{k:24s} {rates[k]:10,.0f} {cpu_rates[k]:13,.0f}")
    print(f"pixel checks run at {res['checks_cpu_share_of_decode_limit']:.1%} of the full-decode rate (CPU time)")
    if runs["baseline"]:
        print(f"speed-up over the baseline: {res['speedup_cpu']:.2f}x CPU time, {res['speedup_wall']:.2f}x wall clock")
    print(f"load average {la[0]:.1f} at the start, {res['load_avg_end'][0]:.1f} at the end ({os.cpu_count()} cores)")
    if a.name:
        write_json(RESULTS / f"{a.name}.json", res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
