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

    user_content: str
    assistant_content: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    finish_reason: str | None
    status: str


class MessageRecord(BaseModel):
    role: str
    content: str
    created_at: datetime
    usage: dict[str, Any] | None = None


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

    @staticmethod
    def new_thread(*, user_id: str, module_id: str) -> ThreadRecord:
        """A thread that is written with its first turn (`record_turn`), off the hot path."""
        now = utcnow()
        return ThreadRecord(
            id=uuid.uuid4().hex,
            user_id=user_id,
            module_id=module_id,
            created_at=now,
            updated_at=now,
        )

    async def thread_of(self, thread_id: str, user_id: str | None) -> ThreadRecord | None:
        """The thread; with `user_id`, only if it belongs to that user."""
        query: dict[str, Any] = {"_id": thread_id}
        if user_id is not None:
            query["user_id"] = user_id
        doc = await self._threads.find_one(query)
        return _thread(doc) if doc else None

    async def list_threads(
        self, *, user_id: str | None, module_id: str | None, skip: int, limit: int
    ) -> tuple[list[ThreadRecord], int]:
        query = {k: v for k, v in (("user_id", user_id), ("module_id", module_id)) if v is not None}
        total = await self._threads.count_documents(query)
        cursor = (
            self._threads.find(query)
            .sort([("updated_at", DESCENDING), ("_id", ASCENDING)])
            .skip(skip)
            .limit(limit)
        )
        return [_thread(doc) async for doc in cursor], total

    async def messages(self, thread_id: str) -> list[MessageRecord]:
        cursor = self._messages.find({"thread_id": thread_id}).sort(
            [("created_at", ASCENDING), ("seq", ASCENDING)]
        )
        return [
            MessageRecord(
                role=doc["role"],
                content=doc["content"],
                created_at=doc["created_at"],
                usage=doc.get("usage"),
            )
            async for doc in cursor
        ]

    async def record_turn(self, thread: ThreadRecord, turn: TurnRecord) -> None:
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
                    "thread_id": thread.id,
                    "seq": 0,
                    "role": "user",
                    "content": turn.user_content,
                    "created_at": now,
                },
                {
                    "thread_id": thread.id,
                    "seq": 1,
                    "role": "assistant",
                    "content": turn.assistant_content,
                    "created_at": now,
                    "usage": usage,
                },
            ],
            ordered=True,
        )
        # Creates the thread on its first turn, touches it on the next ones: one write.
        await self._threads.update_one(
            {"_id": thread.id},
            {
                "$set": {"updated_at": now},
                "$setOnInsert": {
                    "user_id": thread.user_id,
                    "module_id": thread.module_id,
                    "created_at": thread.created_at,
                },
            },
            upsert=True,
        )
