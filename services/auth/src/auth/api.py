from typing import Annotated

from common.access import AccessLevel
from common.pagination import Page, PageQuery
from common.security import AdminUser, ManagerUser
from fastapi import APIRouter, Query

from auth.deps import Auth
from auth.schemas import (
    AllowedUserOut,
    AllowlistAddRequest,
    AllowlistAddResult,
    SignInRequest,
    SignUpRequest,
    TokenResponse,
)

router = APIRouter(prefix="/user", tags=["users"])


@router.post("/signup", response_model=TokenResponse)
async def sign_up(body: SignUpRequest, auth: Auth) -> TokenResponse:
    """Create an account for an email on the allowlist, at the allowlist entry's level."""
    return await auth.sign_up(body)


@router.post("/signin", response_model=TokenResponse)
async def sign_in(body: SignInRequest, auth: Auth) -> TokenResponse:
    return await auth.sign_in(body.email, body.password)


@router.post("/allowed-users", response_model=AllowlistAddResult)
async def add_allowed_users(
    body: AllowlistAddRequest, auth: Auth, _: AdminUser
) -> AllowlistAddResult:
    """Put emails on the allowlist: reports what was added, already there, or invalid."""
    return await auth.allow(body.emails, AccessLevel(body.access_level))


@router.get("/allowed-users", response_model=Page[AllowedUserOut])
async def list_allowed_users(
    auth: Auth,
    _: ManagerUser,
    page: PageQuery,
    search: Annotated[str | None, Query(max_length=320)] = None,
) -> Page[AllowedUserOut]:
    return await auth.list_allowed(search, page)
