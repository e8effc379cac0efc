"""Seeing a docker sandbox's processes: from the host's /proc where the daemon runs on this machine,
and by small `sh` scripts inside the container where it does not (dockerterm.py uses both).

The scripts are run as the login user with `sh -c SCRIPT sh ARGS...`; they read only /proc and the
tty, print one word or a pid, and never trust what they read to be well formed.
"""
from __future__ import annotations

import os

# In-container helpers (remote daemons), run as the login user. $1 is a pid in the container.
WAITING = r"""
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
RESTORE = r"""
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

FIND_SHELL = r"""
for d in /proc/[0-9]*; do
  read -r l < $d/stat 2>/dev/null || continue
  p=${l%% *}; r=${l##*) }; set -- $r
  [ "$4" = "$p" ] && [ "$5" != 0 ] && echo $p
done
exit 0
"""


def stat_fields(path: str) -> list[str] | None:
    """/proc/PID/stat from the state on (field 3), or None."""
    try:
        with open(path, "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rfind(b")") + 2:].decode("ascii", "replace").split()


def in_container(pid: int, container_id: str) -> bool:
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            return container_id in f.read()
    except OSError:
        return False


def ns_pid(pid: int) -> int | None:
    """The pid of host process `pid` in its innermost pid namespace."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except (OSError, ValueError):
        pass
    return None


def host_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = stat_fields(f"/proc/{entry}/stat")
            if fields and len(fields) > 1:
                children.setdefault(int(fields[1]), []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


__all__ = ["FIND_SHELL", "RESTORE", "WAITING", "host_tree", "in_container", "ns_pid", "stat_fields"]
