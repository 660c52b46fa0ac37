"""The 'pca' tokenizer kind: fit the patch-PCA basis of a run from its train split, or load the workdir's (and
draw the patches a patch AE/VAE trains on). Apart from `pca.py` because it reads data through TensorFlow,
which the PCA's encode/decode in the train step need not.

Images come from a seeded, shuffled stream of center crops; up to 16 grid-aligned patches are drawn from each
until `num_patches` are in the covariance (float32 products, float64 sums: `pca.CovarianceAccumulator`). Each
process reads its own slice of the split and accumulates its share; the sums are added across processes, so
every host computes the same basis from all of them (checked by comparing the content hash across hosts).
"""

from __future__ import annotations

import math
import time

import jax
import numpy as np
from etils import epath

from ldae_jax.data import pipeline, splits
from ldae_jax.errors import UserError
from ldae_jax.runtime import hosts as hosts_lib, preemption, timings
from ldae_jax.tokenizers import kind, pca as pca_lib

PATCHES_PER_IMAGE = 16
FIT_BATCH = 256


def host_patches(config, builder, progress: str | None = None):
    """This host's share of `config.tokenizer.num_patches` random grid-aligned patches [n, D] in [-1, 1], by batch;
    `progress` names the stage in the console's `NAME: n/N patches (p%), ETA ...` lines (None: no lines)."""
    p, hosts = config.tokenizer.patch_size, jax.process_count()
    n = math.ceil(config.tokenizer.num_patches / hosts)  # this host's share
    grid = (config.data.image_size // p) ** 2
    per_image = min(PATCHES_PER_IMAGE, grid)
    batch = min(FIT_BATCH, splits.num_examples(builder, config.data.train_split) // hosts)
    # Process 0's count stands for all: every host samples its share at about the same pace.
    total = config.tokenizer.num_patches
    countdown = timings.Countdown(progress or "", total, "patches", quiet=progress is None,
                                  announce=f"sampling {total} patches of {p}x{p} from {config.data.train_split}")
    stream = pipeline.train_iterator(
        builder, split=config.data.train_split, global_batch_size=batch * hosts,
        image_size=config.data.image_size, augment="center_crop", flip=False, seed=config.seed,
        in_memory_mb=config.data.in_memory_mb,
    )
    rng = np.random.default_rng(config.seed + 1_000_003 * jax.process_index())  # distinct draws per host
    done = 0
    while done < n:
        preemption.stop_here("the tokenizer's patch sampling")
        images = pipeline.normalize_images(next(stream)["image"])  # float32: the accumulator's fast path
        take = min(n - done, per_image * images.shape[0])
        done += take
        yield pca_lib.sample_patches(images, p, take, rng)
        countdown.update(min(done * hosts, total))


def fit_from_dataset(config, builder) -> pca_lib.PatchPCA:
    p, hosts = config.tokenizer.patch_size, jax.process_count()
    channels = builder.info.features["image"].shape[-1]
    acc = pca_lib.CovarianceAccumulator(p * p * channels)
    start = time.perf_counter()
    with timings.phase("sampling patches"):
        for patches in host_patches(config, builder, progress="PCA"):
            acc.update(patches)
    acc.count = int(hosts_lib.sum_float64(np.array(acc.count)))
    acc.total, acc.outer = hosts_lib.sum_float64(acc.total), hosts_lib.sum_float64(acc.outer)
    fitted = pca_lib.fit(acc, patch_size=p, channels=channels, d=config.tokenizer.d, whiten=config.tokenizer.pca.whiten)
    hosts_lib.check_same_on_all_hosts(fitted.content_hash(), "the fitted PCA basis")
    if jax.process_index() == 0:
        print(
            f"PCA: fitted on {acc.count} patches of {p}x{p}x{channels} in {time.perf_counter() - start:.1f}s; "
            f"top-{config.tokenizer.d} of {p * p * channels} dims explain "
            f"{100 * pca_lib.explained_variance(fitted):.1f}% of the variance",
            flush=True,
        )
    return fitted


# ---------------------------------------------------------------- the registry entry


def check(config, channels: int, *, local: bool = True) -> None:
    del local  # no file named by the config
    dim = config.tokenizer.patch_size**2 * channels
    if not 1 <= config.tokenizer.d <= dim:
        raise UserError(f"tokenizer.d={config.tokenizer.d} must be in [1, D] for patches of "
                        f"{config.tokenizer.patch_size}x{config.tokenizer.patch_size}x{channels} (D = {dim})")


def load(config, path: str, channels: int) -> pca_lib.PatchPCA:
    t = config.tokenizer
    return pca_lib.load(path, patch_size=t.patch_size, channels=channels, d=t.d, whiten=t.pca.whiten)


def load_or_fit(config, workdir: str, builder) -> pca_lib.PatchPCA:
    """`workdir/pca.npz` if present (checked against the config), else a new fit from the train split saved there."""
    path = str(epath.Path(workdir) / "pca.npz")
    if epath.Path(path).exists():
        fitted = load(config, path, builder.info.features["image"].shape[-1])
        hosts_lib.check_same_on_all_hosts(fitted.content_hash(), path)
        return fitted
    fitted = fit_from_dataset(config, builder)
    if jax.process_index() == 0:
        pca_lib.save(fitted, path)
    return fitted


KINDS = (kind.Kind(name="pca", summary="patch-wise PCA, fitted from a covariance", file="pca.npz", patchwise=True,
                   orthonormal=True, check=check, load_or_fit=load_or_fit, load=load),)
