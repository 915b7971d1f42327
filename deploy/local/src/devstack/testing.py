"""Pytest fixtures: the whole stack, started once per test session by the project's launcher.

Everything is real: FerretDB, RabbitMQ, Redis, the fake LLM upstream and every service,
each a separate process, on ports of their own so a running `make run` is not disturbed.
Loaded for every test through the root `conftest.py`; nothing starts unless a test asks
for `stack` (or a fixture built on it).
"""

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import orjson
import pytest
from common.sse import SSEEvent, SSEParser

ROOT = Path(__file__).resolve().parents[4]

# TEST_PORT_OFFSET moves the whole test stack, so two checkouts can run their suites at once.
_OFFSET = int(os.environ.get("TEST_PORT_OFFSET", "0"))
PORTS = {
    name: port + _OFFSET
    for name, port in {
        "GATEWAY_PORT": 18000,
        "AUTH_PORT": 18101,
        "MODULES_PORT": 18102,
        "CHAT_PORT": 18103,
        "USAGE_PORT": 18104,
        "FAKE_UPSTREAM_PORT": 18199,
        "MONGODB_PORT": 27217,
        "REDIS_PORT": 16379,
        "RABBITMQ_PORT": 15673,
    }.items()
}
ADMIN_EMAIL = "admin@e2e.example.com"
ADMIN_PASSWORD = "AdminPassword1!"
START_TIMEOUT_S = 600  # a cold machine builds FerretDB first


JWT_SECRET = "e2e-" + "x" * 60


@dataclass(frozen=True)
class Stack:
    gateway: str
    fake_upstream: str
    rabbitmq_url: str
    mongodb_url: str
    redis_url: str
    state_dir: str  # empty for a stack this suite did not start (E2E_GATEWAY_URL)
    jwt_secret: str = JWT_SECRET
    events_exchange: str = "roleplay.events"
    admin_email: str = ADMIN_EMAIL
    admin_password: str = ADMIN_PASSWORD
    service_urls: dict[str, str] = field(default_factory=dict)

    def require_own(self, why: str) -> None:
        """Skip a test that needs the stack this suite started itself."""
        if not self.state_dir:
            pytest.skip(f"needs the launcher's own stack ({why}); E2E_GATEWAY_URL points elsewhere")

    async def rabbitmq(self, action: str) -> None:
        """`stop_app` / `start_app` the test stack's broker: its port closes and every client
        is disconnected, as in an outage, while the node (and its data) stays."""
        self.require_own("it stops and starts RabbitMQ")
        port = PORTS["RABBITMQ_PORT"]
        env = {**os.environ, "HOME": f"{self.state_dir}/rabbitmq"}
        proc = await asyncio.create_subprocess_exec(
            "/usr/lib/rabbitmq/bin/rabbitmqctl", "-n", f"rp{port}@localhost", action,
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await proc.communicate()
        assert proc.returncode == 0, out.decode()

    def service_env(self) -> dict[str, str]:
        """What a further service process needs to join this stack (e.g. a second chat)."""
        self.require_own("it starts a further service process")
        env = _stack_env(self.state_dir)
        env.update(
            MONGODB_URL=self.mongodb_url,
            REDIS_URL=self.redis_url,
            RABBITMQ_URL=self.rabbitmq_url,
            AUTH_URL=self.service("auth"),
            MODULES_URL=self.service("modules"),
            OPENAI_BASE_URL=f"{self.fake_upstream}/v1",
            OPENAI_API_KEY="fake-dev-key",
            ANTHROPIC_BASE_URL=self.fake_upstream,
            ANTHROPIC_API_KEY="fake-dev-key",
        )
        return env

    def service(self, name: str) -> str:
        """A service's own address, to check it re-verifies tokens without the gateway."""
        if name in self.service_urls:
            return self.service_urls[name]
        return f"http://127.0.0.1:{PORTS[name.upper() + '_PORT']}"


def _stack_env(state_dir: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "ANTHROPIC_"))
        and k not in ("MONGODB_URL", "REDIS_URL", "RABBITMQ_URL", "JWT_SECRET_KEY")
    }
    env.update({k: str(v) for k, v in PORTS.items()})
    env.update(
        STATE_DIR=state_dir,
        APP_ENV="test",
        JWT_SECRET_KEY=JWT_SECRET,
        # Every test signs in from 127.0.0.1; the per-client limit is tested in-process.
        SIGNIN_FAILURES_PER_CLIENT="100000",
        # Failures reach the fallback at once instead of being retried inside the SDK.
        LLM_MAX_RETRIES="0",
        FALLBACK_PROVIDER="anthropic",
        BOOTSTRAP_ADMIN_EMAIL=ADMIN_EMAIL,
        BOOTSTRAP_ADMIN_PASSWORD=ADMIN_PASSWORD,
    )
    return env


def _external_stack() -> Stack | None:
    """A stack someone else started (the compose `test` profile): its addresses from E2E_*."""
    gateway = os.environ.get("E2E_GATEWAY_URL")
    if not gateway:
        return None
    env = os.environ
    return Stack(
        gateway=gateway,
        fake_upstream=env["E2E_FAKE_UPSTREAM_URL"],
        rabbitmq_url=env["E2E_RABBITMQ_URL"],
        mongodb_url=env["E2E_MONGODB_URL"],
        redis_url=env["E2E_REDIS_URL"],
        state_dir="",
        jwt_secret=env["JWT_SECRET_KEY"],
        admin_email=env["BOOTSTRAP_ADMIN_EMAIL"],
        admin_password=env["BOOTSTRAP_ADMIN_PASSWORD"],
        service_urls={
            name: env.get(f"E2E_{name.upper()}_URL", f"http://{name}:8000")
            for name in ("auth", "modules", "chat", "usage")
        },
    )


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    external = _external_stack()
    if external is not None:
        yield external
        return
    with tempfile.TemporaryDirectory(prefix="rp-e2e-") as state_dir:
        log_path = Path(state_dir) / "launcher.log"
        with log_path.open("w+") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "devstack", "run", "--logs", "files"],
                cwd=ROOT,
                env=_stack_env(state_dir),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                _wait_ready(proc, log_path)
                yield Stack(
                    gateway=f"http://127.0.0.1:{PORTS['GATEWAY_PORT']}",
                    fake_upstream=f"http://127.0.0.1:{PORTS['FAKE_UPSTREAM_PORT']}",
                    rabbitmq_url=f"amqp://guest:guest@127.0.0.1:{PORTS['RABBITMQ_PORT']}/",
                    mongodb_url=f"mongodb://127.0.0.1:{PORTS['MONGODB_PORT']}",
                    redis_url=f"redis://127.0.0.1:{PORTS['REDIS_PORT']}/0",
                    state_dir=state_dir,
                )
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _wait_ready(proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        text = log_path.read_text()
        if "READY gateway=" in text:
            return
        if proc.poll() is not None:
            raise RuntimeError(f"the launcher exited ({proc.returncode}):\n{text[-5000:]}")
        time.sleep(0.2)
    raise RuntimeError(f"the stack was not ready in time:\n{log_path.read_text()[-5000:]}")


@pytest.fixture(scope="session")
async def client(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.gateway, timeout=30) as c:
        yield c


@pytest.fixture(scope="session")
async def upstream(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.fake_upstream, timeout=10) as c:
        yield c


@pytest.fixture
async def fake(upstream: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    """The fake LLM upstream, put back to its defaults (and history cleared) afterwards."""
    await upstream.post("/_fake/reset")
    yield upstream
    await upstream.post("/_fake/reset")


@pytest.fixture(scope="session")
async def admin_token(client: httpx.AsyncClient, stack: Stack) -> str:
    response = await client.post(
        "/user/signin", json={"email": stack.admin_email, "password": stack.admin_password}
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


PASSWORD = "StrongPassword1!"


@dataclass(frozen=True)
class Account:
    id: str
    email: str
    level: int
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


class Accounts:
    """Makes signed-up users at any level, each with a fresh email, through the gateway."""

    def __init__(self, client: httpx.AsyncClient, admin_token: str):
        self._client = client
        self._admin = {"authorization": f"Bearer {admin_token}"}

    async def create(self, level: int, name: str = "user") -> Account:
        email = f"{name}.{uuid.uuid4().hex[:10]}@example.com"
        allowed = await self._client.post(
            "/user/allowed-users",
            json={"emails": email, "access_level": level if level else 1},
            headers=self._admin,
        )
        assert allowed.status_code == 200, allowed.text
        signup = await self._client.post(
            "/user/signup", json={"email": email, "password": PASSWORD}
        )
        assert signup.status_code == 200, signup.text
        body = signup.json()
        account = Account(body["user"]["id"], email, level, body["access_token"])
        if level == 0:
            deleted = await self._client.delete(f"/user/{account.id}", headers=self._admin)
            assert deleted.status_code == 200, deleted.text
        return account


async def create_module(
    client: httpx.AsyncClient,
    manager: Account,
    prompt: str = "You are Pat, an impatient customer whose internet has been down for two days.",
    title: str = "Outage",
) -> str:
    """A training module made by `manager` through the gateway; returns its id."""
    r = await client.post(
        "/module/create", json={"title": title, "system_prompt": prompt}, headers=manager.headers
    )
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


@pytest.fixture(scope="session")
async def accounts(client: httpx.AsyncClient, admin_token: str) -> Accounts:
    return Accounts(client, admin_token)


# --- chat: streaming turns and the usage events they publish --------------------------


@dataclass
class StreamedTurn:
    status: int
    headers: httpx.Headers
    events: list[SSEEvent] = field(default_factory=list)
    arrived: list[float] = field(default_factory=list)

    def of(self, name: str) -> list[Any]:
        return [e.data for e in self.events if e.event == name]

    @property
    def text(self) -> str:
        return "".join(d["text"] for d in self.of("delta"))


async def stream_chat(client: httpx.AsyncClient, token: str, body: dict[str, Any]) -> StreamedTurn:
    parser = SSEParser()
    headers = {"authorization": f"Bearer {token}"}
    async with client.stream("POST", "/stream_chat", json=body, headers=headers) as response:
        turn = StreamedTurn(response.status_code, response.headers)
        if response.status_code != 200:
            await response.aread()
            turn.events.append(SSEEvent("http-error", response.json()))
            return turn
        async for chunk in response.aiter_raw():
            for event in parser.feed(chunk):
                turn.events.append(event)
                turn.arrived.append(time.perf_counter())
    return turn


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


TakeEvents = Callable[..., Awaitable[list[dict[str, Any]]]]


@pytest.fixture
async def usage_events(
    stack: Stack,
) -> AsyncIterator[Callable[..., Awaitable[list[dict[str, Any]]]]]:
    """A queue bound to the usage routing key, to see what chat publishes."""
    connection = await aio_pika.connect(stack.rabbitmq_url)
    channel = await connection.channel()
    exchange = await channel.declare_exchange(
        stack.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, routing_key="chat.usage.#")

    async def take(n: int, wait_s: float = 10.0) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + wait_s
        while len(got) < n and time.monotonic() < deadline:
            message = await queue.get(fail=False)
            if message is None:
                await asyncio.sleep(0.05)
                continue
            await message.ack()
            got.append(orjson.loads(message.body))
        return got

    yield take
    await connection.close()
