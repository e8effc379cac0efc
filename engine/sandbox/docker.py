"""The docker sandbox: one container per session, driven through the docker SDK.

The container has no network, a pids limit (fork bombs stay inside it), a memory limit, no
capabilities and no-new-privileges; its pid 1 is a placeholder that only reaps orphans. The
scenario's files are copied in before it starts (home owned by the login user, the run dir and files
outside home root-owned and read-only). The login shell is a `docker exec` with a tty, as the
scenario's user; its raw tty stream is the Terminal. Every container carries the label
`teletype=1`, so a leftover one can be found (`docker ps -a --filter label=teletype=1`).

By default the image is built here from the host's static busybox (see dockerimage.py); `image=`
names any image with /bin/sh instead. The daemon connection and exec streams are in dockerapi.py,
the login shell's Terminal (local and remote daemons) in dockerterm.py; their public names are
importable from here too.
"""
from __future__ import annotations

import io
import json
import logging
import os
import signal
import tarfile
import time
from pathlib import Path

from teletype.engine.sandbox.base import (
    LOGIN_DIR,
    RUN_DIR,
    ExecResult,
    Login,
    SandboxError,
    StagingDir,
    passwd_lines,
    rc_script,
    stage_home,
    stage_run_dir,
)
from teletype.engine.sandbox.dockerapi import (
    API_TIMEOUT,
    HINT,
    PRIVATE_SOCKET,
    DeadlineExceeded,
    DeadlineStream,
    connect,
    hijack,
    short,
)
from teletype.engine.sandbox.dockerimage import ensure_busybox_image
from teletype.engine.sandbox.dockerproc import host_tree, in_container
from teletype.engine.sandbox.dockerterm import DockerTerminal
from teletype.engine.sandbox.stagingdir import clean_orphans, owner_record, owner_state
from teletype.engine.worlds.scenario import Scenario

log = logging.getLogger(__name__)

PIDS_LIMIT = 256
MEM_LIMIT = "512m"
FSIZE_LIMIT = 256 << 20   # largest file the sandbox may write
NOFILE_LIMIT = 1024
LABEL = "teletype"
OWNER_LABEL = "teletype.owner"   # the process that created it (teletype.engine.sandbox.stagingdir.owner_record)

# pid 1: waits (and so reaps every orphan the session leaves behind) and ends on TERM.
PLACEHOLDER = ("trap 'exit 0' TERM; command -v sleep >/dev/null || { echo 'teletype: no sleep in the image' >&2; "
               "exit 1; }; while :; do sleep 2147483647 & wait; done")
# exec(): report our pid on stderr (stripped again) so that a timeout can end the whole tree.
_EXEC_MARK = b"\x1eteletype-exec "
_EXEC_WRAP = "printf '\\036teletype-exec %s\\n' \"$$\" >&2; exec /bin/sh -c \"$1\""

# start(): size the tty, then become the login shell (same pid).
_LOGIN_WRAP = 'stty rows "$1" cols "$2" 2>/dev/null; exec "$0" -i'

# In-container helper (remote daemons), run as the login user. $1 is a pid in the container.
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
        clean_orphans()
        clean_containers(self.client)   # containers of runs that were killed before they could remove them
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
                               f"{short(exc)}") from exc

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
                  "teletype.nonce": self.login.nonce, OWNER_LABEL: json.dumps(owner_record())}
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
            raise SandboxError(f"cannot create the docker sandbox from {self.image}: {short(exc)}") from exc

    # -- running ------------------------------------------------------------------------------
    def start(self, rows: int = 24, cols: int = 80) -> DockerTerminal:
        import docker.errors

        if self.container_id is None:
            raise SandboxError("the docker sandbox is closed")
        lg = self.login
        try:
            self._put_login_rc()
            # The tty gets its size before the shell starts (API 1.41 execs start at 0x0, and a
            # resize under a running busybox ash makes it redraw its prompt, marker and all).
            argv = ["/bin/sh", "-c", _LOGIN_WRAP, lg.shell, str(rows), str(cols)]
            exec_id = self.client.api.exec_create(
                self.container_id, argv, stdin=True, tty=True,
                environment=lg.environ(self.scenario), workdir=lg.home, user=f"{lg.uid}:{lg.gid}")["Id"]
            self.terminal = DockerTerminal(self.client.api, self.container_id or "", exec_id, rows, cols,
                                           run=self._run, force_remote=self._force_remote)
        except docker.errors.DockerException as exc:
            raise SandboxError(f"cannot start the login shell in the docker sandbox: {short(exc)}") from exc
        return self.terminal

    def _put_login_rc(self) -> None:
        """A fresh rc for each login shell, readable by the login user alone; it deletes itself as
        it is read (the nonce is in it)."""
        lg = self.login
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            ti = tarfile.TarInfo(LOGIN_DIR.strip("/"))
            ti.type, ti.mode, ti.uid, ti.gid, ti.mtime = tarfile.DIRTYPE, 0o700, lg.uid, lg.gid, int(time.time())
            tar.addfile(ti)
            data = rc_script(lg).encode()
            ti = tarfile.TarInfo(LOGIN_DIR.strip("/") + "/rc")
            ti.size, ti.mode, ti.uid, ti.gid, ti.mtime = len(data), 0o600, lg.uid, lg.gid, int(time.time())
            tar.addfile(ti, io.BytesIO(data))
        if not self.client.api.put_archive(self.container_id, "/", buf.getvalue()):
            raise SandboxError("docker refused the login shell's rc file (put_archive)")

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
            raw, pending, keep = hijack(api, exec_id, tty=False)
        except Exception as exc:
            if quiet:
                return None
            raise SandboxError(f"cannot run a command in the docker sandbox: {short(exc)}") from exc
        from docker.utils.socket import STDERR, SocketError, frames_iter

        deadline = time.monotonic() + timeout
        stream = DeadlineStream(raw, pending, deadline)
        output = bytearray()
        err_head = bytearray()   # stderr until the pid mark's newline
        marked_done = not marked
        inner_pid: int | None = None
        timed_out = False
        try:
            for kind, payload in frames_iter(stream, tty=False):
                if kind == STDERR and not marked_done:
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
        except DeadlineExceeded:
            timed_out = True
        except (OSError, SocketError):
            pass  # the stream broke off: what came is the output
        finally:
            stream.close()
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
        if pid and not self._force_remote and in_container(pid, self.container_id or ""):
            try:
                for _ in range(3):
                    for p in host_tree(pid):
                        if in_container(p, self.container_id or ""):
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
            log.warning("docker: closing the login shell's stream failed", exc_info=True)
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
                    log.debug("docker: closing the client failed", exc_info=True)

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
        raise SandboxError(f"cannot remove docker container {self.container_id[:12]}: {short(last)}; "
                           "remove it with `docker rm -f` (it carries the label teletype=1)")

    def __enter__(self) -> DockerSandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def clean_containers(client, *, dry_run: bool = False) -> list[tuple[str, str]]:
    """Remove the containers labelled teletype=1 whose owner process (this machine, this pid
    namespace) is gone; returns (container id, what happened) pairs. A daemon that cannot be asked
    leaves everything as it is."""
    done = []
    try:
        found = client.api.containers(all=True, filters={"label": f"{LABEL}=1"})
    except Exception as exc:
        log.warning("docker: cannot list teletype's containers: %s", short(exc))
        return done
    for c in found:
        try:
            owner = json.loads((c.get("Labels") or {}).get(OWNER_LABEL, ""))
        except ValueError:
            continue   # an older teletype's container: no owner recorded, not ours to judge
        if owner_state(owner) != "gone":
            continue
        cid = c["Id"][:12]
        if dry_run:
            done.append((cid, "would be removed"))
            continue
        try:
            client.api.remove_container(c["Id"], force=True, v=True)
            done.append((cid, "removed"))
        except Exception as exc:
            done.append((cid, f"not removed: {short(exc)}"))
    return done


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


__all__ = ["API_TIMEOUT", "FSIZE_LIMIT", "HINT", "LABEL", "MEM_LIMIT", "NOFILE_LIMIT", "PIDS_LIMIT",
           "PLACEHOLDER", "PRIVATE_SOCKET", "DockerSandbox", "DockerTerminal", "connect"]
