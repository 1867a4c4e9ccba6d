"""Binds the Lua scripts in lua/ to a Redis client, once, by file name."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from flashsale.resources import lua_dir

_INCLUDE = re.compile(r"^--! include (?P<name>_[a-z_]+\.lua)$", re.MULTILINE)


def script_source(name: str, folder: Path | None = None) -> str:
    """A script's text with its `--! include _lib.lua` lines replaced by the library's text."""
    folder = folder or lua_dir()
    source = (folder / f"{name}.lua").read_text(encoding="utf-8")
    return _INCLUDE.sub(lambda m: (folder / m["name"]).read_text(encoding="utf-8"), source)


@dataclass(frozen=True)
class Scripts:
    """One AsyncScript per atomic operation; redis-py reloads a script Redis has forgotten."""

    purchase: AsyncScript
    purchase_batch: AsyncScript
    confirm: AsyncScript
    cancel: AsyncScript
    expire_holds: AsyncScript
    create_sale: AsyncScript
    patch_sale: AsyncScript
    end_sale: AsyncScript
    trim_events: AsyncScript
    add_counts: AsyncScript
    probe: AsyncScript

    @classmethod
    def register(cls, redis: Redis) -> Scripts:
        bound = {
            name: redis.register_script(script_source(name)) for name in cls.__dataclass_fields__
        }
        return cls(**bound)
