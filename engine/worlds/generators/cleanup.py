"""cleanup: delete exactly the right files and nothing else.

Variants: by suffix; all but the newest backups; empty directories; dated logs before a cutoff; the
files named in a list; zero-byte files.
"""
from __future__ import annotations

import datetime as _dt

from teletype.engine.worlds.generators.common import Ctx, Task, absent, code, command, d, exists, f, nb, sq
from teletype.engine.worlds.generators.world import PROJECTS, SERVICES, app_log, when


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
    # the pipeline needs only the count from the directive; copying names out of ls's columns drops some
    work = [f"ls -1 {folder}", f"cd {folder}", f"ls -1 {prefix}-*{ext} | head -n -{keep_n} | xargs rm", "ls -1"]
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
    work = [f"ls -1 {folder}", f"cd {folder}", "rm " + " ".join(old), "ls -1"]  # one a line, in date order
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

__all__ = ["CLEANUP"]
