"""Small builders shared by the integration and end-to-end tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

ADMIN_TOKEN = "test-admin-token-not-secret"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def from_now(**delta: float) -> str:
    return rfc3339(datetime.now(UTC) + timedelta(**delta))


def unique_id(prefix: str = "sale") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def sale_body(**overrides: Any) -> dict[str, Any]:
    """A live sale (opened an hour ago, closing in an hour) with a fresh id."""
    body: dict[str, Any] = {
        "sale_id": unique_id(),
        "sku": "SKU-1",
        "name": "Anniversary headphones",
        "stock": 10,
        "starts_at": from_now(hours=-1),
        "ends_at": from_now(hours=1),
        "per_user_limit": 1,
        "hold_seconds": 600,
    }
    body.update(overrides)
    return body


def metric(text: str, name: str, **labels: str) -> float:
    """One sample of the /metrics exposition (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0
