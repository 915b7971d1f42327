"""The gateway: a pure ASGI app that checks tokens and streams requests through to services.

No framework routing or `BaseHTTPMiddleware` on this path: each request is one dict
lookup, one token check and one proxied call whose chunks are forwarded unparsed.
"""

import asyncio
import logging
import uuid
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import orjson
from common.context import request_id
from common.errors import AppError, NotFound, PayloadTooLarge
from common.jwt import bearer_token, verify_token
from common.observability import metrics_response
from common.redis import create_redis
from common.security import effective_claims
from common.streaming import run_until_disconnect
from common.userstate import AuthLevelSource, UserStateCache
from redis.asyncio import Redis
from starlette.types import Message, Receive, Scope, Send

from gateway.config import GatewaySettings
from gateway.proxy import Proxy
from gateway.routes import PUBLIC, match

log = logging.getLogger(__name__)


class Gateway:
    def __init__(self, settings: GatewaySettings):
        self.settings = settings
        self.upstreams = {
            "auth": settings.auth_url.rstrip("/"),
            "modules": settings.modules_url.rstrip("/"),
            "chat": settings.chat_url.rstrip("/"),
            "usage": settings.usage_url.rstrip("/"),
        }
        self.proxy = Proxy(
            pool_size=settings.upstream_pool_size,
            connect_timeout=settings.upstream_connect_timeout_s,
        )
        self.user_state: UserStateCache | None = None
        self.redis: Redis | None = None
        self.http: aiohttp.ClientSession | None = None
        self._resources: AsyncExitStack | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            try:
                await self._http(scope, receive, send)
            except AppError as exc:
                await _send_json(send, exc.status, {"detail": exc.detail}, exc.headers)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self._start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._resources is not None:
                    await self._resources.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _start(self) -> None:
        stack = AsyncExitStack()
        await self.proxy.start()
        stack.push_async_callback(self.proxy.close)
        self.redis = redis = create_redis(self.settings)
        stack.push_async_callback(redis.aclose)
        self.http = http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=10, sock_connect=3)
        )
        stack.push_async_callback(http.close)
        self.user_state = UserStateCache(redis, AuthLevelSource(self.settings.auth_url, http))
        self._resources = stack

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        # Served outside the stage prefix, for probes and scrapers.
        if path == "/healthz":
            await _send_json(send, 200, {"status": "ok"})
            return
        if path == "/readyz":
            await self._readyz(send)
            return
        if path == "/metrics":
            body, content_type = metrics_response()
            await _send_bytes(send, 200, body, content_type)
            return
        prefix = self.settings.stage_prefix
        if prefix:
            if not (path == prefix or path.startswith(prefix + "/")):
                raise NotFound()
            path = path[len(prefix) :] or "/"
        route = match(path)
        if route is None:
            raise NotFound()
        scope["metrics_route"] = route.prefix
        method: str = scope["method"]
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        if (method, path) not in PUBLIC and method != "OPTIONS":
            claims = verify_token(self.settings, bearer_token(_header(headers, b"authorization")))
            assert self.user_state is not None
            await effective_claims(claims, self.user_state)
        body = await self._read_body(receive)
        rid = request_id.get() or uuid.uuid4().hex
        client = scope.get("client")
        forwarded = _header(headers, b"x-forwarded-for")
        if client:
            forwarded = f"{forwarded}, {client[0]}" if forwarded else client[0]
        upstream_headers = [
            *((k, v) for k, v in headers if k not in (b"x-request-id", b"x-forwarded-for")),
            (b"x-request-id", rid.encode()),
            *([(b"x-forwarded-for", forwarded.encode())] if forwarded else []),
        ]
        query = scope["query_string"]
        url = self.upstreams[route.service] + path + ("?" + query.decode() if query else "")
        await run_until_disconnect(
            receive,
            self.proxy.forward(
                service=route.service,
                method=method,
                url=url,
                headers=upstream_headers,
                body=body,
                send=send,
            ),
        )

    async def _readyz(self, send: Send) -> None:
        """Ready when Redis answers; also reports every service's own readiness."""
        checks: dict[str, str] = {}

        async def redis() -> None:
            try:
                assert self.redis is not None
                await asyncio.wait_for(self.redis.ping(), 2)
                checks["redis"] = "ok"
            except Exception as exc:
                checks["redis"] = f"unreachable: {type(exc).__name__}"

        async def service(name: str, url: str) -> None:
            assert self.http is not None
            try:
                async with self.http.get(f"{url}/readyz", timeout=aiohttp.ClientTimeout(2)) as r:
                    checks[name] = "ok" if r.status == 200 else f"not ready ({r.status})"
            except (aiohttp.ClientError, TimeoutError) as exc:
                checks[name] = f"unreachable: {type(exc).__name__}"

        await asyncio.gather(redis(), *(service(n, u) for n, u in self.upstreams.items()))
        # Only the gateway's own dependency decides: one unready service must not take the
        # whole API out of rotation. The services' states are reported for operators.
        if checks["redis"] != "ok":
            body = {"detail": "not ready: redis", "checks": checks}
            await _send_json(send, 503, body)
        else:
            await _send_json(send, 200, {"status": "ready", "checks": checks})

    async def _read_body(self, receive: Receive) -> bytes:
        limit = self.settings.max_body_bytes
        chunks: list[bytes] = []
        size = 0
        while True:
            message: Message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"Request body too large (limit {limit} bytes)")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


async def _send_bytes(send: Send, status: int, body: bytes, content_type: str) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_json(
    send: Send, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
) -> None:
    body = orjson.dumps(payload)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
