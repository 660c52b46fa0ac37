"""The faults a run must survive without losing work, each provoked for real (docs/durability.md lists
them): a second run on a busy workdir, saves that fail, folders that cannot be written, torn and repeated
metrics, signals in every stage, damaged and non-finite files."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from ldae_jax import modes
from ldae_jax.runtime import lock
from ldae_jax.tokenizers import pca as pca_lib
from ldae_jax.train import checkpoint

import helpers
from test_data import needs_debian_files
from test_durability import signal_a_run, start_cli
from test_train import read_metrics, tiny_config

pytestmark = needs_debian_files
QUICK = "--config=configs/quickstart.py:tiny"


def _errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


# ------------------------------------------------------------------------------------------- the workdir lock

def test_a_second_run_on_a_busy_workdir_stops_at_once(tmp_path, capsys):
    workdir = tmp_path / "run"
    workdir.mkdir()
    holder = lock.WorkdirLock(str(workdir), "--mode=pretrain (the first run)").acquire()
    try:
        start = time.perf_counter()
        code, out, err = helpers.call_main([f"--workdir={workdir}", QUICK, "--config.mesh.data=1"], capsys)
        assert code == 2 and time.perf_counter() - start < 10, err
        (line,) = _errors(err)
        assert f"run {holder.lease['run']} (--mode=pretrain (the first run))" in line and "--take_over" in line
        assert sorted(os.listdir(workdir)) == [".lock.json", "checkpoints"]  # nothing of the second run
    finally:
        holder.release()
    assert not (workdir / ".lock.json").exists()


def test_a_dead_runs_lease_is_taken_over_and_a_live_one_only_when_asked(tmp_path, capsys):
    workdir = tmp_path / "run"
    workdir.mkdir()
    dead = lock.WorkdirLock(str(workdir), "dead").acquire()
    dead._stop.set()  # it stops renewing, as a killed job would
    lease = json.loads((workdir / ".lock.json").read_text())
    (workdir / ".lock.json").write_text(json.dumps({**lease, "renewed": time.time() - 3 * lock.STALE_S}))
    with lock.WorkdirLock(str(workdir), "second") as second:
        assert "taking over the workdir lease of run" in capsys.readouterr().err
        with pytest.raises(lock.WorkdirBusy, match="is in use by run"):
            lock.WorkdirLock(str(workdir), "third").acquire()
        with lock.WorkdirLock(str(workdir), "fourth", take_over=True):
            assert json.loads((workdir / ".lock.json").read_text())["command"] == "fourth"
        second._stop.set()
    (workdir / ".lock.json").write_text("{torn")  # an unreadable lease proves nothing: taken with a warning
    with lock.WorkdirLock(str(workdir), "fifth"):
        assert "an unreadable lease" in capsys.readouterr().err


def test_the_lease_is_renewed_while_the_run_lives(tmp_path):
    with lock.WorkdirLock(str(tmp_path), "run", renew_s=0.05) as held:
        first = json.loads((tmp_path / ".lock.json").read_text())["renewed"]
        time.sleep(0.3)
        assert json.loads((tmp_path / ".lock.json").read_text())["renewed"] > first
        assert json.loads((tmp_path / ".lock.json").read_text())["run"] == held.lease["run"]


@pytest.mark.slow
def test_two_runs_started_at_once_on_one_workdir(tmp_path):
    """One of them runs, the other stops with the lock's line; nothing is left half-written."""
    workdir = tmp_path / "run"
    procs = [start_cli(workdir, "--config.train.total_steps=40", "--config.train.log_every=10") for _ in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    loser = outs[[p.returncode for p in procs].index(2)]
    assert "is in use by run" in loser and "Traceback" not in loser
    assert not [f for f in os.listdir(workdir) if f.endswith(".tmp")]
    assert max(m["step"] for m in read_metrics(workdir)) == 40


# --------------------------------------------------------------------------------------- the checkpoints

def test_a_failed_save_stops_the_run_at_once_and_keeps_the_earlier_checkpoints(tmp_path, monkeypatch, capsys):
    """A full disk at the second save: one error line at that step (not an interval later), step 4 intact; the
    rerun resumes from it, and with train.keep_checkpoints=1 ends holding the final checkpoint."""
    import orbax.checkpoint as ocp

    real_save, calls = ocp.CheckpointManager.save, []

    def save(self, step, *args, **kwargs):
        calls.append(step)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_save(self, step, *args, **kwargs)

    monkeypatch.setattr(ocp.CheckpointManager, "save", save)
    workdir, steps = tmp_path / "run", ["--config.train.total_steps=12", "--config.train.checkpoint_every=4"]
    code, out, err = helpers.call_main([f"--workdir={workdir}", QUICK, "--config.mesh.data=1", "--mode=pretrain", *steps,
                            "--config.train.log_every=4"], capsys)
    assert code == 2 and calls == [4, 8], (out, err)
    (line,) = _errors(err)
    assert line.startswith(f"error: cannot save the checkpoint of step 8 in {workdir}/checkpoints: No space left "
                           "on device; the run stopped, the checkpoints before it (steps: 4) are intact")
    assert "step 12/" not in out  # it did not train on
    monkeypatch.setattr(ocp.CheckpointManager, "save", real_save)
    resumed = helpers.pretrain(tiny_config(total_steps=12, checkpoint_every=4, log_every=4, keep_checkpoints=1),
                               workdir)
    assert "Resuming from the checkpoint at step 4" in capsys.readouterr().out and resumed["step"] == 12
    assert [d for d in os.listdir(workdir / "checkpoints") if d.isdigit()] == ["12"]


def test_every_folder_a_run_writes_is_checked_at_start(tmp_path, capsys):
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "checkpoints").write_text("not a folder")
    code, out, err = helpers.call_main([f"--workdir={workdir}", QUICK, "--config.mesh.data=1"], capsys)
    assert code == 2 and _errors(err) == [f"error: cannot write to '{workdir}/checkpoints': File exists; fix it or "
                                          "choose another --workdir"], err
    assert sorted(os.listdir(workdir)) == ["checkpoints"]  # it stopped before the tokenizer, the data, anything


# ------------------------------------------------------------------------------------------------ metrics

def test_metrics_are_never_torn_and_never_hold_a_step_twice(tmp_path):
    """A kill after step 10 was logged but before it was saved (the checkpoint is at 5), and a torn last line
    (a full disk under an earlier writer): the rerun keeps the lines up to step 5, drops the torn one, logs 6-10
    once, and the curves figure draws."""
    import shutil

    from ldae_jax.viz import figures

    workdir = tmp_path / "run"
    config = tiny_config(total_steps=10, log_every=5, checkpoint_every=5)
    helpers.pretrain(config, workdir)
    shutil.rmtree(workdir / "checkpoints" / "10")
    with open(workdir / "metrics.jsonl", "a") as f:
        f.write('{"step": 15, "loss": 0.4')
    helpers.pretrain(config, workdir)
    steps = [m["step"] for m in read_metrics(workdir)]  # a strict reader: every line is whole JSON
    assert steps == [5, 10]
    figures.draw(str(workdir), "curves", str(tmp_path / "figs"), log=lambda line: None)
    assert (tmp_path / "figs" / "curves.png").stat().st_size > 10_000


# ------------------------------------------------------------------------------------------------ signals

@pytest.mark.slow
def test_sigint_saves_a_checkpoint_and_exits_130(tmp_path):
    """Ctrl-C to a real process (the in-process test below covers the same path in the default suite)."""
    workdir = tmp_path / "run"
    code, out, saved = signal_a_run(workdir, signal.SIGINT)
    assert code == 130, out
    assert "Interrupted (SIGINT): checkpoint saved at step" in out and "Traceback" not in out
    assert len(saved) == 1 and saved[0] >= 3


@pytest.mark.parametrize("mode,sig,hook,says,code", [
    ("tokenizer", signal.SIGTERM, "ldae_jax.data.pipeline:normalize_images",
     "Preempted (SIGTERM): stopped during the tokenizer's patch sampling, which has nothing to save: rerun", 0),
    ("pretrain", signal.SIGINT, "ldae_jax.train.sharding:global_batch",
     "Interrupted (SIGINT): checkpoint saved at step 1; rerun the same command to resume", 130),
    ("probe", signal.SIGTERM, "ldae_jax.train.sharding:global_batch",
     "Preempted (SIGTERM): stopped during the probe's feature extraction, which has nothing to save: rerun", 0),
], ids=["SIGTERM in the tokenizer fit", "SIGINT in training", "SIGTERM in the probe"])
def test_a_signal_in_any_stage_is_one_line_and_its_exit_code(mode, sig, hook, says, code, tmp_path, capsys,
                                                              monkeypatch):
    """The signal arrives in the middle of the stage, sent to this process as a scheduler or a Ctrl-C would: the
    stage saves what can be resumed (training: a checkpoint), prints one line and the command exits 0 for a
    preemption notice, 130 for Ctrl-C. Nothing half-made is left behind."""
    import importlib

    workdir = tmp_path / "run"
    if mode == "probe":
        helpers.pretrain(tiny_config(total_steps=2, log_every=1), workdir)
    module_name, attr = hook.split(":")
    module = importlib.import_module(module_name)
    real, calls = getattr(module, attr), []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            os.kill(os.getpid(), sig)  # the stage notices at its next batch
        return real(*args, **kwargs)

    monkeypatch.setattr(module, attr, interrupted)
    code_got, out, err = helpers.call_main([f"--workdir={workdir}", QUICK, "--config.mesh.data=1", f"--mode={mode}",
                                "--config.train.total_steps=2", "--config.train.log_every=1"], capsys)
    assert code_got == code, (out, err)
    assert says in out and "Traceback" not in err, out
    if mode == "pretrain":
        assert [d for d in os.listdir(workdir / "checkpoints") if d.isdigit()] == ["1"]
    else:
        assert not (workdir / ("probe.json" if mode == "probe" else "pca.npz")).exists()
    assert not [f for f in os.listdir(workdir) if f.endswith(".tmp")] and not (workdir / ".lock.json").exists()


def test_a_signal_during_the_knn_evaluation_saves_at_the_next_step(tmp_path, capsys, monkeypatch):
    """The kNN evaluation inside training takes seconds: a signal in it is handled at the next training step,
    which saves, rather than losing the steps since the last checkpoint."""
    from ldae_jax.evaluate import knn

    real, calls = knn.knn_top1, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(knn, "knn_top1", interrupted)
    workdir = tmp_path / "run"
    code, out, err = helpers.call_main([f"--workdir={workdir}", QUICK, "--config.mesh.data=1", "--mode=pretrain",
                                        "--config.train.total_steps=6", "--config.train.log_every=1",
                                        "--config.train.checkpoint_every=100", "--config.knn.every_steps=2"], capsys)
    assert code == 0 and "step 2: kNN top-1" in out, (out, err)
    assert "Preempted (SIGTERM): checkpoint saved at step 3; rerun the same command to resume" in out
    assert [d for d in os.listdir(workdir / "checkpoints") if d.isdigit()] == ["3"]


# ------------------------------------------------------------------------------------------ files and values

def test_a_damaged_or_non_finite_tokenizer_file_is_one_line_before_compute(tmp_path, capsys):
    workdir = tmp_path / "run"
    workdir.mkdir()
    a = np.random.default_rng(0).normal(size=(49, 49))
    pca = pca_lib.fit((np.zeros(49), a @ a.T), patch_size=7, channels=1, d=16, whiten=False)
    pca_lib.save(pca, str(workdir / "pca.npz"))
    data = (workdir / "pca.npz").read_bytes()
    (workdir / "pca.npz").write_bytes(data[: len(data) // 2])  # truncated
    for dry in (["--dry_run"], []):
        code, out, err = helpers.call_main([f"--workdir={workdir}", QUICK, "--mode=pretrain", *dry], capsys)
        assert code == 2 and _errors(err) and _errors(err)[0].startswith(
            f"error: {workdir}/pca.npz is damaged and cannot be read (")
        assert "delete it: the tokenizer stage (--mode=tokenizer, or any run) fits it again" in err
    nan = pca_lib.PatchPCA(mean=np.full(49, np.nan, np.float32), components=pca.components,
                           eigenvalues=pca.eigenvalues, patch_size=7, channels=1, d=16, whiten=False)
    pca_lib.save(nan, str(workdir / "pca.npz"))
    code, out, err = helpers.call_main([f"--workdir={workdir}", QUICK, "--mode=pretrain", "--dry_run"], capsys)
    assert code == 2 and _errors(err)[0].startswith(f"error: {workdir}/pca.npz holds NaN or inf values (in mean)")


def test_a_damaged_saved_probe_state_is_one_line(tmp_path):
    from ldae_jax.errors import UserError
    from ldae_jax.evaluate import paper_probe

    path = tmp_path / "probe_state_l-DAE.npz"
    path.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(UserError, match="probe_state_l-DAE.npz is damaged and cannot be read .*delete it: the "
                                        "paper-protocol probe starts over"):
        paper_probe._restore(str(path), {"w": np.zeros(2)}, ())
