"""All plotting lives here; nothing else in the package imports matplotlib.

Figures are built with ``matplotlib.figure.Figure`` rather than pyplot, so saving a plot never
changes the backend or global state of the caller (a notebook keeps its inline plots).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from matplotlib.figure import Figure


def _save(fig: Figure, path: str | Path) -> Path:
    """Write to a temporary name, then rename: a reader never sees half a PNG."""
    from gemdiff.common.files import atomic_path

    with atomic_path(path, ".tmp.png") as tmp:
        fig.savefig(tmp)
    return Path(path)


def loss_curve(steps: Sequence[int], losses: Sequence[float], path: str | Path,
               val_steps: Sequence[int] = (), val_losses: Sequence[float] = ()) -> Path:
    """Training (and validation) loss against optimizer step, log-scaled, saved as PNG."""
    fig = Figure(figsize=(6, 3.5), dpi=120, layout="tight")
    ax = fig.add_subplot()
    ax.plot(steps, losses, lw=1, alpha=0.8, label="train")
    if len(val_steps):
        ax.plot(val_steps, val_losses, "o-", ms=3, label="validation (EMA, held-out split)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("noise-prediction MSE")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    return _save(fig, path)


def gene_caption(genes: Sequence[str], limit: int = 8) -> str:
    """``16 genes: A, B, C, ... (+8)``: which genes a figure's samples are made of."""
    genes = list(genes)
    shown = ", ".join(genes[:limit]) + (f", ... (+{len(genes) - limit})"
                                        if len(genes) > limit else "")
    return f"{len(genes)} gene{'s' * (len(genes) != 1)}: {shown}"


def _scatter_groups(ax, emb, groups, names_colors, size=None, axis: str = "UMAP"):
    if size is None:  # larger points where there are few
        size = 8 if len(emb) > 300 else 20
    for name, color in names_colors:
        mask = groups == name
        if mask.any():
            ax.scatter(emb[mask, 0], emb[mask, 1], s=size, c=color, alpha=0.6, lw=0,
                       label=f"{name} (n={int(mask.sum())})")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(f"{axis} 1")
    ax.set_ylabel(f"{axis} 2")
    # beside the points, never over them
    ax.legend(frameon=False, fontsize=7, markerscale=2, loc="upper left",
              bbox_to_anchor=(1.0, 1.0), borderaxespad=0.3)


PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]
PAIRS = [("#1f4e99", "#8fb8e8"), ("#b2182b", "#f4a582"), ("#1b7837", "#a6dba0"),
         ("#6a3d9a", "#cab2d6"), ("#8c510a", "#dfc27d")]


def umap_real_vs_synthetic(emb, classes, is_synthetic, path, title: str = "",
                           genes: Sequence[str] = (), axis: str = "UMAP") -> Path:
    """Real and synthetic samples embedded together (``axis``: UMAP or PC), one colour per
    class and origin; the caption names the genes."""
    import numpy as np

    groups = np.array([f"{'synthetic' if s else 'real'} {c}" for c, s in
                       zip(classes, is_synthetic, strict=True)])
    # One hue per class: real samples dark, synthetic ones light.
    order = list(dict.fromkeys(sorted(classes)))
    colors = []
    for i, c in enumerate(order):
        dark, light = PAIRS[i % len(PAIRS)]
        colors += [(f"real {c}", dark), (f"synthetic {c}", light)]
    fig = Figure(figsize=(7.0, 5.0), dpi=120, layout="constrained")
    ax = fig.add_subplot()
    _scatter_groups(ax, emb, groups, colors, axis=axis)
    head = title or f"{axis}: real vs synthetic"
    ax.set_title(head + (f"\n{gene_caption(genes)}" if len(genes) else ""), fontsize=8)
    return _save(fig, path)


def umap_perturbation(panels, path, genes: Sequence[str] = (), axis: str = "UMAP") -> Path:
    """One panel per (title, embedding, group labels): real target, source, perturbed
    (``axis``: UMAP, or PC for the principal components of a few samples)."""
    colors = {"target": "#1f77b4", "source": "#ff7f0e", "perturbed source": "#2ca02c"}
    fig = Figure(figsize=(6.5 * len(panels), 5.0), dpi=120, layout="constrained")
    for i, (title, emb, groups) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        names = [(g, colors.get(g.split(":")[0], "#7f7f7f")) for g in dict.fromkeys(groups)]
        _scatter_groups(ax, emb, groups, names, axis=axis)
        ax.set_title(title, fontsize=9)
    if len(genes):
        fig.suptitle(f"{axis} of real and perturbed samples; {gene_caption(genes)}", fontsize=9)
    return _save(fig, path)


def trajectory_panel(frames, path, xlim=None, ylim=None, source: str = "source",
                     target: str = "target") -> Path:
    """Small multiples of 2-D projections of the bridge's intermediate states: (title, points,
    reference). Encoding states (with the source label, toward noise) and decoding states
    (with the target label, back to data) have their own colours; real target samples are the
    grey reference in every panel, on the same axes."""
    import numpy as np

    n = len(frames)
    cols = min(n, 6)
    rows = (n + cols - 1) // cols
    fig = Figure(figsize=(2.4 * cols, 2.4 * rows + 0.9), dpi=120, layout="constrained")
    pts_all = np.concatenate([f[1] for f in frames] + [f[2] for f in frames if f[2] is not None])
    lo, hi = pts_all.min(axis=0), pts_all.max(axis=0)
    pad = 0.05 * (hi - lo)
    xlim = xlim or (lo[0] - pad[0], hi[0] + pad[0])
    ylim = ylim or (lo[1] - pad[1], hi[1] + pad[1])
    handles = {}
    for i, (title, pts, ref) in enumerate(frames):
        ax = fig.add_subplot(rows, cols, i + 1)
        if ref is not None:
            handles["ref"] = ax.scatter(ref[:, 0], ref[:, 1], s=3, c="#9e9e9e", alpha=0.35,
                                        lw=0)
        decoding = str(title).startswith("decode")
        color = "#2ca02c" if decoding else "#ff7f0e"
        handles["decode" if decoding else "encode"] = ax.scatter(
            pts[:, 0], pts[:, 1], s=3, c=color, alpha=0.7, lw=0)
        ax.set_title(title, fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlim(xlim)
        ax.set_ylim(ylim)
        if i % cols == 0:
            ax.set_ylabel("PC 2", fontsize=7)
        if i >= n - cols:
            ax.set_xlabel("PC 1", fontsize=7)
    labels = {"ref": f"real {target} samples", "encode": f"encoding with label {source}",
              "decode": f"decoding with label {target}"}
    fig.legend([handles[k] for k in labels if k in handles],
               [labels[k] for k in labels if k in handles], loc="outside lower center",
               ncol=3, fontsize=7, markerscale=3, frameon=False)
    fig.suptitle(f"The bridge from {source} to {target}: states at each recorded timestep t, on "
                 "the real samples' first two principal components", fontsize=8)
    return _save(fig, path)


def gene_shifts(genes: Sequence[str], source, moved, target, path, source_name: str = "source",
                target_name: str = "target", unit: str = "log2(n + 1)") -> Path:
    """Per gene (the top core genes), the distributions of the source samples, the same
    samples perturbed and the real target samples side by side (box plots with points)."""
    import numpy as np

    n = len(genes)
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    fig = Figure(figsize=(3.0 * cols, 2.6 * rows + 0.6), dpi=120, layout="constrained")
    names = [source_name, f"{source_name} perturbed", target_name]
    colors = ["#ff7f0e", "#2ca02c", "#1f77b4"]
    rng = np.random.default_rng(0)
    for i, gene in enumerate(genes):
        ax = fig.add_subplot(rows, cols, i + 1)
        data = [np.asarray(source[:, i]), np.asarray(moved[:, i]), np.asarray(target[:, i])]
        box = ax.boxplot(data, patch_artist=True, widths=0.5, showfliers=False)
        for patch, c in zip(box["boxes"], colors, strict=True):
            patch.set_facecolor(c)
            patch.set_alpha(0.35)
        for k, (vals, c) in enumerate(zip(data, colors, strict=True)):
            ax.scatter(k + 1 + rng.uniform(-0.15, 0.15, len(vals)), vals, s=4, c=c, lw=0,
                       alpha=0.6)
        ax.set_xticks([1, 2, 3], ["source", "perturbed", "target"], fontsize=7)
        ax.set_title(str(gene), fontsize=8)
        if i % cols == 0:
            ax.set_ylabel(unit, fontsize=7)
    fig.suptitle(f"Top core genes: {names[0]} samples, the same carried to {target_name}, and "
                 f"real {target_name} samples", fontsize=8)
    return _save(fig, path)


def enrichment_dots(table, path, fdr: float) -> Path:
    """Dot plot of enriched sets: -log10 q across, one row per set (best on top), dot size the
    number of listed genes in the set, colour the fold enrichment; the line marks q = fdr."""
    import numpy as np

    df = table.iloc[::-1]
    logq = -np.log10(np.clip(df["q"].to_numpy(dtype=float), 1e-300, None))
    fig = Figure(figsize=(10, 0.32 * len(df) + 1.4), dpi=120, layout="tight")
    ax = fig.add_subplot(1, 1, 1)
    pts = ax.scatter(logq, np.arange(len(df)), s=20 + 8 * df["k"].to_numpy(dtype=float),
                     c=df["fold"].to_numpy(dtype=float), cmap="viridis", edgecolors="k", lw=0.3)
    ax.axvline(-np.log10(fdr), color="grey", ls="--", lw=0.8)
    labels = [f"{s[:60]}  ({str(lib).removesuffix('.gmt')})"
              for s, lib in zip(df["set"], df["library"], strict=True)]
    ax.set_yticks(np.arange(len(df)), labels, fontsize=7)
    ax.set_xlabel("-log10 q (Benjamini-Yekutieli); dashed line: q = fdr")
    ax.set_title("Enriched gene sets, best on top", fontsize=9)
    fig.colorbar(pts, ax=ax, label="fold enrichment (observed / expected overlap)")
    sizes = sorted({int(v) for v in np.quantile(df["k"].to_numpy(dtype=float), [0, 0.5, 1])})
    handles = [ax.scatter([], [], s=20 + 8 * k, c="white", edgecolors="k", lw=0.5)
               for k in sizes]
    ax.legend(handles, [str(k) for k in sizes], title="listed genes\nin the set",
              loc="lower right", fontsize=7, title_fontsize=7, frameon=True, labelspacing=1.2)
    return _save(fig, path)


def screen_histogram(subsets, control, high: float, low: float, path) -> Path:
    """Silhouette of the library's subsets against the random control sets, with the high and
    low cluster-potential thresholds."""
    import numpy as np

    s, c = np.asarray(subsets, float), np.asarray(control, float)
    s, c = s[np.isfinite(s)], c[np.isfinite(c)]
    values = np.concatenate([s, c]) if len(c) else s
    bins = np.linspace(values.min(), values.max(), 40) if len(values) and np.ptp(values) else 20
    fig = Figure(figsize=(6, 3.5), dpi=120, layout="tight")
    ax = fig.add_subplot()
    if len(c):
        ax.hist(c, bins=bins, density=True, alpha=0.5, color="grey",
                label=f"random sets (n={len(c)})")
    ax.hist(s, bins=bins, density=True, alpha=0.6, color="#1f77b4",
            label=f"gene-set subsets (n={len(s)})")
    for x, name in ((high, "high"), (low, "low")):
        ax.axvline(x, color="#d62728", ls="--", lw=1)
        ax.text(x, ax.get_ylim()[1] * 0.95, f" {name}", color="#d62728", fontsize=8, va="top")
    ax.set_xlabel("silhouette by class")
    ax.set_ylabel("density")
    ax.legend(frameon=False, fontsize=8)
    return _save(fig, path)


def screen_umaps(panels, classes, path) -> Path:
    """UMAPs of the best and worst subsets: ``panels`` is a list of (title, embedding)."""
    import numpy as np

    classes = np.asarray(classes)
    names = sorted(set(classes.tolist()))
    ncol = min(len(panels), max(1, len(panels) // 2)) if len(panels) > 1 else 1
    nrow = int(np.ceil(len(panels) / ncol))
    fig = Figure(figsize=(3 * ncol, 3 * nrow), dpi=110, layout="tight")
    for i, (title, emb) in enumerate(panels):
        ax = fig.add_subplot(nrow, ncol, i + 1)
        _scatter_groups(ax, emb, classes, zip(names, PALETTE * 3, strict=False), size=4)
        ax.set_title(title, fontsize=7)
    return _save(fig, path)


def feature_sizes(table, path) -> Path:
    """Mean +- SD silhouette of random gene sets against their size (the paper's Table 2)."""
    fig = Figure(figsize=(5, 3.5), dpi=120, layout="tight")
    ax = fig.add_subplot()
    for col, label in (("all", "random genes"), ("sets", "random gene-set genes")):
        ax.errorbar(table["size"], table[f"{col}_mean"], yerr=table[f"{col}_sd"], marker="o",
                    ms=4, capsize=3, label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("genes per set")
    ax.set_ylabel("silhouette by class")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8)
    return _save(fig, path)


def subset_correlation(per_subset, r, p, path) -> Path:
    """Mean perturbation score of each subset against its silhouette (the paper's Fig. 6)."""
    fig = Figure(figsize=(5, 4), dpi=120, layout="tight")
    ax = fig.add_subplot()
    ax.scatter(per_subset["silhouette"], per_subset["mean_score"], s=14, alpha=0.7)
    ax.set_xlabel("silhouette of the subset (cluster potential)")
    ax.set_ylabel("mean perturbation score (log2 units)")
    if r is not None:
        ax.set_title(f"Pearson r = {r:.2f} (p = {p:.2g}, {len(per_subset)} subsets)", fontsize=9)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def core_scores(genes, threshold: float, path) -> Path:
    """Distribution of the genes' perturbation scores with the core-gene threshold."""
    fig = Figure(figsize=(6, 3.5), dpi=120, layout="tight")
    ax = fig.add_subplot()
    ax.hist(genes["score"], bins=50, color="#1f77b4", alpha=0.7,
            label=f"screened genes (n={len(genes)})")
    if "null_score" in genes:
        ax.hist(genes["null_score"].dropna(), bins=50, color="grey", alpha=0.5,
                label="same genes, permuted labels")
    ax.axvline(threshold, color="#d62728", ls="--", lw=1,
               label=f"core: {int((genes['score'] > threshold).sum())} genes")
    ax.set_xlabel("perturbation score (mean |x - x'|, log2 units)")
    ax.set_ylabel("genes")
    ax.legend(frameon=False, fontsize=8)
    return _save(fig, path)


def ppi_network(edges, degrees, path) -> Path:
    """Interaction network of a gene list (spring layout, node size by degree) and its degree
    distribution, as the paper's Fig. 7."""
    import networkx as nx
    import numpy as np

    g = nx.Graph()
    g.add_edges_from(zip(edges["a"], edges["b"], strict=True))
    fig = Figure(figsize=(9, 4.5), dpi=120, layout="tight")
    ax = fig.add_subplot(1, 2, 1)
    if g.number_of_nodes():
        pos = nx.spring_layout(g, seed=0)
        for a, b in g.edges():
            ax.plot(*zip(pos[a], pos[b], strict=True), color="grey", lw=0.4, alpha=0.5)
        xy = np.array([pos[n] for n in g.nodes()])
        deg = np.array([g.degree(n) for n in g.nodes()])
        ax.scatter(xy[:, 0], xy[:, 1], s=10 + 8 * deg, c=deg, cmap="viridis", zorder=3)
        for n in sorted(g.nodes(), key=g.degree, reverse=True)[:10]:
            ax.annotate(n, pos[n], fontsize=6, ha="center", va="bottom")
    ax.set_title(f"{g.number_of_nodes()} connected genes, {g.number_of_edges()} interactions",
                 fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    ax = fig.add_subplot(1, 2, 2)
    counts = degrees["degree"].value_counts().sort_index()
    ax.bar(counts.index, counts.values, color="#1f77b4")
    ax.set_xlabel("degree")
    ax.set_ylabel("genes")
    ax.set_title("degree distribution", fontsize=9)
    return _save(fig, path)
