"""Split-half stability of a clustering: does an independent half of the data give the same partition?

References
----------
Ben-Hur, A., Elisseeff, A. & Guyon, I. (2002). A stability based method for
    discovering structure in clustered data. PSB 2002.
Lange, T., Roth, V., Braun, M. L. & Buhmann, J. M. (2004). Stability-based
    validation of clustering solutions. Neural Computation 16(6), 1299-1323.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from sklearn.metrics import adjusted_rand_score

from ..validation import check_int
from ..rows import label_means, nearest_centroid
from .internal import MetricValue

__all__ = ["SplitHalves", "stability"]


class SplitHalves:
    """Two disjoint fixed-seed halves of ``n`` rows and a common evaluation set.

    Drawn once, so a k sweep fits every k on the same halves (and can keep per-half
    state, such as a Ward tree, in one :class:`~descluster.cluster.context.SweepContext`
    per half).

    Parameters
    ----------
    n_rows : int
    subsample : int
        Rows per half (>= 10); each half has ``min(subsample, n_rows // 2)`` rows.
    eval_size : int
        Rows (>= 10) on which the two clusterings are compared, ``min(eval_size, n_rows)``.
    random_state : int

    Attributes
    ----------
    halves : tuple of two ndarray of shape (half_size,), int64
        Sorted row indices of the halves (empty when ``n_rows < 20``).
    eval_rows : ndarray of shape (m,), int64
        Sorted row indices of the evaluation set.
    half_size : int
    enough : bool
        False when ``n_rows < 20`` (stability is then undefined).

    Raises
    ------
    ParameterError
        If ``subsample`` or ``eval_size`` is below 10.
    """

    def __init__(self, n_rows: int, subsample: int = 20_000, eval_size: int = 20_000, random_state: int = 0):
        check_int("subsample", subsample, 10)
        check_int("eval_size", eval_size, 10)
        self.n_rows = int(n_rows)
        self.enough = self.n_rows >= 20
        empty = np.zeros(0, dtype=np.int64)
        self.halves, self.eval_rows, self.half_size = (empty, empty), empty, 0
        if self.enough:
            rng = np.random.default_rng(random_state)
            perm = rng.permutation(self.n_rows)
            half = min(subsample, self.n_rows // 2)
            self.halves = (np.sort(perm[:half]), np.sort(perm[half:2 * half]))
            self.eval_rows = np.sort(rng.choice(self.n_rows, size=min(eval_size, self.n_rows), replace=False))
            self.half_size = int(half)

    def take(self, X) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(X[half A], X[half B], X[eval rows])`` as in-memory arrays."""
        return np.asarray(X[self.halves[0]]), np.asarray(X[self.halves[1]]), np.asarray(X[self.eval_rows])

    def score(self, parts: tuple[np.ndarray, np.ndarray, np.ndarray],
              fit_predict: Callable[[int, np.ndarray], np.ndarray]) -> MetricValue:
        """ARI between the two halves' clusterings, each extended to the evaluation rows.

        Parameters
        ----------
        parts : tuple
            :meth:`take` of the data.
        fit_predict : callable
            ``fit_predict(half, X_half) -> labels (m,)`` with ``half`` 0 or 1 (noise ``-1`` allowed).

        Returns
        -------
        MetricValue
            See :func:`stability`.
        """
        if not self.enough:
            return MetricValue.undefined(f"too few rows ({self.n_rows}) for split-half stability")
        Xe = parts[2]
        preds = []
        for i, Xi in enumerate(parts[:2]):
            lab = np.asarray(fit_predict(i, Xi))
            ids, codes = np.unique(lab[lab >= 0], return_inverse=True)
            if ids.size < 2:
                return MetricValue.undefined("a half gave fewer than 2 clusters", sampled=True,
                                             sample_size=self.half_size)
            full = np.full(lab.shape[0], -1, dtype=np.int64)
            full[lab >= 0] = codes
            preds.append(nearest_centroid(Xe, label_means(Xi, full, ids.size)))
        return MetricValue(float(adjusted_rand_score(preds[0], preds[1])), sampled=True, sample_size=self.half_size)


def stability(X: np.ndarray, fit_predict: Callable[[np.ndarray], np.ndarray], subsample: int = 20_000,
              eval_size: int = 20_000, random_state: int = 0) -> MetricValue:
    """Split-half stability: ARI between clusterings fitted on two disjoint subsamples.

    Two disjoint fixed-seed subsamples ``A`` and ``B`` (each ``min(subsample, n // 2)``
    rows, :class:`SplitHalves`) are clustered independently with ``fit_predict``; each
    clustering is extended to a common fixed-seed evaluation set of ``min(eval_size, n)``
    rows by nearest cluster mean, and the ARI of the two extensions is returned
    (Ben-Hur et al. 2002; Lange et al. 2004: transfer by a nearest-centroid
    classifier). 1 means the same partition is found from independent data; values
    near 0 mean the partition is arbitrary. Cost: two fits on ``subsample`` rows
    plus an O(eval_size * k * d) assignment, independent of ``n``.

    Parameters
    ----------
    X : ndarray or memmap of shape (n_samples, n_features)
    fit_predict : callable
        ``fit_predict(X_sub) -> labels (m,)`` for one subsample (noise ``-1`` allowed).
    subsample : int
        Rows per half (>= 10).
    eval_size : int
        Rows on which the two clusterings are compared.
    random_state : int

    Returns
    -------
    MetricValue
        ARI in [-0.5, 1]; NaN with reason when either half gives < 2 clusters,
        or when there are fewer than 20 rows.

    Raises
    ------
    ParameterError
        If ``subsample`` or ``eval_size`` is below 10.
    """
    halves = SplitHalves(X.shape[0], subsample, eval_size, random_state)
    if not halves.enough:
        return halves.score((X, X, X), lambda i, Xi: fit_predict(Xi))
    return halves.score(halves.take(X), lambda i, Xi: fit_predict(Xi))
