"""Per-request context that follows a chat turn across tasks, processes and events."""

from contextvars import ContextVar

#: Created (or accepted from `X-Request-ID`) by the gateway, passed to every service.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
