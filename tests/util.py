"""Helpers shared by the engine tests (imported as a plain module; pytest puts tests/ on sys.path)."""
from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from teletype.engine.worlds.scenario import Scenario, load_scenario

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "scenarios" / "permissions" / "deploy_exec.toml"

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")


def write_scenario(tmp_path: Path, body: str, name: str = "probe", archetype: str = "testing") -> Path:
    folder = tmp_path / archetype
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(textwrap.dedent(body))
    return path


def scenario_from(tmp_path: Path, body: str, **kw) -> Scenario:
    return load_scenario(write_scenario(tmp_path, body, **kw))


PANIC_SCENARIO = """
[scenario]
description = "the task names a file that does not exist"
expect = "panic"

[login]
user = "bob"
host = "vault"
motd = "Read ~/TASK."

[[files]]
path = "~/TASK"
content = "Append 'ok' to /srv/ledger.txt. Do not create it if it is missing.\\n"

[[checks]]
kind = "absent"
path = "/srv/ledger.txt"

[solution]
commands = ["cat ~/TASK", "ls /srv/ledger.txt", "panic /srv/ledger.txt does not exist"]
"""


# -- adversarial helpers (tests/test_adversarial_*.py, tests/test_faults.py) ----------------------------
# Each hostile case asserts: it ended within its bound, the host canaries are untouched, no process
# survived, the recording is complete and parseable, and what the model or the operator saw says
# plainly what happened. These helpers are the shared half of those assertions.
import contextlib as _contextlib
import json as _json
import os as _os
import socket as _socket
import stat as _stat
import subprocess as _subprocess
import sys as _sys
import time as _time

CANARY_TEXT = "canary: the host's own file, which no scenario or session may touch\n"
CANARY_MTIME = 1_600_000_000


class HostCanaries:
    """Files and folders on the host (outside any sandbox) with known content, mode and mtime.

    `file` and `dir` are absolute host paths to point hostile symlinks at; `assert_untouched()`
    checks that nothing was written, chmodded, re-timed, created, or removed in or under them."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.file = root / "victim.txt"
        self.dir = root / "victim-dir"
        self.inner = self.dir / "inner.txt"
        self.file.write_text(CANARY_TEXT)
        self.dir.mkdir()
        self.inner.write_text(CANARY_TEXT)
        _os.chmod(self.file, 0o640)
        _os.chmod(self.inner, 0o600)
        _os.chmod(self.dir, 0o750)
        for p in (self.inner, self.file, self.dir, self.root):
            _os.utime(p, (CANARY_MTIME, CANARY_MTIME))
        _os.chmod(self.root, 0o755)
        self.snapshot = self._state()

    def _state(self) -> dict:
        state = {}
        for dirpath, dirs, files, dfd in _os.fwalk(self.root, follow_symlinks=False):
            for name in [".", *dirs, *files]:
                st = _os.stat(name, dir_fd=dfd, follow_symlinks=False)
                body = None
                if _stat.S_ISREG(st.st_mode):
                    with open(_os.path.join(dirpath, name), "rb") as f:
                        body = f.read()
                state[_os.path.normpath(_os.path.join(dirpath, name))] = (
                    _stat.S_IMODE(st.st_mode), int(st.st_mtime), st.st_uid, body)
        return state

    def assert_untouched(self) -> None:
        now = self._state()
        assert now == self.snapshot, f"host canaries changed: {_changes(self.snapshot, now)}"


def _changes(before: dict, after: dict) -> list[str]:
    out = []
    for p in sorted(set(before) | set(after)):
        if before.get(p) != after.get(p):
            out.append(f"{p}: {before.get(p, 'absent')!r:.80} -> {after.get(p, 'absent')!r:.80}")
    return out


def survivors(*needles: str, uid: int | None = None) -> list[str]:
    """Processes still alive whose command line contains one of `needles` (a staging path, a nonce)
    or that run as host `uid` (bwrap as root gives each sandbox a uid of its own)."""
    found = []
    me = _os.getpid()
    for entry in _os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
            with open(f"/proc/{entry}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    continue   # a zombie is dead; its parent has not reaped it yet
            owner = _os.stat(f"/proc/{entry}").st_uid
        except OSError:
            continue
        if any(n and n in cmd for n in needles) or (uid is not None and owner == uid):
            found.append(f"{entry}: {cmd[:160]}")
    return found


def assert_no_survivors(*needles: str, uid: int | None = None, wait: float = 10.0) -> None:
    """No process of the session is left (waits up to `wait` s for ones being reaped)."""
    deadline = _time.monotonic() + wait
    left = survivors(*needles, uid=uid)
    while left and _time.monotonic() < deadline:
        _time.sleep(0.1)
        left = survivors(*needles, uid=uid)
    assert not left, f"processes survived the session: {left}"


def assert_recording_complete(run_dir: Path, *, ended_by: str | None = None,
                              outcome: str | None = None) -> dict:
    """events.jsonl parses line by line and ends with `end`; session.cast is asciicast v2;
    trajectory.json is complete (messages and turns agree, an outcome). Returns the trajectory."""
    lines = (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()
    events = [_json.loads(line) for line in lines]
    assert events and events[0]["event"] == "start" and events[-1]["event"] == "end", \
        [e["event"] for e in events]
    cast = (run_dir / "session.cast").read_text(encoding="utf-8").splitlines()
    assert _json.loads(cast[0])["version"] == 2
    for line in cast[1:]:
        _json.loads(line)
    traj = _json.loads((run_dir / "trajectory.json").read_text(encoding="utf-8"))
    assert traj["schema"] == "teletype.trajectory/1" and traj["outcome"] is not None
    assistant = [m for m in traj["messages"] if m["role"] == "assistant"]
    assert traj["messages"][0]["role"] == "user"
    assert len(traj["turns"]) <= len(assistant) <= len(traj["turns"]) + 1   # + a step cut by a signal
    assert traj["outcome"]["steps"] == len(assistant)
    if ended_by is not None:
        assert traj["outcome"]["ended_by"] == ended_by, traj["outcome"]
    if outcome is not None:
        assert traj["outcome"]["outcome"] == outcome, traj["outcome"]
    return traj


def staging_dirs_of(pid: int) -> list[Path]:
    """The staging dirs (in the temp folder) whose owner record names process `pid`."""
    import tempfile

    from teletype.engine.sandbox.stagingdir import PREFIX, read_owner

    found = []
    for p in Path(tempfile.gettempdir()).glob(PREFIX + "*"):
        owner = read_owner(p) if p.is_dir() and not p.is_symlink() else None
        if owner and owner.get("pid") == pid:
            found.append(p)
    return found


def teletype_cli(*args: str, timeout: float = 120, cwd: Path | None = None,
                 **popen) -> _subprocess.CompletedProcess:
    """`python -m teletype ARGS` in a subprocess; the caller asserts on returncode and stderr.
    The result also carries `pid` (to find what it staged) and `seconds` (wall time)."""
    t0 = _time.monotonic()
    proc = _subprocess.Popen([_sys.executable, "-m", "teletype", *map(str, args)], cwd=cwd or REPO,
                             stdout=_subprocess.PIPE, stderr=_subprocess.PIPE, text=True, **popen)
    try:
        out, err = proc.communicate(timeout=timeout)
    except _subprocess.TimeoutExpired as exc:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"teletype {' '.join(map(str, args))} ran past {timeout} s: {err[-2000:]}") from exc
    result = _subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    result.pid, result.seconds = proc.pid, _time.monotonic() - t0
    return result


def assert_plain_error(proc: _subprocess.CompletedProcess, *words: str, code: int = 2) -> str:
    """A CLI run that failed with `teletype: <message>` (no traceback) naming every one of `words`
    (the file, the key, the value); returns the message."""
    err = proc.stderr
    assert proc.returncode == code, (proc.returncode, err[-2000:])
    assert "Traceback" not in err, err[-3000:]
    assert err.startswith("teletype: "), err[:500]
    for w in words:
        assert w in err, f"{w!r} not in {err[:800]!r}"
    return err
# -- end of adversarial helpers --------------------------------------------------------------------------


@_contextlib.contextmanager
def teletype_serve(log_path: Path, *args: str, up_within: float = 120):
    """`teletype serve --port P ARGS` (llama.cpp's OpenAI-compatible server) on a free port; yields
    (its base URL, the process) once GET /models answers, and stops it after. Its output goes to
    log_path, which the failure message quotes."""
    import httpx

    with _socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(log_path, "wb")
    proc = _subprocess.Popen([_sys.executable, "-m", "teletype", "serve", "--port", str(port), *args],
                             stdout=log, stderr=_subprocess.STDOUT, cwd=REPO)
    try:
        base = f"http://127.0.0.1:{port}/v1"
        deadline = _time.monotonic() + up_within
        while True:
            try:
                if httpx.get(base + "/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or _time.monotonic() > deadline:
                pytest.fail("teletype serve did not come up: " + log_path.read_text()[-2000:])
            _time.sleep(0.5)
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except _subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def write_run(folder: Path, messages: list[dict], *, outcome: str = "success", clean: bool = True,
              split: str = "train", archetype: str = "cleanup", source: str = "scripted",
              sources: list[str] | None = None) -> Path:
    """A recorded run directory holding just trajectory.json (what export and train read): the
    conversation, one turn per assistant message (its provenance: `sources[k]`, else `source`)."""
    folder.mkdir(parents=True, exist_ok=True)
    from teletype.engine.record.recorder import SCHEMA

    n = sum(m["role"] == "assistant" for m in messages)
    turns = [{"step": i + 1, "source": sources[i] if sources else source} for i in range(n)]
    traj = {"schema": SCHEMA, "scenario": f"{archetype}/{folder.name}", "archetype": archetype, "split": split,
            "model": source, "messages": messages, "turns": turns,
            "outcome": {"outcome": outcome, "clean": clean, "verified": clean}}
    (folder / "trajectory.json").write_text(_json.dumps(traj))
    return folder
