"""Mixup / CutMix of MAE's fine-tuning recipe, on device: timm's `Mixup` in 'batch' mode (one lambda and one box
per batch, partner = reversed batch, `correct_lam=True`) with smoothed one-hot targets, written with static shapes
so it can run inside a jitted step."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def smooth_one_hot(labels: jax.Array, num_classes: int, label_smoothing: float) -> jax.Array:
    """float32 [B, K]: one_hot * (1 - ls) + ls / K, timm's mixup_target off/on values."""
    one_hot = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
    return one_hot * (1.0 - label_smoothing) + label_smoothing / num_classes


def mixup_cutmix(rng: jax.Array, images: jax.Array, labels: jax.Array, num_classes: int, *,
                 mixup_alpha: float = 0.8, cutmix_alpha: float = 1.0, switch_prob: float = 0.5,
                 label_smoothing: float = 0.1, mix_prob: float = 1.0) -> tuple[jax.Array, jax.Array]:
    """timm's Mixup(mode='batch', correct_lam=True): (mixed images [B, H, W, C], soft targets float32 [B, K]).

    With probability `mix_prob` the batch is mixed with its reverse: CutMix with probability `switch_prob` (when both
    alphas are > 0), else Mixup, lambda ~ Beta(alpha, alpha). CutMix pastes one box (timm's rand_bbox: side
    int(side * sqrt(1 - lambda)), clipped at the border) and lambda becomes the unpasted area. Targets are
    lam * smooth(y) + (1 - lam) * smooth(y reversed). The alphas and probabilities are static Python numbers.
    """
    targets = smooth_one_hot(labels, num_classes, label_smoothing)
    if (mixup_alpha <= 0 and cutmix_alpha <= 0) or mix_prob <= 0:
        return images, targets
    mix_key, switch_key, lam_key, y_key, x_key = jax.random.split(rng, 5)
    if mixup_alpha > 0 and cutmix_alpha > 0:
        use_cutmix = jax.random.uniform(switch_key) < switch_prob
    else:
        use_cutmix = jnp.asarray(cutmix_alpha > 0)
    alpha = jnp.where(use_cutmix, cutmix_alpha, mixup_alpha)  # the chosen alpha is > 0
    lam = jax.random.beta(lam_key, alpha, alpha)
    lam = jnp.where(jax.random.uniform(mix_key) < mix_prob, lam, 1.0)

    height, width = images.shape[1], images.shape[2]
    ratio = jnp.sqrt(1.0 - lam)
    half_h = jnp.floor(height * ratio).astype(jnp.int32) // 2
    half_w = jnp.floor(width * ratio).astype(jnp.int32) // 2
    cy = jax.random.randint(y_key, (), 0, height)
    cx = jax.random.randint(x_key, (), 0, width)
    y0, y1 = jnp.clip(cy - half_h, 0, height), jnp.clip(cy + half_h, 0, height)
    x0, x1 = jnp.clip(cx - half_w, 0, width), jnp.clip(cx + half_w, 0, width)
    rows, cols = jnp.arange(height), jnp.arange(width)
    box = ((rows >= y0) & (rows < y1))[:, None] & ((cols >= x0) & (cols < x1))[None, :]
    cut_lam = 1.0 - ((y1 - y0) * (x1 - x0)).astype(jnp.float32) / (height * width)

    partners = images[::-1]
    blend = lam.astype(images.dtype)
    mixed = jnp.where(use_cutmix, jnp.where(box[None, :, :, None], partners, images),
                      blend * images + (1 - blend) * partners)
    lam = jnp.where(use_cutmix, cut_lam, lam)
    return mixed, lam * targets + (1.0 - lam) * targets[::-1]
