"""The async MongoDB client (PyMongo's native async API)."""

from typing import Any

from pymongo import AsyncMongoClient

from common.settings import ServiceSettings


def create_mongo_client(settings: ServiceSettings) -> AsyncMongoClient[dict[str, Any]]:
    return AsyncMongoClient(
        settings.mongodb_url,
        serverSelectionTimeoutMS=settings.mongodb_timeout_ms,
        tz_aware=True,
        uuidRepresentation="standard",
        appname=settings.service_name,
    )
