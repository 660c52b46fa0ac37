"""Table 2's plot and Figure 5: linear-probe top-1 against the latent dimension per token d (log scale), one
line per patch tokenizer and the pixel tokenizer (each point labelled with its image size); the paper's numbers
on the left at the paper's d, ours on the right at our scale's d.

Draws from the ladder report's table (`ladder/report.py: table`): the rows marked as sweep points.
"""

from __future__ import annotations

import statistics

from ldae_jax.viz import png

SERIES = {"pca": "patch-wise PCA", "patch_ae": "patch-wise AE", "patch_vae": "patch-wise VAE",
          "pixel": "pixel (Figure 5)"}
OFFSETS = {"pca": (0, 5), "patch_ae": (-9, -10), "patch_vae": (9, -10), "pixel": (0, 5)}  # keep labels apart


def points(table: list[dict]) -> tuple[dict, dict]:
    """(paper, ours): {tokenizer kind: [(d, top-1, 95% half-width, image size)]} sorted by d."""
    paper, ours = {}, {}
    for r in table:
        if not r["sweep"] or r["kind"] not in SERIES:
            continue
        if r["paper"] is not None:
            paper.setdefault(r["kind"], []).append((r["paper_d"], r["paper"], 0.0, r["paper_image_size"]))
        if r["results"]:
            half = r.get("ci") or 0.0  # the 95% interval of the mean over seeds
            ours.setdefault(r["kind"], []).append((r["d"], statistics.fmean(r["results"]), half, r["image_size"]))
    return ({k: sorted(v) for k, v in paper.items()}, {k: sorted(v) for k, v in ours.items()})


def plot_latent_dim(table: list[dict], path: str, scale: str) -> bool:
    """Draws `path`; False (nothing written) when no sweep row has a result."""
    plt = png.pyplot()

    paper, ours = points(table)
    if not ours:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, data, title in ((axes[0], paper, "paper (ImageNet, ViT-1/2L)"), (axes[1], ours, f"ours ({scale} scale)")):
        for i, name in enumerate(SERIES):
            pts = data.get(name)
            if not pts:
                continue
            xs, ys, errs = [p[0] for p in pts], [p[1] for p in pts], [p[2] for p in pts]
            style = dict(color=f"C{i}", marker="o", ms=4, capsize=2, label=SERIES[name])
            ax.errorbar(xs, ys, yerr=errs if any(errs) else None, ls="--" if name == "pixel" else "-", **style)
            for x, y, _, px in pts:
                label = f"{y:.1f}" + (f"\n{px}px" if name == "pixel" else "")
                ax.annotate(label, (x, y), textcoords="offset points", xytext=OFFSETS[name], ha="center",
                            fontsize=6, color=f"C{i}")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("latent dimension per token d (log)", fontsize=8)
        ax.set_ylabel("linear-probe top-1 (%)", fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("probe accuracy vs latent dimension (paper Table 2 and Figure 5)", fontsize=9)
    fig.tight_layout()
    png.save_figure(fig, path)
    return True
