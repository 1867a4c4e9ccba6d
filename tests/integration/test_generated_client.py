"""An integrator's view of /openapi.json: openapi-python-client generates a client from the
document the engine serves, and that client schedules a sale, buys and confirms through the
engine. Its functions are named after the operationIds and grouped by tag."""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.helpers import ADMIN_TOKEN, unique_id

Client = TestClient[Any, Any]
PACKAGE = "flashsale_generated_client"


@pytest.fixture
async def generated(client: Client, tmp_path: Path) -> AsyncIterator[ModuleType]:
    document = await (await client.get("/openapi.json")).json()
    (tmp_path / "openapi.json").write_text(json.dumps(document))
    # No post-generation hooks: the generator would otherwise look for ruff on PATH.
    (tmp_path / "config.json").write_text(json.dumps({"post_hooks": []}))
    generator = Path(sys.executable).parent / "openapi-python-client"
    process = await asyncio.create_subprocess_exec(
        str(generator), "generate", "--path", "openapi.json", "--config", "config.json",
        "--output-path", PACKAGE, "--meta", "none",
        cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, output.decode(errors="replace")
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def load(package: ModuleType, module: str) -> Any:
    return importlib.import_module(f"{package.__name__}.{module}")


async def test_a_generated_client_schedules_buys_and_confirms(
    client: Client, generated: ModuleType
) -> None:
    base_url = str(client.make_url("")).rstrip("/")
    models = load(generated, "models")
    create_sale = load(generated, "api.operator.create_sale")
    purchase = load(generated, "api.shopper.purchase")
    confirm_order = load(generated, "api.shopper.confirm_order")
    get_order = load(generated, "api.shopper.get_order")
    now = datetime.now(UTC)
    sale_id = unique_id()

    operator = generated.AuthenticatedClient(base_url=base_url, token=ADMIN_TOKEN)
    async with operator:
        created = await create_sale.asyncio_detailed(
            client=operator,
            body=models.CreateSaleRequest(
                sku="SKU-GEN", name="generated client", stock=3,
                starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=1),
                sale_id=sale_id,
            ),
        )  # fmt: skip
    assert created.status_code == 201
    assert isinstance(created.parsed, models.CreatedSaleView)
    assert created.parsed.stock_left == 3

    shopper = generated.Client(base_url=base_url)
    async with shopper:
        bought = await purchase.asyncio_detailed(
            sale_id, client=shopper, body=models.PurchaseRequest(user_id="gen-user", quantity=1)
        )
        assert bought.status_code == 201
        reservation = bought.parsed
        assert isinstance(reservation, models.ReservationView)
        assert reservation.status == models.OrderStatus.RESERVED

        again = await purchase.asyncio_detailed(
            sale_id, client=shopper, body=models.PurchaseRequest(user_id="gen-user", quantity=1)
        )
        assert again.status_code == 409
        assert isinstance(again.parsed, models.ProblemDocument)
        assert again.parsed.code == models.ProblemCode.USER_LIMIT_REACHED

        confirmed = await confirm_order.asyncio(reservation.order_id, client=shopper)
        assert isinstance(confirmed, models.OrderView)
        assert confirmed.status == models.OrderStatus.CONFIRMED
        looked_up = await get_order.asyncio(reservation.order_id, client=shopper)
        assert isinstance(looked_up, models.OrderView)
        assert looked_up.status == models.OrderStatus.CONFIRMED
