"""The docker sandbox: one container per session, driven through the docker SDK.

The container has no network, a pids limit (fork bombs stay inside it), a memory limit, no
capabilities and no-new-privileges; its pid 1 is a placeholder that only reaps orphans. The
scenario's files are copied in before it starts (home owned by the login user, the run dir and files
outside home root-owned and read-only). The login shell is a `docker exec` with a tty, as the
scenario's user; its raw tty stream is the Terminal. Every container carries the label
`teletype=1`, so a leftover one can be found (`docker ps -a --filter label=teletype=1`).

By default the image is built here from the host's static busybox (see dockerimage.py); `image=`
names any image with /bin/sh instead.

Where the daemon runs on this machine (the exec's pid shows up in our /proc, in the container's
cgroup), the terminal's foreground process group, modes and blocked readers are read from the host
/proc, as for a local pty, and signals go straight to host process groups. For a remote daemon the
terminal falls back to small `sh -c` execs inside the container: foreground_pgrp() is None
("cannot know"), waiting_for_input() asks the container (at most once a second), kill_pgrp() runs
`kill` there, and restore_modes() runs `stty -F ... sane` there and, since the Shell could not kill
a program it cannot see, also kills the process group that still holds the terminal, if any.

Busybox ash edits its command line in raw mode and saves whatever modes it finds when it starts
a line: so the modes are fixed *before* a program is killed (kill_pgrp), never under the shell.
"""
from __future__ import annotations

import io
import os
import platform
import select
import signal
import socket
import struct
import tarfile
import termios
import threading
import time
from pathlib import Path

from ..scenario import Scenario
from .base import (RUN_DIR, ExecResult, Login, SandboxError, StagingDir, passwd_lines, stage_home,
                   stage_run_dir)
from .dockerimage import ensure_busybox_image
from .ptyterm import _READ_SYSCALLS, blocked_on_tty, pids_in_pgrp

PIDS_LIMIT = 256
MEM_LIMIT = "512m"
FSIZE_LIMIT = 256 << 20   # largest file the sandbox may write
NOFILE_LIMIT = 1024
LABEL = "teletype"
API_TIMEOUT = 60

# pid 1: waits (and so reaps every orphan the session leaves behind) and ends on TERM.
PLACEHOLDER = ("trap 'exit 0' TERM; command -v sleep >/dev/null || { echo 'teletype: no sleep in the image' >&2; "
               "exit 1; }; while :; do sleep 2147483647 & wait; done")
# exec(): report our pid on stderr (stripped again) so that a timeout can end the whole tree.
_EXEC_MARK = b"\x1eteletype-exec "
_EXEC_WRAP = "printf '\\036teletype-exec %s\\n' \"$$\" >&2; exec /bin/sh -c \"$1\""

# start(): size the tty, then become the login shell (same pid).
_LOGIN_WRAP = 'stty rows "$1" cols "$2" 2>/dev/null; exec "$0" -i'

HINT = ("start a docker daemon (`.ci/dockerd.sh` starts a private one and prints the DOCKER_HOST to "
        "use), point DOCKER_HOST at a running one, or use --sandbox bwrap")

# In-container helpers (remote daemons), run as the login user. $1 is a pid in the container.
_KILL_TREE = r"""
root=$1; sig=${2:-KILL}
for round in 1 2 3; do
  pids=$root; changed=1
  while [ $changed = 1 ]; do
    changed=0
    for f in /proc/[0-9]*/stat; do
      read -r l < "$f" 2>/dev/null || continue
      p=${l%% *}; r=${l##*) }; set -- $r
      case " $pids " in *" $p "*) continue;; esac
      case " $pids " in *" $2 "*) pids="$pids $p"; changed=1;; esac
    done
  done
  kill -s $sig $pids 2>/dev/null
done
exit 0
"""

_WAITING = r"""
sh=$1; reads=$2
t=$(readlink /proc/$sh/fd/0) || exit 3
case $(stty -F "$t" -a 2>/dev/null) in *-icanon*) echo raw; exit 0;; esac
read -r l < /proc/$sh/stat || exit 3
r=${l##*) }; set -- $r; tp=$6
[ "$tp" -gt 0 ] 2>/dev/null || exit 0
for d in /proc/[0-9]*; do
  read -r l < $d/stat 2>/dev/null || continue
  r=${l##*) }; set -- $r
  [ "$3" = "$tp" ] || continue
  case $1 in T|t) echo stopped; exit 0;; S) ;; *) continue;; esac
  read -r nr fd rest < $d/syscall 2>/dev/null || continue
  case " $reads " in *" $nr "*) ;; *) continue;; esac
  case $(readlink $d/fd/$((fd)) 2>/dev/null) in /dev/pts/*|/dev/tty*|/dev/console) echo read; exit 0;; esac
done
exit 0
"""

# Cooked modes again on the tty of the shell with container pid $1, unless the shell holds it;
# with $2 = kill, the process group holding it is killed too (after the modes are fixed).
_RESTORE = r"""
__tt_restore() {
  k=$2
  t=$(readlink /proc/$1/fd/0) && read -r l < /proc/$1/stat || return 0
  r=${l##*) }; set -- $r
  [ "$6" = "$3" ] && return 0
  stty -F "$t" sane
  [ "$k" = kill ] && [ "$6" -gt 1 ] && kill -s KILL -- "-$6"
  return 0
}
"""

_FIND_SHELL = r"""
for d in /proc/[0-9]*; do
  read -r l < $d/stat 2>/dev/null || continue
  p=${l%% *}; r=${l##*) }; set -- $r
  [ "$4" = "$p" ] && [ "$5" != 0 ] && echo $p
done
exit 0
"""


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) < 300 else text[:300] + "..."


PRIVATE_SOCKET = "unix:///tmp/teletype-docker/docker.sock"   # where .ci/dockerd.sh starts one


def _default_host() -> str | None:
    """DOCKER_HOST when set; else the default socket; else the private daemon's, when it exists."""
    if os.environ.get("DOCKER_HOST"):
        return None  # docker.from_env() reads it (with DOCKER_TLS_VERIFY and DOCKER_CERT_PATH)
    if os.path.exists("/var/run/docker.sock"):
        return None
    private = os.environ.get("TELETYPE_DOCKER_SOCK") or PRIVATE_SOCKET
    if private.startswith("unix://") and os.path.exists(private[len("unix://"):]):
        return private
    return None


def connect(docker_host: str | None = None, timeout: float = API_TIMEOUT):
    """A DockerClient for `docker_host` (or DOCKER_HOST, or the default socket) that answers a ping."""
    try:
        import docker
    except ImportError as exc:  # pragma: no cover - docker is a dependency
        raise SandboxError("the docker sandbox needs the docker SDK: `pip install docker`") from exc
    docker_host = docker_host or _default_host()
    where = docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if where.startswith("unix://") and not os.path.exists(where[len("unix://"):]):
        raise SandboxError(f"cannot reach a docker daemon: there is no socket at {where} "
                           f"(DOCKER_HOST={os.environ.get('DOCKER_HOST', '')!r}). {HINT}")
    try:
        if docker_host:
            client = docker.DockerClient(base_url=docker_host, timeout=timeout)
        else:
            client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as exc:  # DockerException, requests' errors, OSError: all mean "not reachable"
        raise SandboxError(f"cannot reach a docker daemon at {where}: {_short(exc)}. {HINT}") from exc
    return client


def _hijack(api, exec_id: str, tty: bool):
    """Start exec `exec_id` attached; return (raw socket, bytes already read past the HTTP head, keep)."""
    sock = api.exec_start(exec_id, tty=tty, socket=True)
    response = getattr(sock, "_response", None)
    raw = getattr(sock, "_sock", sock)
    leftover = b""
    if isinstance(raw, socket.socket):
        # The HTTP client may have buffered the stream's first bytes along with the 101 head.
        try:
            fp = response.raw._fp.fp if response is not None else None
        except AttributeError:
            fp = None
        if fp is not None and hasattr(fp, "read1"):
            raw.setblocking(False)
            try:
                leftover = fp.read1(65536) or b""
            except (BlockingIOError, OSError, ValueError):
                leftover = b""
        raw.settimeout(None)
    return raw, leftover, (sock, response)


def _recv(raw, n: int = 65536) -> bytes | None:
    """One read from the stream: bytes, b"" at EOF, None when nothing was ready after all."""
    try:
        return raw.recv(n)
    except (BlockingIOError, InterruptedError):
        return None
    except (ConnectionError, OSError, ValueError):
        return b""


def _ready(raw, timeout: float) -> bool:
    pending = getattr(raw, "pending", None)  # TLS sockets buffer decrypted bytes
    if pending is not None:
        try:
            if pending():
                return True
        except Exception:
            pass
    try:
        r, _, _ = select.select([raw], [], [], max(0.0, timeout))
    except (OSError, ValueError):
        raise EOFError from None
    return bool(r)


def _stat_fields(path: str) -> list[str] | None:
    """/proc/PID/stat from the state on (field 3), or None."""
    try:
        with open(path, "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rfind(b")") + 2:].decode("ascii", "replace").split()


def _in_container(pid: int, container_id: str) -> bool:
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            return container_id in f.read()
    except OSError:
        return False


def _ns_pid(pid: int) -> int | None:
    """The pid of host process `pid` in its innermost pid namespace."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except (OSError, ValueError):
        pass
    return None


def _host_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(f"/proc/{entry}/stat")
            if fields and len(fields) > 1:
                children.setdefault(int(fields[1]), []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def _sane(attrs: list) -> list:
    """`stty sane` on a tcgetattr list: cooked input, echo, signals, output post-processing."""
    iflag, oflag, cflag, lflag, ispeed, ospeed, cc = attrs
    iflag = (iflag | termios.BRKINT | termios.ICRNL | termios.IMAXBEL) & ~(
        termios.IGNBRK | termios.INLCR | termios.IGNCR | termios.IXOFF)
    oflag = (oflag | termios.OPOST | termios.ONLCR) & ~(termios.OCRNL | termios.ONOCR | termios.ONLRET)
    cflag |= termios.CREAD
    lflag = (lflag | termios.ICANON | termios.ISIG | termios.IEXTEN | termios.ECHO | termios.ECHOE
             | termios.ECHOK | termios.ECHOCTL | termios.ECHOKE) & ~(
        termios.ECHONL | termios.NOFLSH | termios.TOSTOP | termios.ECHOPRT)
    cc = list(cc)
    for key, value in ((termios.VINTR, 3), (termios.VQUIT, 0x1c), (termios.VERASE, 0x7f),
                       (termios.VKILL, 0x15), (termios.VEOF, 4), (termios.VSUSP, 0x1a)):
        cc[key] = bytes([value])
    cc[termios.VMIN], cc[termios.VTIME] = 1, 0
    return [iflag, oflag, cflag, lflag, ispeed, ospeed, cc]


class DockerTerminal:
    """The login shell's exec: its tty stream, and what can be known about its processes."""

    def __init__(self, sandbox: "DockerSandbox", exec_id: str, rows: int, cols: int,
                 force_remote: bool = False):
        self.sandbox = sandbox
        self.api = sandbox.client.api
        self.exec_id = exec_id
        self.raw, self._pending, self._keep = _hijack(self.api, exec_id, tty=True)
        self._eof = False
        self._closed = False
        self._write_lock = threading.Lock()
        self._io_lock = threading.Lock()
        self._modes: list | None = None
        self._alive_at = 0.0
        self._alive = True
        self._waiting_at = 0.0
        self._waiting = False
        self.host_pid: int | None = None      # the shell in this host's pid namespace (local daemon)
        self.container_pid: int | None = None  # the shell in the container's pid namespace
        self._start_time: str | None = None
        self._host_tty = False                 # whether the tty can be opened from the host

        pid = 0
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            info = self.api.exec_inspect(exec_id)
            pid = info.get("Pid") or 0
            if info.get("Running") and pid:
                break
            if not info.get("Running") and info.get("ExitCode") is not None:
                break  # already over (the shell could not start): the stream tells why
            time.sleep(0.01)
        self.resize(rows, cols)
        cid = sandbox.container_id or ""
        if pid and not force_remote and _in_container(pid, cid):
            fields = _stat_fields(f"/proc/{pid}/stat")
            if fields and len(fields) > 19:
                self.host_pid = pid
                self._start_time = fields[19]
                self.container_pid = _ns_pid(pid)
                self._host_tty = self._tty_attrs() is not None
        if self.container_pid is None and pid:
            self.container_pid = self._find_shell()

    # -- the stream -------------------------------------------------------------------------
    def read(self, timeout: float) -> bytes:
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        # Under the io lock, so that close() never frees the socket's fd number while a read is
        # between select and recv (a reused number would hand this reader another session's bytes).
        with self._io_lock:
            if self._eof or self._closed:
                raise EOFError
            if not _ready(self.raw, timeout):
                return b""
            data = _recv(self.raw)
        if data is None:
            return b""
        if not data:
            self._eof = True
            raise EOFError
        return data

    def write(self, data: bytes) -> None:
        with self._write_lock:
            if self._eof or self._closed:
                raise EOFError
            self._waiting, self._waiting_at = False, 0.0  # what a new keystroke starts is unknown yet
            try:
                self.raw.sendall(data)
            except (OSError, ValueError) as exc:
                raise EOFError from exc

    def resize(self, rows: int, cols: int) -> None:
        try:
            self.api.exec_resize(self.exec_id, height=rows, width=cols)
        except Exception:
            pass

    # -- processes ----------------------------------------------------------------------------
    def _same_shell(self) -> bool:
        if self.host_pid is None:
            return False
        fields = _stat_fields(f"/proc/{self.host_pid}/stat")
        return bool(fields) and len(fields) > 19 and fields[19] == self._start_time and fields[0] not in "ZX"

    def foreground_pgrp(self) -> int | None:
        if self.host_pid is None:
            return None
        fields = _stat_fields(f"/proc/{self.host_pid}/stat")
        if not fields or len(fields) < 6 or fields[19:20] != [self._start_time]:
            return None
        tpgid = int(fields[5])
        return tpgid if tpgid > 0 else None

    def _open_tty(self) -> int:
        """The shell's terminal, opened from the host through /proc (its fd 0, 1 or 2)."""
        for n in (0, 1, 2):
            path = f"/proc/{self.host_pid}/fd/{n}"
            try:
                target = os.readlink(path)
            except OSError:
                continue
            if target.startswith("/dev/pts/") or target.startswith("/dev/tty") or target == "/dev/console":
                return os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        raise OSError("the shell has no terminal open")

    def _tty_attrs(self) -> list | None:
        if self.host_pid is None:
            return None
        try:
            fd = self._open_tty()
        except OSError:
            return None
        try:
            if not os.isatty(fd) or not self._same_shell():
                return None
            return termios.tcgetattr(fd)
        except termios.error:
            return None
        finally:
            os.close(fd)

    def waiting_for_input(self, pgrp: int | None) -> bool:
        if self._host_tty:
            attrs = self._tty_attrs()
            if attrs is None:
                return False
            if not attrs[3] & termios.ICANON:
                return True  # a full-screen program (vi, less) put the terminal in raw mode
            if pgrp is None or not self._own_pgrp(pgrp):
                return False
            pids = pids_in_pgrp(pgrp)
            if any(blocked_on_tty(pid) for pid in pids):
                return True
            if os.geteuid() == 0:
                return False
            # Without root, /proc/PID/syscall is closed to us: ask inside the container.
        now = time.monotonic()
        if now - self._waiting_at < 1.0 or self.container_pid is None:
            return self._waiting
        self._waiting_at = now
        reads = " ".join(str(n) for n in _READ_SYSCALLS.get(platform.machine(), ()))
        res = self.sandbox._run(["/bin/sh", "-c", _WAITING, "sh", str(self.container_pid), reads],
                                timeout=5.0)
        self._waiting = res is not None and res.returncode == 0 and bool(res.output.strip())
        self._waiting_at = time.monotonic()
        return self._waiting

    def save_modes(self) -> None:
        attrs = self._tty_attrs() if self._host_tty else None
        # Busybox ash edits its line in raw mode, so an idle prompt may show raw modes: only a
        # cooked snapshot is worth restoring; otherwise restore_modes() falls back to `stty sane`.
        if attrs is not None and attrs[3] & termios.ICANON:
            self._modes = attrs

    def restore_modes(self) -> None:
        """Put back cooked modes after a program was killed, unless the shell already took over.

        Busybox ash saves the modes it finds when it starts editing a line and restores them after:
        modes set under it would be wrong twice. So kill_pgrp() fixes the modes *before* the kill
        (while the program still holds the terminal), and this only acts while something other
        than the shell holds the terminal.
        """
        if self._host_tty:
            self._set_modes(only_if_raw=False, unless_shell=True)
            return
        if self.container_pid is not None:
            # Remote daemon: foreground_pgrp() is None, so the Shell could not kill the program
            # that held the terminal. If one still does, fix the modes and end it here.
            self.sandbox._run(["/bin/sh", "-c", _RESTORE + '__tt_restore "$1" kill', "sh",
                               str(self.container_pid)], timeout=5.0)

    def _set_modes(self, only_if_raw: bool, unless_shell: bool) -> None:
        try:
            fd = self._open_tty()
        except OSError:
            return
        try:
            if not self._same_shell():
                return
            if unless_shell:
                fields = _stat_fields(f"/proc/{self.host_pid}/stat")
                if fields and fields[5] == fields[2]:  # tpgid == the shell's own group
                    return
            attrs = termios.tcgetattr(fd)
            if only_if_raw and attrs[3] & termios.ICANON:
                return
            termios.tcsetattr(fd, termios.TCSANOW, self._modes or _sane(attrs))
        except termios.error:
            pass
        finally:
            os.close(fd)

    def _own_pgrp(self, pgrp: int) -> bool:
        """Whether host process group `pgrp` lives in this sandbox's container."""
        cid = self.sandbox.container_id or ""
        members = pids_in_pgrp(pgrp)
        return bool(members) and all(_in_container(p, cid) for p in members[:4])

    def kill_pgrp(self, pgrp: int, sig: int) -> None:
        """Signal a process group of this sandbox; a program killed in raw mode gets its modes fixed first."""
        if self.host_pid is not None:
            if not self._own_pgrp(pgrp):
                return
            if self._host_tty and sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGHUP):
                self._set_modes(only_if_raw=True, unless_shell=True)
            try:
                os.killpg(pgrp, sig)
                return
            except ProcessLookupError:
                return
            except PermissionError:
                pgrp = _ns_pid(pgrp) or 0  # kill it from inside, by its pid there
                if not pgrp:
                    return
        name = signal.Signals(sig).name[3:]
        script = 'kill -s "$1" -- "-$2"'
        if self.container_pid is not None and sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGHUP):
            script = _RESTORE + '__tt_restore "$3"; ' + script
        self.sandbox._run(["/bin/sh", "-c", script, "sh", name, str(pgrp), str(self.container_pid or 0)],
                          timeout=5.0)

    def _signal_shell(self, sig: int) -> None:
        if self.host_pid is not None and self._same_shell():
            try:
                os.kill(self.host_pid, sig)
                return
            except ProcessLookupError:
                return
            except PermissionError:
                pass
        if self.container_pid is not None:
            self.sandbox._run(["/bin/sh", "-c", 'kill -s "$1" "$2"', "sh", signal.Signals(sig).name[3:],
                               str(self.container_pid)], timeout=5.0)

    def _find_shell(self) -> int | None:
        """The login shell's pid inside the container: the session leader that has a tty."""
        res = self.sandbox._run(["/bin/sh", "-c", _FIND_SHELL], timeout=5.0)
        if res is None:
            return None
        pids = [int(p) for p in res.output.split() if p.isdigit()]
        return max(pids) if pids else None

    def alive(self) -> bool:
        if self._eof or self._closed:
            return False
        if self.host_pid is not None:
            return self._same_shell()
        now = time.monotonic()
        if now - self._alive_at >= 0.5:
            self._alive_at = now
            try:
                self._alive = bool(self.api.exec_inspect(self.exec_id).get("Running"))
            except Exception:
                self._alive = False
        return self._alive

    def close(self) -> None:
        if self._closed:
            return
        try:
            if self.alive():
                self._signal_shell(signal.SIGHUP)
                deadline = time.monotonic() + 1.0
                while self.alive() and time.monotonic() < deadline:
                    time.sleep(0.02)
                if self.alive():
                    self._signal_shell(signal.SIGKILL)
        except Exception:
            pass
        finally:
            self._closed = True
            try:
                self.raw.shutdown(socket.SHUT_RDWR)  # wakes a reader blocked in select; frees nothing
            except (OSError, AttributeError):
                pass
            with self._io_lock, self._write_lock:
                try:
                    self.raw.close()
                except OSError:
                    pass
            sock, response = self._keep
            for thing in (sock, response):
                try:
                    if thing is not None:
                        thing.close()
                except Exception:
                    pass


class DockerSandbox:
    name = "docker"

    def __init__(self, scenario: Scenario, image: str | None = None, docker_host: str | None = None):
        self.scenario = scenario
        lg = scenario.login
        self.login = Login(user=lg.user, host=lg.host, home=scenario.home, shell=lg.shell)
        self.terminal: DockerTerminal | None = None
        self.container_id: str | None = None
        self._force_remote = False   # tests: behave as with a daemon on another machine
        self.client = connect(docker_host)
        self.staging = StagingDir("teletype-docker-")
        try:
            self.image = image or ensure_busybox_image(self.client)
            if image:
                self._ensure_image(image)
            archive = self._archive()
            self.staging.cleanup()
            self._create(archive)
            if self.login.shell != "/bin/sh":
                res = self._run(["/bin/sh", "-c", 'test -x "$1"', "sh", self.login.shell], timeout=10.0)
                if res is not None and res.returncode != 0:
                    raise SandboxError(f"{scenario.source}: [login.shell] {self.login.shell} does not exist "
                                       f"in the docker image {self.image}")
        except BaseException:
            self.close()
            raise

    # -- materialising ---------------------------------------------------------------------------
    def _ensure_image(self, image: str) -> None:
        import docker.errors

        try:
            self.client.api.inspect_image(image)
            return
        except docker.errors.ImageNotFound:
            pass
        try:
            self.client.images.pull(image)
        except Exception as exc:
            raise SandboxError(f"the docker image {image!r} is not in the daemon and cannot be pulled: "
                               f"{_short(exc)}") from exc

    def _archive(self) -> bytes:
        """Home, run dir, /etc files and files outside home, as a tar to unpack at the container's /."""
        st = self.staging.path
        lg = self.login
        home_dir = st / "home"
        outside = stage_home(home_dir, self.scenario)
        stage_run_dir(st / "run", self.scenario, lg)
        passwd, group = passwd_lines(lg)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            def text(name: str, body: str, mode: int = 0o644) -> None:
                data = body.encode()
                ti = tarfile.TarInfo(name)
                ti.size, ti.mode, ti.mtime = len(data), mode, int(time.time())
                tar.addfile(ti, io.BytesIO(data))

            def folder(name: str, mode: int = 0o755) -> None:
                ti = tarfile.TarInfo(name)
                ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, mode, int(time.time())
                tar.addfile(ti)

            text("etc/passwd", passwd)
            text("etc/group", group)
            text("etc/hostname", lg.host + "\n")
            text("etc/hosts", f"127.0.0.1 localhost\n127.0.1.1 {lg.host}\n")
            folder("run")
            _add_tree(tar, st / "run", RUN_DIR.lstrip("/"), 0, 0)
            home = lg.home.strip("/")
            parts = home.split("/")
            for i in range(1, len(parts)):
                folder("/".join(parts[:i]))
            _add_tree(tar, home_dir, home, lg.uid, lg.gid)
            for target, host in outside:
                _add_tree(tar, host, target.strip("/"), 0, 0, read_only=True)
        return buf.getvalue()

    def _create(self, archive: bytes) -> None:
        import docker.errors
        from docker.types import Ulimit

        api = self.client.api
        host_config = api.create_host_config(
            network_mode="none", pids_limit=PIDS_LIMIT, mem_limit=MEM_LIMIT, memswap_limit=MEM_LIMIT,
            cap_drop=["ALL"], security_opt=["no-new-privileges"],
            ulimits=[Ulimit(name="fsize", soft=FSIZE_LIMIT, hard=FSIZE_LIMIT),
                     Ulimit(name="nofile", soft=NOFILE_LIMIT, hard=NOFILE_LIMIT),
                     Ulimit(name="core", soft=0, hard=0)])
        labels = {LABEL: "1", "teletype.scenario": str(self.scenario.source),
                  "teletype.nonce": self.login.nonce}
        try:
            created = api.create_container(
                self.image, command=["teletype-placeholder"], entrypoint=["/bin/sh", "-c", PLACEHOLDER],
                hostname=self.login.host, user="0:0", working_dir="/", labels=labels,
                environment={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
                name=f"teletype-{self.login.nonce}", host_config=host_config)
            self.container_id = created["Id"]
            if not api.put_archive(self.container_id, "/", archive):
                raise SandboxError("docker refused the scenario's files (put_archive)")
            api.start(self.container_id)
        except docker.errors.DockerException as exc:
            raise SandboxError(f"cannot create the docker sandbox from {self.image}: {_short(exc)}") from exc

    # -- running ------------------------------------------------------------------------------
    def start(self, rows: int = 24, cols: int = 80) -> DockerTerminal:
        import docker.errors

        if self.container_id is None:
            raise SandboxError("the docker sandbox is closed")
        lg = self.login
        try:
            # The tty gets its size before the shell starts (API 1.41 execs start at 0x0, and a
            # resize under a running busybox ash makes it redraw its prompt, marker and all).
            argv = ["/bin/sh", "-c", _LOGIN_WRAP, lg.shell, str(rows), str(cols)]
            exec_id = self.client.api.exec_create(
                self.container_id, argv, stdin=True, tty=True,
                environment=lg.environ(self.scenario), workdir=lg.home, user=f"{lg.uid}:{lg.gid}")["Id"]
            self.terminal = DockerTerminal(self, exec_id, rows, cols, force_remote=self._force_remote)
        except docker.errors.DockerException as exc:
            raise SandboxError(f"cannot start the login shell in the docker sandbox: {_short(exc)}") from exc
        return self.terminal

    def exec(self, command: str, timeout: float = 20.0) -> ExecResult:
        """`sh -c command` as the login user in home, with the login environment; output combined."""
        if self.container_id is None:
            raise SandboxError("the docker sandbox is closed")
        res = self._run(["/bin/sh", "-c", _EXEC_WRAP, "sh", command], timeout=timeout, env=True,
                        workdir=self.login.home, marked=True, quiet=False)
        assert res is not None
        return res

    def _run(self, argv: list[str], timeout: float, env: bool = False, workdir: str = "/",
             marked: bool = False, quiet: bool = True) -> ExecResult | None:
        """Run `argv` in the container as the login user; None (or, not quiet, SandboxError) when
        docker would not run it."""
        if self.container_id is None:
            return None
        api = self.client.api
        lg = self.login
        try:
            exec_id = api.exec_create(
                self.container_id, argv, stdout=True, stderr=True, stdin=False, tty=False,
                environment=lg.environ(self.scenario) if env else {"PATH": lg.environ(self.scenario)["PATH"]},
                workdir=workdir, user=f"{lg.uid}:{lg.gid}")["Id"]
            raw, pending, keep = _hijack(api, exec_id, tty=False)
        except Exception as exc:
            if quiet:
                return None
            raise SandboxError(f"cannot run a command in the docker sandbox: {_short(exc)}") from exc
        deadline = time.monotonic() + timeout
        frames = bytearray(pending)
        output = bytearray()
        err_head = bytearray()   # stderr until the pid mark's newline
        marked_done = not marked
        inner_pid: int | None = None
        timed_out = False
        try:
            while True:
                while len(frames) >= 8:
                    kind = frames[0]
                    size, = struct.unpack(">I", frames[4:8])
                    if len(frames) < 8 + size:
                        break
                    payload = bytes(frames[8:8 + size])
                    del frames[:8 + size]
                    if kind == 2 and not marked_done:
                        err_head += payload
                        if not _EXEC_MARK.startswith(bytes(err_head[:len(_EXEC_MARK)])):
                            marked_done = True
                            output += err_head
                        elif b"\n" in err_head:
                            line, _, rest = bytes(err_head).partition(b"\n")
                            try:
                                inner_pid = int(line[len(_EXEC_MARK):])
                            except ValueError:
                                pass
                            marked_done = True
                            output += rest
                        continue
                    output += payload
                now = time.monotonic()
                if now >= deadline:
                    timed_out = True
                    break
                try:
                    if not _ready(raw, deadline - now):
                        continue
                except EOFError:
                    break
                data = _recv(raw)
                if data is None:
                    continue
                if not data:
                    break
                frames += data
        finally:
            if timed_out:
                self._kill_exec(exec_id, inner_pid)
            try:
                raw.close()
            except OSError:
                pass
            for thing in keep:
                try:
                    if thing is not None:
                        thing.close()
                except Exception:
                    pass
        if not marked_done:
            output += err_head
        if timed_out:
            return ExecResult(returncode=124, output=bytes(output), timed_out=True)
        code = None
        end = time.monotonic() + 5.0
        while time.monotonic() < end:
            try:
                info = api.exec_inspect(exec_id)
            except Exception:
                break
            if not info.get("Running"):
                code = info.get("ExitCode")
                break
            time.sleep(0.01)
        return ExecResult(returncode=code if code is not None else 255, output=bytes(output))

    def _kill_exec(self, exec_id: str, inner_pid: int | None) -> None:
        """End an exec that ran out of time, and everything it started."""
        try:
            pid = self.client.api.exec_inspect(exec_id).get("Pid") or 0
        except Exception:
            pid = 0
        if pid and not self._force_remote and _in_container(pid, self.container_id or ""):
            try:
                for _ in range(3):
                    for p in _host_tree(pid):
                        if _in_container(p, self.container_id or ""):
                            os.kill(p, signal.SIGKILL)
                return
            except ProcessLookupError:
                return
            except PermissionError:
                pass
        if inner_pid:
            self._run(["/bin/sh", "-c", _KILL_TREE, "sh", str(inner_pid)], timeout=10.0)

    def close(self) -> None:
        """Remove the container (forced), whatever state it is in."""
        try:
            if self.terminal is not None:
                self.terminal.close()
        except Exception:
            pass
        finally:
            self.terminal = None
            try:
                if self.container_id is not None:
                    self._remove()
            finally:
                self.container_id = None
                if getattr(self, "staging", None) is not None:
                    self.staging.cleanup()
                try:
                    self.client.close()
                except Exception:
                    pass

    def _remove(self) -> None:
        import docker.errors

        last: Exception | None = None
        for _ in range(3):
            try:
                self.client.api.remove_container(self.container_id, force=True, v=True)
                return
            except docker.errors.NotFound:
                return
            except Exception as exc:  # e.g. "removal already in progress"; try again
                last = exc
                time.sleep(0.2)
        raise SandboxError(f"cannot remove docker container {self.container_id[:12]}: {_short(last)}; "
                           "remove it with `docker rm -f` (it carries the label teletype=1)")

    def __enter__(self) -> "DockerSandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _add_tree(tar: tarfile.TarFile, src: Path, arcname: str, uid: int, gid: int,
              read_only: bool = False) -> None:
    """Add `src` (file, symlink or folder, recursively) as `arcname`, owned by uid:gid."""
    def add(path: Path, name: str) -> None:
        ti = tar.gettarinfo(str(path), arcname=name)
        ti.uid, ti.gid, ti.uname, ti.gname = uid, gid, "", ""
        if read_only and not ti.issym():
            ti.mode &= ~0o222
        if ti.isreg():
            with open(path, "rb") as f:
                tar.addfile(ti, f)
        else:
            tar.addfile(ti)

    add(src, arcname)
    if src.is_dir() and not src.is_symlink():
        for root, dirs, files in os.walk(src):
            dirs.sort()
            rel = os.path.relpath(root, src)
            base = arcname if rel == "." else f"{arcname}/{rel}"
            for name in sorted(dirs) + sorted(files):
                add(Path(root) / name, f"{base}/{name}")
