"""Structured JSON logs with the request id, and Prometheus metrics for every service."""

import json
import logging
import re
import sys
import time
import uuid
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.context import request_id

access = logging.getLogger("access")

REQUESTS = Counter(
    "http_requests_total", "HTTP requests handled", ["service", "method", "route", "status"]
)
LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time from request to the last byte of the response",
    ["service", "method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

# Keys whose values never reach a log line, wherever they appear in a message.
_SECRET = re.compile(
    r"(?i)(authorization|password|token|secret|api[_-]?key)([\"']?\s*[:=]\s*[\"']?)([^\s\"',}]+)"
)
_BEARER = re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/=-]+")


def redact(text: str) -> str:
    return _BEARER.sub("Bearer [redacted]", _SECRET.sub(r"\1\2[redacted]", text))


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        rid = request_id.get()
        if rid:
            entry["request_id"] = rid
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(service: str, level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stdout)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # uvicorn's own loggers go through the same handler, in the same format. Its access log
    # stays off: `Observability` writes one access line per request, with the request id.
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").handlers = []
    logging.getLogger("uvicorn.access").propagate = False
    # One line per upstream call from the SDKs' HTTP clients is noise on the hot path.
    for noisy in ("httpx", "httpx2", "aiormq", "aio_pika"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def metrics_response() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST


class Observability:
    """Pure ASGI middleware: request id in, request id out, one metric sample per request.

    No `BaseHTTPMiddleware`: streamed bodies pass through untouched, chunk by chunk.
    """

    def __init__(self, app: ASGIApp, service: str, *, access_log: bool = True):
        self.app = app
        self.service = service
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _incoming_request_id(scope) or uuid.uuid4().hex
        token = request_id.set(rid)
        status = 500
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message["headers"]
                if not any(key == b"x-request-id" for key, _ in headers):
                    message = {**message, "headers": [*headers, (b"x-request-id", rid.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or scope.get("metrics_route") or "unmatched"
            method = scope["method"]
            elapsed = time.perf_counter() - start
            REQUESTS.labels(self.service, method, path, str(status)).inc()
            LATENCY.labels(self.service, method, path).observe(elapsed)
            if self.access_log:
                access.info("%s %s %d %.1f ms", method, scope["path"], status, elapsed * 1000)
            request_id.reset(token)


def _incoming_request_id(scope: Scope) -> str | None:
    for key, value in scope["headers"]:
        if key == b"x-request-id":
            candidate = value.decode("latin-1")
            # Only a sane id is accepted from outside; anything else gets a fresh one.
            if 0 < len(candidate) <= 128 and candidate.isprintable() and " " not in candidate:
                return candidate
    return None
