"""Settings: one frozen msgspec Struct per section of config/flashsale.toml, bounds declared
in the types. Read from the packaged TOML, a user file, FLASHSALE_* variables, then flags.

A setting's name is `<section>_<key>` (`redis_url`), its variable FLASHSALE_<SECTION>_<KEY>;
in code it is `settings.<section>.<key>`.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from flashsale.errors import ConfigError
from flashsale.resources import default_config_file

ENV_PREFIX = "FLASHSALE_"

NonNegativeInt = Annotated[int, Meta(ge=0)]
PositiveInt = Annotated[int, Meta(ge=1)]
NonNegativeFloat = Annotated[float, Meta(ge=0)]
Port = Annotated[int, Meta(ge=0, le=65535)]

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
_ORDER_STORE_SCHEMES = ("postgresql://", "postgres://", "sqlite:")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class _Section(Struct, frozen=True, forbid_unknown_fields=True):
    pass


class ServerSettings(_Section, frozen=True):
    host: str
    port: Port
    workers: NonNegativeInt
    data_dir: str
    max_body_bytes: Annotated[int, Meta(ge=64)]
    shutdown_timeout_seconds: NonNegativeFloat
    listen_backlog: PositiveInt
    max_connections: PositiveInt
    header_timeout_seconds: Annotated[float, Meta(ge=0.1)]
    body_timeout_seconds: Annotated[float, Meta(ge=0.1)]
    keepalive_timeout_seconds: Annotated[float, Meta(ge=0.1)]


class RedisSettings(_Section, frozen=True):
    url: str
    server_binary: str
    startup_timeout_seconds: Annotated[float, Meta(ge=0.1)]
    max_connections: PositiveInt
    connect_timeout_seconds: Annotated[float, Meta(ge=0.01)]
    socket_timeout_seconds: Annotated[float, Meta(ge=0.01)]
    embedded_max_memory_mb: NonNegativeInt
    cluster: Literal["auto", "yes", "no"]
    wait_replicas: NonNegativeInt
    wait_timeout_ms: PositiveInt

    def __post_init__(self) -> None:
        if self.url and not self.url.startswith(_REDIS_SCHEMES):
            raise ValueError(f"{_label('redis_url')} must be a redis://, rediss:// or unix:// URL")


class AdmissionSettings(_Section, frozen=True):
    max_in_flight: PositiveInt
    adaptive: bool
    min_in_flight: PositiveInt
    queue_target_ms: NonNegativeFloat
    queue_interval_ms: Annotated[float, Meta(gt=0)]
    finish_reserve: Annotated[float, Meta(ge=0, lt=1)]
    deadline_seconds: Annotated[float, Meta(ge=0.01)]
    user_rate_per_second: NonNegativeFloat
    user_burst: PositiveInt
    ip_rate_per_second: NonNegativeFloat
    ip_burst: PositiveInt
    trusted_proxies: str
    sold_out_ttl_seconds: NonNegativeFloat

    def __post_init__(self) -> None:
        _networks(self.trusted_proxies)


class BatchingSettings(_Section, frozen=True):
    enabled: bool
    max_size: PositiveInt
    linger_seconds: NonNegativeFloat
    max_in_flight_per_sale: PositiveInt


class BreakerSettings(_Section, frozen=True):
    failure_threshold: PositiveInt
    open_seconds: Annotated[float, Meta(ge=0.01)]


class OrdersSettings(_Section, frozen=True):
    dsn: str
    max_backlog: NonNegativeInt

    def __post_init__(self) -> None:
        if self.dsn and not self.dsn.startswith(_ORDER_STORE_SCHEMES):
            raise ValueError(
                f"{_label('orders_dsn')} must be a postgresql:// DSN or sqlite:<path> "
                "(empty: SQLite in the data dir)"
            )


class WorkerSettings(_Section, frozen=True):
    in_process: bool
    batch_size: PositiveInt
    claim_idle_seconds: Annotated[float, Meta(ge=0.01)]
    max_deliveries: PositiveInt
    backoff_max_seconds: Annotated[float, Meta(ge=0.05)]
    idle_poll_seconds: Annotated[float, Meta(ge=0.001)]
    sweep_interval_seconds: Annotated[float, Meta(ge=0.01)]
    rebalance_interval_seconds: Annotated[float, Meta(ge=0.01)]
    health_interval_seconds: Annotated[float, Meta(ge=0.1)]
    audit_interval_seconds: Annotated[float, Meta(ge=0)]


class PurchasesSettings(_Section, frozen=True):
    idempotency_ttl_seconds: PositiveInt


class AdminSettings(_Section, frozen=True):
    token: str


class QueueSettings(_Section, frozen=True):
    signing_key: str
    poll_after_seconds: Annotated[float, Meta(ge=0.1)]
    tick_seconds: Annotated[float, Meta(ge=0.01)]
    refresh_seconds: Annotated[float, Meta(ge=0.01)]
    default_admit_per_second: Annotated[float, Meta(gt=0)]


class LogSettings(_Section, frozen=True):
    level: str
    format: Literal["text", "json"]

    def __post_init__(self) -> None:
        if self.level.upper() not in _LOG_LEVELS:
            raise ValueError(f"{_label('log_level')} must be one of {', '.join(_LOG_LEVELS)}")


class Settings(Struct, frozen=True, forbid_unknown_fields=True):
    """Every setting, by section, as in config/flashsale.toml."""

    server: ServerSettings
    redis: RedisSettings
    admission: AdmissionSettings
    batching: BatchingSettings
    breaker: BreakerSettings
    orders: OrdersSettings
    worker: WorkerSettings
    purchases: PurchasesSettings
    admin: AdminSettings
    queue: QueueSettings
    log: LogSettings

    @property
    def data_dir(self) -> Path:
        return Path(self.server.data_dir)

    @property
    def trusted_proxies(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return _networks(self.admission.trusted_proxies)

    def replace(self, **changes: Any) -> Settings:
        """A copy with the named settings (`redis_url=…`) changed, checked like any other."""
        values = msgspec.to_builtins(self)
        for name, value in changes.items():
            section, key = _split(name)
            values[section][key] = value
        return _build(values, {})


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def setting_names() -> Iterator[str]:
    """Every setting's name, `<section>_<key>`, in the order of the file."""
    for section, kind in _sections().items():
        for key in kind.__struct_fields__:
            yield f"{section}_{key}"


def load_settings(
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read the packaged defaults, then `config_file`, then FLASHSALE_* from `env`, then flags
    (`overrides`, by setting name; None leaves a setting as it is)."""
    values: dict[str, dict[str, Any]] = {}
    sources: dict[str, str] = {}
    for path in (default_config_file(), config_file):
        if path is not None:
            _merge(values, sources, _read_toml(path), str(path))
    environment = env or {}
    for name in setting_names():
        raw = environment.get(env_name(name))
        if raw is not None:
            _merge(values, sources, {name: _from_env(name, raw)}, env_name(name))
    flags = {name: value for name, value in (overrides or {}).items() if value is not None}
    _merge(values, sources, flags, "the command line")
    return _build(values, sources)


def _sections() -> dict[str, type[_Section]]:
    return {name: info.type for name, info in _field_info(Settings).items()}


def _field_info(kind: type[Struct]) -> dict[str, Any]:
    return {f.name: f for f in msgspec.structs.fields(kind)}


def _split(name: str) -> tuple[str, str]:
    section, _, key = name.partition("_")
    kind = _sections().get(section)
    if kind is None or key not in kind.__struct_fields__:
        raise ConfigError(f"unknown setting {name}")
    return section, key


def _label(name: str) -> str:
    return f"setting {name} ({env_name(name)})"


def _merge(
    values: dict[str, dict[str, Any]],
    sources: dict[str, str],
    flat: Mapping[str, Any],
    source: str,
) -> None:
    for name, value in flat.items():
        section, key = _split(name)
        values.setdefault(section, {})[key] = value
        sources[name] = source


def _read_toml(path: Path) -> dict[str, Any]:
    """The file's settings by name; an unknown section or key is refused here, naming the file."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc}") from exc
    flat: dict[str, Any] = {}
    for section, table in document.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: {section!r} must be a [section] table")
        for key, value in table.items():
            name = f"{section}_{key}"
            try:
                _split(name)
            except ConfigError:
                raise ConfigError(f"{path}: unknown setting [{section}] {key}") from None
            flat[name] = value
    return flat


# Words an environment variable may use for a boolean beyond msgspec's true/false/1/0.
_BOOLEAN_WORDS = {"yes": "true", "on": "true", "no": "false", "off": "false"}


def _from_env(name: str, raw: str) -> Any:
    """An environment variable's text as the setting's type (msgspec converts, and checks
    the bounds the type declares)."""
    section, key = _split(name)
    kind = _field_info(_sections()[section])[key].type
    text = _BOOLEAN_WORDS.get(raw.strip().lower(), raw) if kind is bool else raw
    try:
        return msgspec.convert(text, kind, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{env_name(name)}: {exc}, got {raw!r}") from None


_AT_FIELD = re.compile(r"(?P<message>.*) - at `\$\.(?P<section>\w+)\.(?P<key>\w+)`")
_AT_SECTION = re.compile(r"(?P<message>.*) - at `\$\.(?P<section>\w+)`")
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<key>\w+)`")
_MISSING = re.compile(r"Object missing required field `(?P<key>\w+)`")


def _build(values: Mapping[str, Any], sources: Mapping[str, str]) -> Settings:
    try:
        return msgspec.convert(values, Settings)
    except msgspec.ValidationError as exc:
        raise ConfigError(_explain(str(exc), sources)) from None


def _explain(message: str, sources: Mapping[str, str]) -> str:
    """msgspec's message, led by the setting's name and variable and where its value came from."""
    field = _AT_FIELD.fullmatch(message)
    if field:
        name = f"{field['section']}_{field['key']}"
        origin = f" (from {sources[name]})" if name in sources else ""
        return f"{_label(name)}{origin}: {field['message']}"
    section = _AT_SECTION.fullmatch(message)
    if section is None:
        return message
    unknown = _UNKNOWN.fullmatch(section["message"])
    if unknown:
        return f"unknown setting [{section['section']}] {unknown['key']}"
    missing = _MISSING.fullmatch(section["message"])
    if missing:
        return f"{_label(section['section'] + '_' + missing['key'])} is missing"
    # A check in a section's __post_init__ names its setting itself.
    return section["message"]


def _networks(spec: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    try:
        return [ipaddress.ip_network(part.strip()) for part in spec.split(",") if part.strip()]
    except ValueError as exc:
        raise ValueError(f"{_label('admission_trusted_proxies')}: {exc}") from None
