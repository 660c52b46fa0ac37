"""The linear probe by the paper's protocol (MAE's; docs/paper_notes.md 4.1), as opposed to the fast cached-feature
probe.

Every step draws a fresh augmented batch (random resized crop + flip), runs the frozen encoder at the fixed t,
and trains a parameter-free BatchNorm (batch statistics while training, running statistics with momentum 0.1
for evaluation, eps 1e-6) + linear head with LARS (momentum 0.9, no weight decay, biases excluded from the
trust ratio), lr = base_lr * batch / 256 with `warmup_epochs` of linear warm-up and cosine decay. Evaluation is
one centre crop. The head state is saved every `checkpoint_every` steps and on SIGTERM, and resumed: the data
position is the step, so a resumed probe equals an uninterrupted one.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from etils import epath
from jax.experimental import multihost_utils

from ldae_jax.data import pipeline, splits
from ldae_jax.errors import Preempted
from ldae_jax.tokenizers import files
from ldae_jax.runtime import preemption, timings
from ldae_jax.train import sharding

BN_MOMENTUM, BN_EPS = 0.1, 1e-6


def feature_dim(run, features, params) -> int:
    """The width of `features`' output, from shapes only."""
    size, channels = run.config.data.image_size, run.builder.info.features["image"].shape[-1]
    images = jax.ShapeDtypeStruct((run.mesh.size, size, size, channels), jnp.uint8)
    return int(jax.eval_shape(features, params, images, 0).shape[-1])


def init_head(key, feature_dim: int, num_classes: int) -> dict:
    return {"w": 0.01 * jax.random.truncated_normal(key, -2.0, 2.0, (feature_dim, num_classes)),
            "b": jnp.zeros((num_classes,)), "mean": jnp.zeros((feature_dim,)), "var": jnp.ones((feature_dim,))}


def _logits(head, x):
    return x @ head["w"] + head["b"]


def make_step(features, tx):
    """The jitted train step: (head, opt, params, images, labels, step) -> (head, opt, loss, correct)."""

    def step(head, opt, params, images, labels, i):
        x = jax.lax.stop_gradient(features(params, images, i))
        mean, var = x.mean(0), x.var(0)
        normed = (x - mean) / jnp.sqrt(var + BN_EPS)

        def loss_fn(wb):
            logits = _logits(wb, normed)
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), logits

        wb = {"w": head["w"], "b": head["b"]}
        (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(wb)
        updates, opt = tx.update(grads, opt, wb)
        wb = optax.apply_updates(wb, updates)
        n = x.shape[0]
        head = {**wb, "mean": (1 - BN_MOMENTUM) * head["mean"] + BN_MOMENTUM * mean,
                "var": (1 - BN_MOMENTUM) * head["var"] + BN_MOMENTUM * var * n / max(n - 1, 1)}
        return head, opt, loss, jnp.sum(jnp.argmax(logits, -1) == labels)

    return jax.jit(step, donate_argnums=(0, 1))


def _evaluate(run, features, params, head, split: str, batch_size: int) -> float:
    predict = jax.jit(lambda head, p, images, i: jnp.argmax(
        _logits(head, (features(p, images, i) - head["mean"]) / jnp.sqrt(head["var"] + BN_EPS)), -1))
    correct = total = 0
    countdown = timings.Countdown("  evaluating the head", splits.num_examples(run.builder, split), "images")
    batch_size = -(-batch_size // run.mesh.size) * run.mesh.size  # speed only: a multiple of the devices
    for i, local in enumerate(pipeline.eval_batches(run.builder, split=split, global_batch_size=batch_size,
                                                    image_size=run.config.data.image_size,
                                                    in_memory_mb=run.config.data.in_memory_mb)):
        batch = sharding.global_batch(local, run.mesh)
        pred, y, m = (np.asarray(multihost_utils.process_allgather(a, tiled=True))
                      for a in (predict(head, params, batch["image"], i), batch["label"], batch["mask"]))
        correct += int(((pred == y) & m).sum())
        total += int(m.sum())
        countdown.update(total)
    countdown.finish(f"{total} images")
    return 100.0 * correct / total


def _save(path, head, opt, step: int) -> None:
    leaves = jax.tree.leaves((head, opt))
    files.save_npz(path, {f"leaf{i:04d}": np.asarray(x) for i, x in enumerate(leaves)},
                   {"step": np.int64(step)})


def _restore(path, head, opt):
    data = files.read_npz(path, remake="delete it: the paper-protocol probe starts over")
    leaves, treedef = jax.tree.flatten((head, opt))
    restored = [np.asarray(data[f"leaf{i:04d}"]).astype(np.asarray(x).dtype) for i, x in enumerate(leaves)]
    return (*jax.tree.unflatten(treedef, restored), int(data["step"]))


def train_and_evaluate(run, features, params, *, num_classes: int, state_path: str, seed: int = 0) -> dict:
    """Probe `features(params, images uint8, batch_index) -> [B, F]` by the paper's protocol; returns top-1 (%)."""
    p, config = run.config.probe, run.config
    batch = min(p.batch_size, splits.num_examples(run.builder, config.data.train_split))
    batch = max(run.mesh.size, batch // run.mesh.size * run.mesh.size)
    steps_per_epoch = max(1, splits.num_examples(run.builder, config.data.train_split) // batch)
    total = p.epochs * steps_per_epoch
    warmup = int(p.warmup_epochs * steps_per_epoch)
    lr = optax.warmup_cosine_decay_schedule(0.0, p.lars_base_lr * batch / 256, warmup, max(total, warmup + 1), 0.0)
    tx = optax.lars(lr, weight_decay=0.0, momentum=0.9, trust_ratio_mask={"w": True, "b": False})
    stream = pipeline.train_iterator(run.builder, split=config.data.train_split, global_batch_size=batch,
                                     image_size=config.data.image_size, augment="random_resized_crop", flip=True,
                                     seed=seed + 1, start_step=0)
    first = next(stream)
    head = init_head(jax.random.key(seed), feature_dim(run, features, params), num_classes)
    opt, start_step = tx.init({"w": head["w"], "b": head["b"]}), 0
    if epath.Path(state_path).exists():
        head, opt, start_step = _restore(state_path, head, opt)
        if jax.process_index() == 0:
            print(f"  resuming the probe at step {start_step}/{total}", flush=True)
    if start_step:
        stream = pipeline.train_iterator(run.builder, split=config.data.train_split, global_batch_size=batch,
                                         image_size=config.data.image_size, augment="random_resized_crop", flip=True,
                                         seed=seed + 1, start_step=start_step)
    else:
        stream = _chain(first, stream)
    step_fn, watch = make_step(features, tx), preemption.PreemptionWatch()
    correct, seen, losses = 0, 0, []
    countdown = timings.Countdown("  probe", total, "steps", quiet=True)  # the epoch lines' ETA
    last_epoch = total - steps_per_epoch
    try:
        for i in range(start_step, total):
            b = sharding.global_batch(next(stream), run.mesh)
            head, opt, loss, hits = step_fn(head, opt, params, b["image"], b["label"], i)
            done = i + 1
            if i >= last_epoch:  # the train accuracy is the last epoch's (summed on device, read once)
                correct, seen = correct + hits, seen + batch
            if done == start_step + 1:  # the first step compiled and started the input pipeline: not in the ETA
                jax.block_until_ready(loss)
                countdown.update(done)
            if done % steps_per_epoch == 0 or done == total:
                losses.append(float(loss))
                countdown.update(done)
                eta = countdown.eta_s(done)
                if jax.process_index() == 0:
                    print(f"  probe epoch {done // steps_per_epoch}/{p.epochs}  loss {float(loss):.4f}"
                          + ("" if eta is None else f"  ETA {timings.format_duration(eta)}"), flush=True)
            stop = watch.reached(done)
            if jax.process_index() == 0 and done < total and (stop or done % p.checkpoint_every == 0):
                _save(state_path, head, opt, done)
            if stop and done < total:
                raise Preempted(f"the probe stopped at step {done}; rerun the same command to resume")
    finally:
        watch.close()
    top1 = _evaluate(run, features, params, head, config.data.eval_split, p.feature_batch_size)
    if jax.process_index() == 0 and epath.Path(state_path).exists():
        epath.Path(state_path).unlink()
    return {"test_top1": top1, "train_top1": 100.0 * float(correct) / max(seen, 1), "epoch_losses": losses,
            "steps": total, "batch_size": batch}


def _chain(first, rest):
    yield first
    yield from rest

