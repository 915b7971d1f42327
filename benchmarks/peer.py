"""The peer for `make bench-peer`: a LiteLLM proxy on the same fake upstream.

LiteLLM lives in its own virtualenv under .local/litellm-venv (installed on first use with
uv), so the product never depends on it. It runs as one process (one worker), with a
master key (checked on each request, as our gateway checks a JWT) and no database, and one
model: `gpt-4o` → the fake upstream's OpenAI endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import bench_stack as bs

VENV = bs.ROOT / ".local" / "litellm-venv"
PORT = 28400 + int(os.environ.get("BENCH_PORT_OFFSET", "0"))
START_TIMEOUT_S = 120

_proc: subprocess.Popen[bytes] | None = None


def install() -> Path:
    exe = VENV / "bin" / "litellm"
    if not exe.exists():
        print("[bench] installing LiteLLM into .local/litellm-venv (once) …", flush=True)
        subprocess.run(["uv", "venv", "-q", "--python", "3.11", str(VENV)], check=True)
        subprocess.run(
            [
                "uv",
                "pip",
                "install",
                "-q",
                "--python",
                str(VENV / "bin" / "python"),
                "litellm[proxy]",
            ],
            check=True,
            timeout=1200,
        )
    return exe


def _version() -> str:
    out = subprocess.run(
        [
            str(VENV / "bin" / "python"),
            "-c",
            "import importlib.metadata as m; print(m.version('litellm'))",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or "unknown"


MASTER_KEY = "sk-" + secrets.token_hex(32)


def _launch(exe: Path, upstream: str) -> tuple[Path, subprocess.Popen[bytes]]:
    work = Path(tempfile.mkdtemp(prefix="rp-litellm-"))
    config = work / "config.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: gpt-4o\n"
        "    litellm_params:\n"
        "      model: openai/gpt-4o\n"
        f"      api_base: {upstream}/v1\n"
        "      api_key: fake-key\n"
        "general_settings:\n"
        f"  master_key: {MASTER_KEY}\n"
        "litellm_settings:\n"
        "  drop_params: true\n"
        "  telemetry: false\n"
    )
    env = {
        **os.environ,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no download at start
        "LITELLM_LOG": "ERROR",
        "TELEMETRY": "False",
    }
    with (work / "litellm.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(exe), "--config", str(config), "--host", "127.0.0.1", "--port", str(PORT)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=work,
        )
    return work, proc


async def start(upstream: str) -> dict[str, Any]:
    global _proc
    exe = await asyncio.to_thread(install)
    work, _proc = await asyncio.to_thread(_launch, exe, upstream)
    url = f"http://127.0.0.1:{PORT}"
    deadline = time.monotonic() + START_TIMEOUT_S
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as s:
        while True:
            if _proc.poll() is not None:
                raise RuntimeError(f"LiteLLM exited; see {work / 'litellm.log'}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with s.get(f"{url}/health/liveliness") as r:
                    if r.status == 200:
                        break
            if time.monotonic() > deadline:
                raise RuntimeError(f"LiteLLM did not start; see {work / 'litellm.log'}")
            await asyncio.sleep(0.5)
    version = await asyncio.to_thread(_version)
    print(f"[bench] LiteLLM {version} on {url} (log {work / 'litellm.log'})", flush=True)
    return {
        "url": url,
        "pid": _proc.pid,
        "key": MASTER_KEY,
        "version": version,
        "workers": 1,
        "log": str(work / "litellm.log"),
    }


async def stop() -> None:
    global _proc
    if _proc is None or _proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(_proc.pid, signal.SIGTERM)
    try:
        await asyncio.to_thread(_proc.wait, 20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(_proc.pid, signal.SIGKILL)
        await asyncio.to_thread(_proc.wait)
    _proc = None
