"""Figure 6 of the paper for a ladder run: the trajectory's linear-probe accuracies as horizontal bars, the
paper's (ImageNet) on the left and ours on the right, in the same row order, with the seed range as error bars.

Draws from the ladder report's table (`ladder/report.py: table`): plain dicts with each row's facts and results.
"""

from __future__ import annotations

import statistics
import textwrap

from ldae_jax.viz import png


def bar_chart(table: list[dict], path: str, scale: str) -> bool:
    """One horizontal bar per trajectory row with a result, paper and ours side by side; False if none has one."""
    plt = png.pyplot()
    rows = sorted((r for r in table if r["trajectory"] is not None and r["results"]), key=lambda r: r["trajectory"])
    if not rows:
        return False
    paper = [r["paper"] for r in rows]
    ours = [statistics.fmean(r["results"]) for r in rows]
    errors = [(max(r["results"]) - min(r["results"])) / 2 for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.45 * len(rows) + 1.5), sharey=True)
    labels = [f"{r['row']}: {textwrap.shorten(r['change'], 44, placeholder='...')}" for r in rows]
    for ax, values, title, err in ((axes[0], paper, "paper (ImageNet, ViT-1/2L)", None),
                                   (axes[1], ours, f"ours ({scale} scale)", errors)):
        ys = list(range(len(rows)))[::-1]
        shown = [v if v is not None else 0 for v in values]
        ax.barh(ys, shown, xerr=err, color="tab:blue" if err is None else "tab:orange", capsize=2)
        for y, v in zip(ys, values):
            ax.text((v or 0) + 0.1, y, "n/a" if v is None else f"{v:.1f}", va="center", fontsize=7)
        known = [v for v in values if v is not None]
        ax.set_xlim(min(known) - 3, max(known) + 2)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("linear-probe top-1 (%)", fontsize=8)
        ax.set_yticks(ys)
        ax.set_yticklabels(labels, fontsize=7)
    fig.tight_layout()
    png.save_figure(fig, path)
    return True
