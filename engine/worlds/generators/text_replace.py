"""text_replace: replace text exactly where asked and nowhere else.

Variants: a host renamed in one config file; a copyright year in every page; a function renamed
without touching a similar name; a placeholder filled in two of three files; a misspelling across
markdown files; an e-mail domain in a CSV beside a similar website column.
"""
from __future__ import annotations

import re

from teletype.engine.worlds.generators.common import Ctx, Task, code, equals, f, q1, sed_s, sq
from teletype.engine.worlds.generators.world import COLLEAGUES, PROJECTS, people, when


def tr_host_swap(ctx: Ctx) -> Task:
    rng = ctx.rng
    svc = rng.choice(["db", "mq", "cache", "ldap", "smtp"])
    dom = rng.choice(["internal", "corp.lan", f"{ctx.host}.lan"])
    old, new = f"{svc}-old.{dom}", f"{svc}-{rng.choice(['new', 'b', '02', 'east'])}.{dom}"
    proj = rng.choice(PROJECTS)
    path = rng.choice(["~/app/settings.ini", f"~/{proj}/config.yml", f"~/.config/{proj}/env"])
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

__all__ = ["TEXT_REPLACE"]
