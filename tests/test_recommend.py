import numpy as np
import pandas as pd
import pytest

from descluster.errors import NoUsableClusteringError

from descluster.recommend import build_comparison, label_free_score, recommend, size_balance
from descluster.results import Choice, ReducedSpace, SpaceId


def test_size_balance_known_values():
    assert size_balance(np.array([0, 0, 1, 1])) == pytest.approx(1.0)
    # sizes 3 and 1: H = -(.75 ln .75 + .25 ln .25) = 0.5623; / ln 2 = 0.8113
    assert size_balance(np.array([0, 0, 0, 1])) == pytest.approx(0.811278, abs=1e-6)
    assert np.isnan(size_balance(np.array([0, 0, 0])))
    assert np.isnan(size_balance(np.array([-1, -1, 0])))


def test_score_is_nan_for_degenerate_and_grows_with_k():
    assert np.isnan(label_free_score(np.nan, 1.0, 1.0, 3))
    assert np.isnan(label_free_score(0.9, 1.0, 1.0, 1))
    assert label_free_score(0.9, 1.0, 1.0, 8) == pytest.approx(0.9 * 3)
    assert label_free_score(0.9, 1.0, 1.0, 8) > label_free_score(0.9, 1.0, 1.0, 2)


def _choice(desc, k, stability, labels):
    sweep = pd.DataFrame({"k": [k], "stability": [stability], "calinski_harabasz": [1.0], "reason": [""]})
    return Choice(SpaceId.single(desc, "standard"), "kmeans", k, np.asarray(labels), "rule", sweep)


def _spaces(names, n):
    return {f"{d}/standard": ReducedSpace(SpaceId.single(d, "standard"), np.zeros((n, 2), np.float32), np.array([0.6, 0.4]), 2, 0.9)
            for d in names}


def test_recommend_marks_exactly_one_row_and_ignores_labels():
    n = 60
    truth = np.repeat([0, 1, 2], 20)
    other = np.tile([0, 1, 2, 3], 15)
    # a: matches the truth perfectly but is unstable; b and c: stable, agree with each other, unrelated to truth.
    choices = {"a/standard/kmeans": _choice("a", 3, 0.2, truth),
               "b/standard/kmeans": _choice("b", 4, 0.95, other),
               "c/standard/kmeans": _choice("c", 4, 0.90, other)}
    table = build_comparison(choices, _spaces("abc", n), {"vehicle_type": truth}, None)
    key, text, table = recommend(table)
    assert key == "b/standard/kmeans"  # labels never steer the recommendation
    assert table["recommended"].sum() == 1
    assert table.loc[table["descriptor"] == "a", "nmi_vehicle_type"].iloc[0] == pytest.approx(1.0)
    assert "c/standard/kmeans" in text


def test_consensus_prefers_structure_other_descriptors_confirm():
    n = 120
    rng = np.random.default_rng(0)
    shape = np.repeat(np.arange(6), 20)
    shape_noisy = np.where(rng.random(n) < 0.1, rng.integers(0, 6, n), shape)
    colour = rng.permutation(np.repeat(np.arange(6), 20))  # independent of shape
    # colour is the most stable on its own, but neither CNN-like kind confirms it.
    choices = {"colour/standard/kmeans": _choice("colour", 6, 0.99, colour),
               "cnn1/standard/kmeans": _choice("cnn1", 6, 0.80, shape),
               "cnn2/standard/kmeans": _choice("cnn2", 6, 0.80, shape_noisy)}
    table = build_comparison(choices, _spaces(["colour", "cnn1", "cnn2"], n), {}, None)
    base = dict(zip(table["descriptor"], table["base_score"]))
    assert base["colour"] > base["cnn1"]  # without consensus colour would win
    cons = dict(zip(table["descriptor"], table["consensus"]))
    assert cons["cnn1"] > 0.35 and cons["colour"] < 0.1  # mean of (agreeing cnn, independent colour)
    key, _, _ = recommend(table)
    assert key.startswith("cnn")


def test_consensus_is_neutral_with_one_descriptor():
    labels = np.repeat([0, 1], 10)
    table = build_comparison({"a/standard/kmeans": _choice("a", 2, 0.9, labels)}, _spaces("a", 20), {}, None)
    assert table["consensus"].iloc[0] == 1.0
    assert table["score"].iloc[0] == pytest.approx(table["base_score"].iloc[0])


def test_recommend_refuses_when_everything_is_degenerate():
    table = pd.DataFrame({"descriptor": ["a"], "preprocessing": ["s"], "algorithm": ["k"], "score": [np.nan],
                          "k": [0], "k_reason": ["no usable clustering: every point is noise"]})
    with pytest.raises(NoUsableClusteringError, match=r"a/s/k: k=0, no usable clustering: every point is noise"):
        recommend(table)
