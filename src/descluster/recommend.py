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
- ``consensus``: mean normalised mutual information between this clustering and the
  reference clustering of every *other* descriptor kind (each kind's reference is its best
  configuration by the four factors above). This is the cluster-ensemble criterion of
  Strehl & Ghosh (2002, "Cluster ensembles", JMLR 3:583–617: the consensus partition
  maximises the average NMI with the others): a grouping that independent models agree on
  is more likely a property of the images than of one model. With a single descriptor kind
  it is 1 (neutral).

The label-free ``score`` is ``stability × balance × coverage × log2(k) × consensus``: the
stable, balanced information (in bits) the clustering carries, weighted by how much of it
the other descriptor kinds confirm. It never looks at ``labels.csv``. External scores (ARI,
NMI, purity against every label column, and the share of object identities kept in one
cluster) are reported beside it and never used.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .config import ALGORITHM_NAMES
from .errors import NoUsableClusteringError
from .results import Choice, ReducedSpace, choice_key

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


def label_free_score(stability: float, balance: float, coverage: float, k: int, consensus: float = 1.0) -> float:
    """``stability × balance × coverage × log2(k) × consensus`` (see module docstring).

    Returns
    -------
    float
        NaN if any factor is NaN or ``k < 2``.
    """
    if k < 2 or not all(np.isfinite(v) for v in (stability, balance, coverage, consensus)):
        return float("nan")
    return float(max(stability, 0.0) * balance * coverage * np.log2(k) * consensus)


def consensus_nmi(labels: np.ndarray, references: list[np.ndarray]) -> float:
    """Mean NMI (arithmetic normalisation, scikit-learn) between ``labels`` and each reference.

    Parameters
    ----------
    labels : ndarray of shape (n_samples,), int
    references : list of ndarray of shape (n_samples,), int
        Clusterings of the same rows by other descriptor kinds (noise -1 kept as a group).

    Returns
    -------
    float in [0, 1]; 1.0 when ``references`` is empty (nothing to agree with).
    """
    from sklearn.metrics import normalized_mutual_info_score

    if not references:
        return 1.0
    return float(np.mean([normalized_mutual_info_score(r, labels) for r in references]))


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
        balance, coverage, base_score, consensus, score, ari_<label>, nmi_<label>, purity_<label>, identity_share,
        k_reason``; sorted by ``score`` (best first).
    """
    from .metrics import external_scores, identity_share

    rows = []
    for key, ch in choices.items():
        space = spaces[ch.space.key]
        sw = ch.sweep
        at_k = sw[sw["k"] == ch.k]
        metrics = at_k.iloc[0].to_dict() if len(at_k) else {}
        row = {
            "descriptor": ch.descriptor,
            "preprocessing": ch.preprocessing,
            "algorithm": ch.algorithm,
            "space": (f"concatenated {ch.preprocessing} blocks, each scaled to unit total variance "
                      f"({space.n_components} dims)") if ch.space.is_mixture else
                     f"{ch.preprocessing} + PCA {space.n_components} "
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
        base = label_free_score(stability, balance, coverage, int(ch.k))
        row["base_score"] = round(base, 6) if np.isfinite(base) else np.nan
        for col, y in truth.items():
            ext = external_scores(labels, y)
            for m in ("ari", "nmi", "purity"):
                row[f"{m}_{col}"] = ext[m]
        if identities is not None:
            row["identity_share"] = float(identity_share(labels, identities).value)
        row["k_reason"] = ch.reason
        rows.append(row)
    table = pd.DataFrame(rows)
    _add_consensus(table, choices)
    # Ties (equal score to 6 decimals) go to the simpler, cheaper algorithm (k-means first),
    # then by names, so the order is deterministic.
    table["_algo_order"] = table["algorithm"].map(_algo_order)
    table = table.sort_values(["score", "_algo_order", "descriptor", "preprocessing"],
                              ascending=[False, True, True, True], kind="mergesort", na_position="last")
    return table.drop(columns="_algo_order").reset_index(drop=True)


def _add_consensus(table: pd.DataFrame, choices: dict[str, Choice]) -> None:
    """Add ``consensus`` (mean NMI with the other kinds' references) and the final ``score``, in place."""
    single = table[~table["descriptor"].isin(mixture_names(choices)) & table["base_score"].notna()]
    order = single.assign(_a=single["algorithm"].map(_algo_order))
    order = order.sort_values(["base_score", "_a", "preprocessing"], ascending=[False, True, True], kind="mergesort")
    refs = {r.descriptor: choices[choice_key(r.descriptor, r.preprocessing, r.algorithm)].labels
            for r in order.drop_duplicates("descriptor").itertuples()}
    cons, scores = [], []
    for r in table.itertuples():
        others = [lab for d, lab in refs.items() if d != r.descriptor]
        c = consensus_nmi(np.asarray(choices[choice_key(r.descriptor, r.preprocessing, r.algorithm)].labels), others)
        cons.append(round(c, 6))
        s = r.base_score * c if np.isfinite(r.base_score) else np.nan
        scores.append(round(s, 6) if np.isfinite(s) else np.nan)
    table["consensus"] = cons
    table["score"] = scores


def _algo_order(name: str) -> int:
    names = ALGORITHM_NAMES()
    return names.index(name) if name in names else len(names)


def mixture_names(choices: dict[str, Choice]) -> set[str]:
    """``descriptor`` values of the mixture configurations among ``choices`` (their table rows)."""
    return {c.descriptor for c in choices.values() if c.space.is_mixture}


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
    NoUsableClusteringError
        If no configuration has a finite score (every clustering degenerate); the message gives each
        configuration's k and the reason.
    """
    table = comparison.copy()
    finite = table["score"].notna()
    if not finite.any():
        why = "; ".join(f"{r.descriptor}/{r.preprocessing}/{r.algorithm}: k={r.k}, {str(r.k_reason)[:120]}"
                        for r in table.head(6).itertuples())
        raise NoUsableClusteringError(
            f"no configuration of the {len(table)} studied produced a usable clustering (every label-free score "
            f"is undefined: {why}); see the `reason` column of study.csv and comparison.csv, or try other "
            "--algorithms")
    best = int(np.flatnonzero(finite.to_numpy())[0])
    table["rank"] = np.arange(1, len(table) + 1)
    table["recommended"] = False
    table.loc[best, "recommended"] = True
    r = table.loc[best]
    key = choice_key(r["descriptor"], r["preprocessing"], r["algorithm"])
    others = table[finite & (table.index != best)].head(3)
    runner = "; ".join(
        f"{choice_key(o.descriptor, o.preprocessing, o.algorithm)} k={o.k} (score {o.score:.2f}, stability {o.stability:.2f}, "
        f"consensus {o.consensus:.2f})"
        for o in others.itertuples()
    )
    text = (
        f"Recommended: descriptor {r['descriptor']}, preprocessing {r['preprocessing']} "
        f"({r['space']}), algorithm {r['algorithm']}, k = {r['k']}. "
        f"It has the highest label-free score {r['score']:.2f} = stability {r['stability']:.2f} "
        f"(split-half ARI) × size balance {r['balance']:.2f} × coverage {r['coverage']:.2f} × log2(k) "
        f"× consensus {r['consensus']:.2f} (mean NMI with the other descriptor kinds' clusterings). "
        f"Internal metrics (CH, DB, silhouette) are not compared across spaces of different dimension; "
        f"they chose k within each sweep only. Runner-ups: {runner or 'none'}."
    )
    return key, text, table
