"""Labelling new images with a saved model, against refitting the study on them.

One synthetic VeRi-shaped case from ``make_case.py`` (four descriptor kinds, 2560/512/128/512-d,
one seed, so one set of clusters) of ``--rows + --new`` rows, split into the *study* case (the
first ``--rows``) and the *new* images (the rest, as tomorrow's images). The study is fitted once
on the study case and saved; then the new images are labelled from the saved model
(``FittedModel.load`` + ``assign``: scaler + PCA of every needed space, the recommended and each
kind's best clustering, outlier checks against the reference rows, drift), and, beside it, the
straightforward route: the same study refitted on the new images. The study is kept small
(``--algorithms kmeans --preprocessing standard``, k = 2..``--k-max``) so the comparison is cheap to
run; a full study costs more, which only widens the gap.

Prints a table and writes ``results/<name>.json`` (wall seconds, rows/s, machine load).

Usage::

    python benchmarks/assign_bench.py --rows 10000 --new 10000        # a few minutes on 2 cores
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

HERE = Path(__file__).resolve().parent


def _make(out: Path, rows: int, seed: int) -> None:
    subprocess.run([sys.executable, str(HERE / "make_case.py"), str(out), "--rows", str(rows), "--seed", str(seed),
                    "--format", "npy"], check=True, stdout=subprocess.DEVNULL)


def _split(src: Path, dest: Path, rows: slice) -> None:
    """A case of ``rows`` of the case ``src`` (descriptors, paths and truth)."""
    import numpy as np
    import pandas as pd

    (dest / "descriptors").mkdir(parents=True, exist_ok=True)
    for f in sorted((src / "descriptors").glob("*.npy")):
        np.save(dest / "descriptors" / f.name, np.load(f, mmap_mode="r")[rows])
    for name in ("images_paths.csv", "truth.csv"):
        pd.read_csv(src / name).iloc[rows].to_csv(dest / name, index=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000, help="images of the study case")
    ap.add_argument("--new", type=int, default=10_000, help="new images to label")
    ap.add_argument("--k-max", type=int, default=30)
    ap.add_argument("--algorithms", default="kmeans")
    ap.add_argument("--preprocessing", default="standard")
    ap.add_argument("--threads", type=int, default=2, help="BLAS/OpenMP threads (the target is 2 cores)")
    ap.add_argument("--work", type=Path, help="work folder (default: a temporary one)")
    ap.add_argument("--name", default="assign-bench")
    ap.add_argument("--reference-rows", type=int, help="outlier reference rows of the model (default: RunConfig's)")
    ap.add_argument("--reuse", action="store_true",
                    help="reuse WORK/out (a study fitted by an earlier run of this script): skip the fit and the refit; "
                         "the outlier references are rebuilt from the study case's rows with --reference-rows")
    args = ap.parse_args(argv)

    from threadpoolctl import threadpool_limits

    import descluster
    from descluster.progress import configure_logging

    configure_logging(verbose=False)
    t0 = time.perf_counter()
    import descluster.api  # noqa: F401  (the libraries: timed apart from the work)
    import descluster.model  # noqa: F401
    import descluster.outliers.neighbours  # noqa: F401

    import_s = time.perf_counter() - t0
    work = args.work or Path(tempfile.mkdtemp(prefix="assign-bench-"))
    study_case, new_case = work / "study-case", work / "new-case"
    t0 = time.perf_counter()
    if not (new_case / "images_paths.csv").is_file():
        _make(work / "all", args.rows + args.new, 0)
        _split(work / "all", study_case, slice(0, args.rows))
        _split(work / "all", new_case, slice(args.rows, args.rows + args.new))
    make_s = time.perf_counter() - t0
    fields = dict(k_max=args.k_max, algorithms=args.algorithms.split(","), preprocessings=args.preprocessing.split(","),
                  embedding="pca", pixel_checks=False, progress=False)
    if args.reference_rows:
        fields["reference_rows"] = args.reference_rows
    load = os.getloadavg()
    with threadpool_limits(limits=args.threads):
        fit_s = refit_s = float("nan")
        if not args.reuse:
            t0 = time.perf_counter()
            result = descluster.Study(**fields).fit(descluster.load_case(study_case))
            fit_s = time.perf_counter() - t0
            result.save(work / "out", report=False)

        t0 = time.perf_counter()
        model = descluster.FittedModel.load(work / "out")
        case = descluster.load_case(new_case)
        load_s = time.perf_counter() - t0
        rebuild_s = 0.0
        if args.reuse:  # the study's own rows, rebuilt by the saved scalers and PCAs, give the new references
            from descluster.model import OutlierReference

            rows = model.space_rows(descluster.load_case(study_case).descriptors)
            n_ref = descluster.Study(**fields).config.model.reference_rows
            t0 = time.perf_counter()
            model.outliers = {d: OutlierReference.fit(ref.space, rows[ref.space], n_ref, model.seed)
                              for d, ref in model.outliers.items()}
            rebuild_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        model.space_rows(case.descriptors)
        transform_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        assigned = model.assign(case)
        assign_s = time.perf_counter() - t0

        refit = None
        if not args.reuse:
            t0 = time.perf_counter()
            refit = descluster.Study(**fields).fit(descluster.load_case(new_case))
            refit_s = time.perf_counter() - t0

    from sklearn.metrics import adjusted_rand_score

    truth = __import__("pandas").read_csv(new_case / "truth.csv")
    ari_assign = adjusted_rand_score(truth["cluster"], assigned.table["cluster"])
    ari_refit = adjusted_rand_score(truth["cluster"], refit.clusters["cluster"]) if refit is not None else float("nan")
    rows = [("fit the study (study case)", args.rows, fit_s),
            ("load model + new case", args.new, load_s),
            ("  of which: scaler + PCA of every space", args.new, transform_s),
            ("assign (model.assign, all steps)", args.new, assign_s),
            ("refit the study on the new images", args.new, refit_s)]
    print(f"{'step':44s} {'rows':>8s} {'seconds':>9s} {'rows/s':>10s}")
    for name, n, sec in rows:
        print(f"{name:44s} {n:8,d} {sec:9.2f} {n / sec:10,.0f}")
    print(f"new images labelled: load + assign {load_s + assign_s:.2f} s vs refit {refit_s:.2f} s "
          f"({refit_s / (load_s + assign_s):.0f}x); ARI against the planted clusters: assign {ari_assign:.3f}, "
          f"refit {ari_refit:.3f}")
    out = {
        "name": args.name, "rows_study": args.rows, "rows_new": args.new,
        "kinds": {k: int(v.shape[1]) for k, v in case.descriptors.items()},
        "config": fields, "threads": args.threads,
        "seconds": {"import": round(import_s, 2), "make_cases": round(make_s, 2), "fit": round(fit_s, 2), "load": round(load_s, 3),
                    "transform": round(transform_s, 3), "assign": round(assign_s, 3),
                    "rebuild_references": round(rebuild_s, 3),
                    "load_plus_assign": round(load_s + assign_s, 3), "refit": round(refit_s, 2)},
        "ari_vs_planted": {"assign": round(ari_assign, 4), "refit": round(ari_refit, 4)},
        "reference_rows": {d: int(ref.rows.shape[0]) for d, ref in model.outliers.items()}, "reused_fit": args.reuse,
        "recommended": model.recommended, "drift": assigned.drift.summary if assigned.drift else None,
        "flagged_new": int(assigned.table["flagged"].sum()),
        "machine": machine_facts() | {"load_avg_start": list(load), "load_avg_end": list(os.getloadavg())},
    }
    (HERE / "results").mkdir(exist_ok=True)
    path = HERE / "results" / f"{args.name}.json"
    path.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
