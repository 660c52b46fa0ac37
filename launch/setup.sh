#!/usr/bin/env bash
# Idempotent set-up: Fashion-MNIST's four IDX files, a venv in .venv, and this package with its test extra.
# The files: on Debian/Ubuntu the package dataset-fashion-mnist (apt-get); elsewhere (macOS, other Linux) a
# directory named by LDAE_FASHION_MNIST_DIR, or with LDAE_FASHION_MNIST_SOURCE=tfds (internet needed) TFDS's
# fashion_mnist download written as those files (ldae_jax/data/fashion_mnist.py --download).
# A rerun is quick: pip runs again only when setup.py changes.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "[setup] error: $*" >&2; exit 1; }
FILES="train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz"
TFDS_DIR=${LDAE_FASHION_MNIST_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ldae_jax/fashion-mnist}
DOWNLOAD=""  # where the TFDS route writes the files, once the venv exists

case "${LDAE_FASHION_MNIST_SOURCE:-}" in
  tfds) DOWNLOAD=$TFDS_DIR ;;
  "") ;;
  *) die "LDAE_FASHION_MNIST_SOURCE=$LDAE_FASHION_MNIST_SOURCE: the one value it takes is 'tfds'" ;;
esac
if [ -z "$DOWNLOAD" ] && [ -n "${LDAE_FASHION_MNIST_DIR:-}" ]; then
  missing=""
  for f in $FILES; do [ -f "$LDAE_FASHION_MNIST_DIR/$f" ] || missing="$missing $f"; done
  [ -z "$missing" ] || echo "[setup] warning: LDAE_FASHION_MNIST_DIR=$LDAE_FASHION_MNIST_DIR lacks$missing"
elif [ -z "$DOWNLOAD" ] && [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing the Debian package dataset-fashion-mnist"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
      command -v sudo >/dev/null 2>&1 ||
        die "not root and no sudo: run 'apt-get install -y dataset-fashion-mnist' as root"
      SUDO="sudo"
    fi
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq dataset-fashion-mnist
  else
    echo "[setup] No apt-get here, so Fashion-MNIST cannot come from the Debian package. Provide its 4 IDX files:"
    echo "[setup]   put $FILES"
    echo "[setup]   in a directory, then: export LDAE_FASHION_MNIST_DIR=/that/directory"
    echo "[setup]   or, with internet: LDAE_FASHION_MNIST_SOURCE=tfds bash launch/setup.sh  (TFDS's fashion_mnist,"
    echo "[setup]   written into $TFDS_DIR)"
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  command -v "$PY" >/dev/null 2>&1 || die "$PY not found: install Python 3.11 or newer, or set PYTHON=/path/to/python3"
  # setup.py's python_requires
  "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    die "$("$PY" --version 2>&1) is too old: ldae_jax needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)"
  "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1 ||
    die "$PY cannot create a venv (no venv/ensurepip module; on Debian/Ubuntu: apt-get install python3-venv)"
  echo "[setup] creating .venv with $("$PY" --version 2>&1)"
  "$PY" -m venv .venv || { rm -rf .venv; die "$PY -m venv .venv failed (see above)"; }
fi
if command -v sha256sum >/dev/null 2>&1; then
  hash=$(sha256sum setup.py | cut -c1-16)
else  # macOS
  hash=$(shasum -a 256 setup.py | cut -c1-16)
fi
stamp=.venv/.ldae_setup_$hash
if [ ! -f "$stamp" ]; then
  echo "[setup] pip install -e '.[test]' (about a minute the first time)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test]'
  rm -f .venv/.ldae_setup_*
  touch "$stamp"
fi

if [ -n "$DOWNLOAD" ]; then
  echo "[setup] Fashion-MNIST from TFDS's fashion_mnist builder (a download the first time) into $DOWNLOAD"
  TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python -m ldae_jax.data.fashion_mnist --download "$DOWNLOAD"
fi
