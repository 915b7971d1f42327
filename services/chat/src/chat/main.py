from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from common.resources import open_resources
from common.web import create_service_app
from fastapi import FastAPI

from chat.api import router
from chat.config import ChatSettings, Providers
from chat.llm import LLMClients
from chat.modules_client import ModulesClient
from chat.service import ChatService
from chat.store import ChatStore


def create_app(settings: ChatSettings | None = None) -> FastAPI:
    settings = settings or ChatSettings()
    providers = Providers(settings.load_providers(), settings.default_provider)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_resources(settings) as resources:
            app.state.user_state = resources.user_state_from_auth(settings)
            store = ChatStore(resources.mongo, settings.mongodb_db)
            await store.ensure_indexes()
            llm = LLMClients(settings)
            service = ChatService(
                settings=settings,
                providers=providers,
                llm=llm,
                modules=ModulesClient(settings.modules_url, resources.http),
                store=store,
                bus=resources.bus,
            )
            app.state.chat_service = service
            try:
                yield
            finally:
                await service.drain()
                await llm.close()

    return create_service_app(settings, title="Chat service", routers=[router], lifespan=lifespan)
