#!/usr/bin/env bash
# Creates .venv-bench: scikit-learn (the PCA baseline of bench/pca_fit.py) kept out of the project's .venv,
# since sklearn is not a dependency of ldae_jax. bench/pca_fit.py runs it in a subprocess from here.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv-bench/bin/python ]; then
  $PY -m venv .venv-bench
  echo '*' > .venv-bench/.gitignore  # git (and whatever copies untracked files) skips it
fi
stamp=.venv-bench/.ldae_bench_v1
if [ ! -f "$stamp" ]; then
  .venv-bench/bin/python -m pip install -q "scikit-learn==1.7.2" "numpy==2.3.5" "threadpoolctl==3.6.0"
  touch "$stamp"
fi
.venv-bench/bin/python -c "import sklearn, numpy; print('sklearn', sklearn.__version__, 'numpy', numpy.__version__)"
