"""Run configuration: every default of ``descluster run`` in one place, in nested sections.

A :class:`RunConfig` is built from defaults, optionally a TOML file (``--config
run.toml``), then command-line flags or ``Study(**fields)``. It is recorded whole in
``OUT/manifest.json`` (``parameters``) and hashed into stage cache keys.

Sections (each a dataclass, checked by :mod:`descluster.validation` when built):

``case``       how the case is read (bad rows, pickles);
``reduce``     scalers and PCA;
``cluster``    algorithms, k sweep, stability and silhouette samples, mixtures and
               every adapter's parameters (``params``: algorithm -> its estimator
               parameters, defaults read from the adapter classes);
``screen``     the screening of configurations on a stratified sample (:mod:`descluster.cluster.screen`);
``selection``  the rule that chooses k (:func:`descluster.cluster.selection.choose_k`);
``embedding``  the 2-D map;
``outliers``   detectors and the flag rule (:func:`descluster.outliers.consensus.find_outliers`);
``model``      what the saved model keeps for new images (:mod:`descluster.model`);
``report``     the report's sizes (``ReportOptions`` of :mod:`descluster.report.build`).

Valid names (scalers, algorithms, embeddings, detectors, neighbour indexes) are read
from the registries when a config is checked, never copied here.

Keys can be given nested (``{"cluster": {"k_max": 12}}``, TOML ``[cluster]``) or flat
by their field name (``k_max = 12``): every field name is unique across sections;
``embedding`` stands for ``embedding.method`` and ``outliers`` for ``outliers.enabled``.
"""

from __future__ import annotations

import dataclasses
import importlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .errors import ParameterError
from .profile import ADVISORY_RULES
from .validation import MAX_SEED, Bool, Int, NamesOf, OneOf, Real, validate_params


def _registry(module: str, name: str):
    """A callable returning the names of a registry (read when called, so never copied)."""
    return lambda: list(getattr(importlib.import_module(f"descluster.{module}"), name))


SCALER_NAMES = _registry("preprocess.scalers", "SCALERS")
ALGORITHM_NAMES = _registry("cluster.algorithms", "ALGORITHMS")
EMBEDDING_NAMES = _registry("embed", "EMBEDDINGS")
DETECTOR_NAMES = _registry("outliers.detectors", "DETECTORS")
INDEX_NAMES = _registry("outliers.neighbours", "INDEXES")


class _Section:
    """Base of the sections: ``_constraints`` checked (and values normalised) after init."""

    _constraints: ClassVar[dict] = {}

    def __post_init__(self) -> None:
        for name, value in validate_params(self, self._constraints, owner="").items():
            setattr(self, name, value)
        self._check()

    def _check(self) -> None:
        """Checks across fields (subclasses)."""

    def to_dict(self) -> dict[str, Any]:
        """All fields as JSON-able values (tuples become lists)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


def _plain(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


@dataclass
class CaseSection(_Section):
    """How the case is read.

    Attributes
    ----------
    drop_bad_rows : bool
        Drop rows with NaN/inf (recorded) instead of refusing the case.
    trust_pickle : bool
        Load descriptor pickles with the unrestricted unpickler (unsafe; off).
    """

    drop_bad_rows: bool = False
    trust_pickle: bool = False
    _constraints: ClassVar[dict] = {"drop_bad_rows": Bool(), "trust_pickle": Bool()}


@dataclass
class ReduceSection(_Section):
    """Scaling and PCA (:func:`descluster.preprocess.spaces.reduce_descriptor`).

    Attributes
    ----------
    preprocessings : tuple of str
        Scalers studied (each followed by PCA); names of ``preprocess.scalers.SCALERS``.
        Default: all of them.
    variance_target : float in (0, 1]
        Cumulative explained variance that chooses the PCA component count.
    max_components : int
        Upper bound on PCA components.
    """

    preprocessings: tuple[str, ...] = field(default_factory=lambda: tuple(SCALER_NAMES()))
    variance_target: float = 0.90
    max_components: int = 256
    _constraints: ClassVar[dict] = {"preprocessings": NamesOf(SCALER_NAMES), "variance_target": Real(0.0, 1.0),
                                    "max_components": Int(1)}


def _adapter_defaults() -> dict[str, dict[str, Any]]:
    """Every adapter's estimator parameters, from the registry classes (``n_clusters`` and
    ``random_state`` excluded: the sweep and the seed set them)."""
    from .cluster.algorithms import ALGORITHMS

    return {name: {k: v for k, v in cls().get_params().items() if k not in ("n_clusters", "random_state")}
            for name, cls in ALGORITHMS.items()}


@dataclass
class ClusterSection(_Section):
    """Clustering: algorithms, the k sweep, its samples, mixtures and adapter parameters.

    Attributes
    ----------
    algorithms : tuple of str
        Clustering algorithms (names of ``cluster.algorithms.ALGORITHMS``); default all.
    every_scaler_algorithms : tuple of str
        Algorithms run on *every* scaler (default k-means only); the others run on the
        ``full_preprocessings``. Names must be valid algorithm names; those not in
        ``algorithms`` are ignored (so ``--algorithms gmm`` alone still works, with the
        first of ``algorithms`` run on every scaler).
    full_preprocessings : tuple of str
        Scalers on which *every* algorithm runs. Empty (the default) means *auto*: per
        descriptor, the scaler whose first-pass (every-scaler) clustering has the best
        label-free score (see ``descluster.recommend``). Must be in ``reduce.preprocessings``.
    k_min, k_max : int
        The k sweep is ``k_min … k_max`` inclusive (default 2…30).
    silhouette_sample : int
        Silhouette is exact up to this many rows, else on a fixed-seed sample.
    stability_rows : int
        Rows per half of the split-half stability fits (>= 10).
    mixtures : bool
        Also study weighted concatenations of descriptor kinds.
    params : dict of str -> dict
        Algorithm name -> its adapter's parameters (defaults from the adapter classes;
        a partial mapping overrides only the names it gives). Checked by the adapters'
        own constraints.
    """

    algorithms: tuple[str, ...] = field(default_factory=lambda: tuple(ALGORITHM_NAMES()))
    every_scaler_algorithms: tuple[str, ...] = ("kmeans",)
    full_preprocessings: tuple[str, ...] = ()
    k_min: int = 2
    k_max: int = 30
    silhouette_sample: int = 10_000
    stability_rows: int = 5_000
    mixtures: bool = True
    params: dict = field(default_factory=_adapter_defaults)
    _constraints: ClassVar[dict] = {
        "algorithms": NamesOf(ALGORITHM_NAMES), "every_scaler_algorithms": NamesOf(ALGORITHM_NAMES, allow_empty=True),
        "full_preprocessings": NamesOf(SCALER_NAMES, allow_empty=True), "k_min": Int(2), "k_max": Int(2),
        "silhouette_sample": Int(10), "stability_rows": Int(10), "mixtures": Bool()}

    @property
    def ks(self) -> list[int]:
        """The k values of the sweep, ``k_min … k_max``."""
        return list(range(self.k_min, self.k_max + 1))

    def _check(self) -> None:
        if self.k_min > self.k_max:
            raise ParameterError(f"k_min={self.k_min}, k_max={self.k_max}: need 2 <= k_min <= k_max")
        from .cluster.algorithms import ALGORITHMS

        defaults = _adapter_defaults()
        given = dict(self.params or {})
        unknown = sorted(set(given) - set(defaults))
        if unknown:
            raise ParameterError(f"cluster.params has unknown algorithms {unknown}; valid: {', '.join(defaults)}")
        merged = {}
        for name, base in defaults.items():
            over = dict(given.get(name) or {})
            bad = sorted(set(over) - set(base))
            if bad:
                raise ParameterError(f"cluster.params.{name} has unknown parameters {bad}; valid: {', '.join(base)}")
            values = {**base, **over}
            cls = ALGORITHMS[name]
            checked = validate_params({**values, "n_clusters": 2, "random_state": 0},
                                      {k: v for k, v in cls._constraints.items() if k in values},
                                      owner=f"cluster.params.{name}.")
            merged[name] = {k: checked.get(k, v) for k, v in values.items()}
        self.params = merged

    def adapter(self, name: str, seed: int):
        """A fresh adapter ``name`` with this section's parameters and ``random_state=seed``."""
        from .cluster.algorithms import make_algorithm

        return make_algorithm(name, random_state=seed, **self.params[name])


@dataclass
class SelectionSection(_Section):
    """The rule that chooses k (:func:`descluster.cluster.selection.choose_k`).

    Attributes
    ----------
    tiny_share : float in [0, 1)
        Smallest cluster, as a share of the average size, for a k to count.
    window : float >= 1
        Upper end of the consensus window as a multiple of the knee.
    """

    tiny_share: float = 0.1
    window: float = 1.5
    _constraints: ClassVar[dict] = {"tiny_share": Real(0.0, 0.999999, low_open=False), "window": Real(1.0, low_open=False)}


@dataclass
class ScreenSection(_Section):
    """Screening: every configuration on a stratified sample, only the finalists on all rows
    (:func:`descluster.cluster.screen.screen_study`). ``descluster run --exhaustive`` turns it off.

    Attributes
    ----------
    enabled : bool
        Screen (flat key ``screen``; the default). Off: every sweep on all rows (the exhaustive study).
    screen_rows : int
        Rows of the stratified sample. Cases with fewer than ``2 * screen_rows`` rows are not
        screened (the exhaustive study is then cheap).
    screen_strata : int
        Strata (clusters of a coarse k-means on a cheap projection) of the sample.
    finalist_scalers : int
        Per descriptor kind, the best scalers of the every-scaler algorithm that go on to all rows.
    finalist_algorithms : int
        Per descriptor kind, the best other algorithms that go on to all rows.
    finalist_overall : int
        Mixtures among this many best screened configurations go on to all rows.
    screen_bootstrap : int
        Bootstrap resamples of each screened score's interval.
    """

    enabled: bool = True
    screen_rows: int = 20_000
    screen_strata: int = 32
    finalist_scalers: int = 2
    finalist_algorithms: int = 2
    finalist_overall: int = 3
    screen_bootstrap: int = 100
    _constraints: ClassVar[dict] = {
        "enabled": Bool(), "screen_rows": Int(1_000), "screen_strata": Int(1), "finalist_scalers": Int(1),
        "finalist_algorithms": Int(1), "finalist_overall": Int(1), "screen_bootstrap": Int(10)}

    def applies(self, n_rows: int) -> bool:
        """Whether a case of ``n_rows`` rows is screened (enabled and ``n_rows >= 2 * screen_rows``)."""
        return self.enabled and n_rows >= 2 * self.screen_rows


@dataclass
class EmbeddingSection(_Section):
    """The 2-D map.

    Attributes
    ----------
    method : str
        A name of ``embed.EMBEDDINGS``: ``tsne`` (openTSNE), ``umap`` or ``pca``. Flat key ``embedding``.
    """

    method: str = "tsne"
    _constraints: ClassVar[dict] = {"method": OneOf(EMBEDDING_NAMES)}


@dataclass
class OutliersSection(_Section):
    """Outlier detection and the flag rule (:func:`descluster.outliers.consensus.find_outliers`).

    Attributes
    ----------
    enabled : bool
        Run the descriptor outlier detectors (flat key ``outliers``).
    pixel_checks : bool
        Run the pixel quality checks on the images.
    detectors : tuple of str
        Names of ``outliers.detectors.DETECTORS``.
    n_neighbors : int
        Neighbours of each space's kNN graph.
    min_descriptor_kinds : int or None
        The flag rule: descriptor detectors must flag the image in at least this many descriptor kinds
        (None: in every kind; :func:`descluster.outliers.consensus.find_outliers`).
    no_vehicle_kinds : int or None
        Kinds that must also flag an image whose ImageNet vehicle share is under the uniform-head share
        (0.05; see ``find_outliers``); None: off.
    max_pixel_share : float
        A pixel rule that would flag more than this share of the collection says so instead.
    advisory : tuple of str
        Pixel rules that are reported but do not flag alone (default ``profile.ADVISORY_RULES``).
    neighbour_index : str
        kNN strategy, a name of ``outliers.neighbours.INDEXES``.
    """

    enabled: bool = True
    pixel_checks: bool = True
    detectors: tuple[str, ...] = ("knn", "lof", "iforest")
    n_neighbors: int = 20
    min_descriptor_kinds: int | None = None
    no_vehicle_kinds: int | None = 2
    max_pixel_share: float = 0.10
    advisory: tuple[str, ...] = field(default_factory=lambda: tuple(ADVISORY_RULES))
    neighbour_index: str = "auto"
    _constraints: ClassVar[dict] = {
        "enabled": Bool(), "pixel_checks": Bool(), "detectors": NamesOf(DETECTOR_NAMES), "n_neighbors": Int(1),
        "neighbour_index": OneOf(INDEX_NAMES)}

    def _check(self) -> None:
        self.advisory = tuple(self.advisory)
        for name in ("min_descriptor_kinds", "no_vehicle_kinds"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ParameterError(f"{name}={v!r} is invalid: expected none (every kind) or an integer >= 1")
        if isinstance(self.max_pixel_share, bool) or not isinstance(self.max_pixel_share, (int, float)) or \
                not 0 < self.max_pixel_share <= 1:
            raise ParameterError(f"max_pixel_share={self.max_pixel_share!r} is out of range: must be in (0, 1]")


@dataclass
class ModelSection(_Section):
    """What the saved model keeps to judge new images (:mod:`descluster.model`).

    Attributes
    ----------
    reference_rows : int
        Rows of each descriptor space kept as the outlier reference set (fixed-seed sample).
        Assigning costs about new images x reference rows x dims per descriptor kind: with
        10,000 rows the outlier checks were 9.6 of 13 s for 10,000 new images of the four
        VeRi kinds on a loaded 2-core machine (benchmarks/assign_bench.py), hence 5,000.
    drift_quantile : float in (0, 1)
        A new image is *far from every cluster* when its distance to the nearest centre
        exceeds this quantile of the study's own distances to that centre.
    new_group_min : int
        Smallest number of mutually close far images reported as a new dense group.
    """

    reference_rows: int = 5_000
    drift_quantile: float = 0.99
    new_group_min: int = 10
    _constraints: ClassVar[dict] = {"reference_rows": Int(20), "drift_quantile": Real(0.0, 0.999999),
                                    "new_group_min": Int(2)}


def _report_defaults() -> dict[str, Any]:
    from .report.build import ReportOptions

    return {k: v for k, v in dataclasses.asdict(ReportOptions()).items() if k != "random_state"}


@dataclass
class ReportSection(_Section):
    """The report's sizes: the fields of ``descluster.report.build.ReportOptions`` (defaults read
    from it; its ``random_state`` is the run's ``seed``), checked by ``ReportOptions.validate``.

    Attributes
    ----------
    options : dict of str -> value
    """

    options: dict = field(default_factory=_report_defaults)

    def _check(self) -> None:
        from .report.build import ReportOptions

        base = _report_defaults()
        bad = sorted(set(self.options) - set(base))
        if bad:
            raise ParameterError(f"report has unknown options {bad}; valid: {', '.join(base)}")
        self.options = {**base, **self.options}
        ReportOptions(**self.options).validate()

    def build(self, seed: int):
        """The ``ReportOptions`` of this section with ``random_state=seed``."""
        from .report.build import ReportOptions

        return ReportOptions(**self.options, random_state=seed)

    def _check_types(self) -> None:
        """Each field must have its declared type (TOML and Python callers can pass anything)."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
            if kind.startswith("tuple"):
                if isinstance(value, str) or not isinstance(value, (tuple, list)) or \
                        not all(isinstance(v, str) for v in value):
                    raise ParameterError(f"{f.name}={value!r}: must be a list of names (strings)")
            elif kind == "bool":
                if not isinstance(value, bool):
                    raise ParameterError(f"{f.name}={value!r}: must be true or false")
            elif kind == "int":
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ParameterError(f"{f.name}={value!r}: must be an integer")
            elif kind == "float":
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ParameterError(f"{f.name}={value!r}: must be a number")
                setattr(self, f.name, float(value))
            elif kind == "str" and not isinstance(value, str):
                raise ParameterError(f"{f.name}={value!r}: must be a string")

    def to_dict(self) -> dict[str, Any]:
        """The options (flat)."""
        return dict(self.options)


_SECTIONS: dict[str, type[_Section]] = {
    "case": CaseSection, "reduce": ReduceSection, "cluster": ClusterSection, "screen": ScreenSection,
    "selection": SelectionSection,
    "embedding": EmbeddingSection, "outliers": OutliersSection, "model": ModelSection, "report": ReportSection,
}
#: Flat names that differ from the field name.
_ALIASES = {("embedding", "method"): "embedding", ("outliers", "enabled"): "outliers", ("screen", "enabled"): "screen"}


def _flat_names() -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for sec, cls in _SECTIONS.items():
        if sec == "report":
            continue
        for f in dataclasses.fields(cls):
            out[_ALIASES.get((sec, f.name), f.name)] = (sec, f.name)
    return out


@dataclass
class RunConfig:
    """Parameters of one study run, in sections (see the module docstring).

    Attributes
    ----------
    seed : int
        Seed of every random choice, in [0, :data:`MAX_SEED`] (recorded; same seed -> same outputs).
    case, reduce, cluster, screen, selection, embedding, outliers, model, report : sections
    """

    seed: int = 0
    case: CaseSection = field(default_factory=CaseSection)
    reduce: ReduceSection = field(default_factory=ReduceSection)
    cluster: ClusterSection = field(default_factory=ClusterSection)
    screen: ScreenSection = field(default_factory=ScreenSection)
    selection: SelectionSection = field(default_factory=SelectionSection)
    embedding: EmbeddingSection = field(default_factory=EmbeddingSection)
    outliers: OutliersSection = field(default_factory=OutliersSection)
    model: ModelSection = field(default_factory=ModelSection)
    report: ReportSection = field(default_factory=ReportSection)

    def __post_init__(self) -> None:
        self.seed = Int(0, MAX_SEED).check("seed", self.seed)
        missing = [p for p in self.cluster.full_preprocessings if p not in self.reduce.preprocessings]
        if missing:
            raise ParameterError(f"full_preprocessings {missing} must also be listed in preprocessings="
                                 f"{list(self.reduce.preprocessings)}")

    @property
    def ks(self) -> list[int]:
        """The k values of the sweep (``cluster.ks``)."""
        return self.cluster.ks

    def to_dict(self) -> dict[str, Any]:
        """All sections as a nested JSON-serialisable dict (``from_dict`` reads it back)."""
        return {"seed": self.seed, **{name: getattr(self, name).to_dict() for name in _SECTIONS}}

    def replace(self, **fields: Any) -> "RunConfig":
        """A copy with ``fields`` (flat or nested, as :meth:`from_dict`) changed."""
        return type(self).from_dict(self.to_dict(), source="replace", **fields)

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> "RunConfig":
        """Read keys from a TOML file, then apply ``overrides`` (None values ignored).

        Raises
        ------
        ParameterError
            Unreadable TOML, unknown keys (named, with the file) or invalid values.
        """
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ParameterError(f"--config {path}: not found") from None
        except IsADirectoryError:
            raise ParameterError(f"--config {path}: is a folder, not a TOML file") from None
        except UnicodeDecodeError as exc:
            raise ParameterError(f"--config {path}: is not UTF-8 text (byte offset {exc.start})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ParameterError(f"--config {path}: not valid TOML ({exc})") from None
        except OSError as exc:
            raise ParameterError(f"--config {path}: cannot be read ({exc.strerror or exc})") from None
        try:
            return cls.from_dict(data, source=f"--config {path}", **overrides)
        except ParameterError as exc:
            text = str(exc)
            raise ParameterError(text if text.startswith("--config") else f"--config {path}: {text}") from None

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config", **overrides: Any) -> "RunConfig":
        """Build from nested sections and/or flat field names, then ``overrides`` (None values ignored).

        Raises
        ------
        ParameterError
            Unknown keys (listing the valid ones, with ``source``) or invalid values.
        """
        flat = _flat_names()
        nested: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
        seed = None

        def put(key: str, value: Any, where: str) -> None:
            nonlocal seed
            if key == "seed":
                seed = value
            elif key in _SECTIONS and isinstance(value, dict):
                if key == "report":
                    nested["report"].setdefault("options", {}).update(value)
                    return
                for k, v in value.items():
                    f = {f.name for f in dataclasses.fields(_SECTIONS[key])}
                    if k not in f:
                        raise ParameterError(f"{where}: unknown key {key}.{k}; valid: {', '.join(sorted(f))}")
                    nested[key][k] = v
            elif key in flat:
                sec, name = flat[key]
                nested[sec][name] = value
            else:
                valid = sorted(set(flat) | set(_SECTIONS) | {"seed"})
                raise ParameterError(f"{where}: unknown keys {[key]}; valid keys: {', '.join(valid)}")

        for k, v in data.items():
            put(k, v, source)
        for k, v in overrides.items():
            if v is not None:
                put(k, v, "overrides")
        if "full_preprocessings" in nested["cluster"] and tuple(nested["cluster"]["full_preprocessings"] or ()) == ("auto",):
            nested["cluster"]["full_preprocessings"] = ()
        sections = {name: _SECTIONS[name](**{k: tuple(v) if isinstance(v, list) else v for k, v in kw.items()})
                    for name, kw in nested.items()}
        return cls(seed=0 if seed is None else seed, **sections)
