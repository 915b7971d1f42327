"""Events are never lost: each is either confirmed by the broker or, when the broker is away
or does not confirm, written to the service's own `outbox` collection; a relay publishes
what is stored there once the broker is back.

Delivery is at least once (a crash between the broker's confirm and the delete sends an
event again), so consumers are idempotent on `event_id`.
"""

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import Any

from prometheus_client import Gauge
from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument

from common.bus import EventBus
from common.events import Event, utcnow

log = logging.getLogger(__name__)

DEPTH = Gauge("outbox_depth", "Events stored and not yet confirmed by the broker")


class Outbox:
    def __init__(
        self,
        client: AsyncMongoClient[dict[str, Any]],
        db_name: str,
        bus: EventBus,
        *,
        claim_s: float = 10.0,
        relay_interval_s: float = 1.0,
    ):
        self._outbox = client[db_name]["outbox"]
        self._bus = bus
        self._claim = timedelta(seconds=claim_s)
        self._interval = relay_interval_s
        self._relay: asyncio.Task[None] | None = None

    async def ensure_indexes(self) -> None:
        await self._outbox.create_index([("next_attempt_at", ASCENDING)])

    async def publish(self, event: Event) -> None:
        """When this returns, the event is durable: confirmed by the broker (persistent
        message) or stored in the outbox. Only if both are down is it logged as lost."""
        body = event.model_dump_json()
        if self._bus.connected:
            try:
                await self._bus.publish_raw(event.routing_key, body.encode(), event.event_id)
                return
            except Exception as exc:
                log.warning("event %s goes to the outbox: %s", event.event_id, exc)
        try:
            await self._outbox.insert_one(
                {
                    "_id": event.event_id,
                    "routing_key": event.routing_key,
                    "body": body,
                    "created_at": utcnow(),
                    "next_attempt_at": utcnow(),
                    "attempts": 0,
                }
            )
        except Exception:
            # Reported with its whole body, so it can be replayed by hand.
            log.exception("EVENT LOST %s %s: %s", event.routing_key, event.event_id, body)

    async def _deliver(self, event_id: str, routing_key: str, body: str) -> bool:
        try:
            await self._bus.publish_raw(routing_key, body.encode(), event_id)
        except Exception as exc:
            log.warning("event %s stays in the outbox: %s", event_id, exc)
            return False
        await self._outbox.delete_one({"_id": event_id})
        return True

    async def relay_once(self) -> int:
        """Publish every due event; returns how many were delivered."""
        delivered = 0
        while self._bus.connected:
            now = utcnow()
            doc = await self._outbox.find_one_and_update(
                {"next_attempt_at": {"$lte": now}},
                {"$set": {"next_attempt_at": now + self._claim}, "$inc": {"attempts": 1}},
                sort=[("next_attempt_at", ASCENDING)],
                return_document=ReturnDocument.AFTER,
            )
            if doc is None:
                break
            if not await self._deliver(doc["_id"], doc["routing_key"], doc["body"]):
                break
            delivered += 1
        return delivered

    async def depth(self) -> int:
        return await self._outbox.count_documents({})

    def start(self) -> None:
        self._relay = asyncio.create_task(self._relay_forever())

    async def _relay_forever(self) -> None:
        rounds = 0
        while True:
            try:
                delivered = await self.relay_once()
                if delivered:
                    log.info("relayed %d events from the outbox", delivered)
                if rounds % 5 == 0 or delivered:
                    DEPTH.set(await self.depth())
            except Exception as exc:
                log.warning("outbox relay: %s", exc)
            rounds += 1
            await asyncio.sleep(self._interval)

    async def stop(self, flush_s: float = 5.0) -> None:
        """Flush what is due (bounded in time); the rest stays stored for the next start."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.relay_once(), flush_s)
        if self._relay is not None:
            self._relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay
