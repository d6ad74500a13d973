# shellcheck shell=bash
# The second, TLS-only PostgreSQL cluster. Sourced by scripts/with-servers.sh, never run.
#
# It is a copy of the first cluster's freshly initialised (never started) data directory,
# so it costs no second initdb. TLS: ssl = on with server.crt/server.key in the data
# directory; the certificate names only IP:127.0.0.1 (no DNS name, and a CN that is no
# host name), so `localhost` is a wrong host name under sslmode=verify-full.
# pg_hba.conf refuses every plaintext TCP connection. Started and stopped with
# scripts/pg.sh (same fast flags as the first cluster), given this cluster's variables.

# pg_tls_ctl start|stop [MODE]|status: scripts/pg.sh for the TLS cluster.
pg_tls_ctl() {
    TAS_TEST_POSTGRES_DATADIR=$PG_TLS_DIR/data \
        TAS_TEST_POSTGRES_PORT=${TAS_TEST_POSTGRES_TLS_PORT:-0} \
        TAS_TEST_POSTGRES_SOCKETDIR=$PG_TLS_DIR \
        TAS_TEST_POSTGRES_LOG=$PG_TLS_DIR/postgres.log \
        "$SCRIPT_DIR/pg.sh" "$@"
}

# pg_tls_prepare SRC_DATADIR TLS_DIR: make the TLS cluster's data directory.
pg_tls_prepare() {
    local src=$1 tls=$2 data=$PG_TLS_DIR/data
    mkdir -p "$PG_TLS_DIR"
    chmod 755 "$PG_TLS_DIR"
    [ "$AS_ROOT" = 1 ] && chown postgres:postgres "$PG_TLS_DIR"
    cp -a "$src" "$data"
    install_key_pair "$tls" pg-tls "$data/server.crt" "$data/server.key" postgres
    cat >>"$data/postgresql.conf" <<'EOF'

# scripts/with-servers.sh: TLS-only test cluster
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
EOF
    cat >"$data/pg_hba.conf" <<'EOF'
# scripts/with-servers.sh: TLS-only test cluster. Plaintext TCP is refused.
# TYPE     DATABASE  USER  ADDRESS       METHOD
hostnossl  all       all   127.0.0.1/32  reject
hostssl    all       all   127.0.0.1/32  trust
local      all       all                 trust
EOF
    [ "$AS_ROOT" = 1 ] && chown postgres:postgres "$data/postgresql.conf" "$data/pg_hba.conf"
    return 0
}

# pg_tls_start CA_FILE: start the TLS cluster on a random port (retrying on collisions),
# check that it takes verify-full TLS and refuses plaintext; export its variables.
# PG_TLS_STARTED=1 tells the cleanup of with-servers.sh that a server may be running.
# shellcheck disable=SC2034
pg_tls_start() {
    local ca=$1 attempt url
    for ((attempt = 1; ; attempt++)); do
        pick_port TAS_TEST_POSTGRES_TLS_PORT || die "no free port found for the TLS PostgreSQL"
        export TAS_TEST_POSTGRES_TLS_PORT
        PG_TLS_STARTED=1
        if pg_tls_ctl start 2>"$PG_TLS_DIR/start.err"; then
            break
        fi
        pg_tls_ctl stop immediate 2>/dev/null || true
        PG_TLS_STARTED=0
        if [ "$attempt" -ge 5 ]; then
            cat "$PG_TLS_DIR/start.err" >&2
            die "the TLS PostgreSQL did not start after $attempt attempts"
        fi
        log "the TLS PostgreSQL did not start on port $TAS_TEST_POSTGRES_TLS_PORT; retrying on another port"
    done
    export TAS_TEST_POSTGRES_TLS_URL=postgres://postgres@127.0.0.1:$TAS_TEST_POSTGRES_TLS_PORT/postgres
    url=$TAS_TEST_POSTGRES_TLS_URL
    [ "$(psql_check "$url?sslmode=verify-full&sslrootcert=$ca" 'select ssl from pg_stat_ssl where pid = pg_backend_pid()' 2>&1)" = t ] ||
        die "the TLS PostgreSQL on port $TAS_TEST_POSTGRES_TLS_PORT does not accept sslmode=verify-full with the test CA: $(psql_check "$url?sslmode=verify-full&sslrootcert=$ca" 'select 1' 2>&1)"
    if psql_check "$url?sslmode=disable" 'select 1' >/dev/null 2>&1; then
        die "the TLS PostgreSQL on port $TAS_TEST_POSTGRES_TLS_PORT accepts plaintext connections"
    fi
    log "PostgreSQL (TLS only) on 127.0.0.1:$TAS_TEST_POSTGRES_TLS_PORT (data $PG_TLS_DIR/data)"
}
