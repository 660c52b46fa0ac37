"""MAE on this codebase's ViT: the masking keeps exactly the right tokens, the encoder never sees a masked one,
the normalised target, the probe's features and the fold to a plain ViT are l-DAE's, and the configs run."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import mae as mae_configs
from ldae_jax import main as main_lib, modes, objectives
from ldae_jax.errors import UserError
from ldae_jax.models import fold, mae, vit

from helpers import set_fields
from test_data import needs_debian_files


def mae_cfg(**overrides):
    return vit.ModelConfig(num_tokens=16, in_dim=12, out_dim=12, width=32, encoder_depth=2, decoder_depth=1,
                           num_heads=2, kind="mae", decoder_width=16, decoder_heads=2, **overrides)


def test_masking_keeps_exactly_the_visible_count_per_example():
    keep, mask = objectives.random_keep(jax.random.key(0), 64, 16, 0.75)
    keep, mask = np.asarray(keep), np.asarray(mask)
    assert keep.shape == (64, 4) and mask.shape == (64, 16)
    for row, m in zip(keep, mask):
        assert len(set(row)) == 4 and m.sum() == 12 and (m[row] == 0).all()
    assert len({tuple(sorted(r)) for r in keep}) > 50  # each example draws its own tokens
    assert objectives.visible_count(196, 0.75) == 49 and objectives.visible_count(4, 0.9) == 1


def test_the_encoder_never_sees_a_masked_token():
    model = mae.MaskedAutoencoder(mae_cfg(), rngs=nnx.Rngs(0))
    encode = nnx.jit(lambda m, x, keep: m.encode(x, keep))
    x = jax.random.normal(jax.random.key(1), (3, 16, 12))
    keep, mask = objectives.random_keep(jax.random.key(2), 3, 16, 0.75)
    encoded = encode(model, x, keep)
    assert encoded.shape == (3, 4, 32)  # the kept tokens only: no mask token in the encoder
    hidden = jnp.asarray(mask, bool)[..., None]
    scrambled = jnp.where(hidden, 1e3 * jax.random.normal(jax.random.key(3), x.shape), x)
    np.testing.assert_array_equal(np.asarray(encode(model, scrambled, keep)), np.asarray(encoded))
    nudged = x.at[jnp.arange(3), keep[:, 0]].add(1.0)  # a visible token changes what the encoder computes
    assert not np.allclose(np.asarray(encode(model, nudged, keep)), np.asarray(encoded))
    assert nnx.jit(lambda m, x, keep: m(x, keep))(model, x, keep).shape == (3, 16, 12)


def test_normalised_target_and_loss_on_masked_patches_only():
    rng = np.random.default_rng(0)
    patches = rng.normal(size=(2, 16, 12)).astype(np.float32) * 3 + 1
    want = (patches - patches.mean(-1, keepdims=True)) / np.sqrt(patches.var(-1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(np.asarray(objectives.mae_target(jnp.asarray(patches), True)), want, rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_array_equal(np.asarray(objectives.mae_target(jnp.asarray(patches), False)), patches)

    class Echo:  # predicts the target exactly on the kept tokens and zero elsewhere
        def __call__(self, tokens, keep):
            full = jnp.zeros_like(tokens)
            target = objectives.mae_target(tokens, True)
            return full.at[jnp.arange(tokens.shape[0])[:, None], keep].set(
                jnp.take_along_axis(target, keep[..., None], axis=1))

    tok = type("Tok", (), {"patch_size": 2})
    images = jnp.asarray(rng.uniform(-1, 1, size=(2, 8, 8, 3)), jnp.float32)  # 16 tokens of 2x2x3
    obj = objectives.Objective(kind="mae", mask_ratio=0.75, norm_pix=True)
    loss, per_example = objectives.mae_loss(Echo(), obj, tok, images, jax.random.key(0))
    # the kept tokens are perfect, so the loss is the mean square of the masked targets alone (1 per patch)
    assert float(loss) == pytest.approx(1.0, rel=1e-3)


def test_probe_features_and_fold_are_l_dae_s():
    cfg = mae_cfg()
    graphdef, state = nnx.split(mae.MaskedAutoencoder(cfg, rngs=nnx.Rngs(0)))
    leaves, treedef = jax.tree.flatten(state.to_pure_dict())  # the zero-initialised modulation made random
    keys = jax.random.split(jax.random.key(1), len(leaves))
    params = jax.tree.unflatten(treedef, [a + 0.1 * jax.random.normal(k, a.shape) for a, k in zip(leaves, keys)])
    model = nnx.merge(graphdef, params)
    x = jax.random.normal(jax.random.key(4), (2, 16, 12))
    t = jnp.zeros((2,), jnp.int32)
    # the same encoder parameters in l-DAE's network give the same pooled features at every block
    ldae_cfg = dataclasses.replace(cfg, kind="denoise", decoder_depth=0, decoder_width=0, decoder_heads=0)
    ldae = vit.DenoisingViT(ldae_cfg, rngs=nnx.Rngs(1))
    state = nnx.state(ldae).to_pure_dict()
    state["embed"], state["blocks"] = params["embed"], params["blocks"]
    nnx.update(ldae, state)
    features = nnx.jit(lambda m, x, t, k: m.features(x, t, k), static_argnums=3)
    for k in (1, 2):
        np.testing.assert_allclose(np.asarray(features(model, x, t, k)), np.asarray(features(ldae, x, t, k)),
                                   rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="cannot read block 3 of a 2-block MAE encoder"):
        model.features(x, t, 3)
    # folded at t = 0 into a plain ViT (the fine-tuning and timm-export path), the features are unchanged
    from ldae_jax.models import classifier

    ccfg = fold.classifier_config(cfg, num_blocks=2, num_classes=10)
    plain = nnx.merge(nnx.graphdef(classifier.ViTClassifier(ccfg, rngs=nnx.Rngs(0))),
                      fold.fold_encoder(params, cfg, t=0, num_blocks=2, num_classes=10))
    np.testing.assert_allclose(np.asarray(nnx.jit(lambda m, x: m.pooled(x))(plain, x)),
                               np.asarray(features(model, x, t, 2)), rtol=1e-4, atol=1e-5)
    with pytest.raises(UserError, match="cannot fold 3 blocks of a 2-block network"):
        fold.classifier_config(cfg, num_blocks=3, num_classes=10)


def test_mae_mistakes_are_refused_before_any_compute():
    config = mae_configs.get_config("tiny")
    for fields, message in (({"tokenizer__kind": "pca", "tokenizer__d": 8}, "needs tokenizer.kind='pixel'"),
                            ({"probe__t": 10}, "probe.t and finetune.t must be 0"),
                            ({"objective__class_conditional": True}, "no class conditioning"),
                            ({"probe__block": 2}, "probe.block=2 is past the network's last block \\(1\\)")):
        with pytest.raises(UserError, match=message):
            modes.check(set_fields(mae_configs.get_config("tiny"), **fields), "all")
    modes.check(config, "all")
    for arg in ("model=B,epochs=1600", "model=L,epochs=800"):
        modes.check(mae_configs.get_config(arg), "pretrain_probe", local=False)
    with pytest.raises(ValueError, match="model='H' is not one of MAE's recipes"):
        mae_configs.get_config("model=H")


def tiny_mae():
    config = mae_configs.get_config("tiny")
    config.probe.baselines = "pixels"  # the random-init baseline is l-DAE's path, tested elsewhere
    config.finetune.update(total_steps=2, batch_size=64, eval_batch_size=250, rand_augment="", mixup=0.0,
                           cutmix=0.0, ema=0.0)
    return config


@needs_debian_files
def test_tiny_mae_pretrains_probes_and_draws(tmp_path):
    out = main_lib.run(tiny_mae(), str(tmp_path), "all")
    assert out["pretrain"]["step"] == 20 and np.isfinite(out["pretrain"]["loss"])
    probe = out["probe"]["results"]
    assert set(probe) == {"l-DAE", "pixels"} and all(0 <= r["knn_top1"] <= 100 for r in probe.values())
    assert probe["l-DAE"]["feature_dim"] == 32
    from PIL import Image

    picture = np.asarray(Image.open(out["figure"]).convert("L"), np.float32)  # MAE's figure: masked, rebuilt
    assert out["figure"].endswith("reconstruction.png") and picture.shape[1] > 400 and picture.std() > 10


@pytest.mark.slow
@needs_debian_files
def test_tiny_mae_fine_tunes_and_exports(tmp_path):
    config = tiny_mae()
    main_lib.run(config, str(tmp_path), "pretrain")
    assert modes.run(config, str(tmp_path), "finetune")["finetune"]["top1"]
    assert modes.run(config, str(tmp_path), "export")["export"]["path"].endswith("encoder_t0.safetensors")
