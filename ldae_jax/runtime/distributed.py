"""Joining a multi-process JAX job, before anything touches a device.

TPU pods and SLURM jobs: `--multihost` and JAX detects the cluster (coordinator, process count and id).
Anything else (several processes on one machine, plain multi-node GPU): pass all three of coordinator
address, process count and process id. With none of them the run is a single process.
"""

from __future__ import annotations

import jax

from ldae_jax.errors import UserError


def initialize(*, multihost: bool = False, coordinator_address: str | None = None,
               num_processes: int | None = None, process_id: int | None = None) -> None:
    explicit = (coordinator_address, num_processes, process_id)
    if any(v is not None for v in explicit):
        if any(v is None for v in explicit):
            raise UserError("--coordinator_address, --num_processes and --process_id go together: give all three")
        if not 0 <= process_id < num_processes:
            raise UserError(f"--process_id={process_id} must be in [0, --num_processes={num_processes})")
        jax.distributed.initialize(coordinator_address, num_processes, process_id)
    elif multihost:
        try:
            jax.distributed.initialize()
        except ValueError as e:  # no TPU pod / SLURM environment found
            raise UserError(f"--multihost: {e}; outside TPU pods and SLURM give the coordinator flags") from None
    if jax.process_count() > 1 and jax.process_index() == 0:
        print(f"Joined {jax.process_count()} processes, {jax.device_count()} devices "
              f"({jax.local_device_count()} local)", flush=True)
