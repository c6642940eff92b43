#!/usr/bin/env bash
# Installs what the Hearth desktop app needs on Debian or Ubuntu, builds it
# (release) and starts it. On a first run the app offers to start a server on
# this computer (the preselected choice) or to join an organisation's server.
#
# Usage: scripts/app.sh [--build-only]
#   --build-only  build target/release/hearth-desktop and do not start it
# Needs sudo for apt-get, unless run as root.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

start=1
case "${1:-}" in
  "") ;;
  --build-only) start=0 ;;
  *)
    echo "usage: scripts/app.sh [--build-only]" >&2
    exit 2
    ;;
esac

packages=(
  build-essential pkg-config cmake nasm clang libclang-dev curl file
  libssl-dev libdbus-1-dev
  libwebkit2gtk-4.1-dev libgtk-3-dev librsvg2-dev libayatana-appindicator3-dev libxdo-dev
  nodejs npm
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

# The UI's build tools (Vite 8) need Node.js 20 or newer; Debian 12 and
# Ubuntu 24.04 ship 18.
node_major=$(node -p 'process.versions.node.split(".")[0]')
if ((node_major < 20)); then
  echo "error: Node.js $(node --version) is too old to build the UI; install Node.js 20 or newer" \
    "(for example from https://nodejs.org or NodeSource) and run this again" >&2
  exit 1
fi

if ! command -v cargo >/dev/null && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null; then
  echo "installing: Rust (stable) with rustup into ~/.cargo"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  export PATH="$HOME/.cargo/bin:$PATH"
fi

if [[ ! -x ui/node_modules/.bin/tauri || ui/package-lock.json -nt ui/node_modules/.package-lock.json ]]; then
  npm ci --prefix ui --no-audit --no-fund --loglevel=error
fi

# `tauri build` runs the UI's production build and embeds it in the binary.
# A first release build takes several minutes.
(cd src-tauri && npx --prefix ../ui tauri build --no-bundle)
target_dir=${CARGO_TARGET_DIR:-$root/target}
app="$target_dir/release/hearth-desktop"
echo "built $app"

if ((start)); then
  exec "$app"
fi
