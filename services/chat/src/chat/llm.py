"""The one place that talks to model vendors, through their official SDKs.

Both vendors' streams are turned into the same two items: `TextDelta`s, then one
`Completion` with the token usage.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx2
import openai
from common.errors import AppError, BadGateway, GatewayTimeout, ServiceUnavailable

from chat.config import ChatSettings, ProviderConfig
from chat.schemas import ChatMessage


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class Completion:
    model: str
    input_tokens: int
    output_tokens: int
    finish_reason: str | None


StreamItem = TextDelta | Completion


def provider_error(exc: Exception) -> AppError:
    """Map an SDK failure to the HTTP error the client sees."""
    if isinstance(exc, openai.APITimeoutError | anthropic.APITimeoutError | TimeoutError):
        return GatewayTimeout("The model provider timed out")
    if isinstance(exc, openai.APIConnectionError | anthropic.APIConnectionError):
        return ServiceUnavailable("The model provider is unreachable")
    if isinstance(exc, openai.APIStatusError | anthropic.APIStatusError):
        return BadGateway(f"The model provider answered with status {exc.status_code}")
    return BadGateway("The model provider failed")


class LLMClients:
    """SDK clients, one per (vendor, base URL, key), created on first use and reused."""

    def __init__(self, settings: ChatSettings):
        self._settings = settings
        self._clients: dict[tuple[str, str | None, str | None], Any] = {}

    def _http_client(self, vendor: str) -> Any:
        s = self._settings
        sdk: Any = openai if vendor == "openai" else anthropic
        timeout = sdk.Timeout(
            connect=s.llm_connect_timeout_s,
            read=s.llm_idle_timeout_s,
            write=s.llm_connect_timeout_s,
            pool=s.llm_connect_timeout_s,
        )
        limits = httpx2.Limits(max_connections=s.llm_max_connections, max_keepalive_connections=100)
        if s.llm_http_client == "aiohttp":
            return sdk.DefaultAioHttpClient(timeout=timeout, limits=limits)
        return sdk.DefaultAsyncHttpxClient(timeout=timeout, limits=limits)

    def _client(self, provider: ProviderConfig) -> Any:
        key = (provider.vendor, provider.base_url, provider.api_key_env)
        client = self._clients.get(key)
        if client is None:
            cls = openai.AsyncOpenAI if provider.vendor == "openai" else anthropic.AsyncAnthropic
            client = cls(
                api_key=provider.api_key(),
                base_url=provider.base_url,
                max_retries=self._settings.llm_max_retries,
                http_client=self._http_client(provider.vendor),
            )
            self._clients[key] = client
        return client

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()

    def stream(
        self, provider: ProviderConfig, system: str, messages: list[ChatMessage]
    ) -> AsyncIterator[StreamItem]:
        if provider.vendor == "openai":
            return self._openai(provider, system, messages)
        return self._anthropic(provider, system, messages)

    async def _openai(
        self, provider: ProviderConfig, system: str, messages: list[ChatMessage]
    ) -> AsyncIterator[StreamItem]:
        stream = await self._client(provider).chat.completions.create(
            model=provider.model,
            messages=[
                {"role": "system", "content": system},
                *({"role": m.role, "content": m.content} for m in messages),
            ],
            max_completion_tokens=self._settings.llm_max_tokens,
            stream=True,
            stream_options={"include_usage": True},
        )
        model, finish, usage = provider.model, None, None
        async with stream:
            async for chunk in stream:
                model = chunk.model or model
                if chunk.usage is not None:
                    usage = chunk.usage
                for choice in chunk.choices:
                    if choice.delta.content:
                        yield TextDelta(choice.delta.content)
                    if choice.finish_reason:
                        finish = choice.finish_reason
        yield Completion(
            model=model,
            input_tokens=usage.prompt_tokens if usage else 0,
            output_tokens=usage.completion_tokens if usage else 0,
            finish_reason=finish,
        )

    async def _anthropic(
        self, provider: ProviderConfig, system: str, messages: list[ChatMessage]
    ) -> AsyncIterator[StreamItem]:
        stream = await self._client(provider).messages.create(
            model=provider.model,
            system=system,
            messages=[{"role": m.role, "content": m.content} for m in messages],
            max_tokens=self._settings.llm_max_tokens,
            stream=True,
        )
        model, finish, input_tokens, output_tokens = provider.model, None, 0, 0
        async with stream:
            async for event in stream:
                if event.type == "message_start":
                    model = event.message.model or model
                    input_tokens = event.message.usage.input_tokens
                elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                    yield TextDelta(event.delta.text)
                elif event.type == "message_delta":
                    output_tokens = event.usage.output_tokens
                    finish = event.delta.stop_reason
        yield Completion(
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            finish_reason=finish,
        )
