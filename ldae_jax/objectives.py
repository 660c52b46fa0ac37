"""The l-DAE objective: noise added in a patch-PCA latent, the original image predicted in pixel space.

PAPER.md 2.3-2.4 (Eq. 4): patchify x0 -> z0 = encode(x0) -> z_t = z0 + sigma_t eps -> x_t = decode(z_t)
-> pred = net(x_t, t) -> loss = lambda_t * (|P_d e|^2 + w_res |(I - P_d) e|^2), e = x0 - pred, per patch.
Reduction (the paper does not say): the per-patch sum is divided by D and averaged over patches and batch,
so losses are comparable across patch sizes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ldae_jax import diffusion
from ldae_jax.tokenizers import pca as pca_lib
from ldae_jax.tokenizers.patches import patchify


def noised_tokens(pca, schedule, x0_patches, t, noise):
    """x_t [B, N, D]: the clean patches with noise added in the d-dim latent, mapped back by inverse PCA."""
    z0 = pca_lib.encode(pca, x0_patches)
    return pca_lib.decode(pca, diffusion.add_noise(schedule, z0, t, noise))


def ldae_loss(model, pca, schedule, images, rng, *, w_res: float):
    """Mean l-DAE loss of a batch of images [B, H, W, C] in [-1, 1]; returns (loss, per-example loss [B])."""
    x0 = patchify(images, pca.patch_size)
    t_rng, eps_rng = jax.random.split(rng)
    t = diffusion.sample_t(t_rng, x0.shape[0], schedule.num_steps)
    noise = jax.random.normal(eps_rng, x0.shape[:-1] + (pca.d,), jnp.float32)
    pred = model(noised_tokens(pca, schedule, x0, t, noise), t)
    err = pca_lib.residual_weighted_sq(pca, x0 - pred, w_res) / x0.shape[-1]  # [B, N]
    per_example = diffusion.loss_weight(schedule, t, "x0") * err.mean(axis=1)
    return per_example.mean(), per_example
