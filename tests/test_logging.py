"""Logging: -v and --log FILE, and errors that mean lost data or a leaked resource are never silent."""
import json
import logging

from util import DEPLOY, needs_bwrap, teletype_cli

from teletype.engine.runtime.session import Session
from teletype.engine.runtime.shell import Limits, Shell
from teletype.engine.sandbox.base import SandboxError
from teletype.engine.sandbox.bwrap import BwrapSandbox
from teletype.engine.worlds.scenario import load_scenario

pytestmark = needs_bwrap


def test_verbose_and_log_file(tmp_path):
    log = tmp_path / "tt.log"
    quiet = teletype_cli("run", "permissions/deploy_exec", "--policy", "scripted", "--no-record")
    assert quiet.returncode == 0 and "INFO" not in quiet.stderr
    loud = teletype_cli("-v", "run", "permissions/deploy_exec", "--policy", "scripted", "--no-record",
                        "--log", log)
    assert loud.returncode == 0, loud.stderr
    assert "INFO teletype.engine.runtime.session: session started: permissions/deploy_exec in bwrap" in loud.stderr
    text = log.read_text()
    assert "session started" in text and "session ended: permissions/deploy_exec: success" in text
    assert "DEBUG teletype.engine.runtime.session" in text and "step 2 (scripted): 'chmod 755 ~/bin/deploy.sh'" in text


def test_an_unwritable_log_file_is_a_plain_error(tmp_path):
    proc = teletype_cli("run", "permissions/deploy_exec", "--policy", "scripted", "--no-record",
                        "--log", tmp_path / "no" / "such" / "dir.log")
    assert proc.returncode == 2 and proc.stderr.startswith("teletype: --log ")
    assert "cannot write the log file" in proc.stderr and "Traceback" not in proc.stderr


def test_a_failing_output_listener_is_logged_and_the_session_goes_on(caplog):
    sc = load_scenario(DEPLOY)
    sb = BwrapSandbox(sc)
    try:
        def broken(data):
            raise RuntimeError("the pane is gone")

        sh = Shell(sb.start(), sb.login.nonce, Limits(command_timeout=3), listeners=[broken])
        with caplog.at_level(logging.ERROR, logger="teletype.engine.runtime.shell"):
            sh.login()
            assert sh.run("echo still here").text.startswith("still here\n")
        assert any("an output listener failed" in r.message and r.exc_info for r in caplog.records)
        sh.close()
    finally:
        sb.close()


class _Unremovable(BwrapSandbox):
    """A sandbox whose removal fails after it did its part (what a daemon refusing to delete a
    container looks like to the session)."""

    def close(self):
        super().close()
        raise SandboxError("cannot remove docker container 0123456789ab: removal already in progress")


def test_a_sandbox_that_is_not_removed_is_logged_and_recorded(tmp_path, caplog):
    sc = load_scenario(DEPLOY)
    rec = tmp_path / "run"
    s = Session(sc, sandbox=_Unremovable(sc), record_dir=rec)
    s.start()
    s.execute("true")
    with caplog.at_level(logging.ERROR, logger="teletype.engine.runtime.session"):
        out = s.finish()
    assert out.ended_by == "stopped"
    msgs = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("was not removed" in m and "teletype clean" in m for m in msgs), msgs
    events = [json.loads(line) for line in (rec / "events.jsonl").read_text().splitlines()]
    assert any(e["event"] == "sandbox_not_removed" and "removal already" in e["error"] for e in events)
    assert (rec / "trajectory.json").exists()
