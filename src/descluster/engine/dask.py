"""The study's heavy stages as per-block map-reduce on a Dask cluster (``descluster run --engine dask``).

Descriptors are row-blocked Dask arrays that the workers read themselves: a ``.npy`` memory map is
opened by path on the worker (:class:`NpyBlocks`), a Zarr store with ``dask.array.from_zarr``; only an
in-memory array is sent from the client (once per sweep, ``persist``). What runs where:

* **scale + PCA** (:meth:`DaskEngine.reduce_descriptor`): each block gives its row count, column
  minimum and maximum, mean and centred scatter matrix (one :class:`~descluster.preprocess.GramMoments`
  gemm per block); blocks are merged on the workers in a tree by the pairwise update of Chan, Golub &
  LeVeque (1979, "Updating formulae and a pairwise algorithm for computing sample variances"):
  ``n = na + nb``, ``delta = mb - ma``, ``m = ma + delta nb / n``, ``S = Sa + Sb + delta delta^T na nb / n``.
  The scalers are finished from those statistics (the ``standard`` scaler's variance is ``diag(S) / n``,
  as scikit-learn's ``StandardScaler``; ``robust`` reads its fixed-seed sample of rows; ``l2`` gets the
  scatter of its own scaled blocks), and the PCA is the local :class:`~descluster.preprocess.ChunkedPCA`
  fitted from the merged moments; the projection runs per block, and (``descluster run``: ``store=`` a
  ``.npy`` in the results folder's cache) the workers write the projected blocks into that file, which the
  later stages read as a memory map.
* **k-means sweep** (:meth:`DaskEngine.sweep`): the seeding is the local adapter's ``init``: best of ``n_init``
  k-means++ runs on the same fixed-seed ``init_sample`` rows (Arthur & Vassilvitskii 2007), or k-means||
  over all rows (Bahmani et al. 2012; :mod:`descluster.cluster.seeding`: each of its passes a map over the
  blocks on the workers and a tree merge, the weighted candidates reduced to k on the client), then Lloyd
  iterations as map (assign each block's rows, per-cluster sums, counts and squared distances) and
  reduce (new centres = sums / counts), stopped by scikit-learn's tolerance (``tol`` times the mean column
  variance, on the summed squared centre shift) or ``max_iter``; a final assignment pass gives labels
  consistent with the centres. Calinski-Harabasz, Davies-Bouldin and the inertia come from per-block
  sums assembled into a :class:`~descluster.metrics.internal.ClusterStats` and scored by the same
  :mod:`descluster.metrics.internal` functions; silhouette and split-half stability use the same fixed
  samples as the local sweep (gathered: their size does not grow with the rows). The chosen k's labels
  are computed per block at the end.
* **sample-fitted algorithms** (GMM, BIRCH, Ward, HDBSCAN; :class:`_SampleSweep`), when the rows exceed
  the adapter's ``max_fit_rows``: each k is fitted on the client on the adapter's own fixed-seed sample
  (the rows the local adapter draws, so the same model), and the extension to all rows (its predictor;
  HDBSCAN's fitted rows keep their own labels) runs per block on the workers, which accumulate the
  per-cluster counts, sums and spreads the metrics need; silhouette and stability as for k-means.
  Mini-batch k-means, and inputs no larger than the sample, run the local sweep on the client (said in the
  log: a warning for mini-batch k-means, whose random mini-batches over all rows are no map over blocks).
* **neighbour search** (:class:`DaskIndex`): the configured index (exact, faiss flat or IVF) is built on
  the client, broadcast to every worker, and the queries are searched per block there.
* **rows placed in a fitted model** (:meth:`DaskEngine.map_rows`; the t-SNE map's rows outside its sample):
  the function is broadcast and applied per block on the workers.

A worker lost mid-computation does not fail the run: the scheduler reruns its tasks on the others
(the blocks are re-read from the case, or re-sent from the graph).
"""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace
from typing import Any

import numpy as np

import dask
import dask.array as da

from ..cluster.seeding import kmeans_parallel, merge_parts, nearest_sq
from ..cluster.sweep import SweepResult
from ..errors import DesclusterError, ParameterError
from ..io.zarr_store import ZarrDescriptor
from ..outliers.neighbours import NeighbourIndex
from ..rows import sample_rows
from . import Engine

__all__ = ["DaskEngine", "DaskIndex", "DaskSweepResult", "NpyBlocks", "block_moments", "merge_moments"]

log = logging.getLogger("descluster")

#: Bytes of float32 per block when ``block_rows`` is not given.
BLOCK_BYTES = 64 * 1024 * 1024


class NpyBlocks:
    """A lazily opened ``.npy``/raw memory map that a worker reads rows of (what ``dask.array.from_array``
    slices; pickles as its path, never as data).

    Parameters
    ----------
    filename : str
    dtype : numpy dtype
    shape : tuple of int
    offset : int
        Bytes before the data (the ``.npy`` header).
    """

    def __init__(self, filename: str, dtype, shape: tuple[int, ...], offset: int = 0):
        self.filename, self.dtype, self.shape, self.offset = str(filename), np.dtype(dtype), tuple(shape), int(offset)
        self.ndim = len(self.shape)

    @classmethod
    def of(cls, X: np.memmap) -> "NpyBlocks":
        """Of an open read-only :class:`numpy.memmap` (C order)."""
        return cls(X.filename, X.dtype, X.shape, X.offset)

    def __getitem__(self, key):
        mm = np.memmap(self.filename, dtype=self.dtype, mode="r", offset=self.offset, shape=self.shape)
        return np.array(mm[key])

    def __reduce__(self):
        return (NpyBlocks, (self.filename, self.dtype.str, self.shape, self.offset))


# --------------------------------------------------------------------------- per-block statistics


def block_moments(C: np.ndarray, start: int, transform=None) -> dict[str, Any]:
    """Row count, column min/max, mean and centred scatter of one block (float32 gemm, float64 result).

    Parameters
    ----------
    C : ndarray of shape (m, d)
    start : int
        Row of the block's first row in the whole matrix (for the error message).
    transform : callable, optional
        Applied to the float32 block first (a scaler's ``transform_chunk``).

    Returns
    -------
    dict
        ``n``, ``lo``, ``hi``, ``mean`` (d,) float64, ``scatter`` (d, d) float64 ``sum (x - mean)(x - mean)^T``.

    Raises
    ------
    ParameterError
        A non-finite value (names its row and column).
    """
    from ..preprocess import GramMoments

    C = np.asarray(C, dtype=np.float32)
    if not np.isfinite(C).all():
        bad = np.argwhere(~np.isfinite(C))[0]
        raise ParameterError(f"X has a non-finite value {C[bad[0], bad[1]]} at row {start + int(bad[0])}, column "
                             f"{int(bad[1])}; drop or repair such rows first (descluster.io.descriptors.find_bad_rows)")
    lo, hi = C.min(axis=0).astype(np.float64), C.max(axis=0).astype(np.float64)
    if transform is not None:
        C = transform(C)
    m = GramMoments(C.shape[1]).update(C)  # shifted by the block's own mean (Chan, Golub & LeVeque 1983)
    n = m.n_samples_
    return {"n": n, "lo": lo, "hi": hi, "mean": m.mean(), "scatter": m.gram_ - np.outer(m.sum_, m.sum_) / n}


def merge_moments(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Pairwise merge of two :func:`block_moments` (Chan, Golub & LeVeque 1979; see the module docstring)."""
    n = a["n"] + b["n"]
    delta = b["mean"] - a["mean"]
    out = {"n": n, "lo": np.minimum(a["lo"], b["lo"]), "hi": np.maximum(a["hi"], b["hi"]),
           "mean": a["mean"] + delta * (b["n"] / n)}
    if "scatter" in a:
        out["scatter"] = a["scatter"] + b["scatter"] + np.outer(delta, delta) * (a["n"] * b["n"] / n)
    if "m2" in a:
        out["m2"] = a["m2"] + b["m2"] + delta * delta * (a["n"] * b["n"] / n)
    return out


def _column_moments(C: np.ndarray) -> dict[str, Any]:
    """Count, min, max, mean and per-column ``sum (x - mean)^2`` of one block (float64)."""
    C64 = np.asarray(C, dtype=np.float64)
    mean = C64.mean(axis=0)
    return {"n": C64.shape[0], "lo": C64.min(axis=0), "hi": C64.max(axis=0), "mean": mean,
            "m2": np.square(C64 - mean).sum(axis=0)}


def _tree(parts: list, combine) -> Any:
    """Reduce a list of delayed values pairwise (log depth), so that the client receives one result."""
    combine = dask.delayed(combine, pure=True)
    while len(parts) > 1:
        parts = [combine(parts[i], parts[i + 1]) if i + 1 < len(parts) else parts[i] for i in range(0, len(parts), 2)]
    return parts[0]


def _blocks(Xd: da.Array) -> list:
    """``[(delayed block, first row), ...]`` of a row-blocked array."""
    starts = np.concatenate([[0], np.cumsum(Xd.chunks[0])[:-1]]).astype(int)
    return list(zip(Xd.to_delayed().ravel().tolist(), starts.tolist()))


# --------------------------------------------------------------------------- k-means map steps


def _assign(C: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centre (squared Euclidean, float64) of each row: labels (m,) int64 and squared distances (m,)
    (:func:`descluster.cluster.seeding.nearest_sq`)."""
    return nearest_sq(C, centres)


def _lloyd_map(C: np.ndarray, centres: np.ndarray) -> dict[str, Any]:
    """Per-cluster counts, sums and squared distances of one block's rows to their nearest centre."""
    from scipy import sparse

    lab, d2 = _assign(C, centres)
    k = centres.shape[0]
    ind = sparse.csr_matrix((np.ones(lab.size), (lab, np.arange(lab.size))), shape=(k, lab.size))
    return {"counts": np.bincount(lab, minlength=k).astype(np.int64),
            "sums": np.asarray(ind @ np.asarray(C, dtype=np.float64)), "sse": float(d2.sum())}


def _spread_map(C: np.ndarray, centres: np.ndarray, means: np.ndarray) -> dict[str, np.ndarray]:
    """Per-cluster sums of squared and plain distances of one block's rows to their cluster mean
    (rows labelled by the nearest of ``centres``): the second pass of
    :func:`descluster.metrics.internal.cluster_stats`."""
    lab, _ = _assign(C, centres)
    diff = np.asarray(C, dtype=np.float64) - means[lab]
    sq = np.einsum("ij,ij->i", diff, diff)
    k = centres.shape[0]
    return {"ssw": np.bincount(lab, weights=sq, minlength=k), "dist": np.bincount(lab, weights=np.sqrt(sq), minlength=k)}


def _add(a: dict, b: dict) -> dict:
    return {key: a[key] + b[key] for key in a}


def _labels_map(C: np.ndarray, centres: np.ndarray) -> np.ndarray:
    return _assign(C, centres)[0]


def _search_block(index, Q: np.ndarray, k: int) -> np.ndarray:
    """Neighbour indices (m, k) int64 of one block of queries in a broadcast, fitted index."""
    return np.asarray(index.search(np.ascontiguousarray(Q, dtype=np.float32), k)[1], dtype=np.int64)


# --------------------------------------------------------------------------- the engine


class DaskEngine(Engine):
    """Run the reduce, k-means sweep and neighbour search on a Dask cluster (see the module docstring).

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://HOST:8786``); None starts a ``distributed.LocalCluster``.
    n_workers : int, optional
        Workers of the local cluster (default: one per core).
    threads_per_worker : int, default 1
    processes : bool, default True
        Local cluster workers as processes (False: threads of this process, for tests).
    memory_limit : str or int, default "auto"
        Per-worker memory limit of the local cluster.
    block_rows : int, optional
        Rows per block (default: about 64 MiB of float32 per block, at least 4,096 rows).
    client : distributed.Client, optional
        Use this client (and leave it open on :meth:`close`).

    Attributes
    ----------
    client : distributed.Client
    dashboard_link : str or None
        The scheduler's dashboard.
    """

    name = "dask"
    parallel_sweeps = False
    writes_blocks = True

    def __init__(self, scheduler: str | None = None, n_workers: int | None = None, threads_per_worker: int = 1,
                 processes: bool = True, memory_limit: str | int = "auto", block_rows: int | None = None,
                 client=None):
        from distributed import Client, LocalCluster

        if block_rows is not None and not (isinstance(block_rows, int) and block_rows >= 16):
            raise ParameterError(f"block_rows={block_rows!r} must be an integer >= 16")
        self.block_rows = block_rows
        self._cluster = None
        self._own_client = client is None
        if client is not None:
            self.client = client
        elif scheduler:
            try:
                self.client = Client(scheduler, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise ParameterError(f"--scheduler {scheduler}: no Dask scheduler answered ({exc})") from None
        else:
            where = {"host": "127.0.0.1"} if processes else {}  # threads talk in-process
            self._cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                                         processes=processes, memory_limit=memory_limit,
                                         dashboard_address="127.0.0.1:0", **where)
            self.client = Client(self._cluster)
        self.dashboard_link = getattr(self.client, "dashboard_link", None)
        self._moments_memo: dict[Any, dict] = {}

    # -- housekeeping ----------------------------------------------------------------
    def cache_tag(self) -> dict[str, Any]:
        """``{"engine": "dask"}``: its results are stored apart from the local engine's."""
        return {"engine": "dask"}

    def describe(self) -> str:
        """Scheduler address, workers and the dashboard link."""
        info = self.client.scheduler_info()
        workers = info.get("workers", {})
        threads = sum(w.get("nthreads", 0) for w in workers.values())
        return (f"Dask scheduler {info.get('address', '?')}: {len(workers)} workers, {threads} threads; "
                f"dashboard {self.dashboard_link}")

    def close(self) -> None:
        """Close the client and the local cluster this engine started."""
        if self._own_client:
            self.client.close()
        if self._cluster is not None:
            self._cluster.close()

    def __enter__(self) -> "DaskEngine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _rows(self, d: int) -> int:
        return self.block_rows or max(4096, BLOCK_BYTES // (4 * max(d, 1)))

    def array(self, X) -> da.Array:
        """``X`` as a row-blocked Dask array, read by the workers where it lives on disk.

        Parameters
        ----------
        X : dask array, numpy memmap (of a file), :class:`~descluster.io.zarr_store.ZarrDescriptor` (a case's
            ``<kind>.zarr``: blocks of whole stored chunks unless ``block_rows`` is given), Zarr array or path
            of a Zarr store, or ndarray

        Returns
        -------
        dask.array.Array of shape (n, d), one block per ``block_rows`` rows, all columns.
        """
        if isinstance(X, da.Array):
            return X.rechunk({0: self._rows(X.shape[1]), 1: -1})
        if isinstance(X, ZarrDescriptor):  # a converted case: the workers open the store by path
            d, c = X.shape[1], X.chunk_rows
            rows = self.block_rows or max(1, round(self._rows(d) / c)) * c  # whole stored chunks per block
            return da.from_zarr(str(X.path), chunks=(rows, d))
        if isinstance(X, (str,)) or type(X).__module__.startswith("zarr"):
            Z = da.from_zarr(X)
            return Z.rechunk({0: self._rows(Z.shape[1]), 1: -1})
        shape = getattr(X, "shape", None)
        if shape is None or len(shape) != 2:
            raise ParameterError(f"X must be a 2-D array (n_samples, n_features); got shape {shape}")
        chunks = (self._rows(shape[1]), shape[1])
        if isinstance(X, np.memmap) and X.filename is not None and X.flags.c_contiguous:
            return da.from_array(NpyBlocks.of(X), chunks=chunks, asarray=True, fancy=False, inline_array=True)
        return da.from_array(np.asarray(X), chunks=chunks)

    def _compute(self, *values):
        return self.client.compute(list(values), sync=True)

    # -- reduce ----------------------------------------------------------------------
    def _moments(self, Xd: da.Array, transform=None) -> dict:
        parts = [dask.delayed(block_moments, pure=True)(b, s, transform) for b, s in _blocks(Xd)]
        return self._compute(_tree(parts, merge_moments))[0]

    @staticmethod
    def _gram_moments(stats: dict):
        """The merged statistics as a :class:`~descluster.preprocess.GramMoments` (shift = the mean)."""
        from ..preprocess import GramMoments

        d = stats["mean"].size
        m = GramMoments(d)
        m.n_samples_, m.shift_, m.sum_, m.gram_ = int(stats["n"]), stats["mean"], np.zeros(d), stats["scatter"]
        m.data_min_, m.data_max_ = stats["lo"], stats["hi"]
        return m

    def raw_moments(self, X):
        """See :meth:`Engine.raw_moments`; one distributed pass (also keeps the column min and max)."""
        return self._gram_moments(self._moments(self.array(X)))

    def _fit_scaler(self, name: str, Xd: da.Array, moments, random_state: int):
        """A :mod:`descluster.preprocess.scalers` scaler fitted from the merged raw statistics."""
        from ..preprocess.scalers import make_scaler

        scaler = make_scaler(name, random_state=random_state)
        n, d = Xd.shape
        scaler.n_features_in_, scaler.n_samples_seen_ = d, n
        scaler.data_min_, scaler.data_max_ = moments.data_min_, moments.data_max_
        scaler.constant_ = scaler.data_min_ == scaler.data_max_
        scaler._reset(d)
        if name == "standard":
            mean = moments.mean()
            var = np.clip(np.diag(moments.gram_) / n, 0.0, None)  # ddof = 0, as StandardScaler.var_
            scaler._sk = SimpleNamespace(mean_=mean, var_=var, scale_=_standard_scale(mean, var, n))
        scaler._finish(Xd)  # robust: reads its fixed-seed sample of rows from the workers
        return scaler

    def reduce_descriptor(self, X, preprocessing, *, variance_target=0.90, max_components=256, random_state=0,
                          descriptor="", moments=None, store=None):
        """See :meth:`Engine.reduce_descriptor`.

        Parameters
        ----------
        store : path, optional
            Where the workers write the reduced space, so that the client never holds it: a path ending in
            ``.npy`` is a ``.npy`` file (each task writes its block's rows at their byte offset, written under
            a temporary name and renamed when every block is in, :func:`descluster.io.atomic.atomic_path`) and
            comes back as a read-only :class:`numpy.memmap` (what ``descluster run`` keeps in its cache); any
            other path is a Zarr store, returned as a Zarr array. The path must be one the workers can write
            (a LocalCluster's always is). Default: the reduced rows are gathered into an ndarray.

        Raises
        ------
        ParameterError
            Unknown preprocessing or PCA parameter, a non-finite value (row and column named).
        """
        from ..preprocess import ChunkedPCA
        from ..preprocess._chunks import SAMPLE_ROWS, check_matrix, read_rows
        from ..preprocess.spaces import Reduction
        from ..results import ReducedSpace, SpaceId

        Xd = self.array(X)
        n, d = check_matrix(Xd)
        pca = ChunkedPCA(variance_target=variance_target, max_components=max_components, random_state=random_state)
        pca._validate()
        if moments is None or getattr(moments, "data_min_", None) is None or moments.n_samples_ != n:
            moments = self.raw_moments(Xd)
        scaler = self._fit_scaler(preprocessing, Xd, moments, random_state)
        if pca._resolve_solver(d) == "randomized":
            idx = sample_rows(n, SAMPLE_ROWS, random_state)
            pca.fit(scaler.transform_chunk(read_rows(Xd, idx, pca.chunk_size)))
            pca.n_samples_ = n
        elif scaler.affine:
            pca.fit_moments(moments, scaler.offset_, np.where(scaler.constant_, 0.0, scaler.factor_))
        else:
            pca.fit_moments(self._gram_moments(self._moments(Xd, scaler.transform_chunk)))
        reduction = Reduction(preprocessing, scaler, pca)
        p = pca.n_components_
        Z = Xd.map_blocks(lambda C: pca.transform_chunk(scaler.transform_chunk(np.asarray(C, dtype=np.float32))),
                          dtype=np.float32, chunks=(Xd.chunks[0], (p,)))
        if store is not None and str(store).endswith(".npy"):
            out = self._write_npy(Z, store)
        elif store is not None:
            import zarr

            self._compute(Z.to_zarr(str(store), overwrite=True, compute=False))
            out = zarr.open_array(str(store), mode="r")
        else:
            out = self._compute(Z)[0]
        return ReducedSpace(id=SpaceId.single(descriptor, preprocessing, ""), X=out,
                            explained_variance_ratio=pca.explained_variance_ratio_, n_components=p,
                            variance_target=float(variance_target), transform=reduction)

    def _write_npy(self, Z: da.Array, path) -> np.memmap:
        """Write the row-blocked ``Z`` (n, p) float32 into the ``.npy`` file ``path`` by the workers (one
        :func:`_write_rows` task per block), atomically; return it opened read-only."""
        from ..io.atomic import atomic_path

        with atomic_path(path) as tmp:
            head = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=Z.shape)
            offset = int(head.offset)
            del head  # header written and the file sized; the rows are filled in by the workers
            parts = [dask.delayed(_write_rows, pure=False)(b, s, str(tmp), offset, Z.shape[1]) for b, s in _blocks(Z)]
            written = sum(self._compute(*parts))
            if written != Z.shape[0]:  # pragma: no cover - a block lost between the tasks and here
                raise DesclusterError(f"{path}: the workers wrote {written} of {Z.shape[0]} rows")
        return np.load(path, mmap_mode="r")

    # -- sweep -----------------------------------------------------------------------
    def sweep(self, X, adapter, ks, random_state, stability_rows, silhouette_sample, progress=None):
        """See :meth:`Engine.sweep`: k-means and the sample-fitted algorithms distributed (module docstring);
        mini-batch k-means and small inputs run the local sweep on the client."""
        from ..cluster.sweep import sweep

        n = self.array(X).shape[0] if isinstance(X, str) else X.shape[0]
        name = getattr(adapter, "name", None)
        if name in SAMPLE_FITTED and n > adapter.max_fit_rows:
            # fitted on the client's sample as the local adapter does, extended to all rows per block
            return _SampleSweep(self, X, adapter, random_state, stability_rows, silhouette_sample).run(ks, progress)
        if name != "kmeans" or n <= adapter.init_sample:
            # mini-batch k-means, and inputs small enough to fit whole: the local sweep on the client
            self._note_client_sweep(name, n, adapter)
            X = self._compute(self.array(X))[0] if isinstance(X, str) else np.asarray(X)
            return sweep(X, adapter, ks=ks, random_state=random_state, stability_rows=stability_rows,
                         silhouette_sample=silhouette_sample, progress=progress)
        return _KMeansSweep(self, X, adapter, random_state, stability_rows, silhouette_sample).run(ks, progress)

    @staticmethod
    def _note_client_sweep(name: str | None, n: int, adapter) -> None:
        """Say in the log that a sweep runs on the client, and why: a warning where the rows could be many
        (mini-batch k-means, an adapter this engine does not distribute), an info line for an input small
        enough to be fitted whole anyway."""
        if name == "minibatch_kmeans":
            log.warning("sweep minibatch_kmeans on %s rows runs on the client, not on the Dask workers: its "
                        "mini-batches are drawn from all rows in one random sequence, which is not a map over "
                        "blocks (the client reads every row; use kmeans for a distributed sweep)", f"{n:,}")
        elif name == "kmeans" or name in SAMPLE_FITTED:
            log.info("sweep %s on %s rows runs on the client: no more rows than its fitting sample", name, f"{n:,}")
        else:
            log.warning("sweep %s on %s rows runs on the client, not on the Dask workers: the Dask engine does "
                        "not distribute this algorithm", name or type(adapter).__name__, f"{n:,}")

    # -- rows ------------------------------------------------------------------------
    def map_rows(self, fn, X, rows, chunk_rows=50_000):
        """See :meth:`Engine.map_rows`: ``fn`` broadcast to every worker, one task per (block, at most
        ``chunk_rows`` of its selected rows), each reading its block where ``X`` lives; only the (r, c)
        results come back to the client."""
        from ..rows import row_chunks

        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            raise ParameterError("map_rows: no rows given")
        Xd = self.array(X)
        remote = self.client.scatter(fn, broadcast=True, hash=False)
        parts = []
        for (block, start), m in zip(_blocks(Xd), Xd.chunks[0]):
            lo, hi = np.searchsorted(rows, [start, start + m])
            local = rows[lo:hi] - start
            parts.extend(dask.delayed(_map_block_rows, pure=True)(block, local[sl], remote)
                         for sl in row_chunks(local.size, chunk_rows))
        return np.concatenate(self._compute(*parts), axis=0).astype(np.float32, copy=False)

    # -- neighbours ------------------------------------------------------------------
    def neighbour_index(self, index):
        """See :meth:`Engine.neighbour_index`: a :class:`DaskIndex` around the configured one."""
        return DaskIndex(base=index, scheduler=self.client.scheduler.address, block_rows=self.block_rows)


def _map_block_rows(C: np.ndarray, local: np.ndarray, fn) -> np.ndarray:
    """``fn`` of the rows ``local`` (indices within the block) of the block ``C``: (len(local), c) float32."""
    return np.asarray(fn(np.ascontiguousarray(np.asarray(C)[local], dtype=np.float32)), dtype=np.float32)


def _write_rows(C: np.ndarray, start: int, path: str, offset: int, p: int) -> int:
    """Write the float32 block ``C`` (m, p), rows ``start``.. of a C-order ``.npy`` file whose data begins at
    byte ``offset``, with a plain positioned write (no memory map: byte ranges of other blocks on the same
    page are left alone, also on a network file system); return m. A rerun after a lost worker writes the
    same bytes again."""
    C = np.ascontiguousarray(C, dtype=np.float32)
    if C.ndim != 2 or C.shape[1] != p:
        raise ValueError(f"block of shape {C.shape} for a file of {p} columns")
    with open(path, "r+b") as fh:
        fh.seek(offset + start * p * 4)
        fh.write(C.tobytes())
    return int(C.shape[0])


def _standard_scale(mean: np.ndarray, var: np.ndarray, n: int) -> np.ndarray:
    """``StandardScaler.scale_``: ``sqrt(var)``, 1 where scikit-learn deems the column constant."""
    try:
        from sklearn.preprocessing._data import _handle_zeros_in_scale, _is_constant_feature

        return _handle_zeros_in_scale(np.sqrt(var), copy=True, constant_mask=_is_constant_feature(var, mean, n))
    except ImportError:  # pragma: no cover - scikit-learn moved its private helpers
        eps = np.finfo(np.float64).eps
        scale = np.sqrt(var)
        scale[(var <= n * eps * var + (n * mean * eps) ** 2) | (scale < 10 * eps)] = 1.0
        return scale


class _KMeansSweep:
    """One distributed k-means sweep (see the module docstring): state shared by its k values."""

    def __init__(self, engine: DaskEngine, X, adapter, random_state, stability_rows, silhouette_sample):
        from ..metrics.internal import SilhouetteSample
        from ..metrics.stability import SplitHalves
        from ..validation import check_int

        adapter._params()
        self.engine, self.adapter, self.random_state = engine, adapter, int(random_state)
        Xd = engine.array(X)
        if not isinstance(X, (da.Array, np.memmap, str, ZarrDescriptor)) and not type(X).__module__.startswith("zarr"):
            Xd = engine.client.persist(Xd)  # in-memory rows: sent to the workers once for the whole sweep
        self.Xd = Xd
        self.n, self.p = Xd.shape
        cols = _tree([dask.delayed(_column_moments, pure=True)(b) for b, _ in _blocks(Xd)], merge_moments)
        cols = engine._compute(cols)[0]
        self.total_inertia = float(cols["m2"].sum())  # one cluster: the sum of squares about the mean
        self._setup(cols)
        check_int("silhouette_sample", silhouette_sample, 10)
        self.sil = SilhouetteSample(Xd, sample_size=silhouette_sample, random_state=self.random_state)
        self.sil_X = np.asarray(Xd[self.sil.rows_].compute(), dtype=np.float64)
        self.halves = self.parts = None
        if stability_rows:
            check_int("stability_rows", stability_rows, 10)
            self.halves = SplitHalves(self.n, stability_rows, max(stability_rows, 10), self.random_state)
            if self.halves.enough:
                self.parts = self.halves.take(Xd)

    def _setup(self, cols: dict) -> None:
        """k-means: scikit-learn's tolerance and the seeding sample."""
        self.tol = float(np.mean(cols["m2"] / self.n)) * float(self.adapter.tol)  # scikit-learn's _tolerance
        self.seed_rows = np.asarray(self.Xd[sample_rows(self.n, self.adapter.init_sample, self.random_state)].compute(),
                                    dtype=np.float32)

    def _estimator(self, k):
        """A clone of the adapter for ``k`` (None: a k-free algorithm)."""
        from sklearn.base import clone

        est = clone(self.adapter)
        return est.set_params(n_clusters=k) if k is not None else est

    def _map_reduce(self, fn, *args):
        parts = [dask.delayed(fn, pure=True)(b, *args) for b, _ in _blocks(self.Xd)]  # args: k x p arrays
        return self.engine._compute(_tree(parts, _add))[0]

    def _map_merge(self, fn, *args):
        """``fn(block, first_row, *args)`` on every block, merged by :func:`~descluster.cluster.seeding.merge_parts`
        in a tree on the workers (the ``map_blocks`` of :func:`~descluster.cluster.seeding.kmeans_parallel`)."""
        parts = [dask.delayed(fn, pure=True)(b, s, *args) for b, s in _blocks(self.Xd)]
        return self.engine._compute(_tree(parts, merge_parts))[0]

    def _take(self, idx: np.ndarray) -> np.ndarray:
        return np.asarray(self.engine._compute(self.Xd[np.asarray(idx, dtype=np.int64)])[0], dtype=np.float64)

    def seed(self, k: int) -> np.ndarray:
        """Initial centres (k, p) float64: the adapter's ``init`` (``"k-means++"``: best of ``n_init`` runs on
        the ``init_sample`` rows, as the local adapter; ``"k-means||"``: over all rows, per block)."""
        from sklearn.cluster import KMeans

        a = self.adapter
        if a.init == "k-means||":
            return kmeans_parallel(self._map_merge, self._take, self.n, k, random_state=a.random_state,
                                   n_init=a.n_init)["centres"]
        seed = KMeans(k, n_init=a.n_init, random_state=a.random_state, max_iter=100, tol=a.tol).fit(self.seed_rows)
        return seed.cluster_centers_.astype(np.float64)

    def fit(self, k: int) -> dict[str, Any]:
        """Seed, Lloyd to tolerance, final assignment and per-cluster statistics of one k."""
        a = self.adapter
        if not 1 <= k <= self.n:
            raise ParameterError(f"k = {k} is outside 1..{self.n} (rows)")
        centres = self.seed(k)
        n_iter = 0
        for n_iter in range(1, a.max_iter + 1):
            s = self._map_reduce(_lloyd_map, centres)
            new = centres.copy()
            used = s["counts"] > 0  # an empty cluster keeps its centre
            new[used] = s["sums"][used] / s["counts"][used, None]
            shift = float(np.square(new - centres).sum())
            centres = new
            if shift <= self.tol:
                break
        centres = centres.astype(np.float32).astype(np.float64)  # the float32 centres the model keeps
        final = self._map_reduce(_lloyd_map, centres)  # labels consistent with the returned centres
        counts = final["counts"]
        used = counts > 0
        means = np.zeros_like(centres)
        means[used] = final["sums"][used] / counts[used, None]
        spread = self._map_reduce(_spread_map, centres, means)
        return {"centres": centres.astype(np.float32), "counts": counts, "means": means, "used": used,
                "ssw": spread["ssw"], "dist": spread["dist"], "n_iter": n_iter, "sse": final["sse"]}

    def stats(self, f: dict[str, Any]):
        """A :class:`~descluster.metrics.internal.ClusterStats` from the per-block sums (no distinct-row check)."""
        from ..metrics.internal import ClusterStats

        used = f["used"]
        counts = f["counts"][used]
        centroids = f["means"][used]
        k = int(used.sum())
        n_noise = int(f.get("n_noise", 0))
        n = self.n - n_noise  # the non-noise rows (HDBSCAN labels noise -1)
        st = ClusterStats(np.flatnonzero(used).astype(np.int64), counts, centroids, f["ssw"][used],
                          f["dist"][used] / np.maximum(counts, 1), n, n_noise,
                          (counts @ centroids) / max(n, 1), None)
        if n == 0:
            st.degenerate = "all points are noise"
        elif k >= n:
            st.degenerate = "every point its own cluster"
        elif k < 2:
            st.degenerate = "single cluster"
        return st

    def row(self, k: int, f: dict[str, Any], seconds: float) -> dict[str, Any]:
        """The sweep-table row of one k (columns :data:`~descluster.cluster.sweep.TABLE_COLUMNS`)."""
        from ..cluster.sweep import size_facts
        from ..metrics.internal import MetricValue, calinski_harabasz, davies_bouldin
        from ..rows import nearest_centroid

        st = self.stats(f)
        labels = np.full(self.n, -1, dtype=np.int64)  # the sample rows' labels; the rest is not read
        labels[self.sil.rows_] = f["sil_labels"] if "sil_labels" in f else nearest_centroid(self.sil_X, f["centres"])
        vals = {"calinski_harabasz": calinski_harabasz(None, None, stats=st),
                "davies_bouldin": davies_bouldin(None, None, stats=st),
                # inertia(stats=...) without an n-row placeholder: the within-cluster sum of squares
                "inertia": MetricValue(0.0) if st.degenerate == "every point its own cluster"
                else MetricValue(float(st.ssw.sum())),
                "silhouette": self.sil.score(labels)}
        if self.halves is not None:
            def fit_predict(h, Xh):
                return self._estimator(k if self.adapter.needs_k else None).fit_predict(Xh)
            try:
                vals["stability"] = self.halves.score(self.parts, fit_predict) if self.parts is not None \
                    else self.halves.score((None, None, None), None)
            except Exception as exc:  # a fit on a half can fail where the full fit did not
                vals["stability"] = MetricValue.undefined(f"{type(exc).__name__}: {exc}")
        else:
            vals["stability"] = MetricValue.undefined("not computed")
        out = {name: v.value for name, v in vals.items()}
        out.update(k=k, silhouette_sampled=vals["silhouette"].sampled,
                   silhouette_sample_size=int(vals["silhouette"].sample_size or 0), bic=float(f.get("bic", np.nan)),
                   fit_seconds=seconds,
                   reason="; ".join(dict.fromkeys(f"{name}: {v.reason}" for name, v in vals.items()
                                                  if v.reason and not (name == "stability"
                                                                       and v.reason == "not computed"))))
        out.update(size_facts(f["counts"], int(f.get("n_noise", 0))))
        return out

    def run(self, ks, progress=None):
        """The sweep over ``ks``: a :class:`DaskSweepResult`."""
        import pandas as pd

        from ..cluster.predictors import CentroidPredictor
        from ..cluster.sweep import TABLE_COLUMNS, _failed_row

        ks = [int(k) for k in ks] if self.adapter.needs_k else [None]
        if not ks:
            raise ParameterError("ks is empty: give at least one k >= 2")
        rows, centroids, predictors, extensions = [], {}, {}, {}
        for i, k in enumerate(ks):
            t0 = time.perf_counter()
            try:
                f = self.fit(k)
            except (DesclusterError, ValueError, np.linalg.LinAlgError) as exc:
                # recorded, the sweep goes on, as in the local sweep; a cluster that lost every worker is not
                rows.append(_failed_row(k or 0, f"fit: {type(exc).__name__}: {exc}", time.perf_counter() - t0))
            else:
                k_row = int(f.get("k", k))
                rows.append(self.row(k_row, f, time.perf_counter() - t0))
                if f["centres"] is not None:
                    centroids[k_row] = f["centres"]
                given = f.get("predictor")
                predictors[k_row] = given if given is not None else CentroidPredictor(f["centres"])
                if "extension" in f:
                    extensions[k_row] = f["extension"]
            if progress:
                progress(i + 1, len(ks), k)
        table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
        table["reason"] = table["reason"].fillna("").astype(str)
        return DaskSweepResult(algorithm=self.adapter.name, table=table, labels=np.zeros((0, self.n), np.int32),
                               centroids=centroids, predictors=predictors, total_inertia=self.total_inertia,
                               engine=self.engine, X=self.Xd, extensions=extensions)


class _Extension:
    """How a sample fit labels any rows: its predictor, and (HDBSCAN) the fitted rows' own labels, which the
    local adapter keeps for the sample rows (``idx`` sorted global row indices, ``fit_labels`` theirs).
    Scattered once to the workers per k."""

    def __init__(self, predictor, idx: np.ndarray | None = None, fit_labels: np.ndarray | None = None):
        self.predictor, self.idx, self.fit_labels = predictor, idx, fit_labels

    def labels(self, C: np.ndarray, start: int) -> np.ndarray:
        """Labels (m,) int64 of the block ``C`` whose first row is row ``start``."""
        lab = np.asarray(self.predictor.predict(C), dtype=np.int64).copy()
        if self.idx is not None:
            lo, hi = np.searchsorted(self.idx, [start, start + C.shape[0]])
            lab[self.idx[lo:hi] - start] = self.fit_labels[lo:hi]
        return lab


def _extension_labels(C: np.ndarray, start: int, ext: _Extension) -> np.ndarray:
    return ext.labels(C, start)


def _extension_sums(C: np.ndarray, start: int, ext: _Extension, k: int) -> dict[str, Any]:
    """Per-cluster counts and sums of one block's non-noise rows, and its noise count."""
    from scipy import sparse

    lab = ext.labels(C, start)
    ok = lab >= 0
    if ok.any() and int(lab[ok].max()) >= k:
        raise ValueError(f"a predictor gave label {int(lab[ok].max())} for at most {k} clusters")
    lab, C64 = lab[ok], np.asarray(C, dtype=np.float64)[ok]
    ind = sparse.csr_matrix((np.ones(lab.size), (lab, np.arange(lab.size))), shape=(k, lab.size))
    return {"counts": np.bincount(lab, minlength=k).astype(np.int64), "sums": np.asarray(ind @ C64),
            "n_noise": int((~ok).sum())}


def _extension_spread(C: np.ndarray, start: int, ext: _Extension, means: np.ndarray) -> dict[str, np.ndarray]:
    """Per-cluster sums of squared and plain distances of one block's non-noise rows to their cluster mean."""
    lab = ext.labels(C, start)
    ok = lab >= 0
    diff = np.asarray(C, dtype=np.float64)[ok] - means[lab[ok]]
    sq = np.einsum("ij,ij->i", diff, diff)
    k = means.shape[0]
    return {"ssw": np.bincount(lab[ok], weights=sq, minlength=k),
            "dist": np.bincount(lab[ok], weights=np.sqrt(sq), minlength=k)}


#: Adapters fitted on a fixed-seed sample of ``max_fit_rows`` rows and extended to all rows by ``predictor_``.
SAMPLE_FITTED = ("gmm", "birch", "ward", "hdbscan")


class _SampleSweep(_KMeansSweep):
    """One sweep of a sample-fitted algorithm (:data:`SAMPLE_FITTED`): each k is fitted on the client on the
    adapter's own fixed-seed sample of ``max_fit_rows`` rows (gathered once; the same rows, in the same order,
    as the local adapter's fit on all rows draws, so the same model), and its extension to every row (the
    predictor; for HDBSCAN the fitted rows keep their own labels) runs per block on the workers, where the
    per-cluster counts, sums and spreads of the metrics are accumulated; silhouette and stability use the
    same samples as the local sweep. Ward extended by nearest cluster mean (as the local adapter when
    ``n > max_fit_rows``, the only case that comes here)."""

    def _setup(self, cols: dict) -> None:
        from ..cluster.context import SweepContext

        a = self.adapter
        self.idx = sample_rows(self.n, a.max_fit_rows, a.random_state)
        self.Xs = np.asarray(self.engine._compute(self.Xd[self.idx])[0])
        self.context = SweepContext(self.Xs)

    def fit(self, k) -> dict[str, Any]:
        """Fit on the sample, extend per block, per-cluster statistics (keys as :meth:`_KMeansSweep.fit`)."""
        from ..cluster.predictors import CentroidPredictor

        est = self._estimator(k).fit(self.Xs, context=self.context)
        hdb = self.adapter.name == "hdbscan"
        predictor = CentroidPredictor(est.cluster_centers_) if self.adapter.name == "ward" else est.predictor_
        ext = _Extension(predictor, self.idx, np.asarray(est.labels_, dtype=np.int64)) if hdb else _Extension(predictor)
        bound = max(int(est.labels_.max()) + 1,
                    0 if est.cluster_centers_ is None else int(est.cluster_centers_.shape[0]),
                    int(getattr(getattr(est, "model_", None), "n_components", 0) or 0), 1)
        remote = self.engine.client.scatter(ext, broadcast=True)
        s = self._map_merge(_extension_sums, remote, bound)
        counts = s["counts"]
        used = counts > 0
        means = np.zeros((bound, self.p))
        means[used] = s["sums"][used] / counts[used, None]
        spread = self._map_merge(_extension_spread, remote, means)
        sil_labels = _sample_labels(ext, self.sil_X.astype(self.Xs.dtype), self.sil.rows_)
        if hdb:  # the local adapter's centres: the means of all rows of each found cluster
            found = int(np.flatnonzero(used).max()) + 1 if used.any() else 0
            centres = means[:found].astype(np.float32) if found else None
            k_row = int(used.sum())
        else:
            centres, k_row = est.cluster_centers_, int(k)
        return {"centres": centres, "counts": counts, "means": means, "used": used, "ssw": spread["ssw"],
                "dist": spread["dist"], "n_noise": int(s["n_noise"]), "sil_labels": sil_labels,
                "bic": float(est.bic_) if getattr(est, "bic_", None) is not None else float("nan"), "k": k_row,
                "predictor": est.predictor_ if self.adapter.name != "ward" else predictor, "extension": ext}


def _sample_labels(ext: _Extension, rows_X: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Labels of scattered rows ``rows`` (sorted global indices) with values ``rows_X``: the predictor's, the
    fitted rows' own where ``rows`` meets the fit sample."""
    lab = np.asarray(ext.predictor.predict(rows_X), dtype=np.int64).copy()
    if ext.idx is not None:
        pos = np.searchsorted(ext.idx, rows)
        hit = (pos < ext.idx.size) & (ext.idx[np.minimum(pos, ext.idx.size - 1)] == rows)
        lab[hit] = ext.fit_labels[pos[hit]]
    return lab


class DaskSweepResult(SweepResult):
    """A :class:`~descluster.cluster.sweep.SweepResult` whose labels are computed per block on demand
    (:meth:`labels_for`), never held for every k.

    Parameters
    ----------
    *args, **kw
        Those of :class:`~descluster.cluster.sweep.SweepResult` (``labels`` empty).
    engine : DaskEngine
    X : dask.array.Array of shape (n, p)
        The swept space.
    """

    def __init__(self, *args, engine=None, X=None, extensions=None, **kw):
        super().__init__(*args, **kw)
        self._engine, self._X, self._extensions = engine, X, dict(extensions or {})

    def labels_for(self, k: int) -> np.ndarray:
        """Labels (n,) int64 of ``k``, per block on the workers: the nearest of its centres (k-means), or the
        sample fit's :class:`_Extension` (GMM, BIRCH, Ward, HDBSCAN).

        Raises
        ------
        KeyError
            If ``k`` was not swept or its fit failed.
        """
        if k in self._extensions:
            ext = self._engine.client.scatter(self._extensions[k], broadcast=True)
            parts = [dask.delayed(_extension_labels, pure=True)(b, s, ext) for b, s in _blocks(self._X)]
            return np.concatenate(self._engine._compute(*parts)).astype(np.int64)
        if k not in self.centroids:
            raise KeyError(f"k = {k} not in this sweep")
        lab = self._X.map_blocks(_labels_map, self.centroids[k].astype(np.float64), dtype=np.int64, drop_axis=1)
        return self._engine._compute(lab)[0]


# --------------------------------------------------------------------------- neighbour index


class DaskIndex(NeighbourIndex):
    """A neighbour index searched per block of queries on the Dask workers.

    The configured index (``base``: a :data:`~descluster.outliers.neighbours.INDEXES` name or instance)
    is fitted on the client, then broadcast to every worker. :meth:`fit` also runs the self-search of
    all rows there (``n_neighbors + 1`` neighbours, the query's own row included), so that the
    outlier stage's chunked self-search (:func:`~descluster.outliers.neighbours.knn_search`) reads its
    answers; any other query is searched on the workers when asked.

    Parameters
    ----------
    base : str or NeighbourIndex, default "auto"
    scheduler : str, optional
        Scheduler address (default: the current client's).
    block_rows : int, optional
        Queries per task (default 16,384).
    random_state : int, default 0
        Seed of a ``base`` given by name.

    Attributes
    ----------
    index_ : NeighbourIndex
        The fitted base index.
    description_ : str
    recall_ : float or None
        The base index's measured recall (IVF), else None.
    """

    def __init__(self, base="auto", scheduler: str | None = None, block_rows: int | None = None,
                 random_state: int = 0):
        self.base = base
        self.scheduler = scheduler
        self.block_rows = block_rows
        self.random_state = random_state

    def _client(self):
        """The current client if it talks to ``scheduler`` (any, when None), else a client of ``scheduler``
        (``distributed.get_client``): with several clients in one process, the search runs on the engine's
        cluster, not on whichever client was made last."""
        from distributed import get_client

        return get_client(self.scheduler)

    def _search_all(self, Q: np.ndarray, k: int) -> np.ndarray:
        client = self._client()
        step = self.block_rows or 16384
        futures = [client.submit(_search_block, self._remote, Q[s:s + step], k, pure=False)
                   for s in range(0, Q.shape[0], step)]
        return np.concatenate(client.gather(futures), axis=0)

    def fit(self, X, y=None, n_neighbors: int = 20) -> "DaskIndex":
        """Fit the base index on ``X`` (n, p) float32, broadcast it, search every row (see the class docstring)."""
        from ..outliers.neighbours import make_index

        X = np.ascontiguousarray(X, dtype=np.float32)
        self.index_ = make_index(self.base, random_state=self.random_state).fit(X, n_neighbors=n_neighbors)
        client = self._client()
        self._remote = client.scatter(self.index_, broadcast=True)
        self.X_ = X
        self._k = min(n_neighbors + 1, X.shape[0])
        self._self_I = self._search_all(X, self._k)
        workers = len(client.scheduler_info().get("workers", {}))
        self.description_ = f"{self.index_.description_}; searched per block on {workers} Dask workers"
        self.recall_ = getattr(self.index_, "recall_", None)
        self.n_samples_fit_ = X.shape[0]
        self._cursor = 0
        return self

    def search(self, Q, k):
        """``(None, indices (m, k) int64)``: the stored self-search when ``Q`` is the next run of the fitted
        rows (checked by value), else a search on the workers (distances are recomputed by the caller)."""
        Q = np.asarray(Q, dtype=np.float32)
        s, m = self._cursor, Q.shape[0]
        if k <= self._k and s + m <= self.X_.shape[0] and np.array_equal(Q, self.X_[s:s + m]):
            self._cursor = (s + m) % self.X_.shape[0]
            return None, self._self_I[s:s + m, :k]
        return None, self._search_all(Q, k)
