"""``descluster convert CASE --to zarr`` (issue 18): round trip, rerun, stale stores, bad input through the CLI,
and the :class:`~descluster.io.zarr_store.ZarrDescriptor` reader that case loading returns for a ``.zarr`` kind."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

pytest.importorskip("zarr")

from descluster.cache import array_digest  # noqa: E402
from descluster.case import load_case  # noqa: E402
from descluster.cli import main  # noqa: E402
from descluster.errors import CaseError  # noqa: E402
from descluster.io.zarr_store import ZarrDescriptor, convert_case, convert_descriptor  # noqa: E402


def _case(root, n=1000, seed=0, b_rows=None):
    """A case with ``a.npy`` (float32, 24 columns) and ``b.pickle`` (float64, 9 columns)."""
    rng = np.random.default_rng(seed)
    (root / "descriptors").mkdir(parents=True, exist_ok=True)
    a = rng.normal(size=(n, 24)).astype(np.float32)
    b = rng.normal(size=(b_rows or n, 9)) * 1e3
    np.save(root / "descriptors" / "a.npy", a)
    with open(root / "descriptors" / "b.pickle", "wb") as fh:
        pickle.dump(b, fh)
    (root / "images_paths.csv").write_text("paths\n" + "".join(f"cam/{i:05d}.jpg\n" for i in range(n)))
    return a, b


def _leftovers(root):
    return sorted(p.name for p in (root / "descriptors").iterdir() if p.name.endswith(".tmp"))


def test_round_trip_rerun_and_loading(tmp_path, capsys):
    a, b = _case(tmp_path)
    assert main(["convert", str(tmp_path), "--chunk-rows", "300"]) == 0
    out = capsys.readouterr().out
    assert "a: converted 1,000 x 24" in out and "b: converted 1,000 x 9" in out
    za, zb = ZarrDescriptor(tmp_path / "descriptors" / "a.zarr"), ZarrDescriptor(tmp_path / "descriptors" / "b.zarr")
    assert za.shape == (1000, 24) and za.chunk_rows == 300 and za.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(za), a)  # exactly the source's values
    np.testing.assert_array_equal(np.asarray(zb), b.astype(np.float32))  # the loaders' float32 cast
    assert za.digest == array_digest(a) and zb.digest == array_digest(b.astype(np.float32))
    assert za.record["source"] == "a.npy" and za.bad_rows.size == 0

    stamp = os.stat(tmp_path / "descriptors" / "a.zarr" / "zarr.json").st_mtime_ns
    assert main(["convert", str(tmp_path)]) == 0  # rerun: both kinds current
    assert capsys.readouterr().out.count("up to date, skipped") == 2
    assert os.stat(tmp_path / "descriptors" / "a.zarr" / "zarr.json").st_mtime_ns == stamp

    case = load_case(tmp_path)
    assert isinstance(case.descriptors["a"], ZarrDescriptor)
    assert case.descriptor_files["a"].name == "a.zarr" and case.descriptor_files["b"].name == "b.zarr"
    np.testing.assert_array_equal(case.descriptors["b"][10:20], b[10:20].astype(np.float32))


def test_changed_source_is_read_until_converted_again(tmp_path, capsys):
    a, _ = _case(tmp_path)
    convert_case(tmp_path, show_progress=False)
    a2 = a + 1
    np.save(tmp_path / "descriptors" / "a.npy", a2)
    case = load_case(tmp_path)  # the store is stale: the source is read, with a note
    assert case.descriptor_files["a"].name == "a.npy" and case.descriptor_files["b"].name == "b.zarr"
    assert any("older version" in n and "descluster convert" in n for n in case.notes)
    np.testing.assert_array_equal(np.asarray(case.descriptors["a"]), a2)
    res = {r.kind: r.status for r in convert_case(tmp_path, show_progress=False)}
    assert res == {"a": "converted", "b": "skipped"}
    np.testing.assert_array_equal(np.asarray(ZarrDescriptor(tmp_path / "descriptors" / "a.zarr")), a2)


def test_store_without_source_and_bad_rows(tmp_path):
    a, _ = _case(tmp_path, n=400)
    a[[7, 300], 3] = np.nan
    np.save(tmp_path / "descriptors" / "a.npy", a)
    convert_case(tmp_path, show_progress=False)
    (tmp_path / "descriptors" / "a.npy").unlink()  # a complete store stands on its own
    with pytest.raises(CaseError, match=r"a\.zarr has 2 row\(s\) with NaN/inf: row 7"):
        load_case(tmp_path)
    case = load_case(tmp_path, drop_bad_rows=True)
    assert case.dropped_rows == [7, 300] and case.descriptors["a"].shape == (398, 24)
    np.testing.assert_array_equal(np.asarray(case.descriptors["a"]), np.delete(a, [7, 300], axis=0))


def test_interrupted_conversion_leaves_no_store(tmp_path):
    _case(tmp_path)

    def stop(done, total):
        if done >= 200:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        convert_descriptor(tmp_path / "descriptors" / "a.npy", chunk_rows=100, progress=stop)
    assert not (tmp_path / "descriptors" / "a.zarr").exists() and _leftovers(tmp_path) == []
    assert convert_descriptor(tmp_path / "descriptors" / "a.npy", chunk_rows=100).status == "converted"


def test_reader_indexing_matches_numpy(tmp_path):
    a, _ = _case(tmp_path, n=700)
    convert_descriptor(tmp_path / "descriptors" / "a.npy", chunk_rows=64)
    z = ZarrDescriptor(tmp_path / "descriptors" / "a.zarr")
    idx = np.array([650, 3, 3, 0, 699, 128])
    mask = np.zeros(700, bool)
    mask[[5, 64, 65]] = True
    for key in (slice(60, 130), idx, mask, (idx, slice(2, 5)), (slice(None), 7), 5, -1, np.array([-2])):
        np.testing.assert_array_equal(z[key], a[key])
    assert len(z) == 700 and z.ndim == 2 and pickle.loads(pickle.dumps(z)).shape == (700, 24)


@pytest.mark.parametrize("damage, named, says", [
    ("rows", "b.pickle", "has 999 rows but the case has 1,000"),
    ("dtype", "a.npy", "not real-valued numeric"),
    ("truncated", "a.npy", "truncated"),
    ("store", "a.zarr", "not a Zarr array"),
])
def test_bad_input_exits_2_naming_the_file(tmp_path, capsys, damage, named, says):
    _case(tmp_path, b_rows=999 if damage == "rows" else None)
    f = tmp_path / "descriptors" / "a.npy"
    if damage == "dtype":
        np.save(f, np.ones((1000, 3), dtype=np.complex64))
    elif damage == "truncated":
        f.write_bytes(f.read_bytes()[:5000])
    elif damage == "store":
        (tmp_path / "descriptors" / "a.zarr").mkdir()
        f.unlink()
    code = main(["convert", str(tmp_path)] if damage != "store" else ["run", str(tmp_path), "--out",
                                                                        str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("descluster: error: ") and named in err and says in err and "Traceback" not in err
    assert _leftovers(tmp_path) == []
    if damage == "rows":
        assert not (tmp_path / "descriptors" / "b.zarr").exists()


def test_missing_case_and_options(tmp_path, capsys):
    assert main(["convert", str(tmp_path / "nowhere")]) == 2
    assert "case folder" in capsys.readouterr().err
    _case(tmp_path)
    assert main(["convert", str(tmp_path), "--chunk-rows", "0"]) == 2
    assert "--chunk-rows" in capsys.readouterr().err
