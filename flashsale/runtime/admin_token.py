"""The operator token: from FLASHSALE_ADMIN_TOKEN, else generated once into the data dir."""

from __future__ import annotations

from pathlib import Path

from flashsale.runtime.secrets_file import read_or_create_secret

TOKEN_FILE = "admin-token"  # noqa: S105 - a file name, not a secret


def resolve_admin_token(configured: str, data_dir: Path) -> tuple[str, Path | None]:
    """Returns the token and the file it lives in (None when it came from the settings)."""
    if configured:
        return configured, None
    path = data_dir / TOKEN_FILE
    return read_or_create_secret(path), path
