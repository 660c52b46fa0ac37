"""The l-DAE pre-training loop: `train(exp)` for a run's Experiment (`ldae_jax/experiment.py`).

Resumes automatically from the latest checkpoint in `workdir/checkpoints` (refusing one written by a
different config or tokenizer); logs to TensorBoard, `metrics.jsonl` and the console with images/s and ETA.
"""

from __future__ import annotations

import time

import jax
import numpy as np

from ldae_jax import config_lib
from ldae_jax.data import pipeline
from ldae_jax.errors import DivergenceError
from ldae_jax.runtime import preemption, timings
from ldae_jax.train import checkpoint, metrics, sharding, state as state_lib


def _first_nonfinite(host_metrics: list[dict], first_step: int) -> tuple[int, dict] | None:
    for i, m in enumerate(host_metrics):
        if m["nonfinite"]:
            return first_step + i, m
    return None


def _compile(step_fn, train_state, exp, batch_size: int):
    """The train step compiled ahead of its first call, with a line before and its time after."""
    if jax.process_index() == 0:
        print("Compiling the train step ...", end=" ", flush=True)
    begin = time.perf_counter()
    with timings.phase("compiling the train step"):
        shape = (batch_size, exp.config.data.image_size, exp.config.data.image_size, exp.channels)
        images = jax.ShapeDtypeStruct(shape, np.uint8, sharding=sharding.batch_sharding(exp.mesh))
        labels = jax.ShapeDtypeStruct((batch_size,), np.int32, sharding=sharding.batch_sharding(exp.mesh))
        compiled = step_fn.lower(train_state, images, labels).compile()
    if jax.process_index() == 0:
        print(f"{time.perf_counter() - begin:.1f}s", flush=True)
    return compiled


class _NoEvaluation:
    def due(self, step: int) -> bool:
        return False


def train(exp, *, stop_after: int | None = None, allow_config_change: bool = False, monitor=None) -> dict:
    """Pre-train the run `exp` to config.train's length; returns {'step', 'loss', 'params', 'preempted',
    'skipped_steps'}.

    `stop_after` ends the run early at that step with a checkpoint, as an interruption would (a rerun resumes).
    SIGTERM or SIGINT does the same at the next step. `allow_config_change` resumes a checkpoint written under
    another config (with a warning) instead of refusing. The run's config.json is written once the workdir's
    checkpoint (if any) is accepted as this run's. `monitor` (evaluate/knn.py's Monitor: `due(step)`,
    `evaluate(params)` -> scalars) evaluates the representation when due; its scalars are logged with the step's.
    """
    config, workdir = exp.config, exp.workdir
    tokenizer = exp.tokenizer
    tc = config.train
    total_steps, lr_fn, tx = exp.optimizer()
    key = jax.random.key(config.seed)
    abstract = state_lib.abstract_state(exp.model_cfg, tx, key)
    shardings = state_lib.state_shardings(abstract, exp.mesh)
    ckpt = exp.checkpointer()
    meta = exp.meta()
    try:
        train_state = checkpoint.restore_latest(ckpt, abstract, shardings, meta, workdir,
                                                allow_config_change=allow_config_change)
    except BaseException:
        ckpt.close()
        raise
    if jax.process_index() == 0:
        config_lib.save_config(config, workdir)
        print(metrics.describe_state(abstract, shardings, exp.mesh, workdir), flush=True)
    if train_state is None:
        train_state = state_lib.create_state(exp.model_cfg, tx, key, shardings)
    elif jax.process_index() == 0:
        print(f"Resuming from the checkpoint at step {int(train_state.step)}", flush=True)
    start = int(train_state.step)

    step_fn = state_lib.make_train_step(
        state_lib.model_graph(exp.model_cfg), tx, tokenizer, exp.schedule, exp.objective,
        seed=config.seed, state_shardings=shardings, mesh=exp.mesh,
    )
    batches = pipeline.train_iterator(
        exp.builder, split=config.data.train_split, global_batch_size=tc.batch_size,
        image_size=config.data.image_size, augment=config.data.augment, flip=config.data.flip,
        seed=config.seed, start_step=start, in_memory_mb=config.data.in_memory_mb,
    )
    log = metrics.MetricsLog(workdir, resume_step=start)
    if start == 0:
        log.write_hparams(config_lib.flatten(config))
    monitor = monitor or _NoEvaluation()
    watch = preemption.PreemptionWatch()
    pending = []  # device scalars since the last check: no host sync inside the loop
    last_loss, skipped, preempted = float("nan"), 0, False
    end = total_steps if stop_after is None else min(stop_after, total_steps)
    waited = 0.0  # host seconds spent waiting for the next batch
    try:
        if start < end:  # compiled before the first step, so its time is neither in the ETA nor a silent pause
            step_fn = _compile(step_fn, train_state, exp, tc.batch_size)
            float(lr_fn(start))  # the schedule's eager ops compile at their first call: not in the first interval
        progress = metrics.Progress(total_steps, tc.batch_size, start)
        for step in range(start, end):
            asked = time.perf_counter()
            host_batch = next(batches)
            waited += time.perf_counter() - asked
            batch = sharding.global_batch({"image": host_batch["image"], "label": host_batch["label"]}, exp.mesh)
            train_state, step_metrics = step_fn(train_state, batch["image"], batch["label"])
            pending.append(step_metrics)
            done = step + 1
            if step == start:  # the first batch started the input pipeline: one-off, not in images/s or the ETA
                jax.block_until_ready(step_metrics)
                progress.started(done)
            preempted = watch.reached(done)
            save = done % tc.checkpoint_every == 0 or done == end or preempted
            knn_due = monitor.due(done) and not preempted
            if not (save or knn_due or done % tc.log_every == 0):
                continue
            # Check every step since the last check before anything is saved or logged.
            host, first = jax.device_get(pending), done - len(pending) + 1
            pending = []
            bad = _first_nonfinite(host, first)
            if bad and not tc.skip_nonfinite:
                raise DivergenceError(
                    f"non-finite loss or gradient at step {bad[0]} (loss {float(bad[1]['loss'])}, grad norm "
                    f"{float(bad[1]['grad_norm'])}); stopped, the last checkpoint (step {ckpt.latest_step()}) is "
                    "kept. Lower train.base_lr, set train.grad_clip, or train.skip_nonfinite=True to skip such steps"
                )
            newly_skipped = sum(int(m["nonfinite"]) for m in host)
            skipped += newly_skipped
            knn = monitor.evaluate(train_state.params) if knn_due else {}
            progress.exclude(knn.get("knn_seconds", 0.0))  # images/s and the ETA are of training alone
            if done % tc.log_every == 0 or done == end or preempted:
                good = [m for m in host if not m["nonfinite"]] or host
                scalars = {k: float(np.mean([m[k] for m in good])) for k in ("loss", "grad_norm")}
                scalars.update(lr=float(lr_fn(done - 1)), skipped_steps=skipped)
                # A preemption cuts an interval short: its numbers are the mean of the steps it holds.
                speed = {**progress.report(done), "interval_steps": len(host)}
                log.write(done, {**scalars, **speed, **knn})
                if jax.process_index() == 0:
                    print(metrics.log_line(done, total_steps, scalars, speed), flush=True)
                last_loss = scalars["loss"]
            else:
                if knn:
                    log.write(done, knn)
                if newly_skipped and jax.process_index() == 0:
                    print(f"step {done}: skipped {newly_skipped} non-finite step(s), {skipped} in all", flush=True)
            if knn and jax.process_index() == 0:
                print(f"step {done}: kNN top-1 {knn['knn_top1']:.2f}% ({knn['knn_seconds']:.1f}s)", flush=True)
            if save:
                ckpt.save(done, train_state, meta)
            if preempted:
                ckpt.wait()
                if jax.process_index() == 0:
                    print(preemption.line(f"checkpoint saved at step {done}; rerun the same command to resume"),
                          flush=True)
                break
    finally:
        timings.add("waiting for the next batch", waited)
        watch.close()
        log.close()
        ckpt.close()
    exp.remember_params(int(train_state.step), train_state.params)
    return {
        "step": int(train_state.step), "loss": last_loss, "params": train_state.params,
        "preempted": preempted, "skipped_steps": skipped,
    }
