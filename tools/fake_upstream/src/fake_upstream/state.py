"""Mutable server state: the runtime config and the log of model requests."""

from __future__ import annotations

import itertools
import time
from collections import deque
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from .settings import Settings

MidStreamFailure = Literal["drop", "error_event"]
RequestStatus = Literal["streaming", "completed", "disconnected", "failed"]
Vendor = Literal["openai", "anthropic"]

_MAX_CHUNKS = 100_000
_MAX_DELAY_MS = 600_000.0


class ConfigError(ValueError):
    """A ``POST /_fake/config`` body the fake refuses (answered with 400)."""


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    """What the next model request does.

    Frozen on purpose: a request takes the object current when it arrives, so a
    config change never alters a stream already in flight.
    """

    reply_chunks: int
    token_delay_ms: float
    first_token_delay_ms: float
    # HTTP status to answer with instead of a reply (vendor-shaped error JSON).
    fail_before_first_token: int | None = None
    # Break the stream after this many content chunks.
    fail_after_chunks: int | None = None
    # How a mid-stream failure looks: the connection just drops ("drop"), or the
    # vendor's in-band error event is sent and the body ends ("error_event").
    mid_stream_failure: MidStreamFailure = "drop"
    # Only the next N model requests fail; then both failure knobs clear.
    # None means every request fails until the config is changed.
    fail_count: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> RuntimeConfig:
        return cls(
            reply_chunks=settings.reply_chunks,
            token_delay_ms=settings.token_delay_ms,
            first_token_delay_ms=settings.first_token_delay_ms,
        )

    @property
    def fails(self) -> bool:
        return self.fail_before_first_token is not None or self.fail_after_chunks is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def updated(self, patch: Any) -> RuntimeConfig:
        """Return a copy with ``patch`` (a partial JSON object) applied, or raise ConfigError."""
        if not isinstance(patch, dict):
            raise ConfigError("config body must be a JSON object")
        known = {f.name for f in fields(self)}
        unknown = sorted(set(patch) - known)
        if unknown:
            raise ConfigError(f"unknown config keys: {', '.join(unknown)}")
        changes: dict[str, Any] = {}
        for key, value in patch.items():
            changes[key] = _validate(key, value)
        return replace(self, **changes)


def _is_int(value: Any) -> bool:
    # bool is an int subclass; `true` is not a chunk count.
    return isinstance(value, int) and not isinstance(value, bool)


def _validate(key: str, value: Any) -> Any:
    if key == "reply_chunks":
        if not _is_int(value) or not 1 <= value <= _MAX_CHUNKS:
            raise ConfigError(f"reply_chunks must be an integer in 1..{_MAX_CHUNKS}")
        return value
    if key in ("token_delay_ms", "first_token_delay_ms"):
        if not (_is_int(value) or isinstance(value, float)) or not 0 <= value <= _MAX_DELAY_MS:
            raise ConfigError(f"{key} must be a number in 0..{_MAX_DELAY_MS:g}")
        return float(value)
    if key == "fail_before_first_token":
        if value is not None and (not _is_int(value) or not 400 <= value <= 599):
            raise ConfigError("fail_before_first_token must be an HTTP status in 400..599 or null")
        return value
    if key == "fail_after_chunks":
        if value is not None and (not _is_int(value) or value < 0):
            raise ConfigError("fail_after_chunks must be a non-negative integer or null")
        return value
    if key == "mid_stream_failure":
        if value not in ("drop", "error_event"):
            raise ConfigError('mid_stream_failure must be "drop" or "error_event"')
        return value
    if key == "fail_count":
        if value is not None and (not _is_int(value) or value < 1):
            raise ConfigError("fail_count must be a positive integer or null")
        return value
    raise ConfigError(f"unknown config key: {key}")  # pragma: no cover - guarded by caller


@dataclass(slots=True)
class RequestRecord:
    """One model request as the fake saw it; mutated while its stream runs."""

    id: str
    path: str
    vendor: Vendor
    model: str
    system: str
    messages: list[Any]
    stream: bool
    status: RequestStatus
    chunks_sent: int
    received_at: float
    finished_at: float | None = None

    def finish(self, status: RequestStatus) -> None:
        self.status = status
        self.finished_at = time.time()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": self.path,
            "vendor": self.vendor,
            "model": self.model,
            "system": self.system,
            "messages": self.messages,
            "stream": self.stream,
            "status": self.status,
            "chunks_sent": self.chunks_sent,
            "received_at": self.received_at,
            "finished_at": self.finished_at,
        }


class State:
    """Runtime config plus a bounded history of model requests."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.config = RuntimeConfig.from_settings(settings)
        # A ring buffer: benchmarks send millions of requests and must not grow memory.
        self.requests: deque[RequestRecord] = deque(maxlen=settings.history_size)
        self._ids = itertools.count(1)

    def next_id(self) -> int:
        return next(self._ids)

    def take_config(self) -> RuntimeConfig:
        """The config for one new model request; counts down ``fail_count`` if set."""
        config = self.config
        if config.fails and config.fail_count is not None:
            left = config.fail_count - 1
            self.config = (
                replace(config, fail_count=left)
                if left
                else replace(
                    config, fail_before_first_token=None, fail_after_chunks=None, fail_count=None
                )
            )
        return config

    def reset(self) -> None:
        self.config = RuntimeConfig.from_settings(self.settings)
        self.requests.clear()
