#!/usr/bin/env bash
# Set up aegen on a fresh machine: a .venv with the pinned CPU build of PyTorch,
# aegen and its dev extras, and Debian's Fashion-MNIST when it is missing.
# Safe to run again: what is already there is kept.
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
TORCH_VERSION=2.13.0   # pinned: an unpinned torch pulls a multi-GB CUDA build

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
pip() { .venv/bin/python -m pip "$@"; }

# torch first, so nothing later can pull another build of it
if ! .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  pip install -q "torch==$TORCH_VERSION"
fi
pip install -q -e ".[dev]"

FASHION=/usr/share/datasets/fashion-mnist
if [ ! -f "$FASHION/train-images-idx3-ubyte.gz" ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO="sudo"
  if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq dataset-fashion-mnist; } >/dev/null 2>&1; then
    echo "setup: could not install Debian's dataset-fashion-mnist; put the Fashion-MNIST IDX files in a directory and pass it with --data DIR (or use --data synthetic)" >&2
  fi
fi
echo "setup: done (.venv/bin/aegen)" >&2
