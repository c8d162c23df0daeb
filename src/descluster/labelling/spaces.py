"""What a labelling session reads from a results folder: rows, clusterings, spaces, kNN graphs.

Where the spaces come from: the engine **reuses the study's reduced spaces**
(scaling + PCA, :func:`descluster.pipeline.reduce_stage`) from the stage cache
``OUT/.cache/reduce``. Their cache keys are rebuilt from ``manifest.json``
(descriptor digests, dropped rows, run parameters) with
:func:`descluster.pipeline.reduce_params`, so a hit is exact; a missing entry
(e.g. a deleted cache) is recomputed from the case's descriptors through the
same stage and stored again. Mixture spaces are rebuilt from their parts with
:func:`descluster.preprocess.mix_spaces`, as in the study.

The candidate spaces of a task are every space the study made: each descriptor
kind under each scaler, and the mixtures; those the study also wrote a
clustering for (the recommended one, ``clusters.csv``, and each descriptor
kind's best configuration, ``clusters_<descriptor>.csv``) bring their clusters
for the "clusters first" questions. Each space used is copied once into
``OUT/.cache/labelling/`` as a ``.npy`` file and opened as a read-only memory
map (a 416,314 × 256 float32 space is 426 MB; only the pages read stay
resident). Its kNN graph (:func:`descluster.outliers.neighbours.knn_search`,
exact up to 50,000 rows, faiss IVF with measured recall above) is computed once
per space and cached beside it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..cache import StageCache, stable_hash
from ..profile import identities_from_paths
from ..errors import CaseError, LabellingError
from ..io.atomic import write_npy
from ..results import SpaceId
from .names import read_clusters

__all__ = ["ResultsData", "KnnGraph", "GRAPH_NEIGHBOURS"]

log = logging.getLogger("descluster")

#: Neighbours per row of the propagation graph: scikit-learn's ``LabelSpreading`` default ``n_neighbors=7``.
GRAPH_NEIGHBOURS = 7


@dataclass(frozen=True)
class KnnGraph:
    """k nearest neighbours of every row of one space (self excluded).

    Attributes
    ----------
    indices : ndarray of shape (n_samples, k), int32
        Neighbour rows, nearest first (-1 where an approximate index found fewer).
    distances : ndarray of shape (n_samples, k), float32
        Euclidean distances, ascending.
    description : str
        How the neighbours were found (exact or IVF with its measured recall).
    """

    indices: np.ndarray
    distances: np.ndarray
    description: str


def _safe_name(descriptor: str) -> str:
    """File-name form of a descriptor kind, as :func:`descluster.pipeline.write_outputs` writes it."""
    return descriptor.replace(":", "_").replace("+", "_").replace("/", "_")


def check_results_folder(root: str | os.PathLike) -> Path:
    """Check, without reading them, that the files the labelling engine opens are in ``root``.

    A cheap test (file existence only) for callers that must fail at once, before any work,
    e.g. ``descluster serve`` before it listens; :class:`ResultsData` runs it first too.

    Parameters
    ----------
    root : str or PathLike
        A ``descluster run`` results folder.

    Returns
    -------
    Path
        ``root`` as a :class:`~pathlib.Path`.

    Raises
    ------
    CaseError
        ``root`` is not a folder, or ``manifest.json``, ``clusters.csv`` or ``comparison.csv`` is
        missing from it (the first missing file is named).
    """
    root = Path(root)
    if not root.is_dir():
        raise CaseError(f"{root}: no such results folder (run `descluster run CASE --out {root}` first)")
    man = root / "manifest.json"
    if not man.is_file():
        raise CaseError(f"{man} does not exist: `descluster run` has not finished writing {root}")
    for name in ("clusters.csv", "comparison.csv"):
        if not (root / name).is_file():
            raise CaseError(f"{root / name} does not exist: rerun `descluster run`")
    return root


class ResultsData:
    """Read-only view of a ``descluster run`` results folder for the labelling engine.

    Parameters
    ----------
    results_dir : str or PathLike
        Folder with ``manifest.json``, ``clusters.csv``, ``clusters_<descriptor>.csv``
        and ``comparison.csv`` (and the stage cache ``.cache``).
    images : str or PathLike, optional
        Image folder or zip; default the one recorded in ``manifest.json``.

    Attributes
    ----------
    root : Path
    manifest : dict
    paths : list of str, length n_samples
        Image paths in row order (``clusters.csv``).
    n_samples : int
    recommended : str
        Space key (``"<descriptor>/<preprocessing>"``) of the study's recommended clustering.
    clusterings : dict of str -> ndarray of shape (n_samples,), int64
        Cluster of every row per candidate space key (``-1`` = noise).
    candidates : list of str
        Candidate space keys: the recommended one, each descriptor kind's best, every
        (descriptor, preprocessing) the study reduced, and the study's mixtures.
    identities : ndarray of shape (n_samples,), object, or None
        Object identity per row from the path layout (:func:`descluster.case.identities_from_paths`).

    Raises
    ------
    CaseError
        Missing or malformed ``manifest.json``, ``clusters.csv`` or ``comparison.csv``
        (names the file and what is missing).
    """

    def __init__(self, results_dir: str | os.PathLike, images: str | os.PathLike | None = None):
        self.root = Path(results_dir)
        check_results_folder(self.root)
        man = self.root / "manifest.json"
        try:
            self.manifest = json.loads(man.read_text())
            self._case_root = Path(self.manifest["case"]["root"])
        except (ValueError, KeyError, TypeError) as exc:
            raise CaseError(f"{man}: not a descluster manifest ({exc})") from exc
        self._images = images if images is not None else self.manifest["case"].get("images")
        clusters = read_clusters(self.root / "clusters.csv")
        self.paths = clusters["path"].astype(str).tolist()
        self.n_samples = len(self.paths)
        comp_path = self.root / "comparison.csv"
        comp = pd.read_csv(comp_path)
        need = {"descriptor", "preprocessing", "algorithm", "recommended", "score"}
        if need - set(comp.columns):
            raise CaseError(f"{comp_path}: missing columns {sorted(need - set(comp.columns))}")
        rec = comp[comp["recommended"].astype(str).str.lower() == "true"]
        if rec.empty:
            raise CaseError(f"{comp_path}: no row has recommended = True")
        self.recommended = f"{rec.iloc[0]['descriptor']}/{rec.iloc[0]['preprocessing']}"
        self.clusterings = {self.recommended: clusters["cluster"].to_numpy(np.int64)}
        mixed = comp["descriptor"].map(lambda d: SpaceId.mixture_kinds(d) is not None).to_numpy(bool)
        single = comp[~mixed]
        best = single.sort_values("score", ascending=False, kind="mergesort").drop_duplicates("descriptor")
        best_keys = {d: f"{d}/{p}/{a}" for d, p, a in zip(best["descriptor"], best["preprocessing"], best["algorithm"])}
        for descriptor, key in sorted(best_keys.items()):
            f = self.root / f"clusters_{_safe_name(descriptor)}.csv"
            space = "/".join(key.split("/")[:2])
            if f.is_file() and space not in self.clusterings:
                table = read_clusters(f)
                if table["path"].astype(str).tolist() != self.paths:
                    raise CaseError(f"{f}: its paths differ from clusters.csv (rows out of order or missing)")
                self.clusterings[space] = table["cluster"].to_numpy(np.int64)
        self.candidates = list(self.clusterings)
        params = self.manifest.get("parameters", {})
        for descriptor in sorted(self.manifest["case"].get("descriptor_sha256", {})):
            for prep in params.get("preprocessings", []):
                self.candidates.append(f"{descriptor}/{prep}")
        for _, r in comp[mixed].iterrows():
            self.candidates.append(f"{r['descriptor']}/{r['preprocessing']}")
        self.candidates = list(dict.fromkeys(self.candidates))
        self._identities: tuple[np.ndarray | None] | None = None  # derived on first use (identity tasks)
        self._cache_dir = self.root / ".cache" / "labelling"
        self._spaces: dict[str, np.ndarray] = {}
        self._graphs: dict[tuple[str, int], KnnGraph] = {}
        self._graph_builds: dict[tuple[str, int], threading.Lock] = {}  # one lock per graph being built
        self._case = None
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ identity of the data
    @property
    def identities(self) -> np.ndarray | None:
        """Object identity per row, ndarray of shape (n_samples,), object, or None (see the class docstring).

        Derived from the paths on first use and kept: only identity tasks need it, so opening a
        session does not pay for it.
        """
        with self._lock:
            if self._identities is None:
                self._identities = (identities_from_paths(self.paths)[0],)
            return self._identities[0]

    @property
    def fingerprint(self) -> dict:
        """Rows and the hash of the image paths: what a labels database belongs to."""
        return {"n_samples": self.n_samples, "paths_sha256": stable_hash(self.paths)}

    @property
    def image_root(self) -> str | None:
        """The image folder or zip recorded for the case (or given), or None."""
        return None if self._images in (None, "") else str(self._images)

    def image_source(self):
        """An :class:`~descluster.io.images.ImageSource` on the case images.

        Raises
        ------
        CaseError
            If no image folder/zip is known or it does not exist.
        """
        from ..io.images import ImageSource

        if self.image_root is None:
            raise CaseError(f"{self.root / 'manifest.json'} records no image folder; pass images=...")
        try:
            return ImageSource(self.image_root)
        except FileNotFoundError as exc:
            raise CaseError(f"image folder or zip {self.image_root} (from {self.root / 'manifest.json'}) "
                            f"does not exist") from exc

    # ------------------------------------------------------------------ spaces
    def _load_case(self):
        if self._case is None:
            from ..case import load_case

            case = self.manifest["case"]
            self._case = load_case(self._case_root, images=self.image_root,
                                   drop_bad_rows=bool(case.get("dropped_rows")),
                                   trust_pickle=bool(self.manifest.get("parameters", {}).get("trust_pickle", False)))
            if list(map(str, self._case.paths)) != self.paths:
                raise CaseError(f"case {self._case_root}: its image paths differ from {self.root / 'clusters.csv'}; "
                                "rerun `descluster run` on it")
        return self._case

    def _config(self):
        from ..config import RunConfig

        return RunConfig.from_dict(self.manifest.get("parameters", {}), source=str(self.root / "manifest.json"))

    def _reduced(self, descriptor: str, preprocessing: str) -> np.ndarray:
        """One study space from the stage cache (recomputed through the study's reduce stage if absent)."""
        from ..pipeline import reduce_params, reduced_rows
        from ..preprocess import reduce_descriptor
        from ..cache import Entry

        config = self._config()
        digests = self.manifest["case"].get("descriptor_sha256", {})
        if descriptor not in digests:
            raise CaseError(f"{self.root / 'manifest.json'}: no descriptor {descriptor!r} "
                            f"(has {sorted(digests)})")
        params = reduce_params(digests[descriptor], self.manifest["case"].get("dropped_rows", []), preprocessing, config)
        cache = StageCache(self.root / ".cache")

        if not cache.has("reduce", params):
            raise LabellingError(f"{self.root / '.cache'}: the study's space {descriptor}/{preprocessing} is not in "
                                 "the stage cache (deleted?); rerun `descluster run` on the same case to rebuild it")
        X = reduced_rows(cache, params, cache.get_or_compute("reduce", params, None))
        if X is None:
            raise LabellingError(f"{self.root / '.cache'}: the rows of the study's space {descriptor}/{preprocessing} "
                                 "are gone from the stage cache; rerun `descluster run` on the same case to rebuild it")
        return np.asarray(X, dtype=np.float32)

    def _build_space(self, key: str) -> np.ndarray:
        from ..preprocess import mix_spaces
        from ..results import ReducedSpace

        descriptor, _, preprocessing = key.partition("/")
        names = SpaceId.mixture_kinds(descriptor)
        if names is None:
            return self._reduced(descriptor, preprocessing)
        names = list(names)
        preps = preprocessing.split("+")
        if len(preps) == 1:
            preps = preps * len(names)
        if len(preps) != len(names):
            # results written before SpaceId.mixture named one preprocessing per block listed each once
            # ("none+l2" for three blocks); the mixture is made of every descriptor's best space,
            # recorded in the manifest as per_descriptor
            best = self.manifest.get("per_descriptor", {})
            full = [str(best.get(n, "")).split("/")[1] if str(best.get(n, "")).count("/") >= 1 else None for n in names]
            if None not in full and "+".join(dict.fromkeys(full)) == preprocessing:
                preps = full
        if len(preps) != len(names):
            raise LabellingError(f"space {key!r}: {len(names)} descriptors but {len(preps)} preprocessings")
        parts = [ReducedSpace(SpaceId.single(d, p), self._reduced(d, p), np.zeros(0), 0, 1.0)
                 for d, p in zip(names, preps)]
        return mix_spaces(parts).X

    def _space_tag(self, key: str) -> str:
        return stable_hash({"space": key, "case": self.manifest["case"].get("descriptor_sha256", {}),
                            "dropped": self.manifest["case"].get("dropped_rows", []),
                            "parameters": self.manifest.get("parameters", {})})

    def space(self, key: str) -> np.ndarray:
        """The rows of a candidate space, shape (n_samples, n_components), float32, read-only memory map.

        Raises
        ------
        LabellingError
            If ``key`` is not a candidate (lists them).
        """
        if key not in self.candidates:
            raise LabellingError(f"space {key!r} is not one of this results folder's spaces: {self.candidates}")
        with self._lock:
            if key not in self._spaces:
                path = self._cache_dir / f"space-{self._space_tag(key)}.npy"
                if not path.is_file():
                    X = self._build_space(key)
                    if X.shape[0] != self.n_samples:
                        raise CaseError(f"space {key} has {X.shape[0]} rows but clusters.csv has {self.n_samples}")
                    write_npy(path, np.ascontiguousarray(X, dtype=np.float32))
                self._spaces[key] = np.load(path, mmap_mode="r")
            return self._spaces[key]

    def space_rows(self, key: str, rows: np.ndarray) -> np.ndarray:
        """Rows ``rows`` of a candidate space, shape (len(rows), n_components), float32.

        Read from the space's memory map when it was opened, otherwise built in
        memory and dropped (so comparing many spaces writes no copies).
        """
        rows = np.asarray(rows, dtype=np.int64)
        if key not in self.candidates:
            raise LabellingError(f"space {key!r} is not one of this results folder's spaces: {self.candidates}")
        with self._lock:
            path = self._cache_dir / f"space-{self._space_tag(key)}.npy"
            if key in self._spaces or path.is_file():
                return np.asarray(self.space(key)[rows], dtype=np.float32)
            return np.asarray(self._build_space(key)[rows], dtype=np.float32)

    def graph(self, key: str, n_neighbors: int = GRAPH_NEIGHBOURS, progress: bool = False) -> KnnGraph:
        """The kNN graph of a candidate space, computed once and cached (see module docstring).

        A graph is built under a lock of its own, not the folder's: at 416,314 rows the search takes
        minutes (in the app's background refit), and reading a space for the next question must not
        wait for it.
        """
        from ..outliers.neighbours import knn_search, make_index

        k = int(min(n_neighbors, self.n_samples - 1))
        with self._lock:
            if (key, k) in self._graphs:
                return self._graphs[(key, k)]
            building = self._graph_builds.setdefault((key, k), threading.Lock())
        with building:
            with self._lock:
                if (key, k) in self._graphs:  # built by another thread meanwhile
                    return self._graphs[(key, k)]
                tag = self._space_tag(key)
            ipath = self._cache_dir / f"knn-{tag}-k{k}-indices.npy"
            dpath = self._cache_dir / f"knn-{tag}-k{k}-distances.npy"
            tpath = self._cache_dir / f"knn-{tag}-k{k}.json"
            if ipath.is_file() and dpath.is_file() and tpath.is_file():
                graph = KnnGraph(np.load(ipath), np.load(dpath), json.loads(tpath.read_text())["description"])
            else:
                X = np.ascontiguousarray(self.space(key))
                index = make_index("auto", random_state=0)
                D, I = knn_search(X, k, index=index, progress=progress, desc=f"kNN graph {key}")
                graph = KnnGraph(I.astype(np.int32), D.astype(np.float32), index.description_)
                write_npy(ipath, graph.indices)
                write_npy(dpath, graph.distances)
                from ..io.atomic import write_json

                write_json(tpath, {"description": graph.description})
            with self._lock:
                self._graphs[(key, k)] = graph
            return graph
