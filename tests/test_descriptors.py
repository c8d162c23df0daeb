"""Tests of descluster.io.descriptors: float32 memory maps, one-time conversion, validation."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from descluster.errors import CaseError, ParameterError
from descluster.io import descriptors as desc
from descluster.io.descriptors import find_bad_rows, load_descriptor, take_rows


@pytest.fixture
def matrix():
    return np.random.default_rng(1).standard_normal((50, 6)).astype(np.float32)


def _case_file(tmp_path, name):
    folder = tmp_path / "case" / "descriptors"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def test_float32_npy_is_mapped_in_place(tmp_path, matrix):
    path = _case_file(tmp_path, "a.npy")
    np.save(path, matrix)
    X = load_descriptor(path)
    assert isinstance(X, np.memmap) and X.dtype == np.float32 and not X.flags.writeable
    assert os.path.samefile(X.filename, path)
    np.testing.assert_array_equal(X, matrix)
    assert not (tmp_path / "case" / desc.CACHE_DIRNAME).exists()


@pytest.mark.parametrize("order", ["C", "F"])
def test_other_npy_converted_once(tmp_path, matrix, order):
    path = _case_file(tmp_path, "b.npy")
    np.save(path, np.array(matrix.astype(np.float64), order=order))
    X = load_descriptor(path)
    assert isinstance(X, np.memmap) and X.dtype == np.float32 and X.flags.c_contiguous
    assert os.path.dirname(X.filename) == str((tmp_path / "case" / desc.CACHE_DIRNAME).resolve())
    np.testing.assert_array_equal(X, matrix)


def test_pickle_cached_once_and_reused(tmp_path, matrix, monkeypatch):
    path = _case_file(tmp_path, "p.pickle")
    path.write_bytes(pickle.dumps(matrix))
    X1 = load_descriptor(path)
    cache = os.path.realpath(X1.filename)
    assert os.path.dirname(cache) == str((tmp_path / "case" / desc.CACHE_DIRNAME).resolve())
    mtime = os.stat(cache).st_mtime_ns

    def must_not_run(*args, **kwargs):
        raise AssertionError("the pickle was read again")

    monkeypatch.setattr(desc, "load_array", must_not_run)
    X2 = load_descriptor(path)
    assert os.path.realpath(X2.filename) == cache and os.stat(cache).st_mtime_ns == mtime
    np.testing.assert_array_equal(X2, matrix)


def test_changed_pickle_rebuilds_cache_and_removes_old(tmp_path, matrix):
    path = _case_file(tmp_path, "p.pickle")
    cache_dir = tmp_path / "cache"
    path.write_bytes(pickle.dumps(matrix))
    first = os.path.realpath(load_descriptor(path, cache_dir=cache_dir).filename)
    path.write_bytes(pickle.dumps(matrix[:10] * 2))
    X = load_descriptor(path, cache_dir=cache_dir)
    np.testing.assert_array_equal(X, matrix[:10] * 2)
    assert not os.path.exists(first)
    assert len(list(cache_dir.glob("p.*.npy"))) == 1


def test_list_pickle_converted_to_float32(tmp_path):
    path = _case_file(tmp_path, "l.pkl")
    path.write_bytes(pickle.dumps([[1, 2], [3, 4], [5, 6]]))
    X = load_descriptor(path)
    assert X.dtype == np.float32
    np.testing.assert_array_equal(X, [[1, 2], [3, 4], [5, 6]])


@pytest.mark.parametrize("suffix", [".npy", ".pickle"])
def test_3d_array_refused_with_shape(tmp_path, suffix):
    path = _case_file(tmp_path, "cube" + suffix)
    cube = np.zeros((4, 3, 2), dtype=np.float32)
    np.save(path, cube) if suffix == ".npy" else path.write_bytes(pickle.dumps(cube))
    with pytest.raises(CaseError) as err:
        load_descriptor(path)
    assert "cube" + suffix in str(err.value) and "(4, 3, 2)" in str(err.value) and "3-D" in str(err.value)


@pytest.mark.parametrize(
    "array, pattern",
    [
        (np.zeros((0, 4), np.float32), r"empty, shape \(0, 4\)"),
        (np.zeros((4, 0), np.float32), r"empty, shape \(4, 0\)"),
        (np.array([["a", "b"], ["c", "d"]]), r"dtype <U1 is not real-valued"),
        (np.zeros((2, 2), np.complex64), r"dtype complex64"),
        (np.zeros(5, np.float32), r"1-D shape \(5,\)"),
    ],
)
def test_bad_matrices_refused(tmp_path, array, pattern):
    path = _case_file(tmp_path, "bad.npy")
    np.save(path, array)
    with pytest.raises(CaseError, match=pattern) as err:
        load_descriptor(path)
    assert "bad.npy" in str(err.value)


def test_object_npy_refused(tmp_path):
    path = _case_file(tmp_path, "obj.npy")
    np.save(path, np.array([[1, None]], dtype=object), allow_pickle=True)
    with pytest.raises(CaseError, match=r"obj\.npy: the \.npy file holds Python objects"):
        load_descriptor(path)


def test_unknown_suffix_and_missing_file(tmp_path):
    with pytest.raises(CaseError, match=r"unknown descriptor file type '\.csv'"):
        load_descriptor(tmp_path / "x.csv")
    with pytest.raises(CaseError, match=r"nothere\.npy: descriptor file not found"):
        load_descriptor(tmp_path / "nothere.npy")


def test_unwritable_cache_falls_back_to_memory(tmp_path, matrix):
    path = _case_file(tmp_path, "p.pickle")
    path.write_bytes(pickle.dumps(matrix))
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    X = load_descriptor(path, cache_dir=blocker / "cache")
    assert X.dtype == np.float32 and not X.flags.writeable
    np.testing.assert_array_equal(X, matrix)


@pytest.mark.parametrize("chunk_size", [None, 1, 3, 7, 1000])
def test_find_bad_rows_across_chunks(tmp_path, matrix, chunk_size):
    X = matrix.copy()
    X[[0, 6, 7, 49], [1, 0, 5, 2]] = [np.nan, np.inf, -np.inf, np.nan]
    path = tmp_path / "x.npy"
    np.save(path, X)
    mapped = np.load(path, mmap_mode="r")
    rows = find_bad_rows(mapped, chunk_size)
    assert rows.dtype == np.int64
    np.testing.assert_array_equal(rows, [0, 6, 7, 49])


def test_find_bad_rows_clean_and_integer(matrix):
    assert find_bad_rows(matrix).size == 0
    assert find_bad_rows(np.ones((3, 2), dtype=np.int32)).size == 0


@pytest.mark.parametrize("chunk_size", [0, -2, 2.5, True])
def test_find_bad_rows_rejects_chunk_size(matrix, chunk_size):
    with pytest.raises(ParameterError, match=r"chunk_size=.*integer >= 1"):
        find_bad_rows(matrix, chunk_size)


def test_take_rows_to_file_round_trip(tmp_path, matrix):
    keep = np.array([0, 2, 3, 49])
    target = tmp_path / "kept.npy"
    out = take_rows(matrix, keep, target)
    assert isinstance(out, np.memmap) and not out.flags.writeable
    np.testing.assert_array_equal(out, matrix[keep])
    np.testing.assert_array_equal(take_rows(matrix, keep), matrix[keep])
