"""The operator token: from FLASHSALE_ADMIN_TOKEN, else generated once into the data dir."""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

from flashsale.errors import ConfigError

log = logging.getLogger("flashsale.runtime.admin_token")

TOKEN_FILE = "admin-token"  # noqa: S105 - a file name, not a secret


def resolve_admin_token(configured: str, data_dir: Path) -> tuple[str, Path | None]:
    """Returns the token and the file it lives in (None when it came from the settings)."""
    if configured:
        return configured, None
    path = data_dir / TOKEN_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two processes starting at once never write different tokens.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_existing(path), path
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token, path


def _read_existing(path: Path) -> str:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("%s is readable by other users (mode %o); setting it to 0600", path, mode)
        path.chmod(0o600)
    token = path.read_text(encoding="utf-8").strip()
    if not token:
        raise ConfigError(f"{path} is empty: delete it to have a new token generated")
    return token
