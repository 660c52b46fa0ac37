"""The device mesh and the rules that place parameters, optimizer state and batches on it.

Mesh axes ('data', 'fsdp'). Batches are split over both axes; a parameter is sharded over 'fsdp' along its
largest dimension that divides evenly when it has at least `fsdp_min_size` elements, else replicated.
With fsdp=1 (the default) everything is replicated and this is plain data parallelism.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from ldae_jax.errors import UserError

BATCH_AXES = ("data", "fsdp")


class ShardingError(UserError):
    """A mesh or batch size that cannot be laid out on the devices at hand."""


def make_mesh(data: int = -1, fsdp: int = 1, devices=None) -> Mesh:
    """A ('data', 'fsdp') mesh; -1 on one axis means 'the rest'.

    Explicit sizes may use fewer than all devices of a single process (the first data * fsdp of them);
    a multi-process run must use every device.
    """
    devices = list(jax.devices() if devices is None else devices)
    n = len(devices)
    if data == -1 and fsdp == -1:
        raise ShardingError("mesh: only one of data/fsdp may be -1")
    if data == -1:
        data = n // fsdp if fsdp > 0 and n % fsdp == 0 else 0
    elif fsdp == -1:
        fsdp = n // data if data > 0 and n % data == 0 else 0
    fits = data * fsdp == n or (data * fsdp < n and jax.process_count() == 1)
    if not fits or data < 1 or fsdp < 1:
        raise ShardingError(f"mesh data={data} x fsdp={fsdp} does not match the {n} devices available")
    return Mesh(np.asarray(devices[: data * fsdp]).reshape(data, fsdp), ("data", "fsdp"))


def check_batch(global_batch: int, mesh: Mesh) -> None:
    n = mesh.size
    if global_batch % n or global_batch % jax.process_count():
        raise ShardingError(
            f"global batch {global_batch} is not divisible by the {n} devices "
            f"({jax.process_count()} processes); pick a multiple of {n}"
        )


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def param_spec(shape: tuple[int, ...], fsdp: int, min_size: int) -> P:
    """FSDP rule: shard the largest evenly divisible dimension of a large tensor over 'fsdp'."""
    if fsdp == 1 or int(np.prod(shape, dtype=np.int64)) < min_size:
        return P()
    for dim in sorted(range(len(shape)), key=lambda i: -shape[i]):
        if shape[dim] % fsdp == 0:
            spec = [None] * len(shape)
            spec[dim] = "fsdp"
            return P(*spec)
    return P()


def tree_shardings(abstract_tree, mesh: Mesh, min_size: int = 2**14):
    """NamedShardings for every array of an abstract (eval_shape) pytree, by the FSDP rule."""
    fsdp = mesh.shape["fsdp"]
    return jax.tree.map(lambda x: NamedSharding(mesh, param_spec(x.shape, fsdp, min_size)), abstract_tree)


def global_batch(local: dict, mesh: Mesh) -> dict:
    """Assemble host-local numpy arrays into global jax.Arrays split over ('data', 'fsdp')."""
    sharding = batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local.items()}


def bytes_per_device(abstract_tree, shardings) -> int:
    """Bytes one device holds of a sharded pytree (the largest shard of each array, summed)."""
    total = 0
    for a, s in zip(jax.tree.leaves(abstract_tree), jax.tree.leaves(shardings)):
        total += int(np.prod(s.shard_shape(a.shape), dtype=np.int64)) * np.dtype(a.dtype).itemsize
    return total
