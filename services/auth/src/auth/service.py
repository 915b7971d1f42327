"""The rules of sign-up, sign-in, users and the allowlist."""

import logging

from common.access import AccessLevel
from common.errors import Forbidden, TooManyRequests
from common.events import Event, UserDeleted, UserUpdated
from common.jwt import TokenClaims, issue_token
from common.outbox import Outbox
from common.pagination import Page, PageParams
from common.ratelimit import RateLimiter
from common.userstate import UserStateCache
from redis.asyncio import Redis

from auth.config import AuthSettings
from auth.errors import (
    AccountDeleted,
    EmailNotAllowed,
    EmailTaken,
    InvalidCredentials,
    LastAdmin,
    NotOnAllowlist,
    UserNotFound,
)
from auth.passwords import hash_password, needs_rehash, verify_password
from auth.schemas import (
    AllowedUserOut,
    AllowlistAddResult,
    SignUpRequest,
    TokenResponse,
    UserFilter,
    UserOut,
    normalize_email,
)
from auth.store import AuthStore, UserRecord

log = logging.getLogger(__name__)

ADMIN_CHANGES_LOCK = "auth:lock:admin-changes"


def user_out(user: UserRecord) -> UserOut:
    return UserOut.model_validate(user.model_dump(exclude={"password_hash"}))


class AuthService:
    def __init__(
        self,
        *,
        store: AuthStore,
        settings: AuthSettings,
        redis: Redis,
        user_state: UserStateCache,
        outbox: Outbox,
    ):
        self.store = store
        self.settings = settings
        self.redis = redis
        self.user_state = user_state
        self.outbox = outbox
        self.signin_failures = RateLimiter(redis, "signin-failures")

    # sign-up and sign-in

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
            raise AccountDeleted() if existing.access_level == AccessLevel.DELETED else EmailTaken()
        user = await self.store.create_user(
            email=request.email,
            password_hash=await hash_password(request.password),
            first_name=request.first_name.strip(),
            last_name=request.last_name.strip(),
            access_level=entry.access_level,
        )
        log.info("user %s signed up at level %d", user.id, user.access_level)
        await self._announce(user)
        return self._token_response(user, "Signed up successfully")

    async def sign_in(self, email: str, password: str, client: str) -> TokenResponse:
        try:
            email = normalize_email(email)
        except ValueError:
            email = ""
        limits = (
            (f"email:{email}", self.settings.signin_failures_per_email),
            (f"client:{client}", self.settings.signin_failures_per_client),
        )
        for key, limit in limits:
            wait = await self.signin_failures.blocked_for(key, limit)
            if wait:
                raise TooManyRequests(
                    "Too many failed sign-ins; try again later",
                    headers={"Retry-After": str(wait)},
                )
        user = await self.store.user_by_email(email) if email else None
        # Unknown emails are verified against a dummy hash: same answer, same time.
        valid = await verify_password(user.password_hash if user else None, password)
        if user is None or not valid or user.access_level == AccessLevel.DELETED:
            for key, _ in limits:
                await self.signin_failures.hit(key, self.settings.signin_failure_window_s)
            raise InvalidCredentials()
        await self.signin_failures.reset(limits[0][0])
        if needs_rehash(user.password_hash):
            new_hash = await hash_password(password)
            user = await self.store.update_user(user.id, password_hash=new_hash) or user
        return self._token_response(user, "Signed in successfully")

    # users

    async def list_users(
        self, status: UserFilter, search: str | None, params: PageParams
    ) -> Page[UserOut]:
        users, total = await self.store.list_users(
            status=status, search=search, skip=params.skip, limit=params.page_size
        )
        return Page.of([user_out(u) for u in users], params, total)

    async def set_access_level(self, actor: TokenClaims, email: str, level: int) -> UserOut:
        target = await self.store.user_by_email(email)
        if target is None:
            raise UserNotFound()
        return await self._change_level(actor, target, AccessLevel(level))

    async def delete_user(self, actor: TokenClaims, user_id: str) -> UserOut:
        target = await self.store.user_by_id(user_id)
        if target is None:
            raise UserNotFound()
        return await self._change_level(actor, target, AccessLevel.DELETED)

    async def _change_level(
        self, actor: TokenClaims, target: UserRecord, level: AccessLevel
    ) -> UserOut:
        if target.id == actor.sub:
            raise Forbidden("You cannot change or delete your own account")
        if actor.lvl < AccessLevel.ADMIN:
            if target.access_level >= actor.lvl:
                raise Forbidden("You can only manage users below your own access level")
            if level > actor.lvl:
                raise Forbidden("You cannot grant an access level above your own")
        if target.access_level == AccessLevel.ADMIN and level < AccessLevel.ADMIN:
            # Serialized so that two admins demoting each other cannot both succeed.
            async with self.redis.lock(ADMIN_CHANGES_LOCK, timeout=10, blocking_timeout=10):
                # The actor may have been demoted by a change that held the lock before us.
                if await self.store.level_of(actor.sub) != AccessLevel.ADMIN:
                    raise Forbidden("Only an admin can change an admin")
                if await self.store.count_active_admins(excluding=target.id) == 0:
                    raise LastAdmin()
                updated = await self.store.set_level(target.id, level)
        else:
            updated = await self.store.set_level(target.id, level)
        if updated is None:
            raise UserNotFound()
        log.info("user %s set to level %d by %s", updated.id, level, actor.sub)
        await self._announce(updated)
        return user_out(updated)

    async def _announce(self, user: UserRecord) -> None:
        """Make the new level effective everywhere, then tell other services."""
        await self.user_state.remember(user.id, user.access_level)
        event: Event
        if user.access_level == AccessLevel.DELETED:
            event = UserDeleted(user_id=user.id, email=user.email)
        else:
            event = UserUpdated(user_id=user.id, email=user.email, access_level=user.access_level)
        await self.outbox.publish(event)

    # allowlist

    async def allow(self, emails: list[str], level: AccessLevel) -> AllowlistAddResult:
        result = AllowlistAddResult(added=[], already_allowed=[], invalid=[])
        for raw in emails:
            try:
                email = normalize_email(raw)
            except ValueError:
                result.invalid.append(raw)
                continue
            if email in result.added or email in result.already_allowed:
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

    async def set_allowed_level(self, email: str, level: int) -> AllowedUserOut:
        record = await self.store.update_allowed_level(email, AccessLevel(level))
        if record is None:
            raise NotOnAllowlist()
        return AllowedUserOut.model_validate(record.model_dump())

    async def disallow(self, email: str) -> None:
        if not await self.store.remove_allowed(email):
            raise NotOnAllowlist()

    # administration

    async def ensure_admin(self, email: str, password: str, *, reset: bool) -> UserRecord:
        """Make sure this admin exists; with `reset`, also set its password and level."""
        email = normalize_email(email)
        await self.store.upsert_allowed(email, AccessLevel.ADMIN)
        existing = await self.store.user_by_email(email)
        if existing is not None:
            if not reset:
                return existing
            updated = await self.store.update_user(
                existing.id,
                password_hash=await hash_password(password),
                access_level=int(AccessLevel.ADMIN),
                deleted_at=None,
            )
            assert updated is not None
            await self._announce(updated)
            return updated
        try:
            user = await self.store.create_user(
                email=email,
                password_hash=await hash_password(password),
                first_name="Admin",
                last_name="",
                access_level=AccessLevel.ADMIN,
            )
        except EmailTaken:  # another auth instance created it at the same moment
            found = await self.store.user_by_email(email)
            assert found is not None
            return found
        log.info("admin %s created", email)
        await self._announce(user)
        return user
