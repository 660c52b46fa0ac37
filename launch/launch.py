#!/usr/bin/env python3
"""Start `python -m ldae_jax.main` on a TPU pod, a SLURM GPU cluster, one GPU node, or N CPU processes here.

    python launch/launch.py tpu create --name=ldae --zone=us-central2-b --accelerator-type=v4-64 --dry-run
    python launch/launch.py tpu run --name=ldae --zone=us-central2-b --config=configs/quickstart.py \
        --workdir=gs://bucket/run -- --config.train.total_steps=100
    python launch/launch.py slurm --nodes=2 --gpus-per-node=8 --config=... --workdir=/shared/run --dry-run
    python launch/launch.py gpu --config=configs/quickstart.py --workdir=workdirs/q --gpus=0
    python launch/launch.py local --num-processes=2 --devices-per-process=4 --config=... --workdir=workdirs/mp

Every subcommand takes --dry-run, which prints the exact shell commands (one a line, copy-pastable) instead of
running them; everything after `--` goes to ldae_jax.main unchanged. Before it starts or submits a run, the
launcher runs the config's check here (`python -m ldae_jax.main --dry_run`) with the device and host count the
job will have, so a config that would fail stops before any host starts (`--skip-check` when this machine
cannot import ldae_jax). The file uses the standard library only, so it runs before any set-up and on a laptop
that only drives gcloud.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Flags the launcher itself passes to ldae_jax.main; given again after `--` they would silently fight.
OWN_FLAGS = ("--config", "--workdir", "--multihost", "--coordinator_address", "--num_processes", "--process_id")


class LaunchError(Exception):
    """A mistake the user can fix: printed as one `error:` line, exit code 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose mistakes are one `error:` line (no usage block before it) and exit code 2."""

    def error(self, message: str) -> None:
        print(f"error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


# --------------------------------------------------------------------------------------------- TPU slices


@dataclasses.dataclass(frozen=True)
class TpuSlice:
    accelerator_type: str
    hosts: int  # TPU VMs (gcloud "workers"): one ldae_jax.main process each
    chips_per_host: int
    runtime_version: str  # the default `--version` for this generation

    def describe(self) -> str:
        return f"{self.accelerator_type}: {self.hosts} host{'s' * (self.hosts > 1)} x {self.chips_per_host} chips"


# generation -> (TensorCores per chip, i.e. what the number in the name counts per chip; default runtime).
# v2/v3/v4/v5p names count TensorCores (2 a chip) and every host has 4 chips: v4-64 = 32 chips = 8 hosts
# (cloud.google.com/tpu/docs/v4; docs/v5p's table: v5p-128 = 64 chips = 16 hosts).
# v5litepod/v6e names count chips (1 TensorCore each); slices of up to 8 chips are one VM, larger ones are
# VMs of 4 chips (docs/v5e, "VM types": ct5lp-hightpu-4t), so v5litepod-16 = 4 hosts. That page's topology
# table says "2 hosts" for 4x4 because it counts 8-chip physical machines, not the VMs a job runs on.
TPU_GENERATIONS = {
    "v2": (2, "tpu-ubuntu2204-base"),
    "v3": (2, "tpu-ubuntu2204-base"),
    "v4": (2, "tpu-ubuntu2204-base"),
    "v5p": (2, "v2-alpha-tpuv5"),
    "v5litepod": (1, "v2-alpha-tpuv5-lite"),
    "v6e": (1, "v2-alpha-tpuv6e"),
}


def tpu_slice(accelerator_type: str) -> TpuSlice:
    """Hosts and chips of an accelerator type such as v4-64; a type gcloud would refuse is refused here."""
    known = ", ".join(f"{g}-N" for g in TPU_GENERATIONS)
    match = re.fullmatch(r"([a-z0-9]+)-(\d+)", accelerator_type)
    generation, n = (match.group(1), int(match.group(2))) if match else (None, 0)
    if generation == "v5e":
        raise LaunchError(f"unknown TPU accelerator type {accelerator_type!r}: gcloud spells v5e as v5litepod-N")
    if generation not in TPU_GENERATIONS:
        raise LaunchError(f"unknown TPU accelerator type {accelerator_type!r}; known: {known}")
    cores_per_chip, runtime = TPU_GENERATIONS[generation]
    if cores_per_chip == 2:
        if n < 8 or n % 8:
            raise LaunchError(f"{accelerator_type}: {generation}-N counts TensorCores, N a multiple of 8 (v4-8, v4-64)")
        return TpuSlice(accelerator_type, n // 2 // 4, 4, runtime)
    if n in (1, 4, 8):
        return TpuSlice(accelerator_type, 1, n, runtime)
    if n % 16:
        raise LaunchError(f"{accelerator_type}: {generation}-N counts chips, N one of 1, 4, 8 or a multiple of 16")
    return TpuSlice(accelerator_type, n // 4, 4, runtime)


# ------------------------------------------------------------------------------------------------ steps


@dataclasses.dataclass
class Step:
    """One shell command (or a `#` comment): what --dry-run prints is exactly what run() executes."""

    argv: list[str] = dataclasses.field(default_factory=list)
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    cwd: str | None = None
    comment: str | None = None

    def line(self) -> str:
        if self.comment is not None:
            return f"# {self.comment}"
        prefix = f"cd {shlex.quote(self.cwd)} && " if self.cwd else ""
        env = ["env", *(f"{k}={v}" for k, v in self.env.items())] if self.env else []
        return prefix + shlex.join(env + self.argv)

    def run(self) -> None:
        if self.comment is not None:
            print(self.line(), file=sys.stderr)
            return
        print(f"+ {self.line()}", file=sys.stderr, flush=True)
        try:
            rc = subprocess.run(self.argv, env={**os.environ, **self.env}, cwd=self.cwd).returncode
        except FileNotFoundError:
            raise LaunchError(f"{self.argv[0]} not found: {INSTALL_HINTS.get(self.argv[0], 'install it')}") from None
        if rc:
            raise LaunchError(f"exit code {rc} from: {self.line()}")

    def exec(self) -> None:
        """Become the main program, so Ctrl-C and SIGTERM reach it directly (its SIGTERM saves a checkpoint)."""
        print(f"+ {self.line()}", file=sys.stderr, flush=True)
        os.chdir(self.cwd or ".")
        try:
            os.execvpe(self.argv[0], self.argv, {**os.environ, **self.env})
        except FileNotFoundError:
            raise LaunchError(f"{self.argv[0]} not found: give --python, the Python with ldae_jax installed") from None


INSTALL_HINTS = {
    "gcloud": "install the Google Cloud CLI (cloud.google.com/sdk) and run `gcloud auth login`",
    "sbatch": "run this on a SLURM login node",
}


# JAX devices per TPU chip: v2/v3 show each of a chip's two TensorCores; v4 and v5p join them (megacore);
# v5e and v6e chips have one.
DEVICES_PER_CHIP = {"v2": 2, "v3": 2}


def check_config(args, extra: list[str], *, devices: int | None, hosts: int = 1, remote: bool = False) -> None:
    """The run's one check before compute, here, for a job of `devices` devices on `hosts` hosts (None: this
    machine's devices); a failure is the check's own error line."""
    if args.skip_check:
        return
    flags = ["--dry_run", *([f"--devices={devices}", f"--hosts={hosts}"] if devices else []),
             *(["--remote"] if remote else [])]
    argv = main_argv(args.python, "ldae_jax.main", args, extra, *flags)
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=str(REPO))
    except FileNotFoundError:
        raise LaunchError(f"{args.python} not found: give --python, the Python with ldae_jax installed") from None
    if proc.returncode == 0:
        print(f"checked: {proc.stdout.strip().splitlines()[-1]}", file=sys.stderr, flush=True)
        return
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    if proc.returncode == 2 and errors:
        raise LaunchError(errors[-1][len("error: "):])
    if "No module named 'ldae_jax'" in proc.stderr:
        raise LaunchError(f"{args.python} cannot import ldae_jax to check the config: give --python, run "
                          "`bash launch/setup.sh`, or pass --skip-check")
    raise LaunchError(f"the config check failed (exit code {proc.returncode}): {shlex.join(argv)}")


def main_argv(python: str, module: str, args, extra: list[str], *flags: str) -> list[str]:
    """`python -m module [flags] --config=... --workdir=... extra`; --config is optional, as in main.py."""
    config = [f"--config={args.config}"] if args.config else []
    return [python, "-m", module, *flags, *config, f"--workdir={args.workdir}", *extra]


def local_path(workdir: str) -> str:
    """Absolute, because the commands run from the repo root; URLs (gs://...) pass unchanged."""
    return workdir if "://" in workdir else os.path.abspath(workdir)


# -------------------------------------------------------------------------------------------------- tpu


def tpu_steps(args, extra: list[str]) -> list[Step]:
    """gcloud commands for one action on a TPU VM slice; every host runs the same command (--worker=all)."""

    def gcloud(verb: str, *flags: str) -> list[str]:
        project = [f"--project={args.project}"] if args.project else []
        return ["gcloud", "compute", "tpus", "tpu-vm", verb, args.name, f"--zone={args.zone}", *project, *flags]

    def ssh(*commands: str, worker: str = "all") -> Step:
        return Step(gcloud("ssh", f"--worker={worker}", "--command", " && ".join(commands)))

    steps = [Step(comment=args.accelerator_type.describe())] if args.accelerator_type else []
    where = shlex.quote(args.remote_dir)  # relative to the home directory on every host
    if args.action == "create":
        flags = [f"--accelerator-type={args.accelerator_type.accelerator_type}",
                 f"--version={args.version or args.accelerator_type.runtime_version}"]
        steps.append(Step(gcloud("create", *flags, *(["--spot"] if args.spot else []))))
    elif args.action == "setup":
        # The TPU images ship Python 3.10; Ubuntu 22.04 has 3.11 in universe.
        python = f"python{args.python_version}"
        apt = f"sudo apt-get update -qq && sudo apt-get install -y -qq {python} {python}-venv git"
        install = (f"cd {where} && {python} -m venv .venv && .venv/bin/pip install -q -U pip "
                   f"&& .venv/bin/pip install -q -e '.[tpu]'")
        if args.repo_url:
            url, branch = shlex.quote(args.repo_url), shlex.quote(args.branch)
            fetch = (f"if [ -d {where}/.git ]; then git -C {where} fetch -q origin {branch} "
                     f"&& git -C {where} checkout -q FETCH_HEAD; "
                     f"else git clone -q --depth=1 --branch={branch} {url} {where}; fi")
            steps.append(ssh(apt, fetch, install))
        else:
            # A tarball of the working tree rather than `scp --recurse` of the checkout, which would also copy
            # .venv (this machine's binaries), .git and workdirs to every host.
            tarball = f"/tmp/{args.name}_ldae_jax_src.tar.gz"
            skipped = (".venv", ".git", "workdirs", "logs", "__pycache__", ".pytest_cache", "*.egg-info")
            excludes = [f"--exclude={p}" for p in skipped]
            steps.append(Step(["tar", "-czf", tarball, *excludes, "-C", str(REPO), "."]))
            steps.append(Step(gcloud("scp", tarball, f"{args.name}:ldae_jax_src.tar.gz", "--worker=all")))
            unpack = f"mkdir -p {where} && tar -xzf ldae_jax_src.tar.gz -C {where}"
            steps.append(ssh(apt, unpack, install))
    elif args.action == "run":
        if not args.dry_run and not args.skip_check:
            if not args.accelerator_type:
                raise LaunchError("tpu run: give --accelerator-type, so the config is checked for the slice's "
                                  "devices before the job starts (or --skip-check)")
            tpu = args.accelerator_type
            per_chip = DEVICES_PER_CHIP.get(tpu.accelerator_type.split("-")[0], 1)
            check_config(args, extra, devices=tpu.hosts * tpu.chips_per_host * per_chip, hosts=tpu.hosts,
                         remote=True)
        if not args.workdir.startswith("gs://"):
            steps.append(Step(comment=f"warning: --workdir={args.workdir} is not gs://: each host has its own disk, "
                                      "and orbax needs one path every host shares (gs://, or a mount on every host)"))
        program = shlex.join(main_argv(".venv/bin/python", "ldae_jax.main", args, extra, "--multihost"))
        # nohup + </dev/null: the job outlives the ssh session; its pid is kept for `stop`.
        steps.append(ssh(f"cd {where}", "mkdir -p logs",
                         f"{{ TF_CPP_MIN_LOG_LEVEL=2 nohup {program} > logs/main.log 2>&1 < /dev/null & "
                         "echo $! > logs/main.pid; }"))
    elif args.action == "logs":
        follow = " -f" if args.follow else ""
        steps.append(ssh(f"tail -n {args.lines}{follow} {where}/logs/main.log", worker=str(args.worker)))
    elif args.action == "stop":
        # SIGTERM: ldae_jax.main saves a checkpoint and exits, so a later `run` resumes.
        steps.append(ssh(f"kill $(cat {where}/logs/main.pid)"))
    elif args.action == "delete":
        steps.append(Step(gcloud("delete")))
    return steps


# ------------------------------------------------------------------------------------------------ slurm


def slurm_script(args, extra: list[str]) -> str:
    """An sbatch script: one task per node, each driving all of its node's GPUs."""
    optional = [f"--{k}={v}" for k, v in (("time", args.time), ("partition", args.partition),
                                            ("account", args.account)) if v]
    directives = [
        f"--job-name={args.job_name}", f"--nodes={args.nodes}", "--ntasks-per-node=1",
        f"--gpus-per-node={args.gpus_per_node}", f"--cpus-per-task={args.cpus_per_task or 8 * args.gpus_per_node}",
        *optional, f"--chdir={REPO}", f"--output={args.log_dir}/%x-%j.out",
    ]
    program = shlex.join(main_argv(args.python, "ldae_jax.main", args, extra, "--multihost"))
    device_ids = ",".join(map(str, range(args.gpus_per_node)))
    return "\n".join([
        "#!/bin/bash",
        *(f"#SBATCH {d}" for d in directives),
        f"# {args.nodes} node{'s' * (args.nodes > 1)} x {args.gpus_per_node} GPUs; "
        "prerequisite, once, on the shared filesystem: pip install -e '.[cuda]'",
        "set -euo pipefail",
        "export TF_CPP_MIN_LOG_LEVEL=2",
        "# jax.distributed.initialize() reads process id, count and coordinator from SLURM, but would also give",
        "# each process only GPU number SLURM_LOCALID (one process per GPU); ours drives all of its node's GPUs.",
        f"export JAX_LOCAL_DEVICE_IDS={device_ids}",
        f"srun --kill-on-bad-exit=1 {program}",
        "",
    ])


def slurm(args, extra: list[str]) -> None:
    args.workdir = local_path(args.workdir)
    if args.log_dir is None:
        if "://" in args.workdir:
            raise LaunchError("--workdir is a URL: give --log-dir, a shared directory for the job's output")
        args.log_dir = os.path.join(args.workdir, "logs")
    args.log_dir = os.path.abspath(args.log_dir)
    script, path = slurm_script(args, extra), os.path.join(args.log_dir, f"{args.job_name}.sbatch")
    if args.dry_run:
        print(shlex.join(["mkdir", "-p", args.log_dir]))
        print(f"cat > {shlex.quote(path)} <<'EOF'\n{script}EOF")
        print(shlex.join(["sbatch", path]))
        return
    check_config(args, extra, devices=args.nodes * args.gpus_per_node, hosts=args.nodes)
    os.makedirs(args.log_dir, exist_ok=True)
    Path(path).write_text(script)
    print(f"wrote {path}", file=sys.stderr)
    Step(["sbatch", path]).run()


# -------------------------------------------------------------------------------------------------- gpu


def gpu_step(args, extra: list[str]) -> Step:
    env = {"TF_CPP_MIN_LOG_LEVEL": "2"}
    if args.gpus is not None:
        env = {"CUDA_VISIBLE_DEVICES": args.gpus, **env}
    args.workdir = local_path(args.workdir)
    return Step(main_argv(args.python, "ldae_jax.main", args, extra), env=env, cwd=str(REPO))


def gpu(args, extra: list[str]) -> None:
    step = gpu_step(args, extra)
    if not args.dry_run:
        devices = len([g for g in args.gpus.split(",") if g.strip()]) if args.gpus else None  # None: all of them
        check_config(args, extra, devices=devices)
    run_steps(args, [step], exec_last=True)


# ------------------------------------------------------------------------------------------------ local


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def local_steps(args, extra: list[str], port: int) -> list[tuple[Step, str]]:
    """One (command, log file) per process: a multi-host job whose hosts are CPU processes of this machine."""
    args.workdir = local_path(args.workdir)
    # Inherited XLA_FLAGS stay, except a device count, which is ours to set.
    kept = [f for f in os.environ.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f]
    sys.path.insert(0, str(REPO))
    from ldae_jax.runtime import host_malloc  # standard library only

    env = {"XLA_FLAGS": " ".join([*kept, f"--xla_force_host_platform_device_count={args.devices_per_process}"]),
           "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "2",
           "GLIBC_TUNABLES": host_malloc.environ()["GLIBC_TUNABLES"]}  # huge pages for the host heap: faster steps
    distributed = [f"--coordinator_address=127.0.0.1:{port}", f"--num_processes={args.num_processes}"]
    return [(Step(main_argv(args.python, args.module, args, extra, *distributed, f"--process_id={i}"), env=env,
                  cwd=str(REPO)), os.path.join(args.workdir, "logs", f"process_{i}.log"))
            for i in range(args.num_processes)]


def local(args, extra: list[str]) -> None:
    port = args.port or free_port()
    procs = local_steps(args, extra, port)
    log_dir = os.path.join(args.workdir, "logs")
    header = (f"# {args.num_processes} processes x {args.devices_per_process} CPU devices = "
              f"{args.num_processes * args.devices_per_process} devices, coordinator 127.0.0.1:{port}")
    if args.dry_run:
        print(header)
        print(shlex.join(["mkdir", "-p", log_dir]))
        for step, log in procs:
            print(f"{step.line()} > {shlex.quote(log)} 2>&1 &")
        print("wait")
        return
    if args.module == "ldae_jax.main":
        check_config(args, extra, devices=args.num_processes * args.devices_per_process, hosts=args.num_processes)
    print(f"{header[2:]}; logs in {log_dir}", flush=True)
    os.makedirs(log_dir, exist_ok=True)
    sys.exit(run_processes(procs))


def run_processes(procs: list[tuple[Step, str]]) -> int:
    """Start all, wait for all. A failed process stops the rest (they would wait on it until JAX times out).

    Children get their own session so that a Ctrl-C reaches them once, from us, not also from the terminal;
    SIGINT/SIGTERM are forwarded, and a second one kills.
    """
    children = []
    for step, log in procs:
        with open(log, "w") as out:
            try:
                children.append(subprocess.Popen(step.argv, env={**os.environ, **step.env}, cwd=step.cwd,
                                                 stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
            except FileNotFoundError:
                stop_all(children)
                raise LaunchError(f"{step.argv[0]} not found: give --python, the Python with ldae_jax") from None
    received = []

    def forward(signum, _frame):
        received.append(signum)
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGKILL if len(received) > 1 else signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    first_failed = None
    try:
        while True:
            codes = [c.poll() for c in children]  # every child, every time: any() would stop at the first
            if first_failed is None and not received:
                first_failed = next((i for i, rc in enumerate(codes) if rc not in (None, 0)), None)
                if first_failed is not None:
                    stop_all(children)
                    continue
            if None not in codes:
                break
            time.sleep(0.1)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if received:
        print(f"error: interrupted; {signal.Signals(received[0]).name} forwarded to all processes", file=sys.stderr)
        return 128 + received[0]
    if first_failed is not None:
        i = first_failed
        tail = Path(procs[i][1]).read_text(errors="replace").splitlines()[-15:]
        print(f"error: process {i} failed (exit code {children[i].returncode}); last lines of {procs[i][1]}:",
              *(f"  {line}" for line in tail), sep="\n", file=sys.stderr)
        return 1
    print(f"all {len(children)} processes finished", flush=True)
    return 0


def stop_all(children: list[subprocess.Popen], grace_s: float = 30.0) -> None:
    """SIGTERM (ldae_jax.main checkpoints on it), then SIGKILL whatever is still there after grace_s."""
    for child in children:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + grace_s
    for child in children:
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


# ----------------------------------------------------------------------------------------- command line


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def port_number(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0..65535 (0: a free one), got {text!r}")
    return int(text)


def accelerator_type(text: str) -> TpuSlice:
    try:
        return tpu_slice(text)
    except LaunchError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    def parser(sub, name: str, help_: str, *parents) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_, description=help_, parents=list(parents), allow_abbrev=False)

    top = ArgumentParser(prog="launch.py", description=__doc__.split("\n\n")[0], allow_abbrev=False,
                                  formatter_class=argparse.RawDescriptionHelpFormatter,
                                  epilog="Arguments after `--` go to ldae_jax.main:\n"
                                         "  launch.py gpu --workdir=w -- --config.train.total_steps=100")
    dry = argparse.ArgumentParser(add_help=False)
    dry.add_argument("--dry-run", action="store_true", help="print the shell commands instead of running them")
    dry.add_argument("--skip-check", action="store_true",
                     help="do not check the config here before launching (when this machine cannot import ldae_jax)")
    program = argparse.ArgumentParser(add_help=False)
    program.add_argument("--config", help="configs/FILE.py[:variant], relative to the repo root")
    program.add_argument("--workdir", required=True, help="the run's output directory (gs://... on TPU pods)")
    python = argparse.ArgumentParser(add_help=False)
    python.add_argument("--python", default=sys.executable,
                        help="the Python with ldae_jax installed (default: the one running this)")
    subs = top.add_subparsers(dest="target", required=True, metavar="{tpu,slurm,gpu,local}")

    tpu = parser(subs, "tpu", "a TPU VM slice through `gcloud compute tpus tpu-vm`")
    actions = tpu.add_subparsers(dest="action", required=True, metavar="{create,setup,run,logs,stop,delete}")
    vm = argparse.ArgumentParser(add_help=False, parents=[dry])
    vm.add_argument("--name", required=True, help="the TPU VM's name")
    vm.add_argument("--zone", required=True, help="e.g. us-central2-b (v4), us-west4-a (v5e)")
    vm.add_argument("--project", help="the Google Cloud project (default: gcloud's)")
    vm.add_argument("--remote-dir", default="ldae_jax", help="the checkout on each host, relative to home")
    described = {
        "create": "create the slice", "setup": "put the code on every host and pip install -e '.[tpu]'",
        "run": "start ldae_jax.main on every host in the background", "logs": "show a host's log",
        "stop": "SIGTERM the run on every host (it checkpoints first)", "delete": "delete the slice",
    }
    for action, help_ in described.items():
        p = parser(actions, action, help_, vm, *([program, python] if action == "run" else []))
        p.add_argument("--accelerator-type", type=accelerator_type, required=action == "create",
                       help="e.g. v4-8, v4-64, v5litepod-16, v5p-128" + (
                           "" if action == "create" else " (run: the slice's devices, for the config's check)"
                           if action == "run" else " (only to print its host count)"))
        if action == "create":
            p.add_argument("--version", help="TPU runtime (default: tpu-ubuntu2204-base for v2-v4, "
                                             "v2-alpha-tpuv5-lite, v2-alpha-tpuv5, v2-alpha-tpuv6e)")
            p.add_argument("--spot", action="store_true", help="a Spot slice: cheaper, may be preempted")
        if action == "setup":
            p.add_argument("--repo-url", help="git clone this on every host (default: copy this checkout)")
            p.add_argument("--branch", default="main", help="with --repo-url")
            p.add_argument("--python-version", default="3.11", help="installed with apt on every host")
        if action == "logs":
            p.add_argument("--worker", type=int, default=0, help="which host (0 = the coordinator)")
            p.add_argument("--lines", type=positive_int, default=100)
            p.add_argument("--follow", action="store_true", help="tail -f")
        p.set_defaults(handler=lambda args, extra: run_steps(args, tpu_steps(args, extra)))

    p = parser(subs, "slurm", "several GPU nodes with SLURM: one process per node (sbatch)", dry, program, python)
    p.add_argument("--nodes", type=positive_int, required=True)
    p.add_argument("--gpus-per-node", type=positive_int, required=True)
    p.add_argument("--cpus-per-task", type=positive_int, help="default: 8 per GPU (the tf.data input pipeline)")
    p.add_argument("--time", help="e.g. 24:00:00 (default: the partition's)")
    p.add_argument("--partition", help="default: the cluster's")
    p.add_argument("--account", help="default: yours")
    p.add_argument("--job-name", default="ldae_jax")
    p.add_argument("--log-dir", help="for the sbatch script and the job's output (default: WORKDIR/logs)")
    p.set_defaults(handler=slurm)

    p = parser(subs, "gpu", "one GPU node: the main program, in the foreground", dry, program, python)
    p.add_argument("--gpus", help="CUDA_VISIBLE_DEVICES, e.g. 0,1 (default: all)")
    p.set_defaults(handler=gpu)

    p = parser(subs, "local", "N CPU processes on this machine: a multi-host job to test multi-host code",
               dry, program, python)
    p.add_argument("--num-processes", type=positive_int, default=2)
    p.add_argument("--devices-per-process", type=positive_int, default=4, help="fake CPU devices in each")
    p.add_argument("--port", type=port_number, default=0, help="the coordinator's port (default: a free one)")
    p.add_argument("--module", default="ldae_jax.main", help=argparse.SUPPRESS)  # tests run a stand-in
    p.set_defaults(handler=local)
    return top


def run_steps(args, steps: list[Step], exec_last: bool = False) -> None:
    if args.dry_run:
        print("\n".join(step.line() for step in steps))
        return
    for i, step in enumerate(steps):
        if exec_last and i == len(steps) - 1:
            step.exec()
        else:
            step.run()


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    own, extra = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    parser = build_parser()
    args, unknown = parser.parse_known_args(own)
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)} (flags for ldae_jax.main go after `--`)")
    try:
        repeated = [a for a in extra if a.split("=")[0] in OWN_FLAGS]
        if repeated:
            raise LaunchError(f"{repeated[0]} after `--`: the launcher sets it; give --config/--workdir before `--`")
        args.handler(args, extra)
    except LaunchError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
