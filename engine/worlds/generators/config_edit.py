"""config_edit: change, add, remove or comment out settings in a config file, keeping every other line.

Variants: a flat env, YAML or conf file; one section of an INI file where the key also appears in
another; jobs in a crontab; an address in a hosts file.
"""
from __future__ import annotations

from random import Random

from teletype.engine.worlds.generators.common import Ctx, Task, code, command, equals, f, q1, sed_s, sq
from teletype.engine.worlds.generators.world import COLLEAGUES, PROJECTS

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


def _replace(text: str, old: str, new: str, line_cmd: str, path: str) -> str:
    """The sed command for one changed line, in either of the forms people type.

    `line_cmd` replaces the whole line by an anchored pattern. Where the changed part `old` occurs
    exactly once in the file's current `text`, about half of the reference solutions replace just
    that substring instead (`s/old/new/`, sometimes with `g`), the way most people edit a value.
    Both forms give the same file. The choice is drawn from a generator seeded by the edit itself,
    so it consumes nothing from the world's generator and the world stays the same.
    """
    style = Random(f"config_edit|{path}|{old}|{new}")
    if text.count(old) != 1 or style.random() < 0.5:
        return line_cmd
    return f"sed -i {q1(sed_s(old, new, glob=style.random() < 0.5))} {path}"


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
            before = "\n".join(new_lines)
            new_lines[new_lines.index(old)] = new
            directive_parts.append(f"change {k} from {values[k]} to {v} (the line becomes {code(new)})")
            anchored = f"sed -i {q1(sed_s(_KEYPAT[fmt](k), new, whole_line=True, regex=True))} {path}"
            work.append(_replace(before, old, new, anchored, path))
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
            work.append(_replace("\n".join(lines), old, new, f"sed -i {q1(sed_s(old, new, whole_line=True))} {path}",
                                 path))
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
    old_ip = old.split(" ", 1)[0]
    work = [f"cat {path}", _replace("\n".join(lines), old_ip, new_ip,
                                    f"sed -i {q1(sed_s(old, new, whole_line=True))} {path}", path)]
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

__all__ = ["CONFIG_EDIT"]
