"""The clients a service opens at start-up and closes at shutdown."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from pymongo import AsyncMongoClient
from redis.asyncio import Redis

from common.bus import EventBus
from common.mongo import create_mongo_client
from common.redis import create_redis
from common.settings import ServiceSettings
from common.userstate import AuthLevelSource, UserStateCache


@dataclass(frozen=True)
class Resources:
    mongo: AsyncMongoClient[dict[str, Any]]
    redis: Redis
    http: aiohttp.ClientSession
    bus: EventBus

    def user_state_from_auth(self, settings: ServiceSettings) -> UserStateCache:
        return UserStateCache(self.redis, AuthLevelSource(settings.auth_url, self.http))


@asynccontextmanager
async def open_resources(settings: ServiceSettings) -> AsyncIterator[Resources]:
    mongo = create_mongo_client(settings)
    redis = create_redis(settings)
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10, sock_connect=3))
    bus = EventBus(settings.rabbitmq_url, settings.events_exchange)
    try:
        await bus.connect()
        yield Resources(mongo=mongo, redis=redis, http=http, bus=bus)
    finally:
        await bus.close()
        await http.close()
        await redis.aclose()
        await mongo.close()
