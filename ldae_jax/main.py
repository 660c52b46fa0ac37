"""Entry point: fit the tokenizer, pre-train l-DAE, linear-probe it, draw the denoising figure.

    python -m ldae_jax.main --config=configs/quickstart.py --workdir=workdirs/quickstart [--mode=all]
    python -m ldae_jax.main --config=configs/quickstart.py --workdir=workdirs/q --dry_run   # check, print the plan

Modes are named tuples of stages (`ldae_jax/modes.py`): all (the default: tokenizer, pretrain, probe, figure,
each resuming from what the workdir already holds), tokenizer (also called pca), pretrain, probe, figure,
pretrain_probe, samples, fid, finetune, export. Any config field can be set with `--config.SECTION.FIELD=VALUE`.
Without --config, the workdir's config.json is read (a run made earlier). Every run first checks the config for
its stages (`preflight.check`); `--dry_run` does only that and prints the plan.
"""

from __future__ import annotations

import sys

import jax

from ldae_jax import cli, config_lib, modes
from ldae_jax.errors import DivergenceError, UserError
from ldae_jax.runtime import distributed, host_malloc, preemption

run = modes.run  # main.run, the notebook entry point


def parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(prog="python -m ldae_jax.main", description=__doc__.split("\n\n")[0],
                           epilog="Config fields: --config.SECTION.FIELD=VALUE, e.g. --config.train.total_steps=300 "
                                  "(all fields and their defaults: ldae_jax/schema.py).")
    p.add_argument("--config", help="configs/FILE.py[:variant]; default: the workdir's config.json")
    p.add_argument("--workdir", required=True, help="the run's outputs; a rerun resumes from it")
    p.add_argument("--mode", default="all", choices=list(modes.MODES), metavar="MODE",
                   help=f"stages to run: {', '.join(modes.MODES)} (default all)")
    p.add_argument("--probe_file", default="probe.json", help="file in the workdir that the probe result goes to")
    p.add_argument("--dry_run", action="store_true",
                   help="check the command and config for the mode's stages and print the plan; reads no data")
    p.add_argument("--devices", type=int, help="with --dry_run: the devices the job will have (default: this one's)")
    p.add_argument("--hosts", type=int, help="with --dry_run and --devices: the processes (hosts) it will have")
    p.add_argument("--remote", action="store_true",
                   help="with --dry_run: the job runs elsewhere (a pod, a cluster): its dataset is checked by the "
                        "dataset's known sizes, and the files the config names and the workdir are not looked at")
    p.add_argument("--allow_config_change", action="store_true",
                   help="resume a checkpoint written under a different config (warns)")
    p.add_argument("--take_over", action="store_true",
                   help="take the workdir from the run that holds its lock (when that run is known to be dead)")
    p.add_argument("--multihost", action="store_true", help="join a multi-host job detected by JAX (TPU, SLURM)")
    p.add_argument("--coordinator_address", help="HOST:PORT of process 0, for other multi-process jobs")
    p.add_argument("--num_processes", type=int, help="number of processes, with --coordinator_address")
    p.add_argument("--process_id", type=int, help="this process's index, with --coordinator_address")
    p.add_argument("--verbosity", type=int, help="library log level (-1 warnings, 0 info; default: errors only)")
    return p


def parse(argv: list[str]):
    """(args, config): the flags, and the config with every --config.X=V applied (checked field by field)."""
    overrides = [a[len("--config."):] for a in argv if a.startswith("--config.")]
    args = parser().parse_args([a for a in argv if not a.startswith("--config.")])
    if not args.dry_run and (args.devices is not None or args.hosts is not None or args.remote):
        raise UserError("--devices, --hosts and --remote describe another job for --dry_run; a run uses the "
                        "devices it has")
    if args.hosts is not None and args.devices is None:
        raise UserError("--hosts goes with --devices (the job's devices, over its hosts)")
    if args.devices is not None and args.devices < 1 or args.hosts is not None and args.hosts < 1:
        raise UserError("--devices and --hosts must be positive")
    config = config_lib.load_file(args.config) if args.config else config_lib.load_config(args.workdir)
    return args, config_lib.apply_overrides(config, overrides)


def main(argv: list[str]) -> None:
    args, config = parse(argv)
    cli.set_verbosity(args.verbosity)
    if args.dry_run:
        options = modes.Options(probe_file=args.probe_file)
        plan = modes.check(config, args.mode, devices=args.devices, processes=args.hosts or 1,
                           workdir=args.workdir, local=not args.remote, options=options)
        print(plan.describe(args.workdir))
        print(f"dry run: the command and config are valid for --mode={args.mode}; nothing was read or written")
        return
    distributed.initialize(multihost=args.multihost, coordinator_address=args.coordinator_address,
                           num_processes=args.num_processes, process_id=args.process_id)
    options = modes.Options(probe_file=args.probe_file, allow_config_change=args.allow_config_change,
                            take_over=args.take_over)
    modes.check(config, args.mode, workdir=args.workdir, options=options)  # before anything else is printed
    if (note := host_malloc.hint(jax.default_backend())) and jax.process_index() == 0:
        print(note, file=sys.stderr)
    try:
        out = run(config, args.workdir, args.mode, options=options, checked=True)
    except DivergenceError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(3)
    if out.get("preempted"):
        sys.exit(preemption.exit_code())  # 0 for a preemption notice (SIGTERM), 130 for Ctrl-C


if __name__ == "__main__":
    cli.run(main)
