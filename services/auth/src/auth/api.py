from typing import Annotated

from common.access import AccessLevel
from common.errors import BadRequest
from common.pagination import Page, PageQuery
from common.security import AdminUser, CurrentUser, ManagerUser
from common.web import client_address
from fastapi import APIRouter, Path, Query, Request

from auth.deps import Auth
from auth.errors import UserNotFound
from auth.schemas import (
    AllowedLevelRequest,
    AllowedUserOut,
    AllowlistAddRequest,
    AllowlistAddResult,
    LevelOut,
    Message,
    SetAccessLevelRequest,
    SignInRequest,
    SignUpRequest,
    TokenResponse,
    UserChanged,
    UserFilter,
    UserOut,
    normalize_email,
)

router = APIRouter(prefix="/user", tags=["users"])
internal = APIRouter(prefix="/internal", include_in_schema=False)

Search = Annotated[
    str | None, Query(max_length=320, description="Case-insensitive substring of the email")
]


@router.post("/signup", response_model=TokenResponse)
async def sign_up(body: SignUpRequest, auth: Auth) -> TokenResponse:
    """Create an account for an email on the allowlist, at the allowlist entry's level."""
    return await auth.sign_up(body)


@router.post("/signin", response_model=TokenResponse)
async def sign_in(body: SignInRequest, auth: Auth, request: Request) -> TokenResponse:
    """Exchange email and password for a token. Repeated failures are limited (429)."""
    return await auth.sign_in(body.email, body.password, client_address(request))


@router.get("/list", response_model=Page[UserOut])
async def list_users(
    auth: Auth,
    _: CurrentUser,
    page: PageQuery,
    search: Search = None,
    filter_type: Annotated[UserFilter, Query()] = "all",
) -> Page[UserOut]:
    return await auth.list_users(filter_type, search, page)


@router.post("/set-access-level", response_model=UserChanged)
async def set_access_level(
    body: SetAccessLevelRequest, auth: Auth, actor: ManagerUser
) -> UserChanged:
    """Change a user's level (0 deletes). Managers act only below their own level."""
    user = await auth.set_access_level(actor, body.email, body.new_access_level)
    return UserChanged(message="Access level updated", user=user)


@router.post("/allowed-users", response_model=AllowlistAddResult)
async def add_allowed_users(
    body: AllowlistAddRequest, auth: Auth, _: AdminUser
) -> AllowlistAddResult:
    """Put emails on the allowlist: reports what was added, already there, or invalid."""
    return await auth.allow(body.emails, AccessLevel(body.access_level))


@router.get("/allowed-users", response_model=Page[AllowedUserOut])
async def list_allowed_users(
    auth: Auth, _: ManagerUser, page: PageQuery, search: Search = None
) -> Page[AllowedUserOut]:
    return await auth.list_allowed(search, page)


@router.put("/allowed-users/access-level", response_model=AllowedUserOut)
async def set_allowed_level(body: AllowedLevelRequest, auth: Auth, _: AdminUser) -> AllowedUserOut:
    """Change the level a future sign-up gets; an existing account is not changed."""
    return await auth.set_allowed_level(body.email, body.new_access_level)


@router.delete("/allowed-users/{email}", response_model=Message)
async def remove_allowed_user(
    email: Annotated[str, Path(max_length=320)], auth: Auth, _: AdminUser
) -> Message:
    """Stop future sign-ups of this email. An existing account is NOT deleted."""
    try:
        normalized = normalize_email(email)
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    await auth.disallow(normalized)
    return Message(message="Removed from the allowlist")


@router.delete("/{user_id}", response_model=UserChanged)
async def delete_user(
    user_id: Annotated[str, Path(max_length=64)], auth: Auth, actor: ManagerUser
) -> UserChanged:
    """Soft delete: the level becomes 0 and `deleted_at` is set; the data is kept."""
    user = await auth.delete_user(actor, user_id)
    return UserChanged(message="User deleted", user=user)


@internal.get("/users/{user_id}/level", response_model=LevelOut)
async def user_level(user_id: str, auth: Auth) -> LevelOut:
    """For the gateway and services when Redis has lost a user's state. Not routed publicly."""
    level = await auth.store.level_of(user_id)
    if level is None:
        raise UserNotFound()
    return LevelOut(access_level=AccessLevel(level))
