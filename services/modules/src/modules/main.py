from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from common.mongo import create_mongo_client
from common.web import create_service_app
from fastapi import FastAPI

from modules.api import router
from modules.config import ModulesSettings
from modules.store import ModulesStore


def create_app(settings: ModulesSettings | None = None) -> FastAPI:
    settings = settings or ModulesSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        mongo = create_mongo_client(settings)
        app.state.store = ModulesStore(mongo, settings.mongodb_db)
        await app.state.store.ensure_indexes()
        try:
            yield
        finally:
            await mongo.close()

    return create_service_app(
        settings, title="Training modules service", routers=[router], lifespan=lifespan
    )
