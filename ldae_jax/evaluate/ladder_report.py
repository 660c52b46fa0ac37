"""The ladder report: a markdown table with the paper's number beside ours, the paper's claims checked against
our numbers, and a Figure 6-style bar chart (the paper's trajectory on the left, ours on the right).

A claim compares two groups of runs. With one seed its verdict says so; with several, a difference smaller than
the spread between seeds (the larger max - min of the two rows) is "within seed noise", not a result.
"""

from __future__ import annotations

import statistics

from etils import epath

from ldae_jax.viz import ladder_chart

# Figure 6's trajectory in the paper's order (rows without results are left out of the chart).
TRAJECTORY = ["t1.row1", "t1.row2", "t1.row3", "t1.row4", "t1.row5", "t2.vae.d16", "t2.ae.d16", "t3.step0",
              "t3.step1", "t3.step2", "t3.step3", "t3.step4", "t3.step5"]
TRAJECTORY_PAPER = {"t1.row5": 63.4}  # every other row carries its own Table 1/2/3 number


def _mean(values):
    return statistics.fmean(values) if values else None


def _best(results: dict, prefix: str):
    """(row, mean) of the best row whose name starts with prefix, or None."""
    means = {r: _mean(v) for r, v in results.items() if r.startswith(prefix) and v}
    if not means:
        return None
    row = max(means, key=means.get)
    return row, means[row]


def _spread(results: dict, *rows) -> float | None:
    spreads = [max(results[r]) - min(results[r]) for r in rows if len(results.get(r, [])) > 1]
    return max(spreads) if spreads else None


def _verdict(results, better: str, worse: str, claim: str, paper: str) -> list[str] | None:
    """One report line for the claim 'better > worse'; None when either row has no result."""
    a, b = _mean(results.get(better, [])), _mean(results.get(worse, []))
    if a is None or b is None:
        return None
    diff, spread = a - b, _spread(results, better, worse)
    seeds = min(len(results[better]), len(results[worse]))
    if spread is None:
        verdict = ("reproduces" if diff > 0 else "does not reproduce") + " (1 seed)"
    elif abs(diff) <= spread:
        verdict = f"within seed noise (|{diff:+.2f}| <= spread {spread:.2f}, {seeds} seeds)"
    else:
        verdict = ("reproduces" if diff > 0 else "does not reproduce") + f" ({seeds} seeds, spread {spread:.2f})"
    return [claim, paper, f"{better} {a:.2f} vs {worse} {b:.2f} ({diff:+.2f})", verdict]


def claims(results: dict) -> list[list[str]]:
    lines = []
    best_pca, best_pixel = _best(results, "t2.pca."), _best(results, "f5.pixel.")
    if best_pca and best_pixel:
        lines.append(_verdict(results, best_pca[0], best_pixel[0], "a low-dimensional latent beats pixels",
                              "65.1 (PCA d=32) vs 58.5 (best pixel)"))
    for kind in ("ae", "vae"):
        best = _best(results, f"t2.{kind}.")
        if best_pca and best:
            lines.append(_verdict(results, best_pca[0], best[0], f"PCA is as good as a trained patch {kind.upper()}",
                                  f"65.1 vs {64.7 if kind == 'ae' else 64.9} (best of each)"))
    lines.append(_verdict(results, "t1.row5", "t1.row4", "the linear gamma^2 schedule beats DDPM's (conv VAE)",
                          "63.4 vs 59.0 (Table 1 rows 5, 4)"))
    lines.append(_verdict(results, "t3.step0", "t1.ddpm", "the linear gamma^2 schedule beats DDPM's (patch PCA)",
                          "63.4 vs 59.0 (Table 1 rows 5, 4)"))
    lines.append(_verdict(results, "t1.row2", "t1.row1", "class conditioning hurts (conv VAE)", "62.5 vs 57.5"))
    lines.append(_verdict(results, "t3.step0", "t1.cls", "class conditioning hurts (patch PCA)",
                          "62.5 vs 57.5 (Table 1 rows 2, 1)"))
    lines.append(_verdict(results, "t1.row4", "t1.row3", "removing the adversarial loss helps a little",
                          "59.0 vs 58.4 (Table 1 rows 4, 3)"))
    lines.append(_verdict(results, "t2.pca.d16", "t1.row5", "a patch-wise tokenizer beats the conv VAE, d=16",
                          "63.4 vs 63.4 (PCA); 64.9, 64.7 (VAE, AE) vs 63.4"))
    lines.append(_verdict(results, "t3.step5", "t3.single", "multi-level noise beats a single level", "64.5 vs 61.5"))
    for d in (16, 32):
        lines.append(_verdict(results, f"w.plain.d{d}", f"w.whiten.d{d}", f"unwhitened beats whitened PCA, d={d}",
                              "open (PAPER.md 3.3)"))
    pca_rows = sorted((int(r.rsplit("d", 1)[1]), r) for r, v in results.items() if r.startswith("t2.pca.") and v)
    if len(pca_rows) >= 3:
        means = [(d, _mean(results[r])) for d, r in pca_rows]
        peak = max(means, key=lambda x: x[1])[0]
        interior = peak not in (means[0][0], means[-1][0])
        lines.append(["accuracy peaks at a small d (not at the ends of the sweep)", "peak at d=32 of 8..128",
                      ", ".join(f"d{d} {m:.2f}" for d, m in means),
                      f"{'reproduces' if interior else 'does not reproduce'} (peak at paper d={peak})"])
    return [line for line in lines if line]


def markdown(results: dict, *, scale: str, command: str, fids: dict | None = None) -> str:
    """`results` {row: [top-1 per seed]}; `fids` {row: [FID per seed]} adds the FID columns when any was run."""
    from configs.ladder import rows as rows_lib

    with_fid = bool(fids) and any(fids.values())
    fid_head, fid_rule = (" paper FID-50K | our FID (mean) |", "---|---|") if with_fid else ("", "")
    out = [f"# The deconstruction ladder, scale '{scale}'", "", f"Made by `{command}`.", "",
           f"| row | change (from its parent) | paper (ImageNet) | ours (top-1 %, mean) | per seed |{fid_head}",
           f"|---|---|---|---|---|{fid_rule}"]
    for name, values in results.items():
        row = rows_lib.ROWS[name]
        paper = "" if row.paper is None else f"{row.paper:.1f}"
        ours = "not run" if not values else f"{_mean(values):.2f}"
        line = f"| {name} | {row.change} | {paper} | {ours} | {', '.join(f'{v:.2f}' for v in values)} |"
        if with_fid:
            mine = fids.get(name) or []
            line += (f" {'' if row.paper_fid is None else row.paper_fid} |"
                     f" {f'{_mean(mine):.1f}' if mine else 'not run'} |")
        out.append(line)
    table = claims(results)
    if table:
        out += ["", "## The paper's claims at this scale", "",
                "| claim | paper | ours | verdict |", "|---|---|---|---|"]
        out += [f"| {' | '.join(line)} |" for line in table]
    return "\n".join(out) + "\n"


def write(results: dict, path: str, *, scale: str, command: str, fids: dict | None = None) -> str:
    """Writes the markdown report at `path` and, when there is something to draw, the chart beside it."""
    path = epath.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = markdown(results, scale=scale, command=command, fids=fids)
    png = path.with_suffix(".png")
    if ladder_chart.bar_chart(results, str(png), scale, TRAJECTORY, TRAJECTORY_PAPER):
        text += f"\n![ladder chart]({png.name})\n"
    path.write_text(text)
    return text
