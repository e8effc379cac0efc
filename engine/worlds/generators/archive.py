"""archive: pack files into a tar or tar.gz (or gzip them in place); the checks read the archive.

Variants: a folder (maybe removed after); rotated logs gzipped in place; a source folder without
one of its folders; one year's reports, deleted after.
"""
from __future__ import annotations

from teletype.engine.worlds.generators.common import Ctx, Task, absent, command, d, equals, exists, f, sq
from teletype.engine.worlds.generators.world import (
    PROJECTS,
    SERVICES,
    WORDS,
    access_log,
    app_log,
    csv_sales,
    note_text,
    when,
)


def _tree(rng, root: str) -> list[dict]:
    kind = rng.randrange(3)
    if kind == 0:
        return [f(f"{root}/report.txt", f"Quarterly report, draft {rng.randint(2, 9)}.\n"),
                f(f"{root}/letters/bank.txt", "Dear Sir or Madam,\n"),
                f(f"{root}/letters/{rng.choice(['landlord', 'insurer', 'school'])}.txt", "Hello,\n"),
                f(f"{root}/data.csv", csv_sales(rng, 4))]
    if kind == 1:
        return [f(f"{root}/index.html", f"<h1>{rng.choice(WORDS).title()} sale</h1>\n"),
                f(f"{root}/css/main.css", f"h1 {{ color: {rng.choice(['teal', 'navy', 'tomato'])}; }}\n"),
                f(f"{root}/js/app.js", "console.log('ready');\n")]
    return [f(f"{root}/README.md", f"# {root.rsplit('/', 1)[-1]}\n"),
            f(f"{root}/notes/{rng.choice(['plan', 'ideas', 'todo'])}.md", note_text(rng, "plan")),
            f(f"{root}/results.csv", csv_sales(rng, 5))]


def _tar_check(archive: str, gz: bool, names: list[str], content_of: tuple[str, str] | None) -> dict:
    t = "tzf" if gz else "tf"
    parts = [f"tar {t} {archive} > /tmp/list.$$"] + [f"grep -qx {sq(n)} /tmp/list.$$" for n in names]
    cmd = " && ".join(parts)
    if content_of:
        member, needle = content_of
        x = "xzOf" if gz else "xOf"
        cmd += f" && tar {x} {archive} {sq(member)} | grep -qF {sq(needle)}"
    return command(cmd, f"{archive} holds {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}")


def ar_pack(ctx: Ctx) -> Task:
    rng = ctx.rng
    name = rng.choice(["docs", "thesis", "old-site", "project-x", rng.choice(PROJECTS)])
    parent = rng.choice(["~", "~/projects", "~/work"])
    root = f"{parent}/{name}" if parent != "~" else f"~/{name}"
    remove = rng.random() < 0.45
    gz = rng.random() < 0.75
    ext = ".tar.gz" if gz else ".tar"
    dest_dir = rng.choice(["~", "~/attic", "~/backup"]) if not remove else rng.choice(["~/attic", "~/archive"])
    stamp = when(rng).date().isoformat()
    arcname = rng.choice([f"{name}{ext}", f"{name}-{stamp}{ext}"])
    archive = f"{dest_dir}/{arcname}" if dest_dir != "~" else f"~/{arcname}"
    files = _tree(rng, root)
    sibling = f"{parent}/{'new-site' if name == 'old-site' else rng.choice(['current', 'live', 'next'])}/index.html"
    files.append(f(sibling, "<h1>Welcome</h1>\n"))
    if dest_dir != "~":
        files.append(d(dest_dir))
    fmt = "a gzip-compressed tar" if gz else "an uncompressed tar"
    directive = [f"Pack the whole folder {root} into {archive} ({fmt}; the paths inside must start with {name}/)."]
    if remove:
        directive.append(f"Check that the archive is good, then delete {root}. Do not touch anything else in "
                         f"{parent}.")
    else:
        directive.append(f"Keep {root} itself.")
    members = [x["path"][len(parent) + 1:] if parent != "~" else x["path"][2:] for x in files
               if x["path"].startswith(root + "/")]
    first = next(x for x in files if x["path"].startswith(root + "/"))
    needle = first["content"].split("\n")[0]
    checks = [_tar_check(archive, gz, members, (members[0], needle)),
              command(f"! tar t{'z' if gz else ''}f {archive} | grep -q {sq(sibling.rsplit('/', 2)[-2])}",
                      f"only {name} is in the archive")]
    checks.append(absent(root) if remove else exists(first["path"]))
    checks.append(exists(sibling))
    flags = "czf" if gz else "cf"
    work = [f"ls -R {root}", f"cd {parent}", f"tar {flags} {archive} {name}", f"tar t{'z' if gz else ''}f {archive}"]
    if remove:
        work += [f"rm -r {name}", f"ls {parent} {dest_dir}"]
    return Task(title=f"archive {name}", directive=directive,
                description=f"pack a folder into {fmt}{' and remove it' if remove else ''}",
                files=files, checks=checks, work=work)


def ar_gzip_logs(ctx: Ctx) -> Task:
    rng = ctx.rng
    folder = rng.choice(["~/logs", "~/var/log", f"~/{rng.choice(SERVICES)}/logs"])
    bases = rng.sample(["access.log", "error.log", "app.log", "worker.log"], 2)
    rotated, live = [], []
    files = []
    for b in bases:
        live.append(b)
        files.append(f(f"{folder}/{b}", access_log(rng, 2) if b == "access.log" else app_log(rng, 2, b[:-4])))
        for k in range(1, rng.randint(2, 4)):
            rotated.append(f"{b}.{k}")
            files.append(f(f"{folder}/{b}.{k}", access_log(rng, 3) if b == "access.log" else app_log(rng, 3, b[:-4])))
    rng.shuffle(files)
    content = {x["path"].rsplit("/", 1)[-1]: x["content"] for x in files}
    example = rotated[0]
    directive = [f"Compress the rotated logs in {folder} ({', '.join(sorted(rotated))}) with gzip, so that they "
                 f"become {example}.gz and so on. The live logs ({', '.join(sorted(live))}) stay uncompressed."]
    checks = []
    for r in sorted(rotated):
        line = content[r].split("\n")[-2]
        checks.append(command(f"gzip -dc {folder}/{r}.gz | grep -qF {sq(line)}", f"{r}.gz holds the rotated log"))
        checks.append(absent(f"{folder}/{r}"))
    checks += [equals(f"{folder}/{b}", content[b]) for b in sorted(live)]
    work = [f"ls -l {folder}", "gzip " + " ".join(f"{folder}/{r}" for r in sorted(rotated)), f"ls -l {folder}"]
    return Task(title="compress rotated logs", directive=directive,
                description="gzip the rotated logs in place, leaving the live logs alone", files=files,
                checks=checks, work=work)


def ar_bundle(ctx: Ctx) -> Task:
    rng = ctx.rng
    lang = rng.choice(["c", "py", "js"])
    src = rng.choice(["src", "app", rng.choice(PROJECTS)])
    skip = {"c": "build", "py": "__pycache__", "js": "node_modules"}[lang]
    sources = {"c": ["main.c", "util.c", "util.h", "Makefile"], "py": ["main.py", "util.py", "setup.cfg", "README"],
               "js": ["index.js", "lib.js", "package.json", "README"]}[lang]
    files = [f(f"~/{src}/{n}", f"/* {n} */\n" if lang == "c" else f"// {n}\n" if lang == "js" else f"# {n}\n")
             for n in sources]
    junk = {"c": ["main.o", "util.o"], "py": ["main.cpython-311.pyc", "util.cpython-311.pyc"],
            "js": ["left-pad/index.js", "left-pad/package.json"]}[lang]
    files += [f(f"~/{src}/{skip}/{j}", "generated\n") for j in junk]
    outdir = rng.choice(["~/outbox", "~/release", "~/upload"])
    files.append(d(outdir))
    archive = f"{outdir}/{src}.tar.gz"
    directive = [f"Create {archive} with everything in ~/{src} except the {skip}/ folder (generated files). Paths in "
                 f"the archive start with {src}/. Leave ~/{src} as it is."]
    checks = [_tar_check(archive, True, [f"{src}/{n}" for n in sources], None),
              command(f"[ -f {archive} ] && ! tar tzf {archive} | grep -q {sq(skip + '/')}",
                      f"the archive has no {skip}/"),
              exists(f"~/{src}/{skip}/{junk[0]}"), exists(f"~/{src}/{sources[0]}")]
    work = [f"ls -R ~/{src}", "cd ~", f"tar czf {archive} " + " ".join(f"{src}/{n}" for n in sources),
            f"tar tzf {archive}"]
    return Task(title=f"bundle {src} for review", directive=directive,
                description=f"tar.gz a source folder without its {skip}/ folder", files=files,
                checks=checks, work=work)


def ar_by_year(ctx: Ctx) -> Task:
    rng = ctx.rng
    folder = rng.choice(["~/reports", "~/exports", "~/finance/monthly"])
    kind = rng.choice(["sales", "usage", "costs"])
    year = rng.randint(2021, 2023)
    months = rng.sample(range(1, 13), rng.randint(3, 5))
    old = sorted(f"{kind}-{year}-{m:02d}.csv" for m in months)
    new = sorted(f"{kind}-{year + 1}-{m:02d}.csv" for m in rng.sample(range(1, 13), 2))
    files = [f(f"{folder}/{n}", csv_sales(rng, 3)) for n in old + new]
    files.append(f(f"{folder}/summary-{year}.txt", f"{year} summary: see the csv files\n"))
    rng.shuffle(files)
    archive = f"{folder}/{kind}-{year}.tar.gz"
    directive = [f"The monthly {kind} reports for {year} in {folder} ({kind}-{year}-MM.csv) are final. Put them into "
                 f"{archive} (gzip-compressed tar, just the file names inside, no folders), then delete the "
                 f"{year} csv files. The {year + 1} reports and everything else stay."]
    content = {x["path"].rsplit("/", 1)[-1]: x["content"] for x in files}
    checks = [_tar_check(archive, True, old, (old[0], content[old[0]].split("\n")[1]))]
    checks += [absent(f"{folder}/{n}") for n in old] + [exists(f"{folder}/{n}") for n in new]
    checks.append(exists(f"{folder}/summary-{year}.txt"))
    work = [f"ls {folder}", f"cd {folder}", f"tar czf {kind}-{year}.tar.gz {kind}-{year}-*.csv",
            f"tar tzf {kind}-{year}.tar.gz", f"rm {kind}-{year}-*.csv", "ls"]
    return Task(title=f"archive the {year} {kind} reports", directive=directive,
                description="tar.gz one year's reports by name pattern, then delete them", files=files,
                checks=checks, work=work)


ARCHIVE = [ar_pack, ar_gzip_logs, ar_bundle, ar_by_year]

__all__ = ["ARCHIVE"]
