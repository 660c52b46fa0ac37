"""Weighted k-nearest-neighbour accuracy of a representation (DINO's protocol), and the evaluator that watches
it during pre-training.

The classifier: features L2-normalised, cosine similarity of each test example to every train example, the k
most similar vote for their class with weight exp(similarity / temperature) (k = 20, temperature 0.07), the
class with the largest vote wins. It needs no training, so it can run every few hundred steps; the linear probe
stays the number the paper reports.

`Monitor` runs inside the pre-training loop every `knn.every_steps` steps on the probe's features of two fixed
subsets (the first `knn.train_examples` of the train split against the first `knn.test_examples` of the eval
split), the same examples at every evaluation and in every run of the same data.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from ldae_jax.data import pipeline
from ldae_jax.evaluate import linear_probe
from ldae_jax.runtime import timings
from ldae_jax.train import state as state_lib

_SIMILARITY_BYTES = 1 << 28  # a chunk of test rows against all train rows fills at most this (256 MiB)


def _normalise(x: np.ndarray) -> jnp.ndarray:
    x = jnp.asarray(x, jnp.float32)
    return x / jnp.maximum(jnp.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _predict(test, train, train_labels, *, k: int, temperature: float, num_classes: int):
    sims, idx = jax.lax.top_k(test @ train.T, k)
    votes = jax.nn.one_hot(train_labels[idx], num_classes) * jnp.exp(sims / temperature)[..., None]
    return jnp.argmax(votes.sum(axis=1), axis=-1)


_predict_jit = jax.jit(_predict, static_argnames=("k", "temperature", "num_classes"))


def knn_top1(train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], *, num_classes: int,
             k: int = 20, temperature: float = 0.07, progress: str | None = None) -> float:
    """Top-1 (%) of the weighted kNN classifier on (features [n, f], labels [n]) pairs; test rows in chunks so the
    similarity matrix stays small whatever the train set's size. `progress` names the work in the console's
    `NAME: n/N test images (p%), ETA ...` lines (timings.Countdown; None: silent)."""
    (train_x, train_y), (test_x, test_y) = train, test
    if len(train_x) == 0 or len(test_x) == 0:
        raise ValueError("kNN needs at least one train and one test example")
    k = min(k, len(train_x))
    train_n, train_l = _normalise(train_x), jnp.asarray(train_y, jnp.int32)
    chunk = int(max(1, min(1024, _SIMILARITY_BYTES // (4 * len(train_x)))))
    test_n = np.asarray(_normalise(test_x))
    pad = -len(test_n) % chunk  # every chunk the same shape: one compilation
    test_n = np.concatenate([test_n, np.zeros((pad, test_n.shape[1]), np.float32)])
    countdown = timings.Countdown(progress or "", len(test_y), "test images", quiet=progress is None)
    predictions = []
    for i in range(0, len(test_n), chunk):
        predictions.append(np.asarray(_predict_jit(jnp.asarray(test_n[i:i + chunk]), train_n, train_l, k=k,
                                                   temperature=float(temperature), num_classes=num_classes)))
        countdown.update(min(i + chunk, len(test_y)))
    predictions = np.concatenate(predictions)[:len(test_y)]
    return float(100 * np.mean(predictions == np.asarray(test_y)))


def subset_split(split: str, count: int) -> str:
    """The TFDS split of the first `count` examples of `split` ('test' -> 'test[:1000]'); a split that is
    already a slice stays as it is (its first examples are taken as it is read)."""
    return split if "[" in split or "+" in split else f"{split}[:{count}]"


def subset_batches(run, split: str, count: int, batch_size: int):
    """A function returning the host batches of the first `count` examples of `split` (centre crops, in the same
    order at every call and in every run of the same data): read once and kept when they fit `data.in_memory_mb`,
    else read again at every call."""
    batch_size = -(-min(batch_size, count) // run.mesh.size) * run.mesh.size
    image_size = run.config.data.image_size

    def read():
        return pipeline.eval_batches(run.builder, split=subset_split(split, count), global_batch_size=batch_size,
                                     image_size=image_size)

    channels = int(run.builder.info.features["image"].shape[-1])
    if count * image_size * image_size * channels > run.config.data.in_memory_mb * 2**20:
        return read
    kept = []

    def held():
        if not kept:
            kept.extend(_take(read(), count, batch_size))
        return kept

    return held


def _take(batches, count: int, batch_size: int):
    """The batches up to the one that holds this host's share of the first `count` examples."""
    for i, batch in enumerate(batches):
        yield batch
        if (i + 1) * batch_size >= count:
            return


def first_examples(run, features, batches, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of the first `count` examples of `batches` (host batches), on every host;
    `features(images, batch_index)`."""
    feats, labels, have = [], [], 0
    # Seconds of work: a signal now is handled at the next training step, which saves.
    for f, y in linear_probe.gathered(run, features, batches):
        feats.append(f)
        labels.append(y)
        have += len(y)
        if have >= count:
            break
    return np.concatenate(feats)[:count], np.concatenate(labels)[:count]


class Monitor:
    """The kNN evaluator of a pre-training run: `due(step)` says when, `evaluate(params)` returns
    {'knn_top1', 'knn_seconds'}. Off (never due) when `knn.every_steps` is 0."""

    def __init__(self, exp):
        self.exp, self.total = exp, exp.optimizer()[0]
        self.cfg = exp.config.knn
        p = exp.config.probe
        self.features = linear_probe.model_features_fn(exp, state_lib.model_graph(exp.model_cfg), t=p.t,
                                                       noisy=p.noisy, block=p.block, seed=exp.config.seed)
        data, batch = exp.config.data, p.feature_batch_size
        self.subsets = [(subset_batches(exp, split, n, batch), n) for split, n in
                        ((data.train_split, self.cfg.train_examples), (data.eval_split, self.cfg.test_examples))]

    def due(self, step: int) -> bool:
        every = self.cfg.every_steps
        return bool(every) and (step % every == 0 or step == self.total)

    def evaluate(self, params) -> dict:
        start = time.perf_counter()
        exp, cfg = self.exp, self.cfg
        with timings.phase("kNN evaluation"):
            fn = lambda images, i: self.features(params, images, i)  # noqa: E731
            train, test = (first_examples(exp, fn, batches(), n) for batches, n in self.subsets)
            top1 = knn_top1(train, test, num_classes=exp.num_classes, k=cfg.k, temperature=cfg.temperature)
        return {"knn_top1": top1, "knn_seconds": time.perf_counter() - start}
