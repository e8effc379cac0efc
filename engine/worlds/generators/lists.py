"""lists: sort, deduplicate, merge and compare lists of lines, writing exactly the list asked for.

Variants: deduplicate a list in place, sorted; merge two lists into a third without duplicates;
the entries of one list missing from another; a CSV sorted by a numeric column, highest first;
the entries two lists have in common.
"""
from __future__ import annotations

from teletype.engine.worlds.generators.common import Ctx, Task, d, equals, f
from teletype.engine.worlds.generators.world import DOMAINS, FIRST, HOSTS, LAST, PROJECTS, SERVICES, WORDS, distinct


def _emails(rng, n: int) -> list[str]:
    out = set()
    while len(out) < n:
        out.add(f"{rng.choice(FIRST).lower()}.{rng.choice(LAST).lower()}@{rng.choice(DOMAINS)}")
    return sorted(out)


def _hosts(rng, n: int) -> list[str]:
    out = set()
    while len(out) < n:
        out.add(f"{rng.choice(SERVICES)}-{rng.randint(1, 30):02d}.{rng.choice(['lan', 'corp', 'internal'])}")
    return sorted(out)


def _pool(rng, n: int) -> tuple[str, list[str]]:
    kind = rng.choice(["emails", "hosts", "words"])
    if kind == "emails":
        return "e-mail addresses", _emails(rng, n)
    if kind == "hosts":
        return "host names", _hosts(rng, n)
    return "tags", sorted(distinct(rng, WORDS, min(n, len(WORDS))))


def _text(lines: list[str]) -> str:
    return "".join(x + "\n" for x in lines)


def _folder_of(out: str, files: list[dict]) -> list[dict]:
    """The folder an answer goes into exists (an empty one, when no file is in it already)."""
    folder = out.rsplit("/", 1)[0]
    if folder == "~" or any(x["path"].startswith(folder + "/") for x in files):
        return []
    return [d(folder)]


def ls_dedupe(ctx: Ctx) -> Task:
    rng = ctx.rng
    what, items = _pool(rng, rng.randint(6, 10))
    lines = items + rng.sample(items, rng.randint(3, 5))
    rng.shuffle(lines)
    name = {"e-mail addresses": ["subscribers.txt", "mailing.txt", "contacts.txt", "newsletter.txt"],
            "host names": ["hosts.txt", "servers.txt", "machines.txt", "targets.txt"],
            "tags": ["tags.txt", "labels.txt", "keywords.txt", "topics.txt"]}[what]
    path = f"{rng.choice(['~', '~/lists', '~/ops', '~/notes', '~/data', f'~/{rng.choice(PROJECTS)}'])}/{rng.choice(name)}"
    files = [f(path, _text(lines))]
    directive = [f"{path} holds {what}, one a line, and some are in it more than once. Clean it up in "
                 f"place: every entry exactly once, sorted alphabetically, nothing else in the file."]
    checks = [equals(path, _text(sorted(set(lines))), "each entry once, sorted")]
    work = [f"cat {path}", f"sort -u {path} -o {path}", f"cat {path}"]
    return Task(title=f"deduplicate {path.rsplit('/', 1)[-1]}", directive=directive,
                description="deduplicate and sort a list in place", files=files, checks=checks, work=work)


def ls_merge(ctx: Ctx) -> Task:
    rng = ctx.rng
    what, items = _pool(rng, rng.randint(9, 14))
    a = rng.sample(items, len(items) * 2 // 3)
    b = rng.sample(items, len(items) * 2 // 3)
    folder = rng.choice(["~/lists", "~/data", "~/work/lists"])
    na, nb_ = rng.sample(["office.txt", "remote.txt", "team-a.txt", "team-b.txt", "old.txt", "new.txt"], 2)
    out = rng.choice([f"{folder}/all.txt", f"{folder}/merged.txt", "~/everyone.txt"])
    files = [f(f"{folder}/{na}", _text(a)), f(f"{folder}/{nb_}", _text(b))]
    directive = [f"Merge the {what} in {folder}/{na} and {folder}/{nb_} into {out}: every entry that is in "
                 f"either file, once, sorted alphabetically. Keep both source files as they are."]
    checks = [equals(out, _text(sorted(set(a) | set(b))), "the union, sorted, once each"),
              equals(f"{folder}/{na}", _text(a), f"{na} is unchanged"),
              equals(f"{folder}/{nb_}", _text(b), f"{nb_} is unchanged")]
    work = [f"cat {folder}/{na} {folder}/{nb_}", f"sort -u {folder}/{na} {folder}/{nb_} > {out}", f"cat {out}"]
    return Task(title=f"merge {na} and {nb_}", directive=directive,
                description="merge two lists without duplicates", files=files, checks=checks, work=work)


def ls_missing(ctx: Ctx) -> Task:
    rng = ctx.rng
    hosts = _hosts(rng, rng.randint(8, 12))
    monitored = rng.sample(hosts, len(hosts) - rng.randint(2, 4))
    inv = rng.choice(['~/inventory', '~/ops', '~/infra', '~/cmdb'])
    inv += "/" + rng.choice(['hosts.txt', 'inventory.txt', 'all-hosts.txt'])
    mon = rng.choice(['~/monitoring', '~/nagios', '~/prometheus'])
    mon += "/" + rng.choice(['targets.txt', 'monitored.txt', 'hosts.list'])
    out = rng.choice(["~/unmonitored.txt", "~/ops-missing.txt", "~/report/unmonitored.txt", "~/todo/add-to-monitoring.txt"])
    shuffled = list(hosts)
    rng.shuffle(shuffled)
    files = [f(inv, _text(shuffled)), f(mon, _text(sorted(monitored)))]
    files += _folder_of(out, files)
    directive = [f"Some machines are in the inventory ({inv}) but not in monitoring ({mon}). Write the "
                 f"host names that are in {inv} and missing from {mon} to {out}, one a line, sorted."]
    missing = sorted(set(hosts) - set(monitored))
    checks = [equals(out, _text(missing), "the hosts missing from monitoring, sorted")]
    work = [f"cat {inv}", f"cat {mon}", f"grep -vxF -f {mon} {inv} | sort > {out}", f"cat {out}"]
    return Task(title="hosts missing from monitoring", directive=directive,
                description="the lines of one list that another lacks", files=files, checks=checks, work=work)


def ls_by_column(ctx: Ctx) -> Task:
    rng = ctx.rng
    names = distinct(rng, [f"{a} {b}" for a in FIRST for b in LAST], rng.randint(5, 8))
    scores = rng.sample(range(12, 990), len(names))
    col = rng.choice(["points", "sales", "tickets", "commits"])
    folder = rng.choice(['~/reports', '~/data', '~', '~/stats', '~/team'])
    path = f"{folder}/{col}-{rng.choice(['2024', 'q3', 'week41', 'march', 'total'])}.csv"
    out = path.replace(".csv", "-ranked.csv")
    rows = [f"{n},{s}" for n, s in zip(names, scores)]
    files = [f(path, f"name,{col}\n" + _text(rows))]
    ranked = [r for _, r in sorted(zip(scores, rows), reverse=True)]
    directive = [f"Rank the people in {path} by {col}, highest first, and write the result to {out}: the same "
                 "header line first, then the same rows in the new order."]
    checks = [equals(out, f"name,{col}\n" + _text(ranked), f"rows by {col}, highest first, under the header")]
    work = [f"cat {path}", f"head -n 1 {path} > {out}", f"tail -n +2 {path} | sort -t, -k2,2nr >> {out}",
            f"cat {out}"]
    return Task(title=f"rank by {col}", directive=directive,
                description="sort a CSV by a numeric column under its header", files=files, checks=checks,
                work=work)


def ls_common(ctx: Ctx) -> Task:
    rng = ctx.rng
    what, items = _pool(rng, rng.randint(10, 14))
    a = rng.sample(items, len(items) * 2 // 3)
    b = rng.sample(items, len(items) * 2 // 3)
    if not set(a) & set(b):  # pragma: no cover - 2/3 + 2/3 of one pool always overlap
        b.append(a[0])
    folder = rng.choice(["~/lists", "~/events", "~/club", "~/work/lists"])
    la = f"{folder}/{rng.choice(HOSTS)}-{rng.choice(['march', 'q1', 'week12'])}.txt"
    lb = f"{folder}/{rng.choice(['signed-up', 'confirmed', 'paid', 'attended'])}.txt"
    out = rng.choice(["~/both.txt", "~/lists/both.txt", "~/report/common.txt"])
    files = [f(la, _text(a)), f(lb, _text(b))]
    files += _folder_of(out, files)
    directive = [f"Which {what} are in both {la} and {lb}? Write them to {out}, one a line, sorted "
                 "alphabetically, each once."]
    checks = [equals(out, _text(sorted(set(a) & set(b))), "the entries in both lists, sorted")]
    work = [f"cat {la} {lb}", f"grep -xF -f {la} {lb} | sort -u > {out}", f"cat {out}"]
    return Task(title="entries in both lists", directive=directive,
                description="the lines two lists have in common", files=files, checks=checks, work=work)


LISTS = [ls_dedupe, ls_merge, ls_missing, ls_by_column, ls_common]

__all__ = ["LISTS"]
