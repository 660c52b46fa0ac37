"""One process of a multi-process run of tests/tiny_training.py; writes its losses and params to an .npz.

    python tests/multiprocess_worker.py COORDINATOR NUM_PROCESSES PROCESS_ID DATA FSDP OUT.npz
"""

import os
import sys

os.environ["JAX_PLATFORMS"] = "cpu"

import jax  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ldae_jax.runtime import distributed
from ldae_jax.train import sharding  # noqa: E402
from tiny_training import run_steps  # noqa: E402


def main():
    coordinator, num_processes, process_id, data, fsdp, out = sys.argv[1:]
    distributed.initialize(coordinator_address=coordinator, num_processes=int(num_processes),
                           process_id=int(process_id))
    losses, params, _ = run_steps(sharding.make_mesh(int(data), int(fsdp)), fsdp_min_size=64)
    flat = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(params)}
    if jax.process_index() == 0:
        np.savez(out, losses=np.asarray(losses), **flat)


if __name__ == "__main__":
    main()
