"""The documentation a user has: README.md and docs/. Its links resolve, and docs/reference.md names every
key the code accepts or writes (derived from the code and from a real recorded session, so a key added
to either without a word in the reference fails here)."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import get_args

import pytest
from util import REPO, needs_bwrap

REFERENCE = REPO / "docs" / "reference.md"
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", path.read_text(), flags=re.M)}


@pytest.mark.parametrize("doc", ["README.md", "docs/reference.md"])
def test_every_relative_link_resolves(doc):
    path = REPO / doc
    links = [m.group(1) for m in LINK.finditer(path.read_text())]
    assert links, f"{doc} links to nothing?"
    for link in links:
        if re.match(r"[a-z]+:", link):
            continue  # a web address: not checked offline
        target, _, anchor = link.partition("#")
        dest = (path.parent / target).resolve() if target else path
        assert dest.exists(), f"{doc}: the link {link!r} points to {dest}, which does not exist"
        if anchor:
            assert anchor in anchors(dest), f"{doc}: {link!r}: no heading #{anchor} in {dest.name}"


def section(title: str) -> str:
    text = REFERENCE.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def test_the_reference_names_every_scenario_key_and_every_check_kind():
    from teletype.engine.worlds import scenario as sc

    text = section("Scenario files")
    for table, model in (("[scenario]", sc.ScenarioMeta), ("[login]", sc.Login), ("[[files]]", sc.FileSpec),
                         ("[solution]", sc.Solution)):
        part = text[text.index(f"### `{table}`"):]
        part = part[:part.find("\n### ", 1)]
        for key in model.model_fields:
            assert f"| `{key}` |" in part, f"docs/reference.md: {table} does not document `{key}`"
    for name in sc.Scenario.model_fields:
        if name not in ("name", "source"):   # set by the loader, not written in files
            assert f"`[{name}]`" in text or f"`[[{name}]]`" in text, f"no section for [{name}]"
    checks = text[text.index("### `[[checks]]`"):]
    checks = checks[:checks.find("\n### ", 1)]
    for model in get_args(get_args(sc.Check)[0]):
        keys = [k for k in model.model_fields if k not in ("kind", "description")]
        for kind in get_args(model.model_fields["kind"].annotation):
            row = next((line for line in checks.splitlines() if line.startswith(f"| `{kind}` |")), None)
            assert row is not None, f"docs/reference.md: check kind {kind} is not documented"
            for key in keys:
                assert f"`{key}`" in row.split("|")[2], f"check kind {kind}: key `{key}` not in its row"
    assert "optional `description`" in checks


def test_the_reference_names_every_outcome():
    from teletype.engine.record.outcome import OUTCOMES

    text = section("Outcomes and metrics")
    for outcome in OUTCOMES:
        assert f"| `{outcome}` |" in text, outcome
    for metric in ("operate_rate", "terminate_rate", "verified_rate", "clean"):
        assert metric in text


@needs_bwrap
def test_the_reference_names_every_key_of_a_real_recording(tmp_path):
    from teletype.engine.policy.scripted import ScriptedPolicy
    from teletype.engine.runtime.session import Session
    from teletype.engine.worlds.scenario import find_scenarios, load_scenario

    scenario = load_scenario(find_scenarios("file_create/hello_script")[0])
    session = Session(scenario, policy=ScriptedPolicy(scenario), record_dir=tmp_path / "run")
    session.start()
    session.run()
    text = section("Recordings")
    events = [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    for ev in events:
        row = next((line for line in text.splitlines() if line.startswith(f"| `{ev['event']}` |")), None)
        assert row is not None, f"event {ev['event']} is not documented"
        for key in set(ev) - {"t", "wall", "event"}:
            assert f"`{key}`" in row, f"event {ev['event']}: key `{key}` not documented"
    traj = json.loads((tmp_path / "run" / "trajectory.json").read_text())
    for key in traj:
        assert f"`{key}`" in text, f"trajectory.json: `{key}` not documented"
    for turn in traj["turns"]:
        for key in turn:
            assert f"| `{key}`" in text or f", `{key}`" in text, f"turn key `{key}` not documented"
    for key in traj["outcome"]:
        assert f"`{key}`" in section("Outcomes and metrics") + text, f"outcome key `{key}` not documented"
    codes = {json.loads(line)[1] for line in (tmp_path / "run" / "session.cast").read_text().splitlines()[1:]}
    for code in codes:
        assert f'`"{code}"`' in text, f"session.cast code {code!r} not documented"


def test_the_python_example_in_the_reference_runs(tmp_path):
    """docs/reference.md, "From Python": the block runs as printed, from outside the checkout."""
    import shutil
    import subprocess
    import sys

    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    text = (REPO / "docs" / "reference.md").read_text()
    section = text[text.index("## From Python"):]
    code = section[section.index("```python") + len("```python"):section.index("```", section.index("```python") + 9)]
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["success", "True"]
    assert (tmp_path / "runs" / "x" / "trajectory.json").is_file()
