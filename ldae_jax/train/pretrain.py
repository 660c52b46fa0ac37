"""The l-DAE pre-training loop: `train_and_evaluate(config, workdir)`, importable from a notebook.

Resumes automatically from the latest checkpoint in `workdir/checkpoints` (refusing one written by a
different config or PCA basis); logs to TensorBoard, `metrics.jsonl` and the console with images/s and ETA.
"""

from __future__ import annotations

import dataclasses
import sys

import jax
import numpy as np

from ldae_jax import config_lib, diffusion, objectives
from ldae_jax.data import pipeline
from ldae_jax.errors import UserError
from ldae_jax.models.vit import model_config_from
from ldae_jax.tokenizers import tokenizer as tok_lib
from ldae_jax.train import checkpoint, metrics, preemption, sharding, state as state_lib


@dataclasses.dataclass
class Run:
    """Everything the programs of a run (pretrain, probe, figures) build from one config."""

    config: object
    builder: object
    tokenizer: tok_lib.Tokenizer
    schedule: diffusion.Schedule
    objective: objectives.Objective
    model_cfg: object
    mesh: object


def setup_run(config, workdir: str) -> Run:
    """Check the config, build the mesh and dataset, and fit (or load and verify) the tokenizer."""
    config_lib.prepare_workdir(workdir)
    tok_lib.check_config(config)
    mesh = sharding.make_mesh(config.mesh.data, config.mesh.fsdp)
    sharding.check_batch(config.train.batch_size, mesh)
    builder = pipeline.get_builder(config.data.name, config.data.data_dir or None,
                                   prepared_dir=config.data.prepared_dir or None, image_size=config.data.image_size,
                                   splits=(config.data.train_split, config.data.eval_split))
    objective = objectives.objective_from(config, builder.info.features["label"].num_classes)
    tokenizer = tok_lib.fit_or_load(config, workdir, builder)
    in_dim, out_dim = objective.dims(tokenizer)
    num_tokens = (config.data.image_size // tokenizer.patch_size) ** 2
    model_cfg = model_config_from(config.model, num_tokens=num_tokens, in_dim=in_dim, out_dim=out_dim,
                                  num_classes=objective.num_classes)
    return Run(config, builder, tokenizer, diffusion.schedule_from_config(config.noise), objective, model_cfg, mesh)


def optimizer_for(config, builder):
    """(total steps, lr schedule, optimizer) of a run; epochs become steps here and nowhere else."""
    tc = config.train
    num_train = pipeline.num_examples(builder, config.data.train_split)
    total_steps = config_lib.steps(num_train, tc.batch_size, epochs=tc.num_epochs, total_steps=tc.total_steps)
    warmup_steps = config_lib.steps(num_train, tc.batch_size, epochs=tc.warmup_epochs)
    lr_fn = state_lib.learning_rate(tc.base_lr, tc.batch_size, warmup_steps, total_steps)
    return total_steps, lr_fn, state_lib.make_optimizer(tc, lr_fn)


def run_meta(config, run: Run) -> dict:
    """What a checkpoint records about the run that wrote it, checked before any resume."""
    return {"fingerprint": checkpoint.config_fingerprint(config), "pca_hash": tok_lib.content_hash(run.tokenizer)}


def restore_latest(ckpt, abstract, shardings, meta: dict, workdir: str, *, allow_config_change: bool = False):
    """The newest readable train state in `ckpt`, after checking it belongs to this run; None when there is none.

    A checkpoint that fails to load (a corrupted or truncated file) is skipped with a warning, falling back to
    the one before it.
    """
    steps = sorted(ckpt.all_steps(), reverse=True)
    for i, step in enumerate(steps):
        try:
            saved = ckpt.restore_meta(step)
            checkpoint.check_same_run(saved, meta, workdir, warn_only=allow_config_change)
            return ckpt.restore(step, abstract, shardings)
        except checkpoint.CheckpointMismatchError:
            raise
        except Exception as e:  # noqa: BLE001 - any read failure means this checkpoint is unusable
            older = f"falling back to step {steps[i + 1]}" if i + 1 < len(steps) else "no older checkpoint"
            message = f"WARNING: checkpoint at step {step} in {workdir} cannot be read ({type(e).__name__}: {e}); {older}"
            print(message.splitlines()[0], file=sys.stderr, flush=True)
    if steps:
        raise UserError(f"no checkpoint in {workdir}/checkpoints can be read; delete the folder to start over")
    return None


def restore_params(config, workdir: str, run: Run):
    """(step, params) of the latest checkpoint in workdir, verified to belong to this config and basis."""
    _, _, tx = optimizer_for(config, run.builder)
    abstract = state_lib.abstract_state(run.model_cfg, tx, jax.random.key(config.seed))
    ckpt = checkpoint.Checkpointer(f"{workdir}/checkpoints", keep=config.train.keep_checkpoints)
    restored = restore_latest(ckpt, abstract, state_lib.state_shardings(abstract, run.mesh), run_meta(config, run), workdir)
    ckpt.close()
    if restored is None:
        raise UserError(f"no checkpoint in {workdir}/checkpoints: pre-train first (--mode=pretrain or all)")
    return int(restored.step), restored.params


class DivergenceError(RuntimeError):
    """A non-finite loss or gradient; the state of the step before it is what the last checkpoint holds."""


def _first_nonfinite(host_metrics: list[dict], first_step: int) -> tuple[int, dict] | None:
    for i, m in enumerate(host_metrics):
        if m["nonfinite"]:
            return first_step + i, m
    return None


def train_and_evaluate(
    config, workdir: str, *, stop_after: int | None = None, allow_config_change: bool = False
) -> dict:
    """Pre-train to config.train's length; returns {'step', 'loss', 'params', 'preempted', 'skipped_steps'}.

    `stop_after` ends the run early at that step with a checkpoint, as an interruption would (a rerun resumes).
    SIGTERM does the same at the next step. `allow_config_change` resumes a checkpoint written under another
    config (with a warning) instead of refusing.
    """
    run = setup_run(config, workdir)
    if jax.process_index() == 0:
        config_lib.save_config(config, workdir)
    tc = config.train
    total_steps, lr_fn, tx = optimizer_for(config, run.builder)
    key = jax.random.key(config.seed)
    abstract = state_lib.abstract_state(run.model_cfg, tx, key)
    shardings = state_lib.state_shardings(abstract, run.mesh)
    if jax.process_index() == 0:
        print(metrics.describe_state(abstract, shardings, run.mesh, workdir), flush=True)
    ckpt = checkpoint.Checkpointer(f"{workdir}/checkpoints", keep=tc.keep_checkpoints)
    meta = run_meta(config, run)
    train_state = restore_latest(ckpt, abstract, shardings, meta, workdir, allow_config_change=allow_config_change)
    if train_state is None:
        train_state = state_lib.create_state(run.model_cfg, tx, key, shardings)
    elif jax.process_index() == 0:
        print(f"Resuming from the checkpoint at step {int(train_state.step)}", flush=True)
    start = int(train_state.step)

    step_fn = state_lib.make_train_step(
        state_lib.model_graph(run.model_cfg), tx, run.tokenizer, run.schedule, run.objective,
        seed=config.seed, state_shardings=shardings, mesh=run.mesh,
    )
    batches = pipeline.train_iterator(
        run.builder, split=config.data.train_split, global_batch_size=tc.batch_size,
        image_size=config.data.image_size, augment=config.data.augment, flip=config.data.flip,
        seed=config.seed, start_step=start,
    )
    log = metrics.MetricsLog(workdir)
    progress = metrics.Progress(total_steps, tc.batch_size, start)
    watch = preemption.PreemptionWatch()
    pending = []  # device scalars since the last check: no host sync inside the loop
    last_loss, skipped, preempted = float("nan"), 0, False
    end = total_steps if stop_after is None else min(stop_after, total_steps)
    try:
        for step in range(start, end):
            host_batch = next(batches)
            batch = sharding.global_batch({"image": host_batch["image"], "label": host_batch["label"]}, run.mesh)
            train_state, step_metrics = step_fn(train_state, batch["image"], batch["label"])
            pending.append(step_metrics)
            done = step + 1
            preempted = watch.reached(done)
            save = done % tc.checkpoint_every == 0 or done == end or preempted
            if not (save or done % tc.log_every == 0):
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
            skipped += sum(int(m["nonfinite"]) for m in host)
            if done % tc.log_every == 0 or done == end:
                good = [m for m in host if not m["nonfinite"]] or host
                scalars = {k: float(np.mean([m[k] for m in good])) for k in ("loss", "grad_norm")}
                scalars.update(lr=float(lr_fn(done - 1)), skipped_steps=skipped)
                speed = progress.report(done)
                log.write(done, {**scalars, **speed})
                if jax.process_index() == 0:
                    print(metrics.log_line(done, total_steps, scalars, speed), flush=True)
                last_loss = scalars["loss"]
            if save:
                ckpt.save(done, train_state, meta)
            if preempted:
                if jax.process_index() == 0:
                    print(f"Preempted: checkpoint saved at step {done}; rerun the same command to resume.", flush=True)
                break
    finally:
        watch.close()
        ckpt.close()
        log.close()
    return {
        "step": int(train_state.step), "loss": last_loss, "params": train_state.params,
        "preempted": preempted, "skipped_steps": skipped,
    }
