"""Secrets the engine makes for itself (the admin token, the embedded Redis' password): made
once, random, in a file only its owner may read, and reused on every start."""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

from flashsale.errors import ConfigError

log = logging.getLogger("flashsale.secrets")

PRIVATE = 0o600


def read_or_create_secret(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two processes starting at once never write different secrets.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
    except FileExistsError:
        return _read_existing(path)
    secret = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    return secret


def write_private(path: Path, text: str) -> None:
    """Writes `text` to a file no other user can read, at no moment (created 0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE)
    os.fchmod(fd, PRIVATE)  # an older file may have been created with a wider mode
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _read_existing(path: Path) -> str:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("%s is readable by other users (mode %o); setting it to 0600", path, mode)
        path.chmod(PRIVATE)
    secret = path.read_text(encoding="utf-8").strip()
    if not secret:
        raise ConfigError(f"{path} is empty: delete it to have a new one generated")
    return secret
