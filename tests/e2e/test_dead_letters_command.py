"""`flashsale dead-letters list|replay`: an operator sees what the order store refused and,
once the cause is fixed, puts it back; replaying twice changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import redis

from flashsale import keys
from tests.servers import redis_server
from tests.service import run_flashsale


def test_list_then_replay_once(tmp_path: Path) -> None:
    with redis_server(tmp_path / "redis") as redis_url:
        env = {
            "FLASHSALE_REDIS_URL": redis_url,
            "FLASHSALE_ORDERS_DSN": f"sqlite:{tmp_path / 'orders.sqlite3'}",
        }
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        client.sadd(keys.SALES_INDEX, "s1")
        event = {"type": "reserved", "order_id": "o-1", "sale_id": "s1", "user_id": "u1"}
        dead_id = client.xadd(
            keys.dead_letters("s1"),
            {"entry_id": "1-0", "error": "refused", "deliveries": 3,
             **{f"event.{k}": v for k, v in event.items()}},
        )  # fmt: skip

        listed = run_flashsale("dead-letters", "list", "--json", env=env)
        assert listed.returncode == 0, listed.stderr
        [letter] = json.loads(listed.stdout)
        assert (letter["dead_letter_id"], letter["event"]) == (dead_id, event)
        table = run_flashsale("dead-letters", "list", "--sale", "s1", env=env)
        assert "o-1" in table.stdout
        assert "1 dead letter(s)" in table.stdout

        first = run_flashsale("dead-letters", "replay", env=env)
        assert first.returncode == 0, first.stderr
        assert "replayed 1 event(s)" in first.stdout
        [(_entry_id, fields)] = client.xrange(keys.events("s1")) or []
        assert fields == event
        again = run_flashsale("dead-letters", "replay", "--sale", "s1", env=env)
        assert "replayed 0 event(s)" in again.stdout
        assert client.xlen(keys.events("s1")) == 1
        assert json.loads(run_flashsale("dead-letters", "list", "--json", env=env).stdout) == []
        client.close()
