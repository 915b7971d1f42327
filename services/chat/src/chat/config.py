import json
import os
from pathlib import Path
from typing import Literal

from common.errors import BadRequest
from common.settings import ServiceSettings
from pydantic import BaseModel

DEFAULT_PROVIDERS_FILE = Path(__file__).with_name("providers.json")


class ProviderConfig(BaseModel):
    """One provider alias: which vendor's SDK, which model, and optionally where and which key."""

    vendor: Literal["openai", "anthropic"]
    model: str
    base_url: str | None = None
    # Name of the env var holding the key; unset means the SDK's own (OPENAI_API_KEY, …).
    api_key_env: str | None = None

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None


class ChatSettings(ServiceSettings):
    service_name: str = "chat"
    mongodb_db: str = "chat"
    modules_url: str = "http://127.0.0.1:8102"

    providers_file: Path = DEFAULT_PROVIDERS_FILE
    default_provider: str = "openai"
    # Tried once when the chosen provider fails before its first token (None: no fallback).
    fallback_provider: str | None = None
    llm_http_client: Literal["aiohttp", "httpx"] = "aiohttp"
    llm_max_retries: int = 1
    llm_max_tokens: int = 1024
    llm_connect_timeout_s: float = 5.0
    llm_first_token_timeout_s: float = 30.0
    llm_idle_timeout_s: float = 30.0
    # Model streams one chat instance may hold at once (the SDKs' own default is 1,000).
    llm_max_connections: int = 10000

    module_cache_ttl_s: int = 300
    chat_requests_per_minute: int = 30
    chat_concurrent_streams: int = 3
    # A stream's concurrency lease expires after this long even if its process died.
    chat_stream_lease_s: int = 900

    def load_providers(self) -> dict[str, ProviderConfig]:
        raw = json.loads(self.providers_file.read_text())
        return {alias: ProviderConfig.model_validate(cfg) for alias, cfg in raw.items()}


class Providers:
    """The alias table: configuration, not code."""

    def __init__(self, table: dict[str, ProviderConfig], default: str, fallback: str | None):
        for role, alias in (("default", default), ("fallback", fallback)):
            if alias is not None and alias not in table:
                raise ValueError(f"{role} provider {alias!r} is not in the provider table")
        self.table = table
        self.default = default
        self.fallback = fallback

    def resolve(self, alias: str | None) -> tuple[str, ProviderConfig]:
        alias = alias or self.default
        config = self.table.get(alias)
        if config is None:
            known = ", ".join(sorted(self.table))
            raise BadRequest(f"Unknown provider {alias!r}; known providers: {known}")
        return alias, config
