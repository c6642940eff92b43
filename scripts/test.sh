#!/usr/bin/env bash
# Installs what Hearth needs and runs every check CI runs: formatting,
# clippy and the whole test suite against real components.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

scripts/install-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hearth-target}"
# The cache must fit the disk: no incremental data (the workspace crates
# rebuild in seconds without it), and test binaries of earlier builds,
# which cargo never removes, are deleted after two days.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
if [[ -d "$CARGO_TARGET_DIR/debug/deps" ]]; then
  find "$CARGO_TARGET_DIR/debug/deps" -maxdepth 1 -type f -executable \
    -name '*-????????????????' -mtime +2 -delete
fi
export HEARTH_MEDIA_DIR="${HEARTH_MEDIA_DIR:-$root/../shared/media}"
if [[ ! -d "$HEARTH_MEDIA_DIR" ]]; then
  echo "error: the recordings folder $HEARTH_MEDIA_DIR is missing; set HEARTH_MEDIA_DIR to the shared media folder" >&2
  exit 1
fi

cargo fmt --all --check
# The app embeds ui/dist when it compiles, so the UI is tested and built first:
# type checks, the translation completeness test and the UI's unit tests.
npm test --prefix ui
npm run build --prefix ui
# Every cargo command builds the app with the `custom-protocol` feature, as
# `tauri build` does: the binary then embeds ui/dist instead of loading the
# Vite dev server, and one set of features means one build of each crate.
app_features=(--features hearth-desktop/custom-protocol)
cargo clippy --locked --workspace --all-targets "${app_features[@]}" -- -D warnings
# Windows code must at least compile: the workspace is type-checked for
# Windows, with MinGW compiling the C code of dependencies. No libvpx for
# Windows is installed and a check links nothing, so env-libvpx-sys gets the
# version of its bindings from VPX_VERSION instead of from pkg-config.
VPX_LIB_DIR="$CARGO_TARGET_DIR/no-libvpx-for-windows" VPX_VERSION="$(pkg-config --modversion vpx)" \
  cargo check --locked --workspace --target x86_64-pc-windows-gnu
# The CLI tests run the server binary as a separate process, so every test
# and binary is built before any test runs. `cargo test --no-run` builds the
# binaries with the features of the tests. A `cargo build --bins` resolves
# the features without the dev-dependencies, so most crates compiled twice.
cargo test --locked --workspace --no-run "${app_features[@]}"

# The app's end-to-end tests run a hard link to the app binary in
# target/e2e, so that a `cargo test` without the feature, which rebuilds
# target/debug/hearth-desktop to load the dev server, cannot break them.
mkdir -p "$CARGO_TARGET_DIR/e2e"
ln -f "$CARGO_TARGET_DIR/debug/hearth-desktop" "$CARGO_TARGET_DIR/e2e/hearth-desktop"
echo "the app's end-to-end tests save screenshots to $CARGO_TARGET_DIR/e2e-screenshots"

# The keyring tests need a Secret Service: a private D-Bus session with an
# unlocked gnome-keyring, so nothing touches the user's own keyring.
dbus-run-session -- bash -c '
  echo -n hearth-test | gnome-keyring-daemon --unlock --components=secrets >/dev/null
  cargo test --locked --workspace --no-fail-fast --features hearth-desktop/custom-protocol
'
