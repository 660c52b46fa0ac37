"""The cached linear probe: separable features reach ~100%, shuffled labels stay at chance."""

import numpy as np
import pytest

from ldae_jax.errors import UserError
from ldae_jax.evaluate import linear_probe


def synthetic(sizes, dim, classes, rng):
    """Train and test sets from the same well-separated class centres."""
    centers = rng.normal(size=(classes, dim)) * 4.0
    out = []
    for n in sizes:
        y = rng.integers(0, classes, size=n)
        out.append(((centers[y] + 0.3 * rng.normal(size=(n, dim))).astype(np.float32), y.astype(np.int32)))
    return out


@pytest.mark.parametrize("optimizer,base_lr", [("adam", 1e-3), ("lars", 0.1 * 200)])
def test_separable_features_are_learned(optimizer, base_lr):
    rng = np.random.default_rng(0)
    train, test = synthetic((4000, 1000), 16, 10, rng)
    out = linear_probe.train_linear_probe(
        train, test, num_classes=10, epochs=10, batch_size=256, base_lr=base_lr, optimizer=optimizer
    )
    assert out["test_top1"] > 99.0
    assert out["epoch_losses"][-1] < out["epoch_losses"][0]


def test_shuffled_labels_give_chance():
    rng = np.random.default_rng(1)
    (x, y), (tx, ty) = synthetic((4000, 2000), 16, 10, rng)
    out = linear_probe.train_linear_probe(
        (x, rng.permutation(y)), (tx, rng.permutation(ty)), num_classes=10, epochs=10, batch_size=256, base_lr=1e-3
    )
    assert 5.0 < out["test_top1"] < 15.0


def test_bad_probe_inputs_are_clear_errors():
    rng = np.random.default_rng(2)
    data = synthetic((100,), 4, 3, rng)[0]
    with pytest.raises(UserError, match="probe.optimizer"):
        linear_probe.train_linear_probe(data, data, num_classes=3, epochs=1, batch_size=10, base_lr=1e-3, optimizer="sgd")
    with pytest.raises(ValueError, match="labels must lie in"):
        linear_probe.train_linear_probe(data, data, num_classes=2, epochs=1, batch_size=10, base_lr=1e-3)


def test_pixel_features_pool_large_images_to_32():
    images = np.random.default_rng(3).integers(0, 256, size=(2, 256, 256, 3), dtype=np.uint8)
    feats = np.asarray(linear_probe.pixel_features(images))
    assert feats.shape == (2, 32 * 32 * 3)
    np.testing.assert_allclose(feats[0, :3], images[0, :8, :8].reshape(-1, 3).mean(0) / 127.5 - 1, rtol=1e-5)
    assert linear_probe.pixel_features(images[:, :28, :28, :1]).shape == (2, 28 * 28)


def test_the_probed_block_counts_from_1_and_0_is_the_encoders_last():
    """One numbering: the console's label and probe.json's protocol.block both give the block k whose output is
    probed (the paper's 'output of block k'), never the config's 0."""
    from ldae_jax import schema
    from ldae_jax.evaluate import probe

    config = schema.defaults()
    for block, depth, want in ((0, 3, 3), (1, 3, 1), (2, 3, 2)):
        config.probe.block = block
        assert probe.probed_block(config, depth) == want
        assert probe.describe(config, 7, depth)["l-DAE"] == f"l-DAE, step 7, t=10 clean, block {want}"


def test_the_head_reports_each_epoch_to_the_console(capsys, monkeypatch):
    from ldae_jax.runtime import timings

    seen = []
    update = timings.Countdown.update
    monkeypatch.setattr(timings.Countdown, "update", lambda self, done: (seen.append(done), update(self, done)))
    (train, test) = synthetic((300, 100), 8, 3, np.random.default_rng(4))
    out = linear_probe.train_linear_probe(train, test, num_classes=3, epochs=4, batch_size=64, base_lr=1e-3)
    assert seen == [1, 2, 3, 4]  # in order, each once the epoch's steps are done (a callback from the jitted scan)
    printed = capsys.readouterr().out
    assert f"  linear head: 4 epochs, last loss {out['epoch_losses'][-1]:.4f} in " in printed, printed
