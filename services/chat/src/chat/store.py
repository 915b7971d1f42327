"""The only code that speaks PyMongo for the chat service: threads and their messages."""

import uuid
from datetime import datetime
from typing import Any

from common.events import utcnow
from pydantic import BaseModel
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient


class ThreadRecord(BaseModel):
    id: str
    user_id: str
    module_id: str
    created_at: datetime
    updated_at: datetime


class TurnRecord(BaseModel):
    """What one chat turn leaves behind: the trainee's message, the reply and its usage."""

    thread_id: str
    user_content: str
    assistant_content: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    finish_reason: str | None
    status: str


def _thread(doc: dict[str, Any]) -> ThreadRecord:
    return ThreadRecord(id=doc["_id"], **{k: v for k, v in doc.items() if k != "_id"})


class ChatStore:
    def __init__(self, client: AsyncMongoClient[dict[str, Any]], db_name: str):
        db = client[db_name]
        self._threads = db["threads"]
        self._messages = db["messages"]

    async def ensure_indexes(self) -> None:
        await self._threads.create_index([("user_id", ASCENDING), ("updated_at", DESCENDING)])
        await self._messages.create_index([("thread_id", ASCENDING), ("created_at", ASCENDING)])

    async def create_thread(self, *, user_id: str, module_id: str) -> ThreadRecord:
        now = utcnow()
        doc = {
            "_id": uuid.uuid4().hex,
            "user_id": user_id,
            "module_id": module_id,
            "created_at": now,
            "updated_at": now,
        }
        await self._threads.insert_one(doc)
        return _thread(doc)

    async def thread_of(self, thread_id: str, user_id: str) -> ThreadRecord | None:
        """The thread, only if it belongs to this user."""
        doc = await self._threads.find_one({"_id": thread_id, "user_id": user_id})
        return _thread(doc) if doc else None

    async def record_turn(self, turn: TurnRecord) -> None:
        now = utcnow()
        usage = {
            "provider": turn.provider,
            "model": turn.model,
            "input_tokens": turn.input_tokens,
            "output_tokens": turn.output_tokens,
            "finish_reason": turn.finish_reason,
            "status": turn.status,
        }
        # One insert for both messages: the pair is written together or not at all.
        await self._messages.insert_many(
            [
                {
                    "thread_id": turn.thread_id,
                    "role": "user",
                    "content": turn.user_content,
                    "created_at": now,
                },
                {
                    "thread_id": turn.thread_id,
                    "role": "assistant",
                    "content": turn.assistant_content,
                    "created_at": now,
                    "usage": usage,
                },
            ],
            ordered=True,
        )
        await self._threads.update_one({"_id": turn.thread_id}, {"$set": {"updated_at": now}})
