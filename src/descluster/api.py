"""The Python API: ``Study(config, **fields).fit(case) -> StudyResult``, for notebooks and scripts.

Example (the README's "Python API" section has a runnable one, run by the tests)::

    import descluster
    case = descluster.load_case("CASE_DIR")               # or descluster.Case.from_arrays(...)
    result = descluster.Study(k_max=12).fit(case)         # progress bars work in Jupyter
    result.comparison.head()                              # pandas DataFrames
    result.save("OUT")                                    # exactly what `descluster run` writes
    assert descluster.StudyResult.load("OUT") == result
    result.assign(descluster.load_case("NEW_CASE")).table # new images, without refitting

A :class:`StudyResult` holds the tables of the results folder (as read back from their
CSV text, so a fitted result and a loaded one compare equal), the manifest and the
:class:`~descluster.model.FittedModel`; a fitted one also holds the full
:class:`~descluster.results.RunResult` (spaces, every clustering, the 2-D map), which
the report needs.
"""

from __future__ import annotations

import html
import io
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from .case import Case, load_case
from .config import RunConfig
from .errors import CaseError, ParameterError
from .io.atomic import json_default, write_json
from .model import MODEL_DIR, Assignment, FittedModel

__all__ = ["Study", "StudyResult", "load_case", "Case", "assign_case"]

#: Tables every results folder has (the optional ones are read when present).
_TABLES = ("clusters.csv", "study.csv", "metrics.csv", "comparison.csv")
_OPTIONAL = ("agreement.csv", "outliers.csv", "cluster_facts.csv")


def _normalised(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as written to CSV and read back (the form a loaded result has)."""
    return pd.read_csv(io.StringIO(frame.to_csv(index=False, lineterminator="\n")))


def _plain_json(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=json_default, allow_nan=True))


class Study:
    """A configured study, ready to fit on a case.

    Parameters
    ----------
    config : RunConfig or dict, optional
        Base configuration (default: every default of ``descluster run``).
    progress : bool, default True
        Show progress bars (``tqdm.auto``: widgets in Jupyter, text elsewhere).
    engine : {"local", "dask"} or descluster.engine.Engine, default "local"
        Where the heavy stages run (:mod:`descluster.engine`): ``"dask"`` starts a ``distributed.LocalCluster``
        for each :meth:`fit` and closes it after; an engine object (e.g. ``DaskEngine(scheduler="tcp://...")``)
        is used as given and left open.
    **fields
        Configuration fields to change, flat (``k_max=12``, ``algorithms=["kmeans"]``) or by
        section (``cluster={"k_max": 12}``); see :mod:`descluster.config`.

    Attributes
    ----------
    config : RunConfig

    Raises
    ------
    ParameterError
        An unknown field or an invalid value (named, with the valid ones).
    """

    def __init__(self, config: RunConfig | dict | None = None, progress: bool = True, engine: Any = "local",
                 **fields: Any):
        from .engine import ENGINES, Engine

        base = config.to_dict() if isinstance(config, RunConfig) else dict(config or {})
        self.config = RunConfig.from_dict(base, source="Study", **fields)
        self.progress = progress
        if not (isinstance(engine, Engine) or engine in ENGINES):
            raise ParameterError(f"Study(engine={engine!r}): valid are {', '.join(ENGINES)} or an Engine object")
        self.engine = engine

    def __repr__(self) -> str:
        cc = self.config.cluster
        return (f"Study(k={cc.k_min}..{cc.k_max}, algorithms={list(cc.algorithms)}, "
                f"preprocessings={list(self.config.reduce.preprocessings)}, seed={self.config.seed})")

    def fit(self, case: Case | str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> "StudyResult":
        """Run the study on ``case`` and return its result; nothing is written unless ``cache_dir`` is given.

        Parameters
        ----------
        case : Case or path
            A loaded case, or a case folder (read with :func:`load_case` and this config's
            ``case`` section).
        cache_dir : path, optional
            Stage cache (reruns skip finished stages; sweeps then run in parallel processes).

        Returns
        -------
        StudyResult
        """
        from .engine import make_engine
        from .pipeline import fit_study

        if not isinstance(case, Case):
            case = load_case(case, drop_bad_rows=self.config.case.drop_bad_rows,
                             trust_pickle=self.config.case.trust_pickle)
        engine = make_engine(self.engine)
        try:
            run = fit_study(case, self.config, cache_dir=cache_dir, progress=self.progress, engine=engine)
        finally:
            if engine is not self.engine:  # started here from a name: closed here
                engine.close()
        return StudyResult.from_run(run, self.config)


class StudyResult:
    """The result of a study: its tables, manifest and fitted model (see the module docstring).

    Attributes
    ----------
    study : DataFrame
        ``study.csv``: one row per descriptor × preprocessing × algorithm × k.
    comparison : DataFrame
        ``comparison.csv``: one row per configuration at its chosen k, best label-free score first.
    clusters : DataFrame
        ``clusters.csv``: ``path``, ``cluster`` of the recommended configuration, input order.
    metrics : DataFrame
        ``metrics.csv``: the k-means rows of ``study``.
    outliers : DataFrame or None
        ``outliers.csv``.
    cluster_facts : DataFrame or None
        ``cluster_facts.csv``: one row per recommended cluster with its automatic description.
    agreement : DataFrame or None
        ``agreement.csv``: ARI between the descriptor kinds' best clusterings.
    recommended : str
        Key ``"<descriptor>/<preprocessing>/<algorithm>"`` of the recommended configuration.
    recommendation : str
        Why, in words.
    per_descriptor : dict of str -> str
        Descriptor kind -> key of its best configuration.
    manifest : dict
        ``manifest.json`` (parameters, versions, input digests, timings).
    model : FittedModel or None
        What labels new images (``OUT/model/``).
    run : RunResult or None
        The full in-memory result (fitted results only; needed by :meth:`report`).
    """

    def __init__(self, tables: dict[str, pd.DataFrame], manifest: dict, model: FittedModel | None = None,
                 run=None, config: RunConfig | None = None, folder: Path | None = None):
        self.tables = dict(tables)
        self.manifest = _plain_json(manifest)
        self.model = model
        self.run = run
        self.config = config
        self.folder = folder

    # -- construction -------------------------------------------------------------
    @classmethod
    def from_run(cls, run, config: RunConfig | None = None) -> "StudyResult":
        """Wrap a :class:`~descluster.results.RunResult` (its tables normalised by a CSV round trip)."""
        from .pipeline import result_tables

        tables = {name: _normalised(frame) for name, frame in result_tables(run).items()}
        return cls(tables, run.meta, run.model, run=run, config=config)

    @classmethod
    def load(cls, out: str | os.PathLike) -> "StudyResult":
        """Read a results folder written by ``descluster run`` or :meth:`save`.

        Raises
        ------
        CaseError
            Not a results folder (no ``manifest.json`` or a required table missing, named), or an
            unreadable model.
        """
        out = Path(out)
        f = out / "manifest.json"
        if not f.is_file():
            raise CaseError(f"{out}: not a descluster results folder (no manifest.json)")
        try:
            manifest = json.loads(f.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise CaseError(f"{f}: cannot read: {exc}") from exc
        per = manifest.get("per_descriptor", {})
        from .pipeline import per_descriptor_file

        names = list(_TABLES[:1]) + [per_descriptor_file(d) for d in sorted(per)] + list(_TABLES[1:])
        missing = [n for n in names if not (out / n).is_file()]
        if missing:
            raise CaseError(f"{out}: results folder lacks {missing}")
        tables = {n: pd.read_csv(out / n) for n in names}
        tables.update({n: pd.read_csv(out / n) for n in _OPTIONAL if (out / n).is_file()})
        model = FittedModel.load(out / MODEL_DIR) if (out / MODEL_DIR).is_dir() else None
        return cls(tables, manifest, model, folder=out)

    # -- tables -----------------------------------------------------------------------
    @property
    def study(self) -> pd.DataFrame:
        """``study.csv`` (see the class docstring)."""
        return self.tables["study.csv"]

    @property
    def comparison(self) -> pd.DataFrame:
        """``comparison.csv``."""
        return self.tables["comparison.csv"]

    @property
    def clusters(self) -> pd.DataFrame:
        """``clusters.csv``: ``path``, ``cluster`` of the recommended configuration."""
        return self.tables["clusters.csv"]

    @property
    def metrics(self) -> pd.DataFrame:
        """``metrics.csv``."""
        return self.tables["metrics.csv"]

    @property
    def outliers(self) -> pd.DataFrame | None:
        """``outliers.csv``, or None when outliers were not run."""
        return self.tables.get("outliers.csv")

    @property
    def cluster_facts(self) -> pd.DataFrame | None:
        """``cluster_facts.csv``, or None."""
        return self.tables.get("cluster_facts.csv")

    @property
    def agreement(self) -> pd.DataFrame | None:
        """``agreement.csv``, or None."""
        return self.tables.get("agreement.csv")

    @property
    def recommended(self) -> str:
        """Key of the recommended configuration."""
        return self.manifest["recommended"]

    @property
    def recommendation(self) -> str:
        """Why it is recommended, in words."""
        return self.manifest["recommendation"]

    @property
    def per_descriptor(self) -> dict[str, str]:
        """Descriptor kind -> key of its best configuration."""
        return dict(self.manifest.get("per_descriptor", {}))

    def clusters_for(self, descriptor: str) -> pd.DataFrame:
        """``clusters_<descriptor>.csv``: ``path``, ``cluster`` of that descriptor kind's best configuration.

        Raises
        ------
        ParameterError
            Unknown descriptor kind (lists the known ones).
        """
        from .pipeline import per_descriptor_file

        if descriptor not in self.per_descriptor:
            raise ParameterError(f"descriptor={descriptor!r} is unknown; known: {', '.join(sorted(self.per_descriptor))}")
        return self.tables[per_descriptor_file(descriptor)]

    # -- files ------------------------------------------------------------------------
    def save(self, out: str | os.PathLike, report: bool | None = None) -> Path:
        """Write the results folder: exactly what ``descluster run`` writes.

        Parameters
        ----------
        out : path
            Folder (created).
        report : bool, optional
            Write ``report.html`` too; default: when this result was fitted (a loaded one has
            no spaces to draw from).

        Returns
        -------
        Path
            ``out``.
        """
        from .pipeline import save_run, write_tables

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        if self.run is not None:
            manifest = save_run(self.run, out, self.config, report=self.run is not None if report is None else report)
            self.manifest = _plain_json(manifest)
        else:
            if report:
                raise ParameterError("a loaded result cannot draw a report (its spaces are not saved); "
                                     "use the report.html of its folder, or fit the study again")
            write_tables(self.tables, out)
            if self.model is not None:
                self.model.save(out / MODEL_DIR)
            write_json(out / "manifest.json", self.manifest)
        return out

    def report(self, out: str | os.PathLike) -> Path:
        """Write ``report.html`` (+ ``report_files/``) into ``out``; returns the report's path.

        Raises
        ------
        ParameterError
            For a loaded result (the report needs the fitted spaces).
        """
        if self.run is None:
            raise ParameterError("a loaded result cannot draw a report (its spaces are not saved); "
                                 "use the report.html of its folder, or fit the study again")
        from .report.build import build_report

        options = (self.config or RunConfig.from_dict(self.manifest.get("parameters", {}))).report.build(
            self.manifest.get("parameters", {}).get("seed", 0))
        return build_report(self.run, Path(out), self.run.images, options)

    # -- new images ---------------------------------------------------------------------
    def assign(self, case: Case | str | os.PathLike, names: dict[int, str] | None = None,
               progress: bool = False) -> Assignment:
        """Label new images with this study's fitted model (see :meth:`FittedModel.assign`).

        Parameters
        ----------
        case : Case or path
            The new images' case (same descriptor kinds and widths as the study).
        names : dict of int -> str, optional
            Cluster names; default a team's names from ``labels.csv`` beside a loaded result,
            else the automatic descriptions.

        Raises
        ------
        ParameterError
            When the result has no model.
        CaseError
            A descriptor kind missing from ``case`` or of another width.
        """
        if self.model is None:
            raise ParameterError("this result has no fitted model (results written before models were saved)")
        if not isinstance(case, Case):
            case = load_case(case)
        if names is None and self.folder is not None:
            names = team_names(self.folder)
        return self.model.assign(case, names=names, progress=progress)

    # -- comparison and display -----------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StudyResult):
            return NotImplemented
        return (self.tables.keys() == other.tables.keys()
                and all(self.tables[k].equals(other.tables[k]) for k in self.tables)
                and self.manifest == other.manifest and self.model == other.model)

    def __repr__(self) -> str:
        return f"StudyResult(recommended={self.recommended!r}, images={len(self.clusters):,})"

    def _repr_html_(self) -> str:
        comp = self.comparison
        rec = comp[comp["recommended"]].iloc[0] if "recommended" in comp and comp["recommended"].any() else None
        head = f"<b>descluster study</b>: {len(self.clusters):,} images, {comp['descriptor'].nunique()} spaces, " \
               f"{len(comp)} configurations"
        lines = [head, f"Recommended: <code>{html.escape(self.recommended)}</code>"
                       + (f", k = {int(rec['k'])}, score {rec['score']:.3g}" if rec is not None else "")]
        if self.outliers is not None and "flagged" in self.outliers:
            lines.append(f"Outliers flagged: {int(self.outliers['flagged'].sum()):,}")
        cols = [c for c in ("descriptor", "preprocessing", "algorithm", "k", "score", "stability", "consensus")
                if c in comp]
        table = comp[cols].head(5).to_html(index=False, float_format=lambda v: f"{v:.3g}", border=0)
        return "<div>" + "<br>".join(lines) + table + "</div>"


def team_names(results: str | os.PathLike) -> dict[int, str] | None:
    """Cluster id -> the name a team gave it, from ``RESULTS/labels.csv`` (``descluster label``), or None.

    ``labels.csv`` follows ``clusters.csv`` row by row; each original cluster takes the most
    common name of its rows (merged clusters share their target's name).
    """
    results = Path(results)
    lab, clu = results / "labels.csv", results / "clusters.csv"
    if not (lab.is_file() and clu.is_file()):
        return None
    names = pd.read_csv(lab, dtype={"name": str}, keep_default_na=False)
    clusters = pd.read_csv(clu)
    if len(names) != len(clusters) or "name" not in names:
        return None
    frame = pd.DataFrame({"cluster": clusters["cluster"].to_numpy(), "name": names["name"].to_numpy()})
    return {int(c): str(g["name"].mode().iloc[0]) for c, g in frame.groupby("cluster")}


def assign_case(case_dir: str | os.PathLike, model: str | os.PathLike, out: str | os.PathLike,
                images: str | os.PathLike | None = None, trust_pickle: bool = False) -> Assignment:
    """``descluster assign``: load the new case and the model, assign, write ``out``.

    When the results folder holds a labelling session (``labels.sqlite``) and the saved
    model no classifier for it, each task's classifier is fitted first
    (:meth:`FittedModel.with_labelling`), so ``assignments.csv`` gains ``label_<task>``
    and ``label_<task>_confidence``.

    Returns
    -------
    Assignment

    Raises
    ------
    CaseError
        Unreadable case or model, or a descriptor kind missing or of another width.
    """
    model_dir = Path(model)
    fitted = FittedModel.load(model_dir)
    results = model_dir if (model_dir / MODEL_DIR).is_dir() else model_dir.parent
    case = load_case(case_dir, images=images, trust_pickle=trust_pickle)
    from .labelling.session import DB_NAME

    if not fitted.labelling and (results / DB_NAME).is_file():
        fitted = fitted.with_labelling(results)  # the labelling session's tasks, fitted now
    assignment = fitted.assign(case, names=team_names(results), progress=True)
    assignment.save(out)
    return assignment
