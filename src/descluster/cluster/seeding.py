"""k-means|| seeding, written once over "map a function over row blocks and merge": the local k-means adapter
runs it over in-memory row chunks, the Dask engine over the blocks on its workers.

k-means|| (Bahmani, Moseley, Vattani, Kumar & Vassilvitskii 2012, "Scalable K-Means++", PVLDB 5(7),
Algorithm 2) replaces the k sequential passes of k-means++ by a few oversampling rounds:

1. ``C`` = one row drawn uniformly at random;
2. for each of ``rounds`` rounds (the paper finds about 5 enough): ``phi = sum_x d^2(x, C)`` (one pass),
   then every row ``x`` joins ``C`` independently with probability ``min(1, l d^2(x, C) / phi)`` (one pass),
   with the oversampling factor ``l = oversampling * k`` (the paper's ``l = 2k`` by default);
3. every candidate ``c`` is weighted by the number of rows whose nearest candidate it is (one pass);
4. the weighted candidates are reduced to ``k`` centres on the client: scikit-learn ``KMeans`` with
   weighted k-means++ (Arthur & Vassilvitskii 2007) and ``n_init`` restarts on the candidates.

A row's draw in a round is ``u < l d^2 / phi`` with ``u`` a uniform number derived from ``(random_state,
round, row index)`` by the splitmix64 mixer (Steele, Lea & Flood 2014, "Fast splittable pseudorandom number
generators"), not from a generator stream, so the candidates do not depend on how the rows are split into
blocks (the local engine and any Dask cluster draw the same rows, up to the last bits of ``phi``).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..errors import ParameterError
from ..rows import row_chunks

__all__ = ["INITS", "nearest_sq", "row_uniforms", "kmeans_parallel", "local_blocks", "merge_parts"]

#: Seeding strategies of the k-means adapter (``KMeansAdapter(init=...)``).
INITS = ("k-means++", "k-means||")

_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def nearest_sq(C: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centre of each row and its squared Euclidean distance (float64, expanded form, clipped at 0).

    Parameters
    ----------
    C : ndarray of shape (m, p)
    centres : ndarray of shape (c, p), c >= 1

    Returns
    -------
    labels : ndarray of shape (m,), int64
    d2 : ndarray of shape (m,), float64
    """
    C64 = np.asarray(C, dtype=np.float64)
    centres = np.asarray(centres, dtype=np.float64)
    d2 = (np.einsum("ij,ij->i", C64, C64)[:, None] - 2.0 * (C64 @ centres.T)
          + np.einsum("ij,ij->i", centres, centres)[None, :])
    lab = np.argmin(d2, axis=1)
    return lab.astype(np.int64), np.maximum(d2[np.arange(C64.shape[0]), lab], 0.0)


def _splitmix64(z: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser of every uint64 in ``z`` (wrapping arithmetic)."""
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def row_uniforms(random_state: int, round_: int, rows: np.ndarray) -> np.ndarray:
    """Uniform numbers in [0, 1), one per row index, fixed by ``(random_state, round_, row)`` (module docstring).

    Parameters
    ----------
    random_state, round_ : int >= 0
    rows : ndarray of int, global row indices

    Returns
    -------
    ndarray of shape rows.shape, float64
    """
    key = _splitmix64(np.uint64((int(random_state) * 1_000_003 + int(round_)) & 0xFFFFFFFFFFFFFFFF))
    with np.errstate(over="ignore"):
        z = _splitmix64(np.asarray(rows, dtype=np.uint64) + key)
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53)


# --------------------------------------------------------------------------- block functions (run on workers)


def _cost_block(C: np.ndarray, start: int, cand: np.ndarray) -> dict[str, Any]:
    return {"phi": float(nearest_sq(C, cand)[1].sum())}


def _sample_block(C: np.ndarray, start: int, cand: np.ndarray, phi: float, l: float, random_state: int,
                  round_: int) -> dict[str, Any]:
    _, d2 = nearest_sq(C, cand)
    rows = np.arange(start, start + C.shape[0], dtype=np.int64)
    hit = row_uniforms(random_state, round_, rows) < l * d2 / phi
    return {"index": rows[hit], "rows": np.asarray(C, dtype=np.float64)[hit]}


def _weight_block(C: np.ndarray, start: int, cand: np.ndarray) -> dict[str, Any]:
    return {"counts": np.bincount(nearest_sq(C, cand)[0], minlength=cand.shape[0]).astype(np.int64)}


def merge_parts(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Merge two block results: ``index``/``rows`` concatenated (in block order), anything else added."""
    return {key: np.concatenate([a[key], b[key]]) if key in ("index", "rows") else a[key] + b[key] for key in a}


def local_blocks(X: np.ndarray, chunk_rows: int | None = None) -> Callable[..., dict[str, Any]]:
    """The ``map_blocks`` of :func:`kmeans_parallel` over in-memory row chunks of ``X`` (n, p)."""
    def run(fn, *args):
        out = None
        for sl in row_chunks(X.shape[0], chunk_rows, X.shape[1]):
            part = fn(X[sl], sl.start, *args)
            out = part if out is None else merge_parts(out, part)
        return out
    return run


def kmeans_parallel(map_blocks: Callable[..., dict[str, Any]], take_rows: Callable[[np.ndarray], np.ndarray],
                    n_rows: int, k: int, *, oversampling: float = 2.0, rounds: int = 5, random_state: int = 0,
                    n_init: int = 3) -> dict[str, Any]:
    """k-means|| seeds: ``k`` centres from a few oversampling rounds over all rows (module docstring).

    Parameters
    ----------
    map_blocks : callable(fn, *args) -> dict
        Applies ``fn(block, first_row, *args)`` to every row block and merges the results with
        :func:`merge_parts` (:func:`local_blocks`, or the Dask engine's map-reduce).
    take_rows : callable(indices (m,) int64) -> ndarray (m, p)
        The rows of the given indices.
    n_rows : int
    k : int, 1 <= k <= n_rows
    oversampling : float, default 2.0
        ``l / k`` (> 0).
    rounds : int, default 5
        Sampling rounds (>= 1).
    random_state : int, default 0
    n_init : int, default 3
        Weighted k-means++ restarts on the candidates.

    Returns
    -------
    dict
        ``centres`` (k, p) float64, ``n_candidates`` int, ``rounds`` (rounds run) int.

    Raises
    ------
    ParameterError
        ``k`` outside 1..n_rows, ``oversampling`` <= 0 or ``rounds`` < 1.
    """
    from sklearn.cluster import KMeans

    if not 1 <= k <= n_rows:
        raise ParameterError(f"k = {k} is outside 1..{n_rows} (rows)")
    if not oversampling > 0 or rounds < 1:
        raise ParameterError(f"oversampling={oversampling!r} must be > 0 and rounds={rounds!r} >= 1")
    rng = np.random.default_rng(random_state)
    idx = np.array([int(rng.integers(n_rows))], dtype=np.int64)
    cand = np.asarray(take_rows(idx), dtype=np.float64)
    l = float(oversampling) * k
    done = 0
    for r in range(rounds):
        phi = float(map_blocks(_cost_block, cand)["phi"])
        if phi <= 0.0:  # every row coincides with a candidate
            break
        got = map_blocks(_sample_block, cand, phi, l, int(random_state), r)
        order = np.argsort(got["index"], kind="stable")
        new, rows = got["index"][order], got["rows"][order]
        keep = ~np.isin(new, idx)
        idx, cand = np.concatenate([idx, new[keep]]), np.vstack([cand, rows[keep]])
        done = r + 1
    if idx.size < k:  # too few candidates (tiny or degenerate input): top up with uniform rows
        rest = np.setdiff1d(np.arange(n_rows, dtype=np.int64), idx)
        extra = np.sort(rng.choice(rest, size=min(k - idx.size, rest.size), replace=False))
        idx, cand = np.concatenate([idx, extra]), np.vstack([cand, np.asarray(take_rows(extra), dtype=np.float64)])
    weights = map_blocks(_weight_block, cand)["counts"].astype(np.float64)
    km = KMeans(k, n_init=n_init, random_state=random_state).fit(cand, sample_weight=weights)
    return {"centres": km.cluster_centers_.astype(np.float64), "n_candidates": int(idx.size), "rounds": done}
