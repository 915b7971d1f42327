"""Streaming responses that stop the moment the client goes away."""

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Mapping

from starlette.responses import Response
from starlette.types import Receive, Scope, Send


async def run_until_disconnect(receive: Receive, work: Awaitable[None]) -> bool:
    """Run `work`; cancel it as soon as the client disconnects. True if it ran to the end.

    Waiting for `http.disconnect` instead of noticing a failed send means an upstream
    call is cancelled at once, not at the next chunk, however slow the upstream is.
    """
    task = asyncio.ensure_future(work)

    async def wait_disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(wait_disconnect())
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        watcher.cancel()
    if task.cancelled():
        return False
    task.result()  # re-raise what the work raised
    return True


class EventStreamResponse(Response):
    """`text/event-stream` from an async generator of ready-encoded events."""

    media_type = "text/event-stream"

    def __init__(
        self, events: AsyncGenerator[bytes, None], headers: Mapping[str, str] | None = None
    ):
        # Like Starlette's StreamingResponse, skip Response.__init__: no body, no length.
        self.status_code = 200
        self.background = None
        self.init_headers(
            {"cache-control": "no-cache", "x-accel-buffering": "no", **(headers or {})}
        )
        self.events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def pump() -> None:
            start = {"status": self.status_code, "headers": self.raw_headers}
            await send({"type": "http.response.start", **start})
            try:
                async for chunk in self.events:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            finally:
                # Runs the generator's own clean-up now, even if we were cancelled in send().
                await self.events.aclose()
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        await run_until_disconnect(receive, pump())
