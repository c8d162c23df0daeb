"""Trace the labelling loop's first questions against baseline (d), to see where the loop falls behind.

``labelling_eval.py`` says *whether* the loop beats the naive loop (d) at every
decision count; this script says *why not* where it does not. For each seed it
runs the loop with the issue's simulated annotator
(:class:`descluster.labelling.simulate.SimulatedAnnotator`) for ``--answers``
answers and records, per answer, the question's kind and size, the true classes
of the images shown, the decisions the answer cost and the accuracy after it
(share of all images whose final label is the truth). It also runs (d)
(:func:`descluster.labelling.simulate.baseline_naive_loop`, k = 20 and 40, the
same seed) and lists every (d) point inside the traced range where (d) is ahead.

Prints a table per seed and writes ``benchmarks/results/labelling_trace.json`` (or ``--out``).
It writes nothing into the results folder (the session lives in memory).

Usage::

    python benchmarks/labelling_trace.py demo-out                      # seeds 0,1,2; 12 answers; ~2 min
    python benchmarks/labelling_trace.py demo-out --answers 30 --seeds 1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def trace(results: Path, truth_csv: Path, column: str, seed: int, answers: int) -> dict:
    """One seed: the loop's first ``answers`` answers and the (d) points they should beat."""
    from descluster.labelling.propagate import isotropic_scale
    from descluster.labelling.session import Session
    from descluster.labelling.simulate import SimulatedAnnotator, baseline_naive_loop, load_truth
    from descluster.labelling.spaces import ResultsData

    data = ResultsData(results)
    truth = load_truth(data, truth_csv, column)
    session = Session(data, db=":memory:", random_state=seed)
    session.add_task(column)
    annotator = SimulatedAnnotator(truth)
    steps, decisions = [], 0
    for i in range(answers):
        q = session.next_question(column)
        if q is None:
            break
        values, counts = np.unique(truth[np.asarray(q.shown, dtype=np.int64)].astype(str), return_counts=True)
        d = annotator.answer(session, q)
        decisions += d
        labels = session.labels(column)["label"].to_numpy(dtype=object)
        steps.append({"answer": i + 1, "kind": q.kind, "rows": len(q.rows), "shown": len(q.shown),
                      "cluster": q.meta.get("cluster"), "shown_truth": dict(zip(values.tolist(), counts.tolist())),
                      "decisions": d, "decisions_total": decisions,
                      "accuracy": float(np.mean(labels == truth))})
    session.close()
    _, y = np.unique(truth.astype(str), return_inverse=True)
    Z = isotropic_scale(data.space(data.recommended))
    ahead = []
    for k in (20, 40):
        b = baseline_naive_loop(Z, y, k, decisions, random_state=seed)
        for dec, acc in zip(b["decisions"], b["accuracy"]):
            if dec > decisions:
                break
            done = [s for s in steps if s["decisions_total"] <= dec]
            loop = done[-1]["accuracy"] if done else 0.0
            if acc > loop + 1e-12:
                ahead.append({"baseline": f"naive_loop_k{k}", "decisions": int(dec), "baseline_accuracy": float(acc),
                              "loop_accuracy": loop, "images_behind": int(round((acc - loop) * len(truth)))})
    return {"seed": seed, "column": column, "n_images": int(len(truth)), "space": data.recommended,
            "steps": steps, "baseline_ahead": ahead}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path, help="results folder of `descluster demo` (or `descluster run`)")
    ap.add_argument("--truth", type=Path, default=REPO / "data" / "tiny-vehicles" / "labels.csv")
    ap.add_argument("--column", default="vehicle_type")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--answers", type=int, default=12)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "labelling_trace.json")
    args = ap.parse_args(argv)

    from descluster.io.atomic import write_json
    from machine import machine_facts

    from descluster.errors import DesclusterError

    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        ap.error(f"--seeds: integers separated by commas, got {args.seeds!r}")
    if args.answers < 1:
        ap.error(f"--answers: at least 1, got {args.answers}")
    report = {"machine": machine_facts(), "results": str(args.results), "column": args.column, "runs": []}
    for seed in seeds:
        t0 = time.perf_counter()
        try:
            r = trace(args.results, args.truth, args.column, seed, args.answers)
        except DesclusterError as exc:
            print(f"labelling_trace: error: {exc}", file=sys.stderr)
            return 2
        r["wall_s"] = round(time.perf_counter() - t0, 1)
        report["runs"].append(r)
        print(f"\nseed {seed}: {r['column']}, {r['n_images']:,} images, space {r['space']} ({r['wall_s']} s)")
        print(f"{'#':>3} {'kind':9} {'rows':>5} {'shown':>5} {'dec':>4} {'total':>5} {'accuracy':>8}  true classes shown")
        for s in r["steps"]:
            print(f"{s['answer']:>3} {s['kind']:9} {s['rows']:>5} {s['shown']:>5} {s['decisions']:>4} "
                  f"{s['decisions_total']:>5} {s['accuracy']:>8.4f}  {s['shown_truth']}")
        for a in r["baseline_ahead"] or [None]:
            print("  (d) is behind or level at every one of its points in this range" if a is None else
                  f"  {a['baseline']} ahead at decision {a['decisions']}: {a['baseline_accuracy']:.5f} vs "
                  f"{a['loop_accuracy']:.5f} ({a['images_behind']} images)")
        write_json(args.out, report)
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
