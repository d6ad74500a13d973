#!/usr/bin/env bash
# Benchmarks and load tests of issues 5 and 17; writes BENCHMARKS.md, benches/overhead.png and
# benches/scaling.png.
#
# Usage: scripts/bench.sh            (works from any directory; about 20 minutes once built)
#
# As root it installs what is missing (wrk, valgrind, gnuplot-nox, python3 with apt-get; PostgreSQL,
# Redis, Node.js and the Better Auth harness's npm packages through scripts/with-servers.sh), then,
# with throwaway PostgreSQL and Redis servers on 127.0.0.1:
#
#   1. builds the benches and examples/load_server.rs (release profile, --all-features);
#   2. traffic (realistic traffic, issue 17): cargo bench --bench traffic, once per size in
#      TRAFFIC_SIZES: N distinct users with one session each, a different cookie on every request,
#      for bare, the hand-rolled floor, this crate over MemoryStore and over CachedStore,
#      tower-sessions and axum-login (these two up to 100,000), and at 10,000 the same-cookie extras;
#   3. criterion: cargo bench --bench overhead (the friendlier setup: one user, one cookie; bare,
#      this crate on every store and request kind, tower-sessions, axum-login), in process;
#   4. allocations per request (benches/allocations.rs, a counting global allocator);
#   5. callgrind: instruction counts per request, one cookie: Ir(N2) - Ir(N1) over N2 - N1;
#   6. cache-misses: valgrind callgrind --cache-sim=yes on the traffic bench's --callgrind mode
#      (CASE N REQUESTS) for bare, floor, tas_memory and tas_cached at each of BENCH_CACHE_SIZES,
#      two request counts, collection toggled on inside the requests (--toggle-collect), the
#      last-level cache given the host's geometry from /sys; instructions, D1, LL data and I1
#      misses per request = (X(R2) - X(R1)) / (R2 - R1);
#   7. for each store (memory, sqlite, postgres, redis): load_server seeded with many sessions, wrk
#      with anonymous, authenticated and refresh-heavy (update_age = 0) traffic; the HTTP targets
#      of issue 17 (step http-targets): wrk on load_server's /bare/me (no layer, once); then
#      BENCH_QUADS sequences /bare/me, /me, /me, /bare/me on a second load_server with CACHE=1
#      (CachedStore) on the same sessions, and for sqlite /floor/me (a hand-written sqlx check of
#      the same file), /me, /me, /floor/me on the first; for memory, with FLOOR_MEMORY=1, also
#      /bare/me against /floor/memory/me (the traffic bench's floor over HTTP) and
#      /floor/memory/shared/me (that floor over the store's own rows) against /me; then, on the
#      same database and sessions, the in-process latency of one lookup (benches/latency.rs) against Better Auth's
#      auth.api.getSession (scripts/bench/ba-getsession.mjs), on all CPUs and again with both
#      sides and the database server pinned to CPU 0 (taskset), and the same wrk runs against a
#      Better Auth server (tests/interop/server.mjs, GET /api/auth/get-session);
#   8. memory flatness: load_server on the memory store with 100k sessions under wrk for 60 s,
#      its RSS sampled every 5 s;
#   9. scripts/bench/report.py writes BENCHMARKS.md, benches/overhead.png (overhead.gp) and
#      benches/scaling.png (scaling.gp) with gnuplot.
#
# The 1-minute load average is recorded when each phase, each traffic size, each wrk run and
# each latency run starts, and printed next to its figures.
# All traffic goes to 127.0.0.1; every server started here is stopped on exit.
#
# Environment (defaults in brackets):
#   CARGO_TARGET_DIR        [target]   build directory; results go to $CARGO_TARGET_DIR/bench-results
#   BENCH_CRITERION_ARGS    [--warm-up-time 1 --measurement-time 3]   for the traffic and overhead benches
#   TRAFFIC_SIZES           [1000,10000,100000,1000000]   live sessions of the traffic step, one
#                                      cargo bench run per size (comma- or space-separated)
#   BENCH_TRAFFIC_RUNS      [5]        runs (processes) of each size in BENCH_TRAFFIC_REPEAT_SIZES
#   BENCH_TRAFFIC_REPEAT_SIZES [10000] sizes judged by the median ratio over those runs
#   BENCH_CACHE_SIZES       [10000]    live sessions of the cache-misses step (space-separated;
#                                      100000 takes about 5 minutes per valgrind run, 8 runs)
#   BENCH_CACHE_REQUESTS    [1000 5000]  the two request counts R1 R2 of the cache-misses step
#   BENCH_WRK_DURATION      [10s]      per wrk run (each preceded by a 2 s warm-up run)
#   BENCH_QUADS             [6]        A B B A sequences per HTTP target pair (issue 17)
#   BENCH_QUAD_DURATION     [5s]       per wrk run of those sequences
#   BENCH_WRK_THREADS       [2]
#   BENCH_WRK_CONNECTIONS   [64]
#   BENCH_SESSIONS          [10000]    distinct sessions per store for the wrk runs
#   BENCH_FLAT_SESSIONS     [100000]   sessions for the memory-flatness run
#   BENCH_FLAT_SECONDS      [60]
#   BENCH_SKIP              []         steps to skip, space-separated: traffic criterion allocations
#                                      callgrind cache-misses wrk http-targets better-auth memory
#                                      (better-auth runs only with wrk)
#   BENCH_WAIT_QUIET        [0]        wait up to this many seconds, after building, for the 1-minute
#                                      load average to fall below 1.0 (other work skews every number)
#   BENCH_NO_REPORT=1                  do not rewrite BENCHMARKS.md and the PNGs
set -euo pipefail

log() { echo "[bench] $*" >&2; }
die() { log "error: $*"; exit 1; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
if ! command -v cargo >/dev/null && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null || die "cargo is not on PATH"

# ---------------------------------------------------------------- outer: tools, then servers

if [ "${1:-}" != --inner ]; then
    missing=()
    command -v wrk >/dev/null || missing+=(wrk)
    command -v valgrind >/dev/null || missing+=(valgrind)
    command -v gnuplot >/dev/null || missing+=(gnuplot-nox)
    command -v python3 >/dev/null || missing+=(python3)
    if [ ${#missing[@]} -gt 0 ]; then
        [ "$(id -u)" -eq 0 ] || die "missing: ${missing[*]}; install them (apt-get install ${missing[*]}) or run as root"
        log "installing: ${missing[*]}"
        {
            export DEBIAN_FRONTEND=noninteractive
            apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"
        } </dev/null >&2 || die "apt-get install ${missing[*]} failed"
    fi
    exec bash "$root/scripts/with-servers.sh" bash "$root/scripts/bench.sh" --inner
fi

# ---------------------------------------------------------------- inner: servers are up

: "${TAS_TEST_POSTGRES_URL:?run through scripts/bench.sh (with-servers.sh sets it)}"
: "${TAS_TEST_REDIS_URL:?run through scripts/bench.sh}"
: "${TAS_TEST_NODE_INTEROP:?run through scripts/bench.sh}"

target=${CARGO_TARGET_DIR:-$root/target}
export CARGO_TARGET_DIR=$target
out=$target/bench-results
rm -rf "$out"
mkdir -p "$out"
criterion_args=${BENCH_CRITERION_ARGS:---warm-up-time 1 --measurement-time 3}
wrk_duration=${BENCH_WRK_DURATION:-10s}
wrk_threads=${BENCH_WRK_THREADS:-2}
quads=${BENCH_QUADS:-6}
traffic_runs=${BENCH_TRAFFIC_RUNS:-5}
traffic_repeat=${BENCH_TRAFFIC_REPEAT_SIZES:-10000}
quad_duration=${BENCH_QUAD_DURATION:-5s}
wrk_conns=${BENCH_WRK_CONNECTIONS:-64}
sessions=${BENCH_SESSIONS:-10000}
flat_sessions=${BENCH_FLAT_SESSIONS:-100000}
flat_seconds=${BENCH_FLAT_SECONDS:-60}
traffic_sizes=${TRAFFIC_SIZES:-1000,10000,100000,1000000}
traffic_sizes=${traffic_sizes//,/ }
cache_sizes=${BENCH_CACHE_SIZES:-10000}
read -r cache_r1 cache_r2 _ <<<"${BENCH_CACHE_REQUESTS:-1000 5000}"
if ! [[ "$cache_r1" =~ ^[0-9]+$ && "${cache_r2:-}" =~ ^[0-9]+$ ]] || [ "$cache_r2" -le "$cache_r1" ]; then
    die "BENCH_CACHE_REQUESTS must be two request counts R1 R2 with R2 > R1"
fi
lua=$root/scripts/bench/sessions.lua
BETTER_AUTH_SECRET=$(head -c 32 /dev/urandom | base64)
export BETTER_AUTH_SECRET
unset BETTER_AUTH_SECRETS AUTH_SECRET BETTER_AUTH_URL BASE_URL NODE_ENV

skip() { case " ${BENCH_SKIP:-} " in *" $1 "*) return 0 ;; esac; return 1; }
now() { date +%s.%N; }
t_start=$(now)
commands=$out/commands.txt
: >"$commands"
record() { printf '%s\n' "$*" >>"$commands"; }

# Servers this script starts, stopped on exit (with-servers.sh then stops PostgreSQL and Redis).
pids=()
stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local pid
    for pid in "${pids[@]}"; do stop_pid "$pid"; done
}
trap cleanup EXIT

# start_server NAME CMD...: starts CMD in the background (stdout to $out/NAME.out), waits for
# its "LISTENING <port>" line, sets $server_pid and $server_port.
start_server() {
    local name=$1 i
    shift
    "$@" >"$out/$name.out" 2>"$out/$name.err" </dev/null &
    server_pid=$!
    pids+=("$server_pid")
    for ((i = 0; i < 600; i++)); do
        if grep -q '^LISTENING ' "$out/$name.out" 2>/dev/null; then
            server_port=$(awk '/^LISTENING /{print $2; exit}' "$out/$name.out")
            return 0
        fi
        kill -0 "$server_pid" 2>/dev/null || { cat "$out/$name.err" >&2; die "$name exited before listening"; }
        sleep 0.1
    done
    die "$name did not listen within 60 s"
}
stop_server() {
    stop_pid "$server_pid"
    local keep=() pid
    for pid in "${pids[@]}"; do [ "$pid" = "$server_pid" ] || keep+=("$pid"); done
    pids=("${keep[@]}")
    server_pid=
}

# run_wrk ID URL [COOKIES] [ALT_PATH] [DURATION] [WARM]: one wrk run, after a 2 s warm-up run
# unless WARM is 0; appends {"id":…, "load": the load average before it, "server": what the
# server process spent during the measured run (below), wrk's numbers} to $out/wrk.jsonl.
run_wrk() {
    local id=$1 url=$2 cookies=${3:-} alt=${4:-} duration=${5:-$wrk_duration} warm=${6:-1} line load before after
    load=$(loadavg)
    if [ "$warm" = 1 ]; then
        COOKIES_FILE=$cookies ALT_PATH=$alt wrk -t"$wrk_threads" -c"$wrk_conns" -d2s -s "$lua" "$url" >/dev/null 2>&1 || true
    fi
    before=$(server_usage)
    COOKIES_FILE=$cookies ALT_PATH=$alt wrk -t"$wrk_threads" -c"$wrk_conns" -d"$duration" --timeout 5s \
        -s "$lua" "$url" >"$out/wrk-$id.txt" 2>&1 || die "wrk $id failed: $(tail -3 "$out/wrk-$id.txt")"
    after=$(server_usage)
    line=$(sed -n 's/^WRK_JSON //p' "$out/wrk-$id.txt")
    [ -n "$line" ] || die "wrk $id printed no summary"
    echo "{\"id\":\"$id\",\"load\":\"$load\",$(usage_json "$before" "$after")${line#\{}" >>"$out/wrk.jsonl"
    log "wrk $id: $(python3 -c 'import json, sys
d = json.loads(sys.argv[1])
print("%.0f req/s, p50 %.2f ms, p99 %.2f ms, non-2xx %d" % (d["rps"], d["p50_us"] / 1000, d["p99_us"] / 1000, d["errors_status"]))' "$line")"
}

# run_quads BASE_ID BASE_URL BASE_COOKIES SUBJECT_ID SUBJECT_URL SUBJECT_COOKIES: $quads
# sequences base, subject, subject, base on one server ($quad_duration each; the first two
# runs warmed up), ids ID-qN-1 and ID-qN-2. This machine's speed drifts by a third within
# minutes (a shared virtual machine): each sequence's ratio compares runs seconds apart, and the
# report judges the median of the sequences' ratios.
run_quads() {
    local base=$1 base_url=$2 base_cookies=$3 subject=$4 subject_url=$5 subject_cookies=$6 q warm=1
    for q in $(seq "$quads"); do
        run_wrk "$base-q$q-1" "$base_url" "$base_cookies" "" "$quad_duration" "$warm"
        run_wrk "$subject-q$q-1" "$subject_url" "$subject_cookies" "" "$quad_duration" "$warm"
        run_wrk "$subject-q$q-2" "$subject_url" "$subject_cookies" "" "$quad_duration" 0
        run_wrk "$base-q$q-2" "$base_url" "$base_cookies" "" "$quad_duration" 0
        warm=0
    done
}

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
# server_usage: "CPU_TICKS PREEMPTIONS" of the running load_server ($server_pid, all its
# threads): user + system time in clock ticks, and involuntary context switches (the scheduler
# taking a core away, mostly for wrk, which shares both cores). Empty without a server.
server_usage() {
    local pid=${server_pid:-}
    [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 0
    # Fields 14 and 15 after the command name, which may hold spaces: count from the ")".
    echo "$(sed 's/.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}') $(cat /proc/"$pid"/task/*/status 2>/dev/null | awk '/^nonvoluntary_ctxt_switches/{n += $2} END {print n + 0}')"
}
# usage_json BEFORE AFTER: '"server":{"cpu_s":…,"preemptions":…},' for wrk.jsonl, or nothing.
usage_json() {
    [ -n "$1" ] && [ -n "$2" ] || return 0
    local t0 p0 t1 p1
    read -r t0 p0 <<<"$1"
    read -r t1 p1 <<<"$2"
    python3 -c 'import sys
t0, p0, t1, p1, hz = map(int, sys.argv[1:])
print("\"server\":{\"cpu_s\":%.2f,\"preemptions\":%d}," % ((t1 - t0) / hz, p1 - p0), end="")' "$t0" "$p0" "$t1" "$p1" "$(getconf CLK_TCK)"
}
# with_load: prefixes each JSON object on stdin with "load": the load average now.
with_load() {
    local load
    load=$(loadavg)
    sed "s/^{/{\"load\":\"$load\",/"
}
rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# ---------------------------------------------------------------- environment

{
    echo "started=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "nproc=$(nproc)"
    echo "cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
    echo "sha_ni=$(grep -qw sha_ni /proc/cpuinfo && echo yes || echo no)"
    echo "kernel=$(uname -sr)"
    echo "mem=$(awk '/^MemTotal:/{printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
    echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "rustc=$(rustc --version)"
    echo "cargo=$(cargo --version)"
    echo "node=$(node --version)"
    echo "better_auth=$(node -p "require('$TAS_TEST_NODE_INTEROP/node_modules/better-auth/package.json').version")"
    echo "wrk=$(wrk -v 2>&1 | head -n 1 | awk '{print $2}')"
    echo "valgrind=$(valgrind --version)"
    echo "postgres=$("$TAS_TEST_POSTGRES_BINDIR/postgres" --version | awk '{print $3}')"
    echo "redis=$(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')"
    echo "gnuplot=$(gnuplot --version)"
    echo "python=$(python3 --version)"
    echo "wrk_threads=$wrk_threads"
    echo "wrk_connections=$wrk_conns"
    echo "wrk_duration=$wrk_duration"
    echo "quads=$quads"
    echo "quad_duration=$quad_duration"
    echo "sessions=$sessions"
    echo "flat_sessions=$flat_sessions"
    echo "flat_seconds=$flat_seconds"
    echo "traffic_sizes=$traffic_sizes"
    echo "cache_sizes=$cache_sizes"
    echo "cache_requests=$cache_r1 $cache_r2"
} >"$out/env.txt"

# ---------------------------------------------------------------- 1. build

log "building benches and load_server (release profile)"
build_cmd=(cargo bench --all-features --no-run --message-format=json)
record "${build_cmd[*]}"
"${build_cmd[@]}" >"$out/build-benches.json" 2>"$out/build.log" || { tail -30 "$out/build.log" >&2; die "build failed"; }
example_cmd=(cargo build --profile bench --all-features --example load_server --message-format=json)
record "${example_cmd[*]}"
"${example_cmd[@]}" >"$out/build-example.json" 2>>"$out/build.log" || { tail -30 "$out/build.log" >&2; die "build failed"; }
executable() { # FILE TARGET-NAME
    python3 - "$1" "$2" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == sys.argv[2] and m.get("executable"):
        print(m["executable"])
        break
EOF
}
alloc_bin=$(executable "$out/build-benches.json" allocations)
latency_bin=$(executable "$out/build-benches.json" latency)
traffic_bin=$(executable "$out/build-benches.json" traffic)
server_bin=$(executable "$out/build-example.json" load_server)
for exe in "$alloc_bin" "$latency_bin" "$traffic_bin" "$server_bin"; do
    [ -x "$exe" ] || die "built executables not found (allocations, latency, traffic, load_server)"
done

# The load average when each phase starts goes into the report: this machine has 2 cores.
phase_load() { echo "loadavg_$1=$(loadavg)" >>"$out/env.txt"; }
wait_quiet=${BENCH_WAIT_QUIET:-0}
if [ "$wait_quiet" -gt 0 ]; then
    log "waiting up to $wait_quiet s for the load average to fall below 1.0"
    for ((i = 0; i < wait_quiet; i += 5)); do
        awk '{ exit !($1 < 1.0) }' /proc/loadavg && break
        sleep 5
    done
fi

# ---------------------------------------------------------------- 2. traffic (issue 17)

export CRITERION_HOME=$out/criterion
read -ra criterion_flags <<<"$criterion_args"
if ! skip traffic; then
    # One cargo bench run per size: each size gets its own load average, and a size's set-up
    # (up to a million sign-ins per system) is freed before the next one is built.
    : >"$out/traffic.log"
    # The sizes of BENCH_TRAFFIC_REPEAT_SIZES run BENCH_TRAFFIC_RUNS times, each in a process of
    # its own (new random tokens, hash seeds and heap): run to run, the overheads' ratio moved by
    # a tenth, more than the differences being judged. Runs after the first keep their criterion
    # results in criterion-traffic-runR.
    for n in $traffic_sizes; do
        runs=1
        case " $traffic_repeat " in *" $n "*) runs=$traffic_runs ;; esac
        for r in $(seq "$runs"); do
            home=$out/criterion suffix=''
            [ "$r" = 1 ] || home=$out/criterion-traffic-run$r suffix=_run$r
            log "traffic: $n live sessions, run $r of $runs ($criterion_args)"
            phase_load "traffic_$n$suffix"
            cmd=(cargo bench --all-features --bench traffic -- --noplot "${criterion_flags[@]}")
            record "TRAFFIC_SIZES=$n ${cmd[*]}   # run $r of $runs"
            CRITERION_HOME=$home TRAFFIC_SIZES=$n "${cmd[@]}" >>"$out/traffic.log" 2>&1 ||
                { tail -30 "$out/traffic.log" >&2; die "traffic ($n sessions) failed"; }
        done
    done
    grep -E '^traffic_[0-9]+/|time:' "$out/traffic.log" >&2 || true
fi

# ---------------------------------------------------------------- 3. criterion

if ! skip criterion; then
    log "criterion: overhead ($criterion_args)"
    phase_load criterion
    cmd=(cargo bench --all-features --bench overhead -- --noplot "${criterion_flags[@]}")
    record "${cmd[*]}"
    "${cmd[@]}" >"$out/criterion.log" 2>&1 || { tail -30 "$out/criterion.log" >&2; die "criterion failed"; }
    grep -E '^overhead/|time:' "$out/criterion.log" >&2 || true
fi

# ---------------------------------------------------------------- 4. allocations

if ! skip allocations; then
    log "allocations per request"
    record "cargo bench --all-features --bench allocations -- --json"
    "$alloc_bin" --json >"$out/allocations.jsonl" 2>"$out/allocations.err" || { cat "$out/allocations.err" >&2; die "allocations failed"; }
    # Where the valid-session path allocates, for the report's notes.
    "$alloc_bin" --trace tas_memory_valid_borrow >"$out/allocations-trace-valid.txt" 2>&1 || true
    "$alloc_bin" --trace tas_bad_signature >"$out/allocations-trace-bad-signature.txt" 2>&1 || true
fi

# ---------------------------------------------------------------- 5. callgrind

if ! skip callgrind; then
    n1=1000 n2=3000
    log "callgrind: instructions per request (N = $n1 and $n2)"
    phase_load callgrind
    record "valgrind --tool=callgrind --callgrind-out-file=F \$(allocations bench executable) --callgrind CASE N   # N = $n1, $n2; per request = (Ir($n2) - Ir($n1)) / $((n2 - n1))"
    : >"$out/callgrind.jsonl"
    for case in bare tas_anonymous tas_bad_signature tas_memory_valid tas_memory_valid_borrow tas_unknown_token tower_sessions_memory axum_login_memory; do
        irs=()
        for n in $n1 $n2; do
            # Without the Postgres and Redis cases: fewer connections to set up under valgrind.
            env -u TAS_TEST_POSTGRES_URL -u TAS_TEST_REDIS_URL \
                valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.$case.$n" \
                "$alloc_bin" --callgrind "$case" "$n" >"$out/callgrind.$case.$n.log" 2>&1 ||
                { tail -20 "$out/callgrind.$case.$n.log" >&2; die "callgrind $case failed"; }
            irs+=("$(awk '/^(summary|totals):/{print $2; exit}' "$out/callgrind.$case.$n")")
        done
        echo "{\"name\":\"$case\",\"n1\":$n1,\"n2\":$n2,\"ir1\":${irs[0]},\"ir2\":${irs[1]}}" >>"$out/callgrind.jsonl"
        log "callgrind $case: $(((irs[1] - irs[0]) / (n2 - n1))) instructions per request"
    done
    callgrind_annotate --inclusive=no "$out/callgrind.tas_memory_valid.$n2" >"$out/callgrind-annotate-valid.txt" 2>/dev/null || true
    callgrind_annotate --inclusive=no "$out/callgrind.tas_bad_signature.$n2" >"$out/callgrind-annotate-bad-signature.txt" 2>/dev/null || true
fi

# ---------------------------------------------------------------- 6. cache misses (issue 17)

if ! skip cache-misses; then
    # Valgrind simulates two levels: I1 and D1, then the last level (LL). On a virtual machine it
    # can read a last level from cpuid that the machine does not have (512 MiB, 2-way, on the one
    # of BENCHMARKS.md): give it the host's own from /sys when valgrind can take it (a power-of-two
    # number of sets); otherwise keep valgrind's choice. The report prints the one used.
    ll_opt=() ll_level=0 ll_dir=''
    for d in /sys/devices/system/cpu/cpu0/cache/index*; do
        [ -r "$d/level" ] || continue
        [ "$(cat "$d/type")" != Instruction ] || continue
        if [ "$(cat "$d/level")" -gt "$ll_level" ]; then ll_level=$(cat "$d/level") ll_dir=$d; fi
    done
    if [ -n "$ll_dir" ]; then
        ll_size=$(cat "$ll_dir/size")
        case $ll_size in
        *K) ll_size=$((${ll_size%K} * 1024)) ;;
        *M) ll_size=$((${ll_size%M} * 1048576)) ;;
        esac
        ll_ways=$(cat "$ll_dir/ways_of_associativity")
        ll_line=$(cat "$ll_dir/coherency_line_size")
        ll_sets=$((ll_size / (ll_ways * ll_line)))
        if [ "$ll_sets" -gt 0 ] && [ $((ll_sets & (ll_sets - 1))) -eq 0 ]; then
            ll_opt=("--LL=$ll_size,$ll_ways,$ll_line")
        fi
    fi
    ll_note="valgrind's default"
    [ ${#ll_opt[@]} -eq 0 ] || ll_note=${ll_opt[0]}
    echo "cache_ll=$ll_note" >>"$out/env.txt"
    log "cache-misses: callgrind --cache-sim=yes ${ll_opt[*]}; N = $cache_sizes; R = $cache_r1 and $cache_r2"
    phase_load cache_misses
    record "valgrind --tool=callgrind --cache-sim=yes ${ll_opt[*]} --toggle-collect='*Case::run*' --callgrind-out-file=F \$(traffic bench executable) --callgrind CASE N R   # R = $cache_r1, $cache_r2; per request = (X($cache_r2) - X($cache_r1)) / $((cache_r2 - cache_r1))"
    : >"$out/cache-misses.jsonl"
    for n in $cache_sizes; do
        for case in bare floor tas_memory tas_cached; do
            files=()
            for r in "$cache_r1" "$cache_r2"; do
                f=$out/cachesim.$case.$n.$r
                files+=("$f")
                # Events are collected inside `Case::run` only (the requests): the set-up's random
                # tokens and hash seeds would otherwise add thousands of misses of noise to each
                # run; the difference of two runs then cancels the checks made during set-up.
                valgrind --tool=callgrind --cache-sim=yes "${ll_opt[@]}" --toggle-collect='*Case::run*' \
                    --callgrind-out-file="$f" "$traffic_bin" --callgrind "$case" "$n" "$r" >"$f.log" 2>&1 ||
                    { tail -20 "$f.log" >&2; die "cache-misses: $case at $n sessions failed"; }
            done
            python3 "$root/scripts/bench/cachesim.py" "$case" "$n" "$cache_r1" "$cache_r2" "${files[@]}" \
                >>"$out/cache-misses.jsonl" || die "cache-misses: $case at $n sessions: no events (see ${files[1]}.log)"
            log "cache-misses $case at $n: $(python3 "$root/scripts/bench/cachesim.py" --summary "$out/cache-misses.jsonl")"
        done
    done
fi

# ---------------------------------------------------------------- 7. wrk, HTTP targets, latency, Better Auth

pg_base=${TAS_TEST_POSTGRES_URL%/*}
psql_cmd() { psql -q -v ON_ERROR_STOP=1 "$TAS_TEST_POSTGRES_URL" "$@"; }
: >"$out/wrk.jsonl"
: >"$out/latency.jsonl"

# store_env STORE: the environment load_server, latency and Better Auth share for STORE.
store_setup() {
    local store=$1
    db_url='' redis_url='' ba_db=''
    case $store in
    memory) ;;
    sqlite)
        db_url="sqlite://$out/sqlite/bench.db"
        ba_db="sqlite:$out/sqlite/bench.db"
        mkdir -p "$out/sqlite"
        ;;
    postgres)
        psql_cmd -c 'DROP DATABASE IF EXISTS tas_bench' -c 'CREATE DATABASE tas_bench'
        db_url="$pg_base/tas_bench"
        ba_db=$db_url
        ;;
    redis)
        redis_url=$TAS_TEST_REDIS_URL
        redis-cli -u "$TAS_TEST_REDIS_URL" FLUSHALL >/dev/null
        # Better Auth keeps users in its database even with secondary storage; sessions (with the
        # user embedded) are read from Redis only.
        ba_db="sqlite:$out/redis-users.db"
        ;;
    esac
}

# The CPUs this script may use (a cgroup may allow fewer than nproc reports), and the first.
cpus_allowed=$(python3 -c 'import os; print(",".join(map(str, sorted(os.sched_getaffinity(0)))))')
one_cpu=${cpus_allowed%%,*}

# pin_servers CPUS: PostgreSQL (the postmaster and its processes; new backends inherit it) and
# Redis may run on CPUS only.
pin_servers() {
    local pm rp p
    pm=$(head -1 "$TAS_TEST_POSTGRES_DATADIR/postmaster.pid")
    rp=$(cat "$TAS_TEST_REDIS_DIR/redis.pid")
    # The postmaster's children, from /proc (field 4 of stat is the parent's pid).
    for p in "$pm" $(awk -v pm="$pm" '$4 == pm { print $1 }' /proc/[0-9]*/stat 2>/dev/null) "$rp"; do
        taskset -a -p -c "$1" "$p" >/dev/null || die "taskset -p -c $1 $p failed"
    done
}

if ! skip wrk || ! skip http-targets; then
    phase_load wrk
    for store in memory sqlite postgres redis; do
        store_setup "$store"
        cookies=$out/cookies-$store.txt
        log "load_server: STORE=$store, seeding $sessions sessions"
        record "STORE=$store DATABASE_URL=… REDIS_URL=… SEED_SESSIONS=$sessions SEED_USERS=$sessions COOKIES_FILE=cookies-$store.txt WORKERS=2 target/release/examples/load_server"
        # One user per session (issue 17's traffic): no store shares user records between them.
        start_server "server-$store" env STORE="$store" DATABASE_URL="$db_url" REDIS_URL="$redis_url" \
            SEED_SESSIONS="$sessions" SEED_USERS="$sessions" COOKIES_FILE="$cookies" WORKERS=2 "$server_bin"
        base=http://127.0.0.1:$server_port
        # Issue 17's baseline: a route without the session layer answering /me's JSON (once).
        if [ "$store" = memory ] && ! skip http-targets; then
            run_wrk bare "$base/bare/me" "$cookies"
        fi
        if ! skip wrk; then
            run_wrk "tas-$store-anonymous" "$base/anonymous"
            run_wrk "tas-$store-authenticated" "$base/me" "$cookies"
        fi
        # Issue 17: the uncached SQLite store against a hand-written sqlx check of the same file,
        # the same sessions, before the refresh run rewrites them.
        if [ "$store" = sqlite ] && ! skip http-targets; then
            run_quads floor-sqlite "$base/floor/me" "$cookies" tas-sqlite-uncached "$base/me" "$cookies"
        fi
        skip wrk || run_wrk "tas-$store-refresh" "$base/refresh/me" "$cookies"
        stop_server

        # Issue 17: the same store behind CachedStore (default settings), the same sessions (the
        # memory store's live in the process: seeded again).
        if ! skip http-targets; then
            seed=0
            [ "$store" = memory ] && seed=$sessions
            log "load_server: STORE=$store CACHE=1"
            floor_memory=0
            [ "$store" = memory ] && floor_memory=1
            start_server "server-$store-cached" env STORE="$store" CACHE=1 DATABASE_URL="$db_url" REDIS_URL="$redis_url" \
                SEED_SESSIONS="$seed" SEED_USERS="$seed" COOKIES_FILE="$cookies" FLOOR_MEMORY="$floor_memory" \
                WORKERS=2 "$server_bin"
            # A bare route of the same server before and after, in A B B A order: the ratio
            # compares like with like, whatever the load did meanwhile. It gets the same requests
            # (the same cookies, in the same order) and ignores them: only the layer differs.
            run_quads "bare-$store" "http://127.0.0.1:$server_port/bare/me" "$cookies" \
                "tas-$store-cached" "http://127.0.0.1:$server_port/me" "$cookies"
            # What the 0.85 target leaves to any session check on this machine: the traffic
            # bench's hand-rolled floor over HTTP against the bare route; and /me against the
            # same floor reading the same rows as the cache (the store's own, not copies).
            if [ "$floor_memory" = 1 ]; then
                run_quads bare-floor "http://127.0.0.1:$server_port/bare/me" "$cookies" \
                    floor-memory "http://127.0.0.1:$server_port/floor/memory/me" "$cookies"
                run_quads floor-memory-shared "http://127.0.0.1:$server_port/floor/memory/shared/me" "$cookies" \
                    tas-memory-cached-vs-shared "http://127.0.0.1:$server_port/me" "$cookies"
            fi
            stop_server
        fi

        [ "$store" = memory ] && continue
        skip wrk && continue
        skip better-auth && continue

        # In-process: one lookup through the layer vs Better Auth's getSession, same database.
        log "latency: $store, tower-auth-session vs Better Auth getSession, same database"
        lat_url=$db_url
        [ "$store" = redis ] && lat_url=$redis_url
        LAT_STORE=$store LAT_URL=$lat_url COOKIES_FILE=$cookies "$latency_bin" 2>"$out/latency-$store.err" | with_load >>"$out/latency.jsonl" ||
            { cat "$out/latency-$store.err" >&2; die "latency $store failed"; }
        BA_DB=$ba_db BA_REDIS_URL=$redis_url COOKIES_FILE=$cookies \
            node "$root/scripts/bench/ba-getsession.mjs" 2>"$out/ba-getsession-$store.err" | with_load >>"$out/latency.jsonl" ||
            { cat "$out/ba-getsession-$store.err" >&2; die "ba-getsession $store failed"; }
        # The same pair with both sides and the database server on CPU 0: what the lookup costs
        # when a thread hand-off is a context switch rather than a wake-up on an idle CPU.
        if [ "$cpus_allowed" != "$one_cpu" ]; then
            log "latency: $store again, everything pinned to CPU $one_cpu"
            pin_servers "$one_cpu"
            LAT_STORE=$store LAT_URL=$lat_url COOKIES_FILE=$cookies taskset -c "$one_cpu" "$latency_bin" 2>>"$out/latency-$store.err" |
                sed 's/^{/{"cpus":"one",/' | with_load >>"$out/latency.jsonl" ||
                { cat "$out/latency-$store.err" >&2; die "latency $store (one CPU) failed"; }
            BA_DB=$ba_db BA_REDIS_URL=$redis_url COOKIES_FILE=$cookies \
                taskset -c "$one_cpu" node "$root/scripts/bench/ba-getsession.mjs" 2>>"$out/ba-getsession-$store.err" |
                sed 's/^{/{"cpus":"one",/' | with_load >>"$out/latency.jsonl" ||
                { cat "$out/ba-getsession-$store.err" >&2; die "ba-getsession $store (one CPU) failed"; }
            pin_servers "$cpus_allowed"
        fi

        # Over HTTP: a Better Auth server on the same database.
        for kind in authenticated refresh; do
            update_age=''
            [ "$kind" = refresh ] && update_age=0
            log "Better Auth server: $store ($kind)"
            start_server "better-auth-$store-$kind" env BA_DB="$ba_db" BA_REDIS_URL="$redis_url" BA_MIGRATE=1 \
                BA_UPDATE_AGE="$update_age" BA_IGNORE_STDIN=1 BA_LOG_LEVEL=error PORT=0 \
                node "$TAS_TEST_NODE_INTEROP/server.mjs"
            base=http://127.0.0.1:$server_port/api/auth/get-session
            if [ "$kind" = authenticated ]; then
                run_wrk "ba-$store-anonymous" "$base"
                run_wrk "ba-$store-authenticated" "$base" "$cookies"
            else
                run_wrk "ba-$store-refresh" "$base" "$cookies"
            fi
            stop_server
        done
    done
    record "STORE=STORE CACHE=1 SEED_SESSIONS=0 COOKIES_FILE=cookies-STORE.txt WORKERS=2 target/release/examples/load_server   # the same database and sessions (memory: seeded again); wrk on /bare/me, /me, /me, /bare/me (A B B A), $quads times, $quad_duration each"
    record "STORE=sqlite … load_server; wrk on /floor/me, /me, /me, /floor/me (A B B A), $quads times, $quad_duration each"
    record "STORE=memory CACHE=1 FLOOR_MEMORY=1 … load_server; wrk on /bare/me, /floor/memory/me, /floor/memory/me, /bare/me and on /floor/memory/shared/me, /me, /me, /floor/memory/shared/me (A B B A), $quads times each, $quad_duration each"
    record "wrk -t$wrk_threads -c$wrk_conns -d$wrk_duration --timeout 5s -s scripts/bench/sessions.lua URL   # COOKIES_FILE=… for /me, /refresh/me, /floor/me (sqlite), /bare/me (which ignores them); none for /anonymous; each after a 2 s warm-up run, except the A B B A sequences: only their first two runs"
    record "LAT_STORE=STORE LAT_URL=URL COOKIES_FILE=cookies-STORE.txt cargo bench --all-features --bench latency   # then again under taskset -c CPU, with PostgreSQL and Redis pinned to the same CPU (taskset -a -p)"
    record "BA_DB=… [BA_REDIS_URL=…] COOKIES_FILE=cookies-STORE.txt node scripts/bench/ba-getsession.mjs"
    record "BA_DB=… [BA_REDIS_URL=…] BA_MIGRATE=1 [BA_UPDATE_AGE=0] node tests/interop/server.mjs   # then wrk on /api/auth/get-session"
fi

# ---------------------------------------------------------------- 8. memory flatness

if ! skip memory; then
    cookies=$out/cookies-flat.txt
    phase_load memory
    log "memory flatness: $flat_sessions sessions, ${flat_seconds} s of /me and /refresh/me"
    start_server server-flat env STORE=memory SEED_SESSIONS="$flat_sessions" COOKIES_FILE="$cookies" WORKERS=2 "$server_bin"
    pid=$server_pid
    base=http://127.0.0.1:$server_port
    samples=$out/memory.tsv
    printf 't_s\trss_kb\n0\t%s\n' "$(rss_kb "$pid")" >"$samples"
    record "STORE=memory SEED_SESSIONS=$flat_sessions WORKERS=2 load_server; wrk -t$wrk_threads -c$wrk_conns -d${flat_seconds}s (ALT_PATH=/refresh/me: half the requests refresh) over the $flat_sessions sessions; VmRSS every 5 s"
    COOKIES_FILE=$cookies ALT_PATH=/refresh/me wrk -t"$wrk_threads" -c"$wrk_conns" -d"${flat_seconds}s" --timeout 5s \
        -s "$lua" "$base/me" >"$out/wrk-flat.txt" 2>&1 &
    wrk_pid=$!
    t0=$(now)
    while kill -0 "$wrk_pid" 2>/dev/null; do
        sleep 5
        printf '%s\t%s\n' "$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }')" "$(rss_kb "$pid")" >>"$samples"
    done
    wait "$wrk_pid" || die "wrk (memory flatness) failed"
    printf 'end\t%s\n' "$(rss_kb "$pid")" >>"$samples"
    sed -n 's/^WRK_JSON //p' "$out/wrk-flat.txt" >"$out/wrk-flat.json"
    stop_server
fi

echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/env.txt"
echo "elapsed_s=$(awk -v a="$t_start" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }')" >>"$out/env.txt"

# ---------------------------------------------------------------- 9. report

if [ "${BENCH_NO_REPORT:-0}" != 1 ]; then
    python3 "$root/scripts/bench/report.py" "$out" "$root" "$criterion_args" ||
        die "report failed"
    log "wrote BENCHMARKS.md and benches/overhead.png"
fi
log "done in $(awk -v a="$t_start" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }') s; raw results in $out"
