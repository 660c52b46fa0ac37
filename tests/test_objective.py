"""The l-DAE loss against an explicit full-basis computation (PAPER.md Eq. 4)."""

import jax
import jax.numpy as jnp
import numpy as np

from ldae_jax import diffusion, objectives
from ldae_jax.tokenizers import pca as pca_lib
from ldae_jax.tokenizers.patches import patchify


class EchoNet:
    """A stand-in network: returns a fixed linear map of its input, so the loss can be recomputed by hand."""

    def __init__(self, scale):
        self.scale = scale

    def __call__(self, x, t):
        return self.scale * x


def fitted_pca(d, whiten, rng):
    images = rng.uniform(-1, 1, size=(64, 8, 8, 3))
    acc = pca_lib.CovarianceAccumulator(4 * 4 * 3)
    acc.update(np.asarray(patchify(images, 4)).reshape(-1, 48))
    return pca_lib.fit(acc, patch_size=4, channels=3, d=d, whiten=whiten)


def explicit_loss(pca, schedule, images, rng, w_res, net):
    """Eq. 4 with the full D x D basis V, written out in numpy."""
    x0 = np.asarray(patchify(images, pca.patch_size), np.float64)
    t_rng, eps_rng = jax.random.split(rng)
    t = np.asarray(diffusion.sample_t(t_rng, x0.shape[0], schedule.num_steps))
    eps = np.asarray(jax.random.normal(eps_rng, x0.shape[:-1] + (pca.d,), jnp.float32), np.float64)
    V, mean = np.asarray(pca.components, np.float64), np.asarray(pca.mean, np.float64)
    scale = np.sqrt(np.asarray(pca.eigenvalues[: pca.d], np.float64) + pca_lib.WHITEN_EPS_REL * pca.eigenvalues[0]) if pca.whiten else 1.0
    gamma, sigma = np.asarray(schedule.gamma)[t], np.asarray(schedule.sigma)[t]
    z0 = (x0 - mean) @ V[: pca.d].T / scale
    zt = gamma[:, None, None] * z0 + sigma[:, None, None] * eps
    xt = (zt * scale) @ V[: pca.d] + mean
    r = (x0 - np.asarray(net(xt, t))) @ V.T  # coordinates in the full basis
    w = np.where(np.arange(x0.shape[-1]) < pca.d, 1.0, w_res)
    per_patch = (w * r**2).sum(-1) / x0.shape[-1]
    lam = 1.0 / (1.0 + sigma**2) if not schedule.variance_preserving else gamma**2
    return float(np.mean(lam * per_patch.mean(axis=1)))


def test_ldae_loss_equals_full_basis_formula():
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, size=(6, 8, 8, 3)).astype(np.float32)
    for whiten in (False, True):
        for name in ("sigma_linear", "linear_gamma_sq", "single_level"):
            pca = fitted_pca(5, whiten, rng)
            schedule = diffusion.get_schedule(name, 1000)
            net = EchoNet(0.7)
            loss, per_example = objectives.ldae_loss(net, pca, schedule, images, jax.random.key(3), w_res=0.1)
            want = explicit_loss(pca, schedule, images, jax.random.key(3), 0.1, net)
            np.testing.assert_allclose(float(loss), want, rtol=2e-4)
            assert per_example.shape == (6,)


def test_residual_weight_matters_only_outside_the_subspace():
    rng = np.random.default_rng(1)
    images = rng.uniform(-1, 1, size=(4, 8, 8, 3)).astype(np.float32)
    pca = fitted_pca(48, False, rng)  # d = D: no residual subspace, so w_res cannot matter
    schedule = diffusion.get_schedule("sigma_linear", 1000)
    a, _ = objectives.ldae_loss(EchoNet(0.5), pca, schedule, images, jax.random.key(0), w_res=0.1)
    b, _ = objectives.ldae_loss(EchoNet(0.5), pca, schedule, images, jax.random.key(0), w_res=1.0)
    np.testing.assert_allclose(float(a), float(b), rtol=1e-5)
    pca = fitted_pca(8, False, rng)
    a, _ = objectives.ldae_loss(EchoNet(0.5), pca, schedule, images, jax.random.key(0), w_res=0.1)
    b, _ = objectives.ldae_loss(EchoNet(0.5), pca, schedule, images, jax.random.key(0), w_res=1.0)
    assert float(b) > float(a)
