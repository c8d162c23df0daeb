"""Per-matrix state shared by the fits of one k sweep, held in an explicit object.

A sweep fits one algorithm 29 times on the same matrix (and twice 29 times on its two
stability halves). Some work depends only on the matrix, not on k: the lower bound on
its distinct rows that validates k, or Ward's tree of a fixed sample. The sweep makes
one :class:`SweepContext` per matrix and passes it to every ``fit(X, context=...)``;
an adapter keeps such work in it under a key of its own parameters. Without a context,
a fit computes everything afresh. Nothing is cached by the identity or the first and
last rows of an array.
"""

from __future__ import annotations

from typing import Any, Callable, Hashable

import numpy as np

from ..errors import ParameterError

__all__ = ["SweepContext"]

#: Distinct rows counted for the k check (k above this is checked exactly, per k).
DISTINCT_PROBE = 1000


class SweepContext:
    """State computed once per matrix for all fits on it.

    Parameters
    ----------
    X : ndarray or memmap of shape (n_samples, n_features)
        The matrix every fit given this context runs on.

    Attributes
    ----------
    X : ndarray or memmap of shape (n_samples, n_features)
    computed : list of Hashable
        Keys of the state computed so far (for tests and the log).
    """

    def __init__(self, X):
        if np.ndim(X) != 2:
            raise ParameterError(f"a sweep context needs a 2-D matrix; got shape {np.shape(X)}")
        self.X = X
        self._store: dict[Hashable, Any] = {}
        self.computed: list[Hashable] = []

    def check(self, X) -> None:
        """Refuse a fit on another matrix than this context's.

        Raises
        ------
        ParameterError
            If ``X`` is not the matrix the context was made for.
        """
        if X is not self.X:
            raise ParameterError(f"this sweep context was made for a {self.X.shape} matrix; pass the same array "
                                 f"to fit (got one of shape {np.shape(X)}) or no context")

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The value stored under ``key``, computed by ``compute()`` the first time."""
        if key not in self._store:
            self._store[key] = compute()
            self.computed.append(key)
        return self._store[key]

    def distinct_at_least(self, X=None) -> int:
        """A lower bound on the distinct rows of the matrix (exact up to :data:`DISTINCT_PROBE`)."""
        from ..metrics.internal import count_distinct_rows

        Xc = self.X if X is None else X
        return self.get(("distinct_rows", DISTINCT_PROBE),
                        lambda: count_distinct_rows(Xc, at_least=min(Xc.shape[0], DISTINCT_PROBE)))
