import json

import numpy as np
import pandas as pd

from descluster.cache import Entry, StageCache, stable_hash


def test_stable_hash_ignores_key_order_and_numpy_scalars():
    assert stable_hash({"a": 1, "b": [1, 2]}) == stable_hash({"b": [1, 2], "a": np.int64(1)})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})


def test_get_or_compute_round_trip_and_second_call_is_a_hit(tmp_path):
    cache = StageCache(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return Entry(arrays={"x": np.arange(5, dtype=np.float32)},
                     tables={"t": pd.DataFrame({"k": [2, 3], "v": [0.1, 1 / 3]})}, meta={"k": 3})

    a = cache.get_or_compute("stage", {"p": 1}, compute)
    b = cache.get_or_compute("stage", {"p": 1}, compute)
    assert len(calls) == 1
    np.testing.assert_array_equal(a.arrays["x"], np.arange(5, dtype=np.float32))
    assert a.arrays["x"].dtype == np.float32
    pd.testing.assert_frame_equal(a.tables["t"], b.tables["t"])
    assert b.tables["t"]["v"].iloc[1] == 1 / 3  # float text round trip is exact
    assert b.meta == {"k": 3}
    cache.get_or_compute("stage", {"p": 2}, compute)
    assert len(calls) == 2


def test_interrupted_store_leaves_no_entry(tmp_path):
    cache = StageCache(tmp_path)

    class Boom(Exception):
        pass

    class BadFrame(pd.DataFrame):
        def to_csv(self, *a, **k):
            raise Boom()

    try:
        cache.store("s", "key", Entry(arrays={"x": np.ones(3)}, tables={"t": BadFrame({"a": [1]})}))
    except Boom:
        pass
    assert cache.load("s", "key") is None
    assert not any(p.name == "key" for p in (tmp_path / "s").iterdir())


def test_corrupt_entry_is_recomputed(tmp_path):
    cache = StageCache(tmp_path)
    e = cache.get_or_compute("s", {}, lambda: Entry(meta={"v": 1}))
    d = next((tmp_path / "s").iterdir())
    (d / "meta.json").write_text("{not json")
    e2 = cache.get_or_compute("s", {}, lambda: Entry(meta={"v": 2}))
    assert e.meta == {"v": 1} and e2.meta == {"v": 2}
    assert json.loads((d / "meta.json").read_text())["meta"] == {"v": 2}


def test_disabled_cache_always_computes():
    cache = StageCache(None)
    n = []
    for _ in range(2):
        cache.get_or_compute("s", {}, lambda: (n.append(1), Entry())[1])
    assert len(n) == 2
