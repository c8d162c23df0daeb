"""Duplicate grouping: descriptor rows, file bytes and perceptual hashes.

Duplicates are found *before* neighbour-based outlier scores so that a group of
near-identical images is collapsed to one representative and is not itself
flagged (with >= k copies, a point's k neighbours are all at distance 0 and
LOF/k-distance become meaningless). Groups are reported, never flagged.

Group labels are int64 arrays of shape (n,), ``-1`` for rows without a
duplicate, otherwise a group number 0..G-1 numbered by first appearance.
Connected components come from :func:`scipy.sparse.csgraph.connected_components`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..errors import ParameterError


def groups_from_pairs(n: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Group rows linked (transitively) by the pairs ``(rows[i], cols[i])``.

    Parameters
    ----------
    n : int
        Number of items.
    rows, cols : ndarray of shape (n_pairs,), int
        Linked item numbers.

    Returns
    -------
    ndarray of shape (n,), int64
        Group label per item, ``-1`` for items in no pair; groups numbered by
        their first member's position.
    """
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    labels = np.full(n, -1, dtype=np.int64)
    if rows.size == 0:
        return labels
    graph = coo_matrix((np.ones(rows.size, dtype=np.int8), (rows, cols)), shape=(n, n))
    _, comp = connected_components(graph, directed=True, connection="weak")
    sizes = np.bincount(comp)
    in_group = sizes[comp] > 1
    _, first = np.unique(comp, return_index=True)
    order = np.argsort(first)  # components in order of first appearance
    rank = np.empty_like(order)
    kept = [c for c in order if sizes[c] > 1]
    rank[:] = -1
    rank[kept] = np.arange(len(kept))
    labels[in_group] = rank[comp[in_group]]
    return labels


def groups_from_keys(keys) -> np.ndarray:
    """Group items with equal keys (e.g. sha1 of the file bytes).

    Parameters
    ----------
    keys : sequence of hashable, length n
        ``None`` or ``""`` never matches anything.

    Returns
    -------
    ndarray of shape (n,), int64
        As :func:`groups_from_pairs`.
    """
    first: dict = {}
    rows, cols = [], []
    for i, key in enumerate(keys):
        if key is None or key == "" or (isinstance(key, float) and np.isnan(key)):
            continue
        j = first.setdefault(key, i)
        if j != i:
            rows.append(i)
            cols.append(j)
    return groups_from_pairs(len(keys), np.array(rows), np.array(cols))


def merge_groups(*labelings: np.ndarray) -> np.ndarray:
    """Union of several groupings of the same n items (linked in any one = same group).

    Parameters
    ----------
    *labelings : ndarray of shape (n,), int
        Each with ``-1`` for ungrouped items.

    Returns
    -------
    ndarray of shape (n,), int64
    """
    if not labelings:
        raise ParameterError("merge_groups needs at least one labelling")
    n = len(labelings[0])
    rows, cols = [], []
    for lab in labelings:
        lab = np.asarray(lab)
        if len(lab) != n:
            raise ParameterError(f"labellings differ in length: {len(lab)} vs {n}")
        idx = np.flatnonzero(lab >= 0)
        if idx.size == 0:
            continue
        _, first = np.unique(lab[idx], return_index=True)
        rep = dict(zip(lab[idx][first], idx[first]))
        rows.append(idx)
        cols.append(np.array([rep[g] for g in lab[idx]], dtype=np.int64))
    if not rows:
        return np.full(n, -1, dtype=np.int64)
    return groups_from_pairs(n, np.concatenate(rows), np.concatenate(cols))


def descriptor_duplicate_groups(distances: np.ndarray, indices: np.ndarray, radius: float) -> np.ndarray:
    """Group descriptor rows closer than ``radius`` to one of their kNN neighbours.

    Parameters
    ----------
    distances : ndarray of shape (n, k), float
        Euclidean kNN distances (self excluded), from :func:`~.neighbours.knn_search`.
    indices : ndarray of shape (n, k), int64
    radius : float
        Largest distance at which two rows count as duplicates (>= 0).

    Returns
    -------
    ndarray of shape (n,), int64
        Duplicate group per row, ``-1`` for unique rows. A group larger than k is
        still found whole, because each of its members links to other members.
    """
    if not radius >= 0:
        raise ParameterError(f"radius={radius!r} must be >= 0")
    r, c = np.nonzero(distances <= radius)
    return groups_from_pairs(distances.shape[0], r, indices[r, c])


@dataclass
class Collapse:
    """Rows reduced to one representative per duplicate group.

    Attributes
    ----------
    representatives : ndarray of shape (m,), int64
        Row number (in the full data) of each representative: the first member of
        each group, and every ungrouped row; ascending.
    member_to_rep : ndarray of shape (n,), int64
        For every row, its representative's position in ``representatives``.
    """

    representatives: np.ndarray
    member_to_rep: np.ndarray

    @classmethod
    def from_groups(cls, groups: np.ndarray) -> "Collapse":
        """Build the collapse of a duplicate labelling (shape (n,), ``-1`` = unique)."""
        groups = np.asarray(groups, dtype=np.int64)
        n = groups.size
        key = np.where(groups >= 0, groups, -1 - np.arange(n))  # unique rows get their own key
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        order = np.argsort(first)
        reps = first[order]
        pos = np.empty_like(order)
        pos[order] = np.arange(order.size)
        return cls(representatives=reps.astype(np.int64), member_to_rep=pos[inverse].astype(np.int64))

    def expand(self, values: np.ndarray) -> np.ndarray:
        """Give each row its representative's value: (m, ...) -> (n, ...)."""
        return np.asarray(values)[self.member_to_rep]


def hamming_nearest(hashes_hex, chunk_size: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Nearest other item by Hamming distance of 64-bit perceptual hashes.

    Uses ``faiss.IndexBinaryFlat`` (exact). Items whose hash is missing get
    index -1 and distance 64.

    Parameters
    ----------
    hashes_hex : sequence of str, length n
        16-hex-digit hashes (``str(imagehash.phash(img))``), or ``""``/None.
    chunk_size : int
        Queries per faiss call.

    Returns
    -------
    nearest : ndarray of shape (n,), int64
        Row number of the nearest other item (-1 if none).
    distance : ndarray of shape (n,), int64
        Its Hamming distance in bits (0..64).
    """
    import faiss

    n = len(hashes_hex)
    nearest = np.full(n, -1, dtype=np.int64)
    distance = np.full(n, 64, dtype=np.int64)
    valid = np.array([isinstance(h, str) and len(h) == 16 for h in hashes_hex], dtype=bool)
    idx = np.flatnonzero(valid)
    if idx.size < 2:
        return nearest, distance
    codes = np.frombuffer(b"".join(bytes.fromhex(hashes_hex[i]) for i in idx), dtype=np.uint8).reshape(-1, 8)
    index = faiss.IndexBinaryFlat(64)
    index.add(codes)
    for s in range(0, idx.size, chunk_size):
        e = min(s + chunk_size, idx.size)
        D, I = index.search(codes[s:e], 2)
        own = I == np.arange(s, e)[:, None]
        pick = np.where(own[:, 0], 1, 0)  # take the first column that is not self
        rows = np.arange(e - s)
        nearest[idx[s:e]] = idx[I[rows, pick]]
        distance[idx[s:e]] = D[rows, pick]
    return nearest, distance
