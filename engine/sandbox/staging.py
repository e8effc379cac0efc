"""Staging: writing a scenario's files on the host without being led astray, and walking them again.

Scenario files are untrusted input (people download and generate them), and staging runs as the host
user, root in CI, before any sandbox exists. Later the sandboxed user fills its home with whatever it
likes, `ln -s / ~/root` included, and the host walks that tree again (owners, cleanup). So:

- every write walks from the staging root by file descriptor (openat with O_DIRECTORY | O_NOFOLLOW),
  never follows a symlink, and refuses a path that passes through one or has a `..` in it;
- every later pass over a staged tree (times, owners, modes before removal) uses os.fwalk, which
  does not follow symlinks, and removal is shutil.rmtree, which does not either.

The staging directory itself (its owner record, its removal, orphans a killed run left behind) is
stagingdir.py's.
"""
from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from teletype.engine.errors import SandboxError
from teletype.engine.sandbox.stagingdir import NEW_FILE, OPEN_DIR

STAGED_MTIME = 1767268800  # 2026-01-01 12:00 UTC: the mtime of every file a scenario stages


def _error(message: str) -> Exception:
    return SandboxError(message)


# -- writing a scenario's files ---------------------------------------------------------------------
@dataclass
class _Entry:
    key: str          # "[files.3.path]"
    value: str        # the path as the scenario wrote it
    parts: tuple[str, ...]


def split_relative(rel: str) -> tuple[str, ...]:
    """The components of a path below a root; `.` and empty ones dropped, `..` refused (ValueError)."""
    parts = tuple(p for p in rel.split("/") if p not in ("", "."))
    if ".." in parts:
        raise ValueError("must not contain '..'")
    return parts


class TreeWriter:
    """Creates files, folders and symlinks below one root directory, by descriptor, never through a
    symlink. Messages name the scenario file, the key and the value of the entry at fault."""

    def __init__(self, root: Path, source: str):
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.source = source
        self.fd = os.open(root, OPEN_DIR)
        self.kinds: dict[tuple[str, ...], tuple[str, str]] = {}   # parts -> (kind, key) staged so far
        self.modes: dict[tuple[str, ...], tuple[int, _Entry]] = {}   # applied last, by finish()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _fail(self, entry: _Entry, why: str) -> Exception:
        return _error(f"{self.source}: {entry.key} {entry.value!r} {why}")

    def _parent(self, entry: _Entry, parts: tuple[str, ...], create: bool = True) -> int:
        """An fd of the folder that holds `parts[-1]`, made (0755) where missing."""
        fd = os.dup(self.fd)
        try:
            for i, name in enumerate(parts[:-1]):
                made = False
                if create:
                    try:
                        os.mkdir(name, 0o700, dir_fd=fd)
                        made = True
                    except FileExistsError:
                        pass
                try:
                    sub = os.open(name, OPEN_DIR, dir_fd=fd)
                except OSError as exc:
                    where = "/".join(parts[:i + 1])
                    staged = self.kinds.get(parts[:i + 1])
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        what = "a symlink" if _is_link(fd, name) else "not a folder"
                        by = f" (staged by {staged[1]})" if staged else ""
                        raise self._fail(entry, f"passes through {where}, which is {what}{by}; "
                                                "staging never follows a symlink") from None
                    raise self._fail(entry, f"cannot be staged: {where}: {exc.strerror}") from None
                if made:
                    os.fchmod(sub, 0o755)
                    self.kinds.setdefault(parts[:i + 1], ("dir", entry.key))
                os.close(fd)
                fd = sub
            return fd
        except BaseException:
            os.close(fd)
            raise

    def add(self, entry: _Entry, kind: str, *, content: str | None = None, target: str | None = None,
            mode: int | None = None) -> None:
        parts = entry.parts
        if not parts:
            if kind != "dir":
                raise self._fail(entry, f"is the root of the staged tree (a folder), not a {kind}")
            if mode is not None:
                self.modes[()] = (mode, entry)
            return
        parent = self._parent(entry, parts)
        name = parts[-1]
        try:
            if kind == "dir":
                try:
                    os.mkdir(name, 0o700, dir_fd=parent)
                except FileExistsError:
                    pass
                try:
                    fd = os.open(name, OPEN_DIR, dir_fd=parent)
                except OSError as exc:
                    raise self._fail(entry, self._taken(parts, exc, "a folder")) from None
                os.fchmod(fd, 0o755)
                os.close(fd)
            elif kind == "symlink":
                try:
                    st = os.stat(name, dir_fd=parent, follow_symlinks=False)
                except FileNotFoundError:
                    st = None
                if st is not None:
                    if stat.S_ISDIR(st.st_mode):
                        raise self._fail(entry, "is already a folder (staged by "
                                                f"{self.kinds.get(parts, ('', 'an earlier entry'))[1]})")
                    os.unlink(name, dir_fd=parent)   # unlinkat: removes the link or file, follows nothing
                os.symlink(target or "", name, dir_fd=parent)
            else:
                try:
                    fd = os.open(name, NEW_FILE, 0o600, dir_fd=parent)
                except OSError as exc:
                    raise self._fail(entry, self._taken(parts, exc, "a file")) from None
                with os.fdopen(fd, "wb") as f:
                    os.fchmod(f.fileno(), 0o644)
                    f.write((content or "").encode("utf-8"))
        finally:
            os.close(parent)
        self.kinds[parts] = (kind, entry.key)
        self.modes.pop(parts, None)
        if kind != "symlink":
            self.modes[parts] = (0o755 if kind == "dir" else 0o644) if mode is None else mode, entry

    def _taken(self, parts: tuple[str, ...], exc: OSError, wanted: str) -> str:
        staged = self.kinds.get(parts)
        by = f" (staged by {staged[1]})" if staged else ""
        if exc.errno == errno.ELOOP or staged and staged[0] == "symlink":
            return f"is a symlink{by}; staging never writes through a symlink"
        if exc.errno in (errno.EISDIR, errno.ENOTDIR):
            return f"cannot be {wanted}: it is already {'a folder' if exc.errno == errno.EISDIR else 'a file'}{by}"
        return f"cannot be staged: {exc.strerror}"

    def finish(self) -> None:
        """Fixed times on everything, then the modes (deepest first, so that a folder made
        unreadable or unwritable is never walked through afterwards)."""
        set_times(self.fd)
        for parts, (mode, entry) in sorted(self.modes.items(), key=lambda m: -len(m[0])):
            if not parts:
                os.fchmod(self.fd, mode)
                continue
            parent = self._parent(entry, parts, create=False)
            try:
                flags = OPEN_DIR if self.kinds[parts][0] == "dir" else os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
                fd = os.open(parts[-1], flags, dir_fd=parent)
                try:
                    os.fchmod(fd, mode)
                finally:
                    os.close(fd)
            finally:
                os.close(parent)
        os.utime(self.fd, (STAGED_MTIME, STAGED_MTIME))


def _is_link(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def set_times(root_fd: int, when: int = STAGED_MTIME) -> None:
    """Every entry below the folder `root_fd` gets mtime and atime `when`; no symlink is followed."""
    for _, dirs, files, dfd in os.fwalk(".", dir_fd=root_fd, follow_symlinks=False):
        for name in dirs + files:
            try:
                os.utime(name, (when, when), dir_fd=dfd, follow_symlinks=False)
            except OSError:
                pass
    os.utime(root_fd, (when, when))


def chown_tree(root: Path, uid: int, gid: int) -> None:
    """`root` and everything below it owned by uid:gid; symlinks themselves, never their targets."""
    fd = os.open(root, OPEN_DIR)
    try:
        os.fchown(fd, uid, gid)
        for _, dirs, files, dfd in os.fwalk(".", dir_fd=fd, follow_symlinks=False):
            for name in dirs + files:
                os.chown(name, uid, gid, dir_fd=dfd, follow_symlinks=False)
    finally:
        os.close(fd)


def stage_home(dest: Path, scenario) -> list[tuple[str, Path]]:
    """Write the scenario's files under `dest` (the home directory on the host side).

    Returns the files outside home as (absolute path in the sandbox, host path) pairs, staged under
    `dest.parent / "outside"`; backends mount those read-only (bwrap), copy them in (docker) or refuse
    them (local). Raises SandboxError, naming the scenario file, the key and the value, for a path
    with `..`, one that passes through a symlink, or one that shadows the engine's own mounts.
    """
    from teletype.engine.worlds.scenario import reserved_target

    home = scenario.home
    home_w = TreeWriter(dest, scenario.source)
    os.fchmod(home_w.fd, 0o755)
    outside_w: TreeWriter | None = None
    outside: dict[str, Path] = {}
    try:
        for i, spec in enumerate(scenario.files):
            key = f"[files.{i}.path]"
            target = scenario.resolve(spec.path)
            try:
                split_relative(target)
            except ValueError as exc:
                raise _error(f"{scenario.source}: {key} {spec.path!r} {exc}") from None
            if target == home or target.startswith(home + "/"):
                writer, parts = home_w, split_relative(target[len(home):])
            else:
                why = reserved_target(target, home)
                if why:
                    raise _error(f"{scenario.source}: {key} {spec.path!r} {why}")
                if outside_w is None:
                    outside_w = TreeWriter(dest.parent / "outside", scenario.source)
                writer, parts = outside_w, split_relative(target)
            entry = _Entry(key=key, value=spec.path, parts=parts)
            mode = int(spec.mode, 8) & 0o1777 if spec.mode else None
            writer.add(entry, spec.kind, content=spec.content, target=spec.target, mode=mode)
            if writer is outside_w:
                outside["/" + "/".join(parts)] = outside_w.root.joinpath(*parts)
        home_w.finish()
        if outside_w is not None:
            outside_w.finish()
    finally:
        home_w.close()
        if outside_w is not None:
            outside_w.close()
    return list(outside.items())
