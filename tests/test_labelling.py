"""``descluster label``: names, merges and discards -> labels.csv, and clear errors."""

from __future__ import annotations

import pandas as pd
import pytest

from descluster.errors import CaseError
from descluster.labelling import DISCARD_NAME, apply_names


@pytest.fixture
def results(tmp_path):
    paths = ["a/1.jpg", "a/2.jpg", "b\\3.jpg", "c/4,x.jpg", "d/5.jpg", "e/6.jpg"]
    pd.DataFrame({"path": paths, "cluster": [0, 0, 1, 2, 3, 4]}).to_csv(tmp_path / "clusters.csv", index=False)
    return tmp_path


def _names(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def test_round_trip_names_merge_discard(results):
    names = _names(results / "names.csv",
                   "cluster,name,merge_into,discard\n"
                   "0,white van,,\n"
                   "1,ignored,0,\n"      # merged into 0: takes id 0 and its name
                   "2,\"truck, red\",,\n"
                   "3,,,yes\n"
                   "4,bus,3,\n")          # merged into a discarded cluster: discarded, keeps id 4
    table = apply_names(results, names)
    written = pd.read_csv(results / "labels.csv", keep_default_na=False)
    pd.testing.assert_frame_equal(written, table.astype({"cluster": "int64"}), check_dtype=False)
    assert written.columns.tolist() == ["path", "cluster", "name"]
    assert written["path"].tolist() == ["a/1.jpg", "a/2.jpg", "b\\3.jpg", "c/4,x.jpg", "d/5.jpg", "e/6.jpg"]
    assert written["cluster"].tolist() == [0, 0, 0, 2, 3, 4]
    assert written["name"].tolist() == ["white van", "white van", "white van", "truck, red", DISCARD_NAME,
                                        DISCARD_NAME]


def test_unnamed_clusters_get_empty_names_and_out_path(results, tmp_path):
    names = _names(results / "names.csv", "cluster,name\n2,truck\n")
    out = tmp_path / "elsewhere" / "mine.csv"
    table = apply_names(results, names, out=out)
    assert out.is_file() and not (results / "labels.csv").exists()
    assert table["name"].tolist() == ["", "", "", "truck", "", ""]
    assert table["cluster"].tolist() == [0, 0, 1, 2, 3, 4]


def test_chain_of_merges(results):
    names = _names(results / "names.csv", "cluster,name,merge_into\n0,,1\n1,,2\n2,car,\n")
    table = apply_names(results, names)
    assert table["cluster"].tolist()[:4] == [2, 2, 2, 2] and set(table["name"][:4]) == {"car"}


@pytest.mark.parametrize("text, message", [
    ("cluster,label\n0,x\n", "missing column(s) ['name']"),
    ("cluster,name\n0,x\n9,y\n", "line 3: cluster 9 is not in clusters.csv"),
    ("cluster,name\nzero,x\n", "line 2, column 'cluster': 'zero' is not a cluster id"),
    ("cluster,name\n0,x\n0,y\n", "line 3: cluster 0 is listed again (first on line 2)"),
    ("cluster,name,merge_into\n0,x,7\n", "line 2, column 'merge_into': cluster 7"),
    ("cluster,name,discard\n0,x,maybe\n", "line 2, column 'discard': 'maybe'"),
    ("cluster,name,merge_into\n0,x,1\n1,y,0\n", "merge_into forms a cycle: 0 -> 1 -> 0"),
])
def test_errors_name_file_and_line(results, text, message):
    names = _names(results / "names.csv", text)
    with pytest.raises(CaseError) as info:
        apply_names(results, names)
    assert message in str(info.value)
    assert "names.csv" in str(info.value)
    assert not (results / "labels.csv").exists()


def test_missing_clusters_csv(tmp_path):
    names = _names(tmp_path / "names.csv", "cluster,name\n0,x\n")
    with pytest.raises(CaseError, match="clusters.csv does not exist"):
        apply_names(tmp_path, names)
    pd.DataFrame({"path": ["a"], "cluster": ["x"]}).to_csv(tmp_path / "clusters.csv", index=False)
    with pytest.raises(CaseError, match="line 2: cluster 'x' is not an integer"):
        apply_names(tmp_path, names)
