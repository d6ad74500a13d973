#!/usr/bin/env bash
# Run a command with throwaway test servers on 127.0.0.1, then stop them.
#
# Usage: scripts/with-servers.sh CMD [ARGS...]
#
# Starts every test server below on random free ports of 127.0.0.1 (installing missing
# Debian packages with one apt-get call when running as root), prepares the Node interop
# harness when tests/interop/package.json exists, exports the TAS_TEST_* variables below,
# runs CMD, and stops everything by PID on exit (success, failure or signal). Exits with
# CMD's status. A server that cannot start is an error, never a skip. The session's files
# (data, logs, certificates) live in one tas-servers.XXXXXX directory, removed on exit: in
# /dev/shm when it is a tmpfs with at least 2 GiB free, else in /tmp; TAS_SERVERS_TMPDIR=DIR
# overrides. (Creating files on this machine's ext4 gets slow while a build writes: 1,000
# empty files took 0.2-0.9 s there against 0.01 s on tmpfs, initdb 1.3 s against 0.4 s;
# initdb, mariadb-install-db and every CREATE DATABASE create hundreds of files.)
#
# PostgreSQL (plaintext; superuser postgres, trust auth):
#   TAS_TEST_POSTGRES_URL        postgres://postgres@127.0.0.1:PORT/postgres
#   TAS_TEST_POSTGRES_CTL        executable (runs scripts/pg.sh): start | stop [fast|immediate|smart]
#                                | restart [STOP_MODE] | status (same port and flags)
#   TAS_TEST_POSTGRES_{PORT,DATADIR,BINDIR,SOCKETDIR,LOG}
# PostgreSQL, TLS only (a second cluster; plaintext TCP is refused by pg_hba.conf; its
# certificate names only IP:127.0.0.1, so host `localhost` fails sslmode=verify-full):
#   TAS_TEST_POSTGRES_TLS_URL    postgres://postgres@127.0.0.1:PORT/postgres (no sslmode: add
#                                ?sslmode=verify-full&sslrootcert=$TAS_TEST_TLS_CA)
#   TAS_TEST_POSTGRES_TLS_PORT
# pgbouncer 1.18 (transaction pooling, default_pool_size 2, wildcard database) in front
# of the plaintext PostgreSQL; refuses unknown startup parameters such as `options`:
#   TAS_TEST_PGBOUNCER_URL       postgres://postgres@127.0.0.1:PORT/postgres
#   TAS_TEST_PGBOUNCER_STATEMENT_URL  postgres://postgres@127.0.0.1:PORT/tas_statement (the same
#                                server's `postgres` database, in statement pooling mode)
# Redis:
#   TAS_TEST_REDIS_URL           redis://127.0.0.1:PORT/
#   TAS_TEST_REDIS_CTL           executable: start | stop | restart | status (same port)
#   TAS_TEST_REDIS_{PORT,DIR}
#   TAS_TEST_REDIS_TLS_URL       rediss://127.0.0.1:PORT/ (TLS only; certificate names
#                                IP:127.0.0.1 and DNS:localhost; no client certificate)
#   TAS_TEST_REDIS_CLUSTER_URLS  redis://127.0.0.1:P1/,redis://127.0.0.1:P2/,redis://127.0.0.1:P3/
#                                (3-master Redis Cluster, cluster_state:ok, cluster-node-timeout
#                                3000 ms)
#   TAS_TEST_REDIS_CLUSTER_REPLICA_URL  redis://127.0.0.1:P4/ (a replica of P1's master, link up;
#                                a test that fails it over puts the roles back)
#   TAS_TEST_REDIS_TLS_CLUSTER_URLS  rediss://127.0.0.1:P1/,… (3-master Redis Cluster over TLS
#                                only: tls-cluster yes, plaintext port 0; certificate names
#                                IP:127.0.0.1 and DNS:localhost, also for clientAuth (the bus))
#   TAS_TEST_REDIS_SENTINEL_URLS redis://127.0.0.1:PORT/ (one Redis Sentinel watching a master
#                                and its replica as TAS_TEST_REDIS_SENTINEL_MASTER, "tas";
#                                down-after 2000 ms; which server is the master is the
#                                Sentinel's to say: a failover test leaves them swapped)
#   TAS_TEST_REDIS_TLS_SENTINEL_URLS rediss://127.0.0.1:PORT/ (the same over TLS only: the
#                                Sentinel, the master and the replica; certificate names
#                                IP:127.0.0.1)
# MariaDB 10.11 (root without password over TCP; TLS available, not required; server
# character set utf8mb4; no database made for the tests):
#   TAS_TEST_MYSQL_URL           mysql://root@127.0.0.1:PORT/
#   TAS_TEST_MYSQL_PORT
# TLS (throwaway CAs made with openssl, PEM files; ECDSA P-256 keys, valid 30 days):
#   TAS_TEST_TLS_CA              CA certificate that signed every server certificate above
#   TAS_TEST_TLS_UNTRUSTED_CA    an unrelated CA certificate that signed nothing (a wrong root)
# Other:
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

# shellcheck source=servers/lib.sh
. "$SCRIPT_DIR/servers/lib.sh"

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

t0=$(date +%s.%N)
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

interop_dir=$REPO_ROOT/tests/interop
want_node=0
[ -f "$interop_dir/package.json" ] && want_node=1

pg_bindir() {
    local d
    d=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/initdb' 2>/dev/null | sort -V | tail -n 1)
    [ -n "$d" ] && dirname "$d"
}

# have CMD: CMD is on PATH or in an sbin directory (not on a non-root user's PATH).
have() {
    command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]
}

missing=()
pg_bindir >/dev/null || missing+=(postgresql)
have psql || missing+=(postgresql-client)
have redis-server && have redis-cli || missing+=(redis-server)
have pgbouncer || missing+=(pgbouncer)
have mariadbd && have mariadb-install-db && have mariadb || missing+=(mariadb-server mariadb-client)
have openssl || missing+=(openssl)
have setpriv && have setsid || missing+=(util-linux)
if [ "$want_node" = 1 ]; then
    have node || missing+=(nodejs npm)
    # better-sqlite3 is compiled from source (node-gyp).
    for tool in make g++ python3; do
        have "$tool" || missing+=("$tool")
    done
fi

# PIDs of MariaDB server processes started by a package's maintainer scripts with the
# Debian service configuration (not by a test harness, which passes its own datadir).
debian_mariadb_pids() {
    local f pid comm cmd
    for f in /proc/[0-9]*/comm; do
        pid=${f#/proc/}
        pid=${pid%/comm}
        comm=$(cat "$f" 2>/dev/null) || continue
        case $comm in mariadbd | mysqld | mysqld_safe | mariadbd-safe) ;; *) continue ;; esac
        cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || continue
        case $comm:$cmd in
        mysqld_safe:* | mariadbd-safe:* | *:*/var/lib/mysql* | *:*/run/mysqld*) echo "$pid" ;;
        *) listens "$pid" 3306 && echo "$pid" ;;
        esac
    done
    return 0
}

if [ ${#missing[@]} -gt 0 ]; then
    [ "$AS_ROOT" = 1 ] || die "missing packages: ${missing[*]}; install them (apt-get install ${missing[*]}) or run as root"
    command -v apt-get >/dev/null || die "missing packages: ${missing[*]} and apt-get is not available"
    log "installing: ${missing[*]}"
    t_apt=$(date +%s.%N)
    mariadb_before=" $(debian_mariadb_pids | tr '\n' ' ') "
    # Keep package maintainer scripts from starting system services (e.g. a cluster on 5432,
    # a MariaDB on 3306).
    made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        made_policy=1
    fi
    apt_rc=0
    {
        export DEBIAN_FRONTEND=noninteractive
        # Wait for the dpkg lock instead of failing when another apt-get is running.
        apt-get -o DPkg::Lock::Timeout=300 update -q &&
            apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "${missing[@]}"
    } </dev/null >&2 || apt_rc=$?
    [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
    [ "$apt_rc" = 0 ] || die "apt-get install ${missing[*]} failed"
    # Belt and braces: a MariaDB the package's postinst left running (on 3306) is stopped.
    for pid in $(debian_mariadb_pids); do
        case $mariadb_before in *" $pid "*) continue ;; esac
        log "warning: the package installation left $(cat "/proc/$pid/comm" 2>/dev/null) (pid $pid) running; stopping it"
        stop_pid_list 30 "$pid" "$(cat "/proc/$pid/comm" 2>/dev/null)" ||
            die "could not stop $pid left running by the package installation"
    done
    log "packages installed in $(elapsed "$t_apt") s"
fi
PG_BINDIR=$(pg_bindir) || die "PostgreSQL binaries not found under /usr/lib/postgresql/*/bin"
if [ "$AS_ROOT" = 1 ]; then
    for u in postgres mysql; do
        id "$u" >/dev/null 2>&1 || die "running as root but there is no '$u' OS user"
    done
fi

# ---------------------------------------------------------------- cleanup

SESSION_DIR=
PG_STARTED=0
PG_TLS_STARTED=0
PG_TLS_DIR=
# shellcheck disable=SC2317 # invoked from the EXIT trap
cleanup() {
    local rc=$? i
    trap - EXIT
    # Finish the cleanup even if another signal arrives (every step below is bounded).
    trap '' INT TERM HUP
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
    stop_helpers
    # SIGTERM to the servers started in the background first, so that they shut down
    # while the PostgreSQL clusters and the first Redis are stopped.
    for ((i = 0; i < ${#SRV_PIDS[@]}; i++)); do
        alive_as "${SRV_PIDS[i]}" "${SRV_COMMS[i]}" && kill -TERM "${SRV_PIDS[i]}" 2>/dev/null
    done
    if [ "$PG_STARTED" = 1 ] || [ -e "${TAS_TEST_POSTGRES_DATADIR:-/nonexistent}/postmaster.pid" ]; then
        "$SCRIPT_DIR/pg.sh" stop immediate || log "warning: could not stop PostgreSQL"
    fi
    if [ -n "$PG_TLS_DIR" ] && { [ "$PG_TLS_STARTED" = 1 ] || [ -e "$PG_TLS_DIR/data/postmaster.pid" ]; }; then
        pg_tls_ctl stop immediate || log "warning: could not stop the TLS PostgreSQL"
    fi
    if [ -n "${TAS_TEST_REDIS_DIR:-}" ]; then
        redis_stop || log "warning: could not stop Redis"
    fi
    stop_registered_servers || log "warning: could not stop every server: ${SRV_NAMES[*]}"
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

session_base() {
    local free
    if [ -n "${TAS_SERVERS_TMPDIR:-}" ]; then
        echo "$TAS_SERVERS_TMPDIR"
        return 0
    fi
    if [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ] && [ -w /dev/shm ]; then
        free=$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 { print $4 }')
        if [ "${free:-0}" -ge $((2 * 1024 * 1024)) ]; then
            echo /dev/shm
            return 0
        fi
    fi
    echo /tmp
}

t_servers=$(date +%s.%N)
SESSION_DIR=$(mktemp -d "$(session_base)/tas-servers.XXXXXX") || die "could not make the session directory"
chmod 755 "$SESSION_DIR"
log "session directory $SESSION_DIR"

# shellcheck source=servers/tls.sh
. "$SCRIPT_DIR/servers/tls.sh"
# shellcheck source=servers/postgres-tls.sh
. "$SCRIPT_DIR/servers/postgres-tls.sh"
# shellcheck source=servers/pgbouncer.sh
. "$SCRIPT_DIR/servers/pgbouncer.sh"
# shellcheck source=servers/redis-extra.sh
. "$SCRIPT_DIR/servers/redis-extra.sh"
# shellcheck source=servers/mariadb.sh
. "$SCRIPT_DIR/servers/mariadb.sh"

# Start-up order: the slow one-off jobs (initdb, mariadb-install-db, npm) run in the
# background, in parallel, while the servers that do not need them start.

# ---------------------------------------------------------------- TLS material

tls_dir=$SESSION_DIR/tls
mkdir -p "$tls_dir"
chmod 755 "$tls_dir"
make_ca "$tls_dir" ca "tas-servers test CA" || die "could not make the test CA"
make_ca "$tls_dir" untrusted-ca "tas-servers untrusted CA (signs nothing)" || die "could not make the untrusted CA"
rm -f "$tls_dir/untrusted-ca.key"
# PostgreSQL TLS: IP only (host `localhost` must fail verify-full).
make_leaf "$tls_dir" pg-tls ca "tas-servers postgres-tls" "IP:127.0.0.1" ||
    die "could not make the TLS PostgreSQL certificate"
# Redis TLS and MariaDB: IP and localhost.
make_leaf "$tls_dir" server ca "tas-servers server" "IP:127.0.0.1,DNS:localhost" ||
    die "could not make the server certificate"
# The TLS Redis Cluster's nodes: the same names, and clientAuth for the cluster bus.
make_leaf "$tls_dir" cluster-node ca "tas-servers cluster node" "IP:127.0.0.1,DNS:localhost" \
    serverAuth,clientAuth || die "could not make the TLS Redis Cluster's certificate"
export TAS_TEST_TLS_CA=$tls_dir/ca.crt
export TAS_TEST_TLS_UNTRUSTED_CA=$tls_dir/untrusted-ca.crt

# ---------------------------------------------------------------- background jobs

pg_dir=$SESSION_DIR/pg
mkdir -p "$pg_dir"
[ "$AS_ROOT" = 1 ] && chown postgres:postgres "$pg_dir"
chmod 755 "$pg_dir"
export TAS_TEST_POSTGRES_BINDIR=$PG_BINDIR
export TAS_TEST_POSTGRES_DATADIR=$pg_dir/data
export TAS_TEST_POSTGRES_SOCKETDIR=$pg_dir
export TAS_TEST_POSTGRES_LOG=$pg_dir/postgres.log
initdb_pid=
run_as postgres
start_helper initdb_pid "$pg_dir/initdb.log" "${RUN_AS[@]}" "$PG_BINDIR/initdb" \
    -D "$TAS_TEST_POSTGRES_DATADIR" -A trust -U postgres -E UTF8 --locale=C --no-sync

mariadb_prepare "$SESSION_DIR/mariadb" "$tls_dir"

npm_pid=
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
        log "node interop: ${npm_cmd[*]} in the background (compiles better-sqlite3; may take ~90 s)"
        start_helper npm_pid - env -C "$interop_dir" \
            npm_config_build_from_source=better-sqlite3 npm_config_nodedir=/usr \
            "${npm_cmd[@]}" --no-audit --no-fund --loglevel=error
    fi
else
    log "node interop: tests/interop/package.json not found; skipping"
fi

# ---------------------------------------------------------------- redis

# First, as it is the slowest to get ready: a cluster master reports cluster_state:ok no
# sooner than 2 s after it started, and `redis-cli --cluster create` polls once a second.
# It joins in the background while the other servers start.
redis_cluster_launch "$SESSION_DIR/redis-cluster"

export TAS_TEST_REDIS_DIR=$SESSION_DIR/redis
mkdir -p "$TAS_TEST_REDIS_DIR"
for ((attempt = 1; ; attempt++)); do
    pick_port TAS_TEST_REDIS_PORT || die "no free port found for Redis"
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

redis_tls_start "$SESSION_DIR/redis-tls" "$tls_dir"
redis_sentinel_launch "Redis Sentinel" "$SESSION_DIR/redis-sentinel"
REDIS_SENTINEL_PORTS=("${SENTINEL_PORTS[@]}")
redis_sentinel_launch "TLS Redis Sentinel" "$SESSION_DIR/redis-tls-sentinel" "$tls_dir"
REDIS_TLS_SENTINEL_PORTS=("${SENTINEL_PORTS[@]}")
redis_tls_cluster_launch "$SESSION_DIR/redis-tls-cluster" "$tls_dir"

# ---------------------------------------------------------------- postgres

initdb_rc=0
wait_helper "$initdb_pid" || initdb_rc=$?
[ "$initdb_rc" = 0 ] || { cat "$pg_dir/initdb.log" >&2; die "initdb failed (exit $initdb_rc)"; }
# The TLS cluster starts as a copy of the fresh, never started data directory.
PG_TLS_DIR=$SESSION_DIR/pg-tls
pg_tls_prepare "$TAS_TEST_POSTGRES_DATADIR" "$tls_dir"

for ((attempt = 1; ; attempt++)); do
    pick_port TAS_TEST_POSTGRES_PORT || die "no free port found for PostgreSQL"
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

pg_tls_start "$TAS_TEST_TLS_CA"
pgbouncer_start "$SESSION_DIR/pgbouncer" "$TAS_TEST_POSTGRES_PORT"

redis_cluster_wait "$SESSION_DIR/redis-cluster"
redis_tls_cluster_wait "$SESSION_DIR/redis-tls-cluster" "$tls_dir"
redis_sentinel_wait "Redis Sentinel" "${REDIS_SENTINEL_PORTS[@]}"
# The tests reach the masters through the Sentinels only: after a failover test the master may
# be the other server.
export TAS_TEST_REDIS_SENTINEL_URLS=redis://127.0.0.1:${REDIS_SENTINEL_PORTS[2]}/
redis_sentinel_wait "TLS Redis Sentinel" "${REDIS_TLS_SENTINEL_PORTS[@]}" --tls --cacert "$tls_dir/ca.crt"
export TAS_TEST_REDIS_TLS_SENTINEL_URLS=rediss://127.0.0.1:${REDIS_TLS_SENTINEL_PORTS[2]}/
export TAS_TEST_REDIS_SENTINEL_MASTER=tas

# ---------------------------------------------------------------- mariadb

mariadb_start "$SESSION_DIR/mariadb"

# ---------------------------------------------------------------- node interop

if [ -n "$npm_pid" ]; then
    log "node interop: waiting for ${npm_cmd[*]}"
    npm_rc=0
    wait_helper "$npm_pid" || npm_rc=$?
    [ "$npm_rc" = 0 ] || die "node interop: ${npm_cmd[*]} failed in $interop_dir (exit $npm_rc)"
    interop_hash >"$interop_dir/node_modules/.lock-hash"
fi
[ "$want_node" = 1 ] && export TAS_TEST_NODE_INTEROP=$interop_dir

export TAS_REQUIRE_SERVERS=1
log "servers ready in $(elapsed "$t_servers") s (total start-up $(elapsed "$t0") s); running: $*"

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
