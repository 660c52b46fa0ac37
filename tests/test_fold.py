"""Folding the fixed-t adaLN modulation into plain LayerNorms keeps the encoder's features (docs/paper_notes.md 4.2)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from ldae_jax.models import classifier, fold, vit


def random_network(**overrides):
    """A denoising ViT whose zero-initialised parts (modulation, gates, head) are made random, so every folded
    term matters."""
    cfg = vit.ModelConfig(num_tokens=16, in_dim=12, out_dim=12, width=32, encoder_depth=2, decoder_depth=1,
                          num_heads=2, **overrides)
    graphdef, state = nnx.split(vit.DenoisingViT(cfg, rngs=nnx.Rngs(0)))
    params = state.to_pure_dict()
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    params = jax.tree.unflatten(treedef, [a + 0.1 * jax.random.normal(k, a.shape) for a, k in zip(leaves, keys)])
    return cfg, graphdef, params


@pytest.mark.parametrize("overrides", [{}, {"adaln_zero": True}, {"scan_layers": True}, {"num_classes": 10}],
                         ids=["adaln", "adaln_zero", "scanned", "class_conditional"])
def test_folded_encoder_gives_the_same_features(overrides):
    cfg, graphdef, params = random_network(**overrides)
    model = nnx.merge(graphdef, params)
    x = jax.random.normal(jax.random.key(2), (3, 16, 12))
    t, blocks = 10, 2
    y = jnp.full((3,), 10, jnp.int32) if cfg.num_classes else None
    want = model.features(x, jnp.full((3,), t, jnp.int32), blocks, y=y)
    ccfg = fold.classifier_config(cfg, num_blocks=blocks, num_classes=5)
    plain = nnx.merge(nnx.graphdef(classifier.ViTClassifier(ccfg, rngs=nnx.Rngs(0))),
                      fold.fold_encoder(params, cfg, t=t, num_blocks=blocks, num_classes=5))
    np.testing.assert_allclose(np.asarray(plain.pooled(x)), np.asarray(want), rtol=1e-4, atol=1e-5)
    other_t = model.features(x, jnp.full((3,), 500, jnp.int32), blocks, y=y)
    assert not np.allclose(np.asarray(other_t), np.asarray(want), atol=1e-3)  # t matters: the fold is not trivial
    assert plain(x).shape == (3, 5)


def test_drop_path_is_random_only_when_training():
    cfg = classifier.ClassifierConfig(num_tokens=16, in_dim=12, width=32, depth=4, num_heads=2, num_classes=5,
                                      drop_path=0.5)
    model = classifier.ViTClassifier(cfg, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(0), (8, 16, 12))
    np.testing.assert_array_equal(np.asarray(model.features(x)), np.asarray(model.features(x)))
    a, b = model.features(x, jax.random.key(1)), model.features(x, jax.random.key(2))
    assert not np.allclose(np.asarray(a), np.asarray(b))
    ids = classifier.layer_ids(nnx.state(model).to_pure_dict(), cfg.depth)
    assert ids["embed"]["kernel"] == 0 and ids["blocks"][3]["qkv"]["kernel"] == 4 and ids["head"]["bias"] == 5
