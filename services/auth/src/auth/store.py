"""The only code that speaks PyMongo for the auth service."""

import re
from datetime import datetime
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from common.access import AccessLevel
from common.events import utcnow
from pydantic import BaseModel
from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from auth.errors import EmailTaken


class UserRecord(BaseModel):
    id: str
    email: str
    first_name: str
    last_name: str
    access_level: AccessLevel
    password_hash: str
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None


class AllowedRecord(BaseModel):
    email: str
    access_level: AccessLevel
    created_at: datetime


def _user(doc: dict[str, Any]) -> UserRecord:
    return UserRecord(id=str(doc["_id"]), **{k: v for k, v in doc.items() if k != "_id"})


def _allowed(doc: dict[str, Any]) -> AllowedRecord:
    return AllowedRecord(
        email=doc["email"], access_level=doc["access_level"], created_at=doc["created_at"]
    )


class AuthStore:
    def __init__(self, client: AsyncMongoClient[dict[str, Any]], db_name: str):
        self._db: AsyncDatabase[dict[str, Any]] = client[db_name]
        self._users = self._db["users"]
        self._allowed = self._db["allowed_users"]

    async def ensure_indexes(self) -> None:
        # Emails are stored normalized (trimmed, lower-case), so a plain unique index
        # gives case-insensitive uniqueness without collations (FerretDB has none).
        await self._users.create_index([("email", ASCENDING)], unique=True)
        await self._allowed.create_index([("email", ASCENDING)], unique=True)

    # users

    async def create_user(
        self,
        *,
        email: str,
        password_hash: str,
        first_name: str,
        last_name: str,
        access_level: AccessLevel,
    ) -> UserRecord:
        now = utcnow()
        doc: dict[str, Any] = {
            "email": email,
            "password_hash": password_hash,
            "first_name": first_name,
            "last_name": last_name,
            "access_level": int(access_level),
            "created_at": now,
            "updated_at": now,
            "deleted_at": None,
        }
        try:
            result = await self._users.insert_one(doc)
        except DuplicateKeyError as exc:
            raise EmailTaken() from exc
        doc["_id"] = result.inserted_id
        return _user(doc)

    async def user_by_email(self, email: str) -> UserRecord | None:
        doc = await self._users.find_one({"email": email})
        return _user(doc) if doc else None

    async def user_by_id(self, user_id: str) -> UserRecord | None:
        try:
            oid = ObjectId(user_id)
        except (InvalidId, TypeError):
            return None
        doc = await self._users.find_one({"_id": oid})
        return _user(doc) if doc else None

    async def level_of(self, user_id: str) -> int | None:
        user = await self.user_by_id(user_id)
        return int(user.access_level) if user else None

    async def update_user(self, user_id: str, **fields: Any) -> UserRecord | None:
        fields["updated_at"] = utcnow()
        doc = await self._users.find_one_and_update(
            {"_id": ObjectId(user_id)}, {"$set": fields}, return_document=ReturnDocument.AFTER
        )
        return _user(doc) if doc else None

    async def set_level(self, user_id: str, level: AccessLevel) -> UserRecord | None:
        """Level 0 is a soft delete (`deleted_at` set); any other level restores."""
        deleted_at = utcnow() if level == AccessLevel.DELETED else None
        return await self.update_user(user_id, access_level=int(level), deleted_at=deleted_at)

    async def count_active_admins(self, *, excluding: str) -> int:
        return await self._users.count_documents(
            {"access_level": int(AccessLevel.ADMIN), "_id": {"$ne": ObjectId(excluding)}}
        )

    async def list_users(
        self, *, status: str, search: str | None, skip: int, limit: int
    ) -> tuple[list[UserRecord], int]:
        query: dict[str, Any] = {}
        if status == "active":
            query["access_level"] = {"$gt": int(AccessLevel.DELETED)}
        elif status == "deleted":
            query["access_level"] = int(AccessLevel.DELETED)
        if search:
            query["email"] = {"$regex": re.escape(search.strip().lower())}
        total = await self._users.count_documents(query)
        cursor = self._users.find(query).sort("email", ASCENDING).skip(skip).limit(limit)
        return [_user(doc) async for doc in cursor], total

    # allowlist

    async def allow(self, email: str, level: AccessLevel) -> bool:
        """Add to the allowlist; False if the email was already there."""
        try:
            await self._allowed.insert_one(
                {"email": email, "access_level": int(level), "created_at": utcnow()}
            )
        except DuplicateKeyError:
            return False
        return True

    async def allowed_entry(self, email: str) -> AllowedRecord | None:
        doc = await self._allowed.find_one({"email": email})
        return _allowed(doc) if doc else None

    async def update_allowed_level(self, email: str, level: AccessLevel) -> AllowedRecord | None:
        doc = await self._allowed.find_one_and_update(
            {"email": email},
            {"$set": {"access_level": int(level)}},
            return_document=ReturnDocument.AFTER,
        )
        return _allowed(doc) if doc else None

    async def remove_allowed(self, email: str) -> bool:
        return (await self._allowed.delete_one({"email": email})).deleted_count == 1

    async def upsert_allowed(self, email: str, level: AccessLevel) -> None:
        await self._allowed.update_one(
            {"email": email},
            {"$set": {"access_level": int(level)}, "$setOnInsert": {"created_at": utcnow()}},
            upsert=True,
        )

    async def list_allowed(
        self, *, search: str | None, skip: int, limit: int
    ) -> tuple[list[AllowedRecord], int]:
        query: dict[str, Any] = {}
        if search:
            # Literal substring: the user's text is escaped, never a pattern.
            query["email"] = {"$regex": re.escape(search.strip().lower())}
        total = await self._allowed.count_documents(query)
        cursor = self._allowed.find(query).sort("email", ASCENDING).skip(skip).limit(limit)
        return [_allowed(doc) async for doc in cursor], total
