"""The gateway's only HTTP client: forwards requests and streams responses back untouched.

aiohttp was chosen by measurement (DESIGN.md §3: ~610 streaming req/s against ~160 for
httpx on this machine); keep every use of it in this module.
"""

import aiohttp
from common.errors import ServiceUnavailable
from starlette.types import Send

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
    }
)
# The gateway's own server writes these; the service's copies would appear twice.
RESPONSE_SKIP = HOP_BY_HOP | {b"date", b"server"}


class Proxy:
    def __init__(self, *, pool_size: int, connect_timeout: float):
        self._pool_size = pool_size
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            # A short DNS cache lets scaled-out services (compose --scale, k8s) be found soon.
            connector=aiohttp.TCPConnector(
                limit=self._pool_size, keepalive_timeout=30, ttl_dns_cache=5
            ),
            timeout=self._timeout,
            # One session serves every user: it must never keep a cookie from a response.
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def forward(
        self,
        *,
        service: str,
        method: str,
        url: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        send: Send,
    ) -> None:
        """Send the request upstream and stream status, headers and body chunks to `send`."""
        assert self._session is not None, "Proxy.start() was not called"
        out_headers = [
            (k.decode("latin-1"), v.decode("latin-1")) for k, v in headers if k not in HOP_BY_HOP
        ]
        try:
            response = await self._session.request(
                method, url, headers=out_headers, data=body or None, allow_redirects=False
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ServiceUnavailable(f"The {service} service is unavailable") from exc
        try:
            raw = [
                (k.lower(), v) for k, v in response.raw_headers if k.lower() not in RESPONSE_SKIP
            ]
            await send({"type": "http.response.start", "status": response.status, "headers": raw})
            async for chunk in response.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except BaseException:
            # Closing (not releasing) an unfinished response drops the upstream connection,
            # so a client that went away cancels the service's work at once.
            response.close()
            raise
        response.release()  # fully read: the connection goes back to the pool
