"""Faults: real signals sent to real `teletype run` and `teletype eval` processes.

SIGTERM and SIGINT finish the recording (outcome `stopped`) and remove the staging dir; SIGKILL
cannot, so the staging dir records its owner and `teletype clean` (or the next sandbox) removes it
once that owner is gone, and nothing that belongs to a live run or to another program.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from util import (
    REPO,
    HostCanaries,
    assert_no_survivors,
    assert_recording_complete,
    needs_bwrap,
    staging_dirs_of,
    teletype_cli,
)

from teletype.engine.eval.evaluate import load_results, run_eval
from teletype.engine.policy.options import ModelChoice
from teletype.engine.sandbox.stagingdir import OWNER_FILE, OWNER_SCHEMA, StagingDir, find_orphans, owner_record

pytestmark = needs_bwrap

BOUND = 60.0
SLOW = """\
[[files]]
path = "~/TASK"
content = "touch ~/done, slowly\\n"

[[checks]]
kind = "exists"
path = "~/done"

[solution]
commands = ["cat TASK", "sleep {sleep}", "touch done", "exit"]
"""


def slow_scenario(folder: Path, name: str = "slow", sleep: float = 30) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(SLOW.format(sleep=sleep))
    return path


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "teletype", *map(str, args)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(predicate, what: str, timeout: float = BOUND):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def in_flight(run_dir: Path, command: str) -> bool:
    """The session has typed `command` (its step marker is in the cast)."""
    cast = run_dir / "session.cast"
    return cast.exists() and f"step 2: {command}" in cast.read_text(encoding="utf-8", errors="replace")


def finish(proc: subprocess.Popen, timeout: float = BOUND) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_during_run_finishes_the_recording_as_stopped_and_cleans_up(tmp_path, sig, code):
    canaries = HostCanaries(tmp_path / "canaries")
    rec = tmp_path / "rec"
    proc = start("run", slow_scenario(tmp_path / "sc"), "--record", rec)
    wait_for(lambda: in_flight(rec, "sleep 30"), "the slow step")
    staged = staging_dirs_of(proc.pid)
    assert len(staged) == 1
    t0 = time.monotonic()
    proc.send_signal(sig)
    rc, err = finish(proc)
    assert time.monotonic() - t0 < 20, "stopping took longer than the bound"
    assert rc == code, err
    assert f"stopped by {signal.Signals(sig).name}" in err and "Traceback" not in err
    assert "stopped after 2 steps" in err and str(rec) in err
    traj = assert_recording_complete(rec, ended_by="stopped", outcome="stopped")
    assert [m["content"] for m in traj["messages"] if m["role"] == "assistant"] == ["cat TASK", "sleep 30"]
    assert not staged[0].exists()
    assert_no_survivors(str(staged[0]))
    canaries.assert_untouched()


def test_a_second_signal_while_stopping_does_not_cut_the_clean_up_short(tmp_path):
    rec = tmp_path / "rec"
    proc = start("run", slow_scenario(tmp_path / "sc"), "--record", rec)
    wait_for(lambda: in_flight(rec, "sleep 30"), "the slow step")
    staged = staging_dirs_of(proc.pid)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGTERM):
        proc.send_signal(sig)
        time.sleep(0.02)
    rc, err = finish(proc)
    assert rc == 143 and "Traceback" not in err, err
    assert_recording_complete(rec, ended_by="stopped", outcome="stopped")
    assert staged and not any(p.exists() for p in staged)
    assert_no_survivors(*map(str, staged))


@pytest.mark.parametrize("jobs", [1, 2])
def test_sigterm_during_eval_stops_every_session_keeps_them_and_resume_completes(tmp_path, jobs):
    folder = tmp_path / "sc"
    paths = [slow_scenario(folder, f"s{i}", sleep=30 if i < 2 else 0.1) for i in range(4)]
    out = tmp_path / "ev"
    proc = start("eval", folder, "--out", out, "--jobs", jobs, "--no-progress")
    first = out / "sessions" / "sc-s0"
    wait_for(lambda: in_flight(first, "sleep 30"), "the first slow step")
    staged = staging_dirs_of(proc.pid)
    assert 1 <= len(staged) <= jobs
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    rc, err = finish(proc)
    assert time.monotonic() - t0 < 20, "the command in flight (sleep 30) was waited out"
    assert rc == 143 and "Traceback" not in err, err
    assert "sc/s0" not in load_results(out)          # a stopped session has no result row: it runs again
    traj = assert_recording_complete(first, ended_by="stopped", outcome="stopped")
    assert traj["turns"][0]["command"] == "cat TASK"
    assert not any(p.exists() for p in staged)
    assert_no_survivors(*map(str, staged))
    # Resumed (quickly now): every scenario once, and the stopped recording kept aside, not deleted.
    paths = [slow_scenario(folder, f"s{i}", sleep=0.1) for i in range(4)]
    summary = run_eval(paths, ModelChoice("scripted", {}), out, jobs=jobs, progress=False)
    assert summary["metrics"]["overall"]["n"] == 4 and summary["metrics"]["overall"]["clean"] == 1.0
    kept = out / "sessions" / "sc-s0.stopped-1"
    assert_recording_complete(kept, ended_by="stopped", outcome="stopped")


def test_sigkill_leaves_an_orphan_that_clean_removes_and_a_live_run_is_left_alone(tmp_path):
    live_rec = tmp_path / "live"
    live = start("run", slow_scenario(tmp_path / "sc2", sleep=8), "--record", live_rec)
    wait_for(lambda: in_flight(live_rec, "sleep 8"), "the live run's slow step")
    (live_staging,) = staging_dirs_of(live.pid)
    rec = tmp_path / "rec"
    victim = start("run", slow_scenario(tmp_path / "sc"), "--record", rec)
    wait_for(lambda: in_flight(rec, "sleep 30"), "the slow step")
    (orphan,) = staging_dirs_of(victim.pid)
    victim.kill()
    victim.communicate(timeout=BOUND)
    assert orphan.exists() and json.loads((orphan / OWNER_FILE).read_text())["pid"] == victim.pid
    # the steps before the kill are in events.jsonl (fsynced per step)
    assert any(json.loads(line).get("event") == "turn" for line in (rec / "events.jsonl").read_text().splitlines())
    stranger = Path(tempfile.mkdtemp(prefix="teletype-bwrap-"))   # no owner record: not teletype's to judge

    # Under pytest -n, a sandbox another test starts now may remove the orphan first (as designed:
    # the next sandbox cleans up); then `clean` has nothing left of it to report.
    dry = teletype_cli("clean", "--dry-run", "--no-docker", timeout=BOUND)
    assert dry.returncode == 0, dry.stderr
    if orphan.exists():
        assert f"{orphan}: would be removed (left by pid {victim.pid})" in dry.stdout
    was_there = orphan.exists()
    cleaned = teletype_cli("clean", "--no-docker", timeout=BOUND)
    assert cleaned.returncode == 0, cleaned.stderr
    if was_there and str(orphan) in cleaned.stdout:
        assert f"{orphan}: removed (left by pid {victim.pid})" in cleaned.stdout
    assert not orphan.exists()
    assert not any(str(orphan) in line for line in Path("/proc/self/mountinfo").read_text().splitlines())
    assert_no_survivors(str(orphan))
    assert live_staging.exists() and stranger.exists()
    assert str(live_staging) not in cleaned.stdout
    rc, err = finish(live)
    assert rc == 0, err   # the live run went on and ended clean
    assert_recording_complete(live_rec, ended_by="exit", outcome="success")
    stranger.rmdir()


def test_the_next_sandbox_removes_orphans_when_it_starts(tmp_path):
    from teletype.engine.sandbox.bwrap import BwrapSandbox
    from teletype.engine.worlds.scenario import load_scenario

    canaries = HostCanaries(tmp_path / "canaries")
    orphan = _fake_orphan(planted_at=canaries)
    sb = BwrapSandbox(load_scenario(slow_scenario(tmp_path / "sc")))
    try:
        assert not orphan.exists()
        assert sb.staging.path.exists()
    finally:
        sb.close()
    assert not sb.staging.path.exists()
    canaries.assert_untouched()


def test_an_orphan_full_of_planted_symlinks_and_locked_folders_is_removed_without_following_them(tmp_path):
    canaries = HostCanaries(tmp_path / "canaries")
    orphan = _fake_orphan(planted_at=canaries)
    assert orphan in [o.path for o in find_orphans()]
    proc = teletype_cli("clean", "--no-docker", timeout=BOUND)
    assert proc.returncode == 0 and "removed" in proc.stdout
    assert not orphan.exists()
    canaries.assert_untouched()


def test_owners_that_are_alive_elsewhere_or_unreadable_are_left_alone():
    alive = StagingDir("teletype-test-")                    # this very process: alive
    elsewhere = StagingDir("teletype-test-")
    forged = {**owner_record(), "pid": 1, "host": "another-machine"}
    (elsewhere.path / OWNER_FILE).write_text(json.dumps(forged))
    garbled = StagingDir("teletype-test-")
    (garbled.path / OWNER_FILE).write_text("{not json")
    linked = StagingDir("teletype-test-")
    (linked.path / OWNER_FILE).unlink()
    (linked.path / OWNER_FILE).symlink_to("/proc/self/status")
    try:
        found = {o.path for o in find_orphans()}
        assert not found & {alive.path, elsewhere.path, garbled.path, linked.path}
    finally:
        for s in (alive, elsewhere, garbled, linked):
            s.cleanup()
            assert not s.path.exists()


def _fake_orphan(planted_at: HostCanaries) -> Path:
    """A staging dir whose owner is gone (a pid that no longer runs), filled as a hostile session
    would leave it: symlinks to / and to the canaries, folders with no permissions at all."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    s = StagingDir("teletype-bwrap-")
    record = {**owner_record(), "pid": dead.pid, "start": 1}
    (s.path / OWNER_FILE).write_text(json.dumps(record))
    home = s.path / "home"
    (home / "locked" / "deep").mkdir(parents=True)
    (home / "locked" / "deep" / "f").write_text("x")
    os.symlink("/", home / "root")
    os.symlink(planted_at.dir, home / "cd")
    os.symlink(planted_at.file, home / "cf")
    os.symlink(planted_at.dir, home / "locked" / "deep" / "cd")
    os.chmod(home / "locked" / "deep", 0)
    os.chmod(home / "locked", 0)
    assert record["schema"] == OWNER_SCHEMA
    return s.path


@pytest.mark.docker
def test_docker_containers_whose_owner_is_gone_are_removed_and_no_others(tmp_path):
    """Containers carry their owner (label teletype.owner); a SIGKILLed run's is removed by the next
    docker sandbox or `teletype clean`, a live owner's and an unlabelled one are kept."""
    from teletype.engine.sandbox.base import SandboxError
    from teletype.engine.sandbox.docker import LABEL, OWNER_LABEL, clean_containers, connect
    from teletype.engine.sandbox.dockerimage import ensure_busybox_image

    try:
        client = connect(timeout=10)
    except SandboxError as exc:
        if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
            pytest.fail(f"no docker daemon: {exc}", pytrace=False)
        pytest.skip(f"no docker daemon: {exc} (run `eval \"$(.ci/dockerd.sh)\"` first)")
    dead = subprocess.Popen(["true"])
    dead.wait()
    owners = {"gone": {**owner_record(), "pid": dead.pid, "start": 1}, "alive": owner_record(), "none": None}
    made = {}
    try:
        image = ensure_busybox_image(client)
        for name, owner in owners.items():
            labels = {LABEL: "1", **({OWNER_LABEL: json.dumps(owner)} if owner else {})}
            made[name] = client.api.create_container(image, command=["true"], labels=labels)["Id"]
        done = dict(clean_containers(client))
        assert done.get(made["gone"][:12]) == "removed"
        left = {c["Id"] for c in client.api.containers(all=True, filters={"label": f"{LABEL}=1"})}
        assert made["gone"] not in left and made["alive"] in left and made["none"] in left
    finally:
        for cid in made.values():
            try:
                client.api.remove_container(cid, force=True)
            except Exception:
                pass
        client.close()
