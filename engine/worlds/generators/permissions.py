"""permissions: set file and directory modes, asked for in octal, symbolic or plain words.

Variants: an executable script; an ssh key and ~/.ssh; a published folder with one private file;
scripts and data files; files holding passwords; modes throughout a tree; read-only signed documents.
"""
from __future__ import annotations

from teletype.engine.worlds.generators.common import Ctx, Task, d, exists, f, mode
from teletype.engine.worlds.generators.world import PROJECTS, shell_script

_WORDS = {"0755": "readable and executable by everyone, writable only by you",
          "0750": "readable and executable by you and your group, writable only by you, nothing for others",
          "0700": "readable, writable and executable by you only",
          "0644": "readable by everyone, writable only by you",
          "0640": "readable by you and your group, writable only by you, nothing for others",
          "0600": "readable and writable by you only",
          "0444": "read-only for everyone (you included)",
          "0775": "readable, writable and executable by you and your group, readable and executable by others",
          "0664": "readable and writable by you and your group, readable by others"}


def _sym(m: str) -> str:
    bits = int(m, 8)
    out = ""
    for shift in (6, 3, 0):
        v = (bits >> shift) & 7
        out += ("r" if v & 4 else "-") + ("w" if v & 2 else "-") + ("x" if v & 1 else "-")
    return out


def _say(rng, m: str) -> str:
    how = rng.randrange(3)
    if how == 0:
        return f"mode {m[1:]}"
    if how == 1:
        return _sym(m)
    return _WORDS[m]


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _make(rng, subject: str, m: str) -> str:
    """A clause asking for mode `m` on `subject`, in octal, symbolic or plain words."""
    how = rng.randrange(3)
    if how == 0:
        return f"set {subject} to mode {m[1:]}"
    if how == 1:
        return f"set {subject} to {_sym(m)}"
    return f"make {subject} {_WORDS[m]}"


def pm_exec(ctx: Ctx) -> Task:
    rng = ctx.rng
    name = rng.choice(["deploy.sh", "backup.sh", "report", "sync.sh", "build.sh", "rotate-logs"])
    folder = rng.choice(["~/bin", "~/scripts", f"~/{rng.choice(PROJECTS)}/tools"])
    path = f"{folder}/{name}"
    target = rng.choice(["0755", "0750", "0700"])
    start = rng.choice(["0644", "0640", "0600", "0664"])
    purpose = name.split(".")[0].split("-")[0]
    files = [f(path, shell_script(rng, purpose), start), f(f"{folder}/README", f"scripts for {ctx.host}\n", "0644")]
    who = {"0755": "executable by everyone", "0750": "executable by you and your group (not by others)",
           "0700": "executable by you only"}[target]
    directive = [f"Make {path} {who}: in full, {_say(rng, target)}."]
    checks = [mode(path, target), mode(f"{folder}/README", "0644", "the README is unchanged")]
    work = [f"ls -l {folder}", f"chmod {target[1:]} {path}", f"ls -l {path}"]
    return Task(title=f"make {name} executable", directive=directive,
                description=f"make a script executable with mode {target}", files=files, checks=checks, work=work)


def pm_ssh(ctx: Ctx) -> Task:
    rng = ctx.rng
    key = rng.choice(["id_ed25519", "id_rsa", "id_ecdsa"])
    files = [d("~/.ssh", rng.choice(["0755", "0775"])),
             f(f"~/.ssh/{key}", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"
                                "AAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----\n",
               rng.choice(["0644", "0664", "0640"])),
             f(f"~/.ssh/{key}.pub", f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGRlbW8 {ctx.user}@{ctx.host}\n", "0644"),
             f("~/.ssh/known_hosts", f"git.{ctx.host}.lan ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHNlcnZlcg\n", "0644")]
    extra = rng.choice([[], ["config"], ["authorized_keys"], ["config", "authorized_keys"]])
    bodies = {"config": f"Host git\n    HostName git.{ctx.host}.lan\n    User {ctx.user}\n",
              "authorized_keys": f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG9mZmljZQ {ctx.user}@laptop\n"}
    files += [f(f"~/.ssh/{x}", bodies[x], rng.choice(["0664", "0666", "0644"])) for x in extra]
    directive = [f"ssh to the git server refuses my key (\"UNPROTECTED PRIVATE KEY FILE!\"). The private key "
                 f"~/.ssh/{key} must be {_say(rng, '0600')}, and ~/.ssh itself must be accessible by me only "
                 f"({_sym('0700')})."]
    if extra:
        directive.append(f"ssh is just as picky about {' and '.join('~/.ssh/' + x for x in extra)}: make "
                         f"{'it' if len(extra) == 1 else 'them'} {_sym('0600')} too.")
    directive.append("The public key and known_hosts stay readable by everyone.")
    checks = [mode(f"~/.ssh/{key}", "0600"), mode("~/.ssh", "0700")] + [mode(f"~/.ssh/{x}", "0600") for x in extra]
    checks += [mode(f"~/.ssh/{key}.pub", "0644", "the public key stays readable"), exists("~/.ssh/known_hosts")]
    work = ["ls -la ~/.ssh", f"chmod 600 ~/.ssh/{key}" + "".join(f" ~/.ssh/{x}" for x in extra), "chmod 700 ~/.ssh",
            "ls -la ~/.ssh"]
    return Task(title="ssh key permissions", directive=directive,
                description="tighten the permissions of an ssh private key and ~/.ssh", files=files,
                checks=checks, work=work)


def pm_publish(ctx: Ctx) -> Task:
    rng = ctx.rng
    root = rng.choice(["~/shared/reports", "~/public/docs", "~/share/minutes"])
    names = rng.sample(["q1.csv", "q2.csv", "q3.csv", "summary.txt", "minutes-0412.txt", "plan.md"], 3)
    private = rng.choice(["salaries.csv", "reviews.txt", "passwords.txt"])
    files = [d(root, "0700")] + [f(f"{root}/{n}", f"{n}\n", rng.choice(["0600", "0640"])) for n in names]
    files.append(f(f"{root}/{private}", "confidential\n", rng.choice(["0644", "0640", "0664"])))
    directive = [f"Publish {root} for the whole team. {_cap(_make(rng, 'the folder itself', '0755'))}. "
                 f"{_cap(_make(rng, 'the files in it', '0644'))}, except {private}: "
                 f"{_make(rng, 'that one', '0600')}."]
    checks = [mode(root, "0755")] + [mode(f"{root}/{n}", "0644") for n in names] + [mode(f"{root}/{private}", "0600")]
    work = [f"ls -la {root}", f"chmod 755 {root}", f"chmod 644 {root}/*", f"chmod 600 {root}/{private}",
            f"ls -la {root}"]
    return Task(title=f"publish {root.rsplit('/', 1)[-1]}", directive=directive,
                description="open a folder to everyone while keeping one file private", files=files,
                checks=checks, work=work)


def pm_scripts(ctx: Ctx) -> Task:
    rng = ctx.rng
    root = rng.choice(["~/tools", "~/ops/scripts", "~/bin"])
    target = rng.choice(["0750", "0755", "0700"])
    scripts = rng.sample(["backup", "rotate", "report", "sync", "cleanup", "check"], 3)
    data = rng.sample(["README", "hosts.list", "notes.txt", "config.ini"], 2)
    files = [f(f"{root}/{s}.sh", shell_script(rng, s), rng.choice(["0644", "0777", "0700", "0600"])) for s in scripts]
    files += [f(f"{root}/{n}", f"{n} for {ctx.host}\n", rng.choice(["0755", "0775", "0777"])) for n in data]
    directive = [f"The scripts in {root} have inconsistent permissions. "
                 f"{_cap(_make(rng, 'every *.sh file there', target))}. Files that are not .sh scripts must "
                 f"not be executable by anyone: {_make(rng, 'them', '0644')}."]
    checks = [mode(f"{root}/{s}.sh", target) for s in scripts] + [mode(f"{root}/{n}", "0644") for n in data]
    work = [f"ls -l {root}", f"chmod {target[1:]} {root}/*.sh", "chmod 644 " + " ".join(f"{root}/{n}" for n in data),
            f"ls -l {root}"]
    return Task(title="script permissions", directive=directive,
                description="make scripts executable for some and data files non-executable", files=files,
                checks=checks, work=work)


def pm_secrets(ctx: Ctx) -> Task:
    rng = ctx.rng
    proj = rng.choice(PROJECTS)
    root = rng.choice([f"~/{proj}", f"~/.config/{proj}", f"~/srv/{proj}"])
    target = rng.choice(["0600", "0640"])
    secrets = rng.sample([(".env", f"DB_PASSWORD=s3cret-{rng.randint(100, 999)}\n"),
                          ("credentials.ini", "[api]\ntoken = not-a-real-token\n"),
                          ("db.pass", "hunter2\n"), ("smtp.secret", "password=changeme\n")], 2)
    public = [("README.md", f"# {proj}\n"), ("settings.ini", "[app]\nworkers = 4\n")]
    files = [f(f"{root}/{n}", c, rng.choice(["0644", "0664", "0666"])) for n, c in secrets]
    files += [f(f"{root}/{n}", c, "0644") for n, c in public]
    listing = " and ".join(n for n, _ in secrets)
    directive = [f"The security scan flagged {root}: the files holding passwords ({listing}) are readable by "
                 f"everyone. Make them {_say(rng, target)}. The other files there stay as they are."]
    checks = [mode(f"{root}/{n}", target) for n, _ in secrets] + [mode(f"{root}/{n}", "0644") for n, _ in public]
    work = [f"ls -la {root}", f"chmod {target[1:]} " + " ".join(f"{root}/{n}" for n, _ in secrets), f"ls -la {root}"]
    return Task(title="secrets are world-readable", directive=directive,
                description="restrict files holding passwords, keeping others as they are", files=files,
                checks=checks, work=work)


def pm_tree(ctx: Ctx) -> Task:
    rng = ctx.rng
    root = rng.choice(["~/www", "~/public_html", f"~/sites/{rng.choice(PROJECTS)}"])
    dmode, fmode = rng.choice([("0755", "0644"), ("0775", "0664"), ("0750", "0640")])
    dirs = [root, f"{root}/css", f"{root}/img", f"{root}/blog", f"{root}/blog/2024"]
    files = [d(p, rng.choice(["0700", "0777", "0711", "0755" if dmode != "0755" else "0700"])) for p in dirs]
    fl = [f"{root}/index.html", f"{root}/css/site.css", f"{root}/img/logo.svg", f"{root}/blog/2024/hello.html"]
    files += [f(p, f"<!-- {p.rsplit('/', 1)[-1]} -->\n", rng.choice(["0600", "0666", "0755", "0700"])) for p in fl]
    # at least one of each kind is wrong to begin with
    files[0]["mode"] = "0700"
    files[len(dirs)]["mode"] = "0600"
    directive = [f"The web server cannot read parts of {root}. Under {root} (itself included), "
                 f"{_make(rng, 'every directory', dmode)}; and {_make(rng, 'every file', fmode)}."]
    checks = [mode(p, dmode) for p in dirs] + [mode(p, fmode) for p in fl]
    work = [f"ls -lR {root}", f"find {root} -type d -exec chmod {dmode[1:]} {{}} +",
            f"find {root} -type f -exec chmod {fmode[1:]} {{}} +", f"ls -lR {root}"]
    return Task(title=f"fix {root} permissions", directive=directive,
                description="set directory and file modes throughout a tree", files=files, checks=checks, work=work)


def pm_readonly(ctx: Ctx) -> Task:
    rng = ctx.rng
    root = rng.choice(["~/contracts", "~/legal/signed", "~/archive/final"])
    signed = [f"{c}-signed.pdf" for c in rng.sample(["acme", "globex", "initech", "hooli", "stark"], 3)]
    drafts = [f"{c}-draft.odt" for c in rng.sample(["wayne", "umbrella"], 1)]
    files = [f(f"{root}/{n}", "%PDF-1.4 signed\n", rng.choice(["0644", "0664", "0600"])) for n in signed]
    files += [f(f"{root}/{n}", "draft\n", "0644") for n in drafts]
    directive = [f"Nobody may overwrite the signed contracts by accident: "
                 f"{_make(rng, f'every *-signed.pdf in {root}', '0444')}. The drafts stay editable ({_sym('0644')})."]
    checks = [mode(f"{root}/{n}", "0444") for n in signed] + [mode(f"{root}/{n}", "0644") for n in drafts]
    work = [f"ls -l {root}", f"chmod 444 {root}/*-signed.pdf", f"ls -l {root}"]
    return Task(title="protect signed contracts", directive=directive,
                description="make some files read-only for everyone", files=files, checks=checks, work=work)


PERMISSIONS = [pm_exec, pm_ssh, pm_publish, pm_scripts, pm_secrets, pm_tree, pm_readonly]

__all__ = ["PERMISSIONS"]
