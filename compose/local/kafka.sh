#!/usr/bin/env bash
# The local Apache Kafka broker: one KRaft node (broker + controller in one JVM) on loopback,
# assembled from Maven Central jars. Needs java 17+, mvn and python3; no Docker.
#
#   compose/local/kafka.sh up       start (idempotent); returns once the broker answers Metadata
#   compose/local/kafka.sh down     SIGTERM (controlled shutdown), SIGKILL only after 30 s
#   compose/local/kafka.sh status   exit 0 running and ready, 1 running but not ready, 3 stopped
#   compose/local/kafka.sh kill     SIGKILL the broker (fault injection: a crash)
#   compose/local/kafka.sh logs [-f]
#
# Environment: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093),
# KAFKA_HOME_DIR (<repo>/.local/kafka), KAFKA_HEAP ("-Xmx512m -Xms512m"),
# KAFKA_START_TIMEOUT (90 s), KAFKA_OPTS (extra JVM options), JAVA_HOME, MVN (mvn).
# KAFKA_SECURITY: plaintext (default) or sasl_ssl. With sasl_ssl the broker listens with
# SASL_SSL (SCRAM-SHA-256/512, PLAIN) on KAFKA_PORT and mutual-TLS SSL on KAFKA_SSL_PORT
# (KAFKA_PORT + 2); give it its own KAFKA_HOME_DIR (default <repo>/.local/kafka-secure) and
# ports. Its CA, certificates and generated passwords are in <home>/tls, and
# <home>/client.env holds the BRIDGE_KAFKA__* settings of the SCRAM user "bridge".
#
# Layout of the home dir: libs/ (jars), data/ (log.dirs), logs/ (server.log, kafka.out),
# server.properties (generated from server.properties.in), kafka.pid.
# The Kafka version is pinned in compose/local/pom.xml; a changed pom re-resolves libs/.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"

KAFKA_HOST=127.0.0.1
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_SECURITY="${KAFKA_SECURITY:-plaintext}"
case "$KAFKA_SECURITY" in
    plaintext) KAFKA_HOME_DIR="${KAFKA_HOME_DIR:-$REPO_ROOT/.local/kafka}" ;;
    sasl_ssl) KAFKA_HOME_DIR="${KAFKA_HOME_DIR:-$REPO_ROOT/.local/kafka-secure}" ;;
    *)
        echo "kafka.sh: KAFKA_SECURITY must be plaintext or sasl_ssl, not '$KAFKA_SECURITY'" >&2
        exit 2
        ;;
esac
KAFKA_SSL_PORT="${KAFKA_SSL_PORT:-$((KAFKA_PORT + 2))}"
KAFKA_HEAP="${KAFKA_HEAP:--Xmx512m -Xms512m}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
KAFKA_STOP_TIMEOUT=30
MVN="${MVN:-mvn}"

case "$KAFKA_HOME_DIR" in
    /*) ;;
    *) KAFKA_HOME_DIR="$PWD/$KAFKA_HOME_DIR" ;;
esac
for port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" "$KAFKA_SSL_PORT"; do
    if ! [[ "$port" =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
        echo "kafka.sh: invalid port '$port'" >&2
        exit 2
    fi
done

POM="$SCRIPT_DIR/pom.xml"
TEMPLATE="$SCRIPT_DIR/server.properties.in"
BROKER_PORTS=("$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT")
if [[ "$KAFKA_SECURITY" == sasl_ssl ]]; then
    TEMPLATE="$SCRIPT_DIR/server-sasl-ssl.properties.in"
    BROKER_PORTS+=("$KAFKA_SSL_PORT")
fi
LOG4J_CONFIG="$SCRIPT_DIR/log4j2.yaml"
READY_PY="$SCRIPT_DIR/kafka_ready.py"
LIBS="$KAFKA_HOME_DIR/libs"
DATA="$KAFKA_HOME_DIR/data"
LOGS="$KAFKA_HOME_DIR/logs"
CONFIG="$KAFKA_HOME_DIR/server.properties"
PID_FILE="$KAFKA_HOME_DIR/kafka.pid"
LOCK_FILE="$KAFKA_HOME_DIR/.lock"
LIBS_STAMP="$LIBS/.resolved"
TLS_DIR="$KAFKA_HOME_DIR/tls"
SECRETS="$TLS_DIR/secrets.env"

if [[ -x "$REPO_ROOT/.venv/bin/python" ]]; then
    PYTHON="$REPO_ROOT/.venv/bin/python"
else
    PYTHON=python3
fi
if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
    JAVA="$JAVA_HOME/bin/java"
else
    JAVA=java
fi

log() { echo "kafka.sh: $*"; }
die() {
    echo "kafka.sh: $*" >&2
    exit 1
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# One lock for every command that changes state, so that concurrent `up`s (parallel test
# workers, two terminals) start one broker. flock is util-linux; without it, no lock.
take_lock() {
    mkdir -p "$KAFKA_HOME_DIR"
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$LOCK_FILE"
        flock -w 300 9 || die "timed out waiting for $LOCK_FILE"
    fi
}

# A process is alive while it exists and is not a zombie: a broker killed after this script
# exited is reparented, and a PID 1 that does not reap leaves it as a zombie (seen here).
# A multithreaded JVM's main thread turns zombie before its other threads have exited (and
# closed the listening sockets): it is alive while /proc/<pid>/task lists more than itself.
alive() {
    local pid="$1" state tasks
    kill -0 "$pid" 2>/dev/null || return 1
    state="$(sed -e 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
    [[ -n "$state" ]] || return 1
    [[ "$state" != Z ]] && return 0
    tasks=("/proc/$pid/task/"*)
    ((${#tasks[@]} > 1))
}

# Wait (up to $1 s) until nothing listens on the broker's ports any more.
wait_ports_closed() {
    local i port
    for ((i = 0; i < $1 * 10; i++)); do
        for port in "${BROKER_PORTS[@]}"; do
            if port_open "$port"; then
                sleep 0.1
                continue 2
            fi
        done
        return 0
    done
    return 1
}

# The pid in the pid file, if it is a live java running kafka.Kafka with this home's config
# (guards against a reused pid).
broker_pid() {
    local pid
    [[ -f "$PID_FILE" ]] || return 1
    pid="$(tr -dc '0-9' <"$PID_FILE")"
    [[ -n "$pid" ]] || return 1
    alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -F -e "kafka.Kafka $CONFIG" || return 1
    echo "$pid"
}

ready() {
    local -a secure=()
    if [[ "$KAFKA_SECURITY" == sasl_ssl ]]; then
        secure=(--tls-ca "$TLS_DIR/ca.pem" --sasl-plain-file "$TLS_DIR/admin.plain")
    fi
    "$PYTHON" "$READY_PY" --host "$KAFKA_HOST" --port "$KAFKA_PORT" --quiet "${secure[@]}" "$@"
}

port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/$KAFKA_HOST/$1" 2>/dev/null
}

wait_exit() {
    local pid="$1" seconds="$2" i
    for ((i = 0; i < seconds * 10; i++)); do
        alive "$pid" || return 0
        sleep 0.1
    done
    ! alive "$pid"
}

# The lines of a log file since the last start marker written by start_java.
since_last_start() {
    awk '/^===== .* start$/ { n = 0 } { lines[n++] = $0 } END { for (i = 0; i < n; i++) print lines[i] }' "$1"
}

show_log_tail() {
    local file
    for file in "$LOGS/kafka.out" "$LOGS/server.log"; do
        [[ -f "$file" ]] || continue
        echo "----- $file (this start, last 40 lines) -----" >&2
        since_last_start "$file" | tail -n 40 >&2
    done
}

check_java() {
    command -v "$JAVA" >/dev/null 2>&1 || die "java not found (Kafka 4.x needs Java 17+)"
    local version major
    version="$("$JAVA" -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n 1)"
    major="${version%%.*}"
    if [[ "$major" =~ ^[0-9]+$ ]] && ((major < 17)); then
        die "java $version found; Kafka 4.x needs Java 17+ (set JAVA_HOME)"
    fi
}

# Copy Kafka's jars from Maven Central (through ~/.m2) into libs/, once per pom.xml content.
resolve_jars() {
    local sum
    sum="$(cksum <"$POM")"
    if [[ -f "$LIBS_STAMP" && "$(cat "$LIBS_STAMP")" == "$sum" ]]; then
        return 0
    fi
    command -v "$MVN" >/dev/null 2>&1 || die "mvn not found: it resolves Kafka's jars"
    log "resolving Kafka's jars from Maven Central into $LIBS (first run: ~45 MB)"
    local start tmp="$LIBS.tmp"
    start="$(now)"
    rm -rf "$tmp"
    mkdir -p "$LOGS"
    if ! "$MVN" -B -q -Dstyle.color=never -f "$POM" \
        org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp" >"$LOGS/mvn.log" 2>&1; then
        tail -n 40 "$LOGS/mvn.log" >&2
        rm -rf "$tmp"
        die "mvn failed to resolve Kafka's jars (full output in $LOGS/mvn.log)"
    fi
    compgen -G "$tmp/kafka_2.13-*.jar" >/dev/null || die "no kafka_2.13 jar in $tmp"
    echo "$sum" >"$tmp/.resolved"
    rm -rf "$LIBS"
    mv "$tmp" "$LIBS"
    log "jars resolved in $(elapsed "$start") s"
}

kafka_version() {
    local jars=("$LIBS"/kafka_2.13-*.jar) jar
    jar="${jars[0]##*/kafka_2.13-}"
    echo "${jar%.jar}"
}

random_secret() { openssl rand -hex 16; }

# The secure broker's CA, broker and client certificates and passwords, made once per home
# dir: openssl for keys and certificates, keytool for the broker's truststore.
generate_tls() {
    [[ -f "$SECRETS" ]] && return 0
    command -v openssl >/dev/null 2>&1 || die "openssl not found: it makes the test CA"
    command -v keytool >/dev/null 2>&1 || die "keytool not found (it comes with the JDK)"
    log "generating a CA, broker and client certificates in $TLS_DIR"
    local tmp="$TLS_DIR.tmp" keystore_password admin_password plain_password scram_password
    rm -rf "$tmp"
    mkdir -p "$tmp"
    chmod 700 "$tmp"
    keystore_password="$(random_secret)"
    admin_password="$(random_secret)"
    plain_password="$(random_secret)"
    scram_password="$(random_secret)"
    (
        cd "$tmp"
        openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=p2c-bridge local Kafka CA" \
            -keyout ca.key -out ca.pem
        openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout broker.key -out broker.csr
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' >broker.ext
        openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 365 \
            -extfile broker.ext -out broker.pem
        openssl pkcs12 -export -in broker.pem -inkey broker.key -certfile ca.pem -name broker \
            -passout "pass:$keystore_password" -out broker.p12
        keytool -importcert -noprompt -alias ca -file ca.pem -storetype PKCS12 \
            -keystore truststore.p12 -storepass "$keystore_password"
        openssl req -newkey rsa:2048 -nodes -subj "/CN=bridge" -keyout client.key -out client.csr
        printf 'extendedKeyUsage=clientAuth\n' >client.ext
        openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 365 \
            -extfile client.ext -out client.pem
        rm -f ./*.csr ./*.ext ./*.srl
    ) >"$LOGS/tls.log" 2>&1 || {
        tail -n 20 "$LOGS/tls.log" >&2
        die "generating certificates failed (see $LOGS/tls.log)"
    }
    printf 'admin\n%s\n' "$admin_password" >"$tmp/admin.plain"
    {
        echo "KEYSTORE_PASSWORD=$keystore_password"
        echo "ADMIN_PASSWORD=$admin_password"
        echo "PLAIN_PASSWORD=$plain_password"
        echo "SCRAM_PASSWORD=$scram_password"
    } >"$tmp/secrets.env"
    chmod 600 "$tmp"/*
    rm -rf "$TLS_DIR"
    mv "$tmp" "$TLS_DIR"
}

# The settings a bridge process needs to reach the secure broker as the SCRAM user "bridge".
write_client_env() {
    # shellcheck disable=SC1090
    source "$SECRETS"
    {
        echo "BRIDGE_KAFKA__BOOTSTRAP_SERVERS=$KAFKA_HOST:$KAFKA_PORT"
        echo "BRIDGE_KAFKA__SECURITY_PROTOCOL=SASL_SSL"
        echo "BRIDGE_KAFKA__SASL_MECHANISM=SCRAM-SHA-512"
        echo "BRIDGE_KAFKA__SASL_USERNAME=bridge"
        echo "BRIDGE_KAFKA__SASL_PASSWORD=$SCRAM_PASSWORD"
        echo "BRIDGE_KAFKA__SSL_CAFILE=$TLS_DIR/ca.pem"
    } >"$KAFKA_HOME_DIR/client.env"
    chmod 600 "$KAFKA_HOME_DIR/client.env"
}

# server.properties from the template: ports, the data dir and, when secure, TLS and passwords.
write_config() {
    local content
    content="$(<"$TEMPLATE")"
    content="${content//@KAFKA_PORT@/"$KAFKA_PORT"}"
    content="${content//@KAFKA_CONTROLLER_PORT@/"$KAFKA_CONTROLLER_PORT"}"
    content="${content//@KAFKA_DATA_DIR@/"$DATA"}"
    if [[ "$KAFKA_SECURITY" == sasl_ssl ]]; then
        # shellcheck disable=SC1090
        source "$SECRETS"
        content="${content//@KAFKA_SSL_PORT@/"$KAFKA_SSL_PORT"}"
        content="${content//@TLS_DIR@/"$TLS_DIR"}"
        content="${content//@KEYSTORE_PASSWORD@/"$KEYSTORE_PASSWORD"}"
        content="${content//@ADMIN_PASSWORD@/"$ADMIN_PASSWORD"}"
        content="${content//@PLAIN_PASSWORD@/"$PLAIN_PASSWORD"}"
    fi
    (
        umask 077
        printf '# Generated by compose/local/kafka.sh from %s; do not edit.\n%s\n' \
            "compose/local/${TEMPLATE##*/}" "$content" >"$CONFIG.tmp"
    )
    mv "$CONFIG.tmp" "$CONFIG"
}

format_storage() {
    [[ -f "$DATA/meta.properties" ]] && return 0
    local cluster_id
    cluster_id="$("$JAVA" -cp "$LIBS/*" kafka.tools.StorageTool random-uuid 2>>"$LOGS/format.log" | tail -n 1)"
    [[ -n "$cluster_id" ]] || die "could not generate a cluster id (see $LOGS/format.log)"
    log "formatting $DATA (cluster id $cluster_id)"
    mkdir -p "$DATA"
    local -a scram=()
    if [[ "$KAFKA_SECURITY" == sasl_ssl ]]; then
        # shellcheck disable=SC1090
        source "$SECRETS"
        scram=(
            --add-scram "SCRAM-SHA-256=[name=bridge,password=$SCRAM_PASSWORD]"
            --add-scram "SCRAM-SHA-512=[name=bridge,password=$SCRAM_PASSWORD]"
        )
    fi
    if ! "$JAVA" -cp "$LIBS/*" kafka.tools.StorageTool format --standalone --ignore-formatted \
        --cluster-id "$cluster_id" --config "$CONFIG" "${scram[@]}" >>"$LOGS/format.log" 2>&1; then
        tail -n 20 "$LOGS/format.log" >&2
        die "formatting $DATA failed"
    fi
}

start_java() {
    local -a heap jvm extra=()
    read -r -a heap <<<"$KAFKA_HEAP"
    if [[ -n "${KAFKA_OPTS:-}" ]]; then
        read -r -a extra <<<"$KAFKA_OPTS"
    fi
    jvm=(
        -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
        -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
        "-Dlog4j2.configurationFile=$LOG4J_CONFIG" "-Dkafka.logs.dir=$LOGS"
    )
    local -a detach=()
    # A session of its own: Ctrl-C in the terminal that ran `make demo` does not reach it.
    # Started from this non-interactive shell, setsid execs java without forking, so $! is
    # java's pid (checked by broker_pid below).
    if command -v setsid >/dev/null 2>&1; then
        detach=(setsid)
    fi
    local marker
    marker="===== $(date '+%Y-%m-%d %H:%M:%S') start"
    echo "$marker" >>"$LOGS/kafka.out"
    echo "$marker" >>"$LOGS/server.log" # log4j appends too (O_APPEND)
    # 9>&-: the broker must not inherit the lock's descriptor, or it would hold the lock.
    set +m
    nohup "${detach[@]}" "$JAVA" "${heap[@]}" "${jvm[@]}" "${extra[@]}" -cp "$LIBS/*" \
        kafka.Kafka "$CONFIG" >>"$LOGS/kafka.out" 2>&1 </dev/null 9>&- &
    echo "$!" >"$PID_FILE"
}

stop_pid() {
    local pid="$1" start
    start="$(now)"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_exit "$pid" "$KAFKA_STOP_TIMEOUT"; then
        log "broker (pid $pid) still running after ${KAFKA_STOP_TIMEOUT} s of SIGTERM; SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_exit "$pid" 10 || die "pid $pid survived SIGKILL"
    fi
    log "stopped (pid $pid) in $(elapsed "$start") s"
}

cmd_up() {
    take_lock
    local pid start rc
    start="$(now)"
    if pid="$(broker_pid)"; then
        if ready; then
            log "already running (pid $pid) on $KAFKA_HOST:$KAFKA_PORT"
            return 0
        fi
        log "running (pid $pid) but not answering yet; waiting up to ${KAFKA_START_TIMEOUT} s"
    else
        rm -f "$PID_FILE"
        # A few seconds' grace: a broker that was just killed may still be closing its sockets.
        if ! wait_ports_closed 5; then
            die "port $KAFKA_HOST:$KAFKA_PORT or $KAFKA_CONTROLLER_PORT is in use by a process" \
                "this script did not start (no live broker in $PID_FILE); stop it or set" \
                "KAFKA_PORT/KAFKA_CONTROLLER_PORT"
        fi
        check_java
        mkdir -p "$LOGS"
        resolve_jars
        if [[ "$KAFKA_SECURITY" == sasl_ssl ]]; then
            generate_tls
            write_client_env
        fi
        write_config
        format_storage
        start_java
        pid="$(tr -dc '0-9' <"$PID_FILE")"
        log "started Kafka $(kafka_version) (pid $pid); waiting for $KAFKA_HOST:$KAFKA_PORT"
    fi
    rc=0
    ready --wait "$KAFKA_START_TIMEOUT" --pid "$pid" || rc=$?
    if ((rc == 0)) && broker_pid >/dev/null; then
        log "ready on $KAFKA_HOST:$KAFKA_PORT (pid $pid) after $(elapsed "$start") s"
        return 0
    fi
    if alive "$pid"; then
        echo "kafka.sh: the broker did not answer within ${KAFKA_START_TIMEOUT} s; stopping it" >&2
        show_log_tail
        stop_pid "$pid" >&2 || true
    else
        echo "kafka.sh: the broker (pid $pid) exited during startup" >&2
        show_log_tail
    fi
    rm -f "$PID_FILE"
    exit 1
}

cmd_down() {
    take_lock
    local pid
    if ! pid="$(broker_pid)"; then
        rm -f "$PID_FILE"
        log "not running"
        return 0
    fi
    stop_pid "$pid"
    rm -f "$PID_FILE"
}

cmd_kill() {
    take_lock
    local pid
    if ! pid="$(broker_pid)"; then
        rm -f "$PID_FILE"
        log "not running"
        return 0
    fi
    kill -KILL "$pid"
    wait_exit "$pid" 10 || die "pid $pid survived SIGKILL"
    wait_ports_closed 10 || log "warning: the broker's ports are still open after SIGKILL"
    rm -f "$PID_FILE"
    log "killed (pid $pid, SIGKILL)"
}

cmd_status() {
    local pid
    if pid="$(broker_pid)"; then
        if ready; then
            log "running (pid $pid), ready on $KAFKA_HOST:$KAFKA_PORT, Kafka $(kafka_version)"
            return 0
        fi
        log "running (pid $pid), not answering on $KAFKA_HOST:$KAFKA_PORT"
        return 1
    fi
    if port_open "$KAFKA_PORT"; then
        log "not running from $KAFKA_HOME_DIR, but something listens on $KAFKA_HOST:$KAFKA_PORT"
    else
        log "not running"
    fi
    return 3
}

cmd_logs() {
    local file="$LOGS/server.log"
    [[ -f "$file" ]] || die "no log yet ($file)"
    if [[ "${1:-}" == "-f" ]]; then
        exec tail -n 100 -F "$file"
    fi
    tail -n "${KAFKA_LOG_LINES:-100}" "$file"
}

usage() {
    sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    kill) cmd_kill ;;
    logs) cmd_logs "${2:-}" ;;
    -h | --help | help) usage ;;
    *)
        usage >&2
        exit 2
        ;;
esac
