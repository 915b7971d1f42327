"""Server-Sent Events: the encoder the chat service streams with, and a parser for clients."""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson


def encode_event(event: str, data: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


@dataclass(frozen=True)
class SSEEvent:
    event: str
    data: Any


class SSEParser:
    """Incremental parser: feed it bytes as they arrive, get complete events back."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> Iterator[SSEEvent]:
        self._buffer += chunk.replace(b"\r\n", b"\n")
        while b"\n\n" in self._buffer:
            block, self._buffer = self._buffer.split(b"\n\n", 1)
            event, data_lines = "message", []
            for line in block.decode().split("\n"):
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data_lines.append(line[5:].lstrip())
            if data_lines:
                yield SSEEvent(event, orjson.loads("\n".join(data_lines)))
