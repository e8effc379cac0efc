"""How many threads torch gets, chosen for the work, before torch starts its thread pool.

Why: torch's CPU wheels run intra-op work on a GNU OpenMP pool whose threads spin while they wait.
On a small machine, a pool as wide as the cores plus one busy neighbour (the console's own event loop
and pty reader, an eval's sandboxes, another process) makes every parallel region wait for a thread
that is not running: measured on 2 cores, SmolLM2-135M decoding fell from 15 to 1.6 tok/s. So:

- console, run and eval: a session always has neighbours (the console's event loop, the pty reader,
  the shell and its commands; eval --jobs N runs N of them), and what the pool's width is worth
  depends on the CPU and the moment: on a 2-core Xeon two spinning threads decode at 27 tok/s on an
  idle machine against 17 on one, and at 0.4 the moment a neighbour runs; on a 2-core EPYC two buy
  nothing. So the plan is `auto`: the pool is as wide as the cores and spins, and a Governor (below)
  sets the count between every two tokens, by the load that /proc shows and the times it measures:
  one core fewer whenever anything else keeps a core busy, or when a token takes three times its
  usual time (a neighbour inside this process);
- train: every core, also sleeping at barriers: bench/bench_train.py measured SmolLM2-135M LoRA
  steps on 2 cores at 151 tok/s spinning and 189 sleeping (fp32; 142 on one thread), as anything
  else on the machine (a test run, an editor) is a neighbour too;

and the user overrides it: `--threads N` (or `auto`), else `TELETYPE_THREADS`, else an
`OMP_NUM_THREADS` already set, else the choice above. A fixed count of more than one sleeps at barriers
(OMP_WAIT_POLICY=PASSIVE). An environment variable set by the user is never overwritten.

`apply()` must run before `import torch` for the environment to reach the pool; it then also calls
`torch.set_num_threads` when torch is already imported (the count still applies, the wait policy not).
No torch import here: this module is imported by the CLI before any model is chosen.
"""
from __future__ import annotations

import math
import os
import sys
import threading
import time
from dataclasses import dataclass, field

ENV = "TELETYPE_THREADS"
AUTO = "auto"
WORKS = ("console", "run", "eval", "train")


class ThreadsError(ValueError):
    """A bad thread count (the message names the option or variable and the value)."""


@dataclass(frozen=True)
class ThreadPlan:
    threads: int
    env: dict = field(default_factory=dict)  # variables to set (before torch is imported)
    reason: str = ""
    auto: bool = False        # a Governor picks between `threads` and `narrow` as the session runs
    narrow: int | None = None


def cores() -> int:
    """CPUs this process may run on (the affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def parse_threads(value, source: str) -> int:
    try:
        n = int(str(value).strip())
    except ValueError:
        raise ThreadsError(f"{source} must be a whole number of threads or {AUTO!r}, got {value!r}") from None
    if n < 1:
        raise ThreadsError(f"{source} must be at least 1, got {value!r}")
    return n


def choose(work: str, jobs: int = 1, override: int | str | None = None, ncores: int | None = None,
           environ=None) -> ThreadPlan:
    """The thread count and OpenMP settings for `work` (console, run, eval, train).

    `jobs` (eval --jobs) does not change the count on its own: one session already has a neighbour, and
    with several jobs the decoding is batched on one model (teletype.engine.policy.hfbatch), not run per job."""
    if work not in WORKS:
        raise ThreadsError(f"unknown work {work!r}; expected one of {', '.join(WORKS)}")
    environ = os.environ if environ is None else environ
    ncores = ncores or cores()
    neighbours = work != "train"
    asked, source = ((override, "--threads") if override is not None else
                     (environ[ENV], ENV) if environ.get(ENV) else (None, None))
    if asked is not None and str(asked).strip().lower() == AUTO:
        asked = None                             # asked for the default: the choice below, whatever OMP says
    elif asked is not None:
        threads, why = parse_threads(asked, source), source
    if asked is None and source is None and environ.get("OMP_NUM_THREADS"):
        threads, why = parse_threads(environ["OMP_NUM_THREADS"], "OMP_NUM_THREADS"), "OMP_NUM_THREADS"
    elif asked is None and neighbours and ncores > 1:
        # The pool is as wide as the cores and spins (libgomp's default) for speed on a quiet machine;
        # the session's Governor narrows it whenever anything else runs, so it never spins against a
        # neighbour. ENV=auto goes to the environment so that a teletype started from this one (which
        # inherits OMP_NUM_THREADS) chooses the same way.
        env = {"OMP_NUM_THREADS": str(ncores), "MKL_NUM_THREADS": str(ncores), ENV: AUTO}
        return ThreadPlan(ncores, env, f"{work}: auto, {ncores - 1} or {ncores} of {ncores} cores by load",
                          auto=True, narrow=ncores - 1)
    elif asked is None:
        threads, why = ncores, f"{work}: {ncores} cores"
    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if threads > 1:
        env["OMP_WAIT_POLICY"] = "PASSIVE"       # sleep at barriers: never steal a neighbour's core
    return ThreadPlan(threads, env, why)


def apply(plan: ThreadPlan, environ=None) -> ThreadPlan:
    """Set the plan's variables (never one the user set) and, if torch is loaded, its thread count."""
    environ = os.environ if environ is None else environ
    for key, value in plan.env.items():
        if key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            environ[key] = value                 # the count is the plan's (it already honours the user's)
        else:
            environ.setdefault(key, value)
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != plan.threads:
        torch.set_num_threads(plan.threads)
    return plan


def configure(work: str, jobs: int = 1, override: int | str | None = None) -> ThreadPlan:
    """choose() then apply(), and the session governor where the plan is `auto`: what each command
    calls first."""
    plan = apply(choose(work, jobs=jobs, override=override))
    install_governor(plan)
    return plan


def add_threads_option(parser) -> None:
    parser.add_argument("--threads", metavar="N|auto", default=None,
                        help=f"torch CPU threads (default: auto for console, run and eval: every core while "
                             f"the machine is quiet, one fewer while anything else runs; every core for train; "
                             f"${ENV} sets it too)")


def configure_for_args(args) -> ThreadPlan | None:
    """The CLI's hook: the work is the subcommand (replay counts as the console); None for commands
    that never load torch."""
    command = getattr(args, "command", None)
    work = "console" if command == "replay" else command
    if command == "eval" and getattr(args, "teacher_forced", False):
        work = "train"  # no sandbox and no neighbour: every core, as for training
    if work not in WORKS:
        return None
    return configure(work, jobs=getattr(args, "jobs", 1) or 1, override=getattr(args, "threads", None))


# -- the session governor: the thread count chosen answer by answer, by measurement -----------------------
def _proc_ticks() -> tuple[int, int] | None:
    """(busy ticks of the whole machine, ticks of this process) from /proc; None where /proc says nothing."""
    try:
        with open("/proc/stat", "rb") as f:
            cpu = f.readline().split()
        with open("/proc/self/stat", "rb") as f:
            own = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if not cpu or cpu[0] != b"cpu":
        return None
    fields = [int(x) for x in cpu[1:9]] + [0] * max(0, 8 - len(cpu[1:9]))
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    # own: after the ")" the fields start at 3 (state); utime and stime are fields 14 and 15
    return user + nice + system + irq + softirq + steal, int(own[11]) + int(own[12])


class LoadProbe:
    """How many cores the rest of the machine kept busy lately: every process but this one.

    It reads /proc/stat and /proc/self/stat (clock ticks, 100 a second), so it needs a window of at
    least `min_window` seconds to say anything; between two readings it repeats its last answer."""

    def __init__(self, min_window: float = 0.2, clock=time.monotonic, read=_proc_ticks):
        self.min_window, self.clock, self.read = min_window, clock, read
        self.tick_hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._last = None
        self.value: float | None = None

    def others(self) -> float | None:
        now = self.clock()
        if self._last is not None and now - self._last[0] < self.min_window:
            return self.value                # /proc is read at most once a window (a decode asks every token)
        ticks = self.read()
        if ticks is None:
            return None
        if self._last is not None:
            then, (busy0, own0) = self._last
            busy1, own1 = ticks
            self.value = max(0.0, (busy1 - busy0) - (own1 - own0)) / self.tick_hz / (now - then)
        self._last = (now, ticks)
        return self.value


class Governor:
    """Chooses, for each prefill and as each token is decoded, between the pool's full width (`wide`,
    every core) and one core fewer (`narrow`), for a session's model.

    Why: a spinning OpenMP pool as wide as the cores is the fastest setting on an idle machine on some
    CPUs (bench/bench_decode.py: 27 against 17 tok/s on a 2-core Xeon) and the slowest the moment
    anything else runs (0.4 tok/s), while on others two threads buy nothing. So nothing is assumed:

    - when other processes kept more than `busy` cores busy lately (LoadProbe), use `narrow`;
    - otherwise use the count whose measured time per token (an average over recent tokens, kept
      for prefill and decode apart) is lower, trying the other one again now and then while the machine
      stays quiet: `explore_every` answers after the choice changed, then twice as long after each look
      that did not change it, up to `max_gap`;
    - a decode token on `wide` that takes more than `collapse` times the best time seen on `narrow`
      (a neighbour inside this process: the console's own threads) switches to `narrow` at once and
      keeps `wide` off for `cooldown` seconds, doubled at each repeat (up to `max_cooldown`).

    Counts change only between two tokens, through torch.set_num_threads in the thread that runs the
    model (OpenMP's count is per thread). One governor serves every model of the process."""

    def __init__(self, wide: int, narrow: int | None = None, probe: LoadProbe | None = None, busy: float = 0.3,
                 explore_every: int = 8, max_gap: int = 64, min_units: int = 64, collapse: float = 3.0,
                 cooldown: float = 2.0, max_cooldown: float = 64.0,
                 clock=time.monotonic, set_threads=None):
        self.wide = max(1, wide)
        self.narrow = max(1, narrow if narrow is not None else self.wide - 1)
        self.probe = probe or LoadProbe(clock=clock)
        self.busy, self.explore_every, self.collapse = busy, explore_every, collapse
        self.base_cooldown, self.max_cooldown = cooldown, max_cooldown
        self.clock = clock
        self._set = set_threads or _torch_set_threads
        self._lock = threading.Lock()
        self.ema: dict[tuple[str, int], float] = {}
        self.best: dict[tuple[str, int], float] = {}
        self.phases: dict[str, int] = {}
        self.current: int | None = None
        self.wide_off_until = 0.0
        self.cooldown = cooldown
        self.used: dict[str, set[int]] = {}
        self.warm: set[tuple[str, int]] = set()
        self.choice: dict[str, int] = {}       # per phase: the faster count, the next look at the other, the gap
        self.next_look: dict[str, int] = {}
        self.gap: dict[str, int] = {}
        self.max_gap, self.min_units = max_gap, min_units

    @property
    def enabled(self) -> bool:
        return self.wide != self.narrow

    def _room(self, others: float) -> int:
        """The count that leaves the busy cores to their processes (at most `narrow`, at least 1)."""
        return max(1, min(self.narrow, self.wide - math.ceil(others - self.busy)))

    def _apply(self, n: int) -> int:
        self._set(n)
        self.current = n
        return n

    def use(self, phase: str, units: int | None = None) -> int:
        """The count for the next `phase` ("prefill" or "decode") of `units` tokens where known, set in the
        calling thread. A phase shorter than `min_units` says little about a count's speed: it runs on the
        faster count known so far, and neither measures nor explores."""
        with self._lock:
            if not self.enabled:
                return self._apply(self.wide)
            others = self.probe.others()
            short = units is not None and units < self.min_units
            count = self.phases.get(phase, 0) + (0 if short else 1)
            self.phases[phase] = count
            if others is not None and others > self.busy:
                n = self._room(others)
            elif self.clock() < self.wide_off_until:
                n = self.narrow
            elif short:                      # the faster count known so far, every core if none is
                w, s = self.ema.get((phase, self.wide)), self.ema.get((phase, self.narrow))
                n = self.narrow if s is not None and (w is None or s < w) else self.wide
            else:
                w, s = self.ema.get((phase, self.wide)), self.ema.get((phase, self.narrow))
                if w is None:
                    n = self.wide
                elif s is None:
                    n = self.narrow
                else:
                    n = self.wide if w < s else self.narrow
                    if n != self.choice.get(phase):          # a new choice: look back at the other one soon
                        self.choice[phase], self.gap[phase] = n, self.explore_every
                        self.next_look[phase] = count + self.explore_every
                    elif count >= self.next_look.get(phase, self.explore_every):
                        n = self.narrow if n == self.wide else self.wide   # the other one, now and then,
                        self.gap[phase] = min(self.max_gap, 2 * self.gap.get(phase, self.explore_every))
                        self.next_look[phase] = count + self.gap[phase]     # less often while it stays worse
            self.used.setdefault(phase, set()).add(n)
            return self._apply(n)

    def record(self, phase: str, seconds: float, units: int = 1) -> None:
        """The time `phase` took on the current count for `units` tokens; may switch to `narrow`."""
        if units <= 0 or self.current is None or (units < self.min_units and phase != "decode"):
            return
        with self._lock:
            if not self.enabled:
                return
            per = seconds / units
            key = (phase, self.current)
            if key not in self.warm:         # the first run at a count pays one-time costs (allocations,
                self.warm.add(key)           # oneDNN primitives): it would make that count look slow for long
                return
            old = self.ema.get(key)
            self.ema[key] = per if old is None else 0.7 * old + 0.3 * per
            self.best[key] = min(per, self.best.get(key, per))
            if self.current != self.wide:
                return
            floor = self.best.get((phase, self.narrow)) or self.best.get(key)
            if phase == "decode" and floor and per > self.collapse * floor:
                self.wide_off_until = self.clock() + self.cooldown
                self.cooldown = min(self.max_cooldown, self.cooldown * 2)
                self.ema.pop(key, None)      # measured afresh once the cooldown is over
                self._apply(self.narrow)
            elif phase == "decode" and self.cooldown > self.base_cooldown and per <= 1.5 * floor:
                self.cooldown = max(self.base_cooldown, self.cooldown / 2)

    def tick(self, phase: str, seconds: float, units: int = 1) -> None:
        """record(), then re-ask the probe every so often: a neighbour that starts mid-answer."""
        self.record(phase, seconds, units)
        if self.enabled and self.current is not None and self.current > 1:
            others = self.probe.others()
            if others is not None and others > self.busy and self._room(others) < self.current:
                with self._lock:
                    self._apply(self._room(others))

    def summary(self) -> dict:
        return {"wide": self.wide, "narrow": self.narrow,
                "per_token_ms": {f"{p}@{n}": round(v * 1000, 3) for (p, n), v in sorted(self.ema.items())}}


def _torch_set_threads(n: int) -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != n:
        torch.set_num_threads(n)


_GOVERNOR: Governor | None = None


def governor() -> Governor | None:
    """The process's governor, where the command's plan asked for one (`auto`); else None."""
    return _GOVERNOR


def install_governor(plan: ThreadPlan) -> Governor | None:
    global _GOVERNOR
    _GOVERNOR = Governor(plan.threads, plan.narrow) if plan.auto and plan.threads > 1 else None
    if _GOVERNOR is not None:
        _GOVERNOR.probe.others()     # the first reading: by the first prefill (a model loads first) it has a window
    return _GOVERNOR
