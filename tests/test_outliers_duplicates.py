"""Tests of duplicate grouping."""

import numpy as np

from descluster.outliers.duplicates import (
    Collapse,
    descriptor_duplicate_groups,
    groups_from_keys,
    hamming_nearest,
    merge_groups,
)
from descluster.outliers.neighbours import knn_search


def test_groups_from_keys_numbers_by_first_appearance():
    labels = groups_from_keys(["b", "a", "c", "a", "b", None, None])
    np.testing.assert_array_equal(labels, [0, 1, -1, 1, 0, -1, -1])


def test_merge_is_transitive_union():
    a = np.array([0, 0, -1, -1, -1])
    b = np.array([-1, 0, 0, -1, -1])
    np.testing.assert_array_equal(merge_groups(a, b), [0, 0, 0, -1, -1])


def test_block_larger_than_k_is_one_group():
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(size=(100, 4)), np.repeat(rng.normal(size=(1, 4)), 15, axis=0)]).astype(np.float32)
    D, I = knn_search(X, 5, progress=False)
    groups = descriptor_duplicate_groups(D, I, radius=1e-6)
    assert (groups[:100] == -1).all()
    assert len(set(groups[100:])) == 1 and groups[100] >= 0


def test_collapse_round_trip():
    groups = np.array([-1, 0, 1, 0, -1, 1])
    c = Collapse.from_groups(groups)
    np.testing.assert_array_equal(c.representatives, [0, 1, 2, 4])
    np.testing.assert_array_equal(c.expand(np.array([10, 11, 12, 14])), [10, 11, 12, 11, 14, 12])


def test_hamming_nearest():
    hashes = ["0000000000000000", "0000000000000003", "ffffffffffffffff", ""]
    nearest, dist = hamming_nearest(hashes)
    np.testing.assert_array_equal(nearest, [1, 0, 1, -1])
    np.testing.assert_array_equal(dist, [2, 2, 62, 64])
