"""teletype.engine.threads: the thread count and OpenMP settings chosen for each command, and the override."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from teletype.engine.threads import ENV, ThreadsError, apply, choose, configure_for_args


def test_console_leaves_a_core_to_its_neighbours_and_sleeps_at_barriers():
    assert choose("console", ncores=2, environ={}).threads == 1
    plan = choose("console", ncores=8, environ={})
    assert plan.threads == 7 and plan.env["OMP_WAIT_POLICY"] == "PASSIVE"
    assert choose("console", ncores=1, environ={}).threads == 1


def test_run_and_eval_count_the_sessions_shell_as_a_neighbour():
    assert choose("run", ncores=2, environ={}).threads == 1
    assert choose("eval", jobs=1, ncores=4, environ={}).threads == 3
    plan = choose("eval", jobs=4, ncores=4, environ={})
    assert plan.threads == 3 and plan.env["OMP_WAIT_POLICY"] == "PASSIVE"
    assert choose("run", ncores=1, environ={}).env == {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def test_train_uses_every_core_and_sleeps_at_barriers():
    train = choose("train", ncores=2, environ={})
    assert train.threads == 2 and train.env["OMP_WAIT_POLICY"] == "PASSIVE"
    assert "OMP_WAIT_POLICY" not in choose("train", ncores=1, environ={}).env


def test_override_precedence_option_then_env_then_omp():
    env = {ENV: "3", "OMP_NUM_THREADS": "5"}
    assert choose("console", override=2, ncores=8, environ=env).threads == 2
    assert choose("console", ncores=8, environ=env).threads == 3
    assert choose("console", ncores=8, environ={"OMP_NUM_THREADS": "5"}).threads == 5
    assert choose("train", override=4, ncores=2, environ={}).env["OMP_WAIT_POLICY"] == "PASSIVE"


@pytest.mark.parametrize("value, source", [("0", "--threads"), ("two", "--threads"), ("-1", "--threads")])
def test_bad_override_names_the_option(value, source):
    with pytest.raises(ThreadsError, match=f"{source}.*{value!r}"):
        choose("run", override=value, environ={})


def test_bad_env_names_the_variable():
    with pytest.raises(ThreadsError, match=f"{ENV}.*'x'"):
        choose("run", environ={ENV: "x"})
    with pytest.raises(ThreadsError, match="unknown work 'serve'"):
        choose("serve", environ={})


def test_apply_never_overwrites_a_wait_policy_the_user_set():
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    apply(choose("console", ncores=4, environ={}), environ=env)
    assert env["OMP_WAIT_POLICY"] == "ACTIVE" and env["OMP_NUM_THREADS"] == "3"


def test_commands_without_torch_are_left_alone():
    class Args:
        command = "scenarios"
    assert configure_for_args(Args()) is None


def test_the_pool_starts_at_the_chosen_size():
    """In a fresh interpreter: configure first, then torch starts with that many threads."""
    code = ("from teletype.engine.threads import configure; p = configure('console'); import torch; "
            "print(p.threads, torch.get_num_threads())")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", ENV,
                                                            "OMP_WAIT_POLICY")}
    env[ENV] = "2"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.returncode == 0, out.stderr
    planned, actual = out.stdout.split()
    assert planned == actual == "2"


def test_cli_rejects_a_bad_thread_count_with_the_option_named():
    out = subprocess.run([sys.executable, "-m", "teletype", "run", "permissions/deploy_exec", "--no-record",
                          "--threads", "0"], capture_output=True, text=True, timeout=120,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.returncode == 2 and "--threads must be at least 1, got '0'" in out.stderr
