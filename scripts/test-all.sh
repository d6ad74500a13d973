#!/usr/bin/env bash
# The full test command: start the test servers, then run every cargo check.
# Usage: scripts/test-all.sh [EXTRA CARGO TEST ARGS...]   (works from any directory)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
if ! command -v cargo >/dev/null && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null || { echo "[test-all] error: cargo is not on PATH" >&2; exit 1; }
exec bash "$root/scripts/with-servers.sh" bash "$root/scripts/checks.sh" "$@"
