"""Fine-tuning: layer-wise lr decay as the optimizer applies it, and exact resumption after a SIGTERM."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from configs import quickstart
from ldae_jax import modes
from ldae_jax.models import classifier
from ldae_jax.evaluate import finetune
from tests.preemption_helpers import sigterm_at_batch
from tests.test_data import needs_debian_files


def test_layer_decay_scales_each_layers_update():
    config = quickstart.get_config("tiny")
    config.finetune.update(layer_decay=0.5, weight_decay=0.0)
    cfg = classifier.ClassifierConfig(num_tokens=16, in_dim=12, width=32, depth=2, num_heads=2, num_classes=5)
    params = nnx.state(classifier.ViTClassifier(cfg, rngs=nnx.Rngs(0))).to_pure_dict()
    tx = finetune.optimizer(config, params, cfg.depth, optax.constant_schedule(1.0))
    grads = jax.tree.map(jnp.ones_like, params)
    updates, _ = tx.update(grads, tx.init(params), params)
    step = lambda u: float(jnp.abs(u).max())  # noqa: E731 - Adam's first step has magnitude lr everywhere
    assert step(updates["head"]["kernel"]) == pytest.approx(1.0, rel=1e-3)  # layer depth + 1: scale 1
    assert step(updates["blocks"][1]["qkv"]["kernel"]) == pytest.approx(0.5, rel=1e-3)
    assert step(updates["blocks"][0]["qkv"]["kernel"]) == pytest.approx(0.25, rel=1e-3)
    assert step(updates["embed"]["kernel"]) == pytest.approx(0.125, rel=1e-3)


@pytest.mark.slow
@needs_debian_files
def test_finetuning_resumes_exactly_after_a_sigterm(tmp_path, monkeypatch):
    config = quickstart.get_config("tiny")
    config.finetune.update(batch_size=64, total_steps=4, log_every=1, checkpoint_every=100, eval_batch_size=250)
    whole, cut = str(tmp_path / "whole"), str(tmp_path / "cut")
    for workdir in (whole, cut):
        modes.run(config, workdir, "pretrain")
    expected = modes.run(config, whole, "finetune")["finetune"]
    original = finetune.pipeline.train_iterator

    monkeypatch.setattr(finetune.pipeline, "train_iterator", sigterm_at_batch(original, 1))
    assert modes.run(config, cut, "finetune")["finetune"] == {"preempted": True, "step": 2}
    monkeypatch.setattr(finetune.pipeline, "train_iterator", original)
    resumed = modes.run(config, cut, "finetune")["finetune"]
    assert resumed["top1"] == expected["top1"] and resumed["step"] == 4
    np.testing.assert_equal(resumed["t"], expected["t"])
