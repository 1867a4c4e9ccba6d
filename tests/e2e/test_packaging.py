"""A plain (non-editable) install carries the Lua scripts and the default config."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_wheel_carries_scripts_and_config_and_runs_from_them(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--quiet", "-w", str(tmp_path / "dist"), str(ROOT)],
        check=True,
        timeout=300,
    )  # fmt: skip
    wheel = next((tmp_path / "dist").glob("flashsale-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    lua = sorted(p.name for p in (ROOT / "lua").glob("*.lua"))
    assert lua
    assert {f"flashsale/lua/{name}" for name in lua} <= names
    assert "flashsale/config/flashsale.toml" in names

    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target",
         str(target), str(wheel)],
        check=True,
        timeout=300,
    )  # fmt: skip
    probe = (
        "import flashsale.resources as r, flashsale.settings as s;"
        "print(r.lua_dir()); print(r.default_config_file());"
        "print(s.load_settings(env={}).server.port)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    lua_dir, config_file, port = result.stdout.split()
    assert Path(lua_dir).is_relative_to(target)
    assert Path(config_file).is_relative_to(target)
    assert port == "8080"
