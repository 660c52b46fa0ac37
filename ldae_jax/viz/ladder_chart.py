"""Figure 6 of the paper for a ladder run: the trajectory's linear-probe accuracies, the paper's (ImageNet) on the
left and ours on the right, in the same row order, with the 95% interval of the mean over seeds as error bars.

The two panels measure different data (ImageNet vs the ladder's scale), so each has its own range, but both
have the same width in points of accuracy: a step of one point is as long in either panel. Accuracies are dots,
not bars, since the axes do not start at 0.

Draws from the ladder report's table (`ladder/report.py: table`): plain dicts with each row's facts and results.
"""

from __future__ import annotations

import statistics
import textwrap

from ldae_jax.viz import png


def _ranges(*panels: list, pad: float = 1.5) -> list[tuple[float, float]]:
    """(low, high) per panel of (value, error) pairs: each panel's own values, every panel as wide as the widest."""
    spans = []
    for values in panels:
        known = [(v, e) for v, e in values if v is not None]
        spans.append((min(v - e for v, e in known), max(v + e for v, e in known)) if known else None)
    width = max([hi - lo for lo, hi in filter(None, spans)] + [1.0]) + 2 * pad + 3.0  # 3.0: the value labels
    out = []
    for span in spans:
        lo = span[0] - pad if span else 0.0
        out.append((lo, lo + width))
    return out


def bar_chart(table: list[dict], path: str, scale: str) -> bool:
    """Figure 6 into `path`; False (and no file) if no trajectory row has a result."""
    fig = draw(table, scale)
    if fig is None:
        return False
    png.save_figure(fig, path)
    return True


def draw(table: list[dict], scale: str):
    """The figure: one line per trajectory row with a result, paper and ours side by side; None if none has one."""
    plt = png.pyplot()
    rows = sorted((r for r in table if r["trajectory"] is not None and r["results"]), key=lambda r: r["trajectory"])
    if not rows:
        return None
    paper = [(r["paper"], 0.0) for r in rows]
    ours = [(statistics.fmean(r["results"]), r.get("ci") or 0.0) for r in rows]  # the 95% interval of the mean
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.55 * len(rows) + 1.6), sharey=True, layout="constrained")
    labels = [f"{r['row']}\n{textwrap.shorten(r['change'], 48, placeholder='...')}" for r in rows]
    ys = list(range(len(rows)))[::-1]
    seeds = [None] * len(rows), [len(r["results"]) for r in rows]
    for ax, values, title, color, (lo, hi), counts in zip(
            axes, (paper, ours),
            ("paper (ImageNet, ViT-1/2L)", f"ours ({scale} scale): mean over n seeds, 95% interval"),
            ("tab:blue", "tab:orange"), _ranges(paper, ours), seeds):
        for y, (v, e), n in zip(ys, values, counts):
            ax.axhline(y, color="0.85", lw=0.6, zorder=0)
            if v is None:
                ax.text(lo + 0.3, y, "n/a (no number in the paper)", va="center", fontsize=7, color="0.4")
                continue
            ax.errorbar(v, y, xerr=e or None, fmt="o", color=color, ms=6, capsize=3, lw=1.2)
            ax.text(v + e + 0.25, y, f"{v:.1f}" + ("" if n is None else f" (n={n})"), va="center", fontsize=7)
        ax.set_xlim(lo, hi)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("linear-probe top-1 (%)", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(axis="x", labelsize=8)
    axes[0].set_yticks(ys)
    axes[0].set_yticklabels(labels, fontsize=7)
    axes[0].set_ylim(-0.6, len(rows) - 0.4)
    return fig
