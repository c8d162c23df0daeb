"""CSV files that people open: safe to read back, safe to open in a spreadsheet.

Reading
-------
:func:`read_csv_table` is the one reader of every CSV a user hands to descluster
(``images_paths.csv``, ``labels.csv``, names files, a results folder's ``clusters.csv``).
It turns every way such a file can be wrong (missing, a folder, 0 bytes, header only,
not UTF-8, an unterminated quote, a missing column) into a :class:`~descluster.errors.CaseError`
that names the file, and the line or byte where pandas stopped.

Formula injection
-----------------
A spreadsheet runs a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return as a formula (OWASP, "CSV Injection",
https://owasp.org/www-community/attacks/CSV_Injection). Every CSV descluster writes
(:func:`descluster.io.atomic.write_csv`) therefore prefixes such a text cell with a single
quote, the OWASP rule, and also a cell that already starts with a quote, so that the
rule is reversible: :func:`restore_cell` removes exactly one leading quote, and
:func:`read_csv_table` applies it, so a path survives a write and a read unchanged.
Numeric columns are never touched (``-1`` stays a number).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pandas as pd

from ..errors import CaseError

#: First characters a spreadsheet treats as the start of a formula (OWASP), plus the quote itself.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")

__all__ = ["FORMULA_STARTS", "neutralise_cell", "restore_cell", "neutralise_frame", "read_csv_table"]


def neutralise_cell(value):
    """Prefix ``value`` with ``'`` when it is a string a spreadsheet would run as a formula.

    Parameters
    ----------
    value : object
        A cell. Only ``str`` values are changed.

    Returns
    -------
    object
        ``"'" + value`` for a string starting with one of :data:`FORMULA_STARTS`, else ``value``.
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def restore_cell(value):
    """Inverse of :func:`neutralise_cell`: drop one leading ``'`` that precedes a formula start.

    Parameters
    ----------
    value : object

    Returns
    -------
    object
        ``value[1:]`` when ``value`` is a string ``"'" + c + ...`` with ``c`` in :data:`FORMULA_STARTS`,
        else ``value``.
    """
    if isinstance(value, str) and len(value) >= 2 and value[0] == "'" and value[1] in "".join(FORMULA_STARTS):
        return value[1:]
    return value


def neutralise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``frame`` with :func:`neutralise_cell` applied to every text (object/string) column.

    Column names are neutralised too. Numeric, boolean and categorical-of-numbers columns are
    returned unchanged.

    Parameters
    ----------
    frame : DataFrame of shape (n_rows, n_columns)

    Returns
    -------
    DataFrame of the same shape.
    """
    out = frame.copy()
    for col in out.columns:
        if _is_text(out[col]):
            out[col] = out[col].map(neutralise_cell)
    out.columns = [neutralise_cell(c) if isinstance(c, str) else c for c in out.columns]
    return out


def _is_text(column: pd.Series) -> bool:
    return column.dtype == object or pd.api.types.is_string_dtype(column.dtype)


def _restore_frame(frame: pd.DataFrame) -> pd.DataFrame:
    for col in frame.columns:
        if _is_text(frame[col]):
            # only cells that start with "'" can change: find them with pandas' string method first
            hit = frame[col].astype(str).str.startswith("'").to_numpy(bool) & frame[col].notna().to_numpy(bool)
            if hit.any():
                frame.loc[hit, col] = frame.loc[hit, col].map(restore_cell)
    frame.columns = [restore_cell(c) for c in frame.columns]
    return frame


def read_csv_table(path: str | os.PathLike, what: str = "CSV file", required: tuple[str, ...] = (),
                   min_rows: int = 0, **read_csv_args) -> pd.DataFrame:
    """Read a user's CSV file, or raise one :class:`CaseError` that names the file and the fault.

    Parameters
    ----------
    path : str or PathLike
    what : str
        What the file is, for messages (``"names file"``, ``"images_paths.csv"``).
    required : tuple of str
        Columns that must be present.
    min_rows : int
        Fewest data rows accepted (``1`` refuses a header-only file).
    **read_csv_args
        Passed to :func:`pandas.read_csv` (e.g. ``dtype=str, keep_default_na=False``).

    Returns
    -------
    DataFrame
        The table, with :func:`restore_cell` applied to text cells and column names.

    Raises
    ------
    CaseError
        The file is missing or a folder, empty (0 bytes or no header), not UTF-8 (the byte offset is
        given), not parseable as CSV (pandas' line is given), lacks a ``required`` column (the columns
        found are listed) or has fewer than ``min_rows`` rows.
    """
    path = Path(path)
    if not path.exists():
        raise CaseError(f"{path} ({what}): not found")
    if not path.is_file():
        raise CaseError(f"{path} ({what}): is a folder, not a CSV file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CaseError(f"{path} ({what}): cannot be read ({exc.strerror or exc})") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise CaseError(f"{path} ({what}): is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}, "
                        f"line {line}); save it as UTF-8") from exc
    if not text.strip():
        raise CaseError(f"{path} ({what}): is empty ({len(raw)} bytes); it needs a header line"
                        + (f" with {', '.join(required)}" if required else ""))
    try:
        table = pd.read_csv(io.StringIO(text), **read_csv_args)
    except (pd.errors.ParserError, csv.Error, ValueError) as exc:
        raise CaseError(f"{path} ({what}): cannot be parsed as CSV ({' '.join(str(exc).split())})") from exc
    if "'" in text:  # no cell or column name can start with "'" when the file holds none (the common case)
        table = _restore_frame(table)
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise CaseError(f"{path} ({what}): missing column(s) {missing}; the columns are {list(table.columns)}")
    if len(table) < min_rows:
        raise CaseError(f"{path} ({what}): has {len(table)} data row(s) under its header; at least {min_rows} needed")
    return table
