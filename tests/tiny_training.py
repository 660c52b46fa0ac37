"""A few steps of a tiny l-DAE on fixed synthetic images, process-aware: shared by the single-process tests
and the multi-process worker, so both run exactly the same computation."""

import jax
import numpy as np
from jax.experimental import multihost_utils

from ldae_jax import diffusion, objectives
from ldae_jax.models.vit import ModelConfig
from ldae_jax.tokenizers import pca as pca_lib
from ldae_jax.tokenizers.patches import patchify
from ldae_jax.train import sharding, state as state_lib

GLOBAL_BATCH = 16


def run_steps(mesh, num_steps=3, fsdp_min_size=2**14):
    """(loss per step, final params as numpy, final state); each process feeds its own rows of the batch."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(num_steps, GLOBAL_BATCH, 8, 8, 3), dtype=np.uint8)
    acc = pca_lib.CovarianceAccumulator(48)
    acc.update(np.asarray(patchify(images.reshape(-1, 8, 8, 3) / 127.5 - 1, 4)).reshape(-1, 48))
    pca = pca_lib.fit(acc, patch_size=4, channels=3, d=8, whiten=False)
    model_cfg = ModelConfig(num_tokens=4, in_dim=48, out_dim=48, width=32, encoder_depth=1, decoder_depth=1,
                            num_heads=2)
    opt_cfg = type("OptimizerConfig", (), dict(b1=0.9, b2=0.95, weight_decay=0.0, grad_clip=0.0))
    tx = state_lib.make_optimizer(opt_cfg, state_lib.learning_rate(1e-2, GLOBAL_BATCH, 1, 10))
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
        objectives.Objective(w_res=0.1), seed=0, state_shardings=shardings, mesh=mesh,
    )
    per_process = GLOBAL_BATCH // jax.process_count()
    rows = slice(jax.process_index() * per_process, (jax.process_index() + 1) * per_process)
    losses = []
    for i in range(num_steps):
        batch = sharding.global_batch({"image": images[i, rows], "label": np.zeros(per_process, np.int32)}, mesh)
        train_state, metrics = step(train_state, batch["image"], batch["label"])
        losses.append(float(metrics["loss"]))
    params = multihost_utils.process_allgather(train_state.params, tiled=True)
    return losses, jax.tree.map(np.asarray, params), train_state
