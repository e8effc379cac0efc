"""engine/ and train/ stay headless: importing any of their modules loads no UI library.

Each module is imported in a fresh interpreter (as harlequin's test_import_hygiene does), so a UI
import anywhere in its import graph shows up in sys.modules. The headless core must also not pay
for torch unless a model policy is chosen.
"""
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
UI = ("textual", "rich", "pyte")


def modules(package: str) -> list[str]:
    root = REPO / package
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(REPO).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found.append(".".join(parts))
    return found


def loaded_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


@pytest.mark.parametrize("module", modules("engine") + modules("train"))
def test_headless_modules_import_no_ui(module):
    loaded = loaded_after_import(module)
    assert not loaded & set(UI), f"{module} pulls in {sorted(loaded & set(UI))}"


@pytest.mark.parametrize("module", ["engine.session", "engine.cli", "engine.sandbox.bwrap", "engine.export",
                                    "engine.policy.scripted", "engine.validate"])
def test_the_headless_core_does_not_import_torch(module):
    assert "torch" not in loaded_after_import(module)


def test_no_ui_import_statements_in_engine_or_train():
    """The static twin of the runtime check: no `import textual`/`from rich ...` even in a function."""
    import re

    pattern = re.compile(r"^\s*(from|import)\s+(textual|rich|pyte)\b", re.M)
    offenders = [str(p.relative_to(REPO)) for pkg in ("engine", "train") for p in (REPO / pkg).rglob("*.py")
                 if pattern.search(p.read_text())]
    assert offenders == []
