"""The fake upstream, served for real by uvicorn and driven with the official SDKs."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import anthropic
import httpx2
import openai
import pytest
import uvicorn
from fake_upstream import create_app
from fake_upstream.replies import build_reply, compose_reply, split_chunks
from fake_upstream.settings import Settings, load_settings
from fake_upstream.state import RequestRecord, State

PERSONA = (
    "You are Dana, a customer whose refund is three weeks late. "
    "You are losing patience and you are angry."
)
TRAINEE = "Thank you for calling. How can I help you today?"
OPENAI_MESSAGES: list[Any] = [
    {"role": "system", "content": PERSONA},
    {"role": "user", "content": TRAINEE},
]
ANTHROPIC_MESSAGES: list[Any] = [{"role": "user", "content": TRAINEE}]
DEFAULT_CHUNKS = 20


@dataclass(frozen=True)
class Server:
    url: str
    port: int


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    """The app under uvicorn in its own thread and loop, like a separate process."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    settings = Settings(port=port, reply_chunks=DEFAULT_CHUNKS, history_size=1000)
    config = uvicorn.Config(
        create_app(settings), loop="asyncio", log_level="critical", access_log=False
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        assert time.monotonic() < deadline, "fake upstream did not start"
        time.sleep(0.01)
    yield Server(url=f"http://127.0.0.1:{port}", port=port)
    uv.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture
async def control(server: Server) -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client for the control API; every test starts from a reset fake."""
    async with aiohttp.ClientSession(base_url=server.url) as session:
        async with session.post("/_fake/reset") as resp:
            assert resp.status == 200
        yield session


async def set_config(control: aiohttp.ClientSession, **patch: Any) -> dict[str, Any]:
    async with control.post("/_fake/config", json=patch) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def recorded(control: aiohttp.ClientSession) -> list[dict[str, Any]]:
    async with control.get("/_fake/requests") as resp:
        assert resp.status == 200
        return (await resp.json())["requests"]


async def wait_for_record(
    control: aiohttp.ClientSession, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The single recorded request, once ``done`` holds for it (the fake updates it async)."""
    deadline = time.monotonic() + 5
    while True:
        records = await recorded(control)
        if len(records) == 1 and done(records[0]):
            return records[0]
        assert time.monotonic() < deadline, f"request never reached the expected state: {records}"
        await asyncio.sleep(0.01)


def openai_client(server: Server, aio: bool = False, **kw: Any) -> openai.AsyncOpenAI:
    if aio:
        kw["http_client"] = openai.DefaultAioHttpClient()
    kw.setdefault("api_key", "sk-test")
    return openai.AsyncOpenAI(base_url=f"{server.url}/v1", max_retries=0, **kw)


def anthropic_client(server: Server, aio: bool = False, **kw: Any) -> anthropic.AsyncAnthropic:
    if aio:
        kw["http_client"] = anthropic.DefaultAioHttpClient()
    if "default_headers" not in kw:
        kw.setdefault("api_key", "sk-ant-test")
    return anthropic.AsyncAnthropic(base_url=server.url, max_retries=0, **kw)


TRANSPORTS = pytest.mark.parametrize("aio", [False, True], ids=["httpx", "aiohttp"])


# ---- OpenAI -------------------------------------------------------------------


@TRANSPORTS
async def test_openai_stream_text_chunks_and_usage(
    server: Server, control: aiohttp.ClientSession, aio: bool
) -> None:
    async with openai_client(server, aio) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=OPENAI_MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        roles, pieces, finish, usage, models = [], [], [], [], set()
        async for chunk in stream:
            models.add(chunk.model)
            if chunk.usage is not None:
                assert chunk.choices == []
                usage.append(chunk.usage)
            for choice in chunk.choices:
                if choice.delta.role:
                    roles.append(choice.delta.role)
                if choice.delta.content:
                    pieces.append(choice.delta.content)
                if choice.finish_reason:
                    finish.append(choice.finish_reason)

    text = "".join(pieces)
    assert roles == ["assistant"]
    assert models == {"gpt-4o-mini"}
    assert len(pieces) == DEFAULT_CHUNKS
    assert finish == ["stop"]
    assert text == build_reply(PERSONA, TRAINEE, DEFAULT_CHUNKS).text
    assert len(usage) == 1
    assert usage[0].completion_tokens == DEFAULT_CHUNKS
    assert usage[0].prompt_tokens > 0
    assert usage[0].total_tokens == usage[0].prompt_tokens + usage[0].completion_tokens

    [rec] = await recorded(control)
    assert rec["vendor"] == "openai"
    assert rec["path"] == "/v1/chat/completions"
    assert rec["model"] == "gpt-4o-mini"
    assert rec["system"] == PERSONA
    assert rec["messages"] == OPENAI_MESSAGES
    assert rec["stream"] is True
    assert rec["status"] == "completed"
    assert rec["chunks_sent"] == DEFAULT_CHUNKS
    assert rec["received_at"] <= time.time()


async def test_openai_stream_without_usage_option(
    server: Server, control: aiohttp.ClientSession
) -> None:
    async with openai_client(server) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o", messages=OPENAI_MESSAGES, stream=True
        )
        chunks = [chunk async for chunk in stream]
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)


@TRANSPORTS
async def test_openai_non_stream(server: Server, control: aiohttp.ClientSession, aio: bool) -> None:
    async with openai_client(server, aio) as client:
        completion = await client.chat.completions.create(model="gpt-4o", messages=OPENAI_MESSAGES)
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.finish_reason == "stop"
    assert choice.message.content == build_reply(PERSONA, TRAINEE, DEFAULT_CHUNKS).text
    assert completion.usage is not None
    assert completion.usage.completion_tokens == DEFAULT_CHUNKS
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    [rec] = await recorded(control)
    assert rec["stream"] is False
    assert rec["status"] == "completed"


async def test_openai_developer_role_and_content_parts_are_the_system(
    server: Server, control: aiohttp.ClientSession
) -> None:
    messages: list[Any] = [
        {"role": "developer", "content": [{"type": "text", "text": PERSONA}]},
        {"role": "user", "content": [{"type": "text", "text": TRAINEE}]},
    ]
    async with openai_client(server) as client:
        completion = await client.chat.completions.create(model="gpt-4o", messages=messages)
    assert completion.choices[0].message.content == compose_reply(PERSONA, TRAINEE)
    [rec] = await recorded(control)
    assert rec["system"] == PERSONA


async def test_openai_max_tokens_cuts_the_reply(
    server: Server, control: aiohttp.ClientSession
) -> None:
    async with openai_client(server) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o",
            messages=OPENAI_MESSAGES,
            max_completion_tokens=5,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [c async for c in stream]
    contents = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(contents) == 5
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5


async def test_openai_missing_key_is_401(server: Server, control: aiohttp.ClientSession) -> None:
    async with openai_client(server) as client:
        with pytest.raises(openai.AuthenticationError) as info:
            await client.chat.completions.create(
                model="gpt-4o",
                messages=OPENAI_MESSAGES,
                extra_headers={"Authorization": openai.Omit()},
            )
    assert info.value.status_code == 401
    assert isinstance(info.value.body, dict) and "message" in info.value.body
    assert await recorded(control) == []


async def test_openai_bad_request_is_400(server: Server, control: aiohttp.ClientSession) -> None:
    async with openai_client(server) as client:
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(model="gpt-4o", messages=[])
    assert info.value.status_code == 400
    headers = {"Authorization": "Bearer x"}
    for body in ({"messages": OPENAI_MESSAGES}, {"model": "m"}, {"model": "m", "messages": "hi"}):
        async with control.post("/v1/chat/completions", json=body, headers=headers) as resp:
            assert resp.status == 400
            error = (await resp.json())["error"]
            assert error["type"] == "invalid_request_error" and error["message"]
    async with control.post("/v1/chat/completions", data=b"{nope", headers=headers) as resp:
        assert resp.status == 400


# ---- Anthropic ----------------------------------------------------------------


@TRANSPORTS
async def test_anthropic_stream_helper(
    server: Server, control: aiohttp.ClientSession, aio: bool
) -> None:
    async with anthropic_client(server, aio) as client:
        async with client.messages.stream(
            model="claude-sonnet-4-5",
            max_tokens=1024,
            system=PERSONA,
            messages=ANTHROPIC_MESSAGES,
        ) as stream:
            pieces = [text async for text in stream.text_stream]
            message = await stream.get_final_message()

    expected = build_reply(PERSONA, TRAINEE, DEFAULT_CHUNKS).text
    assert len(pieces) == DEFAULT_CHUNKS
    assert "".join(pieces) == expected
    assert message.model == "claude-sonnet-4-5"
    assert message.stop_reason == "end_turn"
    assert message.content[0].type == "text" and message.content[0].text == expected
    assert message.usage.output_tokens == DEFAULT_CHUNKS
    assert message.usage.input_tokens > 0

    [rec] = await recorded(control)
    assert rec["vendor"] == "anthropic"
    assert rec["path"] == "/v1/messages"
    assert rec["system"] == PERSONA
    assert rec["messages"] == ANTHROPIC_MESSAGES
    assert rec["status"] == "completed"
    assert rec["chunks_sent"] == DEFAULT_CHUNKS


async def test_anthropic_raw_event_order(server: Server, control: aiohttp.ClientSession) -> None:
    system_blocks: list[Any] = [{"type": "text", "text": PERSONA}]
    async with anthropic_client(server) as client:
        stream = await client.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=1024,
            system=system_blocks,
            messages=ANTHROPIC_MESSAGES,
            stream=True,
        )
        events = [event async for event in stream]
    kinds = [e.type for e in events]
    # The SDK swallows `ping`; everything else arrives in the real API's order.
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert kinds[2:-3] == ["content_block_delta"] * DEFAULT_CHUNKS
    start, delta = events[0], events[-2]
    assert start.type == "message_start" and start.message.usage.input_tokens > 0
    assert delta.type == "message_delta"
    assert delta.delta.stop_reason == "end_turn"
    assert delta.usage.output_tokens == DEFAULT_CHUNKS
    [rec] = await recorded(control)
    assert rec["system"] == PERSONA


@TRANSPORTS
async def test_anthropic_non_stream(
    server: Server, control: aiohttp.ClientSession, aio: bool
) -> None:
    async with anthropic_client(server, aio) as client:
        message = await client.messages.create(
            model="claude-sonnet-4-5", max_tokens=1024, system=PERSONA, messages=ANTHROPIC_MESSAGES
        )
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text"
    assert message.content[0].text == build_reply(PERSONA, TRAINEE, DEFAULT_CHUNKS).text
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == DEFAULT_CHUNKS
    [rec] = await recorded(control)
    assert rec["stream"] is False and rec["status"] == "completed"


async def test_anthropic_max_tokens_cuts_the_reply(
    server: Server, control: aiohttp.ClientSession
) -> None:
    async with anthropic_client(server) as client:
        async with client.messages.stream(
            model="claude", max_tokens=4, system=PERSONA, messages=ANTHROPIC_MESSAGES
        ) as stream:
            pieces = [text async for text in stream.text_stream]
            message = await stream.get_final_message()
    assert len(pieces) == 4
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 4


async def test_anthropic_missing_key_is_401(server: Server, control: aiohttp.ClientSession) -> None:
    async with anthropic_client(server, default_headers={"Authorization": anthropic.Omit()}) as c:
        with pytest.raises(anthropic.AuthenticationError) as info:
            await c.messages.create(model="claude", max_tokens=10, messages=ANTHROPIC_MESSAGES)
    assert info.value.status_code == 401
    assert info.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "x-api-key header is required"},
    }


async def test_anthropic_accepts_x_api_key(server: Server, control: aiohttp.ClientSession) -> None:
    body = {"model": "claude", "max_tokens": 50, "messages": ANTHROPIC_MESSAGES}
    async with control.post("/v1/messages", json=body, headers={"x-api-key": "k"}) as resp:
        assert resp.status == 200
        assert resp.headers["request-id"].startswith("req_msg_")
        assert (await resp.json())["type"] == "message"


async def test_anthropic_bad_request_is_400(server: Server, control: aiohttp.ClientSession) -> None:
    async with anthropic_client(server) as client:
        with pytest.raises(anthropic.BadRequestError) as info:
            await client.messages.create(
                model="claude",
                max_tokens=10,
                messages=[{"role": "system", "content": PERSONA}],  # type: ignore[list-item]
            )
    assert info.value.status_code == 400
    headers = {"x-api-key": "k"}
    for body in (
        {"max_tokens": 5, "messages": ANTHROPIC_MESSAGES},
        {"model": "claude", "messages": ANTHROPIC_MESSAGES},
        {"model": "claude", "max_tokens": 5},
    ):
        async with control.post("/v1/messages", json=body, headers=headers) as resp:
            assert resp.status == 400
            data = await resp.json()
            assert data["type"] == "error"
            assert data["error"]["type"] == "invalid_request_error"


# ---- runtime config: chunk count, delays, failures ------------------------------


async def test_reply_chunks_config_is_honoured(
    server: Server, control: aiohttp.ClientSession
) -> None:
    config = await set_config(control, reply_chunks=7)
    assert config["reply_chunks"] == 7
    async with openai_client(server) as client:
        stream = await client.chat.completions.create(
            model="m", messages=OPENAI_MESSAGES, stream=True
        )
        contents = [
            c.choices[0].delta.content
            async for c in stream
            if c.choices and c.choices[0].delta.content
        ]
    assert len(contents) == 7
    # Many more chunks than the reply has words: it is lengthened, no chunk is empty.
    await set_config(control, reply_chunks=300)
    async with anthropic_client(server) as client:
        async with client.messages.stream(
            model="claude", max_tokens=1000, system=PERSONA, messages=ANTHROPIC_MESSAGES
        ) as stream:
            pieces = [t async for t in stream.text_stream]
    assert len(pieces) == 300 and all(p.strip() for p in pieces)


async def test_fail_before_first_token(server: Server, control: aiohttp.ClientSession) -> None:
    await set_config(control, fail_before_first_token=503)
    async with openai_client(server) as client:
        with pytest.raises(openai.InternalServerError) as oinfo:
            await client.chat.completions.create(model="m", messages=OPENAI_MESSAGES, stream=True)
    assert oinfo.value.status_code == 503
    async with anthropic_client(server) as aclient:
        with pytest.raises(anthropic.InternalServerError) as ainfo:
            async with aclient.messages.stream(
                model="claude", max_tokens=10, messages=ANTHROPIC_MESSAGES
            ) as stream:
                await stream.get_final_message()
    assert ainfo.value.status_code == 503
    assert isinstance(ainfo.value.body, dict) and ainfo.value.body["type"] == "error"

    await set_config(control, fail_before_first_token=429)
    async with openai_client(server) as client:
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(model="m", messages=OPENAI_MESSAGES)
    assert [r["status"] for r in await recorded(control)] == ["failed"] * 3


@TRANSPORTS
async def test_fail_after_chunks_drops_the_stream(
    server: Server, control: aiohttp.ClientSession, aio: bool
) -> None:
    await set_config(control, fail_after_chunks=3)
    chunks = build_reply(PERSONA, TRAINEE, DEFAULT_CHUNKS).chunks

    received: list[str] = []
    async with openai_client(server, aio) as client:
        stream = await client.chat.completions.create(
            model="m", messages=OPENAI_MESSAGES, stream=True
        )
        with pytest.raises(openai.APIConnectionError):
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    received.append(chunk.choices[0].delta.content)
    assert received == list(chunks[:3])

    received = []
    async with anthropic_client(server, aio) as aclient:
        # The Anthropic SDK lets the transport's own error through while iterating.
        with pytest.raises((anthropic.APIConnectionError, httpx2.TransportError)):
            async with aclient.messages.stream(
                model="claude", max_tokens=100, system=PERSONA, messages=ANTHROPIC_MESSAGES
            ) as stream:
                async for text in stream.text_stream:
                    received.append(text)
    assert received == list(chunks[:3])

    records = await recorded(control)
    assert [(r["status"], r["chunks_sent"]) for r in records] == [("failed", 3), ("failed", 3)]


async def test_fail_after_chunks_error_event(
    server: Server, control: aiohttp.ClientSession
) -> None:
    await set_config(control, fail_after_chunks=2, mid_stream_failure="error_event")
    received: list[str] = []
    async with openai_client(server) as client:
        stream = await client.chat.completions.create(
            model="m", messages=OPENAI_MESSAGES, stream=True
        )
        with pytest.raises(openai.APIError) as oinfo:
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    received.append(chunk.choices[0].delta.content)
    assert not isinstance(oinfo.value, openai.APIConnectionError)
    assert len(received) == 2

    received = []
    async with anthropic_client(server) as aclient:
        with pytest.raises(anthropic.APIStatusError) as ainfo:
            async with aclient.messages.stream(
                model="claude", max_tokens=100, messages=ANTHROPIC_MESSAGES
            ) as stream:
                async for text in stream.text_stream:
                    received.append(text)
    assert len(received) == 2
    assert isinstance(ainfo.value.body, dict)
    assert ainfo.value.body["error"]["type"] == "overloaded_error"


async def test_fail_after_chunks_non_stream(server: Server, control: aiohttp.ClientSession) -> None:
    await set_config(control, fail_after_chunks=0)
    async with openai_client(server) as client:
        with pytest.raises(openai.APIConnectionError):
            await client.chat.completions.create(model="m", messages=OPENAI_MESSAGES)
    [rec] = await recorded(control)
    assert rec["status"] == "failed"


async def test_fail_count_limits_failures(server: Server, control: aiohttp.ClientSession) -> None:
    await set_config(control, fail_before_first_token=500, fail_count=1)
    async with openai_client(server) as client:
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model="m", messages=OPENAI_MESSAGES)
        completion = await client.chat.completions.create(model="m", messages=OPENAI_MESSAGES)
    assert completion.choices[0].message.content
    async with control.get("/_fake/config") as resp:
        config = await resp.json()
    assert config["fail_before_first_token"] is None and config["fail_count"] is None


async def test_client_disconnect_marks_request_disconnected(
    server: Server, control: aiohttp.ClientSession
) -> None:
    await set_config(control, reply_chunks=200, token_delay_ms=20)
    async with openai_client(server) as client:
        stream = await client.chat.completions.create(
            model="m", messages=OPENAI_MESSAGES, stream=True
        )
        seen = 0
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                seen += 1
                if seen == 3:
                    break
        await stream.close()

    rec = await wait_for_record(control, lambda r: r["status"] != "streaming")
    assert rec["status"] == "disconnected"
    # Generation stopped promptly instead of running the 200 chunks (4 s) out.
    assert 3 <= rec["chunks_sent"] < 20
    assert rec["finished_at"] - rec["received_at"] < 1.0


async def test_disconnect_during_first_token_delay(
    server: Server, control: aiohttp.ClientSession
) -> None:
    await set_config(control, first_token_delay_ms=10_000)
    async with anthropic_client(server) as client:
        call = asyncio.create_task(
            client.messages.create(
                model="claude", max_tokens=10, messages=ANTHROPIC_MESSAGES, stream=True
            )
        )
        # Wait until the fake is holding the request, then walk away from it.
        rec = await wait_for_record(control, lambda r: r["status"] == "streaming")
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    rec = await wait_for_record(control, lambda r: r["status"] != "streaming")
    assert rec["status"] == "disconnected" and rec["chunks_sent"] == 0
    assert rec["finished_at"] - rec["received_at"] < 5


async def test_delays_slow_the_stream(server: Server, control: aiohttp.ClientSession) -> None:
    await set_config(control, reply_chunks=10, token_delay_ms=30, first_token_delay_ms=100)
    async with openai_client(server) as client:
        started = time.perf_counter()
        stream = await client.chat.completions.create(
            model="m", messages=OPENAI_MESSAGES, stream=True
        )
        first: float | None = None
        async for chunk in stream:
            if first is None and chunk.choices and chunk.choices[0].delta.content:
                first = time.perf_counter() - started
        total = time.perf_counter() - started
    assert first is not None and first >= 0.09
    assert total >= 0.09 + 9 * 0.03 * 0.9

    await control.post("/_fake/reset")
    async with openai_client(server) as client:
        # The SDK's first call pays for lazy imports; time the second one.
        for _ in range(2):
            started = time.perf_counter()
            stream = await client.chat.completions.create(
                model="m", messages=OPENAI_MESSAGES, stream=True
            )
            _ = [c async for c in stream]
        assert time.perf_counter() - started < 0.09


# ---- control API ----------------------------------------------------------------


async def test_control_api(server: Server, control: aiohttp.ClientSession) -> None:
    async with control.get("/healthz") as resp:
        assert resp.status == 200 and await resp.json() == {"status": "ok"}
    async with control.get("/_fake/config") as resp:
        defaults = await resp.json()
    assert defaults == {
        "reply_chunks": DEFAULT_CHUNKS,
        "token_delay_ms": 0.0,
        "first_token_delay_ms": 0.0,
        "fail_before_first_token": None,
        "fail_after_chunks": None,
        "mid_stream_failure": "drop",
        "fail_count": None,
    }
    for bad in (
        {"reply_chunks": 0},
        {"reply_chunks": True},
        {"token_delay_ms": -1},
        {"fail_before_first_token": 200},
        {"fail_after_chunks": -1},
        {"mid_stream_failure": "explode"},
        {"nonsense": 1},
        [1, 2],
    ):
        async with control.post("/_fake/config", json=bad) as resp:
            assert resp.status == 400, bad
            assert "detail" in await resp.json()
    changed = await set_config(control, reply_chunks=3, token_delay_ms=1.5)
    assert changed["reply_chunks"] == 3 and changed["token_delay_ms"] == 1.5

    async with openai_client(server) as client:
        await client.chat.completions.create(model="m", messages=OPENAI_MESSAGES)
    assert len(await recorded(control)) == 1
    async with control.delete("/_fake/requests") as resp:
        assert resp.status == 200
    assert await recorded(control) == []

    async with openai_client(server) as client:
        await client.chat.completions.create(model="m", messages=OPENAI_MESSAGES)
    async with control.post("/_fake/reset") as resp:
        assert await resp.json() == defaults
    assert await recorded(control) == []

    async with control.get("/nope") as resp:
        assert resp.status == 404
    async with control.get("/v1/messages") as resp:
        assert resp.status == 405


# ---- units: replies, settings, history ------------------------------------------


def test_replies_are_in_character_and_deterministic() -> None:
    reply = compose_reply(PERSONA, TRAINEE)
    assert reply == compose_reply(PERSONA, TRAINEE)
    assert "refund" in reply.lower()
    assert "How can I help you today" in reply  # refers to what the trainee said
    polite = compose_reply(
        "You are a polite customer whose internet keeps dropping.", "I'm sorry about that."
    )
    assert "internet" in polite.lower() or "connection" in polite.lower()
    assert "sorry" in polite.lower()
    assert compose_reply("You are a customer.", "")  # generic fallback, no trainee line


def test_split_chunks_exact_count_and_lossless() -> None:
    text = "one two three four five"
    for n in (1, 2, 5):
        pieces = split_chunks(text, n)
        assert len(pieces) == n and "".join(pieces) == text
    long = split_chunks(text, 12, ("more words here.",))
    assert len(long) == 12 and "".join(long).startswith(text)


def test_settings_from_env() -> None:
    settings = load_settings(
        {
            "FAKE_UPSTREAM_HOST": "0.0.0.0",
            "FAKE_UPSTREAM_PORT": "9000",
            "FAKE_REPLY_CHUNKS": "5",
            "FAKE_TOKEN_DELAY_MS": "2.5",
            "FAKE_FIRST_TOKEN_DELAY_MS": "100",
        }
    )
    assert (settings.host, settings.port, settings.reply_chunks) == ("0.0.0.0", 9000, 5)
    assert (settings.token_delay_ms, settings.first_token_delay_ms) == (2.5, 100.0)
    assert load_settings({}) == Settings()
    with pytest.raises(ValueError, match="FAKE_REPLY_CHUNKS"):
        load_settings({"FAKE_REPLY_CHUNKS": "0"})


def test_history_is_bounded() -> None:
    state = State(Settings(history_size=2))
    fields: dict[str, Any] = {
        "path": "/v1/messages",
        "vendor": "anthropic",
        "model": "m",
        "system": "",
        "messages": [],
        "stream": True,
        "status": "completed",
        "chunks_sent": 0,
        "received_at": 0.0,
    }
    for i in range(5):
        state.requests.append(RequestRecord(id=str(i), **fields))
    assert [r.id for r in state.requests] == ["3", "4"]


# ---- entry point ------------------------------------------------------------------


async def test_python_dash_m_serves() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "FAKE_UPSTREAM_PORT": str(port), "FAKE_REPLY_CHUNKS": "4"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fake_upstream",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession(base_url=url) as session:
            deadline = time.monotonic() + 15
            while True:
                try:
                    async with session.get("/healthz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                assert time.monotonic() < deadline, "python -m fake_upstream did not come up"
                await asyncio.sleep(0.05)
        async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0) as client:
            stream = await client.chat.completions.create(
                model="m", messages=OPENAI_MESSAGES, stream=True
            )
            contents = [c async for c in stream if c.choices and c.choices[0].delta.content]
        assert len(contents) == 4
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)
