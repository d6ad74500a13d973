#!/usr/bin/env bash
# Run a command with throwaway test servers on 127.0.0.1, then stop them.
#
# Usage: scripts/with-servers.sh CMD [ARGS...]
#
# Starts PostgreSQL and Redis on random free ports (installing them with apt-get when
# running as root and they are missing), prepares the Node interop harness when
# tests/interop/package.json exists, exports the TAS_TEST_* variables below, runs CMD,
# and stops everything on exit (success, failure or signal). Exits with CMD's status.
#
#   TAS_TEST_POSTGRES_URL        postgres://postgres@127.0.0.1:PORT/postgres (superuser, trust auth)
#   TAS_TEST_POSTGRES_CTL        executable (runs scripts/pg.sh): start | stop [fast|immediate|smart]
#                                | restart [STOP_MODE] | status (same port and flags)
#   TAS_TEST_POSTGRES_{PORT,DATADIR,BINDIR,SOCKETDIR,LOG}
#   TAS_TEST_REDIS_URL           redis://127.0.0.1:PORT/
#   TAS_TEST_REDIS_CTL           executable: start | stop | restart | status (same port)
#   TAS_TEST_REDIS_{PORT,DIR}
#   TAS_TEST_NODE_INTEROP        absolute path of tests/interop, node_modules installed
#   TAS_REQUIRE_SERVERS=1        tests must fail, not skip, when a server URL is missing
#
# Internal mode used by TAS_TEST_REDIS_CTL: with-servers.sh --redis-ctl start|stop|restart|status
set -euo pipefail

log() { echo "[with-servers] $*" >&2; }
die() { log "error: $*"; exit 1; }

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

# ---------------------------------------------------------------- helpers

# True when PID is a live (non-zombie) process. A stopped daemonized Redis can stay a
# zombie for a while because nobody reaps it, so `kill -0` alone is not enough.
alive() {
    local pid=$1 stat
    [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

# True when something accepts TCP connections on 127.0.0.1:PORT.
port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

random_free_port() {
    local p i
    for ((i = 0; i < 50; i++)); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 40001))
        if ! port_in_use "$p"; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# ---------------------------------------------------------------- redis

redis_pid() {
    local pidfile=$TAS_TEST_REDIS_DIR/redis.pid
    [ -s "$pidfile" ] && cat "$pidfile" 2>/dev/null
}

redis_start() {
    local port=$TAS_TEST_REDIS_PORT dir=$TAS_TEST_REDIS_DIR pid got i
    if pid=$(redis_pid) && alive "$pid"; then
        log "redis already running (pid $pid)"
        return 0
    fi
    rm -f "$dir/redis.pid"
    : >"$dir/redis.log"
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize yes --pidfile "$dir/redis.pid" --dir "$dir" --logfile "$dir/redis.log" \
        >/dev/null || return 1
    # The pidfile is written only after the listening socket is bound. Make sure the
    # Redis answering on the port is ours, not another one that owns the port.
    for ((i = 0; i < 100; i++)); do
        if pid=$(redis_pid); then
            got=$(redis-cli -h 127.0.0.1 -p "$port" INFO server 2>/dev/null |
                tr -d '\r' | sed -n 's/^process_id://p') || true
            [ "$got" = "$pid" ] && return 0
        fi
        if grep -qiE 'could not create server tcp listening socket|address already in use' \
            "$dir/redis.log" 2>/dev/null; then
            break
        fi
        sleep 0.05
    done
    redis_stop
    return 1
}

redis_stop() {
    local pid i
    pid=$(redis_pid) || return 0
    if alive "$pid" && grep -qa redis "/proc/$pid/cmdline" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            alive "$pid" || break
            sleep 0.1
        done
        if alive "$pid"; then
            log "redis $pid did not stop after 10 s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            for ((i = 0; i < 50; i++)); do
                alive "$pid" || break
                sleep 0.1
            done
        fi
    fi
    rm -f "$TAS_TEST_REDIS_DIR/redis.pid"
    ! alive "$pid"
}

if [ "${1:-}" = --redis-ctl ]; then
    : "${TAS_TEST_REDIS_PORT:?TAS_TEST_REDIS_PORT is not set}"
    : "${TAS_TEST_REDIS_DIR:?TAS_TEST_REDIS_DIR is not set}"
    case ${2:-} in
    start) redis_start || die "redis did not start on 127.0.0.1:$TAS_TEST_REDIS_PORT (see $TAS_TEST_REDIS_DIR/redis.log)" ;;
    stop) redis_stop ;;
    restart) redis_stop && { redis_start || die "redis did not restart on 127.0.0.1:$TAS_TEST_REDIS_PORT"; } ;;
    status)
        if pid=$(redis_pid) && alive "$pid"; then echo "running (pid $pid) on 127.0.0.1:$TAS_TEST_REDIS_PORT"; else echo stopped; exit 3; fi
        ;;
    *) echo "usage: TAS_TEST_REDIS_CTL start | stop | restart | status" >&2; exit 2 ;;
    esac
    exit 0
fi

[ $# -gt 0 ] || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }

# ---------------------------------------------------------------- packages

interop_dir=$REPO_ROOT/tests/interop
want_node=0
[ -f "$interop_dir/package.json" ] && want_node=1

pg_bindir() {
    local d
    d=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/initdb' 2>/dev/null | sort -V | tail -n 1)
    [ -n "$d" ] && dirname "$d"
}

missing=()
pg_bindir >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null && command -v redis-cli >/dev/null || missing+=(redis-server)
if [ "$want_node" = 1 ]; then
    command -v node >/dev/null || missing+=(nodejs npm)
    # better-sqlite3 is compiled from source (node-gyp).
    for tool in make g++ python3; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
fi
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || die "missing packages: ${missing[*]}; install them (apt-get install ${missing[*]}) or run as root"
    command -v apt-get >/dev/null || die "missing packages: ${missing[*]} and apt-get is not available"
    log "installing: ${missing[*]}"
    # Keep package maintainer scripts from starting system services (e.g. a cluster on 5432).
    made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        made_policy=1
    fi
    apt_rc=0
    {
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q &&
            apt-get install -y -q --no-install-recommends "${missing[@]}"
    } </dev/null >&2 || apt_rc=$?
    [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
    [ "$apt_rc" = 0 ] || die "apt-get install ${missing[*]} failed"
fi
PG_BINDIR=$(pg_bindir) || die "PostgreSQL binaries not found under /usr/lib/postgresql/*/bin"
if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' OS user"
fi

# ---------------------------------------------------------------- cleanup

SESSION_DIR=
PG_STARTED=0
# shellcheck disable=SC2317 # invoked from the EXIT trap
cleanup() {
    local rc=$? i
    trap - EXIT INT TERM HUP
    set +e
    if [ -n "${CHILD:-}" ] && alive "$CHILD"; then
        log "stopping the command (pid $CHILD)"
        kill -TERM "$CHILD" 2>/dev/null
        for ((i = 0; i < 100; i++)); do
            alive "$CHILD" || break
            sleep 0.1
        done
        alive "$CHILD" && kill -KILL "$CHILD" 2>/dev/null
    fi
    if [ "$PG_STARTED" = 1 ] || [ -e "${TAS_TEST_POSTGRES_DATADIR:-/nonexistent}/postmaster.pid" ]; then
        "$SCRIPT_DIR/pg.sh" stop immediate || log "warning: could not stop PostgreSQL"
    fi
    if [ -n "${TAS_TEST_REDIS_DIR:-}" ]; then
        redis_stop || log "warning: could not stop Redis"
    fi
    if [ -n "$SESSION_DIR" ] && [ -d "$SESSION_DIR" ]; then
        rm -rf "$SESSION_DIR"
    fi
    log "servers stopped; exit status $rc"
    exit "$rc"
}
# shellcheck disable=SC2317 # invoked from the signal traps
on_signal() { # SIGNAL EXIT_STATUS
    # shellcheck disable=SC2064 # expand now: a second signal exits without waiting for CMD
    trap "exit $2" INT TERM HUP
    if [ -n "$CHILD" ] && alive "$CHILD"; then
        log "got SIG$1; stopping the command"
        kill -s "$1" "$CHILD" 2>/dev/null || true
        wait "$CHILD" 2>/dev/null || true
    fi
    exit "$2"
}
CHILD=
trap cleanup EXIT
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM
trap 'on_signal HUP 129' HUP

t0=$(date +%s.%N)
SESSION_DIR=$(mktemp -d /tmp/tas-servers.XXXXXX)
chmod 755 "$SESSION_DIR"

# ---------------------------------------------------------------- node interop

if [ "$want_node" = 1 ]; then
    interop_hash() {
        (cd "$interop_dir" && { node --version; cat package.json; cat package-lock.json 2>/dev/null || true; } | sha256sum | cut -d' ' -f1)
    }
    if [ -f "$interop_dir/node_modules/.lock-hash" ] &&
        [ "$(cat "$interop_dir/node_modules/.lock-hash")" = "$(interop_hash)" ]; then
        log "node interop: node_modules up to date"
    else
        if [ -f "$interop_dir/package-lock.json" ]; then
            npm_cmd=(npm ci)
        else
            log "warning: $interop_dir/package-lock.json is missing; running 'npm install' (commit the lockfile)"
            npm_cmd=(npm install)
        fi
        log "node interop: ${npm_cmd[*]} (compiles better-sqlite3; may take ~90 s)"
        (cd "$interop_dir" &&
            npm_config_build_from_source=better-sqlite3 npm_config_nodedir=/usr \
                "${npm_cmd[@]}" --no-audit --no-fund --loglevel=error </dev/null >&2) ||
            die "node interop: ${npm_cmd[*]} failed in $interop_dir"
        interop_hash >"$interop_dir/node_modules/.lock-hash"
    fi
    export TAS_TEST_NODE_INTEROP=$interop_dir
else
    log "node interop: tests/interop/package.json not found; skipping"
fi

# ---------------------------------------------------------------- postgres

pg_dir=$SESSION_DIR/pg
mkdir -p "$pg_dir"
if [ "$(id -u)" -eq 0 ]; then
    chown postgres:postgres "$pg_dir"
    initdb_runner=(runuser -u postgres --)
else
    initdb_runner=()
fi
chmod 755 "$pg_dir"
export TAS_TEST_POSTGRES_BINDIR=$PG_BINDIR
export TAS_TEST_POSTGRES_DATADIR=$pg_dir/data
export TAS_TEST_POSTGRES_SOCKETDIR=$pg_dir
export TAS_TEST_POSTGRES_LOG=$pg_dir/postgres.log
(cd / && "${initdb_runner[@]}" "$PG_BINDIR/initdb" -D "$TAS_TEST_POSTGRES_DATADIR" \
    -A trust -U postgres -E UTF8 --locale=C --no-sync >"$pg_dir/initdb.log" 2>&1) ||
    { cat "$pg_dir/initdb.log" >&2; die "initdb failed"; }

for ((attempt = 1; ; attempt++)); do
    TAS_TEST_POSTGRES_PORT=$(random_free_port) || die "no free port found for PostgreSQL"
    export TAS_TEST_POSTGRES_PORT
    PG_STARTED=1
    if "$SCRIPT_DIR/pg.sh" start 2>"$pg_dir/start.err"; then
        break
    fi
    "$SCRIPT_DIR/pg.sh" stop immediate 2>/dev/null || true
    PG_STARTED=0
    if [ "$attempt" -ge 5 ]; then
        cat "$pg_dir/start.err" >&2
        die "PostgreSQL did not start after $attempt attempts"
    fi
    log "PostgreSQL did not start on port $TAS_TEST_POSTGRES_PORT; retrying on another port"
done
export TAS_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$TAS_TEST_POSTGRES_PORT/postgres
# ctl executables have this session's values baked in, so they also work from a
# Command whose environment was cleared.
export TAS_TEST_POSTGRES_CTL=$pg_dir/pg-ctl
{
    echo '#!/usr/bin/env bash'
    for v in PORT DATADIR BINDIR SOCKETDIR LOG; do
        v=TAS_TEST_POSTGRES_$v
        printf 'export %s=%q\n' "$v" "${!v}"
    done
    printf 'exec bash %q "$@"\n' "$SCRIPT_DIR/pg.sh"
} >"$TAS_TEST_POSTGRES_CTL"
chmod 755 "$TAS_TEST_POSTGRES_CTL"
log "PostgreSQL $("$PG_BINDIR/postgres" --version | awk '{print $3}') on 127.0.0.1:$TAS_TEST_POSTGRES_PORT (data $TAS_TEST_POSTGRES_DATADIR)"

# ---------------------------------------------------------------- redis

export TAS_TEST_REDIS_DIR=$SESSION_DIR/redis
mkdir -p "$TAS_TEST_REDIS_DIR"
for ((attempt = 1; ; attempt++)); do
    TAS_TEST_REDIS_PORT=$(random_free_port) || die "no free port found for Redis"
    export TAS_TEST_REDIS_PORT
    redis_start && break
    if [ "$attempt" -ge 5 ]; then
        tail -n 20 "$TAS_TEST_REDIS_DIR/redis.log" >&2 || true
        die "Redis did not start after $attempt attempts"
    fi
    log "Redis did not start on port $TAS_TEST_REDIS_PORT; retrying on another port"
done
export TAS_TEST_REDIS_URL=redis://127.0.0.1:$TAS_TEST_REDIS_PORT/
export TAS_TEST_REDIS_CTL=$TAS_TEST_REDIS_DIR/redis-ctl
{
    echo '#!/usr/bin/env bash'
    printf 'export TAS_TEST_REDIS_PORT=%q TAS_TEST_REDIS_DIR=%q\n' "$TAS_TEST_REDIS_PORT" "$TAS_TEST_REDIS_DIR"
    printf 'exec bash %q --redis-ctl "$@"\n' "$SCRIPT_DIR/with-servers.sh"
} >"$TAS_TEST_REDIS_CTL"
chmod 755 "$TAS_TEST_REDIS_CTL"
log "Redis $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on 127.0.0.1:$TAS_TEST_REDIS_PORT (pid $(redis_pid))"

export TAS_REQUIRE_SERVERS=1
log "servers ready in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s; running: $*"

# ---------------------------------------------------------------- run

# CMD runs in the background so that a signal sent to this script alone (e.g. a CI
# timeout's SIGTERM) is handled at once: it is forwarded to CMD, then cleanup runs.
# Background jobs of a non-interactive shell start with SIGINT/SIGQUIT ignored and
# stdin on /dev/null; `env --default-signal` and `<&0` undo both.
if env --default-signal=INT,QUIT true 2>/dev/null; then
    env --default-signal=INT,QUIT "$@" <&0 &
else
    "$@" <&0 &
fi
CHILD=$!
rc=0
wait "$CHILD" || rc=$?
CHILD=
exit "$rc"
