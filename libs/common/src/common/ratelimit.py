"""Fixed-window counters in Redis, for rate limits."""

from redis.asyncio import Redis


class RateLimiter:
    def __init__(self, redis: Redis, prefix: str):
        self._redis = redis
        self._prefix = prefix

    def _key(self, name: str) -> str:
        return f"rl:{self._prefix}:{name}"

    async def blocked_for(self, name: str, limit: int) -> int:
        """Seconds until `name` may try again, or 0 if it is under `limit`."""
        key = self._key(name)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(key)
            pipe.ttl(key)
            count, ttl = await pipe.execute()
        if count is not None and int(count) >= limit:
            return max(int(ttl), 1)
        return 0

    async def hit(self, name: str, window_s: int) -> int:
        """Count one event in the current window; returns the count so far."""
        key = self._key(name)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, window_s, nx=True)
            count, _ = await pipe.execute()
        return int(count)

    async def reset(self, name: str) -> None:
        await self._redis.delete(self._key(name))
