"""Table 2's plot and Figure 5: linear-probe top-1 against the latent dimension per token d (log scale), one
line per patch tokenizer (t2.pca / t2.ae / t2.vae rows) and the pixel tokenizer (f5.pixel rows, each point
labelled with its image size); the paper's numbers on the left, ours on the right at our scale's d."""

from __future__ import annotations

import statistics

from ldae_jax.viz import png

SERIES = {"pca": "patch-wise PCA", "ae": "patch-wise AE", "vae": "patch-wise VAE", "pixel": "pixel (Figure 5)"}
PREFIXES = ("t2.", "f5.")
OFFSETS = {"pca": (0, 5), "ae": (-9, -10), "vae": (9, -10), "pixel": (0, 5)}  # keep close labels apart


def series_of(row: str) -> str:
    """'t2.pca.d32' -> 'pca', 'f5.pixel.r64' -> 'pixel'."""
    return row.split(".")[1]


def paper_d(row: str) -> int:
    """The paper's d of a t2 / f5 row: its d, or patch^2 x 3 for the pixel tokenizer at 256 tokens."""
    from configs.ladder import rows as rows_lib

    last = row.split(".")[2]
    if row.startswith("f5."):
        return rows_lib.PIXEL[int(last[1:])][0] ** 2 * 3
    return int(last[1:])


def points(results: dict, our_d: dict) -> tuple[dict, dict]:
    """(paper, ours): {series: [(d, top-1, spread, row)]} sorted by d; `our_d` {row: d at our scale}."""
    from configs.ladder import rows as rows_lib

    paper, ours = {}, {}
    for row in results:
        if not row.startswith(PREFIXES):
            continue
        name = series_of(row)
        if rows_lib.ROWS[row].paper is not None:
            paper.setdefault(name, []).append((paper_d(row), rows_lib.ROWS[row].paper, 0.0, row))
        values = results[row]
        if values:
            spread = (max(values) - min(values)) / 2
            ours.setdefault(name, []).append((our_d[row], statistics.fmean(values), spread, row))
    return ({k: sorted(v) for k, v in paper.items()}, {k: sorted(v) for k, v in ours.items()})


def plot_latent_dim(results: dict, our_d: dict, path: str, scale: str, our_px: dict | None = None) -> bool:
    """Draws `path`; False (nothing written) when no t2 / f5 row has a result. `our_px` {f5 row: image size}."""
    plt = png.pyplot()

    paper, ours = points(results, our_d)
    if not ours:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, data, title, px_of in ((axes[0], paper, "paper (ImageNet, ViT-1/2L)", lambda r: int(r.split(".r")[1])),
                                   (axes[1], ours, f"ours ({scale} scale)", lambda r: (our_px or {}).get(r))):
        for i, name in enumerate(SERIES):
            pts = data.get(name)
            if not pts:
                continue
            xs, ys, errs = [p[0] for p in pts], [p[1] for p in pts], [p[2] for p in pts]
            style = dict(color=f"C{i}", marker="o", ms=4, capsize=2, label=SERIES[name])
            ax.errorbar(xs, ys, yerr=errs if any(errs) else None, ls="--" if name == "pixel" else "-", **style)
            for x, y, _, row in pts:
                px = px_of(row) if name == "pixel" else None
                label = f"{y:.1f}" + (f"\n{px}px" if px else "")
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
