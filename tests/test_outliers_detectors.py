"""Tests of the descriptor outlier detectors."""

import numpy as np
import pytest
from sklearn.neighbors import LocalOutlierFactor

from descluster.errors import MemoryBudgetError, ParameterError
from descluster.outliers.detectors import (
    DETECTORS,
    DBSCANNoiseDetector,
    IsolationForestDetector,
    KNNDistanceDetector,
    LocalOutlierFactorDetector,
    NeighbourGraph,
    knee_of_curve,
    lof_from_knn,
)
from descluster.outliers.neighbours import knn_search


def cloud_with_far_points(n=400, p=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(scale=0.5, size=(n, p))
    far = 15.0 + 10.0 * np.eye(5, p) * np.arange(1, 6)[:, None]  # five distinct far points
    return np.vstack([X, far]).astype(np.float32)


def test_knn_flags_exactly_the_far_points():
    X = cloud_with_far_points()
    det = KNNDistanceDetector(n_neighbors=10).fit(X)
    np.testing.assert_array_equal(np.flatnonzero(det.flags_), np.arange(400, 405))
    assert det.scores_.shape == (405,) and det.threshold_ > det.scores_[:400].max()
    assert "k=10" in det.threshold_description_ and "5 of 405" in det.threshold_description_


def test_lof_from_faiss_equals_sklearn():
    X = np.random.default_rng(3).normal(size=(300, 5)).astype(np.float32)
    det = LocalOutlierFactorDetector(n_neighbors=20).fit(X)
    ref = -LocalOutlierFactor(n_neighbors=20).fit(X).negative_outlier_factor_
    np.testing.assert_allclose(det.scores_, ref, rtol=1e-5)


def test_lof_formula_on_a_line():
    # points 0,1,2,3 and 10 on a line, k=1: textbook reachability densities
    X = np.array([[0], [1], [2], [3], [10]], np.float32)
    d = np.array([[1], [1], [1], [1], [7]], np.float32)
    i = np.array([[1], [0], [1], [2], [3]])
    lof = lof_from_knn(d, i, 1)
    np.testing.assert_allclose(lof, [1, 1, 1, 1, 7], rtol=1e-6)  # lrd(10) = 1/7, lrd(3) = 1
    assert X.shape[0] == lof.size


@pytest.mark.filterwarnings("ignore:Duplicate values")
def test_duplicate_block_not_flagged_and_grouped():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(300, 6))
    X = np.vstack([X, np.repeat(X[:1] * 0.1, 10, axis=0)]).astype(np.float32)  # 10 copies inside the cloud
    graph = NeighbourGraph(n_neighbors=20, progress=False).fit(X)
    groups = graph.duplicate_group_
    assert (groups[300:] == groups[300]).all() and groups[300] >= 0
    assert (groups[:300] == -1).all()
    for name in ("knn", "lof"):
        det = DETECTORS[name]().fit(X, graph=graph)
        assert len(set(det.scores_[300:])) == 1  # one representative's score
        assert not det.flags_[300:].any()
    # sklearn's LOF with k <= copies gives the copies zero reachability distance, so
    # their neighbours look 1e9 times sparser and are flagged; ours scores the group as one point
    sk = -LocalOutlierFactor(n_neighbors=5).fit(X).negative_outlier_factor_
    ours = LocalOutlierFactorDetector(n_neighbors=5).fit(X)
    assert sk.max() > 1e6 and ours.scores_.max() < 10


def test_isolation_forest_flags_far_points_and_is_seeded():
    X = cloud_with_far_points()
    a = IsolationForestDetector(random_state=1, sample_size=200).fit(X)
    b = IsolationForestDetector(random_state=1, sample_size=200).fit(X)
    np.testing.assert_array_equal(a.scores_, b.scores_)
    assert a.flags_[400:].all() and a.flags_[:400].sum() <= 4
    assert ((a.scores_ > 0) & (a.scores_ < 1)).all()


def test_dbscan_noise_are_the_far_points():
    X = cloud_with_far_points()
    det = DBSCANNoiseDetector(min_samples=10).fit(X)
    assert det.flags_[400:].all() and det.flags_[:400].mean() < 0.02
    assert det.eps_ > 0 and det.memory_estimate_ > 0


def test_dbscan_sample_route():
    X = cloud_with_far_points()
    det = DBSCANNoiseDetector(min_samples=10, sample_size=200).fit(X)
    assert det.flags_[400:].all()


def test_dbscan_refuses_huge_neighbourhoods_without_allocating():
    X = np.random.default_rng(0).normal(size=(400_000, 2)).astype(np.float32)
    det = DBSCANNoiseDetector(min_samples=10, eps=100.0, memory_budget=4 * 1024**3)
    graph = NeighbourGraph(n_neighbors=10, progress=False)
    # a fake graph (the real one is slow to build here): only the representatives matter
    from descluster.outliers.duplicates import Collapse

    graph.X_rep_ = X
    graph.collapse_ = Collapse(np.arange(X.shape[0]), np.arange(X.shape[0]))
    graph.distances_ = np.ones((X.shape[0], 9), np.float32)
    graph.indices_ = np.zeros((X.shape[0], 9), np.int64)
    with pytest.raises(MemoryBudgetError) as err:
        det.fit(X, graph=graph)
    msg = str(err.value)
    assert "GiB" in msg and "sample_size=" in msg
    # 400k x 400k neighbours x 8 bytes = 1,164 GiB
    assert "1164" in msg.replace(",", "") or "1192" in msg.replace(",", "")


def test_knee_of_curve():
    y = np.r_[np.linspace(0, 1, 90), np.linspace(2, 20, 10)]
    assert 0.9 <= knee_of_curve(y) <= 2.0


@pytest.mark.parametrize("cls,param", [(KNNDistanceDetector, "n_neighbors"), (DBSCANNoiseDetector, "min_samples")])
def test_bad_parameter_named(cls, param):
    with pytest.raises(ParameterError, match=param):
        cls(**{param: 0}).fit(cloud_with_far_points())


def test_representative_lists_equal_a_fresh_search_among_representatives():
    rng = np.random.default_rng(4)
    base = rng.standard_normal((400, 6)).astype(np.float32)
    # 30 rows copied 1-4 times (exact and near duplicates) so groups shadow neighbours
    copies = [base[i] + rng.normal(0, 1e-6, (c, 6)).astype(np.float32) for i, c in zip(range(30), rng.integers(1, 5, 30))]
    X = np.vstack([base, *copies])
    g = NeighbourGraph(n_neighbors=8, progress=False, index="exact").fit(X)
    assert g.X_rep_.shape[0] == 400  # every copy merged into its original
    D, I = knn_search(g.X_rep_, 8, index="exact", progress=False)
    np.testing.assert_allclose(g.distances_, D, rtol=1e-5, atol=1e-6)
    assert np.mean(g.indices_ == I) > 0.99  # same neighbours (ties aside)
    assert "duplicate rows merged" in g.search_description_


def test_graph_on_leading_columns_only():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((300, 10)).astype(np.float32)
    g = NeighbourGraph(n_neighbors=5, progress=False, index="exact", max_dims=3).fit(X)
    assert g.n_features_used_ == 3 and g.X_rep_.shape[1] == 3
    D, _ = knn_search(np.ascontiguousarray(X[:, :3]), 5, index="exact", progress=False)
    np.testing.assert_allclose(g.distances_, D, rtol=1e-5)
    assert "leading 3 of 10 principal components" in g.search_description_


def test_forest_arrays_score_exactly_as_scikit_learn_and_survive_npz(tmp_path):
    """The saved tree arrays reproduce IsolationForest.score_samples (a round trip through .npz, no pickle)."""
    from sklearn.ensemble import IsolationForest

    from descluster.outliers.detectors import forest_arrays, forest_scores

    rng = np.random.default_rng(3)
    X = rng.normal(size=(800, 7)).astype(np.float32)
    est = IsolationForest(n_estimators=40, max_samples=128, max_features=0.6, random_state=1).fit(X)
    np.savez(tmp_path / "f.npz", **forest_arrays(est))
    with np.load(tmp_path / "f.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    Y = np.vstack([rng.normal(size=(300, 7)), rng.normal(size=(20, 7)) * 6]).astype(np.float32)
    s = forest_scores(arrays, Y)
    np.testing.assert_allclose(s, -est.score_samples(Y), rtol=0, atol=1e-12)
    assert s[300:].mean() > s[:300].mean()  # the spread-out rows are easier to isolate
    with pytest.raises(ParameterError, match="lacks the columns"):
        forest_scores(arrays, Y[:, :2])
