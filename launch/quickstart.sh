#!/usr/bin/env bash
# Set up (if needed) and run the quickstart: PCA fit, l-DAE pre-training, linear probe, figure.
# Extra arguments go to ldae_jax.main, e.g. --config.train.total_steps=300.
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/setup.sh
source launch/env.sh
exec .venv/bin/python -m ldae_jax.main --config=configs/quickstart.py --workdir="${WORKDIR:-workdirs/quickstart}" "$@"
