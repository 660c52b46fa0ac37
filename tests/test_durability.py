"""Nothing lost on interruption: SIGTERM, kill -9, corrupted checkpoints, divergence, config changes."""

import glob
import json
import os
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

from ldae_jax import experiment
from ldae_jax.errors import DivergenceError
from ldae_jax.train.checkpoint import CheckpointMismatchError

import helpers
from test_data import needs_debian_files
from test_train import read_metrics, tiny_config

pytestmark = needs_debian_files
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start_cli(workdir, *overrides):
    return subprocess.Popen(
        [sys.executable, "-u", "-m", "ldae_jax.main", "--config=configs/quickstart.py:tiny", f"--workdir={workdir}",
         "--mode=pretrain", "--config.mesh.data=1", *overrides],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def wait_for_step(proc, step):
    """Read the child's output until its progress line for `step`; returns everything read."""
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith(f"step {step}/"):
            return seen
    raise AssertionError("".join(seen[-20:]))


def signal_a_run(workdir, signum):
    """(exit code, output, saved steps) of a long pre-training sent `signum` after its step 3."""
    proc = start_cli(workdir, "--config.train.total_steps=2000", "--config.train.log_every=1",
                     "--config.train.checkpoint_every=1000")
    wait_for_step(proc, 3)
    proc.send_signal(signum)
    out = proc.communicate(timeout=120)[0]
    return proc.returncode, out, [int(d) for d in os.listdir(workdir / "checkpoints") if d.isdigit()]


def last_loss_per_step(workdir):
    return {m["step"]: m["loss"] for m in read_metrics(workdir)}  # a resumed run re-logs: keep the last


def test_sigterm_checkpoints_and_exits_cleanly(tmp_path):
    workdir = tmp_path / "run"
    code, out, steps = signal_a_run(workdir, signal.SIGTERM)
    assert code == 0, out
    assert "Preempted (SIGTERM): checkpoint saved at step" in out
    assert len(steps) == 1 and 3 <= steps[0] < 2000
    # It waited for that save (no temporary folder left) and released the workdir.
    assert [d for d in os.listdir(workdir / "checkpoints") if not d.isdigit()] == []
    assert not (workdir / ".lock.json").exists()


@pytest.mark.slow
def test_kill_9_then_resume_equals_uninterrupted(tmp_path):
    overrides = dict(total_steps=14, log_every=1, checkpoint_every=4)
    reference = helpers.pretrain(tiny_config(**overrides), str(tmp_path / "ref"))
    workdir = tmp_path / "killed"
    kill_at = int(np.random.default_rng().integers(5, 12))
    proc = start_cli(workdir, *(f"--config.train.{k}={v}" for k, v in overrides.items()))
    wait_for_step(proc, kill_at)
    proc.kill()
    proc.wait()
    resumed = helpers.pretrain(tiny_config(**overrides), str(workdir))
    assert resumed["step"] == 14
    assert last_loss_per_step(workdir) == last_loss_per_step(tmp_path / "ref"), f"killed at step {kill_at}"
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(reference["params"]), jax.device_get(resumed["params"]))


def test_corrupted_latest_checkpoint_falls_back_to_the_previous(tmp_path, capsys):
    config = tiny_config(total_steps=10, log_every=5, checkpoint_every=5)
    workdir = str(tmp_path / "run")
    helpers.pretrain(config, workdir)
    for path in glob.glob(f"{workdir}/checkpoints/10/state/**/*", recursive=True):
        if os.path.isfile(path):
            with open(path, "wb") as f:
                f.write(b"garbage")
    # A save killed half-way leaves only orbax's temporary folder, which is never taken for a checkpoint.
    os.makedirs(f"{workdir}/checkpoints/15.orbax-checkpoint-tmp-1234/state")
    step, _ = experiment.Experiment(config, workdir).restore_params()
    assert step == 5
    assert "checkpoint at step 10" in capsys.readouterr().err
    # The damaged one was moved aside, under a name that says so, and the rerun trains and saves step 10 again.
    (aside,) = glob.glob(f"{workdir}/checkpoints_damaged/10-*")
    assert "could not be read" in open(os.path.join(aside, "WHY.txt")).read()
    assert helpers.pretrain(config, workdir)["step"] == 10
    assert {"5", "10"} <= set(os.listdir(f"{workdir}/checkpoints"))
    assert experiment.Experiment(config, workdir).restore_params()[0] == 10
    # That training from step 5 redoes steps 6..10 exactly is test_train's exact-resume test (default suite) and
    # test_kill_9_then_resume_equals_uninterrupted (slow suite).


def test_divergence_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    config = tiny_config(total_steps=20, log_every=5, checkpoint_every=1, base_lr=1e6)
    workdir = str(tmp_path / "run")
    with pytest.raises(DivergenceError, match=r"non-finite loss or gradient at step \d+"):
        helpers.pretrain(config, workdir)
    step, params = experiment.Experiment(config, workdir).restore_params()
    assert step < 20
    assert all(np.isfinite(np.asarray(p)).all() for p in jax.tree.leaves(params))


def test_skip_nonfinite_counts_and_continues(tmp_path, capsys):
    config = tiny_config(total_steps=20, log_every=5, checkpoint_every=10, base_lr=1e6)
    config.train.skip_nonfinite = True
    out = helpers.pretrain(config, str(tmp_path / "run"))
    assert out["step"] == 20 and out["skipped_steps"] > 0
    assert all(np.isfinite(np.asarray(p)).all() for p in jax.tree.leaves(out["params"]))
    logged = read_metrics(str(tmp_path / "run"))
    assert logged[-1]["skipped_steps"] == out["skipped_steps"]
    assert f"skipped {out['skipped_steps']} non-finite" in capsys.readouterr().out  # on the console too


@pytest.mark.slow
def test_allow_config_change_resumes_with_a_warning(tmp_path, capsys):
    workdir = str(tmp_path / "run")
    helpers.pretrain(tiny_config(total_steps=4, log_every=2, checkpoint_every=2), workdir)
    changed = tiny_config(total_steps=6, log_every=2, checkpoint_every=2)
    with pytest.raises(CheckpointMismatchError, match="train.total_steps: checkpoint 4 vs config 6"):
        helpers.pretrain(changed, workdir)
    out = helpers.pretrain(changed, workdir, allow_config_change=True)
    assert out["step"] == 6
    assert "resuming a checkpoint of a different run" in capsys.readouterr().err
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["train"]["total_steps"] == 6


@pytest.mark.slow
def test_sigterm_to_one_host_stops_every_host_at_the_same_step(tmp_path):
    """2 processes x 4 devices; SIGTERM reaches process 1 only; JAX's preemption sync picks one step for both."""
    from test_train import free_port

    from ldae_jax.data import sources

    # Prepare the shared TFDS_DATA_DIR first: otherwise one process prepares it while the other waits, and the
    # gap can exceed the 30 s in which CPU collectives (Gloo) must first meet.
    sources.get_source("fashion_mnist_local", None)
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    address = f"127.0.0.1:{free_port()}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-u", "-m", "ldae_jax.main", "--config=configs/quickstart.py:tiny",
             f"--workdir={tmp_path}/run", "--mode=pretrain", "--config.train.total_steps=3000",
             "--config.train.log_every=1", "--config.train.checkpoint_every=1000",
             f"--coordinator_address={address}", "--num_processes=2", f"--process_id={i}"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(2)
    ]
    wait_for_step(procs[0], 4)
    procs[1].send_signal(signal.SIGTERM)
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    steps = [int(os.path.basename(p)) for p in glob.glob(str(tmp_path / "run" / "checkpoints" / "[0-9]*"))]
    assert len(steps) == 1 and 4 <= steps[0] < 3000
    assert f"Preempted (SIGTERM): checkpoint saved at step {steps[0]}" in outs[0]


def test_fields_added_after_a_checkpoint_are_accepted_at_their_defaults():
    """Old workdirs stay usable when the code gains a config field, as long as it keeps its default."""
    from configs import quickstart
    from ldae_jax.train import checkpoint

    config = quickstart.get_config("tiny")
    current = {"fingerprint": checkpoint.config_fingerprint(config), "pca_hash": "h"}
    older = {"fingerprint": {k: v for k, v in current["fingerprint"].items() if k != "objective.learn_sigma"},
             "pca_hash": "h"}
    checkpoint.check_same_run(older, current, "w")
    config.objective.learn_sigma = True
    changed = {"fingerprint": checkpoint.config_fingerprint(config), "pca_hash": "h"}
    with pytest.raises(CheckpointMismatchError, match="objective.learn_sigma: checkpoint None vs config True"):
        checkpoint.check_same_run(older, changed, "w")


def test_auto_dtype_resumes_a_checkpoint_of_the_dtype_it_resolves_to(monkeypatch):
    """A workdir trained in bfloat16 before 'auto' became the default resumes where 'auto' is bfloat16."""
    from configs import quickstart
    from ldae_jax.runtime import precision
    from ldae_jax.train import checkpoint

    config = quickstart.get_config("tiny")
    config.model.dtype = "bfloat16"
    older = {"fingerprint": checkpoint.config_fingerprint(config), "pca_hash": "h"}
    config.model.dtype = "auto"
    current = {"fingerprint": checkpoint.config_fingerprint(config), "pca_hash": "h"}
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    checkpoint.check_same_run(older, current, "w")
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2"}))
    with pytest.raises(CheckpointMismatchError, match="model.dtype: checkpoint 'bfloat16' vs config 'float32'"):
        checkpoint.check_same_run(older, current, "w")


FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "workdir_before_rename")


@needs_debian_files
def test_a_workdir_made_under_the_old_field_names_resumes(tmp_path, capsys):
    """tests/fixtures/workdir_before_rename: a quickstart tiny run stopped at step 10 of 20 by the code before the
    tokenizer fields left `pca.*` (its config.json and checkpoint record say pca.d, pca.patch_size, ...). Its
    config reads under today's names, and the run resumes and ends where an uninterrupted run does (up to float
    rounding: the fixture's first 10 steps ran in another process, on another machine's XLA; exact resume within
    one setup is test_train.py's)."""
    import shutil

    from ldae_jax import config_lib, schema

    workdir = tmp_path / "old"
    shutil.copytree(FIXTURE, workdir)
    assert '"pca"' in (workdir / "config.json").read_text()
    config = tiny_config(keep_checkpoints=1)
    config.model.dtype = "float32"  # the fixture's, written before the quickstart's dtype became 'auto'
    config.knn.update(schema.defaults().knn)  # the fixture predates the kNN fields: they read as the defaults
    old = config_lib.load_config(str(workdir))
    assert config_lib.flatten(old) == config_lib.flatten(config)
    old.data.in_memory_mb = config.data.in_memory_mb = 0  # the fixture's first steps read through tf.data
    resumed = helpers.pretrain(old, workdir)
    assert "Resuming from the checkpoint at step 10" in capsys.readouterr().out
    (tmp_path / "new").mkdir()
    shutil.copy(workdir / "pca.npz", tmp_path / "new")  # the same basis (a refit may differ in the last bit)
    reference = helpers.pretrain(config, tmp_path / "new")
    assert resumed["step"] == reference["step"] == 20
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), jax.device_get(resumed["params"]),
                 jax.device_get(reference["params"]))
