"""One interface over the patch tokenizers of the ladder (Table 2, Figure 5): encode, decode, hash, fit-or-load.

Kinds (`config.tokenizer.kind`):
- 'pca': patch-wise PCA (`tokenizers.pca`), fitted from a covariance, no gradient training; `pca.npz`.
- 'patch_ae' / 'patch_vae': linear patch autoencoder / VAE (`tokenizers.patch_ae`), trained by Adam;
  `patch_ae.npz` / `patch_vae.npz`.
- 'pixel': the naive identity tokenizer of Figure 5 (d = D, noise added to the pixels themselves); it is the
  PCA with identity basis and zero mean, so nothing is fitted or saved.
The patch size, d and the sampled patches come from the `pca` section of the config for every kind.
"""
from __future__ import annotations

import jax
import numpy as np
from etils import epath
from jax.experimental import multihost_utils

from ldae_jax.errors import UserError
from ldae_jax.tokenizers import patch_ae, pca as pca_lib, pca_fit
from ldae_jax.train import hosts as hosts_lib

KINDS = ("pca", "patch_ae", "patch_vae", "pixel")
Tokenizer = pca_lib.PatchPCA | patch_ae.PatchAE


def encode(tok: Tokenizer, patches):
    """Patches [..., D] -> latents [..., d]."""
    return patch_ae.encode(tok, patches) if isinstance(tok, patch_ae.PatchAE) else pca_lib.encode(tok, patches)


def decode(tok: Tokenizer, z):
    """Latents [..., d] -> patches [..., D]."""
    return patch_ae.decode(tok, z) if isinstance(tok, patch_ae.PatchAE) else pca_lib.decode(tok, z)


def content_hash(tok: Tokenizer) -> str:
    return patch_ae.content_hash(tok) if isinstance(tok, patch_ae.PatchAE) else pca_lib.content_hash(tok)


def is_orthonormal(tok: Tokenizer) -> bool:
    """Whether the tokenizer has a full orthonormal basis, which the weighted-residual loss (Eq. 4) needs."""
    return isinstance(tok, pca_lib.PatchPCA)


def identity(patch_size: int, channels: int) -> pca_lib.PatchPCA:
    """The pixel tokenizer: every patch value is a latent (d = D), no centring, no whitening."""
    dim = patch_size * patch_size * channels
    return pca_lib.PatchPCA(mean=np.zeros(dim, np.float32), components=np.eye(dim, dtype=np.float32),
                            eigenvalues=np.ones(dim, np.float32), patch_size=patch_size, channels=channels, d=dim,
                            whiten=False)


def check_config(config) -> None:
    """Clear errors for tokenizer settings that cannot work, before any data is read."""
    kind, dim = config.tokenizer.kind, None
    if kind not in KINDS:
        raise UserError(f"tokenizer.kind={kind!r} is unknown; choose one of {', '.join(KINDS)}")
    if kind == "pixel" and config.pca.whiten:
        raise UserError("tokenizer.kind='pixel' has no basis to whiten; set pca.whiten=False")
    if config.data.image_size % config.pca.patch_size:
        raise UserError(f"data.image_size={config.data.image_size} is not divisible by "
                        f"pca.patch_size={config.pca.patch_size}")
    if kind in ("patch_ae", "patch_vae") and config.pca.whiten:
        raise UserError(f"tokenizer.kind={kind!r}: pca.whiten applies to PCA only; set pca.whiten=False")
    del dim


def _train_ae(config, builder, channels: int) -> patch_ae.PatchAE:
    """Trains on process 0's share of the patches and broadcasts the result, so every host holds the same one."""
    tc, p = config.tokenizer, config.pca.patch_size
    patches = np.concatenate(list(pca_fit.host_patches(config, builder))).astype(np.float32)
    ae, report = patch_ae.train(
        patches, patch_size=p, channels=channels, d=config.pca.d, variational=tc.kind == "patch_vae",
        steps=tc.ae_steps, batch_size=tc.ae_batch_size, lr=tc.ae_lr, kl_weight=tc.kl_weight, seed=config.seed)
    if jax.process_count() > 1:
        arrays = multihost_utils.broadcast_one_to_all({k: np.asarray(getattr(ae, k)) for k in
                                                      ("mean", "encoder", "decoder", "scale")})
        ae = patch_ae.PatchAE(**{k: np.asarray(v) for k, v in arrays.items()}, patch_size=ae.patch_size,
                              channels=ae.channels, d=ae.d, variational=ae.variational)
    print(f"{tc.kind}: trained {tc.ae_steps} steps on {patches.shape[0]} patches of {p}x{p}x{channels} in "
          f"{report['seconds']:.1f}s; reconstruction MSE {report['recon_mse']:.4f}", flush=True)
    return ae


def fit_or_load(config, workdir: str, builder) -> Tokenizer:
    """The run's tokenizer: loaded from the workdir (checked against the config) or fitted/trained and saved."""
    check_config(config)
    kind, channels = config.tokenizer.kind, builder.info.features["image"].shape[-1]
    if kind == "pca":
        return pca_fit.fit_or_load(config, workdir, builder)
    if kind == "pixel":
        return identity(config.pca.patch_size, channels)
    path = str(epath.Path(workdir) / f"{kind}.npz")
    expected = dict(patch_size=config.pca.patch_size, channels=channels, d=config.pca.d,
                    variational=kind == "patch_vae")
    if epath.Path(path).exists():
        tok = patch_ae.load(path, **expected)
    else:
        tok = _train_ae(config, builder, channels)
        if jax.process_index() == 0:
            patch_ae.save(tok, path)
    hosts_lib.check_same_on_all_hosts(content_hash(tok), path)
    return tok
