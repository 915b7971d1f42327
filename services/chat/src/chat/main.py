import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from common.bus import PoisonMessage
from common.events import ModuleDeleted, ModuleUpdated
from common.resources import open_resources
from common.web import create_service_app
from fastapi import FastAPI
from pydantic import ValidationError

from chat.api import router
from chat.config import ChatSettings, Providers
from chat.llm import LLMClients
from chat.modules_client import ModulesClient
from chat.service import ChatService
from chat.store import ChatStore

log = logging.getLogger(__name__)


def create_app(settings: ChatSettings | None = None) -> FastAPI:
    settings = settings or ChatSettings()
    providers = Providers(
        settings.load_providers(), settings.default_provider, settings.fallback_provider
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_resources(settings) as resources:
            app.state.user_state = resources.user_state_from_auth(settings)
            store = ChatStore(resources.mongo, settings.mongodb_db)
            await store.ensure_indexes()
            modules = ModulesClient(
                settings.modules_url, resources.http, resources.redis, settings.module_cache_ttl_s
            )

            async def on_module_event(routing_key: str, body: bytes) -> None:
                event_type = (
                    ModuleDeleted if routing_key == ModuleDeleted.routing_key else ModuleUpdated
                )
                try:
                    event = event_type.model_validate_json(body)
                except ValidationError as exc:
                    raise PoisonMessage(str(exc)) from exc
                await modules.forget(event.module_id)

            # Each chat instance gets every module event (its own queue), so no instance can
            # keep serving a prompt that was just edited.
            await resources.bus.consume(
                None, [ModuleUpdated.routing_key, ModuleDeleted.routing_key], on_module_event
            )
            llm = LLMClients(settings)
            service = ChatService(
                settings=settings,
                providers=providers,
                llm=llm,
                modules=modules,
                store=store,
                outbox=resources.outbox,
                redis=resources.redis,
            )
            app.state.chat_service = service
            app.state.resources = resources
            try:
                yield
            finally:
                await service.drain()
                await llm.close()

    return create_service_app(settings, title="Chat service", routers=[router], lifespan=lifespan)
