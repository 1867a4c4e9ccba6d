"""Every Redis key name flashsale uses. Keys of one sale share a hash slot: fs:{<sale_id>}:…"""

PREFIX = "fs"

# Global keys (not tied to one sale's slot).
SALES_INDEX = f"{PREFIX}:sales"
# The sales the worker and the sweeper still visit: not yet retired (retire_sale.lua), so
# their idle cost follows the sales in play, not every sale ever created.
ACTIVE_SALES = f"{PREFIX}:sales:active"

# Scripts publish a sale id here when its stock comes back (cancel, expiry, add_stock).
STOCK_BACK_CHANNEL = f"{PREFIX}:stock-back"

# The consumer group through which the order store reads every sale's events.
ORDER_STORE_GROUP = "order-store"

# A sale hash's fields `shed:<reason>` count its shed attempts by reason (add_counts.lua).
SHED_FIELD_PREFIX = "shed:"


def lua_constants() -> str:
    """The names Lua scripts need that are not keys of one sale (a channel is not a key, so
    it cannot come through KEYS): the text of `--! include _constants.lua`."""
    return f"local STOCK_BACK_CHANNEL = '{STOCK_BACK_CHANNEL}'\n"


# A sale created with "shards": K > 1 keeps its stock in K buckets, each a sale of its own to
# the scripts, on its own slot: SALE~0 ... SALE~(K-1). "~" never appears in an id a client
# sends (API.md's identifiers), so a bucket's id never meets a sale's.
BUCKET_SEPARATOR = "~"


def bucket(sale_id: str, index: int) -> str:
    return f"{sale_id}{BUCKET_SEPARATOR}{index}"


def parent_sale(sale_or_bucket: str) -> str:
    """The sale a bucket belongs to (a sale that is not a bucket is its own)."""
    return sale_or_bucket.partition(BUCKET_SEPARATOR)[0]


def sale_ref(ref: str) -> str:
    """Maps the short ref embedded in order ids back to its sale id."""
    return f"{PREFIX}:ref:{ref}"


def _sale_prefix(sale_id: str) -> str:
    return f"{PREFIX}:{{{sale_id}}}"


def sale(sale_id: str) -> str:
    return f"{_sale_prefix(sale_id)}:sale"


def held(sale_id: str) -> str:
    """Units each user holds (reserved + confirmed), by user id; and, under a field of
    ADDRESS_FIELD_PREFIX + address, the unpaid units of each client address while the sale
    has a holds_per_address cap (lua/_purchase.lua)."""
    return f"{_sale_prefix(sale_id)}:held"


# No user id contains "@" (API.md's identifiers), so these fields never meet a user's.
ADDRESS_FIELD_PREFIX = "@"


def order(sale_id: str, order_id: str) -> str:
    return f"{_sale_prefix(sale_id)}:order:{order_id}"


def orders(sale_id: str) -> str:
    """Every order id of the sale (a set), so the audit never scans the keyspace."""
    return f"{_sale_prefix(sale_id)}:orders"


def holds(sale_id: str) -> str:
    return f"{_sale_prefix(sale_id)}:holds"


def events(sale_id: str) -> str:
    return f"{_sale_prefix(sale_id)}:events"


def dead_letters(sale_id: str) -> str:
    """Events the order store could not take after max_deliveries tries."""
    return f"{_sale_prefix(sale_id)}:dead"


def counted(sale_id: str, batch_id: str) -> str:
    """Marks a batch of locally answered counts as added, so a retry adds nothing."""
    return f"{_sale_prefix(sale_id)}:counted:{batch_id}"


def fence(sale_id: str, order_id: str) -> str:
    """Set when an attempt is settled as never made: a late arrival of it refuses itself."""
    return f"{_sale_prefix(sale_id)}:fence:{order_id}"


def patch_applied(sale_id: str, change_id: str) -> str:
    """Marks an operator's change as applied (with its body's fingerprint)."""
    return f"{_sale_prefix(sale_id)}:patch:{change_id}"


def transfers(sale_id: str) -> str:
    """A bucket's stock transfers to other buckets not yet known delivered (transfer id ->
    "receiver|units"): the rebalancer's to-do list (lua/take_stock.lua, give_stock.lua)."""
    return f"{_sale_prefix(sale_id)}:transfers"


def transfer_received(sale_id: str, transfer_id: str) -> str:
    """Set in the receiving bucket when a transfer's units arrived, so they arrive once."""
    return f"{_sale_prefix(sale_id)}:received:{transfer_id}"


def idempotency(sale_id: str, user_id: str, key: str) -> str:
    # The user id's length keeps ("a:b", "c") and ("a", "b:c") apart.
    return f"{_sale_prefix(sale_id)}:idem:{len(user_id)}:{user_id}:{key}"


# The waiting room of a sale (lua/queue_*.lua).
def prequeue(sale_id: str) -> str:
    """Users who joined before the open (zset, scored by a random key drawn at joining)."""
    return f"{_sale_prefix(sale_id)}:prequeue"


def queue(sale_id: str) -> str:
    """Users waiting after the open (zset, scored by their place in the order of service)."""
    return f"{_sale_prefix(sale_id)}:queue"


def queue_admitted(sale_id: str) -> str:
    """Users the room admitted (hash user -> Redis time of admission, ms)."""
    return f"{_sale_prefix(sale_id)}:queue:admitted"


def queue_expired(sale_id: str) -> str:
    """Users who lost their place by not polling (set)."""
    return f"{_sale_prefix(sale_id)}:queue:expired"


def queue_seen(sale_id: str) -> str:
    """When each waiting user last polled, as processes report it (zset, Redis time ms)."""
    return f"{_sale_prefix(sale_id)}:queue:seen"


def queue_unspent(sale_id: str) -> str:
    """Admitted users whose token may still buy (zset user -> token expiry, Redis ms): the
    units they may take are not free for the next waiters."""
    return f"{_sale_prefix(sale_id)}:queue:unspent"
