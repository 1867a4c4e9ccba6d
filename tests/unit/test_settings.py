"""Settings: packaged defaults, file, env and flag precedence; invalid values named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flashsale.errors import ConfigError
from flashsale.resources import default_config_file
from flashsale.settings import env_name, load_settings, setting_names


def test_defaults_come_from_the_packaged_file() -> None:
    settings = load_settings(env={})
    assert (settings.server.host, settings.server.port) == ("127.0.0.1", 8080)
    assert settings.redis.url == ""
    assert settings.admin.token == ""  # no default token ships
    assert settings.purchases.idempotency_ttl_seconds == 86400


def test_every_setting_has_a_documented_line_in_config() -> None:
    text = default_config_file().read_text()
    sections = re.findall(r"^\[(\w+)\]$", text, flags=re.M)
    for name in setting_names():
        section = next(s for s in sections if name.startswith(s + "_"))
        key = name.removeprefix(section + "_")
        block = text.split(f"[{section}]")[1].split("\n[")[0]
        assert re.search(rf"^# .*\n(#.*\n)*{key} = ", block, flags=re.M), name


def test_precedence_file_then_env_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "flashsale.toml"
    config.write_text('[server]\nport = 9000\nhost = "0.0.0.0"\n[log]\nlevel = "DEBUG"\n')
    settings = load_settings(
        config,
        env={"FLASHSALE_SERVER_PORT": "9100", "FLASHSALE_REDIS_URL": "redis://h:1/0"},
        overrides={"server_port": 9200, "server_data_dir": None},
    )
    assert settings.server.host == "0.0.0.0"
    assert settings.log.level == "DEBUG"
    assert settings.redis.url == "redis://h:1/0"
    assert settings.server.port == 9200
    assert settings.server.data_dir == "var"  # a flag left unset changes nothing


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"FLASHSALE_SERVER_PORT": "eighty"}, "FLASHSALE_SERVER_PORT"),
        ({"FLASHSALE_SERVER_WORKERS": "-1"}, "FLASHSALE_SERVER_WORKERS"),
        ({"FLASHSALE_REDIS_SOCKET_TIMEOUT_SECONDS": "-1"}, "FLASHSALE_REDIS_SOCKET_TIMEOUT"),
        ({"FLASHSALE_REDIS_URL": "localhost:6379"}, "FLASHSALE_REDIS_URL"),
        ({"FLASHSALE_ORDERS_DSN": "mysql://x"}, "FLASHSALE_ORDERS_DSN"),
        ({"FLASHSALE_LOG_LEVEL": "LOUD"}, "log_level"),
    ],
)
def test_invalid_values_stop_startup_naming_the_setting(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings(env=env)


def test_unknown_key_in_a_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[server]\nprot = 1\n")
    with pytest.raises(ConfigError, match=r"unknown setting \[server\] prot"):
        load_settings(config, env={})


def test_wrong_type_in_a_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[server]\nport = "8080"\n')
    with pytest.raises(ConfigError, match="server_port"):
        load_settings(config, env={})


def test_env_names_follow_the_sections() -> None:
    assert env_name("redis_url") == "FLASHSALE_REDIS_URL"
    assert env_name("orders_dsn") == "FLASHSALE_ORDERS_DSN"
    assert env_name("admin_token") == "FLASHSALE_ADMIN_TOKEN"
