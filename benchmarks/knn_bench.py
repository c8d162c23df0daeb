"""Time the outlier step's kNN routes on synthetic clustered data: exact (NumPy vs faiss) and IVF.

For each dimension (``--dims``, default 256,128,32) a clustered float32 matrix of
``--rows`` rows is generated (1,000 Gaussian clusters with per-cluster spread
0.5–2, axis scales decaying as ``j^-1/2`` like a PCA-reduced space; seeded), and

* ``exact numpy``: :class:`~descluster.outliers.neighbours.ExactIndex` (NumPy sgemm
  blocks + faiss heaps) and ``exact faiss``: ``faiss.IndexFlatL2`` search
  ``--exact-queries`` sampled rows (k+1 neighbours) against all rows; the time for a
  full self-search is extrapolated linearly (exact cost is linear in queries) and
  marked ``extrapolated`` when the sample is smaller than ``--rows``;
* ``ivf``: :class:`~descluster.outliers.neighbours.IVFIndex` is fitted (k-means,
  list assignment, recall tuning on 2,000 sampled rows) and then searches every row
  (the complete self-search, as the outlier step runs it); its recall@k is also
  checked on a second, independent sample of 1,000 rows.

Prints a table and writes ``benchmarks/results/knn_bench.json`` (or ``--out``) with
the machine facts (CPU count, load average before/after, BLAS libraries from
threadpoolctl, versions). The machine may be shared: compare ratios.

Usage::

    python benchmarks/knn_bench.py                       # 50,000 rows, ~2–4 min on 2 cores
    python benchmarks/knn_bench.py --rows 416314 --out benchmarks/results/knn_bench_416314.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np


def clustered(n: int, d: int, seed: int = 0, clusters: int = 1000) -> np.ndarray:
    """(n, d) float32 clustered rows with decaying axis scales (see module notes)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d)).astype(np.float32)
    spread = rng.uniform(0.5, 2.0, clusters).astype(np.float32)
    scale = (np.arange(1, d + 1) ** -0.5).astype(np.float32)
    lab = rng.integers(0, clusters, n)
    X = np.empty((n, d), dtype=np.float32)
    for s in range(0, n, 65536):
        e = min(s + 65536, n)
        X[s:e] = (centres[lab[s:e]] + rng.normal(size=(e - s, d)).astype(np.float32) * spread[lab[s:e], None]) * scale
    return X


def bench_dim(n: int, d: int, k: int, exact_queries: int, seed: int) -> dict:
    """Time the three routes on one (n, d) matrix; returns one result row."""
    import faiss

    from descluster.outliers.neighbours import ExactIndex, IVFIndex, _finish, recall_at_k

    X = clustered(n, d, seed)
    rng = np.random.default_rng(seed + 1)
    nq = min(exact_queries, n)
    rows = np.sort(rng.choice(n, nq, replace=False))
    Q = np.ascontiguousarray(X[rows])
    row = {"rows": n, "dims": d, "k": k, "exact_queries": nq, "extrapolated": nq < n}

    t = time.perf_counter()
    exact = ExactIndex().fit(X)
    _, i_np = exact.search(Q, k + 1)
    t_np = time.perf_counter() - t
    t = time.perf_counter()
    flat = faiss.IndexFlatL2(d)
    flat.add(X)
    _, i_fa = flat.search(Q, k + 1)
    t_fa = time.perf_counter() - t
    d_np = _finish(Q, X, i_np, rows, k)[0]
    d_fa = _finish(Q, X, i_fa, rows, k)[0]
    row["exact_numpy_s"] = t_np * n / nq
    row["exact_faiss_s"] = t_fa * n / nq
    row["exact_routes_max_abs_diff"] = float(np.abs(d_np - d_fa).max())

    t = time.perf_counter()
    ivf = IVFIndex(random_state=seed).fit(X, n_neighbors=k)
    row["ivf_fit_s"] = time.perf_counter() - t
    t = time.perf_counter()
    D = np.empty((n, k), np.float32)
    for s in range(0, n, 2048):
        e = min(s + 2048, n)
        D[s:e] = _finish(X[s:e], X, ivf.search(X[s:e], k + 1)[1], np.arange(s, e), k)[0]
    row["ivf_search_s"] = time.perf_counter() - t
    row["ivf_total_s"] = row["ivf_fit_s"] + row["ivf_search_s"]
    check = np.sort(np.random.default_rng(seed + 2).choice(n, min(1000, n), replace=False))
    d_true = _finish(X[check], X, exact.search(np.ascontiguousarray(X[check]), k + 1)[1], check, k)[0]
    row.update(
        nlist=ivf.nlist_,
        nprobe=ivf.nprobe_,
        recall_tuning=ivf.recall_,
        recall_curve={str(p): r for p, r in ivf.recall_curve_.items()},
        recall_check=recall_at_k(D[check], d_true),
        description=ivf.description_,
    )
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--dims", default="256,128,32")
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--exact-queries", type=int, default=2048, help="rows timed for the exact routes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "knn_bench.json"))
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from descluster.io.atomic import write_json

    from machine import machine_facts

    facts = machine_facts()
    results = []
    hdr = f"{'rows':>8} {'dims':>4} {'exact numpy s':>14} {'exact faiss s':>14} {'ivf fit s':>9} {'ivf search s':>12} {'nlist':>6} {'nprobe':>6} {'recall':>7} {'check':>7}"
    print(hdr, flush=True)
    for d in [int(x) for x in args.dims.split(",")]:
        r = bench_dim(args.rows, d, args.k, args.exact_queries, args.seed)
        results.append(r)
        mark = "*" if r["extrapolated"] else " "
        print(f"{r['rows']:>8} {r['dims']:>4} {r['exact_numpy_s']:>13.1f}{mark} {r['exact_faiss_s']:>13.1f}{mark} "
              f"{r['ivf_fit_s']:>9.1f} {r['ivf_search_s']:>12.1f} {r['nlist']:>6} {r['nprobe']:>6} "
              f"{r['recall_tuning']:>7.3f} {r['recall_check']:>7.3f}", flush=True)
    print("* extrapolated from the timed sample of queries; recall = recall@k on the tuning sample, "
          "check = on an independent sample of 1,000 rows")
    facts["load_avg_end"] = list(os.getloadavg())
    write_json(args.out, {"machine": facts, "results": results})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
