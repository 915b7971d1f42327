"""The benchmark suite: `make bench` (or `.venv/bin/python benchmarks/bench.py --help`).

Starts the real stack on its own ports (or uses one given by BENCH_GATEWAY_URL, …), then
measures side by side in one run:

  overhead  GET /module/list through the gateway vs straight to the modules service
  streaming POST /stream_chat through gateway + chat vs the fake upstream alone
  streams   how many slow streams one chat instance holds open at once, and its RSS
  signin    sign-ins/s through the gateway vs raw argon2id verifications/s

Prints one table and writes benchmarks/results/<timestamp>.json. Every loop is bounded in
count and time; see docs/performance.md for the figures and how to read them.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import datetime as dt
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_stack as bs
import loadgen as lg
import pyspy

RESULTS = Path(__file__).resolve().parent / "results"
PASSWORD = "StrongPassword1!"
USER_MESSAGE = "Hello, this is support. I see your refund is late; how can I help?"
SYSTEM_PROMPT = (
    "You are a customer whose refund is three weeks late and you are losing patience. "
    "Stay in character; answer in one or two sentences."
)
SECTIONS = ("overhead", "streaming", "streams", "signin")


# --- set-up through the public API ------------------------------------------------------------


class Fixture:
    """The benchmark's users (signed up through the gateway) and one training module."""

    def __init__(self, ep: bs.Endpoints):
        self.ep = ep
        self.tokens: list[str] = []
        self.emails: list[str] = []
        self.module_id = ""

    async def create(self, n_users: int) -> None:
        g = self.ep.gateway
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
            async with s.post(
                f"{g}/user/signin",
                json={"email": self.ep.admin_email, "password": self.ep.admin_password},
            ) as r:
                assert r.status == 200, f"admin sign-in: {r.status} {await r.text()}"
                admin = {"authorization": f"Bearer {(await r.json())['access_token']}"}
            tag = uuid.uuid4().hex[:8]
            self.emails = [f"bench{i}.{tag}@example.com" for i in range(n_users)]
            async with s.post(
                f"{g}/user/allowed-users",
                json={"emails": self.emails, "access_level": 1},
                headers=admin,
            ) as r:
                assert r.status == 200, f"allowlist: {r.status} {await r.text()}"
            for email in self.emails:
                async with s.post(
                    f"{g}/user/signup", json={"email": email, "password": PASSWORD}
                ) as r:
                    assert r.status == 200, f"signup: {r.status} {await r.text()}"
                    self.tokens.append((await r.json())["access_token"])
            async with s.post(
                f"{g}/module/create",
                json={"title": f"Late refund ({tag})", "system_prompt": SYSTEM_PROMPT},
                headers=admin,
            ) as r:
                assert r.status == 200, f"module: {r.status} {await r.text()}"
                self.module_id = (await r.json())["id"]

    def auth(self, i: int = 0) -> dict[str, str]:
        return {"authorization": f"Bearer {self.tokens[i % len(self.tokens)]}"}

    def chat_request(self) -> tuple[list[bytes], list[dict[str, str]]]:
        body = orjson.dumps(
            {
                "messages": {"0": {"role": "user", "content": USER_MESSAGE}},
                "agent_id": self.module_id,
                "provider": "openai",
            }
        )
        headers = [
            {**self.auth(i), "content-type": "application/json"} for i in range(len(self.tokens))
        ]
        return [body], headers


def upstream_request(model: str = "gpt-4o") -> tuple[list[bytes], list[dict[str, str]]]:
    """What chat sends the fake upstream for the same turn (OpenAI wire format)."""
    body = orjson.dumps(
        {
            "model": model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": USER_MESSAGE},
            ],
            "max_completion_tokens": 1024,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    return [body], [{"authorization": "Bearer fake-key", "content-type": "application/json"}]


async def fake_config(ep: bs.Endpoints, **config: Any) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{ep.upstream}/_fake/reset") as r:
            assert r.status == 200, await r.text()
        async with s.post(f"{ep.upstream}/_fake/config", json=config) as r:
            assert r.status == 200, await r.text()
        async with s.delete(f"{ep.upstream}/_fake/requests") as r:
            await r.read()


# --- the table --------------------------------------------------------------------------------

Row = dict[str, Any]


def row(section: str, case: str, via: str, summary: dict[str, Any], **extra: Any) -> Row:
    return {"section": section, "case": case, "via": via, **summary, **extra}


def ratio(a: float | None, b: float | None) -> float | None:
    return round(100 * a / b, 1) if a and b else None


class Meter:
    """Per-process CPU use (% of one core) over the measured part of a case."""

    def __init__(self, ep: bs.Endpoints, extra: dict[str, int | None] | None = None):
        self._meter = bs.CpuMeter({**ep.pids(), **(extra or {})})
        self.cpu: dict[str, float] = {}

    def start(self) -> None:
        self._meter.start()

    def stop(self) -> None:
        self.cpu = {k: v for k, v in self._meter.stop().items() if v >= 0.5}


# --- 1. gateway overhead ----------------------------------------------------------------------


async def bench_overhead(ep: bs.Endpoints, fx: Fixture, args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    use_wrk = args.http_client == "wrk" or (args.http_client == "auto" and lg.have_wrk())
    path = "/module/list"
    meter = Meter(ep)
    for c in (1, 50):
        pair = []
        for via, base in (("direct modules", ep.modules), ("gateway", ep.gateway)):
            url = base + path
            if use_wrk:
                result = await asyncio.to_thread(
                    lg.wrk_run,
                    url,
                    fx.auth(),
                    concurrency=c,
                    duration_s=args.duration,
                    warmup_s=args.warmup,
                    meter=meter,
                )
            else:
                result = await lg.closed_loop(
                    lg.get_json(url, fx.auth()),
                    concurrency=c,
                    duration_s=args.duration,
                    warmup_s=args.warmup,
                    max_requests=200_000,
                    meter=meter,
                )
            pair.append(row("overhead", f"GET {path}", via, result.summary(), cpu_pct=meter.cpu))
        base_rate, gw_rate = pair[0]["rate_per_s"], pair[1]["rate_per_s"]
        pair[1]["vs_baseline_pct"] = ratio(gw_rate, base_rate)
        pair[1]["target"] = "≥ 70 % of direct"
        pair[1]["met"] = (pair[1]["vs_baseline_pct"] or 0) >= 70
        added = (pair[1]["latency_p50_ms"] or 0) - (pair[0]["latency_p50_ms"] or 0)
        pair[1]["added_p50_ms"] = round(added, 2)
        rows += pair
        print(_progress(pair), flush=True)
    return rows


# --- 2. streaming -----------------------------------------------------------------------------


async def bench_streaming(
    ep: bs.Endpoints, fx: Fixture, args: argparse.Namespace, peer: dict[str, Any] | None = None
) -> list[Row]:
    rows: list[Row] = []
    chat_bodies, chat_headers = fx.chat_request()
    up_bodies, up_headers = upstream_request()
    upstream_url = ep.upstream + "/v1/chat/completions"
    chat_url, gateway_url = ep.chat + "/stream_chat", ep.gateway + "/stream_chat"
    targets = [
        ("upstream alone", upstream_url, up_bodies, up_headers, lg.OPENAI_STREAM),
        ("direct chat", chat_url, chat_bodies, chat_headers, lg.CHAT_STREAM),
        ("gateway+chat", gateway_url, chat_bodies, chat_headers, lg.CHAT_STREAM),
    ]
    if peer:
        peer_bodies, peer_headers = upstream_request()
        peer_headers = [{**h, "authorization": f"Bearer {peer['key']}"} for h in peer_headers]
        targets.append(
            (
                "litellm proxy",
                peer["url"] + "/v1/chat/completions",
                peer_bodies,
                peer_headers,
                lg.OPENAI_STREAM,
            )
        )
    meter = Meter(ep, {"litellm": peer["pid"]} if peer else None)
    for delay in (0, 20):
        await fake_config(ep, reply_chunks=args.chunks, token_delay_ms=delay)
        for c in (1, 50):
            group = []
            for via, url, bodies, headers, kind in targets:
                result = await lg.closed_loop(
                    lg.stream(url, bodies, headers, kind),
                    concurrency=c,
                    duration_s=args.duration,
                    warmup_s=args.warmup,
                    max_requests=100_000,
                    meter=meter,
                )
                case = f"{args.chunks} chunks, {delay} ms apart"
                group.append(row("streaming", case, via, result.summary(), cpu_pct=meter.cpu))
            base = group[0]
            for r in group[1:]:
                r["vs_baseline_pct"] = ratio(r["rate_per_s"], base["rate_per_s"])
                r["added_ttft_p50_ms"] = round(
                    (r.get("ttft_p50_ms") or 0) - (base.get("ttft_p50_ms") or 0), 2
                )
                if r["via"] == "gateway+chat":
                    if c == 50:
                        r["target"] = "≥ 50 % of upstream alone"
                        r["met"] = (r["vs_baseline_pct"] or 0) >= 50
                    else:
                        r["target"] = "added TTFT p50 a few ms"
                        r["met"] = r["added_ttft_p50_ms"] <= 5
            rows += group
            print(_progress(group), flush=True)
    await fake_config(ep)
    return rows


# --- 3. many slow streams held open by one chat instance --------------------------------------


async def hold_streams(
    url: str,
    n: int,
    bodies: list[bytes],
    headers: list[dict[str, str]],
    *,
    pid: int | None,
    open_parallel: int,
    stream_s: float,
    ramp_timeout_s: float,
) -> dict[str, Any]:
    """Open `n` streams (at most `open_parallel` being set up at once), read them to the end.

    A stream counts as open from its response headers (chat answers them once the model's
    first token is in) to the end of its body."""
    state = {"open": 0, "peak": 0, "completed": 0, "opened": 0}
    errors: dict[str, int] = {}
    gate = asyncio.Semaphore(open_parallel)
    samples: list[tuple[float, int, float | None]] = []
    durations: list[float] = []
    t0 = time.perf_counter()
    marks: dict[str, float] = {}

    def error(kind: str) -> None:
        errors[kind] = errors.get(kind, 0) + 1

    async def one(i: int, session: aiohttp.ClientSession) -> None:
        opened_at = None
        try:
            async with gate:
                response = await session.post(
                    url, data=bodies[0], headers=headers[i % len(headers)]
                )
            try:
                if response.status != 200:
                    await response.read()
                    error(f"HTTP {response.status}")
                    return
                opened_at = time.perf_counter()
                state["open"] += 1
                state["opened"] += 1
                marks["last_opened"] = opened_at - t0
                if state["opened"] == n:
                    marks["all_opened"] = opened_at - t0
                if state["open"] > state["peak"]:
                    state["peak"] = state["open"]
                tail = b""
                async for chunk in response.content.iter_any():
                    tail = (tail + chunk)[-512:]
                if b"event: error" in tail:
                    error("error event")
                elif b"event: done" not in tail:
                    error("stream ended early")
                else:
                    state["completed"] += 1
                    durations.append(time.perf_counter() - opened_at)
            finally:
                response.release()
        except (aiohttp.ClientError, TimeoutError) as exc:
            error(f"{type(exc).__name__}: {exc}"[:80])
        finally:
            if opened_at is not None:
                state["open"] -= 1

    async def monitor() -> None:
        while True:
            rss = bs.rss_mb(pid) if pid else None
            samples.append((round(time.perf_counter() - t0, 1), state["open"], rss))
            await asyncio.sleep(0.5)

    limit = ramp_timeout_s + stream_s * 1.5 + 30
    session = lg.new_session(limit=0, timeout_s=limit)
    watcher = asyncio.ensure_future(monitor())
    try:
        tasks = [asyncio.ensure_future(one(i, session)) for i in range(n)]
        _, pending = await asyncio.wait(tasks, timeout=limit)
        for task in pending:
            task.cancel()
            error("client timeout")
        if pending:
            await asyncio.wait(pending, timeout=10)
    finally:
        watcher.cancel()
        await session.close()
    rss_values = [s[2] for s in samples if s[2] is not None]
    at_peak = [s[2] for s in samples if s[1] >= state["peak"] * 0.98 and s[2] is not None]
    all_opened, last_opened = marks.get("all_opened"), marks.get("last_opened")
    return {
        "streams": n,
        "peak_open": state["peak"],
        "completed": state["completed"],
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "opened": state["opened"],
        "open_rate_per_s": round(state["opened"] / last_opened, 1) if last_opened else None,
        "all_opened_after_s": round(all_opened, 1) if all_opened else None,
        "stream_p50_s": round(lg.percentile(durations, 50) or 0, 2),
        "stream_p99_s": round(lg.percentile(durations, 99) or 0, 2),
        "elapsed_s": round(time.perf_counter() - t0, 1),
        "rss_peak_mb": round(max(rss_values), 1) if rss_values else None,
        "rss_at_peak_open_mb": round(max(at_peak), 1) if at_peak else None,
        "samples": samples,
    }


async def settle_rss(pid: int, seconds: float = 8.0) -> float | None:
    """RSS once the process has finished its background work (stable for ~2 s, bounded)."""
    end = time.monotonic() + seconds
    last = bs.rss_mb(pid)
    stable_since = time.monotonic()
    while time.monotonic() < end:
        await asyncio.sleep(0.5)
        now = bs.rss_mb(pid)
        if now is None or last is None or abs(now - last) > 1.0:
            stable_since = time.monotonic()
        elif time.monotonic() - stable_since >= 2.0:
            return round(now, 1)
        last = now
    return round(last, 1) if last else None


async def bench_streams(ep: bs.Endpoints, fx: Fixture, args: argparse.Namespace) -> list[Row]:
    """Ramp up the number of slow streams held at once, while it holds and time allows.

    Each stream must outlive the opening of its whole stage, so after the first stage the
    reply is made long enough for the open rate just measured (never shorter than asked).
    A stage that could not fit in what is left of --streams-budget is not attempted."""
    base = ep.chat if args.streams_via == "chat" else ep.gateway
    via = "direct chat" if args.streams_via == "chat" else "gateway+chat"
    pid = bs.pid_listening_on(bs.port_of(ep.chat))
    if pid is None:
        print("[bench] cannot find the chat process (not local?): no RSS figures", flush=True)
    delay = args.slow_delay_ms
    open_rate: float | None = None
    bodies, headers = fx.chat_request()
    rows: list[Row] = []
    budget_end = time.monotonic() + args.streams_budget
    meter = Meter(ep)
    try:
        for n in args.ramp:
            chunks = args.slow_chunks
            if open_rate:
                needed_s = n / open_rate * 1.3 + 10
                chunks = max(chunks, int(needed_s * 1000 / delay) + 1)
            stream_s = chunks * delay / 1000
            expected_s = stream_s + (n / open_rate if open_rate else 0) + 15
            if time.monotonic() + expected_s > budget_end:
                rows.append(
                    row(
                        "streams",
                        f"{n} streams",
                        via,
                        {
                            "streams": n,
                            "skipped": (
                                f"would take ~{expected_s:.0f} s at {open_rate} opens/s; "
                                f"over --streams-budget"
                            ),
                            "peak_open": None,
                            "errors": None,
                        },
                    )
                )
                print(f"[bench] {rows[-1]['skipped']}: {n} streams not attempted", flush=True)
                break
            await fake_config(ep, reply_chunks=chunks, token_delay_ms=delay)
            baseline = await settle_rss(pid, 4) if pid else None
            fds_before = bs.open_fds(pid) if pid else None
            print(
                f"[bench] holding {n} streams of {chunks} chunks x {delay:g} ms via {via} …",
                flush=True,
            )
            meter.start()
            result = await hold_streams(
                base + "/stream_chat",
                n,
                bodies,
                headers,
                pid=pid,
                open_parallel=args.open_parallel,
                stream_s=stream_s,
                ramp_timeout_s=args.ramp_timeout,
            )
            meter.stop()
            after = await settle_rss(pid) if pid else None
            samples = result.pop("samples")
            open_rate = result["open_rate_per_s"] or open_rate
            summary = {
                **result,
                "rss_baseline_mb": baseline,
                "rss_after_mb": after,
                "fds_before": fds_before,
                "stream_s": stream_s,
                "target": "≥ 5000 open at once, 0 errors, ≤ 1024 MB",
            }
            summary["met"] = (
                result["peak_open"] >= 5000
                and result["errors"] == 0
                and (result["rss_at_peak_open_mb"] or 0) <= 1024
            )
            case = f"{chunks} chunks x {delay:g} ms"
            r = row("streams", case, via, summary, cpu_pct=meter.cpu, rss_samples=samples)
            rows.append(r)
            print(_progress([r]), flush=True)
            if result["errors"] or result["peak_open"] < n:
                print("[bench] not all held at once: the ramp stops here", flush=True)
                break
    finally:
        await fake_config(ep)
    return rows


# --- 4. sign-in -------------------------------------------------------------------------------


def argon2_rate(threads: int, duration_s: float, max_ops: int = 100_000) -> dict[str, Any]:
    """Raw argon2id verifications/s with argon2-cffi's defaults (as services/auth does)."""
    from argon2 import PasswordHasher

    hasher = PasswordHasher()
    stored = hasher.hash(PASSWORD)
    latencies: list[float] = []
    end = time.perf_counter() + duration_s
    budget = [max_ops]

    def work() -> None:
        while time.perf_counter() < end and budget[0] > 0:
            budget[0] -= 1
            started = time.perf_counter()
            hasher.verify(stored, PASSWORD)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for f in [pool.submit(work) for _ in range(threads)]:
            f.result(timeout=duration_s + 30)
    result = lg.RunResult(threads, elapsed=time.perf_counter() - started, latencies=latencies)
    result.tool = "argon2-cffi"
    out = result.summary()
    out["params"] = {"t": hasher.time_cost, "m_kib": hasher.memory_cost, "p": hasher.parallelism}
    return out


async def bench_signin(ep: bs.Endpoints, fx: Fixture, args: argparse.Namespace) -> list[Row]:
    """Raw verifications are measured just before and just after the sign-ins (the mean is
    the baseline), so a change in the machine's other load shows as a spread, not a bias."""
    c = os.cpu_count() or 2
    raw_before = await asyncio.to_thread(argon2_rate, c, args.duration / 2 + 0.5)
    bodies = [orjson.dumps({"email": e, "password": PASSWORD}) for e in fx.emails]
    meter = Meter(ep)
    result = await lg.closed_loop(
        lg.post_json(ep.gateway + "/user/signin", bodies),
        concurrency=c,
        duration_s=args.duration,
        warmup_s=min(args.warmup, 1.0),
        max_requests=10_000,
        meter=meter,
    )
    gw = row("signin", "POST /user/signin", "gateway", result.summary(), cpu_pct=meter.cpu)
    raw_after = await asyncio.to_thread(argon2_rate, c, args.duration / 2 + 0.5)
    raw = raw_before
    raw["rate_per_s"] = round((raw_before["rate_per_s"] + raw_after["rate_per_s"]) / 2, 2)
    raw["rate_before_after"] = [raw_before["rate_per_s"], raw_after["rate_per_s"]]
    raw["ok"] += raw_after["ok"]
    gw["vs_baseline_pct"] = ratio(gw["rate_per_s"], raw["rate_per_s"])
    gw["target"] = "≈ 1 argon2id verification each"
    gw["met"] = (gw["vs_baseline_pct"] or 0) >= 70
    rows = [row("signin", "argon2id verify", "in-process", raw), gw]
    print(_progress(rows), flush=True)
    return rows


# --- output -----------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:,.1f}" if value >= 100 else f"{value:.2f}"
    return str(value)


COLUMNS = (
    ("section", "section"),
    ("case", "case"),
    ("via", "via"),
    ("conc", "c"),
    ("rate/s", "rate_per_s"),
    ("p50 ms", "latency_p50_ms"),
    ("p99 ms", "latency_p99_ms"),
    ("ttft50", "ttft_p50_ms"),
    ("ttft99", "ttft_p99_ms"),
    ("err", "errors"),
    ("vs base %", "vs_baseline_pct"),
    ("target met", "met"),
)


def _cells(r: Row) -> list[str]:
    if r["section"] == "streams":
        r = {
            **r,
            "c": r["streams"],
            "rate_per_s": r["peak_open"],
            "latency_p50_ms": None,
            "latency_p99_ms": None,
        }
    else:
        r = {**r, "c": r.get("concurrency")}
    return [_fmt(r.get(key)) for _, key in COLUMNS]


def table(rows: list[Row]) -> str:
    header = [title for title, _ in COLUMNS]
    body = [_cells(r) for r in rows]
    widths = [max(len(x) for x in col) for col in zip(header, *body, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for cells in body:
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)))
    notes = []
    for r in rows:
        if r["section"] == "streams" and r.get("skipped"):
            notes.append(f"streams {r['streams']}: not attempted ({r['skipped']})")
        elif r["section"] == "streams":
            notes.append(
                f"streams {r['streams']} via {r['via']}: {r['peak_open']} open at once, "
                f"{r['completed']} completed, {r['errors']} errors {r['error_kinds'] or ''}; "
                f"{r.get('opened')} opened at {_fmt(r['open_rate_per_s'])}/s, each lasted "
                f"{_fmt(r['stream_p50_s'])}/{_fmt(r['stream_p99_s'])} s (p50/p99, "
                f"{_fmt(r['stream_s'])} s asked); chat RSS {_fmt(r['rss_baseline_mb'])} MB "
                f"before, {_fmt(r['rss_at_peak_open_mb'])} MB at peak, "
                f"{_fmt(r['rss_after_mb'])} MB after"
            )
    for r in rows:
        cpu = r.get("cpu_pct")
        if cpu and r["section"] in ("streaming", "overhead") and r.get("concurrency") == 50:
            rate = r.get("rate_per_s") or 0
            per = ", ".join(
                f"{k} {v * 10 / rate:.1f}" for k, v in cpu.items() if rate and k != "other"
            )
            notes.append(
                f"cpu ms per request, {r['case']} via {r['via']} c=50: {per} "
                f"(other load {cpu.get('other', 0):.0f} % of a core)"
            )
    return "\n".join([*lines, "", *notes])


def _progress(rows: list[Row]) -> str:
    return "\n".join("[bench] " + " | ".join(_cells(r)) for r in rows)


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    p.add_argument("--duration", type=float, default=5.0, help="seconds measured per case")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per case")
    p.add_argument("--chunks", type=int, default=20, help="reply chunks in the streaming test")
    p.add_argument("--http-client", choices=("auto", "wrk", "aiohttp"), default="auto")
    p.add_argument(
        "--ramp",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1000, 2000, 5000],
        help="slow streams held open, stage by stage",
    )
    p.add_argument("--slow-chunks", type=int, default=60)
    p.add_argument("--slow-delay-ms", type=float, default=500)
    p.add_argument("--open-parallel", type=int, default=100, help="streams being set up at once")
    p.add_argument("--ramp-timeout", type=float, default=120, help="seconds to open a stage")
    p.add_argument(
        "--streams-budget", type=float, default=150, help="seconds for the whole ramp (bound)"
    )
    p.add_argument("--streams-via", choices=("chat", "gateway"), default="chat")
    p.add_argument("--users", type=int, default=8)
    p.add_argument("--peer", action="store_true", help="add a LiteLLM proxy to the streaming test")
    p.add_argument("--profile", action="store_true", help="py-spy the stack while streaming")
    p.add_argument("--profile-seconds", type=float, default=15.0)
    p.add_argument("--keep-state", action="store_true", help="keep the stack's STATE_DIR and logs")
    args = p.parse_args(argv)
    args.sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections: {', '.join(sorted(unknown))}")
    return args


async def run_suite(ep: bs.Endpoints, args: argparse.Namespace) -> dict[str, Any]:
    fx = Fixture(ep)
    await fx.create(args.users)
    rows: list[Row] = []
    peer_info: dict[str, Any] | None = None
    profiles: dict[str, Any] | None = None
    started = time.monotonic()
    if "overhead" in args.sections:
        rows += await bench_overhead(ep, fx, args)
    if "streaming" in args.sections:
        if args.peer:
            import peer

            peer_info = await peer.start(ep.upstream)
        try:
            rows += await bench_streaming(ep, fx, args, peer_info)
        finally:
            if args.peer:
                import peer

                await peer.stop()
    if args.profile:
        profiles = await pyspy.profile_streaming(ep, fx, args, fake_config)
    if "streams" in args.sections:
        rows += await bench_streams(ep, fx, args)
    if "signin" in args.sections:
        rows += await bench_signin(ep, fx, args)
    return {
        "rows": rows,
        "peer": {k: v for k, v in peer_info.items() if k != "key"} if peer_info else None,
        "profiles": profiles,
        "measure_s": round(time.monotonic() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    fd_limit = bs.raise_fd_limit()
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    t0 = time.monotonic()
    external = bs.external_endpoints()
    if external is not None:
        print(f"[bench] using the running stack at {external.gateway}", flush=True)
        outcome = asyncio.run(run_suite(external, args))
        ep = external
    else:
        with bs.started_stack(keep_state=args.keep_state) as ep:
            outcome = asyncio.run(run_suite(ep, args))
    rows = outcome.pop("rows")
    report = {
        "timestamp": stamp,
        "machine": bs.machine(),
        "stack": {
            "started_by_suite": ep.started_by_us,
            "gateway": ep.gateway,
            "modules": ep.modules,
            "chat": ep.chat,
            "upstream": ep.upstream,
        },
        "settings": {k: v for k, v in vars(args).items() if k != "sections"},
        "fd_limit": fd_limit,
        "wall_s": round(time.monotonic() - t0, 1),
        **outcome,
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{stamp}.json"
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    m = report["machine"]
    print()
    print(
        f"{m['nproc']} x {m['cpu_model']}, {m['ram_gib']} GiB RAM; load generator on the same "
        f"machine; {args.duration:g} s per case after {args.warmup:g} s warm-up"
    )
    print(table(rows))
    print(
        f"\nwritten {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}"
        f" ({report['wall_s']} s in all)"
    )
    return 0


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    sys.exit(main())
