# shellcheck shell=bash
# Process and port helpers shared by scripts/with-servers.sh and scripts/servers/*.sh.
# Sourced, never run. Expects log() and die() to be defined by the caller.

AS_ROOT=0
[ "$(id -u)" -eq 0 ] && AS_ROOT=1

# True when PID is a live (non-zombie) process. A stopped daemonized Redis can stay a
# zombie for a while because nobody reaps it, so `kill -0` alone is not enough.
alive() {
    local pid=$1 stat
    [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

# True when PID is alive and its command name (/proc/PID/comm) is COMM: guards every
# kill against a PID that has been reused by an unrelated process.
alive_as() { # PID COMM
    alive "$1" && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]
}

# True when something accepts TCP connections on 127.0.0.1:PORT.
port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# True when process PID itself holds a listening TCP socket on 127.0.0.1:PORT (or on
# 0.0.0.0:PORT). Proves that the server answering on PORT is the one we started, not
# another program that owned the port first. Needs to read /proc/PID/fd (same user or root).
listens() { # PID PORT
    local pid=$1 hex inodes targets
    hex=$(printf '%04X' "$2")
    # /proc/net/tcp: local_address is HEXIP:HEXPORT, st 0A is LISTEN, field 10 the inode.
    inodes=$(awk -v a="0100007F:$hex" -v b="00000000:$hex" \
        '($2 == a || $2 == b) && $4 == "0A" { printf "%s%s", sep, $10; sep = "|" }' \
        /proc/net/tcp 2>/dev/null)
    [ -n "$inodes" ] || return 1
    # One of PID's file descriptors is that socket.
    targets=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 -type l -printf '%l\n' 2>/dev/null) || true
    [[ $targets =~ socket:\[($inodes)\] ]]
}

# Ports handed out in this session, so that two servers of one session never get the
# same port (or a Redis Cluster bus port) before either of them has bound it.
RESERVED_PORTS=" "

# Ports are drawn from 20000 up to just below the kernel's ephemeral range (32768 by
# default): a port in that range can be the local port of some client connection, which
# makes bind() fail although nothing listens there (so port_in_use cannot see it).
PORT_LO=20000
PORT_HI=$(($(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768) - 1))
[ "$PORT_HI" -ge $((PORT_LO + 5000)) ] || PORT_HI=60000

# pick_port VAR [BUS_OFFSET]: store in VAR a random port that is free on 127.0.0.1 and
# not yet handed out in this session. With BUS_OFFSET (Redis Cluster: 10000), PORT +
# BUS_OFFSET must be free too (and stay below 65536), and is reserved as well.
pick_port() {
    local var=$1 bus=${2:-0} p i hi=$PORT_HI
    if [ "$bus" -gt 0 ]; then
        hi=$((PORT_HI - bus))
        # Too narrow below the ephemeral range: let the bus port fall into it.
        [ "$hi" -ge $((PORT_LO + 1000)) ] || hi=$((65535 - bus))
    fi
    for ((i = 0; i < 100; i++)); do
        p=$((PORT_LO + (RANDOM * 32768 + RANDOM) % (hi - PORT_LO + 1)))
        case $RESERVED_PORTS in *" $p "*) continue ;; esac
        port_in_use "$p" && continue
        if [ "$bus" -gt 0 ]; then
            case $RESERVED_PORTS in *" $((p + bus)) "*) continue ;; esac
            port_in_use "$((p + bus))" && continue
            RESERVED_PORTS+="$((p + bus)) "
        fi
        RESERVED_PORTS+="$p "
        printf -v "$var" '%s' "$p"
        return 0
    done
    return 1
}

# run_as USER: set RUN_AS to the command prefix that runs a command as OS user USER when
# we are root (empty otherwise). setpriv execs the command, so the PID of a background
# `(exec "${RUN_AS[@]}" CMD ...) &` is the PID of CMD itself.
RUN_AS=()
# shellcheck disable=SC2034 # read by the callers
run_as() {
    if [ "$AS_ROOT" = 1 ]; then
        RUN_AS=(setpriv --reuid="$1" --regid="$1" --init-groups --)
    else
        RUN_AS=()
    fi
}

# psql_check URL SQL: run SQL with $PG_BINDIR/psql on URL, ignoring the PG* variables of
# the caller's environment that would change the connection (PGOPTIONS breaks pgbouncer).
psql_check() {
    env -u PGOPTIONS -u PGSERVICE -u PGSSLMODE -u PGSSLROOTCERT -u PGHOST -u PGPORT \
        -u PGUSER -u PGDATABASE -u PGPASSWORD -u PGREQUIRESSL PGCONNECT_TIMEOUT=10 \
        "$PG_BINDIR/psql" -X -q -A -t -v ON_ERROR_STOP=1 "$1" -c "$2"
}

# ---------------------------------------------------------------- servers

# Long-running servers started in the background by this shell, stopped by PID on exit.
SRV_NAMES=()
SRV_PIDS=()
SRV_COMMS=()

register_server() { # NAME PID COMM
    SRV_NAMES+=("$1")
    SRV_PIDS+=("$2")
    SRV_COMMS+=("$3")
}

# stop_pid_list TIMEOUT_S PID COMM [PID COMM...]: SIGTERM every live one, wait for all of
# them up to TIMEOUT_S seconds, then SIGKILL the rest. Returns 1 if one survived.
stop_pid_list() {
    local timeout=$1 i j pid comm left
    shift
    local -a pids=() comms=()
    while [ $# -ge 2 ]; do
        if alive_as "$1" "$2"; then
            pids+=("$1")
            comms+=("$2")
            kill -TERM "$1" 2>/dev/null || true
        fi
        shift 2
    done
    [ ${#pids[@]} -gt 0 ] || return 0
    for ((i = 0; i < timeout * 10; i++)); do
        left=0
        for ((j = 0; j < ${#pids[@]}; j++)); do
            alive "${pids[j]}" && left=1
        done
        [ "$left" = 0 ] && return 0
        sleep 0.1
    done
    for ((j = 0; j < ${#pids[@]}; j++)); do
        pid=${pids[j]}
        comm=${comms[j]}
        if alive_as "$pid" "$comm"; then
            log "$comm (pid $pid) did not stop after $timeout s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    for ((i = 0; i < 50; i++)); do
        left=0
        for pid in "${pids[@]}"; do alive "$pid" && left=1; done
        [ "$left" = 0 ] && return 0
        sleep 0.1
    done
    return 1
}

# Stop every registered server (all at once, so the slowest sets the time).
stop_registered_servers() {
    local -a args=()
    local i
    for ((i = 0; i < ${#SRV_PIDS[@]}; i++)); do
        args+=("${SRV_PIDS[i]}" "${SRV_COMMS[i]}")
    done
    [ ${#args[@]} -gt 0 ] || return 0
    stop_pid_list 10 "${args[@]}"
}

# wait_listening NAME PID PORT TIMEOUT_S [LOGFILE REGEX]: wait until PID listens on PORT.
# Returns 1 when PID exits first (typically: the port was taken), or when LOGFILE matches
# REGEX (for a server that stays up without its port, like pgbouncer: PID is then
# stopped). Dies after TIMEOUT_S.
wait_listening() {
    local name=$1 pid=$2 port=$3 timeout=$4 logfile=${5:-} regex=${6:-} deadline
    deadline=$((SECONDS + timeout))
    while [ "$SECONDS" -lt "$deadline" ]; do
        alive "$pid" || return 1
        listens "$pid" "$port" && return 0
        if [ -n "$logfile" ] && grep -qE "$regex" "$logfile" 2>/dev/null; then
            stop_pid_list 10 "$pid" "$(cat "/proc/$pid/comm" 2>/dev/null)" || true
            return 1
        fi
        sleep 0.05
    done
    die "$name (pid $pid) is running but not listening on 127.0.0.1:$port after $timeout s"
}

# ---------------------------------------------------------------- helper jobs

# Short-lived start-up jobs (initdb, mariadb-install-db, npm) run in the background in
# their own session (setsid), so that cleanup can stop each one with everything it
# spawned (process group kill) if start-up is interrupted.
HELPER_PIDS=()

# start_helper VAR LOGFILE CMD [ARGS...]: run CMD in the background from /, stdout and
# stderr to LOGFILE (- for our stderr); store its PID in VAR. The job is not a process
# group leader (no job control here), so setsid execs CMD without forking: the PID is
# CMD's own, and it leads its own process group.
start_helper() {
    local var=$1 logfile=$2
    shift 2
    if [ "$logfile" = - ]; then
        (cd / && exec setsid "$@" </dev/null >&2) &
    else
        (cd / && exec setsid "$@" </dev/null >"$logfile" 2>&1) &
    fi
    HELPER_PIDS+=("$!")
    printf -v "$var" '%s' "$!"
}

# wait_helper PID: wait for a helper job and return its exit status. It is then forgotten:
# cleanup never signals a process group whose leader has been reaped (its ID may be reused).
wait_helper() {
    local pid=$1 rc=0 i
    wait "$pid" || rc=$?
    for i in "${!HELPER_PIDS[@]}"; do
        [ "${HELPER_PIDS[i]}" = "$pid" ] && unset 'HELPER_PIDS[i]'
    done
    return "$rc"
}

# True while a process of group PGID has not exited (a zombie awaiting its reaper counts).
group_exists() { kill -0 -- "-$1" 2>/dev/null; }

# Stop the helper jobs that are still running, with everything in their process groups.
stop_helpers() {
    local pid i left
    [ ${#HELPER_PIDS[@]} -gt 0 ] || return 0
    for pid in "${HELPER_PIDS[@]}"; do
        group_exists "$pid" && kill -TERM -- "-$pid" 2>/dev/null
    done
    for ((i = 0; i < 50; i++)); do
        left=0
        for pid in "${HELPER_PIDS[@]}"; do group_exists "$pid" && left=1; done
        [ "$left" = 0 ] && return 0
        sleep 0.1
    done
    for pid in "${HELPER_PIDS[@]}"; do
        group_exists "$pid" && kill -KILL -- "-$pid" 2>/dev/null
    done
    return 0
}
