"""The generated world: name pools (users, hosts, people, projects, services, teams) and realistic
content (application and access logs, CSVs, notes, shell scripts, login messages).

Everything here draws only from the `random.Random` it is given, so the same seed gives the same
bytes. No sets are iterated (their order varies between runs); lists are sorted where order matters.
"""
from __future__ import annotations

import datetime as _dt
from random import Random

USERS = [
    "alice", "amir", "bea", "bob", "carol", "chen", "dana", "dmitri", "emil", "erin", "farah",
    "fatima", "felix", "goran", "gus", "hana", "helga", "ines", "ivan", "jonas", "jun", "kemal",
    "kira", "lars", "lena", "luis", "mara", "mei", "nadia", "nils", "noor", "olga", "oscar",
    "paula", "pavel", "priya", "quinn", "rosa", "ruth", "sami", "sven", "tariq", "theo", "ugo",
    "uma", "vera", "viktor", "wanda", "wei", "xiao", "yara", "yusuf", "zeno", "zoe", "ops",
    "deploy", "build", "svc-ci", "ada", "ming",
]

HOSTS = [
    "atlas", "quill", "forge", "harbor", "kiln", "orchard", "ledger", "relay", "vault", "pantry",
    "nook", "beacon", "cobalt", "ember", "fjord", "gantry", "hollow", "ironwood", "juniper",
    "kestrel", "lumen", "meadow", "nimbus", "onyx", "pier-2", "quarry", "rook", "saltmarsh",
    "tundra", "umber", "vesper", "willow", "yarrow", "zephyr", "build01", "web-03", "ci-runner-4",
    "mail-2", "gate-3", "obs-2", "stage-7", "dev-box", "lab7", "sek", "halo", "mill", "depot",
    "pressroom", "darkroom", "jukebox", "launchpad", "conveyor", "abacus", "scratch",
]

FIRST = ["Ada", "Alan", "Grace", "Katherine", "Linus", "Margaret", "Dennis", "Barbara", "Ken",
         "Frances", "Edsger", "Radia", "John", "Hedy", "Tim", "Sophie", "Donald", "Anita", "Niklaus",
         "Jean", "Leslie", "Mary", "Claude", "Annie", "Brian", "Karen", "Yukihiro", "Guido",
         "Joan", "Robin", "Ivan", "Shafi", "Lynn", "Carl", "Elena", "Omar", "Priya", "Tomas"]
LAST = ["Lovelace", "Turing", "Hopper", "Johnson", "Torvalds", "Hamilton", "Ritchie", "Liskov",
        "Thompson", "Allen", "Dijkstra", "Perlman", "Backus", "Lamarr", "Berners-Lee", "Wilson",
        "Knuth", "Borg", "Wirth", "Sammet", "Lamport", "Keller", "Shannon", "Easley", "Kernighan",
        "Jones", "Matsumoto", "Rossum", "Clarke", "Milner", "Sutherland", "Goldwasser", "Conway",
        "Hewitt", "Petrova", "Haddad", "Raman", "Novak"]
DOMAINS = ["example.org", "example.net", "example.com", "corp.example", "mail.example.org"]
PROJECTS = ["weather", "ledger", "atlas-web", "billing", "inventory", "tracker", "newsletter",
            "kiosk", "gallery", "pipeline", "scheduler", "webshop", "wiki", "metrics", "intranet",
            "payroll", "booking", "catalog", "helpdesk", "mailer"]
SERVICES = ["auth", "billing", "metrics", "search", "mailer", "gateway", "queue", "scheduler",
            "cache", "reports", "uploads", "thumbnails", "notify", "ledger", "export", "api"]
COLLEAGUES = ["Pete", "Anja", "Marcus", "Lin", "Oksana", "Ravi", "Julia", "Tom", "Ines", "Kofi",
              "Sara", "Bjorn", "Mehmet", "Chloe"]
TEAMS = ["ops", "infra", "security", "finance", "support", "platform", "data", "web", "it-helpdesk"]
DISTROS = ["Debian GNU/Linux 12 (bookworm)", "Ubuntu 22.04.4 LTS", "Alpine Linux v3.19",
           "Rocky Linux 9.3 (Blue Onyx)", "Debian GNU/Linux 11 (bullseye)"]
WORDS = ["amber", "birch", "cedar", "delta", "ember", "falcon", "garnet", "harbor", "indigo",
         "juniper", "kelp", "lotus", "maple", "nectar", "opal", "pepper", "quartz", "raven",
         "sable", "tulip", "umber", "violet", "willow", "yucca", "zinc"]

_BASE = _dt.datetime(2023, 1, 2, 0, 0, 0)


def when(rng: Random, days: int = 800) -> _dt.datetime:
    return _BASE + _dt.timedelta(days=rng.randrange(days), seconds=rng.randrange(86400))


def ip(rng: Random, private: bool = True) -> str:
    if private:
        return rng.choice([f"10.{rng.randint(0, 60)}.{rng.randint(0, 254)}.{rng.randint(2, 254)}",
                           f"192.168.{rng.randint(0, 20)}.{rng.randint(2, 254)}",
                           f"172.16.{rng.randint(0, 31)}.{rng.randint(2, 254)}"])
    return f"{rng.randint(23, 212)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def last_login(rng: Random) -> str:
    t = when(rng)
    stamp = t.strftime("%a %b ") + f"{t.day:2d}" + t.strftime(" %H:%M:%S %Y")
    where = rng.choice([f"from {ip(rng)}", f"from {ip(rng)}", f"on pts/{rng.randint(0, 9)}", "on tty1"])
    return f"Last login: {stamp} {where}"


def neutral_motd(rng: Random, host: str) -> str:
    """A login message that says nothing about the task (or nothing at all)."""
    kind = rng.randrange(6)
    if kind == 0:
        return ""
    if kind == 1:
        return last_login(rng)
    if kind == 2:
        return f"{rng.choice(DISTROS)}\n{last_login(rng)}"
    if kind == 3:
        return f"{host} -- authorized use only. Activity may be monitored."
    if kind == 4:
        return (f"{rng.choice(DISTROS)}\n\nThe programs included with this system are free software.\n"
                f"{last_login(rng)}")
    return f"Welcome to {host}.\nScheduled maintenance: {when(rng).strftime('%a %d %b')} 02:00-04:00 UTC."


def person(rng: Random) -> tuple[str, str]:
    return rng.choice(FIRST), rng.choice(LAST)


def people(rng: Random, n: int) -> list[tuple[str, str, str]]:
    """n distinct people: (first, last, e-mail)."""
    out, seen = [], []
    while len(out) < n:
        a, b = person(rng)
        if (a, b) in seen or any(a == x[0] for x in out):
            continue
        seen.append((a, b))
        mail = f"{a.lower()}.{b.lower().replace('-', '')}@{rng.choice(DOMAINS)}"
        out.append((a, b, mail))
    return out


def distinct(rng: Random, pool: list, n: int) -> list:
    return rng.sample(pool, n)


def app_log(rng: Random, n: int, app: str, start: _dt.datetime | None = None,
            errors: list[str] | None = None) -> str:
    """Application log lines: ISO time, level, message."""
    t = start or when(rng)
    msgs_info = ["started, pid {p}", "cache warmed, {k} keys", "request {r} done in {ms}ms",
                 "health check ok", "connected to db", "reloaded configuration",
                 "scheduled job {j} finished", "listening on :{port}"]
    msgs_warn = ["slow query {ms}ms", "retrying upstream ({a}/3)", "queue depth {k}",
                 "certificate expires in {d} days"]
    msgs_err = ["upstream timeout (route /{route})", "bad request: missing field \"{fld}\"",
                "disk almost full ({pct}%)", "connection refused by {svc}"]
    lines = []
    for _ in range(n):
        t += _dt.timedelta(seconds=rng.randint(1, 400))
        r = rng.random()
        fill = dict(p=rng.randint(300, 9000), k=rng.randint(10, 20000), r=f"R{rng.randint(1000, 9999)}",
                    ms=rng.randint(3, 2400), j=rng.choice(["rotate", "digest", "sync", "backup"]),
                    port=rng.choice([8080, 8000, 9090, 3000]), a=rng.randint(1, 3), d=rng.randint(2, 30),
                    route=rng.choice(["orders", "login", "cart", "search"]),
                    fld=rng.choice(["qty", "sku", "email", "id"]), pct=rng.randint(90, 99),
                    svc=rng.choice(SERVICES))
        if errors is not None and r < 0.25:
            lvl, msg = "ERROR", f"{rng.choice(errors)} " + rng.choice(msgs_err).format(**fill)
        elif r < 0.2:
            lvl, msg = "WARN ", rng.choice(msgs_warn).format(**fill)
        else:
            lvl, msg = "INFO ", rng.choice(msgs_info).format(**fill)
        lines.append(f"{t.strftime('%Y-%m-%dT%H:%M:%S')} {app} {lvl} {msg}")
    return "\n".join(lines) + "\n"


def access_log(rng: Random, n: int) -> str:
    t = when(rng)
    paths = ["/", "/login", "/api/orders", "/static/app.js", "/robots.txt", "/favicon.ico",
             "/search?q=tea", "/cart", "/api/health"]
    out = []
    for _ in range(n):
        t += _dt.timedelta(seconds=rng.randint(1, 90))
        meth = rng.choice(["GET", "GET", "GET", "POST"])
        status = rng.choice([200, 200, 200, 301, 302, 404, 500])
        out.append(f"{ip(rng)} - - [{t.strftime('%d/%b/%Y:%H:%M:%S')} +0000] \"{meth} {rng.choice(paths)} "
                   f"HTTP/1.1\" {status} {rng.randint(120, 40000)}")
    return "\n".join(out) + "\n"


def csv_sales(rng: Random, n: int) -> str:
    rows = ["date,region,units,revenue"]
    t = when(rng)
    for _ in range(n):
        t += _dt.timedelta(days=rng.randint(1, 6))
        u = rng.randint(1, 90)
        rows.append(f"{t.date()},{rng.choice(['north', 'south', 'east', 'west'])},{u},{u * rng.randint(9, 60)}.00")
    return "\n".join(rows) + "\n"


def note_text(rng: Random, topic: str) -> str:
    lines = [f"# {topic}", ""]
    pool = [f"talk to {rng.choice(COLLEAGUES)} about the {rng.choice(PROJECTS)} release",
            f"order {rng.randint(2, 12)} new {rng.choice(['keyboards', 'monitors', 'cables', 'chairs'])}",
            f"review the {rng.choice(SERVICES)} dashboards",
            f"book the room for {rng.choice(['Monday', 'Tuesday', 'Thursday'])}",
            "renew the TLS certificate", "update the on-call rota", "clean up the shared drive",
            f"ask {rng.choice(TEAMS)} about the budget", "read the incident report"]
    for item in rng.sample(pool, rng.randint(2, 5)):
        lines.append(f"- {item}")
    return "\n".join(lines) + "\n"


def shell_script(rng: Random, purpose: str) -> str:
    bodies = {
        "backup": "#!/bin/sh\nset -e\ntar czf \"/tmp/backup-$(date +%F).tgz\" \"$HOME/data\"\n",
        "rotate": "#!/bin/sh\nfind \"$HOME/logs\" -name '*.log' -size +1M -exec gzip {} \\;\n",
        "report": "#!/bin/sh\necho \"report for $(date +%F)\"\nwc -l \"$HOME\"/data/*.csv\n",
        "deploy": "#!/bin/sh\nset -e\necho deploying\nrsync -a build/ \"$TARGET\"/\n",
        "cleanup": "#!/bin/sh\nrm -f \"$HOME\"/tmp/*.tmp\n",
        "sync": "#!/bin/sh\nrsync -az \"$HOME/share/\" backup01:/srv/share/\n",
        "check": "#!/bin/sh\ncurl -fsS http://localhost:8080/health || echo unhealthy\n",
        "build": "#!/bin/sh\nset -e\nmake -C \"$HOME/src\" all\n",
    }
    return bodies.get(purpose, f"#!/bin/sh\necho {purpose}\n")
