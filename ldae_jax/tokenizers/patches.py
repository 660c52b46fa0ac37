"""Cut images into non-overlapping patches and put them back.

One layout is used everywhere (PCA fitting, the tokenizer, the network's loss), so it lives here:
patches are in row-major grid order, and each patch is flattened as (p, p, C), i.e. joint RGB
vectors of length D = p * p * C. Works on numpy and jax arrays alike (jit-safe: shapes are static).
"""
from __future__ import annotations

from typing import TypeVar

import jax
import numpy as np

Array = TypeVar("Array", np.ndarray, jax.Array)


def _check_grid(height: int, width: int, patch_size: int) -> tuple[int, int]:
    if patch_size < 1:
        raise ValueError(f"patch_size must be >= 1, got {patch_size}")
    if height % patch_size or width % patch_size:
        raise ValueError(
            f"image size {height}x{width} is not divisible by patch_size {patch_size}; "
            "crop or resize the images to a multiple of the patch size")
    return height // patch_size, width // patch_size


def patchify(images: Array, patch_size: int) -> Array:
    """Images [B, H, W, C] -> patches [B, N, p*p*C], N = (H/p) * (W/p) in row-major order."""
    if images.ndim != 4:
        raise ValueError(f"patchify expects images [B, H, W, C], got shape {tuple(images.shape)}")
    b, h, w, c = images.shape
    nh, nw = _check_grid(h, w, patch_size)
    p = patch_size
    x = images.reshape(b, nh, p, nw, p, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, nh * nw, p * p * c)


def unpatchify(patches: Array, patch_size: int, height: int, width: int, channels: int) -> Array:
    """Patches [B, N, p*p*C] -> images [B, H, W, C]; the exact inverse of `patchify`."""
    nh, nw = _check_grid(height, width, patch_size)
    p = patch_size
    expected = (nh * nw, p * p * channels)
    if patches.ndim != 3 or tuple(patches.shape[1:]) != expected:
        raise ValueError(
            f"unpatchify expects patches [B, {expected[0]}, {expected[1]}] for a {height}x{width}x{channels} "
            f"image with patch_size {p}, got shape {tuple(patches.shape)}")
    b = patches.shape[0]
    x = patches.reshape(b, nh, nw, p, p, channels).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, height, width, channels)
