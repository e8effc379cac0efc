"""The docker daemon's client side: connecting (with a useful hint when there is no daemon) and the
raw stream of an attached exec (hijacked from the HTTP connection, read without blocking, or read
frame by frame with the SDK's own reader under a deadline: `DeadlineStream`).
"""
from __future__ import annotations

import os
import select
import socket
import time

from teletype.engine.sandbox.base import SandboxError

API_TIMEOUT = 60

HINT = ("start a docker daemon (`.ci/dockerd.sh` starts a private one and prints the DOCKER_HOST to "
        "use), point DOCKER_HOST at a running one, or use --sandbox bwrap")


def short(exc: BaseException) -> str:
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
        raise SandboxError(f"cannot reach a docker daemon at {where}: {short(exc)}. {HINT}") from exc
    return client


def hijack(api, exec_id: str, tty: bool):
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


def recv(raw, n: int = 65536) -> bytes | None:
    """One read from the stream: bytes, b"" at EOF, None when nothing was ready after all."""
    try:
        return raw.recv(n)
    except (BlockingIOError, InterruptedError):
        return None
    except (ConnectionError, OSError, ValueError):
        return b""


def ready(raw, timeout: float) -> bool:
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


class DeadlineExceeded(Exception):
    """The deadline of a DeadlineStream passed before the stream ended."""


class DeadlineStream:
    """An attached non-tty exec's stream, for the SDK's frame reader (docker.utils.socket.frames_iter),
    with the two things the SDK lacks: a deadline, and the bytes the HTTP client read ahead.

    The SDK's reader polls the descriptor before each read, with no timeout, then reads the socket
    directly (past anything already buffered with the 101 head). So the descriptor it polls is a
    pipe that is always readable, and `recv` does the waiting: the bytes read ahead first, then the
    socket until the deadline, then DeadlineExceeded."""

    def __init__(self, raw, leftover: bytes, deadline: float):
        self.raw, self._pending, self.deadline = raw, bytes(leftover), deadline
        self._r, self._w = os.pipe()
        os.write(self._w, b"x")

    def fileno(self) -> int:
        return self._r

    def recv(self, n: int) -> bytes:
        if self._pending:
            data, self._pending = self._pending[:n], self._pending[n:]
            return data
        while True:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise DeadlineExceeded
            try:
                if not ready(self.raw, remaining):
                    continue
            except EOFError:
                return b""
            data = recv(self.raw, n)
            if data is not None:
                return data

    def close(self) -> None:
        for fd in (self._r, self._w):
            try:
                os.close(fd)
            except OSError:
                pass
