"""launch/launch.py: the dry-run commands of every target, bad input as one-line errors, and a real 2-process
local JAX job (tests/distributed_hello.py stands in for ldae_jax.main). No gcloud, SLURM, network or training."""

import importlib.util
import os
import shlex
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "launch", "launch.py")
_spec = importlib.util.spec_from_file_location("launch_cli", SCRIPT)
launch = sys.modules["launch_cli"] = importlib.util.module_from_spec(_spec)  # dataclasses look it up there
_spec.loader.exec_module(launch)

# Forwarded flags a shell would mangle if they were not quoted: spaces, both quotes, $, a glob.
TRICKY = ["--config.train.total_steps=100", "--config.note=it's a \"quoted\" $HOME *"]
POD = ["--name=ldae", "--zone=us-central2-b", "--accelerator-type=v4-64"]


def dry_run(capsys, *argv: str) -> list[str]:
    launch.main([*argv, "--dry-run"] if "--" not in argv else
                [*argv[:argv.index("--")], "--dry-run", *argv[argv.index("--"):]])
    return capsys.readouterr().out.splitlines()


def error_of(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        launch.main(list(argv))
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


def remote_command(line: str) -> list[str]:
    """The words the host's shell runs, from a `gcloud ... ssh ... --command CMD` line."""
    words = shlex.split(line)
    return shlex.split(words[words.index("--command") + 1])


def test_v4_64_pod_commands(capsys):
    create = dry_run(capsys, "tpu", "create", *POD, "--spot")
    assert create[0] == "# v4-64: 8 hosts x 4 chips"
    assert shlex.split(create[1]) == [
        "gcloud", "compute", "tpus", "tpu-vm", "create", "ldae", "--zone=us-central2-b", "--accelerator-type=v4-64",
        "--version=tpu-ubuntu2204-base", "--spot"]

    setup = dry_run(capsys, "tpu", "setup", *POD)
    assert setup[0] == "# v4-64: 8 hosts x 4 chips"
    tar, scp, ssh = map(shlex.split, setup[1:])
    assert tar[:2] == ["tar", "-czf"] and "--exclude=.venv" in tar and tar[-3:] == ["-C", REPO, "."]
    assert scp[4] == "scp" and "--worker=all" in scp and scp[-2] == "ldae:ldae_jax_src.tar.gz"
    assert "--worker=all" in ssh
    host = " ".join(remote_command(setup[3]))
    assert "python3.11 -m venv .venv" in host and "pip install -q -e .[tpu]" in host

    cloned = dry_run(capsys, "tpu", "setup", *POD, "--repo-url=https://example.org/ldae_jax.git")
    assert len(cloned) == 2 and "git clone" in cloned[1] and "--worker=all" in cloned[1]

    run = dry_run(capsys, "tpu", "run", *POD, "--config=configs/quickstart.py:tiny", "--workdir=gs://bucket/run",
                  "--", *TRICKY)
    assert run[0] == "# v4-64: 8 hosts x 4 chips" and len(run) == 2  # gs:// workdir: no warning
    assert "--worker=all" in shlex.split(run[1])
    host = remote_command(run[1])
    program = host[host.index("nohup") + 1:host.index(">")]
    assert program == [".venv/bin/python", "-m", "ldae_jax.main", "--multihost", "--config=configs/quickstart.py:tiny",
                       "--workdir=gs://bucket/run", *TRICKY]
    assert host[:2] == ["cd", "ldae_jax"] and "TF_CPP_MIN_LOG_LEVEL=2" in host and "logs/main.log" in host

    logs = dry_run(capsys, "tpu", "logs", "--name=ldae", "--zone=us-central2-b", "--worker=3", "--follow")
    assert "--worker=3" in shlex.split(logs[0]) and remote_command(logs[0]) == [
        "tail", "-n", "100", "-f", "ldae_jax/logs/main.log"]
    assert dry_run(capsys, "tpu", "delete", *POD)[1] == (
        "gcloud compute tpus tpu-vm delete ldae --zone=us-central2-b")


@pytest.mark.parametrize("accelerator_type,hosts,chips", [
    ("v4-8", 1, 4), ("v4-64", 8, 4), ("v3-32", 4, 4), ("v5litepod-4", 1, 4), ("v5litepod-8", 1, 8),
    ("v5litepod-16", 4, 4), ("v5litepod-256", 64, 4), ("v5p-8", 1, 4), ("v5p-128", 16, 4), ("v6e-16", 4, 4)])
def test_hosts_per_accelerator_type(accelerator_type, hosts, chips):
    tpu = launch.tpu_slice(accelerator_type)
    assert (tpu.hosts, tpu.chips_per_host) == (hosts, chips)


@pytest.mark.parametrize("accelerator_type,says", [
    ("v9-8", "unknown TPU accelerator type 'v9-8'"), ("v5e-16", "v5litepod-N"), ("tpu", "unknown TPU"),
    ("v4-12", "multiple of 8"), ("v5litepod-12", "multiple of 16")])
def test_bad_accelerator_type_is_a_one_line_error(capsys, accelerator_type, says):
    message = error_of(capsys, "tpu", "create", "--name=x", "--zone=z", f"--accelerator-type={accelerator_type}")
    assert "--accelerator-type" in message and says in message


def test_pod_workdir_off_gcs_is_warned(capsys):
    run = dry_run(capsys, "tpu", "run", "--name=ldae", "--zone=z", "--workdir=/tmp/run")
    assert run[0].startswith("# warning: --workdir=/tmp/run is not gs://")


def test_slurm_two_nodes_of_eight_gpus(capsys, tmp_path):
    out = dry_run(capsys, "slurm", "--nodes=2", "--gpus-per-node=8", "--partition=gpu", "--time=2:00:00",
                  "--config=configs/quickstart.py", f"--workdir={tmp_path}/run", "--", *TRICKY)
    script = out[out.index(next(l for l in out if l.startswith("cat > "))) + 1:out.index("EOF")]
    for directive in ("--nodes=2", "--gpus-per-node=8", "--ntasks-per-node=1", "--cpus-per-task=64",
                      "--partition=gpu", "--time=2:00:00"):
        assert f"#SBATCH {directive}" in script
    assert not any("--account" in line for line in script)
    assert "export JAX_LOCAL_DEVICE_IDS=0,1,2,3,4,5,6,7" in script  # else JAX's SLURM detection gives 1 GPU
    srun = shlex.split(next(line for line in script if line.startswith("srun")))
    assert srun[2:] == [sys.executable, "-m", "ldae_jax.main", "--multihost", "--config=configs/quickstart.py",
                        f"--workdir={tmp_path}/run", *TRICKY]
    assert shlex.split(out[-1]) == ["sbatch", f"{tmp_path}/run/logs/ldae_jax.sbatch"]
    # The printed lines are a working shell snippet: without the sbatch, they write a valid script.
    subprocess.run(["bash", "-c", "\n".join(out[:-1])], check=True)
    subprocess.run(["bash", "-n", f"{tmp_path}/run/logs/ldae_jax.sbatch"], check=True)


def test_gpu_node(capsys, tmp_path):
    (line,) = dry_run(capsys, "gpu", "--gpus=1", "--config=configs/quickstart.py", f"--workdir={tmp_path}",
                      "--", *TRICKY)
    words = shlex.split(line)
    assert words[:4] == ["cd", REPO, "&&", "env"] and "CUDA_VISIBLE_DEVICES=1" in words
    assert words[words.index("-m") - 1:] == [sys.executable, "-m", "ldae_jax.main", "--config=configs/quickstart.py",
                                             f"--workdir={tmp_path}", *TRICKY]


def test_local_two_processes_of_four_devices(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x --xla_force_host_platform_device_count=8")
    out = dry_run(capsys, "local", "--num-processes=2", "--devices-per-process=4", "--port=12345",
                  "--config=configs/quickstart.py:tiny", f"--workdir={tmp_path}", "--", *TRICKY)
    assert out[0] == "# 2 processes x 4 CPU devices = 8 devices, coordinator 127.0.0.1:12345"
    commands = [shlex.split(line) for line in out if "--process_id" in line]
    assert len(commands) == 2 and out[-1] == "wait"
    for i, words in enumerate(commands):
        assert f"--process_id={i}" in words and "--num_processes=2" in words
        assert "--coordinator_address=127.0.0.1:12345" in words
        assert "XLA_FLAGS=--xla_dump_to=/tmp/x --xla_force_host_platform_device_count=4" in words
        assert "JAX_PLATFORMS=cpu" in words
        assert words[words.index(">") + 1] == f"{tmp_path}/logs/process_{i}.log"
        assert words[words.index(">") - 2:words.index(">")] == TRICKY


def test_local_dry_run_shows_the_free_port_it_chose(capsys, tmp_path):
    out = dry_run(capsys, "local", f"--workdir={tmp_path}")
    port = out[0].rsplit(":", 1)[1]
    assert port.isdigit() and int(port) > 0 and f"--coordinator_address=127.0.0.1:{port}" in out[2]


@pytest.mark.parametrize("argv,says", [
    (["tpu", "run", "--name=x", "--zone=z"], "required: --workdir"),
    (["slurm", "--nodes=2", "--workdir=w"], "required: --gpus-per-node"),
    (["slurm", "--nodes=0", "--gpus-per-node=8", "--workdir=w"], "positive integer"),
    (["gpu", "--workdir=w", "--config.train.total_steps=3"], "go after `--`"),
    (["gpu", "--workdir=w", "--", "--workdir=v"], "the launcher sets it"),
    (["slurm", "--nodes=1", "--gpus-per-node=1", "--workdir=gs://b/w"], "give --log-dir"),
    (["cloud", "--workdir=w"], "invalid choice: 'cloud'"),
])
def test_bad_command_lines_are_one_line_errors(capsys, argv, says):
    assert says in error_of(capsys, *argv)


def launcher(tmp_path, *flags: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, SCRIPT, "local", "--num-processes=2", "--devices-per-process=4", f"--workdir={tmp_path}",
            "--module=tests.distributed_hello", "--", *flags]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def test_local_mode_runs_a_real_two_process_jax_job(tmp_path):
    done = launcher(tmp_path, "--expect_devices=8")
    assert done.returncode == 0, done.stderr
    for i in range(2):
        log = (tmp_path / "logs" / f"process_{i}.log").read_text()
        assert f"hello from process {i} of 2: 4 local devices, 8 in all" in log


def test_local_mode_names_the_failed_process_and_stops_the_others(tmp_path):
    done = launcher(tmp_path, "--fail_process=1")
    assert done.returncode == 1
    assert "error: process 1 failed (exit code 1)" in done.stderr and "failing on purpose" in done.stderr
