"""Patch-wise autoencoder and VAE tokenizers (Table 2): linear maps of each patch, trained by gradient descent.

PAPER.md 2.4: the patch-wise AE minimises |x - U^T V x|^2 and the patch-wise VAE adds KL[V x | N(0, I)], with
U and V both d x D and x one flattened patch. Choices the paper leaves open, each a config field:
- patches are mean-centred with the data mean before V (as PCA is), so the maps need no bias;
- the VAE's log-variance is a second linear map of the patch plus a bias; `kl_weight` multiplies the KL, both
  terms divided by D (the recipe is [NOT FOUND]; LDM's KL-VAEs use a tiny weight, 1e-6 on a summed loss);
- after training, the latents are divided by one scalar, their standard deviation over the training patches
  (the role of LDM's 0.18215), so the noise schedule sees latents of unit scale whatever the AE converged to.
"""
from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ldae_jax.tokenizers import files
from ldae_jax.tokenizers.pca import PCAMismatchError

_FORMAT = "ldae_jax.patch_ae.v1"
_ARRAY_FIELDS = ("mean", "encoder", "decoder", "scale")
_META_FIELDS = ("patch_size", "channels", "d", "variational")


@dataclasses.dataclass(frozen=True, eq=False)
class PatchAE:
    """A trained linear patch AE/VAE; a pytree like PatchPCA. mean [D], encoder [D, d], decoder [d, D], scale []."""

    mean: np.ndarray | jax.Array
    encoder: np.ndarray | jax.Array
    decoder: np.ndarray | jax.Array
    scale: np.ndarray | jax.Array
    patch_size: int
    channels: int
    d: int
    variational: bool

    @property
    def dim(self) -> int:
        return self.patch_size * self.patch_size * self.channels


jax.tree_util.register_dataclass(PatchAE, data_fields=list(_ARRAY_FIELDS), meta_fields=list(_META_FIELDS))


def encode(ae: PatchAE, patches) -> jax.Array:
    """Patches [..., D] -> latents [..., d] (the VAE's posterior mean), divided by the latent scale."""
    return (patches - jnp.asarray(ae.mean)) @ jnp.asarray(ae.encoder) / jnp.asarray(ae.scale)


def decode(ae: PatchAE, z) -> jax.Array:
    """Latents [..., d] -> patches [..., D]."""
    return (z * jnp.asarray(ae.scale)) @ jnp.asarray(ae.decoder) + jnp.asarray(ae.mean)


def _loss(params, x, key, *, variational: bool, kl_weight: float):
    """Mean over patches of |x - dec(z)|^2 / D (+ kl_weight KL / D for the VAE); x is mean-centred [n, D]."""
    mu = x @ params["encoder"]
    z, kl = mu, 0.0
    if variational:
        logvar = x @ params["logvar"] + params["logvar_bias"]
        z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(key, mu.shape)
        kl = 0.5 * jnp.sum(jnp.square(mu) + jnp.exp(logvar) - 1.0 - logvar, axis=-1)
    recon = jnp.sum(jnp.square(x - z @ params["decoder"]), axis=-1)
    dim = x.shape[-1]
    return jnp.mean(recon + kl_weight * kl) / dim, jnp.mean(recon) / dim


def train(patches: np.ndarray, *, patch_size: int, channels: int, d: int, variational: bool, steps: int,
          batch_size: int, lr: float, kl_weight: float, seed: int) -> tuple[PatchAE, dict]:
    """Fits U, V (and the VAE's log-variance map) on patches [n, D] with Adam; returns (tokenizer, report)."""
    x_all = np.asarray(patches, np.float32)
    dim = patch_size * patch_size * channels
    if x_all.ndim != 2 or x_all.shape[1] != dim:
        raise ValueError(f"patches must be [n, {dim}], got {x_all.shape}")
    if not 1 <= d <= dim:
        raise ValueError(f"latent dimension d must be in [1, D={dim}], got d={d}")
    mean = x_all.mean(axis=0)
    x_all = jnp.asarray(x_all - mean)
    key = jax.random.key(seed)
    k_enc, k_dec, k_var, key = jax.random.split(key, 4)
    params = {
        "encoder": jax.random.normal(k_enc, (dim, d)) / np.sqrt(dim),
        "decoder": jax.random.normal(k_dec, (d, dim)) / np.sqrt(d),
    }
    if variational:
        params["logvar"] = jax.random.normal(k_var, (dim, d)) * 0.01 / np.sqrt(dim)
        params["logvar_bias"] = jnp.zeros((d,))
    opt = optax.adam(optax.cosine_decay_schedule(lr, steps))
    loss_fn = jax.value_and_grad(lambda p, x, k: _loss(p, x, k, variational=variational, kl_weight=kl_weight),
                                 has_aux=True)

    @jax.jit
    def step(params, opt_state, key):
        k_idx, k_noise = jax.random.split(key)
        x = x_all[jax.random.randint(k_idx, (batch_size,), 0, x_all.shape[0])]
        (loss, recon), grads = loss_fn(params, x, k_noise)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, recon

    opt_state = opt.init(params)
    start = time.perf_counter()
    for i in range(steps):
        params, opt_state, loss, recon = step(params, opt_state, jax.random.fold_in(key, i))
    if not np.isfinite(float(loss)):
        raise FloatingPointError(f"patch AE training diverged (loss {float(loss)}); lower tokenizer.ae_lr")
    mu = np.asarray(x_all @ params["encoder"])
    scale = np.float32(mu.std())
    recon_mse = float(np.mean(np.square(np.asarray(x_all) - mu @ np.asarray(params["decoder"]))))
    ae = PatchAE(mean=mean, encoder=np.asarray(params["encoder"], np.float32),
                 decoder=np.asarray(params["decoder"], np.float32), scale=np.asarray(scale, np.float32),
                 patch_size=int(patch_size), channels=int(channels), d=int(d), variational=bool(variational))
    report = {"final_loss": float(loss), "recon_mse": recon_mse, "seconds": time.perf_counter() - start}
    return ae, report


def content_hash(ae: PatchAE) -> str:
    """sha256 of the float32 arrays and the metadata (`files.content_hash`)."""
    meta = {"format": _FORMAT, **{f: getattr(ae, f) for f in _META_FIELDS}}
    return files.content_hash(meta, {name: getattr(ae, name) for name in _ARRAY_FIELDS})


def save(ae: PatchAE, path: str) -> None:
    """Pickle-free .npz, written atomically."""
    files.save_npz(path, {k: getattr(ae, k) for k in _ARRAY_FIELDS},
                   {**{k: np.int64(getattr(ae, k)) for k in _META_FIELDS}, "content_hash": np.str_(content_hash(ae)),
                    "format": np.str_(_FORMAT)})


def load(path: str, *, patch_size: int, channels: int, d: int, variational: bool) -> PatchAE:
    """Reads a tokenizer written by `save`, checking its hash and that it matches the config."""
    data = files.read_npz(path)
    if str(data.get("format", "")) != _FORMAT:
        raise PCAMismatchError(f"{path} is not a patch AE/VAE tokenizer file (format {data.get('format')!r}); "
                               f"delete it so it is retrained", "format", data.get("format"), _FORMAT)
    ae = PatchAE(**{k: data[k] for k in _ARRAY_FIELDS}, patch_size=int(data["patch_size"]),
                 channels=int(data["channels"]), d=int(data["d"]), variational=bool(data["variational"]))
    if content_hash(ae) != str(data["content_hash"]):
        raise PCAMismatchError(f"{path}: content hash does not match its arrays; the file is corrupt. Delete it so "
                               "it is retrained", "content_hash", str(data["content_hash"]), content_hash(ae))
    expected = dict(patch_size=patch_size, channels=channels, d=d, variational=variational)
    for field, want in expected.items():
        if getattr(ae, field) != want:
            raise PCAMismatchError(
                f"tokenizer {path}: {field} is {getattr(ae, field)!r} in the file but the config expects {want!r}. "
                f"Delete {path} so it is retrained, or change the config to match.", field, getattr(ae, field), want)
    return ae
