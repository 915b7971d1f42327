"""One chat turn: resolve provider, module and thread, stream the reply, record and bill it."""

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

from common.access import AccessLevel
from common.errors import BadRequest, Forbidden, NotFound, TooManyRequests
from common.events import ChatUsageRecorded, TurnStatus
from common.jwt import TokenClaims
from common.outbox import Outbox
from common.pagination import Page, PageParams
from common.ratelimit import ConcurrencyLimiter, RateLimiter
from common.sse import encode_event
from prometheus_client import Counter, Gauge, Histogram
from redis.asyncio import Redis

from chat.config import ChatSettings, ProviderConfig, Providers
from chat.llm import Completion, LLMClients, StreamItem, TextDelta, provider_error
from chat.modules_client import ModulesClient
from chat.schemas import ChatRequest, ThreadOut, Transcript, TranscriptMessage
from chat.store import ChatStore, ThreadRecord, TurnRecord

log = logging.getLogger(__name__)

IN_FLIGHT = Gauge("chat_streams_in_flight", "Chat streams open right now")
TTFT = Histogram(
    "chat_time_to_first_token_seconds",
    "From calling the provider to its first item",
    ["provider"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
TOKENS = Counter("chat_tokens_total", "Tokens billed", ["provider", "direction"])
TURNS = Counter("chat_turns_total", "Chat turns by outcome", ["provider", "status"])


@dataclass
class Turn:
    """A turn whose provider has already produced its first item."""

    user: TokenClaims
    request: ChatRequest
    alias: str
    provider: ProviderConfig
    thread: ThreadRecord
    first: StreamItem
    rest: AsyncIterator[StreamItem]
    started: float
    ttft: float
    lease: str
    text: list[str] = field(default_factory=list)
    completion: Completion | None = None
    latency: float = 0.0
    usage: ChatUsageRecorded | None = None
    settling: "asyncio.Task[ChatUsageRecorded] | None" = None


class ChatService:
    def __init__(
        self,
        *,
        settings: ChatSettings,
        providers: Providers,
        llm: LLMClients,
        modules: ModulesClient,
        store: ChatStore,
        outbox: Outbox,
        redis: Redis,
    ):
        self.settings = settings
        self.providers = providers
        self.llm = llm
        self.modules = modules
        self.store = store
        self.outbox = outbox
        self.requests = RateLimiter(redis, "chat-requests")
        self.streams = ConcurrencyLimiter(
            redis, "chat-streams", lease_s=settings.chat_stream_lease_s
        )
        self._background: set[asyncio.Task[None]] = set()

    async def _admit(self, user: TokenClaims) -> str:
        """Apply the per-user limits; returns the stream's concurrency lease."""
        count = await self.requests.hit(user.sub, 60)
        if count > self.settings.chat_requests_per_minute:
            raise TooManyRequests(
                "Too many chat requests; slow down", headers={"Retry-After": "60"}
            )
        lease = uuid.uuid4().hex
        wait = await self.streams.acquire(user.sub, lease, self.settings.chat_concurrent_streams)
        if wait:
            raise TooManyRequests(
                "Too many chats open at once; finish one first",
                headers={"Retry-After": str(wait)},
            )
        return lease

    async def start_turn(self, user: TokenClaims, request: ChatRequest, authorization: str) -> Turn:
        """Everything that can fail with a plain HTTP error happens here, before streaming."""
        alias, provider = self.providers.resolve(request.provider)
        if request.messages[-1].role != "user":
            raise BadRequest("The last message must come from the user")
        thread: ThreadRecord | None = None
        if request.thread_id:
            thread = await self.store.thread_of(request.thread_id, user.sub)
            if thread is None:
                raise NotFound("Thread not found")
            if request.agent_id and request.agent_id != thread.module_id:
                raise BadRequest("This thread belongs to another training module")
            module_id = thread.module_id
        elif request.agent_id:
            module_id = request.agent_id
        else:
            raise BadRequest("agent_id is required to start a new thread")
        module = await self.modules.get(module_id, authorization)

        lease = await self._admit(user)
        try:
            started = time.perf_counter()
            alias, provider, first, stream = await self._open(
                alias, provider, module.system_prompt, request
            )
            ttft = time.perf_counter() - started
            TTFT.labels(alias).observe(ttft)
            if thread is None:
                thread = self.store.new_thread(user_id=user.sub, module_id=module_id)
        except BaseException:
            await self.streams.release(user.sub, lease)
            raise
        return Turn(user, request, alias, provider, thread, first, stream, started, ttft, lease)

    async def _open(
        self, alias: str, provider: ProviderConfig, system: str, request: ChatRequest
    ) -> tuple[str, ProviderConfig, StreamItem, AsyncIterator[StreamItem]]:
        """Start the model stream and wait for its first item; try the fallback once."""
        try:
            return alias, provider, *await self._first(provider, system, request)
        except Exception as exc:
            fallback = self.providers.fallback
            log.warning("provider %s failed before the first token: %r", alias, exc)
            if fallback is None or fallback == alias:
                raise provider_error(exc) from exc
        alias, provider = self.providers.resolve(fallback)
        try:
            return alias, provider, *await self._first(provider, system, request)
        except Exception as exc:
            log.warning("fallback provider %s failed too: %r", alias, exc)
            raise provider_error(exc) from exc

    async def _first(
        self, provider: ProviderConfig, system: str, request: ChatRequest
    ) -> tuple[StreamItem, AsyncIterator[StreamItem]]:
        stream = aiter(self.llm.stream(provider, system, request.messages))
        try:
            async with asyncio.timeout(self.settings.llm_first_token_timeout_s):
                return await anext(stream), stream
        except BaseException:
            await _close(stream)
            raise

    async def stream_turn(self, turn: Turn) -> AsyncGenerator[bytes, None]:
        """The SSE body: thread, deltas, then `done` (or `error`); always recorded and billed."""
        status: TurnStatus = "failed"
        IN_FLIGHT.inc()
        try:
            yield encode_event(
                "thread",
                {
                    "thread_id": turn.thread.id,
                    "module_id": turn.thread.module_id,
                    "provider": turn.alias,
                    "model": turn.provider.model,
                },
            )
            item = turn.first
            while True:
                if isinstance(item, TextDelta):
                    turn.text.append(item.text)
                    yield encode_event("delta", {"text": item.text})
                else:
                    turn.completion = item
                try:
                    item = await anext(turn.rest)
                except StopAsyncIteration:
                    break
            status = "completed"
            # Billed and stored before the client sees `done`: a finished turn is never
            # left unbilled, and its transcript is there when the client asks for it.
            usage = await asyncio.shield(self._settle(turn, status))
            yield encode_event(
                "done",
                {
                    "thread_id": turn.thread.id,
                    "model": usage.model,
                    "finish_reason": turn.completion.finish_reason if turn.completion else None,
                    "usage": {
                        "input_tokens": usage.input_tokens,
                        "output_tokens": usage.output_tokens,
                    },
                },
            )
        except (asyncio.CancelledError, GeneratorExit):
            if status != "completed":
                status = "cancelled"
            raise
        except Exception as exc:
            log.warning("provider %s failed mid-stream: %r", turn.alias, exc)
            yield encode_event("error", {"detail": provider_error(exc).detail})
        finally:
            IN_FLIGHT.dec()
            await _close(turn.rest)
            self._in_background(self._finish(turn, status))

    def _in_background(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run outside the request, so a client that goes away cannot cancel the book-keeping."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _usage(self, turn: Turn, status: TurnStatus) -> ChatUsageRecorded:
        if turn.usage is None:
            turn.latency = time.perf_counter() - turn.started
            completion = turn.completion
            # A turn cut short has no usage from the provider: estimate what it cost.
            turn.usage = ChatUsageRecorded(
                user_id=turn.user.sub,
                module_id=turn.thread.module_id,
                thread_id=turn.thread.id,
                provider=turn.alias,
                vendor=turn.provider.vendor,
                model=completion.model if completion else turn.provider.model,
                input_tokens=(
                    completion.input_tokens
                    if completion
                    else estimate_tokens(m.content for m in turn.request.messages)
                ),
                output_tokens=completion.output_tokens if completion else len(turn.text),
                ttft_ms=round(turn.ttft * 1000, 3),
                latency_ms=round(turn.latency * 1000, 3),
                status=status,
            )
        return turn.usage

    def _settle(self, turn: Turn, status: TurnStatus) -> "asyncio.Task[ChatUsageRecorded]":
        """Bill and store the turn, once, in a task of its own: a client that disconnects
        while this runs cannot cancel it half-way."""
        if turn.settling is None:
            turn.settling = asyncio.create_task(self._bill_and_store(turn, status))
        return turn.settling

    async def _bill_and_store(self, turn: Turn, status: TurnStatus) -> ChatUsageRecorded:
        """The outbox write and the transcript write, concurrently."""
        usage = self._usage(turn, status)
        record = TurnRecord(
            user_content=turn.request.messages[-1].content,
            assistant_content="".join(turn.text),
            provider=turn.alias,
            model=usage.model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            finish_reason=turn.completion.finish_reason if turn.completion else None,
            status=usage.status,
        )
        stored, _ = await asyncio.gather(
            self.store.record_turn(turn.thread, record),
            self.outbox.publish(usage),
            return_exceptions=True,
        )
        if isinstance(stored, Exception):
            log.error("could not store the transcript of thread %s: %r", turn.thread.id, stored)
        log.info(
            "turn %s in thread %s: %s, %d+%d tokens, %.0f ms",
            usage.event_id, turn.thread.id, usage.status,
            usage.input_tokens, usage.output_tokens, usage.latency_ms,
        )  # fmt: skip
        TURNS.labels(usage.provider, usage.status).inc()
        TOKENS.labels(usage.provider, "input").inc(usage.input_tokens)
        TOKENS.labels(usage.provider, "output").inc(usage.output_tokens)
        return usage

    async def _finish(self, turn: Turn, status: TurnStatus) -> None:
        """Give the stream lease back; bill and store a turn that ended early."""
        await self.streams.release(turn.user.sub, turn.lease)
        await self._settle(turn, status)

    async def list_threads(
        self,
        viewer: TokenClaims,
        *,
        user_id: str | None,
        module_id: str | None,
        page: PageParams,
    ) -> Page[ThreadOut]:
        """Trainees see their own threads; managers may look at anyone's, by user or module."""
        if viewer.lvl < AccessLevel.MANAGER:
            if user_id not in (None, viewer.sub):
                raise Forbidden("Only managers can see other users' threads")
            user_id = viewer.sub
        elif user_id is None and module_id is None:
            user_id = viewer.sub
        threads, total = await self.store.list_threads(
            user_id=user_id, module_id=module_id, skip=page.skip, limit=page.page_size
        )
        return Page.of([ThreadOut.model_validate(t.model_dump()) for t in threads], page, total)

    async def transcript(self, viewer: TokenClaims, thread_id: str) -> Transcript:
        owner = None if viewer.lvl >= AccessLevel.MANAGER else viewer.sub
        thread = await self.store.thread_of(thread_id, owner)
        if thread is None:
            raise NotFound("Thread not found")
        messages = await self.store.messages(thread_id)
        return Transcript(
            **thread.model_dump(),
            messages=[TranscriptMessage.model_validate(m.model_dump()) for m in messages],
        )

    async def drain(self) -> None:
        """Wait for turns still being recorded (on shutdown)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)


def estimate_tokens(texts: Iterable[str]) -> int:
    """About four characters a token, as both vendors document for English."""
    return max(1, sum(len(t) for t in texts) // 4)


async def _close(stream: AsyncIterator[StreamItem]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
