"""The engine's own secrets - the operator token, and the key that signs waiting-room tickets
and purchase tokens: from their settings, else generated once into the data dir."""

from __future__ import annotations

from pathlib import Path

from flashsale.runtime.secrets_file import read_or_create_secret

TOKEN_FILE = "admin-token"  # noqa: S105 - a file name, not a secret
SIGNING_KEY_FILE = "queue-signing-key"


def resolve_admin_token(configured: str, data_dir: Path) -> tuple[str, Path | None]:
    """Returns the token and the file it lives in (None when it came from the settings)."""
    if configured:
        return configured, None
    path = data_dir / TOKEN_FILE
    return read_or_create_secret(path), path


def resolve_signing_key(configured: str, data_dir: Path) -> str:
    """Every process of one `serve` shares the data dir's key; processes on other hosts must
    be given the same one (FLASHSALE_QUEUE_SIGNING_KEY)."""
    return configured or read_or_create_secret(data_dir / SIGNING_KEY_FILE)
