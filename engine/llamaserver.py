"""`python -m engine.llamaserver [--no-repack] ARGS...`: llama-cpp-python's server (llama_cpp.server), optionally
with llama.cpp's CPU weight repacking (extra buffer types) off. Some virtualised CPUs that report AMX crash in
the repacked kernels on any multi-token batch; `teletype serve --no-repack` runs them at the plain kernels' speed."""
from __future__ import annotations

import runpy
import sys


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
