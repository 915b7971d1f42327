"""The only code that speaks PyMongo for the modules service."""

import re
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from common.events import utcnow
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, ReturnDocument

from modules.schemas import ModuleOut


def _module(doc: dict[str, Any]) -> ModuleOut:
    return ModuleOut(id=str(doc["_id"]), **{k: v for k, v in doc.items() if k != "_id"})


def _oid(module_id: str) -> ObjectId | None:
    try:
        return ObjectId(module_id)
    except (InvalidId, TypeError):
        return None


class ModulesStore:
    def __init__(self, client: AsyncMongoClient[dict[str, Any]], db_name: str):
        self._modules = client[db_name]["modules"]

    async def ensure_indexes(self) -> None:
        await self._modules.create_index([("created_at", DESCENDING)])

    async def create(self, *, title: str, system_prompt: str, author: str) -> ModuleOut:
        now = utcnow()
        doc: dict[str, Any] = {
            "title": title,
            "system_prompt": system_prompt,
            "created_by": author,
            "updated_by": author,
            "created_at": now,
            "updated_at": now,
            "deleted_at": None,
        }
        result = await self._modules.insert_one(doc)
        doc["_id"] = result.inserted_id
        return _module(doc)

    async def get(self, module_id: str) -> ModuleOut | None:
        oid = _oid(module_id)
        doc = await self._modules.find_one({"_id": oid}) if oid else None
        return _module(doc) if doc else None

    async def update_live(
        self, module_id: str, fields: dict[str, Any], author: str
    ) -> ModuleOut | None:
        """Set `fields` on a module that is not deleted; None if there is no such module."""
        oid = _oid(module_id)
        if oid is None:
            return None
        doc = await self._modules.find_one_and_update(
            {"_id": oid, "deleted_at": None},
            {"$set": {**fields, "updated_by": author, "updated_at": utcnow()}},
            return_document=ReturnDocument.AFTER,
        )
        return _module(doc) if doc else None

    async def list(
        self, *, include_deleted: bool, search: str | None, skip: int, limit: int
    ) -> tuple[list[ModuleOut], int]:
        query: dict[str, Any] = {}
        if not include_deleted:
            query["deleted_at"] = None
        if search:
            query["title"] = {"$regex": re.escape(search), "$options": "i"}
        total = await self._modules.count_documents(query)
        cursor = (
            self._modules.find(query)
            .sort([("created_at", DESCENDING), ("_id", ASCENDING)])
            .skip(skip)
            .limit(limit)
        )
        return [_module(doc) async for doc in cursor], total
