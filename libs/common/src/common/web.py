"""The FastAPI app factory every service uses: errors, body limits, health."""

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.errors import install_error_handlers
from common.observability import Observability, configure_logging, metrics_response
from common.resources import readiness
from common.settings import ServiceSettings


class BodySizeLimit:
    """Pure ASGI middleware: refuse request bodies over `max_bytes` with a 413."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await _send_413(send, self.max_bytes)
                return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await _send_413(send, self.max_bytes)


class _BodyTooLarge(Exception):
    pass


async def _send_413(send: Send, limit: int) -> None:
    body = b'{"detail":"Request body too large (limit %d bytes)"}' % limit
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    routers: list[APIRouter],
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[Any]],
) -> FastAPI:
    configure_logging(settings.service_name, settings.log_level, settings.log_format)
    app = FastAPI(title=title, lifespan=lifespan)
    app.state.settings = settings
    install_error_handlers(app)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        """MongoDB, Redis and RabbitMQ are reachable (503 names what is not)."""
        resources = getattr(request.app.state, "resources", None)
        if resources is None:
            return JSONResponse({"detail": "starting"}, status_code=503)
        checks = await readiness(resources)
        down = sorted(name for name, state in checks.items() if state != "ok")
        if down:
            body = {"detail": f"cannot reach {', '.join(down)}", "checks": checks}
            return JSONResponse(body, status_code=503)
        return JSONResponse({"status": "ready", "checks": checks})

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        """Prometheus metrics of this process."""
        body, content_type = metrics_response()
        return Response(body, media_type=content_type)

    for router in routers:
        app.include_router(router)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(Observability, service=settings.service_name, access_log=settings.access_log)
    return app


def client_address(request: Request) -> str:
    """The caller's address: the gateway appends it to `X-Forwarded-For` (rightmost entry)."""
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded:
        return forwarded.rsplit(",", 1)[-1].strip()
    return request.client.host if request.client else "unknown"


def from_state(name: str) -> Callable[[Request], Awaitable[Any]]:
    """A dependency that returns `app.state.<name>` (a service object made in the lifespan).

    Async on purpose: FastAPI runs a plain `def` dependency in a thread pool, which costs a
    thread hop on every request.
    """

    async def dependency(request: Request) -> Any:
        return getattr(request.app.state, name)

    return dependency
