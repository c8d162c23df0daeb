"""Where the heavy stages run: a strategy object the pipeline calls (openTSNE's ``affinities``/``initialization``
style), chosen once per study.

:class:`Engine` is the small interface: scale + PCA one descriptor kind (:meth:`Engine.reduce_descriptor`,
with the raw-data moments shared by the affine scalers, :meth:`Engine.raw_moments`), the k sweep of one
algorithm on one space (:meth:`Engine.sweep`) and the neighbour index of the outlier stage
(:meth:`Engine.neighbour_index`). :class:`~descluster.engine.local.LocalEngine` (the default) delegates to
the single-machine code unchanged; :class:`~descluster.engine.dask.DaskEngine` runs the same steps as
per-block map-reduce on a Dask cluster (``descluster run --engine dask`` / ``--scheduler tcp://...``).

The pipeline reads the engine of the running study with :func:`current_engine` (set by
:func:`use_engine` around :func:`descluster.pipeline.fit_study`), so the stage functions keep their
signatures; code running outside a study (worker processes of the local sweeps, tests) gets the
local engine.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any, Callable, Iterable, Iterator

from ..errors import ParameterError

__all__ = ["Engine", "ENGINES", "current_engine", "use_engine", "make_engine"]

#: Engine names accepted by ``--engine`` and ``Study(engine=...)``.
ENGINES = ("local", "dask")


class Engine:
    """Interface of an execution engine (see the module docstring).

    Attributes
    ----------
    name : str
        ``"local"`` or ``"dask"``.
    parallel_sweeps : bool
        Whether the pipeline may run independent sweeps in local worker processes (joblib);
        False where the engine parallelises inside each sweep.
    writes_blocks : bool
        Whether :meth:`reduce_descriptor` takes ``store=`` (a ``.npy`` path its workers write the reduced
        rows to, returned as a read-only memory map): the pipeline then keeps each space in its cache
        folder instead of gathering it (:func:`descluster.pipeline.reduce_stage`).
    """

    name = "base"
    parallel_sweeps = True
    writes_blocks = False

    def cache_tag(self) -> dict[str, Any]:
        """Extra cache-key material of results this engine computes (empty for the local engine, whose
        keys are those of earlier releases)."""
        return {}

    def raw_moments(self, X):
        """Mean and covariance of the raw matrix ``X`` (n, d): a :class:`~descluster.preprocess.GramMoments`."""
        raise NotImplementedError

    def reduce_descriptor(self, X, preprocessing: str, *, variance_target: float, max_components: int,
                          random_state: int, descriptor: str, moments=None):
        """Scale then PCA-reduce ``X`` (n, d) float32: a :class:`~descluster.results.ReducedSpace`, as
        :func:`descluster.preprocess.reduce_descriptor`."""
        raise NotImplementedError

    def sweep(self, X, adapter, ks: Iterable[int], random_state: int, stability_rows: int | None,
              silhouette_sample: int, progress: Callable[[int, int, Any], None] | None = None):
        """Fit ``adapter`` for every k on ``X`` (n, p): a :class:`~descluster.cluster.sweep.SweepResult`, as
        :func:`descluster.cluster.sweep.sweep`."""
        raise NotImplementedError

    def map_rows(self, fn: Callable[[Any], Any], X, rows, chunk_rows: int = 50_000):
        """``fn`` applied to the rows ``rows`` of ``X`` (n, d), ``chunk_rows`` rows at a time (a t-SNE map's
        placement of the rows it did not embed, :class:`descluster.embed.TSNEEmbedding`).

        Parameters
        ----------
        fn : callable
            Maps a float32 block (m, d) to an array (m, c); must give each row's result independently of the
            other rows in its call (the Dask engine groups the rows by its blocks).
        X : array (n, d)
        rows : ndarray of shape (r,), int
            Sorted, distinct row indices.
        chunk_rows : int, default 50,000
            Largest ``m`` of one call (bounds the memory of ``fn``).

        Returns
        -------
        ndarray of shape (r, c), float32, in the order of ``rows``.

        Here: in turn, in this process; the Dask engine runs the calls on its workers, per block.
        """
        import numpy as np

        from ..rows import row_chunks

        rows = np.asarray(rows, dtype=np.int64)
        parts = [np.asarray(fn(np.asarray(X[rows[sl]], dtype=np.float32)), dtype=np.float32)
                 for sl in row_chunks(len(rows), chunk_rows)]
        if not parts:
            raise ParameterError("map_rows: no rows given")
        return np.concatenate(parts, axis=0)

    def neighbour_index(self, index):
        """The neighbour index (name or :class:`~descluster.outliers.neighbours.NeighbourIndex`) the outlier
        stage should use in place of the configured ``index``."""
        return index

    def describe(self) -> str:
        """One line: what runs where."""
        return self.name

    def close(self) -> None:
        """Release what the engine started (a local cluster)."""


_CURRENT: contextvars.ContextVar[Engine | None] = contextvars.ContextVar("descluster_engine", default=None)


def current_engine() -> Engine:
    """The engine of the running study (:func:`use_engine`), else a :class:`~.local.LocalEngine`."""
    engine = _CURRENT.get()
    if engine is None:
        from .local import LocalEngine

        return LocalEngine()
    return engine


@contextlib.contextmanager
def use_engine(engine: Engine | None) -> Iterator[Engine]:
    """Make ``engine`` (None: the local one) the :func:`current_engine` inside the ``with`` block."""
    if engine is None:
        from .local import LocalEngine

        engine = LocalEngine()
    if not isinstance(engine, Engine):
        raise ParameterError(f"engine={engine!r} must be an Engine (descluster.engine.make_engine)")
    token = _CURRENT.set(engine)
    try:
        yield engine
    finally:
        _CURRENT.reset(token)


def make_engine(engine: str | Engine | None = "local", scheduler: str | None = None, n_workers: int | None = None,
                threads_per_worker: int = 1, **options: Any) -> Engine:
    """Build an engine by name.

    Parameters
    ----------
    engine : {"local", "dask"} or Engine, default "local"
        An :class:`Engine` is returned unchanged.
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://HOST:8786``); implies ``"dask"``.
    n_workers : int, optional
        Workers of the ``distributed.LocalCluster`` started when ``engine="dask"`` and no scheduler is given
        (default: one per core).
    threads_per_worker : int, default 1
    **options
        Passed to :class:`~.dask.DaskEngine` (``block_rows``, ``processes``, ``memory_limit``).

    Returns
    -------
    Engine

    Raises
    ------
    ParameterError
        Unknown name; ``"dask"`` without the ``[dask]`` extra installed.
    """
    if isinstance(engine, Engine):
        return engine
    if n_workers is not None and not (isinstance(n_workers, int) and n_workers >= 1):
        raise ParameterError(f"n_workers={n_workers!r} (--workers) must be an integer >= 1")
    name = "dask" if scheduler else (engine or "local")
    if name not in ENGINES:
        raise ParameterError(f"engine={name!r} unknown; valid: {', '.join(ENGINES)}")
    if name == "local":
        from .local import LocalEngine

        return LocalEngine()
    try:
        from .dask import DaskEngine
    except ImportError as exc:
        raise ParameterError(f"--engine dask needs the dask extra (pip install 'descluster[dask]'): {exc}") from None
    return DaskEngine(scheduler=scheduler, n_workers=n_workers, threads_per_worker=threads_per_worker, **options)
