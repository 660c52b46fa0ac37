"""The paper-protocol linear probe (MAE's: augmented batches, LARS, BatchNorm running statistics): it runs from
the same program as the cached probe, and a SIGTERM in the middle resumes to exactly the uninterrupted result."""

import json
import os

import numpy as np
import pytest

from configs import quickstart
from ldae_jax import modes
from ldae_jax.errors import UserError
from ldae_jax.evaluate import paper_probe
from tests.preemption_helpers import sigterm_at_batch
from tests.test_data import needs_debian_files


def paper_config():
    c = quickstart.get_config("tiny")
    c.probe.update(mode="paper", baselines="", epochs=2, checkpoint_every=1000)
    return c


@pytest.mark.slow
@needs_debian_files
def test_paper_probe_resumes_exactly_after_a_sigterm(tmp_path, monkeypatch):
    config = paper_config()
    whole, cut = str(tmp_path / "whole"), str(tmp_path / "cut")
    for workdir in (whole, cut):
        modes.run(config, workdir, "pretrain")
    expected = modes.run(config, whole, "probe")["probe"]["results"]["l-DAE"]
    assert 0 <= expected["test_top1"] <= 100 and expected["steps"] > 4  # 2 epochs; the SIGTERM comes at step 4

    original = paper_probe.pipeline.train_iterator

    monkeypatch.setattr(paper_probe.pipeline, "train_iterator", sigterm_at_batch(original, 3))
    out = modes.run(config, cut, "probe")
    assert out["preempted"] and os.path.exists(os.path.join(cut, "probe_state_l-DAE.npz"))
    monkeypatch.setattr(paper_probe.pipeline, "train_iterator", original)
    resumed = modes.run(config, cut, "probe")["probe"]["results"]["l-DAE"]
    assert resumed["test_top1"] == expected["test_top1"]
    np.testing.assert_allclose(resumed["epoch_losses"][-1], expected["epoch_losses"][-1], rtol=1e-6)
    assert not os.path.exists(os.path.join(cut, "probe_state_l-DAE.npz"))
    assert json.loads(open(os.path.join(cut, "probe.json")).read())["protocol"]["mode"] == "paper"


def test_unknown_probe_mode_is_a_user_error(tmp_path):
    config = paper_config()
    config.probe.mode = "online"
    with pytest.raises(UserError, match="probe.mode='online' is not one of cached, paper"):
        modes.run(config, str(tmp_path), "probe")
