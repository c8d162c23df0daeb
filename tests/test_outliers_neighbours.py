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


# --------------------------------------------------------------------------- strategies
from descluster.outliers.neighbours import (  # noqa: E402
    INDEXES,
    AutoIndex,
    ExactIndex,
    FlatIndex,
    IVFIndex,
    exact_search,
    make_index,
    recall_at_k,
)


def clustered(n, d, centres=50, seed=0):
    rng = np.random.default_rng(seed)
    C = rng.normal(size=(centres, d)) * 4
    return (C[rng.integers(0, centres, n)] + rng.normal(size=(n, d))).astype(np.float32)


def test_exact_numpy_route_equals_faiss_flat_route():
    X = clustered(3000, 8, seed=1)
    a = ExactIndex(block_size=700)  # several blocks, last one partial
    D1, I1 = knn_search(X, 10, chunk_size=512, progress=False, index=a)
    D2, I2 = knn_search(X, 10, chunk_size=512, progress=False, index=FlatIndex())
    assert all(set(r1) == set(r2) for r1, r2 in zip(I1, I2))
    np.testing.assert_allclose(D1, D2, atol=1e-4)
    assert a.recall_ is None and "exact" in a.description_ and "3,000 rows" in a.description_


def test_exact_search_squared_distances_match_brute_force():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(257, 5)).astype(np.float32)
    Q = rng.normal(size=(31, 5)).astype(np.float32)
    D2, I = exact_search(Q, X, 4, chunk_size=10, block_size=64)
    full = ((Q[:, None, :].astype(np.float64) - X[None]) ** 2).sum(-1)
    ref = np.argsort(full, axis=1)[:, :4]
    np.testing.assert_array_equal(I, ref)
    np.testing.assert_allclose(D2, np.take_along_axis(full, ref, 1), rtol=1e-4, atol=1e-4)


def test_ivf_reaches_recall_and_reports_it():
    X = clustered(20_000, 16)
    ivf = IVFIndex(random_state=0)
    D, I = knn_search(X, 20, progress=False, index=ivf)
    Dx, Ix = knn_search(X, 20, progress=False, index="exact")
    full = recall_at_k(D, Dx)
    assert full >= 0.9 and ivf.recall_ >= 0.9
    assert abs(full - ivf.recall_) < 0.03  # the 2,000-row sample estimates the full recall
    assert ivf.nlist_ == round(4 * np.sqrt(20_000)) and ivf.recall_k_ == 20
    assert f"recall@20 = {ivf.recall_:.3f}" in ivf.description_ and "nlist=566" in ivf.description_
    assert not (I == np.arange(20_000)[:, None]).any()
    assert (np.diff(D, axis=1) >= 0).all()


def test_ivf_raises_nprobe_until_target_and_is_seeded():
    X = clustered(4000, 8, centres=5, seed=2)  # few clusters: many lists per cluster, low recall at nprobe=1
    a = IVFIndex(nlist=64, nprobe=1, recall_target=0.99, n_recall_queries=500, random_state=3).fit(X, n_neighbors=10)
    assert list(a.recall_curve_)[0] == 1 and a.recall_curve_[1] < 0.99
    assert a.recall_ >= 0.99 and a.nprobe_ > 1
    assert list(a.recall_curve_) == [2 ** i for i in range(len(a.recall_curve_))]
    b = IVFIndex(nlist=64, nprobe=1, recall_target=0.99, n_recall_queries=500, random_state=3).fit(X, n_neighbors=10)
    np.testing.assert_array_equal(a.centroids_, b.centroids_)
    assert a.recall_curve_ == b.recall_curve_


def test_ivf_warns_when_target_missed():
    X = clustered(2000, 8, centres=5, seed=4)
    with pytest.warns(RuntimeWarning, match="below the target"):
        ivf = IVFIndex(nlist=64, nprobe=1, max_nprobe=1, recall_target=1.0, n_recall_queries=300).fit(X, n_neighbors=10)
    assert ivf.recall_ < 1.0


def test_auto_picks_exact_for_small_n_and_ivf_above():
    X = clustered(1200, 4)
    small = AutoIndex().fit(X)
    assert isinstance(small.chosen_, ExactIndex) and small.recall_ is None
    big = AutoIndex(max_exact_rows=1000).fit(X, n_neighbors=5)
    assert isinstance(big.chosen_, IVFIndex) and big.recall_ > 0.9 and big.description_.startswith("faiss IVF-Flat")


def test_make_index_registry_and_errors():
    assert set(INDEXES) == {"auto", "exact", "flat", "ivf"}
    assert make_index("ivf", random_state=7).random_state == 7
    template = IVFIndex(nprobe=4)
    copy = make_index(template)
    assert copy is not template and copy.nprobe == 4
    with pytest.raises(ParameterError, match="index='hnsw'"):
        make_index("hnsw")
    with pytest.raises(ParameterError, match="recall_target=1.5"):
        IVFIndex(recall_target=1.5).fit(clustered(100, 2))
    with pytest.raises(ParameterError, match="nprobe=0"):
        IVFIndex(nprobe=0).fit(clustered(100, 2))
