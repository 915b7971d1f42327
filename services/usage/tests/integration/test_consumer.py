"""The usage consumer against the real broker and database, in a queue and database of the
test's own: a consumer that is stopped while events are published loses none of them."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from common.bus import EventBus
from common.events import ChatUsageRecorded
from devstack.testing import Stack
from pymongo import AsyncMongoClient
from usage.service import UsageService
from usage.store import UsageStore


def event(user_id: str, tokens: int) -> ChatUsageRecorded:
    return ChatUsageRecorded(
        user_id=user_id,
        module_id="m",
        thread_id="t",
        provider="anthropic",
        vendor="anthropic",
        model="claude",
        input_tokens=tokens,
        output_tokens=1,
        ttft_ms=None,
        latency_ms=1.0,
        status="cancelled",
    )


@pytest.fixture
async def store(stack: Stack) -> AsyncIterator[UsageStore]:
    client: AsyncMongoClient = AsyncMongoClient(stack.mongodb_url, tz_aware=True)
    db = f"usage_test_{uuid.uuid4().hex[:8]}"
    store = UsageStore(client, db)
    await store.ensure_indexes()
    yield store
    await client.drop_database(db)
    await client.close()


async def test_events_published_while_the_consumer_is_down_are_all_stored(
    stack: Stack, store: UsageStore
) -> None:
    queue = f"usage.test-{uuid.uuid4().hex[:8]}"
    user = uuid.uuid4().hex
    consumer = EventBus(stack.rabbitmq_url, stack.events_exchange)
    await consumer.connect(wait_s=10)
    await consumer.consume(queue, [ChatUsageRecorded.routing_key], UsageService(store).handle)
    await consumer.close()  # the consumer stops; its durable queue stays

    publisher = EventBus(stack.rabbitmq_url, stack.events_exchange)
    await publisher.connect(wait_s=10)
    events = [event(user, n) for n in range(1, 6)]
    for e in events:
        await publisher.publish(e)
    await publisher.publish(events[0])  # a redelivery as well
    await publisher.close()

    restarted = EventBus(stack.rabbitmq_url, stack.events_exchange)
    await restarted.connect(wait_s=10)
    await restarted.consume(queue, [ChatUsageRecorded.routing_key], UsageService(store).handle)
    try:
        deadline = time.monotonic() + 20
        rows: list = []
        while time.monotonic() < deadline:
            rows = await store.summarize(
                start=events[0].occurred_at.replace(year=2000),
                end=events[0].occurred_at.replace(year=2100),
                group_by="user",
                user_id=user,
            )
            if rows and rows[0]["turns"] >= 5:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)
        rows = await store.summarize(
            start=events[0].occurred_at.replace(year=2000),
            end=events[0].occurred_at.replace(year=2100),
            group_by="user",
            user_id=user,
        )
        assert rows == [
            {
                "_id": user,
                "turns": 5,
                "input_tokens": 15,
                "output_tokens": 5,
                "completed": 0,
                "failed": 0,
                "cancelled": 5,
            }
        ]
    finally:
        await restarted.close()
