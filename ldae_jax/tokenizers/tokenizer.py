"""One interface over the patch tokenizers of the ladder (Table 2, Figure 5): encode, decode, hash, fit-or-load.

Kinds (`config.tokenizer.kind`):
- 'pca': patch-wise PCA (`tokenizers.pca`), fitted from a covariance, no gradient training; `pca.npz`.
- 'patch_ae' / 'patch_vae': linear patch autoencoder / VAE (`tokenizers.patch_ae`), trained by Adam;
  `patch_ae.npz` / `patch_vae.npz`.
- 'pixel': the naive identity tokenizer of Figure 5 (d = D, noise added to the pixels themselves); it is the
  PCA with identity basis and zero mean, so nothing is fitted or saved.
- 'conv_vae': the convolutional VAE of Table 1 (`tokenizers.conv_vae`), on whole images; `conv_vae.npz`.
The patch size, d and the sampled patches come from the `pca` section of the config for the patch kinds; the
conv VAE takes d from `pca.d` (d / 4 latent channels, 2 x 2 positions a token) and its stride from the config.
"""
from __future__ import annotations

import jax
import numpy as np
from etils import epath
from jax.experimental import multihost_utils

from ldae_jax.errors import UserError
from ldae_jax.tokenizers import conv_vae, patch_ae, pca as pca_lib, perceptual
from ldae_jax.tokenizers.patches import patchify, unpatchify
from ldae_jax.train import hosts as hosts_lib, preemption

KINDS = ("pca", "patch_ae", "patch_vae", "pixel", "conv_vae")
Tokenizer = pca_lib.PatchPCA | patch_ae.PatchAE | conv_vae.ConvVAETokenizer


def encode(tok: Tokenizer, patches):
    """Patches [..., D] -> latents [..., d]."""
    return patch_ae.encode(tok, patches) if isinstance(tok, patch_ae.PatchAE) else pca_lib.encode(tok, patches)


def decode(tok: Tokenizer, z):
    """Latents [..., d] -> patches [..., D]."""
    return patch_ae.decode(tok, z) if isinstance(tok, patch_ae.PatchAE) else pca_lib.decode(tok, z)


def image_latents(tok: Tokenizer, images):
    """images [B, H, W, C] in [-1, 1] -> latent tokens [B, N, d], for every kind."""
    if isinstance(tok, conv_vae.ConvVAETokenizer):
        return conv_vae.encode_images(tok, images)
    return encode(tok, patchify(images, tok.patch_size))


def latent_images(tok: Tokenizer, z, height: int, width: int):
    """latent tokens [B, N, d] -> images [B, H, W, C], for every kind."""
    if isinstance(tok, conv_vae.ConvVAETokenizer):
        return conv_vae.decode_tokens(tok, z, height, width)
    return unpatchify(decode(tok, z), tok.patch_size, height, width, tok.channels)


def content_hash(tok: Tokenizer) -> str:
    if isinstance(tok, conv_vae.ConvVAETokenizer):
        return conv_vae.content_hash(tok)
    return patch_ae.content_hash(tok) if isinstance(tok, patch_ae.PatchAE) else pca_lib.content_hash(tok)


def identity(patch_size: int, channels: int) -> pca_lib.PatchPCA:
    """The pixel tokenizer: every patch value is a latent (d = D), no centring, no whitening."""
    dim = patch_size * patch_size * channels
    return pca_lib.PatchPCA(mean=np.zeros(dim, np.float32), components=np.eye(dim, dtype=np.float32),
                            eigenvalues=np.ones(dim, np.float32), patch_size=patch_size, channels=channels, d=dim,
                            whiten=False)


def conv_config(config, channels: int) -> conv_vae.ConvVAEConfig:
    tc = config.tokenizer
    return conv_vae.ConvVAEConfig(image_channels=channels, latent_channels=config.pca.d // 4, width=tc.conv_width,
                                  num_down=int(tc.conv_stride).bit_length() - 1, group=2)


def check_config(config) -> None:
    """Clear errors for tokenizer settings that cannot work, before any data is read."""
    kind, tc = config.tokenizer.kind, config.tokenizer
    if kind not in KINDS:
        raise UserError(f"tokenizer.kind={kind!r} is unknown; choose one of {', '.join(KINDS)}")
    if kind == "conv_vae":
        stride = tc.conv_stride
        if stride < 2 or stride & (stride - 1):
            raise UserError(f"tokenizer.conv_stride must be a power of 2 >= 2, got {stride}")
        if config.pca.d % 4:
            raise UserError(f"tokenizer.kind='conv_vae' groups 2 x 2 latent positions per token, so pca.d must be a "
                            f"multiple of 4 (d / 4 latent channels), got {config.pca.d}")
        if config.pca.patch_size != 2 * stride:
            raise UserError(f"tokenizer.kind='conv_vae': a token covers 2 x tokenizer.conv_stride = {2 * stride} "
                            f"pixels a side, so pca.patch_size must be {2 * stride}, got {config.pca.patch_size}")
        if tc.perceptual_weight > 0:
            perceptual.load_vgg16(tc.perceptual_weights)  # fails here, before any compute, if missing or wrong
        return
    if kind == "pixel" and config.pca.whiten:
        raise UserError("tokenizer.kind='pixel' has no basis to whiten; set pca.whiten=False")
    if config.data.image_size % config.pca.patch_size:
        raise UserError(f"data.image_size={config.data.image_size} is not divisible by "
                        f"pca.patch_size={config.pca.patch_size}")
    if kind in ("patch_ae", "patch_vae") and config.pca.whiten:
        raise UserError(f"tokenizer.kind={kind!r}: pca.whiten applies to PCA only; set pca.whiten=False")


def _train_ae(config, builder, channels: int) -> patch_ae.PatchAE:
    """Trains on process 0's share of the patches and broadcasts the result, so every host holds the same one."""
    tc, p = config.tokenizer, config.pca.patch_size
    from ldae_jax.tokenizers import pca_fit  # here: it reads data through TensorFlow, which encoding needs not

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
        from ldae_jax.tokenizers import pca_fit  # here: it reads data through TensorFlow, which encoding needs not

        return pca_fit.fit_or_load(config, workdir, builder)
    if kind == "pixel":
        return identity(config.pca.patch_size, channels)
    if kind == "conv_vae":
        return _conv_vae_fit_or_load(config, workdir, builder, channels)
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


def _conv_vae_fit_or_load(config, workdir: str, builder, channels: int) -> conv_vae.ConvVAETokenizer:
    """Loads workdir/conv_vae.npz (checked), or trains the conv VAE on the train split (on every host, from the
    same seed and the same batches, so every host ends with the same tokenizer; the hash check confirms it)."""
    from ldae_jax.data import pipeline

    tc, cfg = config.tokenizer, conv_config(config, channels)
    path = str(epath.Path(workdir) / "conv_vae.npz")
    if epath.Path(path).exists():
        tok = conv_vae.load(path, cfg)
    else:
        def batches_from(step):
            stream = pipeline.train_iterator(
                builder, split=config.data.train_split, global_batch_size=tc.conv_batch_size,
                image_size=config.data.image_size, augment="center_crop", flip=False, seed=config.seed,
                start_step=step, process_index=0, process_count=1)
            return (b["image"] for b in stream)

        vgg = perceptual.load_vgg16(tc.perceptual_weights) if tc.perceptual_weight > 0 else None
        state_path = str(epath.Path(workdir) / "conv_vae_training.npz")
        watch = preemption.PreemptionWatch()
        try:
            tok, logs = conv_vae.train(
                batches_from, cfg, steps=tc.conv_steps, lr=tc.conv_lr, kl_weight=tc.kl_weight, vgg=vgg,
                perceptual_weight=tc.perceptual_weight, adversarial_weight=tc.adversarial_weight,
                adversarial_start=tc.adversarial_start, seed=config.seed, log_every=max(1, tc.conv_steps // 10),
                checkpoint_path=state_path,
                checkpoint_every=tc.conv_checkpoint_every, stop=watch.reached)
        finally:
            watch.close()
        print(f"conv VAE: trained {tc.conv_steps} steps in {logs['seconds']:.0f}s; reconstruction MSE "
              f"{logs['recon']:.4f}", flush=True)
        if jax.process_index() == 0:
            conv_vae.save(tok, path)
            if epath.Path(state_path).exists():
                epath.Path(state_path).unlink()
    hosts_lib.check_same_on_all_hosts(content_hash(tok), path)
    return tok
