"""A small TOML writer for scenario documents: tables of scalars and arrays of tables, strings as
basic or multi-line strings (build() checks that every document reads back the same with tomllib).

Not tomli-w: it writes a multi-line string as a basic string, with every backslash and quote of a
shell script escaped; a literal string (between triple single quotes) keeps a provider program or a staged file
readable, and editable, exactly as it runs. That is the one thing this writer adds.
"""
from __future__ import annotations

import re

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _key(k: str) -> str:
    return k if _BARE_KEY.fullmatch(k) else _basic(k)


def _escape(s: str, newline: str) -> str:
    """`s` escaped for a TOML basic string; a newline becomes `newline` (escaped, or kept in a
    multi-line string)."""
    out = []
    for ch in s:
        o = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append(newline)
        elif ch == "\t":
            out.append("\\t")
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    return "".join(out)


def _basic(s: str) -> str:
    return '"' + _escape(s, "\\n") + '"'


def _literal_ok(s: str) -> bool:
    return ("'''" not in s and not s.endswith("'")
            and all(c in "\t\n" or (ord(c) >= 0x20 and ord(c) != 0x7F) for c in s))


def _multiline(s: str) -> str:
    if _literal_ok(s):
        return "'''\n" + s + "'''"
    return '"""\n' + _escape(s, "\n") + '"""'


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        # one line (with or without its newline) reads best as a basic string
        return _multiline(v) if "\n" in v.rstrip("\n") or v.count("\n") > 1 else _basic(v)
    if isinstance(v, list):
        if not v:
            return "[]"
        return "[\n" + "".join(f"  {toml_value(x)},\n" for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dumps(doc: dict, header: str = "") -> str:
    """A scenario document as TOML: tables of scalars, arrays of tables, one array of strings.

    Top-level values must be dicts (tables) or lists of dicts (arrays of tables)."""
    parts = [header] if header else []
    for name, value in doc.items():
        if isinstance(value, dict):
            if not value:
                continue
            body = "".join(f"{_key(k)} = {toml_value(v)}\n" for k, v in value.items())
            parts.append(f"[{_key(name)}]\n{body}")
        elif isinstance(value, list):
            for item in value:
                body = "".join(f"{_key(k)} = {toml_value(v)}\n" for k, v in item.items())
                parts.append(f"[[{_key(name)}]]\n{body}")
        else:
            raise TypeError(f"top-level {name!r} must be a table or an array of tables")
    return "\n".join(parts)
