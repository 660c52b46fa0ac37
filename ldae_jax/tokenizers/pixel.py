"""The pixel tokenizer of Figure 5: every patch value is a latent (d = D), noise is added to the pixels themselves.

It is the patch PCA with the identity basis and zero mean, so nothing is fitted or saved.
"""

from __future__ import annotations

import numpy as np

from ldae_jax.errors import UserError
from ldae_jax.tokenizers import kind
from ldae_jax.tokenizers.pca import PatchPCA


def identity(patch_size: int, channels: int) -> PatchPCA:
    """Every patch value a latent (d = D), no centring, no whitening."""
    dim = patch_size * patch_size * channels
    return PatchPCA(mean=np.zeros(dim, np.float32), components=np.eye(dim, dtype=np.float32),
                    eigenvalues=np.ones(dim, np.float32), patch_size=patch_size, channels=channels, d=dim,
                    whiten=False)


def check(config, channels: int, *, local: bool = True) -> None:
    del local  # no file named by the config
    t = config.tokenizer
    dim = t.patch_size**2 * channels
    if t.d != dim:
        raise UserError(f"tokenizer.kind='pixel' keeps every pixel of a patch: tokenizer.d must be D = "
                        f"{t.patch_size}x{t.patch_size}x{channels} = {dim}, got {t.d}")
    if t.pca.whiten:
        raise UserError("tokenizer.kind='pixel' has no basis to whiten; set tokenizer.pca.whiten=False")


def load_or_fit(config, workdir: str, builder) -> PatchPCA:
    del workdir  # nothing to load or save
    return identity(config.tokenizer.patch_size, builder.info.features["image"].shape[-1])


KINDS = (kind.Kind(name="pixel", summary="pixels as latents (d = D), nothing fitted", file=None, patchwise=True,
                   orthonormal=True, check=check, load_or_fit=load_or_fit),)
