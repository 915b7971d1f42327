"""The only code that speaks PyMongo for the usage service: one document per chat turn."""

import asyncio
from datetime import datetime
from typing import Any

from common.events import ChatUsageRecorded
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.errors import DuplicateKeyError

# Per-status counters are stored as 0/1 so that a report is a plain $sum.
STATUSES = ("completed", "failed", "cancelled")
GROUP_FIELDS = {"user": "user_id", "module": "module_id", "provider": "provider", "day": "day"}


class UsageStore:
    def __init__(self, client: AsyncMongoClient[dict[str, Any]], db_name: str):
        self._turns = client[db_name]["turns"]

    async def ensure_indexes(self) -> None:
        await self._turns.create_index([("occurred_at", ASCENDING)])
        await self._turns.create_index([("user_id", ASCENDING), ("occurred_at", ASCENDING)])

    async def record(self, event: ChatUsageRecorded) -> bool:
        """Store a turn once: the event id is the document id. False for a duplicate."""
        doc = event.model_dump(exclude={"event_id", "version"})
        doc.update(
            _id=event.event_id,
            schema_version=event.version,
            day=event.occurred_at.date().isoformat(),
            **{status: int(event.status == status) for status in STATUSES},
        )
        try:
            await self._turns.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def summarize(
        self, *, start: datetime, end: datetime, group_by: str, user_id: str | None
    ) -> list[dict[str, Any]]:
        match: dict[str, Any] = {"occurred_at": {"$gte": start, "$lt": end}}
        if user_id is not None:
            match["user_id"] = user_id
        # One $sum per pipeline: FerretDB 1.24 computes only the first accumulator of a
        # $group correctly (the others come back 0), so each metric is its own query.
        metrics = {"turns": 1, "input_tokens": "$input_tokens", "output_tokens": "$output_tokens"}
        metrics.update({status: f"${status}" for status in STATUSES})
        key = f"${GROUP_FIELDS[group_by]}"

        async def one(name: str, value: Any) -> list[dict[str, Any]]:
            pipeline = [{"$match": match}, {"$group": {"_id": key, name: {"$sum": value}}}]
            return [row async for row in await self._turns.aggregate(pipeline)]

        results = await asyncio.gather(*(one(name, value) for name, value in metrics.items()))
        rows: dict[Any, dict[str, Any]] = {}
        for result in results:
            for row in result:
                rows.setdefault(row["_id"], {"_id": row["_id"]}).update(row)
        return [rows[k] for k in sorted(rows, key=str)]
