"""A Terminal on a local pty (ptyprocess), used by the bwrap and local sandboxes.

The pty master is ours, so the terminal's foreground process group and modes come straight from
the kernel (tcgetpgrp and tcgetattr on the master report the slave's), and whether a program waits
on the keyboard is read from /proc (blocked in a read of the tty, or the tty in raw mode).
"""
from __future__ import annotations

import errno
import os
import platform
import select
import signal
import termios
import threading
import time

import ptyprocess

from teletype.engine.sandbox.base import SandboxError

# Syscall numbers for read and the poll family, per architecture (from /proc/PID/syscall).
READ_SYSCALLS = {"x86_64": {0, 17, 19, 295}, "aarch64": {63, 65, 67}}
_POLL_SYSCALLS = {"x86_64": {7, 23, 232, 270, 271, 281, 441}, "aarch64": {72, 73, 22, 441}}
_PLAIN_READ = {"x86_64": 0, "aarch64": 63}
_ARCH = platform.machine()
_SPAWN_LOCK = threading.Lock()  # one fork at a time: sessions start from several threads in an eval


def _tty_fd(pid: int, fd: int) -> bool:
    try:
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError:
        return False
    return target.startswith("/dev/pts/") or target.startswith("/dev/tty") or target == "/dev/console"


def pids_in_pgrp(pgrp: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 2 and int(fields[2]) == pgrp:
            found.append(int(entry))
    return found


def blocked_on_tty(pid: int) -> bool | None:
    """Whether process `pid` sleeps in a read (or poll) of a terminal; None when /proc does not say."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        state = stat[stat.rfind(b")") + 2:].split()[0]
        if state in (b"T", b"t"):  # stopped, e.g. by SIGTTIN: it wanted the terminal
            return True
        if state != b"S":
            return False
    except OSError:
        return False  # gone
    try:
        with open(f"/proc/{pid}/syscall") as f:
            parts = f.read().split()
    except OSError:
        return None
    if not parts or not parts[0].lstrip("-").isdigit():
        return False
    nr = int(parts[0])
    if nr in READ_SYSCALLS.get(_ARCH, set()) and len(parts) > 1:
        return _tty_fd(pid, int(parts[1], 16))
    if nr in _POLL_SYSCALLS.get(_ARCH, set()):
        # select/poll: assume it waits on its terminal when stdin is one.
        return _tty_fd(pid, 0)
    return False


def at_line_input(pid: int, raw_mode: bool) -> bool | None:
    """Whether shell `pid` sits in its own command-line input. dash reads its command lines from
    fd 0 in cooked mode, 8 KiB at a time (its `read` builtin reads one byte; a sourced file comes on
    another fd); a line editor (busybox ash, bash's readline) waits on the terminal in raw mode
    (their `read` builtins wait in cooked mode). False for a process that is gone (it waits for
    nothing); None when /proc does not say (no permission)."""
    try:
        with open(f"/proc/{pid}/syscall") as f:
            parts = f.read().split()
    except (FileNotFoundError, ProcessLookupError):
        return False
    except OSError:
        return None
    if not parts or not parts[0].isdigit() or len(parts) < 4:
        return False  # "running"
    nr = int(parts[0])
    try:
        fd, count = int(parts[1], 16), int(parts[3], 16)
    except ValueError:
        return False
    if raw_mode:
        if nr in READ_SYSCALLS.get(_ARCH, set()):
            return _tty_fd(pid, fd)
        return nr in _POLL_SYSCALLS.get(_ARCH, set()) and _tty_fd(pid, 0)
    return nr == _PLAIN_READ.get(_ARCH, -1) and fd == 0 and count > 1 and _tty_fd(pid, 0)


def _pts_path(fd: int) -> str | None:
    """The slave device of pty master `fd` (TIOCGPTN; os.ttyname names the master's /dev/ptmx)."""
    try:
        import fcntl
        import struct

        n = struct.unpack("I", fcntl.ioctl(fd, getattr(termios, "TIOCGPTN", 0x80045430), b"\0\0\0\0"))[0]
    except OSError:
        return None
    return f"/dev/pts/{n}"


class PtyTerminal:
    """A child process on a fresh local pty."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: str | None = None,
                 rows: int = 24, cols: int = 80, preexec_fn=None):
        def child_setup() -> None:
            # Signal dispositions are inherited: a shell started under nohup would ignore SIGHUP.
            for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGPIPE, signal.SIGTERM):
                signal.signal(sig, signal.SIG_DFL)
            if preexec_fn is not None:
                preexec_fn()

        try:
            with _SPAWN_LOCK:
                self.proc = ptyprocess.PtyProcess.spawn(argv, env=env, cwd=cwd, dimensions=(rows, cols),
                                                        preexec_fn=child_setup)
        except (OSError, ptyprocess.PtyProcessError) as exc:
            raise SandboxError(f"cannot start {argv[0]}: {exc}") from exc
        self.fd = self.proc.fd
        self._modes = None
        self._pts: str | None = None
        self._reading = False
        self.bytes_read = 0
        self._eof = False
        self._wait_lock = threading.Lock()
        self._io_lock = threading.Lock()
        self._closing = False
        self._wake_r, self._wake_w = os.pipe()

    def read(self, timeout: float) -> bytes:
        # The fd is used only under _io_lock and never after close: a closed fd's number is soon
        # reused by another session's pipe or pty, and reading it would steal their bytes.
        with self._io_lock:
            if self._eof or self._closing:
                raise EOFError
            try:
                ready, _, _ = select.select([self.fd, self._wake_r], [], [], max(0.0, timeout))
            except (OSError, ValueError):
                self._eof = True
                raise EOFError from None
            if self._closing:
                raise EOFError
            if self.fd not in ready:
                return b""
            self._reading = True
            try:
                data = os.read(self.fd, 65536)
            except OSError as exc:
                if exc.errno in (errno.EIO, errno.EBADF):  # Linux: EIO once every slave fd closed
                    self._eof = True
                    raise EOFError from None
                raise
            finally:
                self.bytes_read += len(data) if "data" in locals() else 0
                self._reading = False
            if not data:
                self._eof = True
                raise EOFError
            return data

    def drained(self, consumed: int) -> bool | None:
        """Whether every byte the shell wrote so far has been read and `consumed` (the reader's
        count) covers it: nothing waits in the pty, and no read is between the kernel and the caller."""
        if self._closing:
            return None
        try:
            import fcntl
            import struct

            waiting = struct.unpack("i", fcntl.ioctl(self.fd, termios.FIONREAD, b"\0\0\0\0"))[0]
        except OSError:
            return None
        return waiting == 0 and not self._reading and self.bytes_read == consumed

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._closing:
                raise EOFError
            try:
                n = os.write(self.fd, view)
            except BlockingIOError:
                select.select([], [self.fd], [], 1.0)
                continue
            except OSError as exc:
                raise EOFError from exc
            view = view[n:]

    def resize(self, rows: int, cols: int) -> None:
        try:
            self.proc.setwinsize(rows, cols)
        except OSError:
            pass

    def foreground_pgrp(self) -> int | None:
        if self._closing:
            return None
        try:
            return os.tcgetpgrp(self.fd)
        except OSError:
            return None

    def waiting_for_input(self, pgrp: int | None) -> bool:
        """Whether a process of the foreground group sleeps reading (or polling) the terminal. Where
        /proc does not say (no permission), raw mode is taken as the sign instead."""
        if self._closing:
            return False
        if pgrp is not None:
            pids = pids_in_pgrp(pgrp)
            seen = [blocked_on_tty(pid) for pid in pids]
            if any(v is True for v in seen):
                return True
            if pids and all(v is not None for v in seen):
                return False
        try:
            lflag = termios.tcgetattr(self.fd)[3]
        except termios.error:
            return False
        return not (lflag & termios.ICANON)  # a full-screen program (vi, less) put it in raw mode

    def save_modes(self) -> None:
        try:
            self._modes = termios.tcgetattr(self.fd)
        except termios.error:
            pass

    def raw_mode(self) -> bool | None:
        """Whether the terminal is out of canonical mode (a line editor, a full-screen program)."""
        try:
            return not termios.tcgetattr(self.fd)[3] & termios.ICANON
        except termios.error:
            return None

    def at_line_input(self, pid: int) -> bool | None:
        if self._closing:
            return None
        try:
            raw_mode = not termios.tcgetattr(self.fd)[3] & termios.ICANON
        except termios.error:
            return None
        return at_line_input(pid, raw_mode)

    def prepare_input(self) -> None:
        """The saved modes back (echo, canonical input, signals) and pending input discarded, so
        that `stty -echo`, `stty raw` or a terminal reply left unread cannot touch the next command."""
        if self._closing:
            return
        editing = self.raw_mode()
        self.restore_modes()
        if editing:
            # A line editor (busybox ash, readline) reads key by key, so nothing waits in a cooked
            # queue; and its own cursor-position reply must not be thrown away.
            return
        path = _pts_path(self.fd) if self._pts is None else self._pts
        self._pts = path
        if path is None:
            return
        try:
            slave = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            return
        try:
            termios.tcflush(slave, termios.TCIFLUSH)
        except termios.error:
            pass
        finally:
            os.close(slave)

    def exit_code(self) -> int | None:
        """How the shell ended: its exit status (128 + N when signal N ended it), None if unknown."""
        with self._wait_lock:
            try:
                if self.proc.isalive():
                    return None
            except ptyprocess.PtyProcessError:
                return None
            if self.proc.exitstatus is not None:
                return self.proc.exitstatus
            if self.proc.signalstatus is not None:
                return 128 + self.proc.signalstatus
        return None

    def restore_modes(self) -> None:
        if self._modes is not None:
            try:
                termios.tcsetattr(self.fd, termios.TCSANOW, self._modes)
            except termios.error:
                pass

    def kill_pgrp(self, pgrp: int, sig: int) -> None:
        try:
            os.killpg(pgrp, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def alive(self) -> bool:
        # ptyprocess's isalive() reaps with waitpid: two threads asking at once (the reader and a
        # closer) would see ECHILD; one lock, and a reaped child is a dead one.
        with self._wait_lock:
            try:
                return self.proc.isalive()
            except ptyprocess.PtyProcessError:
                return False

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        try:
            os.write(self._wake_w, b"x")  # wake a reader blocked in select
        except OSError:
            pass
        with self._io_lock:  # no read is in flight once we hold it; none starts after
            try:
                if self.alive():
                    self.proc.kill(signal.SIGHUP)
                    deadline = time.monotonic() + 1.0
                    while self.alive() and time.monotonic() < deadline:
                        time.sleep(0.01)
                    if self.alive():
                        self.proc.kill(signal.SIGKILL)
            finally:
                try:
                    self.proc.close(force=True)
                except Exception:
                    pass
                for fd in (self._wake_r, self._wake_w):
                    try:
                        os.close(fd)
                    except OSError:
                        pass
