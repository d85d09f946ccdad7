#!/usr/bin/env bash
# Installs the Debian packages the project needs, as root on a bare Debian machine.
#   dataset-fashion-mnist: Fashion-MNIST IDX files in /usr/share/datasets/fashion-mnist/
#   chromium: the headless browser of the playground tests (test/web/, through playwright-core)
#   fortunes: the fortune files in /usr/share/games/fortunes/ (BSD licence), the text corpus
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps.sh: run as root" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends dataset-fashion-mnist chromium fortunes
