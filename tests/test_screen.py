"""Screening (cluster/screen.py): the screened default gives the exhaustive study's answer on a planted case,
and the manifest/report record the sample and the intervals."""

import numpy as np
import pandas as pd
import pytest

from descluster.case import Case
from descluster.cluster.screen import pick_finalists, score_interval, stratified_sample
from descluster.config import RunConfig
from descluster.errors import ParameterError
from descluster.pipeline import fit_study, result_tables


def _planted(n=2400, k=4, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 8, (k, 6))
    truth = rng.integers(0, k, n)
    lat = centres[truth] + rng.normal(0, 1, (n, 6))
    desc = {f"d{j}": np.maximum(lat @ rng.normal(0, 1, (6, 16)) + rng.normal(0, 0.5, (n, 16)), 0).astype(np.float32)
            for j in range(2)}
    return Case.from_arrays(desc, [f"img{i}.jpg" for i in range(n)]), truth


BASE = dict(preprocessings=("standard", "l2"), algorithms=("kmeans", "gmm"), k_max=6, stability_rows=300,
            silhouette_sample=800, outliers=False, embedding="pca", screen_rows=1000, screen_bootstrap=20)


def test_screened_default_matches_exhaustive_and_records_sample():
    from sklearn.metrics import normalized_mutual_info_score

    case, truth = _planted()
    screened = fit_study(case, RunConfig.from_dict({}, **BASE), progress=False)
    exhaustive = fit_study(case, RunConfig.from_dict({}, screen=False, **BASE), progress=False)
    assert screened.recommended == exhaustive.recommended
    k = screened.choices[screened.recommended].k
    assert k == exhaustive.choices[exhaustive.recommended].k == 4  # the planted k
    np.testing.assert_array_equal(screened.choices[screened.recommended].labels,
                                  exhaustive.choices[exhaustive.recommended].labels)
    assert normalized_mutual_info_score(truth, screened.choices[screened.recommended].labels) > 0.95
    sc = screened.meta["screen"]
    assert sc["sample_rows"] == 1000 and sc["n_rows"] == 2400
    assert sc["intervals"] and all(r["low"] <= r["score"] + 1e-6 and r["score"] <= r["high"] + 1e-6
                                   for r in sc["intervals"] if r["score"] is not None and r["low"] is not None)
    assert any("stratified sample of 1,000 of 2,400 rows" in n for n in screened.notes)
    assert exhaustive.meta["screen"]["sample_rows"] is None
    assert "exhaustive" in exhaustive.meta["screen"]["note"]
    table = result_tables(screened)["screen.csv"]
    assert set(["configuration", "k", "score", "low", "high", "finalist"]) <= set(table.columns)
    assert "screen.csv" not in result_tables(exhaustive)


def test_small_case_is_not_screened():
    case, _ = _planted(n=1500)
    res = fit_study(case, RunConfig.from_dict({}, **{**BASE, "algorithms": ("kmeans",), "mixtures": False}),
                    progress=False)
    assert res.meta["screen"]["sample_rows"] is None and "not screened" in res.meta["screen"]["note"]


def test_stratified_sample_is_proportional_and_distinct():
    rng = np.random.default_rng(1)
    small = rng.normal(0, 1, (500, 5)) + 20  # a 5 % group far from the rest
    X = np.vstack([rng.normal(0, 1, (9500, 5)), small]).astype(np.float32)
    idx = stratified_sample({"a": X}, 1000, strata=8, random_state=0)
    assert idx.size == 1000 and np.unique(idx).size == 1000 and np.all(np.diff(idx) > 0)
    assert abs(int((idx >= 9500).sum()) - 50) <= 8  # proportional share of the small group
    np.testing.assert_array_equal(idx, stratified_sample({"a": X}, 1000, strata=8, random_state=0))
    assert stratified_sample({"a": X[:50]}, 100).size == 50
    with pytest.raises(ParameterError):
        stratified_sample({"a": X, "b": X[:10]}, 100)


def test_score_interval_contains_the_score_of_a_fixed_partition():
    rng = np.random.default_rng(2)
    lab = rng.integers(0, 4, 4000)
    ref = np.where(rng.random(4000) < 0.8, lab, rng.integers(0, 4, 4000))
    from descluster.recommend import consensus_nmi, label_free_score, size_balance

    score = label_free_score(0.9, size_balance(lab), 1.0, 4, consensus_nmi(lab, [ref]))
    lo, hi = score_interval(lab, [ref], 0.9, n_boot=50)
    assert lo <= score <= hi and hi - lo < 0.1


def test_pick_finalists_known_answer():
    t = pd.DataFrame({
        "descriptor": ["a", "a", "a", "a", "mix:a+b", "b"],
        "preprocessing": ["l2", "standard", "none", "l2", "l2", "l2"],
        "algorithm": ["kmeans", "kmeans", "kmeans", "gmm", "kmeans", "kmeans"],
        "score": [3.0, 2.0, 1.0, 2.5, 0.5, 2.9], "base_score": [3.0, 2.0, 1.0, 2.5, 0.5, 2.9],
        "score_low": [2.9, 1.9, 0.9, 2.4, 0.4, 2.8], "score_high": [3.1, 2.1, 1.1, 2.6, 0.6, 3.0]})
    why = pick_finalists(t, "kmeans", {"mix:a+b"}, scalers=2, algorithms=1, overall=3)
    assert list(why != "") == [True, True, False, True, False, True]
