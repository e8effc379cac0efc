"""How a task reaches the model: the motd, an environment variable, a file to discover, or a provider
program whose `--help` says how to fetch it. Each style also yields the commands a competent user
types to find the directive (the start of the reference solution)."""
from __future__ import annotations

from dataclasses import dataclass, field
from random import Random

from teletype.engine.worlds.generators.common import Ctx, Task, exists, wrap
from teletype.engine.worlds.generators.world import COLLEAGUES, DISTROS, TEAMS, last_login, neutral_motd, when

STYLES = ("motd", "env", "file", "provider")


@dataclass
class Announcement:
    style: str
    motd: str = ""
    env: dict[str, str] = field(default_factory=dict)
    files: list[dict] = field(default_factory=list)
    provider: dict[str, str] = field(default_factory=dict)
    discover: list[str] = field(default_factory=list)
    finish: list[str] = field(default_factory=list)
    """Commands after the work (closing a ticket)."""
    checks: list[dict] = field(default_factory=list)


def _taken(task: Task, path: str) -> bool:
    """Whether `path` (or a folder above or below it) is already part of the task's world."""
    for spec in task.files:
        p = spec["path"]
        if p == path or p.startswith(path + "/") or path.startswith(p + "/"):
            return True
    return False


def _free(rng: Random, task: Task, candidates: list[str]) -> str:
    options = [c for c in candidates if not _taken(task, c)]
    return rng.choice(options)


def _number(rng: Random) -> str:
    return str(rng.randint(100, 9899))


def _doc(rng: Random, ctx: Ctx, task: Task, paragraphs: list[str]) -> str:
    """The directive as the text of a note, work order or ticket file."""
    kind = rng.randrange(6)
    if kind == 0:
        done = rng.choice(["renew the TLS certificate", "move the printers to the new queue",
                           "send the monthly report", "update the on-call rota"])
        body = wrap(paragraphs, width=76, first="- [ ] ", indent="      ")
        return f"TODO ({ctx.user})\n{body}\n- [x] {done}\n"
    if kind == 1:
        who = rng.choice(COLLEAGUES)
        t = when(rng)
        until = f"{t.strftime('%B')} {t.day}"
        body = wrap(paragraphs, width=76, first="- ", indent="  ")
        return f"Handover from {who} (on leave until {until}):\n{body}\n"
    if kind == 2:
        return (f"WO-{_number(rng)}  (assigned to: {ctx.user})\n{task.title}\n\n"
                + wrap(paragraphs, width=78) + "\n")
    if kind == 3:
        return f"# notes\n\n{wrap(paragraphs, width=78)}\n"
    if kind == 4:
        head = f"{ctx.host} admin notes"
        return f"{head}\n{'-' * len(head)}\n{wrap(paragraphs, width=78)}\n"
    team = rng.choice(TEAMS)
    return f"From: {team} lead\nSubject: {task.title}\n\n{wrap(paragraphs, width=78)}\n"


def _motd(rng: Random, ctx: Ctx, task: Task) -> Announcement:
    paragraphs = task.directive
    kind = rng.randrange(5)
    if kind == 0:
        text = f"Welcome to {ctx.host}, {ctx.user}.\n" + wrap(paragraphs)
    elif kind == 1:
        role = rng.choice(["shared build server", "home server", "staging host", "team box",
                           "file server", "jump host"])
        text = f"{ctx.host} -- {role}\n" + wrap(paragraphs, first=f"{ctx.user}: ")
    elif kind == 2:
        who, team = rng.choice(COLLEAGUES), rng.choice(TEAMS)
        text = f"*** {ctx.host} ***\nNote for {ctx.user} from {who} ({team}):\n" + wrap(paragraphs)
    elif kind == 3:
        text = f"{rng.choice(DISTROS)}\n\nToday's task for {ctx.user}:\n" + wrap(paragraphs, indent="  ")
    else:
        first = paragraphs[0][:1].lower() + paragraphs[0][1:]
        text = wrap([first, *paragraphs[1:]], first=f"Hi {ctx.user} -- ")
    if rng.random() < 0.5 and kind != 3:
        text += "\nLog out when you are done."
    return Announcement("motd", motd=text)


_ENV_PATH_VARS = ["TASK_FILE", "ASSIGNMENT", "JOB_SPEC", "WORK_ORDER", "TICKET", "TODO_FILE",
                  "ORDERS", "WORKLIST", "TASK"]
_ENV_TEXT_VARS = ["TASK", "DIRECTIVE", "ASSIGNMENT", "TODO", "JOB"]


def _env(rng: Random, ctx: Ctx, task: Task) -> Announcement:
    var = rng.choice(_ENV_PATH_VARS)
    hinted = rng.random() < 0.6
    if rng.random() < 0.3:  # the variable holds the directive itself
        var = rng.choice(_ENV_TEXT_VARS)
        text = wrap(task.directive, width=72)
        if hinted:
            motd = rng.choice([f"Your task is in ${var}.", f"{ctx.host}: today's job is in ${var}",
                               f"Welcome, {ctx.user}. Read ${var} (echo \"${var}\") for your assignment."])
            discover = [f'echo "${var}"']
        else:
            motd = neutral_motd(rng, ctx.host)
            discover = ["env"] if rng.random() < 0.5 else ["env", f'echo "${var}"']
        return Announcement("env", motd=motd, env={var: text}, discover=discover)
    n = _number(rng)
    where = _free(rng, task, ["~/.tasks/current", "~/inbox/task.txt", f"~/inbox/{n}.txt",
                              "~/.jobs/current", f"~/tickets/T-{n}.txt", f"~/orders/{n}.txt",
                              "~/worklist", f"/var/spool/tasks/{ctx.user}",
                              f"/etc/{ctx.host}/task-{ctx.user}", f"/srv/orders/{ctx.user}-{n}.txt"])
    if hinted:
        motd = rng.choice([f"See ${var}.", f"Your current job is described in the file named by ${var}.",
                           f"New work assigned to you: see ${var}", f"{ctx.host} | see ${var} for pending work"])
        discover = [f"cat ${var}"] if rng.random() < 0.5 else [f"echo ${var}", f"cat ${var}"]
    else:
        motd = neutral_motd(rng, ctx.host)
        word = var.split("_")[0].lower()
        discover = [rng.choice(["env", f"env | grep -i {word}"]), f"cat ${var}"]
    return Announcement("env", motd=motd, env={var: where},
                        files=[{"path": where, "content": _doc(rng, ctx, task, task.directive)}],
                        discover=discover)


def _file(rng: Random, ctx: Ctx, task: Task) -> Announcement:
    n = _number(rng)
    where = _free(rng, task, ["~/README", "~/TODO", "~/TODO.txt", "~/notes/task.txt", "~/ASSIGNMENT",
                              "~/.task", "~/HANDOVER", "~/NOTES.md", f"~/inbox/{n}.txt", "~/README.admin",
                              "~/WORKORDER"])
    rel = where[2:]
    hinted = rng.random() < 0.35
    if hinted:
        motd = rng.choice([f"Welcome, {ctx.user}. Your assignment for today is in {where}.",
                           f"{ctx.host}: unread message in {where}",
                           f"{last_login(rng)}\nReminder: {where}"])
        discover = [f"cat {where}"]
    else:
        motd = neutral_motd(rng, ctx.host)
        if rel.startswith("."):
            discover = (["ls", "ls -a"] if rng.random() < 0.5 else ["ls -a"]) + [f"cat {rel}"]
        elif "/" in rel:
            top = rel.split("/")[0]
            discover = ["ls", f"ls {top}", f"cat {rel}"]
        else:
            discover = [rng.choice(["ls", "ls -l", "ls -a"]), f"cat {rel}"]
    return Announcement("file", motd=motd, files=[{"path": where, "content": _doc(rng, ctx, task, task.directive)}],
                        discover=discover)


_PROGRAMS = ["tasks", "todo", "ticket", "queue", "workq", "assign", "helpdesk", "ops", "inbox",
             "dispatch", "jobs-cli", "tix", "agenda"]


def _provider(rng: Random, ctx: Ctx, task: Task) -> Announcement:
    prog = rng.choice([p for p in _PROGRAMS if p not in task.provider])
    style = rng.randrange(3)  # 0: `prog show`; 1: list + show ID; 2: list + get ID
    numeric = rng.random() < 0.5
    item = _number(rng) if numeric else f"{rng.choice(['OPS', 'IT', 'REQ', 'WRK', 'SUP'])}-{rng.randint(10, 999)}"
    close = task.closable and task.expect == "exit" and rng.random() < 0.4
    paragraphs = list(task.directive)
    if close:
        paragraphs.append(f"When you are finished, run `{prog} done {item}`." if style else
                          f"When you are finished, run `{prog} done`.")
    text = wrap(paragraphs, width=76)
    for line in text.split("\n"):
        assert line.strip() != "EOF", "a directive line would end the heredoc"
    state = f'"$HOME/.cache/{prog}"'
    verb = ["show", "show", "get"][style]
    if style == 0:
        usage = [f"usage: {prog} COMMAND", "", "commands:", "  show        print the task assigned to you"]
        if close:
            usage.append("  done        mark your task as finished")
        body = [f'state={state}', 'case "$1" in', '  ""|-h|--help|help)', "    cat <<'EOF'", *usage, "EOF",
                "    ;;", "  show)", "    cat <<'EOF'", f"{task.title}", "", text, "EOF", "    ;;"]
        if close:
            body += ["  done)",
                     f'    mkdir -p "$state" && date > "$state/{item}.done" && echo "task {item} marked done"',
                     "    ;;"]
        discover = [f"{prog} --help", f"{prog} show"]
        finish = [f"{prog} done"] if close else []
    else:
        usage = [f"{prog} - work assigned to you on {ctx.host}", "", "usage:",
                 f"  {prog} list          list your open items",
                 f"  {prog} {verb} ID{' ' * (7 - len(verb))}    print one item in full"]
        if close:
            usage.append(f"  {prog} done ID       mark an item as done")
        waiting = rng.random() < 0.5
        other = str(int(item) + 1) if numeric else f"{item.split('-')[0]}-{int(item.split('-')[1]) + 1}"
        listing = [f'    if [ -f "$state/{item}.done" ]; then echo "{item}  done  {task.title}"; '
                   f'else echo "{item}  open  {task.title}"; fi']
        if waiting:
            later = rng.choice(["new badge photos", "printer toner order", "VPN certificate renewal",
                                "wiki migration", "quarterly access review", "office move checklist"])
            who = rng.choice(COLLEAGUES)
            listing.append(f'    echo "{other}  waiting  {later} (nothing to do until {who} replies)"')
        body = [f'state={state}', 'case "$1" in', '  ""|-h|--help|help)', "    cat <<'EOF'", *usage, "EOF",
                "    ;;", "  list|ls)", *listing, "    ;;", f"  {verb})", '    case "$2" in',
                f"      {item})", "        cat <<'EOF'", f"{item}  {task.title}", "", text, "EOF", "        ;;"]
        if waiting:
            body += [f"      {other}) echo \"{other}: waiting for input; nothing to do yet.\" ;;"]
        body += [f'      "") echo "usage: {prog} {verb} ID" >&2; exit 2 ;;',
                 f'      *) echo "{prog}: no such item: $2" >&2; exit 1 ;;', "    esac", "    ;;"]
        if close:
            body += ["  done)", '    case "$2" in',
                     f'      {item}) mkdir -p "$state" && date > "$state/{item}.done" && '
                     f'echo "{item} marked done" ;;',
                     f'      *) echo "{prog}: no such item: $2" >&2; exit 1 ;;', "    esac", "    ;;"]
        discover = [f"{prog} --help", f"{prog} list", f"{prog} {verb} {item}"]
        finish = [f"{prog} done {item}"] if close else []
    body += [f'  *) echo "{prog}: unknown command: $1 (try {prog} --help)" >&2; exit 2 ;;', "esac", ""]
    script = "\n".join(body)
    motd = rng.choice([f"{ctx.host}: work is handed out by `{prog}` (try `{prog} --help`).",
                       f"Run `{prog} --help` to see your work queue.",
                       f"{ctx.host} -- open items: run `{prog} --help`.",
                       f"{last_login(rng)}\nPending work: `{prog} --help`"])
    checks = [exists(f"~/.cache/{prog}/{item}.done", f"{prog} item {item} was marked done")] if close else []
    return Announcement("provider", motd=motd, provider={prog: script}, discover=discover, finish=finish,
                        checks=checks)


def announce(rng: Random, ctx: Ctx, task: Task, style: str) -> Announcement:
    a = {"motd": _motd, "env": _env, "file": _file, "provider": _provider}[style](rng, ctx, task)
    if task.motd_note:
        a.motd = (a.motd + "\n" if a.motd else "") + task.motd_note
    return a
