"""teletype.engine.threads: the thread count and OpenMP settings chosen for each command, and the override."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from teletype.engine.threads import ENV, Governor, LoadProbe, ThreadsError, apply, choose, configure_for_args


def test_sessions_are_auto_every_core_spinning_with_the_governor_narrowing():
    for work in ("console", "run", "eval"):
        plan = choose(work, ncores=2, environ={})
        assert plan.auto and plan.threads == 2 and plan.narrow == 1
        assert plan.env == {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", ENV: "auto"}  # spins: no PASSIVE
    plan = choose("eval", jobs=4, ncores=8, environ={})
    assert plan.auto and plan.threads == 8 and plan.narrow == 7
    one = choose("console", ncores=1, environ={})
    assert not one.auto and one.threads == 1 and one.env == {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def test_auto_can_be_asked_for_and_survives_an_inherited_omp_count():
    """A teletype started by teletype inherits OMP_NUM_THREADS=2 and TELETYPE_THREADS=auto: still auto."""
    inherited = {"OMP_NUM_THREADS": "2", ENV: "auto"}
    assert choose("run", ncores=2, environ=inherited).auto
    assert choose("run", override="auto", ncores=4, environ={"OMP_NUM_THREADS": "3"}).auto
    assert not choose("run", ncores=4, environ={"OMP_NUM_THREADS": "3"}).auto     # the user's own count
    train = choose("train", override="AUTO", ncores=2, environ={})
    assert not train.auto and train.threads == 2 and train.env["OMP_WAIT_POLICY"] == "PASSIVE"


def test_a_fixed_count_sleeps_at_barriers():
    plan = choose("console", override=2, ncores=2, environ={})
    assert not plan.auto and plan.env["OMP_WAIT_POLICY"] == "PASSIVE"
    assert "OMP_WAIT_POLICY" not in choose("run", override=1, ncores=2, environ={}).env


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
    apply(choose("console", override=3, ncores=4, environ={}), environ=env)
    assert env["OMP_WAIT_POLICY"] == "ACTIVE" and env["OMP_NUM_THREADS"] == "3"
    env = {ENV: "auto"}
    apply(choose("console", ncores=4, environ=env), environ=env)
    assert env[ENV] == "auto" and env["OMP_NUM_THREADS"] == "4"


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


# -- the governor: fed by a fake clock, a fake load and the times a test says tokens took ------------------
class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class Load:
    """A LoadProbe stand-in: `others` cores busy elsewhere."""
    def __init__(self, others=0.0):
        self.value = others

    def others(self):
        return self.value


def make(others=0.0, **kw):
    clock, load, calls = Clock(), Load(others), []
    gov = Governor(2, 1, probe=load, clock=clock, set_threads=calls.append, **kw)
    return gov, clock, load, calls


def decode(gov, seconds_at, tokens=2):
    """One decode phase of `tokens` tokens, each taking seconds_at[count] (the very first at a count is a
    warm-up the governor leaves out)."""
    n = gov.use("decode")
    for _ in range(tokens):
        gov.tick("decode", seconds_at[gov.current])
    return n


def test_a_quiet_machine_measures_both_counts_and_keeps_the_faster():
    gov, _, _, calls = make()
    fast_wide = {2: 0.030, 1: 0.050}
    assert decode(gov, fast_wide) == 2 and decode(gov, fast_wide) == 1    # each tried once
    counts = [decode(gov, fast_wide, tokens=4) for _ in range(14)]
    assert counts.count(2) >= 12 and 1 in counts                            # the faster, and a look at the other
    gov2, _, _, _ = make()
    fast_narrow = {2: 0.050, 1: 0.030}                                      # a CPU where two buy nothing
    counts = [decode(gov2, fast_narrow, tokens=4) for _ in range(16)]
    assert counts[2:].count(1) >= 12
    assert calls[0] == 2 and set(calls) == {1, 2}


def test_looks_at_the_slower_count_get_rarer_while_the_choice_holds():
    gov, _, _, _ = make()
    counts = [decode(gov, {2: 0.030, 1: 0.050}) for _ in range(100)]
    looks = [i + 1 for i, n in enumerate(counts) if n == 1]           # answer numbers that ran on one thread
    assert looks[0] == 2 and 3 <= len(looks) <= 5
    gaps = [b - a for a, b in zip(looks[1:], looks[2:])]
    assert gaps == sorted(gaps) and gaps[-1] > gaps[0]


def test_a_busy_neighbour_narrows_the_pool_at_once_and_quiet_widens_it_again():
    gov, _, load, _ = make(others=1.0)
    times = {2: 0.030, 1: 0.050}
    assert [decode(gov, times) for _ in range(5)] == [1] * 5
    load.value = 0.05
    assert decode(gov, times) == 2
    gov.use("decode")
    load.value = 0.9                                                      # a neighbour starts mid-answer
    gov.tick("decode", 0.030)
    assert gov.current == 1


def test_the_room_left_scales_with_the_load_on_a_bigger_machine():
    load = Load(2.6)
    gov = Governor(8, 7, probe=load, set_threads=lambda n: None)
    assert gov.use("prefill") == 5                                         # 8 cores, ~3 busy elsewhere
    load.value = 20.0
    assert gov.use("prefill") == 1


def test_a_collapsed_token_on_the_wide_pool_switches_to_narrow_and_backs_off():
    """A neighbour inside this process (the console's threads) is invisible to /proc's other processes."""
    gov, clock, _, _ = make()
    assert decode(gov, {2: 0.020, 1: 0.030}) == 2
    assert decode(gov, {2: 0.020, 1: 0.030}) == 1
    assert gov.use("decode") == 2
    gov.tick("decode", 0.021)
    gov.tick("decode", 0.5)                                                # 25x its usual time
    assert gov.current == 1
    assert gov.use("decode") == 1                                          # cooling down
    clock.t += 2.5
    assert gov.use("decode") == 2
    gov.tick("decode", 0.5)
    clock.t += 2.5
    assert gov.use("decode") == 1                                          # the second cooldown is longer
    clock.t += 2.0
    assert gov.use("decode") == 2


def test_the_first_run_at_a_count_is_a_warm_up_and_not_held_against_it():
    gov, _, _, _ = make()
    gov.use("prefill")
    gov.record("prefill", 4.0, 100)                                        # cold: 40 ms a token
    gov.record("prefill", 0.1, 100)                                        # warm: 1 ms
    assert gov.use("prefill") == 1
    gov.record("prefill", 0.1, 100)
    gov.record("prefill", 0.2, 100)                                        # 2 ms on one thread
    assert gov.use("prefill") == 2


def test_one_count_means_no_governing():
    calls = []
    gov = Governor(1, 1, probe=Load(5.0), set_threads=calls.append)
    assert not gov.enabled and gov.use("decode") == 1 and calls == [1]


def test_load_probe_sees_a_busy_process_and_not_its_own_work():
    """/proc for real: a spinning child counts as about one core, this process's own loop does not."""
    probe = LoadProbe(min_window=0.2)
    probe.others()
    end = time.monotonic() + 0.6
    while time.monotonic() < end:
        pass                                                               # our own busy loop
    quiet = probe.others()
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        probe.others()
        time.sleep(1.0)
        loaded = probe.others()
    finally:
        busy.kill()
        busy.wait()
    assert quiet is not None and loaded is not None
    assert loaded >= 0.5 and loaded > quiet


def test_a_short_prefill_runs_on_the_faster_count_and_is_not_measured():
    gov, _, _, _ = make()
    assert gov.use("prefill", 20) == 2                                     # nothing known yet: every core
    gov.record("prefill", 5.0, 20)                                         # not measured
    assert gov.use("prefill", 700) == 2
    gov.record("prefill", 9.0, 700)                                        # warm-up
    gov.record("prefill", 0.7, 700)
    assert gov.use("prefill", 30) == 2                                     # short: the only known count
    assert gov.use("prefill", 700) == 1                                    # long: measure the other
    gov.record("prefill", 9.0, 700)
    gov.record("prefill", 2.1, 700)
    assert [gov.use("prefill", 10) for _ in range(20)] == [2] * 20         # short ones neither explore
    assert gov.phases["prefill"] == 2


def test_load_probe_reads_proc_once_a_window():
    clock, reads = Clock(), []
    ticks = iter([(0, 0), (150, 50), (300, 100)])

    def read():
        reads.append(clock.t)
        return next(ticks)

    probe = LoadProbe(min_window=0.2, clock=clock, read=read)
    probe.tick_hz = 100
    assert probe.others() is None
    clock.t = 0.1
    assert probe.others() is None and len(reads) == 1                      # inside the window: no read
    clock.t = 1.0
    assert probe.others() == 1.0 and len(reads) == 2                       # 150 busy ticks, 50 our own, in 1 s
    clock.t = 1.1
    assert probe.others() == 1.0 and len(reads) == 2
