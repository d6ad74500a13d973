# shellcheck shell=bash
# The TLS-only Redis, the 3-master Redis Cluster with one replica, the TLS-only 3-master
# Redis Cluster, and a master with a replica behind a Redis Sentinel. Sourced by
# scripts/with-servers.sh, never run.
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
    local dir=$1 tls=$2 port pong
    mkdir -p "$dir"
    install_key_pair "$tls" server "$dir/server.crt" "$dir/server.key" root
    redis_node "the TLS Redis" redis-tls "$dir" 0 8 \
        --tls-cert-file "$dir/server.crt" --tls-key-file "$dir/server.key" \
        --tls-ca-cert-file "$tls/ca.crt" --tls-auth-clients no
    port=$NODE_PORT
    pong=$(timeout 10 redis-cli --tls --cacert "$tls/ca.crt" -h 127.0.0.1 -p "$port" PING 2>&1) || true
    [ "$pong" = PONG ] || die "the TLS Redis on port $port does not answer PING over TLS: $pong"
    export TAS_TEST_REDIS_TLS_URL=rediss://127.0.0.1:$port/
    log "Redis (TLS only) on 127.0.0.1:$port (pid $REDIS_PID)"
}

# redis_node LABEL NAME DIR BUS TLS_COUNT [TLS_ARGS...] [ARGS...]: start one redis-server in DIR
# on a free port (another one when that fails, 5 tries). BUS > 0: the port BUS above it must be
# free too and listened on (a cluster node's bus). With TLS_COUNT > 0 arguments TLS_ARGS it listens
# over TLS only (plaintext port 0). `@PORT@` in ARGS stands for the port. Sets NODE_PORT.
NODE_PORT=
redis_node() {
    local label=$1 name=$2 dir=$3 bus=$4 count=$5 attempt port
    shift 5
    [ "$count" -le "$#" ] || die "redis_node $label: $count TLS arguments announced, $# given"
    local -a tls=("${@:1:count}") rest=("${@:count+1}") listen
    for ((attempt = 1; ; attempt++)); do
        pick_port port "$bus" || die "no free port found for $label"
        if [ "$count" -gt 0 ]; then
            listen=(--port 0 --tls-port "$port" "${tls[@]}")
        else
            listen=(--port "$port")
        fi
        redis_launch "$name" "$dir" "${listen[@]}" "${rest[@]//@PORT@/$port}"
        if wait_listening "$label" "$REDIS_PID" "$port" 30 &&
            { [ "$bus" = 0 ] || wait_listening "$label (bus)" "$REDIS_PID" "$((port + bus))" 30; }; then
            NODE_PORT=$port
            return 0
        fi
        stop_pid_list 5 "$REDIS_PID" redis-server || true
        if [ "$attempt" -ge 5 ]; then
            tail -n 20 "$dir/redis.log" >&2 || true
            die "$label did not start after $attempt attempts"
        fi
        log "$label did not start on port $port; retrying on another port"
    done
}

# redis_cluster_node LABEL NAME DIR [TLS_ARGS...]: one cluster-enabled node in DIR (bus port =
# port + 10000); with TLS_ARGS over TLS only. A node is taken for failed after 3 s without an
# answer (`cluster-node-timeout`). Sets CLUSTER_NODE_PORT.
CLUSTER_NODE_PORT=
redis_cluster_node() {
    local label=$1 name=$2 dir=$3
    shift 3
    redis_node "$label" "$name" "$dir" 10000 "$#" "$@" --cluster-enabled yes \
        --cluster-config-file "nodes-@PORT@.conf" --cluster-node-timeout 3000
    CLUSTER_NODE_PORT=$NODE_PORT
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
    local dir=$1 n
    REDIS_CLUSTER_PORTS=()
    for n in 1 2 3 4; do
        redis_cluster_node "Redis Cluster node $n" "redis-cluster-$n" "$dir/node$n"
        REDIS_CLUSTER_PORTS+=("$CLUSTER_NODE_PORT")
    done
    start_helper REDIS_CLUSTER_CREATE_PID "$dir/create.log" timeout 60 redis-cli --cluster create \
        "127.0.0.1:${REDIS_CLUSTER_PORTS[0]}" "127.0.0.1:${REDIS_CLUSTER_PORTS[1]}" \
        "127.0.0.1:${REDIS_CLUSTER_PORTS[2]}" --cluster-replicas 0 --cluster-yes
}

# redis_cluster_ok [CLI_ARGS... --] PORT...: whether every node answers cluster_state:ok
# (redis-cli run with CLI_ARGS, e.g. TLS options); otherwise CLUSTER_STATE says which did not.
CLUSTER_STATE=
redis_cluster_ok() {
    local -a cli=()
    local port state
    if [[ " $* " == *" -- "* ]]; then
        while [ "$1" != -- ]; do cli+=("$1"); shift; done
        shift
    fi
    for port in "$@"; do
        state=$(timeout 2 redis-cli "${cli[@]}" -h 127.0.0.1 -p "$port" CLUSTER INFO 2>/dev/null |
            tr -d '\r' | sed -n 's/^cluster_state://p') || true
        if [ "$state" != ok ]; then
            CLUSTER_STATE="node $port: ${state:-no answer}"
            return 1
        fi
    done
}

# redis_cluster_wait DIR: wait for `redis-cli --cluster create`, make the fourth node the
# first master's replica, then wait for cluster_state:ok on every node and for the replica's
# link to its master; export TAS_TEST_REDIS_CLUSTER_URLS and TAS_TEST_REDIS_CLUSTER_REPLICA_URL.
redis_cluster_wait() {
    local dir=$1 rc=0 port deadline master_id link
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
        if redis_cluster_ok "${REDIS_CLUSTER_PORTS[@]}"; then
            link=$(timeout 10 redis-cli -h 127.0.0.1 -p "$replica" INFO replication 2>/dev/null |
                tr -d '\r' | sed -n 's/^master_link_status://p') || true
            [ "$link" = up ] && break
            CLUSTER_STATE="replica link ${link:-unknown}"
        fi
        [ "$SECONDS" -lt "$deadline" ] ||
            die "Redis Cluster on ports ${REDIS_CLUSTER_PORTS[*]} did not reach cluster_state:ok with its replica in 30 s ($CLUSTER_STATE)"
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
    local dir=$1 tls=$2 n
    REDIS_TLS_CLUSTER_PORTS=()
    mkdir -p "$dir"
    install_key_pair "$tls" cluster-node "$dir/server.crt" "$dir/server.key" root
    for n in 1 2 3; do
        redis_cluster_node "TLS Redis Cluster node $n" "redis-tls-cluster-$n" "$dir/node$n" \
            --tls-cert-file "$dir/server.crt" --tls-key-file "$dir/server.key" \
            --tls-ca-cert-file "$tls/ca.crt" --tls-auth-clients no \
            --tls-cluster yes --tls-replication yes
        REDIS_TLS_CLUSTER_PORTS+=("$CLUSTER_NODE_PORT")
    done
    start_helper REDIS_TLS_CLUSTER_CREATE_PID "$dir/create.log" timeout 60 redis-cli --tls \
        --cacert "$tls/ca.crt" --cluster create \
        "127.0.0.1:${REDIS_TLS_CLUSTER_PORTS[0]}" "127.0.0.1:${REDIS_TLS_CLUSTER_PORTS[1]}" \
        "127.0.0.1:${REDIS_TLS_CLUSTER_PORTS[2]}" --cluster-replicas 0 --cluster-yes
}

# redis_tls_cluster_wait DIR TLS_DIR: wait for the TLS cluster's creation and for
# cluster_state:ok on every node; export TAS_TEST_REDIS_TLS_CLUSTER_URLS.
redis_tls_cluster_wait() {
    local dir=$1 tls=$2 rc=0 port deadline
    local -a urls=()
    wait_helper "$REDIS_TLS_CLUSTER_CREATE_PID" || rc=$?
    [ "$rc" = 0 ] || { tail -n 20 "$dir/create.log" >&2; die "redis-cli --tls --cluster create failed (exit $rc)"; }
    deadline=$((SECONDS + 30))
    while :; do
        redis_cluster_ok --tls --cacert "$tls/ca.crt" -- "${REDIS_TLS_CLUSTER_PORTS[@]}" && break
        [ "$SECONDS" -lt "$deadline" ] ||
            die "TLS Redis Cluster on ports ${REDIS_TLS_CLUSTER_PORTS[*]} did not reach cluster_state:ok in 30 s ($CLUSTER_STATE)"
        sleep 0.05
    done
    for port in "${REDIS_TLS_CLUSTER_PORTS[@]}"; do urls+=("rediss://127.0.0.1:$port/"); done
    TAS_TEST_REDIS_TLS_CLUSTER_URLS=$(IFS=,; echo "${urls[*]}")
    export TAS_TEST_REDIS_TLS_CLUSTER_URLS
    log "Redis Cluster over TLS only (3 masters on 127.0.0.1:$(IFS=,; echo "${REDIS_TLS_CLUSTER_PORTS[*]}")): cluster_state:ok"
}

# redis_sentinel_launch LABEL DIR [TLS_DIR]: a Redis master, its replica and one Sentinel
# watching them as "tas" (quorum 1; a master silent for 2 s is taken for down, so a frozen
# master is replaced in about 3 to 4 s; 1 s would risk a failover nobody asked for on two busy
# cores). With TLS_DIR, all three listen over TLS only and talk to each other over TLS, with a
# certificate naming IP:127.0.0.1 (the address the Sentinel announces). Sets SENTINEL_PORTS
# (master, replica, Sentinel). Finish with redis_sentinel_wait: the Sentinel learns of the
# replica from the master's INFO, so other servers start in between.
SENTINEL_PORTS=()
redis_sentinel_launch() {
    local label=$1 dir=$2 tls_dir=${3:-} attempt master replica sentinel pid listen slug
    local -a tls=()
    slug=$(echo "$label" | tr 'A-Z ' 'a-z-')
    mkdir -p "$dir"
    if [ -n "$tls_dir" ]; then
        install_key_pair "$tls_dir" server "$dir/server.crt" "$dir/server.key" root
        tls=(--tls-cert-file "$dir/server.crt" --tls-key-file "$dir/server.key"
            --tls-ca-cert-file "$tls_dir/ca.crt" --tls-auth-clients no --tls-replication yes)
    fi
    redis_node "$label's master" "$slug-master" "$dir/master" 0 "${#tls[@]}" "${tls[@]}"
    master=$NODE_PORT
    redis_node "$label's replica" "$slug-replica" "$dir/replica" 0 "${#tls[@]}" "${tls[@]}" \
        --replicaof 127.0.0.1 "$master"
    replica=$NODE_PORT
    for ((attempt = 1; ; attempt++)); do
        pick_port sentinel || die "no free port found for $label"
        mkdir -p "$dir/sentinel"
        if [ -n "$tls_dir" ]; then
            listen="port 0
tls-port $sentinel
tls-cert-file $dir/server.crt
tls-key-file $dir/server.key
tls-ca-cert-file $tls_dir/ca.crt
tls-auth-clients no
tls-replication yes"
        else
            listen="port $sentinel"
        fi
        # Sentinel rewrites its configuration file: a fresh one each attempt.
        cat >"$dir/sentinel/sentinel.conf" <<CONF
bind 127.0.0.1
$listen
daemonize no
pidfile $dir/sentinel/redis.pid
logfile $dir/sentinel/redis.log
dir $dir/sentinel
sentinel monitor tas 127.0.0.1 $master 1
sentinel down-after-milliseconds tas 2000
sentinel failover-timeout tas 10000
sentinel parallel-syncs tas 1
CONF
        (cd "$dir/sentinel" && exec setsid redis-server "$dir/sentinel/sentinel.conf" --sentinel \
            </dev/null >"$dir/sentinel/stdout.log" 2>&1) &
        pid=$!
        register_server "$slug" "$pid" redis-server
        wait_listening "$label" "$pid" "$sentinel" 30 && break
        stop_pid_list 5 "$pid" redis-server || true
        if [ "$attempt" -ge 5 ]; then
            tail -n 20 "$dir/sentinel/redis.log" >&2 || true
            die "$label did not start after $attempt attempts"
        fi
        log "$label did not start on port $sentinel; retrying on another port"
    done
    SENTINEL_PORTS=("$master" "$replica" "$sentinel")
}

# redis_sentinel_wait LABEL MASTER REPLICA SENTINEL [CLI_ARGS...]: wait until the replica's link
# is up and the Sentinel knows the replica (redis-cli run with CLI_ARGS, e.g. TLS options).
redis_sentinel_wait() {
    local label=$1 master=$2 replica=$3 sentinel=$4 deadline link known
    shift 4
    deadline=$((SECONDS + 30))
    while :; do
        link=$(timeout 2 redis-cli "$@" -h 127.0.0.1 -p "$replica" INFO replication 2>/dev/null |
            tr -d '\r' | sed -n 's/^master_link_status://p') || true
        known=$(timeout 2 redis-cli "$@" -h 127.0.0.1 -p "$sentinel" SENTINEL replicas tas 2>/dev/null |
            grep -c "^127.0.0.1:$replica\$") || true
        [ "$link" = up ] && [ "${known:-0}" -ge 1 ] && break
        [ "$SECONDS" -lt "$deadline" ] ||
            die "$label on port $sentinel did not see master $master with its replica $replica in 30 s (replica link: ${link:-unknown})"
        sleep 0.05
    done
    log "$label on 127.0.0.1:$sentinel watching \"tas\": master 127.0.0.1:$master, replica 127.0.0.1:$replica"
}
