"""Where teletype's log goes: `-v` (info) and `-vv` (debug) on stderr, `--log FILE` (debug, always).

The engine logs through `logging.getLogger(__name__)`; nothing is printed unless configured here.
Warnings and errors (a recorder that fails, a container that could not be removed, a terminal that
broke) reach stderr even without `-v`; a full-screen command (the console) keeps stderr for itself
and logs to the file alone.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"


class LogError(ValueError):
    pass


def configure(verbosity: int = 0, log_file: str | None = None, *, stderr: bool = True) -> None:
    """Attach teletype's handlers to the root logger (once; calling again replaces them)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_teletype", False):
            root.removeHandler(h)
            h.close()
    root.setLevel(logging.DEBUG)
    if stderr:
        h = logging.StreamHandler(sys.stderr)
        h.setLevel({0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG))
        h.setFormatter(logging.Formatter("teletype: %(levelname)s %(name)s: %(message)s"))
        h._teletype = True
        root.addHandler(h)
    if log_file:
        path = Path(log_file)
        try:
            fh = logging.FileHandler(path, encoding="utf-8")
        except OSError as exc:
            raise LogError(f"--log {log_file}: cannot write the log file: {exc.strerror}") from None
        fh.setLevel(logging.DEBUG)
        fh.setFormatter(logging.Formatter(FORMAT))
        fh._teletype = True
        root.addHandler(fh)
    # Third-party chatter stays at warnings even with -vv.
    for name in ("urllib3", "docker", "httpx", "httpcore", "filelock", "asyncio", "markdown_it"):
        logging.getLogger(name).setLevel(logging.WARNING)


def add_options(p: argparse.ArgumentParser, *, top: bool) -> None:
    """-v/--verbose (counted) and --log FILE, on the top parser and on each command that has no -v
    of its own (eval and train use -v for their listings; there it also means -v here)."""
    default = None if top else argparse.SUPPRESS
    taken = {s for a in p._actions for s in a.option_strings}
    if "-v" not in taken:
        p.add_argument("-v", "--verbose", dest="log_verbosity", action="count", default=default,
                       help="log more on stderr: -v what happens, -vv everything")
    if "--log" not in taken:
        p.add_argument("--log", dest="log_file", metavar="FILE", default=default,
                       help="also write a full (debug) log to FILE")


def verbosity_of(args: argparse.Namespace) -> int:
    n = getattr(args, "log_verbosity", None) or 0
    if getattr(args, "verbose", False) is True:
        n = max(n, 1)
    return n
