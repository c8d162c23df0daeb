"""Result objects passed between pipeline stages and to the report.

Each is a plain dataclass: the stage that makes it documents how; the report
and the CSV writers only read it. Arrays are NumPy; tables are pandas. A space
is named by a :class:`SpaceId` (descriptor, preprocessing, fingerprint), never by
a string rebuilt by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


def choice_key(descriptor: str, preprocessing: str, algorithm: str) -> str:
    """The name of a configuration (``Choice.key``) from its three table columns:
    ``"<descriptor>/<preprocessing>/<algorithm>"``."""
    return f"{descriptor}/{preprocessing}/{algorithm}"


_MIX = "mix:"  # table-name prefix of a mixture (SpaceId.mixture, SpaceId.mixture_kinds)


@dataclass(frozen=True)
class SpaceId:
    """Identity of a reduced space: which descriptor kind(s), which scaler, from which inputs.

    Built by :meth:`single` (one descriptor kind after a scaler and PCA) or
    :meth:`mixture` (a weighted concatenation of single spaces); the table name
    (``descriptor`` column, ``"mix:a+b"`` for mixtures) is made only here.

    Attributes
    ----------
    descriptor : str
        Descriptor kind (file stem), e.g. ``"mobilenetv2"``; for a mixture ``"mix:a+b"``
        (the parts' kinds joined in order).
    preprocessing : str
        Scaler name (``"none"``, ``"standard"``, ``"minmax"``, ``"robust"``, ``"l2"``); for a
        mixture the parts' scalers, distinct ones joined by ``+``.
    parts : tuple of SpaceId
        The single spaces of a mixture, in block order; empty for a single space.
    fingerprint : str
        Hash of everything the space's rows depend on (input digests, parameters); the
        stage cache chains it into the keys of later stages. Empty when unknown.
    """

    descriptor: str
    preprocessing: str
    parts: tuple["SpaceId", ...] = ()
    fingerprint: str = ""

    @classmethod
    def single(cls, descriptor: str, preprocessing: str, fingerprint: str = "") -> "SpaceId":
        """One descriptor kind after ``preprocessing`` and PCA."""
        return cls(str(descriptor), str(preprocessing), (), fingerprint)

    @classmethod
    def mixture(cls, parts) -> "SpaceId":
        """The concatenation of single spaces ``parts`` (in block order); fingerprint chained from theirs.

        Raises
        ------
        ParameterError
            If ``parts`` is empty or holds a mixture.
        """
        from .cache import stable_hash
        from .errors import ParameterError

        parts = tuple(parts)
        if not parts or any(p.is_mixture for p in parts):
            raise ParameterError(f"a mixture needs one or more single spaces; got {[p.key for p in parts]}")
        preps = [p.preprocessing for p in parts]
        # one name when every part shares it, else one per part (in order), so the key can be read back
        return cls(_MIX + "+".join(p.descriptor for p in parts),
                   preps[0] if len(set(preps)) == 1 else "+".join(preps), parts,
                   stable_hash([p.fingerprint for p in parts]))

    @staticmethod
    def mixture_kinds(descriptor: str) -> tuple[str, ...] | None:
        """The descriptor kinds named by a table's ``descriptor`` value if it names a mixture, else None.

        The inverse of the name :meth:`mixture` writes (``"mix:a+b"`` -> ``("a", "b")``); the
        ``preprocessing`` value beside it is one scaler for all blocks or one per block, joined by ``+``.
        """
        descriptor = str(descriptor)
        return tuple(descriptor[len(_MIX):].split("+")) if descriptor.startswith(_MIX) else None

    @property
    def key(self) -> str:
        """``"<descriptor>/<preprocessing>"``: the name of this space in tables and dicts."""
        return f"{self.descriptor}/{self.preprocessing}"

    @property
    def is_mixture(self) -> bool:
        """True for a concatenation of descriptor kinds."""
        return bool(self.parts)

    @property
    def kinds(self) -> tuple[str, ...]:
        """Descriptor kinds whose raw rows this space is computed from."""
        return tuple(p.descriptor for p in self.parts) if self.parts else (self.descriptor,)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``from_dict`` reads it back)."""
        return {"descriptor": self.descriptor, "preprocessing": self.preprocessing,
                "parts": [p.to_dict() for p in self.parts], "fingerprint": self.fingerprint}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SpaceId":
        """Inverse of :meth:`to_dict`."""
        return cls(str(data["descriptor"]), str(data["preprocessing"]),
                   tuple(cls.from_dict(p) for p in data.get("parts", ())), str(data.get("fingerprint", "")))


@dataclass
class ReducedSpace:
    """One descriptor kind after scaling and PCA (or a mixture of such): the space clustering runs in.

    Attributes
    ----------
    id : SpaceId
        Which space this is.
    X : ndarray of shape (n_samples, n_components), float32
        The reduced rows, in input order.
    explained_variance_ratio : ndarray of shape (n_fitted_components,), float64
        Per-component share of the scaled data's total variance (the curve).
    n_components : int
        Components kept (chosen by the explained-variance target).
    variance_target : float
        Cumulative explained-variance target used to choose ``n_components``.
    transform : Reduction or Mixture, optional
        The fitted map from raw descriptor rows to these rows
        (:mod:`descluster.preprocess.spaces`); what a saved model applies to new images.
    """

    id: SpaceId
    X: np.ndarray
    explained_variance_ratio: np.ndarray
    n_components: int
    variance_target: float
    transform: Any = None

    @property
    def descriptor(self) -> str:
        """``id.descriptor``."""
        return self.id.descriptor

    @property
    def preprocessing(self) -> str:
        """``id.preprocessing``."""
        return self.id.preprocessing

    @property
    def key(self) -> str:
        """``id.key``: the name of this space in tables."""
        return self.id.key


@dataclass
class Choice:
    """The k chosen for one (space, algorithm) sweep.

    Attributes
    ----------
    space : SpaceId
        The space the sweep ran in.
    algorithm : str
        Registry name of the algorithm.
    k : int
        Chosen number of clusters (for HDBSCAN: clusters found, noise excluded).
    labels : ndarray of shape (n_samples,), int64
        Cluster of every row in input order; ``-1`` marks noise (HDBSCAN only).
    reason : str
        The rule's explanation in words, with the runner-up k values and scores.
    sweep : DataFrame
        One row per k tried, with the metric columns of ``study.csv``.
    centroids : ndarray of shape (k, n_components), float32, optional
        Cluster means in the reduced space (used for distances and medoids).
    predictor : Predictor, optional
        How rows of the space get this clustering's labels (:mod:`descluster.cluster.predictors`);
        what a saved model applies to new images.
    """

    space: SpaceId
    algorithm: str
    k: int
    labels: np.ndarray
    reason: str
    sweep: pd.DataFrame
    centroids: np.ndarray | None = None
    predictor: Any = None

    @property
    def descriptor(self) -> str:
        """``space.descriptor``."""
        return self.space.descriptor

    @property
    def preprocessing(self) -> str:
        """``space.preprocessing``."""
        return self.space.preprocessing

    @property
    def key(self) -> str:
        """``"<descriptor>/<preprocessing>/<algorithm>"``: the name of this configuration."""
        return choice_key(self.space.descriptor, self.space.preprocessing, self.algorithm)


@dataclass
class RunResult:
    """Everything one ``descluster run`` produced; the report reads only this.

    Attributes
    ----------
    paths : list of str, length n_samples
        Image paths exactly as in ``images_paths.csv``.
    spaces : dict of str -> ReducedSpace
        Keyed by ``SpaceId.key``.
    choices : dict of str -> Choice
        Keyed by ``Choice.key``; every configuration of the study at its chosen k.
    study : DataFrame
        ``study.csv``: one row per descriptor × preprocessing × algorithm × k.
    comparison : DataFrame
        ``comparison.csv``: one row per configuration at its chosen k, ``recommended`` column.
    recommended : str
        ``Choice.key`` of the recommended configuration.
    recommendation : str
        Why it is recommended, in words.
    per_descriptor : dict of str -> str
        Descriptor kind -> ``Choice.key`` of its best configuration (``clusters_<descriptor>.csv``).
    embeddings : dict of str -> ndarray of shape (n_samples, 2), float32
        2-D maps keyed by ``Choice.key`` (at least the recommended one).
    embedding_method : dict of str -> str
        How each map was made, e.g. ``"openTSNE (FFT), all 4,800 rows"``.
    outliers : DataFrame or None
        ``outliers.csv``: ``path``, scores, ``rank``, ``flagged``, ``reason``.
    outlier_rules : dict of str -> str
        How images were judged, in words: ``"flag rule"`` and one entry per detector,
        pixel rule and neighbour search (``"neighbours:<space>"``: index, recall, columns).
    quality : DataFrame or None
        Pixel facts per image (n_samples rows, see ``outliers.quality``).
    imagenet : DataFrame or None
        Per-image ImageNet head summary from extraction (see ``extract``), if present.
    labels : DataFrame or None
        ``labels.csv`` aligned to ``paths`` (columns: label names), if present.
    cluster_facts : DataFrame or None
        One row per cluster of the recommended clustering, with the automatic ``description``.
    agreement : DataFrame or None
        ARI between chosen clusterings of different descriptors (square, keyed by descriptor).
    notes : list of str
        Warnings and fallbacks that the report must show (sampling, capped parameters, ...).
    meta : dict
        Run parameters, versions and timings (also in ``manifest.json``).
    model : FittedModel or None
        What labels new images (:mod:`descluster.model`); saved under ``OUT/model/``.
    images : ImageSource or None
        Where the images are read from (report grids), if known.
    """

    paths: list[str]
    spaces: dict[str, ReducedSpace]
    choices: dict[str, Choice]
    study: pd.DataFrame
    comparison: pd.DataFrame
    recommended: str
    recommendation: str
    per_descriptor: dict[str, str]
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    embedding_method: dict[str, str] = field(default_factory=dict)
    outliers: pd.DataFrame | None = None
    outlier_rules: dict[str, str] = field(default_factory=dict)
    quality: pd.DataFrame | None = None
    imagenet: pd.DataFrame | None = None
    labels: pd.DataFrame | None = None
    cluster_facts: pd.DataFrame | None = None
    agreement: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    model: Any = None
    images: Any = None
