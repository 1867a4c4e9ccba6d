"""The admin token: configured wins; otherwise generated once, private, and reused."""

from __future__ import annotations

import stat
from pathlib import Path

from flashsale.runtime.admin_token import TOKEN_FILE, resolve_admin_token


def test_configured_token_is_used_and_nothing_is_written(tmp_path: Path) -> None:
    assert resolve_admin_token("from-env", tmp_path) == ("from-env", None)
    assert not (tmp_path / TOKEN_FILE).exists()


def test_generated_token_is_private_and_reused(tmp_path: Path) -> None:
    token, path = resolve_admin_token("", tmp_path)
    assert path == tmp_path / TOKEN_FILE
    assert len(token) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert resolve_admin_token("", tmp_path) == (token, path)
    assert resolve_admin_token("", tmp_path / "elsewhere")[0] != token


def test_a_token_file_others_can_read_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / TOKEN_FILE
    path.write_text("handwritten\n")
    path.chmod(0o644)
    assert resolve_admin_token("", tmp_path)[0] == "handwritten"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
