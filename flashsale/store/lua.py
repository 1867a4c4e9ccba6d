"""The Lua scripts in lua/, as Redis runs them: each with its `--! include` lines replaced.

`--! include _name.lua` stands for a library file of lua/ (itself free to include others);
each library is pasted once per script, the first time it is named. `_constants.lua` is not
a file: it is written from keys.py, so that names shared with Python live in one place.
"""

from __future__ import annotations

import re
from pathlib import Path

from flashsale import keys
from flashsale.resources import lua_dir

_INCLUDE = re.compile(r"^--! include (?P<name>_[a-z_]+\.lua)$", re.MULTILINE)
_GENERATED = {"_constants.lua": keys.lua_constants}


def script_source(name: str, folder: Path | None = None) -> str:
    """The text Redis runs for lua/<name>.lua."""
    folder = folder or lua_dir()
    return _expand((folder / f"{name}.lua").read_text(encoding="utf-8"), folder, set())


def _expand(source: str, folder: Path, included: set[str]) -> str:
    def library(match: re.Match[str]) -> str:
        name = match["name"]
        if name in included:
            return ""
        included.add(name)
        generate = _GENERATED.get(name)
        text = generate() if generate else (folder / name).read_text(encoding="utf-8")
        return _expand(text, folder, included)

    return _INCLUDE.sub(library, source)
