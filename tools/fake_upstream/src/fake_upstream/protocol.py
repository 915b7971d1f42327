"""What the app needs from a vendor wire format, and the parsed request it works on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from .replies import Reply
from .state import Vendor

Headers = list[tuple[bytes, bytes]]


class RequestError(Exception):
    """A request the real API would refuse with a 400; answered in the vendor's error shape."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(slots=True)
class ModelRequest:
    """The parts of a chat request the fake acts on, whatever the vendor."""

    model: str
    system: str
    messages: list[Any]
    last_user: str
    stream: bool
    include_usage: bool
    max_tokens: int | None
    input_tokens: int


class StreamEncoder(Protocol):
    """Builds the SSE bytes of one streamed response."""

    def preamble(self) -> bytes:
        """Everything before the first content chunk."""
        ...

    def chunk(self, index: int) -> bytes:
        """Content chunk ``index`` of the reply as one SSE event."""
        ...

    def finish(self, output_tokens: int, truncated: bool) -> bytes:
        """Everything after the last content chunk (stop reason, usage, terminator)."""
        ...

    def error_event(self) -> bytes:
        """The vendor's in-band error event, for a simulated mid-stream failure."""
        ...


class WireFormat(Protocol):
    vendor: Vendor

    def authorized(self, headers: Headers) -> bool: ...

    def parse(self, body: Any) -> ModelRequest: ...

    def new_id(self, n: int) -> str: ...

    def response_headers(self, request_id: str) -> Headers:
        """Extra headers the vendor puts on every response (request ids)."""
        ...

    def error_body(self, status: int, message: str, param: str | None = None) -> bytes: ...

    def auth_error_message(self) -> str: ...

    def complete_body(
        self, request_id: str, req: ModelRequest, text: str, output_tokens: int, truncated: bool
    ) -> bytes: ...

    def stream_encoder(self, request_id: str, req: ModelRequest, reply: Reply) -> StreamEncoder: ...


def bearer_token(headers: Headers) -> bytes:
    """The token of an ``Authorization: Bearer`` header, or b"" when there is none."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer":
                return token.strip()
    return b""


def header(headers: Headers, wanted: bytes) -> bytes:
    for name, value in headers:
        if name == wanted:
            return value
    return b""


def optional_positive_int(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise RequestError(f"'{key}' must be a positive integer", param=key)
    return value
