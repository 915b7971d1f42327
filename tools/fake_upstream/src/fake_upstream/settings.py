"""Start-up settings, read once from the environment.

The fake is a dev/test tool, so plain ``os.environ`` is enough; the runtime knobs
(chunk count, delays, failures) can later be changed through ``POST /_fake/config``,
and ``POST /_fake/reset`` puts them back to the values read here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8199
    reply_chunks: int = 20
    token_delay_ms: float = 0.0
    first_token_delay_ms: float = 0.0
    history_size: int = 1000
    log_level: str = "info"


def _int(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _ms(env: Mapping[str, str], name: str) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of milliseconds, got {raw!r}") from None
    if not 0 <= value <= 600_000:
        raise ValueError(f"{name} must be between 0 and 600000, got {value}")
    return value


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from ``env`` (default: the process environment)."""
    env = os.environ if env is None else env
    return Settings(
        host=env.get("FAKE_UPSTREAM_HOST") or "127.0.0.1",
        port=_int(env, "FAKE_UPSTREAM_PORT", 8199, minimum=0),
        reply_chunks=_int(env, "FAKE_REPLY_CHUNKS", 20, minimum=1),
        token_delay_ms=_ms(env, "FAKE_TOKEN_DELAY_MS"),
        first_token_delay_ms=_ms(env, "FAKE_FIRST_TOKEN_DELAY_MS"),
        history_size=_int(env, "FAKE_HISTORY_SIZE", 1000, minimum=1),
        log_level=(env.get("FAKE_LOG_LEVEL") or "info").lower(),
    )
