#!/usr/bin/env bash
# Local Kafka and Redis for development and integration tests on machines without a Docker engine.
#
# Kafka is a single-node KRaft broker (broker + controller in one JVM) assembled from the Apache Kafka jars on
# Maven Central (scripts/kafka/pom.xml); Redis and Prometheus (for promtool) come from apt. Everything listens
# on 127.0.0.1 only. See usage() for the subcommands and settings.
set -euo pipefail

REPO_ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
readonly REPO_ROOT
readonly KAFKA_VERSION=4.1.1
readonly HOST=127.0.0.1
readonly CACHE_DIR=${SHOPSTREAM_CACHE:-$HOME/.cache/shopstream}
readonly KAFKA_LIB=$CACHE_DIR/kafka-$KAFKA_VERSION/lib
readonly STATE_DIR=${SHOPSTREAM_STATE:-$REPO_ROOT/.local}
readonly KAFKA_PORT=${SHOPSTREAM_KAFKA_PORT:-9092}
readonly KAFKA_CONTROLLER_PORT=${SHOPSTREAM_KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}
readonly KAFKA_HEAP=${SHOPSTREAM_KAFKA_HEAP:-512m}
# A file of broker properties appended to the generated ones (a later key wins), e.g. SASL listeners for a test.
readonly KAFKA_EXTRA_PROPERTIES=${SHOPSTREAM_KAFKA_EXTRA_PROPERTIES:-}
readonly REDIS_PORT=${SHOPSTREAM_REDIS_PORT:-6379}
# Redis Cluster for the cluster sink's tests: three masters on consecutive ports, no replicas.
readonly CLUSTER_PORT=${SHOPSTREAM_REDIS_CLUSTER_PORT:-7000}
readonly CLUSTER_PORTS=("$CLUSTER_PORT" "$((CLUSTER_PORT + 1))" "$((CLUSTER_PORT + 2))")
readonly START_TIMEOUT=${SHOPSTREAM_START_TIMEOUT:-90}
readonly STOP_TIMEOUT=${SHOPSTREAM_STOP_TIMEOUT:-60}

# State is kept per port so that a second pair of servers (other ports, e.g. in CI) never shares files.
readonly KAFKA_DIR=$STATE_DIR/kafka-$KAFKA_PORT
readonly KAFKA_LOG=$KAFKA_DIR/kafka.log
readonly KAFKA_PIDFILE=$KAFKA_DIR/kafka.pid
readonly REDIS_DIR=$STATE_DIR/redis-$REDIS_PORT
readonly REDIS_LOG=$REDIS_DIR/redis.log
readonly REDIS_PIDFILE=$REDIS_DIR/redis.pid
readonly CLUSTER_DIR=$STATE_DIR/redis-cluster-$CLUSTER_PORT
# Checked in /proc/<pid>/cmdline before signalling, so a stale pid file never gets an unrelated process killed.
readonly KAFKA_CMD_MARK=kafka.Kafka
readonly REDIS_CMD_MARK=redis-server

usage() {
    cat <<EOF
usage: scripts/servers.sh <command> [kafka|redis|redis-cluster ...]   (default: kafka redis)

commands:
  install   install what is missing: apt packages redis-server, prometheus (for promtool), a Java 17+
            runtime and Maven if needed; the Kafka $KAFKA_VERSION jars into $KAFKA_LIB
  start     install if needed, then start Kafka and/or Redis unless they already answer on their ports
            (a server someone else started is reused); waits until they are ready, exits non-zero if not.
            Installs only what those servers need (not prometheus).
  stop      SIGTERM the servers this script started (pids from the pid files) and wait for them to exit
  status    show what runs; exit status 0 only if every named server answers
  env       print 'export KAFKA_BOOTSTRAP_SERVERS=...', 'export REDIS_URL=...' and
            'export REDIS_CLUSTER_URL=...' for eval

settings (environment):
  SHOPSTREAM_KAFKA_PORT=$KAFKA_PORT  SHOPSTREAM_KAFKA_CONTROLLER_PORT=$KAFKA_CONTROLLER_PORT  SHOPSTREAM_REDIS_PORT=$REDIS_PORT
  SHOPSTREAM_REDIS_CLUSTER_PORT=$CLUSTER_PORT (redis-cluster: masters on it and the next two ports)
  SHOPSTREAM_STATE=$STATE_DIR  (data, logs, pid files; 'rm -rf' it after stop to reset)
  SHOPSTREAM_CACHE=$CACHE_DIR  SHOPSTREAM_KAFKA_HEAP=$KAFKA_HEAP
  SHOPSTREAM_KAFKA_EXTRA_PROPERTIES=<file>  (broker properties appended to the generated ones; a later key wins)
  SHOPSTREAM_START_TIMEOUT=$START_TIMEOUT  SHOPSTREAM_STOP_TIMEOUT=$STOP_TIMEOUT  (seconds)
EOF
}

log() { echo "servers.sh: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        die "root or sudo is needed to run: $*"
    fi
}

# --- probes -----------------------------------------------------------------------------------------------

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null; }

redis_ping() { redis_ping_port "$REDIS_PORT"; }

redis_ping_port() { [[ $(timeout 3 redis-cli -h "$HOST" -p "$1" ping 2>/dev/null) == PONG ]]; }

cluster_ok() { timeout 3 redis-cli -h "$HOST" -p "$CLUSTER_PORT" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; }

kafka_ready() { grep -q 'Kafka Server started' "$KAFKA_LOG" 2>/dev/null && port_open "$KAFKA_PORT"; }

# True if process <pid> is alive and its command line contains <mark> (a zombie has an empty one).
pid_is() { [[ -r /proc/$1/cmdline ]] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$2"; }

# Print the pid from <pidfile> if that process is alive and is the expected server.
live_pid() {
    local pid
    [[ -s $1 ]] || return 1
    pid=$(<"$1")
    [[ $pid =~ ^[0-9]+$ ]] && pid_is "$pid" "$2" || return 1
    echo "$pid"
}

# Major version of `java` (17 for 17.0.15, 1 for 1.8), or nothing. Skips 'Picked up JAVA_TOOL_OPTIONS' lines.
java_major() { java -version 2>&1 | sed -nE '/version "/{s/.*version "([0-9]+).*/\1/p;q}' || true; }

# --- install ----------------------------------------------------------------------------------------------

apt_install() {
    command -v apt-get >/dev/null || die "apt-get not found; install by hand: $*"
    log "installing apt packages: $*"
    # --no-install-recommends: prometheus would otherwise pull in (and maybe start) node-exporter.
    local apt_cmd=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@")
    if ! as_root "${apt_cmd[@]}" >&2; then
        log "apt-get install failed; running apt-get update and retrying"
        as_root apt-get update -q >&2
        as_root "${apt_cmd[@]}" >&2
    fi
}

install_kafka_jars() {
    [[ -f $KAFKA_LIB/kafka_2.13-$KAFKA_VERSION.jar ]] && return 0
    mkdir -p "$(dirname "$KAFKA_LIB")"
    local tmp
    tmp=$(mktemp -d "$(dirname "$KAFKA_LIB")/.lib.XXXXXX")
    log "downloading the Kafka $KAFKA_VERSION jars with Maven into $KAFKA_LIB"
    # Maven's output goes to a file (shown on failure): with -q it is only errors and ANSI resets.
    if ! mvn -B -q -f "$REPO_ROOT/scripts/kafka/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp" >"$tmp.mvn.log" 2>&1 ||
        [[ ! -f $tmp/kafka_2.13-$KAFKA_VERSION.jar ]]; then
        tail -n 30 "$tmp.mvn.log" >&2
        rm -rf "$tmp" "$tmp.mvn.log"
        die "Maven could not fetch the Kafka jars (is Maven Central reachable?)"
    fi
    rm -f "$tmp.mvn.log"
    # Renamed into place only when complete, so an interrupted download is never mistaken for a cache hit.
    rm -rf "$KAFKA_LIB"
    mv "$tmp" "$KAFKA_LIB"
}

cmd_install() { # <kafka 0|1> <redis 0|1> <prometheus 0|1>
    local want_kafka=$1 want_redis=$2 want_prometheus=$3 pkgs=()
    if [[ $want_redis == 1 ]] && ! command -v redis-server >/dev/null; then pkgs+=(redis-server); fi
    # Only for promtool (CI checks the alerting rules); no Prometheus server is started here.
    if [[ $want_prometheus == 1 ]] && ! command -v promtool >/dev/null; then pkgs+=(prometheus); fi
    if [[ $want_kafka == 1 ]]; then
        local major=0
        if command -v java >/dev/null; then major=$(java_major); fi
        if ((${major:-0} < 17)); then pkgs+=(openjdk-17-jre-headless); fi
        if [[ ! -f $KAFKA_LIB/kafka_2.13-$KAFKA_VERSION.jar ]] && ! command -v mvn >/dev/null; then
            pkgs+=(maven)
        fi
    fi
    if ((${#pkgs[@]})); then apt_install "${pkgs[@]}"; fi
    if [[ $want_kafka == 1 ]]; then
        major=$(java_major)
        ((${major:-0} >= 17)) || die "Kafka $KAFKA_VERSION needs Java 17+, 'java -version' says: $(java -version 2>&1 | head -1)"
        mkdir -p "$CACHE_DIR"
        # Serialise concurrent installs (e.g. parallel test sessions) on the shared cache.
        exec 9>"$CACHE_DIR/.install.lock"
        flock -w 900 9 || die "timed out waiting for another install (lock $CACHE_DIR/.install.lock)"
        install_kafka_jars
        exec 9>&-
    fi
}

# --- start ------------------------------------------------------------------------------------------------

# Report a failed start and exit: the log's tail, then (last, where it is seen) the reason and the log's errors.
fail_start() { # <name> <log file> <reason>
    log "$1: last lines of $2:"
    tail -n 25 "$2" >&2 2>/dev/null || true
    log "error: $1 $3 (full log: $2)"
    # Kafka's ERROR/FATAL lines and exception causes; redis marks warnings and errors with ' # '.
    local errors=' (ERROR|FATAL) |^Caused by: |^[0-9]+:[A-Z] .* # '
    if grep -qE "$errors" "$2" 2>/dev/null; then
        log "$1: errors in the log:"
        grep -E "$errors" "$2" | tail -n 6 | cut -c1-400 >&2
    fi
    exit 1
}

# Poll until <check> succeeds; fail if the process in <pidfile> dies (or never writes the file) or the
# timeout passes (then stop it).
wait_ready() { # <name> <check function> <pidfile> <mark> <log file>
    local name=$1 check=$2 pidfile=$3 mark=$4 logfile=$5 started=$SECONDS pid written
    until $check; do  # a command with its arguments, split on purpose
        if ! pid=$(live_pid "$pidfile" "$mark"); then
            # A daemonised redis writes its pid file just after forking, and removes it when it exits;
            # a pid that is alive but not yet the server is still between fork and exec (a busy machine).
            written=$(<"$pidfile" 2>/dev/null) || written=
            if { [[ $written =~ ^[0-9]+$ ]] && [[ ! -d /proc/$written ]]; } || ((SECONDS - started > 10)); then
                fail_start "$name" "$logfile" "exited before becoming ready"
            fi
        fi
        if ((SECONDS - started >= START_TIMEOUT)); then
            if [[ -n $pid ]]; then kill -TERM "$pid" 2>/dev/null || true; fi
            fail_start "$name" "$logfile" "was not ready after ${START_TIMEOUT}s (sent it SIGTERM)"
        fi
        sleep 0.2
    done
}

rotate_log() { if [[ -s $1 ]]; then mv -f "$1" "$1.1"; fi; }

write_kafka_properties() {
    cat >"$KAFKA_DIR/server.properties" <<EOF
# Written by scripts/servers.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DIR/data
num.partitions=4
auto.create.topics.enable=true
group.initial.rebalance.delay.ms=0
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
EOF
    if [[ -n $KAFKA_EXTRA_PROPERTIES ]]; then
        { echo "# From $KAFKA_EXTRA_PROPERTIES:"; cat "$KAFKA_EXTRA_PROPERTIES"; } >>"$KAFKA_DIR/server.properties"
    fi
}

start_kafka() {
    local pid
    if pid=$(live_pid "$KAFKA_PIDFILE" "$KAFKA_CMD_MARK"); then
        if ! kafka_ready; then
            log "kafka: pid $pid is still starting; waiting"
            wait_ready kafka kafka_ready "$KAFKA_PIDFILE" "$KAFKA_CMD_MARK" "$KAFKA_LOG"
        fi
        log "kafka: already running on $HOST:$KAFKA_PORT (pid $pid)"
        return 0
    fi
    if port_open "$KAFKA_PORT"; then
        log "kafka: $HOST:$KAFKA_PORT already answers (not started by this script); reusing it"
        return 0
    fi
    mkdir -p "$KAFKA_DIR/data"
    write_kafka_properties
    local java_opts=(-Djava.awt.headless=true -Dkafka.logs.dir="$KAFKA_DIR" -cp "$KAFKA_LIB/*")
    local tools_log=-Dlog4j2.configurationFile=$REPO_ROOT/scripts/kafka/tools-log4j2.properties
    if [[ ! -f $KAFKA_DIR/data/meta.properties ]]; then
        local cluster_id
        cluster_id=$(java "$tools_log" "${java_opts[@]}" kafka.tools.StorageTool random-uuid)
        [[ $cluster_id =~ ^[A-Za-z0-9_-]{22}$ ]] || die "kafka: StorageTool random-uuid printed '$cluster_id'"
        log "kafka: formatting $KAFKA_DIR/data (cluster id $cluster_id)"
        java "$tools_log" "${java_opts[@]}" kafka.tools.StorageTool format -t "$cluster_id" \
            -c "$KAFKA_DIR/server.properties" --ignore-formatted >&2
    fi
    rotate_log "$KAFKA_LOG"
    log "kafka: starting on $HOST:$KAFKA_PORT (controller $KAFKA_CONTROLLER_PORT), log $KAFKA_LOG"
    # setsid: its own session, so Ctrl-C in the shell or test run that started it does not stop it.
    # setsid execs in place (a background job is no group leader), so $! is the JVM's pid.
    # 8>&-: the JVM must not inherit (and so hold) the start lock.
    setsid java -Xmx"$KAFKA_HEAP" -Dlog4j2.configurationFile="$REPO_ROOT/scripts/kafka/log4j2.properties" \
        "${java_opts[@]}" kafka.Kafka \
        "$KAFKA_DIR/server.properties" </dev/null >"$KAFKA_LOG" 2>&1 8>&- &
    echo $! >"$KAFKA_PIDFILE"
    wait_ready kafka kafka_ready "$KAFKA_PIDFILE" "$KAFKA_CMD_MARK" "$KAFKA_LOG"
    log "kafka: ready on $HOST:$KAFKA_PORT (pid $(<"$KAFKA_PIDFILE"))"
}

start_redis() {
    local pid
    if pid=$(live_pid "$REDIS_PIDFILE" "$REDIS_CMD_MARK"); then
        if ! redis_ping; then
            log "redis: pid $pid is still starting; waiting"
            wait_ready redis redis_ping "$REDIS_PIDFILE" "$REDIS_CMD_MARK" "$REDIS_LOG"
        fi
        log "redis: already running on $HOST:$REDIS_PORT (pid $pid)"
        return 0
    fi
    if redis_ping; then
        log "redis: $HOST:$REDIS_PORT already answers (not started by this script); reusing it"
        return 0
    fi
    if port_open "$REDIS_PORT"; then
        die "redis: $HOST:$REDIS_PORT is taken by something that does not answer PING"
    fi
    mkdir -p "$REDIS_DIR"
    rm -f "$REDIS_PIDFILE"
    rotate_log "$REDIS_LOG"
    log "redis: starting on $HOST:$REDIS_PORT, log $REDIS_LOG"
    # No persistence: a test and development cache, wiped on restart.
    redis-server --bind "$HOST" --port "$REDIS_PORT" --save "" --appendonly no --daemonize yes \
        --pidfile "$REDIS_PIDFILE" --logfile "$REDIS_LOG" --dir "$REDIS_DIR" </dev/null 8>&- ||
        fail_start redis "$REDIS_LOG" "failed to launch"
    wait_ready redis redis_ping "$REDIS_PIDFILE" "$REDIS_CMD_MARK" "$REDIS_LOG"
    log "redis: ready on $HOST:$REDIS_PORT (pid $(<"$REDIS_PIDFILE"))"
}

start_cluster() {
    if cluster_ok; then
        log "redis-cluster: already serving on $HOST:${CLUSTER_PORTS[*]}"
        return 0
    fi
    local port dir
    for port in "${CLUSTER_PORTS[@]}"; do
        dir=$CLUSTER_DIR/$port
        if redis_ping_port "$port"; then continue; fi
        port_open "$port" && die "redis-cluster: $HOST:$port is taken by something that does not answer PING"
        rm -rf "$dir" && mkdir -p "$dir"
        log "redis-cluster: starting a master on $HOST:$port, log $dir/redis.log"
        redis-server --bind "$HOST" --port "$port" --cluster-enabled yes --cluster-config-file "$dir/nodes.conf" \
            --save "" --appendonly no --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
            --dir "$dir" </dev/null 8>&- || fail_start redis-cluster "$dir/redis.log" "failed to launch"
        wait_ready redis-cluster "redis_ping_port $port" "$dir/redis.pid" "$REDIS_CMD_MARK" "$dir/redis.log"
    done
    local nodes=()
    for port in "${CLUSTER_PORTS[@]}"; do nodes+=("$HOST:$port"); done
    log "redis-cluster: assigning the hash slots to ${nodes[*]}"
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >&2 ||
        die "redis-cluster: 'redis-cli --cluster create' failed"
    local deadline=$((SECONDS + START_TIMEOUT))
    until cluster_ok; do
        ((SECONDS < deadline)) || die "redis-cluster: cluster_state not ok after ${START_TIMEOUT}s"
        sleep 0.2
    done
    log "redis-cluster: ready on $HOST:${CLUSTER_PORTS[*]}"
}

cmd_start() {
    local want_kafka=$1 want_redis=$2 want_cluster=$3
    cmd_install "$want_kafka" "$((want_redis | want_cluster))" 0
    mkdir -p "$STATE_DIR"
    # One start at a time per state dir: parallel callers (test workers) wait and then find servers running.
    exec 8>"$STATE_DIR/.start.lock"
    flock -w $((START_TIMEOUT * 2 + 30)) 8 || die "timed out waiting for another 'servers.sh start'"
    if [[ $want_kafka == 1 ]]; then start_kafka; fi
    if [[ $want_redis == 1 ]]; then start_redis; fi
    if [[ $want_cluster == 1 ]]; then start_cluster; fi
    exec 8>&-
}

# --- stop / status / env ----------------------------------------------------------------------------------

stop_one() { # <name> <pidfile> <mark>
    local name=$1 pidfile=$2 mark=$3 pid deadline
    if ! pid=$(live_pid "$pidfile" "$mark"); then
        log "$name: not running (no live process in $pidfile)"
        rm -f "$pidfile"
        return 0
    fi
    log "$name: stopping pid $pid"
    kill -TERM "$pid"
    deadline=$((SECONDS + STOP_TIMEOUT))
    while pid_is "$pid" "$mark"; do
        if ((SECONDS >= deadline)); then
            log "$name: pid $pid still running after ${STOP_TIMEOUT}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            deadline=$((SECONDS + 10))
        fi
        sleep 0.2
    done
    rm -f "$pidfile"
    log "$name: stopped"
}

cmd_stop() {
    if [[ $1 == 1 ]]; then stop_one kafka "$KAFKA_PIDFILE" "$KAFKA_CMD_MARK"; fi
    if [[ $2 == 1 ]]; then stop_one redis "$REDIS_PIDFILE" "$REDIS_CMD_MARK"; fi
    if [[ $3 == 1 ]]; then
        local port
        for port in "${CLUSTER_PORTS[@]}"; do
            stop_one "redis-cluster:$port" "$CLUSTER_DIR/$port/redis.pid" "$REDIS_CMD_MARK"
        done
    fi
}

status_line() { # <name> <endpoint> <answers 0|1> <pidfile> <mark> <state dir>
    local pid owner
    if pid=$(live_pid "$4" "$5"); then owner="pid $pid, started by servers.sh, state $6"; else owner="not started by servers.sh"; fi
    if [[ $3 == 1 ]]; then
        printf '%-6s %-22s running  (%s)\n' "$1" "$2" "$owner"
    elif [[ -n $pid ]]; then
        printf '%-6s %-22s starting (%s)\n' "$1" "$2" "$owner"
    else
        printf '%-6s %-22s stopped\n' "$1" "$2"
    fi
}

cmd_status() {
    local ok=0 answers
    if [[ $1 == 1 ]]; then
        if port_open "$KAFKA_PORT"; then answers=1; else answers=0; fi
        status_line kafka "$HOST:$KAFKA_PORT" "$answers" "$KAFKA_PIDFILE" "$KAFKA_CMD_MARK" "$KAFKA_DIR"
        ((answers)) || ok=1
    fi
    if [[ $2 == 1 ]]; then
        if redis_ping; then answers=1; else answers=0; fi
        status_line redis "$HOST:$REDIS_PORT" "$answers" "$REDIS_PIDFILE" "$REDIS_CMD_MARK" "$REDIS_DIR"
        ((answers)) || ok=1
    fi
    if [[ $3 == 1 ]]; then
        if cluster_ok; then answers=1; else answers=0; fi
        status_line redis-cluster "$HOST:$CLUSTER_PORT" "$answers" "$CLUSTER_DIR/$CLUSTER_PORT/redis.pid" \
            "$REDIS_CMD_MARK" "$CLUSTER_DIR"
        ((answers)) || ok=1
    fi
    return "$ok"
}

cmd_env() {
    echo "export KAFKA_BOOTSTRAP_SERVERS=$HOST:$KAFKA_PORT"
    echo "export REDIS_URL=redis://$HOST:$REDIS_PORT/0"
    echo "export REDIS_CLUSTER_URL=redis://$HOST:$CLUSTER_PORT/0"
}

main() {
    local cmd=${1:-} want_kafka=0 want_redis=0 want_cluster=0
    [[ -n $cmd ]] || {
        usage >&2
        exit 2
    }
    shift
    (($#)) || set -- kafka redis
    for name in "$@"; do
        case $name in
        kafka) want_kafka=1 ;;
        redis) want_redis=1 ;;
        redis-cluster) want_cluster=1 ;;
        *) die "unknown server '$name' (expected kafka, redis or redis-cluster)" ;;
        esac
    done
    case $cmd in
    install) cmd_install "$want_kafka" "$want_redis" 1 ;;
    start) cmd_start "$want_kafka" "$want_redis" "$want_cluster" ;;
    stop) cmd_stop "$want_kafka" "$want_redis" "$want_cluster" ;;
    status) cmd_status "$want_kafka" "$want_redis" "$want_cluster" ;;
    env) cmd_env ;;
    -h | --help | help) usage ;;
    *)
        usage >&2
        exit 2
        ;;
    esac
}

main "$@"
