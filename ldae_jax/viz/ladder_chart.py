"""Figure 6 of the paper for a ladder run: the trajectory's linear-probe accuracies as horizontal bars, the
paper's (ImageNet) on the left and ours on the right, in the same row order, with the 95% interval of the mean over seeds as error bars.

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
    errors = [r.get("ci") or 0.0 for r in rows]  # the 95% interval of the mean over seeds
    known = [v for v in paper + ours if v is not None]
    top = max(v + e for v, e in zip(ours, errors))
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.55 * len(rows) + 1.6), sharey=True, sharex=True)
    labels = [f"{r['row']}\n{textwrap.shorten(r['change'], 48, placeholder='...')}" for r in rows]
    ys = list(range(len(rows)))[::-1]
    for ax, values, title, err in ((axes[0], paper, "paper (ImageNet, ViT-1/2L)", None),
                                   (axes[1], ours, f"ours ({scale} scale), 95% interval over seeds", errors)):
        shown = [v if v is not None else 0 for v in values]
        ax.barh(ys, shown, xerr=err, color="tab:blue" if err is None else "tab:orange", capsize=2, height=0.7)
        for y, v, e in zip(ys, values, err or [0.0] * len(values)):
            ax.text((v or min(known)) + e + 0.2, y, "n/a" if v is None else f"{v:.1f}", va="center", fontsize=7)
        ax.set_xlim(min(known) - 3, max(top, max(known)) + 2.5)  # one range for both panels
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("linear-probe top-1 (%)", fontsize=8)
        ax.set_yticks(ys)
        ax.set_yticklabels(labels, fontsize=7)
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    png.save_figure(fig, path)
    return True
