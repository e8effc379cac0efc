#!/usr/bin/env bash
# Start a private docker daemon for teletype's docker sandbox tests (idempotent).
#
#   . <(.ci/dockerd.sh)        # or: eval "$(.ci/dockerd.sh)"
#
# If a daemon already answers on $TELETYPE_DOCKER_SOCK (default unix:///tmp/teletype-docker/docker.sock),
# nothing is done. Otherwise docker.io and busybox-static are installed when missing (apt-get, as root),
# dockerd is started in the background with its state under /tmp/teletype-docker (no iptables, no
# bridge: the sandbox uses network none), and the script waits (bounded) until it answers.
# Diagnostics go to stderr; stdout carries only the `export DOCKER_HOST=...` line to eval.
set -euo pipefail

SOCK_URL="${TELETYPE_DOCKER_SOCK:-unix:///tmp/teletype-docker/docker.sock}"
SOCK_PATH="${SOCK_URL#unix://}"
BASE="${TELETYPE_DOCKER_DIR:-/tmp/teletype-docker}"
WAIT_S="${TELETYPE_DOCKER_WAIT:-90}"

log() { printf 'dockerd.sh: %s\n' "$*" >&2; }

answers() {
  # A daemon answers when GET /_ping returns OK on the socket.
  if [ "${SOCK_URL#unix://}" = "$SOCK_URL" ]; then
    DOCKER_HOST="$SOCK_URL" docker version --format '{{.Server.Version}}' >/dev/null 2>&1
    return
  fi
  [ -S "$SOCK_PATH" ] || return 1
  if command -v curl >/dev/null 2>&1; then
    [ "$(curl -s --max-time 3 --unix-socket "$SOCK_PATH" http://localhost/_ping 2>/dev/null)" = "OK" ]
  elif command -v python3 >/dev/null 2>&1; then
    python3 - "$SOCK_PATH" <<'PY' >/dev/null 2>&1
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(3); s.connect(sys.argv[1])
s.sendall(b"GET /_ping HTTP/1.0\r\nHost: localhost\r\n\r\n")
data = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
sys.exit(0 if data.endswith(b"OK") else 1)
PY
  else
    DOCKER_HOST="$SOCK_URL" docker version --format '{{.Server.Version}}' >/dev/null 2>&1
  fi
}

hints() {
  log "docker daemon answers on $SOCK_URL"
  echo "export DOCKER_HOST=$SOCK_URL"
}

if answers; then
  hints
  exit 0
fi

if [ "${SOCK_URL#unix://}" = "$SOCK_URL" ]; then
  log "no daemon answers on $SOCK_URL, and only a unix:// socket can be started here"
  exit 1
fi

sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
{ [ -x /bin/busybox ] && file -L /bin/busybox 2>/dev/null | grep -q 'statically linked'; } \
  || { [ -x /bin/busybox ] && ! command -v file >/dev/null 2>&1 && dpkg -s busybox-static >/dev/null 2>&1; } \
  || missing+=(busybox-static)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  sudo_ apt-get update -qq >&2
  sudo_ apt-get install -y -qq "${missing[@]}" >&2
fi

sudo_ mkdir -p "$BASE" "$(dirname "$SOCK_PATH")"
pidfile="$BASE/docker.pid"
if [ -f "$pidfile" ] && sudo_ kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  log "dockerd (pid $(cat "$pidfile")) is running but does not answer yet; waiting for it"
else
  sudo_ rm -f "$pidfile" "$SOCK_PATH"
  log "starting dockerd (log: $BASE/dockerd.log)"
  group_args=()
  # Not root: the socket's group is the caller's, so the tests can reach it without sudo.
  [ "$(id -u)" = 0 ] || group_args=(--group "$(id -gn)")
  sudo_ nohup dockerd --iptables=false --bridge=none \
    -H "$SOCK_URL" "${group_args[@]}" \
    --data-root "$BASE/data" --exec-root "$BASE/exec" --pidfile "$pidfile" \
    >"$BASE/dockerd.log" 2>&1 </dev/null &
  started=$!
  disown || true
fi

deadline=$((SECONDS + WAIT_S))
until answers; do
  if [ $SECONDS -ge $deadline ]; then
    log "dockerd did not answer on $SOCK_URL within ${WAIT_S} s; the end of $BASE/dockerd.log:"
    tail -n 30 "$BASE/dockerd.log" >&2 || true
    exit 1
  fi
  if [ -n "${started:-}" ] && ! kill -0 "$started" 2>/dev/null; then
    log "dockerd exited; the end of $BASE/dockerd.log:"
    tail -n 30 "$BASE/dockerd.log" >&2 || true
    exit 1
  fi
  sleep 0.5
done
hints
