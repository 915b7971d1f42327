"""Make sure the backing servers' programs exist: FerretDB (built from source), Redis, RabbitMQ."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

FERRETDB_MODULE = "github.com/FerretDB/FerretDB"
FERRETDB_VERSION = "v1.24.2"
RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
GO_FALLBACKS = (Path("/usr/local/go/bin/go"), Path("/usr/lib/go/bin/go"))

Log = Callable[[str], None]


class InstallError(Exception):
    pass


def _say(msg: str) -> None:
    print(f"[devstack] {msg}", flush=True)


# --- FerretDB ----------------------------------------------------------------------------------


def ferretdb_path(repo_root: Path) -> Path:
    return repo_root / ".local" / "bin" / "ferretdb"


def ferretdb_ok(binary: Path) -> bool:
    """The binary exists and reports the pinned version."""
    if not os.access(binary, os.X_OK):
        return False
    try:
        out = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and f"version: {FERRETDB_VERSION}" in out.stdout


def find_go() -> str:
    found = shutil.which("go")
    if found:
        return found
    for candidate in GO_FALLBACKS:
        if os.access(candidate, os.X_OK):
            return str(candidate)
    raise InstallError("Go is needed to build FerretDB; `go` is not on PATH nor in /usr/local/go")


def build_ferretdb(binary: Path, log: Log = _say) -> None:
    """Build FerretDB from the module source.

    ``go install …/cmd/ferretdb@v1.24.2`` builds a binary that panics at start-up, because the
    module zip lacks ``build/version/version.txt`` (normally generated from git). So: download
    the module, copy it, write version.txt, and build it there.
    """
    go = find_go()
    env = {**os.environ, "GOWORK": "off", "GOFLAGS": "-mod=mod"}
    env["PATH"] = f"{Path(go).parent}{os.pathsep}{env.get('PATH', '')}"
    log(f"building FerretDB {FERRETDB_VERSION} into {binary} (a few minutes the first time)")

    def go_run(*args: str, cwd: Path | None = None) -> str:
        try:
            proc = subprocess.run(
                [go, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
            )
        except OSError as e:
            raise InstallError(f"could not run {go}: {e}") from e
        if proc.returncode != 0:
            raise InstallError(f"`go {' '.join(args)}` failed:\n{proc.stdout}{proc.stderr}")
        return proc.stdout

    info = json.loads(go_run("mod", "download", "-json", f"{FERRETDB_MODULE}@{FERRETDB_VERSION}"))
    source = Path(info["Dir"])
    binary.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ferretdb-build-") as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(source, src)
        subprocess.run(["chmod", "-R", "u+w", str(src)], check=True)
        (src / "build" / "version" / "version.txt").write_text(FERRETDB_VERSION + "\n")
        partial = binary.with_name(f".{binary.name}.{os.getpid()}.tmp")
        try:
            go_run("build", "-o", str(partial), "./cmd/ferretdb", cwd=src)
            if not ferretdb_ok(partial):
                raise InstallError(f"the FerretDB binary built in {src} does not run")
            os.replace(partial, binary)
        finally:
            partial.unlink(missing_ok=True)
    log(f"FerretDB {FERRETDB_VERSION} ready")


# --- Debian packages ---------------------------------------------------------------------------


def redis_server_path() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    return "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None


def rabbitmq_server_path() -> str | None:
    return str(RABBITMQ_SERVER) if os.access(RABBITMQ_SERVER, os.X_OK) else None


def epmd_path() -> str | None:
    found = shutil.which("epmd")
    if found:
        return found
    for candidate in Path("/usr/lib/erlang").glob("erts-*/bin/epmd"):
        return str(candidate)
    return None


def apt_install(packages: list[str], log: Log = _say) -> None:
    cmd = f"apt-get install -y {' '.join(packages)}"
    if os.geteuid() != 0:
        raise InstallError(f"missing {', '.join(packages)}; install with: sudo {cmd}")
    if not shutil.which("apt-get"):
        raise InstallError(f"missing {', '.join(packages)} and there is no apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log(f"installing {', '.join(packages)} with apt-get")
    for args in (["apt-get", "update"], ["apt-get", "install", "-y", *packages]):
        proc = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise InstallError(f"`{' '.join(args)}` failed:\n{proc.stdout[-3000:]}{proc.stderr}")


# --- all ---------------------------------------------------------------------------------------


def install(
    repo_root: Path,
    *,
    ferretdb: bool = True,
    redis: bool = True,
    rabbitmq: bool = True,
    log: Log = _say,
) -> None:
    """Install what is missing; silent when everything is already there."""
    packages = []
    if redis and not redis_server_path():
        packages.append("redis-server")
    if rabbitmq and not (rabbitmq_server_path() and epmd_path()):
        packages.append("rabbitmq-server")
    if packages:
        apt_install(packages, log)
        if redis and not redis_server_path():
            raise InstallError("redis-server is still missing after apt-get install")
        if rabbitmq and not rabbitmq_server_path():
            raise InstallError(f"{RABBITMQ_SERVER} is still missing after apt-get install")
    if ferretdb:
        binary = ferretdb_path(repo_root)
        if not ferretdb_ok(binary):
            build_ferretdb(binary, log)
