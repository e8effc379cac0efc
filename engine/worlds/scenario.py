"""Scenario files: the TOML worlds a model is dropped into, loaded into validated, typed objects.

The file format is a contract (see DESIGN.md); every field below keeps its meaning. A file that is
wrong raises `ScenarioError`, whose message names the file, the key and what was expected.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_NAME_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_HOST_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$")


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the file, the key and the expectation."""


# Bounds on what one scenario may ask the host to stage (a scenario file is untrusted input). The
# bwrap sandbox's home holds HOME_QUOTA (engine/sandbox/bwrap.py); staging stays well below it.
MAX_FILES = 5000
MAX_FILE_BYTES = 16 << 20
MAX_TOTAL_BYTES = 64 << 20
MAX_PATH = 1024
MAX_MOTD = 64 << 10
MAX_PROVIDERS = 100
MAX_PROGRAM_BYTES = 1 << 20
MAX_ENV_VALUE = 64 << 10
MAX_ENV_TOTAL = 256 << 10
MAX_SCENARIO_BYTES = 96 << 20

# Paths the sandbox backends mount themselves (see engine/sandbox): a scenario file may not put
# anything at, under, or over them. (Spelled out here: teletype.engine.sandbox imports this module.)
ENGINE_MOUNTS = ("/proc", "/dev", "/sys", "/run/teletype", "/run/teletype-login", "/home/_")

# Variables teletype sets itself: ENV and the prompts carry the shell's rc file and its markers,
# IFS would change how the rc file reads, the rest follow from [login].
RESERVED_ENV = {"ENV": "it names teletype's rc file (the prompt markers)",
                "PS1": "teletype's prompt carries its markers", "PS2": "teletype's prompt carries its markers",
                "PS4": "teletype's prompt carries its markers",
                "IFS": "it changes how the shell reads teletype's rc file",
                "PATH": "teletype puts its own programs (panic, [provider]) first on it",
                "HOME": "it follows from [login] user", "USER": "it follows from [login] user",
                "LOGNAME": "it follows from [login] user", "SHELL": "it follows from [login] shell"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def reserved_target(path: str, home: str | None = None) -> str | None:
    """Why an absolute path in the sandbox may not be staged, or None when it may."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        return "must not contain '..'"
    norm = "/" + "/".join(parts)
    if norm == "/":
        return "is the sandbox's root folder, which the sandbox makes itself"
    for m in ENGINE_MOUNTS:
        m = (home or "/home/USER") if m == "/home/_" else m
        if m.startswith(norm + "/"):
            return f"would cover {m}, which the sandbox mounts itself"
        if m != home and (norm == m or norm.startswith(m + "/")):
            return f"is {'' if norm == m else 'under '}{m}, which the sandbox mounts itself"
    return None


def _path_text(value: str, what: str) -> str:
    if not value or "\0" in value:
        raise ValueError(f"{what} must be a non-empty path")
    if _CONTROL.search(value):
        raise ValueError(f"{what} {value!r} contains a control character")
    if len(value.encode()) > MAX_PATH:
        raise ValueError(f"{what} is {len(value.encode())} bytes long; at most {MAX_PATH}")
    if any(len(p.encode()) > 255 for p in value.split("/")):
        raise ValueError(f"{what} {value[:60]!r}... has a name longer than 255 bytes")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _mode(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, int):
        raise ValueError("write the mode as an octal string such as \"0755\", not a number")
    text = str(value)
    if not re.fullmatch(r"0?[0-7]{3,4}", text):
        raise ValueError(f"expected an octal mode such as \"0644\", got {text!r}")
    return text


class ScenarioMeta(_Strict):
    archetype: str = ""
    """Family of tasks; defaults to the scenario's folder name."""
    description: str = ""
    """For people; never shown to the model."""
    expect: Literal["exit", "panic"] = "exit"
    """"exit": the task is feasible; "panic": the correct ending is panic."""
    split: Literal["train", "heldout"] = "train"
    """Training split, or held out for evaluation."""


class Login(_Strict):
    user: str = "user"
    """Login name; also the prompt's user@host."""
    host: str = "teletype"
    """Host name shown in the prompt and the banner."""
    shell: str = "/bin/sh"
    """The login shell (dash on Debian hosts, ash in the busybox image)."""
    motd: str = ""
    """Message of the day, printed after the banner at login."""

    @field_validator("shell")
    @classmethod
    def _shell(cls, v: str) -> str:
        if not re.fullmatch(r"/[A-Za-z0-9._+/-]+", v) or ".." in v.split("/"):
            raise ValueError(f"expected the absolute path of a POSIX shell such as \"/bin/sh\", got {v!r}")
        return v

    @field_validator("motd")
    @classmethod
    def _motd(cls, v: str) -> str:
        if len(v.encode()) > MAX_MOTD:
            raise ValueError(f"the motd is {len(v.encode()):,} bytes; at most {MAX_MOTD:,} (put long "
                             "texts in a file under [[files]])")
        return v

    @field_validator("user")
    @classmethod
    def _user(cls, v: str) -> str:
        if not _NAME_RE.match(v) or v == "root":
            raise ValueError(f"expected a lower-case login name (not root), got {v!r}")
        return v

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        if not _HOST_RE.match(v):
            raise ValueError(f"expected a host name of letters, digits, dots and dashes, got {v!r}")
        return v


class FileSpec(_Strict):
    path: str
    """"~/x" is in the user's home, "x" relative to home, "/x" absolute (outside home: read-only)."""
    content: str | None = None
    """Text content; omitted with kind = "dir"."""
    mode: str | None = None
    """Octal permission bits, such as "0644"."""
    kind: Literal["file", "dir", "symlink"] = "file"
    """A regular file, a directory, or a symbolic link to `target`."""
    target: str | None = None
    """Where a symlink points (as written; "~" is not expanded)."""

    _m = field_validator("mode", mode="before")(classmethod(lambda cls, v: _mode(v)))

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        _path_text(v, "the path")
        if ".." in v.split("/"):
            raise ValueError(f"{v!r} must not contain '..' (paths stay inside the sandbox)")
        if v.startswith("/"):
            why = reserved_target(v)
            if why:
                raise ValueError(f"{v!r} {why}")
        return v

    @field_validator("target")
    @classmethod
    def _target(cls, v: str | None) -> str | None:
        return v if v is None else _path_text(v, "the symlink's target")

    @field_validator("content")
    @classmethod
    def _content(cls, v: str | None) -> str | None:
        if v is not None and len(v) > MAX_FILE_BYTES // 4 and len(v.encode()) > MAX_FILE_BYTES:
            raise ValueError(f"the content is {len(v.encode()):,} bytes; at most {MAX_FILE_BYTES:,}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> FileSpec:
        if self.mode and int(self.mode, 8) & 0o6000:
            raise ValueError(f"mode {self.mode}: setuid and setgid bits are not staged")
        if self.kind == "symlink" and not self.target:
            raise ValueError("a symlink needs `target`")
        if self.kind == "file" and self.content is None:
            raise ValueError("a file needs `content` (use \"\" for an empty file)")
        if self.kind == "dir" and self.content is not None:
            raise ValueError("a directory has no `content`")
        if not self.path or "\0" in self.path:
            raise ValueError("`path` must be a non-empty path")
        return self


class _Check(_Strict):
    description: str = ""
    """Shown to people in the checker panel."""


class PathCheck(_Check):
    kind: Literal["exists", "absent"]
    path: str


class ContentCheck(_Check):
    kind: Literal["contains", "not_contains", "equals"]
    path: str
    text: str
    """The text the file must contain, must not contain, or equal exactly."""


class ModeCheck(_Check):
    kind: Literal["mode"]
    path: str
    mode: str

    _m = field_validator("mode", mode="before")(classmethod(lambda cls, v: _mode(v)))


class CommandCheck(_Check):
    kind: Literal["command"]
    command: str
    """Shell run in the sandbox as the user after the session; exit status 0 passes."""


Check = Annotated[PathCheck | ContentCheck | ModeCheck | CommandCheck, Field(discriminator="kind")]


class Solution(_Strict):
    commands: list[str]
    """The reference demonstration; ends with "exit" or "panic ..."."""

    @field_validator("commands")
    @classmethod
    def _ends(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("expected at least one command")
        last = v[-1].strip()
        if not (last == "exit" or last == "panic" or last.startswith("panic ")):
            raise ValueError(f"the last command must be `exit` or `panic [reason]`, got {last!r}")
        return v


class Scenario(_Strict):
    scenario: ScenarioMeta = ScenarioMeta()
    login: Login = Login()
    env: dict[str, str] = {}
    files: list[FileSpec] = []
    checks: list[Check] = Field(min_length=1)
    solution: Solution
    provider: dict[str, str] = {}
    """Optional programs installed on the PATH: name -> shell script body (e.g. a task provider)."""

    # Filled by the loader, not by the file.
    name: str = ""
    source: str = ""

    @property
    def archetype(self) -> str:
        return self.scenario.archetype

    @property
    def home(self) -> str:
        return f"/home/{self.login.user}"

    def resolve(self, path: str) -> str:
        """Absolute path inside the sandbox for a path written in the scenario."""
        if path == "~":
            return self.home
        if path.startswith("~/"):
            return f"{self.home}/{path[2:]}"
        if path.startswith("/"):
            return path
        return f"{self.home}/{path}"

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        total = 0
        for key, value in v.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise ValueError(f"{key!r} is not a valid variable name")
            if key in RESERVED_ENV or key.startswith("TELETYPE_") or key == "TELETYPE":
                why = RESERVED_ENV.get(key, "the TELETYPE_ prefix is teletype's own")
                raise ValueError(f"{key} is reserved: teletype sets it ({why})")
            if "\0" in value:
                raise ValueError(f"{key}: a value cannot hold a NUL character")
            if len(value.encode()) > MAX_ENV_VALUE:
                raise ValueError(f"{key}: the value is {len(value.encode()):,} bytes; at most {MAX_ENV_VALUE:,}")
            total += len(key) + len(value.encode())
        if total > MAX_ENV_TOTAL:
            raise ValueError(f"the variables hold {total:,} bytes; at most {MAX_ENV_TOTAL:,}")
        return v

    @field_validator("provider")
    @classmethod
    def _provider(cls, v: dict[str, str]) -> dict[str, str]:
        if len(v) > MAX_PROVIDERS:
            raise ValueError(f"{len(v)} programs; at most {MAX_PROVIDERS}")
        for name, body in v.items():
            if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}", name):
                raise ValueError(f"{name!r} is not a usable program name: expected up to 64 letters, "
                                 "digits, '_', '.', '+' or '-', not starting with '.' or '-'")
            if name == "panic":
                raise ValueError("'panic' is teletype's own program (it ends the session); "
                                 "choose another name")
            if len(body.encode()) > MAX_PROGRAM_BYTES:
                raise ValueError(f"{name}: the program is {len(body.encode()):,} bytes; "
                                 f"at most {MAX_PROGRAM_BYTES:,}")
        return v

    @model_validator(mode="after")
    def _sizes(self) -> Scenario:
        if len(self.files) > MAX_FILES:
            raise ValueError(f"[files] {len(self.files):,} entries; at most {MAX_FILES:,}")
        total = sum(len(f.content.encode()) for f in self.files if f.content)
        if total > MAX_TOTAL_BYTES:
            raise ValueError(f"[files] the contents add up to {total:,} bytes; at most {MAX_TOTAL_BYTES:,}")
        return self


def _format_errors(path: Path, err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if not str(p).startswith("function-"))
        msg = e["msg"].removeprefix("Value error, ")
        if msg.startswith("[") and not loc:
            lines.append(f"{path}: {msg}")  # the message names its key itself
            continue
        if e["type"] == "missing":
            msg = "is required but missing"
        elif e["type"] == "extra_forbidden":
            msg = "is not a known key"
        elif e["type"] == "literal_error":
            msg = f"expected {e.get('ctx', {}).get('expected', 'one of the allowed values')}, got {e.get('input')!r}"
        elif e["type"] == "union_tag_invalid":
            msg = ("expected kind one of exists, absent, contains, not_contains, equals, mode, command; "
                   f"got {e.get('input', {}).get('kind') if isinstance(e.get('input'), dict) else e.get('input')!r}")
        lines.append(f"{path}: [{loc or 'file'}] {msg}")
    return "\n".join(lines)


def load_scenario(path: str | Path) -> Scenario:
    """Load and validate one scenario file."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_SCENARIO_BYTES + 1)
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read scenario file: {exc.strerror}") from None
    if len(raw) > MAX_SCENARIO_BYTES:
        raise ScenarioError(f"{path}: the file is over {MAX_SCENARIO_BYTES:,} bytes; a scenario stages at "
                            f"most {MAX_TOTAL_BYTES:,} bytes of content")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ScenarioError(f"{path}: expected UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ScenarioError(f"{path}: not usable TOML: arrays or tables nested too deeply") from None
    meta = data.setdefault("scenario", {})
    if isinstance(meta, dict) and not meta.get("archetype"):
        meta["archetype"] = path.parent.name
    data["name"] = f"{path.parent.name}/{path.stem}"
    data["source"] = str(path)
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(_format_errors(path, exc)) from None


def bundled_scenarios_dir() -> Path:
    """The scenarios/ folder shipped with teletype: package data of the `teletype` package, beside
    engine/ (the same place in a checkout and in an installed wheel)."""
    return Path(__file__).resolve().parents[2] / "scenarios"


def find_scenarios(spec: str | Path | None = None, *, split: str | None = None,
                   archetype: str | None = None) -> list[Path]:
    """Scenario files for a spec: a .toml file, a folder, an archetype name, or "archetype/name"."""
    root = bundled_scenarios_dir()
    if spec is None:
        paths = sorted(root.glob("*/*.toml"))
    else:
        p = Path(spec)
        if p.is_file():
            paths = [p]
        elif p.is_dir() and not (str(spec) in ("train", "heldout") and not any(p.rglob("*.toml"))):
            # (a folder that holds no scenarios does not hide the split of the same name: `teletype
            # eval train` in teletype's own checkout, beside its train/ package)
            paths = sorted(p.rglob("*.toml"))
        elif (root / spec).is_dir():
            paths = sorted((root / spec).glob("*.toml"))
        elif (root / f"{spec}.toml").is_file():
            paths = [root / f"{spec}.toml"]
        elif str(spec) in ("train", "heldout"):
            paths, split = sorted(root.glob("*/*.toml")), str(spec)
        else:
            raise ScenarioError(
                f"{spec}: no such scenario file, folder, archetype or split "
                f"(bundled archetypes: {', '.join(sorted(d.name for d in root.iterdir() if d.is_dir()))})")
    if split or archetype:
        kept = []
        for path in paths:
            sc = load_scenario(path)
            if split and sc.scenario.split != split:
                continue
            if archetype and sc.archetype != archetype:
                continue
            kept.append(path)
        paths = kept
    return paths
