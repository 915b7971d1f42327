"""A trainee chats with a training module through the gateway, end to end."""

import uuid
from typing import Any

import httpx
from devstack.testing import bearer, stream_chat

PERSONA = (
    "You are Dana Whitfield, a customer whose refund of $249 is three weeks late. "
    "You have called twice already and you are losing patience."
)


async def test_trainee_chats_with_a_module_through_the_gateway(
    client: httpx.AsyncClient, upstream: httpx.AsyncClient, admin_token: str, usage_events: Any
) -> None:
    run = uuid.uuid4().hex[:8]
    manager_email = f"Manager.{run}@Example.com"
    trainee_email = f"trainee.{run}@example.com"
    password = "StrongPassword1!"

    # 1. the admin puts a manager (level 5) and a trainee (level 1) on the allowlist
    r = await client.post(
        "/user/allowed-users",
        json={"emails": f"{manager_email}, not-an-email", "access_level": 5},
        headers=bearer(admin_token),
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "added": [manager_email.lower()],
        "already_allowed": [],
        "invalid": ["not-an-email"],
    }
    r = await client.post(
        "/user/allowed-users",
        json={"emails": [trainee_email], "access_level": 1},
        headers=bearer(admin_token),
    )
    assert r.status_code == 200 and r.json()["added"] == [trainee_email], r.text

    # 2. both sign up and sign in; an email not on the allowlist is refused
    user_ids = {}
    for email, level in ((manager_email, 5), (trainee_email, 1)):
        r = await client.post("/user/signup", json={"email": email, "password": password})
        assert r.status_code == 200, r.text
        assert r.json()["user"]["access_level"] == level
        user_ids[email] = r.json()["user"]["id"]
        assert "password_hash" not in r.json()["user"]
    r = await client.post(
        "/user/signup", json={"email": f"stranger.{run}@example.com", "password": password}
    )
    assert r.status_code == 403 and "allowlist" in r.json()["detail"]
    tokens = {}
    for email in (manager_email, trainee_email):
        r = await client.post("/user/signin", json={"email": email.upper(), "password": password})
        assert r.status_code == 200, r.text
        assert r.json()["token_type"] == "bearer"
        tokens[email] = r.json()["access_token"]
    manager, trainee = tokens[manager_email], tokens[trainee_email]
    r = await client.post("/user/signin", json={"email": trainee_email, "password": "Wrong1!aa"})
    assert r.status_code == 401

    # 3. the manager creates a training module; it shows in the list; a trainee may not create
    title = f"Late refund {run}"
    r = await client.post(
        "/module/create", json={"title": title, "system_prompt": PERSONA}, headers=bearer(manager)
    )
    assert r.status_code == 200, r.text
    module_id = r.json()["id"]
    r = await client.post(
        "/module/create", json={"title": "x", "system_prompt": "y"}, headers=bearer(trainee)
    )
    assert r.status_code == 403
    r = await client.get("/module/list", params={"search": run}, headers=bearer(trainee))
    assert r.status_code == 200
    assert [m["id"] for m in r.json()["items"]] == [module_id]
    assert (await client.get("/module/list")).status_code == 401

    # 4. the trainee chats (openai), in the seed's message shape, and the reply streams
    await upstream.post("/_fake/config", json={"token_delay_ms": 20, "reply_chunks": 12})
    try:
        first = await stream_chat(
            client,
            trainee,
            {
                "messages": {"0": {"role": "user", "content": "Hello, how can I help you today?"}},
                "agent_id": module_id,
                "provider": "openai",
            },
        )
        seen = (await upstream.get("/_fake/requests")).json()["requests"]
    finally:
        await upstream.post("/_fake/config", json={"token_delay_ms": 0, "reply_chunks": 20})
    assert first.status == 200, first.events
    assert first.headers["content-type"].startswith("text/event-stream")
    names = [e.event for e in first.events]
    assert names[0] == "thread" and names[-1] == "done", names
    assert set(names[1:-1]) == {"delta"} and len(names) == 14, names
    thread_id = first.of("thread")[0]["thread_id"]
    assert first.headers["x-thread-id"] == thread_id
    done = first.of("done")[0]
    assert done["usage"]["input_tokens"] > 0 and done["usage"]["output_tokens"] == 12
    assert first.text.strip()
    # streamed while generated: the first delta came well before the end (12 x 20 ms)
    assert first.arrived[-1] - first.arrived[1] > 0.15

    # the module's system prompt is what reached the model as the system message
    openai_call = [r for r in seen if r["vendor"] == "openai"][-1]
    assert openai_call["system"] == PERSONA
    assert openai_call["model"] == "gpt-4o"

    # 4b. the same thread continues through the Anthropic SDK
    second = await stream_chat(
        client,
        trainee,
        {
            "messages": {
                "0": {"role": "user", "content": "Hello, how can I help you today?"},
                "1": {"role": "assistant", "content": first.text},
                "2": {"role": "user", "content": "I am sorry, let me check your refund."},
            },
            "thread_id": thread_id,
            "provider": "anthropic",
        },
    )
    assert second.status == 200, second.events
    assert second.of("thread")[0]["thread_id"] == thread_id
    assert second.of("done")[0]["usage"]["output_tokens"] > 0
    seen = (await upstream.get("/_fake/requests")).json()["requests"]
    anthropic_call = [r for r in seen if r["vendor"] == "anthropic"][-1]
    assert anthropic_call["system"] == PERSONA
    assert len(anthropic_call["messages"]) == 3

    # 5. a usage event for each turn was published to RabbitMQ
    events = await usage_events(2)
    assert len(events) == 2, events
    by_provider = {e["provider"]: e for e in events}
    assert set(by_provider) == {"openai", "anthropic"}
    for event, turn in ((by_provider["openai"], first), (by_provider["anthropic"], second)):
        assert event["user_id"] == user_ids[trainee_email]
        assert event["module_id"] == module_id
        assert event["thread_id"] == thread_id
        assert event["status"] == "completed"
        assert event["input_tokens"] == turn.of("done")[0]["usage"]["input_tokens"]
        assert event["output_tokens"] == turn.of("done")[0]["usage"]["output_tokens"]
        assert event["latency_ms"] >= event["ttft_ms"] > 0
    assert by_provider["anthropic"]["vendor"] == "anthropic"
    assert by_provider["openai"]["model"] == "gpt-4o"


async def test_chat_refuses_bad_requests(client: httpx.AsyncClient, admin_token: str) -> None:
    r = await client.post(
        "/module/create",
        json={"title": "Billing dispute", "system_prompt": "You dispute a bill."},
        headers=bearer(admin_token),
    )
    module_id = r.json()["id"]
    cases = [
        (
            {
                "messages": {"0": {"role": "user", "content": "hi"}},
                "agent_id": module_id,
                "provider": "nope",
            },
            400,
            "Unknown provider",
        ),
        (
            {"messages": {"0": {"role": "system", "content": "hi"}}, "agent_id": module_id},
            400,
            "role",
        ),
        ({"messages": {"0": {"role": "user", "content": "hi"}}}, 400, "agent_id"),
        (
            {"messages": {"0": {"role": "user", "content": "hi"}}, "agent_id": "f" * 24},
            404,
            "module",
        ),
        (
            {"messages": {"0": {"role": "user", "content": "hi"}}, "thread_id": "nope"},
            404,
            "Thread",
        ),
    ]
    for body, status, word in cases:
        turn = await stream_chat(client, admin_token, body)
        assert turn.status == status, (body, turn.events)
        assert word in turn.events[0].data["detail"], turn.events
