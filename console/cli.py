"""`teletype console` and `teletype replay`: their argument parsers and entry points.

teletype.cli imports this module only when one of them runs, and calls `add_parser(sub, name)` with
name "console" or "replay"; exactly that subcommand is added.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from teletype.console.driver import DEFAULT_SCENARIO, ConsoleConfig
from teletype.engine.policy.options import add_model_options, build_policy, resolve_model

KEYS = """\
keys (the footer shows the ones that apply):
  r run the proposal (or retry, when the model failed to propose)
  e edit it, then enter     o override: type your own command
  a auto mode on/off        t take over the keyboard (ctrl+] hands it back)
  c run the checker         x end with exit          p end with panic (type the reason)
  R restart the scenario    s pick another scenario  w recording on/off   q quit
  ctrl+p the command palette (every action, every bundled scenario)
in the editor: enter runs (an open quote or heredoc continues the line), ctrl+s runs, esc cancels
replay: left/right step, home/end, b branch here to you, m branch here to the model
"""


def add_parser(sub, name: str) -> argparse.ArgumentParser:
    if name == "console":
        p = sub.add_parser(
            "console", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=KEYS,
            help="the operator console (Textual): watch, step, edit, override, record",
            description="Open the operator console on a scenario. A model proposes each command and you run,\n"
                        "edit or override it: by default the embedded teletype-smollm2 (SmolLM2-135M-Instruct\n"
                        "with teletype's own LoRA adapter, on the CPU), or any --model, --base/--adapter or\n"
                        "--endpoint. With --policy human you type every command yourself and the session is\n"
                        "recorded as a demonstration. It needs a terminal (80x24 or larger).")
        p.add_argument("scenario", nargs="?", default=DEFAULT_SCENARIO,
                       help=f"a bundled name or a .toml file (default {DEFAULT_SCENARIO})")
    elif name == "replay":
        p = sub.add_parser(
            "replay", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=KEYS,
            help="step through a recording in the console, and branch from any step",
            description="Open a recorded session: step back and forth with the terminal as it was, the\n"
                        "checker and the outcome; 'branch here' re-types the first N commands in a fresh\n"
                        "sandbox and hands the session to you (b) or to the model (m).")
        p.add_argument("run", help="a run directory (with trajectory.json or events.jsonl, session.cast)")
    else:
        raise ValueError(f"teletype.console.cli has no subcommand {name!r}")
    g = p.add_argument_group("session")
    g.add_argument("--sandbox", choices=["bwrap", "docker", "local"], default="bwrap",
                   help="where the shell runs (default bwrap; local isolates nothing)")
    g.add_argument("--image", help="docker image for --sandbox docker")
    g.add_argument("--steps", type=int, default=30, metavar="N", help="step budget (default 30)")
    g.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                   help="time limit per command (default 30)")
    g.add_argument("--runs", default="runs", metavar="RUNS",
                   help="where recordings go, one directory per session (default ./runs)")
    g.add_argument("--no-record", action="store_true", help="start with recording off (w toggles)")
    add_model_options(p)
    if name == "replay":
        _model_options_for_branching(p)
    p.set_defaults(func=run_console if name == "console" else run_replay)
    return p


def _model_options_for_branching(p: argparse.ArgumentParser) -> None:
    """Replay needs a model only for `m` (branch here to the model): its help shows the few options
    that name one; the rest still work, as in `teletype console`, without filling the help."""
    for group in p._action_groups:
        if group.title and group.title.startswith("model"):
            group.title = "model (only for m: branch here to the model; default teletype-smollm2)"
            group.description = "the other model options of teletype console work here too"
    for action in p._actions:
        if action.option_strings and action.option_strings[0].startswith("--") and \
                action.dest in {"policy", "device", "dtype", "budget", "max_new_tokens", "api_key_env", "replay"}:
            action.help = argparse.SUPPRESS


def config_from_args(args) -> ConsoleConfig:
    import sys

    from teletype.engine.model.smollm import ModelUnavailable
    from teletype.engine.policy.options import DEFAULT_PRESET
    from teletype.engine.runtime.shell import Limits

    if not (args.policy or args.model or args.base or args.endpoint):
        args.model = DEFAULT_PRESET  # the embedded default: SmolLM2-135M + teletype's adapter, CPU
    try:
        choice = resolve_model(args, default=None)
    except ModelUnavailable as exc:
        print(f"teletype console: {exc}; the operator types every command instead", file=sys.stderr)
        choice = None
    if choice is not None and choice.policy == "human":
        choice = None  # in the console the operator is the human policy
    cache: dict = {}

    def factory(scenario):
        # Models load once per console; the scripted policy follows each scenario's solution.
        key = scenario.name if choice.policy == "scripted" else None
        if key not in cache:
            cache[key] = build_policy(choice, scenario)
        return cache[key]

    return ConsoleConfig(
        scenario=getattr(args, "scenario", None) or DEFAULT_SCENARIO,
        policy=factory if choice is not None else None, model_label=choice.label if choice else None,
        sandbox=args.sandbox,
        sandbox_options={"image": args.image} if args.sandbox == "docker" and args.image else {},
        step_budget=args.steps, limits=Limits(command_timeout=args.timeout),
        runs=Path(args.runs), record=not args.no_record)


def no_terminal(command: str) -> str | None:
    """Why the console cannot draw here (None: it can). Textual reads keys from stdin and draws on
    stderr; with either redirected it would draw into a file, or spin with no keyboard at all."""
    import sys

    bad = [name for name, f in (("stdin", sys.stdin), ("stdout", sys.stdout), ("stderr", sys.stderr))
           if f is None or not f.isatty()]
    if not bad:
        return None
    return (f"teletype {command}: needs a terminal, and {', '.join(bad)} {'is' if len(bad) == 1 else 'are'} "
            "not one (redirected or piped?). Run it in a terminal; for sessions without one use "
            "`teletype run` (one scenario) or `teletype eval` (many).")


def run_console(args) -> int:
    import sys

    from teletype.console.app import ConsoleApp

    if (why := no_terminal("console")) is not None:
        print(why, file=sys.stderr)
        return 2
    ConsoleApp(config_from_args(args)).run()
    return 0


def run_replay(args) -> int:
    from teletype.console.app import ConsoleApp
    from teletype.engine.record.recorder import load_run

    load_run(args.run)  # a bad directory fails here, with the recorder's message, before the UI opens
    if (why := no_terminal("replay")) is not None:
        import sys

        print(why, file=sys.stderr)
        return 2
    ConsoleApp(config_from_args(args), replay=args.run).run()
    return 0
