"""py-spy on the gateway, chat and the fake upstream while the streaming test runs (--profile).

py-spy lives in its own virtualenv under .local/bench-tools (installed on first use), so
the workspace never depends on it. Each process gets a collapsed-stack file
(results/<stamp>-<name>.folded; open it in speedscope or flamegraph.pl) and a summary of
where its CPU time goes: by function (self time) and by package (inclusive).
"""

from __future__ import annotations

import asyncio
import collections
import re
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import bench_stack as bs
import loadgen as lg

TOOLS = bs.ROOT / ".local" / "bench-tools"
RATE_HZ = 200
RESULTS = Path(__file__).resolve().parent / "results"


def py_spy() -> str:
    found = shutil.which("py-spy")
    if found:
        return found
    exe = TOOLS / "bin" / "py-spy"
    if not exe.exists():
        print("[bench] installing py-spy into .local/bench-tools …", flush=True)
        subprocess.run(["uv", "venv", "-q", str(TOOLS)], check=True)
        subprocess.run(
            ["uv", "pip", "install", "-q", "--python", str(TOOLS / "bin" / "python"), "py-spy"],
            check=True,
        )
    return str(exe)


_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")

# Inclusive buckets: the first matching path fragment of a frame names its package.
_PACKAGES = (
    ("gateway/src", "gateway (ours)"),
    ("services/chat", "chat service (ours)"),
    ("libs/common", "common lib (ours)"),
    ("fake_upstream", "fake upstream"),
    ("openai/", "openai SDK"),
    ("anthropic/", "anthropic SDK"),
    ("httpx2/", "httpx2 (SDK client)"),
    ("httpx_aiohttp", "SDK aiohttp transport"),
    ("aiohttp/", "aiohttp"),
    ("pydantic/", "pydantic"),
    ("pydantic_core", "pydantic"),
    ("fastapi/", "fastapi"),
    ("starlette/", "starlette"),
    ("uvicorn/", "uvicorn"),
    ("redis/", "redis client"),
    ("pymongo/", "pymongo"),
    ("bson/", "pymongo"),
    ("aio_pika/", "aio-pika"),
    ("aiormq/", "aio-pika"),
    ("pamqp/", "aio-pika"),
    ("jwt/", "PyJWT"),
    ("logging/", "logging"),
    ("asyncio/", "asyncio"),
)


def _package(file: str) -> str | None:
    for fragment, name in _PACKAGES:
        if fragment in file:
            return name
    return None


def summarize(folded: Path, seconds: float, top: int = 25) -> dict[str, Any]:
    self_time: collections.Counter[str] = collections.Counter()
    inclusive_pkg: collections.Counter[str] = collections.Counter()
    inclusive_fn: collections.Counter[str] = collections.Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [f for f in stack.split(";") if f]
        # py-spy puts the thread first ("process 123:..." / "thread (0x...)").
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        self_time[_short(frames[-1])] += count
        seen_pkg, seen_fn = set(), set()
        for frame in frames:
            m = _FRAME.match(frame)
            pkg = _package(m.group("file")) if m else None
            if pkg and pkg not in seen_pkg:
                seen_pkg.add(pkg)
                inclusive_pkg[pkg] += count
            short = _short(frame)
            if short not in seen_fn:
                seen_fn.add(short)
                inclusive_fn[short] += count

    def pct(counter: collections.Counter[str], n: int) -> list[tuple[str, float]]:
        return [(k, round(100 * v / total, 1)) for k, v in counter.most_common(n)] if total else []

    return {
        "samples": total,
        "busy_pct_of_one_core": round(100 * total / (RATE_HZ * seconds), 1) if seconds else None,
        "self_top": pct(self_time, top),
        "inclusive_packages": pct(inclusive_pkg, 30),
        "inclusive_functions": pct(inclusive_fn, top * 2),
    }


def _short(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    file = m.group("file")
    for marker in ("site-packages/", "/src/", "lib/python3."):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{m.group('func')} ({file}:{m.group('line') or '?'})"


def render(name: str, summary: dict[str, Any], top: int = 15) -> str:
    lines = [
        f"== {name}: {summary['samples']} samples, "
        f"busy ≈ {summary['busy_pct_of_one_core']} % of one core",
        "  by package (inclusive):",
        *(f"    {p:5.1f} %  {k}" for k, p in summary["inclusive_packages"][:top]),
        "  by function (self):",
        *(f"    {p:5.1f} %  {k}" for k, p in summary["self_top"][:top]),
    ]
    return "\n".join(lines)


async def profile_streaming(
    ep: bs.Endpoints, fx: Any, args: Any, fake_config: Callable[..., Awaitable[None]]
) -> dict[str, Any]:
    """c=50 streaming through gateway + chat (no delay) while py-spy samples each process."""
    exe = py_spy()
    seconds = args.profile_seconds
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_dir = RESULTS
    await asyncio.to_thread(out_dir.mkdir, parents=True, exist_ok=True)
    targets = {
        "gateway": bs.pid_listening_on(bs.port_of(ep.gateway)),
        "chat": bs.pid_listening_on(bs.port_of(ep.chat)),
        "fake-upstream": bs.pid_listening_on(bs.port_of(ep.upstream)),
    }
    await fake_config(ep, reply_chunks=args.chunks, token_delay_ms=0)
    bodies, headers = fx.chat_request()
    one = lg.stream(ep.gateway + "/stream_chat", bodies, headers, lg.CHAT_STREAM)
    load = asyncio.ensure_future(
        lg.closed_loop(one, concurrency=50, duration_s=seconds + 3, warmup_s=1, max_requests=10**6)
    )
    await asyncio.sleep(1.5)
    spies = {}
    for name, pid in targets.items():
        if pid is None:
            continue
        path = out_dir / f"{stamp}-{name}.folded"
        argv = [
            exe,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(int(seconds)),
            "--rate",
            str(RATE_HZ),
        ]
        argv += ["--format", "raw", "--nonblocking", "--output", str(path)]
        spies[name] = (
            path,
            await asyncio.create_subprocess_exec(
                *argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            ),
        )
    report: dict[str, Any] = {}
    for name, (path, proc) in spies.items():
        try:
            _, err = await asyncio.wait_for(proc.communicate(), timeout=seconds + 30)
        except TimeoutError:
            proc.kill()
            report[name] = {"error": "py-spy did not finish"}
            continue
        if proc.returncode != 0 or not path.exists():
            report[name] = {"error": err.decode()[-500:]}
            continue
        report[name] = {"file": str(path), **summarize(path, seconds)}
    result = await load
    report["load"] = result.summary()
    await fake_config(ep)
    text = "\n\n".join(render(n, s) for n, s in report.items() if n != "load" and "samples" in s)
    (out_dir / f"{stamp}-profile.txt").write_text(text + "\n")
    print(text, flush=True)
    return report
