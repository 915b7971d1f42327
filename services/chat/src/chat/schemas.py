"""Request models of the chat service."""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field


class ChatMessage(BaseModel):
    role: Literal["user", "assistant"]
    content: Annotated[str, Field(min_length=1, max_length=32_000)]


def _ordered_messages(value: object) -> object:
    """Accept the seed's `{"0": {...}, "1": {...}}` object as well as a plain list."""
    if isinstance(value, dict):
        try:
            keys = sorted(value, key=int)
        except (TypeError, ValueError) as exc:
            raise ValueError("message keys must be '0', '1', … in order") from exc
        if [int(k) for k in keys] != list(range(len(keys))):
            raise ValueError("message keys must be '0', '1', … without gaps")
        return [value[k] for k in keys]
    return value


class ChatRequest(BaseModel):
    messages: Annotated[
        list[ChatMessage], BeforeValidator(_ordered_messages), Field(min_length=1, max_length=200)
    ] = Field(description='An object keyed "0", "1", … in order, or a JSON list')
    thread_id: Annotated[str, Field(max_length=64)] | None = None
    provider: Annotated[str, Field(max_length=64)] | None = None
    agent_id: Annotated[str, Field(max_length=64)] | None = None


class ThreadOut(BaseModel):
    id: str
    user_id: str
    module_id: str
    created_at: datetime
    updated_at: datetime


class TranscriptMessage(BaseModel):
    role: str
    content: str
    created_at: datetime
    usage: dict[str, Any] | None = None


class Transcript(ThreadOut):
    messages: list[TranscriptMessage]
