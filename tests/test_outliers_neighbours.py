"""Tests of the exact faiss kNN search."""

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from descluster.errors import ParameterError
from descluster.outliers.neighbours import check_matrix, knn_search


def test_knn_matches_sklearn_and_excludes_self():
    X = np.random.default_rng(0).normal(size=(300, 6)).astype(np.float32)
    D, I = knn_search(X, 5, chunk_size=64, progress=False)
    d_ref, i_ref = NearestNeighbors(n_neighbors=5).fit(X).kneighbors()
    assert D.shape == (300, 5) and I.dtype == np.int64
    np.testing.assert_allclose(D, d_ref, rtol=1e-5, atol=1e-6)
    assert (I == i_ref).mean() > 0.99  # ties aside, same neighbours
    assert not (I == np.arange(300)[:, None]).any()


def test_exact_duplicates_never_return_self():
    X = np.repeat(np.eye(3, dtype=np.float32), 4, axis=0)  # 3 points, 4 copies each
    D, I = knn_search(X, 3, progress=False)
    assert not (I == np.arange(12)[:, None]).any()
    np.testing.assert_array_equal(D, 0.0)  # the 3 other copies
    assert (I // 4 == np.arange(12)[:, None] // 4).all()


def test_queries_against_index():
    X = np.array([[0, 0], [10, 0]], dtype=np.float32)
    D, I = knn_search(X, 1, queries=np.array([[9, 0], [1, 0]], dtype=np.float32), progress=False)
    np.testing.assert_array_equal(I[:, 0], [1, 0])
    np.testing.assert_allclose(D[:, 0], [1, 1])


@pytest.mark.parametrize("k", [0, 10, 2.5])
def test_bad_k_is_named(k):
    X = np.zeros((10, 2), np.float32) + np.arange(10)[:, None]
    with pytest.raises(ParameterError, match="k="):
        knn_search(X, k, progress=False)


def test_nan_row_is_named():
    X = np.zeros((5, 2), np.float32)
    X[3, 1] = np.nan
    with pytest.raises(ParameterError, match="row 3"):
        check_matrix(X)
