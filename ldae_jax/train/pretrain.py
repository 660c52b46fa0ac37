"""The l-DAE pre-training loop: `train_and_evaluate(config, workdir)`, importable from a notebook.

Resumes automatically from the latest checkpoint in `workdir/checkpoints` (refusing one written by a
different config or PCA basis); logs to TensorBoard, `metrics.jsonl` and the console with images/s and ETA.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from ldae_jax import config_lib, diffusion
from ldae_jax.data import pipeline
from ldae_jax.errors import UserError
from ldae_jax.models.vit import model_config_from
from ldae_jax.tokenizers import pca as pca_lib
from ldae_jax.tokenizers import pca_fit
from ldae_jax.train import checkpoint, metrics, sharding, state as state_lib


@dataclasses.dataclass
class Run:
    """Everything the programs of a run (pretrain, probe, figures) build from one config."""

    config: object
    builder: object
    pca: pca_lib.PatchPCA
    schedule: diffusion.Schedule
    model_cfg: object
    mesh: object


def schedule_from(config) -> diffusion.Schedule:
    n = config.noise
    kwargs = {"sigma_linear": {"sigma_max": n.sigma_max}, "single_level": {"sigma": n.single_sigma}}
    return diffusion.get_schedule(n.schedule, n.T, **kwargs.get(n.schedule, {}))


def setup_run(config, workdir: str) -> Run:
    """Check the config, build the mesh and dataset, and fit (or load and verify) the PCA basis."""
    config_lib.prepare_workdir(workdir)
    mesh = sharding.make_mesh(config.mesh.data, config.mesh.fsdp)
    sharding.check_batch(config.train.batch_size, mesh)
    builder = pipeline.get_builder(config.data.name, config.data.data_dir or None)
    pca = pca_fit.fit_or_load(config, workdir, builder)
    channels = pca.channels
    num_tokens = (config.data.image_size // config.pca.patch_size) ** 2
    model_cfg = model_config_from(
        config.model, num_tokens=num_tokens, patch_dim=config.pca.patch_size**2 * channels
    )
    return Run(config, builder, pca, schedule_from(config), model_cfg, mesh)


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
    return {"fingerprint": checkpoint.config_fingerprint(config), "pca_hash": pca_lib.content_hash(run.pca)}


def restore_latest(ckpt, abstract, shardings, meta: dict, workdir: str):
    """The latest train state in `ckpt`, after checking it belongs to this run; None when there is none."""
    latest = ckpt.latest_step()
    if latest is None:
        return None
    checkpoint.check_same_run(ckpt.restore_meta(latest), meta, workdir)
    return ckpt.restore(latest, abstract, shardings)


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


def train_and_evaluate(config, workdir: str, *, stop_after: int | None = None) -> dict:
    """Pre-train to config.train's length; returns {'step', 'loss', 'params'} of the final state.

    `stop_after` ends the run early at that step with a checkpoint, as an interruption would (a rerun resumes).
    """
    run = setup_run(config, workdir)
    if jax.process_index() == 0:
        config_lib.save_config(config, workdir)
    tc = config.train
    total_steps, lr_fn, tx = optimizer_for(config, run.builder)
    key = jax.random.key(config.seed)
    abstract = state_lib.abstract_state(run.model_cfg, tx, key)
    shardings = state_lib.state_shardings(abstract, run.mesh)
    ckpt = checkpoint.Checkpointer(f"{workdir}/checkpoints", keep=tc.keep_checkpoints)
    meta = run_meta(config, run)
    train_state = restore_latest(ckpt, abstract, shardings, meta, workdir)
    if train_state is None:
        train_state = state_lib.create_state(run.model_cfg, tx, key, shardings)
    elif jax.process_index() == 0:
        print(f"Resuming from the checkpoint at step {int(train_state.step)}", flush=True)
    start = int(train_state.step)

    step_fn = state_lib.make_train_step(
        state_lib.model_graph(run.model_cfg), tx, run.pca, run.schedule,
        w_res=config.pca.w_res, seed=config.seed, state_shardings=shardings, mesh=run.mesh,
    )
    batches = pipeline.train_iterator(
        run.builder, split=config.data.train_split, global_batch_size=tc.batch_size,
        image_size=config.data.image_size, augment=config.data.augment, flip=config.data.flip,
        seed=config.seed, start_step=start,
    )
    log = metrics.MetricsLog(workdir)
    progress = metrics.Progress(total_steps, tc.batch_size, start)
    pending = []  # device scalars since the last log: no host sync inside the loop
    last_loss = float("nan")
    end = total_steps if stop_after is None else min(stop_after, total_steps)
    for step in range(start, end):
        batch = sharding.global_batch({"image": next(batches)["image"]}, run.mesh)
        train_state, step_metrics = step_fn(train_state, batch["image"])
        pending.append(step_metrics)
        done = step + 1
        if done % tc.log_every == 0 or done == total_steps:
            host = jax.device_get(pending)
            pending = []
            scalars = {k: float(np.mean([m[k] for m in host])) for k in host[0]}
            if not np.isfinite(scalars["loss"]):
                raise FloatingPointError(f"non-finite loss at step {done}; the last checkpoint is kept")
            scalars["lr"] = float(lr_fn(done - 1))
            speed = progress.report(done)
            log.write(done, {**scalars, **speed})
            if jax.process_index() == 0:
                print(metrics.log_line(done, total_steps, scalars, speed), flush=True)
            last_loss = scalars["loss"]
        if done % tc.checkpoint_every == 0 or done == end:
            ckpt.save(done, train_state, meta)
    ckpt.close()
    log.close()
    return {"step": int(train_state.step), "loss": last_loss, "params": train_state.params}
