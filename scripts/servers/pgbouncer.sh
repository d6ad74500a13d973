# shellcheck shell=bash
# pgbouncer in transaction pooling mode in front of the first (plaintext) PostgreSQL.
# Sourced by scripts/with-servers.sh, never run.
#
# A wildcard database entry (tests create their own databases), trust auth with an
# auth_file naming "postgres", one database in statement pooling mode (`tas_statement`, the
# server's `postgres` database: a pooler the store must refuse), and no ignore_startup_parameters: like Debian's default
# configuration, it refuses a client that sends a startup parameter it does not know
# (e.g. `options`). pgbouncer refuses to run as root: it runs as the postgres OS user,
# in the foreground as a background job of with-servers.sh in its own session (setsid),
# so its PID is known at once and a Ctrl-C meant for the tests does not reach it.
#
# Every test creates a throwaway database, and pgbouncer keeps up to default_pool_size
# server connections to each: with its default server_idle_timeout (600 s) a few runs of
# production.rs against one set of servers held 95 of PostgreSQL's 100 connections and
# later tests timed out waiting for one. Idle server connections close after 5 s here,
# and an unused wildcard pool after 30 s.

find_pgbouncer() {
    command -v pgbouncer 2>/dev/null || { [ -x /usr/sbin/pgbouncer ] && echo /usr/sbin/pgbouncer; }
}

# pgbouncer_start DIR PG_PORT: start it on a random port (retrying on collisions), check
# that a query goes through it; export its variables.
pgbouncer_start() {
    local dir=$1 pg_port=$2 bin attempt port pid
    bin=$(find_pgbouncer) || die "pgbouncer not found"
    mkdir -p "$dir"
    chmod 755 "$dir"
    [ "$AS_ROOT" = 1 ] && chown postgres:postgres "$dir"
    printf '"postgres" ""\n' >"$dir/userlist.txt"
    for ((attempt = 1; ; attempt++)); do
        pick_port port || die "no free port found for pgbouncer"
        cat >"$dir/pgbouncer.ini" <<EOF
; scripts/with-servers.sh: throwaway pgbouncer in front of 127.0.0.1:$pg_port
[databases]
* = host=127.0.0.1 port=$pg_port
tas_statement = host=127.0.0.1 port=$pg_port dbname=postgres pool_mode=statement

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir = $dir
auth_type = trust
auth_file = $dir/userlist.txt
admin_users = postgres
pool_mode = transaction
default_pool_size = 2
max_client_conn = 1000
server_idle_timeout = 5
autodb_idle_timeout = 30
pidfile = $dir/pgbouncer.pid
logfile = $dir/pgbouncer.log
EOF
        rm -f "$dir/pgbouncer.pid"
        : >"$dir/pgbouncer.log"
        [ "$AS_ROOT" = 1 ] && chown postgres:postgres "$dir/pgbouncer.log"
        run_as postgres
        (cd / && exec setsid "${RUN_AS[@]}" "$bin" "$dir/pgbouncer.ini" </dev/null >"$dir/stderr.log" 2>&1) &
        pid=$!
        register_server pgbouncer "$pid" pgbouncer
        # pgbouncer stays up when it cannot bind its TCP port: it only logs a warning.
        if wait_listening pgbouncer "$pid" "$port" 30 "$dir/pgbouncer.log" 'cannot listen on'; then
            break
        fi
        if [ "$attempt" -ge 5 ]; then
            tail -n 20 "$dir/pgbouncer.log" "$dir/stderr.log" >&2 || true
            die "pgbouncer did not start after $attempt attempts"
        fi
        log "pgbouncer did not start on port $port; retrying on another port"
    done
    export TAS_TEST_PGBOUNCER_URL=postgres://postgres@127.0.0.1:$port/postgres
    export TAS_TEST_PGBOUNCER_STATEMENT_URL=postgres://postgres@127.0.0.1:$port/tas_statement
    [ "$(psql_check "$TAS_TEST_PGBOUNCER_URL" 'select 1' 2>&1)" = 1 ] ||
        die "pgbouncer on port $port does not answer: $(psql_check "$TAS_TEST_PGBOUNCER_URL" 'select 1' 2>&1)"
    log "pgbouncer $("$bin" --version | awk 'NR == 1 { print $2 }') on 127.0.0.1:$port (transaction pooling, pid $pid) -> PostgreSQL 127.0.0.1:$pg_port"
}
