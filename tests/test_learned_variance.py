"""DiT's learned variance: the hybrid loss's pieces against independent computations, and sampling with it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ldae_jax import diffusion, learned_variance, objectives
from ldae_jax.evaluate import sampler

DDPM = diffusion.get_schedule("ddpm_linear_beta", 1000)


def test_posterior_matches_the_ddpm_formulas_written_with_betas():
    betas = np.linspace(1e-4, 0.02, 1000)
    abar = np.cumprod(1 - betas)
    coef_z0, coef_zt, log_var, log_beta = (np.asarray(a, np.float64) for a in learned_variance.posterior(DDPM))
    for t in (1, 10, 500, 999):
        np.testing.assert_allclose(coef_z0[t], betas[t] * np.sqrt(abar[t - 1]) / (1 - abar[t]), rtol=1e-4)
        np.testing.assert_allclose(coef_zt[t], (1 - abar[t - 1]) * np.sqrt(1 - betas[t]) / (1 - abar[t]), rtol=1e-4)
        np.testing.assert_allclose(log_var[t], np.log(betas[t] * (1 - abar[t - 1]) / (1 - abar[t])), rtol=1e-4)
        np.testing.assert_allclose(log_beta[t], np.log(betas[t]), rtol=1e-4)
    assert log_var[0] == log_var[1]  # clipped: the t = 0 posterior variance is 0
    with pytest.raises(ValueError, match="DDPM schedule"):
        learned_variance.posterior(diffusion.get_schedule("linear_gamma_sq", 1000))


def test_gaussian_kl_against_monte_carlo():
    m1, lv1, m2, lv2 = 0.3, np.log(0.5), -0.2, np.log(2.0)
    x = np.random.default_rng(0).normal(m1, np.sqrt(0.5), 400_000)
    log_p = -0.5 * ((x - m1) ** 2 / 0.5 + lv1 + np.log(2 * np.pi))
    log_q = -0.5 * ((x - m2) ** 2 / 2.0 + lv2 + np.log(2 * np.pi))
    got = float(learned_variance.gaussian_kl(m1, lv1, m2, lv2))
    np.testing.assert_allclose(got, np.mean(log_p - log_q), rtol=0.02)
    assert float(learned_variance.gaussian_kl(m1, lv1, m1, lv1)) == 0.0


def test_discretized_likelihood_is_a_distribution_over_the_256_bins():
    grid = jnp.linspace(-1.0, 1.0, 256)
    for mean, log_scale in ((0.1, np.log(0.3)), (-0.9, np.log(0.05)), (0.5, np.log(3.0))):
        p = jnp.exp(learned_variance.discretized_gaussian_log_likelihood(grid, mean, log_scale))
        np.testing.assert_allclose(float(p.sum()), 1.0, atol=1e-3)


def test_vlb_trains_only_the_variance_and_vanishes_at_the_true_posterior():
    rng = np.random.default_rng(1)
    z0, noise = (jnp.asarray(rng.normal(size=(3, 4, 5)), jnp.float32) for _ in range(2))
    t = jnp.array([5, 200, 900])
    z_t = diffusion.add_noise(DDPM, z0, t, noise)
    v = -jnp.ones_like(z0)  # the posterior's own variance
    np.testing.assert_allclose(learned_variance.vlb(DDPM, z0, z_t, t, z0, v), 0.0, atol=1e-6)
    estimate = z0 + 0.1
    g_est, g_v = jax.grad(lambda e, v: learned_variance.vlb(DDPM, z0, z_t, t, e, v).sum(), argnums=(0, 1))(
        estimate, v)
    assert float(jnp.abs(g_est).max()) == 0.0  # the mean is trained by the simple loss only
    assert float(jnp.abs(g_v).max()) > 0.0
    at_zero = learned_variance.vlb(DDPM, z0, z_t, jnp.zeros(3, jnp.int32), z0, v)
    assert bool(jnp.all(at_zero > 0))  # the decoder term: -log2 P(z0) of a bin, positive


class SplitNet:
    """Predicts eps = 0 and variance channels v = c: the loss is then the simple loss plus the bound."""

    def __init__(self, v):
        self.v = v

    def __call__(self, x, t, y=None):
        return jnp.concatenate([jnp.zeros_like(x), jnp.full_like(x, self.v)], axis=-1)


def test_the_objective_adds_the_bound_to_the_simple_loss():
    from ldae_jax.tokenizers import pixel

    tok = pixel.identity(patch_size=2, channels=1)
    obj = objectives.Objective(input="latent", output="latent", target="eps", learn_sigma=True)
    assert obj.dims(tok.dim, tok.d) == (4, 8)
    images = jnp.asarray(np.random.default_rng(2).uniform(-1, 1, (4, 4, 4, 1)), jnp.float32)
    rng = jax.random.key(3)
    total, _ = objectives.loss(SplitNet(0.5), obj, tok, DDPM, images, None, rng)
    plain, _ = objectives.loss(lambda x, t, y=None: jnp.zeros_like(x),
                               objectives.Objective(input="latent", output="latent", target="eps"),
                               tok, DDPM, images, None, rng)
    assert float(total) > float(plain) > 0


def test_learned_posterior_variance_reproduces_ddpm_sampling():
    """v = -1 is the posterior variance, which is what DDPM (eta = 1) uses: the samples must agree."""
    def x0_fn(z, t):
        return 0.5 * z

    plain = sampler.sample(x0_fn, DDPM, (64, 3), jax.random.key(0), num_steps=20, eta=1.0)
    learned = sampler.sample(lambda z, t: (x0_fn(z, t), -jnp.ones_like(z)), DDPM, (64, 3), jax.random.key(0),
                             num_steps=20, eta=1.0)
    np.testing.assert_allclose(np.asarray(learned), np.asarray(plain), rtol=1e-4, atol=1e-5)
    wider = sampler.sample(lambda z, t: (x0_fn(z, t), jnp.ones_like(z)), DDPM, (64, 3), jax.random.key(0),
                           num_steps=20, eta=1.0)
    assert not np.allclose(np.asarray(wider), np.asarray(plain))


def test_learn_sigma_needs_latent_output_and_the_ddpm_schedule():
    from configs import quickstart
    from ldae_jax.errors import UserError
    from ldae_jax.tokenizers import registry

    c = quickstart.get_config("tiny")
    c.objective.update(input="latent", output="latent", target="eps", learn_sigma=True)
    with pytest.raises(UserError, match="learn_sigma"):
        objectives.check(c, registry.get("pca"))
    c.noise.schedule = "ddpm_linear_beta"
    objectives.check(c, registry.get("pca"))
    assert objectives.objective_from(c, 10).learn_sigma
