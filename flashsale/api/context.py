"""Typed keys for what the aiohttp app and its requests carry."""

from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from flashsale.admission.gate import Admission
from flashsale.api.live.feeds import LiveFeeds
from flashsale.metrics import Metrics
from flashsale.purchases import Purchases
from flashsale.room.rooms import Rooms
from flashsale.settings import Settings
from flashsale.store.sales import SaleStore
from flashsale.store.scripts import Scripts

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
ADMISSION = web.AppKey("admission", Admission)
OPENAPI = web.AppKey("openapi", dict[str, Any])
# Opened in a cleanup context, when the app starts.
REDIS = web.AppKey("redis", Redis)
SCRIPTS = web.AppKey("scripts", Scripts)
STORE = web.AppKey("store", SaleStore)
PURCHASES = web.AppKey("purchases", Purchases)
ROOMS = web.AppKey("rooms", Rooms)
LIVE = web.AppKey("live", LiveFeeds)

# When the request must be answered by (event-loop time), set by admission.
DEADLINE = web.RequestKey("deadline", float)
# The client's address (the peer, or the one a trusted proxy names), set by admission.
CLIENT = web.RequestKey("client", str)
# Loop time the request's head arrived (api/protocol.py), or when the app first saw it.
ARRIVED = web.RequestKey("arrived", float)
