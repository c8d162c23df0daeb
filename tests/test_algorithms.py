"""Tests of descluster.cluster.algorithms: every adapter recovers blobs, samples, validates."""

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from descluster.cluster.algorithms import ALGORITHMS, GMMAdapter, HDBSCANAdapter, KMeansAdapter, WardAdapter, check_k, make_algorithm
from descluster.cluster.context import SweepContext
from descluster.errors import MemoryBudgetError, ParameterError


def _make(name, k=4, **params):
    return make_algorithm(name, random_state=0, **({"n_clusters": k} if ALGORITHMS[name].needs_k else {}), **params)


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(1200, 8, centers=4, cluster_std=0.6, random_state=3)
    return X.astype(np.float32), y


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_each_algorithm_recovers_blobs(blobs, name):
    X, y = blobs
    algo = _make(name)
    labels = algo.fit_predict(X)
    assert labels.shape == (X.shape[0],) and labels.dtype == np.int64
    assert np.array_equal(algo.labels_, labels)
    assert adjusted_rand_score(y, labels) > 0.99
    assert algo.cluster_centers_.shape == (4, X.shape[1]) and algo.cluster_centers_.dtype == np.float32
    assert isinstance(algo.n_iter_, int)
    again = _make(name).fit_predict(X)
    assert np.array_equal(labels, again)  # fixed random_state: reproducible
    assert np.array_equal(algo.predict(X), labels)  # predict labels the fitted rows as the fit did


def test_kmeans_sample_seeded_path_uses_all_rows(blobs):
    X, y = blobs
    km = KMeansAdapter(4, init_sample=200)
    labels = km.fit_predict(X)
    assert adjusted_rand_score(y, labels) > 0.99 and km.sample_size_ == X.shape[0]
    d2 = ((X[:, None, :] - km.cluster_centers_[None]) ** 2).sum(-1)
    assert np.array_equal(labels, d2.argmin(1))  # Lloyd fixed point on all rows
    assert km.inertia_ == pytest.approx(float(d2.min(1).sum()), rel=1e-4)


def test_sampled_fit_is_extended(blobs):
    X, y = blobs
    g = GMMAdapter(4, max_fit_rows=300)
    labels = g.fit_predict(X)
    assert g.extended_ and g.sample_size_ == 300 and np.isfinite(g.bic_)
    assert adjusted_rand_score(y, labels) > 0.99
    context = SweepContext(X)
    w = WardAdapter(4, max_fit_rows=300)
    assert adjusted_rand_score(y, w.fit_predict(X, context=context)) > 0.99 and w.extended_
    z = w.linkage_
    w3 = WardAdapter(3, max_fit_rows=300).fit(X, context=context)
    assert w3.linkage_ is z  # the tree is per matrix, kept in the sweep context across k
    assert [key for key in context.computed if key[0] == "ward_linkage"] == [("ward_linkage", 300, 0)]
    assert WardAdapter(3, max_fit_rows=300).fit(X.copy()).linkage_ is not z  # no context: built afresh
    with pytest.raises(ParameterError, match="context"):
        WardAdapter(3).fit(X + 1.0, context=context)  # a context belongs to one matrix


def test_hdbscan_noise_and_outlier_scores(blobs):
    X, _ = blobs
    Xn = np.vstack([X, np.full((5, X.shape[1]), 60.0, np.float32) + np.arange(5, dtype=np.float32)[:, None] * 9])
    h = HDBSCANAdapter(min_cluster_size=20)
    labels = h.fit_predict(Xn)
    assert np.array_equal(h.predict(Xn), labels)  # own rows: nearest fitted row is itself
    assert np.all(labels[-5:] == -1) and h.noise_share_ == pytest.approx(np.mean(labels < 0))
    assert h.outlier_scores_.shape == (Xn.shape[0],)
    assert h.outlier_scores_[-5:].min() > np.median(h.outlier_scores_)
    hs = HDBSCANAdapter(min_cluster_size=20, max_fit_rows=400)
    lab_s = hs.fit_predict(Xn)
    assert hs.extended_ and hs.outlier_scores_ is None and lab_s.shape == (Xn.shape[0],)


def test_hdbscan_projects_wide_input_and_predicts_in_the_same_space(blobs):
    X, y = blobs
    rng = np.random.default_rng(0)
    wide = np.hstack([X, 0.01 * rng.standard_normal((X.shape[0], 40)).astype(np.float32)])  # 48 columns
    h = HDBSCANAdapter(min_cluster_size=20, max_dims=5, max_fit_rows=600)
    labels = h.fit_predict(wide)
    assert h.projection_ is not None and h.projection_.n_components_ == 5
    assert h.extended_ and adjusted_rand_score(y[labels >= 0], labels[labels >= 0]) > 0.99
    assert np.mean(labels >= 0) > 0.9
    narrow = HDBSCANAdapter(min_cluster_size=20, max_dims=8)
    narrow.fit_predict(X)
    assert narrow.projection_ is None  # 8 columns: no projection
    with pytest.raises(ParameterError, match="max_dims"):
        HDBSCANAdapter(max_dims=1).fit(X)


def test_ward_refuses_over_budget():
    X = np.random.default_rng(0).standard_normal((1000, 3))
    with pytest.raises(MemoryBudgetError, match=r"1,000 rows needs about"):
        WardAdapter(2, memory_budget=1_000_000).fit_predict(X)


def test_k_validation_names_range():
    X = np.repeat(np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]), 4, axis=0)
    with pytest.raises(ParameterError, match=r"k = 1 is outside the valid range 2\.\.12"):
        check_k(X, 1)
    with pytest.raises(ParameterError, match=r"distinct rows \(3\)"):
        KMeansAdapter(4).fit_predict(X)
    assert check_k(X, 3) == 3
    with pytest.raises(ParameterError, match="integer"):
        check_k(X, 2.5)


def test_parameters_are_validated_in_fit_and_clone_works(blobs):
    X, _ = blobs
    with pytest.raises(ParameterError, match="unknown"):
        make_algorithm("dbscan")
    bad = KMeansAdapter(n_init=0)  # __init__ stores parameters unchanged (scikit-learn convention)
    assert bad.n_init == 0
    with pytest.raises(ParameterError, match="n_init"):
        bad.fit(X)
    with pytest.raises(ParameterError, match="tol"):
        KMeansAdapter(tol=0).fit(X)
    with pytest.raises(ParameterError, match="min_cluster_size"):
        HDBSCANAdapter(min_cluster_size=1).fit(X)
    with pytest.raises(ParameterError, match="n_clusters"):
        GMMAdapter(n_clusters=0).fit(X)
    from sklearn.base import clone

    for name, cls in ALGORITHMS.items():
        est = _make(name, max_fit_rows=500) if name not in ("kmeans", "minibatch_kmeans") else _make(name)
        twin = clone(est)
        assert twin is not est and twin.get_params() == est.get_params()
        assert not hasattr(twin, "labels_")


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_scikit_learn_estimator_checks(name):
    """scikit-learn's own estimator checks on every adapter (``check_estimator``).

    Skipped checks, where scikit-learn's conventions and the adapters' contract differ on
    purpose: none beyond the ones listed in ``EXPECTED`` (with the reason).
    """
    from sklearn.utils.estimator_checks import check_estimator

    est = _make(name, k=3)
    failed = check_estimator(est, expected_failed_checks=EXPECTED.get(name, {}), on_fail=None)
    bad = [r for r in failed if r["status"] == "failed"]
    assert not bad, [(r["check_name"], str(r["exception"])[:200]) for r in bad]


#: Checks an adapter is expected to fail, with the reason (none so far).
EXPECTED: dict[str, dict[str, str]] = {}


def test_gmm_that_does_not_converge_says_so_in_converged_not_on_the_console(monkeypatch):
    import warnings
    from functools import partial

    import sklearn.mixture
    from descluster.cluster.algorithms import make_algorithm

    X = np.random.default_rng(0).normal(size=(400, 4)).astype(np.float32)
    monkeypatch.setattr(sklearn.mixture, "GaussianMixture", partial(sklearn.mixture.GaussianMixture, max_iter=1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning that escaped would fail here
        gmm = make_algorithm("gmm", n_clusters=5).fit(X)
    assert gmm.converged_ is False and gmm.n_iter_ == 1 and gmm.labels_.shape == (400,)
    monkeypatch.undo()
    assert make_algorithm("gmm", n_clusters=2).fit(X).converged_ is True
