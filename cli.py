"""The `teletype` command line: one parser over the three packages. engine's headless commands are
added from teletype.engine.cli; console, replay, eval and train are imported only when their command
runs (so `teletype run` never loads textual or torch). This module sits above engine, console and
train: none of them imports it (the import-linter contract in pyproject.toml)."""
from __future__ import annotations

import argparse
import sys

EPILOG = """\
examples (each runs as shown, in this order; the first builds ./tiny, a tiny untrained test model):
  teletype tiny-model ./tiny
  teletype console                                         the console, embedded model
  teletype run file_create/hello_script --policy scripted  its reference solution, recorded
  teletype run file_create/hello_script --model ./tiny --steps 3 --record runs/x
  teletype scenarios validate permissions
  teletype export runs/ -o demos.jsonl                     the clean, non-held-out sessions
  teletype eval permissions --model ./tiny --steps 3 --jobs 2 --out runs/eval-tiny
  teletype train runs/ --base ./tiny --out adapters/mine --epochs 1
  teletype eval heldout --model teletype-smollm2 --jobs 4 --out runs/eval-heldout
                                                           (the last: roughly 10 minutes on 2 CPU cores)

Every command has --help. The model options (--model, --base/--adapter, --endpoint) are the same in
run, console and eval.
"""


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="teletype", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="An operator console and toolkit for language models that operate a POSIX shell.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    from teletype.engine.cli import add_commands

    add_commands(sub)

    for name, module in (("console", "teletype.console.cli"), ("replay", "teletype.console.cli"),
                         ("eval", "teletype.engine.eval.evaluate"),
                         ("train", "teletype.train.cli")):
        _lazy(sub, name, module, argv)
    from teletype.engine.logsetup import add_options

    add_options(p, top=True)
    for sp in sub.choices.values():
        add_options(sp, top=False)
    return p


def _lazy(sub, name: str, module: str, argv: list[str] | None) -> None:
    """Subcommands whose parsers live with their packages (imported when the command runs or --help)."""
    import importlib

    first = next((a for a in (argv or []) if not a.startswith("-")), None)
    if first != name and not (first is None and argv and argv[0] in ("-h", "--help")):
        sub.add_parser(name, help=f"(see teletype {name} --help)", add_help=False)
        return
    try:
        importlib.import_module(module).add_parser(sub, name)
    except ImportError as exc:
        sp = sub.add_parser(name, help=f"unavailable: {exc}")
        sp.set_defaults(func=lambda args, exc=exc: _unavailable(name, exc))


def _unavailable(name: str, exc: Exception) -> int:
    print(f"teletype {name}: unavailable ({exc})", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    from teletype.engine.errors import UsageError
    from teletype.engine.policy.base import PolicyError
    from teletype.engine.record.recorder import RecordingError
    from teletype.engine.sandbox.base import SandboxError
    from teletype.engine.worlds.scenario import ScenarioError

    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from teletype.engine.logsetup import LogError, configure, verbosity_of

    try:
        # The console owns the screen: its log goes to --log FILE only.
        configure(verbosity_of(args), getattr(args, "log_file", None),
                  stderr=args.command not in ("console", "replay"))
    except LogError as exc:
        print(f"teletype: {exc}", file=sys.stderr)
        return 2
    from teletype.engine.threads import ThreadsError, configure_for_args

    try:
        configure_for_args(args)  # before any command imports torch: its pool starts at that size
    except ThreadsError as exc:
        print(f"teletype: {exc}", file=sys.stderr)
        return 2
    from contextlib import nullcontext

    from teletype.engine.runtime.session import SessionError
    from teletype.engine.runtime.stopping import Stopped, stop_on_signals

    # The console and replay handle their own keys and end their own sessions (console/); every
    # other command stops cleanly on SIGTERM and SIGINT (teletype.engine.runtime.stopping).
    guard = nullcontext() if args.command in ("console", "replay") else stop_on_signals()
    try:
        with guard:
            return int(args.func(args) or 0)
    except (ScenarioError, SandboxError, PolicyError, RecordingError) as exc:
        print(f"teletype: {exc}", file=sys.stderr)
        return 2
    except UsageError as exc:   # its message already names the command
        print(str(exc), file=sys.stderr)
        return 2
    except SessionError as exc:
        print(f"teletype: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print(f"teletype: {exc or 'interrupted'}", file=sys.stderr)
        return exc.exit_code if isinstance(exc, Stopped) else 130


if __name__ == "__main__":
    sys.exit(main())
