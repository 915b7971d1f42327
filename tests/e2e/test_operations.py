"""What operators rely on: readiness, metrics, request ids in logs, graceful shutdown."""

import asyncio
import json
import signal
import socket
import sys
import time
import uuid
from pathlib import Path

import httpx
from common.sse import SSEParser
from devstack.testing import ROOT, Accounts, Stack, create_module, stream_chat

SERVICES = ("auth", "modules", "chat", "usage")


async def test_every_service_is_healthy_and_ready(stack: Stack, client: httpx.AsyncClient) -> None:
    for name in SERVICES:
        async with httpx.AsyncClient(base_url=stack.service(name)) as direct:
            assert (await direct.get("/healthz")).json() == {"status": "ok"}
            ready = await direct.get("/readyz")
            assert ready.status_code == 200, (name, ready.text)
            assert ready.json()["checks"] == {"mongodb": "ok", "redis": "ok", "rabbitmq": "ok"}
    ready = (await client.get("/readyz")).json()
    assert ready["checks"] == {"redis": "ok", **{name: "ok" for name in SERVICES}}


def sample(metrics: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample (0 when absent)."""
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_metrics_move_after_traffic(
    stack: Stack, client: httpx.AsyncClient, accounts: Accounts
) -> None:
    manager = await accounts.create(5)
    trainee = await accounts.create(1)
    module_id = await create_module(client, manager)
    async with httpx.AsyncClient(base_url=stack.service("chat")) as chat:
        before = (await chat.get("/metrics")).text
        gw_before = (await client.get("/metrics")).text
        turn = await stream_chat(
            client,
            trainee.token,
            {"messages": [{"role": "user", "content": "Hi"}], "agent_id": module_id},
        )
        assert turn.status == 200
        await asyncio.sleep(0.5)  # the turn's book-keeping finishes after the stream
        after = (await chat.get("/metrics")).text
        gw_after = (await client.get("/metrics")).text
    out = turn.of("done")[0]["usage"]["output_tokens"]
    route = {"service": "chat", "route": "/stream_chat", "status": "200"}
    assert (
        sample(after, "http_requests_total", **route)
        == sample(before, "http_requests_total", **route) + 1
    )
    assert sample(after, "chat_turns_total", provider="openai", status="completed") == (
        sample(before, "chat_turns_total", provider="openai", status="completed") + 1
    )
    assert sample(after, "chat_tokens_total", provider="openai", direction="output") == (
        sample(before, "chat_tokens_total", provider="openai", direction="output") + out
    )
    assert sample(after, "chat_time_to_first_token_seconds_count", provider="openai") > 0
    assert sample(after, "events_published_total", routing_key="chat.usage.recorded") > 0
    assert "chat_streams_in_flight 0.0" in after
    assert "outbox_depth" in after
    gw_route = {"service": "gateway", "route": "/stream_chat", "status": "200"}
    assert sample(gw_after, "http_requests_total", **gw_route) == (
        sample(gw_before, "http_requests_total", **gw_route) + 1
    )


async def test_one_request_id_follows_a_turn_through_the_logs(
    stack: Stack, client: httpx.AsyncClient, accounts: Accounts
) -> None:
    stack.require_own("it reads the services' log files")
    manager = await accounts.create(5)
    trainee = await accounts.create(1)
    module_id = await create_module(client, manager)
    rid = f"e2e-{uuid.uuid4().hex}"
    body = {"messages": [{"role": "user", "content": "Hi"}], "agent_id": module_id}
    r = await client.post(
        "/stream_chat", json=body, headers={**trainee.headers, "x-request-id": rid}
    )
    assert r.status_code == 200 and r.headers["x-request-id"] == rid
    logs = Path(stack.state_dir) / "logs"
    found: dict[str, list[dict]] = {}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = {}
        for name in ("gateway", "chat", "usage"):
            lines = (logs / f"{name}.log").read_text().splitlines()
            found[name] = [json.loads(x) for x in lines if rid in x and x.startswith("{")]
        if all(found.values()):
            break
        await asyncio.sleep(0.2)
    assert all(found.values()), {k: len(v) for k, v in found.items()}
    assert all(entry["request_id"] == rid for entries in found.values() for entry in entries)
    # no token or password ever reaches a log
    everything = "".join(p.read_text() for p in logs.glob("*.log"))
    assert trainee.token not in everything and "StrongPassword1!" not in everything


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_sigterm_lets_a_slow_stream_finish(
    stack: Stack, client: httpx.AsyncClient, upstream: httpx.AsyncClient, accounts: Accounts
) -> None:
    """A second chat instance (ops scale chat on its own) is stopped mid-stream."""
    manager = await accounts.create(5)
    trainee = await accounts.create(1)
    module_id = await create_module(client, manager)
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "uvicorn", "chat.main:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--timeout-graceful-shutdown", "30",
        cwd=ROOT, env=stack.service_env(),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as chat:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if (await chat.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
            await upstream.post("/_fake/config", json={"token_delay_ms": 100, "reply_chunks": 20})
            events = []
            body = {"messages": [{"role": "user", "content": "Hi"}], "agent_id": module_id}
            async with chat.stream(
                "POST", "/stream_chat", json=body, headers=trainee.headers
            ) as response:
                parser = SSEParser()
                async for chunk in response.aiter_raw():
                    for event in parser.feed(chunk):
                        events.append(event.event)
                        if events.count("delta") == 2:
                            proc.send_signal(signal.SIGTERM)
                            await asyncio.sleep(0.3)
                            # no new streams are taken while it drains
                            try:
                                refused = await httpx.AsyncClient(base_url=url).get("/healthz")
                                assert refused.status_code >= 500
                            except httpx.TransportError:
                                pass
            assert events[0] == "thread" and events[-1] == "done", events
            assert events.count("delta") == 20
        # uvicorn re-raises the signal once it has shut down cleanly
        assert await asyncio.wait_for(proc.wait(), 30) in (0, -signal.SIGTERM)
    finally:
        await upstream.post("/_fake/reset")
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
