"""Settings: one frozen dataclass, read from the packaged TOML, a user file, env and flags."""

from __future__ import annotations

import dataclasses
import ipaddress
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flashsale.errors import ConfigError
from flashsale.resources import default_config_file

ENV_PREFIX = "FLASHSALE_"
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _at_least(minimum: float) -> dict[str, Any]:
    return {"minimum": minimum}


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every setting, named <section>_<key> after its place in config/flashsale.toml."""

    server_host: str
    server_port: int = dataclasses.field(metadata=_at_least(0))
    server_workers: int = dataclasses.field(metadata=_at_least(0))
    server_data_dir: str
    server_max_body_bytes: int = dataclasses.field(metadata=_at_least(64))
    server_shutdown_timeout_seconds: float = dataclasses.field(metadata=_at_least(0))
    redis_url: str
    redis_server_binary: str
    redis_startup_timeout_seconds: float = dataclasses.field(metadata=_at_least(0.1))
    redis_max_connections: int = dataclasses.field(metadata=_at_least(1))
    redis_connect_timeout_seconds: float = dataclasses.field(metadata=_at_least(0.01))
    redis_socket_timeout_seconds: float = dataclasses.field(metadata=_at_least(0.01))
    admission_max_in_flight: int = dataclasses.field(metadata=_at_least(1))
    admission_finish_reserve: float = dataclasses.field(metadata=_at_least(0))
    admission_deadline_seconds: float = dataclasses.field(metadata=_at_least(0.01))
    admission_user_rate_per_second: float = dataclasses.field(metadata=_at_least(0))
    admission_user_burst: int = dataclasses.field(metadata=_at_least(1))
    admission_ip_rate_per_second: float = dataclasses.field(metadata=_at_least(0))
    admission_ip_burst: int = dataclasses.field(metadata=_at_least(1))
    admission_trusted_proxies: str
    admission_sold_out_ttl_seconds: float = dataclasses.field(metadata=_at_least(0))
    batching_enabled: bool
    batching_max_size: int = dataclasses.field(metadata=_at_least(1))
    batching_linger_seconds: float = dataclasses.field(metadata=_at_least(0))
    batching_max_in_flight_per_sale: int = dataclasses.field(metadata=_at_least(1))
    breaker_failure_threshold: int = dataclasses.field(metadata=_at_least(1))
    breaker_open_seconds: float = dataclasses.field(metadata=_at_least(0.01))
    orders_dsn: str
    orders_max_backlog: int = dataclasses.field(metadata=_at_least(0))
    worker_in_process: bool
    worker_batch_size: int = dataclasses.field(metadata=_at_least(1))
    worker_claim_idle_seconds: float = dataclasses.field(metadata=_at_least(0.01))
    worker_max_deliveries: int = dataclasses.field(metadata=_at_least(1))
    worker_backoff_max_seconds: float = dataclasses.field(metadata=_at_least(0.05))
    worker_idle_poll_seconds: float = dataclasses.field(metadata=_at_least(0.001))
    worker_sweep_interval_seconds: float = dataclasses.field(metadata=_at_least(0.01))
    purchases_idempotency_ttl_seconds: int = dataclasses.field(metadata=_at_least(1))
    admin_token: str
    log_level: str
    log_format: str

    @property
    def data_dir(self) -> Path:
        return Path(self.server_data_dir)

    @property
    def trusted_proxies(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return _networks(self.admission_trusted_proxies)

    def replace(self, **changes: Any) -> Settings:
        merged = {**dataclasses.asdict(self), **changes}
        return _build(merged)


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def load_settings(
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read the packaged defaults, then `config_file`, then FLASHSALE_* from `env`, then flags."""
    values = _read_toml(default_config_file())
    if config_file is not None:
        values.update(_read_toml(config_file))
    for name in _field_types():
        raw = (env or {}).get(env_name(name))
        if raw is not None:
            values[name] = _parse_env(name, raw)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return _build(values)


def _field_types() -> dict[str, type]:
    hints = {"str": str, "int": int, "float": float, "bool": bool}
    return {f.name: hints[str(f.type)] for f in dataclasses.fields(Settings)}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc}") from exc
    known = _field_types()
    flat: dict[str, Any] = {}
    for section, table in document.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: {section!r} must be a [section] table")
        for key, value in table.items():
            name = f"{section}_{key}"
            if name not in known:
                raise ConfigError(f"{path}: unknown setting [{section}] {key}")
            flat[name] = value
    return flat


def _parse_env(name: str, raw: str) -> Any:
    kind = _field_types()[name]
    if kind is str:
        return raw
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{env_name(name)}: expected true or false, got {raw!r}")
    try:
        return kind(raw)
    except ValueError:
        raise ConfigError(
            f"{env_name(name)}: expected {'an integer' if kind is int else 'a number'}, got {raw!r}"
        ) from None


def _networks(spec: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    try:
        return [ipaddress.ip_network(part.strip()) for part in spec.split(",") if part.strip()]
    except ValueError as exc:
        raise ConfigError(
            f"setting admission_trusted_proxies (FLASHSALE_ADMISSION_TRUSTED_PROXIES): {exc}"
        ) from None


def _build(values: Mapping[str, Any]) -> Settings:
    checked: dict[str, Any] = {}
    for field in dataclasses.fields(Settings):
        label = f"setting {field.name} ({env_name(field.name)})"
        if field.name not in values:
            raise ConfigError(f"{label} is missing")
        value = values[field.name]
        kind = _field_types()[field.name]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise ConfigError(f"{label} must be of type {kind.__name__}, got {value!r}")
        minimum = field.metadata.get("minimum")
        if minimum is not None and value < minimum:
            raise ConfigError(f"{label} must be at least {minimum}, got {value!r}")
        checked[field.name] = value
    if checked["log_format"] not in ("text", "json"):
        raise ConfigError("setting log_format (FLASHSALE_LOG_FORMAT) must be text or json")
    if checked["log_level"].upper() not in _LOG_LEVELS:
        raise ConfigError(f"setting log_level must be one of {', '.join(_LOG_LEVELS)}")
    if checked["redis_url"] and not checked["redis_url"].startswith(
        ("redis://", "rediss://", "unix://")
    ):
        raise ConfigError("setting redis_url (FLASHSALE_REDIS_URL) must be a redis:// URL")
    if checked["admission_finish_reserve"] >= 1:
        raise ConfigError("setting admission_finish_reserve must be below 1")
    _networks(checked["admission_trusted_proxies"])
    if checked["orders_dsn"] and not checked["orders_dsn"].startswith(
        ("postgresql://", "postgres://", "sqlite:")
    ):
        raise ConfigError("setting orders_dsn (FLASHSALE_ORDERS_DSN) must be a postgresql:// DSN")
    return Settings(**checked)
