"""The ladder report: a markdown table with the paper's number beside ours, the paper's claims checked against
our numbers, a Figure 6-style bar chart (the paper's trajectory on the left, ours on the right), and the same
table as JSON (`ladder_SCALE.json`), from which `python -m ldae_jax.viz` draws the ladder figures.

A claim compares two groups of runs. With one seed its verdict says so; with several, a difference smaller than
the spread between seeds (the larger max - min of the two rows) is "within seed noise", not a result.
"""

from __future__ import annotations

import json
import statistics

from etils import epath

from ldae_jax.ladder import claims as claims_lib, rows as rows_lib
from ldae_jax.viz import ladder_chart


def _mean(values):
    return statistics.fmean(values) if values else None


def table(results: dict, scale: str, fids: dict | None = None) -> list[dict]:
    """One plain dict per row of `results` ({row: [top-1 per seed]}): the row's facts at `scale` and at paper
    scale, the paper's numbers and ours. What the figures draw from."""
    out = []
    for name, values in results.items():
        row = rows_lib.ROWS[name]
        ours, paper = row.facts(scale), row.facts("paper")
        out.append({"row": name, "change": row.change, "paper": row.paper, "paper_fid": row.paper_fid,
                    "trajectory": row.trajectory, "sweep": row.sweep, "kind": ours["kind"], "d": ours["d"],
                    "image_size": ours["image_size"], "paper_d": paper["d"], "paper_image_size": paper["image_size"],
                    "results": list(values), "fids": list((fids or {}).get(name, []))})
    return out


def _side(results: dict, claim: str, side: str) -> list[str]:
    return [r for r in results if rows_lib.ROWS[r].claims.get(claim) == side and results[r]]


def _best(results: dict, names: list[str]) -> str | None:
    return max(names, key=lambda r: _mean(results[r])) if names else None


def _spread(results: dict, *rows) -> float | None:
    spreads = [max(results[r]) - min(results[r]) for r in rows if len(results.get(r, [])) > 1]
    return max(spreads) if spreads else None


def _verdict(results, better: str, worse: str, claim: claims_lib.Claim) -> list[str]:
    """One report line for the claim 'better > worse'."""
    a, b = _mean(results[better]), _mean(results[worse])
    diff, spread = a - b, _spread(results, better, worse)
    seeds = min(len(results[better]), len(results[worse]))
    if spread is None:
        verdict = ("reproduces" if diff > 0 else "does not reproduce") + " (1 seed)"
    elif abs(diff) <= spread:
        verdict = f"within seed noise (|{diff:+.2f}| <= spread {spread:.2f}, {seeds} seeds)"
    else:
        verdict = ("reproduces" if diff > 0 else "does not reproduce") + f" ({seeds} seeds, spread {spread:.2f})"
    return [claim.text, claim.paper, f"{better} {a:.2f} vs {worse} {b:.2f} ({diff:+.2f})", verdict]


def _peak(results, claim: claims_lib.Claim) -> list[str] | None:
    """Accuracy against the paper's d over the claim's sweep points: does it peak inside the sweep?"""
    points = sorted((rows_lib.ROWS[r].facts("paper")["d"], _mean(results[r]))
                    for r in _side(results, claim.id, "point"))
    if len(points) < 3:
        return None
    peak = max(points, key=lambda p: p[1])[0]
    interior = peak not in (points[0][0], points[-1][0])
    return [claim.text, claim.paper, ", ".join(f"d{d} {m:.2f}" for d, m in points),
            f"{'reproduces' if interior else 'does not reproduce'} (peak at paper d={peak})"]


def claims(results: dict) -> list[list[str]]:
    """[claim, paper, ours, verdict] for every claim whose rows have results."""
    lines = []
    for claim in claims_lib.CLAIMS.values():
        if claim.kind == "peak":
            line = _peak(results, claim)
        else:
            better, worse = (_best(results, _side(results, claim.id, s)) for s in ("better", "worse"))
            line = _verdict(results, better, worse, claim) if better and worse else None
        if line:
            lines.append(line)
    return lines


def markdown(results: dict, *, scale: str, command: str, fids: dict | None = None) -> str:
    """`results` {row: [top-1 per seed]}; `fids` {row: [FID per seed]} adds the FID columns when any was run."""
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
    verdicts = claims(results)
    if verdicts:
        out += ["", "## The paper's claims at this scale", "",
                "| claim | paper | ours | verdict |", "|---|---|---|---|"]
        out += [f"| {' | '.join(line)} |" for line in verdicts]
    return "\n".join(out) + "\n"


def write(results: dict, path: str, *, scale: str, command: str, fids: dict | None = None) -> str:
    """Writes the markdown report at `path`, its table as JSON beside it, and the chart when there is something
    to draw; returns the markdown."""
    path = epath.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = markdown(results, scale=scale, command=command, fids=fids)
    rows = table(results, scale, fids)
    png = path.with_suffix(".png")
    if ladder_chart.bar_chart(rows, str(png), scale):
        text += f"\n![ladder chart]({png.name})\n"
    path.write_text(text)
    path.with_suffix(".json").write_text(json.dumps({"scale": scale, "command": command, "rows": rows}, indent=1))
    return text
