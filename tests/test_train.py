"""The train step on meshes of 1 and 8 devices, and exact resume from a mid-run checkpoint."""

import json
import os

import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs import quickstart
from ldae_jax.train import sharding

import helpers
from test_data import needs_debian_files
from tiny_training import run_steps


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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("data,fsdp", [(8, 1), (2, 4)])
@pytest.mark.slow
def test_two_processes_of_four_devices_equal_one_process(tmp_path, data, fsdp):
    """Real separate processes on localhost (JAX CPU collectives), 4 devices each, against 1 device here."""
    out = tmp_path / "run.npz"
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    worker = os.path.join(os.path.dirname(__file__), "multiprocess_worker.py")
    address = f"127.0.0.1:{free_port()}"
    procs = [
        subprocess.Popen([sys.executable, worker, address, "2", str(i), str(data), str(fsdp), str(out)],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(2)
    ]
    logs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    got = np.load(out)
    losses, params, _ = run_steps(sharding.make_mesh(devices=jax.devices()[:1]))
    np.testing.assert_allclose(got["losses"], losses, rtol=1e-5)
    for path, value in jax.tree_util.tree_leaves_with_path(params):
        np.testing.assert_allclose(got[jax.tree_util.keystr(path)], value, rtol=1e-4, atol=1e-6)


@needs_debian_files
@pytest.mark.slow
def test_pca_fit_over_two_processes_gives_every_host_the_same_basis(tmp_path):
    from ldae_jax.data import sources

    data_dir = str(tmp_path / "tfds")
    sources.get_source("fashion_mnist_local", data_dir)  # prepare once, before the workers share it
    worker = os.path.join(os.path.dirname(__file__), "multiprocess_pca_worker.py")
    address = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    procs = [
        subprocess.Popen([sys.executable, worker, address, "2", str(i), data_dir], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(2)
    ]
    logs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    hashes = [line.split()[1] for log in logs for line in log.splitlines() if line.startswith("HASH ")]
    assert len(hashes) == 2 and hashes[0] == hashes[1]
    assert "fitted on 5000 patches" in logs[0]  # both hosts' shares, summed


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
    full = helpers.pretrain(config, str(tmp_path / "a"))
    first = helpers.pretrain(config, str(tmp_path / "b"), stop_after=6)
    assert first["step"] == 6
    resumed = helpers.pretrain(config, str(tmp_path / "b"))
    assert resumed["step"] == 12
    losses = lambda wd: [(m["step"], m["loss"]) for m in read_metrics(wd)]  # noqa: E731
    assert losses(tmp_path / "a") == losses(tmp_path / "b")
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(full["params"]), jax.device_get(resumed["params"]))


@needs_debian_files
def test_a_checkpoint_of_another_config_is_refused(tmp_path):
    """Refused before config.json is touched; a model of another shape is told apart from damage even with
    --allow_config_change, naming the parameters and the fields that differ (and nothing is moved aside)."""
    from ldae_jax.train.checkpoint import CheckpointMismatchError

    helpers.pretrain(tiny_config(total_steps=2, log_every=1), str(tmp_path))
    before = (tmp_path / "config.json").read_text()
    other = tiny_config(total_steps=2, log_every=1, base_lr=0.5)
    with pytest.raises(CheckpointMismatchError, match="different run.*train.base_lr"):
        helpers.pretrain(other, str(tmp_path))
    wider = tiny_config(total_steps=2, log_every=1)
    wider.model.width = 48
    with pytest.raises(CheckpointMismatchError, match=r"of another model: params\.blocks\.0\.cond\.fc1\.bias: checkpoint "
                                                      r"\(8,\) vs config \(12,\).*the config fields that differ: "
                                                      r"model.width: checkpoint 32 vs config 48"):
        helpers.pretrain(wider, str(tmp_path), allow_config_change=True)
    assert (tmp_path / "config.json").read_text() == before
    assert not (tmp_path / "checkpoints_damaged").exists()


def test_memory_tool_counts_replicated_and_fsdp_bytes():
    from ldae_jax import schema
    from ldae_jax.train import memory

    abstract = memory.abstract_state(schema.defaults(), "B")
    count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(abstract.params))
    params, opt = memory.state_bytes(abstract, 8, 1)
    assert params == 4 * count and opt > 2 * params  # AdamW: two float32 moments (+ a step count)
    sharded, _ = memory.state_bytes(abstract, 1, 8)
    assert params / 8 <= sharded < params / 7  # all but the small tensors split 8 ways
    assert "| B | 187M | 1 x 8 |" in memory.table(schema.defaults(), ["B"], ["1x8"])


@pytest.mark.slow
def test_memory_tool_measures_activations_and_remat_saves_memory():
    from ldae_jax import schema
    from ldae_jax.train import memory

    plain = memory.activation_bytes(schema.defaults(), "mini", 4, remat=False)
    remat = memory.activation_bytes(schema.defaults(), "mini", 4, remat=True)
    assert 0 < remat < plain
