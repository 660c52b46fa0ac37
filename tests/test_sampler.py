"""The sampler's update on a data distribution whose ideal denoiser is known in closed form, and the Frechet
distance on distributions whose distance is known."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ldae_jax import diffusion, objectives
from ldae_jax.evaluate import fid, sampler


def gaussian_x0_fn(schedule, mean, std):
    """E[z0 | z_t] for z0 ~ N(mean, std^2) per coordinate: the best possible denoiser of that data."""
    gamma, sigma = schedule.gamma, schedule.sigma

    def fn(z_t, t):
        g, s = gamma[t][:, None], sigma[t][:, None]
        return mean + g * std**2 / (g**2 * std**2 + s**2) * (z_t - g * mean)

    return fn


@pytest.mark.parametrize("name,eta", [("linear_gamma_sq", 0.0), ("linear_gamma_sq", 1.0),
                                      ("ddpm_linear_beta", 0.0), ("ddpm_linear_beta", 1.0)])
def test_sampling_with_the_ideal_denoiser_recovers_the_data_distribution(name, eta):
    """With the exact denoiser the only error is the discretisation: it shrinks with more steps, to ~1% at 1000."""
    schedule = diffusion.get_schedule(name, 1000)
    mean, std = 0.7, 0.3
    errors = []
    for steps in (50, 1000):
        z = np.asarray(sampler.sample(gaussian_x0_fn(schedule, mean, std), schedule, (20000, 1), jax.random.key(0),
                                      num_steps=steps, eta=eta))
        errors.append(abs(z.std() - std))
        assert abs(z.mean() - mean) < 0.01
    assert errors[1] < 0.01 and errors[1] < errors[0], errors


def test_ddim_is_deterministic_and_ddpm_is_not():
    schedule = diffusion.get_schedule("linear_gamma_sq", 1000)
    fn = gaussian_x0_fn(schedule, 0.0, 1.0)
    a = sampler.sample(fn, schedule, (4, 3), jax.random.key(1), num_steps=10, eta=0.0)
    b = sampler.sample(fn, schedule, (4, 3), jax.random.key(1), num_steps=10, eta=0.0)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(ValueError, match="eta must be in"):
        sampler.sample(fn, schedule, (4, 3), jax.random.key(1), eta=2.0)
    assert list(sampler.timesteps(4, 1000)) == [999, 666, 333, 0]


class LabelNet:
    """Output depends on the label: class c adds c, the null label (10) adds nothing."""

    def __call__(self, x, t, y=None):
        return x + jnp.where(y == 10, 0.0, y.astype(jnp.float32))[:, None, None]


def test_classifier_free_guidance_combines_conditional_and_unconditional():
    obj = objectives.Objective(input="latent", output="latent", target="clean", num_classes=10)
    schedule = diffusion.get_schedule("linear_gamma_sq", 1000)
    z = jnp.zeros((2, 3, 4))
    fn = sampler.guided_x0_fn(LabelNet(), obj, None, schedule, labels=jnp.array([2, 5]), guidance=1.5)
    out = np.asarray(fn(z, jnp.array([10, 10])))
    np.testing.assert_allclose(out[0], 2.5 * 2, rtol=1e-6)  # (1 + w) * 2 - w * 0
    np.testing.assert_allclose(out[1], 2.5 * 5, rtol=1e-6)


def test_frechet_distance_identical_sets_and_shifted_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20000, 8))
    assert abs(fid.fid_from_features(a, a)) < 1e-6
    shift = np.full(8, 0.5)
    b = rng.normal(size=(20000, 8)) * 2.0 + shift
    # closed form for N(0, I) vs N(shift, 4 I): |shift|^2 + k (1 + 4 - 2 * 2)
    want = np.sum(shift**2) + 8 * (1 + 4 - 4)
    assert fid.fid_from_features(a, b) == pytest.approx(want, rel=0.03)
    cov = np.array([[2.0, 0.3], [0.3, 1.0]])
    assert fid.frechet_distance(np.zeros(2), cov, np.zeros(2), cov) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="shapes differ"):
        fid.frechet_distance(np.zeros(2), cov, np.zeros(3), np.eye(3))
