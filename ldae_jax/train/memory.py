"""Memory per device of the paper's l-DAE models: parameters + AdamW state, and the train step's activations.

    python -m ldae_jax.train.memory --sizes=B,half_L,L --meshes=8x1,1x8,64x1,1x64,8x8
    python -m ldae_jax.train.memory --sizes=B,L --activations --batch=2048 --devices=64,256

The model and optimizer are the paper recipe's (`ldae_jax/schema.py`: 256 px, patch 16, bf16 compute, AdamW).
Mesh `DxF` = data x fsdp. Parameter and optimizer bytes come from shapes and the FSDP rule (nothing allocated).
`--activations` compiles the train step for one device at the per-device batch (batch / devices), with the
blocks scanned, with and without remat, and reports XLA's temporary buffers. That is the CPU backend's buffer
assignment: TPU and GPU fuse differently, so read it as an estimate of scale, not a budget.
"""

from __future__ import annotations

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AbstractMesh, AxisType

from ldae_jax import cli, diffusion, objectives, schema
from ldae_jax.errors import UserError
from ldae_jax.models.vit import SIZES, model_config_from
from ldae_jax.tokenizers import pixel
from ldae_jax.train import sharding, state as state_lib


def abstract_state(config, size: str):
    """Shapes of the train state of the paper recipe at model size `size`."""
    config = config.copy_and_resolve_references()
    config.model.size = size
    tokens = (config.data.image_size // config.tokenizer.patch_size) ** 2
    dim = config.tokenizer.patch_size**2 * 3
    model_cfg = model_config_from(config.model, num_tokens=tokens, in_dim=dim, out_dim=dim)
    tx = state_lib.make_optimizer(config.train, state_lib.learning_rate(1e-4, 256, 1, 2))
    return state_lib.abstract_state(model_cfg, tx, jax.random.key(0))


def state_bytes(abstract, data: int, fsdp: int) -> tuple[int, int]:
    """(param bytes, optimizer bytes) per device on a data x fsdp mesh."""
    mesh = AbstractMesh((data, fsdp), ("data", "fsdp"), axis_types=(AxisType.Auto,) * 2)
    shardings = state_lib.state_shardings(abstract, mesh)
    return (sharding.bytes_per_device(abstract.params, shardings.params),
            sharding.bytes_per_device(abstract.opt_state, shardings.opt_state))


def table(config, sizes, meshes) -> str:
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


def activation_bytes(config, size: str, per_device_batch: int, remat: bool) -> int:
    """XLA's temporary buffers (bytes) for one train step on one device at `per_device_batch`."""
    lowered = lower_train_step(config, size, per_device_batch, remat=remat, scan_layers=True)
    return int(lowered.compile().memory_analysis().temp_size_in_bytes)


def lower_train_step(config, size: str, per_device_batch: int, *, remat: bool, scan_layers: bool):
    """The train step lowered for one device on abstract inputs (nothing allocated); also bench/compile.py's."""
    config = config.copy_and_resolve_references()
    config.model.update(size=size, scan_layers=scan_layers, remat=remat)
    p, side = config.tokenizer.patch_size, config.data.image_size
    dim = p * p * 3
    model_cfg = model_config_from(config.model, num_tokens=(side // p) ** 2, in_dim=dim, out_dim=dim)
    tx = state_lib.make_optimizer(config.train, state_lib.learning_rate(1e-4, 256, 1, 2))
    abstract = state_lib.abstract_state(model_cfg, tx, jax.random.key(0))
    mesh = sharding.make_mesh(1, 1, devices=jax.devices()[:1])
    identity = dataclasses.replace(pixel.identity(p, 3), d=config.tokenizer.d)  # shapes are all that matter here
    step = state_lib.make_train_step(
        state_lib.model_graph(model_cfg), tx, identity, diffusion.get_schedule("sigma_linear"),
        objectives.Objective(), seed=0, state_shardings=state_lib.state_shardings(abstract, mesh), mesh=mesh,
    )
    images = jax.ShapeDtypeStruct((per_device_batch, side, side, 3), jnp.uint8)
    labels = jax.ShapeDtypeStruct((per_device_batch,), jnp.int32)
    return step.lower(abstract, images, labels)


def activation_table(config, sizes, batch: int, devices) -> str:
    rows = ["| model | devices | batch / device | activations, no remat | activations, remat |", "|---|---|---|---|---|"]
    for size in sizes:
        for n in devices:
            b = batch // int(n)
            plain, remat = (activation_bytes(config, size, b, r) / 2**30 for r in (False, True))
            rows.append(f"| {size} | {n} | {b} | {plain:.2f} GiB | {remat:.2f} GiB |")
    return "\n".join(rows)


def _ints(text: str, flag: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise UserError(f"{flag}={text!r}: expected comma-separated positive integers") from None
    if min(values) < 1:
        raise UserError(f"{flag}={text!r}: expected positive integers")
    return values


def main(argv: list[str]) -> None:
    p = cli.ArgumentParser(prog="python -m ldae_jax.train.memory", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="B,half_L,L", help=f"model.size values to tabulate ({', '.join(SIZES)})")
    p.add_argument("--meshes", default="8x1,1x8,64x1,1x64,8x8", help="data x fsdp meshes, e.g. 8x1,1x8")
    p.add_argument("--activations", action="store_true", help="compile the train step, report activation memory")
    p.add_argument("--batch", type=int, default=2048, help="global batch for --activations (the paper's is 2048)")
    p.add_argument("--devices", default="64,256", help="device counts for --activations (batch / devices each)")
    args = p.parse_args(argv)
    sizes = args.sizes.split(",")
    if unknown := [s for s in sizes if s not in SIZES]:
        raise UserError(f"--sizes: unknown {', '.join(unknown)}; choose from {', '.join(SIZES)}")
    if args.activations:
        devices = _ints(args.devices, "--devices")
        if small := [n for n in devices if args.batch % n]:
            raise UserError(f"--batch={args.batch} is not divisible by --devices {', '.join(map(str, small))}")
        print(activation_table(schema.defaults(), sizes, args.batch, devices))
    else:
        meshes = args.meshes.split(",")
        for mesh in meshes:
            if not re.fullmatch(r"[1-9]\d*x[1-9]\d*", mesh):
                raise UserError(f"--meshes: {mesh!r} is not DATAxFSDP with positive sizes, e.g. 8x1")
        print(table(schema.defaults(), sizes, meshes))


if __name__ == "__main__":
    jax.config.update("jax_platforms", "cpu")  # XLA:CPU's buffer assignment, whatever accelerator is attached
    cli.run(main)
