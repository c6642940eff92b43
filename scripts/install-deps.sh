#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages Hearth needs to build and test, and
# checks for a Rust toolchain. Safe to run again; it skips what is present.
set -euo pipefail

packages=(
  build-essential pkg-config cmake nasm clang libclang-dev
  libssl-dev libdbus-1-dev
  # VP8 through libvpx, found with pkg-config by env-libvpx-sys.
  libvpx-dev
  # The WebRTC audio processing module, which webrtc-audio-processing-sys
  # builds from source with autotools (its `bundled` feature).
  autoconf automake libtool
  ffmpeg
  dbus gnome-keyring
  iproute2 nftables
  # cpal's ALSA backend, and the PulseAudio daemon (with pactl) that the audio
  # device tests start with a null sink, reached through ALSA's pulse plugin.
  libasound2-dev libasound2-plugins pulseaudio pulseaudio-utils
  # The desktop app (Tauri 2 on WebKitGTK) and its end-to-end tests under
  # Xvfb through tauri-driver and WebKitWebDriver.
  libwebkit2gtk-4.1-dev libgtk-3-dev librsvg2-dev libayatana-appindicator3-dev libxdo-dev file
  xvfb xauth imagemagick webkit2gtk-driver
  # The browser interop test: Debian's Chromium, driven headless through
  # chromedriver, joins a group call from the server's guest page.
  chromium chromium-driver
  # The screen sharing tests draw text with ImageMagick in this font.
  fonts-dejavu-core
  # Chinese glyphs for the app's screenshots in Simplified Chinese.
  fonts-noto-cjk
  # The C compiler for the C code of dependencies when the workspace is
  # type-checked for Windows (x86_64-pc-windows-gnu).
  mingw-w64
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

if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-pc-windows-gnu; then
  echo "installing: the Rust target x86_64-pc-windows-gnu"
  rustup target add x86_64-pc-windows-gnu
fi

# The UI and the Tauri CLI (an npm dev dependency) that builds the app.
ui_dir="$(cd "$(dirname "$0")/.." && pwd)/ui"
if [[ ! -x "$ui_dir/node_modules/.bin/tauri" \
  || "$ui_dir/package-lock.json" -nt "$ui_dir/node_modules/.package-lock.json" ]]; then
  npm ci --prefix "$ui_dir" --no-audit --no-fund --loglevel=error
fi

# tauri-driver is the WebDriver server the app's end-to-end tests talk to.
tools_dir="$HOME/.cache/hearth-tools"
if [[ ! -x "$tools_dir/bin/tauri-driver" ]]; then
  echo "installing: tauri-driver into $tools_dir"
  cargo install tauri-driver --version 2.1.0 --locked --root "$tools_dir"
fi
