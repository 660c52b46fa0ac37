"""The ladder's other tokenizers (the pixel identity, the trained linear patch AE/VAE of Table 2, the conv VAE of
Table 1) and the tokenizer registry's checks."""

import numpy as np
import pytest

from ldae_jax.tokenizers import patch_ae, pca as pca_lib, pixel, registry


def correlated_patches(n=20000, dim=12, seed=0):
    """Patches with a decaying spectrum, so the top subspace is well defined."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(dim, dim)))[0]
    return (rng.normal(size=(n, dim)) * np.geomspace(1.0, 0.01, dim)) @ basis.T + 0.3


def test_pixel_tokenizer_is_the_identity():
    tok = pixel.identity(2, 3)
    x = np.random.default_rng(0).uniform(-1, 1, size=(4, 5, 12)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(tok.encode(x)), x)
    np.testing.assert_array_equal(np.asarray(tok.decode(x)), x)
    assert tok.d == tok.dim == 12


def test_patch_ae_learns_the_pca_subspace():
    """A linear AE's optimum spans the top-d principal subspace, so its reconstruction error matches PCA's."""
    x = correlated_patches()
    d = 4
    ae, report = patch_ae.train(x, patch_size=2, channels=3, d=d, variational=False, steps=2000, batch_size=1024,
                                lr=3e-2, kl_weight=0.0, seed=0)
    acc = pca_lib.CovarianceAccumulator(12)
    acc.update(x)
    pca = pca_lib.fit(acc, patch_size=2, channels=3, d=d, whiten=False)
    pca_mse = np.mean((x - np.asarray(pca.decode(pca.encode(x)))) ** 2)
    ae_mse = np.mean((x - np.asarray(ae.decode(ae.encode(x)))) ** 2)
    assert ae_mse < 1.05 * pca_mse, (ae_mse, pca_mse)
    assert abs(report["recon_mse"] - ae_mse) < 1e-5
    z = np.asarray(ae.encode(x))
    np.testing.assert_allclose(z.std(), 1.0, rtol=1e-3)  # latents rescaled to unit scale


def test_patch_vae_trains_and_its_kl_shrinks_the_latents():
    x = correlated_patches(5000)
    kwargs = dict(patch_size=2, channels=3, d=4, steps=300, batch_size=512, lr=1e-2, seed=0)
    vae, _ = patch_ae.train(x, variational=True, kl_weight=1e-2, **kwargs)
    ae, _ = patch_ae.train(x, variational=False, kl_weight=0.0, **kwargs)
    assert vae.variational and not ae.variational
    assert np.isfinite(np.asarray(vae.encoder)).all()
    # Before the unit rescaling, the VAE's KL pulls the posterior means towards N(0, 1): a different scale.
    assert float(vae.scale) != pytest.approx(float(ae.scale), rel=1e-2)


def test_patch_ae_save_load_and_mismatch(tmp_path):
    x = correlated_patches(2000)
    ae, _ = patch_ae.train(x, patch_size=2, channels=3, d=3, variational=False, steps=20, batch_size=256, lr=1e-2,
                           kl_weight=0.0, seed=0)
    path = str(tmp_path / "patch_ae.npz")
    patch_ae.save(ae, path)
    loaded = patch_ae.load(path, patch_size=2, channels=3, d=3, variational=False)
    assert loaded.content_hash() == ae.content_hash()
    with pytest.raises(pca_lib.PCAMismatchError, match="d is 3 in the file but the config expects 4"):
        patch_ae.load(path, patch_size=2, channels=3, d=4, variational=False)
    with pytest.raises(pca_lib.PCAMismatchError, match="variational"):
        patch_ae.load(path, patch_size=2, channels=3, d=3, variational=True)
    other = tmp_path / "pca.npz"
    acc = pca_lib.CovarianceAccumulator(12)
    acc.update(x)
    pca_lib.save(pca_lib.fit(acc, patch_size=2, channels=3, d=3, whiten=False), str(other))
    with pytest.raises(pca_lib.PCAMismatchError, match="not a patch AE/VAE tokenizer file"):
        patch_ae.load(str(other), patch_size=2, channels=3, d=3, variational=False)


def test_tokenizer_config_errors():
    from configs import quickstart
    from ldae_jax.errors import UserError

    c = quickstart.get_config("tiny")
    c.tokenizer.kind = "vqgan"
    with pytest.raises(UserError, match="tokenizer.kind='vqgan' is unknown"):
        registry.check(c, 1)
    c.tokenizer.kind, c.tokenizer.d = "pixel", 49
    assert registry.check(c, 1).name == "pixel"
    c.tokenizer.pca.whiten = True
    with pytest.raises(UserError, match="no basis to whiten"):
        registry.check(c, 1)
    c.tokenizer.d = 16
    with pytest.raises(UserError, match="tokenizer.d must be D = 7x7x1 = 49, got 16"):
        registry.check(c, 1)
    c.tokenizer.kind, c.tokenizer.pca.whiten, c.tokenizer.patch_size = "pca", False, 5
    with pytest.raises(UserError, match="not divisible"):
        registry.check(c, 1)
    c.tokenizer.patch_size, c.tokenizer.d = 7, 50
    with pytest.raises(UserError, match=r"tokenizer.d=50 must be in \[1, D\] for patches of 7x7x1 \(D = 49\)"):
        registry.check(c, 1)
    assert registry.check(c, 3).name == "pca"  # D = 147 for RGB
    c.tokenizer.kind, c.tokenizer.d = "conv_vae", 6
    with pytest.raises(UserError, match="multiple of 4"):
        registry.check(c, 1)


def test_every_kind_declares_what_the_objective_and_the_figures_read():
    """The objective asks the kind for its geometry (patch-wise, orthonormal) instead of knowing kinds by name."""
    assert set(registry.KINDS) == {"pca", "pixel", "patch_ae", "patch_vae", "conv_vae"}
    assert [k for k, v in registry.KINDS.items() if v.orthonormal] == ["pca", "pixel"]
    assert [k for k, v in registry.KINDS.items() if not v.patchwise] == ["conv_vae"]
    assert registry.KINDS["pixel"].file is None and registry.KINDS["patch_vae"].file == "patch_vae.npz"


def random_images(n=8, size=16, channels=1, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, channels), dtype=np.uint8)


def test_conv_vae_trains_tokenizes_and_round_trips_its_file(tmp_path):
    from ldae_jax.tokenizers import conv_vae

    cfg = conv_vae.ConvVAEConfig(image_channels=1, latent_channels=2, width=8, num_down=2, group=2)
    batches_from = lambda start: (random_images(seed=i) for i in range(start, 100))  # noqa: E731
    tok, logs = conv_vae.train(batches_from, cfg, steps=6, lr=1e-3, kl_weight=1e-3, adversarial_weight=0.5,
                               adversarial_start=3)
    assert np.isfinite(list(logs.values())).all() and logs["discriminator"] > 0
    x = random_images().astype(np.float32) / 127.5 - 1
    z = tok.image_latents(x)
    assert z.shape == (8, 4, 8) and tok.d == 8 and tok.patch_size == 8  # 16 px -> 4 x 4 latents -> 2 x 2 tokens
    assert tok.latent_images(z, 16, 16).shape == x.shape
    path = str(tmp_path / "conv_vae.npz")
    conv_vae.save(tok, path)
    assert conv_vae.load(path, cfg).content_hash() == tok.content_hash()
    with pytest.raises(pca_lib.PCAMismatchError, match="latent_channels is 2 in the file but the config expects 4"):
        conv_vae.load(path, conv_vae.ConvVAEConfig(image_channels=1, latent_channels=4, width=8, num_down=2))


@pytest.mark.slow
def test_conv_vae_training_resumes_exactly_after_a_sigterm(tmp_path):
    """A real SIGTERM at step 3 of 6: the state is saved, Preempted raised, and the rerun ends where an
    uninterrupted run ends (batches and RNG are functions of the step). A changed recipe is refused."""
    import os
    import signal

    from ldae_jax.errors import Preempted, UserError
    from ldae_jax.tokenizers import conv_vae
    from ldae_jax.runtime import preemption

    cfg = conv_vae.ConvVAEConfig(image_channels=1, latent_channels=2, width=8, num_down=2, group=2)
    recipe = dict(steps=6, lr=1e-3, kl_weight=1e-3, adversarial_weight=0.5, adversarial_start=2)

    def batches_from(start, kill_at=None):
        for i in range(start, 100):
            if i == kill_at:
                os.kill(os.getpid(), signal.SIGTERM)
            yield random_images(seed=i)

    whole, _ = conv_vae.train(batches_from, cfg, **recipe)
    path = str(tmp_path / "state.npz")
    watch = preemption.PreemptionWatch()
    try:
        with pytest.raises(Preempted, match="stopped at step 3"):
            conv_vae.train(lambda s: batches_from(s, kill_at=2), cfg, **recipe, checkpoint_path=path,
                           stop=watch.reached)
    finally:
        watch.close()
    with pytest.raises(UserError, match="changed: lr"):
        conv_vae.train(batches_from, cfg, **{**recipe, "lr": 2e-3}, checkpoint_path=path)
    resumed, _ = conv_vae.train(batches_from, cfg, **recipe, checkpoint_path=path)
    assert resumed.content_hash() == whole.content_hash()


def test_perceptual_distance_and_its_weights_file(tmp_path):
    from ldae_jax.errors import UserError
    from ldae_jax.tokenizers import perceptual

    rng = np.random.default_rng(0)
    shapes = perceptual.expected_shapes()
    assert shapes["conv5_3/kernel"] == (3, 3, 512, 512) and len(shapes) == 26
    params = {k: (rng.normal(size=s) * 0.05).astype(np.float32) for k, s in shapes.items()}
    a = rng.uniform(-1, 1, (2, 32, 32, 1)).astype(np.float32)
    b = rng.uniform(-1, 1, (2, 32, 32, 1)).astype(np.float32)
    assert np.allclose(np.asarray(perceptual.distance(params, a, a)), 0.0, atol=1e-6)
    assert (np.asarray(perceptual.distance(params, a, b)) > 0).all()
    with pytest.raises(UserError, match="needs VGG16 weights"):
        perceptual.load_vgg16("")
    with pytest.raises(UserError, match="does not exist"):
        perceptual.load_vgg16(str(tmp_path / "missing.npz"))
    params["conv1_1/kernel"] = params["conv1_1/kernel"][..., :32]
    np.savez(tmp_path / "bad.npz", **params)
    with pytest.raises(UserError, match=r"conv1_1/kernel should have shape \(3, 3, 3, 64\)"):
        perceptual.load_vgg16(str(tmp_path / "bad.npz"))
