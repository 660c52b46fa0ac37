"""Bytes per device of parameters + AdamW state for a config on a mesh, from shapes alone (nothing allocated).

    python -m ldae_jax.train.memory --sizes=B,half_L,L --meshes=8x1,1x8,64x1,1x64,8x8

The model and optimizer are the paper recipe's (`configs/common.py`: 256 px, patch 16, AdamW).

Mesh `DxF` = data x fsdp. Activations are not included: they scale with the per-device batch and depend on
remat; this counts what the FSDP rule decides.
"""

from __future__ import annotations

import os

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["B", "half_L", "L"], "model.size values to tabulate.")
flags.DEFINE_list("meshes", ["8x1", "1x8", "64x1", "1x64", "8x8"], "data x fsdp meshes.")


def abstract_state(config, size: str):
    """Shapes of the train state of the paper recipe at model size `size`."""
    import jax

    from ldae_jax.models.vit import model_config_from
    from ldae_jax.train import state as state_lib

    config = config.copy_and_resolve_references()
    config.model.size = size
    tokens = (config.data.image_size // config.pca.patch_size) ** 2
    model_cfg = model_config_from(config.model, num_tokens=tokens, patch_dim=config.pca.patch_size**2 * 3)
    tx = state_lib.make_optimizer(config.train, state_lib.learning_rate(1e-4, 256, 1, 2))
    return state_lib.abstract_state(model_cfg, tx, jax.random.key(0))


def state_bytes(abstract, data: int, fsdp: int) -> tuple[int, int]:
    """(param bytes, optimizer bytes) per device on a data x fsdp mesh."""
    from jax.sharding import AbstractMesh, AxisType

    from ldae_jax.train import sharding, state as state_lib

    mesh = AbstractMesh((data, fsdp), ("data", "fsdp"), axis_types=(AxisType.Auto,) * 2)
    shardings = state_lib.state_shardings(abstract, mesh)
    return (sharding.bytes_per_device(abstract.params, shardings.params),
            sharding.bytes_per_device(abstract.opt_state, shardings.opt_state))


def table(config, sizes, meshes) -> str:
    import jax

    rows = ["| model | params | mesh (data x fsdp) | params / device | AdamW state / device | total / device |",
            "|---|---|---|---|---|---|"]
    gib = lambda b: f"{b / 2**30:.2f} GiB"  # noqa: E731
    for size in sizes:
        abstract = abstract_state(config, size)
        count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(abstract.params))
        for mesh in meshes:
            data, fsdp = (int(v) for v in mesh.split("x"))
            p, o = state_bytes(abstract, data, fsdp)
            rows.append(f"| {size} | {count / 1e6:.0f}M | {data} x {fsdp} | {gib(p)} | {gib(o)} | {gib(p + o)} |")
    return "\n".join(rows)


def main(argv):
    del argv
    from configs import common

    print(table(common.ldae_base(), FLAGS.sizes, FLAGS.meshes))


if __name__ == "__main__":
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    app.run(main)
