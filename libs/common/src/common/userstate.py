"""Every user's current access level, so a deleted or demoted user loses rights at once.

The auth service writes `user:level:<id>` to Redis whenever a level changes. Readers (the
gateway and every service) look it up on each request; when Redis has lost the key, or is
down, they ask auth (which reads MongoDB) and put the answer back.
"""

import logging
from collections.abc import Awaitable, Callable

import aiohttp
from redis.asyncio import Redis
from redis.exceptions import RedisError

from common.access import AccessLevel
from common.errors import ServiceUnavailable

log = logging.getLogger(__name__)

KEY = "user:level:{}"
TTL_SECONDS = 24 * 3600

#: Reads a user's level from the source of truth; None when there is no such user.
LevelSource = Callable[[str], Awaitable[int | None]]


class UserStateCache:
    def __init__(self, redis: Redis, source: LevelSource):
        self._redis = redis
        self._source = source

    async def level(self, user_id: str) -> AccessLevel:
        """The user's current level; DELETED for a user that does not exist."""
        try:
            cached = await self._redis.get(KEY.format(user_id))
        except RedisError as exc:
            log.warning("user-state cache unavailable, asking the source: %s", exc)
            cached = None
        if cached is not None:
            return AccessLevel(int(cached))
        level = await self._source(user_id)
        current = AccessLevel(level) if level is not None else AccessLevel.DELETED
        await self.remember(user_id, current)
        return current

    async def remember(self, user_id: str, level: int) -> None:
        try:
            await self._redis.set(KEY.format(user_id), int(level), ex=TTL_SECONDS)
        except RedisError as exc:
            log.warning("could not cache the level of user %s: %s", user_id, exc)

    async def forget(self, user_id: str) -> None:
        try:
            await self._redis.delete(KEY.format(user_id))
        except RedisError as exc:
            log.warning("could not drop the cached level of user %s: %s", user_id, exc)


class AuthLevelSource:
    """A `LevelSource` that asks the auth service's internal endpoint over HTTP."""

    def __init__(self, auth_url: str, session: aiohttp.ClientSession):
        self._base = auth_url.rstrip("/")
        self._session = session

    async def __call__(self, user_id: str) -> int | None:
        url = f"{self._base}/internal/users/{user_id}/level"
        try:
            async with self._session.get(url) as response:
                if response.status == 404:
                    return None
                if response.status != 200:
                    raise ServiceUnavailable("The auth service failed")
                body = await response.json()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ServiceUnavailable("The auth service is unavailable") from exc
        return int(body["access_level"])
