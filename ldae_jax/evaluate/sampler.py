"""Generation for the ladder's FID column: DDIM / DDPM ancestral sampling in the tokenizer's latent space.

One update covers every schedule of `diffusion` (variance preserving or not): from step t to an earlier step s,
with the network's clean-latent estimate x0 and the implied noise eps = (z_t - gamma_t x0) / sigma_t,

    z_s = gamma_s x0 + sqrt(sigma_s^2 - c^2) eps + c * noise,
    c^2 = eta^2 * sigma_{t|s}^2 sigma_s^2 / sigma_t^2,   sigma_{t|s}^2 = sigma_t^2 - (gamma_t / gamma_s)^2 sigma_s^2,

which is DDIM for eta = 0 and the DDPM posterior q(z_s | z_t, x0) for eta = 1 (Song et al., 2021, Eq. 12-16,
written with gamma, sigma instead of alpha-bar). Sampling starts from z = sigma_T * noise (for variance-preserving
schedules gamma_T ~ 0, so this is the prior; without input scaling it ignores the data scale, a known
approximation) and ends with the clean estimate at the last step. Class-conditional networks take a guidance
scale w: x0 = (1 + w) x0(y) - w x0(null) (classifier-free guidance, as DiT). A network with learned variance
(`learned_variance`) sets c^2 itself in DDPM sampling (eta = 1): the step's log-variance interpolated by its v
between the respaced beta and posterior variance, around the posterior mean; DDIM (eta = 0) ignores v.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ldae_jax import diffusion, learned_variance, objectives


def clean_latent(model, obj: objectives.Objective, tok, schedule, z_t, t, labels=None):
    """The network's estimate of z0 [B, N, d] from z_t [B, N, d] at steps t [B], whatever its target, and its
    variance output v (None without learned variance)."""
    pred, v = objectives.split_output(obj, model(objectives.tokens_from_latents(obj, tok, z_t), t, labels))
    if obj.target == "eps":
        gamma, sigma = diffusion.coefficients(schedule, t, z_t.ndim)
        return diffusion.eps_to_x0(z_t, pred, gamma, sigma), v
    return (pred if obj.output == "latent" else tok.encode(pred)), v


def timesteps(num_steps: int, T: int) -> np.ndarray:
    """`num_steps` decreasing step indices from T-1 to 0, evenly spaced (DDIM's 'uniform' spacing)."""
    if not 1 <= num_steps <= T:
        raise ValueError(f"num_steps must be in [1, T={T}], got {num_steps}")
    return np.unique(np.round(np.linspace(0, T - 1, num_steps)).astype(np.int32))[::-1]


def sample(x0_fn, schedule, shape, key, *, num_steps: int = 50, eta: float = 0.0) -> jax.Array:
    """Latents [*shape] sampled with `x0_fn(z_t, t [B]) -> z0 estimate` (or (z0 estimate, v) for a network with
    learned variance); eta 0 = DDIM, 1 = DDPM."""
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must be in [0, 1], got {eta}")
    steps = timesteps(num_steps, schedule.num_steps)
    gamma, sigma = np.asarray(schedule.gamma, np.float64), np.asarray(schedule.sigma, np.float64)
    key, first = jax.random.split(key)
    z = jnp.float32(sigma[steps[0]]) * jax.random.normal(first, shape)
    batch = shape[0]
    for i, t in enumerate(steps):
        x0 = x0_fn(z, jnp.full((batch,), t, jnp.int32))
        x0, v = x0 if isinstance(x0, tuple) else (x0, None)
        if i == len(steps) - 1:
            return x0
        s = steps[i + 1]
        key, k = jax.random.split(key)
        if v is not None and eta == 1.0:  # the posterior mean, with the network's variance
            z = _posterior_mean(gamma, sigma, t, s, x0, z) + jnp.exp(
                0.5 * learned_variance.ddpm_step_log_variance(gamma[t], sigma[t], gamma[s], sigma[s], v)
            ) * jax.random.normal(k, shape)
            continue
        eps = (z - gamma[t] * x0) / sigma[t]
        var_ts = max(sigma[t] ** 2 - (gamma[t] / gamma[s]) ** 2 * sigma[s] ** 2, 0.0)
        c = eta * np.sqrt(var_ts * sigma[s] ** 2 / sigma[t] ** 2)
        z = gamma[s] * x0 + np.sqrt(max(sigma[s] ** 2 - c**2, 0.0)) * eps + c * jax.random.normal(k, shape)
    return z


def _posterior_mean(gamma, sigma, t, s, x0, z_t):
    """E[z_s | z_t, x0] for a variance-preserving schedule (the DDPM posterior of the respaced step)."""
    beta = 1.0 - (gamma[t] / gamma[s]) ** 2
    return gamma[s] * beta / sigma[t] ** 2 * x0 + (gamma[t] / gamma[s]) * sigma[s] ** 2 / sigma[t] ** 2 * z_t


def guided_clean_latent(model, obj: objectives.Objective, tok, schedule, z_t, t, labels=None,
                        guidance: float = 0.0):
    """The z0 estimate (and v, if learned) for `sample`: unconditional, or conditional on `labels` with guidance
    scale w (the variance stays the conditional one, as in DiT)."""
    if obj.num_classes and labels is None:
        raise ValueError("a class-conditional network needs labels to sample (or the null label num_classes)")
    if not obj.num_classes:
        x0, v = clean_latent(model, obj, tok, schedule, z_t, t)
        return x0 if v is None else (x0, v)
    cond, v = clean_latent(model, obj, tok, schedule, z_t, t, labels)
    if guidance != 0.0:
        uncond, _ = clean_latent(model, obj, tok, schedule, z_t, t, objectives.null_labels(obj, z_t.shape[0]))
        cond = (1.0 + guidance) * cond - guidance * uncond
    return cond if v is None else (cond, v)


def guided_x0_fn(model, obj: objectives.Objective, tok, schedule, labels=None, guidance: float = 0.0):
    """x0_fn for `sample` (jitted, the model and labels closed over): see `guided_clean_latent`."""
    if obj.num_classes and labels is None:
        raise ValueError("a class-conditional network needs labels to sample (or the null label num_classes)")
    return jax.jit(lambda z_t, t: guided_clean_latent(model, obj, tok, schedule, z_t, t, labels, guidance))
