#!/usr/bin/env bash
# Idempotent set-up on Debian/Ubuntu: the Fashion-MNIST package, a venv in .venv, and this package with its
# test extra. A rerun is quick: pip runs again only when setup.py changes.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && [ -z "${LDAE_FASHION_MNIST_DIR:-}" ]; then
  echo "[setup] installing the Debian package dataset-fashion-mnist"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq dataset-fashion-mnist
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PY --version)"
  $PY -m venv .venv
fi
stamp=.venv/.ldae_setup_$(sha256sum setup.py | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "[setup] pip install -e '.[test]' (about a minute the first time)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test]'
  rm -f .venv/.ldae_setup_*
  touch "$stamp"
fi
