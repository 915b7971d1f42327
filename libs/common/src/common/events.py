"""Every event that crosses a service boundary: this file is the contract between services."""

import uuid
from datetime import UTC, datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from common.context import request_id


def utcnow() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """Base of all events: frozen, uniquely identified, versioned, with a routing key."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    routing_key: ClassVar[str]

    event_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    occurred_at: datetime = Field(default_factory=utcnow)
    version: int = 1
    # The request that caused the event, so one chat turn can be followed across processes.
    request_id: str | None = Field(default_factory=request_id.get)


TurnStatus = Literal["completed", "cancelled", "failed"]


class ChatUsageRecorded(Event):
    """One chat turn's cost: published by chat for every turn, whatever its outcome."""

    routing_key: ClassVar[str] = "chat.usage.recorded"

    user_id: str
    module_id: str
    thread_id: str
    provider: str
    vendor: str
    model: str
    input_tokens: int
    output_tokens: int
    ttft_ms: float | None
    latency_ms: float
    status: TurnStatus


class UserUpdated(Event):
    """A user's level or profile changed (sign-up included)."""

    routing_key: ClassVar[str] = "auth.user.updated"

    user_id: str
    email: str
    access_level: int


class UserDeleted(Event):
    """A user was soft-deleted (level 0); their data is kept."""

    routing_key: ClassVar[str] = "auth.user.deleted"

    user_id: str
    email: str


class ModuleUpdated(Event):
    """A training module was created or changed; its cached system prompt is stale."""

    routing_key: ClassVar[str] = "modules.module.updated"

    module_id: str
    changed: list[str]


class ModuleDeleted(Event):
    """A training module was soft-deleted; it can no longer be chatted with."""

    routing_key: ClassVar[str] = "modules.module.deleted"

    module_id: str
