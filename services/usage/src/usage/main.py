from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from common.events import ChatUsageRecorded
from common.resources import open_resources
from common.web import create_service_app
from fastapi import FastAPI

from usage.api import router
from usage.config import UsageSettings
from usage.service import UsageService
from usage.store import UsageStore


def create_app(settings: UsageSettings | None = None) -> FastAPI:
    settings = settings or UsageSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_resources(settings) as resources:
            app.state.user_state = resources.user_state_from_auth(settings)
            store = UsageStore(resources.mongo, settings.mongodb_db)
            await store.ensure_indexes()
            service = UsageService(store)
            await resources.bus.consume(
                settings.usage_queue,
                [ChatUsageRecorded.routing_key],
                service.handle,
                prefetch=settings.usage_prefetch,
            )
            app.state.usage_service = service
            app.state.resources = resources
            yield

    return create_service_app(settings, title="Usage service", routers=[router], lifespan=lifespan)
