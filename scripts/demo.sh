#!/usr/bin/env bash
# Installs what Hearth needs, builds it, and runs `hearth demo`: a call
# between two users on an embedded server with real recordings. Extra
# arguments go to `hearth demo`, for example `--seconds 20 --out /tmp/call`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

scripts/install-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hearth-target}"

if [[ -z "${HEARTH_MEDIA_DIR:-}" && ! -d ../shared/media ]]; then
  scripts/fetch-media.sh
fi

cargo build --release --locked -p hearth-cli
"$CARGO_TARGET_DIR/release/hearth" demo "$@"
