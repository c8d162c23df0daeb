"""The single-machine engine: every call delegates to the existing code, unchanged (the default)."""

from __future__ import annotations

from . import Engine

__all__ = ["LocalEngine"]


class LocalEngine(Engine):
    """Run every stage in this process (and the sweeps in local worker processes), as before engines existed.

    :meth:`reduce_descriptor` is :func:`descluster.preprocess.reduce_descriptor`, :meth:`raw_moments`
    :meth:`descluster.preprocess.GramMoments.from_matrix`, :meth:`sweep` :func:`descluster.cluster.sweep.sweep`,
    and the neighbour index the configured one; cache keys are those of earlier releases.
    """

    name = "local"
    parallel_sweeps = True

    def raw_moments(self, X):
        """See :meth:`Engine.raw_moments`."""
        from ..preprocess import GramMoments

        return GramMoments.from_matrix(X)

    def reduce_descriptor(self, X, preprocessing, *, variance_target, max_components, random_state, descriptor,
                          moments=None):
        """See :meth:`Engine.reduce_descriptor`."""
        from ..preprocess import reduce_descriptor

        return reduce_descriptor(X, preprocessing, variance_target=variance_target, max_components=max_components,
                                 random_state=random_state, descriptor=descriptor, moments=moments)

    def sweep(self, X, adapter, ks, random_state, stability_rows, silhouette_sample, progress=None):
        """See :meth:`Engine.sweep`."""
        from ..cluster.sweep import sweep

        return sweep(X, adapter, ks=ks, random_state=random_state, stability_rows=stability_rows,
                     silhouette_sample=silhouette_sample, progress=progress)
