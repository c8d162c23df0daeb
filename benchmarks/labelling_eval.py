"""Measure the labelling loop in human decisions on the built-in data, and on attributes it was not tuned on.

Runs ``descluster.labelling.simulate`` (the issue's simulated annotator) on a
results folder of ``descluster demo`` for:

* ``vehicle_type`` from ``data/tiny-vehicles/labels.csv`` (the acceptance task), over
  ``--seeds`` seeds, with the baselines (a)-(d) of the issue;
* ``centre_colour``: an attribute the engine was never tuned on, made here from the
  pixels (not the descriptors): the named colour (``descluster.interpret.PALETTE``,
  nearest in sRGB) of the median pixel of each image's central half;
* optionally (``--synthetic RESULTS:TRUTH.csv:COLUMN``) any other results folder, e.g. a
  ``benchmarks/make_case.py`` case with its planted ``cluster`` truth;
* the four propagation strategies on ``vehicle_type`` and ``centre_colour`` (seed 0,
  no baselines), to say which spreads labels best.

The results folder is copied first (the simulation writes its curve files there).
Prints tables and writes ``benchmarks/results/labelling_demo.json`` (or ``--out``).

Usage::

    python benchmarks/labelling_eval.py /work/demo-out            # ~20-40 min on 2 busy cores
    python benchmarks/labelling_eval.py OUT --seeds 0 --no-propagations
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

TARGETS = {"0.90": 100, "0.95": 250, "0.98": 450, "0.99": 700}


def centre_colour(results: Path, out_csv: Path) -> Path:
    """Write ``path,centre_colour``: the palette name of the median pixel of each image's central half."""
    from descluster.interpret import colour_name
    from descluster.labelling.spaces import ResultsData

    data = ResultsData(results)
    src = data.image_source()
    names = []
    for p in data.paths:
        a = src.read_rgb(p)
        h, w = a.shape[:2]
        names.append(colour_name(np.median(a[h // 4: 3 * h // 4, w // 4: 3 * w // 4].reshape(-1, 3), axis=0)))
    pd.DataFrame({"path": data.paths, "centre_colour": names}).to_csv(out_csv, index=False)
    return out_csv


def copy_results(src: Path, dest: Path) -> Path:
    """Copy what the engine reads (CSV, manifest, the reduce cache) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for f in src.glob("*.csv"):
        shutil.copy2(f, dest / f.name)
    shutil.copy2(src / "manifest.json", dest / "manifest.json")
    if (src / ".cache" / "reduce").is_dir():
        shutil.copytree(src / ".cache" / "reduce", dest / ".cache" / "reduce", dirs_exist_ok=True)
    return dest


def run(results: Path, truth: Path, column: str, seed: int, baselines: bool, budget: int, propagation="smoothed",
        identity: bool = False):
    from descluster.labelling.simulate import simulate

    t0 = time.perf_counter()
    r = simulate(results, truth, column, budget=budget, random_state=seed, baselines=baselines,
                 propagation=propagation, write=baselines, identity=identity)
    s = dict(r.summary)
    s["seed"], s["wall_s"], s["identity"] = seed, round(time.perf_counter() - t0, 1), identity
    if baselines:
        s["curve"] = r.curve.round(5).to_dict("list")
        s["baseline_curves"] = {k: v.round(5).to_dict("list") for k, v in r.baselines.items()}
    return s


def fmt(v) -> str:
    return "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path, help="results folder of `descluster demo`")
    ap.add_argument("--truth", type=Path, default=REPO / "data" / "tiny-vehicles" / "labels.csv")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--budget", type=int, default=900)
    ap.add_argument("--synthetic", action="append", default=[],
                    help="RESULTS:TRUTH.csv:COLUMN[:identity], repeatable (':identity' spreads labels per object)")
    ap.add_argument("--no-propagations", action="store_true")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "labelling_demo.json")
    args = ap.parse_args(argv)

    from descluster.io.atomic import write_json
    from machine import machine_facts

    facts = machine_facts()
    seeds = [int(s) for s in args.seeds.split(",")]
    report: dict = {"machine": facts, "targets": TARGETS, "runs": [], "propagations": []}
    with tempfile.TemporaryDirectory(prefix="labelling-eval-") as tmp:
        res = copy_results(args.results, Path(tmp) / "demo")
        colour = centre_colour(res, Path(tmp) / "centre_colour.csv")
        report["centre_colour_classes"] = pd.read_csv(colour)["centre_colour"].value_counts().to_dict()
        tasks = [("demo", res, args.truth, "vehicle_type", seeds, False),
                 ("demo", res, colour, "centre_colour", seeds[:1], False)]
        for spec in args.synthetic:
            r, t, c, *flag = spec.split(":")
            tasks.append(("synthetic", copy_results(Path(r), Path(tmp) / f"syn{len(tasks)}"), Path(t), c, seeds[:1],
                          flag == ["identity"]))
        for name, r, t, c, ss, ident in tasks:
            for seed in ss:
                s = run(r, t, c, seed, baselines=True, budget=args.budget, identity=ident)
                s["data"] = name
                report["runs"].append(s)
                print(f"{name} {c}{' (identity)' if ident else ''} seed {seed}: decisions to 0.90/0.95/0.98/0.99 = "
                      f"{[s['decisions_to'][k] for k in TARGETS]}; accuracy at {list(s['accuracy_at'])} = "
                      f"{[fmt(v) for v in s['accuracy_at'].values()]}; estimate error after 100 <= "
                      f"{fmt(s['estimate_error_max_after_100'])}; beats (d): {s.get('beats_naive_loop')}; "
                      f"{s['wall_s']} s", flush=True)
            write_json(args.out, report)
        if not args.no_propagations:
            for c, t in (("vehicle_type", args.truth), ("centre_colour", colour)):
                for prop in ("smoothed", "logistic", "spreading", "knn"):
                    s = run(res, t, c, 0, baselines=False, budget=min(args.budget, 500), propagation=prop)
                    report["propagations"].append({"column": c, "propagation": prop, "decisions_to": s["decisions_to"],
                                                   "accuracy_at": s["accuracy_at"], "wall_s": s["wall_s"]})
                    print(f"propagation {prop:<10} {c:<14} decisions to targets "
                          f"{[s['decisions_to'][k] for k in TARGETS]}, accuracy at {list(s['accuracy_at'])} = "
                          f"{[fmt(v) for v in s['accuracy_at'].values()]}", flush=True)
                    write_json(args.out, report)
    veh = [r for r in report["runs"] if r["column"] == "vehicle_type"]
    print("\nvehicle_type, median over seeds (decisions to reach accuracy; lower is better):")
    print(f"{'method':<28}" + "".join(f"{k:>8}" for k in TARGETS))
    med = {k: int(np.median([r["decisions_to"][k] if r["decisions_to"][k] is not None else 10**6 for r in veh]))
           for k in TARGETS}
    print(f"{'descluster loop':<28}" + "".join(f"{(v if v < 10**6 else '-'):>8}" for v in med.values()))
    for b, v in veh[0]["baselines"].items():
        print(f"{b:<28}" + "".join(f"{fmt(v['decisions_to'][k]):>8}" for k in TARGETS))
    print(f"{'target (issue)':<28}" + "".join(f"{v:>8}" for v in TARGETS.values()))
    write_json(args.out, report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
