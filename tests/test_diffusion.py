"""Noise schedules, t sampling, loss weights and target conversions against closed forms (docs/paper_notes.md
2.2-2.3)."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ldae_jax import diffusion

T = 1000
ALL = ("ddpm_linear_beta", "linear_gamma_sq", "sigma_linear", "single_level")


def _np(x):
    return np.asarray(x, np.float64)


@pytest.mark.parametrize("t,gamma_sq", [(100, 0.895), (200, 0.656), (300, 0.394), (500, 0.078), (700, 0.0069)])
def test_ddpm_linear_beta_closed_form(t, gamma_sq):
    s = diffusion.ddpm_linear_beta(T)
    assert _np(s.gamma[t]) ** 2 == pytest.approx(gamma_sq, abs=6e-4)
    betas = np.linspace(1e-4, 0.02, T)
    assert _np(s.gamma[t]) ** 2 == pytest.approx(np.prod(1 - betas[: t + 1]), rel=1e-5)


def test_ddpm_linear_beta_endpoints_and_noisy_excess():
    g2 = _np(diffusion.ddpm_linear_beta(T).gamma) ** 2
    assert g2[0] == pytest.approx(1 - 1e-4, rel=1e-6)
    assert g2[999] == pytest.approx(4.04e-5, rel=1e-2)
    assert np.mean(g2 < 0.5) == pytest.approx(0.74, abs=0.005)  # docs/paper_notes.md 2.2: 74% and 52.5% of the steps
    assert np.mean(g2 < 0.1) == pytest.approx(0.525, abs=0.005)
    # The 1000/T rescaling keeps the end point close for another T.
    assert _np(diffusion.ddpm_linear_beta(250).gamma[-1]) ** 2 == pytest.approx(g2[-1], rel=0.5)
    with pytest.raises(ValueError, match="T > 20"):
        diffusion.ddpm_linear_beta(20)


@pytest.mark.parametrize("t", [0, 1, 10, 500, 999])
def test_linear_gamma_sq_closed_form(t):
    s = diffusion.linear_gamma_sq(T)
    assert _np(s.gamma[t]) ** 2 == pytest.approx(1 - t / T, abs=1e-6)
    assert _np(s.sigma[t]) ** 2 == pytest.approx(t / T, abs=1e-6)


@pytest.mark.parametrize("t", [0, 10, 500, 999])
def test_sigma_linear_closed_form(t):
    s = diffusion.sigma_linear(T)
    assert _np(s.gamma[t]) == 1.0
    assert _np(s.sigma[t]) == pytest.approx(math.sqrt(2) * t / T, rel=1e-6, abs=1e-9)
    assert _np(diffusion.sigma_linear(T, sigma_max=1.0).sigma[t]) == pytest.approx(t / T, abs=1e-7)


def test_sigma_linear_probe_step():
    assert _np(diffusion.sigma_linear(T).sigma[10]) == pytest.approx(0.01414, abs=1e-5)


def test_single_level():
    s = diffusion.single_level(T)
    np.testing.assert_allclose(_np(s.sigma), math.sqrt(1 / 3), rtol=1e-6)
    np.testing.assert_array_equal(_np(s.gamma), 1.0)
    np.testing.assert_allclose(_np(diffusion.single_level(T, sigma=1 / 3).sigma), 1 / 3, rtol=1e-6)


@pytest.mark.parametrize("name", ALL)
def test_schedule_shapes_and_relations(name):
    s = diffusion.get_schedule(name, T)
    assert s.name == name and s.num_steps == T
    assert s.gamma.shape == s.sigma.shape == (T,)
    assert s.gamma.dtype == s.sigma.dtype == jnp.float32
    g, sg = _np(s.gamma), _np(s.sigma)
    assert np.all(g > 0) and np.all(sg >= 0)
    if s.variance_preserving:
        np.testing.assert_allclose(g**2 + sg**2, 1.0, atol=1e-6)
        assert np.all(np.diff(g) < 0)  # monotonically noisier
    else:
        np.testing.assert_array_equal(g, 1.0)
    assert np.all(np.diff(sg) >= 0)


def test_get_schedule_unknown_name_lists_valid():
    with pytest.raises(ValueError, match="valid names: ddpm_linear_beta, linear_gamma_sq, sigma_linear, single_level"):
        diffusion.get_schedule("cosine", T)
    s = diffusion.get_schedule("sigma_linear", 100, sigma_max=1.0)
    assert _np(s.sigma[50]) == pytest.approx(0.5)


def test_schedule_from_config_reads_the_field_its_schedule_uses():
    from ldae_jax import schema

    noise = schema.defaults().noise
    noise.T, noise.sigma_max, noise.single_sigma = 100, 1.0, 0.25
    noise.schedule = "sigma_linear"
    assert _np(diffusion.schedule_from_config(noise).sigma[50]) == pytest.approx(0.5)
    noise.schedule = "single_level"
    np.testing.assert_allclose(_np(diffusion.schedule_from_config(noise).sigma), 0.25, rtol=1e-6)


def test_sample_t_range_and_uniformity():
    t = diffusion.sample_t(jax.random.PRNGKey(0), 100_000, T)
    assert t.shape == (100_000,) and t.dtype == jnp.int32
    t = np.asarray(t)
    assert t.min() == 0 and t.max() == T - 1
    counts = np.bincount(t // 100, minlength=10)  # 10 bins of 10,000 expected each, std ~95
    assert np.all(np.abs(counts - 10_000) < 500)


def test_add_noise_broadcasts_over_trailing_dims():
    s = diffusion.ddpm_linear_beta(T)
    k0, k1 = jax.random.split(jax.random.PRNGKey(1))
    z0 = jax.random.normal(k0, (3, 4, 5))
    eps = jax.random.normal(k1, (3, 4, 5))
    t = jnp.array([0, 100, 999])
    zt = diffusion.add_noise(s, z0, t, eps)
    for i in range(3):
        np.testing.assert_allclose(zt[i], s.gamma[t[i]] * z0[i] + s.sigma[t[i]] * eps[i], rtol=1e-6, atol=1e-6)
    jitted = jax.jit(diffusion.add_noise)(s, z0, t, eps)
    np.testing.assert_allclose(jitted, zt, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="not a prefix"):
        diffusion.add_noise(s, z0, jnp.array([1, 2]), eps)
    with pytest.raises(ValueError, match="same shape"):
        diffusion.add_noise(s, z0, t, eps[:, :2])


def test_loss_weights():
    t = jnp.array([0, 10, 500, 999])
    for name in ALL:
        s = diffusion.get_schedule(name, T)
        np.testing.assert_array_equal(diffusion.loss_weight(s, t, "eps"), 1.0)
    vp = diffusion.linear_gamma_sq(T)
    np.testing.assert_allclose(diffusion.loss_weight(vp, t, "x0"), 1 - np.asarray(t) / T, atol=1e-6)
    ddpm = diffusion.ddpm_linear_beta(T)
    np.testing.assert_allclose(diffusion.loss_weight(ddpm, t, "x0"), _np(ddpm.gamma[t]) ** 2, rtol=1e-6)
    sl = diffusion.sigma_linear(T)
    sigma = math.sqrt(2) * np.asarray(t) / T
    np.testing.assert_allclose(diffusion.loss_weight(sl, t, "x0"), 1 / (1 + sigma**2), rtol=1e-6)
    single = diffusion.single_level(T)
    np.testing.assert_allclose(diffusion.loss_weight(single, t, "x0"), 0.75, rtol=1e-6)  # 1 / (1 + 1/3)
    with pytest.raises(ValueError, match="valid targets: eps, x0"):
        diffusion.loss_weight(sl, t, "v")


@pytest.mark.parametrize("name", ALL)
def test_eps_x0_round_trip(name):
    s = diffusion.get_schedule(name, T)
    k0, k1 = jax.random.split(jax.random.PRNGKey(2))
    x0 = jax.random.normal(k0, (4, 6))
    eps = jax.random.normal(k1, (4, 6))
    t = jnp.array([1, 10, 500, 999])  # t = 0 has sigma = 0 for two schedules: eps is not identifiable there
    zt = diffusion.add_noise(s, x0, t, eps)
    gamma, sigma = diffusion.coefficients(s, t, zt.ndim)
    np.testing.assert_allclose(diffusion.eps_to_x0(zt, eps, gamma, sigma), x0, atol=1e-4)
    np.testing.assert_allclose(diffusion.x0_to_eps(zt, x0, gamma, sigma), eps, atol=2e-3, rtol=1e-3)
