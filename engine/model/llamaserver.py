"""`python -m teletype.engine.model.llamaserver [--no-repack] ARGS...`: llama-cpp-python's server (llama_cpp.server), optionally
with llama.cpp's CPU weight repacking (extra buffer types) off. Some virtualised CPUs that report AMX crash in
the repacked kernels on any multi-token batch; `teletype serve --no-repack` runs them at the plain kernels' speed."""
from __future__ import annotations

import runpy
import sys


def repack_default() -> bool:
    """Whether to keep llama.cpp's repacked CPU kernels: not where the CPU has AMX. There, the
    repacked path crashes (SIGSEGV) on the first prompt of more than one token, on the machines
    this project runs on (llama-cpp-python 0.3.36); the plain kernels give the same answers."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return True
    return " amx_" not in flags and " amx " not in flags


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["--no-repack"]:
        args = args[1:]
        import llama_cpp
        import llama_cpp.llama

        default = llama_cpp.llama_model_default_params

        def params():
            p = default()
            p.use_extra_bufts = False
            return p

        llama_cpp.llama.llama_cpp.llama_model_default_params = params
    sys.argv = ["llama_cpp.server", *args]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
