from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from common.resources import open_resources
from common.web import create_service_app
from fastapi import FastAPI

from modules.api import router
from modules.config import ModulesSettings
from modules.service import ModulesService
from modules.store import ModulesStore


def create_app(settings: ModulesSettings | None = None) -> FastAPI:
    settings = settings or ModulesSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_resources(settings) as resources:
            app.state.user_state = resources.user_state_from_auth(settings)
            store = ModulesStore(resources.mongo, settings.mongodb_db)
            await store.ensure_indexes()
            app.state.modules_service = ModulesService(store, resources.outbox)
            app.state.resources = resources
            yield

    return create_service_app(
        settings, title="Training modules service", routers=[router], lifespan=lifespan
    )
