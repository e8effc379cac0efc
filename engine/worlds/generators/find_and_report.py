"""find_and_report: find something in the files and write the answer down.

Variants: the largest file; the service on a port; a count of matching lines; the distinct error
codes in a log; the file that mentions a phrase; a count of files; a setting from an INI section; a
count of CSV rows.
"""
from __future__ import annotations

from teletype.engine.worlds.generators.common import (
    Ctx,
    Task,
    code,
    command,
    d,
    equals,
    exists,
    f,
    file_is,
    nb,
    shp,
    sq,
)
from teletype.engine.worlds.generators.world import PROJECTS, SERVICES, WORDS, app_log, note_text, when

_ANSWERS = ["~/answer.txt", "~/found.txt", "~/report.txt", "~/out/answer", "~/report/result.txt"]


def _answer(ctx: Ctx, files: list[dict]) -> str:
    """Where the answer goes; a folder for it is staged (so the directive need not mention it)."""
    where = ctx.rng.choice(_ANSWERS)
    if where.count("/") > 1:
        files.append(d(where.rsplit("/", 1)[0]))
    return where


def number_is(path: str, n: int, desc: str = "") -> dict:
    return command(f"[ \"$(tr -d ' \\t\\n' < {shp(path)})\" = {n} ]", desc or f"{path} says {n}")


def fr_largest(ctx: Ctx) -> Task:
    rng = ctx.rng
    root = rng.choice(["~/logs", "~/data/logs", "~/var/log"])
    sub = rng.choice(["archive", "old", "2024"])
    names = rng.sample([f"{s}.log" for s in SERVICES], 5)
    sizes = [rng.randint(3, 14) for _ in names]
    big = rng.randrange(1, len(names))  # the biggest one always sits in the subfolder
    sizes[big] = max(sizes) + rng.randint(2, 6)
    files = []
    for i, (n, s) in enumerate(zip(names, sizes)):
        path = f"{root}/{sub}/{n}" if i >= 3 or i == big else f"{root}/{n}"
        files.append(f(path, app_log(rng, s, n[:-4])))
    # the answer is what `wc -c` says, not the line count: pad until it is clearly the largest
    most = max(len(x["content"].encode()) for j, x in enumerate(files) if j != big)
    while len(files[big]["content"].encode()) < most + 300:
        files[big]["content"] += app_log(rng, 2, names[big][:-4])
    answer = _answer(ctx, files)
    target = names[big]
    directive = [f"Disk space is running out. Find the single largest file anywhere under {root} (subfolders "
                 f"included) and write just its file name (for example {nb('worker-7.log')}, no folder) into "
                 f"{answer}."]
    work = [f"ls -R {root}", f"find {root} -type f -exec wc -c {{}} + | sort -n",
            f"echo {target} > {answer}", f"cat {answer}"]
    checks = [file_is(answer, target), exists(next(x["path"] for x in files if x["path"].endswith("/" + target)))]
    return Task(title="largest log file", directive=directive,
                description="find the largest file in a tree (in a subfolder) and report its name",
                files=files, checks=checks, work=work)


def fr_port(ctx: Ctx) -> Task:
    rng = ctx.rng
    folder = rng.choice(["~/services", "~/etc/services.d", "~/conf.d"])
    key = rng.choice(["port", "listen_port"])
    svcs = rng.sample(SERVICES, rng.randint(4, 6))
    ports = rng.sample([8080, 8443, 9100, 5432, 6379, 3000, 8000, 9090, 7070, 8125], len(svcs))
    who = rng.randrange(len(svcs))
    port = ports[who]
    files = []
    decoy_done = False
    for i, (s, p) in enumerate(zip(svcs, ports)):
        lines = [f"name={s}", f"{key}={p}", f"workers={rng.randint(1, 8)}"]
        if i != who and not decoy_done:
            lines.append(f"# was {key}={port} until {rng.randint(2019, 2023)}")
            decoy_done = True
        files.append(f(f"{folder}/{s}.conf" if rng.random() < 0.5 else f"{folder}/a{i + 1:02d}.conf",
                       "\n".join(lines) + "\n"))
    if rng.random() < 0.6:
        extra = rng.choice([s for s in SERVICES if s not in svcs])
        files.append(f(f"{folder}/zz-{extra}.conf", f"name={extra}\n{key}=1{port}\n"))
    answer = _answer(ctx, files)
    holder = files[who]["path"]
    directive = [f"Something on {ctx.host} already listens on port {port} and the new proxy cannot start. The "
                 f"service definitions are the *.conf files in {folder}. Find the one with {key}={port} and write "
                 f"the value of its name= setting (only that word) into {answer}."]
    work = [f"grep -n {port} {folder}/*.conf", f"grep -l '^{key}={port}$' {folder}/*.conf", f"cat {holder}",
            f"echo {svcs[who]} > {answer}"]
    return Task(title=f"who uses port {port}", directive=directive,
                description="find which service configuration uses a port and report the service name",
                files=files, checks=[file_is(answer, svcs[who])], work=work)


def _code_lines(rng, word: str, n: int, comment: str, lang: str) -> tuple[str, int]:
    out, hits = [], 0
    for i in range(n):
        r = rng.random()
        if r < 0.3:
            what = rng.choice(["handle errors", "validate input", "add tests", "clean up", "speed this up"])
            out.append(f"{comment} {word}: {what}")
            hits += 1
        elif r < 0.38:
            out.append(f"{comment} {word.lower()} list is empty")  # lower case does not count
        else:
            out.append({"py": f"x{i} = compute({i})", "sh": f"echo step {i}", "js": f"const x{i} = f({i});"}[lang])
    return "\n".join(out) + "\n", hits


def fr_count(ctx: Ctx) -> Task:
    rng = ctx.rng
    word = rng.choice(["TODO", "FIXME", "XXX"])
    repo = rng.choice(["~/repo", f"~/src/{rng.choice(PROJECTS)}", "~/code"])
    ext = rng.choice(["py", "sh", "js"])
    comment = {"py": "#", "sh": "#", "js": "//"}[ext]
    files, total = [], 0
    for path in rng.sample(["main", "util", "lib/io", "lib/db", "tests/test_main", "cli"], 4):
        content, hits = _code_lines(rng, word, rng.randint(4, 9), comment, ext)
        total += hits
        files.append(f(f"{repo}/{path}.{ext}", content))
    if total == 0:
        files[0]["content"] += f"{comment} {word}: remove this\n"
        total = 1
    other = {"py": "js", "sh": "py", "js": "sh"}[ext]
    files.append(f(f"{repo}/README.md", f"# notes\n\n{word}: write docs\n{word}: badges\n"))
    files.append(f(f"{repo}/tools/build.{other}", f"{'//' if other == 'js' else '#'} {word}: cache\n"))
    answer = _answer(ctx, files)
    directive = [f"Before the code freeze we want to know how much is left to do. Count the lines that contain "
                 f"{word} (upper case) in all .{ext} files under {repo} (every subfolder too; other file types do "
                 f"not count) and write only that number into {answer}."]
    work = [f"find {repo} -name '*.{ext}'", f"find {repo} -name '*.{ext}' -exec grep -n {word} {{}} +",
            f"find {repo} -name '*.{ext}' -exec cat {{}} + | grep -c {word} > {answer}", f"cat {answer}"]
    return Task(title=f"count {word} lines", directive=directive,
                description=f"count lines with {word} in the .{ext} files of a tree and write the number",
                files=files, checks=[number_is(answer, total)], work=work)


def fr_codes(ctx: Ctx) -> Task:
    rng = ctx.rng
    codes = sorted(rng.sample([f"E{rng.randint(0, 999):03d}" for _ in range(12)], 5))
    codes = sorted(set(codes))
    svc = rng.choice(SERVICES)
    log = rng.choice([f"~/logs/{svc}.log", "~/logs/app.log", f"~/{svc}/error.log"])
    text = app_log(rng, rng.randint(14, 24), svc, errors=codes)
    used = sorted({w for line in text.split("\n") for w in line.split() if w in codes})
    if not used:
        text += f"2025-01-01T00:00:00 {svc} ERROR {codes[0]} connection refused by cache\n"
        used = [codes[0]]
    text += f"2025-01-01T00:00:01 {svc} INFO  request R{rng.randint(1000, 9999)} done\n"
    files = [f(log, text)]
    answer = _answer(ctx, files)
    directive = [f"Support needs the list of distinct error codes that occur in {log}. An error code is the letter "
                 f"E followed by exactly three digits (like {nb('E042')}). Write each code once, sorted, one per "
                 f"line, into {answer}."]
    work = [f"grep ERROR {log}", f"grep -o 'E[0-9][0-9][0-9]' {log} | sort -u > {answer}", f"cat {answer}"]
    return Task(title="error code inventory", directive=directive,
                description="list the distinct error codes in a log, sorted, one per line",
                files=files, checks=[equals(answer, "".join(c + "\n" for c in used))], work=work)


def fr_mention(ctx: Ctx) -> Task:
    rng = ctx.rng
    root = rng.choice(["~/notes", "~/docs", "~/mail"])
    n = rng.randint(1000, 9999)
    phrase = rng.choice([f"invoice {n}", f"ticket #{n}", f"order {n}", f"PO-{n}"])
    decoy = phrase.replace(str(n), str(n + rng.choice([1, 10, 100])) if n < 9000 else str(n - 7))
    names = rng.sample(["meeting.txt", "ideas.md", "budget.txt", "travel.md", "vendors.txt", "followups.md",
                        "q3-plan.txt", "onboarding.md"], 6)
    files, holder = [], None
    who = rng.randrange(len(names))
    for i, nm in enumerate(names):
        path = f"{root}/{'old/' if i % 3 == 2 else ''}{nm}"
        body = note_text(rng, nm.split(".")[0])
        if i == who:
            body += f"- chase the payment for {phrase} ({rng.choice(['overdue', 'disputed', 'partly paid'])})\n"
            holder = nm
        elif i == (who + 1) % len(names):
            body += f"- {decoy} was paid in full\n"
        files.append(f(path, body))
    answer = _answer(ctx, files)
    directive = [f"Accounting asks which of the files under {root} (subfolders included) mentions "
                 f"{code(phrase)}. Write just that file's name (no folder) into {answer}."]
    work = [f"ls -R {root}", f"grep -rn {sq(phrase)} {root}", f"echo {holder} > {answer}", f"cat {answer}"]
    return Task(title=f"where is {phrase}", directive=directive,
                description="find the one file that mentions a phrase and report its name",
                files=files, checks=[file_is(answer, holder)], work=work)


def fr_count_files(ctx: Ctx) -> Task:
    rng = ctx.rng
    root = rng.choice(["~/photos", "~/pictures", "~/camera"])
    ext = rng.choice(["jpg", "png"])
    files, count = [], 0
    for sub in rng.sample(["", "2023/", "2024/", "trip/", "2024/summer/"], 3):
        for k in range(rng.randint(1, 4)):
            files.append(f(f"{root}/{sub}img_{rng.randint(1000, 9999)}_{k}.{ext}", f"{ext} data\n"))
            count += 1
        files.append(f(f"{root}/{sub}notes-{k}.txt", "caption list\n"))
    files.append(f(f"{root}/IMG_0001.{ext.upper()}", "upper-case extension\n"))
    files.append(f(f"{root}/thumb.{ext}.bak", "backup\n"))
    # de-duplicate paths (random names may repeat)
    seen, uniq = [], []
    for x in files:
        if x["path"] not in seen:
            seen.append(x["path"])
            uniq.append(x)
    files = uniq
    count = sum(1 for x in files if x["path"].endswith("." + ext))
    answer = _answer(ctx, files)
    directive = [f"How many .{ext} pictures are there under {root}, subfolders included? Count the files whose "
                 f"names end in .{ext} (lower case; .{ext.upper()} and backups do not count) and write only the "
                 f"number into {answer}."]
    work = [f"find {root} -name '*.{ext}'", f"find {root} -type f -name '*.{ext}' | wc -l > {answer}",
            f"cat {answer}"]
    return Task(title=f"count .{ext} files", directive=directive,
                description="count files of one extension in a tree and write the number",
                files=files, checks=[number_is(answer, count)], work=work)


def fr_config_value(ctx: Ctx) -> Task:
    rng = ctx.rng
    proj = rng.choice(PROJECTS)
    ini = rng.choice([f"~/{proj}/settings.ini", "~/app/config.ini", f"~/.config/{proj}/db.ini"])
    sections = ["database", "replica", "cache"]
    ports = rng.sample([5432, 5433, 6432, 6543, 15432, 6379, 6380], 3)
    want = rng.choice(sections[:2])
    val = ports[sections.index(want)]
    body = ""
    for s, p in zip(sections, ports):
        host = f"{s}-{rng.randint(1, 9)}.{ctx.host}.lan"
        body += f"[{s}]\nhost = {host}\nport = {p}\n" + (f"name = {proj}\n" if s == "database" else "") + "\n"
    files = [f(ini, body.rstrip("\n") + "\n")]
    answer = _answer(ctx, files)
    directive = [f"The firewall team needs the port of the {want} server that {proj} uses. It is the port "
                 f"setting in the [{want}] section of {ini}. Write only the number into {answer}."]
    work = [f"cat {ini}", f"sed -n '/^\\[{want}\\]/,/^$/p' {ini}", f"echo {val} > {answer}", f"cat {answer}"]
    return Task(title=f"{want} port", directive=directive,
                description="read one setting from the right section of an ini file and write it down",
                files=files, checks=[number_is(answer, val)], work=work)


def fr_csv_count(ctx: Ctx) -> Task:
    rng = ctx.rng
    csv = rng.choice(["~/data/orders.csv", "~/exports/orders-2024.csv", "~/shop/orders.csv"])
    statuses = ["shipped", "refunded", "pending", "cancelled"]
    want = rng.choice(statuses[1:])
    rows, hits = ["id,date,customer,status,total"], 0
    for i in range(rng.randint(10, 22)):
        st = rng.choice(statuses)
        hits += st == want
        rows.append(f"{1000 + i},{when(rng).date()},{rng.choice(WORDS)}-{rng.randint(1, 99)},{st},"
                    f"{rng.randint(5, 300)}.{rng.randint(0, 99):02d}")
    if not hits:
        rows.append(f"{1100},{when(rng).date()},{rng.choice(WORDS)}-1,{want},12.00")
        hits = 1
    files = [f(csv, "\n".join(rows) + "\n")]
    answer = _answer(ctx, files)
    directive = [f"How many orders in {csv} have the status {want}? The status is the fourth column. Write only "
                 f"the number into {answer}."]
    work = [f"head -n 5 {csv}", f"grep -c ',{want},' {csv}", f"grep -c ',{want},' {csv} > {answer}", f"cat {answer}"]
    return Task(title=f"count {want} orders", directive=directive,
                description="count the rows of a CSV with a given status and write the number",
                files=files, checks=[number_is(answer, hits)], work=work)


FIND_AND_REPORT = [fr_largest, fr_port, fr_count, fr_codes, fr_mention, fr_count_files, fr_config_value,
                   fr_csv_count]

__all__ = ["FIND_AND_REPORT"]
