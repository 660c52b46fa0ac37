"""The denoising objectives of the ladder, from DiT's noise prediction to l-DAE (docs/paper_notes.md 1.4, 2.3-2.4).

One pipeline covers every rung: patchify x0 -> z0 = encode(x0) -> z_t = gamma_t z0 + sigma_t eps, then
- input 'latent' feeds z_t to the network, 'image' feeds decode(z_t) (Table 3 step 3);
- output 'latent' reads the network's tokens as latents, 'image' as patches mapped to latents by encode (step 4);
- target 'eps' (Eq. 2, weight 1), 'clean' (Eq. 3: z0, weight lambda_t) or 'original' (Eq. 4: the raw image x0
  with the tokenizer's residual subspace weighted by w_res, which it computes; l-DAE, step 5).
The input scaling (steps 1 -> 2) is the schedule's (`diffusion`). Reduction (the paper does not say): each
token's squared error is divided by its dimension and averaged over tokens and batch, so losses compare across
patch sizes and d. With `num_classes` > 0 the network is also given the label, replaced by the null label
num_classes with probability `label_dropout` (DiT's classifier-free guidance training, Table 1 row 1). With
`learn_sigma` the network also outputs DiT's variance channels, trained by the bound term of `learned_variance`.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from ldae_jax import diffusion, learned_variance
from ldae_jax.errors import UserError
from ldae_jax.tokenizers.patches import patchify


@dataclasses.dataclass(frozen=True)
class Objective:
    """What the network sees and predicts; hashable, so it can be a static argument of jit."""

    input: str = "image"
    output: str = "image"
    target: str = "original"
    w_res: float = 0.1
    num_classes: int = 0  # 0 = unconditional
    label_dropout: float = 0.0
    learn_sigma: bool = False  # the network also outputs v, the interpolation of DiT's log-variance
    kind: str = "denoise"  # 'denoise': the ladder's objectives | 'mae': MAE's masked patch prediction
    mask_ratio: float = 0.75  # 'mae': the share of each example's tokens hidden from the encoder
    norm_pix: bool = True  # 'mae': the target is each patch normalised by its own mean and variance

    def dims(self, dim: int, d: int) -> tuple[int, int]:
        """(input, output) size of one token for the network, for tokens of D = `dim` pixels and `d` latents
        (output doubled for the variance channels)."""
        if self.kind == "mae":  # pixels in, pixels out
            return dim, dim
        size = {"image": dim, "latent": d}
        return size[self.input], size[self.output] * (2 if self.learn_sigma else 1)


def split_output(obj: Objective, out):
    """The network's output -> (prediction, v or None)."""
    if not obj.learn_sigma:
        return out, None
    pred, v = jnp.split(out, 2, axis=-1)
    return pred, v


def check(config, kind) -> None:
    """Combinations of `config.objective` with the noise schedule and the tokenizer `kind` (a registry entry)
    that mean nothing, before any data is read."""
    o = config.objective  # each field's values and range: the schema's, checked before this
    if o.kind == "mae":
        return _check_mae(config, kind)
    if o.target == "eps" and o.output != "latent":
        raise UserError("objective.target='eps' predicts the latent noise: it needs objective.output='latent'")
    if o.target == "original" and o.output != "image":
        raise UserError("objective.target='original' predicts the raw image: it needs objective.output='image'")
    if not kind.patchwise and (o.input, o.output) != ("latent", "latent"):
        raise UserError(f"tokenizer.kind={kind.name!r} works on whole images, not patches: it needs objective.input "
                        "and objective.output 'latent' (as DiT)")
    if o.target == "original" and not kind.orthonormal:
        raise UserError(f"objective.target='original' weights the residual in an orthonormal basis (Eq. 4), which "
                        f"tokenizer.kind={kind.name!r} does not have; use target 'clean' or 'eps'")
    if o.learn_sigma and (o.output != "latent" or config.noise.schedule != "ddpm_linear_beta"):
        raise UserError("objective.learn_sigma (DiT's learned variance) needs objective.output='latent' and "
                        f"noise.schedule='ddpm_linear_beta', got output={o.output!r}, "
                        f"schedule={config.noise.schedule!r}")


def _check_mae(config, kind) -> None:
    """MAE predicts raw pixels of patches at t = 0, unconditionally, from the encoder's first blocks."""
    o, p, m = config.objective, config.probe, config.model
    if kind.name != "pixel":
        raise UserError(f"objective.kind='mae' predicts raw pixels: it needs tokenizer.kind='pixel', got "
                        f"{kind.name!r}")
    if o.class_conditional or o.learn_sigma:
        raise UserError("objective.kind='mae' has no class conditioning and no learned variance: set "
                        "objective.class_conditional and objective.learn_sigma to False")
    if p.t or config.finetune.t or p.noisy:
        raise UserError(f"objective.kind='mae' trains at t=0 on clean images: probe.t and finetune.t must be 0 and "
                        f"probe.noisy False (got probe.t={p.t}, finetune.t={config.finetune.t}, "
                        f"probe.noisy={p.noisy})")
    if m.scan_layers:
        raise UserError("objective.kind='mae' does not scan its layers: set model.scan_layers=False")


def objective_from(config, num_classes: int) -> Objective:
    """The `objective` section of a config, and its `mae` section for kind 'mae' (checked by `check` before the
    run starts)."""
    o = config.objective
    mae = {"kind": "mae", "mask_ratio": float(config.mae.mask_ratio), "norm_pix": bool(config.mae.norm_pix_loss)} \
        if o.kind == "mae" else {}
    return Objective(input=o.input, output=o.output, target=o.target, w_res=float(o.w_res),
                     num_classes=num_classes if o.class_conditional else 0, label_dropout=float(o.label_dropout),
                     learn_sigma=bool(o.learn_sigma), **mae)


def noised_latents(tok, schedule, images, t, noise):
    """z_t [B, N, d] = gamma_t z0 + sigma_t noise, z0 the tokenizer's latents of images [B, H, W, C]."""
    return diffusion.add_noise(schedule, tok.image_latents(images), t, noise)


def network_input(obj: Objective, tok, schedule, images, t, noise):
    """The tokens the network sees: z_t, or decode(z_t) for image input; noise None = the clean input."""
    if noise is None:  # probing on clean input: the latent, or the image itself
        return tok.image_latents(images) if obj.input == "latent" else patchify(images, tok.patch_size)
    return tokens_from_latents(obj, tok, noised_latents(tok, schedule, images, t, noise))


def tokens_from_latents(obj: Objective, tok, z_t):
    """What the network is fed for latents z_t: z_t itself, or the image decode(z_t) for image input."""
    return z_t if obj.input == "latent" else tok.decode(z_t)


def network_labels(obj: Objective, labels, rng=None):
    """Labels for a class-conditional network (None when unconditional); dropped to the null label at random."""
    if not obj.num_classes:
        return None
    labels = jnp.asarray(labels, jnp.int32)
    if rng is None or obj.label_dropout == 0.0:
        return labels
    drop = jax.random.bernoulli(rng, obj.label_dropout, labels.shape)
    return jnp.where(drop, obj.num_classes, labels)


def null_labels(obj: Objective, batch: int):
    """The unconditional label for every example (used when probing a class-conditional network)."""
    return jnp.full((batch,), obj.num_classes, jnp.int32) if obj.num_classes else None


def visible_count(num_tokens: int, mask_ratio: float) -> int:
    """Tokens each example keeps (MAE: int(N * (1 - ratio)), at least one)."""
    return max(1, int(num_tokens * (1 - mask_ratio)))


def random_keep(rng: jax.Array, batch: int, num_tokens: int, mask_ratio: float) -> tuple[jax.Array, jax.Array]:
    """(keep [B, K] indices of each example's visible tokens, mask [B, N] with 1 where a token is hidden)."""
    k = visible_count(num_tokens, mask_ratio)
    order = jnp.argsort(jax.random.uniform(rng, (batch, num_tokens)), axis=1)
    keep = order[:, :k]
    mask = jnp.ones((batch, num_tokens)).at[jnp.arange(batch)[:, None], keep].set(0.0)
    return keep, mask


def mae_target(patches, norm_pix: bool):
    """MAE's pixel target [B, N, D]: each patch, normalised by its own mean and variance when `norm_pix`."""
    if not norm_pix:
        return patches
    mean = patches.mean(axis=-1, keepdims=True)
    var = patches.var(axis=-1, keepdims=True)
    return (patches - mean) / jnp.sqrt(var + 1e-6)


def mae_loss(model, obj: Objective, tok, images, rng):
    """MAE: the mean squared error of the predicted pixels on each example's masked patches only."""
    patches = patchify(images, tok.patch_size)
    keep, mask = random_keep(rng, patches.shape[0], patches.shape[1], obj.mask_ratio)
    err = jnp.mean(jnp.square(model(patches, keep) - mae_target(patches, obj.norm_pix)), axis=-1)  # [B, N]
    per_example = (err * mask).sum(axis=1) / mask.sum(axis=1)
    return per_example.mean(), per_example


def loss(model, obj: Objective, tok, schedule, images, labels, rng):
    """Mean loss of a batch of images [B, H, W, C] in [-1, 1] (labels [B]); returns (loss, per-example [B])."""
    if obj.kind == "mae":
        return mae_loss(model, obj, tok, images, rng)
    z0 = tok.image_latents(images)
    t_rng, eps_rng = jax.random.split(rng)
    label_rng = jax.random.fold_in(rng, 1)
    t = diffusion.sample_t(t_rng, z0.shape[0], schedule.num_steps)
    noise = jax.random.normal(eps_rng, z0.shape, jnp.float32)
    z_t = diffusion.add_noise(schedule, z0, t, noise)
    pred, v = split_output(obj, model(tokens_from_latents(obj, tok, z_t), t, network_labels(obj, labels, label_rng)))
    if obj.target == "original":
        x0 = patchify(images, tok.patch_size)
        err = tok.weighted_residual_sq(x0 - pred, obj.w_res) / x0.shape[-1]  # [B, N]
        weight = diffusion.loss_weight(schedule, t, "x0")
    else:
        latent_pred = pred if obj.output == "latent" else tok.encode(pred)
        want = noise if obj.target == "eps" else z0
        err = jnp.mean(jnp.square(latent_pred - want), axis=-1)
        weight = diffusion.loss_weight(schedule, t, "eps" if obj.target == "eps" else "x0")
    per_example = weight * err.mean(axis=1)
    if v is not None:
        gamma, sigma = diffusion.coefficients(schedule, t, z_t.ndim)
        z0_estimate = diffusion.eps_to_x0(z_t, pred, gamma, sigma) if obj.target == "eps" else pred
        per_example = per_example + learned_variance.vlb(schedule, z0, z_t, t, z0_estimate, v)
    return per_example.mean(), per_example
