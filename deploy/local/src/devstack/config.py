"""Stack configuration, built once from environment variables.

The launcher never overrides an environment variable that is already set: it
only fills in the missing ones (``StackConfig.filled``) and hands the merged
environment (``StackConfig.env``) to every service it starts.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

LogMode = Literal["console", "files"]

HOST = "127.0.0.1"


@dataclass(frozen=True)
class ServiceSpec:
    """One HTTP service: an ASGI app factory served by uvicorn, health at ``GET /healthz``."""

    name: str
    app: str  # "package.module:factory", passed to ``uvicorn --factory``
    port_var: str
    default_port: int
    url_var: str | None = None  # exported to every child as http://127.0.0.1:<port>


# The services, in start order (they are stopped in reverse order).
SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("auth", "auth.main:create_app", "AUTH_PORT", 8101, "AUTH_URL"),
    ServiceSpec("modules", "modules.main:create_app", "MODULES_PORT", 8102, "MODULES_URL"),
    ServiceSpec("chat", "chat.main:create_app", "CHAT_PORT", 8103, "CHAT_URL"),
    ServiceSpec("usage", "usage.main:create_app", "USAGE_PORT", 8104, "USAGE_URL"),
    ServiceSpec("gateway", "gateway.main:create_app", "GATEWAY_PORT", 8000),
)

DEFAULT_ADMIN_EMAIL = "admin@example.com"
DEFAULT_ADMIN_PASSWORD = "AdminPassword1!"
FAKE_API_KEY = "fake-dev-key"


class ConfigError(Exception):
    """Bad configuration (e.g. a port variable that is not a number)."""


@dataclass(frozen=True)
class Service:
    """A service from the table with its port resolved."""

    spec: ServiceSpec
    port: int

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


@dataclass(frozen=True)
class StackConfig:
    repo_root: Path
    state_dir: Path
    python: str
    env: dict[str, str]  # full environment for the services (base env + filled)
    filled: dict[str, str]  # the variables the launcher filled in
    services: tuple[Service, ...]
    # Backing servers: a port when the launcher is responsible for it, None when a URL was given.
    mongodb_port: int | None
    redis_port: int | None
    rabbitmq_port: int | None
    fake_upstream_port: int | None  # None: both API keys are set, no fake upstream
    epmd_port: int
    admin_email: str
    admin_password: str
    admin_password_defaulted: bool
    logs: LogMode = "console"
    backing_timeout: float = 60.0
    service_timeout: float = 30.0
    stop_timeout: float = 15.0
    ferretdb_bin: Path = field(default=Path())

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def gateway_url(self) -> str | None:
        for svc in self.services:
            if svc.name == "gateway":
                return svc.url
        return None

    @property
    def needs_ferretdb(self) -> bool:
        return self.mongodb_port is not None

    @staticmethod
    def from_env(
        env: Mapping[str, str] | None = None,
        *,
        logs: LogMode = "console",
        services: tuple[ServiceSpec, ...] = SERVICES,
        repo_root: Path | None = None,
        python: str | None = None,
    ) -> StackConfig:
        """Build the configuration. Creates the state directory (and the JWT secret file)."""
        base = dict(os.environ if env is None else env)
        root = (repo_root or find_repo_root()).resolve()
        filled: dict[str, str] = {}

        def fill(key: str, value: str) -> str:
            if base.get(key):
                return base[key]
            filled[key] = value
            return value

        state_dir = Path(fill("STATE_DIR", str(root / ".local" / "state"))).resolve()
        (state_dir / "logs").mkdir(parents=True, exist_ok=True)

        def port(var: str, default: int) -> int:
            raw = base.get(var) or str(default)
            try:
                value = int(raw)
            except ValueError:
                raise ConfigError(f"{var}={raw!r} is not a port number") from None
            if not 0 < value < 65536:
                raise ConfigError(f"{var}={value} is not a valid port")
            return value

        mongodb_port = redis_port = rabbitmq_port = None
        if not base.get("MONGODB_URL"):
            mongodb_port = port("MONGODB_PORT", 27017)
            fill("MONGODB_URL", f"mongodb://{HOST}:{mongodb_port}")
        if not base.get("REDIS_URL"):
            redis_port = port("REDIS_PORT", 6379)
            fill("REDIS_URL", f"redis://{HOST}:{redis_port}/0")
        if not base.get("RABBITMQ_URL"):
            rabbitmq_port = port("RABBITMQ_PORT", 5672)
            if rabbitmq_port + 20000 > 65535:
                raise ConfigError(
                    f"RABBITMQ_PORT={rabbitmq_port}: port + 20000 (Erlang distribution) > 65535"
                )
            fill("RABBITMQ_URL", f"amqp://guest:guest@{HOST}:{rabbitmq_port}/")
        epmd_port = port("ERL_EPMD_PORT", 4369)

        fake_upstream_port = None
        if not base.get("OPENAI_API_KEY") or not base.get("ANTHROPIC_API_KEY"):
            fake_upstream_port = port("FAKE_UPSTREAM_PORT", 8199)
            fake_url = f"http://{HOST}:{fake_upstream_port}"
            fill("FAKE_UPSTREAM_PORT", str(fake_upstream_port))
            fill("FAKE_UPSTREAM_URL", fake_url)
            if not base.get("OPENAI_API_KEY"):
                fill("OPENAI_BASE_URL", f"{fake_url}/v1")
                fill("OPENAI_API_KEY", FAKE_API_KEY)
            if not base.get("ANTHROPIC_API_KEY"):
                fill("ANTHROPIC_BASE_URL", fake_url)
                fill("ANTHROPIC_API_KEY", FAKE_API_KEY)

        resolved = []
        for spec in services:
            svc = Service(spec, port(spec.port_var, spec.default_port))
            fill(spec.port_var, str(svc.port))
            if spec.url_var:
                fill(spec.url_var, svc.url)
            resolved.append(svc)
        ports = [s.port for s in resolved]
        if fake_upstream_port is not None:
            ports.append(fake_upstream_port)
        if len(set(ports)) != len(ports):
            raise ConfigError(f"two services share a port: {sorted(ports)}")

        fill("APP_ENV", "dev")
        if not base.get("JWT_SECRET_KEY"):
            fill("JWT_SECRET_KEY", load_or_create_secret(state_dir / "jwt_secret"))
        admin_email = fill("BOOTSTRAP_ADMIN_EMAIL", DEFAULT_ADMIN_EMAIL)
        defaulted = not base.get("BOOTSTRAP_ADMIN_PASSWORD")
        admin_password = fill("BOOTSTRAP_ADMIN_PASSWORD", DEFAULT_ADMIN_PASSWORD)
        fill("PYTHONUNBUFFERED", "1")

        return StackConfig(
            repo_root=root,
            state_dir=state_dir,
            python=python or sys.executable,
            env={**base, **filled},
            filled=filled,
            services=tuple(resolved),
            mongodb_port=mongodb_port,
            redis_port=redis_port,
            rabbitmq_port=rabbitmq_port,
            fake_upstream_port=fake_upstream_port,
            epmd_port=epmd_port,
            admin_email=admin_email,
            admin_password=admin_password,
            admin_password_defaulted=defaulted,
            logs=logs,
            ferretdb_bin=root / ".local" / "bin" / "ferretdb",
        )


def load_or_create_secret(path: Path) -> str:
    """Return the secret stored in ``path``, creating it (mode 0600) on first use."""
    existed = path.exists()
    if existed and (current := path.read_text().strip()):
        return current
    secret = secrets.token_urlsafe(48)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    try:
        if existed:  # present but empty: replace it
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # atomic; fails if another launcher won the race
    except FileExistsError:
        secret = path.read_text().strip() or secret
    finally:
        tmp.unlink(missing_ok=True)
    return secret


def find_repo_root() -> Path:
    """The uv workspace root: nearest parent whose pyproject has ``[tool.uv.workspace]``."""
    for start in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        for d in (start, *start.parents):
            pyproject = d / "pyproject.toml"
            if pyproject.is_file() and "[tool.uv.workspace]" in pyproject.read_text():
                return d
    return Path.cwd().resolve()
