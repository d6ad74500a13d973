# shellcheck shell=bash
# The TLS-only Redis, the 3-master Redis Cluster with one replica, and the TLS-only 3-master
# Redis Cluster. Sourced by scripts/with-servers.sh, never run.
#
# These Redis servers run in the foreground as background jobs of with-servers.sh (not
# --daemonize), in their own session (setsid, so a Ctrl-C meant for the tests does not
# reach them): their PIDs are known the moment they are launched, and with-servers.sh
# reaps them, so a stopped one never lingers as a zombie. Each also writes a pidfile.
# A server counts as started only once its own PID holds the listening socket (another
# Redis that owned the port first would answer PING too).

# redis_launch NAME DIR ARGS...: start one redis-server in DIR; sets REDIS_PID.
redis_launch() {
    local name=$1 dir=$2
    shift 2
    mkdir -p "$dir"
    rm -f "$dir/redis.pid"
    (cd "$dir" && exec setsid redis-server --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize no --pidfile "$dir/redis.pid" --dir "$dir" --logfile "$dir/redis.log" \
        "$@" </dev/null >"$dir/stdout.log" 2>&1) &
    REDIS_PID=$!
    register_server "$name" "$REDIS_PID" redis-server
}

# redis_tls_start DIR TLS_DIR: the TLS-only Redis (plaintext port 0); exports its URL.
redis_tls_start() {
    local dir=$1 tls=$2 attempt port pong
    mkdir -p "$dir"
    install_key_pair "$tls" server "$dir/server.crt" "$dir/server.key" root
    for ((attempt = 1; ; attempt++)); do
        pick_port port || die "no free port found for the TLS Redis"
        redis_launch redis-tls "$dir" --port 0 --tls-port "$port" \
            --tls-cert-file "$dir/server.crt" --tls-key-file "$dir/server.key" \
            --tls-ca-cert-file "$tls/ca.crt" --tls-auth-clients no
        if wait_listening "TLS Redis" "$REDIS_PID" "$port" 30; then
            break
        fi
        if [ "$attempt" -ge 5 ]; then
            tail -n 20 "$dir/redis.log" >&2 || true
            die "the TLS Redis did not start after $attempt attempts"
        fi
        log "the TLS Redis did not start on port $port; retrying on another port"
    done
    pong=$(timeout 10 redis-cli --tls --cacert "$tls/ca.crt" -h 127.0.0.1 -p "$port" PING 2>&1) || true
    [ "$pong" = PONG ] || die "the TLS Redis on port $port does not answer PING over TLS: $pong"
    export TAS_TEST_REDIS_TLS_URL=rediss://127.0.0.1:$port/
    log "Redis (TLS only) on 127.0.0.1:$port (pid $REDIS_PID)"
}

# redis_cluster_launch DIR: start four cluster-enabled nodes (each in DIR/nodeN; bus port =
# port + 10000), then `redis-cli --cluster create` of the first three as masters in the
# background (bounded, since it waits forever for a node that died). The fourth becomes the
# first master's replica in redis_cluster_wait. A node is taken for failed after 3 s without
# an answer (`cluster-node-timeout`; the default 15 s would make a failover test slow), so a
# replica takes over a frozen master in about 4 s. Sets REDIS_CLUSTER_PORTS (masters first,
# the replica last) and REDIS_CLUSTER_CREATE_PID. Finish with redis_cluster_wait; other
# servers can start in between.
REDIS_CLUSTER_PORTS=()
REDIS_CLUSTER_CREATE_PID=
redis_cluster_launch() {
    local dir=$1 n attempt port
    REDIS_CLUSTER_PORTS=()
    for n in 1 2 3 4; do
        for ((attempt = 1; ; attempt++)); do
            pick_port port 10000 || die "no free port pair (port, port + 10000) found for Redis Cluster node $n"
            redis_launch "redis-cluster-$n" "$dir/node$n" --port "$port" \
                --cluster-enabled yes --cluster-config-file "nodes-$port.conf" \
                --cluster-node-timeout 3000
            if wait_listening "Redis Cluster node $n" "$REDIS_PID" "$port" 30 &&
                wait_listening "Redis Cluster node $n (bus)" "$REDIS_PID" "$((port + 10000))" 30; then
                break
            fi
            stop_pid_list 5 "$REDIS_PID" redis-server || true
            if [ "$attempt" -ge 5 ]; then
                tail -n 20 "$dir/node$n/redis.log" >&2 || true
                die "Redis Cluster node $n did not start after $attempt attempts"
            fi
            log "Redis Cluster node $n did not start on port $port (or bus port $((port + 10000))); retrying"
        done
        REDIS_CLUSTER_PORTS+=("$port")
    done
    start_helper REDIS_CLUSTER_CREATE_PID "$dir/create.log" timeout 60 redis-cli --cluster create \
        "127.0.0.1:${REDIS_CLUSTER_PORTS[0]}" "127.0.0.1:${REDIS_CLUSTER_PORTS[1]}" \
        "127.0.0.1:${REDIS_CLUSTER_PORTS[2]}" --cluster-replicas 0 --cluster-yes
}

# redis_cluster_wait DIR: wait for `redis-cli --cluster create`, make the fourth node the
# first master's replica, then wait for cluster_state:ok on every node and for the replica's
# link to its master; export TAS_TEST_REDIS_CLUSTER_URLS and TAS_TEST_REDIS_CLUSTER_REPLICA_URL.
redis_cluster_wait() {
    local dir=$1 rc=0 port state ok deadline master_id link
    local -a urls=()
    local replica=${REDIS_CLUSTER_PORTS[3]}
    wait_helper "$REDIS_CLUSTER_CREATE_PID" || rc=$?
    [ "$rc" = 0 ] || { tail -n 20 "$dir/create.log" >&2; die "redis-cli --cluster create failed (exit $rc)"; }
    master_id=$(timeout 10 redis-cli -h 127.0.0.1 -p "${REDIS_CLUSTER_PORTS[0]}" CLUSTER MYID | tr -d '\r')
    [ -n "$master_id" ] || die "Redis Cluster node ${REDIS_CLUSTER_PORTS[0]} did not give its id"
    timeout 10 redis-cli -h 127.0.0.1 -p "$replica" CLUSTER MEET 127.0.0.1 "${REDIS_CLUSTER_PORTS[0]}" >/dev/null ||
        die "Redis Cluster node $replica could not meet ${REDIS_CLUSTER_PORTS[0]}"
    # The replica can follow the master once gossip has told it about the master.
    deadline=$((SECONDS + 30))
    until [ "$(timeout 10 redis-cli -h 127.0.0.1 -p "$replica" CLUSTER REPLICATE "$master_id" 2>&1 | tr -d '\r')" = OK ]; do
        [ "$SECONDS" -lt "$deadline" ] || die "Redis Cluster node $replica did not become a replica of $master_id in 30 s"
        sleep 0.05
    done
    deadline=$((SECONDS + 30))
    while :; do
        ok=1
        for port in "${REDIS_CLUSTER_PORTS[@]}"; do
            state=$(timeout 10 redis-cli -h 127.0.0.1 -p "$port" CLUSTER INFO 2>/dev/null |
                tr -d '\r' | sed -n 's/^cluster_state://p') || true
            [ "$state" = ok ] || { ok=0; break; }
        done
        if [ "$ok" = 1 ]; then
            link=$(timeout 10 redis-cli -h 127.0.0.1 -p "$replica" INFO replication 2>/dev/null |
                tr -d '\r' | sed -n 's/^master_link_status://p') || true
            [ "$link" = up ] && break
            state="replica link ${link:-unknown}"
        fi
        [ "$SECONDS" -lt "$deadline" ] ||
            die "Redis Cluster on ports ${REDIS_CLUSTER_PORTS[*]} did not reach cluster_state:ok with its replica in 30 s (node $port: ${state:-no answer})"
        sleep 0.05
    done
    for port in "${REDIS_CLUSTER_PORTS[@]:0:3}"; do urls+=("redis://127.0.0.1:$port/"); done
    TAS_TEST_REDIS_CLUSTER_URLS=$(IFS=,; echo "${urls[*]}")
    export TAS_TEST_REDIS_CLUSTER_URLS
    export TAS_TEST_REDIS_CLUSTER_REPLICA_URL=redis://127.0.0.1:$replica/
    log "Redis Cluster (3 masters on 127.0.0.1:$(IFS=,; echo "${REDIS_CLUSTER_PORTS[*]:0:3}"), a replica of the first on $replica): cluster_state:ok"
}

# redis_tls_cluster_launch DIR TLS_DIR: a 3-master Redis Cluster reachable over TLS only
# (plaintext port 0, `tls-cluster yes`: the bus and the addresses the nodes announce are the
# TLS ones), as managed services offer it; then `redis-cli --tls --cluster create` in the
# background. Sets REDIS_TLS_CLUSTER_PORTS and REDIS_TLS_CLUSTER_CREATE_PID. Finish with
# redis_tls_cluster_wait.
REDIS_TLS_CLUSTER_PORTS=()
REDIS_TLS_CLUSTER_CREATE_PID=
redis_tls_cluster_launch() {
    local dir=$1 tls=$2 n attempt port
    REDIS_TLS_CLUSTER_PORTS=()
    mkdir -p "$dir"
    install_key_pair "$tls" cluster-node "$dir/server.crt" "$dir/server.key" root
    for n in 1 2 3; do
        for ((attempt = 1; ; attempt++)); do
            pick_port port 10000 || die "no free port pair (port, port + 10000) found for TLS Redis Cluster node $n"
            redis_launch "redis-tls-cluster-$n" "$dir/node$n" --port 0 --tls-port "$port" \
                --tls-cert-file "$dir/server.crt" --tls-key-file "$dir/server.key" \
                --tls-ca-cert-file "$tls/ca.crt" --tls-auth-clients no \
                --tls-cluster yes --tls-replication yes \
                --cluster-enabled yes --cluster-config-file "nodes-$port.conf" \
                --cluster-node-timeout 3000
            if wait_listening "TLS Redis Cluster node $n" "$REDIS_PID" "$port" 30 &&
                wait_listening "TLS Redis Cluster node $n (bus)" "$REDIS_PID" "$((port + 10000))" 30; then
                break
            fi
            stop_pid_list 5 "$REDIS_PID" redis-server || true
            if [ "$attempt" -ge 5 ]; then
                tail -n 20 "$dir/node$n/redis.log" >&2 || true
                die "TLS Redis Cluster node $n did not start after $attempt attempts"
            fi
            log "TLS Redis Cluster node $n did not start on port $port (or bus port $((port + 10000))); retrying"
        done
        REDIS_TLS_CLUSTER_PORTS+=("$port")
    done
    start_helper REDIS_TLS_CLUSTER_CREATE_PID "$dir/create.log" timeout 60 redis-cli --tls \
        --cacert "$tls/ca.crt" --cluster create \
        "127.0.0.1:${REDIS_TLS_CLUSTER_PORTS[0]}" "127.0.0.1:${REDIS_TLS_CLUSTER_PORTS[1]}" \
        "127.0.0.1:${REDIS_TLS_CLUSTER_PORTS[2]}" --cluster-replicas 0 --cluster-yes
}

# redis_tls_cluster_wait DIR TLS_DIR: wait for the TLS cluster's creation and for
# cluster_state:ok on every node; export TAS_TEST_REDIS_TLS_CLUSTER_URLS.
redis_tls_cluster_wait() {
    local dir=$1 tls=$2 rc=0 port state ok deadline
    local -a urls=()
    wait_helper "$REDIS_TLS_CLUSTER_CREATE_PID" || rc=$?
    [ "$rc" = 0 ] || { tail -n 20 "$dir/create.log" >&2; die "redis-cli --tls --cluster create failed (exit $rc)"; }
    deadline=$((SECONDS + 30))
    while :; do
        ok=1
        for port in "${REDIS_TLS_CLUSTER_PORTS[@]}"; do
            state=$(timeout 2 redis-cli --tls --cacert "$tls/ca.crt" -h 127.0.0.1 -p "$port" CLUSTER INFO 2>/dev/null |
                tr -d '\r' | sed -n 's/^cluster_state://p') || true
            [ "$state" = ok ] || { ok=0; break; }
        done
        [ "$ok" = 1 ] && break
        [ "$SECONDS" -lt "$deadline" ] ||
            die "TLS Redis Cluster on ports ${REDIS_TLS_CLUSTER_PORTS[*]} did not reach cluster_state:ok in 30 s (node $port: ${state:-no answer})"
        sleep 0.05
    done
    for port in "${REDIS_TLS_CLUSTER_PORTS[@]}"; do urls+=("rediss://127.0.0.1:$port/"); done
    TAS_TEST_REDIS_TLS_CLUSTER_URLS=$(IFS=,; echo "${urls[*]}")
    export TAS_TEST_REDIS_TLS_CLUSTER_URLS
    log "Redis Cluster over TLS only (3 masters on 127.0.0.1:$(IFS=,; echo "${REDIS_TLS_CLUSTER_PORTS[*]}")): cluster_state:ok"
}
