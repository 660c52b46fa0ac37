#!/usr/bin/env bash
# Set up (if needed) and run the default test suite (under 10 minutes on 2 cores).
# Extra arguments go to pytest: `bash launch/test.sh -m slow` runs the slow checks instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/setup.sh
source launch/env.sh
exec .venv/bin/python -m pytest "$@"
