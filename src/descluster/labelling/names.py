"""Turn cluster names typed by a labelling team into a label for every image.

``descluster label RESULTS --names names.csv`` reads ``RESULTS/clusters.csv``
(columns ``path``, ``cluster``) and a names file with columns ``cluster``,
``name`` and optionally ``merge_into`` (another cluster id) and ``discard``
(``1/true/yes/x`` = discard; empty = keep), and writes ``RESULTS/labels.csv``
with columns ``path,cluster,name`` for every image, in the order of
``clusters.csv``. The report's "Download labels.csv" button applies exactly the
same rules in the browser:

- a merged cluster takes the id and the name of its target (chains ``a→b→c``
  are followed; a cycle is an error);
- a discarded cluster (or one merged into a discarded one) keeps its id and
  gets the name ``"discard"``;
- a cluster without a row, or with an empty name, gets an empty name.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..errors import CaseError
from ..io.atomic import write_csv
from ..io.tables import read_csv_table

#: Name written for images of a discarded cluster.
DISCARD_NAME = "discard"
#: The header of the labels.csv this module writes.
LABEL_HEADER = "path,cluster,name"
_TRUE = {"1", "true", "yes", "y", "x"}
_FALSE = {"", "0", "false", "no", "n", "nan"}


def _int_or_error(value, file: str, line: int, column: str) -> int:
    text = str(value).strip()
    try:
        number = float(text)
        if number.is_integer():
            return int(number)
    except ValueError:
        pass
    raise CaseError(f"{file}, line {line}, column {column!r}: {text!r} is not a cluster id (an integer)")


def read_names(names_csv: str | os.PathLike, known: set[int]) -> pd.DataFrame:
    """Read and check a names file.

    Parameters
    ----------
    names_csv : path
        CSV with ``cluster,name`` and optional ``merge_into``, ``discard``.
    known : set of int
        Cluster ids of ``clusters.csv``.

    Returns
    -------
    DataFrame
        Columns ``cluster`` (int), ``name`` (str), ``merge_into`` (int or ``None``),
        ``discard`` (bool); one row per named cluster.

    Raises
    ------
    CaseError
        Missing file or columns, a non-integer or unknown cluster id, a
        duplicated cluster row or a bad ``discard`` value; the message names the
        file, the line (1 = header) and the column.
    """
    path = Path(names_csv)
    table = read_csv_table(path, "names file (expected columns cluster,name[,merge_into,discard])",
                           required=("cluster", "name"), dtype=str, keep_default_na=False)
    rows, seen = [], {}
    for i, rec in enumerate(table.to_dict("records")):
        line = i + 2
        cluster = _int_or_error(rec["cluster"], str(path), line, "cluster")
        if cluster not in known:
            raise CaseError(f"{path}, line {line}: cluster {cluster} is not in clusters.csv "
                            f"(known ids: {min(known)}..{max(known)}, {len(known)} clusters)")
        if cluster in seen:
            raise CaseError(f"{path}, line {line}: cluster {cluster} is listed again (first on line {seen[cluster]})")
        seen[cluster] = line
        merge = str(rec.get("merge_into", "")).strip()
        target = None
        if merge:
            target = _int_or_error(merge, str(path), line, "merge_into")
            if target not in known:
                raise CaseError(f"{path}, line {line}, column 'merge_into': cluster {target} is not in clusters.csv")
        flag = str(rec.get("discard", "")).strip().lower()
        if flag not in _TRUE | _FALSE:
            raise CaseError(f"{path}, line {line}, column 'discard': {rec.get('discard')!r} is not one of "
                            "1/true/yes/x (discard) or empty/0/false/no (keep)")
        rows.append({"cluster": cluster, "name": str(rec["name"]).strip(),
                     "merge_into": None if target is None or target == cluster else target,
                     "discard": flag in _TRUE})
    return pd.DataFrame(rows, columns=["cluster", "name", "merge_into", "discard"])


def resolve(clusters: pd.Series, names: pd.DataFrame, source: str = "names.csv") -> pd.DataFrame:
    """Apply names, merges and discards to a cluster column.

    Parameters
    ----------
    clusters : Series of int, length n_images
    names : DataFrame
        As returned by :func:`read_names`.
    source : str
        File name used in error messages.

    Returns
    -------
    DataFrame with columns ``cluster`` (int, after merges) and ``name`` (str), length n_images.

    Raises
    ------
    CaseError
        If ``merge_into`` links form a cycle (names the clusters).
    """
    table = names.set_index("cluster")
    final_id, final_name = {}, {}
    for c in pd.unique(clusters):
        c = int(c)
        chain, cur, discard = [c], c, False
        while True:
            row = table.loc[cur] if cur in table.index else None
            discard = discard or bool(row is not None and row["discard"])
            target = None if row is None or row["merge_into"] is None or pd.isna(row["merge_into"]) else int(row["merge_into"])
            if target is None:
                break
            if target in chain:
                raise CaseError(f"{source}: merge_into forms a cycle: {' -> '.join(map(str, chain + [target]))}")
            chain.append(target)
            cur = target
        row = table.loc[cur] if cur in table.index else None
        discard = discard or bool(row is not None and row["discard"])
        final_id[c] = c if discard else cur
        final_name[c] = DISCARD_NAME if discard else ("" if row is None else str(row["name"]))
    ids = clusters.astype(int)
    return pd.DataFrame({"cluster": ids.map(final_id).astype(int), "name": ids.map(final_name).astype(str)})


def csv_header(path: str | os.PathLike) -> str | None:
    """The first line of the file at ``path`` without its line end (bad UTF-8 replaced), or None if there is no file."""
    path = Path(path)
    if not path.is_file():
        return None
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.readline().strip()


def read_clusters(path: str | os.PathLike) -> pd.DataFrame:
    """Read and check a clusters file of a results folder (``clusters.csv``, ``clusters_<descriptor>.csv``).

    Returns
    -------
    DataFrame
        Columns ``path`` (str) and ``cluster`` (int64), one row per image, in file order.

    Raises
    ------
    CaseError
        Missing file or columns, or a cluster that is not an integer (names the line).
    """
    path = Path(path)
    if not path.is_file():
        raise CaseError(f"{path} does not exist: run `descluster run` first")
    table = read_csv_table(path, "results file", required=("path", "cluster"), min_rows=1,
                           dtype={"path": str}, keep_default_na=False)
    ids = pd.to_numeric(table["cluster"], errors="coerce")
    if ids.isna().any():
        line = int(ids.isna().to_numpy().argmax()) + 2
        raise CaseError(f"{path}, line {line}: cluster {table['cluster'].iloc[line - 2]!r} is not an integer")
    table["cluster"] = ids.astype("int64")
    return table


def apply_names(results_dir: str | os.PathLike, names_csv: str | os.PathLike,
                out: str | os.PathLike | None = None) -> pd.DataFrame:
    """Write ``RESULTS/labels.csv`` (``path,cluster,name``) from ``clusters.csv`` and a names file.

    Parameters
    ----------
    results_dir : path
        A ``descluster run`` output folder holding ``clusters.csv`` (``path``, ``cluster``).
    names_csv : path
        See :func:`read_names`.
    out : path, optional
        Where to write; default ``RESULTS/labels.csv``. Written atomically.

    Returns
    -------
    DataFrame
        The labels written, one row per image in ``clusters.csv`` order.

    Raises
    ------
    CaseError
        Missing ``clusters.csv`` or columns, bad names file (see :func:`read_names`), or (``out``
        not given) a ``RESULTS/labels.csv`` that this command did not write (e.g. the labelling
        session's export, ``descluster labels export``), which it would replace.
    """
    results_dir = Path(results_dir)
    target = Path(out) if out is not None else results_dir / "labels.csv"
    header = csv_header(target) if out is None else None
    if header is not None and header != LABEL_HEADER:
        raise CaseError(f"{target} was not written by `descluster label` (its columns are {header[:120]!r}, "
                        "e.g. the labelling session's export) and would be replaced: give another file with "
                        "--out FILE")
    clusters = read_clusters(results_dir / "clusters.csv")
    ids = clusters["cluster"]
    names = read_names(names_csv, set(int(v) for v in ids.unique()))
    resolved = resolve(ids.astype(int), names, source=str(names_csv))
    labels = pd.DataFrame({"path": clusters["path"], "cluster": resolved["cluster"], "name": resolved["name"]})
    write_csv(target, labels)
    return labels
