"""Command line: ``descluster extract | run | demo | label``. Parses arguments and calls the pipeline.

Stable interface::

    descluster extract IMAGES --out CASE_DIR     # descriptors for a folder or zip of images
    descluster run CASE_DIR --out OUT            # the study on a case
    descluster demo --out OUT                    # extract (cached) + run on the built-in data
    descluster label RESULTS --names names.csv   # apply cluster names -> RESULTS/labels.csv
    descluster simulate RESULTS --truth labels.csv --column COL   # labelling cost in human decisions
    descluster labels export RESULTS             # a labelling session -> labels.csv / Label Studio / folders
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .errors import DesclusterError


def demo_images_dir() -> Path:
    """Folder of the built-in demo images (``data/tiny-vehicles`` in the source tree).

    ``DESCLUSTER_DEMO_DATA`` overrides it.

    Raises
    ------
    FileNotFoundError
        If the folder cannot be found (e.g. a non-editable install without the data).
    """
    env = os.environ.get("DESCLUSTER_DEMO_DATA")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve()
    candidates += [p / "data" / "tiny-vehicles" for p in here.parents[:4]]
    for c in candidates:
        if (c / "labels.csv").is_file():
            return c
    raise FileNotFoundError(
        "built-in demo data not found (looked in: " + ", ".join(map(str, candidates)) + "); "
        "install descluster from a clone with `pip install -e .` or set DESCLUSTER_DEMO_DATA"
    )


def _csv_list(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(t.strip() for t in text.split(",") if t.strip())


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="TOML file with RunConfig fields")
    p.add_argument("--preprocessing", help="scalers to study, comma-separated (none,standard,minmax,robust,l2)")
    p.add_argument("--full-preprocessing", help="scalers on which every algorithm runs (others: the --every-scaler algorithms only); default "
                        "auto = per descriptor, the scaler whose first-pass clustering scores best (label-free)")
    p.add_argument("--algorithms", help="comma-separated: kmeans,minibatch_kmeans,gmm,birch,ward,hdbscan")
    p.add_argument("--every-scaler", help="algorithms run on every scaler (default kmeans); the others run on the "
                                          "--full-preprocessing scalers")
    p.add_argument("--k-min", type=int)
    p.add_argument("--k-max", type=int)
    p.add_argument("--variance-target", type=float, help="PCA explained-variance target (default 0.9)")
    p.add_argument("--max-components", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--embedding", choices=("tsne", "umap", "pca"))
    p.add_argument("--no-mixtures", action="store_true", help="skip descriptor mixtures")
    p.add_argument("--no-outliers", action="store_true", help="skip outlier detection")
    p.add_argument("--no-pixel-checks", action="store_true", help="skip pixel quality checks")
    p.add_argument("--drop-bad-rows", action="store_true", help="drop rows with NaN/inf instead of refusing")
    p.add_argument("--trust-pickle", action="store_true",
                   help="UNSAFE: load descriptor pickles with the unrestricted unpickler (a pickle can run code)")


def _config_from(args: argparse.Namespace):
    from .config import RunConfig

    overrides = dict(
        preprocessings=_csv_list(args.preprocessing),
        full_preprocessings=_csv_list(args.full_preprocessing),
        algorithms=_csv_list(args.algorithms), every_scaler_algorithms=_csv_list(args.every_scaler),
        k_min=args.k_min, k_max=args.k_max, variance_target=args.variance_target,
        max_components=args.max_components, seed=args.seed, embedding=args.embedding,
        mixtures=False if args.no_mixtures else None, outliers=False if args.no_outliers else None,
        pixel_checks=False if args.no_pixel_checks else None,
        drop_bad_rows=True if args.drop_bad_rows else None, trust_pickle=True if args.trust_pickle else None,
    )
    if overrides["full_preprocessings"] == ("auto",):
        overrides["full_preprocessings"] = ()
    if args.config is not None:
        return RunConfig.from_toml(args.config, **overrides)
    return RunConfig.from_dict({}, **overrides)


def _run(case_dir: Path, out: Path, images: Path | None, args: argparse.Namespace) -> int:
    from .case import load_case
    from .pipeline import run_study

    config = _config_from(args)
    case = load_case(case_dir, images=images, drop_bad_rows=config.drop_bad_rows, trust_pickle=config.trust_pickle)
    result = run_study(case, out, config)
    rec = result.comparison[result.comparison["recommended"]].iloc[0]
    print(result.recommendation)
    ext = [c for c in result.comparison.columns if c.startswith("nmi_")]
    for c in ext:
        print(f"external check (not used for any choice): {c} = {rec[c]:.3f}, "
              f"ari_{c[4:]} = {rec['ari_' + c[4:]]:.3f}")
    print(f"results: {out.resolve()}  (clusters.csv, study.csv, comparison.csv, outliers.csv, report.html)")
    return 0


#: Sub-commands of the labelling engine (parsed by :func:`_add_labelling_commands`).
LABELLING_COMMANDS = ("simulate", "labels")


def _add_labelling_commands(sub) -> None:
    """``simulate`` and ``labels export|status``: the labelling engine's commands."""
    p = sub.add_parser("simulate", help="measure the labelling loop with an annotator answering from a truth column")
    p.add_argument("results", type=Path, help="results folder of `descluster run`")
    p.add_argument("--truth", type=Path, required=True, help="CSV with a path column and the truth column")
    p.add_argument("--column", required=True, help="truth column (the task's attribute)")
    p.add_argument("--budget", type=int, help="stop after this many decisions (default min(images, 1000))")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--propagation", default="smoothed", help="smoothed (default), logistic, spreading or knn")
    p.add_argument("--no-baselines", action="store_true", help="skip baselines (a)-(d)")
    p.add_argument("--identity", action="store_true",
                   help="spread labels to all images of an object identity (paths <part>/<object id>/<image>)")
    p = sub.add_parser("labels", help="a labelling session's labels: export or status")
    lsub = p.add_subparsers(dest="labels_command", required=True)
    e = lsub.add_parser("export", help="write labels.csv, Label Studio JSON and/or one folder per class")
    e.add_argument("results", type=Path)
    e.add_argument("--csv", type=Path, help="labels.csv to write (default RESULTS/labels.csv when nothing else is asked)")
    e.add_argument("--label-studio", type=Path, help="Label Studio tasks JSON to write (+ .xml labelling config)")
    e.add_argument("--image-prefix", help="URL prefix of the images in Label Studio (default /data/local-files/?d=)")
    e.add_argument("--folders", type=Path, help="new folder: TASK/CLASS/ links to the images")
    e.add_argument("--zip", type=Path, help="zip with TASK/CLASS/ copies of the images")
    e.add_argument("--task", action="append", help="task to export (repeatable; default all)")
    e.add_argument("--min-confidence", type=float, default=0.0, help="image folders: leave out labels below this")
    st = lsub.add_parser("status", help="print each task's progress")
    st.add_argument("results", type=Path)


def _run_labelling(args: argparse.Namespace) -> int:
    import json

    if args.command == "simulate":
        from .labelling.simulate import simulate, summary_line

        result = simulate(args.results, args.truth, args.column, budget=args.budget, propagation=args.propagation,
                          random_state=args.seed, baselines=not args.no_baselines, identity=args.identity)
        print(summary_line(result))
        return 0
    from .labelling.export import LABEL_STUDIO_PREFIX, export_image_folders, export_label_studio, export_labels_csv
    from .labelling.session import DB_NAME, Session
    from .errors import LabellingError

    if not (args.results / DB_NAME).is_file():
        raise LabellingError(f"{args.results / DB_NAME} does not exist: no labelling session in {args.results}")
    with Session(args.results, refit="sync") as session:
        if args.labels_command == "status":
            for t in session.tasks():
                print(json.dumps(session.progress(t["name"]), default=float))
            return 0
        tasks = args.task
        wrote = []
        if args.csv or not (args.label_studio or args.folders or args.zip):
            wrote.append(export_labels_csv(session, args.csv, tasks))
        if args.label_studio:
            wrote.append(export_label_studio(session, args.label_studio, tasks,
                                             image_prefix=args.image_prefix or LABEL_STUDIO_PREFIX))
        if args.folders:
            wrote.append(export_image_folders(session, args.folders, tasks, mode="link",
                                              min_confidence=args.min_confidence))
        if args.zip:
            wrote.append(export_image_folders(session, args.zip, tasks, mode="zip",
                                              min_confidence=args.min_confidence))
        for w in wrote:
            print(f"written: {w}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``descluster`` command. Returns the process exit code."""
    from .progress import configure_logging

    parser = argparse.ArgumentParser(prog="descluster", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("extract", help="compute descriptors for a folder or zip of images -> case folder")
    p.add_argument("images", type=Path)
    p.add_argument("--out", type=Path, required=True, help="case folder to write")
    p.add_argument("--backbones", default="mobilenetv2,efficientnet_lite0,colour")
    p.add_argument("--batch-size", type=int, default=64)

    p = sub.add_parser("run", help="run the study on a case folder")
    p.add_argument("case", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--images", type=Path, help="image folder or zip (default: from case.json or found in CASE)")
    _add_run_options(p)

    p = sub.add_parser("demo", help="extract (cached) and run on the built-in tiny-vehicles data")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--case", type=Path, help="where the demo case is extracted (default OUT/case)")
    _add_run_options(p)

    p = sub.add_parser("label", help="apply a names file to a results folder -> RESULTS/labels.csv")
    p.add_argument("results", type=Path)
    p.add_argument("--names", type=Path, required=True, help="CSV with cluster,name[,merge_into,discard]")
    p.add_argument("--out", type=Path, help="output CSV (default RESULTS/labels.csv)")

    _add_labelling_commands(sub)
    args = parser.parse_args(argv)
    configure_logging()
    try:
        if args.command in LABELLING_COMMANDS:
            return _run_labelling(args)
        if args.command == "extract":
            from .extract import extract_case

            extract_case(args.images, args.out, backbones=_csv_list(args.backbones), batch_size=args.batch_size)
            print(f"case written: {args.out.resolve()}")
            return 0
        if args.command == "run":
            return _run(args.case, args.out, args.images, args)
        if args.command == "demo":
            from .extract import extract_case

            case_dir = args.case or (args.out / "case")
            extract_case(demo_images_dir(), case_dir)
            return _run(case_dir, args.out, None, args)
        if args.command == "label":
            from .labelling import apply_names

            table = apply_names(args.results, args.names, out=args.out)
            print(f"labels written: {len(table):,} rows")
            return 0
    except DesclusterError as exc:
        print(f"descluster: error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"descluster: error: {exc}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
