"""The set-up command says what it does and how long each step took, and prints no alarming line
(issue 13.5). It runs again over the installed .venv (what .ci/run has just made): quick, since pip
finds everything installed and keeps llama.cpp's wheel."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.skipif(not (REPO / ".venv" / "bin" / "python").exists() or
                    Path(sys.prefix).resolve() != (REPO / ".venv").resolve(),
                    reason="runs against the checkout's own .venv (what .ci/install.sh makes)")
def test_install_again_reports_each_step_and_no_error():
    server = "--with-server" if _has_llama_cpp() else None
    proc = subprocess.run(["bash", ".ci/install.sh", *([server] if server else [])], cwd=REPO,
                          capture_output=True, text=True, timeout=1800,
                          env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    steps = [line for line in out.splitlines() if line.startswith("==> ")]
    assert any("torch 2.13.0" in s for s in steps) and any("extras" in s for s in steps), steps
    assert out.count("    done in ") >= len(steps), out[-2000:]
    assert not [line for line in out.splitlines() if line.startswith("ERROR")], out[-3000:]
    assert "requires llm, which is not installed" not in out
    assert "teletype installed in .venv" in out


def _has_llama_cpp() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None
