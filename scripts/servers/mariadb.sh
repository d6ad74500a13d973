# shellcheck shell=bash
# MariaDB (Debian's mariadb-server) for the MySQL-protocol tests. Sourced by
# scripts/with-servers.sh, never run.
#
# One option file (--defaults-file, so nothing from /etc/mysql is read) serves both
# mariadb-install-db and mariadbd. The data directory and socket live in the session
# directory, owned by the mysql OS user; mariadbd starts as root with --user=mysql and
# drops privileges itself, keeping its PID; it runs in its own session (setsid), like the
# other servers. TLS is on (certificate from the harness CA, IP:127.0.0.1 and
# DNS:localhost) but not required. root connects from 127.0.0.1 without a password
# (mariadb-install-db --auth-root-authentication-method=normal).

find_mariadbd() {
    command -v mariadbd 2>/dev/null || { [ -x /usr/sbin/mariadbd ] && echo /usr/sbin/mariadbd; }
}

mariadb_client() { # PORT ARGS...
    local port=$1
    shift
    mariadb --no-defaults --protocol=TCP -h 127.0.0.1 -P "$port" -u root --connect-timeout=10 "$@"
}

# mariadb_prepare DIR TLS_DIR: write the option file and start mariadb-install-db in the
# background (it takes a few seconds); sets MARIADB_INSTALL_PID.
mariadb_prepare() {
    local dir=$1 tls=$2
    mkdir -p "$dir"
    chmod 755 "$dir"
    [ "$AS_ROOT" = 1 ] && chown mysql:mysql "$dir"
    install_key_pair "$tls" server "$dir/server.crt" "$dir/server.key" mysql
    cat >"$dir/my.cnf" <<EOF
# scripts/with-servers.sh: throwaway MariaDB (the port is given on the command line)
[mysqld]
datadir = $dir/data
socket = $dir/mariadb.sock
pid-file = $dir/mariadbd.pid
log-error = $dir/error.log
bind-address = 127.0.0.1
skip-name-resolve
character-set-server = utf8mb4
collation-server = utf8mb4_general_ci
# throwaway data: trade durability for speed
innodb_flush_log_at_trx_commit = 0
innodb_doublewrite = 0
innodb_buffer_pool_size = 64M
innodb_log_file_size = 16M
# TLS available, not required
ssl_cert = $dir/server.crt
ssl_key = $dir/server.key
ssl_ca = $tls/ca.crt
EOF
    chmod 644 "$dir/my.cnf"
    # As the mysql user (when root), from / (start_helper does the cd).
    run_as mysql
    start_helper MARIADB_INSTALL_PID "$dir/install-db.log" "${RUN_AS[@]}" \
        mariadb-install-db --defaults-file="$dir/my.cnf" --datadir="$dir/data" \
        --auth-root-authentication-method=normal --skip-test-db --skip-name-resolve
}

# mariadb_start DIR: wait for mariadb-install-db, start mariadbd on a random port
# (retrying on collisions), check root over TCP (plain and TLS); export its variables.
mariadb_start() {
    local dir=$1 bin attempt port pid rc=0 i ssl
    local -a user=()
    bin=$(find_mariadbd) || die "mariadbd not found"
    wait_helper "$MARIADB_INSTALL_PID" || rc=$?
    if [ "$rc" != 0 ]; then
        tail -n 30 "$dir/install-db.log" >&2 || true
        die "mariadb-install-db failed (exit $rc; see $dir/install-db.log)"
    fi
    [ "$AS_ROOT" = 1 ] && user=(--user=mysql)
    for ((attempt = 1; ; attempt++)); do
        pick_port port || die "no free port found for MariaDB"
        (cd / && exec setsid "$bin" --defaults-file="$dir/my.cnf" "${user[@]}" --port="$port" \
            </dev/null >>"$dir/stdout.log" 2>&1) &
        pid=$!
        register_server mariadb "$pid" mariadbd
        if wait_listening MariaDB "$pid" "$port" 120; then
            break
        fi
        if [ "$attempt" -ge 5 ]; then
            tail -n 20 "$dir/error.log" >&2 || true
            die "MariaDB did not start after $attempt attempts"
        fi
        log "MariaDB did not start on port $port; retrying on another port"
    done
    # Listening comes before accepting logins: wait for a real query.
    for ((i = 0; i < 600; i++)); do
        mariadb_client "$port" -N -e 'select 1' >/dev/null 2>&1 && break
        alive "$pid" || break
        sleep 0.05
    done
    [ "$(mariadb_client "$port" -N -e 'select 1' 2>&1)" = 1 ] ||
        die "MariaDB on port $port: root cannot connect over TCP without a password: $(mariadb_client "$port" -e 'select 1' 2>&1 | tail -n 3)"
    ssl=$(mariadb_client "$port" --ssl --ssl-ca="$TAS_TEST_TLS_CA" --ssl-verify-server-cert -N \
        -e "show status like 'Ssl_version'" 2>&1 | awk '{ print $2 }') || true
    case $ssl in TLSv1.[23]) ;; *) die "MariaDB on port $port does not accept TLS verified with the test CA: $ssl" ;; esac
    export TAS_TEST_MYSQL_PORT=$port
    export TAS_TEST_MYSQL_URL=mysql://root@127.0.0.1:$port/
    log "MariaDB $("$bin" --version | sed -n 's/.*Ver \([^ ]*\).*/\1/p') on 127.0.0.1:$port (pid $pid; TLS $ssl available, not required)"
}
