"""file_create: make a file, symlink or folder tree with exactly the given content.

Variants: an executable shell script; a plain list turned into a CSV; given lines; a symlink; a
project skeleton.
"""
from __future__ import annotations

import datetime as _dt

from teletype.engine.worlds.generators.common import Ctx, Task, block, code, command, d, equals, exists, f, link, sq
from teletype.engine.worlds.generators.world import PROJECTS, SERVICES, app_log, people, when


def fc_script(ctx: Ctx) -> Task:
    rng = ctx.rng
    folder = rng.choice(["~/bin", "~/scripts", "~/.local/bin", "~/tools"])
    have_folder = rng.random() < 0.5
    kind = rng.choice(["literal", "literal", "user", "count"])
    files = [d(folder)] if have_folder else []
    if kind == "literal":
        name, line = rng.choice([("hello", "hello, world"), ("backup-note", "backup finished"),
                                 ("status", "all systems nominal"), ("ready", "ready"), ("up", f"{ctx.host} is up"),
                                 ("morning", "good morning"), ("report", "nothing to report"),
                                 ("build-status", "build ok")])
        what = f"prints exactly the line `{line}`"
        body = f"echo {sq(line)}"
    elif kind == "user":
        name = rng.choice(["greet", "hello-me", "welcome"])
        line = f"hello, {ctx.user}"
        what = ("greets whoever runs it by login name, printing exactly `hello, NAME` (when you run it: "
                f"`{line}`)")
        body = 'echo "hello, $USER"'
    else:
        name = rng.choice(["count-rows", "rows", "linecount"])
        data = rng.choice(["~/data/orders.csv", "~/data/signups.csv", "~/reports/visits.csv"])
        rows = rng.randint(5, 19)
        content = "id,when,amount\n" + "".join(
            f"{i + 1},{when(rng).date()},{rng.randint(3, 400)}.{rng.randint(0, 99):02d}\n" for i in range(rows - 1))
        files.append(f(data, content))
        line = str(rows)
        what = f"prints the number of lines in {data} (only the number)"
        body = f'wc -l < "$HOME/{data[2:]}"'
    path = f"{folder}/{name}"
    directive = [f"Create an executable shell script {path} that {what} when it is run."]
    if not have_folder:
        directive.append(f"The folder {folder} does not exist yet; create it.")
    if kind == "count":
        check = command(f'[ -x {path} ] && [ "$({path} | tr -d \' \')" = {line} ]',
                        f"{path} is executable and prints {line}")
    else:
        check = command(f'[ -x {path} ] && [ "$({path})" = {sq(line)} ]',
                        f"{path} is executable and prints {line}")
    heredoc = f"cat > {path} <<'EOF'\n#!/bin/sh\n{body}\nEOF"
    work = [f"ls -la {folder}" if have_folder else f"mkdir -p {folder}", heredoc,
            f"chmod {rng.choice(['+x', '755', 'u+x', '700'])} {path}", path]
    return Task(title=f"new script {path}", directive=directive,
                description=f"write an executable shell script that {what.replace('`', '')}",
                files=files, checks=[check], work=work)


def fc_csv(ctx: Ctx) -> Task:
    rng = ctx.rng
    sort = rng.random() < 0.4
    outdir = rng.choice(["~/out", "~/export", "~/reports"])
    have_out = rng.random() < 0.5
    if rng.random() < 0.55:
        src = rng.choice(["~/orders/people.txt", "~/inbox/attendees.txt", "~/lists/team.txt"])
        ppl = people(rng, rng.randint(3, 6))
        lines = [f"{a} {b} <{m}>" for a, b, m in ppl]
        conv = lambda ln: ln.replace(" <", ",").rstrip(">")  # noqa: E731
        header = "name,email"
        out = f"{outdir}/{rng.choice(['contacts.csv', 'attendees.csv', 'people.csv'])}"
        example = "Ada Lovelace,ada@example.org"
        sed = "sed 's/ <\\(.*\\)>$/,\\1/'"
        what = "person"
    else:
        src = rng.choice(["~/inventory/hosts.txt", "~/net/hosts.list", "~/notes/machines.txt"])
        names = rng.sample(["web-1", "web-2", "db-1", "db-2", "cache-1", "mq-1", "build-1", "mail-1",
                            "proxy-1", "mon-1"], rng.randint(3, 6))
        lines = [f"{n} 10.{rng.randint(0, 9)}.{rng.randint(0, 9)}.{rng.randint(2, 250)}" for n in names]
        conv = lambda ln: ln.replace(" ", ",", 1)  # noqa: E731
        header = "host,ip"
        out = f"{outdir}/{rng.choice(['hosts.csv', 'inventory.csv'])}"
        example = "web-9,10.0.0.9"
        sed = "sed 's/ /,/'"
        what = "machine"
    rows = sorted(lines) if sort else lines
    expected = header + "\n" + "".join(conv(ln) + "\n" for ln in rows)
    order = "sorted alphabetically" if sort else "in the same order"
    directive = [f"Create {out} with the header line", f"    {header}",
                 f"followed by one line per {what} listed in {src}, {order}, for example: {code(example)}"]
    if not have_out:
        directive.append(f"(The folder {outdir} does not exist yet.)")
    work = [f"cat {src}"]
    work.append(f"ls {outdir}" if have_out else f"mkdir -p {outdir}")
    work.append(f"echo {header} > {out}")
    work.append(f"sort {src} | {sed} >> {out}" if sort else f"{sed} {src} >> {out}")
    work.append(f"cat {out}")
    files = [f(src, "\n".join(lines) + "\n")] + ([d(outdir)] if have_out else [])
    return Task(title=f"make {out.split('/')[-1]}", directive=directive,
                description=f"turn a plain list into a CSV file with a header ({order})",
                files=files, checks=[equals(out, expected)], work=work)


def fc_lines(ctx: Ctx) -> Task:
    rng = ctx.rng
    proj = rng.choice(PROJECTS)
    kind = rng.randrange(4)
    files = []
    if kind == 0:
        target = f"~/projects/{proj}/.gitignore"
        lines = rng.sample(["*.pyc", "__pycache__/", ".env", "node_modules/", "dist/", "*.log", ".DS_Store",
                            "build/", "*.swp", ".venv/"], rng.randint(3, 5))
        files += [f(f"~/projects/{proj}/main.py", "print('ok')\n"),
                  f(f"~/projects/{proj}/.env", "API_KEY=changeme\n")]
        title = "add a .gitignore"
    elif kind == 1:
        target = f"~/projects/{proj}/requirements.txt"
        lines = rng.sample(["requests==2.31.0", "flask==3.0.2", "gunicorn==21.2.0", "psycopg2-binary==2.9.9",
                            "python-dotenv==1.0.1", "click==8.1.7", "pyyaml==6.0.1"], rng.randint(3, 5))
        files += [f(f"~/projects/{proj}/app.py", "from flask import Flask\napp = Flask(__name__)\n")]
        title = "pin the requirements"
    elif kind == 2:
        target = rng.choice(["~/app/allowed_hosts", "~/.config/proxy/allow.list", "~/etc/allow.txt"])
        lines = rng.sample([f"{w}.{ctx.host}.lan" for w in ["web", "api", "mail", "git", "ci"]]
                           + ["127.0.0.1", "10.0.0.0/8", "192.168.1.0/24"], rng.randint(3, 5))
        title = "write the allow list"
    else:
        target = rng.choice(["~/status/away.txt", "~/.plan", "~/public/status.txt"])
        t = when(rng)
        lines = [rng.choice([f"Out of office until {t.date()}.", f"Back on {t.strftime('%A')} {t.date()}.",
                             f"On leave until {t.date()}; ask the {rng.choice(['ops', 'web', 'data'])} team."])]
        title = "set the away message"
    folder = target.rsplit("/", 1)[0]
    n = len(lines)
    say = "this line" if n == 1 else f"exactly these {n} lines, in this order"
    directive = [f"Create {target} with {say}:", block(lines)]
    have = folder == "~" or any(x["path"].startswith(folder + "/") for x in files)
    if not have:
        directive.append(f"Make the folder {folder} if it is missing.")
    quoted = " ".join(sq(ln) for ln in lines)
    work = ([f"ls -a {folder}"] if have else [f"mkdir -p {folder}"]) + [
        f"printf '%s\\n' {quoted} > {target}", f"cat {target}"]
    checks = [equals(target, "\n".join(lines) + "\n")] + [exists(x["path"]) for x in files[-1:]]
    return Task(title=title, directive=directive, description=f"create {target} with {n} given line(s)",
                files=files, checks=checks, work=work)


def fc_symlink(ctx: Ctx) -> Task:
    rng = ctx.rng
    kind = rng.randrange(3)
    if kind == 0:
        app = rng.choice(["~/app", f"~/srv/{rng.choice(PROJECTS)}", "~/site"])
        cands = [f"{a}.{b}.{c}" for a in range(1, 4) for b in range(0, 10) for c in range(0, 13)]
        vers = sorted(rng.sample(cands, 3), key=lambda v: tuple(int(x) for x in v.split(".")))
        new, old = vers[-1], vers[-2]
        files = [f(f"{app}/releases/{v}/VERSION", v + "\n") for v in rng.sample(vers, len(vers))]
        have = rng.random() < 0.7
        if have:
            files.append(link(f"{app}/current", f"releases/{old}"))
        which = rng.choice([f"{app}/releases/{new}", "the newest release (the highest version number)"])
        directive = [f"{app}/current is {'a symbolic link to' if have else 'meant to be a symbolic link to'} the "
                     f"release that is served. Point it at {which}"
                     + (f" instead of {old}." if have else "."), "Keep every release folder."]
        checks = [command(f"[ -L {app}/current ] && [ \"$(cat {app}/current/VERSION)\" = {new} ]",
                          f"{app}/current is a link to release {new}")]
        checks += [exists(f"{app}/releases/{v}/VERSION") for v in vers]
        work = [f"ls -l {app} {app}/releases", f"ln -sfn releases/{new} {app}/current", f"cat {app}/current/VERSION"]
        return Task(title=f"switch to release {new}", directive=directive,
                    description="point a `current` symlink at a release", files=files, checks=checks, work=work)
    if kind == 1:
        logs = rng.choice(["~/logs", "~/var/log", f"~/{rng.choice(SERVICES)}/logs"])
        svc = rng.choice(SERVICES)
        t = when(rng)
        back = rng.sample(range(0, 60), rng.randint(3, 5))
        dates = sorted((t - _dt.timedelta(days=k)).date().isoformat() for k in back)
        files = []
        for dt in dates:
            files.append(f(f"{logs}/{svc}-{dt}.log", app_log(rng, rng.randint(3, 6), svc)
                           + f"{dt}T23:59:59 {svc} INFO  log closed ({dt})\n"))
        newest = f"{svc}-{dates[-1]}.log"
        rng.shuffle(files)
        directive = [f"Create a symbolic link {logs}/latest.log that points to the newest {svc} log in {logs} "
                     "(the one with the latest date in its name), so that the dashboards can follow it."]
        checks = [command(f"[ -L {logs}/latest.log ] && grep -q 'log closed ({dates[-1]})' {logs}/latest.log",
                          f"latest.log is a link to {newest}")]
        checks += [exists(x["path"]) for x in files]
        work = [f"ls {logs}", f"ln -s {newest} {logs}/latest.log", f"ls -l {logs}", f"tail -n 2 {logs}/latest.log"]
        return Task(title="latest.log link", directive=directive,
                    description="create a symlink to the newest dated log", files=files, checks=checks, work=work)
    tool = rng.choice(["fmtcheck", "dbtool", "syncit", "pack", "lint-sql", "tidyup"])
    v_old, v_new = f"1.{rng.randint(0, 4)}.0", f"2.{rng.randint(0, 4)}.{rng.randint(0, 9)}"
    if rng.random() < 0.5:
        v_old, v_new = v_new, v_old  # the wanted one is not always the newest
    files = [f(f"~/opt/{tool}-{v}/bin/{tool}", f"#!/bin/sh\necho '{tool} {v}'\n", "0755") for v in (v_old, v_new)]
    files.append(d("~/bin"))
    directive = [f"Make {tool} {v_new} available as ~/bin/{tool}: create a symbolic link there to the "
                 f"program ~/opt/{tool}-{v_new}/bin/{tool}. Do not copy it."]
    checks = [command(f"[ -L ~/bin/{tool} ] && [ \"$(~/bin/{tool})\" = '{tool} {v_new}' ]",
                      f"~/bin/{tool} is a link that runs version {v_new}")]
    work = ["ls ~/opt", f"ln -s ~/opt/{tool}-{v_new}/bin/{tool} ~/bin/{tool}", "ls -l ~/bin", f"~/bin/{tool}"]
    return Task(title=f"link {tool} {v_new}", directive=directive,
                description="link a program version into ~/bin", files=files, checks=checks, work=work)


def fc_tree(ctx: Ctx) -> Task:
    rng = ctx.rng
    name = rng.choice(PROJECTS)
    base = rng.choice(["~/projects", "~/work", "~/src"])
    other = rng.choice([p for p in PROJECTS if p != name])
    subs = rng.sample(["src", "tests", "docs", "scripts", "data", "config", "assets"], rng.randint(3, 4))
    keep = rng.random() < 0.4
    root = f"{base}/{name}"
    files = [f(f"{base}/{other}/README.md", f"# {other}\n")]
    listing = ", ".join(subs[:-1]) + " and " + subs[-1]
    directive = [f"Start the new project {name}: create {root} with the subfolders {listing}, and a file "
                 f"{root}/README.md whose only line is `# {name}`."]
    if keep:
        directive.append("Put an empty file named .keep in each subfolder so that git keeps them.")
    checks = [command(" && ".join(f"[ -d {root}/{s} ]" for s in subs), "the subfolders exist"),
              equals(f"{root}/README.md", f"# {name}\n"), exists(f"{base}/{other}/README.md")]
    if keep:
        checks.append(command(" && ".join(f"[ -f {root}/{s}/.keep ]" for s in subs), "each subfolder has .keep"))
    work = [f"ls {base}", "mkdir -p " + " ".join(f"{root}/{s}" for s in subs),
            f"echo '# {name}' > {root}/README.md"]
    if keep:
        work.append("touch " + " ".join(f"{root}/{s}/.keep" for s in subs))
    work.append(f"ls -R {root}" if not keep else f"ls -aR {root}")
    return Task(title=f"new project {name}", directive=directive,
                description="create a project skeleton of folders and a README", files=files, checks=checks,
                work=work)


FILE_CREATE = [fc_script, fc_csv, fc_lines, fc_symlink, fc_tree]

__all__ = ["FILE_CREATE"]
