"""Time the labelling engine's answer -> next-question path at VeRi-Wild scale (416,314 rows).

What is timed is the engine's own per-answer work, on a results folder built
here with the shapes of a real one: ``--rows`` rows, a ``--dims``-wide
float32 space (Gaussian clusters, seeded), the study's clustering (k = 30) and a
7-nearest-neighbour graph. To keep the script minutes long, the graph is drawn
*within* each cluster (random members) instead of searched (a real search at
this size is the outlier step's job and is timed by ``knn_bench.py``); the
engine's costs depend on the graph's shape (rows x 7 edges), not on which rows
the edges join. A simulated annotator answers from the planted clusters (10
classes: cluster mod 10).

Measured, for a session in ``refit="background"`` mode (what the local app uses):

* ``answer_ms``: ``Session.answer`` (validation, SQLite commit in WAL mode, fold of the entry);
* ``next_question_ms``: ``Session.next_question`` right after (the question choice on the
  newest finished fit, O(n) NumPy work, plus storing the question);
* ``refit_s``: one propagation fit (logistic regression on the answered rows, probabilities
  for every row, 30 smoothing steps over the graph), run in the background thread;
* peak resident memory of the process (psutil).

Prints a table and writes ``benchmarks/results/labelling_bench.json`` (or ``--out``).

Usage::

    python benchmarks/labelling_bench.py                      # 416,314 rows, ~3-6 min on 2 cores
    python benchmarks/labelling_bench.py --rows 50000 --answers 20
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def build_results(root: Path, n: int, d: int, k: int = 30, seed: int = 0) -> np.ndarray:
    """Write a minimal results folder at ``root``; returns the planted cluster of every row."""
    from descluster.io.atomic import write_csv, write_json, write_npy
    from descluster.labelling.spaces import GRAPH_NEIGHBOURS, ResultsData

    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, k, size=n)
    paths = [f"part/{i // 8:06d}/{i:07d}.jpg" for i in range(n)]
    root.mkdir(parents=True, exist_ok=True)
    write_csv(root / "clusters.csv", pd.DataFrame({"path": paths, "cluster": cluster}))
    write_csv(root / "comparison.csv", pd.DataFrame([{"descriptor": "synthetic", "preprocessing": "none",
                                                      "algorithm": "kmeans", "recommended": True, "score": 1.0}]))
    write_json(root / "manifest.json", {"case": {"root": str(root / "case"), "images": None,
                                                 "descriptor_sha256": {"synthetic": "0" * 64}, "dropped_rows": []},
                                        "parameters": {"preprocessings": []}})
    data = ResultsData(root)
    key = data.recommended
    centres = rng.normal(size=(k, d)).astype(np.float32) * 3
    X = np.empty((n, d), np.float32)
    for s in range(0, n, 65536):
        e = min(s + 65536, n)
        X[s:e] = centres[cluster[s:e]] + rng.normal(size=(e - s, d)).astype(np.float32)
    tag = data._space_tag(key)
    write_npy(root / ".cache" / "labelling" / f"space-{tag}.npy", X)
    I = np.empty((n, GRAPH_NEIGHBOURS), np.int32)
    for c in range(k):
        mem = np.flatnonzero(cluster == c)
        I[mem] = mem[rng.integers(0, mem.size, size=(mem.size, GRAPH_NEIGHBOURS))]
    base = root / ".cache" / "labelling" / f"knn-{tag}-k{GRAPH_NEIGHBOURS}"
    write_npy(Path(f"{base}-indices.npy"), I)
    write_npy(Path(f"{base}-distances.npy"), np.ones((n, GRAPH_NEIGHBOURS), np.float32))
    write_json(Path(f"{base}.json"), {"description": "synthetic within-cluster graph (benchmark)"})
    return cluster


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=416_314)
    ap.add_argument("--dims", type=int, default=128)
    ap.add_argument("--answers", type=int, default=40)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "labelling_bench.json"))
    args = ap.parse_args(argv)

    import psutil

    from descluster.io.atomic import write_json
    from descluster.labelling.session import Session
    from descluster.labelling.simulate import SimulatedAnnotator
    from machine import machine_facts

    facts = machine_facts()
    proc = psutil.Process()
    peak = proc.memory_info().rss
    with tempfile.TemporaryDirectory(prefix="labelling-bench-") as tmp:
        t0 = time.perf_counter()
        cluster = build_results(Path(tmp) / "out", args.rows, args.dims)
        build_s = time.perf_counter() - t0
        truth = np.array([f"class{c % 10}" for c in cluster], dtype=object)
        s = Session(Path(tmp) / "out", refit="background")
        s.add_task("attr", [f"class{i}" for i in range(10)])
        annotator = SimulatedAnnotator(truth)
        rows = []
        q = s.next_question("attr")
        t_refit = []
        for i in range(args.answers):
            d = annotator.decide(q.shown)
            t = time.perf_counter()
            if d.get("split"):
                s.answer(q.id, split=True)
            else:
                s.answer(q.id, label=d["label"], marks=d["marks"])
            t_answer = time.perf_counter() - t
            t = time.perf_counter()
            nxt = s.next_question("attr")
            t_next = time.perf_counter() - t
            rows.append({"answer": i + 1, "kind": q.kind, "action": "split" if d.get("split") else "name",
                         "answer_ms": 1000 * t_answer, "next_question_ms": 1000 * t_next,
                         "has_model": s._predictions.get("attr") is not None})
            peak = max(peak, proc.memory_info().rss)
            if nxt is None:
                break
            q = nxt
            if i % 10 == 9:  # let the background fit finish now and then, and time one fit in the foreground
                t = time.perf_counter()
                s.refresh("attr")
                t_refit.append(time.perf_counter() - t)
                peak = max(peak, proc.memory_info().rss)
        s.close()
    table = pd.DataFrame(rows)
    summary = {
        "rows": args.rows, "dims": args.dims, "answers": len(table), "build_s": round(build_s, 1),
        "answer_ms_median": round(float(table["answer_ms"].median()), 1),
        "answer_ms_max": round(float(table["answer_ms"].max()), 1),
        "next_question_ms_median": round(float(table["next_question_ms"].median()), 1),
        "next_question_ms_p90": round(float(table["next_question_ms"].quantile(0.9)), 1),
        "next_question_ms_max": round(float(table["next_question_ms"].max()), 1),
        "answer_plus_next_ms_max": round(float((table["answer_ms"] + table["next_question_ms"]).max()), 1),
        "refit_s": [round(v, 2) for v in t_refit],
        "peak_rss_gb": round(peak / 2**30, 2),
    }
    print(f"{'rows':>8} {'answers':>7} {'answer ms (med/max)':>20} {'next question ms (med/p90/max)':>31} "
          f"{'refit s':>10} {'peak RSS GB':>11}")
    print(f"{args.rows:>8,} {len(table):>7} {summary['answer_ms_median']:>9.1f} / {summary['answer_ms_max']:<8.1f} "
          f"{summary['next_question_ms_median']:>11.1f} / {summary['next_question_ms_p90']:.1f} / "
          f"{summary['next_question_ms_max']:<8.1f} {np.mean(t_refit) if t_refit else float('nan'):>10.2f} "
          f"{summary['peak_rss_gb']:>11.2f}")
    write_json(args.out, {"machine": facts, "summary": summary, "per_answer": table.to_dict("records")})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
