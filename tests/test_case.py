"""Tests of descluster.case.load_case: counts, bad rows, images root, labels."""

from __future__ import annotations

import json
import os
import pickle
import zipfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from descluster.case import align_by_path, find_image_root, load_case
from descluster.errors import CaseError, UnsafePickleError


def make_case(root, arrays: dict, paths: list[str]):
    """Write ``descriptors/<name>`` for each array (``.npy`` or pickle by suffix) and images_paths.csv."""
    (root / "descriptors").mkdir(parents=True, exist_ok=True)
    for name, X in arrays.items():
        f = root / "descriptors" / name
        np.save(f, X) if name.endswith(".npy") else f.write_bytes(pickle.dumps(X))
    pd.DataFrame({"paths": paths}).to_csv(root / "images_paths.csv", index=False)
    return root


def indexed(n, d=3, dtype=np.float32):
    """Rows whose first column is the row number, so alignment can be checked."""
    X = np.random.default_rng(n).standard_normal((n, d)).astype(dtype)
    X[:, 0] = np.arange(n)
    return X


def names(n):
    return [f"img/{i}.jpg" for i in range(n)]


def write_images(folder, rel_paths):
    for rel in rel_paths:
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4), (10, 20, 30)).save(p)


def test_loads_sorted_float32_descriptors(tmp_path):
    make_case(tmp_path, {"zeta.npy": indexed(10), "alpha.pickle": indexed(10, 2, np.float64)}, names(10))
    case = load_case(tmp_path)
    assert list(case.descriptors) == ["alpha", "zeta"]
    assert all(X.dtype == np.float32 and X.shape[0] == 10 for X in case.descriptors.values())
    np.testing.assert_array_equal(case.descriptors["alpha"][:, 0], np.arange(10))
    assert case.paths == names(10) and case.dropped_rows == [] and case.n_images == 10
    assert case.name == tmp_path.name


def test_descriptor_rows_vs_paths(tmp_path):
    make_case(tmp_path, {"a.npy": indexed(98)}, names(100))
    with pytest.raises(CaseError) as err:
        load_case(tmp_path)
    msg = str(err.value)
    assert "a.npy" in msg and "images_paths.csv" in msg and "98 rows" in msg and "100 paths" in msg


def test_two_descriptors_disagree(tmp_path):
    make_case(tmp_path, {"a.npy": indexed(100), "b.npy": indexed(98)}, names(100))
    with pytest.raises(CaseError) as err:
        load_case(tmp_path)
    msg = str(err.value)
    assert "a.npy" in msg and "b.npy" in msg and "100 rows" in msg and "98" in msg


def test_no_descriptors_lists_folder(tmp_path):
    (tmp_path / "descriptors").mkdir()
    (tmp_path / "descriptors" / "notes.txt").write_text("x")
    pd.DataFrame({"paths": names(2)}).to_csv(tmp_path / "images_paths.csv", index=False)
    with pytest.raises(CaseError, match=r"no descriptor files.*notes\.txt"):
        load_case(tmp_path)


def test_paths_csv_missing_or_wrong_column(tmp_path):
    make_case(tmp_path, {"a.npy": indexed(2)}, names(2))
    pd.DataFrame({"path": names(2), "x": [1, 2]}).to_csv(tmp_path / "images_paths.csv", index=False)
    with pytest.raises(CaseError, match=r"images_paths\.csv \(image list\): missing column\(s\) \['paths'\]; the columns are \['path', 'x'\]"):
        load_case(tmp_path)
    (tmp_path / "images_paths.csv").unlink()
    with pytest.raises(CaseError, match=r"images_paths\.csv: not found"):
        load_case(tmp_path)


def test_unsafe_pickle_in_case_propagates(tmp_path):
    make_case(tmp_path, {"f.pickle": pd.DataFrame(indexed(3))}, names(3))
    with pytest.raises(UnsafePickleError, match="--trust-pickle"):
        load_case(tmp_path)
    case = load_case(tmp_path, trust_pickle=True)
    np.testing.assert_array_equal(case.descriptors["f"][:, 0], [0, 1, 2])


def _with_bad_rows(tmp_path):
    a, b = indexed(20), indexed(20, 4)
    a[5, 1] = np.nan
    b[17, 2] = np.inf
    b[5, 0] = -np.inf
    return make_case(tmp_path, {"a.npy": a, "b.pickle": b}, names(20))


def test_bad_rows_named(tmp_path):
    _with_bad_rows(tmp_path)
    with pytest.raises(CaseError) as err:
        load_case(tmp_path)
    msg = str(err.value)
    assert "a.npy has 1 row(s) with NaN/inf: row 5: img/5.jpg" in msg
    assert "b.pickle has 2 row(s) with NaN/inf: row 5: img/5.jpg; row 17: img/17.jpg" in msg
    assert "--drop-bad-rows" in msg


def test_many_bad_rows_show_first_ten(tmp_path):
    a = indexed(30)
    a[3:28, 1] = np.nan
    make_case(tmp_path, {"a.npy": a}, names(30))
    with pytest.raises(CaseError) as err:
        load_case(tmp_path)
    msg = str(err.value)
    assert "25 row(s)" in msg and "row 12: img/12.jpg" in msg and "row 13:" not in msg and "15 more" in msg


def test_drop_bad_rows_keeps_alignment(tmp_path, caplog):
    _with_bad_rows(tmp_path)
    case = load_case(tmp_path, drop_bad_rows=True)
    kept = [i for i in range(20) if i not in (5, 17)]
    assert case.dropped_rows == [5, 17]
    assert case.paths == [f"img/{i}.jpg" for i in kept]
    for X in case.descriptors.values():
        assert X.shape[0] == 18 and not X.flags.writeable
        np.testing.assert_array_equal(X[:, 0], kept)
        assert np.isfinite(X).all()
    assert any("dropped 2 of 20 rows" in n and "5, 17" in n for n in case.notes)
    again = load_case(tmp_path, drop_bad_rows=True)  # reuses the cached copies
    np.testing.assert_array_equal(again.descriptors["b"], case.descriptors["b"])


def test_clean_npy_not_copied(tmp_path):
    make_case(tmp_path, {"a.npy": indexed(5)}, names(5))
    case = load_case(tmp_path, drop_bad_rows=True)
    X = case.descriptors["a"]
    assert isinstance(X, np.memmap) and os.path.samefile(X.filename, tmp_path / "descriptors" / "a.npy")


def test_backslash_paths_found_in_case_folder(tmp_path):
    rel = ["images/cat/001.jpg", "images/dog/002.jpg"]
    write_images(tmp_path, rel)
    make_case(tmp_path, {"a.npy": indexed(2)}, [r"images\cat\001.jpg", r"images\dog\002.jpg"])
    case = load_case(tmp_path)
    assert case.images is not None and case.missing_images == []
    assert case.paths[0] == r"images\cat\001.jpg"  # kept exactly as in the CSV
    assert case.images.read_rgb(case.paths[0]).shape == (4, 4, 3)


def test_missing_images_counted(tmp_path):
    write_images(tmp_path / "pics", ["img/0.jpg", "img/1.jpg", "img/3.jpg"])
    make_case(tmp_path, {"a.npy": indexed(5)}, names(5))
    case = load_case(tmp_path)
    assert case.images.root == tmp_path / "pics"
    assert case.missing_images == ["img/2.jpg", "img/4.jpg"]
    assert any("2 of 5 images are missing" in n and "img/2.jpg" in n for n in case.notes)


def test_zip_found_two_levels_down(tmp_path):
    (tmp_path / "row_data").mkdir()
    with zipfile.ZipFile(tmp_path / "row_data" / "images.zip", "w") as zf:
        for i in range(3):
            zf.writestr(f"top/img/{i}.jpg", b"x")
    make_case(tmp_path, {"a.npy": indexed(3)}, [rf"img\{i}.jpg" for i in range(3)])
    case = load_case(tmp_path)
    assert case.images.is_zip and case.images.root == tmp_path / "row_data" / "images.zip"
    assert case.missing_images == []
    assert find_image_root(tmp_path, case.paths) == tmp_path / "row_data" / "images.zip"


def test_case_json_and_explicit_images(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    write_images(elsewhere, names(2))
    case_dir = make_case(tmp_path / "case", {"a.npy": indexed(2)}, names(2))
    (case_dir / "case.json").write_text(json.dumps({"name": "demo", "images": "../elsewhere"}))
    case = load_case(case_dir)
    assert case.name == "demo" and case.images.root == case_dir / "../elsewhere" and not case.missing_images
    with pytest.raises(CaseError, match="nowhere"):
        load_case(case_dir, images=tmp_path / "nowhere")


def test_no_images_is_a_note(tmp_path):
    make_case(tmp_path, {"a.npy": indexed(2)}, names(2))
    case = load_case(tmp_path)
    assert case.images is None and any("no image folder or .zip" in n for n in case.notes)


def test_labels_aligned_with_missing_rows(tmp_path):
    make_case(tmp_path, {"a.npy": indexed(4)}, [r"img\0.jpg", "img/1.jpg", "img/2.jpg", "img/3.jpg"])
    pd.DataFrame({"path": ["img/3.jpg", "img/0.jpg", "img/1.jpg", "other.jpg"], "kind": ["c", "a", "b", "z"]}).to_csv(
        tmp_path / "labels.csv", index=False
    )
    case = load_case(tmp_path)
    assert list(case.labels.columns) == ["kind"]
    assert case.labels["kind"].tolist()[:2] == ["a", "b"] and case.labels["kind"].tolist()[3] == "c"
    assert pd.isna(case.labels["kind"][2])
    assert any("1 of 4 images have no row" in n for n in case.notes)


def test_labels_follow_dropped_rows(tmp_path):
    a = indexed(4)
    a[1, 1] = np.nan
    make_case(tmp_path, {"a.npy": a}, names(4))
    pd.DataFrame({"path": names(4), "kind": list("wxyz")}).to_csv(tmp_path / "labels.csv", index=False)
    case = load_case(tmp_path, drop_bad_rows=True)
    assert case.labels["kind"].tolist() == ["w", "y", "z"]


def test_imagenet_positional_and_by_path(tmp_path):
    a = indexed(3)
    a[0, 1] = np.nan
    make_case(tmp_path, {"a.npy": a}, names(3))
    (tmp_path / "meta").mkdir()
    pd.DataFrame({"top1": ["x", "y", "z"]}).to_csv(tmp_path / "meta" / "imagenet.csv", index=False)
    positional = load_case(tmp_path, drop_bad_rows=True).imagenet
    assert positional["top1"].tolist() == ["y", "z"] and positional["path"].tolist() == ["img/1.jpg", "img/2.jpg"]
    table = pd.DataFrame({"path": [r"img\2.jpg", "img/1.jpg", "img/0.jpg"], "vehicle_share": [0.2, 0.1, 0.0]})
    table.to_csv(tmp_path / "meta" / "imagenet.csv", index=False)
    by_path = load_case(tmp_path, drop_bad_rows=True).imagenet
    assert by_path.columns.tolist() == ["path", "vehicle_share"]
    assert by_path["path"].tolist() == ["img/1.jpg", "img/2.jpg"] and by_path["vehicle_share"].tolist() == [0.1, 0.2]
    pd.DataFrame({"top1": ["x"]}).to_csv(tmp_path / "meta" / "imagenet.csv", index=False)
    case = load_case(tmp_path, drop_bad_rows=True)
    assert case.imagenet is None and any("1 rows for 3 images; ignored" in n for n in case.notes)


def test_images_fingerprint_tracks_files(tmp_path):
    write_images(tmp_path / "pics", names(3))
    make_case(tmp_path, {"a.npy": indexed(3)}, names(3))
    first = load_case(tmp_path).images_fingerprint
    assert len(first) == 64 and load_case(tmp_path).images_fingerprint == first
    Image.new("RGB", (9, 9), (1, 2, 3)).save(tmp_path / "pics" / "img" / "1.jpg")
    assert load_case(tmp_path).images_fingerprint != first
    (tmp_path / "pics" / "img" / "1.jpg").unlink()
    assert load_case(tmp_path).images_fingerprint not in (first, None)
    with zipfile.ZipFile(tmp_path / "pics.zip", "w") as zf:
        zf.writestr("img/0.jpg", b"x")
    zipped = load_case(tmp_path, images=tmp_path / "pics.zip")
    assert zipped.images.is_zip and len(zipped.images_fingerprint) == 64


def test_align_by_path_top_folder_either_side():
    table = pd.DataFrame({"path": ["veriwild/1/a.jpg", "2/b.jpg"], "v": [1, 2]})
    aligned, unmatched = align_by_path(table, [r"1\a.jpg", "veriwild/2/b.jpg", "3/c.jpg"], "t.csv")
    assert aligned["v"].tolist()[:2] == [1, 2] and pd.isna(aligned["v"][2]) and unmatched == 1
    with pytest.raises(CaseError, match=r"t\.csv: no 'path' column"):
        align_by_path(table.rename(columns={"path": "p"}), ["x"], "t.csv")


def test_empty_path_rows_named(tmp_path):
    make_case(tmp_path, {"a.npy": indexed(3)}, ["img/0.jpg", "", "img/2.jpg"])
    with pytest.raises(CaseError, match=r"images_paths\.csv: 1 empty path\(s\) in column 'paths', at rows 1"):
        load_case(tmp_path)


def test_escaping_and_absolute_paths_refused_at_load_without_images(tmp_path):
    paths = ["img/0.jpg", r"..\..\etc\passwd", "img/2.jpg", "/etc/shadow", r"C:\x.jpg"]
    make_case(tmp_path, {"a.npy": indexed(5)}, paths)
    with pytest.raises(CaseError) as err:
        load_case(tmp_path)  # no images anywhere: refused all the same
    msg = str(err.value)
    assert "images_paths.csv: 3 path(s) refused" in msg
    assert "row 1:" in msg and "'..'" in msg and "row 3:" in msg and "row 4:" in msg and "row 0:" not in msg


def test_repeated_paths_refused_or_dropped_keeping_the_first(tmp_path, caplog):
    paths = ["img/0.jpg", "img/1.jpg", r"img\0.jpg", "img/3.jpg", "img/1.jpg"]
    make_case(tmp_path, {"a.npy": indexed(5)}, paths)
    with pytest.raises(CaseError) as err:
        load_case(tmp_path)
    msg = str(err.value)
    assert "2 path(s) listed more than once" in msg and "row 2 repeats row 0" in msg
    assert "row 4 repeats row 1" in msg and "--drop-bad-rows" in msg
    case = load_case(tmp_path, drop_bad_rows=True)
    assert case.dropped_rows == [2, 4] and case.paths == ["img/0.jpg", "img/1.jpg", "img/3.jpg"]
    np.testing.assert_array_equal(case.descriptors["a"][:, 0], [0, 1, 3])
    assert any("dropped 2 of 5 rows (2 repeating an earlier row's path" in n for n in case.notes)


def test_nan_rows_and_repeated_paths_dropped_together(tmp_path):
    a = indexed(6)
    a[1, 1] = np.nan
    make_case(tmp_path, {"a.npy": a}, ["p/0.jpg", "p/1.jpg", "p/2.jpg", "p/0.jpg", "p/4.jpg", "p/5.jpg"])
    case = load_case(tmp_path, drop_bad_rows=True)
    assert case.dropped_rows == [1, 3]
    np.testing.assert_array_equal(case.descriptors["a"][:, 0], [0, 2, 4, 5])
    assert any("1 with NaN/inf descriptors, 1 repeating" in n for n in case.notes)


@pytest.mark.parametrize("dtype", [np.float64, np.int64])
def test_other_dtypes_converted_to_float32_once_with_a_warning(tmp_path, caplog, dtype):
    make_case(tmp_path, {"a.npy": indexed(6, dtype=dtype)}, names(6))
    case = load_case(tmp_path)
    X = case.descriptors["a"]
    assert X.dtype == np.float32 and X[:, 0].tolist() == list(range(6))
    assert f"dtype {np.dtype(dtype).name}, not float32; converted once to float32" in caplog.text
    caplog.clear()
    load_case(tmp_path)  # the cache is used: nothing more to say
    assert "not float32" not in caplog.text


def test_same_stem_prefers_npy_with_note(tmp_path):
    make_case(tmp_path, {"a.npy": indexed(3), "a.pickle": indexed(3) * 0}, names(3))
    case = load_case(tmp_path)
    np.testing.assert_array_equal(case.descriptors["a"][:, 0], [0, 1, 2])
    assert any("both a.npy and a.pickle" in n for n in case.notes)


def test_no_descriptors_folder_lists_case(tmp_path):
    (tmp_path / "stuff.txt").write_text("x")
    with pytest.raises(CaseError, match=r"no descriptors/ folder.*stuff\.txt"):
        load_case(tmp_path)


def test_release_pages_reopens_memory_maps_with_the_same_values(tmp_path):
    case_dir = tmp_path / "case"
    X = np.random.default_rng(0).random((64, 5), dtype=np.float32)
    make_case(case_dir, {"a.npy": X}, [f"p/{i}.jpg" for i in range(64)])
    case = load_case(case_dir)
    old = case.descriptors["a"]
    assert isinstance(old, np.memmap)
    float(np.asarray(old).sum())  # touch every page
    assert case.release_pages() == 1
    new = case.descriptors["a"]
    assert new is not old and isinstance(new, np.memmap) and new.shape == (64, 5) and new.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(new), X)
    case.descriptors["b"] = X.copy()  # not a memory map: kept as it is
    assert case.release_pages() == 1 and case.descriptors["b"] is not None
