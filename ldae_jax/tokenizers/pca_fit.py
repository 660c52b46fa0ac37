"""Fit the patch-PCA basis of a run from its train split, or load the one already in the workdir.

Images come from a seeded, shuffled stream of center crops; up to 16 grid-aligned patches are drawn from each
until `num_patches` are in the covariance (float32 products, float64 sums: `pca.CovarianceAccumulator`). Each process reads its own slice of the split and
accumulates its share; the sums are added across processes, so every host computes the same basis from all
of them (checked by comparing the content hash across hosts).
"""

from __future__ import annotations

import math
import time

import jax
import numpy as np
from etils import epath

from ldae_jax.data import pipeline
from ldae_jax.tokenizers import pca as pca_lib
from ldae_jax.train import hosts as hosts_lib

PATCHES_PER_IMAGE = 16
FIT_BATCH = 256


def host_patches(config, builder):
    """Yields this host's share of `config.pca.num_patches` random grid-aligned patches [n, D] in [-1, 1], by batch."""
    p, hosts = config.pca.patch_size, jax.process_count()
    n = math.ceil(config.pca.num_patches / hosts)  # this host's share
    grid = (config.data.image_size // p) ** 2
    per_image = min(PATCHES_PER_IMAGE, grid)
    batch = min(FIT_BATCH, pipeline.num_examples(builder, config.data.train_split) // hosts)
    stream = pipeline.train_iterator(
        builder, split=config.data.train_split, global_batch_size=batch * hosts,
        image_size=config.data.image_size, augment="center_crop", flip=False, seed=config.seed,
    )
    rng = np.random.default_rng(config.seed + 1_000_003 * jax.process_index())  # distinct draws per host
    done = 0
    while done < n:
        images = pipeline.normalize_images(next(stream)["image"])  # float32: the accumulator's fast path
        take = min(n - done, per_image * images.shape[0])
        done += take
        yield pca_lib.sample_patches(images, p, take, rng)


def fit_from_dataset(config, builder) -> pca_lib.PatchPCA:
    p, hosts = config.pca.patch_size, jax.process_count()
    channels = builder.info.features["image"].shape[-1]
    acc = pca_lib.CovarianceAccumulator(p * p * channels)
    start = time.perf_counter()
    for patches in host_patches(config, builder):
        acc.update(patches)
    acc.count = int(hosts_lib.sum_float64(np.array(acc.count)))
    acc.total, acc.outer = hosts_lib.sum_float64(acc.total), hosts_lib.sum_float64(acc.outer)
    fitted = pca_lib.fit(acc, patch_size=p, channels=channels, d=config.pca.d, whiten=config.pca.whiten)
    hosts_lib.check_same_on_all_hosts(pca_lib.content_hash(fitted), "the fitted PCA basis")
    print(
        f"PCA: fitted on {acc.count} patches of {p}x{p}x{channels} in {time.perf_counter() - start:.1f}s; "
        f"top-{config.pca.d} of {p * p * channels} dims explain {100 * pca_lib.explained_variance(fitted):.1f}% "
        "of the variance",
        flush=True,
    )
    return fitted


def fit_or_load(config, workdir: str, builder) -> pca_lib.PatchPCA:
    """`workdir/pca.npz` if present (checked against the config), else a new fit saved there."""
    path = str(epath.Path(workdir) / "pca.npz")
    channels = builder.info.features["image"].shape[-1]
    expected = dict(patch_size=config.pca.patch_size, channels=channels, d=config.pca.d, whiten=config.pca.whiten)
    if epath.Path(path).exists():
        fitted = pca_lib.load(path, **expected)
        hosts_lib.check_same_on_all_hosts(pca_lib.content_hash(fitted), f"{path}")
    else:
        fitted = fit_from_dataset(config, builder)
        if jax.process_index() == 0:
            pca_lib.save(fitted, path)
    return fitted
