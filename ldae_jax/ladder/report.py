"""The ladder report: a markdown table with the paper's number beside ours (linear probe and kNN, the mean with
its 95% interval over seeds), the paper's claims decided from intervals (ladder/stats.py), a Figure 6-style bar
chart (the paper's trajectory on the left, ours on the right) and the same table as JSON (`ladder_SCALE.json`),
from which `python -m ldae_jax.viz` draws the ladder figures.

Results are {row: {seed: {"linear": top-1, "knn": top-1}}} (runs.gather). Rows of one scale read the same
examples in the same order at each seed, so two rows are compared paired by seed.
"""

from __future__ import annotations

import json
import statistics

from etils import epath

from ldae_jax.ladder import claims as claims_lib, rows as rows_lib, stats
from ldae_jax.viz import ladder_chart

METRICS = {"linear": "linear probe", "knn": "kNN"}


def values(results: dict, row: str, metric: str = "linear") -> dict:
    """{seed: accuracy} of `row` for `metric`, the seeds that have it."""
    return {s: r[metric] for s, r in results.get(row, {}).items() if r.get(metric) is not None}


def _mean(seed_values: dict) -> float | None:
    return statistics.fmean(seed_values.values()) if seed_values else None


def estimate(seed_values: dict) -> str:
    """'mean ± half-width' of the 95% interval (or just the mean with one seed), '' with none."""
    if not seed_values:
        return ""
    m, half = stats.mean_interval(list(seed_values.values()))
    return f"{m:.2f}" if half is None else f"{m:.2f} ± {half:.2f}"


def table(results: dict, scale: str, fids: dict | None = None) -> list[dict]:
    """One plain dict per row of `results`: the row's facts at `scale` and at paper scale, the paper's numbers
    and ours (`results`: linear top-1 per seed in seed order, `knn` likewise, `ci`: the 95% half-width of the
    linear mean). What the figures draw from."""
    out = []
    for name in results:
        row = rows_lib.ROWS[name]
        ours, paper = row.facts(scale), row.facts("paper")
        linear, knn = values(results, name), values(results, name, "knn")
        half = stats.mean_interval(list(linear.values()))[1] if linear else None
        out.append({"row": name, "change": row.change, "paper": row.paper, "paper_fid": row.paper_fid,
                    "trajectory": row.trajectory, "sweep": row.sweep, "kind": ours["kind"], "d": ours["d"],
                    "image_size": ours["image_size"], "paper_d": paper["d"], "paper_image_size": paper["image_size"],
                    "seeds": sorted(linear), "results": [linear[s] for s in sorted(linear)],
                    "knn": [knn[s] for s in sorted(knn)], "ci": half, "fids": list((fids or {}).get(name, []))})
    return out


def _side(results: dict, claim: str, side: str) -> list[str]:
    return [r for r in results if rows_lib.ROWS[r].claims.get(claim) == side and values(results, r)]


def _best(results: dict, names: list[str], metric: str) -> str | None:
    names = [n for n in names if values(results, n, metric)]
    return max(names, key=lambda r: _mean(values(results, r, metric))) if names else None


def _pair(results, claim: claims_lib.Claim, metric: str) -> dict | None:
    better, worse = (_best(results, _side(results, claim.id, s), metric) for s in ("better", "worse"))
    if not (better and worse):
        return None
    a, b = values(results, better, metric), values(results, worse, metric)
    diff = stats.difference(a, b, paired=True)
    return {"compared": f"{better} {_mean(a):.2f} vs {worse} {_mean(b):.2f}", "diff": diff,
            "verdict": stats.verdict(diff, claim.margin)}


def _peak(results, claim: claims_lib.Claim, metric: str) -> dict | None:
    """Does accuracy against the paper's d peak inside the sweep? The best point against each end of it, paired:
    reproduces when it beats both ends, opposite when the best point is an end and beats every inner point."""
    points = sorted((rows_lib.ROWS[r].facts("paper")["d"], r) for r in _side(results, claim.id, "point")
                    if values(results, r, metric))
    if len(points) < 3:
        return None
    means = {r: _mean(values(results, r, metric)) for _, r in points}
    best = max(means, key=means.get)
    ends, inner = [points[0][1], points[-1][1]], [r for _, r in points[1:-1]]
    others = [r for r in (inner if best in ends else ends) if r != best]
    diffs = [stats.difference(values(results, best, metric), values(results, r, metric), paired=True)
             for r in others]
    worst = min(diffs, key=lambda d: d.low if d.low is not None else d.mean)
    decided = all(d.low is not None and d.low > 0 for d in diffs)
    verdict = ("opposite" if best in ends else "reproduces") if decided else "undecided at this scale"
    peak_d = dict((r, d) for d, r in points)[best]
    return {"compared": ", ".join(f"d{d} {means[r]:.2f}" for d, r in points), "diff": worst,
            "verdict": f"{verdict} (peak at paper d={peak_d})"}


def claims(results: dict, metric: str = "linear") -> list[dict]:
    """{'claim', 'paper', 'compared', 'diff' (stats.Difference), 'verdict'} for every claim whose rows have
    results, read on `metric` ('linear' or 'knn')."""
    lines = []
    for claim in claims_lib.CLAIMS.values():
        line = (_peak if claim.kind == "peak" else _pair)(results, claim, metric)
        if line:
            lines.append({"claim": claim.text, "paper": claim.paper, **line})
    return lines


def claims_markdown(results: dict) -> list[str]:
    """The claims table: each claim read on the linear probe and on kNN."""
    by_metric = {m: {c["claim"]: c for c in claims(results, m)} for m in METRICS}
    if not by_metric["linear"]:
        return []
    out = ["| claim | paper | ours (linear) | linear: difference [95% CI] | verdict | kNN: difference [95% CI] | "
           "verdict |", "|---|---|---|---|---|---|---|"]
    for text, c in by_metric["linear"].items():
        k = by_metric["knn"].get(text)
        knn = f"{k['diff'].text()} | {k['verdict']}" if k else "| not run"
        out.append(f"| {text} | {c['paper']} | {c['compared']} | {c['diff'].text()} | {c['verdict']} | {knn} |")
    return out


def markdown(results: dict, *, scale: str, command: str, fids: dict | None = None) -> str:
    """`fids` {row: [FID per seed]} adds the FID columns when any was run."""
    with_fid = bool(fids) and any(fids.values())
    fid_head, fid_rule = (" paper FID-50K | our FID (mean) |", "---|---|") if with_fid else ("", "")
    out = [f"# The deconstruction ladder, scale '{scale}'", "", f"Made by `{command}`.", "",
           "Ours: the mean over seeds ± the half-width of its 95% interval (Student's t).", "",
           f"| row | change (from its parent) | paper (ImageNet) | linear top-1 (%) | kNN top-1 (%) | seeds | "
           f"linear, per seed |{fid_head}",
           f"|---|---|---|---|---|---|---|{fid_rule}"]
    out += [line + (_fid_cells(name, fids) if with_fid else "") for name, line in rows_markdown(results).items()]
    verdicts = claims_markdown(results)
    if verdicts:
        out += ["", "## The paper's claims at this scale", "", *verdicts]
    return "\n".join(out) + "\n"


def rows_markdown(results: dict) -> dict:
    """{row: its table line (without FID cells)}."""
    out = {}
    for name in results:
        row = rows_lib.ROWS[name]
        linear, knn = values(results, name), values(results, name, "knn")
        paper = "" if row.paper is None else f"{row.paper:.1f}"
        per_seed = ", ".join(f"{linear[s]:.2f}" for s in sorted(linear))
        out[name] = (f"| {name} | {row.change} | {paper} | {estimate(linear) or 'not run'} | {estimate(knn)} | "
                     f"{len(linear)} | {per_seed} |")
    return out


def _fid_cells(name: str, fids: dict) -> str:
    row, mine = rows_lib.ROWS[name], fids.get(name) or []
    ours = f"{statistics.fmean(mine):.1f}" if mine else "not run"
    return f" {'' if row.paper_fid is None else row.paper_fid} | {ours} |"


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
