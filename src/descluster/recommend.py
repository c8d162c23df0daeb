"""Compare configurations across spaces and recommend one, by label-free rules that are comparable.

Internal metrics (Calinski–Harabasz, Davies–Bouldin, silhouette, inertia) depend on the
dimension and scale of the space a clustering ran in, so they are *not* compared across
descriptors or preprocessings: they only choose k inside one sweep. Across spaces the
comparison uses quantities that live on the same scale whatever the space:

- ``stability``: agreement (adjusted Rand index) of the clustering with itself refitted on
  resampled halves of the data (Ben-Hur, Elisseeff & Guyon 2002; Lange et al. 2004); 1 = the
  same partition is found again, 0 = chance.
- ``balance``: normalised entropy of the cluster sizes, ``H(sizes) / log(k)`` (1 = equal
  sizes; a partition that puts nearly everything in one cluster says little).
- ``coverage``: share of rows not labelled noise (HDBSCAN), 1 elsewhere.
- ``structure``: ``log2(k)`` bits, the amount of partition information offered.

The label-free ``score`` is ``stability × balance × coverage × log2(k)``: the stable,
balanced information (in bits) the clustering carries. It favours a partition that
is found again on resamples *and* says more than "two halves"; it never looks at
``labels.csv``. External scores (ARI, NMI, purity against every label column, and the
share of object identities kept in one cluster) are reported beside it and never used.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .config import ALGORITHM_NAMES
from .results import Choice, ReducedSpace

METRIC_COLUMNS = ("calinski_harabasz", "davies_bouldin", "silhouette", "silhouette_sampled",
                  "silhouette_sample_size", "inertia", "bic", "stability", "noise_share",
                  "min_cluster_size", "max_cluster_size", "fit_seconds", "reason")


def size_balance(labels: np.ndarray) -> float:
    """Normalised entropy of cluster sizes, noise (-1) excluded.

    Parameters
    ----------
    labels : ndarray of shape (n_samples,), int

    Returns
    -------
    float in [0, 1], or NaN when fewer than two clusters.
    """
    lab = labels[labels >= 0]
    counts = np.bincount(lab) if lab.size else np.zeros(0)
    counts = counts[counts > 0]
    if counts.size < 2:
        return float("nan")
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum() / np.log(counts.size))


def label_free_score(stability: float, balance: float, coverage: float, k: int) -> float:
    """``stability × balance × coverage × log2(k)`` (see module docstring); NaN if any part is NaN."""
    if k < 2 or not np.isfinite(stability) or not np.isfinite(balance):
        return float("nan")
    return float(max(stability, 0.0) * balance * coverage * np.log2(k))


def build_comparison(choices: dict[str, Choice], spaces: dict[str, ReducedSpace],
                     truth: dict[str, np.ndarray], identities: np.ndarray | None) -> pd.DataFrame:
    """One row per configuration at its chosen k: metrics, label-free score, external checks.

    Parameters
    ----------
    choices : dict of str -> Choice
    spaces : dict of str -> ReducedSpace
        Needed for the space description (components, explained variance).
    truth : dict of str -> ndarray of shape (n_samples,)
        Label columns for external checks only (may be empty).
    identities : ndarray of shape (n_samples,) or None
        Object identity per image (e.g. VeRi vehicle id), for ``identity_share``.

    Returns
    -------
    DataFrame
        Columns ``descriptor, preprocessing, algorithm, space, n_components, k, <metrics>,
        balance, coverage, score, ari_<label>, nmi_<label>, purity_<label>, identity_share,
        k_reason``; sorted by ``score`` (best first).
    """
    from .metrics import external_scores, identity_share

    rows = []
    for key, ch in choices.items():
        space = spaces[f"{ch.descriptor}/{ch.preprocessing}"]
        sw = ch.sweep
        at_k = sw[sw["k"] == ch.k]
        metrics = at_k.iloc[0].to_dict() if len(at_k) else {}
        row = {
            "descriptor": ch.descriptor,
            "preprocessing": ch.preprocessing,
            "algorithm": ch.algorithm,
            "space": f"{ch.preprocessing} + PCA {space.n_components} "
                     f"({float(np.sum(space.explained_variance_ratio[:space.n_components])):.0%} variance)",
            "n_components": space.n_components,
            "k": ch.k,
        }
        for col in METRIC_COLUMNS:
            if col in metrics:
                row[col] = metrics[col]
        labels = np.asarray(ch.labels)
        stability = float(metrics.get("stability", np.nan))
        coverage = float(np.mean(labels >= 0))
        balance = size_balance(labels)
        row["balance"] = round(balance, 6) if np.isfinite(balance) else np.nan
        row["coverage"] = round(coverage, 6)
        score = label_free_score(stability, balance, coverage, int(ch.k))
        row["score"] = round(score, 6) if np.isfinite(score) else np.nan
        for col, y in truth.items():
            ext = external_scores(labels, y)
            for m in ("ari", "nmi", "purity"):
                row[f"{m}_{col}"] = ext[m]
        if identities is not None:
            row["identity_share"] = identity_share(labels, identities)
        row["k_reason"] = ch.reason
        rows.append(row)
    table = pd.DataFrame(rows)
    # Ties (equal score to 6 decimals) go to the simpler, cheaper algorithm (k-means first),
    # then by names, so the order is deterministic.
    table["_algo_order"] = table["algorithm"].map(lambda a: ALGORITHM_NAMES.index(a) if a in ALGORITHM_NAMES else 99)
    table = table.sort_values(["score", "_algo_order", "descriptor", "preprocessing"],
                              ascending=[False, True, True, True], kind="mergesort", na_position="last")
    return table.drop(columns="_algo_order").reset_index(drop=True)


def recommend(comparison: pd.DataFrame) -> tuple[str, str, pd.DataFrame]:
    """Mark the recommended configuration and explain it in words.

    The recommended row is the one with the highest label-free ``score``; ties are broken
    by the table order (k-means before the other algorithms, then descriptor and
    preprocessing names), so the choice is deterministic.

    Parameters
    ----------
    comparison : DataFrame from :func:`build_comparison`

    Returns
    -------
    key : str
        ``"<descriptor>/<preprocessing>/<algorithm>"`` of the recommended row.
    text : str
        The justification, naming the runner-ups and their scores.
    table : DataFrame
        ``comparison`` with a boolean ``recommended`` column (true on exactly one row) and ``rank``.

    Raises
    ------
    ValueError
        If no configuration has a finite score (every clustering degenerate).
    """
    table = comparison.copy()
    finite = table["score"].notna()
    if not finite.any():
        raise ValueError("no configuration produced a usable clustering (all label-free scores are NaN); "
                         "see the `reason` column of study.csv")
    best = int(np.flatnonzero(finite.to_numpy())[0])
    table["rank"] = np.arange(1, len(table) + 1)
    table["recommended"] = False
    table.loc[best, "recommended"] = True
    r = table.loc[best]
    key = f"{r['descriptor']}/{r['preprocessing']}/{r['algorithm']}"
    others = table[finite & (table.index != best)].head(3)
    runner = "; ".join(
        f"{o.descriptor}/{o.preprocessing}/{o.algorithm} k={o.k} (score {o.score:.2f}, stability {o.stability:.2f})"
        for o in others.itertuples()
    )
    text = (
        f"Recommended: descriptor {r['descriptor']}, preprocessing {r['preprocessing']} "
        f"({r['space']}), algorithm {r['algorithm']}, k = {r['k']}. "
        f"It has the highest label-free score {r['score']:.2f} = stability {r['stability']:.2f} "
        f"(split-half ARI) × size balance {r['balance']:.2f} × coverage {r['coverage']:.2f} × log2(k). "
        f"Internal metrics (CH, DB, silhouette) are not compared across spaces of different dimension; "
        f"they chose k within each sweep only. Runner-ups: {runner or 'none'}."
    )
    return key, text, table
