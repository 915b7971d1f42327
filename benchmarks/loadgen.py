"""The load generator: closed-loop async workers (aiohttp), every loop bounded in count and time.

A worker sends one request, waits for the whole answer, records it and sends the next,
until the scenario's deadline or its request cap. Streams are timed from the moment the
request is sent to the first SSE data event that carries text (time to first token) and
to the end of the body (total). Only the first text event is parsed; the rest of the
body is read as bytes and its tail checked for the terminating event.
"""

from __future__ import annotations

import asyncio
import collections
import re
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import orjson

# --- statistics -------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


@dataclass
class RunResult:
    """One scenario: what was asked, what came back."""

    concurrency: int
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    tool: str = "aiohttp"
    # wrk reports counts and percentiles, not samples.
    ok_count: int | None = None
    fixed_p50_p99: tuple[float, float] | None = None

    def summary(self) -> dict[str, Any]:
        done = len(self.latencies) if self.ok_count is None else self.ok_count
        p50, p99 = self.fixed_p50_p99 or (
            percentile(self.latencies, 50),
            percentile(self.latencies, 99),
        )
        out: dict[str, Any] = {
            "tool": self.tool,
            "concurrency": self.concurrency,
            "elapsed_s": round(self.elapsed, 3),
            "ok": done,
            "errors": sum(self.errors.values()),
            "error_kinds": dict(self.errors),
            "rate_per_s": round(done / self.elapsed, 1) if self.elapsed else 0.0,
            "latency_p50_ms": ms(p50),
            "latency_p99_ms": ms(p99),
        }
        if self.ttfts:
            out["ttft_p50_ms"] = ms(percentile(self.ttfts, 50))
            out["ttft_p99_ms"] = ms(percentile(self.ttfts, 99))
        return out


# --- one request ------------------------------------------------------------------------------

Sample = tuple[float, float | None]  # (total seconds, ttft seconds or None)
OneRequest = Callable[[aiohttp.ClientSession], Awaitable[Sample]]


class Meter(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


class RequestFailed(Exception):
    pass


def get_json(url: str, headers: dict[str, str]) -> OneRequest:
    async def one(session: aiohttp.ClientSession) -> Sample:
        started = time.perf_counter()
        async with session.get(url, headers=headers) as response:
            await response.read()
            if response.status != 200:
                raise RequestFailed(f"HTTP {response.status}")
        return time.perf_counter() - started, None

    return one


def post_json(url: str, bodies: Sequence[bytes]) -> OneRequest:
    """POST one of `bodies` (round robin) and expect a 200 (used for sign-in)."""
    counter = iter(range(10**12))

    async def one(session: aiohttp.ClientSession) -> Sample:
        body = bodies[next(counter) % len(bodies)]
        started = time.perf_counter()
        async with session.post(
            url, data=body, headers={"content-type": "application/json"}
        ) as response:
            await response.read()
            if response.status != 200:
                raise RequestFailed(f"HTTP {response.status}")
        return time.perf_counter() - started, None

    return one


def _text_in_chat_event(block: bytes) -> bool:
    """Our grammar: `event: delta` / `data: {"text": …}`."""
    if not block.startswith(b"event: delta"):
        return False
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            return bool(orjson.loads(line[5:]).get("text"))
    return False


def _text_in_openai_event(block: bytes) -> bool:
    """OpenAI chat.completion.chunk: `data: {"choices": [{"delta": {"content": …}}]}`."""
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            payload = line[5:].strip()
            if payload == b"[DONE]":
                return False
            for choice in orjson.loads(payload).get("choices") or ():
                if (choice.get("delta") or {}).get("content"):
                    return True
    return False


@dataclass(frozen=True)
class StreamKind:
    name: str
    has_text: Callable[[bytes], bool]
    end_marker: bytes  # must be in the body's tail for the stream to count as complete
    error_marker: bytes | None = None


CHAT_STREAM = StreamKind("chat", _text_in_chat_event, b"event: done", b"event: error")
OPENAI_STREAM = StreamKind("openai", _text_in_openai_event, b"data: [DONE]")


def stream(
    url: str, bodies: Sequence[bytes], headers: Sequence[dict[str, str]], kind: StreamKind
) -> OneRequest:
    """POST a streaming request; time the first text event and the end of the body."""
    counter = iter(range(10**12))

    async def one(session: aiohttp.ClientSession) -> Sample:
        i = next(counter)
        body, hdrs = bodies[i % len(bodies)], headers[i % len(headers)]
        started = time.perf_counter()
        ttft: float | None = None
        buffer = b""
        async with session.post(url, data=body, headers=hdrs) as response:
            if response.status != 200:
                await response.read()
                raise RequestFailed(f"HTTP {response.status}")
            async for chunk in response.content.iter_any():
                if ttft is None:
                    buffer += chunk.replace(b"\r\n", b"\n")
                    while ttft is None and b"\n\n" in buffer:
                        block, buffer = buffer.split(b"\n\n", 1)
                        if kind.has_text(block):
                            ttft = time.perf_counter() - started
                else:
                    buffer = (buffer + chunk)[-1024:]
        total = time.perf_counter() - started
        if kind.error_marker and kind.error_marker in buffer:
            raise RequestFailed("error event")
        if kind.end_marker not in buffer:
            raise RequestFailed("stream ended early")
        if ttft is None:
            raise RequestFailed("no text")
        return total, ttft

    return one


# --- closed loop ------------------------------------------------------------------------------


def new_session(limit: int = 0, timeout_s: float = 60.0) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, ttl_dns_cache=300),
        timeout=aiohttp.ClientTimeout(total=timeout_s, sock_connect=10),
        auto_decompress=False,
    )


async def closed_loop(
    one: OneRequest,
    *,
    concurrency: int,
    duration_s: float,
    warmup_s: float,
    max_requests: int,
    timeout_s: float = 60.0,
    meter: Meter | None = None,
) -> RunResult:
    """`concurrency` workers, each sending requests back to back; warm-up not counted."""
    result = RunResult(concurrency)
    async with new_session(timeout_s=timeout_s) as session:
        for phase, seconds in (("warmup", warmup_s), ("measure", duration_s)):
            if seconds <= 0:
                continue
            budget = [max_requests]
            if phase == "measure" and meter is not None:
                meter.start()
            started = time.perf_counter()
            end = started + seconds

            async def worker(phase: str = phase, end: float = end, budget: list[int] = budget):
                while time.perf_counter() < end and budget[0] > 0:
                    budget[0] -= 1
                    try:
                        total, ttft = await one(session)
                    except (RequestFailed, aiohttp.ClientError, TimeoutError, ValueError) as exc:
                        if phase == "measure":
                            result.errors[str(exc) or type(exc).__name__] += 1
                        continue
                    if phase == "measure":
                        result.latencies.append(total)
                        if ttft is not None:
                            result.ttfts.append(ttft)

            # The hard bound: a stuck worker cannot hold the suite past its deadline.
            workers = [asyncio.ensure_future(worker()) for _ in range(concurrency)]
            done, pending = await asyncio.wait(workers, timeout=seconds + timeout_s)
            for task in pending:
                task.cancel()
                if phase == "measure":
                    result.errors["timeout"] += 1
            for task in done:  # a worker that died on something unexpected
                if task.exception() is not None and phase == "measure":
                    result.errors[f"worker died: {task.exception()!r}"[:80]] += 1
            if phase == "measure":
                result.elapsed = time.perf_counter() - started
                if meter is not None:
                    meter.stop()
    return result


# --- wrk --------------------------------------------------------------------------------------


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _duration(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def wrk_run(
    url: str,
    headers: dict[str, str],
    *,
    concurrency: int,
    duration_s: float,
    warmup_s: float,
    meter: Meter | None = None,
) -> RunResult:
    """The same GET through `wrk` (C, far lighter than a Python client on 2 cores)."""
    threads = min(concurrency, 2)
    hdr_args = [arg for k, v in headers.items() for arg in ("-H", f"{k}: {v}")]

    def run(seconds: float) -> str:
        argv = [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(concurrency),
            "-d",
            f"{max(1, round(seconds))}s",
        ]
        argv += ["--latency", "--timeout", "10s", *hdr_args, url]
        return subprocess.run(
            argv, capture_output=True, text=True, check=True, timeout=seconds + 30
        ).stdout

    if warmup_s > 0:
        run(warmup_s)
    if meter is not None:
        meter.start()
    out = run(duration_s)
    if meter is not None:
        meter.stop()
    result = RunResult(concurrency, tool="wrk")
    m = re.search(r"(\d+) requests in ([\d.]+(?:us|ms|s|m))", out)
    if m is None:
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    total = int(m.group(1))
    result.elapsed = _duration(m.group(2))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if bad:
        result.errors["non-2xx"] = int(bad.group(1))
    if sock:
        result.errors["socket"] = sum(int(x) for x in sock.groups())
    result.ok_count = max(0, total - result.errors["non-2xx"])
    p50 = re.search(r"\s50%\s+(\S+)", out)
    p99 = re.search(r"\s99%\s+(\S+)", out)
    if p50 and p99:
        result.fixed_p50_p99 = (_duration(p50.group(1)), _duration(p99.group(1)))
    return result
