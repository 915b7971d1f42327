"""Rate limits in Redis: fixed-window counters and concurrency leases."""

import time

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


# Atomically: drop expired leases, refuse if `limit` are live, else take one.
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, oldest[2]}
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return {1, 0}
"""


class ConcurrencyLimiter:
    """At most `limit` leases per name at once; a lease left by a crashed process expires."""

    def __init__(self, redis: Redis, prefix: str, *, lease_s: int):
        self._redis = redis
        self._prefix = prefix
        self._lease_s = lease_s
        self._acquire = redis.register_script(_ACQUIRE)

    async def acquire(self, name: str, lease_id: str, limit: int) -> int:
        """Take a lease: 0 on success, else seconds until the oldest lease expires."""
        now = time.time()
        taken, oldest = await self._acquire(
            keys=[f"cl:{self._prefix}:{name}"],
            args=[now, now + self._lease_s, limit, lease_id, self._lease_s],
        )
        return 0 if taken else max(1, int(float(oldest) - now))

    async def release(self, name: str, lease_id: str) -> None:
        await self._redis.zrem(f"cl:{self._prefix}:{name}", lease_id)
