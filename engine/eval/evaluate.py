"""`teletype eval`: run a set of scenarios with one policy, headless and in parallel, and report.

An eval directory holds one recorded run directory per scenario (`sessions/<archetype>-<name>/`,
openable in `teletype replay` and exportable for training), `results.jsonl` (one row per finished
scenario, appended and fsynced as each ends, which is what makes an interrupted eval resumable),
and `summary.json` / `summary.md` (metrics per run and per archetype, see teletype.engine.record.outcome).

Defaults match the reference evaluation: greedy decoding, a 30-step budget, a 3072-token context.
`--jobs N` runs N sessions at once, each in its own sandbox; with the hf policy they share one
loaded model (`policy_factory`, teletype.engine.policy.hfbatch.SharedHF) instead of loading N copies, and the
sessions that wait on it together are decoded as one batch.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from teletype.engine.errors import UsageError
from teletype.engine.policy.options import ModelChoice, add_model_options, build_policy, resolve_model
from teletype.engine.record.outcome import OUTCOMES, metrics
from teletype.engine.runtime.session import Session
from teletype.engine.runtime.shell import Limits
from teletype.engine.runtime.stopping import StopAware, Stopped, caught, stop_event
from teletype.engine.worlds.scenario import Scenario, find_scenarios, load_scenario

log = logging.getLogger(__name__)

RESULTS = "results.jsonl"


def policy_factory(choice: ModelChoice, jobs: int = 1) -> tuple[Callable[[Scenario], object], Callable[[], None]]:
    """(make one policy per session, release what they share). With the hf policy the weights are
    loaded once; sessions running together have their decoding batched (teletype.engine.policy.hfbatch)."""
    if choice.policy == "hf":
        from teletype.engine.policy.hfbatch import SharedHF

        shared = SharedHF(jobs=jobs, **choice.options)
        return (lambda scenario: shared.policy()), shared.close
    return (lambda scenario: build_policy(choice, scenario)), (lambda: None)


def _session_dir(out: Path, scenario: Scenario) -> Path:
    return out / "sessions" / scenario.name.replace("/", "-")


def _keep_aside(run_dir: Path) -> Path:
    """Move an unfinished or stopped session's recording out of the way (never delete it)."""
    n = 1
    while (aside := run_dir.with_name(f"{run_dir.name}.stopped-{n}")).exists():
        n += 1
    run_dir.rename(aside)
    return aside


def _tokens(turns: list[dict]) -> dict:
    prompt = sum(t.get("stats", {}).get("prompt_tokens", 0) for t in turns)
    prefill = sum(t.get("stats", {}).get("prefill_tokens", 0) for t in turns)
    new = sum(t.get("stats", {}).get("new_tokens", 0) for t in turns)
    return {"prompt_tokens": prompt, "prefill_tokens": prefill, "new_tokens": new}


def load_results(out: Path) -> dict[str, dict]:
    rows: dict[str, dict] = {}
    path = out / RESULTS
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a crash: that scenario runs again
            rows[row["scenario"]] = row
    return rows


class Progress:
    """A plain-text progress bar on stderr (engine/ stays free of UI libraries)."""

    def __init__(self, total: int, done: int, enabled: bool):
        self.total, self.done = total, done
        self.enabled = enabled and total > 0 and sys.stderr.isatty()
        self.counts: dict[str, int] = {}
        self.t0 = time.monotonic()
        self._lock = threading.Lock()
        self.draw()

    def add(self, outcome: str) -> None:
        with self._lock:
            self.done += 1
            self.counts[outcome] = self.counts.get(outcome, 0) + 1
            self.draw()

    def draw(self) -> None:
        if not self.enabled:
            return
        width = 30
        filled = int(width * self.done / self.total)
        counts = " ".join(f"{k}:{v}" for k, v in sorted(self.counts.items()))
        rate = self.done / max(1e-9, (time.monotonic() - self.t0) / 60)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                         f"{rate:5.1f}/min {counts}\x1b[K")
        sys.stderr.flush()
        if self.done >= self.total:
            sys.stderr.write("\n")


def run_eval(paths: list[Path], choice: ModelChoice, out: Path, *, jobs: int = 1, steps: int = 30,
             limits: Limits = Limits(), sandbox: str = "bwrap", sandbox_options: dict | None = None,
             progress: bool = True, label: str | None = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    scenarios = [load_scenario(p) for p in paths]
    names = [s.name for s in scenarios]
    if len(set(names)) != len(names):
        raise UsageError("teletype eval: two scenarios share a name: " +
                         ", ".join(sorted({n for n in names if names.count(n) > 1})))
    done = load_results(out)
    todo = [s for s in scenarios if s.name not in done]
    meta = {"label": label or choice.label, "policy": choice.policy,
            "options": {k: v for k, v in choice.options.items() if k != "scenario"},
            "steps": steps, "command_timeout": limits.command_timeout, "sandbox": sandbox,
            "scenarios": names}
    (out / "eval.json").write_text(json.dumps(meta, indent=1) + "\n")
    make_policy, release = policy_factory(choice, jobs)
    lock = threading.Lock()
    stop = threading.Event()   # set when a signal came: the sessions still running stop too
    live: set[Session] = set()
    bar = Progress(len(scenarios), len(scenarios) - len(todo), progress)

    def one(scenario: Scenario) -> dict:
        if stop.is_set() or stop_event.is_set():
            raise Stopped(caught())   # not started: it runs when the eval resumes
        run_dir = _session_dir(out, scenario)
        if run_dir.exists():
            _keep_aside(run_dir)  # a session an interrupted eval stopped: kept, and run again
        policy = StopAware(make_policy(scenario), stop, stop_event)
        t0 = time.monotonic()
        session = None
        try:
            session = Session(scenario, sandbox=sandbox, policy=policy, record_dir=run_dir,
                              step_budget=steps, limits=limits, sandbox_options=sandbox_options or {})
            with lock:
                live.add(session)
            outcome = session.run()
            turns = session.turns
        finally:
            with lock:
                live.discard(session)
            policy.close()
        row = {"scenario": scenario.name, "archetype": scenario.archetype,
               "split": scenario.scenario.split, "expect": scenario.scenario.expect,
               "outcome": outcome.outcome, "verified": outcome.verified, "operated": outcome.operated,
               "ended_by": outcome.ended_by, "steps": outcome.steps,
               "seconds": round(time.monotonic() - t0, 3), **_tokens(turns),
               "run_dir": str(run_dir.relative_to(out))}
        with lock:
            with open(out / RESULTS, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
                f.flush()
                os.fsync(f.fileno())
        bar.add(outcome.outcome)
        return row

    try:
        if jobs <= 1:
            for sc in todo:
                one(sc)
        else:
            pool = ThreadPoolExecutor(max_workers=jobs)
            try:
                for fut in as_completed([pool.submit(one, sc) for sc in todo]):
                    fut.result()
            except KeyboardInterrupt:
                # SIGINT or SIGTERM: the sessions still running stop at their next step and finish
                # their recordings as `stopped`; the ones not started never start.
                stop.set()
                with lock:
                    running = list(live)
                for session in running:   # a ^C ends the command in flight: no waiting out its timeout
                    try:
                        session.send_keys(b"\x03")
                    except Exception:
                        log.debug("^C to a stopping session failed", exc_info=True)
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            finally:
                pool.shutdown(wait=True)
    finally:
        release()
    rows = load_results(out)
    ordered = [rows[n] for n in names if n in rows]
    summary = {**meta, "metrics": metrics(ordered), "results": ordered}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "summary.md").write_text(markdown_report([summary]))
    return summary


# -- reports ---------------------------------------------------------------------------------------
METRICS = ("operate_rate", "terminate_rate", "verified_rate", "clean")


def load_summary(path: Path) -> dict:
    p = path / "summary.json" if path.is_dir() else path
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"teletype eval: {p}: not an eval summary ({exc})") from None


def markdown_report(summaries: list[dict]) -> str:
    # `stopped` gets a column only where a run has one (an eval writes no row for a stopped session:
    # it runs again on resume), so tables of older runs read as they did.
    shown = [k for k in OUTCOMES if k != "stopped" or any(
        s["metrics"]["overall"]["counts"].get(k) for s in summaries)]
    lines = ["| run | n | operate | terminate | verified | clean | " + " | ".join(shown) + " |",
             "|---|---|---|---|---|---|" + "---|" * len(shown)]
    for s in summaries:
        m = s["metrics"]["overall"]
        lines.append(f"| {s['label']} | {m['n']} | " + " | ".join(f"{m[k]:.2f}" for k in METRICS) + " | "
                     + " | ".join(str(m["counts"].get(k, 0)) for k in shown) + " |")
    archetypes = sorted({a for s in summaries for a in s["metrics"]["archetypes"]})
    lines += ["", "Per archetype (clean rate, with n):", "",
              "| archetype | " + " | ".join(s["label"] for s in summaries) + " |",
              "|---|" + "---|" * len(summaries)]
    for a in archetypes:
        cells = []
        for s in summaries:
            b = s["metrics"]["archetypes"].get(a)
            cells.append(f"{b['clean']:.2f} (n={b['n']})" if b else "-")
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


CHART_MISSING = "no chart: matplotlib is not installed (pip install 'teletype[chart]')"


def chart(summaries: list[dict], path: Path) -> Path | None:
    """A bar chart of the overall metrics per run, as PNG; None when matplotlib (the chart extra) is
    not installed: the markdown and JSON reports carry the same numbers."""
    try:
        import matplotlib
    except ImportError:
        return None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(summaries)
    fig, ax = plt.subplots(figsize=(7 + 1.2 * max(0, n - 2), 3.6), dpi=120)
    width = 0.8 / max(1, n)
    for i, s in enumerate(summaries):
        m = s["metrics"]["overall"]
        xs = [j + i * width for j in range(len(METRICS))]
        bars = ax.bar(xs, [m[k] for k in METRICS], width, label=f"{s['label']} (n={m['n']})")
        ax.bar_label(bars, fmt="%.2f", fontsize=7 if n <= 2 else 6)
    ax.set_xticks([j + width * (n - 1) / 2 for j in range(len(METRICS))],
                  ["operate", "terminate", "verified", "clean"])
    ax.set_ylim(0, 1.1)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.set_ylabel("rate")
    # Below the axes, so that long labels never run off the figure or over the bars.
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=min(2, n), frameon=False)
    ax.set_title("teletype eval")
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def compare(dirs: list[Path], report: Path, labels: list[str] | None = None) -> list[Path]:
    summaries = [load_summary(d) for d in dirs]
    for s, label in zip(summaries, labels or []):
        s["label"] = label
    report.parent.mkdir(parents=True, exist_ok=True)
    md = report.with_suffix(".md")
    md.write_text(markdown_report(summaries))
    js = report.with_suffix(".json")
    js.write_text(json.dumps([{k: s[k] for k in ("label", "policy", "metrics")} for s in summaries],
                             indent=1) + "\n")
    png = chart(summaries, report.with_suffix(".png"))
    return [md, js] + ([png] if png else [])


def audit(out: Path, tokenizer) -> tuple[int, list[str]]:
    """Render every recorded model step's prompt again, alone, with `tokenizer`, and compare its length
    with the prompt_tokens the step recorded. Returns (steps checked, one line per mismatch).

    A mismatch means the model saw a different prompt from the one its conversation renders to (a
    tokenizer, template or renderer that changed since, or a bug such as the tokenizer race fixed in
    teletype.engine.policy.render); the outcomes of those sessions deserve a second run."""
    from teletype.engine.policy.render import DEFAULT_BUDGET, prompt_window

    checked, problems = 0, []
    for row in load_results(out).values():
        path = out / row["run_dir"] / "trajectory.json"
        try:
            traj = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            problems.append(f"{path}: unreadable ({exc})")
            continue
        messages = traj.get("messages") or []
        for k, turn in enumerate(traj.get("turns") or [], 1):
            stats = turn.get("stats") or {}
            if "prompt_tokens" not in stats:
                continue  # not a model turn, or a backend that counts nothing
            checked += 1
            ids = prompt_window(tokenizer, messages[:2 * k - 1], stats.get("budget", DEFAULT_BUDGET)).ids
            if len(ids) != stats["prompt_tokens"]:
                problems.append(f"{row['scenario']} step {k}: the prompt renders to {len(ids)} tokens; "
                                f"{stats['prompt_tokens']} were recorded")
    return checked, problems


# -- CLI -------------------------------------------------------------------------------------------
def add_parser(sub, name: str = "eval") -> None:
    p = sub.add_parser(
        name, help="evaluate a policy on many scenarios, headless and in parallel; compare runs",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run scenarios (a folder, an archetype, or a split such as heldout) with one policy and\n"
                    "report outcomes and metrics. Two more modes work on finished evals: --compare puts them\n"
                    "side by side, --audit checks their recorded prompts.",
        epilog="examples:\n"
               "  teletype eval permissions --model ./tiny --steps 3 --jobs 2 --out runs/eval-tiny\n"
               "  teletype eval heldout --model smollm2 --out runs/eval-base --jobs 4\n"
               "  teletype eval heldout --model teletype-smollm2 --out runs/eval-adapter --jobs 4\n"
               "  teletype eval heldout --base ./tiny --adapter adapters/mine --out runs/eval-mine --jobs 4\n"
               "  teletype eval --compare runs/eval-base runs/eval-adapter --report runs/base-vs-adapter\n"
               "  teletype eval --audit runs/eval-adapter --model teletype-smollm2\n"
               "  teletype eval text_replace --endpoint http://127.0.0.1:8000/v1 --out runs/x --jobs 8")
    p.add_argument("specs", nargs="*", help="scenario files, folders, archetypes, or train/heldout")
    p.add_argument("--out", help="eval directory (resumed if it exists)")
    p.add_argument("--jobs", type=int, default=1, help="sessions at once, each in its own sandbox (default 1)")
    p.add_argument("--label", help="name of this run in reports (default: the model, a preset by its name)")
    p.add_argument("--sandbox", choices=["bwrap", "docker", "local"], default="bwrap",
                   help="where the shells run (default bwrap)")
    p.add_argument("--image", help="docker image for --sandbox docker")
    p.add_argument("--steps", type=int, default=30, help="step budget (default 30)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per command (default 30)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress line on stderr (it redraws in place; use this when logging to a file)")
    m = p.add_argument_group("the other modes (instead of SPEC... --out)")
    m.add_argument("--compare", nargs="+", metavar="EVAL_DIR", help="report finished evals side by side")
    m.add_argument("--labels", help="comma-separated labels for --compare")
    m.add_argument("--report", help="with --compare: output path prefix (.md, .json, .png)")
    m.add_argument("--teacher-forced", action="store_true",
                   help="the replay eval, no sandbox: score --model on the recordings named as SPEC... "
                        "(run dirs or folders of them): for each recorded turn, whether greedy decoding on "
                        "the recorded prefix reproduces the recorded command and its end of turn, and the "
                        "loss; per archetype, per step (first, middle, terminal) and per provenance. "
                        "--report PREFIX writes .md and .json (every turn, with what the model would type)")
    m.add_argument("--score-on", metavar="A,B",
                   help="with --teacher-forced: the provenances scored (default: all but detour, whose "
                        "turns stay context only, as in training)")
    m.add_argument("--audit", metavar="EVAL_DIR",
                   help="check that every recorded prompt renders again to its recorded length, with the "
                        "tokenizer of --model/--base (exit 1 on a mismatch)")
    add_model_options(p)
    p.set_defaults(func=cmd_eval)


def cmd_eval(args) -> int:
    if args.audit:
        return _cmd_audit(args)
    if args.teacher_forced:
        return _cmd_teacher_forced(args)
    if args.compare:
        report = Path(args.report or "eval-report")
        for path in compare([Path(d) for d in args.compare], report,
                            args.labels.split(",") if args.labels else None):
            print(f"wrote {path}")
        if not report.with_suffix(".png").exists():
            print(CHART_MISSING)
        print(report.with_suffix(".md").read_text())
        return 0
    if not args.specs or not args.out:
        raise UsageError("teletype eval: give scenarios (SPEC...) and --out DIR, or --compare DIR...")
    paths = [p for spec in args.specs for p in find_scenarios(spec)]
    if not paths:
        raise UsageError(f"teletype eval: no scenarios in {' '.join(args.specs)}")
    choice = resolve_model(args, default="scripted")
    summary = run_eval(paths, choice, Path(args.out), jobs=args.jobs, steps=args.steps,
                       limits=Limits(command_timeout=args.timeout), sandbox=args.sandbox,
                       sandbox_options={"image": args.image} if args.image else {},
                       progress=not args.no_progress, label=args.label)
    print(markdown_report([summary]))
    return 0


def _cmd_teacher_forced(args) -> int:
    from teletype.engine.eval import teacherforced as tf

    if not args.specs:
        raise UsageError("teletype eval --teacher-forced: name the recordings to score (SPEC...)")
    choice = resolve_model(args, default=None)
    if choice is None or choice.policy != "hf":
        raise UsageError("teletype eval --teacher-forced: name the model to score (--model, or --base and "
                         "--adapter); it runs in this process, as the hf policy")
    score_on = tuple(x.strip() for x in args.score_on.split(",")) if args.score_on else tf.SCORED
    try:
        recordings, skipped = tf.load_recordings(args.specs)
        source, adapter = choice.resolved()
        tokenizer, model = tf.load_model(source, adapter, dtype=choice.options.get("dtype"),
                                         device=choice.options.get("device"))
    except tf.TeacherForcedError as exc:
        raise UsageError(f"teletype eval --teacher-forced: {exc}") from None
    bar = Progress(len(recordings), 0, not args.no_progress)
    result = tf.score(model, tokenizer, recordings, label=args.label or choice.label,
                      budget=choice.options["budget"], max_new_tokens=choice.options["max_new_tokens"],
                      score_on=score_on, skipped=skipped, progress=lambda n, total: bar.add("scored"))
    print(tf.markdown([result]))
    if result.skipped:
        print(f"{len(result.skipped)} recordings skipped (not clean, or nothing to score)")
    if args.report:
        for path in tf.write_report([result], Path(args.report)):
            print(f"wrote {path}")
    return 0


def _cmd_audit(args) -> int:
    out = Path(args.audit)
    if not (out / RESULTS).exists():
        raise UsageError(f"teletype eval --audit: {out}: no {RESULTS} (not an eval directory)")
    choice = resolve_model(args, default=None)
    if choice is None or choice.policy != "hf":
        raise UsageError("teletype eval --audit: name the model whose tokenizer the eval used (--model or --base)")
    from transformers import AutoTokenizer

    source, adapter = choice.resolved()
    if adapter and (Path(adapter) / "tokenizer_config.json").is_file():
        source = adapter  # as the hf policy does
    checked, problems = audit(out, AutoTokenizer.from_pretrained(source))
    for line in problems:
        print(line)
    print(f"{checked} recorded prompts checked, {len(problems)} mismatched")
    return 1 if problems else 0
