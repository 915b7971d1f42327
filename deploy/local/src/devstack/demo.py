"""A short training session against the running stack, through the gateway only.

The admin allowlists a manager and a trainee, the manager writes a training module,
the trainee holds a three-turn conversation in one thread, and the usage events the
chat service published for those turns are read back from RabbitMQ.
"""

import asyncio
import os
import sys
from typing import Any

import aio_pika
import httpx
import orjson
from common.sse import SSEParser

PASSWORD = "StrongPassword1!"
MANAGER = "demo.manager@example.com"
TRAINEE = "demo.trainee@example.com"
MODULE_TITLE = "Late refund: a customer losing patience"
PERSONA = (
    "You are Dana Whitfield, a customer of Northwind Home Internet. You returned a faulty "
    "router and were promised a refund of $249 within five working days. It is now three "
    "weeks later, you have called twice, and nobody has called you back. You are polite "
    "but losing patience, and you will ask to cancel your contract if the agent is vague. "
    "Stay in character as the customer; never act as the agent."
)
TRAINEE_LINES = (
    "Thank you for calling Northwind, my name is Sam. How can I help you today?",
    "I'm really sorry about the wait. Could you give me your order number so I can check "
    "where the refund is?",
    "I can see the refund was approved but got stuck in processing. I've escalated it: "
    "you'll have it within 48 hours, and I've added a $20 credit for the trouble.",
)


def _out(text: str = "", end: str = "\n") -> None:
    sys.stdout.write(text + end)
    sys.stdout.flush()


async def _json(response: httpx.Response, *ok: int) -> Any:
    if response.status_code not in (ok or (200,)):
        raise SystemExit(
            f"{response.request.method} {response.request.url.path} -> "
            f"{response.status_code}: {response.text}"
        )
    return response.json()


async def _account(client: httpx.AsyncClient, admin: str, email: str, level: int) -> str:
    """Allowlist, sign up (or, on a second run, sign in) and return a token."""
    await _json(
        await client.post(
            "/user/allowed-users",
            json={"emails": email, "access_level": level},
            headers={"authorization": f"Bearer {admin}"},
        )
    )
    signup = await client.post("/user/signup", json={"email": email, "password": PASSWORD})
    if signup.status_code == 200:
        return str(signup.json()["access_token"])
    signin = await client.post("/user/signin", json={"email": email, "password": PASSWORD})
    return str((await _json(signin))["access_token"])


async def _stream_turn(
    client: httpx.AsyncClient, token: str, body: dict[str, Any]
) -> tuple[str, str, dict[str, Any]]:
    parser, text, thread_id, done = SSEParser(), [], "", {}
    headers = {"authorization": f"Bearer {token}"}
    async with client.stream("POST", "/stream_chat", json=body, headers=headers) as response:
        if response.status_code != 200:
            await response.aread()
            raise SystemExit(f"stream_chat -> {response.status_code}: {response.text}")
        async for chunk in response.aiter_raw():
            for event in parser.feed(chunk):
                if event.event == "thread":
                    thread_id = event.data["thread_id"]
                elif event.event == "delta":
                    text.append(event.data["text"])
                    _out(event.data["text"], end="")
                elif event.event == "done":
                    done = event.data
                elif event.event == "error":
                    raise SystemExit(f"\nstream failed: {event.data['detail']}")
    _out()
    return "".join(text), thread_id, done


async def main() -> None:
    gateway = os.environ.get(
        "GATEWAY_URL", f"http://127.0.0.1:{os.environ.get('GATEWAY_PORT', '8000')}"
    )
    rabbitmq = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
    admin_email = os.environ.get("BOOTSTRAP_ADMIN_EMAIL", "admin@example.com")
    admin_password = os.environ.get("BOOTSTRAP_ADMIN_PASSWORD", "AdminPassword1!")
    provider = os.environ.get("DEMO_PROVIDER", "openai")

    connection = await aio_pika.connect(rabbitmq)
    channel = await connection.channel()
    exchange = await channel.declare_exchange(
        os.environ.get("EVENTS_EXCHANGE", "roleplay.events"),
        aio_pika.ExchangeType.TOPIC,
        durable=True,
    )
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, routing_key="chat.usage.#")

    async with httpx.AsyncClient(base_url=gateway, timeout=60) as client:
        _out(f"Gateway: {gateway}")
        signin = await client.post(
            "/user/signin", json={"email": admin_email, "password": admin_password}
        )
        admin = (await _json(signin))["access_token"]
        _out(f"1. admin {admin_email} signed in; allowlisting a manager (5) and a trainee (1)")
        manager = await _account(client, admin, MANAGER, 5)
        trainee = await _account(client, admin, TRAINEE, 1)
        _out(f"2. {MANAGER} and {TRAINEE} signed up and signed in")

        listed = await _json(
            await client.get(
                "/module/list",
                params={"search": MODULE_TITLE, "page_size": 100},
                headers={"authorization": f"Bearer {trainee}"},
            )
        )
        module = next((m for m in listed["items"] if m["title"] == MODULE_TITLE), None)
        if module is None:
            module = await _json(
                await client.post(
                    "/module/create",
                    json={"title": MODULE_TITLE, "system_prompt": PERSONA},
                    headers={"authorization": f"Bearer {manager}"},
                )
            )
        _out(f"3. the manager's module {module['id']} {module['title']!r} is in /module/list")

        _out(f"4. the trainee practises ({provider}); replies stream as they are generated\n")
        messages: list[dict[str, str]] = []
        thread_id: str | None = None
        for line in TRAINEE_LINES:
            messages.append({"role": "user", "content": line})
            _out(f"   Trainee:  {line}")
            _out("   Customer: ", end="")
            body: dict[str, Any] = {
                "messages": {str(i): m for i, m in enumerate(messages)},
                "provider": provider,
            }
            body.update({"thread_id": thread_id} if thread_id else {"agent_id": module["id"]})
            reply, thread_id, done = await _stream_turn(client, trainee, body)
            usage = done.get("usage", {})
            _out(
                f"   [thread {thread_id}, {usage.get('input_tokens')} in / "
                f"{usage.get('output_tokens')} out tokens, {done.get('model')}]\n"
            )
            messages.append({"role": "assistant", "content": reply})

    _out("5. usage events published to RabbitMQ for these turns:")
    seen = 0
    for _ in range(100):
        message = await queue.get(fail=False)
        if message is None:
            if seen >= len(TRAINEE_LINES):
                break
            await asyncio.sleep(0.1)
            continue
        await message.ack()
        event = orjson.loads(message.body)
        seen += 1
        _out(
            f"   {message.routing_key}: "
            f"user={event['user_id']} module={event['module_id']} provider={event['provider']} "
            f"model={event['model']} tokens={event['input_tokens']}/{event['output_tokens']} "
            f"latency={event['latency_ms']:.0f} ms status={event['status']}"
        )
    await connection.close()
    if seen < len(TRAINEE_LINES):
        raise SystemExit(f"expected {len(TRAINEE_LINES)} usage events, saw {seen}")


if __name__ == "__main__":
    asyncio.run(main())
