"""The docker sandbox's Terminal: the login shell's `docker exec` tty stream, and its processes.

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

import logging
import os
import platform
import signal
import socket
import termios
import threading
import time
from typing import Protocol

from teletype.engine.sandbox.base import ExecResult
from teletype.engine.sandbox.dockerapi import hijack, ready, recv
from teletype.engine.sandbox.dockerproc import FIND_SHELL, RESTORE, WAITING, in_container, ns_pid, stat_fields
from teletype.engine.sandbox.ptyterm import READ_SYSCALLS, at_line_input, blocked_on_tty, pids_in_pgrp

log = logging.getLogger(__name__)

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


class Exec(Protocol):
    """Run argv in the container as the login user: its result, or None when docker would not run it."""

    def __call__(self, argv: list[str], timeout: float) -> ExecResult | None: ...


class DockerTerminal:
    """The login shell's exec: its tty stream, and what can be known about its processes."""

    def __init__(self, api, container_id: str, exec_id: str, rows: int, cols: int, run: Exec,
                 force_remote: bool = False):
        """`api`: the docker APIClient; `run(argv, timeout)`: one command in the same container as the
        login user (DockerSandbox's exec), for what the host cannot see when the daemon is remote."""
        self.api = api
        self.container_id = container_id
        self._exec = run
        self.exec_id = exec_id
        self.raw, self._pending, self._keep = hijack(self.api, exec_id, tty=True)
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
        cid = container_id or ""
        if pid and not force_remote and in_container(pid, cid):
            fields = stat_fields(f"/proc/{pid}/stat")
            if fields and len(fields) > 19:
                self.host_pid = pid
                self._start_time = fields[19]
                self.container_pid = ns_pid(pid)
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
            if not ready(self.raw, timeout):
                return b""
            data = recv(self.raw)
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
        fields = stat_fields(f"/proc/{self.host_pid}/stat")
        return bool(fields) and len(fields) > 19 and fields[19] == self._start_time and fields[0] not in "ZX"

    def foreground_pgrp(self) -> int | None:
        if self.host_pid is None:
            return None
        fields = stat_fields(f"/proc/{self.host_pid}/stat")
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
        reads = " ".join(str(n) for n in READ_SYSCALLS.get(platform.machine(), ()))
        res = self._exec(["/bin/sh", "-c", WAITING, "sh", str(self.container_pid), reads], timeout=5.0)
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
            self._exec(["/bin/sh", "-c", RESTORE + '__tt_restore "$1" kill', "sh", str(self.container_pid)],
                       timeout=5.0)

    def at_line_input(self, pid: int) -> bool | None:
        """With the daemon on this machine, as for a local pty: busybox ash polls its terminal in
        raw mode while it edits a line (its `read` waits in cooked mode). False once the shell is
        gone (it waits for nothing); None for a remote daemon."""
        if not self._host_tty:
            return None
        if not self._same_shell():
            return False
        attrs = self._tty_attrs()
        if attrs is None:
            return None
        return at_line_input(pid, raw_mode=not attrs[3] & termios.ICANON)

    def prepare_input(self) -> None:
        """Pending input discarded before a command is typed (where the tty opens from the host).
        The modes are ash's own business: it sets raw mode to edit a line and restores after."""
        if not self._host_tty:
            return
        try:
            fd = self._open_tty()
        except OSError:
            return
        try:
            # In raw mode ash's line editor reads key by key (and its cursor-position reply must
            # not be lost): only a cooked queue can hold a half line.
            if self._same_shell() and termios.tcgetattr(fd)[3] & termios.ICANON:
                termios.tcflush(fd, termios.TCIFLUSH)
        except termios.error:
            pass
        finally:
            os.close(fd)

    def exit_code(self) -> int | None:
        try:
            info = self.api.exec_inspect(self.exec_id)
        except Exception:
            return None
        return None if info.get("Running") else info.get("ExitCode")

    def _set_modes(self, only_if_raw: bool, unless_shell: bool) -> None:
        try:
            fd = self._open_tty()
        except OSError:
            return
        try:
            if not self._same_shell():
                return
            if unless_shell:
                fields = stat_fields(f"/proc/{self.host_pid}/stat")
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
        cid = self.container_id or ""
        members = pids_in_pgrp(pgrp)
        return bool(members) and all(in_container(p, cid) for p in members[:4])

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
                pgrp = ns_pid(pgrp) or 0  # kill it from inside, by its pid there
                if not pgrp:
                    return
        name = signal.Signals(sig).name[3:]
        script = 'kill -s "$1" -- "-$2"'
        if self.container_pid is not None and sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGHUP):
            script = RESTORE + '__tt_restore "$3"; ' + script
        self._exec(["/bin/sh", "-c", script, "sh", name, str(pgrp), str(self.container_pid or 0)], timeout=5.0)

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
            self._exec(["/bin/sh", "-c", 'kill -s "$1" "$2"', "sh", signal.Signals(sig).name[3:],
                               str(self.container_pid)], timeout=5.0)

    def _find_shell(self) -> int | None:
        """The login shell's pid inside the container: the session leader that has a tty."""
        res = self._exec(["/bin/sh", "-c", FIND_SHELL], timeout=5.0)
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
            log.warning("docker: ending the login shell failed (the container's removal ends it)",
                        exc_info=True)
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
