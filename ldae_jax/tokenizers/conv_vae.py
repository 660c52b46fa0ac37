"""The convolutional VAE tokenizer of Table 1 (DiT's tokenizer, retrained): stride 2^num_down, KL-regularised,
with optional perceptual (LPIPS-style VGG16) and adversarial (patch discriminator, hinge) losses.

docs/paper_notes.md 3.1: LDM's KL-VAE maps 256 x 256 x 3 to 32 x 32 x 4 (stride 8) and DiT groups 2 x 2 latent
positions into one token, so a token has d = 4 x latent channels. The paper's tokenizer recipes are
[NOT FOUND]; ours, each a config field: an L2 reconstruction, `kl_weight` x KL (both averaged per pixel), LPIPS
at `perceptual_weight`, and from step `adversarial_start` a hinge-loss patch discriminator whose generator
term has weight `adversarial_weight` (LDM's defaults are 1.0 and 0.5). The network is a plain convolutional
stack (two 3x3 convolutions per level, SiLU), smaller than LDM's, as a CPU-sized starting point. After training
the latents are divided by their standard deviation (the role of LDM's 0.18215).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from etils import epath
from flax import nnx

from ldae_jax.errors import DivergenceError, Preempted, UserError
from ldae_jax.runtime import hosts as hosts_lib, preemption, timings
from ldae_jax.tokenizers import files, kind, perceptual
from ldae_jax.tokenizers.patches import patchify, unpatchify
from ldae_jax.tokenizers.pca import PCAMismatchError

_FORMAT = "ldae_jax.conv_vae.v1"


@dataclasses.dataclass(frozen=True)
class ConvVAEConfig:
    image_channels: int
    latent_channels: int
    width: int = 64
    num_down: int = 3  # stride 2^num_down
    group: int = 2  # latent positions per token side (DiT's patch size 2 on the latent)

    @property
    def stride(self) -> int:
        return 2**self.num_down


def _conv(cin, cout, rngs, stride=1, kernel=3):
    return nnx.Conv(cin, cout, kernel_size=(kernel, kernel), strides=(stride, stride), padding="SAME", rngs=rngs)


class ConvVAE(nnx.Module):
    def __init__(self, cfg: ConvVAEConfig, rngs: nnx.Rngs):
        w, c = cfg.width, cfg.latent_channels
        self.enc_in = _conv(cfg.image_channels, w, rngs)
        self.enc = nnx.List([nnx.List([_conv(w, w, rngs, stride=2), _conv(w, w, rngs)]) for _ in range(cfg.num_down)])
        self.enc_out = _conv(w, 2 * c, rngs)
        self.dec_in = _conv(c, w, rngs)
        self.dec = nnx.List([nnx.List([_conv(w, w, rngs), _conv(w, w, rngs)]) for _ in range(cfg.num_down)])
        self.dec_out = _conv(w, cfg.image_channels, rngs)

    def encode(self, x):
        """images [B, H, W, C] in [-1, 1] -> (mean, logvar), each [B, H/s, W/s, c]."""
        h = self.enc_in(x)
        for down, conv in self.enc:
            h = nnx.silu(conv(nnx.silu(down(h))))
        mean, logvar = jnp.split(self.enc_out(h), 2, axis=-1)
        return mean, jnp.clip(logvar, -30.0, 20.0)

    def decode(self, z):
        h = self.dec_in(z)
        for conv1, conv2 in self.dec:
            b, hh, ww, ch = h.shape
            h = jax.image.resize(h, (b, 2 * hh, 2 * ww, ch), "nearest")
            h = nnx.silu(conv2(nnx.silu(conv1(h))))
        return self.dec_out(h)


class PatchDiscriminator(nnx.Module):
    """Three strided 4x4 convolutions -> one real/fake logit per patch."""

    def __init__(self, channels: int, rngs: nnx.Rngs, width: int = 64):
        self.c1 = _conv(channels, width, rngs, stride=2, kernel=4)
        self.c2 = _conv(width, 2 * width, rngs, stride=2, kernel=4)
        self.c3 = _conv(2 * width, 1, rngs, kernel=4)

    def __call__(self, x):
        x = jax.nn.leaky_relu(self.c1(x), 0.2)
        return self.c3(jax.nn.leaky_relu(self.c2(x), 0.2))


@dataclasses.dataclass(frozen=True, eq=False)
class ConvVAETokenizer:
    """A trained conv VAE as a tokenizer; a pytree (params and scale are leaves, the network structure static)."""

    params: dict
    scale: jax.Array | np.ndarray
    cfg: ConvVAEConfig

    @property
    def patch_size(self) -> int:
        """Pixels per token side: stride x group (16 for the paper's 256 px -> 16 x 16 tokens)."""
        return self.cfg.stride * self.cfg.group

    @property
    def d(self) -> int:
        return self.cfg.group**2 * self.cfg.latent_channels

    @property
    def dim(self) -> int:
        return self.patch_size**2 * self.cfg.image_channels

    @property
    def channels(self) -> int:
        return self.cfg.image_channels

    def image_latents(self, images) -> jax.Array:
        """images [B, H, W, C] in [-1, 1] -> tokens [B, N, d]: the posterior mean / scale, 2 x 2 positions a token."""
        mean, _ = _model(self.cfg, self.params).encode(images)
        return patchify(mean / self.scale, self.cfg.group)

    def latent_images(self, z, height: int, width: int) -> jax.Array:
        """tokens [B, N, d] -> images [B, H, W, C]."""
        s = self.cfg.stride
        latent = unpatchify(z, self.cfg.group, height // s, width // s, self.cfg.latent_channels) * self.scale
        return _model(self.cfg, self.params).decode(latent)

    def content_hash(self) -> str:
        meta = {"format": _FORMAT, **dataclasses.asdict(self.cfg)}
        return files.content_hash(meta, dict(sorted(_flat({"params": self.params, "scale": self.scale}).items())))


jax.tree_util.register_dataclass(ConvVAETokenizer, data_fields=["params", "scale"], meta_fields=["cfg"])


@functools.lru_cache(maxsize=None)
def _graphdef(cfg: ConvVAEConfig):
    return nnx.split(nnx.eval_shape(lambda: ConvVAE(cfg, nnx.Rngs(0))))[0]


def _model(cfg: ConvVAEConfig, params) -> ConvVAE:
    return nnx.merge(_graphdef(cfg), params)


def _losses(vae, disc, images, key, *, kl_weight, vgg, perceptual_weight, adversarial_weight):
    mean, logvar = vae.encode(images)
    z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, mean.shape)
    recon = vae.decode(z)
    pixels = images[0].size
    out = {"recon": jnp.mean(jnp.square(images - recon)),
           "kl": jnp.mean(0.5 * jnp.sum(jnp.square(mean) + jnp.exp(logvar) - 1.0 - logvar, axis=(1, 2, 3))) / pixels}
    total = out["recon"] + kl_weight * out["kl"]
    if vgg is not None:
        out["perceptual"] = jnp.mean(perceptual.distance(vgg, images, recon))
        total = total + perceptual_weight * out["perceptual"]
    out["generator"] = -jnp.mean(disc(recon))
    total = total + adversarial_weight * out["generator"]
    return total, (out, recon)


def train(batches_from, cfg: ConvVAEConfig, *, steps: int, lr: float, kl_weight: float, vgg: dict | None = None,
          perceptual_weight: float = 0.0, adversarial_weight: float = 0.0, adversarial_start: int = 0,
          seed: int = 0, log_every: int = 0, checkpoint_path: str | None = None, checkpoint_every: int = 0,
          stop=None) -> tuple[ConvVAETokenizer, dict]:
    """Trains on `batches_from(step)` (an iterator of uint8 images [B, H, W, C] from that step on); returns
    (tokenizer, last losses).

    With `checkpoint_path`, the whole training state is saved there (by process 0) every `checkpoint_every`
    steps and when `stop(step)` says so (a preemption: then `errors.Preempted` is raised), and training resumes from it.
    The batches and the step's RNG are functions of the step, so a resumed run equals an uninterrupted one.
    """
    use_adv = adversarial_weight > 0
    vae = ConvVAE(cfg, nnx.Rngs(seed))
    disc = PatchDiscriminator(cfg.image_channels, nnx.Rngs(seed + 1))
    vae_g, vae_p = nnx.split(vae)
    disc_g, disc_p = nnx.split(disc)
    vae_p, disc_p = vae_p.to_pure_dict(), disc_p.to_pure_dict()
    tx, dtx = optax.adam(lr, b1=0.5, b2=0.9), optax.adam(lr, b1=0.5, b2=0.9)
    opt, dopt = tx.init(vae_p), dtx.init(disc_p)

    @jax.jit
    def step(vae_p, disc_p, opt, dopt, images, key, adv_on):
        x = images.astype(jnp.float32) / 127.5 - 1.0

        def loss_fn(p):
            return _losses(nnx.merge(vae_g, p), nnx.merge(disc_g, disc_p), x, key, kl_weight=kl_weight, vgg=vgg,
                           perceptual_weight=perceptual_weight, adversarial_weight=adversarial_weight * adv_on)

        (_, (logs, recon)), grads = jax.value_and_grad(loss_fn, has_aux=True)(vae_p)
        updates, opt = tx.update(grads, opt, vae_p)
        vae_p = optax.apply_updates(vae_p, updates)

        def disc_loss(dp):  # hinge loss of the patch discriminator
            d = nnx.merge(disc_g, dp)
            return jnp.mean(jax.nn.relu(1.0 - d(x))) + jnp.mean(jax.nn.relu(1.0 + d(jax.lax.stop_gradient(recon))))

        dl, dgrads = jax.value_and_grad(disc_loss)(disc_p)
        dupdates, new_dopt = dtx.update(dgrads, dopt, disc_p)
        keep = adv_on > 0  # the discriminator trains only once the adversarial term is on
        disc_p = jax.tree.map(lambda n, o: jnp.where(keep, n, o), optax.apply_updates(disc_p, dupdates), disc_p)
        dopt = jax.tree.map(lambda n, o: jnp.where(keep, n, o), new_dopt, dopt)
        return vae_p, disc_p, opt, dopt, {**logs, "discriminator": dl}

    recipe = dict(steps=steps, lr=lr, kl_weight=kl_weight, perceptual_weight=perceptual_weight,
                  adversarial_weight=adversarial_weight, adversarial_start=adversarial_start, seed=seed,
                  **dataclasses.asdict(cfg))
    state, first = (vae_p, disc_p, opt, dopt), 0
    if checkpoint_path and epath.Path(checkpoint_path).exists():
        state, first = _restore(checkpoint_path, state, recipe)
        if jax.process_index() == 0:
            print(f"conv VAE: resuming from step {first} ({checkpoint_path})", flush=True)
    vae_p, disc_p, opt, dopt = state
    key, start, logs = jax.random.key(seed), time.perf_counter(), {}
    countdown = timings.Countdown("conv VAE", steps, "steps", quiet=True)  # the step lines' ETA
    batches = batches_from(first)
    for i in range(first, steps):
        adv_on = jnp.float32(use_adv and i >= adversarial_start)
        vae_p, disc_p, opt, dopt, logs = step(vae_p, disc_p, opt, dopt, next(batches), jax.random.fold_in(key, i),
                                              adv_on)
        done = i + 1
        if done == first + 1:  # the first step compiled: not in the ETA
            jax.block_until_ready(logs)
            countdown.update(done)
        if log_every and done % log_every == 0:
            shown = "  ".join(f"{k} {float(v):.4f}" for k, v in logs.items())
            countdown.update(done)
            eta = countdown.eta_s(done)
            if jax.process_index() == 0:
                print(f"conv VAE step {done}/{steps}  {shown}"
                      + ("" if eta is None else f"  ETA {timings.format_duration(eta)}"), flush=True)
        preempted = stop is not None and stop(done)
        due = preempted or (checkpoint_every and done % checkpoint_every == 0)
        if checkpoint_path and done < steps and due and jax.process_index() == 0:
            _save_training(checkpoint_path, (vae_p, disc_p, opt, dopt), done, recipe)
        if preempted and done < steps:
            raise Preempted(f"conv VAE training stopped at step {done}; its state is in "
                                       f"{checkpoint_path}: rerun the same command to resume")
    logs = {k: float(v) for k, v in logs.items()}
    if not all(np.isfinite(list(logs.values()))):
        raise DivergenceError(f"conv VAE training diverged ({logs}); lower tokenizer.conv_vae.lr")
    model = nnx.merge(vae_g, vae_p)
    means = [np.asarray(model.encode(next(batches).astype(np.float32) / 127.5 - 1.0)[0]) for _ in range(4)]
    scale = np.float32(np.concatenate([m.ravel() for m in means]).std())
    tok = ConvVAETokenizer(params=jax.tree.map(np.asarray, vae_p), scale=np.asarray(scale), cfg=cfg)
    return tok, {**logs, "seconds": time.perf_counter() - start}


def _flat(params: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in params.items():
        name = f"{prefix}{k}"
        out.update(_flat(v, name + "/") if isinstance(v, dict) else {name: np.asarray(v, np.float32)})
    return out


def _unflat(flat: dict) -> dict:
    out = {}
    for name, value in flat.items():
        node, parts = out, name.split("/")
        for p in parts[:-1]:
            node = node.setdefault(int(p) if p.isdigit() else p, {})
        node[int(parts[-1]) if parts[-1].isdigit() else parts[-1]] = value
    return out


def _save_training(path: str, state, step: int, recipe: dict) -> None:
    """The training state's leaves (a fixed order for a fixed network and optimizer), the step and the recipe."""
    leaves = jax.tree.leaves(state)
    files.save_npz(path, {f"leaf{i:05d}": np.asarray(x) for i, x in enumerate(leaves)},
                   {"step": np.int64(step), "recipe": np.str_(json.dumps(recipe, sort_keys=True))})


def _restore(path: str, template, recipe: dict):
    """(state, step) from `_save_training`; the recipe must be the one being trained."""
    data = files.read_npz(path, remake="delete it: the conv VAE's training starts over")
    stored = json.loads(str(data["recipe"]))
    if stored != json.loads(json.dumps(recipe, sort_keys=True)):
        changed = sorted(k for k in set(stored) | set(recipe) if stored.get(k) != recipe.get(k))
        raise UserError(f"{path} is a conv VAE training state for another recipe (changed: {', '.join(changed)}); "
                        "delete it to start over, or restore the tokenizer config")
    leaves, treedef = jax.tree.flatten(template)
    restored = [np.asarray(data[f"leaf{i:05d}"]).astype(np.asarray(x).dtype) for i, x in enumerate(leaves)]
    return jax.tree.unflatten(treedef, restored), int(data["step"])


def save(tok: ConvVAETokenizer, path: str) -> None:
    """Pickle-free .npz (parameters flattened to 'a/b/c' keys), written atomically."""
    meta = {f"cfg.{k}": np.int64(v) for k, v in dataclasses.asdict(tok.cfg).items()}
    files.save_npz(path, {**_flat(tok.params, "params/"), "scale": tok.scale},
                   {**meta, "content_hash": np.str_(tok.content_hash()), "format": np.str_(_FORMAT)})


def load(path: str, cfg: ConvVAEConfig) -> ConvVAETokenizer:
    """Reads a tokenizer written by `save`, checking its hash and that its network matches `cfg`."""
    data = files.read_npz(path, remake="delete it: the tokenizer stage (--mode=tokenizer, or any run) trains it again")
    if str(data.get("format", "")) != _FORMAT:
        raise PCAMismatchError(f"{path} is not a conv VAE tokenizer file; delete it so it is retrained", "format",
                               data.get("format"), _FORMAT)
    stored = ConvVAEConfig(**{k[4:]: int(v) for k, v in data.items() if k.startswith("cfg.")})
    for field in dataclasses.fields(cfg):
        if getattr(stored, field.name) != getattr(cfg, field.name):
            raise PCAMismatchError(
                f"conv VAE {path}: {field.name} is {getattr(stored, field.name)} in the file but the config expects "
                f"{getattr(cfg, field.name)}. Delete {path} so it is retrained, or change the config to match.",
                field.name, getattr(stored, field.name), getattr(cfg, field.name))
    params = _unflat({k[len("params/"):]: v for k, v in data.items() if k.startswith("params/")})
    tok = ConvVAETokenizer(params=params, scale=data["scale"], cfg=stored)
    if tok.content_hash() != str(data["content_hash"]):
        raise PCAMismatchError(f"{path}: content hash does not match its arrays; the file is corrupt. Delete it so "
                               "it is retrained", "content_hash", str(data["content_hash"]), tok.content_hash())
    return tok


# ---------------------------------------------------------------- the registry entry


def config_of(config, channels: int) -> ConvVAEConfig:
    t = config.tokenizer
    return ConvVAEConfig(image_channels=channels, latent_channels=t.d // 4, width=t.conv_vae.width,
                         num_down=int(t.conv_vae.stride).bit_length() - 1, group=2)


def check(config, channels: int, *, local: bool = True) -> None:
    t, r = config.tokenizer, config.tokenizer.conv_vae
    if r.stride < 2 or r.stride & (r.stride - 1):
        raise UserError(f"tokenizer.conv_vae.stride must be a power of 2 >= 2, got {r.stride}")
    if t.d % 4:
        raise UserError(f"tokenizer.kind='conv_vae' groups 2 x 2 latent positions per token, so tokenizer.d must be a "
                        f"multiple of 4 (d / 4 latent channels), got {t.d}")
    if t.patch_size != 2 * r.stride:
        raise UserError(f"tokenizer.kind='conv_vae': a token covers 2 x tokenizer.conv_vae.stride = {2 * r.stride} "
                        f"pixels a side, so tokenizer.patch_size must be {2 * r.stride}, got {t.patch_size}")
    if r.perceptual_weight > 0 and local:
        perceptual.load_vgg16(r.perceptual_weights)  # fails here, before any compute, if missing or wrong
    if t.pca.whiten:
        raise UserError("tokenizer.kind='conv_vae': tokenizer.pca.whiten applies to PCA only; set it to False")


def load_checked(config, path: str, channels: int) -> ConvVAETokenizer:
    return load(path, config_of(config, channels))


def load_or_fit(config, workdir: str, builder) -> ConvVAETokenizer:
    """Loads workdir/conv_vae.npz (checked), or trains the conv VAE on the train split (on every host, from the
    same seed and the same batches, so every host ends with the same tokenizer; the hash check confirms it)."""
    r, channels = config.tokenizer.conv_vae, builder.info.features["image"].shape[-1]
    cfg = config_of(config, channels)
    path = str(epath.Path(workdir) / "conv_vae.npz")
    if epath.Path(path).exists():
        tok = load(path, cfg)
    else:
        from ldae_jax.data import pipeline  # here: it reads data through TensorFlow, which the train step needs not

        def batches_from(step):
            stream = pipeline.train_iterator(
                builder, split=config.data.train_split, global_batch_size=r.batch_size,
                image_size=config.data.image_size, augment="center_crop", flip=False, seed=config.seed,
                start_step=step, process_index=0, process_count=1, in_memory_mb=config.data.in_memory_mb)
            return (b["image"] for b in stream)

        vgg = perceptual.load_vgg16(r.perceptual_weights) if r.perceptual_weight > 0 else None
        state_path = str(epath.Path(workdir) / "conv_vae_training.npz")
        watch = preemption.PreemptionWatch()
        try:
            tok, logs = train(
                batches_from, cfg, steps=r.steps, lr=r.lr, kl_weight=r.kl_weight, vgg=vgg,
                perceptual_weight=r.perceptual_weight, adversarial_weight=r.adversarial_weight,
                adversarial_start=r.adversarial_start, seed=config.seed, log_every=max(1, r.steps // 10),
                checkpoint_path=state_path, checkpoint_every=r.checkpoint_every, stop=watch.reached)
        finally:
            watch.close()
        if jax.process_index() == 0:
            print(f"conv VAE: trained {r.steps} steps in {logs['seconds']:.0f}s; reconstruction MSE "
                  f"{logs['recon']:.4f}", flush=True)
            save(tok, path)
            if epath.Path(state_path).exists():
                epath.Path(state_path).unlink()
    hosts_lib.check_same_on_all_hosts(tok.content_hash(), path)
    return tok


KINDS = (kind.Kind(name="conv_vae", summary="convolutional VAE on whole images (Table 1)", file="conv_vae.npz",
                   patchwise=False, orthonormal=False, check=check, load_or_fit=load_or_fit, load=load_checked),)
