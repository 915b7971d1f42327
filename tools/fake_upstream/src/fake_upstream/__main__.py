"""``python -m fake_upstream``: serve the fake on FAKE_UPSTREAM_HOST:FAKE_UPSTREAM_PORT."""

from __future__ import annotations

import importlib.util
import logging

import uvicorn

from .app import create_app
from .settings import load_settings

_INCOMPLETE = "ASGI callable returned without completing response."


def _not_intentional_drop(record: logging.LogRecord) -> bool:
    # The app leaves a response unfinished only to simulate an upstream dropping
    # the connection (fail_after_chunks); uvicorn logs that as an ERROR, which
    # would send a reader of the dev logs chasing a bug that is a test fixture.
    return record.getMessage() != _INCOMPLETE


def main() -> None:
    settings = load_settings()
    # uvloop and httptools when present: the fake is a benchmark baseline.
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop=loop,
        http=http,
        access_log=False,
        log_level=settings.log_level,
        lifespan="on",
        # Many benchmark streams open at once; a small backlog would refuse connects.
        backlog=4096,
    )
    # After Config: it (re)configures uvicorn's loggers.
    logging.getLogger("uvicorn.error").addFilter(_not_intentional_drop)
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
