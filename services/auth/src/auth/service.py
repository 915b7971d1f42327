"""The rules of sign-up, sign-in and the allowlist."""

import logging

from common.access import AccessLevel
from common.jwt import issue_token
from common.pagination import Page, PageParams
from common.settings import ServiceSettings

from auth.errors import EmailNotAllowed, EmailTaken, InvalidCredentials
from auth.passwords import hash_password, needs_rehash, verify_password
from auth.schemas import (
    AllowedUserOut,
    AllowlistAddResult,
    SignUpRequest,
    TokenResponse,
    UserOut,
    normalize_email,
)
from auth.store import AuthStore, UserRecord

log = logging.getLogger(__name__)


def user_out(user: UserRecord) -> UserOut:
    return UserOut.model_validate(user.model_dump(exclude={"password_hash"}))


class AuthService:
    def __init__(self, store: AuthStore, settings: ServiceSettings):
        self.store = store
        self.settings = settings

    def _token_response(self, user: UserRecord, message: str) -> TokenResponse:
        token = issue_token(
            self.settings, user_id=user.id, email=user.email, level=user.access_level
        )
        return TokenResponse(
            message=message,
            access_token=token,
            expires_in=self.settings.jwt_ttl_seconds,
            user=user_out(user),
        )

    async def sign_up(self, request: SignUpRequest) -> TokenResponse:
        entry = await self.store.allowed_entry(request.email)
        if entry is None:
            raise EmailNotAllowed()
        existing = await self.store.user_by_email(request.email)
        if existing is not None:
            raise EmailTaken()
        user = await self.store.create_user(
            email=request.email,
            password_hash=await hash_password(request.password),
            first_name=request.first_name.strip(),
            last_name=request.last_name.strip(),
            access_level=entry.access_level,
        )
        log.info("user signed up: %s level=%d", user.id, user.access_level)
        return self._token_response(user, "Signed up successfully")

    async def sign_in(self, email: str, password: str) -> TokenResponse:
        try:
            email = normalize_email(email)
        except ValueError:
            email = ""
        user = await self.store.user_by_email(email) if email else None
        valid = await verify_password(user.password_hash if user else None, password)
        if user is None or not valid or user.access_level == AccessLevel.DELETED:
            raise InvalidCredentials()
        if needs_rehash(user.password_hash):
            user = (
                await self.store.update_user(user.id, password_hash=await hash_password(password))
                or user
            )
        return self._token_response(user, "Signed in successfully")

    async def allow(self, emails: list[str], level: AccessLevel) -> AllowlistAddResult:
        result = AllowlistAddResult(added=[], already_allowed=[], invalid=[])
        for raw in emails:
            try:
                email = normalize_email(raw)
            except ValueError:
                result.invalid.append(raw)
                continue
            if await self.store.allow(email, level):
                result.added.append(email)
            else:
                result.already_allowed.append(email)
        return result

    async def list_allowed(self, search: str | None, params: PageParams) -> Page[AllowedUserOut]:
        records, total = await self.store.list_allowed(
            search=search, skip=params.skip, limit=params.page_size
        )
        items = [AllowedUserOut.model_validate(r.model_dump()) for r in records]
        return Page.of(items, params, total)

    async def bootstrap_admin(self, email: str, password: str) -> None:
        """Make sure this admin exists (idempotent: an existing account is left as it is)."""
        email = normalize_email(email)
        await self.store.set_allowed_level(email, AccessLevel.ADMIN)
        if await self.store.user_by_email(email) is not None:
            return
        try:
            await self.store.create_user(
                email=email,
                password_hash=await hash_password(password),
                first_name="Admin",
                last_name="",
                access_level=AccessLevel.ADMIN,
            )
            log.info("bootstrap admin %s created", email)
        except EmailTaken:
            pass  # another auth instance created it at the same moment
