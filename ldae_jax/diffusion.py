"""Noise schedules, t sampling, loss weights and prediction-target conversions (docs/paper_notes.md 2.1-2.3).

Forward process z_t = gamma_t z_0 + sigma_t eps over T discrete steps, t uniform in {0, ..., T-1}. The paper
leaves the endpoint conventions open (not given; docs/paper_notes.md 2.2, whose items 1-4 the schedules below
cite); the ones chosen here are stated per schedule.
Knows nothing about models or tokenizers: it sees arrays [B, ...] and indices t [B].
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class Schedule:
    """gamma [T], sigma [T] float32; a pytree (arrays are leaves, name and flags static) usable inside jit.

    variance_preserving: gamma_t^2 + sigma_t^2 = 1 (True) or no input scaling, gamma_t = 1 (False); it picks the
    clean-data loss weight (`loss_weight`).
    """

    gamma: jax.Array
    sigma: jax.Array
    name: str
    variance_preserving: bool

    @property
    def num_steps(self) -> int:
        """T."""
        return self.gamma.shape[0]


jax.tree_util.register_dataclass(Schedule, data_fields=["gamma", "sigma"], meta_fields=["name", "variance_preserving"])


def _check_T(T: int) -> None:
    if not isinstance(T, (int, np.integer)) or T < 1:
        raise ValueError(f"number of steps T must be a positive int, got {T!r}")


def _make(gamma: np.ndarray, sigma: np.ndarray, name: str, variance_preserving: bool) -> Schedule:
    return Schedule(jnp.asarray(gamma, jnp.float32), jnp.asarray(sigma, jnp.float32), name, variance_preserving)


def ddpm_betas(T: int) -> np.ndarray:
    """beta_t [T] float64 of the DDPM schedule (exact: float32 gammas lose the small betas' digits)."""
    _check_T(T)
    scale = 1000.0 / T
    if scale * 0.02 >= 1.0:
        raise ValueError(f"ddpm_linear_beta needs T > 20 so that every beta is < 1, got T={T}")
    return np.linspace(scale * 1e-4, scale * 0.02, T, dtype=np.float64)


def ddpm_linear_beta(T: int = 1000) -> Schedule:
    """DiT/ADM default (notes 2.2 item 1): beta linear 1e-4 -> 0.02 (x 1000/T), gamma_t^2 = prod_{s<=t}(1 - beta_s)."""
    gamma_sq = np.cumprod(1.0 - ddpm_betas(T))
    return _make(np.sqrt(gamma_sq), np.sqrt(1.0 - gamma_sq), "ddpm_linear_beta", True)


def linear_gamma_sq(T: int = 1000) -> Schedule:
    """Table 1 row 5 onward (notes 2.2 item 2): gamma_t^2 = 1 - t/T, t = 0..T-1 (t = 0 clean), sigma^2 = 1 - gamma^2."""
    _check_T(T)
    gamma_sq = 1.0 - np.arange(T, dtype=np.float64) / T
    return _make(np.sqrt(gamma_sq), np.sqrt(1.0 - gamma_sq), "linear_gamma_sq", True)


def sigma_linear(T: int = 1000, sigma_max: float = math.sqrt(2.0)) -> Schedule:
    """No input scaling (notes 2.2 item 3, final l-DAE): gamma_t = 1, sigma_t = sigma_max t/T (t = 10 -> 0.0141)."""
    _check_T(T)
    if not sigma_max > 0:
        raise ValueError(f"sigma_max must be > 0, got {sigma_max}")
    sigma = sigma_max * np.arange(T, dtype=np.float64) / T
    return _make(np.ones(T), sigma, "sigma_linear", False)


def single_level(T: int = 1000, sigma: float = math.sqrt(1.0 / 3.0)) -> Schedule:
    """One noise level for every t (notes 2.2 item 4): gamma = 1, sigma constant (sqrt(1/3), the likely reading)."""
    _check_T(T)
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    return _make(np.ones(T), np.full(T, sigma), "single_level", False)


SCHEDULES: dict[str, Callable[..., Schedule]] = {
    "ddpm_linear_beta": ddpm_linear_beta,
    "linear_gamma_sq": linear_gamma_sq,
    "sigma_linear": sigma_linear,
    "single_level": single_level,
}


def get_schedule(name: str, T: int = 1000, **kwargs) -> Schedule:
    """Builds a schedule by name; kwargs go to the schedule function (e.g. sigma_max, sigma)."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown noise schedule {name!r}; valid names: {', '.join(SCHEDULES)}")
    return SCHEDULES[name](T, **kwargs)


def schedule_from_config(noise) -> Schedule:
    """The schedule a config's `noise` block names, with the extra field that schedule reads."""
    extra = {"sigma_linear": {"sigma_max": noise.sigma_max}, "single_level": {"sigma": noise.single_sigma}}
    return get_schedule(noise.schedule, noise.T, **extra.get(noise.schedule, {}))


def sample_t(rng: jax.Array, batch_size: int, T: int) -> jax.Array:
    """-> t int32 [B], uniform over {0, ..., T-1}."""
    _check_T(T)
    return jax.random.randint(rng, (batch_size,), 0, T, dtype=jnp.int32)


def coefficients(schedule: Schedule, t: jax.Array, ndim: int) -> tuple[jax.Array, jax.Array]:
    """t [B] (or any prefix shape) -> (gamma_t, sigma_t), each shaped [B, 1, ...] to broadcast over ndim dims."""
    t = jnp.asarray(t)
    if not jnp.issubdtype(t.dtype, jnp.integer):
        raise ValueError(f"t must be integer step indices, got dtype {t.dtype}")
    if t.ndim > ndim:
        raise ValueError(f"t has {t.ndim} dims but the data only {ndim}")
    shape = t.shape + (1,) * (ndim - t.ndim)
    return schedule.gamma[t].reshape(shape), schedule.sigma[t].reshape(shape)


def _check_prefix(t, x, what: str) -> None:
    t_shape = tuple(jnp.shape(t))
    if tuple(x.shape[: len(t_shape)]) != t_shape:
        raise ValueError(f"t has shape {t_shape}, which is not a prefix of {what} shape {tuple(x.shape)}")


def add_noise(schedule: Schedule, z0: jax.Array, t: jax.Array, noise: jax.Array) -> jax.Array:
    """z0 [B, ...], t [B], noise [B, ...] -> z_t = gamma_t z0 + sigma_t noise  (docs/paper_notes.md 2.1)."""
    if z0.shape != noise.shape:
        raise ValueError(f"z0 {tuple(z0.shape)} and noise {tuple(noise.shape)} must have the same shape")
    _check_prefix(t, z0, "z0")
    gamma, sigma = coefficients(schedule, t, z0.ndim)
    return gamma * z0 + sigma * noise


TARGETS = ("eps", "x0")


def loss_weight(schedule: Schedule, t: jax.Array, target: str) -> jax.Array:
    """t [B] -> lambda_t [B] float32 for the prediction target (docs/paper_notes.md 2.3).

    "eps" (noise prediction, Eq. 2): 1. "x0" (clean data: z_0 in latent space or the image x_0, Eq. 3/4):
    gamma_t^2 for variance-preserving schedules (Table 3 step 1), and 1/(1 + sigma_t^2) without input scaling
    (Table 3 step 2 onward: the gamma^2 of the variance-preserving rescaling z_t / sqrt(1 + sigma_t^2)).
    """
    if target not in TARGETS:
        raise ValueError(f"unknown prediction target {target!r}; valid targets: {', '.join(TARGETS)}")
    t = jnp.asarray(t)
    if target == "eps":
        return jnp.ones(t.shape, jnp.float32)
    gamma, sigma = coefficients(schedule, t, t.ndim)
    if schedule.variance_preserving:
        return jnp.square(gamma)
    return 1.0 / (1.0 + jnp.square(sigma))


def eps_to_x0(z_t: jax.Array, eps: jax.Array, gamma_t: jax.Array, sigma_t: jax.Array) -> jax.Array:
    """x0 = (z_t - sigma_t eps) / gamma_t; gamma_t, sigma_t broadcastable (see `coefficients`). gamma_t > 0 always."""
    return (z_t - sigma_t * eps) / gamma_t


def x0_to_eps(z_t: jax.Array, x0: jax.Array, gamma_t: jax.Array, sigma_t: jax.Array) -> jax.Array:
    """eps = (z_t - gamma_t x0) / sigma_t. Not identifiable where sigma_t = 0 (t = 0 of linear_gamma_sq and
    sigma_linear): the result is non-finite there, deliberately not masked."""
    return (z_t - gamma_t * x0) / sigma_t
