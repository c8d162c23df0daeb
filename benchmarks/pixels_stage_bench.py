"""The outlier step's pixel part end to end, as the pipeline runs it, for this version and a baseline.

Loads the case with ``descluster.case.load_case`` and runs
``outliers.pixels.image_quality_table(case.images, case.paths, progress=False)`` with the pipeline's
defaults (its worker processes included: their start, the first pass, and the second, colour-naming pass
when the collection has camera levels), in a fresh subprocess per run, alternating this version and the
baseline (``--baseline-src DIR``, put first on ``PYTHONPATH``) for ``--rounds`` rounds. It records the
wall time of each run, the load average around it, and whether the two versions' tables are equal
(every column, bit for bit; NaN equal to NaN).

Usage::

    python benchmarks/pixels_stage_bench.py /work/scratch/case2k --baseline-src /tmp/main/src --name pixels-stage-2000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_facts  # noqa: E402  (benchmarks/machine.py)

RESULTS = Path(__file__).resolve().parent / "results"


def stage_only(case: Path, out: Path) -> dict:
    """Time the pixel stage on ``case`` in this process and pickle its table to ``out``."""
    import descluster
    from descluster.case import load_case
    from descluster.outliers.pixels import image_quality_table

    t0 = time.perf_counter()
    c = load_case(case)
    t1 = time.perf_counter()
    table = image_quality_table(c.images, list(c.paths), progress=False)
    t2 = time.perf_counter()
    table.to_pickle(out)
    return {"package": str(Path(descluster.__file__).parent), "rows": len(table), "load_case_s": t1 - t0,
            "pixel_stage_s": t2 - t1, "images_per_s": len(table) / (t2 - t1), "cpu_count": os.cpu_count()}


def _run(case: Path, out: Path, src_dir: str | None) -> dict:
    env = dict(os.environ)
    if src_dir is not None:
        env["PYTHONPATH"] = os.pathsep.join([src_dir, *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]])
    la = os.getloadavg()
    res = subprocess.run([sys.executable, __file__, str(case), "--stage-only", str(out)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1]) | {"load_avg_start": la, "load_avg_end": os.getloadavg()}


def _tables_equal(a, b) -> dict:
    import numpy as np

    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return {"equal": False, "why": "columns or rows differ"}
    differing = {}
    for col in a.columns:
        x, y = a[col], b[col]
        if x.dtype.kind == "f" and y.dtype.kind == "f":
            same = (x.to_numpy() == y.to_numpy()) | (np.isnan(x.to_numpy()) & np.isnan(y.to_numpy()))
        else:
            same = (x.astype(str) == y.astype(str)).to_numpy()
        if not same.all():
            differing[col] = int((~same).sum())
    return {"equal": not differing, "differing_cells": differing}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("case", type=Path)
    ap.add_argument("--baseline-src", default=None)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--name", default=None)
    ap.add_argument("--stage-only", type=Path, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.stage_only is not None:
        print(json.dumps(stage_only(a.case, a.stage_only)))
        return 0
    import pandas as pd

    from descluster.io.atomic import write_json

    runs = {"this": [], "baseline": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(max(1, a.rounds)):
            if a.baseline_src:
                runs["baseline"].append(_run(a.case, Path(tmp) / "baseline.pkl", a.baseline_src))
            runs["this"].append(_run(a.case, Path(tmp) / "this.pkl", None))
        parity = (_tables_equal(pd.read_pickle(Path(tmp) / "this.pkl"), pd.read_pickle(Path(tmp) / "baseline.pkl"))
                  if a.baseline_src else None)
    res = {"case": str(a.case), "rows": runs["this"][0]["rows"], "cpu_count": os.cpu_count(), "runs": runs,
           "baseline_src": a.baseline_src, "tables": parity, "machine": machine_facts(),
           "best_s": {k: min(r["pixel_stage_s"] for r in v) for k, v in runs.items() if v}}
    print(f"{'version':10s} {'best s':>8s} {'images/s':>9s}   load average (start of each run)")
    for k, v in runs.items():
        if v:
            best = res["best_s"][k]
            print(f"{k:10s} {best:8.1f} {res['rows'] / best:9.0f}   "
                  + ", ".join(f"{r['load_avg_start'][0]:.1f}" for r in v))
    if parity is not None:
        res["speedup"] = res["best_s"]["baseline"] / res["best_s"]["this"]
        print(f"speed-up {res['speedup']:.2f}x; tables equal: {parity['equal']} {parity.get('differing_cells') or ''}")
    if a.name:
        write_json(RESULTS / f"{a.name}.json", res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
