"""The ASGI app: model endpoints, control endpoints and stream driving.

A raw ASGI callable rather than a framework: this server is the baseline the
gateway and chat service are benchmarked against, so the path from request to
bytes on the wire is kept as short as possible (a dict lookup for routing,
orjson, prebuilt byte fragments, one ``send`` per SSE event).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from .anthropic_format import AnthropicFormat
from .openai_format import OpenAIFormat
from .protocol import Headers, ModelRequest, RequestError, WireFormat
from .replies import Reply, build_reply
from .settings import Settings, load_settings
from .state import ConfigError, RequestRecord, RuntimeConfig, State

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON = (b"content-type", b"application/json")
_SSE_HEADERS: Headers = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]


class DisconnectWatcher:
    """Listens for ``http.disconnect`` while a response is produced.

    uvicorn's ``send`` silently drops writes once the client is gone, so the only
    way to notice a client that hung up (and stop generating) is to keep a
    ``receive()`` pending. Sleeps between chunks wake up early on disconnect.
    """

    __slots__ = ("_receive", "_task", "_waiter", "disconnected")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._waiter: asyncio.Future[None] | None = None
        self.disconnected = False
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
                if self._waiter is not None and not self._waiter.done():
                    self._waiter.set_result(None)
                return

    async def sleep(self, seconds: float) -> bool:
        """Sleep ``seconds``; return False (early) if the client disconnected."""
        if self.disconnected:
            return False
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiter = waiter
        timer = loop.call_later(seconds, _wake, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None
        return not self.disconnected

    def close(self) -> None:
        self._task.cancel()


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None if the client left before sending it."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _body(send: Send, data: bytes, more: bool = True) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": more})


async def _respond(send: Send, status: int, body: bytes, extra: Headers | None = None) -> None:
    headers: Headers = [_JSON, (b"content-length", str(len(body)).encode())]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await _body(send, body, more=False)


async def _respond_json(send: Send, status: int, data: Any) -> None:
    await _respond(send, status, orjson.dumps(data))


class FakeUpstream:
    """ASGI app speaking the OpenAI and Anthropic chat wire formats, plus a control API."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or load_settings()
        self.state = State(self.settings)
        openai = OpenAIFormat()
        anthropic = AnthropicFormat()
        self._models: dict[str, WireFormat] = {
            "/v1/chat/completions": openai,
            # Tolerate a base_url configured without /v1.
            "/chat/completions": openai,
            "/v1/messages": anthropic,
        }
        self._control: dict[tuple[str, str], Callable[[Receive, Send], Awaitable[None]]] = {
            ("GET", "/healthz"): self._healthz,
            ("GET", "/_fake/config"): self._get_config,
            ("POST", "/_fake/config"): self._set_config,
            ("POST", "/_fake/reset"): self._reset,
            ("GET", "/_fake/requests"): self._get_requests,
            ("DELETE", "/_fake/requests"): self._clear_requests,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await _lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            path = path.rstrip("/")
        method: str = scope["method"]
        fmt = self._models.get(path)
        if fmt is not None:
            if method != "POST":
                await _respond(send, 405, fmt.error_body(405, f"Method {method} not allowed"))
                return
            await self._model_request(scope, receive, send, fmt)
            return
        handler = self._control.get((method, path))
        if handler is not None:
            await handler(receive, send)
            return
        status = 405 if any(p == path for _, p in self._control) else 404
        await _respond_json(send, status, {"error": {"message": f"{method} {path} not found"}})

    # ---- model endpoints -------------------------------------------------

    async def _model_request(
        self, scope: Scope, receive: Receive, send: Send, fmt: WireFormat
    ) -> None:
        raw = await _read_body(receive)
        if raw is None:
            return
        if not fmt.authorized(scope["headers"]):
            await _respond(send, 401, fmt.error_body(401, fmt.auth_error_message()))
            return
        try:
            req = fmt.parse(orjson.loads(raw))
        except orjson.JSONDecodeError:
            await _respond(send, 400, fmt.error_body(400, "The request body is not valid JSON."))
            return
        except RequestError as exc:
            await _respond(send, 400, fmt.error_body(400, exc.message, exc.param))
            return

        config = self.state.take_config()
        request_id = fmt.new_id(self.state.next_id())
        record = RequestRecord(
            id=request_id,
            path=scope["path"],
            vendor=fmt.vendor,
            model=req.model,
            system=req.system,
            messages=req.messages,
            stream=req.stream,
            status="streaming",
            chunks_sent=0,
            received_at=time.time(),
        )
        self.state.requests.append(record)
        extra = fmt.response_headers(request_id)

        status = config.fail_before_first_token
        if status is not None:
            record.finish("failed")
            message = f"Simulated upstream failure (HTTP {status})."
            await _respond(send, status, fmt.error_body(status, message), extra)
            return

        if req.stream:
            await self._stream(receive, send, fmt, req, config, record, extra)
        else:
            await self._complete(receive, send, fmt, req, config, record, extra)

    async def _stream(
        self,
        receive: Receive,
        send: Send,
        fmt: WireFormat,
        req: ModelRequest,
        config: RuntimeConfig,
        record: RequestRecord,
        extra: Headers,
    ) -> None:
        reply, count, truncated = _plan(req, config)
        fail_after = config.fail_after_chunks
        delay = config.token_delay_ms / 1000
        watcher = DisconnectWatcher(receive)
        try:
            # The first-token delay comes before the headers, as with a real API,
            # where the SDK's create() call returns only when generation starts.
            if config.first_token_delay_ms and not await watcher.sleep(
                config.first_token_delay_ms / 1000
            ):
                record.finish("disconnected")
                return
            encoder = fmt.stream_encoder(record.id, req, reply)
            headers = _SSE_HEADERS + extra
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await _body(send, encoder.preamble())
            sent = 0
            while sent < count:
                if fail_after is not None and sent >= fail_after:
                    break
                if (sent and delay and not await watcher.sleep(delay)) or watcher.disconnected:
                    record.finish("disconnected")
                    return
                await _body(send, encoder.chunk(sent))
                sent += 1
                record.chunks_sent = sent
            if watcher.disconnected:
                record.finish("disconnected")
                return
            if fail_after is not None:
                record.finish("failed")
                if config.mid_stream_failure == "error_event":
                    await _body(send, encoder.error_event(), more=False)
                # "drop": returning with the body unfinished makes the server close the
                # socket without the final chunk, so the client sees a truncated stream.
                return
            record.finish("completed")
            await _body(send, encoder.finish(sent, truncated), more=False)
        finally:
            watcher.close()

    async def _complete(
        self,
        receive: Receive,
        send: Send,
        fmt: WireFormat,
        req: ModelRequest,
        config: RuntimeConfig,
        record: RequestRecord,
        extra: Headers,
    ) -> None:
        reply, count, truncated = _plan(req, config)
        # A non-streamed answer arrives after the whole generation would have taken.
        wait_ms = config.first_token_delay_ms + config.token_delay_ms * max(0, count - 1)
        if wait_ms:
            watcher = DisconnectWatcher(receive)
            try:
                if not await watcher.sleep(wait_ms / 1000):
                    record.finish("disconnected")
                    return
            finally:
                watcher.close()
        text = "".join(reply.chunks[:count])
        if config.fail_after_chunks is not None:
            record.chunks_sent = min(config.fail_after_chunks, count)
            record.finish("failed")
            if config.mid_stream_failure == "error_event":
                await _respond(send, 500, fmt.error_body(500, "Simulated upstream failure."), extra)
                return
            # Announce the full length, send half, and return: the server closes the
            # connection and the client fails reading an incomplete body.
            body = fmt.complete_body(record.id, req, text, count, truncated)
            headers: Headers = [_JSON, (b"content-length", str(len(body)).encode()), *extra]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await _body(send, body[: len(body) // 2])
            return
        body = fmt.complete_body(record.id, req, text, count, truncated)
        record.chunks_sent = count
        record.finish("completed")
        await _respond(send, 200, body, extra)

    # ---- control endpoints -----------------------------------------------

    async def _healthz(self, receive: Receive, send: Send) -> None:
        await _respond(send, 200, b'{"status":"ok"}')

    async def _get_config(self, receive: Receive, send: Send) -> None:
        await _respond_json(send, 200, self.state.config.to_dict())

    async def _set_config(self, receive: Receive, send: Send) -> None:
        raw = await _read_body(receive)
        if raw is None:
            return
        try:
            patch = orjson.loads(raw) if raw.strip() else {}
            self.state.config = self.state.config.updated(patch)
        except orjson.JSONDecodeError:
            await _respond_json(send, 400, {"detail": "body is not valid JSON"})
            return
        except ConfigError as exc:
            await _respond_json(send, 400, {"detail": str(exc)})
            return
        await _respond_json(send, 200, self.state.config.to_dict())

    async def _reset(self, receive: Receive, send: Send) -> None:
        self.state.reset()
        await _respond_json(send, 200, self.state.config.to_dict())

    async def _get_requests(self, receive: Receive, send: Send) -> None:
        records = [r.to_dict() for r in self.state.requests]
        await _respond_json(send, 200, {"requests": records})

    async def _clear_requests(self, receive: Receive, send: Send) -> None:
        self.state.requests.clear()
        await _respond_json(send, 200, {"cleared": True})


def _plan(req: ModelRequest, config: RuntimeConfig) -> tuple[Reply, int, bool]:
    """The reply, how many of its chunks to send, and whether max_tokens cut it short."""
    reply = build_reply(req.system, req.last_user, config.reply_chunks)
    count = len(reply.chunks)
    if req.max_tokens is not None and req.max_tokens < count:
        return reply, req.max_tokens, True
    return reply, count, False


async def _lifespan(receive: Receive, send: Send) -> None:
    # Nothing to set up; answering lifespan keeps servers that expect it quiet.
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def create_app(settings: Settings | None = None) -> FakeUpstream:
    """A new app with its own state (settings default to the environment)."""
    return FakeUpstream(settings)
