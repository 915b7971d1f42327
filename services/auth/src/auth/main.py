from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from common.mongo import create_mongo_client
from common.web import create_service_app
from fastapi import FastAPI

from auth.api import router
from auth.config import AuthSettings
from auth.service import AuthService
from auth.store import AuthStore


def create_app(settings: AuthSettings | None = None) -> FastAPI:
    settings = settings or AuthSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        mongo = create_mongo_client(settings)
        store = AuthStore(mongo, settings.mongodb_db)
        await store.ensure_indexes()
        service = AuthService(store, settings)
        if settings.bootstrap_admin_email and settings.bootstrap_admin_password:
            await service.bootstrap_admin(
                settings.bootstrap_admin_email,
                settings.bootstrap_admin_password.get_secret_value(),
            )
        app.state.auth_service = service
        try:
            yield
        finally:
            await mongo.close()

    return create_service_app(settings, title="Auth service", routers=[router], lifespan=lifespan)
