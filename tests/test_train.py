"""The train step on meshes of 1 and 8 devices, and exact resume from a mid-run checkpoint."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import quickstart
from ldae_jax import diffusion
from ldae_jax.models.vit import ModelConfig
from ldae_jax.tokenizers import pca as pca_lib
from ldae_jax.tokenizers.patches import patchify
from ldae_jax.train import pretrain, sharding, state as state_lib

from test_data import needs_debian_files


def run_steps(mesh, num_steps=3, fsdp_min_size=2**14):
    """Loss per step and final params of a tiny l-DAE trained on fixed synthetic images on `mesh`."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(num_steps, 16, 8, 8, 3), dtype=np.uint8)
    acc = pca_lib.CovarianceAccumulator(48)
    acc.update(np.asarray(patchify(images.reshape(-1, 8, 8, 3) / 127.5 - 1, 4)).reshape(-1, 48))
    pca = pca_lib.fit(acc, patch_size=4, channels=3, d=8, whiten=False)
    model_cfg = ModelConfig(num_tokens=4, patch_dim=48, width=32, encoder_depth=1, decoder_depth=1, num_heads=2)
    tx = state_lib.make_optimizer(
        type("T", (), dict(b1=0.9, b2=0.95, weight_decay=0.0, grad_clip=0.0)), state_lib.learning_rate(1e-2, 16, 1, 10)
    )
    key = jax.random.key(0)
    abstract = state_lib.abstract_state(model_cfg, tx, key)
    shardings = state_lib.TrainState(
        step=sharding.replicated(mesh),
        params=sharding.tree_shardings(abstract.params, mesh, fsdp_min_size),
        opt_state=sharding.tree_shardings(abstract.opt_state, mesh, fsdp_min_size),
    )
    train_state = state_lib.create_state(model_cfg, tx, key, shardings)
    step = state_lib.make_train_step(
        state_lib.model_graph(model_cfg), tx, pca, diffusion.get_schedule("sigma_linear", 1000),
        w_res=0.1, seed=0, state_shardings=shardings, mesh=mesh,
    )
    losses = []
    for i in range(num_steps):
        batch = sharding.global_batch({"image": images[i]}, mesh)
        train_state, metrics = step(train_state, batch["image"])
        losses.append(float(metrics["loss"]))
    return losses, jax.device_get(train_state.params), train_state


def test_eight_devices_equal_one_device():
    assert jax.device_count() == 8, "tests/conftest.py asks for 8 fake CPU devices"
    one_losses, one_params, _ = run_steps(sharding.make_mesh(devices=jax.devices()[:1]))
    for data, fsdp in [(8, 1), (2, 4)]:
        losses, params, state = run_steps(sharding.make_mesh(data, fsdp), fsdp_min_size=64)
        np.testing.assert_allclose(losses, one_losses, rtol=1e-5)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), params, one_params)
    # With fsdp=4 the large kernels really are split over devices.
    qkv = state.params["blocks"][0]["qkv"]["kernel"]
    assert qkv.sharding.spec != jax.sharding.PartitionSpec() and len(qkv.addressable_shards) == 8
    assert qkv.addressable_shards[0].data.shape != qkv.shape
    assert one_losses[-1] < one_losses[0]


def test_mesh_and_batch_errors_are_clear():
    with pytest.raises(sharding.ShardingError, match="data=3 x fsdp=4 does not match the 8 devices"):
        sharding.make_mesh(3, 4)
    with pytest.raises(sharding.ShardingError, match="not divisible by the 8 devices"):
        sharding.check_batch(60, sharding.make_mesh())


def tiny_config(**train):
    config = quickstart.get_config("tiny")
    config.mesh.data = 1  # one device: the tiny model is faster unsplit on 2 cores
    for k, v in train.items():
        config.train[k] = v
    return config


def read_metrics(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


@needs_debian_files
def test_resume_from_a_mid_run_checkpoint_is_exact(tmp_path):
    config = tiny_config(total_steps=12, log_every=2, checkpoint_every=6)
    full = pretrain.train_and_evaluate(config, str(tmp_path / "a"))
    first = pretrain.train_and_evaluate(config, str(tmp_path / "b"), stop_after=6)
    assert first["step"] == 6
    resumed = pretrain.train_and_evaluate(config, str(tmp_path / "b"))
    assert resumed["step"] == 12
    losses = lambda wd: [(m["step"], m["loss"]) for m in read_metrics(wd)]  # noqa: E731
    assert losses(tmp_path / "a") == losses(tmp_path / "b")
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(full["params"]), jax.device_get(resumed["params"]))


@needs_debian_files
def test_a_checkpoint_of_another_config_is_refused(tmp_path):
    pretrain.train_and_evaluate(tiny_config(total_steps=2, log_every=1), str(tmp_path))
    other = tiny_config(total_steps=2, log_every=1, base_lr=0.5)
    with pytest.raises(ValueError, match="different run.*train.base_lr"):
        pretrain.train_and_evaluate(other, str(tmp_path))
