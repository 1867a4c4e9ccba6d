"""The Lua loader: `--! include` pastes each library once, and names shared with Python
come from keys.py."""

from __future__ import annotations

import re

import pytest

from flashsale import keys
from flashsale.resources import lua_dir
from flashsale.store.lua import script_source

SCRIPTS = sorted(p.stem for p in lua_dir().glob("*.lua") if not p.name.startswith("_"))


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_include_is_resolved_and_each_library_pasted_once(name: str) -> None:
    source = script_source(name)
    assert not re.search(r"^--! include", source, flags=re.M)
    defined = re.findall(r"^local function (\w+)", source, flags=re.M)
    assert len(defined) == len(set(defined)), f"{name}: a library was pasted twice"


def test_the_stock_back_channel_is_the_one_keys_names() -> None:
    for name in ("cancel", "expire_holds", "patch_sale"):
        source = script_source(name)
        assert f"local STOCK_BACK_CHANNEL = '{keys.STOCK_BACK_CHANNEL}'" in source
        assert "fs:stock-back" not in source.replace(keys.lua_constants(), "")


def test_time_comes_from_one_library() -> None:
    for name in SCRIPTS:
        source = script_source(name)
        assert source.count("redis.call('TIME')") <= 1, name
