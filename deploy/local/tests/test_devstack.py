"""Tests for the native launcher: real processes, real servers, unusual ports."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import stat
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import httpx
import pytest
from devstack import SERVICES, ConfigError, Stack, StackConfig, install, probes
from devstack.install import FERRETDB_VERSION, ferretdb_ok, ferretdb_path
from devstack.process import group_alive

ROOT = Path(__file__).resolve().parents[3]

# Variables a developer's shell may have set that would change what the launcher does.
_CONFIG_VARS = (
    "MONGODB_URL", "REDIS_URL", "RABBITMQ_URL", "MONGODB_PORT", "REDIS_PORT", "RABBITMQ_PORT",
    "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL",
    "FAKE_UPSTREAM_PORT", "FAKE_UPSTREAM_URL", "AUTH_PORT", "MODULES_PORT", "CHAT_PORT",
    "USAGE_PORT", "USAGE_URL",
    "GATEWAY_PORT", "AUTH_URL", "MODULES_URL", "CHAT_URL", "APP_ENV", "JWT_SECRET_KEY",
    "BOOTSTRAP_ADMIN_EMAIL", "BOOTSTRAP_ADMIN_PASSWORD", "STATE_DIR", "ERL_EPMD_PORT",
)  # fmt: skip


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _CONFIG_VARS}
    env.update(extra)
    return env


def free_port(below: int = 65535) -> int:
    """A port that is free now (and, for RabbitMQ, whose +20000 distribution port is free too)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < below and probes.port_is_free(port):
            return port


def rabbit_port() -> int:
    while True:
        port = free_port(below=45000)
        if probes.port_is_free(port + 20000):
            return port


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# --- configuration ----------------------------------------------------------------------------


def test_config_defaults(tmp_path: Path) -> None:
    c = StackConfig.from_env(clean_env(STATE_DIR=str(tmp_path)))
    f = c.filled
    assert c.state_dir == tmp_path.resolve()
    assert (c.mongodb_port, c.redis_port, c.rabbitmq_port) == (27017, 6379, 5672)
    assert f["MONGODB_URL"] == "mongodb://127.0.0.1:27017"
    assert f["REDIS_URL"] == "redis://127.0.0.1:6379/0"
    assert f["RABBITMQ_URL"] == "amqp://guest:guest@127.0.0.1:5672/"
    assert [(s.name, s.port) for s in c.services] == [
        ("auth", 8101), ("modules", 8102), ("chat", 8103), ("usage", 8104), ("gateway", 8000),
    ]  # fmt: skip
    assert f["AUTH_URL"] == "http://127.0.0.1:8101"
    assert f["MODULES_URL"] == "http://127.0.0.1:8102"
    assert f["CHAT_URL"] == "http://127.0.0.1:8103"
    assert f["USAGE_URL"] == "http://127.0.0.1:8104"
    assert c.gateway_url == "http://127.0.0.1:8000"
    assert c.fake_upstream_port == 8199
    assert f["FAKE_UPSTREAM_URL"] == "http://127.0.0.1:8199"
    assert f["OPENAI_BASE_URL"] == "http://127.0.0.1:8199/v1"
    assert f["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:8199"
    assert f["OPENAI_API_KEY"] == f["ANTHROPIC_API_KEY"] == "fake-dev-key"
    assert f["APP_ENV"] == "dev"
    assert f["BOOTSTRAP_ADMIN_EMAIL"] == "admin@example.com"
    assert f["BOOTSTRAP_ADMIN_PASSWORD"] == "AdminPassword1!"
    assert c.admin_password_defaulted
    assert len(f["JWT_SECRET_KEY"]) >= 64  # 48 random bytes, urlsafe base64
    assert c.env["PATH"] == os.environ["PATH"]  # the rest of the environment is passed on
    assert c.ferretdb_bin == ROOT / ".local" / "bin" / "ferretdb"
    assert c.repo_root == ROOT


def test_config_default_state_dir_is_in_the_repo() -> None:
    c = StackConfig.from_env(clean_env(JWT_SECRET_KEY="k"))
    assert c.state_dir == ROOT / ".local" / "state"
    assert c.log_dir == ROOT / ".local" / "state" / "logs"


def test_config_keeps_what_is_set(tmp_path: Path) -> None:
    given = {
        "STATE_DIR": str(tmp_path),
        "MONGODB_URL": "mongodb://db.example:27017/x",
        "REDIS_URL": "redis://cache.example:6380/2",
        "RABBITMQ_URL": "amqp://u:p@mq.example:5672/v",
        "OPENAI_API_KEY": "sk-real",
        "ANTHROPIC_API_KEY": "ak-real",
        "AUTH_PORT": "9101",
        "GATEWAY_PORT": "9000",
        "CHAT_URL": "http://chat.example",
        "APP_ENV": "test",
        "JWT_SECRET_KEY": "given-secret",
        "BOOTSTRAP_ADMIN_EMAIL": "boss@example.com",
        "BOOTSTRAP_ADMIN_PASSWORD": "Secret-Password-2",
    }
    c = StackConfig.from_env(clean_env(**given))
    for key, value in given.items():
        assert c.env[key] == value
        assert key not in c.filled
    assert c.mongodb_port is c.redis_port is c.rabbitmq_port is None
    assert c.fake_upstream_port is None
    assert not any(k.startswith(("FAKE_UPSTREAM", "OPENAI_BASE", "ANTHROPIC_BASE")) for k in c.env)
    assert c.filled["AUTH_URL"] == "http://127.0.0.1:9101"
    assert c.gateway_url == "http://127.0.0.1:9000"
    assert not c.admin_password_defaulted
    assert not (tmp_path / "jwt_secret").exists()


@pytest.mark.parametrize(
    ("keys", "fills"),
    [
        ({}, {"OPENAI_BASE_URL", "OPENAI_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY"}),
        ({"OPENAI_API_KEY": "sk"}, {"ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY"}),
        ({"ANTHROPIC_API_KEY": "ak"}, {"OPENAI_BASE_URL", "OPENAI_API_KEY"}),
        ({"OPENAI_API_KEY": "sk", "ANTHROPIC_API_KEY": "ak"}, set()),
    ],
)
def test_fake_upstream_only_for_missing_keys(
    tmp_path: Path, keys: dict[str, str], fills: set[str]
) -> None:
    env = clean_env(STATE_DIR=str(tmp_path), FAKE_UPSTREAM_PORT="18999", **keys)
    c = StackConfig.from_env(env)
    vendor_vars = {k for k in c.filled if k.startswith(("OPENAI_", "ANTHROPIC_"))}
    assert vendor_vars == fills
    if fills:
        assert c.fake_upstream_port == 18999
        assert c.filled["FAKE_UPSTREAM_URL"] == "http://127.0.0.1:18999"
    else:
        assert c.fake_upstream_port is None
        assert "FAKE_UPSTREAM_URL" not in c.env


def test_base_url_given_without_key_is_kept(tmp_path: Path) -> None:
    env = clean_env(STATE_DIR=str(tmp_path), OPENAI_BASE_URL="http://proxy.example/v1")
    c = StackConfig.from_env(env)
    assert c.env["OPENAI_BASE_URL"] == "http://proxy.example/v1"
    assert c.env["OPENAI_API_KEY"] == "fake-dev-key"


def test_jwt_secret_is_persisted(tmp_path: Path) -> None:
    first = StackConfig.from_env(clean_env(STATE_DIR=str(tmp_path / "a")))
    again = StackConfig.from_env(clean_env(STATE_DIR=str(tmp_path / "a")))
    other = StackConfig.from_env(clean_env(STATE_DIR=str(tmp_path / "b")))
    secret = first.env["JWT_SECRET_KEY"]
    assert again.env["JWT_SECRET_KEY"] == secret
    assert other.env["JWT_SECRET_KEY"] != secret
    path = tmp_path / "a" / "jwt_secret"
    assert path.read_text().strip() == secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "bad", [{"REDIS_PORT": "sixty"}, {"GATEWAY_PORT": "70000"}, {"CHAT_PORT": "8101"}]
)
def test_bad_ports_are_config_errors(tmp_path: Path, bad: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        StackConfig.from_env(clean_env(STATE_DIR=str(tmp_path), **bad))


def test_service_table() -> None:
    assert [s.app for s in SERVICES] == [
        "auth.main:create_app", "modules.main:create_app", "chat.main:create_app",
        "usage.main:create_app", "gateway.main:create_app",
    ]  # fmt: skip
    assert SERVICES[-1].name == "gateway"


# --- install ------------------------------------------------------------------------------------


def test_install_is_idempotent() -> None:
    messages: list[str] = []
    install(ROOT, log=messages.append)  # may build FerretDB on a fresh machine
    assert ferretdb_ok(ferretdb_path(ROOT))
    messages.clear()
    started = time.monotonic()
    install(ROOT, log=messages.append)
    assert messages == []  # nothing to do, nothing said
    assert time.monotonic() - started < 10
    assert FERRETDB_VERSION == "v1.24.2"


# --- the backing servers, for real -------------------------------------------------------------


async def test_backing_servers_start_answer_and_stop(tmp_path: Path) -> None:
    ports = {
        "MONGODB_PORT": free_port(),
        "REDIS_PORT": free_port(),
        "RABBITMQ_PORT": rabbit_port(),
        "ERL_EPMD_PORT": free_port(),  # a private epmd, so we see the launcher stop it
    }
    env = clean_env(
        STATE_DIR=str(tmp_path), OPENAI_API_KEY="x", ANTHROPIC_API_KEY="y",
        **{k: str(v) for k, v in ports.items()},
    )  # fmt: skip
    config = StackConfig.from_env(env, services=(), logs="files")
    install(ROOT, log=lambda _: None)
    stack = Stack(config)
    try:
        await stack.start_backing()
        assert sorted(p.name for p in stack.backing) == ["ferretdb", "rabbitmq", "redis"]
        assert stack.started_epmd

        assert await _redis_ping(ports["REDIS_PORT"]) == b"+PONG\r\n"
        assert await probes.mongo_hello(ports["MONGODB_PORT"])
        connection = await aio_pika.connect(config.env["RABBITMQ_URL"])
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(exclusive=True)
            await channel.default_exchange.publish(
                aio_pika.Message(b"hello"), routing_key=queue.name
            )
            message = await queue.get(timeout=5, fail=False)
            for _ in range(50):
                if message is not None:
                    break
                await asyncio.sleep(0.1)
                message = await queue.get(timeout=5, fail=False)
            assert message is not None and message.body == b"hello"
            await message.ack()

        # A second launcher reuses servers that already answer instead of failing.
        second = Stack(config)
        await second.start_backing()
        assert second.backing == []
        assert set(second.reused) == {"ferretdb", "redis", "rabbitmq"}
        await second.stop()
    finally:
        pids = [p.pid for p in stack.backing]
        await stack.stop()

    for pid in pids:
        assert pid is not None and pid_gone(pid) and not group_alive(pid)
    for var, port in ports.items():
        assert probes.port_is_free(port), f"{var} {port} still in use"
    assert probes.port_is_free(ports["RABBITMQ_PORT"] + 20000)
    logs = config.log_dir
    assert {p.name for p in logs.iterdir()} >= {"ferretdb.log", "redis.log", "rabbitmq.log"}


async def _redis_ping(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"PING\r\n")
    await writer.drain()
    reply = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return reply


async def test_backing_port_taken_by_something_else(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        env = clean_env(
            STATE_DIR=str(tmp_path), REDIS_PORT=str(port), MONGODB_URL="mongodb://x",
            RABBITMQ_URL="amqp://x", OPENAI_API_KEY="x", ANTHROPIC_API_KEY="y",
        )  # fmt: skip
        stack = Stack(StackConfig.from_env(env, services=(), logs="files"))
        with pytest.raises(Exception, match=rf"port {port} .*REDIS_PORT"):
            await stack.start_backing()
        await stack.stop()
        assert stack.backing == []


# --- the foreground run, with stand-in services ---------------------------------------------------

STANDIN = """
import json, os, threading

SHOWN = ("AUTH_URL", "MODULES_URL", "CHAT_URL", "MONGODB_URL", "REDIS_URL", "RABBITMQ_URL",
         "OPENAI_BASE_URL", "OPENAI_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY",
         "FAKE_UPSTREAM_URL", "APP_ENV", "JWT_SECRET_KEY", "BOOTSTRAP_ADMIN_EMAIL",
         "BOOTSTRAP_ADMIN_PASSWORD")

def create_app():
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = json.dumps({k: os.environ.get(k) for k in SHOWN}).encode()
        status = 200 if scope["path"] in ("/healthz", "/env") else 404
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": body})
    return app

def create_crashing_app():
    threading.Timer(2.0, os._exit, (3,)).start()
    return create_app()
"""

FAKE_UPSTREAM_MAIN = """
import os, uvicorn, standin
uvicorn.run(standin.create_app(), host="127.0.0.1", port=int(os.environ["FAKE_UPSTREAM_PORT"]),
            log_level="warning")
"""

DRIVER = """
import asyncio, json, sys
from devstack import ServiceSpec, StackConfig, run
specs = tuple(ServiceSpec(*s) for s in json.loads(sys.argv[1]))
sys.exit(asyncio.run(run(StackConfig.from_env(services=specs, logs=sys.argv[2]))))
"""


@pytest.fixture
def standin_dir(tmp_path: Path) -> Path:
    code = tmp_path / "code"
    (code / "fake_upstream").mkdir(parents=True)
    (code / "standin.py").write_text(STANDIN)
    (code / "fake_upstream" / "__init__.py").write_text("")
    (code / "fake_upstream" / "__main__.py").write_text(FAKE_UPSTREAM_MAIN)
    (code / "driver.py").write_text(DRIVER)
    return code


class Launcher:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    async def wait_for(self, prefix: str, limit: float = 60) -> str | None:
        """Read output until a line starts with ``prefix``; None if the launcher exited first."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(limit):
            while raw := await self.proc.stdout.readline():
                line = raw.decode().rstrip("\n")
                self.lines.append(line)
                if line.startswith(prefix):
                    return line
        return None

    async def finish(self, limit: float = 60) -> int:
        assert self.proc.stdout is not None
        async with asyncio.timeout(limit):
            rest = await self.proc.stdout.read()
            self.lines += rest.decode().splitlines()
            return await self.proc.wait()


@contextlib.asynccontextmanager
async def launcher(
    code: Path, specs: list[tuple[str, str, str, int, str | None]], env: dict[str, str],
    logs: str = "files",
) -> AsyncIterator[Launcher]:  # fmt: skip
    env = {**env, "PYTHONPATH": str(code)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(code / "driver.py"), json.dumps(specs), logs, env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        yield Launcher(proc)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(30):
                    await proc.wait()
            except TimeoutError:
                os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()


def standin_specs(crash: bool = False) -> list[tuple[str, str, str, int, str | None]]:
    gateway_app = "standin:create_crashing_app" if crash else "standin:create_app"
    return [
        ("auth", "standin:create_app", "AUTH_PORT", free_port(), "AUTH_URL"),
        ("chat", "standin:create_app", "CHAT_PORT", free_port(), "CHAT_URL"),
        ("gateway", gateway_app, "GATEWAY_PORT", free_port(), None),
    ]


def no_backing_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return clean_env(
        STATE_DIR=str(tmp_path / "state"), MONGODB_URL="mongodb://127.0.0.1:1",
        REDIS_URL="redis://127.0.0.1:1/0", RABBITMQ_URL="amqp://guest:guest@127.0.0.1:1/",
        FAKE_UPSTREAM_PORT=str(free_port()), **extra,
    )  # fmt: skip


async def test_run_starts_services_and_stops_on_signal(tmp_path: Path, standin_dir: Path) -> None:
    specs = standin_specs()
    env = no_backing_env(tmp_path, ANTHROPIC_API_KEY="ak-given")
    fake_port = int(env["FAKE_UPSTREAM_PORT"])
    async with launcher(standin_dir, specs, env) as la:
        ready = await la.wait_for("READY")
        assert ready == f"READY gateway=http://127.0.0.1:{specs[-1][3]}", la.output
        assert "admin account: admin@example.com / AdminPassword1!" in la.output
        async with httpx.AsyncClient(trust_env=False) as client:
            seen = (await client.get(f"http://127.0.0.1:{specs[1][3]}/env")).json()
            assert (await client.get(f"http://127.0.0.1:{fake_port}/healthz")).status_code == 200
        assert seen["AUTH_URL"] == f"http://127.0.0.1:{specs[0][3]}"
        assert seen["CHAT_URL"] == f"http://127.0.0.1:{specs[1][3]}"
        assert seen["OPENAI_BASE_URL"] == f"http://127.0.0.1:{fake_port}/v1"
        assert seen["OPENAI_API_KEY"] == "fake-dev-key"
        assert seen["ANTHROPIC_API_KEY"] == "ak-given"
        assert seen["ANTHROPIC_BASE_URL"] is None
        assert seen["FAKE_UPSTREAM_URL"] == f"http://127.0.0.1:{fake_port}"
        assert seen["MONGODB_URL"] == "mongodb://127.0.0.1:1"
        assert seen["APP_ENV"] == "dev"
        secret = (tmp_path / "state" / "jwt_secret").read_text().strip()
        assert seen["JWT_SECRET_KEY"] == secret

        la.proc.send_signal(signal.SIGINT)
        assert await la.finish() == 0, la.output
    for port in [fake_port, *(s[3] for s in specs)]:
        assert probes.port_is_free(port)
    logs = tmp_path / "state" / "logs"
    assert {p.name for p in logs.iterdir()} == {
        "auth.log", "chat.log", "gateway.log", "fake-upstream.log",
    }  # fmt: skip
    assert "[auth]" not in la.output  # --logs files: children's output only in files


async def test_console_logs_are_prefixed(tmp_path: Path, standin_dir: Path) -> None:
    specs = standin_specs()[-1:]
    env = no_backing_env(tmp_path, OPENAI_API_KEY="k", ANTHROPIC_API_KEY="k")
    async with launcher(standin_dir, specs, env, logs="console") as la:
        assert await la.wait_for("READY") is not None, la.output
        la.proc.send_signal(signal.SIGTERM)
        assert await la.finish() == 0, la.output
    assert any(line.startswith("[gateway] ") for line in la.lines), la.output
    assert "gateway.log" in {p.name for p in (tmp_path / "state" / "logs").iterdir()}


async def test_a_crash_stops_everything(tmp_path: Path, standin_dir: Path) -> None:
    specs = standin_specs(crash=True)
    env = no_backing_env(tmp_path, OPENAI_API_KEY="k", ANTHROPIC_API_KEY="k")
    async with launcher(standin_dir, specs, env) as la:
        assert await la.wait_for("READY") is not None, la.output
        assert await la.finish() == 1
    assert "gateway exited unexpectedly with code 3" in la.output
    for spec in specs:
        assert probes.port_is_free(spec[3])


async def test_a_service_that_cannot_start_shows_its_log(tmp_path: Path, standin_dir: Path) -> None:
    specs = standin_specs()
    specs[1] = ("chat", "standin:no_such_factory", "CHAT_PORT", specs[1][3], "CHAT_URL")
    env = no_backing_env(tmp_path, OPENAI_API_KEY="k", ANTHROPIC_API_KEY="k")
    async with launcher(standin_dir, specs, env) as la:
        assert await la.wait_for("READY") is None
        assert await la.finish() == 1
    assert "chat exited with code" in la.output
    assert "no_such_factory" in la.output  # from the tail of chat.log
    for spec in specs:
        assert probes.port_is_free(spec[3])


async def test_a_taken_service_port_is_named(tmp_path: Path, standin_dir: Path) -> None:
    specs = standin_specs()
    env = no_backing_env(tmp_path, OPENAI_API_KEY="k", ANTHROPIC_API_KEY="k")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", specs[0][3]))
        squatter.listen()
        async with launcher(standin_dir, specs, env) as la:
            assert await la.wait_for("READY") is None
            assert await la.finish() == 1
    assert f"port {specs[0][3]} is already in use" in la.output
    assert "AUTH_PORT" in la.output


# --- the real thing, once the services exist ------------------------------------------------------


async def test_cli_runs_the_whole_stack(tmp_path: Path) -> None:
    ports = {
        "MONGODB_PORT": free_port(), "REDIS_PORT": free_port(), "RABBITMQ_PORT": rabbit_port(),
        "FAKE_UPSTREAM_PORT": free_port(), "AUTH_PORT": free_port(),
        "MODULES_PORT": free_port(), "CHAT_PORT": free_port(), "GATEWAY_PORT": free_port(),
        "USAGE_PORT": free_port(),
    }  # fmt: skip
    env = clean_env(STATE_DIR=str(tmp_path), **{k: str(v) for k, v in ports.items()})
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "devstack", "run", "--logs", "files", env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    la = Launcher(proc)
    try:
        ready = await la.wait_for("READY", limit=600)
        assert ready == f"READY gateway=http://127.0.0.1:{ports['GATEWAY_PORT']}", la.output
        async with httpx.AsyncClient(trust_env=False) as client:
            for var in ("AUTH_PORT", "MODULES_PORT", "CHAT_PORT", "USAGE_PORT", "GATEWAY_PORT"):
                response = await client.get(f"http://127.0.0.1:{ports[var]}/healthz")
                assert response.status_code == 200, var
        proc.send_signal(signal.SIGTERM)
        assert await la.finish() == 0, la.output
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    for var, port in ports.items():
        assert probes.port_is_free(port), f"{var} {port} still in use"
