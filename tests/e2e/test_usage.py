"""Usage events are never lost, counted once, and reported to managers."""

import asyncio
import time
import uuid
from typing import Any

import aio_pika
import httpx
import pytest
from common.events import ChatUsageRecorded
from devstack.testing import Account, Accounts, Stack, StreamedTurn, create_module, stream_chat


async def my_usage(client: httpx.AsyncClient, who: Account, turns: int, wait_s: float = 20) -> Any:
    """Poll /usage/me until `turns` turns are counted (the consumer is asynchronous)."""
    deadline = time.monotonic() + wait_s
    while True:
        r = await client.get("/usage/me", params={"group_by": "provider"}, headers=who.headers)
        assert r.status_code == 200, r.text
        body = r.json()
        if body["totals"]["turns"] >= turns or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.2)


def total(turns: list[StreamedTurn], field: str) -> int:
    return sum(t.of("done")[0]["usage"][field] for t in turns)


async def test_summary_totals_equal_what_the_streams_reported(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    manager = await accounts.create(5, "mgr")
    trainee = await accounts.create(1, "trainee")
    module_id = await create_module(client, manager)
    turns = []
    for provider in ("openai", "anthropic", "openai-35-general"):
        body = {
            "messages": [{"role": "user", "content": f"Hi via {provider}"}],
            "agent_id": module_id,
            "provider": provider,
        }
        turns.append(await stream_chat(client, trainee.token, body))
    mine = await my_usage(client, trainee, 3)
    assert mine["totals"]["turns"] == 3
    assert mine["totals"]["input_tokens"] == total(turns, "input_tokens")
    assert mine["totals"]["output_tokens"] == total(turns, "output_tokens")
    assert mine["totals"]["completed"] == 3
    assert {g["key"] for g in mine["groups"]} == {"openai", "anthropic", "openai-35-general"}
    # a manager sees the same numbers for that user, and per module and per day
    for group_by, key in (("user", trainee.id), ("module", module_id)):
        r = await client.get(
            "/usage/summary", params={"group_by": group_by}, headers=manager.headers
        )
        row = next(g for g in r.json()["groups"] if g["key"] == key)
        assert (row["turns"], row["input_tokens"], row["output_tokens"]) == (
            3,
            total(turns, "input_tokens"),
            total(turns, "output_tokens"),
        )
    today = time.strftime("%Y-%m-%d", time.gmtime())
    r = await client.get(
        "/usage/summary",
        params={"group_by": "day", "from": today, "to": today},
        headers=manager.headers,
    )
    assert [g["key"] for g in r.json()["groups"]] == [today]


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"group_by": "colour"}, 400),
        ({"from": "2026-02-30"}, 400),
        ({"from": "2026-05-02", "to": "2026-05-01"}, 400),
        ({"from": "2020-01-01", "to": "2026-01-01"}, 400),
        ({"from": "2026-05-01", "to": "2026-05-01", "group_by": "day"}, 200),
    ],
)
async def test_summary_validation(
    client: httpx.AsyncClient, admin_token: str, params: dict[str, str], status: int
) -> None:
    r = await client.get(
        "/usage/summary", params=params, headers={"authorization": f"Bearer {admin_token}"}
    )
    assert r.status_code == status, r.text


async def test_trainees_see_only_their_own_usage(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    trainee = await accounts.create(1)
    assert (await client.get("/usage/summary", headers=trainee.headers)).status_code == 403
    r = await client.get("/usage/me", headers=trainee.headers)
    assert r.status_code == 200 and r.json()["totals"]["turns"] == 0


async def publish(stack: Stack, routing_key: str, body: bytes) -> None:
    connection = await aio_pika.connect(stack.rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(stack.events_exchange)
        await exchange.publish(aio_pika.Message(body, delivery_mode=2), routing_key=routing_key)


async def test_the_same_event_twice_counts_once(
    client: httpx.AsyncClient, admin_token: str, stack: Stack
) -> None:
    user_id = f"dup-{uuid.uuid4().hex}"
    event = ChatUsageRecorded(
        user_id=user_id,
        module_id="m",
        thread_id="t",
        provider="openai",
        vendor="openai",
        model="gpt-4o",
        input_tokens=7,
        output_tokens=5,
        ttft_ms=1.0,
        latency_ms=2.0,
        status="completed",
    )
    for _ in range(2):
        await publish(stack, event.routing_key, event.model_dump_json().encode())
    later = event.model_copy(update={"event_id": uuid.uuid4().hex})
    await publish(stack, later.routing_key, later.model_dump_json().encode())
    admin = {"authorization": f"Bearer {admin_token}"}
    deadline = time.monotonic() + 20
    row: dict[str, Any] = {}
    while time.monotonic() < deadline:
        r = await client.get("/usage/summary", params={"group_by": "user"}, headers=admin)
        row = next((g for g in r.json()["groups"] if g["key"] == user_id), {})
        if row.get("turns", 0) >= 2:
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(0.5)  # give a wrongly double-counted copy time to show up
    r = await client.get("/usage/summary", params={"group_by": "user"}, headers=admin)
    row = next(g for g in r.json()["groups"] if g["key"] == user_id)
    assert (row["turns"], row["input_tokens"]) == (2, 14)


async def test_a_malformed_message_ends_in_the_dead_letter_queue(stack: Stack) -> None:
    async def dead_letters() -> int:
        connection = await aio_pika.connect(stack.rabbitmq_url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue("usage.chat-turns.dead", passive=True)
            return int(queue.declaration_result.message_count or 0)

    before = await dead_letters()
    await publish(stack, ChatUsageRecorded.routing_key, b'{"user_id": "only half an event"')
    await publish(stack, ChatUsageRecorded.routing_key, b'{"event_id": "x", "user_id": 1}')
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if await dead_letters() >= before + 2:
            break
        await asyncio.sleep(0.2)
    assert await dead_letters() == before + 2


async def test_no_turn_is_lost_while_rabbitmq_is_down(
    client: httpx.AsyncClient, accounts: Accounts, stack: Stack
) -> None:
    manager = await accounts.create(5, "mgr")
    trainee = await accounts.create(1, "outage")
    module_id = await create_module(client, manager)
    body = {"messages": [{"role": "user", "content": "Hello?"}], "agent_id": module_id}
    turns = [await stream_chat(client, trainee.token, body) for _ in range(3)]
    await stack.rabbitmq("stop_app")
    try:
        # chat keeps working; its readiness says what it cannot reach
        for _ in range(3):
            turn = await stream_chat(client, trainee.token, body)
            assert turn.status == 200 and turn.of("done"), turn.events
            turns.append(turn)
        async with httpx.AsyncClient(base_url=stack.service("chat")) as chat:
            ready = await chat.get("/readyz")
            assert ready.status_code == 503 and "rabbitmq" in ready.json()["detail"]
    finally:
        await stack.rabbitmq("start_app")
    mine = await my_usage(client, trainee, 6, wait_s=60)
    assert mine["totals"]["turns"] == 6
    assert mine["totals"]["output_tokens"] == total(turns, "output_tokens")
    async with httpx.AsyncClient(base_url=stack.service("chat")) as chat:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if (await chat.get("/readyz")).status_code == 200:
                break
            await asyncio.sleep(0.2)
        assert (await chat.get("/readyz")).json()["checks"]["rabbitmq"] == "ok"
