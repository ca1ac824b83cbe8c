#!/usr/bin/env bash
# Set up aegen on a fresh machine: a .venv with the pinned CPU build of PyTorch,
# aegen and its dev extras, and Debian's Fashion-MNIST and Chromium (the report's
# browser test) when they are missing.
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

SUDO=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO="sudo"
APT_UPDATED=""
apt_install() {  # apt_install PACKAGE: install a Debian package, updating the index once
  if [ -z "$APT_UPDATED" ]; then $SUDO apt-get update -qq && APT_UPDATED=1 || return 1; fi
  $SUDO apt-get install -y -qq "$1"
}

FASHION=/usr/share/datasets/fashion-mnist
if [ ! -f "$FASHION/train-images-idx3-ubyte.gz" ]; then
  if ! apt_install dataset-fashion-mnist >/dev/null 2>&1; then
    echo "setup: could not install Debian's dataset-fashion-mnist; put the Fashion-MNIST IDX files in a directory and pass it with --data DIR (or use --data synthetic)" >&2
  fi
fi
# headless Chromium opens the HTML report in the tests (tests/test_report.py)
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
  if ! apt_install chromium >/dev/null 2>&1; then
    echo "setup: could not install Debian's chromium; the report's browser test needs it" >&2
  fi
fi
echo "setup: done (.venv/bin/aegen)" >&2
