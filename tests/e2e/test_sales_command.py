"""`flashsale sales ...` against a real `flashsale serve`: every verb, its --json, the
engine found from the data dir (address and token), and every error in one line with a
non-zero exit."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests import sync_http as http
from tests.helpers import unique_id
from tests.servers import redis_server
from tests.service import Service, flashsale_service, run_flashsale


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """No token in the environment: serve writes one to the data dir, where the command
    finds it - as it finds the engine's address."""
    root = Path(tmp_path_factory.mktemp("sales-command"))
    with redis_server(root / "redis") as redis_url:
        env = {"FLASHSALE_REDIS_URL": redis_url, "FLASHSALE_ADMISSION_IP_RATE_PER_SECOND": "0"}
        with flashsale_service(root / "data", env, "--workers", "1") as running:
            yield running


def sales(engine: Service, *args: str, env: dict[str, str] | None = None) -> Any:
    return run_flashsale("sales", *args, "--data-dir", str(engine.data_dir), env=env)


def ok_json(engine: Service, *args: str) -> Any:
    run = sales(engine, *args, "--json")
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def one_line_error(run: subprocess.CompletedProcess[str], code: int) -> str:
    assert run.returncode == code, (run.returncode, run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("flashsale sales: ")
    return lines[0]


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def create(engine: Service, sale_id: str, *extra: str) -> dict[str, Any]:
    created: dict[str, Any] = ok_json(
        engine, "create", "--id", sale_id, "--sku", "HP-1", "--name", "Headphones",
        "--stock", "20", "--ends", "for 2h", *extra,
    )  # fmt: skip
    return created


def test_create_with_relative_times_then_show_and_list(engine: Service) -> None:
    sale_id = unique_id()
    before = datetime.now(UTC)
    created = create(engine, sale_id, "--starts", "in 10m", "--per-user-limit", "2")
    assert (created["sale_id"], created["status"], created["per_user_limit"]) == (
        sale_id, "scheduled", 2,
    )  # fmt: skip
    starts, ends = moment(created["starts_at"]), moment(created["ends_at"])
    assert before + timedelta(minutes=9) < starts < before + timedelta(minutes=11)
    assert ends - starts == timedelta(hours=2)

    shown = ok_json(engine, "show", sale_id)
    assert shown["counts"]["reserved"] == 0
    assert shown["stock_left"] == 20
    listed = ok_json(engine, "list")
    assert sale_id in [s["sale_id"] for s in listed["sales"]]

    table = sales(engine, "list")
    assert table.returncode == 0, table.stderr
    [row] = [line for line in table.stdout.splitlines() if sale_id in line]
    assert "scheduled" in row
    assert "20/20" in row
    assert "opens in" in row
    person = sales(engine, "show", sale_id)
    assert "held 0, paid 0" in person.stdout
    assert "2 per user" in person.stdout


def test_pause_resume_add_stock_and_end(engine: Service) -> None:
    sale_id = unique_id()
    create(engine, sale_id)
    buy = f"{engine.url}/v1/sales/{sale_id}/purchases"

    assert ok_json(engine, "pause", sale_id)["status"] == "paused"
    status, body = http.post(buy, {"user_id": "u1", "quantity": 1})
    assert (status, body["code"]) == (409, "sale_paused")
    assert ok_json(engine, "resume", sale_id)["status"] == "live"
    assert http.post(buy, {"user_id": "u1", "quantity": 1})[0] == 201

    assert ok_json(engine, "add-stock", sale_id, "5")["stock_total"] == 25
    for _ in range(2):  # the same key twice: applied once
        again = ok_json(engine, "add-stock", sale_id, "3", "--idempotency-key", "restock-1")
    assert (again["stock_total"], again["stock_left"]) == (28, 27)
    said = sales(engine, "add-stock", sale_id, "1")
    assert said.returncode == 0
    assert f"added 1 units to {sale_id}" in said.stdout

    ended = ok_json(engine, "end", sale_id)
    assert ended["status"] == "ended"
    assert ended["ended_at"]
    status, body = http.post(buy, {"user_id": "u2", "quantity": 1})
    assert (status, body["code"]) == (409, "sale_ended")


def test_create_from_toml_and_json_files(engine: Service, tmp_path: Path) -> None:
    first, second, third = unique_id(), unique_id(), unique_id()
    toml = tmp_path / "launch.toml"
    toml.write_text(f"""
[[sales]]
sale_id = "{first}"
sku = "HP-1"
name = "Headphones"
stock = 100
starts_at = "in 1h"
ends_at = "for 30m"

[[sales]]
sale_id = "{second}"
sku = "HP-2"
name = "Speakers"
stock = 10
starts_at = 2030-01-01T09:00:00Z
ends_at = "2030-01-01T10:00:00Z"
[sales.waiting_room]
enabled = true
admit_per_second = 5
""")
    made = ok_json(engine, "create", "--file", str(toml))["sales"]
    assert [s["sale_id"] for s in made] == [first, second]
    assert moment(made[0]["ends_at"]) - moment(made[0]["starts_at"]) == timedelta(minutes=30)
    assert made[1]["starts_at"].startswith("2030-01-01T09:00:00")
    assert made[1]["waiting_room"]["enabled"]
    assert made[1]["waiting_room"]["admit_per_second"] == 5

    as_json = tmp_path / "one.json"
    as_json.write_text(json.dumps({"sale_id": third, "sku": "X", "name": "One", "stock": 1,
                                   "starts_at": "now", "ends_at": "in 1h"}))  # fmt: skip
    run = sales(engine, "create", "--file", str(as_json))
    assert run.returncode == 0, run.stderr
    assert f"created {third}" in run.stdout
    assert ok_json(engine, "show", third)["status"] == "live"


def test_a_file_with_one_refused_sale_creates_the_others_and_says_which(
    engine: Service, tmp_path: Path
) -> None:
    taken, fresh = unique_id(), unique_id()
    create(engine, taken)
    path = tmp_path / "sales.json"
    row = {"sku": "X", "name": "Y", "stock": 1, "starts_at": "now", "ends_at": "in 1h"}
    path.write_text(json.dumps([{**row, "sale_id": taken}, {**row, "sale_id": fresh}]))
    line = one_line_error(sales(engine, "create", "--file", str(path)), 1)
    assert taken in line
    assert "409 sale_exists" in line
    assert ok_json(engine, "show", fresh)["sale_id"] == fresh


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (("show", "no-such-sale"), 1, "404 not_found: no sale with id 'no-such-sale'"),
        (("add-stock", "no-such-sale", "0"), 1, "400 invalid_request: add_stock"),
        (("create", "--sku", "X", "--name", "Y", "--stock", "0", "--ends", "in 1h"), 1,
         "400 invalid_request: stock"),
        (("create", "--sku", "X", "--name", "Y", "--stock", "1", "--ends", "yesterday"), 2,
         "'yesterday' is not a time"),
        (("create", "--sku", "X"), 2, "create needs --name, --stock, --ends (or --file)"),
        (("create", "--file", "/nonexistent/sales.toml"), 2, "No such file"),
        (("list", "--url", "http://127.0.0.1:9"), 2, "cannot reach the engine"),
    ],
)  # fmt: skip
def test_errors_are_one_line_with_a_non_zero_exit(
    engine: Service, args: tuple[str, ...], code: int, says: str
) -> None:
    assert says in one_line_error(sales(engine, *args), code)


def test_a_wrong_token_is_refused(engine: Service) -> None:
    run = sales(engine, "list", env={"FLASHSALE_ADMIN_TOKEN": "not-the-token"})
    assert "401 unauthorized" in one_line_error(run, 1)


def test_a_bad_file_names_the_sale_and_creates_nothing(engine: Service, tmp_path: Path) -> None:
    sale_id = unique_id()
    path = tmp_path / "bad.toml"
    path.write_text(f'sale_id = "{sale_id}"\nsku = "X"\nname = "Y"\nstock = 1\n'
                    'starts_at = "in 1h"\nends_at = "for ever"\n')  # fmt: skip
    line = one_line_error(sales(engine, "create", "--file", str(path)), 2)
    assert sale_id in line
    assert "'ever' is not a duration" in line
    assert "404" in one_line_error(sales(engine, "show", sale_id), 1)
