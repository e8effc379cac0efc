"""The docker sandbox's default image: a busybox root filesystem built here, with no registry.

The host's statically linked /bin/busybox (Debian's busybox-static) goes into a fresh root
filesystem with a symlink for every applet (what `busybox --install -s` would make) and the few
directories programs expect; the tar is imported into the daemon (`docker import`) and tagged
`teletype/busybox:<hash>`, where the hash covers the busybox binary and this recipe. An image with
that tag is reused as is.
"""
from __future__ import annotations

import hashlib
import io
import os
import struct
import subprocess
import tarfile
import time

from teletype.engine.sandbox.base import SandboxError

REPOSITORY = "teletype/busybox"
RECIPE = "teletype-busybox-rootfs/1"   # bump when the rootfs below changes
BUSYBOX = "/bin/busybox"

INSTALL_HINT = ("the docker sandbox builds its image from a statically linked busybox: install it with "
                "`apt-get install busybox-static`, or name an image with /bin/sh in it")

_DIRS = {  # path: mode (all root-owned)
    "bin": 0o755, "sbin": 0o755, "usr": 0o755, "usr/bin": 0o755, "usr/sbin": 0o755,
    "usr/local": 0o755, "usr/local/bin": 0o755, "usr/local/sbin": 0o755, "etc": 0o755,
    "home": 0o755, "root": 0o700, "tmp": 0o1777, "var": 0o755, "var/tmp": 0o1777, "run": 0o755,
    "proc": 0o555, "sys": 0o555, "dev": 0o755, "mnt": 0o755, "opt": 0o755, "srv": 0o755,
}
_ETC = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    "etc/group": "root:x:0:\nnogroup:x:65534:\n",
    "etc/shells": "/bin/sh\n/bin/ash\n",
    "etc/profile": "",
    "etc/nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\n",
}


def is_static_elf(path: str) -> bool:
    """True when `path` is an ELF executable without a program interpreter (statically linked)."""
    with open(path, "rb") as f:
        ident = f.read(64)
        if len(ident) < 52 or ident[:4] != b"\x7fELF":
            return False
        bits64 = ident[4] == 2
        endian = "<" if ident[5] == 1 else ">"
        if bits64:
            phoff, = struct.unpack_from(endian + "Q", ident, 32)
            phentsize, phnum = struct.unpack_from(endian + "HH", ident, 54)
        else:
            phoff, = struct.unpack_from(endian + "I", ident, 28)
            phentsize, phnum = struct.unpack_from(endian + "HH", ident, 42)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    for i in range(phnum):
        p_type, = struct.unpack_from(endian + "I", table, i * phentsize)
        if p_type == 3:  # PT_INTERP: needs a dynamic loader
            return False
    return True


def find_busybox(path: str = BUSYBOX) -> str:
    if not os.path.exists(path):
        raise SandboxError(f"{path} is missing; {INSTALL_HINT}")
    try:
        static = is_static_elf(path)
    except OSError as exc:
        raise SandboxError(f"cannot read {path} ({exc}); {INSTALL_HINT}") from exc
    if not static:
        raise SandboxError(f"{path} is not statically linked (it would not run in an empty image); "
                           f"{INSTALL_HINT}")
    return path


def image_tag(busybox: str = BUSYBOX) -> str:
    h = hashlib.sha256(RECIPE.encode())
    with open(busybox, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return f"{REPOSITORY}:{h.hexdigest()[:16]}"


def applets(busybox: str) -> list[str]:
    """Every applet's install path (`bin/ls`, `usr/bin/awk`, ...), as `busybox --install -s` makes them."""
    try:
        out = subprocess.run([busybox, "--list-full"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             timeout=20, check=True).stdout.decode()
    except (OSError, subprocess.SubprocessError) as exc:
        raise SandboxError(f"cannot run {busybox} --list-full ({exc}); {INSTALL_HINT}") from exc
    paths = sorted({line.strip().lstrip("/") for line in out.splitlines() if line.strip()})
    if "bin/sh" not in paths:
        paths.append("bin/sh")
    return [p for p in paths if p != "bin/busybox" and ".." not in p.split("/")]


def rootfs_tar(busybox: str) -> bytes:
    """The root filesystem as an uncompressed tar, every entry root-owned."""
    buf = io.BytesIO()
    now = int(time.time())

    def info(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.uid, ti.gid, ti.mtime = kind, mode, 0, 0, now
        return ti

    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d, mode in _DIRS.items():
            tar.addfile(info(d, tarfile.DIRTYPE, mode))
        with open(busybox, "rb") as f:
            body = f.read()
        ti = info("bin/busybox", tarfile.REGTYPE, 0o755)
        ti.size = len(body)
        tar.addfile(ti, io.BytesIO(body))
        made = set(_DIRS)
        for path in applets(busybox):
            parent = os.path.dirname(path)
            if parent and parent not in made:
                tar.addfile(info(parent, tarfile.DIRTYPE, 0o755))
                made.add(parent)
            ti = info(path, tarfile.SYMTYPE, 0o777)
            ti.linkname = "/bin/busybox"
            tar.addfile(ti)
        for name, text in _ETC.items():
            data = text.encode()
            ti = info(name, tarfile.REGTYPE, 0o644)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def ensure_busybox_image(client, busybox: str = BUSYBOX) -> str:
    """The tag of the busybox image in `client`'s daemon, importing it first when it is not there."""
    import docker.errors

    busybox = find_busybox(busybox)
    tag = image_tag(busybox)
    try:
        client.api.inspect_image(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    repository, _, version = tag.partition(":")
    data = rootfs_tar(busybox)
    try:
        reply = client.api.import_image_from_data(
            data, repository=repository, tag=version,
            changes=['CMD ["/bin/sh"]', "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
    except docker.errors.DockerException as exc:
        raise SandboxError(f"cannot import the busybox image into docker: {exc}") from exc
    if isinstance(reply, (bytes, str)) and b'"error' in (reply if isinstance(reply, bytes) else reply.encode()):
        raise SandboxError(f"cannot import the busybox image into docker: {reply!r}")
    try:
        client.api.inspect_image(tag)
    except docker.errors.ImageNotFound:
        raise SandboxError(f"docker import did not produce {tag}: {reply!r}") from None
    return tag
