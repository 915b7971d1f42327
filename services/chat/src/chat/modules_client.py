"""Training modules from the modules service over HTTP, cached in Redis.

The cache entry of a module is dropped when a `modules.module.*` event arrives (see
`main.py`), so an edit reaches the very next turn; the TTL only bounds what a lost event
could leave behind.
"""

import logging
from datetime import datetime

import aiohttp
from common.errors import AppError, NotFound, ServiceUnavailable
from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


class Module(BaseModel):
    id: str
    title: str
    system_prompt: str
    deleted_at: datetime | None = None


class ModulesClient:
    def __init__(self, base_url: str, session: aiohttp.ClientSession, redis: Redis, ttl_s: int):
        self._base_url = base_url.rstrip("/")
        self._session = session
        self._redis = redis
        self._ttl = ttl_s

    @staticmethod
    def _key(module_id: str) -> str:
        return f"chat:module:{module_id}"

    async def get(self, module_id: str, authorization: str) -> Module:
        """A live module, or NotFound; the caller's own token is passed on to the service."""
        module = await self._cached(module_id)
        if module is None:
            module = await self._fetch(module_id, authorization)
            try:
                await self._redis.set(self._key(module_id), module.model_dump_json(), ex=self._ttl)
            except RedisError as exc:
                log.warning("module cache unavailable: %s", exc)
        if module.deleted_at is not None:
            raise NotFound("Training module not found")
        return module

    async def forget(self, module_id: str) -> None:
        await self._redis.delete(self._key(module_id))

    async def _cached(self, module_id: str) -> Module | None:
        try:
            raw = await self._redis.get(self._key(module_id))
            return Module.model_validate_json(raw) if raw else None
        except (RedisError, ValidationError) as exc:
            log.warning("module cache unavailable: %s", exc)
            return None

    async def _fetch(self, module_id: str, authorization: str) -> Module:
        url = f"{self._base_url}/module/{module_id}"
        try:
            async with self._session.get(url, headers={"authorization": authorization}) as resp:
                if resp.status == 404:
                    raise NotFound("Training module not found")
                if resp.status != 200:
                    detail = (await resp.json()).get("detail", "The modules service failed")
                    raise AppError(detail, status=resp.status if resp.status < 500 else 503)
                return Module.model_validate(await resp.json())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ServiceUnavailable("The modules service is unavailable") from exc
