"""Which bucket of a sharded sale serves a user: always the same one (its home bucket), so
that the user's cap and Idempotency-Keys are decided by one script on one slot."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence

from flashsale import keys

# More buckets than primaries buy nothing; this bounds what one sale's views and PATCHes fan
# out to.
MAX_SHARDS = 64


def home_bucket(bucket_ids: Sequence[str], user_id: str) -> str:
    """The id of the bucket serving `user_id` (a sale of one shard is its own one bucket)."""
    if len(bucket_ids) == 1:
        return bucket_ids[0]
    # crc32: the same answer in every process and every run (hash() is salted per process).
    return bucket_ids[zlib.crc32(user_id.encode()) % len(bucket_ids)]


def bucket_ids_of(sale_id: str, sale: Mapping[str, str]) -> list[str]:
    """The buckets a sale's hash names (its own id alone when it is not sharded)."""
    named = sale.get("buckets", "")
    return named.split(",") if named else [sale_id]


def sharded(sale: Mapping[str, str]) -> bool:
    return bool(sale.get("buckets"))


def candidate_buckets(sale_id: str, shards: int, slot_owner: Callable[[str], str]) -> list[str]:
    """`shards` bucket ids for a new sale, each on a primary no other bucket of it is on, as
    long as there are primaries enough (`slot_owner(key)` names the node serving a key)."""
    chosen: list[str] = []
    owners: set[str] = set()
    index = 0
    while len(chosen) < shards:
        candidate = keys.bucket(sale_id, index)
        index += 1
        owner = slot_owner(keys.sale(candidate))
        if owner not in owners or index > _SEARCH:  # past _SEARCH: fewer primaries than shards
            chosen.append(candidate)
            owners.add(owner)
    return chosen


# How many bucket ids are tried to find a primary no other bucket of the sale is on.
_SEARCH = 512


def split(units: int, shards: int) -> list[int]:
    """`units` over `shards` buckets as evenly as whole units go (the first get the rest)."""
    base, rest = divmod(units, shards)
    return [base + (1 if index < rest else 0) for index in range(shards)]
