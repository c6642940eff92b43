#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages Hearth needs to build and test, and
# checks for a Rust toolchain. Safe to run again; it skips what is present.
set -euo pipefail

packages=(
  build-essential pkg-config cmake nasm clang libclang-dev
  libssl-dev libdbus-1-dev
  ffmpeg
  dbus gnome-keyring
  iproute2 nftables
)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done

if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "error: cargo not found; install Rust 1.90 or newer with rustup (https://rustup.rs) and run this again" >&2
  exit 1
fi
