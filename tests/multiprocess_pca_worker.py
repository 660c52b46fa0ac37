"""One process of a 2-process PCA fit on real Fashion-MNIST; prints the basis hash.

    python tests/multiprocess_pca_worker.py COORDINATOR NUM_PROCESSES PROCESS_ID TFDS_DIR
"""

import os
import sys

os.environ["JAX_PLATFORMS"] = "cpu"
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import quickstart  # noqa: E402
from ldae_jax.data import sources  # noqa: E402
from ldae_jax.tokenizers import pca as pca_lib, pca_fit  # noqa: E402
from ldae_jax.runtime import distributed  # noqa: E402


def main():
    coordinator, num_processes, process_id, data_dir = sys.argv[1:]
    distributed.initialize(coordinator_address=coordinator, num_processes=int(num_processes),
                           process_id=int(process_id))
    config = quickstart.get_config("tiny")
    fitted = pca_fit.fit_from_dataset(config, sources.get_source(config.data.name, data_dir))
    print("HASH", fitted.content_hash(), flush=True)


if __name__ == "__main__":
    main()
