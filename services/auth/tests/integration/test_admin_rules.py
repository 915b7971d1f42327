"""Rules that the API alone cannot drive into a corner, checked on the service with real
MongoDB, Redis and RabbitMQ (the test stack's), in a database of the test's own."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from auth.config import AuthSettings
from auth.errors import LastAdmin
from auth.main import build_service
from auth.service import AuthService
from common.access import AccessLevel
from common.errors import AppError, Forbidden, TooManyRequests
from common.jwt import TokenClaims
from common.resources import open_resources
from devstack.testing import Stack


@pytest.fixture
async def service(stack: Stack) -> AsyncIterator[AuthService]:
    settings = AuthSettings(
        mongodb_url=stack.mongodb_url,
        mongodb_db=f"auth_test_{uuid.uuid4().hex[:8]}",
        redis_url=stack.redis_url,
        rabbitmq_url=stack.rabbitmq_url,
        signin_failures_per_email=1000,
        signin_failures_per_client=3,
    )
    async with open_resources(settings) as resources:
        service = build_service(settings, resources)
        await service.store.ensure_indexes()
        yield service
        await resources.mongo.drop_database(settings.mongodb_db)


def claims_of(user_id: str, email: str, level: int) -> TokenClaims:
    return TokenClaims(sub=user_id, email=email, lvl=level, iss="i", aud="a", iat=0, exp=0, jti="j")


async def test_the_last_active_admin_is_never_demoted(service: AuthService) -> None:
    a = await service.ensure_admin("a@example.com", "StrongPassword1!", reset=False)
    b = await service.ensure_admin("b@example.com", "StrongPassword1!", reset=False)
    results = await asyncio.gather(
        service.set_access_level(claims_of(a.id, a.email, 9), b.email, 1),
        service.set_access_level(claims_of(b.id, b.email, 9), a.email, 1),
        return_exceptions=True,
    )
    failures = [r for r in results if isinstance(r, Exception)]
    assert len(failures) == 1 and isinstance(failures[0], (LastAdmin, Forbidden)), results
    assert await service.store.count_active_admins(excluding=str(uuid.uuid4().hex[:24])) == 1
    # and the survivor cannot be removed by a stale admin token of the demoted one
    survivor, loser = (a, b) if (await service.store.level_of(a.id)) == 9 else (b, a)
    with pytest.raises(AppError) as refused:
        await service.delete_user(claims_of(loser.id, loser.email, 9), survivor.id)
    assert refused.value.status in (400, 403)
    assert await service.store.level_of(survivor.id) == AccessLevel.ADMIN


async def test_last_admin_rule_holds_even_for_an_actor_outside_the_admins(
    service: AuthService,
) -> None:
    only = await service.ensure_admin("only@example.com", "StrongPassword1!", reset=False)
    other = await service.ensure_admin("other@example.com", "StrongPassword1!", reset=False)
    await service.delete_user(claims_of(other.id, other.email, 9), only.id)
    # `other` is now the last admin; whoever asks, it stays
    with pytest.raises((LastAdmin, Forbidden)):
        await service.delete_user(claims_of(only.id, only.email, 9), other.id)
    assert await service.store.level_of(other.id) == AccessLevel.ADMIN


async def test_failed_signins_are_limited_per_client_address(service: AuthService) -> None:
    client = f"203.0.113.{uuid.uuid4().int % 250}"
    for i in range(3):
        with pytest.raises(AppError) as failed:
            await service.sign_in(f"nobody{i}@example.com", "Wrong1!pw", client)
        assert failed.value.status == 401
    with pytest.raises(TooManyRequests) as limited:
        await service.sign_in("someone@example.com", "Wrong1!pw", client)
    assert limited.value.headers and int(limited.value.headers["Retry-After"]) > 0
    # another address is not affected
    with pytest.raises(AppError) as other:
        await service.sign_in("nobody@example.com", "Wrong1!pw", "198.51.100.7")
    assert other.value.status == 401
