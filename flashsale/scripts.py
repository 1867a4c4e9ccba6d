"""Binds the Lua scripts in lua/ to a Redis client, once, by file name."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from flashsale.resources import lua_dir


@dataclass(frozen=True)
class Scripts:
    """One AsyncScript per atomic operation; redis-py reloads a script Redis has forgotten."""

    purchase: AsyncScript
    create_sale: AsyncScript
    patch_sale: AsyncScript
    end_sale: AsyncScript
    probe: AsyncScript

    @classmethod
    def register(cls, redis: Redis) -> Scripts:
        folder = lua_dir()
        bound = {
            name: redis.register_script((folder / f"{name}.lua").read_text(encoding="utf-8"))
            for name in cls.__dataclass_fields__
        }
        return cls(**bound)
