"""A staging directory's life on the host: created with its owner recorded, its mounts and its tree
removed without following links, and the ones a killed run left behind found and cleaned.

Each StagingDir records its owner (pid and start time, boot, pid namespace), which survives pid
reuse. A run that was killed (SIGKILL) leaves its staging dir behind; `clean_orphans` (run cheaply at
every sandbox creation, and by `teletype clean`) removes those whose owner is gone, and nothing else:
a folder without an owner record, or whose owner is alive or on another machine, is not touched.
Removal walks by file descriptor and never follows a symlink the sandboxed user planted (staging.py
has the reasons).
"""
from __future__ import annotations

import ctypes
import json
import os
import shutil
import socket
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PREFIX = "teletype-"
OWNER_FILE = "owner.json"
OWNER_SCHEMA = "teletype.staging/1"

OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
"""os.open flags for a folder that must not be reached through a symlink."""
NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
"""os.open flags for a file written here, never through a symlink."""


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _pidns() -> int:
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def process_start(pid: int) -> int | None:
    """The start time of process `pid` (clock ticks since boot, /proc/PID/stat field 22), or None."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    try:
        return int(data[data.rindex(b")") + 2:].split()[19])
    except (ValueError, IndexError):
        return None


def owner_record() -> dict:
    """Who this process is, in a way that survives pid reuse: pid, start time, boot, pid namespace."""
    pid = os.getpid()
    return {"schema": OWNER_SCHEMA, "pid": pid, "start": process_start(pid), "boot": _boot_id(),
            "pidns": _pidns(), "host": socket.gethostname(), "created": round(time.time(), 3)}


def owner_state(owner: dict) -> str:
    """'alive', 'gone', or 'unknown' (another machine or pid namespace: not ours to judge)."""
    if not isinstance(owner, dict) or not isinstance(owner.get("pid"), int):
        return "unknown"
    if owner.get("host") != socket.gethostname():
        return "unknown"
    boot = _boot_id()
    if owner.get("boot") and boot and owner["boot"] != boot:
        return "gone"   # the machine rebooted since
    if owner.get("pidns") != _pidns():
        return "unknown"
    start = process_start(owner["pid"])
    if start is None or start != owner.get("start"):
        return "gone"
    return "alive"


_libc = None


def _libc_call(name: str, *args) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if getattr(_libc, name)(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


MS_NOSUID, MS_NODEV = 2, 4
MNT_DETACH = 2


def mount_tmpfs(path: Path, size: int, mode: int = 0o755, uid: int = 0, gid: int = 0) -> None:
    """A tmpfs of `size` bytes at `path` (needs CAP_SYS_ADMIN: root)."""
    opts = f"size={size},mode={mode:o},uid={uid},gid={gid}".encode()
    _libc_call("mount", b"tmpfs", os.fsencode(str(path)), b"tmpfs",
               ctypes.c_ulong(MS_NOSUID | MS_NODEV), opts)


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path`, deepest first (from /proc/self/mountinfo)."""
    root = os.path.realpath(path)
    found = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        fields = line.split()
        if len(fields) > 4:
            point = fields[4].encode().decode("unicode_escape")
            if point == root or point.startswith(root + "/"):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def unmount_all(path: Path) -> None:
    for point in mounts_under(path):
        try:
            _libc_call("umount2", os.fsencode(point), ctypes.c_int(MNT_DETACH))
        except OSError:
            pass


def remove_tree(path: Path) -> None:
    """Remove a staged tree that the sandbox may have filled: mounts detached, folders made
    writable (by descriptor, no symlink followed), then shutil.rmtree (which follows none)."""
    if not os.path.lexists(path):
        return
    unmount_all(path)
    try:
        fd = os.open(path, OPEN_DIR)
    except OSError:
        fd = -1
    if fd >= 0:
        try:
            os.fchmod(fd, 0o700)
            for _, dirs, _files, dfd in os.fwalk(".", dir_fd=fd, follow_symlinks=False):
                for name in dirs:
                    try:
                        sub = os.open(name, OPEN_DIR, dir_fd=dfd)
                    except OSError:
                        # Mode 000 as a non-root owner: O_PATH would not allow fchmod either, so
                        # chmod by name (fchmodat without AT_SYMLINK_NOFOLLOW), after checking that
                        # it is a folder and not a link (nobody else writes here any more).
                        try:
                            if stat.S_ISDIR(os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode):
                                os.chmod(name, 0o700, dir_fd=dfd)
                        except OSError:
                            pass
                        continue
                    try:
                        os.fchmod(sub, 0o700)
                    except OSError:
                        pass
                    finally:
                        os.close(sub)
        finally:
            os.close(fd)
    shutil.rmtree(path, ignore_errors=True)


class StagingDir:
    """A private temporary directory on the host for one sandbox, with its owner recorded; removed
    on close, or by a later run once its owner is gone."""

    def __init__(self, prefix: str = PREFIX):
        self.path = Path(tempfile.mkdtemp(prefix=prefix))
        fd = os.open(self.path / OWNER_FILE, NEW_FILE, 0o644)
        with os.fdopen(fd, "w") as f:
            json.dump(owner_record(), f)

    def cleanup(self) -> None:
        remove_tree(self.path)


@dataclass
class Orphan:
    path: Path
    owner: dict
    removed: bool = False
    problem: str = ""


def read_owner(path: Path) -> dict | None:
    try:
        fd = os.open(path / OWNER_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        with os.fdopen(fd) as f:
            data = json.loads(f.read(4096))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("schema") == OWNER_SCHEMA else None


def find_orphans(root: Path | None = None) -> list[Orphan]:
    """Staging dirs under `root` (default: the temp dir) whose owner process is gone. Folders
    without an owner record (another program's, or one being created right now) are not touched."""
    root = Path(root or tempfile.gettempdir())
    found = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return []
    for e in entries:
        if not e.name.startswith(PREFIX) or not e.is_dir(follow_symlinks=False):
            continue
        owner = read_owner(Path(e.path))
        if owner is not None and owner_state(owner) == "gone":
            found.append(Orphan(Path(e.path), owner))
    return found


def clean_orphans(root: Path | None = None) -> list[Orphan]:
    """Remove the staging dirs that `find_orphans` finds; returns them, each marked removed or not."""
    orphans = find_orphans(root)
    for o in orphans:
        remove_tree(o.path)
        o.removed = not os.path.lexists(o.path)
        if not o.removed:
            o.problem = "could not be removed (owned by another user?)"
    return orphans


__all__ = ["NEW_FILE", "OPEN_DIR", "OWNER_FILE", "OWNER_SCHEMA", "PREFIX", "Orphan", "StagingDir", "clean_orphans",
           "find_orphans", "mount_tmpfs", "owner_record", "owner_state", "read_owner", "remove_tree"]
