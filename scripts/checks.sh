#!/usr/bin/env bash
# The project's cargo checks, in order, failing fast. Normally run through
# scripts/test-all.sh, which starts the test servers first.
#
# Usage: scripts/checks.sh [EXTRA CARGO TEST ARGS...]
#   Extra arguments go to `cargo test --all-features` (e.g. `-- --nocapture`).
# Environment:
#   TAS_CHECKS_SKIP="a b" skip the named steps (fmt clippy features-default features-none
#                         features-servers features-mysql features-redis features-jwt
#                         features-sqlite-cache test doc fuzz package)
#   FUZZ_SECONDS=N        how long the fuzz step runs (default 20)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v cargo >/dev/null && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi

summary=()
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# step NAME CMD [ARGS...]: run one check with a header and its elapsed time.
step() {
    local name=$1 t rc=0
    shift
    case " ${TAS_CHECKS_SKIP:-} " in
    *" $name "*)
        echo "==> [$name] skipped (TAS_CHECKS_SKIP)"
        summary+=("$name: skipped")
        return 0
        ;;
    esac
    echo "==> [$name] $*"
    t=$(now)
    "$@" || rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "==> [$name] FAILED (exit $rc) after $(elapsed "$t") s"
        exit "$rc"
    fi
    echo "==> [$name] ok in $(elapsed "$t") s"
    summary+=("$name: $(elapsed "$t") s")
}

quiet() { "$@" >/dev/null; }

t_all=$(now)
step fmt cargo fmt --all -- --check
step clippy cargo clippy --all-targets --all-features -- -D warnings
# Every feature combination users can pick must build on its own (features are not unified
# with the dev-dependencies here), and without a warning: a user's first `cargo run` on the
# default features must not print one of ours (an item only another feature uses did). On the
# default features every target is checked too: the examples and benches that need no other
# feature share code with the rest (a misplaced `cfg` there once broke them unnoticed).
step features-default cargo clippy --all-targets -- -D warnings
step features-none cargo clippy --lib --no-default-features -- -D warnings
step features-servers cargo clippy --lib --no-default-features --features postgres,mysql,redis,cache -- -D warnings
step features-mysql cargo clippy --lib --no-default-features --features mysql -- -D warnings
step features-redis cargo clippy --lib --no-default-features --features redis -- -D warnings
step features-jwt cargo clippy --lib --no-default-features --features jwt -- -D warnings
step features-sqlite-cache cargo clippy --lib --no-default-features --features sqlite,cache -- -D warnings
step test cargo test --all-features "$@"
step doc env RUSTDOCFLAGS="${RUSTDOCFLAGS:+$RUSTDOCFLAGS }-D warnings" cargo doc --all-features --no-deps
step fuzz env FUZZ_SECONDS="${FUZZ_SECONDS:-20}" bash scripts/fuzz.sh
step package cargo package --allow-dirty

echo "==> all checks passed in $(elapsed "$t_all") s"
for line in "${summary[@]}"; do echo "    $line"; done
