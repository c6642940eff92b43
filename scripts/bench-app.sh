#!/usr/bin/env bash
# Measures the desktop app's video delivery (three renderers) and memory in a
# 720p call: builds the release app with `tauri build`, the release server
# and CLI, and runs the app_media bench under Xvfb. Prints Markdown tables.
#
# Usage: scripts/bench-app.sh [--seconds N]   (measurement window, default 20)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

scripts/install-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hearth-target}"
export HEARTH_MEDIA_DIR="${HEARTH_MEDIA_DIR:-$root/../shared/media}"

cargo build --locked --release -p hearth-server -p hearth-cli --bins
(cd src-tauri && npx --prefix ../ui tauri build --no-bundle -- --locked)
# The bench runs a hard link to the `tauri build` binary, which `cargo bench`
# may rebuild in target/release with other flags.
mkdir -p "$CARGO_TARGET_DIR/bench"
ln -f "$CARGO_TARGET_DIR/release/hearth-desktop" "$CARGO_TARGET_DIR/bench/hearth-desktop"
export HEARTH_E2E_APP="$CARGO_TARGET_DIR/bench/hearth-desktop"

# The app keeps its refresh token in a Secret Service: a private D-Bus
# session with an unlocked gnome-keyring.
dbus-run-session -- bash -c '
  echo -n hearth-test | gnome-keyring-daemon --unlock --components=secrets >/dev/null
  cargo bench --locked -p hearth-desktop --features custom-protocol --bench app_media -- "$@"
' bash "$@"
