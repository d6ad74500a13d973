#!/usr/bin/env bash
# Control a throwaway PostgreSQL cluster started by scripts/with-servers.sh: the plaintext
# one (TAS_TEST_POSTGRES_CTL runs this script with its variables), or the TLS-only one
# (with-servers.sh runs it with the same variables pointing at that cluster).
#
# Usage: pg.sh start | stop [fast|immediate|smart] | restart [STOP_MODE] | status
#
# Reads (all exported by with-servers.sh):
#   TAS_TEST_POSTGRES_DATADIR    cluster data directory
#   TAS_TEST_POSTGRES_PORT       TCP port (always 127.0.0.1)
#   TAS_TEST_POSTGRES_BINDIR     directory holding pg_ctl, pg_isready, ...
#   TAS_TEST_POSTGRES_SOCKETDIR  unix socket directory (default: parent of the data dir)
#   TAS_TEST_POSTGRES_LOG        server log file (default: <parent of data dir>/postgres.log)
# When run as root, pg_ctl runs as the `postgres` OS user (initdb/pg_ctl refuse root).
# `start` uses the same port and flags every time and returns once the server accepts
# TCP connections; `stop` is a no-op when the server is not running.
set -euo pipefail

log() { echo "[pg.sh] $*" >&2; }
die() { log "error: $*"; exit 1; }

datadir=${TAS_TEST_POSTGRES_DATADIR:?TAS_TEST_POSTGRES_DATADIR is not set (run under scripts/with-servers.sh)}
port=${TAS_TEST_POSTGRES_PORT:?TAS_TEST_POSTGRES_PORT is not set}
bindir=${TAS_TEST_POSTGRES_BINDIR:?TAS_TEST_POSTGRES_BINDIR is not set}
parent=$(dirname "$datadir")
sockdir=${TAS_TEST_POSTGRES_SOCKETDIR:-$parent}
logfile=${TAS_TEST_POSTGRES_LOG:-$parent/postgres.log}

as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

running() {
    # pg_ctl status: 0 = running, 3 = not running, 4 = no data dir
    as_pg "$bindir/pg_ctl" -D "$datadir" status >/dev/null 2>&1
}

show_log() {
    if [ -r "$logfile" ]; then
        log "last lines of $logfile:"
        tail -n 20 "$logfile" >&2 || true
    fi
}

pg_start() {
    if running; then
        log "already running on port $port"
        return 0
    fi
    local opts="-p $port -k $sockdir -c listen_addresses=127.0.0.1"
    opts+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    if ! as_pg "$bindir/pg_ctl" -D "$datadir" -l "$logfile" -o "$opts" -w -t 30 -s start >&2; then
        show_log
        return 1
    fi
    local i
    for ((i = 0; i < 100; i++)); do
        if "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres; then
            return 0
        fi
        sleep 0.1
    done
    log "server started but 127.0.0.1:$port is not accepting connections after 10 s"
    show_log
    return 1
}

pg_stop() {
    local mode=${1:-fast}
    case $mode in fast | immediate | smart) ;; *) die "unknown stop mode: $mode" ;; esac
    if ! running; then
        return 0
    fi
    if as_pg "$bindir/pg_ctl" -D "$datadir" -m "$mode" -w -t 30 -s stop >&2; then
        return 0
    fi
    # Last resort: SIGKILL the postmaster (its children exit when it dies).
    local pid
    pid=$(head -n 1 "$datadir/postmaster.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        log "pg_ctl stop failed; killing postmaster $pid"
        kill -KILL "$pid" 2>/dev/null || true
        local i
        for ((i = 0; i < 100; i++)); do
            kill -0 "$pid" 2>/dev/null || return 0
            sleep 0.1
        done
    fi
    return 1
}

case ${1:-} in
start) pg_start ;;
stop) pg_stop "${2:-fast}" ;;
restart) pg_stop "${2:-fast}" && pg_start ;;
status)
    if running; then echo "running on 127.0.0.1:$port"; else echo "stopped"; exit 3; fi
    ;;
*)
    echo "usage: $0 start | stop [fast|immediate|smart] | restart [STOP_MODE] | status" >&2
    exit 2
    ;;
esac
