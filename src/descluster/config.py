"""Run configuration: every default of ``descluster run`` in one place.

A :class:`RunConfig` is built from defaults, optionally a TOML file
(``--config run.toml``, keys as the field names), then command-line flags.
It is recorded whole in ``OUT/manifest.json`` and hashed into stage cache keys.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ParameterError

PREPROCESSINGS = ("none", "standard", "minmax", "robust", "l2")
ALGORITHM_NAMES = ("kmeans", "minibatch_kmeans", "gmm", "birch", "ward", "hdbscan")
EMBEDDINGS = ("tsne", "umap", "pca")


@dataclass
class RunConfig:
    """Parameters of one study run.

    Attributes
    ----------
    preprocessings : tuple of str
        Scalers studied with k-means (each followed by PCA). Subset of
        ``none, standard, minmax, robust, l2``.
    full_preprocessings : tuple of str
        Scalers on which *every* algorithm runs; the others get only the
        ``every_scaler_algorithms``, to keep the study's cost linear in the number of
        variants. Empty (the default) means *auto*: per descriptor, the scaler whose
        first-pass (every-scaler) clustering has the best label-free score (see
        ``descluster.recommend``).
    algorithms : tuple of str
        Clustering algorithms (see ``descluster.cluster.algorithms.ALGORITHMS``).
    every_scaler_algorithms : tuple of str
        Algorithms run on *every* scaler (default k-means only); the others run on the
        ``full_preprocessings``. Names must be valid algorithm names; those not in
        ``algorithms`` are ignored (so ``--algorithms gmm`` alone still works, with the
        first of ``algorithms`` run on every scaler).
    k_min, k_max : int
        The k sweep is ``k_min … k_max`` inclusive (default 2…30).
    variance_target : float in (0, 1]
        Cumulative explained variance that chooses the PCA component count.
    max_components : int
        Upper bound on PCA components.
    seed : int
        Seed of every random choice (recorded; same seed -> same outputs).
    silhouette_sample : int
        Silhouette is exact up to this many rows, else on a fixed-seed sample.
    embedding : str
        2-D map method: ``tsne`` (openTSNE), ``umap`` or ``pca``.
    mixtures : bool
        Also study weighted concatenations of descriptor kinds.
    outliers, pixel_checks : bool
        Run descriptor outlier detectors / pixel quality checks.
    drop_bad_rows : bool
        Drop rows with NaN/inf (recorded) instead of refusing the case.
    trust_pickle : bool
        Load descriptor pickles with the unrestricted unpickler (unsafe; off).
    """

    preprocessings: tuple[str, ...] = PREPROCESSINGS
    full_preprocessings: tuple[str, ...] = ()
    algorithms: tuple[str, ...] = ALGORITHM_NAMES
    every_scaler_algorithms: tuple[str, ...] = ("kmeans",)
    k_min: int = 2
    k_max: int = 30
    variance_target: float = 0.90
    max_components: int = 256
    seed: int = 0
    silhouette_sample: int = 10_000
    embedding: str = "tsne"
    mixtures: bool = True
    outliers: bool = True
    pixel_checks: bool = True
    drop_bad_rows: bool = False
    trust_pickle: bool = False

    def __post_init__(self) -> None:
        self.validate()

    @property
    def ks(self) -> list[int]:
        """The k values of the sweep, ``k_min … k_max``."""
        return list(range(self.k_min, self.k_max + 1))

    def validate(self) -> None:
        """Check every parameter; raise :class:`ParameterError` naming the first bad one."""
        self._check_types()
        self.preprocessings = tuple(self.preprocessings)
        self.full_preprocessings = tuple(self.full_preprocessings)
        self.algorithms = tuple(self.algorithms)
        self.every_scaler_algorithms = tuple(self.every_scaler_algorithms)
        for name, values, valid in (
            ("preprocessings", self.preprocessings, PREPROCESSINGS),
            ("full_preprocessings", self.full_preprocessings, PREPROCESSINGS),
            ("algorithms", self.algorithms, ALGORITHM_NAMES),
            ("every_scaler_algorithms", self.every_scaler_algorithms, ALGORITHM_NAMES),
        ):
            bad = [v for v in values if v not in valid]
            if bad or not values and name not in ("full_preprocessings", "every_scaler_algorithms"):
                raise ParameterError(f"{name}={list(values)!r}: unknown {bad}; valid: {', '.join(valid)}")
        missing = [p for p in self.full_preprocessings if p not in self.preprocessings]
        if missing:
            raise ParameterError(f"full_preprocessings {missing} must also be listed in preprocessings={list(self.preprocessings)}")
        if not (2 <= self.k_min <= self.k_max):
            raise ParameterError(f"k_min={self.k_min}, k_max={self.k_max}: need 2 <= k_min <= k_max")
        if not (0.0 < self.variance_target <= 1.0):
            raise ParameterError(f"variance_target={self.variance_target}: must be in (0, 1]")
        if self.max_components < 1:
            raise ParameterError(f"max_components={self.max_components}: must be >= 1")
        if self.silhouette_sample < 10:
            raise ParameterError(f"silhouette_sample={self.silhouette_sample}: must be >= 10")
        if self.embedding not in EMBEDDINGS:
            raise ParameterError(f"embedding={self.embedding!r}: valid: {', '.join(EMBEDDINGS)}")

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
        """All fields as a JSON-serialisable dict."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> "RunConfig":
        """Read fields from a TOML file, then apply ``overrides`` (None values ignored).

        Raises
        ------
        ParameterError
            Unknown keys (named, with the file) or invalid values.
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
        return cls.from_dict(data, source=f"--config {path}", **overrides)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config", **overrides: Any) -> "RunConfig":
        """Build from a mapping of field names, then ``overrides`` (None values ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ParameterError(f"{source}: unknown keys {unknown}; valid keys: {', '.join(sorted(names))}")
        merged = dict(data)
        merged.update({k: v for k, v in overrides.items() if v is not None})
        for k, v in list(merged.items()):
            if isinstance(v, list):
                merged[k] = tuple(v)
        try:
            return cls(**merged)
        except ParameterError as exc:
            raise ParameterError(f"{source}: {exc}") from None
