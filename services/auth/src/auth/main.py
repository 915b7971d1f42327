from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from common.resources import Resources, open_resources
from common.userstate import UserStateCache
from common.web import create_service_app
from fastapi import FastAPI

from auth.api import internal, router
from auth.config import AuthSettings
from auth.service import AuthService
from auth.store import AuthStore


def build_service(settings: AuthSettings, resources: Resources) -> AuthService:
    store = AuthStore(resources.mongo, settings.mongodb_db)
    return AuthService(
        store=store,
        settings=settings,
        redis=resources.redis,
        user_state=UserStateCache(resources.redis, store.level_of),
        outbox=resources.outbox,
    )


def create_app(settings: AuthSettings | None = None) -> FastAPI:
    settings = settings or AuthSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_resources(settings) as resources:
            service = build_service(settings, resources)
            await service.store.ensure_indexes()
            if settings.bootstrap_admin_email and settings.bootstrap_admin_password:
                await service.ensure_admin(
                    settings.bootstrap_admin_email,
                    settings.bootstrap_admin_password.get_secret_value(),
                    reset=False,
                )
            app.state.auth_service = service
            app.state.resources = resources
            app.state.user_state = service.user_state
            yield

    return create_service_app(
        settings, title="Auth service", routers=[router, internal], lifespan=lifespan
    )
