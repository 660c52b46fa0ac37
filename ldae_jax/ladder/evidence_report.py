"""The evidence report (docs/ladder_small.md): the rows and claims at the small budget with 95% intervals, the
Appendix A probes, the budget trends of the pairs where the paper and the small scale disagree, l-DAE against
raw pixels at every budget, the kNN accuracy during training, and what has not run yet. Its figures go to
`figures/` beside it and every run's numbers to `<report>_runs.json`.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time

from etils import epath

from ldae_jax.ladder import claims as claims_lib, record as record_lib, report, runs, stats
from ldae_jax.train import metrics
from ldae_jax.viz import ladder_chart, png


def collect(parts: dict, root: str, record: record_lib.Record | None = None) -> list[dict]:
    """One record per (row, seed, budget) of the plan: its run, part, probe results, kNN curve and times, from the
    run's workdir under `root`, else from `record` (the committed numbers of a run this machine has not made)."""
    record = record or record_lib.Record()
    records, seen = [], set()
    for part, planned in parts.items():
        for p in planned:
            if (p.row, p.seed, p.budget) in seen:
                continue
            seen.add((p.row, p.seed, p.budget))
            workdir = runs.run_dir(root, p.run_key)
            result = runs.read_result(workdir, p.probe_file)
            entry = {"row": p.row, "seed": p.seed, "budget": p.budget, "part": part, "run": p.run_key,
                     "probe_file": p.probe_file, "steps": p.run_config.train.total_steps}
            recorded = record.entry(p) if result is None else None
            if recorded is not None:
                entry.update({k: recorded.get(k) for k in record_lib.CARRIED}, done=True,
                             complete=record.finished(p), recorded=True)
                if recorded.get("finetune_config") != record_lib.finetune_hash(p):
                    entry["finetune"] = None  # fine-tuned under another recipe: not this plan's number
                entry.update(config=recorded["config"], finetune_config=recorded.get("finetune_config"))
            else:
                logged = metrics.read(epath.Path(workdir) / "metrics.jsonl") if result is not None else []
                own = p.probe_file == "probe.json"  # a probe-only row shares its run's training: not its numbers
                curve = [[m["step"], m["knn_top1"]] for m in logged if "knn_top1" in m] if own else []
                entry.update(done=result is not None, complete=runs.is_done(p, root), **(result or {}),
                             knn_curve=curve, **_times(logged if own else []),
                             wall_seconds=runs.wall_seconds(p, root))
                if result is not None:  # stamped with what made it, so the record never vouches for another config
                    entry["config"], tuned = record_lib.made_hashes(workdir, p.probe_file)
                    entry["finetune_config"] = tuned if entry.get("finetune") is not None else None
                    if entry["config"] not in (None, record_lib.config_hash(p)):  # another config's: not this plan's
                        entry.update(done=False, complete=False, stale=True)
                    elif entry["finetune_config"] not in (None, record_lib.finetune_hash(p)):
                        entry.update(finetune=None, complete=False)  # fine-tuned under another recipe
            records.append(entry)
    return records


def finished(p: runs.PlannedRun, root: str, record: record_lib.Record) -> bool:
    """Done in the workdir or in the record."""
    return runs.is_done(p, root) or record.finished(p)


def wall_seconds(p: runs.PlannedRun, root: str, record: record_lib.Record) -> float | None:
    spent = runs.wall_seconds(p, root)
    recorded = record.entry(p) if spent is None and record.finished(p) else None
    return recorded.get("wall_seconds") if recorded else spent


def _times(logged: list[dict]) -> dict:
    """From a run's metrics.jsonl: the kNN evaluations' seconds, the training steps' seconds (evaluations left
    out, from the logged intervals' speeds) and the median seconds per step; None where nothing was logged."""
    knn = [m.get("knn_seconds", 0.0) for m in logged if "knn_top1" in m]
    speeds = [m for m in logged if m.get("steps_per_s")]
    return {"knn_seconds": sum(knn) if knn else None,
            "train_seconds": sum(m.get("interval_steps", 0) / m["steps_per_s"] for m in speeds) if speeds else None,
            "seconds_per_step": 1 / statistics.median(m["steps_per_s"] for m in speeds) if speeds else None}


def results_at(records: list[dict], budget: int) -> dict:
    """{row: {seed: {'linear', 'knn', 'baselines'}}} of the finished runs at `budget`, rows in plan order."""
    out = {}
    for r in records:
        if r["budget"] == budget:
            out.setdefault(r["row"], {})
            if r["done"]:
                out[r["row"]][r["seed"]] = r
    return out


def _budgets(records) -> list[int]:
    return sorted({r["budget"] for r in records})


def _table(head: list[str], lines: list[list[str]]) -> list[str]:
    return [f"| {' | '.join(head)} |", f"|{'---|' * len(head)}", *(f"| {' | '.join(line)} |" for line in lines)]


def _rows_table(results: dict, names) -> list[str]:
    head = ["row", "change (from its parent)", "paper (ImageNet)", "linear top-1 (%)", "kNN top-1 (%)", "seeds",
            "linear, per seed"]
    by_row = report.rows_markdown({n: results[n] for n in names})
    return [f"| {' | '.join(head)} |", f"|{'---|' * len(head)}", *by_row.values()]


def _trend(records, better: str, worse: str) -> dict:
    """Per budget: each side's values and the paired difference, linear and kNN; the change of the difference
    from the smallest to the largest budget (paired by seed)."""
    out = {"budgets": {}}
    for budget in _budgets(records):
        res = results_at(records, budget)
        if not (report.values(res, better) and report.values(res, worse)):
            continue
        out["budgets"][budget] = {m: {"better": report.values(res, better, m), "worse": report.values(res, worse, m),
                                      "diff": stats.difference(report.values(res, better, m),
                                                               report.values(res, worse, m), paired=True)}
                                  for m in report.METRICS}
    return out


def _per_seed_diff(entry: dict) -> dict:
    return {s: entry["better"][s] - entry["worse"][s] for s in set(entry["better"]) & set(entry["worse"])}


def trend_sentence(name: str, better: str, worse: str, trend: dict, metric: str = "linear") -> str:
    """Does more training move the pair toward the paper's ordering ('better' > 'worse')?"""
    budgets = sorted(trend["budgets"])
    if not budgets:
        return f"{better} vs {worse}: not run yet."
    first = trend["budgets"][budgets[0]][metric]
    text = f"At {budgets[0]}x, {better} - {worse} = {first['diff'].text()}: {stats.verdict(first['diff'])}."
    if len(budgets) == 1:
        return text + " Only this budget has run so far."
    last = trend["budgets"][budgets[-1]][metric]
    change = stats.difference(_per_seed_diff(last), _per_seed_diff(first), paired=True)
    moved = stats.verdict(change)
    direction = {"reproduces": "more training moves it toward the paper's ordering",
                 "opposite": "more training moves it away from the paper's ordering"}.get(
        moved, "more training does not move it measurably")
    return (text + f" At {budgets[-1]}x: {last['diff'].text()}, {stats.verdict(last['diff'])}; the change, paired by "
            f"seed: {change.text() if change else 'n/a'}: {direction}.")


def _trend_lines(trend: dict) -> list[list[str]]:
    lines = []
    for budget, by_metric in sorted(trend["budgets"].items()):
        line = [f"{budget}x"]
        for m in report.METRICS:
            e = by_metric[m]
            line += [report.estimate(e["better"]), report.estimate(e["worse"]),
                     f"{e['diff'].text()}: {stats.verdict(e['diff'])}" if e["diff"] else "not run"]
        lines.append(line)
    return lines


def _pixels(records) -> dict:
    """{budget: {'l-DAE' | 'pixels' | 'random_init': {metric: {seed: value}}}} from the l-DAE row's probes."""
    out = {}
    for budget in _budgets(records):
        seeds = results_at(records, budget).get("t3.step5", {})
        if not seeds:
            continue
        entry = {name: {m: {} for m in report.METRICS} for name in ("l-DAE", "pixels", "random_init")}
        for seed, r in seeds.items():
            for m in report.METRICS:
                entry["l-DAE"][m][seed] = r[m]
                for name in ("pixels", "random_init"):
                    if name in r.get("baselines", {}) and r["baselines"][name][m] is not None:
                        entry[name][m][seed] = r["baselines"][name][m]
        out[budget] = entry
    return out


def _plot_lines(ax, series: dict, ylabel: str) -> None:
    """series {label: {budget: {seed: value}}} as mean ± 95% interval against the budget (log 2)."""
    for i, (label, by_budget) in enumerate(series.items()):
        pts = [(b, *stats.mean_interval(list(v.values()))) for b, v in sorted(by_budget.items()) if v]
        if not pts:
            continue
        xs = [b * (1 + 0.04 * (i - 0.5)) for b, _, _ in pts]  # a small offset keeps the bars apart
        ax.errorbar(xs, [m for _, m, _ in pts], yerr=[h or 0 for _, _, h in pts], marker="o", ms=4, capsize=3,
                    label=label, color=f"C{i}")
    ax.set_xscale("log", base=2)
    budgets = sorted({b for v in series.values() for b in v})
    ax.set_xticks(budgets, [f"{b}x" for b in budgets])
    ax.set_xlabel("training budget (x the small scale's steps)", fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def plot_trend(series_by_metric: dict, title: str, path: str) -> str:
    """Two panels (linear probe, kNN) of accuracy against budget; `series_by_metric` {metric: series}."""
    plt = png.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, (metric, series) in zip(axes, series_by_metric.items()):
        _plot_lines(ax, series, f"{report.METRICS[metric]} top-1 (%)")
        ax.set_title(report.METRICS[metric], fontsize=9)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return png.save_figure(fig, path)


def plot_knn_curves(records: list[dict], rows: list[str], path: str, knn) -> str | None:
    """kNN top-1 against the step during pre-training: per row, the mean over seeds at its largest budget."""
    plt = png.pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 3.6))
    drawn = False
    for i, row in enumerate(rows):
        mine = [r for r in records if r["row"] == row and r["knn_curve"]]
        if not mine:
            continue
        budget = max(r["budget"] for r in mine)
        by_steps = {}  # seeds evaluated at the same steps (a run made under another knn.every_steps stays apart)
        for r in mine:
            if r["budget"] == budget:
                curve = dict(map(tuple, r["knn_curve"]))
                by_steps.setdefault(tuple(sorted(curve)), []).append(curve)
        steps, curves = max(by_steps.items(), key=lambda kv: len(kv[1]))
        ax.plot(steps, [statistics.fmean(c[s] for c in curves) for s in steps], color=f"C{i}", marker="o", ms=3,
                label=f"{row} ({budget}x, {len(curves)} seeds)")
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("pre-training step", fontsize=8)
    ax.set_ylabel(f"kNN top-1 (%), {knn.train_examples} train vs {knn.test_examples} test", fontsize=8)
    ax.set_title("representation quality during pre-training (weighted kNN, k=20)", fontsize=9)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # beside: never on a curve
    fig.tight_layout()
    return png.save_figure(fig, path)


TABLE4 = {"t4.ldae": "l-DAE", "t4.mae": "MAE, equal steps", "t4.mae.time": "MAE, equal wall time"}
PAPER_TABLE4 = {"t4.ldae": (66.6, 83.7), "t4.mae": (68.0, 83.6)}  # ViT-B: linear probe, fine-tuned
COST_FILE = "*-table4_cost_small.json"  # bench/table4_cost.py's results, the newest


def _xla_flops() -> dict:
    """{row: XLA's FLOPs per train step} from the newest bench/results file of bench/table4_cost.py, if any."""
    found = sorted((epath.Path(__file__).parents[2] / "bench" / "results").glob(COST_FILE))
    if not found:
        return {}
    rows = json.loads(found[-1].read_text())["rows"]
    return {name: r["xla_flops_per_step"] for name, r in rows.items()}


def _table4(records: list[dict]) -> list[str]:
    """Table 4 at small scale: l-DAE against MAE at equal steps and at equal wall time, with their costs."""
    res = results_at(records, 1)
    if not any(report.values(res, r) for r in TABLE4 if r != "t4.ldae"):
        return []
    flops = _xla_flops()
    out = ["", "## Table 4 at small scale: l-DAE against MAE", "",
           "MAE on the same data, encoder (2 blocks of width 96) and probe as the l-DAE row, with its own decoder "
           "(2 blocks of width 64), 75% of the 16 patches masked, the normalised-pixel target and weight decay "
           "0.05; fine-tuned as l-DAE (3 epochs, no Mixup, CutMix or RandAugment: short, so fine-tuning can end "
           "below the linear probe; it compares the two within one recipe). MAE's step is cheaper (its "
           "encoder sees 4 of 16 tokens), so at equal wall time it takes more steps. The paper's numbers are "
           "ViT-B on ImageNet (Table 4, Appendix B).", ""]
    lines = []
    for row, label in TABLE4.items():
        mine = [r for r in records if r["row"] == row and r["budget"] == 1 and r["done"]]
        per_step = [r["seconds_per_step"] for r in mine if r["seconds_per_step"]]
        train = [r["steps"] * r["seconds_per_step"] for r in mine if r["seconds_per_step"]]
        paper = PAPER_TABLE4.get(row)
        lines.append([f"{row} ({label})", "" if paper is None else f"{paper[0]} / {paper[1]}",
                      report.estimate(report.values(res, row)), report.estimate(report.values(res, row, "knn")),
                      report.estimate(report.values(res, row, "finetune")) or "not run",
                      str(mine[0]["steps"]) if mine else "",
                      f"{1e3 * statistics.fmean(per_step):.0f}" if per_step else "",
                      f"{statistics.fmean(train):.0f}" if train else "",
                      f"{flops[row] / 1e9:.2f}" if row in flops else ""])
    out += _table(["row", "paper ViT-B: linear / fine-tuned", "linear top-1 (%)", "kNN top-1 (%)",
                   "fine-tuned top-1 (%)", "steps", "ms / step", "training s", "GFLOP / step (XLA)"], lines)
    out += ["", "MAE minus l-DAE, paired by seed, with the 95% interval (the paper, ViT-B: MAE 1.4 points ahead in the "
            "linear probe, 0.1 behind fine-tuned):", ""]
    diffs = []
    for row in ("t4.mae", "t4.mae.time"):
        line = [TABLE4[row]]
        for m in ("linear", "knn", "finetune"):
            d = stats.difference(report.values(res, row, m), report.values(res, "t4.ldae", m), paired=True)
            if d is None:
                line.append("not run")
                continue
            word = {"reproduces": "MAE ahead", "opposite": "l-DAE ahead"}.get(stats.verdict(d), "undecided")
            line.append(f"{d.text()}: {word}")
        diffs.append(line)
    out += _table(["MAE run", "linear", "kNN", "fine-tuned"], diffs)
    if flops:
        out += ["", "GFLOP / step: XLA's count for the compiled train step (bench/table4_cost.py, its newest "
                    f"bench/results/{COST_FILE}); ms / step: the median logged in the runs."]
    return out


def _cadence(records: list[dict], configured: int) -> str:
    """The runs' kNN cadences ('200 or 300': runs made under another knn.every_steps keep theirs)."""
    seen = {r["knn_curve"][1][0] - r["knn_curve"][0][0] for r in records if len(r["knn_curve"]) > 1}
    return " or ".join(str(c) for c in sorted(seen)) if seen else str(configured)


def _machine() -> str:
    try:
        for line in epath.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def markdown(parts: dict, records: list[dict], root: str, *, scale: str, command: str, figures: dict, trends: dict,
             left: str, record: record_lib.Record | None = None) -> str:
    """`trends` {claim id: (better row, worse row)}; `left`: the plan's line on the expected time still needed;
    `record`: the committed numbers of runs not in `root`."""
    record = record or record_lib.Record()
    base = results_at(records, 1)
    main_rows = [r for r in base if not r.startswith("a.")]
    appendix = [r for r in base if r.startswith("a.")]
    c = next(p.run_config for planned in parts.values() for p in planned if p.budget == 1)
    k = c.knn
    out = [f"# The deconstruction ladder at scale '{scale}': the evidence", "",
           f"Made by `{command}` (it runs what is missing, resuming, then writes this file; with `--launch=report` "
           f"it only writes this file), on {_machine()}; "
           f"written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Each row is pre-trained on "
           f"`{c.data.name}` ({c.data.train_split} / {c.data.eval_split}) for {c.train.total_steps} steps at batch "
           f"{c.train.batch_size} (the small budget, 1x), then probed (a linear head on the frozen features, "
           f"{c.probe.epochs} epochs) and classified by weighted kNN (k={k.k}, cosine, temperature {k.temperature}) "
           "on all the train features. A row's numbers are the mean over seeds ± the half-width of its 95% interval "
           "(Student's t). Two rows are compared paired by seed (the same examples in the same order at each seed, "
           "and the same tokenizer sample where they share the tokenizer); a difference's interval gives the "
           "verdict: *reproduces* (it excludes 0 on the paper's side), *opposite* (it excludes 0 on the other "
           "side) or *undecided at this scale*.", "",
           "Wall time of each part (the sum of its runs, as this machine ran them):",
           ""]
    seen = set()  # a run shared with an earlier part is counted there
    for name, planned in parts.items():
        todo = [p for p in runs.todo_runs(planned) if (p.run_key, p.probe_file, p.finetune) not in seen]
        seen.update((p.run_key, p.probe_file, p.finetune) for p in todo)
        done = [p for p in todo if finished(p, root, record)]
        timed = [t for t in (wall_seconds(p, root, record) for p in done) if t is not None]
        untimed = f" ({len(done) - len(timed)} without a recorded time)" if len(timed) < len(done) else ""
        out.append(f"- {name}: {len(done)} of {len(todo)} runs done, {_hours(sum(timed))}{untimed}")
    out += ["", "## Rows at the small budget (1x)", "", *_rows_table(base, main_rows)]
    verdicts = report.claims_markdown(base)
    if verdicts:
        out += ["", "## The paper's claims at this scale", "",
                "The best row of each side (by its mean) is compared; 'as good as' claims reproduce when the "
                "interval lies above -1 point.", "", *verdicts]
    if appendix:
        out += ["", "## Appendix A: what the probe reads (the l-DAE run t3.step5, probed again)", "",
                "The paper probes its l-DAE at t = 10 of 1000 on clean input, at the encoder's output; these rows "
                "change one of the three on the same pre-trained network.", "", *_rows_table(base, appendix)]
    out += ["", "## Budget trends", "",
            "The pairs where the paper and the small scale disagree or the small scale cannot decide, trained at "
            "several multiples of the small budget (the same recipe and warm-up, the cosine decay stretched). "
            "The paper reads multi-level noise as a data augmentation, which would pay only with longer training.",
            ""]
    for name, (better, worse) in trends.items():
        claim = claims_lib.CLAIMS[name]
        trend = _trend(records, better, worse)
        out += [f"### {claim.text}: {better} vs {worse} (paper: {claim.paper})", ""]
        if trend["budgets"]:
            out += _table(["budget", f"{better} linear", f"{worse} linear", "linear: difference [95% CI]",
                           f"{better} kNN", f"{worse} kNN", "kNN: difference [95% CI]"], _trend_lines(trend))
            out += ["", f"Linear probe: {trend_sentence(name, better, worse, trend)}",
                    "", f"kNN: {trend_sentence(name, better, worse, trend, 'knn')}"]
            if name in figures:
                out += ["", f"![{name}]({figures[name]})"]
        else:
            out.append("Not run yet.")
        out.append("")
    pixels = _pixels(records)
    out += ["## l-DAE against raw pixels at every budget", "",
            "The l-DAE row (t3.step5) probed beside the raw pixels (784 values) and the same network at random "
            "init, with the same head and kNN; only the l-DAE network trains longer at a larger budget.", ""]
    if pixels:
        lines = []
        for budget, entry in sorted(pixels.items()):
            line = [f"{budget}x"]
            for m in report.METRICS:
                diff = stats.difference(entry["l-DAE"][m], entry["pixels"][m], paired=True)
                line += [report.estimate(entry["l-DAE"][m]), report.estimate(entry["pixels"][m]),
                         report.estimate(entry["random_init"][m]), diff.text() if diff else "not run"]
            lines.append(line)
        out += _table(["budget", "l-DAE linear", "pixels linear", "random init linear", "l-DAE - pixels, linear",
                       "l-DAE kNN", "pixels kNN", "random init kNN", "l-DAE - pixels, kNN"], lines)
        if "pixels" in figures:
            out += ["", f"![l-DAE vs pixels]({figures['pixels']})"]
    else:
        out.append("Not run yet.")
    out += _table4(records)
    shares = list({r["run"]: r["knn_seconds"] / r["train_seconds"] for r in records
                   if r["knn_seconds"] is not None and r["train_seconds"]}.values())  # one per run
    out += ["", "## kNN during pre-training", "",
            f"Every {_cadence(records, k.every_steps)} steps the evaluator (ldae_jax/evaluate/knn.py) classifies "
            "the first "
            f"{k.test_examples} test images against the first {k.train_examples} train images by weighted kNN on "
            "the probe's features."]
    if shares:
        out.append(f"Its cost over {len(shares)} runs: {100 * statistics.median(shares):.1f}% of the training "
                   f"steps' time (median; mean {100 * statistics.fmean(shares):.1f}%, range "
                   f"{100 * min(shares):.1f}-{100 * max(shares):.1f}%; the first evaluation of a run also compiles "
                   "and reads its images, so a shorter or faster run pays a larger share).")
    if "knn_curves" in figures:
        out += ["", f"![kNN during training]({figures['knn_curves']})"]
    missing = [r for r in records if not r["complete"]]  # a probe without its planned fine-tuning included
    out += ["", "## Not run yet", ""]
    if missing:
        by_part = {}
        for r in missing:
            stale = " (made under another config: delete its workdir to run it again)" if r.get("stale") else ""
            by_part.setdefault(r["part"], []).append(f"{r['row']}@{r['budget']}x/seed{r['seed']}{stale}")
        out += [f"- {part}: {len(names)} ({', '.join(names[:12])}{', ...' if len(names) > 12 else ''})"
                for part, names in by_part.items()]
        out += ["", f"The same command resumes them ({left})."]
    else:
        out.append("Nothing: every planned run finished.")
    if "chart" in figures:
        out += ["", "## The ladder's trajectory (Figure 6)", "", f"![ladder chart]({figures['chart']})"]
    return "\n".join(out) + "\n"


def write(parts: dict, root: str, path: str, *, scale: str, command: str, trends: dict, left: str,
          record: record_lib.Record | None = None) -> str:
    """Writes the report at `path`, its figures under `figures/<name>/` beside it, the rows' table as
    `<name>.json` (what `python -m ldae_jax.viz` reads) and every run's numbers as `<name>_runs.json`; `trends`,
    `left` and `record` as for `markdown`."""
    path = epath.Path(path)
    stem = path.name.removesuffix(".md")
    fig_dir = path.parent / "figures" / stem
    records = collect(parts, root, record)
    figures = {}
    for name, (better, worse) in trends.items():
        trend = _trend(records, better, worse)
        if trend["budgets"]:
            series = {m: {row: {b: e[m][side] for b, e in trend["budgets"].items()}
                          for row, side in ((better, "better"), (worse, "worse"))} for m in report.METRICS}
            plot_trend(series, f"{claims_lib.CLAIMS[name].text} (paper: {better} above {worse})",
                       str(fig_dir / f"trend_{name}.png"))
            figures[name] = f"figures/{stem}/trend_{name}.png"
    pixels = _pixels(records)
    if pixels:
        series = {m: {label: {b: e[name][m] for b, e in pixels.items()}
                      for name, label in (("l-DAE", "l-DAE (t3.step5)"), ("pixels", "raw pixels"),
                                          ("random_init", "random init"))} for m in report.METRICS}
        plot_trend(series, "l-DAE against raw pixels and the random-init network", str(fig_dir / "pixels.png"))
        figures["pixels"] = f"figures/{stem}/pixels.png"
    trend_rows = list(dict.fromkeys(r for pair in trends.values() for r in pair))
    knn = next(p.run_config for planned in parts.values() for p in planned).knn
    if plot_knn_curves(records, trend_rows, str(fig_dir / "knn_curves.png"), knn):
        figures["knn_curves"] = f"figures/{stem}/knn_curves.png"
    table = report.table(results_at(records, 1), scale)
    if ladder_chart.bar_chart(table, str(fig_dir / "ladder.png"), scale):
        figures["chart"] = f"figures/{stem}/ladder.png"
    text = markdown(parts, records, root, scale=scale, command=command, figures=figures, trends=trends, left=left,
                    record=record)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.with_suffix(".json").write_text(json.dumps({"scale": scale, "command": command, "rows": table}, indent=1))
    (path.parent / f"{stem}_runs.json").write_text(json.dumps({"scale": scale, "runs": records}, indent=1))
    return text
