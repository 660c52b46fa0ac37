#!/usr/bin/env bash
# Set up (if needed) .venv-torch and check the timm/safetensors export against PyTorch (tests/torch). The JAX
# side runs in .venv (launch/setup.sh), the PyTorch side in .venv-torch (torch, torchvision, timm; no JAX); the
# first set-up installs about 5.5 GB (a CUDA build of torch that runs on CPU) in about 1.5 minutes.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/setup.sh

PY=${PYTHON:-python3}
if [ ! -x .venv-torch/bin/python ]; then
  echo "[test_torch] creating .venv-torch with $($PY --version)"
  $PY -m venv .venv-torch
  echo '*' > .venv-torch/.gitignore  # git (and whatever copies untracked files) skips the 5.5 GB
fi
stamp=.venv-torch/.ldae_torch_$(sha256sum tests/torch/requirements.txt | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "[test_torch] pip install -r tests/torch/requirements.txt (about 1.5 minutes the first time)"
  .venv-torch/bin/python -m pip install -q --upgrade pip
  .venv-torch/bin/python -m pip install -q -r tests/torch/requirements.txt
  rm -f .venv-torch/.ldae_torch_*
  touch "$stamp"
fi

export TF_CPP_MIN_LOG_LEVEL=2
ref=$(mktemp -d "${TMPDIR:-/tmp}/ldae_torch_XXXXXX")
trap 'rm -rf "$ref"' EXIT
.venv/bin/python tests/torch/make_reference.py "$ref"
# --confcutdir: tests/conftest.py imports TFDS, which .venv-torch does not have.
LDAE_TORCH_REFERENCE="$ref" .venv-torch/bin/python -m pytest --confcutdir=tests/torch -rA tests/torch "$@"
.venv/bin/python tests/torch/check_import.py "$ref"
