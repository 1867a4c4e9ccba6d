"""deploy/: the Grafana dashboard and the alert rules name only metrics (and labels) the
engine exports, promtool accepts the rules and their unit tests pass, and the compose
file's engine settings are real settings and its mounts real files."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from flashsale.api.routes import ROUTES
from flashsale.metrics import Metrics
from flashsale.settings import load_settings
from tests.servers import require_binary

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "flashsale.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum"),
             "gauge": ("",)}  # fmt: skip
_SELECTOR = re.compile(r"\b(flashsale_[a-z0-9_]+)(?:\{([^}]*)\})?")
_MATCHER = re.compile(r'(\w+)\s*(?:=~|!~|!=|=)\s*"([^"]*)"')


def exported() -> dict[str, set[str]]:
    """Every series name the engine can export, with the labels it may carry."""
    names: dict[str, set[str]] = {}
    metrics = Metrics()
    for family in metrics.registry.collect():
        collector = next(
            c for c in vars(metrics).values()
            if getattr(c, "_name", None) == family.name
        )  # fmt: skip
        labels = set(getattr(collector, "_labelnames", ()))
        for suffix in _SUFFIXES[family.type]:
            names[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return names


def dashboard_queries() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


def alert_queries() -> list[str]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def check_query(expr: str, names: dict[str, set[str]]) -> list[str]:
    problems = []
    templates = {route.path for route in ROUTES}
    selectors = _SELECTOR.findall(expr)
    if not selectors:
        problems.append(f"{expr!r} names no flashsale metric")
    for name, matchers in selectors:
        if name not in names:
            problems.append(f"{name} (in {expr!r}) is not a metric the engine exports")
            continue
        for label, value in _MATCHER.findall(matchers):
            if label not in names[name]:
                problems.append(f"{name} has no label {label!r} (in {expr!r})")
            if label == "route" and value not in templates:
                problems.append(f"route {value!r} (in {expr!r}) is not a route template")
    return problems


@pytest.mark.parametrize("source", ["dashboard", "alerts"])
def test_every_query_names_a_metric_the_engine_exports(source: str) -> None:
    names = exported()
    queries = dashboard_queries() if source == "dashboard" else alert_queries()
    assert len(queries) >= 8
    problems = [p for expr in queries for p in check_query(expr, names)]
    assert problems == []


def test_the_check_catches_a_misspelt_metric_and_label() -> None:
    names = exported()
    assert check_query("rate(flashsale_purchase_attempt_total[1m])", names)
    assert check_query('sum(rate(flashsale_shed_total{outcome="x"}[1m]))', names)
    assert check_query('flashsale_http_request_seconds_bucket{route="/v1/buy"}', names)
    assert not check_query('rate(flashsale_shed_total{reason="in_flight"}[1m])', names)


def test_the_dashboard_covers_the_figures_operators_watch() -> None:
    queries = " ".join(dashboard_queries())
    for metric in ("flashsale_purchase_attempts_total", "flashsale_shed_total",
                   "flashsale_http_request_seconds_bucket", "flashsale_redis_breaker_state",
                   "flashsale_order_stream_backlog", "flashsale_dead_letters",
                   "flashsale_redis_durable", "flashsale_audit_violations"):  # fmt: skip
        assert metric in queries


def test_the_alerts_cover_what_operators_are_paged_for() -> None:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    alerts = {rule["alert"] for group in groups for rule in group["rules"]}
    assert {
        "FlashsaleRedisBreakerOpen", "FlashsaleShedRatioHigh", "FlashsaleOrderBacklogGrowing",
        "FlashsaleDeadLetters", "FlashsaleAuditViolations", "FlashsaleRedisNotDurable",
    } <= alerts  # fmt: skip


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_binary("promtool"), *args], cwd=ALERTS.parent,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_promtool_accepts_the_rules_and_their_unit_tests_pass() -> None:
    checked = promtool("check", "rules", ALERTS.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", "alerts.test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return loaded


def test_the_compose_engine_is_configured_with_real_settings_and_no_default_secret() -> None:
    engine = compose()["services"]["engine"]["environment"]
    substituted = {k: re.sub(r"\$\{(\w+):\?[^}]*\}", r"<\1>", v) for k, v in engine.items()}
    settings = load_settings(env=substituted)
    assert settings.redis.url == "redis://redis:6379/0"
    assert settings.orders.dsn.startswith("postgresql://flashsale:<POSTGRES_PASSWORD>@postgres")
    assert settings.admin.token == "<FLASHSALE_ADMIN_TOKEN>"
    assert settings.queue.signing_key == "<FLASHSALE_QUEUE_SIGNING_KEY>"
    text = (DEPLOY / "docker-compose.yml").read_text()
    for secret in ("FLASHSALE_ADMIN_TOKEN", "POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD"):
        assert f"${{{secret}:?" in text  # required, never defaulted


def test_the_compose_mounts_are_files_of_the_kit() -> None:
    services = compose()["services"]
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), volume
    build = services["engine"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()
