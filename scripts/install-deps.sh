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

# The federation tests run a real OpenID Connect provider (the npm package
# oidc-provider) on Node.js 20 or newer.
if ! command -v node >/dev/null; then
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  echo "installing: nodejs npm"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nodejs npm >/dev/null
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if ((node_major < 20)); then
  echo "error: Node.js $(node --version) is too old for tests/oidc-provider; install Node.js 20 or newer" >&2
  exit 1
fi
provider_dir="$(cd "$(dirname "$0")/.." && pwd)/tests/oidc-provider"
if [[ ! -d "$provider_dir/node_modules/oidc-provider" \
  || "$provider_dir/package-lock.json" -nt "$provider_dir/node_modules/.package-lock.json" ]]; then
  npm ci --prefix "$provider_dir" --no-audit --no-fund --loglevel=error
fi

if ! command -v cargo >/dev/null; then
  echo "error: cargo not found; install Rust 1.90 or newer with rustup (https://rustup.rs) and run this again" >&2
  exit 1
fi
