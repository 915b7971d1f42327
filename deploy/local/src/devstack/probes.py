"""Small, dependency-light checks: is a port free, does a server speak its protocol there."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import struct

import httpx

HOST = "127.0.0.1"


def port_is_free(port: int, host: str = HOST) -> bool:
    """True if we could bind ``host:port`` now (SO_REUSEADDR, like uvicorn and the servers do)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


async def _exchange(port: int, payload: bytes, nbytes: int, limit: float) -> bytes | None:
    """Connect, send ``payload``, read up to ``nbytes``; None if nothing answers."""
    try:
        async with asyncio.timeout(limit):
            reader, writer = await asyncio.open_connection(HOST, port)
            try:
                writer.write(payload)
                await writer.drain()
                return await reader.read(nbytes)
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError):
        return None


async def tcp_open(port: int, limit: float = 1.0) -> bool:
    try:
        async with asyncio.timeout(limit):
            _, writer = await asyncio.open_connection(HOST, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


# --- Redis ------------------------------------------------------------------------------------


async def redis_reply(port: int, limit: float = 1.0) -> bytes | None:
    """Send PING; return the first reply line (b'+PONG', b'-LOADING …', …) or None."""
    data = await _exchange(port, b"*1\r\n$4\r\nPING\r\n", 512, limit)
    if not data or data[:1] not in (b"+", b"-"):
        return None
    return data.split(b"\r\n", 1)[0]


async def redis_answers(port: int) -> bool:
    """Something speaking RESP is on the port (even if it wants auth or is loading)."""
    return await redis_reply(port) is not None


async def redis_ready(port: int) -> bool:
    return await redis_reply(port) == b"+PONG"


# --- MongoDB / FerretDB -------------------------------------------------------------------------

_OP_MSG = 2013


def _bson_hello() -> bytes:
    elements = b"\x10hello\x00" + struct.pack("<i", 1)
    db = b"admin\x00"
    elements += b"\x02$db\x00" + struct.pack("<i", len(db)) + db
    return struct.pack("<i", 4 + len(elements) + 1) + elements + b"\x00"


async def mongo_hello(port: int, limit: float = 2.0) -> bool:
    """Send ``hello`` as OP_MSG; True if the reply is an OP_MSG carrying ``ok: 1.0``."""
    body = struct.pack("<I", 0) + b"\x00" + _bson_hello()
    request_id = 0x5EED
    msg = struct.pack("<iiii", 16 + len(body), request_id, 0, _OP_MSG) + body
    try:
        async with asyncio.timeout(limit):
            reader, writer = await asyncio.open_connection(HOST, port)
            try:
                writer.write(msg)
                await writer.drain()
                header = await reader.readexactly(16)
                length, _, response_to, opcode = struct.unpack("<iiii", header)
                if opcode != _OP_MSG or response_to != request_id or not 16 < length < 1 << 24:
                    return False
                reply = await reader.readexactly(length - 16)
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return False
    marker = b"\x01ok\x00"
    i = reply.find(marker)
    if i < 0:
        return False
    (ok,) = struct.unpack_from("<d", reply, i + len(marker))
    return ok == 1.0


# --- RabbitMQ -----------------------------------------------------------------------------------


async def amqp_answers(port: int, limit: float = 2.0) -> bool:
    """Something speaking AMQP 0-9-1 is on the port (answers the protocol header)."""
    data = await _exchange(port, b"AMQP\x00\x00\x09\x01", 8, limit)
    # A method frame (Connection.Start) or, for a version mismatch, a protocol header back.
    return bool(data) and (data[:1] == b"\x01" or data.startswith(b"AMQP"))


async def amqp_ready(url: str, limit: float = 5.0) -> bool:
    """A full AMQP connection (with the credentials in ``url``) can be opened."""
    import aio_pika

    try:
        async with asyncio.timeout(limit):
            connection = await aio_pika.connect(url, timeout=limit)
    except Exception:  # any failure to connect just means "not ready yet"
        return False
    with contextlib.suppress(Exception):
        await connection.close()
    return True


# --- HTTP ----------------------------------------------------------------------------------------


async def http_ok(client: httpx.AsyncClient, url: str) -> bool:
    try:
        response = await client.get(url)
    except httpx.HTTPError:
        return False
    return response.status_code == 200
