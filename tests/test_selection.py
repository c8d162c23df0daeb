"""Tests of descluster.cluster.sweep and .selection: the per-k table and the choice of k."""

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs

from descluster.cluster import TABLE_COLUMNS, choose_k, kneedle, sweep
from descluster.errors import ParameterError


def test_kneedle_by_hand():
    # y = 1/x on x = 1..10: x_n = (x-1)/9, y_n = (1/x - 0.1)/0.9; (1 - x_n) - y_n is
    # 0.444 at x=2, 0.519 at x=3, 0.500 at x=4 -> knee at x = 3 (index 2)
    x = np.arange(1, 11)
    assert kneedle(x, 1.0 / x) == 2
    assert kneedle(x, np.ones(10)) == 0
    with pytest.raises(ParameterError):
        kneedle([1], [1])


@pytest.mark.parametrize("k_true", [3, 5, 8])
def test_choose_k_finds_true_k_on_blobs(k_true):
    X, _ = make_blobs(800, 10, centers=k_true, cluster_std=1.0, random_state=k_true)
    res = sweep(X.astype(np.float32), "kmeans", ks=range(2, 14), stability_rows=300, silhouette_sample=800)
    k, reason = choose_k(res.table)
    assert k == k_true, reason
    assert "knee" in reason and "Runners-up" in reason


def test_sweep_table_and_labels():
    X, y = make_blobs(600, 4, centers=3, random_state=0)
    seen = []
    res = sweep(X, "kmeans", ks=[2, 3, 4], stability_rows=None, on_labels=lambda k, lab, a: seen.append(k))
    assert list(res.table.columns) == TABLE_COLUMNS
    assert res.table["k"].tolist() == [2, 3, 4] and seen == [2, 3, 4]
    assert res.labels.shape == (3, 600) and res.labels.dtype == np.int32
    assert np.array_equal(res.table["n_clusters"], [2, 3, 4])
    lab3 = res.labels_for(3)
    assert np.bincount(lab3).min() == res.table.loc[1, "min_cluster_size"]
    assert res.centroids[4].shape == (4, 4)
    assert res.table["stability"].isna().all()  # not computed, and not a "reason"
    assert (res.table["reason"] == "").all()


def test_sweep_records_failures_and_continues():
    # 3 distinct rows, each repeated 10 times: k = 4, 5 are impossible; k = 3 has zero spread
    X = np.repeat(np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 7.0]]), 10, axis=0)
    res = sweep(X, "kmeans", ks=[2, 3, 4, 5], stability_rows=None)
    t = res.table.set_index("k")
    assert np.isfinite(t.loc[2, "calinski_harabasz"])
    assert math.isnan(t.loc[3, "davies_bouldin"]) and "zero within-cluster spread" in t.loc[3, "reason"]
    for k in (4, 5):
        assert math.isnan(t.loc[k, "silhouette"]) and "distinct rows (3)" in t.loc[k, "reason"]
        assert (res.labels_for(k) == -1).all()
    k, reason = choose_k(res.table)
    assert k == 2 and "only valid k" in reason


def test_sweep_hdbscan_single_row():
    X, _ = make_blobs(500, 3, centers=3, cluster_std=0.4, random_state=2)
    res = sweep(X, "hdbscan", stability_rows=200)
    assert len(res.table) == 1 and res.table.loc[0, "k"] == 3
    assert choose_k(res.table)[0] == 3


def test_sweep_parameter_errors():
    X = np.zeros((10, 2))
    with pytest.raises(ParameterError, match="stability_rows"):
        sweep(X, "kmeans", stability_rows=3)
    with pytest.raises(ParameterError, match="ks is empty"):
        sweep(X, "kmeans", ks=[])
    with pytest.raises(ParameterError, match="unknown"):
        sweep(X, "nope")


def _table(rows):
    cols = ["k", "calinski_harabasz", "davies_bouldin", "silhouette", "inertia", "stability",
            "n_clusters", "min_cluster_size", "n_clustered"]
    return pd.DataFrame(rows, columns=cols)


def test_choose_k_skips_tiny_splits_and_below_knee():
    # k=2 has the best scores everywhere but sits left of the knee (inertia falls a lot to 4);
    # k=5 only wins by splitting off 3 rows (3 < 10 % of 1000/5)
    t = _table([
        [2, 900, 0.8, 0.50, 1000, 0.9, 2, 400, 1000],
        [3, 700, 1.0, 0.40, 600, 0.8, 3, 300, 1000],
        [4, 800, 0.9, 0.45, 300, 0.9, 4, 200, 1000],
        [5, 990, 0.5, 0.60, 280, 1.0, 5, 3, 1000],
        [6, 600, 1.2, 0.35, 270, 0.7, 6, 100, 1000],
        [7, 500, 1.3, 0.30, 260, 0.6, 7, 90, 1000],
    ])
    k, reason = choose_k(t)
    assert k == 4, reason
    assert "k [5] dropped" in reason


def test_choose_k_no_valid_k_raises():
    t = _table([[2, np.nan, np.nan, np.nan, 1.0, np.nan, 2, 1, 4]])
    t["reason"] = "silhouette: single cluster"
    with pytest.raises(ParameterError, match="no valid k.*single cluster"):
        choose_k(t)
    with pytest.raises(ParameterError, match="tiny_share"):
        choose_k(t, tiny_share=1.5)


def _demo_case() -> Path | None:
    for cand in (os.environ.get("DESCLUSTER_DEMO_CASE"), "data/tiny-vehicles", "/tmp/demo_case"):
        if cand and list(Path(cand).glob("descriptors/*.npy")) and (Path(cand) / "labels.csv").exists():
            return Path(cand)
    return None


@pytest.mark.slow
@pytest.mark.skipif(_demo_case() is None, reason="demo descriptors not extracted")
def test_demo_cnn_descriptors_choice_is_not_trivial():
    """Evaluation, not tuning: the rule never sees the labels; NMI is computed afterwards."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    from descluster.metrics import external_scores

    case = _demo_case()
    paths = pd.read_csv(case / "images_paths.csv")["paths"].str.replace("\\", "/", regex=False)
    truth = pd.read_csv(case / "labels.csv").set_index("path").loc[paths, "vehicle_type"].to_numpy()
    cnn = [p for p in sorted((case / "descriptors").glob("*.npy")) if "hist" not in p.stem and "colour" not in p.stem]
    assert cnn
    for p in cnn:
        X = np.load(p).astype(np.float32)
        Z = PCA(100, random_state=0).fit_transform(StandardScaler().fit_transform(X)).astype(np.float32)
        res = sweep(Z, "kmeans", ks=range(2, 31), stability_rows=1000, silhouette_sample=3000)
        k, reason = choose_k(res.table)
        assert k > 2, reason
        assert external_scores(res.labels_for(k), truth)["nmi"] >= 0.5, (p.stem, k, reason)
