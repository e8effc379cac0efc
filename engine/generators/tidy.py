"""cleanup, archive and organize: delete the right files, pack them, move and rename them."""
from __future__ import annotations

import datetime as _dt

from .common import Ctx, Task, absent, code, command, d, equals, exists, f, nb, sh, sq
from .world import PROJECTS, SERVICES, WORDS, access_log, app_log, csv_sales, note_text, when

# -- cleanup ---------------------------------------------------------------------------------------


def cl_suffix(ctx: Ctx) -> Task:
    rng = ctx.rng
    suf, what = rng.choice([(".tmp", "temporary files"), (".bak", "backup copies"), (".swp", "editor swap files"),
                            (".orig", "leftover merge files"), ("~", "editor backup files")])
    root = rng.choice(["~/work", "~/scratch", f"~/projects/{rng.choice(PROJECTS)}", "~/render"])
    outside = rng.choice(["~/drafts", "~/Desktop", "~/keep"])
    subs = ["", "scene/", "scene/deep/cache/", "src/", "docs/old/"]
    doomed, kept = [], []
    for sub in rng.sample(subs, 3):
        base = rng.choice(["render", "light", "mesh", "index", "notes", "main", "config", "draft", "page"])
        doomed.append(f"{root}/{sub}{base}{suf}")
    for sub in rng.sample(subs, 3):
        base = rng.choice(["scene.blend", "main.c", "report.md", "data.csv", "index.html", "app.py"])
        kept.append(f"{root}/{sub}{base}")
    lookalike = f"{root}/notes{suf}.txt" if suf != "~" else f"{root}/home~page.txt"
    kept.append(lookalike)
    if suf != "~":
        kept.append(f"{root}/{suf.strip('.')}/keep.cfg")
    doomed, kept = sorted(set(doomed)), sorted(set(kept) - set(doomed))
    files = [f(p, f"{p.rsplit('/', 1)[-1]} contents\n") for p in doomed + kept]
    files.append(f(f"{outside}/idea{suf}", f"outside {root}: not part of the job\n"))
    rng.shuffle(files)
    pattern = f"*{suf}"
    directive = [f"The quota is nearly full. Delete every file whose name ends in {code(suf)} ({what}) anywhere "
                 f"under {root}, in all subfolders. Do not delete anything else."]
    checks = [absent(p) for p in doomed] + [exists(p) for p in kept]
    checks.append(exists(f"{outside}/idea{suf}", f"files outside {root} are untouched"))
    work = [f"find {root} -name {sq(pattern)}", f"find {root} -type f -name {sq(pattern)} -exec rm {{}} +",
            f"find {root}"]
    return Task(title=f"delete {suf} files", directive=directive,
                description=f"delete every *{suf} file in a tree and nothing else", files=files,
                checks=checks, work=work)


def cl_keep_newest(ctx: Ctx) -> Task:
    rng = ctx.rng
    folder = rng.choice(["~/backups", "~/db/dumps", "~/var/backups"])
    prefix = rng.choice(["db", rng.choice(PROJECTS), "site", "wiki"])
    ext = rng.choice([".sql.gz", ".tar.gz", ".dump"])
    keep_n = rng.randint(2, 4)
    t = when(rng)
    back = rng.sample(range(0, 90), keep_n + rng.randint(2, 4))
    dates = sorted({(t - _dt.timedelta(days=k)).date().isoformat() for k in back})
    names = [f"{prefix}-{x}{ext}" for x in dates]
    old, new = names[:-keep_n], names[-keep_n:]
    files = [f(f"{folder}/{n}", f"dump {n[len(prefix) + 1:len(prefix) + 11]}\n")
             for n in rng.sample(names, len(names))]
    files.append(f(f"{folder}/restore.sh", "#!/bin/sh\ngunzip -c \"$1\" | psql\n", "0755"))
    directive = [f"The nightly job writes {folder}/{prefix}-YYYY-MM-DD{ext} and never removes old ones. Keep only "
                 f"the {keep_n} newest backups (by the date in the file name) and delete the older ones. Leave "
                 f"the other files in {folder} alone."]
    checks = [absent(f"{folder}/{n}") for n in old] + [exists(f"{folder}/{n}") for n in new]
    checks.append(exists(f"{folder}/restore.sh"))
    work = [f"ls {folder}", f"cd {folder}", "rm " + " ".join(old), "ls"]
    return Task(title=f"prune {prefix} backups", directive=directive,
                description=f"keep the {keep_n} newest dated backups and delete the older ones",
                files=files, checks=checks, work=work)


def cl_empty_dirs(ctx: Ctx) -> Task:
    rng = ctx.rng
    root = rng.choice(["~/media", "~/import", "~/archive/photos"])
    years = rng.sample(range(2015, 2025), 5)
    empty = [f"{root}/{years[0]}", f"{root}/{years[1]}/raw", f"{root}/{years[2]}/a/b/c"]
    full = [f"{root}/{years[1]}/{rng.choice(['beach', 'party', 'garden'])}.jpg",
            f"{root}/{years[3]}/y/list.txt"]
    zero = f"{root}/{years[4]}/clips/empty-clip.mp4"
    files = [d(p) for p in empty] + [f(p, "keep me\n") for p in full] + [f(zero, "")]
    extra = f"{root}/{years[3]}/x"
    files.append(d(extra))
    rng.shuffle(files)
    directive = [f"{root} is full of empty folders left over from the import. Remove every empty directory under "
                 f"{root}, including directories that end up empty once their empty subdirectories are gone. "
                 f"Folders that hold files stay (an empty file is still a file), and so does {root} itself."]
    checks = [absent(p) for p in (empty[0], empty[1], f"{root}/{years[2]}", extra)]
    checks += [exists(p) for p in full] + [exists(zero, "an empty file is not an empty directory")]
    checks.append(command(f"[ -d {root} ]", f"{root} itself stays"))
    work = [f"find {root} -type d", f"find {root} -depth -mindepth 1 -type d -empty -exec rmdir {{}} \\;",
            f"find {root}"]
    return Task(title="remove empty folders", directive=directive,
                description="remove empty directories recursively, keeping empty files", files=files,
                checks=checks, work=work)


def cl_dated_logs(ctx: Ctx) -> Task:
    rng = ctx.rng
    svc = rng.choice(SERVICES)
    folder = rng.choice([f"~/logs/{svc}", "~/logs", f"~/{svc}/log"])
    year = rng.randint(2022, 2024)
    cutoff_month = rng.randint(3, 10)
    cutoff = f"{year}-{cutoff_month:02d}-01"
    dates = sorted({f"{year}-{m:02d}-{rng.randint(1, 28):02d}" for m in
                    rng.sample(range(1, 13), 7)} | {f"{year}-{cutoff_month - 1:02d}-28", f"{cutoff}"})
    names = [f"{svc}-{x}.log" for x in dates]
    old = [n for n, x in zip(names, dates) if x < cutoff]
    new = [n for n, x in zip(names, dates) if x >= cutoff]
    files = [f(f"{folder}/{n}", app_log(rng, 2, svc)) for n in names]
    files.append(f(f"{folder}/{svc}.log", app_log(rng, 3, svc)))
    files.append(f(f"{folder}/README", f"{svc} writes one log per day; {svc}.log is the live one.\n"))
    rng.shuffle(files)
    t = _dt.date.fromisoformat(cutoff)
    directive = [f"Delete the daily logs in {folder} that are from before {nb(t.strftime('%B') + f' 1, {year}')} "
                 f"(the date is in the name: {svc}-YYYY-MM-DD.log). Logs from that day on, the live {svc}.log "
                 "and the README stay."]
    checks = [absent(f"{folder}/{n}") for n in old] + [exists(f"{folder}/{n}") for n in new]
    checks += [exists(f"{folder}/{svc}.log"), exists(f"{folder}/README")]
    work = [f"ls {folder}", f"cd {folder}", "rm " + " ".join(old), "ls"]
    return Task(title=f"prune old {svc} logs", directive=directive,
                description="delete dated logs older than a cutoff date taken from their names",
                files=files, checks=checks, work=work)


def cl_manifest(ctx: Ctx) -> Task:
    rng = ctx.rng
    root = rng.choice(["~/shared", "~/public", "~/www/uploads"])
    listing = rng.choice(["~/cleanup-list.txt", "~/inbox/delete-these.txt", "~/lists/remove.txt"])
    names = []
    for _ in range(9):
        n = f"{rng.choice(['report', 'scan', 'photo', 'draft', 'export', 'invoice'])}-{rng.randint(10, 999)}." \
            f"{rng.choice(['pdf', 'jpg', 'csv', 'txt'])}"
        if n not in names:
            names.append(n)
    doomed = rng.sample(names, rng.randint(3, 4))
    kept = [n for n in names if n not in doomed]
    files = [f(f"{root}/{n}", f"{n}\n") for n in names]
    files.append(f(listing, "".join(n + "\n" for n in doomed)))
    directive = [f"{listing} lists files (one name a line) in {root} that must be deleted. Delete exactly those; "
                 f"keep every other file in {root}, and keep the list itself."]
    checks = [absent(f"{root}/{n}") for n in doomed] + [exists(f"{root}/{n}") for n in kept] + [exists(listing)]
    work = [f"cat {listing}", f"ls {root}", f"cd {root}", f"xargs rm < {listing}", "ls"]
    return Task(title="delete the listed files", directive=directive,
                description="delete the files named in a list, nothing else", files=files, checks=checks, work=work)


def cl_zero_byte(ctx: Ctx) -> Task:
    rng = ctx.rng
    root = rng.choice(["~/inbox", "~/incoming", "~/spool/out"])
    files, empty, full = [], [], []
    for i in range(rng.randint(6, 9)):
        sub = rng.choice(["", "", "a/", "b/"])
        stem, ext = rng.choice(["msg", "job", "batch", "part"]), rng.choice(["txt", "dat", "json"])
        name = f"{root}/{sub}{stem}-{i:03d}.{ext}"
        if rng.random() < 0.45:
            empty.append(name)
            files.append(f(name, ""))
        else:
            full.append(name)
            files.append(f(name, rng.choice(['{"ok": true}\n', "payload\n", "0\n", " \n"])))
    if not empty:
        empty.append(f"{root}/job-999.dat")
        files.append(f(empty[-1], ""))
    if not full:
        full.append(f"{root}/job-998.dat")
        files.append(f(full[-1], "payload\n"))
    directive = [f"A broken sender left zero-byte files in {root}. Delete every empty (0 byte) file under {root}, "
                 "subfolders included. Files with any content at all stay, and so do the folders."]
    checks = [absent(p) for p in empty] + [exists(p) for p in full]
    work = [f"ls -lR {root}", f"find {root} -type f -size 0", f"find {root} -type f -size 0 -exec rm {{}} +",
            f"ls -lR {root}"]
    return Task(title="delete empty files", directive=directive,
                description="delete the zero-byte files in a tree, keeping the rest", files=files,
                checks=checks, work=work)


CLEANUP = [cl_suffix, cl_keep_newest, cl_empty_dirs, cl_dated_logs, cl_manifest, cl_zero_byte]

# -- archive ---------------------------------------------------------------------------------------


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

# -- organize --------------------------------------------------------------------------------------


def _moved(old: str, new: str, content: str) -> list[dict]:
    return [equals(new, content), absent(old)]


def or_by_ext(ctx: Ctx) -> Task:
    rng = ctx.rng
    root = rng.choice(["~/downloads", "~/Desktop", "~/inbox/files"])
    groups = rng.choice([
        {"images": ["jpg", "png"], "docs": ["pdf"]},
        {"pictures": ["jpg", "gif"], "sheets": ["csv", "xlsx"]},
        {"audio": ["mp3", "ogg"], "video": ["mp4"]},
        {"docs": ["pdf", "odt"], "archives": ["zip", "tar.gz"]},
    ])
    files, moves = [], []
    stems = ["holiday", "invoice-1142", "manual", "scan 2025-01-04", "report", "song", "clip", "budget",
             "backup", "cat", "notes", "poster"]
    rng.shuffle(stems)
    for folder, exts in groups.items():
        for e in exts:
            for _ in range(rng.randint(1, 2)):
                name = f"{stems.pop()}.{e}"
                files.append(f(f"{root}/{name}", f"{e} data\n"))
                moves.append((f"{root}/{name}", f"{root}/{folder}/{name}", f"{e} data\n"))
    stay = [f"{root}/setup.sh", f"{root}/{stems.pop()}.{list(groups.values())[0][0].upper()}.txt"]
    files += [f(stay[0], "#!/bin/sh\necho setup\n"), f(stay[1], "a text file, not a picture\n")]
    rng.shuffle(files)
    parts = []
    for folder, exts in groups.items():
        parts.append(f"the {' and '.join('.' + e for e in exts)} files into {root}/{folder}")
    directive = [f"Tidy {root}: move " + "; ".join(parts)
                 + " (make the folders). Leave every other file where it is."]
    checks = []
    for old, new, body in moves:
        checks += _moved(old, new, body)
    checks += [exists(p) for p in stay]
    work = [f"ls -l {sh(root)}", f"cd {root}", "mkdir -p " + " ".join(groups)]
    for folder, exts in groups.items():
        work.append("mv " + " ".join(f"*.{e}" for e in exts) + f" {folder}/")
    work.append("ls -R")
    return Task(title=f"tidy {root}", directive=directive,
                description="sort files into subfolders by extension", files=files, checks=checks, work=work)


def or_rename_ext(ctx: Ctx) -> Task:
    rng = ctx.rng
    old_e, new_e, why = rng.choice([("jpeg", "jpg", "The new CDN only serves .jpg."),
                                    ("htm", "html", "The web server only serves .html pages."),
                                    ("yml", "yaml", "The config loader only reads .yaml files."),
                                    ("markdown", "md", "The wiki only picks up .md files."),
                                    ("text", "txt", "The indexer only reads .txt files.")])
    root = rng.choice(["~/site/img", "~/site/pages", "~/config", "~/wiki", "~/docs"])
    stems = rng.sample(["logo", "team photo", "banner", "index", "about", "contact", "deploy", "intro", "faq"], 4)
    files, checks = [], []
    for s in stems[:3]:
        c = f"{s}\n"
        files.append(f(f"{root}/{s}.{old_e}", c))
        checks += _moved(f"{root}/{s}.{old_e}", f"{root}/{s}.{new_e}", c)
    files.append(f(f"{root}/{stems[3]}.{new_e}", "already fine\n"))
    files.append(f(f"{root}/notes.txt" if new_e != "txt" else f"{root}/notes.log", "not part of it\n"))
    checks.append(equals(f"{root}/{stems[3]}.{new_e}", "already fine\n"))
    checks.append(command(f"! ls {root} | grep -q '\\.{old_e}$'", f"no .{old_e} file is left"))
    rng.shuffle(files)
    directive = [f"{why} Rename every file in {root} that ends in .{old_e} so that it ends in .{new_e} instead "
                 f"({nb(f'{stems[0]}.{old_e} -> {stems[0]}.{new_e}')}). Other files there stay as they are."]
    work = [f"ls {root}", f"for f in {root}/*.{old_e}; do mv \"$f\" \"${{f%.{old_e}}}.{new_e}\"; done", f"ls {root}"]
    return Task(title=f"rename .{old_e} to .{new_e}", directive=directive,
                description=f"rename every .{old_e} file in a folder to .{new_e}", files=files, checks=checks,
                work=work)


def or_lowercase(ctx: Ctx) -> Task:
    rng = ctx.rng
    root = rng.choice(["~/music/incoming", "~/uploads", "~/scans/new"])
    names = rng.sample(["Track01.MP3", "Track02.MP3", "INTRO.ogg", "Cover.Jpg", "README.TXT", "Scan_0001.PDF",
                        "Notes.Md", "Outro.Ogg", "BONUS.mp3"], rng.randint(3, 5))
    files, checks = [], []
    for n in names:
        c = f"{n.lower()} data\n"
        files.append(f(f"{root}/{n}", c))
        checks.append(equals(f"{root}/{n.lower()}", c))
    files.append(f(f"{root}/already.lower", "fine\n"))
    checks.append(command(f"[ \"$(ls {root} | wc -l)\" -eq {len(names) + 1} ] && ! ls {root} | grep -q '[A-Z]'",
                          f"exactly {len(names) + 1} files, all lower case"))
    directive = [f"The player on {ctx.host} only finds lower-case file names. Rename every file in {root} to its "
                 f"lower-case name ({nb(names[0] + ' becomes ' + names[0].lower())}). Do not move them anywhere "
                 "else."]
    work = [f"cd {root}", "ls", "for f in *; do mv \"$f\" \"$(echo \"$f\" | tr A-Z a-z)\"; done", "ls"]
    return Task(title="lower-case file names", directive=directive,
                description="rename every file in a folder to lower case", files=files, checks=checks, work=work)


def or_by_date(ctx: Ctx) -> Task:
    rng = ctx.rng
    root = rng.choice(["~/camera", "~/photos/inbox", "~/DCIM"])
    prefix = rng.choice(["IMG", "PXL", "DSC"])
    t = when(rng)
    shots = []
    for _ in range(rng.randint(4, 6)):
        x = t + _dt.timedelta(days=rng.randint(0, 80))
        shots.append(f"{prefix}_{x.strftime('%Y%m%d')}_{rng.randint(1, 9)}.jpg")
    shots = sorted(set(shots))
    files = [f(f"{root}/{s}", f"photo {s[len(prefix) + 1:-4]}\n") for s in shots]
    files.append(f(f"{root}/edited-{rng.choice(['sunset', 'portrait', 'beach'])}.jpg", "edited\n"))
    rng.shuffle(files)
    checks = []
    months = []
    for s in shots:
        y, m = s[len(prefix) + 1:len(prefix) + 5], s[len(prefix) + 5:len(prefix) + 7]
        if (y, m) not in months:
            months.append((y, m))
        checks += _moved(f"{root}/{s}", f"{root}/{y}/{m}/{s}", f"photo {s[len(prefix) + 1:-4]}\n")
    checks.append(exists(next(x["path"] for x in files if "edited-" in x["path"])))
    ex = shots[0]
    directive = [f"Photos in {root} are named {prefix}_YYYYMMDD_N.jpg. Move each one into {root}/YYYY/MM/ (for "
                 f"example {root}/{ex[len(prefix) + 1:len(prefix) + 5]}/{ex[len(prefix) + 5:len(prefix) + 7]}/{ex}), "
                 "keeping its name. Files that do not follow that pattern stay where they are."]
    work = [f"ls {root}", f"cd {root}", "mkdir -p " + " ".join(f"{y}/{m}" for y, m in months)]
    work += [f"mv {prefix}_{y}{m}* {y}/{m}/" for y, m in months]
    work.append("ls -R")
    return Task(title="file photos by month", directive=directive,
                description="file photos into YEAR/MONTH folders taken from their names", files=files,
                checks=checks, work=work)


def or_by_client(ctx: Ctx) -> Task:
    rng = ctx.rng
    root = rng.choice(["~/invoices", "~/billing/out", "~/docs/invoices"])
    clients = rng.sample(["acme", "globex", "initech", "umbrella", "hooli", "wayne", "stark"], 3)
    files, checks = [], []
    for c in clients:
        for _ in range(rng.randint(1, 3)):
            n = f"invoice-{c}-{rng.randint(100, 999)}.pdf"
            if any(x["path"].endswith("/" + n) for x in files):
                continue
            body = f"%PDF-1.4 invoice for {c}\n"
            files.append(f(f"{root}/{n}", body))
            checks += _moved(f"{root}/{n}", f"{root}/clients/{c}/{n}", body)
    files.append(f(f"{root}/template.odt", "template\n"))
    rng.shuffle(files)
    checks.append(exists(f"{root}/template.odt"))
    directive = [f"The invoices in {root} are named invoice-CLIENT-NUMBER.pdf. Move each into {root}/clients/CLIENT/ "
                 f"(for example {nb(f'{root}/clients/{clients[0]}/')}), making the folders as needed. Other files "
                 "stay where they are."]
    work = [f"ls {root}", f"cd {root}", "mkdir -p " + " ".join(f"clients/{c}" for c in clients)]
    work += [f"mv invoice-{c}-*.pdf clients/{c}/" for c in clients] + ["ls -R clients"]
    return Task(title="file invoices by client", directive=directive,
                description="move files into per-client folders taken from their names", files=files,
                checks=checks, work=work)


def or_spaces(ctx: Ctx) -> Task:
    rng = ctx.rng
    root = rng.choice(["~/uploads", "~/share/docs", "~/scans"])
    names = rng.sample(["meeting notes.txt", "budget 2024.csv", "team photo.jpg", "final report v2.pdf",
                        "to do.md", "old invoice.pdf", "tax form.pdf"], rng.randint(3, 4))
    files, checks = [], []
    for n in names:
        c = f"{n}\n"
        files.append(f(f"{root}/{n}", c))
        checks += _moved(f"{root}/{n}", f"{root}/{n.replace(' ', '_')}", c)
    files.append(f(f"{root}/plain_name.txt", "fine\n"))
    checks.append(equals(f"{root}/plain_name.txt", "fine\n"))
    directive = [f"The upload tool chokes on spaces. In {root}, rename every file whose name contains spaces so that "
                 f"each space becomes an underscore (\"{nb(names[0])}\" becomes "
                 f"{nb(names[0].replace(' ', '_'))}). Leave the other files alone."]
    work = [f"cd {root}", "ls", "for f in *\\ *; do mv \"$f\" \"$(echo \"$f\" | tr ' ' _)\"; done", "ls"]
    return Task(title="no spaces in names", directive=directive,
                description="replace spaces with underscores in file names", files=files, checks=checks, work=work)


ORGANIZE = [or_by_ext, or_rename_ext, or_lowercase, or_by_date, or_by_client, or_spaces]

__all__ = ["ARCHIVE", "CLEANUP", "ORGANIZE"]
