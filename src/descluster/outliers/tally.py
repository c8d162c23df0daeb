"""Counting what the outlier rules found in an ``outliers.csv`` table.

One place that reads ``flagged`` and ``flagged_by`` for people: the console's
closing summary and the report's rules box and gallery both use it, so "this
rule fired on N images" and "N flagged in total" are counted the same way.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["flag_counts", "rule_keys", "rule_title"]


def flag_counts(table: pd.DataFrame | None, per_check: bool = False) -> tuple[int, pd.DataFrame]:
    """How many images are flagged in total, and on how many each rule fired (flagged or not).

    Parameters
    ----------
    table : DataFrame or None
        ``outliers.csv`` (``flagged``, ``flagged_by`` = ``"knn:a;lof:b;pixel:dark"``).
    per_check : bool, default False
        Count every check of ``flagged_by`` on its own (``"knn:a"`` and ``"knn:b"``)
        instead of each rule once per image (:func:`rule_keys`: ``"knn"``).

    Returns
    -------
    n_flagged : int
        Rows with ``flagged = 1``.
    counts : DataFrame of shape (n_rules, 3)
        Columns ``rule`` (str), ``fired`` (int: images it fired on) and ``flagged``
        (int: of those, images flagged in the end), most frequent first. A rule can
        fire without flagging (an advisory rule, or one descriptor check where the
        flag rule asks for several), so ``fired`` can exceed ``n_flagged``.
    """
    empty = pd.DataFrame({"rule": pd.Series(dtype=str), "fired": pd.Series(dtype="int64"),
                          "flagged": pd.Series(dtype="int64")})
    if table is None or not len(table):
        return 0, empty
    flagged = table["flagged"].astype(bool).to_numpy() if "flagged" in table else [False] * len(table)
    fired: dict[str, list[int]] = {}
    if "flagged_by" in table:
        for value, is_flagged in zip(table["flagged_by"].fillna("").astype(str), flagged):
            keys = ([p.strip() for p in value.split(";") if p.strip()] if per_check else rule_keys(value))
            for key in dict.fromkeys(keys):
                counts = fired.setdefault(key, [0, 0])
                counts[0] += 1
                counts[1] += int(is_flagged)
    if not fired:
        return int(sum(flagged)), empty
    counts = pd.DataFrame([(k, v[0], v[1]) for k, v in fired.items()], columns=["rule", "fired", "flagged"])
    counts = counts.sort_values(["fired", "rule"], ascending=[False, True], kind="mergesort").reset_index(drop=True)
    return int(sum(flagged)), counts


def rule_keys(flagged_by: str) -> list[str]:
    """The rules of one ``flagged_by`` value, each once: ``"knn:a;knn:b;pixel:dark"`` -> ``["knn", "pixel:dark"]``."""
    keys: list[str] = []
    for part in filter(None, (p.strip() for p in str(flagged_by).split(";"))):
        det = part.partition(":")[0]
        key = part if det == "pixel" else det
        if key not in keys:
            keys.append(key)
    return keys


def rule_title(key: str) -> str:
    """Words for a rule key of :func:`rule_keys`: ``"knn"`` -> ``"far from all neighbours"``,
    ``"pixel:dark"`` -> ``"pixel rule: dark"`` (detector phrases from ``outliers.consensus.PHRASES``)."""
    from .consensus import PHRASES

    if key.startswith("pixel:"):
        return f"pixel rule: {key.split(':', 1)[1]}"
    return PHRASES.get(key, key)
