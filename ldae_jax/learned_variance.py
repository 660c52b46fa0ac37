"""DiT's learned variance (Nichol & Dhariwal's hybrid loss; docs/paper_notes.md 1.8 [EXT]: DiT uses `learn_sigma=True`).

The network outputs twice the channels: the prediction and v in [-1, 1] (not clipped; the paper's DiT does not),
which sets the reverse step's log-variance between the two natural bounds,

    log var_t = (v + 1)/2 log beta_t + (1 - v)/2 log beta~_t,   beta~_t = beta_t (1 - gamma_{t-1}^2) / (1 - gamma_t^2),

beta~_t being the true posterior variance (clipped at t = 0 to its t = 1 value). v is trained by the variational
bound term only: the KL between the true posterior q(z_{t-1} | z_t, z0) and the model's Gaussian, whose mean uses
the network's z0 estimate with its gradient stopped (so the mean is still trained by the simple loss alone), and at
t = 0 the discretised Gaussian likelihood of z0 (bins of 2/255, as DiT keeps even for latents). Both in bits per
dimension, averaged over the dimensions of a token and over tokens, and added with weight 1 to the simple loss.
Defined for the DDPM schedule only (the others have beta_0 = 0 or no input scaling, where the bounds vanish).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ldae_jax import diffusion

_BIN = 1.0 / 255.0  # half the width of one 8-bit bin on [-1, 1]


def check_schedule(schedule: diffusion.Schedule) -> None:
    if schedule.name != "ddpm_linear_beta":
        raise ValueError(f"learned variance is defined for the DDPM schedule (ddpm_linear_beta), got {schedule.name}")


def posterior(schedule: diffusion.Schedule):
    """Per-step arrays [T] of q(z_{t-1} | z_t, z0): (coef_z0, coef_zt, clipped log variance, log beta_t)."""
    check_schedule(schedule)
    beta = diffusion.ddpm_betas(schedule.num_steps)
    abar = np.cumprod(1.0 - beta)
    abar_prev = np.concatenate([[1.0], abar[:-1]])
    var = beta * (1.0 - abar_prev) / (1.0 - abar)
    log_var = np.log(np.concatenate([[var[1]], var[1:]]))
    coef_z0 = beta * np.sqrt(abar_prev) / (1.0 - abar)
    coef_zt = (1.0 - abar_prev) * np.sqrt(1.0 - beta) / (1.0 - abar)
    return tuple(jnp.asarray(a, jnp.float32) for a in (coef_z0, coef_zt, log_var, np.log(beta)))


def model_log_variance(v: jax.Array, log_min: jax.Array, log_max: jax.Array) -> jax.Array:
    """The interpolation of the log-variance by the network's v (v = -1: the posterior's, v = 1: beta's)."""
    frac = (v + 1.0) / 2.0
    return frac * log_max + (1.0 - frac) * log_min


def gaussian_kl(mean1, log_var1, mean2, log_var2) -> jax.Array:
    """KL(N(mean1, e^log_var1) || N(mean2, e^log_var2)), elementwise, in nats."""
    return 0.5 * (-1.0 + log_var2 - log_var1 + jnp.exp(log_var1 - log_var2)
                  + jnp.square(mean1 - mean2) * jnp.exp(-log_var2))


def discretized_gaussian_log_likelihood(x, mean, log_scale) -> jax.Array:
    """log P(x) of x on the 8-bit grid over [-1, 1] under N(mean, e^(2 log_scale)); the end bins extend to +-inf."""
    norm = jax.scipy.stats.norm
    inv = jnp.exp(-log_scale)
    upper, lower = (x - mean + _BIN) * inv, (x - mean - _BIN) * inv
    below_upper = norm.logcdf(upper)  # the first bin: everything below its upper edge
    above_lower = norm.logcdf(-lower)  # the last bin: everything above its lower edge
    middle = jnp.log(jnp.maximum(norm.cdf(upper) - norm.cdf(lower), 1e-12))
    return jnp.where(x < -0.999, below_upper, jnp.where(x > 0.999, above_lower, middle))


def vlb(schedule: diffusion.Schedule, z0, z_t, t, z0_estimate, v) -> jax.Array:
    """The variational-bound term [B] (bits per dimension) for z0, z_t, z0_estimate, v [B, N, d] at steps t [B]."""
    coef_z0, coef_zt, log_min, log_beta = (a[t][:, None, None] for a in posterior(schedule))
    true_mean = coef_z0 * z0 + coef_zt * z_t
    model_mean = coef_z0 * jax.lax.stop_gradient(z0_estimate) + coef_zt * z_t
    log_var = model_log_variance(v, log_min, log_beta)
    kl = gaussian_kl(true_mean, log_min, model_mean, log_var)
    nll = -discretized_gaussian_log_likelihood(z0, model_mean, 0.5 * log_var)
    bits = jnp.where((t == 0)[:, None, None], nll, kl) / np.log(2.0)
    return bits.mean(axis=(1, 2))


def ddpm_step_log_variance(gamma_t: float, sigma_t: float, gamma_s: float, sigma_s: float, v) -> jax.Array:
    """The learned log-variance of a sampling step t -> s (any spacing: beta and beta~ of the respaced step)."""
    beta = 1.0 - (gamma_t / gamma_s) ** 2
    posterior_var = beta * sigma_s**2 / sigma_t**2
    return model_log_variance(v, np.log(posterior_var), np.log(beta))
