"""The stack under test: started by the suite (the project's launcher, on ports of its own, in a
temporary STATE_DIR) or already running (BENCH_* URLs); and process facts from /proc."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]

ADMIN_EMAIL = "admin@bench.example.com"
ADMIN_PASSWORD = "AdminPassword1!"
JWT_SECRET = "bench-" + "k" * 58
START_TIMEOUT_S = 300

# Away from `make run` (8000…) and the test suite (18000…); BENCH_PORT_OFFSET moves them all.
_BASE_PORTS = {
    "GATEWAY_PORT": 28000,
    "AUTH_PORT": 28101,
    "MODULES_PORT": 28102,
    "CHAT_PORT": 28103,
    "USAGE_PORT": 28104,
    "FAKE_UPSTREAM_PORT": 28199,
    "MONGODB_PORT": 37017,
    "REDIS_PORT": 26379,
    "RABBITMQ_PORT": 25672,
}


@dataclass(frozen=True)
class Endpoints:
    gateway: str
    modules: str
    chat: str
    upstream: str
    admin_email: str
    admin_password: str
    started_by_us: bool
    # Ports of the backing servers, when we know them (to find their processes).
    backing_ports: tuple[tuple[str, int], ...] = ()

    def pids(self) -> dict[str, int | None]:
        """The local processes of the stack, by name (None when not found)."""
        named = [
            ("gateway", port_of(self.gateway)),
            ("chat", port_of(self.chat)),
            ("modules", port_of(self.modules)),
            ("fake-upstream", port_of(self.upstream)),
            *self.backing_ports,
        ]
        found = {name: pid_listening_on(port) for name, port in named}
        found["loadgen"] = os.getpid()
        return found


def raise_fd_limit() -> tuple[int, int]:
    """Soft RLIMIT_NOFILE up to the hard limit; the stack started from here inherits it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def external_endpoints() -> Endpoints | None:
    """A stack someone else started: BENCH_GATEWAY_URL (and the others) given."""
    gateway = os.environ.get("BENCH_GATEWAY_URL")
    if not gateway:
        return None
    missing = [
        v
        for v in ("BENCH_MODULES_URL", "BENCH_CHAT_URL", "BENCH_UPSTREAM_URL")
        if not os.environ.get(v)
    ]
    if missing:
        raise SystemExit(f"BENCH_GATEWAY_URL is set: also set {', '.join(missing)}")
    return Endpoints(
        gateway=gateway.rstrip("/"),
        modules=os.environ["BENCH_MODULES_URL"].rstrip("/"),
        chat=os.environ["BENCH_CHAT_URL"].rstrip("/"),
        upstream=os.environ["BENCH_UPSTREAM_URL"].rstrip("/"),
        admin_email=os.environ.get("BENCH_ADMIN_EMAIL", "admin@example.com"),
        admin_password=os.environ.get("BENCH_ADMIN_PASSWORD", "AdminPassword1!"),
        started_by_us=False,
    )


def _ports() -> dict[str, int]:
    offset = int(os.environ.get("BENCH_PORT_OFFSET", "0"))
    return {name: port + offset for name, port in _BASE_PORTS.items()}


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def stack_env(state_dir: str, ports: dict[str, int]) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "ANTHROPIC_", "BENCH_"))
        and k not in ("MONGODB_URL", "REDIS_URL", "RABBITMQ_URL", "JWT_SECRET_KEY")
    }
    env.update({k: str(v) for k, v in ports.items()})
    env.update(
        STATE_DIR=state_dir,
        APP_ENV="test",
        JWT_SECRET_KEY=JWT_SECRET,
        BOOTSTRAP_ADMIN_EMAIL=ADMIN_EMAIL,
        BOOTSTRAP_ADMIN_PASSWORD=ADMIN_PASSWORD,
        # The per-user chat limits would otherwise cap one benchmark user at 30/min, 3 open.
        CHAT_REQUESTS_PER_MINUTE="1000000",
        CHAT_CONCURRENT_STREAMS="100000",
        # Every sign-in comes from 127.0.0.1 (only failures count, but be safe).
        SIGNIN_FAILURES_PER_CLIENT="1000000",
        FAKE_LOG_LEVEL="warning",
    )
    return env


@contextlib.contextmanager
def started_stack(keep_state: bool = False) -> Iterator[Endpoints]:
    """`python -m devstack run --logs files` as a child; stopped (SIGTERM) on exit."""
    ports = _ports()
    busy = [f"{k}={p}" for k, p in ports.items() if not _port_free(p)]
    if busy:
        raise SystemExit(
            f"ports in use: {', '.join(busy)}; stop what holds them or set BENCH_PORT_OFFSET"
        )
    state_dir = tempfile.mkdtemp(prefix="rp-bench-")
    log_path = Path(state_dir) / "launcher.log"
    log = log_path.open("w+")
    print(f"[bench] starting the stack (STATE_DIR={state_dir}) …", flush=True)
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack", "run", "--logs", "files"],
        cwd=ROOT,
        env=stack_env(state_dir, ports),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while "READY gateway=" not in log_path.read_text():
            if proc.poll() is not None:
                raise SystemExit(
                    f"the launcher exited ({proc.returncode}):\n{log_path.read_text()[-4000:]}"
                )
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"the stack was not ready in time:\n{log_path.read_text()[-4000:]}"
                )
            time.sleep(0.2)
        print(f"[bench] stack ready in {time.monotonic() - started:.1f} s", flush=True)
        url = "http://127.0.0.1:{}".format
        yield Endpoints(
            gateway=url(ports["GATEWAY_PORT"]),
            modules=url(ports["MODULES_PORT"]),
            chat=url(ports["CHAT_PORT"]),
            upstream=url(ports["FAKE_UPSTREAM_PORT"]),
            admin_email=ADMIN_EMAIL,
            admin_password=ADMIN_PASSWORD,
            started_by_us=True,
            backing_ports=(
                ("auth", ports["AUTH_PORT"]),
                ("usage", ports["USAGE_PORT"]),
                ("ferretdb", ports["MONGODB_PORT"]),
                ("redis", ports["REDIS_PORT"]),
                ("rabbitmq", ports["RABBITMQ_PORT"]),
            ),
        )
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
        if keep_state:
            print(f"[bench] state and logs kept in {state_dir}")
        else:
            subprocess.run(["rm", "-rf", state_dir], check=False)


# --- /proc ------------------------------------------------------------------------------------


def port_of(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def pid_listening_on(port: int) -> int | None:
    """The process holding the listening TCP socket on `port` (root sees every process)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{inode}]")
    if not inodes:
        return None
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in os.scandir(f"/proc/{entry.name}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(fd.path) in inodes:
                        return int(entry.name)
    return None


def rss_mb(pid: int) -> float | None:
    """VmRSS of `pid` in MiB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of `pid` (its threads included), in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (all cores; /proc/stat, not idle/iowait)."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / _TICK


class CpuMeter:
    """CPU seconds each named process used between start() and stop()."""

    def __init__(self, pids: dict[str, int | None]):
        self.pids = {name: pid for name, pid in pids.items() if pid}
        self._start: dict[str, float | None] = {}
        self._machine = 0.0
        self._t0 = 0.0

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._machine = machine_busy_seconds()

    def stop(self) -> dict[str, float]:
        """Per process: percent of one core over the interval; "other": the rest of the
        machine (other programs, and the stack's helpers such as wrk or Erlang's epmd)."""
        wall = time.monotonic() - self._t0
        machine = machine_busy_seconds() - self._machine
        out = {}
        ours = 0.0
        for name, pid in self.pids.items():
            now, then = cpu_seconds(pid), self._start.get(name)
            if now is not None and then is not None and wall > 0:
                out[name] = round(100 * (now - then) / wall, 1)
                ours += now - then
        if wall > 0:
            out["other"] = round(100 * max(0.0, machine - ours) / wall, 1)
        return out


def open_fds(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def machine() -> dict[str, object]:
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": os.uname().release,
        "python": sys.version.split()[0],
        "fd_limit": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
    }


if __name__ == "__main__":
    # Start the benchmark stack by itself and keep it up (Ctrl-C or SIGTERM stops it), for
    # profiling by hand: `.venv/bin/python benchmarks/bench_stack.py`.
    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    raise_fd_limit()
    with contextlib.suppress(KeyboardInterrupt), started_stack() as endpoints:
        print(endpoints, flush=True)
        while True:
            signal.pause()
