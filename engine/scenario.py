"""Scenario files: the TOML worlds a model is dropped into, loaded into validated, typed objects.

The file format is a contract (see DESIGN.md); every field below keeps its meaning. A file that is
wrong raises `ScenarioError`, whose message names the file, the key and what was expected.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_NAME_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_HOST_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$")


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the file, the key and the expectation."""


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

    @model_validator(mode="after")
    def _consistent(self) -> "FileSpec":
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


Check = Annotated[Union[PathCheck, ContentCheck, ModeCheck, CommandCheck], Field(discriminator="kind")]


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

    @model_validator(mode="after")
    def _paths(self) -> "Scenario":
        for key in self.env:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise ValueError(f"env: {key!r} is not a valid variable name")
        for name in self.provider:
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
                raise ValueError(f"provider: {name!r} is not a valid program name")
        return self


def _format_errors(path: Path, err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if not str(p).startswith("function-"))
        msg = e["msg"].removeprefix("Value error, ")
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
        raw = path.read_bytes()
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read scenario file: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ScenarioError(f"{path}: expected UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
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
    """The scenarios/ folder shipped with teletype (beside the packages, or installed as data)."""
    here = Path(__file__).resolve().parent.parent / "scenarios"
    if here.is_dir():
        return here
    import sysconfig

    return Path(sysconfig.get_path("data")) / "share" / "teletype" / "scenarios"


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
        elif p.is_dir():
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
