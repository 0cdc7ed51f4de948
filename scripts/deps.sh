#!/bin/sh
# Install the Debian packages vcm needs. Run as root (CI does); otherwise prints the line.
set -e
# clang, libclang-rt-dev (libFuzzer and the sanitizer runtimes: only a Recommends of clang,
# which --no-install-recommends skips) and libomp-dev (clang's OpenMP) are for make fuzz.
PKGS="build-essential pkg-config libopenblas-dev libstb-dev libjansson-dev zlib1g-dev \
libcurl4-openssl-dev libopenmpi-dev openmpi-bin openssh-client python3-torch python3-torchvision python3-skimage \
clang libclang-rt-dev libomp-dev"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then echo "deps: all packages present"; exit 0; fi
if [ "$(id -u)" != 0 ]; then
    echo "deps: missing:$missing" >&2
    echo "deps: run as root:  apt-get update && apt-get install -y$missing" >&2
    exit 1
fi
echo "deps: installing:$missing"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
