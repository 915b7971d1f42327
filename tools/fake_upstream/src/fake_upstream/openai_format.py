"""OpenAI Chat Completions wire format (``POST /v1/chat/completions``).

Streams are ``data: <chat.completion.chunk>\\n\\n`` events ended by ``data: [DONE]``,
as the official SDK's SSE decoder expects. Chunk JSON is assembled from
precomputed byte fragments: only the id/created/model prefix is built per request,
and each content fragment is JSON-encoded once per cached reply.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from .protocol import (
    Headers,
    ModelRequest,
    RequestError,
    bearer_token,
    optional_positive_int,
)
from .replies import Reply, estimate_tokens, flatten_content

_SYSTEM_ROLES = ("system", "developer")
_ROLES = ("system", "developer", "user", "assistant", "tool", "function")

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    429: "requests",
}
_ERROR_CODES = {401: "invalid_api_key", 429: "rate_limit_exceeded"}

_DONE = b"data: [DONE]\n\n"


def _encoded(reply: Reply) -> tuple[bytes, ...]:
    enc = reply.encoded.get("openai")
    if enc is None:
        enc = tuple(orjson.dumps(c) for c in reply.chunks)
        reply.encoded["openai"] = enc
    return enc


class OpenAIStream:
    def __init__(self, request_id: str, req: ModelRequest, reply: Reply) -> None:
        self._req = req
        self._pieces = _encoded(reply)
        head = (
            b'data: {"id":"' + request_id.encode() + b'","object":"chat.completion.chunk",'
            b'"created":'
            + str(int(time.time())).encode()
            + b',"model":'
            + orjson.dumps(req.model)
            + b',"system_fingerprint":null,"choices":['
        )
        # With include_usage the real API adds "usage":null to every chunk but the last.
        tail = b',"usage":null}\n\n' if req.include_usage else b"}\n\n"
        self._head = head
        self._tail = tail
        self._chunk_head = head + b'{"index":0,"delta":{"content":'
        self._chunk_tail = b'},"logprobs":null,"finish_reason":null}]' + tail

    def preamble(self) -> bytes:
        return (
            self._head + b'{"index":0,"delta":{"role":"assistant","content":"","refusal":null},'
            b'"logprobs":null,"finish_reason":null}]' + self._tail
        )

    def chunk(self, index: int) -> bytes:
        return self._chunk_head + self._pieces[index] + self._chunk_tail

    def finish(self, output_tokens: int, truncated: bool) -> bytes:
        reason = b'"length"' if truncated else b'"stop"'
        out = (
            self._head
            + b'{"index":0,"delta":{},"logprobs":null,"finish_reason":'
            + reason
            + b"}]"
            + self._tail
        )
        if self._req.include_usage:
            usage = _usage(self._req.input_tokens, output_tokens)
            out += self._head + b'],"usage":' + usage + b"}\n\n"
        return out + _DONE

    def error_event(self) -> bytes:
        # The SDK raises APIError when a data event carries an "error" object.
        message = "The server had an error while processing your request."
        return b"data: " + _error_json(500, message) + b"\n\n"


def _usage(prompt_tokens: int, completion_tokens: int) -> bytes:
    return orjson.dumps(
        {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
    )


def _error_json(status: int, message: str, param: str | None = None) -> bytes:
    return orjson.dumps(
        {
            "error": {
                "message": message,
                "type": _ERROR_TYPES.get(
                    status, "server_error" if status >= 500 else "invalid_request_error"
                ),
                "param": param,
                "code": _ERROR_CODES.get(status),
            }
        }
    )


class OpenAIFormat:
    vendor = "openai"

    def authorized(self, headers: Headers) -> bool:
        return bool(bearer_token(headers))

    def auth_error_message(self) -> str:
        return (
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        )

    def new_id(self, n: int) -> str:
        return f"chatcmpl-fake{n:08d}"

    def response_headers(self, request_id: str) -> Headers:
        return [(b"x-request-id", f"req_{request_id}".encode())]

    def error_body(self, status: int, message: str, param: str | None = None) -> bytes:
        return _error_json(status, message, param)

    def parse(self, body: Any) -> ModelRequest:
        if not isinstance(body, dict):
            raise RequestError("The request body must be a JSON object.")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise RequestError("you must provide a model parameter", param="model")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RequestError("'messages' must be a non-empty array", param="messages")
        system_parts: list[str] = []
        texts: list[str] = []
        last_user = ""
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in _ROLES:
                raise RequestError(f"Invalid message at messages[{i}]", param=f"messages.[{i}]")
            text = flatten_content(message.get("content"))
            texts.append(text)
            role = message["role"]
            if role in _SYSTEM_ROLES:
                system_parts.append(text)
            elif role == "user":
                last_user = text
        stream = body.get("stream")
        if stream is not None and not isinstance(stream, bool):
            raise RequestError("'stream' must be a boolean", param="stream")
        options = body.get("stream_options")
        include_usage = False
        if options is not None:
            # Mirrors the real API, which rejects stream_options on non-streaming calls.
            if not stream:
                raise RequestError(
                    "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                    param="stream_options",
                )
            if not isinstance(options, dict):
                raise RequestError("'stream_options' must be an object", param="stream_options")
            include_usage = options.get("include_usage") is True
        max_tokens = optional_positive_int(body, "max_completion_tokens")
        if max_tokens is None:
            max_tokens = optional_positive_int(body, "max_tokens")
        return ModelRequest(
            model=model,
            system="\n\n".join(system_parts),
            messages=messages,
            last_user=last_user,
            stream=bool(stream),
            include_usage=include_usage,
            max_tokens=max_tokens,
            input_tokens=estimate_tokens(texts),
        )

    def complete_body(
        self, request_id: str, req: ModelRequest, text: str, output_tokens: int, truncated: bool
    ) -> bytes:
        return orjson.dumps(
            {
                "id": request_id,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": req.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": text,
                            "refusal": None,
                            "annotations": [],
                        },
                        "logprobs": None,
                        "finish_reason": "length" if truncated else "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": req.input_tokens,
                    "completion_tokens": output_tokens,
                    "total_tokens": req.input_tokens + output_tokens,
                },
                "system_fingerprint": None,
            }
        )

    def stream_encoder(self, request_id: str, req: ModelRequest, reply: Reply) -> OpenAIStream:
        return OpenAIStream(request_id, req, reply)
