"""Typed keys for what the aiohttp app carries: settings, store, metrics."""

from aiohttp import web
from redis.asyncio import Redis

from flashsale.metrics import Metrics
from flashsale.scripts import Scripts
from flashsale.settings import Settings
from flashsale.store import SaleStore

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", SaleStore)
METRICS = web.AppKey("metrics", Metrics)
REDIS = web.AppKey("redis", Redis)
SCRIPTS = web.AppKey("scripts", Scripts)
