"""Training modules and streaming chat against the real stack and the fake upstream."""

import asyncio
import time
from typing import Any

import httpx
import pytest
from common.sse import SSEParser
from devstack.testing import Account, Accounts, TakeEvents, create_module, stream_chat

ALIASES = {
    "openai": ("openai", "gpt-4o"),
    "openai-4-general": ("openai", "gpt-4o"),
    "openai-35-fine-tune": ("openai", "ft:gpt-3.5-turbo-0125:call-center::training-persona"),
    "openai-35-general": ("openai", "gpt-4o-mini"),
    "anthropic": ("anthropic", "claude-sonnet-4-5"),
}


def say(text: str = "Hello, how can I help?") -> dict[str, Any]:
    return {"0": {"role": "user", "content": text}}


PAT = "You are Pat, an impatient customer whose internet has been down for two days."  # the default


@pytest.fixture
async def manager(accounts: Accounts) -> Account:
    return await accounts.create(5, "manager")


@pytest.fixture
async def trainee(accounts: Accounts) -> Account:
    return await accounts.create(1, "trainee")


# --- modules ------------------------------------------------------------------------------


async def test_module_crud_records_authors_and_returns_changed_fields(
    client: httpx.AsyncClient, manager: Account, trainee: Account, accounts: Accounts
) -> None:
    module_id = await create_module(client, manager)
    other = await accounts.create(5, "editor")
    r = await client.put(
        f"/module/{module_id}",
        json={
            "title": "Outage, day two",
            "system_prompt": PAT,
        },
        headers=other.headers,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == module_id and body["title"] == "Outage, day two"
    assert "system_prompt" not in body  # unchanged value: not reported
    assert body["updated_by"] == other.id
    r = await client.get(f"/module/{module_id}", headers=trainee.headers)
    m = r.json()
    assert (m["created_by"], m["updated_by"]) == (manager.id, other.id)
    assert m["updated_at"] > m["created_at"]
    # a no-op update changes nothing
    r = await client.put(
        f"/module/{module_id}", json={"title": "Outage, day two"}, headers=manager.headers
    )
    assert r.json() == {"id": module_id}
    # soft delete: gone for trainees, visible to managers with filter_deleted
    assert (await client.delete(f"/module/{module_id}", headers=manager.headers)).status_code == 200
    assert (await client.get(f"/module/{module_id}", headers=trainee.headers)).status_code == 404
    assert (await client.delete(f"/module/{module_id}", headers=manager.headers)).status_code == 404
    r = await client.get(
        "/module/list",
        params={"filter_deleted": "true", "page_size": 100, "search": "Outage, day two"},
        headers=manager.headers,
    )
    assert module_id in [i["id"] for i in r.json()["items"]]
    r = await client.get(
        "/module/list",
        params={"search": "Outage, day two", "page_size": 100},
        headers=trainee.headers,
    )
    assert module_id not in [i["id"] for i in r.json()["items"]]
    r = await client.get("/module/list", params={"filter_deleted": "true"}, headers=trainee.headers)
    assert r.status_code == 403


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/module/create", {"title": "", "system_prompt": "p"}, 400),
        ("POST", "/module/create", {"title": "   ", "system_prompt": "p"}, 400),
        ("POST", "/module/create", {"title": "t" * 201, "system_prompt": "p"}, 400),
        ("POST", "/module/create", {"title": "t", "system_prompt": "p" * 32_001}, 400),
        ("POST", "/module/create", {"title": "t"}, 400),
        ("PUT", "/module/{id}", {}, 400),
        ("PUT", "/module/{id}", {"title": None}, 400),
        ("PUT", "/module/{id}", {"system_prompt": " "}, 400),
        ("PUT", "/module/{id}", {"colour": "red"}, 400),
        ("PUT", "/module/ffffffffffffffffffffffff", {"title": "x"}, 404),
        ("PUT", "/module/not-an-id", {"title": "x"}, 404),
        ("GET", "/module/not-an-id", None, 404),
        ("DELETE", "/module/ffffffffffffffffffffffff", None, 404),
    ],
)
async def test_module_bad_input(
    client: httpx.AsyncClient, manager: Account, method: str, path: str, body: Any, status: int
) -> None:
    module_id = await create_module(client, manager)
    r = await client.request(
        method, path.replace("{id}", module_id), json=body, headers=manager.headers
    )
    assert r.status_code == status, r.text
    assert isinstance(r.json()["detail"], str)


async def test_module_search_is_literal_and_case_insensitive(
    client: httpx.AsyncClient, manager: Account
) -> None:
    r = await client.post(
        "/module/create",
        json={"title": "Refund (URGENT) [v2]", "system_prompt": "p"},
        headers=manager.headers,
    )
    module_id = r.json()["id"]
    r = await client.get("/module/list", params={"search": "(urgent) [V2"}, headers=manager.headers)
    assert module_id in [i["id"] for i in r.json()["items"]]
    r = await client.get("/module/list", params={"search": "(.*)"}, headers=manager.headers)
    assert r.json()["total"] == 0


# --- chat -----------------------------------------------------------------------------------


@pytest.mark.parametrize("alias", list(ALIASES))
async def test_every_provider_alias_streams_through_its_sdk(
    client: httpx.AsyncClient,
    fake: httpx.AsyncClient,
    manager: Account,
    trainee: Account,
    alias: str,
) -> None:
    module_id = await create_module(client, manager)
    turn = await stream_chat(
        client, trainee.token, {"messages": say(), "agent_id": module_id, "provider": alias}
    )
    assert turn.status == 200, turn.events
    vendor, model = ALIASES[alias]
    assert turn.of("thread")[0]["provider"] == alias
    assert turn.of("done")[0]["model"] == model
    assert turn.of("done")[0]["usage"]["output_tokens"] == 20
    seen = (await fake.get("/_fake/requests")).json()["requests"][-1]
    assert (seen["vendor"], seen["model"]) == (vendor, model)
    assert seen["system"].startswith("You are Pat")


async def test_list_messages_and_default_provider(
    client: httpx.AsyncClient, fake: httpx.AsyncClient, manager: Account, trainee: Account
) -> None:
    module_id = await create_module(client, manager)
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "What?"},
        {"role": "user", "content": "Let me help."},
    ]
    turn = await stream_chat(client, trainee.token, {"messages": messages, "agent_id": module_id})
    assert turn.status == 200 and turn.of("thread")[0]["provider"] == "openai"
    seen = (await fake.get("/_fake/requests")).json()["requests"][-1]
    assert [m["content"] for m in seen["messages"]][1:] == ["Hi", "What?", "Let me help."]


async def test_chat_bad_requests(
    client: httpx.AsyncClient, manager: Account, trainee: Account, accounts: Accounts
) -> None:
    module_id = await create_module(client, manager)
    gone_id = await create_module(client, manager)
    await client.delete(f"/module/{gone_id}", headers=manager.headers)
    ok = await stream_chat(client, trainee.token, {"messages": say(), "agent_id": module_id})
    thread_id = ok.of("thread")[0]["thread_id"]
    stranger = await accounts.create(1, "stranger")
    other_module = await create_module(client, manager)
    cases = [
        ({"messages": say(), "agent_id": module_id, "provider": "nope"}, 400, "Unknown provider"),
        (
            {"messages": {"0": {"role": "system", "content": "x"}}, "agent_id": module_id},
            400,
            "role",
        ),
        ({"messages": say(""), "agent_id": module_id}, 400, "content"),
        ({"messages": {}, "agent_id": module_id}, 400, "messages"),
        (
            {
                "messages": [
                    {"role": "user", "content": "a"},
                    {"role": "assistant", "content": "b"},
                ],
                "agent_id": module_id,
            },
            400,
            "last message",
        ),
        (
            {
                "messages": {
                    "0": {"role": "user", "content": "a"},
                    "5": {"role": "user", "content": "b"},
                },
                "agent_id": module_id,
            },
            400,
            "gaps",
        ),
        ({"messages": say()}, 400, "agent_id"),
        ({"messages": say(), "agent_id": gone_id}, 404, "module"),
        ({"messages": say(), "agent_id": "ffffffffffffffffffffffff"}, 404, "module"),
        ({"messages": say(), "agent_id": "../../etc"}, 404, "module"),
        ({"messages": say(), "thread_id": "nope"}, 404, "Thread"),
        ({"messages": say(), "thread_id": thread_id, "agent_id": other_module}, 400, "another"),
    ]
    for body, status, word in cases:
        turn = await stream_chat(client, trainee.token, body)
        assert turn.status == status, (body, turn.events)
        assert word in turn.events[0].data["detail"], (body, turn.events)
    # someone else's thread is a 404
    turn = await stream_chat(client, stranger.token, {"messages": say(), "thread_id": thread_id})
    assert turn.status == 404
    r = await client.post(
        "/stream_chat",
        content=b'{"messages": ' + b"[" * 10 + b"]" * 10 + b"}",
        headers={**trainee.headers, "content-type": "application/json"},
    )
    assert r.status_code == 400
    big = {"messages": say("x" * 2_000_000), "agent_id": module_id}
    r = await client.post("/stream_chat", json=big, headers=trainee.headers)
    assert r.status_code == 413


async def test_provider_failure_before_first_token_is_an_http_error(
    client: httpx.AsyncClient, fake: httpx.AsyncClient, manager: Account, trainee: Account
) -> None:
    module_id = await create_module(client, manager)
    await fake.post("/_fake/config", json={"fail_before_first_token": 503})
    turn = await stream_chat(client, trainee.token, {"messages": say(), "agent_id": module_id})
    assert turn.status == 502
    assert "status 503" in turn.events[0].data["detail"]
    r = await client.get("/chat/threads", headers=trainee.headers)
    assert r.json()["total"] == 0  # nothing half-made


async def test_fallback_provider_takes_over_before_the_first_token(
    client: httpx.AsyncClient, fake: httpx.AsyncClient, manager: Account, trainee: Account
) -> None:
    module_id = await create_module(client, manager)
    await fake.post("/_fake/config", json={"fail_before_first_token": 500, "fail_count": 1})
    turn = await stream_chat(
        client, trainee.token, {"messages": say(), "agent_id": module_id, "provider": "openai"}
    )
    assert turn.status == 200, turn.events
    assert turn.of("thread")[0]["provider"] == "anthropic"
    assert turn.of("done")[0]["model"] == "claude-sonnet-4-5"


async def test_mid_stream_failure_ends_with_an_error_event(
    client: httpx.AsyncClient,
    fake: httpx.AsyncClient,
    manager: Account,
    trainee: Account,
    usage_events: TakeEvents,
) -> None:
    module_id = await create_module(client, manager)
    for provider in ("openai", "anthropic"):
        await fake.post("/_fake/config", json={"fail_after_chunks": 3})
        turn = await stream_chat(
            client, trainee.token, {"messages": say(), "agent_id": module_id, "provider": provider}
        )
        assert turn.status == 200
        names = [e.event for e in turn.events]
        assert names == ["thread", "delta", "delta", "delta", "error"], (provider, names)
        assert turn.of("error")[0]["detail"]
    events = [e for e in await usage_events(2) if e["user_id"] == trainee.id]
    assert [e["status"] for e in events] == ["failed", "failed"]
    assert all(e["output_tokens"] == 3 for e in events)


async def test_client_disconnect_cancels_upstream_and_bills_the_partial_turn(
    client: httpx.AsyncClient,
    fake: httpx.AsyncClient,
    manager: Account,
    trainee: Account,
    usage_events: TakeEvents,
) -> None:
    module_id = await create_module(client, manager)
    await fake.post("/_fake/config", json={"token_delay_ms": 200, "reply_chunks": 100})
    parser, deltas = SSEParser(), 0
    body = {"messages": say(), "agent_id": module_id}
    async with client.stream("POST", "/stream_chat", json=body, headers=trainee.headers) as r:
        thread_id = r.headers["x-thread-id"]
        async for chunk in r.aiter_raw():
            deltas += sum(1 for e in parser.feed(chunk) if e.event == "delta")
            if deltas >= 2:
                break
    closed_at = time.monotonic()
    status = None
    while time.monotonic() - closed_at < 3:
        status = (await fake.get("/_fake/requests")).json()["requests"][-1]["status"]
        if status == "disconnected":
            break
        await asyncio.sleep(0.05)
    assert status == "disconnected"
    assert time.monotonic() - closed_at < 1.5  # at once, not after the 20 s the reply would take
    events = [e for e in await usage_events(1) if e["thread_id"] == thread_id]
    assert events and events[0]["status"] == "cancelled"
    assert 2 <= events[0]["output_tokens"] < 100 and events[0]["input_tokens"] > 0
    transcript = (await client.get(f"/chat/threads/{thread_id}", headers=trainee.headers)).json()
    assert transcript["messages"][-1]["usage"]["status"] == "cancelled"
    assert transcript["messages"][-1]["content"]


async def test_module_edit_is_used_by_the_very_next_turn(
    client: httpx.AsyncClient, fake: httpx.AsyncClient, manager: Account, trainee: Account
) -> None:
    module_id = await create_module(client, manager, prompt="You are Version One.")
    await stream_chat(client, trainee.token, {"messages": say(), "agent_id": module_id})
    r = await client.put(
        f"/module/{module_id}",
        json={"system_prompt": "You are Version Two."},
        headers=manager.headers,
    )
    assert r.status_code == 200
    turn = await stream_chat(client, trainee.token, {"messages": say(), "agent_id": module_id})
    assert turn.status == 200
    assert (await fake.get("/_fake/requests")).json()["requests"][-1]["system"] == (
        "You are Version Two."
    )
    await client.delete(f"/module/{module_id}", headers=manager.headers)
    turn = await stream_chat(client, trainee.token, {"messages": say(), "agent_id": module_id})
    assert turn.status == 404


async def test_threads_continue_and_stay_private(
    client: httpx.AsyncClient, manager: Account, trainee: Account, accounts: Accounts
) -> None:
    module_id = await create_module(client, manager)
    first = await stream_chat(
        client, trainee.token, {"messages": say("Turn one"), "agent_id": module_id}
    )
    thread_id = first.of("thread")[0]["thread_id"]
    history = {
        "0": {"role": "user", "content": "Turn one"},
        "1": {"role": "assistant", "content": first.text},
        "2": {"role": "user", "content": "Turn two"},
    }
    second = await stream_chat(client, trainee.token, {"messages": history, "thread_id": thread_id})
    assert second.of("thread")[0]["thread_id"] == thread_id
    r = await client.get(f"/chat/threads/{thread_id}", headers=trainee.headers)
    transcript = r.json()
    assert [m["content"] for m in transcript["messages"]] == [
        "Turn one",
        first.text,
        "Turn two",
        second.text,
    ]
    assert transcript["messages"][1]["usage"]["output_tokens"] == 20
    threads = (await client.get("/chat/threads", headers=trainee.headers)).json()
    assert [t["id"] for t in threads["items"]] == [thread_id] and threads["total"] == 1
    stranger = await accounts.create(1, "nosy")
    assert (
        await client.get(f"/chat/threads/{thread_id}", headers=stranger.headers)
    ).status_code == 404
    r = await client.get("/chat/threads", params={"user_id": trainee.id}, headers=stranger.headers)
    assert r.status_code == 403
    assert (await client.get("/chat/threads", headers=stranger.headers)).json()["total"] == 0
    # managers review sessions: by user, or by module across users
    r = await client.get("/chat/threads", params={"user_id": trainee.id}, headers=manager.headers)
    assert [t["id"] for t in r.json()["items"]] == [thread_id]
    r = await client.get("/chat/threads", params={"module_id": module_id}, headers=manager.headers)
    assert [t["id"] for t in r.json()["items"]] == [thread_id]
    r = await client.get(f"/chat/threads/{thread_id}", headers=manager.headers)
    assert r.status_code == 200


async def test_gateway_streams_without_buffering(
    client: httpx.AsyncClient, fake: httpx.AsyncClient, manager: Account, trainee: Account
) -> None:
    module_id = await create_module(client, manager)
    await fake.post("/_fake/config", json={"token_delay_ms": 150, "reply_chunks": 10})
    start = time.perf_counter()
    turn = await stream_chat(client, trainee.token, {"messages": say(), "agent_id": module_id})
    first_delta = turn.arrived[1] - start
    total = turn.arrived[-1] - start
    assert total > 1.3
    assert first_delta < total / 3, (first_delta, total)


async def test_per_user_limits(
    client: httpx.AsyncClient,
    fake: httpx.AsyncClient,
    manager: Account,
    trainee: Account,
    accounts: Accounts,
) -> None:
    module_id = await create_module(client, manager)
    await fake.post("/_fake/config", json={"token_delay_ms": 300, "reply_chunks": 10})
    body = {"messages": say(), "agent_id": module_id}
    async with (
        client.stream("POST", "/stream_chat", json=body, headers=trainee.headers) as a,
        client.stream("POST", "/stream_chat", json=body, headers=trainee.headers) as b,
        client.stream("POST", "/stream_chat", json=body, headers=trainee.headers) as c,
    ):
        assert (a.status_code, b.status_code, c.status_code) == (200, 200, 200)
        r = await client.post("/stream_chat", json=body, headers=trainee.headers)
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        assert "at once" in r.json()["detail"]
    await fake.post("/_fake/config", json={"token_delay_ms": 0})
    # the leases are given back when streams end
    assert (await stream_chat(client, trainee.token, body)).status == 200
    # requests per minute
    busy = await accounts.create(1, "busy")
    statuses = [(await stream_chat(client, busy.token, body)).status for _ in range(31)]
    assert statuses[:30] == [200] * 30 and statuses[30] == 429
