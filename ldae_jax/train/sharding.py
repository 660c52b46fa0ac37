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


def mesh_shape(data: int, fsdp: int, devices: int, processes: int = 1) -> tuple[int, int]:
    """(data, fsdp) of the mesh on `devices` devices; -1 on one axis means 'the rest'.

    Explicit sizes may use fewer than all devices of a single process (the first data * fsdp of them);
    a multi-process run must use every device.
    """
    if data == -1 and fsdp == -1:
        raise ShardingError("mesh: only one of mesh.data / mesh.fsdp may be -1")
    for name, size, other in (("mesh.fsdp", fsdp, data), ("mesh.data", data, fsdp)):
        if other == -1 and (size < 1 or devices % size):
            raise ShardingError(f"{name}={size} does not divide the {_devices(devices)} available")
    data = devices // fsdp if data == -1 else data
    fsdp = devices // data if fsdp == -1 else fsdp
    fits = data * fsdp == devices or (data * fsdp < devices and processes == 1)
    if not fits or data < 1 or fsdp < 1:
        raise ShardingError(f"mesh data={data} x fsdp={fsdp} does not match the {_devices(devices)} available")
    return data, fsdp


def _devices(n: int) -> str:
    return f"{n} device{'s' * (n != 1)}"


def make_mesh(data: int = -1, fsdp: int = 1, devices=None) -> Mesh:
    """A ('data', 'fsdp') mesh over `devices` (default: all), shaped by `mesh_shape`."""
    devices = list(jax.devices() if devices is None else devices)
    data, fsdp = mesh_shape(data, fsdp, len(devices), jax.process_count())
    return Mesh(np.asarray(devices[: data * fsdp]).reshape(data, fsdp), ("data", "fsdp"))


def check_batch(global_batch: int, mesh: Mesh) -> None:
    check_batch_size(global_batch, mesh.size, jax.process_count())


def check_batch_size(global_batch: int, devices: int, processes: int = 1, what: str = "global batch") -> None:
    if global_batch % devices:
        raise ShardingError(f"{what} {global_batch} is not divisible by the {_devices(devices)} "
                            f"({processes} process{'es' * (processes > 1)}); pick a multiple of {devices}")
    if global_batch % processes:
        raise ShardingError(f"{what} {global_batch} is not divisible by the {processes} processes, each of which "
                            "reads its own share of the batch")


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
