from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from common.bus import EventBus
from common.mongo import create_mongo_client
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
        mongo = create_mongo_client(settings)
        store = ChatStore(mongo, settings.mongodb_db)
        await store.ensure_indexes()
        bus = EventBus(settings.rabbitmq_url, settings.events_exchange)
        await bus.connect()
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        llm = LLMClients(settings)
        service = ChatService(
            settings=settings,
            providers=providers,
            llm=llm,
            modules=ModulesClient(settings.modules_url, session),
            store=store,
            bus=bus,
        )
        app.state.chat_service = service
        try:
            yield
        finally:
            await service.drain()
            await llm.close()
            await session.close()
            await bus.close()
            await mongo.close()

    return create_service_app(settings, title="Chat service", routers=[router], lifespan=lifespan)
