"""Request authentication for services: every service re-verifies the bearer token itself."""

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from common.access import AccessLevel
from common.errors import Forbidden
from common.jwt import TokenClaims, bearer_token, verify_token
from common.settings import ServiceSettings


def _settings(request: Request) -> ServiceSettings:
    settings: ServiceSettings = request.app.state.settings
    return settings


async def current_claims(request: Request) -> TokenClaims:
    claims = verify_token(_settings(request), bearer_token(request.headers.get("authorization")))
    if claims.lvl < AccessLevel.USER:
        raise Forbidden("This account has no access")
    return claims


CurrentUser = Annotated[TokenClaims, Depends(current_claims)]


def require_level(level: AccessLevel) -> Callable[[TokenClaims], Awaitable[TokenClaims]]:
    async def check(claims: CurrentUser) -> TokenClaims:
        if claims.lvl < level:
            raise Forbidden(f"Requires {level.name.lower()} access or higher")
        return claims

    return check


ManagerUser = Annotated[TokenClaims, Depends(require_level(AccessLevel.MANAGER))]
AdminUser = Annotated[TokenClaims, Depends(require_level(AccessLevel.ADMIN))]
