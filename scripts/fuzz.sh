#!/usr/bin/env bash
# A short, bounded run of the codec fuzz target (issue 6, item 1), on stable Rust.
#
# Installs cargo-fuzz when missing, then runs `cargo fuzz run codec -s none` (no sanitizer: the
# default address sanitizer needs nightly) for FUZZ_SECONDS seconds (default 20). Exits non-zero
# on any crash, panic, timeout or out-of-memory; the failing input is kept under
# fuzz/artifacts/codec/ and can be replayed with `cargo fuzz run codec -s none <file>`.
#
# Environment:
#   FUZZ_SECONDS   run time in seconds (default 20)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v cargo >/dev/null && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

seconds=${FUZZ_SECONDS:-20}
echo "==> cargo fuzz run codec -s none for ${seconds} s"
# libFuzzer exits non-zero on a crash or a failed assertion; `set -e` makes that ours.
cargo fuzz run codec -s none -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
echo "==> fuzz: no crash in ${seconds} s"
