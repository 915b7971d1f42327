"""Anthropic Messages wire format (``POST /v1/messages``).

Streams are ``event: <type>\\ndata: <json>\\n\\n`` events in the order the real API
sends them: message_start, content_block_start, ping, content_block_delta...,
content_block_stop, message_delta, message_stop. Content delta events do not
depend on the request, so they are encoded once per cached reply.
"""

from __future__ import annotations

from typing import Any

import orjson

from .protocol import (
    Headers,
    ModelRequest,
    RequestError,
    bearer_token,
    header,
    optional_positive_int,
)
from .replies import Reply, estimate_tokens, flatten_content

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

_BLOCK_START = (
    b"event: content_block_start\n"
    b'data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n'
    b'event: ping\ndata: {"type":"ping"}\n\n'
)
_DELTA_HEAD = (
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":'
)
_BLOCK_STOP = b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
_MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
_ERROR_EVENT = (
    b'event: error\ndata: {"type":"error",'
    b'"error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
)


def _error_type(status: int) -> str:
    return _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def _deltas(reply: Reply) -> tuple[bytes, ...]:
    enc = reply.encoded.get("anthropic")
    if enc is None:
        enc = tuple(_DELTA_HEAD + orjson.dumps(c) + b"}}\n\n" for c in reply.chunks)
        reply.encoded["anthropic"] = enc
    return enc


def _flatten_system(system: Any) -> str:
    if system is None:
        return ""
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        return flatten_content(system)
    raise RequestError("system: Input should be a valid string or a list of text blocks")


class AnthropicStream:
    def __init__(self, request_id: str, req: ModelRequest, reply: Reply) -> None:
        self._id = request_id
        self._req = req
        self._deltas = _deltas(reply)

    def preamble(self) -> bytes:
        message = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._req.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            # Like the real API: input tokens are final here, output tokens are a
            # placeholder that message_delta's cumulative count replaces.
            "usage": {
                "input_tokens": self._req.input_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": 1,
            },
        }
        return (
            b"event: message_start\ndata: "
            + orjson.dumps({"type": "message_start", "message": message})
            + b"\n\n"
            + _BLOCK_START
        )

    def chunk(self, index: int) -> bytes:
        return self._deltas[index]

    def finish(self, output_tokens: int, truncated: bool) -> bytes:
        reason = b'"max_tokens"' if truncated else b'"end_turn"'
        return (
            _BLOCK_STOP
            + b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":'
            + reason
            + b',"stop_sequence":null},"usage":{"output_tokens":'
            + str(output_tokens).encode()
            + b"}}\n\n"
            + _MESSAGE_STOP
        )

    def error_event(self) -> bytes:
        return _ERROR_EVENT


class AnthropicFormat:
    vendor = "anthropic"

    def authorized(self, headers: Headers) -> bool:
        # The real API takes x-api-key; the installed SDK (2.x) sends its api_key as
        # "Authorization: Bearer", so either one is accepted.
        return bool(header(headers, b"x-api-key").strip() or bearer_token(headers))

    def auth_error_message(self) -> str:
        return "x-api-key header is required"

    def new_id(self, n: int) -> str:
        return f"msg_fake{n:08d}"

    def response_headers(self, request_id: str) -> Headers:
        return [(b"request-id", f"req_{request_id}".encode())]

    def error_body(self, status: int, message: str, param: str | None = None) -> bytes:
        return orjson.dumps(
            {"type": "error", "error": {"type": _error_type(status), "message": message}}
        )

    def parse(self, body: Any) -> ModelRequest:
        if not isinstance(body, dict):
            raise RequestError("The request body must be a JSON object.")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise RequestError("model: Field required")
        if body.get("max_tokens") is None:
            raise RequestError("max_tokens: Field required")
        max_tokens = optional_positive_int(body, "max_tokens")
        messages = body.get("messages")
        if not isinstance(messages, list):
            raise RequestError("messages: Field required")
        if not messages:
            raise RequestError("messages: at least one message is required")
        system = _flatten_system(body.get("system"))
        texts = [system]
        last_user = ""
        for i, message in enumerate(messages):
            role = message.get("role") if isinstance(message, dict) else None
            if role not in ("user", "assistant"):
                # The real API has no "system" role in messages; catching it here
                # catches a client that forgot to move the persona to `system`.
                raise RequestError(f"messages.{i}.role: Input should be 'user' or 'assistant'")
            text = flatten_content(message.get("content"))
            texts.append(text)
            if role == "user":
                last_user = text
        stream = body.get("stream")
        if stream is not None and not isinstance(stream, bool):
            raise RequestError("stream: Input should be a valid boolean")
        return ModelRequest(
            model=model,
            system=system,
            messages=messages,
            last_user=last_user,
            stream=bool(stream),
            include_usage=True,
            max_tokens=max_tokens,
            input_tokens=estimate_tokens(texts),
        )

    def complete_body(
        self, request_id: str, req: ModelRequest, text: str, output_tokens: int, truncated: bool
    ) -> bytes:
        return orjson.dumps(
            {
                "id": request_id,
                "type": "message",
                "role": "assistant",
                "model": req.model,
                "content": [{"type": "text", "text": text}],
                "stop_reason": "max_tokens" if truncated else "end_turn",
                "stop_sequence": None,
                "usage": {
                    "input_tokens": req.input_tokens,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "output_tokens": output_tokens,
                },
            }
        )

    def stream_encoder(self, request_id: str, req: ModelRequest, reply: Reply) -> AnthropicStream:
        return AnthropicStream(request_id, req, reply)
