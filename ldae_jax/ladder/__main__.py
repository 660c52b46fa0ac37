"""The ladder runner: pre-train and probe a set of ladder rows, then write a report table and a Figure 6-style chart.

    python -m ldae_jax.ladder --rows='t3.*,t1.*' --scale=small --seeds=0,1 --workdir=workdirs/ladder
    python -m ldae_jax.ladder --rows='t2.pca.*' --scale=paper --launch=print --workdir=gs://bucket/ladder

Rows and their changes are in `ldae_jax/ladder/rows.py`. Locally (`--launch=local`) rows run one after another
in this process, each in `workdir/ROW/seedN`, resuming whatever an earlier invocation left; rows whose configs
are identical (e.g. t2.pca.d32 and t3.step0) share one run. `--launch=print` prints one command per run
instead, for a cluster scheduler; a later `--launch=report` gathers their probe results. Every row's config is
checked (the one check before compute, as `--dry_run` does) before anything runs.
"""

from __future__ import annotations

import sys

from ldae_jax import cli
from ldae_jax.errors import UserError
from ldae_jax.ladder import report as report_lib, rows as rows_lib, runs
from ldae_jax.runtime import preemption


def parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(prog="python -m ldae_jax.ladder", description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", default="t3.*", help="comma-separated row names or patterns (ldae_jax/ladder/rows.py)")
    p.add_argument("--scale", default="small", choices=rows_lib.SCALES,
                   help="small: Fashion-MNIST on CPU; tiny: a few steps; cifar: CIFAR-10 (prepared); paper: ImageNet")
    p.add_argument("--seeds", default="0", help="comma-separated seeds to run each row with")
    p.add_argument("--workdir", default="workdirs/ladder", help="root directory; each run goes to workdir/ROW/seedN")
    p.add_argument("--launch", default="local", choices=("local", "print", "report"),
                   help="local: run here; print: print one command per run; report: only gather finished runs")
    p.add_argument("--vgg16", default="", help="VGG16 weights (.npz) for the perceptual loss of Table 1 rows 1-2")
    p.add_argument("--inception", default="", help="Inception-v3 weights (.npz): also measure every run's FID")
    p.add_argument("--report", default="", help="markdown report path (default workdir/ladder_SCALE.md)")
    p.add_argument("--devices", type=int, help="with --launch=print: the devices each printed run will have "
                                               "(default: this machine's)")
    p.add_argument("--hosts", type=int, default=1, help="with --launch=print and --devices: their hosts")
    p.add_argument("--dry_run", action="store_true", help="plan and check every run, print the plan, run nothing")
    p.add_argument("--verbosity", type=int, help="library log level (-1 warnings, 0 info; default: errors only)")
    return p


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds={text!r}: expected comma-separated integers such as 0,1,2") from None
    if not seeds or min(seeds) < 0:
        raise UserError(f"--seeds={text!r}: expected one or more non-negative integers")
    return seeds


def main(argv: list[str]) -> None:
    args = parser().parse_args(argv)
    cli.set_verbosity(args.verbosity)
    if (args.devices is not None or args.hosts != 1) and args.launch != "print":
        raise UserError("--devices and --hosts describe the cluster for --launch=print; here runs use this machine")
    rows = rows_lib.select(args.rows)
    planned = runs.plan(rows, args.scale, _seeds(args.seeds), args.vgg16, args.inception,
                        check=args.launch != "report", local=args.launch == "local", devices=args.devices,
                        hosts=args.hosts)
    distinct = len({(p.run_key, p.probe_file) for p in planned})
    if args.dry_run:
        checked = "each config checked" if args.launch != "report" else "results only (--launch=report checks nothing)"
        print(f"dry run: {len(planned)} (row, seed) pairs, {distinct} runs, {checked}; nothing was run")
        return
    if args.launch == "print":
        runs.print_commands(planned, args.workdir, args.scale, args.vgg16, args.inception)
        return
    if args.launch == "local" and not runs.run_local(planned, args.workdir):
        sys.exit(preemption.exit_code())  # stopped by a signal: 0 for a preemption notice, 130 for Ctrl-C
    report = args.report or f"{args.workdir}/ladder_{args.scale}.md"
    command = "python -m ldae_jax.ladder " + " ".join(argv)
    report_lib.write(runs.gather(planned, args.workdir), report, scale=args.scale, command=command,
                     fids=runs.gather_fid(planned, args.workdir))
    print(f"Report: {report}")


if __name__ == "__main__":
    cli.run(main)
