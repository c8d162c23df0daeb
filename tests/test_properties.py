"""Property-based tests: sweep and metrics never crash, never give a fake perfect score."""

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from descluster import metrics as M
from descluster.cluster import choose_k, sweep
from descluster.errors import ParameterError

values = st.one_of(
    st.sampled_from([0.0, 1.0, -1.0, 1e30, -1e30, 3.5]),
    st.floats(-1e3, 1e3, allow_nan=False, width=32),
)


@st.composite
def matrices(draw):
    n = draw(st.integers(3, 10))
    d = draw(st.integers(1, 4))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    X = draw(arrays(dtype, (n, d), elements=values))
    if draw(st.booleans()):  # duplicates
        X[n // 2:] = X[0]
    if draw(st.booleans()):  # a constant column
        X[:, 0] = 7.0
    return X


def _finite_or_reason(v: M.MetricValue):
    assert math.isfinite(v.value) or (math.isnan(v.value) and v.reason), v


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(matrices(), st.data())
def test_metrics_never_crash_nor_fake_perfect(X, data):
    n = X.shape[0]
    labels = np.array(data.draw(st.lists(st.integers(-1, 3), min_size=n, max_size=n)))
    s = M.cluster_stats(X, labels)
    ch, db = M.calinski_harabasz(X, labels, stats=s), M.davies_bouldin(X, labels, stats=s)
    sil = M.silhouette(X, labels, stats=s)
    for v in (ch, db, sil, M.inertia(X, labels, stats=s)):
        _finite_or_reason(v)
    if s.degenerate:
        assert math.isnan(db.value) and math.isnan(sil.value) and math.isnan(ch.value)
    assert not (db.value == 0.0) and not (sil.value == 1.0)
    assert math.isnan(sil.value) or -1.0 <= sil.value <= 1.0


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(matrices())
def test_sweep_never_crashes(X):
    res = sweep(X, "kmeans", ks=range(2, 5), stability_rows=None, silhouette_sample=50)
    assert res.labels.shape == (3, X.shape[0])
    t = res.table
    for col in ("calinski_harabasz", "davies_bouldin", "silhouette", "inertia"):
        bad = t[col].isna()
        assert (t.loc[bad, "reason"].str.len() > 0).all(), t[[col, "reason"]]
    assert not (t["davies_bouldin"] == 0).any() and not (t["silhouette"] == 1).any()
    try:
        k, reason = choose_k(t)
        assert k in t["k"].tolist() and reason
    except ParameterError as exc:
        assert "no valid k" in str(exc)
