"""Request authentication for services: every service re-verifies the bearer token itself."""

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from common.access import AccessLevel
from common.errors import Forbidden, Unauthorized
from common.jwt import TokenClaims, bearer_token, verify_token
from common.settings import ServiceSettings
from common.userstate import UserStateCache


def _settings(request: Request) -> ServiceSettings:
    settings: ServiceSettings = request.app.state.settings
    return settings


async def current_claims(request: Request) -> TokenClaims:
    """The verified token's claims, with `lvl` replaced by the user's level right now."""
    claims = verify_token(_settings(request), bearer_token(request.headers.get("authorization")))
    user_state: UserStateCache = request.app.state.user_state
    return await effective_claims(claims, user_state)


async def effective_claims(claims: TokenClaims, user_state: UserStateCache) -> TokenClaims:
    """A deleted user is refused whatever the token says; a demoted one has the new level."""
    level = await user_state.level(claims.sub)
    if level == AccessLevel.DELETED:
        raise Unauthorized("This account has been deleted")
    return claims if level == claims.lvl else claims.model_copy(update={"lvl": level})


CurrentUser = Annotated[TokenClaims, Depends(current_claims)]


def require_level(level: AccessLevel) -> Callable[[TokenClaims], Awaitable[TokenClaims]]:
    async def check(claims: CurrentUser) -> TokenClaims:
        if claims.lvl < level:
            raise Forbidden(f"Requires {level.name.lower()} access or higher")
        return claims

    return check


ManagerUser = Annotated[TokenClaims, Depends(require_level(AccessLevel.MANAGER))]
AdminUser = Annotated[TokenClaims, Depends(require_level(AccessLevel.ADMIN))]
