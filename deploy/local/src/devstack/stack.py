"""Start the backing servers and the services, watch them, stop them in reverse order."""

from __future__ import annotations

import asyncio
import importlib.util
import signal
from collections.abc import Awaitable, Callable, Sequence

import httpx

from . import probes
from .config import HOST, Service, StackConfig
from .install import epmd_path, rabbitmq_server_path, redis_server_path
from .process import ManagedProcess

Check = Callable[[], Awaitable[bool]]

SERVICE_STOP_TIMEOUT = 10.0


class StartError(Exception):
    """Something could not be started; the message says what and why."""


def say(msg: str) -> None:
    print(f"[devstack] {msg}", flush=True)


def _tail_text(proc: ManagedProcess, n: int = 30) -> str:
    lines = proc.tail(n)
    if not lines:
        return f"\n(no output in {proc.log_path})"
    return f"\n--- last {len(lines)} lines of {proc.log_path} ---\n" + "\n".join(lines)


def uvicorn_speedups() -> list[str]:
    args = []
    if importlib.util.find_spec("uvloop"):
        args += ["--loop", "uvloop"]
    if importlib.util.find_spec("httptools"):
        args += ["--http", "httptools"]
    return args


class Stack:
    """The processes of one launcher run.

    ``backing`` holds the backing servers we started (reused ones are not ours and are left
    alone); ``services`` holds the fake upstream and the services, in start order.
    """

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.backing: list[ManagedProcess] = []
        self.services: list[ManagedProcess] = []
        self.reused: dict[str, int] = {}
        self.started_epmd = False
        self.crashed = asyncio.Event()
        self.crash_message = ""
        self._stopping = False
        self._watchers: list[asyncio.Task[None]] = []

    @property
    def processes(self) -> list[ManagedProcess]:
        return [*self.backing, *self.services]

    # --- starting ------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.start_backing()
        await self.start_services()

    async def start_backing(self) -> None:
        """FerretDB, Redis and RabbitMQ, concurrently (those the config makes ours)."""
        c = self.config
        starters = []
        if c.mongodb_port is not None:
            starters.append(self._start_ferretdb(c.mongodb_port))
        if c.redis_port is not None:
            starters.append(self._start_redis(c.redis_port))
        if c.rabbitmq_port is not None:
            starters.append(self._start_rabbitmq(c.rabbitmq_port))
        await _all_or_nothing(starters)

    async def start_services(self) -> None:
        """The fake upstream and all services but the last concurrently; then the last (gateway)."""
        c = self.config
        *first, last = c.services or (None,)
        async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:
            starters = [self._start_service(svc, client) for svc in first if svc is not None]
            if c.fake_upstream_port is not None:
                argv = [c.python, "-m", "fake_upstream"]
                starters.insert(
                    0,
                    self._start_http(
                        "fake-upstream", argv, c.fake_upstream_port, "FAKE_UPSTREAM_PORT", client
                    ),
                )
            await _all_or_nothing(starters)
            if last is not None:
                await self._start_service(last, client)

    async def _start_service(self, svc: Service, client: httpx.AsyncClient) -> None:
        argv = [
            self.config.python, "-m", "uvicorn", svc.spec.app, "--factory",
            "--host", HOST, "--port", str(svc.port), "--no-access-log",
            # Streams in flight get this long to finish on Ctrl-C (short: it is a dev stack).
            "--timeout-graceful-shutdown",
            self.config.env.get("UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN", "5"),
            *uvicorn_speedups(),
        ]  # fmt: skip
        await self._start_http(svc.name, argv, svc.port, svc.spec.port_var, client)

    async def _start_http(
        self, name: str, argv: list[str], port: int, port_var: str, client: httpx.AsyncClient
    ) -> None:
        if not probes.port_is_free(port):
            raise StartError(
                f"cannot start {name}: port {port} is already in use by another program "
                f"(stop it, or set {port_var} to a free port)"
            )
        proc = await self._spawn(name, argv, self.config.env, self.services)
        url = f"http://{HOST}:{port}/healthz"
        await self._wait_ready(
            proc, lambda: probes.http_ok(client, url), self.config.service_timeout, 0.1
        )

    async def _start_backing_server(
        self,
        name: str,
        port: int,
        port_var: str,
        url_var: str,
        answers: Callable[[int], Awaitable[bool]],
        ready: Check,
        argv: list[str],
        env: dict[str, str],
        extra_ports: Sequence[int] = (),
        before_start: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        if await answers(port):
            say(f"{name}: using the server already answering on {HOST}:{port}")
            self.reused[name] = port
            return
        for p in (port, *extra_ports):
            if not probes.port_is_free(p):
                raise StartError(
                    f"cannot start {name}: port {p} is in use by something that is not {name} "
                    f"(free it, or set {port_var} to another port, or {url_var} to use a "
                    "server of your own)"
                )
        if before_start:
            await before_start()
        proc = await self._spawn(name, argv, env, self.backing)
        await self._wait_ready(proc, ready, self.config.backing_timeout, 0.25)

    async def _start_ferretdb(self, port: int) -> None:
        c = self.config
        data = c.state_dir / "ferretdb"
        data.mkdir(parents=True, exist_ok=True)
        argv = [
            str(c.ferretdb_bin), "--handler=sqlite", f"--sqlite-url=file:{data}/",
            f"--state-dir={data}", f"--listen-addr={HOST}:{port}", "--debug-addr=-",
            "--telemetry=disable", "--log-level=warn",
        ]  # fmt: skip
        await self._start_backing_server(
            "ferretdb", port, "MONGODB_PORT", "MONGODB_URL", probes.mongo_hello,
            lambda: probes.mongo_hello(port), argv, c.env,
        )  # fmt: skip

    async def _start_redis(self, port: int) -> None:
        c = self.config
        data = c.state_dir / "redis"
        data.mkdir(parents=True, exist_ok=True)
        argv = [
            redis_server_path() or "redis-server", "--bind", HOST, "--port", str(port),
            "--save", "", "--appendonly", "no", "--dir", str(data), "--daemonize", "no",
            "--loglevel", "warning",
        ]  # fmt: skip
        await self._start_backing_server(
            "redis", port, "REDIS_PORT", "REDIS_URL", probes.redis_answers,
            lambda: probes.redis_ready(port), argv, c.env,
        )  # fmt: skip

    async def _start_rabbitmq(self, port: int) -> None:
        c = self.config
        base = c.state_dir / "rabbitmq"
        for sub in ("mnesia", "log", "plugins-expand"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        conf = base / "rabbitmq.conf"
        conf.write_text("log.console.level = warning\nlog.file = false\n")
        (base / "enabled_plugins").write_text("[].\n")
        env = {k: v for k, v in c.env.items() if not k.startswith("RABBITMQ_")}
        env.update(
            RABBITMQ_NODENAME=f"rp{port}@localhost",
            RABBITMQ_NODE_IP_ADDRESS=HOST,
            RABBITMQ_NODE_PORT=str(port),
            RABBITMQ_DIST_PORT=str(port + 20000),
            RABBITMQ_MNESIA_BASE=str(base / "mnesia"),
            RABBITMQ_LOG_BASE=str(base / "log"),
            RABBITMQ_LOGS="-",
            RABBITMQ_CONFIG_FILE=str(conf),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(base / "enabled_plugins"),
            RABBITMQ_PLUGINS_EXPAND_DIR=str(base / "plugins-expand"),
            RABBITMQ_PID_FILE=str(base / "pid"),
            HOME=str(base),
            ERL_EPMD_PORT=str(c.epmd_port),
        )
        url = f"amqp://guest:guest@{HOST}:{port}/"

        async def note_epmd() -> None:
            # RabbitMQ starts epmd if none is running; then it is ours to stop at the end.
            if not await probes.tcp_open(c.epmd_port):
                self.started_epmd = True

        async def ready() -> bool:
            return await probes.tcp_open(port) and await probes.amqp_ready(url)

        await self._start_backing_server(
            "rabbitmq", port, "RABBITMQ_PORT", "RABBITMQ_URL", probes.amqp_answers, ready,
            [rabbitmq_server_path() or "rabbitmq-server"], env, extra_ports=(port + 20000,),
            before_start=note_epmd,
        )  # fmt: skip

    async def _spawn(
        self, name: str, argv: list[str], env: dict[str, str], group: list[ManagedProcess]
    ) -> ManagedProcess:
        c = self.config
        proc = ManagedProcess(
            name, argv, env=env, cwd=c.repo_root, log_path=c.log_dir / f"{name}.log",
            console=c.logs == "console",
        )  # fmt: skip
        try:
            await proc.start()
        except OSError as e:
            raise StartError(f"cannot start {name} ({argv[0]}): {e}") from e
        group.append(proc)
        self._watchers.append(asyncio.create_task(self._watch(proc)))
        return proc

    async def _watch(self, proc: ManagedProcess) -> None:
        code = await proc.wait()
        # Before it is ready, _wait_ready reports the exit (with a better message).
        if proc.ready and not self._stopping and not self.crashed.is_set():
            tail = _tail_text(proc)
            self.crash_message = f"{proc.name} exited unexpectedly with code {code}{tail}"
            self.crashed.set()

    async def _wait_ready(
        self, proc: ManagedProcess, check: Check, limit: float, interval: float
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while True:
            ok = await check()
            if proc.returncode is not None:
                raise StartError(
                    f"{proc.name} exited with code {proc.returncode} while starting"
                    + _tail_text(proc)
                )
            if ok:
                proc.ready = True
                say(f"{proc.name} is up (pid {proc.pid})")
                return
            if loop.time() >= deadline:
                raise StartError(
                    f"{proc.name} was not ready after {limit:.0f} s" + _tail_text(proc)
                )
            await asyncio.sleep(interval)

    # --- stopping ------------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop the services one by one in reverse order, then the backing servers. Idempotent."""
        self._stopping = True
        for proc in reversed(self.services):
            await _stop_quietly(proc, SERVICE_STOP_TIMEOUT)
        await asyncio.gather(
            *(_stop_quietly(p, self.config.stop_timeout) for p in reversed(self.backing))
        )
        if self.started_epmd:
            await self._kill_epmd()
            self.started_epmd = False
        for task in self._watchers:
            task.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        self._watchers.clear()

    async def _kill_epmd(self) -> None:
        epmd = epmd_path()
        if not epmd or not await probes.tcp_open(self.config.epmd_port):
            return
        env = {**self.config.env, "ERL_EPMD_PORT": str(self.config.epmd_port)}
        proc = await asyncio.create_subprocess_exec(
            epmd, "-kill", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            say(f"left epmd running on port {self.config.epmd_port}: {out.decode().strip()}")


async def _stop_quietly(proc: ManagedProcess, limit: float) -> None:
    try:
        await proc.stop(limit)
    except Exception as e:  # keep stopping the others
        say(f"error while stopping {proc.name}: {e!r}")


async def _all_or_nothing(coros: Sequence[Awaitable[None]]) -> None:
    """Run concurrently; on the first failure cancel the rest and raise one StartError."""
    if not coros:
        return
    try:
        async with asyncio.TaskGroup() as tg:
            for coro in coros:
                tg.create_task(coro)  # type: ignore[arg-type]
    except ExceptionGroup as eg:
        errors = eg.exceptions
        if all(isinstance(e, StartError) for e in errors):
            raise StartError("\n".join(str(e) for e in errors)) from None
        raise


# --- the foreground run ---------------------------------------------------------------------------


async def run(config: StackConfig) -> int:
    """Start everything, print READY, wait for SIGINT/SIGTERM or a crash, stop everything.

    Returns the exit code: 0 after a requested stop, 1 if something failed or crashed.
    """
    stack = Stack(config)
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop_requested.set)
    try:
        return await _supervise(stack, stop_requested)
    finally:
        say("stopping…")
        await stack.stop()
        for sig in signals:
            loop.remove_signal_handler(sig)
        say("stopped")


async def _supervise(stack: Stack, stop_requested: asyncio.Event) -> int:
    c = stack.config
    starting = asyncio.create_task(stack.start())
    stopper = asyncio.create_task(stop_requested.wait())
    crashed = asyncio.create_task(stack.crashed.wait())
    try:
        await asyncio.wait({starting, stopper, crashed}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            if isinstance(starting.exception(), StartError):
                say("start-up failed:")
                print(starting.exception(), flush=True)
                return 1
            starting.result()  # re-raise anything unexpected
            if not (stopper.done() or crashed.done()):
                _announce(c)
                await asyncio.wait({stopper, crashed}, return_when=asyncio.FIRST_COMPLETED)
        if crashed.done():
            say(stack.crash_message)
            return 1
        return 0
    finally:
        for task in (starting, stopper, crashed):
            task.cancel()
        await asyncio.gather(starting, stopper, crashed, return_exceptions=True)


def _announce(c: StackConfig) -> None:
    gateway = c.gateway_url
    if gateway:
        say(f"gateway listening on {gateway}")
    if c.admin_password_defaulted:
        say(f"admin account: {c.admin_email} / {c.admin_password}")
    say(f"logs in {c.log_dir}")
    print(f"READY gateway={gateway}" if gateway else "READY", flush=True)
    print("Press Ctrl-C to stop", flush=True)


__all__ = ["Stack", "StartError", "run", "say"]
