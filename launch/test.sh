#!/usr/bin/env bash
# Set up (if needed) and run the default test suite (under 10 minutes on 2 cores).
# Extra arguments go to pytest: `bash launch/test.sh -m slow` runs the slow checks instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/setup.sh
export TF_CPP_MIN_LOG_LEVEL=2
export GLIBC_TUNABLES="${GLIBC_TUNABLES:+$GLIBC_TUNABLES:}glibc.malloc.hugetlb=1"  # 1.3x faster CPU steps (ldae_jax/host_malloc.py)
exec .venv/bin/python -m pytest "$@"
