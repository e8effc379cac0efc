"""organize: move and rename files into the layout asked for.

Variants: subfolders by extension; a new extension; lower-case names; YEAR/MONTH folders from photo
names; per-client folders; underscores for spaces.
"""
from __future__ import annotations

import datetime as _dt

from teletype.engine.worlds.generators.common import Ctx, Task, absent, command, equals, exists, f, nb, sh
from teletype.engine.worlds.generators.world import when


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

__all__ = ["ORGANIZE"]
