#!/usr/bin/env bash
# Installs what Hearth needs and runs every check CI runs: formatting,
# clippy and the whole test suite against real components.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

scripts/install-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hearth-target}"
export HEARTH_MEDIA_DIR="${HEARTH_MEDIA_DIR:-$root/../shared/media}"
if [[ ! -d "$HEARTH_MEDIA_DIR" ]]; then
  echo "error: the recordings folder $HEARTH_MEDIA_DIR is missing; set HEARTH_MEDIA_DIR to the shared media folder" >&2
  exit 1
fi

cargo fmt --all --check
cargo clippy --locked --workspace --all-targets -- -D warnings
# The CLI tests run the server binary as a separate process.
cargo build --locked --workspace --bins

# The keyring tests need a Secret Service: a private D-Bus session with an
# unlocked gnome-keyring, so nothing touches the user's own keyring.
dbus-run-session -- bash -c '
  echo -n hearth-test | gnome-keyring-daemon --unlock --components=secrets >/dev/null
  cargo test --locked --workspace --no-fail-fast
'
