"""symlinks: create, repair and replace symbolic links as asked, leaving their targets alone.

Variants: link dotfiles from a dotfiles folder; repair a dangling link to a tool that moved; a
relative link inside a project; replace a stale copy with a link to the original. (Switching a
`current` release link is a file_create variant, in training; these are not.)
"""
from __future__ import annotations

from teletype.engine.worlds.generators.common import Ctx, Task, command, exists, f, link, shp
from teletype.engine.worlds.generators.world import PROJECTS, shell_script


def _is_link_to(path: str, target: str, desc: str = "") -> dict:
    """`path` is a symbolic link and resolves to the same file or directory as `target`."""
    return command(f"[ -L {shp(path)} ] && [ {shp(path)} -ef {shp(target)} ]",
                   desc or f"{path} is a symbolic link to {target}")


_DOTFILES = {"vimrc": "set number\nset expandtab\n", "gitconfig": "[user]\n\tname = {user}\n",
             "bashrc": "alias ll='ls -l'\n", "tmux.conf": "set -g mouse on\n", "inputrc": "set bell-style none\n"}


def sl_dotfiles(ctx: Ctx) -> Task:
    rng = ctx.rng
    repo = rng.choice(["~/dotfiles", "~/src/dotfiles", "~/.dotfiles"])
    names = rng.sample(sorted(_DOTFILES), rng.choice([2, 3]))
    extra = rng.choice([n for n in sorted(_DOTFILES) if n not in names])
    files = [f(f"{repo}/{n}", _DOTFILES[n].format(user=ctx.user)) for n in names + [extra]]
    files.append(f(f"{repo}/README.md", "my dotfiles: link them into ~\n"))
    wanted = [f"~/.{n}" for n in names]
    directive = [f"Set up my dotfiles from {repo}: " + ", ".join(
        f"~/.{n} must be a symbolic link to {repo}/{n}" for n in names) +
        f". Leave {repo}/{extra} unlinked for now."]
    checks = [_is_link_to(w, f"{repo}/{n}") for w, n in zip(wanted, names)]
    checks.append(command(f"[ ! -e ~/.{extra} ]", f"~/.{extra} is not linked"))
    checks += [exists(f"{repo}/{n}", f"{repo}/{n} is still there") for n in names]
    work = [f"ls -la {repo}"] + [f"ln -s {repo}/{n} ~/.{n}" for n in names] + ["ls -la ~"]
    return Task(title="link my dotfiles", directive=directive, description="create links to dotfiles in a repo",
                files=files, checks=checks, work=work)


def sl_dangling(ctx: Ctx) -> Task:
    rng = ctx.rng
    tool = rng.choice(["fmt-json", "lint", "deployctl", "backup-db", "tidy", "mkreport"])
    bindir = rng.choice(["~/bin", "~/.local/bin"])
    optroot = rng.choice(["~/opt", "~/tools", "~/apps"])
    old, new = f"{tool}-1.{rng.randint(0, 4)}", f"{tool}-2.{rng.randint(0, 4)}"
    real = f"{optroot}/{new}/bin/{tool}"
    files = [f(real, shell_script(rng, tool), "0755"), f(f"{optroot}/{new}/CHANGES", f"{new}: moved from {old}\n"),
             link(f"{bindir}/{tool}", f"{optroot}/{old}/bin/{tool}".replace("~", ctx.home, 1)),
             f(f"{bindir}/notes.txt", f"{tool} lives under {optroot}\n")]
    directive = [f"Running `{tool}` fails with \"not found\": {bindir}/{tool} is a symbolic link into "
                 f"{optroot}/{old}, which was removed when {tool} was upgraded. Point {bindir}/{tool} at the "
                 f"{tool} program of the installed version under {optroot} (keep it a link)."]
    checks = [_is_link_to(f"{bindir}/{tool}", real), exists(f"{bindir}/notes.txt", "the notes stay")]
    work = [f"ls -l {bindir}", f"ls {optroot}", f"ls {optroot}/{new}/bin", f"ln -sf {real} {bindir}/{tool}",
            f"ls -l {bindir}/{tool}"]
    return Task(title=f"{tool}: dangling link", directive=directive,
                description="repair a dangling link to a program that moved", files=files, checks=checks,
                work=work)


def sl_relative(ctx: Ctx) -> Task:
    rng = ctx.rng
    proj = rng.choice(PROJECTS)
    root = rng.choice([f"~/{proj}", f"~/src/{proj}", f"~/work/{proj}"])
    sub = rng.choice(["config", "conf", "settings"])
    envs = rng.sample(["dev", "staging", "prod", "test", "local"], 3)
    want = envs[1]
    active = rng.choice(["active.ini", "current.conf", "app.ini"])
    files = [f(f"{root}/{sub}/{e}.ini", f"[app]\nenv = {e}\n") for e in envs]
    files.append(f(f"{root}/README.md", f"# {proj}\nThe project folder is moved between machines.\n"))
    directive = [f"In {root}/{sub}, {active} must be a symbolic link to {want}.ini in the same folder. The "
                 f"project folder gets moved around, so make it a relative link (its target is just "
                 f"{want}.ini, no absolute path)."]
    path = f"{root}/{sub}/{active}"
    checks = [_is_link_to(path, f"{root}/{sub}/{want}.ini"),
              command(f"case \"$(readlink {shp(path)})\" in /*) false ;; esac", f"{active} is a relative link")]
    checks += [exists(f"{root}/{sub}/{e}.ini") for e in envs]
    work = [f"ls -l {root}/{sub}", f"cd {root}/{sub}", f"ln -s {want}.ini {active}", "ls -l", "cat " + active]
    return Task(title=f"{proj}: {active} -> {want}.ini", directive=directive,
                description="a relative link inside a project", files=files, checks=checks, work=work)


def sl_replace_copy(ctx: Ctx) -> Task:
    rng = ctx.rng
    script = rng.choice(["backup.sh", "sync.sh", "rotate.sh", "report.sh"])
    origin = rng.choice([f"~/scripts/{script}", f"~/{rng.choice(PROJECTS)}/tools/{script}"])
    copy = rng.choice([f"~/bin/{script}", f"~/cron/{script}"])
    body = shell_script(rng, script.split(".")[0])
    files = [f(origin, body + "# v2: retries added\n", "0755"), f(copy, body, "0755"),
             f(copy.rsplit("/", 1)[0] + "/README", "cron jobs run from here\n")]
    directive = [f"{copy} is an old copy of {origin}, and the two have drifted apart. Replace the copy with a "
                 f"symbolic link to {origin}, so there is one script to maintain. Do not change {origin}."]
    checks = [_is_link_to(copy, origin),
              command(f"grep -q 'v2: retries added' {shp(origin)}", f"{origin} is unchanged")]
    work = [f"ls -l {copy} {origin}", f"diff {origin} {copy}", f"rm {copy}", f"ln -s {origin} {copy}",
            f"ls -l {copy}"]
    return Task(title=f"{script}: one script, not two", directive=directive,
                description="replace a stale copy with a link to the original", files=files, checks=checks,
                work=work)


SYMLINKS = [sl_dotfiles, sl_dangling, sl_relative, sl_replace_copy]

__all__ = ["SYMLINKS"]
