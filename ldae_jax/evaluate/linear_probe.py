"""Linear probe on cached features (docs/paper_notes.md 4.1), trained entirely on device.

Features: the encoder output (block `probe.block`, default `model.encoder_depth`) at a fixed t (default 10 of
1000, clean input), global-average-pooled, extracted once for the train and test splits. Head: a
parameter-free BatchNorm then a linear layer (MAE: trunc-normal std 0.01 init, no weight decay, warm-up over
the first 1/9 of training, cosine decay, lr = base_lr * batch / 256). The optimizer is Adam by default: on a
few thousand cached steps it converges where MAE's LARS (trust coefficient 1e-3, tuned for 90 epochs at batch
16384) barely moves the head; `optimizer='lars'` (momentum 0.9) gives MAE's protocol.
At test time BatchNorm uses the running statistics, whose limit is the train set's mean and variance: the
cached probe uses those exact statistics for both training and test.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.experimental import multihost_utils

from ldae_jax import objectives
from ldae_jax.data import pipeline, splits
from ldae_jax.errors import UserError
from ldae_jax.runtime import preemption, timings
from ldae_jax.train import sharding

MAX_PIXEL_SIDE = 32  # the raw-pixel baseline average-pools larger images down to at most 32 x 32


def model_features_fn(run, graphdef, *, t: int, noisy: bool, block: int, seed: int = 0):
    """A jitted (params, images uint8 [B,H,W,C], batch_index) -> features [B, W] of the model."""
    key = jax.random.key(seed)

    def fn(params, images, batch_index):
        x0 = images.astype(jnp.float32) / 127.5 - 1.0
        steps = jnp.full((x0.shape[0],), t, jnp.int32)
        noise = None
        if noisy:  # noise at the same level t, in the latent, as in pre-training
            shape = (x0.shape[0], run.model_cfg.num_tokens, run.tokenizer.d)
            noise = jax.random.normal(jax.random.fold_in(key, batch_index), shape)
        tokens = objectives.network_input(run.objective, run.tokenizer, run.schedule, x0, steps, noise)
        labels = objectives.null_labels(run.objective, x0.shape[0])
        return nnx.merge(graphdef, params).features(tokens, steps, block or None, y=labels)

    return jax.jit(fn, in_shardings=(None, sharding.batch_sharding(run.mesh), None))


def pixel_features(images: jax.Array) -> jax.Array:
    """Raw pixels in [-1, 1], average-pooled to at most 32 x 32, flattened."""
    x = images.astype(jnp.float32) / 127.5 - 1.0
    b, h, w, c = x.shape
    f = max(1, h // MAX_PIXEL_SIDE)
    x = x[:, : h // f * f, : w // f * f].reshape(b, h // f, f, w // f, f, c).mean(axis=(2, 4))
    return x.reshape(b, -1)


def gathered(run, features, batches, stoppable: str | None = None):
    """(features, labels) of each host batch's real examples, gathered from every host, batch by batch;
    `stoppable` names the work for a SIGTERM/SIGINT that stops it between batches (None: not stopped here)."""
    for i, local in enumerate(batches):
        if stoppable:
            preemption.stop_here(stoppable)
        batch = sharding.global_batch(local, run.mesh)
        out = features(batch["image"], i)
        f, y, m = (np.asarray(multihost_utils.process_allgather(a, tiled=True))
                   for a in (out, batch["label"], batch["mask"]))
        yield f[m], y[m]


def extract(run, features, split: str, batch_size: int, desc: str) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of every example of `split` (padding removed), on every host; the console shows
    `  DESC features: n/N images (p%), ETA ...` while it runs (timings.Countdown) and `N x F` when done."""
    feats, labels, have = [], [], 0
    countdown = timings.Countdown(f"  {desc} features", splits.num_examples(run.builder, split), "images")
    # The feature batch only sets speed, never results: round it up to a multiple of the devices.
    batch_size = -(-batch_size // run.mesh.size) * run.mesh.size
    batches = pipeline.eval_batches(
        run.builder, split=split, global_batch_size=batch_size, image_size=run.config.data.image_size,
        in_memory_mb=run.config.data.in_memory_mb,
    )
    for f, y in gathered(run, features, batches, "the probe's feature extraction"):
        feats.append(f)
        labels.append(y)
        have += len(y)
        countdown.update(have)
    x, y = np.concatenate(feats), np.concatenate(labels)
    countdown.finish(f"{x.shape[0]} x {x.shape[1]}")
    return x, y


OPTIMIZERS = ("adam", "lars")


@functools.partial(jax.jit, static_argnames=("num_classes", "epochs", "batch_size", "base_lr", "optimizer"))
def _train_head(train_x, train_y, key, *, base_lr, optimizer, num_classes, epochs, batch_size):
    n, f = train_x.shape
    steps_per_epoch = max(1, n // batch_size)
    total = epochs * steps_per_epoch
    peak = base_lr * batch_size / 256
    lr = optax.warmup_cosine_decay_schedule(0.0, peak, max(1, total // 9), total, 0.0)
    if optimizer == "lars":
        tx = optax.lars(lr, weight_decay=0.0, momentum=0.9, trust_ratio_mask=lambda p: {"w": True, "b": False})
    else:
        tx = optax.adam(lr)
    init_key, perm_key = jax.random.split(key)
    params = {
        "w": 0.01 * jax.random.truncated_normal(init_key, -2.0, 2.0, (f, num_classes)),
        "b": jnp.zeros((num_classes,)),
    }

    def loss_fn(params, x, y):
        logits = x @ params["w"] + params["b"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def epoch(carry, xs):
        epoch_key, index = xs
        perm = jax.random.permutation(epoch_key, n)[: steps_per_epoch * batch_size]

        def step(carry, idx):
            params, opt_state = carry
            loss, grads = jax.value_and_grad(loss_fn)(params, train_x[idx], train_y[idx])
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        carry, losses = jax.lax.scan(step, carry, perm.reshape(steps_per_epoch, batch_size))
        jax.debug.callback(_epoch_done, index, carry[0]["b"])  # reads the epoch's result: runs once it is done
        return carry, losses.mean()

    (params, _), epoch_losses = jax.lax.scan(
        epoch, (params, tx.init(params)), (jax.random.split(perm_key, epochs), jnp.arange(epochs))
    )
    return params, epoch_losses


_HEAD_COUNTDOWN: list = []  # the console's countdown of the head being trained (the jitted epochs report to it)


def _epoch_done(index, _) -> None:
    if _HEAD_COUNTDOWN:
        _HEAD_COUNTDOWN[-1].update(int(index) + 1)


def accuracy(params, x, y) -> float:
    return float(jnp.mean(jnp.argmax(x @ params["w"] + params["b"], axis=-1) == y))


def train_linear_probe(
    train, test, *, num_classes: int, epochs: int, batch_size: int, base_lr: float, optimizer: str = "adam",
    seed: int = 0,
):
    """Parameter-free BN + linear head on cached (features, labels); returns top-1 (%) and the loss curve."""
    (train_x, train_y), (test_x, test_y) = train, test
    if optimizer not in OPTIMIZERS:
        raise UserError(f"probe.optimizer={optimizer!r} is not one of {OPTIMIZERS}")
    if train_y.max() >= num_classes or train_y.min() < 0:
        raise ValueError(f"labels must lie in [0, {num_classes}); got {train_y.min()}..{train_y.max()}")
    mean, var = train_x.mean(0), train_x.var(0)
    norm = lambda x: jnp.asarray((x - mean) / np.sqrt(var + 1e-6), jnp.float32)  # noqa: E731
    batch_size = min(batch_size, train_x.shape[0])
    _HEAD_COUNTDOWN.append(timings.Countdown("  linear head", epochs, "epochs"))
    try:
        params, losses = _train_head(
            norm(train_x), jnp.asarray(train_y), jax.random.key(seed), base_lr=base_lr, optimizer=optimizer,
            num_classes=num_classes, epochs=epochs, batch_size=batch_size,
        )
        losses = np.asarray(losses)  # the epochs have run (and reported)
    finally:
        countdown = _HEAD_COUNTDOWN.pop()
    countdown.finish(f"{epochs} epochs, last loss {float(losses[-1]):.4f}")
    return {
        "train_top1": 100 * accuracy(params, norm(train_x), jnp.asarray(train_y)),
        "test_top1": 100 * accuracy(params, norm(test_x), jnp.asarray(test_y)),
        "epoch_losses": [float(v) for v in losses],
    }
