"""Tests of descluster.metrics: agreement with scikit-learn, hand-checked values, degenerate input."""

import math

import numpy as np
import pytest
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits
from sklearn.datasets import make_blobs
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

from descluster import metrics as M
from descluster.errors import ParameterError


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(1500, 12, centers=4, cluster_std=3.0, random_state=1)
    return X, y


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_ch_db_equal_sklearn(blobs, dtype):
    X, y = blobs
    X = X.astype(dtype)
    s = M.cluster_stats(X, y, chunk_rows=97)  # many chunks, last one partial
    assert M.calinski_harabasz(X, y, stats=s).value == pytest.approx(calinski_harabasz_score(X, y), rel=1e-6)
    assert M.davies_bouldin(X, y, stats=s).value == pytest.approx(davies_bouldin_score(X, y), rel=1e-6)


def test_streaming_on_memmap(blobs, tmp_path):
    X, y = blobs
    path = tmp_path / "x.npy"
    np.save(path, X.astype(np.float32))
    mm = np.load(path, mmap_mode="r")
    got = M.internal_scores(mm, y, chunk_rows=128)
    assert got["calinski_harabasz"].value == pytest.approx(calinski_harabasz_score(mm, y), rel=1e-6)
    km = KMeans(4, n_init=1, random_state=0).fit(X)
    # inertia with the fitted centres equals KMeans' own objective
    val = M.inertia(mm, km.labels_, centroids=km.cluster_centers_, chunk_rows=100).value
    assert val == pytest.approx(km.inertia_, rel=1e-5)


def test_noise_is_excluded(blobs):
    X, y = blobs
    lab = y.copy()
    lab[::7] = -1
    keep = lab >= 0
    assert M.calinski_harabasz(X, lab).value == pytest.approx(calinski_harabasz_score(X[keep], lab[keep]), rel=1e-9)
    assert M.silhouette(X, lab).value == pytest.approx(silhouette_score(X[keep], lab[keep]), abs=1e-9)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-9), (np.float32, 1e-5)])
def test_silhouette_exact_matches_sklearn(blobs, dtype, tol):
    X, y = blobs
    X = X.astype(dtype)
    v = M.silhouette(X, y, sample_size=5000)
    assert not v.sampled and v.sample_size == X.shape[0]
    assert v.value == pytest.approx(silhouette_score(X.astype(np.float64), y), abs=tol)


def test_silhouette_sample_is_fixed_and_exact_on_its_rows(blobs):
    X, y = blobs
    sample = M.SilhouetteSample(X, sample_size=300, random_state=0)
    rows = sample.rows_
    assert sample.sampled_ and rows.size == 300 and np.all(np.diff(rows) > 0)
    np.testing.assert_array_equal(rows, M.SilhouetteSample(X, 300, random_state=0).rows_)  # fixed seed
    for lab in (y, (np.arange(X.shape[0]) % 10 == 0).astype(int)):  # two labellings, the same rows
        v = M.silhouette(X, lab, sample=sample)
        assert v.sampled and v.sample_size == 300
        assert v.value == pytest.approx(silhouette_score(X[rows].astype(np.float64), lab[rows]), abs=1e-6)
        assert v.value == M.silhouette(X, lab, sample_size=300).value  # built on the fly: same sample
    noisy = y.copy()
    noisy[::3] = -1  # noise rows in the sample are dropped, not counted
    v = M.silhouette(X, noisy, sample=sample)
    keep = noisy[rows] >= 0
    assert v.sample_size == int(keep.sum())
    assert v.value == pytest.approx(silhouette_score(X[rows][keep].astype(np.float64), noisy[rows][keep]), abs=1e-6)
    with pytest.raises(ParameterError, match="rows"):
        M.silhouette(X[:100], y[:100], sample=sample)


def test_degenerate_inputs_give_nan_with_reason():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 3))
    cases = {
        "single cluster": np.zeros(20, int),
        "all points are noise": np.full(20, -1),
        "every point its own cluster": np.arange(20),
    }
    for reason, lab in cases.items():
        for fn in (M.calinski_harabasz, M.davies_bouldin, M.silhouette):
            v = fn(X, lab)
            assert math.isnan(v.value) and v.reason == reason, (fn.__name__, reason, v)
    # fewer distinct points than clusters: rows a, b, a, b ... in 3 clusters
    Xd = np.array([[0.0, 0.0], [1.0, 1.0]] * 5)
    lab = np.array([0, 1, 0, 1, 2, 2, 0, 1, 0, 1])
    for fn in (M.calinski_harabasz, M.davies_bouldin, M.silhouette):
        v = fn(Xd, lab)
        assert math.isnan(v.value) and v.reason == "fewer distinct points (2) than clusters (3)"


def test_coincident_centroids_not_zero_or_huge():
    # cluster 0 = {(-1,0),(1,0)}, cluster 1 = {(0,-1),(0,1)}: both centroids are (0,0)
    X = np.array([[-1.0, 0], [1, 0], [0, -1], [0, 1]])
    lab = np.array([0, 0, 1, 1])
    db = M.davies_bouldin(X, lab)
    assert math.isnan(db.value) and db.reason == "coincident centroids"
    ch = M.calinski_harabasz(X, lab)
    assert math.isnan(ch.value) and ch.reason == "coincident centroids"


def test_zero_spread_is_not_perfect():
    X = np.array([[0.0, 0], [0, 0], [5, 5], [5, 5], [9, 0], [9, 0]])
    lab = np.array([0, 0, 1, 1, 2, 2])
    for fn in (M.davies_bouldin, M.silhouette, M.calinski_harabasz):
        v = fn(X, lab)
        assert math.isnan(v.value) and v.reason == "zero within-cluster spread"


def test_inertia_empty_cluster_and_bad_centroids():
    X = np.array([[0.0], [2.0], [10.0]])
    # centres 1 and 10: (0-1)^2 + (2-1)^2 + 0 = 2; third centre unused
    v = M.inertia(X, np.array([0, 0, 1]), centroids=np.array([[1.0], [10.0], [50.0]]))
    assert v.value == 2.0 and v.reason == "empty cluster"
    with pytest.raises(ParameterError, match="centroids has 2 rows"):
        M.inertia(X, np.array([0, 0, 2]), centroids=np.array([[1.0], [10.0]]))


def test_shape_errors_name_shapes():
    with pytest.raises(ParameterError, match=r"\(5,\)"):
        M.calinski_harabasz(np.zeros((5, 2)), np.zeros(4, int))


def test_external_scores_by_hand():
    # clusters {0,1} {2,3}; truth {0,1,2} {3}
    # contingency [[2,0],[1,1]]: sum C(nij,2) = 1; rows C = 1+1 = 2; cols C = 3+0 = 3; C(4,2) = 6
    # expected = 2*3/6 = 1, max = 2.5  ->  ARI = (1-1)/(2.5-1) = 0
    # H(C) = ln 2 = 0.693147; H(T) = -(.75 ln .75 + .25 ln .25) = 0.562335
    # MI = .5 ln(.5/.375) + .25 ln(.25/.375) + .25 ln(.25/.125) = 0.215762
    # NMI (arithmetic) = 0.215762 / 0.627741 = 0.343715; purity = (2 + 1) / 4 = 0.75
    got = M.external_scores(np.array([0, 0, 1, 1]), np.array(["a", "a", "a", "b"]))
    assert got["ari"] == pytest.approx(0.0, abs=1e-12)
    assert got["nmi"] == pytest.approx(0.343715, abs=1e-5)
    assert got["purity"] == 0.75
    # a relabelled perfect clustering scores 1 everywhere
    perfect = M.external_scores(np.array([5, 5, 2, 2, -1]), np.array([1, 1, 0, 0, 9]))
    assert perfect == {"ari": 1.0, "nmi": 1.0, "purity": 1.0}


def test_external_noise_is_its_own_cluster():
    # noise rows {2,3} form one "cluster" with truth {a,b}: purity = (2 + 1) / 4
    got = M.external_scores(np.array([0, 0, -1, -1]), np.array(["a", "a", "a", "b"]))
    assert got["purity"] == 0.75


def test_identity_share_by_hand():
    labels = np.array([0, 0, 1, 1, 2, 3, -1, -1])
    ids = np.array(["a", "a", "b", "c", "c", "d", "e", "e"])
    # multi-image identities: a (together), c (split 1/2), e (all noise -> split); b, d single
    v = M.identity_share(labels, ids)
    assert v.value == pytest.approx(1 / 3) and v.sample_size == 3
    assert math.isnan(M.identity_share(np.array([0, 1]), np.array(["a", "b"])).value)


def test_stability_separated_vs_structureless():
    X, _ = make_blobs(2000, 5, centers=3, cluster_std=0.5, random_state=0)

    def fit(k):
        def run(Xs):
            with threadpool_limits(limits=1):  # tiny fits: threads only add overhead
                return KMeans(k, n_init=3, random_state=0).fit_predict(Xs)
        return run

    good = M.stability(X, fit(3), subsample=500, eval_size=500)
    assert good.value > 0.99 and good.sampled and good.sample_size == 500
    U = np.random.default_rng(0).uniform(size=(2000, 5))
    assert M.stability(U, fit(9), subsample=500, eval_size=500).value < good.value - 0.1
    assert math.isnan(M.stability(X[:10], fit(2)).value)


def test_count_distinct_rows():
    X = np.array([[1.0, 2], [1, 2], [3, 4], [1e30, 1], [1e30, 2]], dtype=np.float32)
    assert M.count_distinct_rows(X) == 4  # huge values overflow the projection: exact fallback
    assert M.count_distinct_rows(np.zeros((7, 3))) == 1
