"""Locates the files that travel with the package: the Lua scripts and the default config.

A built wheel carries them inside the package; a source checkout (editable install, tests)
keeps them at the top of the repository.
"""

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def _find(relative: str) -> Path:
    for base in (_PACKAGE_DIR, _PACKAGE_DIR.parent):
        candidate = base / relative
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"flashsale is missing its packaged file {relative!r}")


def lua_dir() -> Path:
    return _find("lua")


def default_config_file() -> Path:
    return _find("config/flashsale.toml")
