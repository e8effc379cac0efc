"""How many threads torch gets, chosen for the work, before torch starts its thread pool.

Why: torch's CPU wheels run intra-op work on a GNU OpenMP pool whose threads spin while they wait.
On a small machine, a pool as wide as the cores plus one busy neighbour (the console's own event loop
and pty reader, an eval's sandboxes, another process) makes every parallel region wait for a thread
that is not running: measured on 2 cores, SmolLM2-135M decoding fell from 15 to 1.6 tok/s. So:

- console, run and eval: a session always has neighbours (the console's event loop, the pty reader,
  the shell and its commands; eval --jobs N runs N of them), so it leaves them a core (cores - 1
  threads, at least 1) and, where it has more than one thread, the pool sleeps at barriers instead of
  spinning (OMP_WAIT_POLICY=PASSIVE). bench/bench_decode.py measured a session on 2 cores: with a busy
  neighbour 16.0 tok/s (one thread) against 0.4 with torch's default (two threads, spinning); on an
  otherwise idle machine 17.2 against 27.4, the price of never collapsing (`--threads 2` takes it back);
- train: every core, also sleeping at barriers: bench/bench_train.py measured SmolLM2-135M LoRA
  steps on 2 cores at 151 tok/s spinning and 189 sleeping (fp32; 142 on one thread), as anything
  else on the machine (a test run, an editor) is a neighbour too;

and the user overrides it: `--threads N`, else `TELETYPE_THREADS`, else an `OMP_NUM_THREADS` already
set, else the choice above. An environment variable set by the user is never overwritten.

`apply()` must run before `import torch` for the environment to reach the pool; it then also calls
`torch.set_num_threads` when torch is already imported (the count still applies, the wait policy not).
No torch import here: this module is imported by the CLI before any model is chosen.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

ENV = "TELETYPE_THREADS"
WORKS = ("console", "run", "eval", "train")


class ThreadsError(ValueError):
    """A bad thread count (the message names the option or variable and the value)."""


@dataclass(frozen=True)
class ThreadPlan:
    threads: int
    env: dict = field(default_factory=dict)  # variables to set (before torch is imported)
    reason: str = ""


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
        raise ThreadsError(f"{source} must be a whole number of threads, got {value!r}") from None
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
    if override is not None:
        threads, why = parse_threads(override, "--threads"), "--threads"
    elif environ.get(ENV):
        threads, why = parse_threads(environ[ENV], ENV), ENV
    elif environ.get("OMP_NUM_THREADS"):
        threads, why = parse_threads(environ["OMP_NUM_THREADS"], "OMP_NUM_THREADS"), "OMP_NUM_THREADS"
    elif neighbours:
        threads = max(1, ncores - 1)
        why = f"{work}: {ncores} cores, one left to its neighbours"
    else:
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
    """choose() then apply(): what each command calls first."""
    return apply(choose(work, jobs=jobs, override=override))


def add_threads_option(parser) -> None:
    parser.add_argument("--threads", metavar="N", default=None,
                        help=f"torch CPU threads (default: chosen for the command: console, run and eval "
                             f"leave one core to the session's shell and threads, train uses every core; "
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
