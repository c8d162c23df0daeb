"""Parity of the k-means seedings between the local and the Dask engine (issue 18): chosen k and ARI.

For one case folder (``benchmarks/make_case.py``; ``.npy`` or converted ``.zarr`` descriptors), every seeding
in ``--inits`` (``k-means++``: the sample seeding; ``k-means||``: Bahmani et al. 2012 over all rows) and both
engines, the study runs as ``descluster run --algorithms kmeans --preprocessing standard --no-mixtures
--no-outliers --embedding pca`` (:func:`descluster.pipeline.fit_study`; the Dask engine on a LocalCluster of
``--workers`` one-thread worker processes). Per descriptor kind it records the chosen k of each engine, the
ARI between the two engines' labels, the ARI of each against the case's planted ``truth.csv`` clusters
(when present) and the study's wall time.

Prints a table and writes ``benchmarks/results/kmeans_init_parity.json`` (or ``--out``) with the load
average. The machine may be shared: read times as rough.

Usage::

    python benchmarks/make_case.py /tmp/p20k --rows 20000 --format npy --kinds osnet=512,vdc_color=128
    python benchmarks/kmeans_init_parity.py /tmp/p20k
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_facts  # noqa: E402  (benchmarks/machine.py)

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and write the JSON (see the module docstring); returns 0."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("case", type=Path)
    ap.add_argument("--inits", default="k-means++,k-means||")
    ap.add_argument("--k-min", type=int, default=2)
    ap.add_argument("--k-max", type=int, default=10)
    ap.add_argument("--init-sample", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "kmeans_init_parity.json")
    args = ap.parse_args(argv)

    import pandas as pd
    from sklearn.metrics import adjusted_rand_score

    from descluster.case import load_case
    from descluster.config import RunConfig
    from descluster.engine.dask import DaskEngine
    from descluster.io.atomic import write_json
    from descluster.pipeline import fit_study

    case = load_case(args.case)
    truth = None
    if (args.case / "truth.csv").is_file():
        truth = pd.read_csv(args.case / "truth.csv")["cluster"].to_numpy()
    rows = []
    with DaskEngine(n_workers=args.workers, threads_per_worker=1) as engine:
        for init in args.inits.split(","):
            config = RunConfig.from_dict({}, k_min=args.k_min, k_max=args.k_max, algorithms=["kmeans"],
                                         preprocessings=["standard"], embedding="pca", mixtures=False,
                                         outliers=False,
                                         cluster={"params": {"kmeans": {"init": init,
                                                                        "init_sample": args.init_sample}}})
            res, secs = {}, {}
            for name, eng in (("local", None), ("dask", engine)):
                load = os.getloadavg()[0]
                t0 = time.perf_counter()
                res[name] = fit_study(case, config, progress=False, engine=eng)
                secs[name] = (time.perf_counter() - t0, load)
            for key, ch in res["local"].choices.items():
                other = res["dask"].choices[key]
                row = {"init": init, "space": key, "rows": int(case.n_images), "k_local": int(ch.k),
                       "k_dask": int(other.k), "ari_engines": float(adjusted_rand_score(ch.labels, other.labels)),
                       "seconds_local": round(secs["local"][0], 1), "seconds_dask": round(secs["dask"][0], 1),
                       "load_local": secs["local"][1], "load_dask": secs["dask"][1]}
                if truth is not None:
                    row["ari_truth_local"] = float(adjusted_rand_score(truth, ch.labels))
                    row["ari_truth_dask"] = float(adjusted_rand_score(truth, other.labels))
                rows.append(row)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    shapes = {k: list(v.shape) for k, v in case.descriptors.items()}
    write_json(args.out, {"case": str(args.case), "descriptors": shapes,
                          "files": {k: Path(v).name for k, v in case.descriptor_files.items()},
                          "workers": args.workers, "ks": [args.k_min, args.k_max], "init_sample": args.init_sample,
                          "machine": machine_facts(), "rows": rows})
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
