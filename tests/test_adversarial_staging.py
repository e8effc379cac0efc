"""Hostile scenario files and hostile sessions against the host: staging, bad inputs, resource bounds.

Scenario files are untrusted (people download and generate them) and staging runs as the host user,
root in CI. Each case is an attack or a malformed input; each asserts that it ended within its bound,
that the host canaries (files and folders with known content, mode and mtime) are untouched, that no
process survived, that a recording (where there is one) is complete, and that the error or the
observation says plainly what happened. The shared assertions are in tests/util.py.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from util import (
    HostCanaries,
    assert_no_survivors,
    assert_plain_error,
    assert_recording_complete,
    needs_bwrap,
    staging_dirs_of,
    teletype_cli,
)

from teletype.engine.policy import make_policy
from teletype.engine.runtime.session import Session
from teletype.engine.runtime.shell import Limits
from teletype.engine.sandbox.base import SandboxError
from teletype.engine.worlds.scenario import FileSpec, Scenario, ScenarioError, load_scenario

pytestmark = needs_bwrap

ROOT = os.geteuid() == 0
BOUND = 60.0            # seconds any one hostile case may take, start to finish (a generous upper limit)
LIMITS = Limits(command_timeout=20.0, login_timeout=10.0)


@pytest.fixture
def canaries(tmp_path):
    c = HostCanaries(tmp_path / "host-canaries")
    yield c
    c.assert_untouched()


def toml(value) -> str:
    """A TOML basic string (JSON's escapes are TOML's, for text without astral characters)."""
    return json.dumps(value, ensure_ascii=False)


def scenario_text(files: list[dict] = (), *, extra: str = "", commands=("exit",)) -> str:
    body = [extra] if extra else []
    for f in files:
        body.append("[[files]]\n" + "".join(f"{k} = {toml(v)}\n" for k, v in f.items()))
    body.append('[[checks]]\nkind = "exists"\npath = "~"\n')
    body.append(f"[solution]\ncommands = {toml(list(commands))}\n")
    return "\n".join(body)


def write(tmp_path: Path, text: str, name: str = "hostile") -> Path:
    folder = tmp_path / "adversarial"
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def refused(tmp_path: Path, text: str, *words: str, code: int = 2, bound: float = BOUND) -> str:
    """`teletype run` on this scenario fails at once with a plain error naming the file and `words`,
    staged nothing that outlives it, and left no process behind."""
    path = write(tmp_path, text)
    proc = teletype_cli("run", path, "--no-record", timeout=bound)
    assert proc.seconds < bound
    err = assert_plain_error(proc, str(path), *words, code=code)
    assert staging_dirs_of(proc.pid) == []
    assert_no_survivors(str(path))
    return err


def run_session(tmp_path: Path, text: str, commands: list[str], **kw):
    """Run `commands` in a recorded bwrap session; returns (outcome, trajectory, staging path,
    the sandbox's host uid as root)."""
    sc = load_scenario(write(tmp_path, text))
    rec = tmp_path / "run"
    s = Session(sc, policy=make_policy("scripted", commands=commands), record_dir=rec, limits=LIMITS, **kw)
    t0 = time.monotonic()
    s.start()
    staging = s.sandbox.staging.path
    uid = s.sandbox.host_uid if ROOT else None
    outcome = s.run()
    assert time.monotonic() - t0 < BOUND
    assert not staging.exists(), "the staging dir outlived the session"
    assert_no_survivors(str(staging), uid=uid)
    traj = assert_recording_complete(rec, ended_by=outcome.ended_by)
    return outcome, traj, staging


def observations(traj: dict) -> list[str]:
    return [m["content"] for m in traj["messages"][1:] if m["role"] == "user"]


# -- 1. staging routes out of the root (the issue's, then their relatives) -------------------------------
def test_dotdot_from_the_root_is_refused(tmp_path, canaries):
    value = "/../../../../../.." + str(canaries.root / "created")
    refused(tmp_path, scenario_text([{"path": value, "content": "pwned\n"}]), "[files.0.path]", value, "'..'")
    assert not (canaries.root / "created").exists()


def test_dotdot_under_an_outside_folder_is_refused(tmp_path, canaries):
    value = "/srv/../../../../../../.." + str(canaries.root / "created")
    refused(tmp_path, scenario_text([{"path": value, "content": "pwned\n"}]), "[files.0.path]", value, "'..'")


def test_dotdot_out_of_home_is_refused(tmp_path, canaries):
    value = "~/../../../../../../../.." + str(canaries.root / "created")
    refused(tmp_path, scenario_text([{"path": "~/ok", "content": ""}, {"path": value, "content": "x"}]),
            "[files.1.path]", value)


def test_dotdot_in_a_relative_path_is_refused(tmp_path, canaries):
    value = "notes/../../../../../../../.." + str(canaries.root / "created")
    refused(tmp_path, scenario_text([{"path": value, "content": "x", "mode": "0666"}]), "[files.0.path]", value)


def test_a_file_entry_over_a_staged_symlink_does_not_write_or_chmod_its_target(tmp_path, canaries):
    text = scenario_text([{"path": "~/link", "kind": "symlink", "target": str(canaries.file)},
                          {"path": "~/link", "content": "overwritten\n", "mode": "0666"}])
    err = refused(tmp_path, text, "[files.1.path]", "'~/link'", "symlink", "[files.0.path]")
    assert "never writes through a symlink" in err


def test_a_file_entry_through_a_staged_symlink_creates_nothing_there(tmp_path, canaries):
    text = scenario_text([{"path": "~/link", "kind": "symlink", "target": str(canaries.dir)},
                          {"path": "~/link/new", "content": "planted\n"}])
    refused(tmp_path, text, "[files.1.path]", "'~/link/new'", "passes through link, which is a symlink")
    assert not (canaries.dir / "new").exists()


def test_a_dir_entry_with_a_mode_over_a_staged_symlink_does_not_chmod_the_host_folder(tmp_path, canaries):
    text = scenario_text([{"path": "~/link", "kind": "symlink", "target": str(canaries.dir)},
                          {"path": "~/link", "kind": "dir", "mode": "0777"}])
    refused(tmp_path, text, "[files.1.path]", "'~/link'", "symlink")


def test_a_dir_entry_below_a_staged_symlink_is_refused(tmp_path, canaries):
    text = scenario_text([{"path": "~/link", "kind": "symlink", "target": str(canaries.dir)},
                          {"path": "~/link/sub/deeper", "kind": "dir", "mode": "0700"}])
    refused(tmp_path, text, "[files.1.path]", "passes through link")
    assert not (canaries.dir / "sub").exists()


def test_a_symlinked_folder_outside_home_is_not_written_through(tmp_path, canaries):
    text = scenario_text([{"path": "/srv/data", "kind": "symlink", "target": str(canaries.dir)},
                          {"path": "/srv/data/inner.txt", "content": "overwritten\n", "mode": "0666"}])
    refused(tmp_path, text, "[files.1.path]", "'/srv/data/inner.txt'", "passes through srv/data")


def test_a_symlink_nested_in_a_staged_folder_is_not_written_through(tmp_path, canaries):
    text = scenario_text([{"path": "~/a/b", "kind": "dir"},
                          {"path": "~/a/b/c", "kind": "symlink", "target": str(canaries.root)},
                          {"path": "~/a/b/c/victim.txt", "content": "overwritten\n"}])
    refused(tmp_path, text, "[files.2.path]", "passes through a/b/c, which is a symlink")


@pytest.mark.parametrize("value", ["/", "/proc/self/environ", "/dev/shm/x", "/sys/kernel/x",
                                   "/run/teletype/bin/panic", "/run/teletype-login/rc", "/home", "/run"])
def test_files_that_would_shadow_the_engines_mounts_are_refused(tmp_path, canaries, value):
    text = scenario_text([{"path": value, "content": "#!/bin/sh\necho forged\n"}])
    err = refused(tmp_path, text, "[files.0.path]", repr(value))
    assert "mounts itself" in err or "root folder" in err


def test_files_under_the_hosts_read_only_system_folders_are_refused_by_bwrap(tmp_path, canaries):
    text = scenario_text([{"path": "/usr/local/bin/evil", "content": "#!/bin/sh\n"}])
    refused(tmp_path, text, "[files.0.path]", "/usr/local/bin/evil", "read-only")


def test_a_duplicate_path_of_another_kind_names_both_entries(tmp_path, canaries):
    text = scenario_text([{"path": "~/a", "content": "file\n"}, {"path": "~/a", "kind": "dir", "mode": "0700"}])
    refused(tmp_path, text, "[files.1.path]", "'~/a'", "already a file", "[files.0.path]")


def test_an_outside_symlink_is_a_link_in_the_sandbox_not_a_bind_of_its_host_target(tmp_path, canaries):
    """A bind mount follows a symlink on the host: /opt/secret -> the host's file would be readable."""
    text = scenario_text([{"path": "/opt/secret", "kind": "symlink", "target": str(canaries.file)}])
    outcome, traj, _ = run_session(tmp_path, text, ["cat /opt/secret; readlink /opt/secret", "exit"])
    seen = observations(traj)[0]
    assert "canary" not in seen and "No such file" in seen and str(canaries.file) in seen


def test_staging_defends_itself_when_validation_is_bypassed(tmp_path, canaries):
    """A Scenario built in code skips the loader's checks: staging still refuses the routes out."""
    from teletype.engine.sandbox.bwrap import BwrapSandbox

    base = load_scenario(write(tmp_path, scenario_text()))
    routes = ["/../../../../../.." + str(canaries.root / "x"), "~/../../../../../.." + str(canaries.root / "x"),
              "/proc/1/x"]
    for value in routes:
        spec = FileSpec.model_construct(path=value, content="pwned\n", mode="0666", kind="file", target=None)
        sc = base.model_copy(update={"files": [spec]})
        with pytest.raises(SandboxError, match=r"\[files\.0\.path\]") as info:
            BwrapSandbox(sc)
        assert str(base.source) in str(info.value) and repr(value) in str(info.value)
    link = FileSpec.model_construct(path="~/l", kind="symlink", target=str(canaries.file), content=None, mode=None)
    over = FileSpec.model_construct(path="~/l", kind="file", content="x", mode="0666", target=None)
    with pytest.raises(SandboxError, match="symlink"):
        BwrapSandbox(base.model_copy(update={"files": [link, over]}))
    assert staging_dirs_of(os.getpid()) == []


# -- 1b. what the sandboxed user plants: no host pass may follow it ---------------------------------------
def test_symlinks_and_locked_folders_planted_in_home_are_not_followed_by_the_host(tmp_path, canaries):
    plant = (f"ln -s / ~/root; ln -s /tmp ~/t; ln -s {canaries.dir} ~/cd; ln -s {canaries.file} ~/cf; "
             "mkdir -p ~/locked/deep/er && touch ~/locked/deep/er/f && ln -s / ~/locked/deep/root && "
             "chmod 000 ~/locked/deep/er ~/locked/deep ~/locked && mkdir ~/ro && chmod 500 ~/ro && echo planted")
    text = scenario_text([{"path": "~/TASK", "content": "plant\n", "mode": "0444"}],
                         extra='[[checks]]\nkind = "mode"\npath = "~/cf"\nmode = "0640"\n')
    outcome, traj, staging = run_session(tmp_path, text, [plant, "exit"])
    assert "planted" in observations(traj)[0]
    assert outcome.ended_by == "exit"
    # the checker ran in the sandbox: ~/cf dangles there (the host's path is not in it), so the mode
    # check fails instead of reading the host file's mode
    assert [(c["kind"], c["passed"]) for c in outcome.checks] == [("mode", False), ("exists", True)]


def test_a_session_that_swaps_a_staged_file_for_a_symlink_leaves_the_host_alone(tmp_path, canaries):
    text = scenario_text([{"path": "~/notes/todo", "content": "a\n", "mode": "0600"},
                          {"path": "~/notes", "kind": "dir", "mode": "0700"}])
    outcome, traj, _ = run_session(tmp_path, text, [
        f"rm -rf ~/notes && ln -s {canaries.dir} ~/notes && ln -s / ~/notes2 && ls -la ~ | wc -l", "exit"])
    assert outcome.ended_by == "exit"


# -- 6. bad scenario inputs: a clear error, naming the file and the key, within seconds -----------------
@pytest.mark.parametrize("name", ["..", ".", "panic", "../evil", "-rf", "a/b", "x" * 65])
def test_unusable_provider_names_are_refused(tmp_path, canaries, name):
    refused(tmp_path, f'[provider]\n{toml(name)} = "echo hi"\n\n' + scenario_text(), "[provider]", repr(name),
            bound=15)


@pytest.mark.parametrize("key", ["ENV", "PS1", "PS2", "PS4", "IFS", "PATH", "HOME", "USER", "LOGNAME", "SHELL",
                                 "TELETYPE_SESSION", "TELETYPE_NONCE"])
def test_reserved_environment_variables_are_refused(tmp_path, canaries, key):
    err = refused(tmp_path, f'[env]\n{key} = "/dev/null"\n\n' + scenario_text(), "[env]", key, "reserved",
                  bound=15)
    assert "teletype sets it" in err


def test_an_environment_value_with_a_nul_is_refused(tmp_path, canaries):
    refused(tmp_path, '[env]\nTASK = "a\\u0000b"\n\n' + scenario_text(), "[env]", "TASK", "NUL", bound=15)


@pytest.mark.parametrize("value", ["~/a\nb", "~/\u001b[2Jclear", "~/tab\there", "~/bell\u0007"])
def test_control_characters_in_paths_are_refused(tmp_path, canaries, value):
    refused(tmp_path, scenario_text([{"path": value, "content": "x"}]), "[files.0.path]", "control character",
            bound=15)


def test_a_symlink_target_with_control_characters_is_refused(tmp_path, canaries):
    refused(tmp_path, scenario_text([{"path": "~/l", "kind": "symlink", "target": "/tmp/\u001b]7770;x\u0007"}]),
            "[files.0.target]", "control character", bound=15)


@pytest.mark.parametrize("mode", ["4755", "2755", "6777"])
def test_setuid_and_setgid_modes_are_refused(tmp_path, canaries, mode):
    refused(tmp_path, scenario_text([{"path": "~/bin/tool", "content": "#!/bin/sh\n", "mode": mode}]),
            "[files.0]", mode, "setuid", bound=15)


def test_odd_but_harmless_modes_stage_and_clean_up(tmp_path, canaries):
    """Folders without any permission, a sticky folder, files the owner cannot read: staged as asked
    (modes last, deepest first), graded, and removed afterwards."""
    files = [{"path": "~/vault/inner/secret", "content": "s\n", "mode": "0000"},
             {"path": "~/vault/inner", "kind": "dir", "mode": "0000"},
             {"path": "~/vault", "kind": "dir", "mode": "0500"},
             {"path": "~/drop", "kind": "dir", "mode": "1777"}]
    text = scenario_text(files, extra='[[checks]]\nkind = "mode"\npath = "~/drop"\nmode = "1777"\n')
    outcome, traj, _ = run_session(tmp_path, text, ["stat -c '%a %n' ~/vault ~/drop", "exit"])
    assert "500 /home/user/vault" in observations(traj)[0] and "1777 /home/user/drop" in observations(traj)[0]
    assert outcome.outcome == "success"


def test_too_many_files_are_refused_quickly(tmp_path, canaries):
    files = [{"path": f"~/f{i}", "content": ""} for i in range(5001)]
    refused(tmp_path, scenario_text(files), "[files]", "5,001 entries", "at most 5,000", bound=30)


def test_a_huge_file_is_refused(tmp_path, canaries):
    err = refused(tmp_path, scenario_text([{"path": "~/big", "content": "x" * (17 << 20)}]),
                  "[files.0.content]", "at most 16,777,216", bound=30)
    assert len(err) < 2000   # the message quotes sizes, not the content


def test_many_large_files_together_are_refused(tmp_path, canaries):
    files = [{"path": f"~/big{i}", "content": "y" * (15 << 20)} for i in range(5)]
    refused(tmp_path, scenario_text(files), "[files]", "at most 67,108,864", bound=30)


def test_a_motd_of_megabytes_is_refused(tmp_path, canaries):
    refused(tmp_path, f"[login]\nmotd = {toml('m' * (2 << 20))}\n\n" + scenario_text(), "[login.motd]",
            "at most 65,536", bound=30)


@pytest.mark.parametrize("shell", ["sh", "/bin/../bin/sh", "/bin/sh -c evil", ""])
def test_a_login_shell_that_is_not_an_absolute_path_is_refused(tmp_path, canaries, shell):
    refused(tmp_path, f"[login]\nshell = {toml(shell)}\n\n" + scenario_text(), "[login.shell]", bound=15)


def test_a_login_shell_that_does_not_exist_names_the_key(tmp_path, canaries):
    refused(tmp_path, '[login]\nshell = "/no/such/shell"\n\n' + scenario_text(), "[login.shell]", "/no/such/shell",
            bound=15)


def test_a_login_shell_that_exits_at_once_is_an_error_naming_the_key(tmp_path, canaries):
    err = refused(tmp_path, '[login]\nshell = "/bin/false"\n\n' + scenario_text(), "[login.shell]", "/bin/false",
                  "exited before its first prompt", code=1, bound=15)
    assert "ShellError" not in err


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_a_login_shell_that_never_prints_teletypes_prompt_fails_fast(tmp_path, canaries):
    """bash -i does not read $ENV: it prompts with its own PS1 and waits. No 2 x 15 s wait."""
    refused(tmp_path, '[login]\nshell = "/bin/bash"\n\n' + scenario_text(), "[login.shell]", "/bin/bash",
            "never printed teletype's prompt", code=1, bound=15)


# -- 7. resource bounds inside bwrap -----------------------------------------------------------------------
@pytest.mark.skipif(not ROOT, reason="home is a size-bounded tmpfs only where the host lets teletype mount "
                                     "one (as root); otherwise only RLIMIT_FSIZE bounds each file")
def test_a_disk_flood_through_home_stops_at_the_quota(tmp_path, canaries):
    from teletype.engine.sandbox.bwrap import HOME_QUOTA

    flood = "for i in 1 2 3 4; do head -c 60000000 /dev/zero > ~/flood$i; done; du -sm ~ | cut -f1"
    outcome, traj, _ = run_session(tmp_path, scenario_text(), [flood, "exit"])
    seen = observations(traj)[0]
    assert "No space left on device" in seen
    used_mib = int([line for line in seen.splitlines() if line.strip().isdigit()][-1])
    assert used_mib <= HOME_QUOTA >> 20


def test_a_single_huge_file_stops_at_the_file_size_limit(tmp_path, canaries):
    outcome, traj, _ = run_session(tmp_path, scenario_text(), [
        "head -c 300000000 /dev/zero > /tmp/one; ls -l /tmp/one | awk '{print $5}'", "exit"])
    seen = observations(traj)[0]
    assert "File too large" in seen or "File size limit exceeded" in seen
    size = int([line for line in seen.splitlines() if line.strip().isdigit()][-1])
    assert size <= 64 << 20


@pytest.mark.parametrize("folder", ["/tmp", "/var/tmp", "/dev/shm"])
def test_the_sandboxs_temporary_folders_are_small_tmpfs(tmp_path, canaries, folder):
    flood = (f"for i in 1 2 3; do head -c 40000000 /dev/zero > {folder}/f$i; done; "
             f"df -k {folder} | tail -1 | awk '{{print $2}}'")
    outcome, traj, _ = run_session(tmp_path, scenario_text(), [flood, "exit"])
    seen = observations(traj)[0]
    assert "No space left on device" in seen
    assert int([line for line in seen.splitlines() if line.strip().isdigit()][-1]) <= 64 << 10


@pytest.mark.skipif(not os.path.exists("/usr/bin/python3"), reason="needs python3 in the sandbox's /usr")
def test_a_large_allocation_fails_inside_the_sandbox(tmp_path, canaries):
    alloc = "python3 -c 'b = bytearray(2 << 30); print(\"allocated\", len(b))' 2>&1 | tail -1"
    outcome, traj, _ = run_session(tmp_path, scenario_text(), [alloc, "exit"])
    seen = observations(traj)[0]
    assert "MemoryError" in seen and "allocated" not in seen


def test_nested_user_namespaces_are_not_available(tmp_path, canaries):
    from teletype.engine.sandbox.bwrap import _bwrap_has, find_bwrap

    if not _bwrap_has(find_bwrap(), "--disable-userns"):
        pytest.skip("this bwrap has no --disable-userns (0.8 and later)")
    outcome, traj, _ = run_session(tmp_path, scenario_text(), ["unshare -r id; echo status=$?", "exit"])
    seen = observations(traj)[0]
    assert "uid=0" not in seen and "status=1" in seen and "unshare failed" in seen


def test_the_scenario_validators_bound_inputs_without_a_sandbox(tmp_path):
    """The same bounds hold for a scenario loaded in code (eval, validate), not only through the CLI."""
    path = write(tmp_path, '[provider]\n".." = "echo hi"\n\n' + scenario_text())
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(path) in str(info.value) and "[provider]" in str(info.value) and "'..'" in str(info.value)
    with pytest.raises(ValueError):
        Scenario.model_validate({"env": {"ENV": "/dev/null"}, "checks": [{"kind": "exists", "path": "~"}],
                                 "solution": {"commands": ["exit"]}})


def test_a_scenario_file_of_hundreds_of_megabytes_is_refused_without_reading_it_all(tmp_path, canaries):
    path = write(tmp_path, scenario_text())
    with open(path, "r+b") as f:
        f.truncate(400 << 20)    # sparse: 400 MB of NULs after the text
    proc = teletype_cli("run", path, "--no-record", timeout=30)
    assert_plain_error(proc, str(path), "over 100,663,296 bytes")


def test_toml_nested_too_deeply_is_an_error_not_a_recursion_traceback(tmp_path, canaries):
    refused(tmp_path, "x = " + "[" * 50_000 + "]" * 50_000 + "\n", "nested too deeply", bound=15)
