"""Patch-wise autoencoder and VAE tokenizers (Table 2): linear maps of each patch, trained by gradient descent.

docs/paper_notes.md 2.4: the patch-wise AE minimises |x - U^T V x|^2 and the patch-wise VAE adds KL[V x | N(0, I)], with
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
from etils import epath
from jax.experimental import multihost_utils

from ldae_jax.errors import DivergenceError, UserError
from ldae_jax.runtime import hosts as hosts_lib, preemption, timings
from ldae_jax.tokenizers import files, kind
from ldae_jax.tokenizers.patches import patchify, unpatchify
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

    def encode(self, patches) -> jax.Array:
        """Patches [..., D] -> latents [..., d] (the VAE's posterior mean), divided by the latent scale."""
        return (patches - jnp.asarray(self.mean)) @ jnp.asarray(self.encoder) / jnp.asarray(self.scale)

    def decode(self, z) -> jax.Array:
        """Latents [..., d] -> patches [..., D]."""
        return (z * jnp.asarray(self.scale)) @ jnp.asarray(self.decoder) + jnp.asarray(self.mean)

    def image_latents(self, images) -> jax.Array:
        """images [B, H, W, C] in [-1, 1] -> latent tokens [B, N, d]."""
        return self.encode(patchify(images, self.patch_size))

    def latent_images(self, z, height: int, width: int) -> jax.Array:
        """latent tokens [B, N, d] -> images [B, H, W, C]."""
        return unpatchify(self.decode(z), self.patch_size, height, width, self.channels)

    def content_hash(self) -> str:
        """sha256 of the float32 arrays and the metadata (`files.content_hash`)."""
        meta = {"format": _FORMAT, **{f: getattr(self, f) for f in _META_FIELDS}}
        return files.content_hash(meta, {name: getattr(self, name) for name in _ARRAY_FIELDS})


jax.tree_util.register_dataclass(PatchAE, data_fields=list(_ARRAY_FIELDS), meta_fields=list(_META_FIELDS))


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
    countdown = timings.Countdown("patch VAE" if variational else "patch AE", steps, "steps")
    for i in range(steps):
        if i % 100 == 0:
            preemption.stop_here("the patch AE's training")
        params, opt_state, loss, recon = step(params, opt_state, jax.random.fold_in(key, i))
        if i == 0 or (i + 1) % 100 == 0:
            jax.block_until_ready(loss)  # the steps done, not the steps dispatched
            countdown.update(i + 1)
    if not np.isfinite(float(loss)):
        raise DivergenceError(f"patch AE training diverged (loss {float(loss)}); lower tokenizer.patch_ae.lr")
    mu = np.asarray(x_all @ params["encoder"])
    scale = np.float32(mu.std())
    recon_mse = float(np.mean(np.square(np.asarray(x_all) - mu @ np.asarray(params["decoder"]))))
    ae = PatchAE(mean=mean, encoder=np.asarray(params["encoder"], np.float32),
                 decoder=np.asarray(params["decoder"], np.float32), scale=np.asarray(scale, np.float32),
                 patch_size=int(patch_size), channels=int(channels), d=int(d), variational=bool(variational))
    report = {"final_loss": float(loss), "recon_mse": recon_mse, "seconds": time.perf_counter() - start}
    return ae, report


def save(ae: PatchAE, path: str) -> None:
    """Pickle-free .npz, written atomically."""
    files.save_npz(path, {k: getattr(ae, k) for k in _ARRAY_FIELDS},
                   {**{k: np.int64(getattr(ae, k)) for k in _META_FIELDS}, "content_hash": np.str_(ae.content_hash()),
                    "format": np.str_(_FORMAT)})


def load(path: str, *, patch_size: int, channels: int, d: int, variational: bool) -> PatchAE:
    """Reads a tokenizer written by `save`, checking its hash and that it matches the config."""
    data = files.read_npz(path, remake="delete it: the tokenizer stage (--mode=tokenizer, or any run) trains it again")
    if str(data.get("format", "")) != _FORMAT:
        raise PCAMismatchError(f"{path} is not a patch AE/VAE tokenizer file (format {data.get('format')!r}); "
                               f"delete it so it is retrained", "format", data.get("format"), _FORMAT)
    ae = PatchAE(**{k: data[k] for k in _ARRAY_FIELDS}, patch_size=int(data["patch_size"]),
                 channels=int(data["channels"]), d=int(data["d"]), variational=bool(data["variational"]))
    if ae.content_hash() != str(data["content_hash"]):
        raise PCAMismatchError(f"{path}: content hash does not match its arrays; the file is corrupt. Delete it so "
                               "it is retrained", "content_hash", str(data["content_hash"]), ae.content_hash())
    expected = dict(patch_size=patch_size, channels=channels, d=d, variational=variational)
    for field, want in expected.items():
        if getattr(ae, field) != want:
            raise PCAMismatchError(
                f"tokenizer {path}: {field} is {getattr(ae, field)!r} in the file but the config expects {want!r}. "
                f"Delete {path} so it is retrained, or change the config to match.", field, getattr(ae, field), want)
    return ae


# ---------------------------------------------------------------- the registry entries (patch_ae, patch_vae)


def check(config, channels: int, *, local: bool = True) -> None:
    del local  # no file named by the config
    t = config.tokenizer
    dim = t.patch_size**2 * channels
    if not 1 <= t.d <= dim:
        raise UserError(f"tokenizer.d={t.d} must be in [1, D] for patches of {t.patch_size}x{t.patch_size}x{channels} "
                        f"(D = {dim})")
    if t.pca.whiten:
        raise UserError(f"tokenizer.kind={t.kind!r}: tokenizer.pca.whiten applies to PCA only; set it to False")


def _train(config, builder, channels: int) -> PatchAE:
    """Trains on process 0's share of the patches and broadcasts the result, so every host holds the same one."""
    t, r = config.tokenizer, config.tokenizer.patch_ae
    from ldae_jax.tokenizers import pca_fit  # here: it reads data through TensorFlow, which the train step needs not

    patches = np.concatenate(list(pca_fit.host_patches(config, builder, progress=t.kind))
                             ).astype(np.float32)
    ae, report = train(patches, patch_size=t.patch_size, channels=channels, d=t.d, variational=t.kind == "patch_vae",
                       steps=r.steps, batch_size=r.batch_size, lr=r.lr, kl_weight=r.kl_weight, seed=config.seed)
    if jax.process_count() > 1:
        arrays = multihost_utils.broadcast_one_to_all({k: np.asarray(getattr(ae, k)) for k in _ARRAY_FIELDS})
        ae = PatchAE(**{k: np.asarray(v) for k, v in arrays.items()}, patch_size=ae.patch_size,
                     channels=ae.channels, d=ae.d, variational=ae.variational)
    if jax.process_index() == 0:
        print(f"{t.kind}: trained {r.steps} steps on {patches.shape[0]} patches of {t.patch_size}x{t.patch_size}x"
              f"{channels} in {report['seconds']:.1f}s; reconstruction MSE {report['recon_mse']:.4f}", flush=True)
    return ae


def load_checked(config, path: str, channels: int) -> PatchAE:
    t = config.tokenizer
    return load(path, patch_size=t.patch_size, channels=channels, d=t.d, variational=t.kind == "patch_vae")


def load_or_fit(config, workdir: str, builder) -> PatchAE:
    channels = builder.info.features["image"].shape[-1]
    path = str(epath.Path(workdir) / f"{config.tokenizer.kind}.npz")
    if epath.Path(path).exists():
        ae = load_checked(config, path, channels)
    else:
        ae = _train(config, builder, channels)
        if jax.process_index() == 0:
            save(ae, path)
    hosts_lib.check_same_on_all_hosts(ae.content_hash(), path)
    return ae


KINDS = tuple(kind.Kind(name=name, summary=summary, file=f"{name}.npz", patchwise=True, orthonormal=False,
                        check=check, load_or_fit=load_or_fit, load=load_checked)
              for name, summary in (("patch_ae", "linear patch autoencoder, trained by Adam"),
                                    ("patch_vae", "linear patch VAE, trained by Adam")))
