"""engine/ and train/ stay headless: importing any of their modules loads no UI library.

Each module is imported in a fresh interpreter (as harlequin's test_import_hygiene does), so a UI
import anywhere in its import graph shows up in sys.modules. The headless core must also not pay
for torch unless a model policy is chosen.
"""
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
UI = ("textual", "rich", "pyte")
# The extras (model, train, gguf, serve): a module that needs one is skipped where it is not installed.
OPTIONAL = ("torch", "transformers", "peft", "accelerate", "safetensors", "tokenizers", "gguf", "llama_cpp")


def modules(package: str) -> list[str]:
    root = REPO / package
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(REPO).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found.append("teletype." + ".".join(parts))
    return found


def loaded_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    missing = re.search(r"ModuleNotFoundError: No module named '([\w.]+)'", out.stderr)
    if out.returncode and missing and missing.group(1).split(".")[0] in OPTIONAL:
        pytest.skip(f"{module} needs {missing.group(1)}, an optional dependency that is not installed")
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


@pytest.mark.parametrize("module", modules("engine") + modules("train"))
def test_headless_modules_import_no_ui(module):
    loaded = loaded_after_import(module)
    assert not loaded & set(UI), f"{module} pulls in {sorted(loaded & set(UI))}"


@pytest.mark.parametrize("module", ["teletype.engine.runtime.session", "teletype.engine.cli", "teletype.cli",
                                    "teletype.engine.sandbox.bwrap", "teletype.engine.record.export",
                                    "teletype.engine.policy.scripted", "teletype.engine.eval.validate"])
def test_the_headless_core_does_not_import_torch(module):
    assert "torch" not in loaded_after_import(module)


def test_no_ui_import_statements_in_engine_or_train():
    """The static twin of the runtime check: no `import textual`/`from rich ...` even in a function."""
    pattern = re.compile(r"^\s*(from|import)\s+(textual|rich|pyte)\b", re.M)
    offenders = [str(p.relative_to(REPO)) for pkg in ("engine", "train") for p in (REPO / pkg).rglob("*.py")
                 if pattern.search(p.read_text())]
    assert offenders == []
