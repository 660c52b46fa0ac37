"""The small-scale evidence: every run the ladder report decides its claims from, run (or resumed) in order of
what they decide, then the report written from whatever has finished.

    python -m ldae_jax.ladder.evidence --workdir=workdirs/evidence --report=docs/ladder_small.md
    python -m ldae_jax.ladder.evidence --dry_run          # the plan and its expected time, nothing run
    python -m ldae_jax.ladder.evidence --launch=report    # only the report, from the runs that finished

Parts, in the order they run (a part's runs are shared with an earlier part's where the configs are the same):
  1. trends@1x   the rows of the budget-trend pairs, 3 seeds (noise levels, tokenizer, class conditioning,
                 schedule; the l-DAE row also probes raw pixels and the random-init network)
  2. noise@4x    the multi-level / single-level pair at 4x the steps, 3 seeds
  3. table4      Table 4 at small scale: l-DAE against MAE at equal steps and at equal wall time, 3 seeds,
                 each also fine-tuned
  4. appendix    Appendix A: the l-DAE run probed at other t, with noisy input, at other blocks, 3 seeds
  5. trends@4x   the other trend pairs at 4x, 3 seeds
  6. claims@1x   every other row a claim compares (and t1.sigma, DiT's learned variance), 3 seeds
  7. noise@16x   the noise-level pair at 16x, 2 seeds
Stopping (Ctrl-C, SIGTERM) keeps every finished run and the current run's checkpoint; the same command
resumes. The committed per-run numbers (docs/ladder_small_runs.json, `--record`) count as finished runs while
their config is unchanged, so a fresh checkout runs only what the record lacks. The expected time is printed
first, from the finished runs' wall times when there are some.
"""

from __future__ import annotations

import dataclasses
import sys

from ldae_jax import cli
from ldae_jax.errors import UserError
from ldae_jax.ladder import evidence_report, record as record_lib, rows as rows_lib, runs
from ldae_jax.runtime import preemption

# The pairs whose ordering the paper and the small scale disagree on, or that the small scale left undecided.
TRENDS = {
    "multi_level": ("t3.step5", "t3.single"),
    "latent_vs_pixels": ("t3.step0", "f5.pixel.r128"),
    "cls_pca": ("t3.step0", "t1.cls"),
    "schedule_pca": ("t3.step0", "t1.ddpm"),
}
CLAIM_ROWS = ("t3.*,t1.row3,t1.row4,t1.row5,t1.cls,t1.ddpm,t1.sigma,t2.pca.*,t2.ae.d8,t2.ae.d16,t2.ae.d32,"
              "t2.ae.d64,t2.vae.d8,t2.vae.d16,t2.vae.d32,t2.vae.d64,f5.*,w.*")  # t1.sigma: in no claim, reported
UNIT_SECONDS = 100  # a small row at budget 1 on a 2-core AMD EPYC (2026-12-02), until this machine has measured one


@dataclasses.dataclass(frozen=True)
class Part:
    name: str
    rows: str  # row names or patterns (rows.select)
    seeds: tuple
    budget: int = 1
    finetune: bool = False  # also fine-tune each run


def _rows(*names) -> str:
    return ",".join(dict.fromkeys(names))


PARTS = (
    Part("trends@1x", _rows(*(r for pair in TRENDS.values() for r in pair)), (0, 1, 2)),
    Part("noise@4x", _rows(*TRENDS["multi_level"]), (0, 1, 2), 4),
    Part("table4", "t4.ldae,t4.mae,t4.mae.time", (0, 1, 2), finetune=True),
    Part("appendix", "a.*", (0, 1, 2)),
    Part("trends@4x", _rows(*(r for k, pair in TRENDS.items() if k != "multi_level" for r in pair)), (0, 1, 2), 4),
    Part("claims@1x", CLAIM_ROWS, (0, 1, 2)),
    Part("noise@16x", _rows(*TRENDS["multi_level"]), (0, 1), 16),
)


def plan(scale: str = "small", parts=PARTS, check: bool = True) -> dict[str, list[runs.PlannedRun]]:
    """{part name: its planned runs}, every config checked before any compute (unless `check` is False)."""
    return {part.name: runs.plan(rows_lib.select(part.rows), scale, list(part.seeds), check=check,
                                 budget=part.budget, finetune=part.finetune) for part in parts}


def measured_unit_seconds(root: str, planned: list[runs.PlannedRun], record: record_lib.Record) -> tuple[float, int]:
    """(seconds per cost unit, runs measured) from the finished runs' recorded wall times (this machine's under
    `root`, else the record's)."""
    seconds = units = 0.0
    count = 0
    for p in runs.todo_runs(planned):
        spent = evidence_report.wall_seconds(p, root, record)
        if spent is not None:
            seconds, units, count = seconds + spent, units + runs.cost(p), count + 1
    return (seconds / units if count else UNIT_SECONDS), count


def describe_plan(parts: dict, root: str, record: record_lib.Record | None = None) -> str:
    """Per part: runs done and to do, and the expected time of what is left."""
    record = record or record_lib.Record()
    everything = [p for planned in parts.values() for p in planned]
    unit, measured = measured_unit_seconds(root, everything, record)
    lines, seen, total = [], set(), 0.0
    for name, planned in parts.items():
        todo = [p for p in runs.todo_runs(planned) if (p.run_key, p.probe_file) not in seen]
        seen.update((p.run_key, p.probe_file) for p in todo)
        left = [p for p in todo if not evidence_report.finished(p, root, record)]
        seconds = sum(runs.cost(p) for p in left) * unit
        total += seconds
        lines.append(f"  {name:10s} {len(todo) - len(left):3d} done, {len(left):3d} to run, about "
                     f"{seconds / 3600:.1f} h")
    source = (f"measured from {measured} finished runs" if measured else
              f"a prior of {UNIT_SECONDS} s per small row, measured on a 2-core AMD EPYC on 2026-12-02")
    recorded = f"; {len(record)} runs recorded in the committed record" if len(record) else ""
    return "\n".join([f"Evidence plan in {root} ({unit:.0f} s per small row: {source}{recorded}):", *lines,
                      f"  expected time for what is left: {total / 3600:.1f} h"])


def parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(prog="python -m ldae_jax.ladder.evidence", description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", default="workdirs/evidence", help="root directory of the runs")
    p.add_argument("--report", default="docs/ladder_small.md", help="the report to write (its figures and JSON "
                                                                     "beside it)")
    p.add_argument("--record", default=None,
                   help="the committed per-run numbers whose runs count as finished while their config is unchanged "
                        "(default: the report's <name>_runs.json; '' for none)")
    p.add_argument("--parts", default="", help="comma-separated part names to run (default: all, in order)")
    p.add_argument("--launch", default="local", choices=("local", "report"),
                   help="local: run what is missing, then report; report: only write the report")
    p.add_argument("--scale", default="small", choices=("small", "tiny"), help="tiny: a few steps, for tests")
    p.add_argument("--dry_run", action="store_true", help="print the plan and its expected time, run nothing")
    p.add_argument("--verbosity", type=int, help="library log level (-1 warnings, 0 info; default: errors only)")
    return p


def select_parts(text: str):
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in {p.name for p in PARTS}]
    if unknown:
        raise UserError(f"--parts: unknown {', '.join(unknown)}; parts: {', '.join(p.name for p in PARTS)}")
    return tuple(p for p in PARTS if not names or p.name in names)


def main(argv: list[str]) -> None:
    args = parser().parse_args(argv)
    cli.set_verbosity(args.verbosity)
    chosen = select_parts(args.parts)
    parts = plan(args.scale, chosen, check=args.launch == "local")
    default_record = args.report.removesuffix(".md") + "_runs.json"
    record = record_lib.Record.load(default_record if args.record is None else args.record) \
        if args.record != "" else record_lib.Record()
    print(describe_plan(parts, args.workdir, record), flush=True)
    if args.dry_run:
        print("dry run: every config checked; nothing was run")
        return
    if args.launch == "local":
        for name, planned in parts.items():
            mine = [p for p in planned if runs.is_done(p, args.workdir) or not record.finished(p)]
            taken = len(runs.todo_runs(planned)) - len(runs.todo_runs(mine))
            print(f"== part {name} ==" + (f" ({taken} runs finished in the record)" if taken else ""), flush=True)
            if not runs.run_local(mine, args.workdir):
                sys.exit(preemption.exit_code())
    everything = plan(args.scale, PARTS, check=False)
    command = f"python -m ldae_jax.ladder.evidence --workdir={args.workdir} --report={args.report}"  # what made it
    left = describe_plan(everything, args.workdir, record).splitlines()[-1].strip()
    evidence_report.write(everything, args.workdir, args.report, scale=args.scale, command=command, trends=TRENDS,
                          left=left, record=record)
    print(f"Report: {args.report}")


if __name__ == "__main__":
    cli.run(main)
