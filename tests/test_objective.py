"""The l-DAE loss against an explicit full-basis computation (docs/paper_notes.md Eq. 4)."""

import jax
import jax.numpy as jnp
import numpy as np

from ldae_jax import diffusion, objectives
from ldae_jax.objectives import Objective
from ldae_jax.tokenizers import pca as pca_lib
from ldae_jax.tokenizers.patches import patchify
from helpers import set_fields


class EchoNet:
    """A stand-in network: returns a fixed linear map of its input, so the loss can be recomputed by hand."""

    def __init__(self, scale):
        self.scale = scale

    def __call__(self, x, t, y=None):
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
            loss, per_example = objectives.loss(net, objectives.Objective(), pca, schedule, images, None,
                                                 jax.random.key(3))
            want = explicit_loss(pca, schedule, images, jax.random.key(3), 0.1, net)
            np.testing.assert_allclose(float(loss), want, rtol=2e-4)
            assert per_example.shape == (6,)


def test_residual_weight_matters_only_outside_the_subspace():
    rng = np.random.default_rng(1)
    images = rng.uniform(-1, 1, size=(4, 8, 8, 3)).astype(np.float32)
    pca = fitted_pca(48, False, rng)  # d = D: no residual subspace, so w_res cannot matter
    schedule = diffusion.get_schedule("sigma_linear", 1000)
    a, _ = objectives.loss(EchoNet(0.5), Objective(w_res=0.1), pca, schedule, images, None, jax.random.key(0))
    b, _ = objectives.loss(EchoNet(0.5), Objective(w_res=1.0), pca, schedule, images, None, jax.random.key(0))
    np.testing.assert_allclose(float(a), float(b), rtol=1e-5)
    pca = fitted_pca(8, False, rng)
    a, _ = objectives.loss(EchoNet(0.5), Objective(w_res=0.1), pca, schedule, images, None, jax.random.key(0))
    b, _ = objectives.loss(EchoNet(0.5), Objective(w_res=1.0), pca, schedule, images, None, jax.random.key(0))
    assert float(b) > float(a)


class LinearNet:
    """A stand-in network mapping in_dim -> out_dim tokens by a fixed matrix (any input/output space)."""

    def __init__(self, matrix):
        self.matrix = jnp.asarray(matrix)

    def __call__(self, x, t, y=None):
        return x @ self.matrix


def explicit_ladder_loss(obj, tok, schedule, images, rng, matrix):
    """The Table 3 losses written out in numpy: z_t, the network's input and output spaces, the target."""
    x0 = np.asarray(patchify(images, tok.patch_size), np.float64)
    t_rng, eps_rng = jax.random.split(rng)
    t = np.asarray(diffusion.sample_t(t_rng, x0.shape[0], schedule.num_steps))
    eps = np.asarray(jax.random.normal(eps_rng, x0.shape[:-1] + (tok.d,), jnp.float32), np.float64)
    V, mean = np.asarray(tok.components, np.float64)[: tok.d], np.asarray(tok.mean, np.float64)
    gamma, sigma = np.asarray(schedule.gamma)[t][:, None, None], np.asarray(schedule.sigma)[t][:, None, None]
    z0 = (x0 - mean) @ V.T
    zt = gamma * z0 + sigma * eps
    inp = zt if obj.input == "latent" else zt @ V + mean
    out = inp @ np.asarray(matrix, np.float64)
    latent_out = out if obj.output == "latent" else (out - mean) @ V.T
    target = eps if obj.target == "eps" else z0
    err = np.mean((latent_out - target) ** 2, axis=-1).mean(axis=1)
    if obj.target == "eps":
        lam = np.ones_like(err)
    else:
        lam = (gamma**2 if schedule.variance_preserving else 1 / (1 + sigma**2))[:, 0, 0]
    return float(np.mean(lam * err))


TABLE3_STEPS = [  # (input, output, target, schedule): steps 0-4 of Table 3
    ("latent", "latent", "eps", "linear_gamma_sq"),
    ("latent", "latent", "clean", "linear_gamma_sq"),
    ("latent", "latent", "clean", "sigma_linear"),
    ("image", "latent", "clean", "sigma_linear"),
    ("image", "image", "clean", "sigma_linear"),
]


def test_table3_losses_equal_the_written_out_formulas():
    rng = np.random.default_rng(2)
    images = rng.uniform(-1, 1, size=(5, 8, 8, 3)).astype(np.float32)
    pca = fitted_pca(6, False, rng)
    for inp, out, target, name in TABLE3_STEPS:
        obj = Objective(input=inp, output=out, target=target)
        din, dout = obj.dims(pca.dim, pca.d)
        matrix = rng.normal(size=(din, dout)) / np.sqrt(din)
        schedule = diffusion.get_schedule(name, 1000)
        got, _ = objectives.loss(LinearNet(matrix.astype(np.float32)), obj, pca, schedule, images, None,
                                 jax.random.key(7))
        want = explicit_ladder_loss(obj, pca, schedule, images, jax.random.key(7), matrix)
        np.testing.assert_allclose(float(got), want, rtol=2e-4, err_msg=str((inp, out, target, name)))


def test_meaningless_objectives_are_user_errors():
    import pytest

    from configs import quickstart
    from ldae_jax import config_lib
    from ldae_jax.errors import UserError
    from ldae_jax.tokenizers import registry

    def check(**fields):
        c = set_fields(quickstart.get_config("tiny"), **fields)
        config_lib.check_fields(c)
        objectives.check(c, registry.get(c.tokenizer.kind))
        return objectives.objective_from(c, 10)

    assert check(objective__class_conditional=True).num_classes == 10
    for fields, match in [
        (dict(objective__target="noise"), "objective.target='noise' is not one of original, clean, eps"),
        (dict(objective__input="pixels"), "objective.input"),
        (dict(objective__target="eps"), "needs objective.output='latent'"),
        (dict(objective__target="original", objective__output="latent"), "needs objective.output='image'"),
        (dict(tokenizer__kind="patch_ae"), "orthonormal basis"),
        (dict(objective__label_dropout=1.0), r"objective.label_dropout=1.0 is out of range: it must be in \[0, 1\)"),
    ]:
        with pytest.raises(UserError, match=match):
            check(**fields)


def test_label_dropout_uses_the_null_label_at_the_given_rate():
    obj = Objective(num_classes=10, label_dropout=0.25)
    labels = jnp.arange(40000) % 10
    out = np.asarray(objectives.network_labels(obj, labels, jax.random.key(0)))
    dropped = out == 10
    assert abs(dropped.mean() - 0.25) < 0.01
    np.testing.assert_array_equal(out[~dropped], np.asarray(labels)[~dropped])
    assert objectives.network_labels(Objective(), labels, jax.random.key(0)) is None
    assert (np.asarray(objectives.null_labels(obj, 3)) == 10).all()
