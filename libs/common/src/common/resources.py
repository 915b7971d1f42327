"""The clients a service opens at start-up and closes at shutdown."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from pymongo import AsyncMongoClient
from redis.asyncio import Redis

from common.bus import EventBus
from common.mongo import create_mongo_client
from common.outbox import Outbox
from common.redis import create_redis
from common.settings import ServiceSettings
from common.userstate import AuthLevelSource, UserStateCache


@dataclass(frozen=True)
class Resources:
    mongo: AsyncMongoClient[dict[str, Any]]
    redis: Redis
    http: aiohttp.ClientSession
    bus: EventBus
    outbox: Outbox

    def user_state_from_auth(self, settings: ServiceSettings) -> UserStateCache:
        return UserStateCache(self.redis, AuthLevelSource(settings.auth_url, self.http))


@asynccontextmanager
async def open_resources(settings: ServiceSettings) -> AsyncIterator[Resources]:
    mongo = create_mongo_client(settings)
    redis = create_redis(settings)
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10, sock_connect=3))
    bus = EventBus(settings.rabbitmq_url, settings.events_exchange)
    outbox = Outbox(mongo, settings.mongodb_db, bus)
    try:
        # Up to a few seconds for the broker; without it the service still starts and the
        # outbox keeps events until the bus connects.
        await bus.connect(wait_s=5)
        await outbox.ensure_indexes()
        outbox.start()
        yield Resources(mongo=mongo, redis=redis, http=http, bus=bus, outbox=outbox)
    finally:
        await outbox.stop()
        await bus.close()
        await http.close()
        await redis.aclose()
        await mongo.close()


async def readiness(resources: Resources) -> dict[str, str]:
    """What this service can reach right now: "ok" or the reason it cannot."""
    checks: dict[str, str] = {}

    async def probe(name: str, check: Any) -> None:
        try:
            await asyncio.wait_for(check, 2)
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"unreachable: {type(exc).__name__}"

    await asyncio.gather(
        probe("mongodb", resources.mongo.admin.command("ping")),
        probe("redis", resources.redis.ping()),
    )
    checks["rabbitmq"] = "ok" if resources.bus.connected else "unreachable: not connected"
    return checks
