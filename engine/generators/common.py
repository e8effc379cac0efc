"""What every scenario generator shares: the Task a generator builds, the world's name pools and
realistic content, check and shell-quoting helpers, and a small TOML writer.

Everything here draws only from the `random.Random` it is given, so the same seed gives the same
bytes. No sets are iterated (their order varies between runs); lists are sorted where order matters.
"""
from __future__ import annotations

import datetime as _dt
import re
import shlex
import textwrap
from dataclasses import dataclass, field
from random import Random

# -- the Task a generator builds ---------------------------------------------------------------------


@dataclass
class Ctx:
    """The world a task is built in: who logs in where."""

    rng: Random
    user: str
    host: str

    @property
    def home(self) -> str:
        return f"/home/{self.user}"


@dataclass
class Task:
    """One scenario before it is announced: the work, the world, the checks and the reference work."""

    title: str
    """A short summary (a ticket's subject line)."""
    directive: list[str]
    """The assignment as paragraphs; wrapped when shown. A paragraph with a newline or leading
    spaces is kept verbatim (a list of exact lines, a table)."""
    description: str
    """For people (the scenario's [scenario] description)."""
    files: list[dict] = field(default_factory=list)
    checks: list[dict] = field(default_factory=list)
    work: list[str] = field(default_factory=list)
    """The reference commands after the directive was found (inspection, the work, verification)."""
    expect: str = "exit"
    panic: str = ""
    """The reason the reference gives with `panic` (expect = "panic")."""
    env: dict[str, str] = field(default_factory=dict)
    provider: dict[str, str] = field(default_factory=dict)
    """Programs the task itself needs on the PATH (a deploy tool), beside any task provider."""
    motd_note: str = ""
    """A line the motd must carry whatever the announcement (a freeze notice)."""
    closable: bool = True
    """Whether a provider announcement may ask to mark the item done afterwards."""


# -- TOML ------------------------------------------------------------------------------------------

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _key(k: str) -> str:
    return k if _BARE_KEY.fullmatch(k) else _basic(k)


def _basic(s: str) -> str:
    out = []
    for ch in s:
        o = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _literal_ok(s: str) -> bool:
    return ("'''" not in s and not s.endswith("'")
            and all(c in "\t\n" or (ord(c) >= 0x20 and ord(c) != 0x7F) for c in s))


def _multiline(s: str) -> str:
    if _literal_ok(s):
        return "'''\n" + s + "'''"
    out = []
    for ch in s:
        o = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch in "\n":
            out.append(ch)
        elif ch == "\t":
            out.append("\\t")
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    return '"""\n' + "".join(out) + '"""'


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        # one line (with or without its newline) reads best as a basic string
        return _multiline(v) if "\n" in v.rstrip("\n") or v.count("\n") > 1 else _basic(v)
    if isinstance(v, list):
        if not v:
            return "[]"
        return "[\n" + "".join(f"  {toml_value(x)},\n" for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dumps(doc: dict, header: str = "") -> str:
    """A scenario document as TOML: tables of scalars, arrays of tables, one array of strings.

    Top-level values must be dicts (tables) or lists of dicts (arrays of tables)."""
    parts = [header] if header else []
    for name, value in doc.items():
        if isinstance(value, dict):
            if not value:
                continue
            body = "".join(f"{_key(k)} = {toml_value(v)}\n" for k, v in value.items())
            parts.append(f"[{_key(name)}]\n{body}")
        elif isinstance(value, list):
            for item in value:
                body = "".join(f"{_key(k)} = {toml_value(v)}\n" for k, v in item.items())
                parts.append(f"[[{_key(name)}]]\n{body}")
        else:
            raise TypeError(f"top-level {name!r} must be a table or an array of tables")
    return "\n".join(parts)


# -- files and checks --------------------------------------------------------------------------------

def f(path: str, content: str, mode: str | None = None) -> dict:
    d = {"path": path, "content": content}
    if mode:
        d["mode"] = mode
    return d


def d(path: str, mode: str | None = None) -> dict:
    x = {"path": path, "kind": "dir"}
    if mode:
        x["mode"] = mode
    return x


def link(path: str, target: str) -> dict:
    return {"path": path, "kind": "symlink", "target": target}


def _chk(kind: str, desc: str = "", **kw) -> dict:
    c = {"kind": kind, **kw}
    if desc:
        c["description"] = desc
    return c


def exists(path: str, desc: str = "") -> dict:
    return _chk("exists", desc, path=path)


def absent(path: str, desc: str = "") -> dict:
    return _chk("absent", desc, path=path)


def equals(path: str, text: str, desc: str = "") -> dict:
    return _chk("equals", desc, path=path, text=text)


def contains(path: str, text: str, desc: str = "") -> dict:
    return _chk("contains", desc, path=path, text=text)


def not_contains(path: str, text: str, desc: str = "") -> dict:
    return _chk("not_contains", desc, path=path, text=text)


def mode(path: str, m: str, desc: str = "") -> dict:
    return _chk("mode", desc, path=path, mode=m)


def command(cmd: str, desc: str = "") -> dict:
    return _chk("command", desc, command=cmd)


def sq(s: str) -> str:
    """A shell word (single-quoted only when needed)."""
    return shlex.quote(s)


_SAFE = re.compile(r"[A-Za-z0-9_@%+=:,./~-]+")


def sh(path: str) -> str:
    """A path as a competent user types it: `~/x/y` as is; with odd characters, quoted after `~/`."""
    if _SAFE.fullmatch(path):
        return path
    if path.startswith("~/"):
        return "~/" + shlex.quote(path[2:])
    return shlex.quote(path)


def shp(path: str) -> str:
    """A path as a shell word inside a check command (`~/x` under "$HOME")."""
    if path.startswith("~/"):
        rest = path[2:]
        return "~/" + rest if _SAFE.fullmatch(rest) else '"$HOME"/' + shlex.quote(rest)
    return sh(path)


def file_is(path: str, word: str, desc: str = "") -> dict:
    """The file holds exactly `word` (a trailing newline or not)."""
    return command(f"[ \"$(cat {shp(path)})\" = {sq(word)} ]", desc or f"{path} says {word}")


def bre(s: str) -> str:
    """`s` as a literal in a basic regular expression (for sed with a delimiter not in `s`)."""
    return re.sub(r"([\\.*\[\]^$])", r"\\\1", s)


def sed_s(old: str, new: str, *, whole_line: bool = False, glob: bool = False, regex: bool = False) -> str:
    """A sed `s` command (unquoted) replacing the literal `old` (a regex when `regex`) with `new`."""
    delim = next(c for c in "/|#,@" if c not in old + new)
    pat = old if regex else bre(old)
    if whole_line:
        pat = f"^{pat}$"
    rep = re.sub(r"([\\&])", r"\\\1", new)
    return f"s{delim}{pat}{delim}{rep}{delim}{'g' if glob else ''}"


# -- text ------------------------------------------------------------------------------------------

NBSP = "\u00a0"


def nb(s: str) -> str:
    """Keep `s` on one line when a paragraph is wrapped."""
    return s.replace(" ", NBSP)


def wrap(paragraphs: list[str], width: int = 78, indent: str = "", first: str | None = None) -> str:
    """Paragraphs as lines (verbatim ones kept); the first line may carry a bullet (`first`)."""
    lines: list[str] = []
    for i, para in enumerate(paragraphs):
        lead = first if (first is not None and i == 0) else indent
        if "\n" in para or para.startswith(" "):
            for j, ln in enumerate(para.split("\n")):
                lines.append(((lead if j == 0 else indent) + ln).rstrip() if ln.strip() else "")
        else:
            w = textwrap.wrap(para, width=width, initial_indent=lead, subsequent_indent=indent,
                              break_on_hyphens=False, break_long_words=False)
            lines.extend(w)
    return "\n".join(ln.replace(NBSP, " ") for ln in lines)


def code(s: str) -> str:
    """An exact string quoted in prose (in backticks, kept on one line)."""
    return nb(f"`{s}`")


def q1(s: str) -> str:
    """Always single-quoted (how people quote sed scripts), whatever `s` holds."""
    return "'" + s.replace("'", "'\\''") + "'"


def block(lines: list[str], indent: str = "    ") -> str:
    """Exact lines shown indented inside a directive."""
    return "\n".join(indent + ln for ln in lines)


# -- pools -----------------------------------------------------------------------------------------

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
