"""Static figures (matplotlib, PNG bytes) and the interactive map (plotly) of the report.

Every ``*_png`` function returns PNG bytes, ready for an atomic write; figures
are closed after saving so a report with hundreds of clusters does not keep
them in memory. The interactive map is a plotly ``scattergl`` (WebGL) figure:
one trace per cluster, the image index of every point in ``customdata`` for the
page's hover handler.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no display: figures are only written to files
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

#: Sweep metrics drawn against k: column -> (title, "higher"/"lower" is better).
SWEEP_METRICS = {
    "calinski_harabasz": ("Calinski–Harabasz (higher is better)", "higher"),
    "davies_bouldin": ("Davies–Bouldin (lower is better)", "lower"),
    "silhouette": ("silhouette (higher is better)", "higher"),
    "stability": ("stability, mean ARI over resamples (higher is better)", "higher"),
}


def cluster_colours(ids) -> dict[int, str]:
    """Hex colour per cluster id (matplotlib ``tab20`` cycled; noise ``-1`` is light grey)."""
    cmap = plt.get_cmap("tab20")
    out = {}
    for j, c in enumerate(sorted(int(i) for i in ids if int(i) >= 0)):
        out[c] = matplotlib.colors.to_hex(cmap(j % 20))
    out[-1] = "#c8c8c8"
    return out


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def variance_png(spaces: dict) -> bytes:
    """Cumulative explained-variance curves, one panel per descriptor, one line per preprocessing.

    Parameters
    ----------
    spaces : dict of str -> ReducedSpace
        The kept component count is marked with a dot, the target with a dashed line.

    Returns
    -------
    bytes
        PNG.
    """
    by_desc: dict[str, list] = {}
    for sp in spaces.values():
        by_desc.setdefault(sp.descriptor, []).append(sp)
    n = max(1, len(by_desc))
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.2), squeeze=False)
    for ax, (desc, items) in zip(axes[0], sorted(by_desc.items())):
        for sp in items:
            cum = np.cumsum(np.asarray(sp.explained_variance_ratio, dtype=float))
            if len(cum) == 0:
                continue
            x = np.arange(1, len(cum) + 1)
            (line,) = ax.plot(x, cum, lw=1.4, label=f"{sp.preprocessing} ({sp.n_components})")
            kept = min(max(sp.n_components, 1), len(cum))
            ax.plot([kept], [cum[kept - 1]], "o", color=line.get_color())
            ax.axhline(sp.variance_target, color="grey", ls="--", lw=0.8)
        ax.set_title(desc, fontsize=10)
        ax.set_xlabel("principal components")
        ax.set_ylabel("cumulative explained variance")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, title="scaler (kept)", title_fontsize=7)
    return _png(fig)


def sweep_png(choices: list, recommended: str | None = None) -> bytes:
    """Metric-vs-k curves for the configurations of one algorithm, chosen k marked.

    Parameters
    ----------
    choices : list of Choice
        Same algorithm; each ``sweep`` has a ``k`` column and metric columns
        (see :data:`SWEEP_METRICS`; absent ones are skipped).
    recommended : str, optional
        ``Choice.key`` drawn thicker.

    Returns
    -------
    bytes
        PNG: one panel per metric; a star marks each configuration's chosen k.
    """
    metrics = [m for m in SWEEP_METRICS
               if any(m in ch.sweep.columns and ch.sweep[m].notna().any() for ch in choices)]  # skip all-NaN
    n = max(1, len(metrics))
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.0), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for ch in choices:
            sw = ch.sweep
            if metric not in sw.columns or "k" not in sw.columns:
                continue
            sw = sw.sort_values("k")
            thick = ch.key == recommended
            label = f"{ch.descriptor}/{ch.preprocessing}" + (" (recommended)" if thick else "")
            (line,) = ax.plot(sw["k"], sw[metric], lw=2.4 if thick else 1.0, alpha=1 if thick else 0.75, label=label)
            at = sw[sw["k"] == ch.k]
            if len(at):
                ax.plot([ch.k], [at[metric].iloc[0]], "*", ms=11 if thick else 7, color=line.get_color(),
                        markeredgecolor="black", markeredgewidth=0.5)
        ax.set_title(SWEEP_METRICS[metric][0], fontsize=9)
        ax.set_xlabel("k (clusters)")
        ax.grid(alpha=0.3)
    if metrics:
        handles, labels = axes[0][0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="upper center", ncol=min(4, len(labels)), fontsize=7,
                       bbox_to_anchor=(0.5, -0.04), frameon=False)
    return _png(fig)


def map_png(Y: np.ndarray, labels: np.ndarray, title: str = "") -> bytes:
    """Static 2-D map of every point, coloured by cluster, cluster ids at their medians.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, 2), float32
    labels : ndarray of shape (n_samples,), int

    Returns
    -------
    bytes
        PNG (points rasterised; size independent of ``n_samples``).
    """
    colours = cluster_colours(np.unique(labels))
    n = len(Y)
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    point = 6.0 if n < 2_000 else 2.0 if n < 50_000 else 0.3
    rng = np.random.default_rng(0)
    order = rng.permutation(n)  # no cluster systematically painted over the others
    ax.scatter(Y[order, 0], Y[order, 1], s=point, c=[colours[int(c)] for c in labels[order]], linewidths=0,
               rasterized=True)
    for c in np.unique(labels):
        if c < 0:
            continue
        mx, my = np.median(Y[labels == c], axis=0)
        ax.text(mx, my, str(int(c)), fontsize=9, weight="bold", ha="center", va="center",
                bbox=dict(boxstyle="round,pad=0.15", fc="white", ec=colours[int(c)], alpha=0.85))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    return _png(fig)


def distance_hist_png(dist: np.ndarray, xmax: float, colour: str = "#1f77b4") -> bytes:
    """Histogram of distances to the cluster centre (shared x range so clusters compare).

    Parameters
    ----------
    dist : ndarray of shape (n_members,), float32
        Distances in the units of the reduced space.
    xmax : float
        Right end of the x axis (e.g. the 99th percentile over all clusters).

    Returns
    -------
    bytes
        PNG, small (about 320×140 px).
    """
    fig, ax = plt.subplots(figsize=(3.4, 1.5))
    ax.hist(np.clip(dist, 0, xmax), bins=30, range=(0, xmax), color=colour)
    ax.axvline(float(np.median(dist)), color="black", lw=1, ls="--")
    ax.set_xlabel("distance to centre (median dashed)", fontsize=7)
    ax.set_ylabel("images", fontsize=7)
    ax.tick_params(labelsize=6)
    return _png(fig)


def contingency_png(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> bytes:
    """Heat-map of the contingency table of two clusterings, rows normalised to shares.

    Parameters
    ----------
    a, b : ndarray of shape (n_samples,), int
        Cluster ids of the same images under two descriptors.

    Returns
    -------
    bytes
        PNG; cell ``(i, j)`` = share of cluster ``i`` of ``a`` that falls in cluster ``j`` of ``b``.
    """
    table = pd.crosstab(pd.Series(a, name=name_a), pd.Series(b, name=name_b))
    shares = table.div(table.sum(axis=1), axis=0)
    h, w = shares.shape
    fig, ax = plt.subplots(figsize=(min(12, 2 + 0.35 * w), min(12, 1.5 + 0.3 * h)))
    im = ax.imshow(shares.to_numpy(), cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(w), [str(c) for c in shares.columns], fontsize=7)
    ax.set_yticks(range(h), [str(c) for c in shares.index], fontsize=7)
    ax.set_xlabel(f"cluster under {name_b}")
    ax.set_ylabel(f"cluster under {name_a}")
    fig.colorbar(im, ax=ax, label="share of the row's images")
    return _png(fig)


def agreement_png(agreement: pd.DataFrame) -> bytes:
    """Annotated heat-map of the ARI agreement matrix between descriptors.

    Parameters
    ----------
    agreement : DataFrame, square
        ARI (Hubert & Arabie 1985) between chosen clusterings, keyed by descriptor.

    Returns
    -------
    bytes
        PNG.
    """
    m = agreement.to_numpy(dtype=float)
    k = len(m)
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * k, 1.2 + 0.9 * k))
    im = ax.imshow(m, cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(k), [str(c) for c in agreement.columns], rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(k), [str(c) for c in agreement.index], fontsize=8)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if m[i, j] < 0.6 else "black")
    fig.colorbar(im, ax=ax, label="adjusted Rand index")
    return _png(fig)


def interactive_map_figure(Y: np.ndarray, labels: np.ndarray, index: np.ndarray, title: str = ""):
    """Plotly WebGL scatter (``scattergl``; ``scatter3d`` for 3 columns) of the shown points.

    Parameters
    ----------
    Y : ndarray of shape (n_shown, 2 or 3), float32
        Coordinates of the shown points.
    labels : ndarray of shape (n_shown,), int
        Their clusters (one trace per cluster, so the legend can hide clusters).
    index : ndarray of shape (n_shown,), int
        Row number of every shown point in ``RunResult.paths`` (``customdata``).
    title : str

    Returns
    -------
    plotly.graph_objects.Figure
    """
    import plotly.graph_objects as go

    colours = cluster_colours(np.unique(labels))
    three = Y.shape[1] == 3
    traces = []
    for c in np.unique(labels):
        rows = labels == c
        name = "noise" if c < 0 else f"cluster {int(c)}"
        common = dict(mode="markers", name=name, customdata=index[rows].astype(int), hoverinfo="none")
        if three:
            traces.append(go.Scatter3d(x=Y[rows, 0], y=Y[rows, 1], z=Y[rows, 2],
                                       marker=dict(size=2, color=colours[int(c)]), **common))
        else:
            traces.append(go.Scattergl(x=Y[rows, 0], y=Y[rows, 1],
                                       marker=dict(size=5 if len(Y) < 5_000 else 3, color=colours[int(c)]),
                                       **common))
    fig = go.Figure(traces)
    fig.update_layout(margin=dict(l=10, r=10, t=30, b=10), height=560, title=dict(text=title, font=dict(size=12)),
                      legend=dict(itemsizing="constant", font=dict(size=10)), hovermode="closest",
                      template="plotly_white", dragmode="zoom")
    if not three:
        fig.update_xaxes(showticklabels=False)
        fig.update_yaxes(showticklabels=False)
    return fig


#: plotly config of every interactive map.
PLOT_CONFIG = {"displaylogo": False, "responsive": True}


def interactive_map_html(fig, div_id: str) -> str:
    """HTML fragment drawing ``fig`` at page load, with plotly.js embedded inline (offline).

    Parameters
    ----------
    fig : plotly Figure
        From :func:`interactive_map_figure`.
    div_id : str
        Id of the plot's ``<div>``.

    Returns
    -------
    str
        ``<div>`` + ``<script>`` (includes the whole plotly.js bundle, about 4.8 MB).
    """
    import plotly.io as pio

    return pio.to_html(fig, full_html=False, include_plotlyjs=True, div_id=div_id, config=PLOT_CONFIG)


def figure_json(fig) -> str:
    """The figure as JSON (``{"data", "layout"}``), for drawing later with ``Plotly.newPlot``."""
    return fig.to_json()
