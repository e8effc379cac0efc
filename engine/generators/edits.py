"""config_edit, text_replace and permissions: change settings, replace text exactly, set modes."""
from __future__ import annotations

import re

from .common import Ctx, Task, code, command, d, equals, exists, f, mode, q1, sed_s, sq
from .world import COLLEAGUES, PROJECTS, people, shell_script, when

# -- config_edit -----------------------------------------------------------------------------------

_ENV = [("DEBUG", ["true", "false"]), ("LOG_LEVEL", ["debug", "info", "warn", "error"]),
        ("WORKERS", ["2", "4", "8", "16"]), ("CACHE_TTL", ["60", "300", "900", "3600"]),
        ("MAX_UPLOAD_MB", ["10", "20", "50", "100"]), ("FEATURE_SIGNUP", ["on", "off"]),
        ("TZ", ["UTC", "Europe/Berlin", "America/Chicago"]), ("SMTP_PORT", ["25", "465", "587"]),
        ("SESSION_TIMEOUT", ["900", "1800", "3600"]), ("RATE_LIMIT", ["100", "500", "1000"])]
_YAML = [("debug", ["true", "false"]), ("log_level", ["debug", "info", "warning", "error"]),
         ("workers", ["2", "4", "8", "16"]), ("timeout", ["10", "30", "60", "120"]),
         ("retries", ["0", "3", "5"]), ("listen", ["0.0.0.0:8080", "127.0.0.1:8080", "0.0.0.0:9000"]),
         ("max_connections", ["50", "100", "200"]), ("compress", ["true", "false"])]
_CONF = [("listen", ["8080", "8000", "9090"]), ("workers", ["2", "4", "8"]), ("log_level", ["info", "warn", "debug"]),
         ("timeout", ["30", "60", "120"]), ("gzip", ["on", "off"]), ("keepalive", ["on", "off"]),
         ("max_body", ["1m", "10m", "50m"]), ("access_log", ["on", "off"])]
_FMT = {"env": lambda k, v: f"{k}={v}", "yaml": lambda k, v: f"{k}: {v}", "conf": lambda k, v: f"{k} {v}"}
_KEYPAT = {"env": lambda k: f"{k}=.*", "yaml": lambda k: f"{k}: .*", "conf": lambda k: f"{k} .*"}


_VERB = {"set": "change", "add": "add", "remove": "remove", "comment": "comment out"}


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _other_lines_check(path: str, lines: list[str]) -> dict:
    keep = [ln for ln in lines if ln.strip()]
    return command(" && ".join(f"grep -qxF -- {sq(ln)} {path}" for ln in keep), "the other lines are unchanged")


def ce_flat(ctx: Ctx) -> Task:
    rng = ctx.rng
    fmt = rng.choice(["env", "yaml", "conf"])
    proj = rng.choice(PROJECTS)
    path = {"env": rng.choice(["~/app/config.env", f"~/{proj}/.env", f"~/.config/{proj}/{proj}.env"]),
            "yaml": rng.choice(["~/app/config.yml", f"~/{proj}/settings.yaml", f"~/.config/{proj}/config.yml"]),
            "conf": rng.choice([f"~/.config/{proj}/{proj}.conf", f"~/etc/{proj}.conf", "~/app/server.conf"])}[fmt]
    pool = {"env": _ENV, "yaml": _YAML, "conf": _CONF}[fmt]
    line = _FMT[fmt]
    chosen = rng.sample(pool, 6)
    present, spare = chosen[:5], chosen[5]
    values = {k: rng.choice(alts) for k, alts in present}
    head = {"env": [f"APP_NAME={proj}", f"DB_URL=postgres://{proj}@db:5432/{proj}"],
            "yaml": [f"name: {proj}", f"database: postgres://{proj}@db:5432/{proj}"],
            "conf": [f"# {proj} server settings", f"root /srv/{proj}"]}[fmt]
    lines = head + [line(k, values[k]) for k, _ in present]
    if fmt == "env":
        lines.append(f"# {present[0][0]}_OLD={values[present[0][0]]}")
    ops = rng.sample(["set", "set", "add", "remove", "comment"], rng.randint(1, 3))
    if ops.count("set") == 2:
        ops.remove("set")
    keys = [k for k, _ in present]
    rng.shuffle(keys)
    directive_parts, work, checks = [], [f"cat {path}"], []
    new_lines = list(lines)
    touched = []
    for op in ops:
        if op == "add":
            k, alts = spare
            v = rng.choice(alts)
            ln = line(k, v)
            new_lines.append(ln)
            directive_parts.append(f"add the line {code(ln)} at the end")
            work.append(f"echo {sq(ln)} >> {path}")
            checks.append(command(f"grep -qxF -- {sq(ln)} {path}", f"{ln} was added"))
            continue
        k = keys.pop()
        old = line(k, values[k])
        touched.append(old)
        if op == "set":
            v = rng.choice([a for a in dict(present)[k] if a != values[k]])
            new = line(k, v)
            new_lines[new_lines.index(old)] = new
            directive_parts.append(f"change {k} from {values[k]} to {v} (the line becomes {code(new)})")
            work.append(f"sed -i {q1(sed_s(_KEYPAT[fmt](k), new, whole_line=True, regex=True))} {path}")
            checks.append(command(f"grep -qxF -- {sq(new)} {path} && ! grep -qxF -- {sq(old)} {path}",
                                  f"{k} is now {v}"))
        elif op == "remove":
            new_lines.remove(old)
            directive_parts.append(f"remove the {k} setting")
            work.append(f"sed -i '/^{k}[=: ]/d' {path}")
            checks.append(command(f"! grep -qxF -- {sq(old)} {path}", f"{k} is gone"))
        else:
            new_lines[new_lines.index(old)] = "# " + old
            directive_parts.append(f"disable {k} by commenting its line out (put # in front of it)")
            work.append(f"sed -i '/^{k}[=: ]/s/^/# /' {path}")
            checks.append(command(f"! grep -qxF -- {sq(old)} {path} && (grep -qxF -- {sq('# ' + old)} {path} "
                                  f"|| grep -qxF -- {sq('#' + old)} {path})", f"{k} is commented out"))
    work.append(f"cat {path}")
    untouched = [ln for ln in lines if ln not in touched]
    checks.append(_other_lines_check(path, untouched))
    why = rng.choice([f"Production on {ctx.host} is logging far too much.", "We are tuning the service.",
                      f"{rng.choice(COLLEAGUES)} asked for a few config changes.", "Small config change request."])
    directive = [f"{why} In {path}: " + "; ".join(directive_parts) + ". Keep all other lines exactly as they are."]
    files = [f(path, "\n".join(lines) + "\n")]
    return Task(title=f"edit {path.rsplit('/', 1)[-1]}", directive=directive,
                description=f"{_and([_VERB[o] for o in ops])} settings in {'an' if fmt == 'env' else 'a'} {fmt} "
                            "config file, keeping the rest",
                files=files, checks=checks, work=work)


def ce_ini_section(ctx: Ctx) -> Task:
    rng = ctx.rng
    proj = rng.choice(PROJECTS)
    path = rng.choice([f"~/{proj}/settings.ini", "~/app/app.ini", f"~/.config/{proj}/{proj}.ini"])
    primary, secondary = rng.choice([("database", "replica"), ("server", "admin"), ("mail", "mail_fallback")])
    key = rng.choice(["port", "host"])
    vals = {"port": rng.sample(["5432", "5433", "6432", "6543", "8025", "2525", "8080", "8081"], 3),
            "host": rng.sample([f"{w}.{ctx.host}.lan" for w in ["db1", "db2", "db3", "mx1", "mx2", "app1", "app2"]],
                               3)}[key]
    old, other, new = vals
    other_key = "port" if key == "host" else "host"
    ov = {"port": "5432", "host": f"srv.{ctx.host}.lan"}[other_key]
    lines = [f"[{primary}]", f"{key} = {old}", f"{other_key} = {ov}", f"name = {proj}", "",
             f"[{secondary}]", f"{key} = {other}", f"{other_key} = {ov}", "",
             "[logging]", f"level = {rng.choice(['info', 'warning'])}", f"file = /var/log/{proj}.log"]
    target = rng.choice([primary, secondary])
    cur = old if target == primary else other
    new_lines = list(lines)
    idx = new_lines.index(f"[{target}]") + 1
    assert new_lines[idx] == f"{key} = {cur}"
    new_lines[idx] = f"{key} = {new}"
    directive = [f"The {target} server moved. In {path}, change {key} in the [{target}] section to {new} "
                 f"(the line becomes {code(f'{key} = {new}')}). The other sections keep their {key}; change "
                 "nothing else."]
    expected = "\n".join(new_lines) + "\n"
    sed = f"/^\\[{target}\\]/,/^\\[/{sed_s(f'{key} = ' + cur, f'{key} = {new}', whole_line=True)}"
    work = [f"cat {path}", f"grep -n '^{key}' {path}", f"sed -i {q1(sed)} {path}", f"cat {path}"]
    return Task(title=f"{target} {key}", directive=directive,
                description="change a key in one ini section where the same key appears in another",
                files=[f(path, "\n".join(lines) + "\n")], checks=[equals(path, expected)], work=work)


def ce_crontab(ctx: Ctx) -> Task:
    rng = ctx.rng
    path = rng.choice(["~/crontab.txt", "~/cron/jobs.cron", f"~/.config/cron/{ctx.user}.cron"])
    jobs = rng.sample([("backup", "0 3 * * *"), ("report", "30 6 * * 1"), ("sync", "*/15 * * * *"),
                       ("cleanup", "0 2 * * 0"), ("rotate", "5 0 * * *"), ("digest", "0 8 * * 1-5")], 4)
    lines = ["# m h dom mon dow command", "MAILTO=" + ctx.user] + [f"{s} $HOME/bin/{n}.sh" for n, s in jobs]
    ops = rng.sample(["disable", "reschedule", "add"], rng.randint(1, 2))
    rng.shuffle(jobs)
    parts, work, checks, touched = [], [f"cat {path}"], [], []
    for op in ops:
        if op == "add":
            n = rng.choice(["healthcheck", "prune", "mirror"])
            ln = f"{rng.choice(['*/10 * * * *', '45 1 * * *', '0 12 * * 6'])} $HOME/bin/{n}.sh"
            parts.append(f"add the job line {code(ln)} at the end")
            work.append(f"echo {sq(ln)} >> {path}")
            checks.append(command(f"grep -qxF -- {sq(ln)} {path}", f"the {n} job was added"))
            continue
        n, s = jobs.pop()
        old = f"{s} $HOME/bin/{n}.sh"
        touched.append(old)
        if op == "disable":
            parts.append(f"disable the {n} job by commenting its line out (# in front)")
            work.append(f"sed -i '/{n}\\.sh/s/^/# /' {path}")
            checks.append(command(f"! grep -qxF -- {sq(old)} {path} && (grep -qxF -- {sq('# ' + old)} {path} "
                                  f"|| grep -qxF -- {sq('#' + old)} {path})", f"the {n} job is commented out"))
        else:
            h, m = rng.randint(0, 23), rng.choice([0, 15, 30, 45])
            new = f"{m} {h} * * * $HOME/bin/{n}.sh"
            parts.append(f"run the {n} job every day at {h:02d}:{m:02d} (the line becomes {code(new)})")
            work.append(f"sed -i {q1(sed_s(old, new, whole_line=True))} {path}")
            checks.append(command(f"grep -qxF -- {sq(new)} {path} && ! grep -qxF -- {sq(old)} {path}",
                                  f"the {n} job runs at {h:02d}:{m:02d}"))
    work.append(f"cat {path}")
    checks.append(_other_lines_check(path, [ln for ln in lines if ln not in touched]))
    directive = [f"{path} is the crontab for {ctx.host} (it is installed from that file). In it: " + "; ".join(parts)
                 + ". Leave the other lines exactly as they are."]
    return Task(title="crontab changes", directive=directive,
                description="disable, reschedule or add jobs in a crontab file",
                files=[f(path, "\n".join(lines) + "\n")], checks=checks, work=work)


def ce_hosts(ctx: Ctx) -> Task:
    rng = ctx.rng
    path = rng.choice(["~/etc/hosts", "~/.config/hosts.local", "~/net/hosts"])
    names = rng.sample(["git", "wiki", "ci", "mail", "db", "cache", "files"], 4)
    lines = ["127.0.0.1 localhost"] + [f"10.{rng.randint(0, 9)}.{rng.randint(0, 9)}.{rng.randint(2, 250)} "
                                       f"{n}.{ctx.host}.lan {n}" for n in names]
    move = rng.choice(names[:-1])
    old = next(ln for ln in lines if ln.endswith(f" {move}"))
    new_ip = f"10.{rng.randint(10, 20)}.{rng.randint(0, 9)}.{rng.randint(2, 250)}"
    new = f"{new_ip} {move}.{ctx.host}.lan {move}"
    add_name = rng.choice(["grafana", "vault", "proxy"])
    add = f"10.{rng.randint(0, 9)}.{rng.randint(0, 9)}.{rng.randint(2, 250)} {add_name}.{ctx.host}.lan {add_name}"
    both = rng.random() < 0.5
    parts = [f"{move} moved to {new_ip}: change the address on its line (the line becomes {code(new)})"]
    work = [f"cat {path}", f"sed -i {q1(sed_s(old, new, whole_line=True))} {path}"]
    checks = [command(f"grep -qxF -- {sq(new)} {path} && ! grep -qxF -- {sq(old)} {path}",
                      f"{move} points to {new_ip}")]
    if both:
        parts.append(f"add the line {code(add)} at the end")
        work.append(f"echo {sq(add)} >> {path}")
        checks.append(command(f"grep -qxF -- {sq(add)} {path}", f"{add_name} was added"))
    work.append(f"cat {path}")
    checks.append(_other_lines_check(path, [ln for ln in lines if ln != old]))
    directive = [f"{path} is the hosts file the team's tools read. " + "; ".join(parts) + ". Keep the other lines."]
    return Task(title=f"new address for {move}", directive=directive,
                description="change an address in a hosts file (and maybe add an entry)",
                files=[f(path, "\n".join(lines) + "\n")], checks=checks, work=work)


CONFIG_EDIT = [ce_flat, ce_flat, ce_ini_section, ce_crontab, ce_hosts]

# -- text_replace ----------------------------------------------------------------------------------


def tr_host_swap(ctx: Ctx) -> Task:
    rng = ctx.rng
    svc = rng.choice(["db", "mq", "cache", "ldap", "smtp"])
    dom = rng.choice(["internal", "corp.lan", f"{ctx.host}.lan"])
    old, new = f"{svc}-old.{dom}", f"{svc}-{rng.choice(['new', 'b', '02', 'east'])}.{dom}"
    proj = rng.choice(PROJECTS)
    path = rng.choice([f"~/app/settings.ini", f"~/{proj}/config.yml", f"~/.config/{proj}/env"])
    port = {"db": 5432, "mq": 5672, "cache": 6379, "ldap": 389, "smtp": 25}[svc]
    if path.endswith(".ini"):
        text = (f"[{svc}]\nhost = {old}\nport = {port}\n\n[{svc}_replica]\nhost = {old}\nport = {port + 1}\n\n"
                f"[backup]\n# nightly dumps are pulled from {old} by the backup job\ntarget = backup01.{dom}\n")
    elif path.endswith(".yml"):
        text = (f"{svc}:\n  primary: {old}:{port}\n  fallback: {old}:{port + 1}\nbackup:\n  target: backup01.{dom}\n"
                f"# {old} is also used by the reporting job\n")
    else:
        up = svc.upper()
        text = f"{up}_HOST={old}\n{up}_PORT={port}\n{up}_URL={svc}://{old}:{port}/\nBACKUP_HOST=backup01.{dom}\n"
    other = f"~/{proj}/README" if not path.startswith(f"~/{proj}/") else f"~/{proj}/NOTES"
    other_text = f"The {svc} server used to be {old}.\n"
    files = [f(path, text), f(other, other_text)]
    directive = [f"The {svc} service moved to a new machine. In {path} replace every occurrence of {old} with {new}. "
                 f"Leave everything else as it is (and leave other files alone)."]
    work = [f"cat {path}", f"grep -n {sq(old)} {path}", f"sed -i {q1(sed_s(old, new, glob=True))} {path}",
            f"grep -n {sq(new.split('.')[0])} {path}"]
    return Task(title=f"{old} -> {new}", directive=directive,
                description="replace an old host name everywhere in one config file",
                files=files, checks=[equals(path, text.replace(old, new)), equals(other, other_text)], work=work)


def tr_year(ctx: Ctx) -> Task:
    rng = ctx.rng
    org = rng.choice(["Larkspur Press", "Fenwick and Daughters", "Blue Heron Books", "Northwind Studio",
                      "Acorn Labs"])
    y = rng.randint(2019, 2024)
    root = rng.choice(["~/site/pages", "~/www", "~/docs/site"])
    ext = rng.choice(["html", "md"])
    pages = rng.sample(["index", "about", "books", "contact", "team", "news"], rng.randint(3, 4))
    files, checks = [], []
    old_f = f"Copyright {y} {org}"
    new_f = f"Copyright {y + 1} {org}"
    for p in pages:
        mention = rng.choice([f"First published in {y}.", f"Founded {y - rng.randint(3, 20)}; relaunched {y}.",
                              f"Our {y} catalogue is online.", "Independent since 1998."])
        if ext == "html":
            body = f"<h1>{p.title()}</h1>\n<p>{mention}</p>\n<footer>{old_f}</footer>\n"
        else:
            body = f"# {p.title()}\n\n{mention}\n\n---\n{old_f}\n"
        files.append(f(f"{root}/{p}.{ext}", body))
        checks.append(equals(f"{root}/{p}.{ext}", body.replace(old_f, new_f)))
    directive = [f"Every page under {root} has a footer line {code(old_f)}. Change it to {code(new_f)} on all of "
                 "them. "
                 f"Do not touch other mentions of {y} (publication dates must stay as they are)."]
    work = [f"grep -n {y} {root}/*.{ext}", f"sed -i {q1(sed_s(old_f, new_f))} {root}/*.{ext}",
            f"grep -n Copyright {root}/*.{ext}"]
    return Task(title=f"footer still says {y}", directive=directive,
                description="bump the copyright year in every page, leaving other years alone",
                files=files, checks=checks, work=work)


def tr_rename(ctx: Ctx) -> Task:
    rng = ctx.rng
    lang = rng.choice(["py", "js", "sh"])
    old, new, similar = rng.choice([("calc_total", "compute_total", "calc_total_tax"),
                                    ("load_cfg", "load_config", "load_cfg_defaults"),
                                    ("fetch_user", "get_user", "fetch_user_roles"),
                                    ("send_mail", "send_email", "send_mail_batch")])
    path = f"~/src/{rng.choice(['invoice', 'app', 'tools', 'main'])}.{lang}"
    if lang == "py":
        text = (f"def {old}(items):\n    return sum(items)\n\n\ndef {similar}(items, rate):\n"
                f"    return round({old}(items) * rate, 2)\n\n\ndef summary(items, rate):\n"
                f"    net = {old}(items)\n    return f\"net {{net}} extra {{{similar}(items, rate)}}\"\n")
    elif lang == "js":
        text = (f"function {old}(items) {{\n  return items.reduce((a, b) => a + b, 0);\n}}\n\n"
                f"function {similar}(items, rate) {{\n  return {old}(items) * rate;\n}}\n\n"
                f"module.exports = {{ {old}, {similar} }};\nconsole.log({old}([1, 2, 3]));\n")
    else:
        text = (f"#!/bin/sh\n{old}() {{\n  echo \"$@\" | tr ' ' '\\n' | paste -sd+ | bc\n}}\n\n"
                f"{similar}() {{\n  echo \"$({old} \"$@\") * 1.2\" | bc\n}}\n\n{old} 1 2 3\n{similar} 4 5\n")
    files = [f(path, text, "0755" if lang == "sh" else None)]
    expected = re.sub(rf"\b{old}\b", new, text)
    directive = [f"Rename {old} to {new} in {path}: the definition and every use. {similar} is a different function: "
                 "leave it alone."]
    sed = f"s/{old}\\([^_a-z]\\)/{new}\\1/g"
    work = [f"grep -n {old} {path}", f"sed -i {q1(sed)} {path}", f"grep -n {new.split('_')[0]} {path}"]
    return Task(title=f"rename {old}", directive=directive,
                description="rename a function at its definition and uses without touching a similar name",
                files=files, checks=[equals(path, expected)], work=work)


def tr_placeholder(ctx: Ctx) -> Task:
    rng = ctx.rng
    version = f"{rng.randint(1, 5)}.{rng.randint(0, 12)}.{rng.randint(0, 9)}"
    ph, value, what = rng.choice([("__VERSION__", version, "version"),
                                  ("@RELEASE_DATE@", when(rng).date().isoformat(), "release date"),
                                  ("{{HOSTNAME}}", f"{ctx.host}.example.net", "host name")])
    proj = rng.choice(PROJECTS)
    root = rng.choice(["~/release", f"~/{proj}/dist", "~/deploy"])
    a = (f"# Release notes ({ph})\n\n- faster start-up\n- fixes the CSV export (#{rng.randint(100, 999)})\n\n"
         f"Install with: pip install {proj}=={ph}\n" if what == "version" else
         f"# {proj}\n\nReleased on {ph}.\nSee https://{proj}.example.net/notes\n" if what == "release date" else
         f"server_name {ph};\nroot /srv/{proj};\n# generated for {ph}\n")
    b = f"name={proj}\n{what.replace(' ', '_')}={ph}\nchannel=stable\n"
    n1, n2 = rng.choice([("NOTES.md", "manifest.txt"), ("README", "build.env"), ("site.conf", "meta.txt")])
    files = [f(f"{root}/{n1}", a), f(f"{root}/{n2}", b),
             f(f"{root}/CHANGELOG", f"{ph} is filled in at release time.\n")]
    directive = [f"The release files still carry the placeholder {ph}. Replace it with {value} everywhere in "
                 f"{root}/{n1} and {root}/{n2}. Leave {root}/CHANGELOG as it is."]
    work = [f"grep -n {sq(ph)} {root}/*", f"sed -i {q1(sed_s(ph, value, glob=True))} {root}/{n1} {root}/{n2}",
            f"cat {root}/{n1} {root}/{n2}"]
    checks = [equals(f"{root}/{n1}", a.replace(ph, value)), equals(f"{root}/{n2}", b.replace(ph, value)),
              equals(f"{root}/CHANGELOG", f"{ph} is filled in at release time.\n")]
    return Task(title=f"stamp {what} {value}", directive=directive,
                description="fill in a placeholder in two files, leaving a third alone", files=files,
                checks=checks, work=work)


def tr_typo(ctx: Ctx) -> Task:
    rng = ctx.rng
    bad, good = rng.choice([("recieve", "receive"), ("seperate", "separate"), ("occured", "occurred"),
                            ("definately", "definitely"), ("adress", "address"), ("enviroment", "environment")])
    root = rng.choice(["~/docs", "~/wiki", "~/handbook"])
    pages = rng.sample(["setup", "faq", "billing", "onboarding", "support", "release"], 4)
    wrong = {"recieve": ["You will recieve an e-mail once the account is ready.",
                         "Customers recieve a receipt; staff recieve a copy."],
             "seperate": ["Keep a seperate copy of the key.", "Use seperate folders for seperate clients."],
             "occured": ["Note the time the error occured.", "If a crash occured, the log says when it occured."],
             "definately": ["You definately need a backup first.", "This is definately the most common question."],
             "adress": ["Send the invoice to the billing adress.", "Check the adress; the old adress bounces."],
             "enviroment": ["Set up the enviroment first.", "The test enviroment mirrors the live enviroment."]}[bad]
    fine = ["Ask in the team channel if you are stuck.", "Nothing else changes for existing users.",
            "See the FAQ for the details.", f"Last reviewed by {rng.choice(COLLEAGUES)}."]
    files, checks = [], []
    for i, p in enumerate(pages):
        body_lines = rng.sample(wrong, rng.randint(1, 2)) + rng.sample(fine, rng.randint(1, 2))
        rng.shuffle(body_lines)
        if i == len(pages) - 1:
            body_lines = ["Everything here is spelled right.", rng.choice(fine)]
        body = "\n".join([f"# {p.title()}", ""] + body_lines) + "\n"
        files.append(f(f"{root}/{p}.md", body))
        checks.append(equals(f"{root}/{p}.md", body.replace(bad, good)))
    if all(bad not in x["content"] for x in files):
        files[0]["content"] += f"We {bad} it twice: {bad}.\n"
        checks[0] = equals(files[0]["path"], files[0]["content"].replace(bad, good))
    directive = [f"The handbook in {root} misspells {good} as {bad!r} in several places (sometimes twice on one "
                 "line). "
                 f"Fix every occurrence in the .md files there."]
    work = [f"grep -n {bad} {root}/*.md", f"sed -i 's/{bad}/{good}/g' {root}/*.md", f"grep -c {good} {root}/*.md"]
    return Task(title=f"typo: {bad}", directive=directive,
                description="fix a misspelling everywhere in a folder of markdown files", files=files,
                checks=checks, work=work)


def tr_domain(ctx: Ctx) -> Task:
    rng = ctx.rng
    company = rng.choice(["acme", "globex", "initech", "hooli"])
    old, new = f"{company}-old.com", f"{company}.com"
    path = rng.choice(["~/crm/contacts.csv", "~/data/staff.csv", "~/lists/team.csv"])
    rows = ["name,email,website"]
    for a, b, _ in people(rng, rng.randint(3, 6)):
        rows.append(f"{a} {b},{a.lower()}@{old},https://{old}/{a.lower()}")
    text = "\n".join(rows) + "\n"
    expected = text.replace(f"@{old}", f"@{new}")
    directive = [f"The company's mail moved from @{old} to @{new}. In {path}, change the e-mail domain of every "
                 f"address from {old} to {new}. The website column stays as it is (that site did not move)."]
    work = [f"cat {path}", f"sed -i {q1(sed_s('@' + old, '@' + new, glob=True))} {path}", f"cat {path}"]
    return Task(title="new mail domain", directive=directive,
                description="change the e-mail domain in a CSV without touching the similar website column",
                files=[f(path, text)], checks=[equals(path, expected)], work=work)


TEXT_REPLACE = [tr_host_swap, tr_year, tr_rename, tr_placeholder, tr_typo, tr_domain]

# -- permissions -----------------------------------------------------------------------------------

_WORDS = {"0755": "readable and executable by everyone, writable only by you",
          "0750": "readable and executable by you and your group, writable only by you, nothing for others",
          "0700": "readable, writable and executable by you only",
          "0644": "readable by everyone, writable only by you",
          "0640": "readable by you and your group, writable only by you, nothing for others",
          "0600": "readable and writable by you only",
          "0444": "read-only for everyone (you included)",
          "0775": "readable, writable and executable by you and your group, readable and executable by others",
          "0664": "readable and writable by you and your group, readable by others"}


def _sym(m: str) -> str:
    bits = int(m, 8)
    out = ""
    for shift in (6, 3, 0):
        v = (bits >> shift) & 7
        out += ("r" if v & 4 else "-") + ("w" if v & 2 else "-") + ("x" if v & 1 else "-")
    return out


def _say(rng, m: str) -> str:
    how = rng.randrange(3)
    if how == 0:
        return f"mode {m[1:]}"
    if how == 1:
        return _sym(m)
    return _WORDS[m]


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _make(rng, subject: str, m: str) -> str:
    """A clause asking for mode `m` on `subject`, in octal, symbolic or plain words."""
    how = rng.randrange(3)
    if how == 0:
        return f"set {subject} to mode {m[1:]}"
    if how == 1:
        return f"set {subject} to {_sym(m)}"
    return f"make {subject} {_WORDS[m]}"


def pm_exec(ctx: Ctx) -> Task:
    rng = ctx.rng
    name = rng.choice(["deploy.sh", "backup.sh", "report", "sync.sh", "build.sh", "rotate-logs"])
    folder = rng.choice(["~/bin", "~/scripts", f"~/{rng.choice(PROJECTS)}/tools"])
    path = f"{folder}/{name}"
    target = rng.choice(["0755", "0750", "0700"])
    start = rng.choice(["0644", "0640", "0600", "0664"])
    purpose = name.split(".")[0].split("-")[0]
    files = [f(path, shell_script(rng, purpose), start), f(f"{folder}/README", f"scripts for {ctx.host}\n", "0644")]
    who = {"0755": "executable by everyone", "0750": "executable by you and your group (not by others)",
           "0700": "executable by you only"}[target]
    directive = [f"Make {path} {who}: in full, {_say(rng, target)}."]
    checks = [mode(path, target), mode(f"{folder}/README", "0644", "the README is unchanged")]
    work = [f"ls -l {folder}", f"chmod {target[1:]} {path}", f"ls -l {path}"]
    return Task(title=f"make {name} executable", directive=directive,
                description=f"make a script executable with mode {target}", files=files, checks=checks, work=work)


def pm_ssh(ctx: Ctx) -> Task:
    rng = ctx.rng
    key = rng.choice(["id_ed25519", "id_rsa", "id_ecdsa"])
    files = [d("~/.ssh", rng.choice(["0755", "0775"])),
             f(f"~/.ssh/{key}", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"
                                "AAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----\n",
               rng.choice(["0644", "0664", "0640"])),
             f(f"~/.ssh/{key}.pub", f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGRlbW8 {ctx.user}@{ctx.host}\n", "0644"),
             f("~/.ssh/known_hosts", f"git.{ctx.host}.lan ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHNlcnZlcg\n", "0644")]
    extra = rng.choice([[], ["config"], ["authorized_keys"], ["config", "authorized_keys"]])
    bodies = {"config": f"Host git\n    HostName git.{ctx.host}.lan\n    User {ctx.user}\n",
              "authorized_keys": f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG9mZmljZQ {ctx.user}@laptop\n"}
    files += [f(f"~/.ssh/{x}", bodies[x], rng.choice(["0664", "0666", "0644"])) for x in extra]
    directive = [f"ssh to the git server refuses my key (\"UNPROTECTED PRIVATE KEY FILE!\"). The private key "
                 f"~/.ssh/{key} must be {_say(rng, '0600')}, and ~/.ssh itself must be accessible by me only "
                 f"({_sym('0700')})."]
    if extra:
        directive.append(f"ssh is just as picky about {' and '.join('~/.ssh/' + x for x in extra)}: make "
                         f"{'it' if len(extra) == 1 else 'them'} {_sym('0600')} too.")
    directive.append("The public key and known_hosts stay readable by everyone.")
    checks = [mode(f"~/.ssh/{key}", "0600"), mode("~/.ssh", "0700")] + [mode(f"~/.ssh/{x}", "0600") for x in extra]
    checks += [mode(f"~/.ssh/{key}.pub", "0644", "the public key stays readable"), exists("~/.ssh/known_hosts")]
    work = ["ls -la ~/.ssh", f"chmod 600 ~/.ssh/{key}" + "".join(f" ~/.ssh/{x}" for x in extra), "chmod 700 ~/.ssh",
            "ls -la ~/.ssh"]
    return Task(title="ssh key permissions", directive=directive,
                description="tighten the permissions of an ssh private key and ~/.ssh", files=files,
                checks=checks, work=work)


def pm_publish(ctx: Ctx) -> Task:
    rng = ctx.rng
    root = rng.choice(["~/shared/reports", "~/public/docs", "~/share/minutes"])
    names = rng.sample(["q1.csv", "q2.csv", "q3.csv", "summary.txt", "minutes-0412.txt", "plan.md"], 3)
    private = rng.choice(["salaries.csv", "reviews.txt", "passwords.txt"])
    files = [d(root, "0700")] + [f(f"{root}/{n}", f"{n}\n", rng.choice(["0600", "0640"])) for n in names]
    files.append(f(f"{root}/{private}", "confidential\n", rng.choice(["0644", "0640", "0664"])))
    directive = [f"Publish {root} for the whole team. {_cap(_make(rng, 'the folder itself', '0755'))}. "
                 f"{_cap(_make(rng, 'the files in it', '0644'))}, except {private}: "
                 f"{_make(rng, 'that one', '0600')}."]
    checks = [mode(root, "0755")] + [mode(f"{root}/{n}", "0644") for n in names] + [mode(f"{root}/{private}", "0600")]
    work = [f"ls -la {root}", f"chmod 755 {root}", f"chmod 644 {root}/*", f"chmod 600 {root}/{private}",
            f"ls -la {root}"]
    return Task(title=f"publish {root.rsplit('/', 1)[-1]}", directive=directive,
                description="open a folder to everyone while keeping one file private", files=files,
                checks=checks, work=work)


def pm_scripts(ctx: Ctx) -> Task:
    rng = ctx.rng
    root = rng.choice(["~/tools", "~/ops/scripts", "~/bin"])
    target = rng.choice(["0750", "0755", "0700"])
    scripts = rng.sample(["backup", "rotate", "report", "sync", "cleanup", "check"], 3)
    data = rng.sample(["README", "hosts.list", "notes.txt", "config.ini"], 2)
    files = [f(f"{root}/{s}.sh", shell_script(rng, s), rng.choice(["0644", "0777", "0700", "0600"])) for s in scripts]
    files += [f(f"{root}/{n}", f"{n} for {ctx.host}\n", rng.choice(["0755", "0775", "0777"])) for n in data]
    directive = [f"The scripts in {root} have inconsistent permissions. "
                 f"{_cap(_make(rng, 'every *.sh file there', target))}. Files that are not .sh scripts must "
                 f"not be executable by anyone: {_make(rng, 'them', '0644')}."]
    checks = [mode(f"{root}/{s}.sh", target) for s in scripts] + [mode(f"{root}/{n}", "0644") for n in data]
    work = [f"ls -l {root}", f"chmod {target[1:]} {root}/*.sh", f"chmod 644 " + " ".join(f"{root}/{n}" for n in data),
            f"ls -l {root}"]
    return Task(title="script permissions", directive=directive,
                description="make scripts executable for some and data files non-executable", files=files,
                checks=checks, work=work)


def pm_secrets(ctx: Ctx) -> Task:
    rng = ctx.rng
    proj = rng.choice(PROJECTS)
    root = rng.choice([f"~/{proj}", f"~/.config/{proj}", f"~/srv/{proj}"])
    target = rng.choice(["0600", "0640"])
    secrets = rng.sample([(".env", f"DB_PASSWORD=s3cret-{rng.randint(100, 999)}\n"),
                          ("credentials.ini", "[api]\ntoken = not-a-real-token\n"),
                          ("db.pass", "hunter2\n"), ("smtp.secret", "password=changeme\n")], 2)
    public = [("README.md", f"# {proj}\n"), ("settings.ini", "[app]\nworkers = 4\n")]
    files = [f(f"{root}/{n}", c, rng.choice(["0644", "0664", "0666"])) for n, c in secrets]
    files += [f(f"{root}/{n}", c, "0644") for n, c in public]
    listing = " and ".join(n for n, _ in secrets)
    directive = [f"The security scan flagged {root}: the files holding passwords ({listing}) are readable by "
                 f"everyone. Make them {_say(rng, target)}. The other files there stay as they are."]
    checks = [mode(f"{root}/{n}", target) for n, _ in secrets] + [mode(f"{root}/{n}", "0644") for n, _ in public]
    work = [f"ls -la {root}", f"chmod {target[1:]} " + " ".join(f"{root}/{n}" for n, _ in secrets), f"ls -la {root}"]
    return Task(title="secrets are world-readable", directive=directive,
                description="restrict files holding passwords, keeping others as they are", files=files,
                checks=checks, work=work)


def pm_tree(ctx: Ctx) -> Task:
    rng = ctx.rng
    root = rng.choice(["~/www", "~/public_html", f"~/sites/{rng.choice(PROJECTS)}"])
    dmode, fmode = rng.choice([("0755", "0644"), ("0775", "0664"), ("0750", "0640")])
    dirs = [root, f"{root}/css", f"{root}/img", f"{root}/blog", f"{root}/blog/2024"]
    files = [d(p, rng.choice(["0700", "0777", "0711", "0755" if dmode != "0755" else "0700"])) for p in dirs]
    fl = [f"{root}/index.html", f"{root}/css/site.css", f"{root}/img/logo.svg", f"{root}/blog/2024/hello.html"]
    files += [f(p, f"<!-- {p.rsplit('/', 1)[-1]} -->\n", rng.choice(["0600", "0666", "0755", "0700"])) for p in fl]
    # at least one of each kind is wrong to begin with
    files[0]["mode"] = "0700"
    files[len(dirs)]["mode"] = "0600"
    directive = [f"The web server cannot read parts of {root}. Under {root} (itself included), "
                 f"{_make(rng, 'every directory', dmode)}; and {_make(rng, 'every file', fmode)}."]
    checks = [mode(p, dmode) for p in dirs] + [mode(p, fmode) for p in fl]
    work = [f"ls -lR {root}", f"find {root} -type d -exec chmod {dmode[1:]} {{}} +",
            f"find {root} -type f -exec chmod {fmode[1:]} {{}} +", f"ls -lR {root}"]
    return Task(title=f"fix {root} permissions", directive=directive,
                description="set directory and file modes throughout a tree", files=files, checks=checks, work=work)


def pm_readonly(ctx: Ctx) -> Task:
    rng = ctx.rng
    root = rng.choice(["~/contracts", "~/legal/signed", "~/archive/final"])
    signed = [f"{c}-signed.pdf" for c in rng.sample(["acme", "globex", "initech", "hooli", "stark"], 3)]
    drafts = [f"{c}-draft.odt" for c in rng.sample(["wayne", "umbrella"], 1)]
    files = [f(f"{root}/{n}", "%PDF-1.4 signed\n", rng.choice(["0644", "0664", "0600"])) for n in signed]
    files += [f(f"{root}/{n}", "draft\n", "0644") for n in drafts]
    directive = [f"Nobody may overwrite the signed contracts by accident: "
                 f"{_make(rng, f'every *-signed.pdf in {root}', '0444')}. The drafts stay editable ({_sym('0644')})."]
    checks = [mode(f"{root}/{n}", "0444") for n in signed] + [mode(f"{root}/{n}", "0644") for n in drafts]
    work = [f"ls -l {root}", f"chmod 444 {root}/*-signed.pdf", f"ls -l {root}"]
    return Task(title="protect signed contracts", directive=directive,
                description="make some files read-only for everyone", files=files, checks=checks, work=work)


PERMISSIONS = [pm_exec, pm_ssh, pm_publish, pm_scripts, pm_secrets, pm_tree, pm_readonly]

__all__ = ["CONFIG_EDIT", "PERMISSIONS", "TEXT_REPLACE"]
