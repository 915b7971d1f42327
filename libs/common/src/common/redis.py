"""The async Redis client."""

from redis.asyncio import Redis

from common.settings import ServiceSettings


def create_redis(settings: ServiceSettings) -> "Redis":
    return Redis.from_url(settings.redis_url, decode_responses=True, health_check_interval=30)
